"""The fault suite's table: every case in one row, rendered into the README's reliability section.

Each ``tests/faults/test_*.py`` module lists its cases as ``Fault`` rows in a
``FAULTS`` tuple and runs one test per row. ``python -m tests.faults.table``
prints the table; ``--write README.md`` puts it between the section's markers,
and ``test_readme_lists_every_fault`` fails when the README is out of date.
"""

import dataclasses
import importlib
import pkgutil
import re
import sys
from pathlib import Path

START, END = "<!-- fault-table:start -->", "<!-- fault-table:end -->"


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


def with_table(readme_text, table):
    """``readme_text`` with the section between the markers replaced by ``table``."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme_text):
        raise SystemExit(f"README has no {START} … {END} section")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", readme_text)


def main(argv):
    table = render(all_faults())
    if argv[:1] == ["--write"]:
        path = Path(argv[1])
        path.write_text(with_table(path.read_text(encoding="utf-8"), table), encoding="utf-8")
    else:
        print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
