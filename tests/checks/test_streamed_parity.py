"""The layer-streamed check computes what the whole-model check computes, on every family.

Streamed, transformers' model is built with its parameters on the ``meta``
device and each block is read from the checkpoint just before it runs; whole,
it is ``from_pretrained``. Our backbone likewise runs from deferred variables
filled a stage at a time, or loaded whole. Every stage's errors, on its own and
end to end, must agree to 1e-7 (float32): the streamed route rebuilds nothing
by hand, so it may not move a number.
"""

import importlib

import pytest

from presetforge.checks import parity
from presetforge.converters import convert, model_types
from tests.checkpoints import make_bert, make_causal_lm, make_encoder, make_gpt2

# One variant per family, chosen to exercise what the model builds at model level:
# rotary tables per layer type, sliding-window masks, soft-caps, scaled embeddings,
# token types, untied heads, learned positions.
VARIANTS = {
    "bert": "three-segments",
    "distilbert": "masked-lm-head",
    "gemma": "untied",
    "gemma2": "window-2",
    "gemma3_text": "final-soft-cap",
    "gpt2": "untied-head",
    "llama": "yarn-rope",
    "mistral": "window-1",
    "phi3": "longrope-above-original",
    "qwen2": "upper-layer-slides",
    "qwen3": "head-dim-wider",
    "roberta": "two-token-types",
    "xlm-roberta": "default",
}
ENCODERS = ("distilbert", "roberta", "xlm-roberta")


def _checkpoint(directory, model_type):
    module = importlib.import_module(f"tests.converters.test_{model_type.replace('-', '_')}")
    config = {**getattr(module, "TINY", {}), **module.GATE_VARIANTS[VARIANTS[model_type]]}
    if model_type == "gpt2":
        return make_gpt2(directory, **config)
    if model_type == "bert":
        return make_bert(directory, **config)
    if model_type in ENCODERS:
        return make_encoder(directory, model_type, model_class=config.pop("model_class", None), **config)
    return make_causal_lm(directory, model_type, **config)


def test_every_family_has_a_variant_here():
    assert sorted(VARIANTS) == sorted(model_types())


@pytest.mark.parametrize("model_type", sorted(VARIANTS))
def test_streamed_and_whole_model_checks_agree(tmp_path, model_type):
    source = _checkpoint(tmp_path / "hf", model_type)
    convert(source, tmp_path / "preset")
    streamed = parity.check(tmp_path / "preset", source)
    whole = parity.check(tmp_path / "preset", source, streamed=False)
    assert streamed.passed and whole.passed, streamed.to_markdown()
    pairs = list(zip(streamed.stages + streamed.end_to_end, whole.stages + whole.end_to_end, strict=True))
    for s, w in pairs:
        assert s.name == w.name
        for field in ("max_abs", "mean_abs", "min_cosine", "limit"):
            assert abs(getattr(s, field) - getattr(w, field)) <= 1e-7, (s.name, field, s, w)
        assert (s.top1_agree, s.top1_positions) == (w.top1_agree, w.top1_positions)
    assert streamed.reference == whole.reference
