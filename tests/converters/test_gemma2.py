"""Gemma 2: every config variant the family allows converts and passes the whole gate against transformers."""

import pytest

from presetforge import Backbone
from presetforge.checks import parity
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm
from tests.converters.helpers import leftovers
from tests.converters.test_gemma import assert_gate_passed, edit_config
from tests.converters.test_llama import _legacy_layout

SLIDING, FULL = "sliding_attention", "full_attention"

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=3,  # without layer_types: sliding, full, sliding
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    query_pre_attn_scalar=8,
    sliding_window=8,  # shorter than every probe but the shortest: the window cuts
    max_position_embeddings=48,
    rms_norm_eps=1e-5,
)

GATE_VARIANTS = {
    "gqa-2": {},
    "gqa-4": dict(num_attention_heads=8, head_dim=4, query_pre_attn_scalar=4),
    "mqa": dict(num_key_value_heads=1),
    "mha": dict(num_key_value_heads=4),
    "head-dim-differs": dict(head_dim=16, query_pre_attn_scalar=16),
    # Gemma 2 27B: queries scaled by (hidden / heads) ** -0.5, not head_dim ** -0.5.
    "scalar-differs": dict(query_pre_attn_scalar=24),
    "tight-soft-caps": dict(attn_logit_softcapping=2.0, final_logit_softcapping=3.0),
    "no-soft-caps": dict(attn_logit_softcapping=None, final_logit_softcapping=None),
    "full-first": dict(layer_types=[FULL, SLIDING, SLIDING]),
    "window-2": dict(sliding_window=2),
    "attention-bias": dict(attention_bias=True),
    "untied": dict(tie_word_embeddings=False),
    "exact-gelu": dict(hidden_activation="gelu"),
    "linear-rope": dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
    "dynamic-rope": dict(rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}),
    "yarn-rope": dict(rope_parameters={
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
    }),
}


@pytest.mark.parametrize("layout", ["rope_parameters", "rope_scaling"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    source = make_causal_lm(tmp_path / "hf", "gemma2", **{**TINY, **GATE_VARIANTS[variant]})
    if layout == "rope_scaling":
        _legacy_layout(source)
    convert(source, tmp_path / "preset")
    assert_gate_passed(parity.check(tmp_path / "preset", source), TINY["num_hidden_layers"])


def test_released_configs_without_layer_types_alternate_from_sliding(tmp_path):
    # Gemma 2's released config.json files predate layer_types and name the window twice.
    source = make_causal_lm(tmp_path / "hf", "gemma2", **TINY)
    edit_config(source, drop=("layer_types",), sliding_window_size=8, hidden_act="gelu_pytorch_tanh")
    convert(source, tmp_path / "preset")
    assert Backbone.from_preset(tmp_path / "preset").layer_types == [SLIDING, FULL, SLIDING]
    assert_gate_passed(parity.check(tmp_path / "preset", source), TINY["num_hidden_layers"])


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"hidden_activation": "quick_gelu"}, "hidden_activation='quick_gelu'"),
        ({"hidden_act": "relu"}, "hidden_act='relu' beside hidden_activation='gelu_pytorch_tanh'"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention=True"),
        ({"layer_types": [SLIDING, "chunked_attention", FULL]}, "layer type 'chunked_attention' is not implemented"),
        ({"layer_types": [SLIDING, FULL]}, "one type for each of the 3 layers"),
        ({"sliding_window": None}, "sliding_window=None is not a positive integer"),
        ({"sliding_window_size": 16}, "sliding_window_size=16 disagrees with sliding_window=8"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4}}, "factor"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = edit_config(make_causal_lm(tmp_path / "hf", "gemma2", **TINY), **edit)
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []
