"""The README's table of supported ``model_type``s, generated from the converters and their gate tests.

Each ``tests/converters/test_<model_type>.py`` declares ``GATE_VARIANTS``
(name → config overrides) and runs the whole gate on each; the table lists,
for every registered converter, its backbone and those variants.
``python -m tests.converters.model_types --write README.md`` rewrites the
section between the markers; ``test_readme_lists_every_model_type`` fails when
it is out of date.
"""

import importlib
import re
import sys
from pathlib import Path

from presetforge.converters import get_converter, model_types

START, END = "<!-- model-types:start -->", "<!-- model-types:end -->"


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


def with_table(text, table):
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {START} … {END} section")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", text)


def main(argv):
    if argv[:1] == ["--write"]:
        path = Path(argv[1])
        path.write_text(with_table(path.read_text(encoding="utf-8"), render()), encoding="utf-8")
    else:
        print(render())


if __name__ == "__main__":
    main(sys.argv[1:])
