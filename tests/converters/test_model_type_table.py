"""The README's supported-model table is generated from the code: it cannot drift from it."""

from pathlib import Path

from tests.converters.model_types import gate_variants, render, with_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_model_type():
    text = README.read_text(encoding="utf-8")
    assert with_table(text, render()) == text, "run: python -m tests.converters.model_types --write README.md"


def test_every_converter_is_gate_tested():
    from presetforge.converters import model_types

    assert {t: gate_variants(t) for t in model_types() if not gate_variants(t)} == {}
