"""The README's reliability section is the fault table, generated: it cannot drift from the suite."""

from tests import readme_sections
from tests.faults.table import SECTION, all_faults, render


def test_readme_lists_every_fault():
    faults = all_faults()
    assert len({f.id for f in faults}) == len(faults) >= 16
    assert readme_sections.is_current(SECTION, lambda: render(faults)), (
        "run: python -m tests.faults.table --write README.md"
    )
