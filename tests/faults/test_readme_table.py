"""The README's reliability section is the fault table, generated: it cannot drift from the suite."""

from pathlib import Path

from tests.faults.table import all_faults, render, with_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_fault():
    faults = all_faults()
    assert len({f.id for f in faults}) == len(faults) >= 16
    text = README.read_text(encoding="utf-8")
    assert with_table(text, render(faults)) == text, "run: python -m tests.faults.table --write README.md"
