"""Verified tiny presets, as the publish, fault and weight tests start from them."""

from presetforge.checks import parity, report as report_lib
from presetforge.converters import convert
from tests.checkpoints import make_gpt2


def verified_preset(root, make=make_gpt2, **config):
    """A tiny checkpoint (``make(root / "hf", tokenizer=True, **config)``) and its preset at ``root / "preset"``,
    converted and checked, report and model card written: ``(upstream dir, preset dir)``."""
    source = make(root / "hf", tokenizer=True, **config)
    convert(source, root / "preset")
    report_lib.write(root / "preset", parity.check(root / "preset", source))
    return source, root / "preset"
