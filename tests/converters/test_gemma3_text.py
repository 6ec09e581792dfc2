"""Gemma 3 (text): every config variant the family allows converts and passes the whole gate against transformers."""

import json

import pytest
import transformers

from presetforge import Backbone
from presetforge.checks import parity
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm
from tests.converters.helpers import leftovers
from tests.converters.test_gemma import assert_gate_passed, edit_config

SLIDING, FULL = "sliding_attention", "full_attention"

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    query_pre_attn_scalar=8,
    layer_types=[SLIDING, FULL, SLIDING],
    sliding_window=8,  # shorter than every probe but the shortest: the window cuts
    max_position_embeddings=48,
    rms_norm_eps=1e-5,
)


def _rope(full, sliding=None):
    return {"rope_parameters": {FULL: full, SLIDING: sliding or {"rope_type": "default", "rope_theta": 10000.0}}}


GATE_VARIANTS = {
    "gqa-2": {},
    "gqa-4": dict(num_attention_heads=8, head_dim=4, query_pre_attn_scalar=4),
    "mqa": dict(num_key_value_heads=1),  # Gemma 3 270M and 1B
    "mha": dict(num_key_value_heads=4),
    "head-dim-differs": dict(head_dim=16, query_pre_attn_scalar=16),
    "scalar-differs": dict(query_pre_attn_scalar=24),
    "final-soft-cap": dict(final_logit_softcapping=3.0),
    "global-only": dict(layer_types=[FULL, FULL, FULL]),
    "window-2": dict(sliding_window=2),
    "attention-bias": dict(attention_bias=True),
    "untied": dict(tie_word_embeddings=False),
    "exact-gelu": dict(hidden_activation="gelu"),
    "other-bases": _rope(
        {"rope_type": "default", "rope_theta": 500000.0}, {"rope_type": "default", "rope_theta": 1000.0}
    ),
    # Gemma 3 4B and larger: linear scaling by 8 on the global layers only.
    "global-linear-rope": _rope({"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0}),
    "global-yarn-rope": _rope({
        "rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0, "original_max_position_embeddings": 16,
    }),
}


def _legacy_layout(source):
    """Rewrite per-layer-type ``rope_parameters`` as Gemma 3's Hub checkpoints carry them: ``rope_theta``
    and ``rope_scaling`` for the global layers, ``rope_local_base_freq`` for the sliding ones."""
    path = source / "config.json"
    config = json.loads(path.read_text())
    rope = config.pop("rope_parameters")
    full, sliding = dict(rope[FULL]), rope[SLIDING]
    assert sliding.get("rope_type", "default") == "default" and set(sliding) <= {"rope_type", "rope_theta"}
    config["rope_theta"] = full.pop("rope_theta")
    config["rope_local_base_freq"] = sliding["rope_theta"]
    if full.get("rope_type") != "default":
        config["rope_scaling"] = full
    path.write_text(json.dumps(config))
    return source


@pytest.mark.parametrize("layout", ["rope_parameters", "rope_scaling"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    source = make_causal_lm(tmp_path / "hf", "gemma3_text", **{**TINY, **GATE_VARIANTS[variant]})
    if layout == "rope_scaling":
        _legacy_layout(source)
    convert(source, tmp_path / "preset")
    assert_gate_passed(parity.check(tmp_path / "preset", source), TINY["num_hidden_layers"])


def test_layouts_give_the_same_preset(tmp_path):
    config = {**TINY, **GATE_VARIANTS["global-linear-rope"]}
    convert(make_causal_lm(tmp_path / "a", "gemma3_text", **config), tmp_path / "pa")
    convert(_legacy_layout(make_causal_lm(tmp_path / "b", "gemma3_text", **config)), tmp_path / "pb")
    assert Backbone.from_preset(tmp_path / "pa").rope == {
        FULL: {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0},
        SLIDING: {"rope_type": "default", "rope_theta": 10000.0},
    }
    assert (tmp_path / "pa" / "config.json").read_bytes() == (tmp_path / "pb" / "config.json").read_bytes()


@pytest.mark.parametrize(
    "pattern_keys",
    [{"sliding_window_pattern": 2}, {"sliding_window_pattern": 3, "_sliding_window_pattern": 3}, {}],
    ids=["pattern-2", "both-spellings-3", "default-6"],
)
def test_older_configs_derive_layer_types_from_the_pattern(tmp_path, pattern_keys):
    # Configs written before layer_types existed give every n-th layer global attention instead.
    layers = 7
    overrides = {**TINY, "num_hidden_layers": layers, "layer_types": None}
    source = make_causal_lm(tmp_path / "hf", "gemma3_text", **overrides)
    edit_config(source, drop=("layer_types", "sliding_window_pattern", "_sliding_window_pattern"), **pattern_keys)
    expected = transformers.AutoConfig.from_pretrained(source).layer_types
    assert {SLIDING, FULL} <= set(expected)
    convert(source, tmp_path / "preset")
    assert Backbone.from_preset(tmp_path / "preset").layer_types == expected
    assert_gate_passed(parity.check(tmp_path / "preset", source), layers)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping=50.0"),
        ({"hidden_act": "relu"}, "hidden_act='relu' beside hidden_activation='gelu_pytorch_tanh'"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention=True"),
        ({"layer_types": [SLIDING, "chunked_attention", FULL]}, "'chunked_attention' is not implemented"),
        ({"layer_types": None, "sliding_window_pattern": 2, "_sliding_window_pattern": 3},
         "_sliding_window_pattern=3 disagrees with sliding_window_pattern=2"),
        (_rope({"rope_type": "default", "rope_theta": 1e6},
               {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}), "partial_rotary_factor=0.5"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = edit_config(make_causal_lm(tmp_path / "hf", "gemma3_text", **TINY), **edit)
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []
