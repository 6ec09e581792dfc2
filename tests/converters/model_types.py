"""The README's table of supported ``model_type``s, generated from the converters and their gate tests.

Each ``tests/converters/test_<model_type>.py`` declares ``GATE_VARIANTS``
(name → config overrides) and runs the whole gate on each; the table lists,
for every registered converter, its backbone and those variants.
``python -m tests.converters.model_types --write README.md`` rewrites the
section between the markers; ``test_readme_lists_every_model_type`` fails when
it is out of date.
"""

import importlib
import sys

from presetforge.converters import get_converter, model_types
from tests import readme_sections

SECTION = "model-types"


def gate_variants(model_type):
    """The variant names the family's test module runs the gate on (empty when it has none)."""
    module = f"tests.converters.test_{model_type.replace('-', '_')}"
    try:
        return list(getattr(importlib.import_module(module), "GATE_VARIANTS", {}))
    except ModuleNotFoundError:
        return []


def render():
    rows = ["| `model_type` | backbone | gate passed in the suite on (tiny random checkpoints) |", "|---|---|---|"]
    for model_type in model_types():
        variants = gate_variants(model_type)
        status = f"{len(variants)} variants: {', '.join(variants)}" if variants else "not gate-tested"
        rows.append(f"| `{model_type}` | `{get_converter(model_type).backbone_cls.__name__}` | {status} |")
    return "\n".join(rows)


def main(argv):
    readme_sections.main(SECTION, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
