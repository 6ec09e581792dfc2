"""Shared checks for the converter tests."""

import keras
import numpy as np

from presetforge import Backbone
from tests.backbones.tiny import inputs
from tests.checkpoints import reference, reference_outputs


def parity_errors(preset_dir, source_dir, **overrides):
    """Max abs error against transformers, over non-padded positions (and the pooler for BERT)."""
    backbone = Backbone.from_preset(preset_dir, **overrides)
    kind = "bert" if "segment_ids" in backbone.input else "gpt2"
    x = inputs(kind, vocabulary_size=backbone.vocabulary_size)
    expected = reference_outputs(reference(source_dir), x)
    out = backbone(x)
    sequence = out["sequence_output"] if kind == "bert" else out
    keep = x["padding_mask"].astype(bool)
    errors = {
        "last_hidden_state": float(
            np.abs(keras.ops.convert_to_numpy(sequence) - expected["last_hidden_state"])[keep].max()
        )
    }
    if kind == "bert":
        pooled = keras.ops.convert_to_numpy(out["pooled_output"])
        errors["pooler_output"] = float(np.abs(pooled - expected["pooler_output"]).max())
    return errors


def assert_parity(preset_dir, source_dir, atol=1e-5):
    errors = parity_errors(preset_dir, source_dir)
    assert max(errors.values()) < atol, errors
    return errors


def leftovers(path):
    """Anything a failed write left beside ``path``: the path itself or staging directories."""
    return sorted(p.name for p in path.parent.iterdir() if p.name == path.name or p.name.startswith(f".{path.name}."))


def assert_gate_passes(source_dir, preset_dir, stages_atol=1e-5, logits_atol=1e-4):
    """Convert ``source_dir`` into ``preset_dir`` and run the whole gate on it: every weight equal, every
    stage within ``stages_atol`` of transformers, logits (language models) within ``logits_atol`` with the
    same top-1 wherever the reference's margin decides it. Returns the report."""
    from presetforge.checks import parity
    from presetforge.converters import convert

    convert(source_dir, preset_dir)
    report = parity.check(preset_dir, source_dir)
    assert report.passed and report.weights.passed, report.to_markdown()
    stages = [s for s in report.stages if s.name != "logits"]
    assert max(s.max_abs for s in stages) <= stages_atol, report.stage_table()
    for logits in (s for s in report.stages if s.name == "logits"):
        assert logits.max_abs <= logits_atol and logits.top1_agree == logits.top1_positions > 0, report.stage_table()
    return report


def encoder_gate_report(tmp_path, model_type, config):
    """Convert a tiny random ``model_type`` checkpoint (``config``, plus an optional ``model_class``)
    and run the whole gate on it (``assert_gate_passes``); returns the report."""
    from tests.checkpoints import make_encoder

    config = dict(config)
    source = make_encoder(tmp_path / "hf", model_type, model_class=config.pop("model_class", None), **config)
    return assert_gate_passes(source, tmp_path / "preset")
