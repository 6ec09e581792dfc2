"""The fault suite's table: every case in one row, rendered into the README's reliability section.

Each ``tests/faults/test_*.py`` module lists its cases as ``Fault`` rows in a
``FAULTS`` tuple and runs one test per row. ``python -m tests.faults.table``
prints the table; ``--write README.md`` puts it between the section's markers,
and ``test_readme_lists_every_fault`` fails when the README is out of date.
"""

import dataclasses
import importlib
import pkgutil
import sys
from pathlib import Path

from tests import readme_sections

SECTION = "fault-table"


@dataclasses.dataclass(frozen=True)
class Fault:
    """One row: what goes wrong (``fault``), in which ``area``, and what presetforge does (``outcome``).

    ``id`` names the test case; ``message``, when set, is a regex the one
    line of error output (or the exception text) must match.
    """

    id: str
    area: str
    fault: str
    outcome: str
    message: str = ""


def all_faults():
    """Every ``Fault`` of every fault module, in module then table order."""
    package = Path(__file__).parent
    faults = []
    for module in sorted(m.name for m in pkgutil.iter_modules([str(package)]) if m.name.startswith("test_")):
        faults += getattr(importlib.import_module(f"tests.faults.{module}"), "FAULTS", ())
    return faults


def render(faults):
    rows = ["| area | fault | outcome |", "|---|---|---|"]
    rows += [f"| {f.area} | {f.fault} | {f.outcome} |" for f in faults]
    return "\n".join(rows)


def main(argv):
    readme_sections.main(SECTION, lambda: render(all_faults()), argv)


if __name__ == "__main__":
    main(sys.argv[1:])
