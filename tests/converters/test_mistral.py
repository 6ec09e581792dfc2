"""Mistral: every config variant the family allows converts and passes the whole gate against transformers.

The window (8) is shorter than the probes (up to 24 in the padded batch, 48 at
full length), so a model that ignored it would fail at ``layer_0``.
"""

import json

import pytest

from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm
from tests.converters.decoder_gate import ROPE_VARIANTS, older_layout, passes_gate
from tests.converters.helpers import leftovers

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=48,
    rms_norm_eps=1e-5,
    sliding_window=8,
)

GATE_VARIANTS = {
    "gqa-2": {},
    "gqa-4": dict(num_attention_heads=8, num_key_value_heads=2),
    "mqa": dict(num_key_value_heads=1),
    "mha": dict(num_key_value_heads=4),
    "head-dim-differs": dict(head_dim=16),
    "tied": dict(tie_word_embeddings=True),
    "window-1": dict(sliding_window=1),
    "no-window": dict(sliding_window=None),
    "gelu-mlp": dict(hidden_act="gelu_pytorch_tanh"),
    **ROPE_VARIANTS,
}


@pytest.mark.parametrize("layout", ["rope_parameters", "rope_scaling"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    source = make_causal_lm(tmp_path / "hf", "mistral", **{**TINY, **GATE_VARIANTS[variant]})
    if layout == "rope_scaling":
        older_layout(source)
    passes_gate(source, tmp_path / "preset", num_layers=2, length=48)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_bias": True}, "'attention_bias' is not understood"),
        ({"layer_types": ["full_attention", "sliding_attention"]}, r"layer_types=\['full_attention'"),
        ({"sliding_window": 0}, "sliding_window=0 is not a positive integer"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor=0.5"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0, "partial_rotary_factor": 0.5}},
         "partial_rotary_factor=0.5"),
        ({"rope_parameters": {"rope_type": "mrope", "rope_theta": 1e4}}, "'mrope' is not implemented"),
        ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu'"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = make_causal_lm(tmp_path / "hf", "mistral", **TINY)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []


def test_layer_types_that_agree_with_the_window_are_accepted(tmp_path):
    source = make_causal_lm(tmp_path / "hf", "mistral", **TINY)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "layer_types": ["sliding_attention"] * 2}))
    passes_gate(source, tmp_path / "preset", num_layers=2, length=48)
