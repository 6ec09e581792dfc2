"""The README's supported-model table is generated from the code: it cannot drift from it."""

from presetforge.converters import model_types
from tests import readme_sections
from tests.converters.model_types import SECTION, gate_variants, render


def test_readme_lists_every_model_type():
    assert readme_sections.is_current(SECTION, render), "run: python -m tests.converters.model_types --write README.md"


def test_every_converter_is_gate_tested():
    assert {t: gate_variants(t) for t in model_types() if not gate_variants(t)} == {}
