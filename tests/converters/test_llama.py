"""Llama: every config variant the family allows converts and passes the whole gate against transformers."""

import json

import pytest

from presetforge import Backbone
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm
from tests.converters.helpers import assert_gate_passes, leftovers

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=48,
    rms_norm_eps=1e-5,
)

GATE_VARIANTS = {
    "gqa-2": {},
    "gqa-4": dict(num_attention_heads=8, num_key_value_heads=2, hidden_size=32),
    "mqa": dict(num_key_value_heads=1),
    "mha": dict(num_key_value_heads=4),
    "head-dim-differs": dict(head_dim=16),
    "biases": dict(attention_bias=True, mlp_bias=True),
    "tied": dict(tie_word_embeddings=True),
    "gelu-mlp": dict(hidden_act="gelu_pytorch_tanh"),
    "theta-500k": dict(rope_parameters={"rope_type": "default", "rope_theta": 500000.0}),
    "linear-rope": dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
    "dynamic-rope": dict(rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}),
    "llama3-rope": dict(rope_parameters={
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16,
    }),
    "yarn-rope": dict(rope_parameters={
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
    }),
}


def _legacy_layout(source):
    """Rewrite ``rope_parameters`` as Hub checkpoints carry it: ``rope_theta`` + ``rope_scaling``."""
    path = source / "config.json"
    config = json.loads(path.read_text())
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type") != "default":
        config["rope_scaling"] = rope
    path.write_text(json.dumps(config))
    return source


@pytest.mark.parametrize("layout", ["rope_parameters", "rope_scaling"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    source = make_causal_lm(tmp_path / "hf", "llama", **{**TINY, **GATE_VARIANTS[variant]})
    if layout == "rope_scaling":
        _legacy_layout(source)
    report = assert_gate_passes(source, tmp_path / "preset")
    assert [s.name for s in report.stages] == ["embeddings", "layer_0", "layer_1", "final", "logits"]
    assert report.inputs["probes"]["full length"]["lengths"] == [48]


def test_layouts_give_the_same_preset(tmp_path):
    config = {**TINY, **GATE_VARIANTS["llama3-rope"]}
    convert(make_causal_lm(tmp_path / "a", "llama", **config), tmp_path / "pa")
    convert(_legacy_layout(make_causal_lm(tmp_path / "b", "llama", **config)), tmp_path / "pb")
    assert Backbone.from_preset(tmp_path / "pa").rope == Backbone.from_preset(tmp_path / "pb").rope
    assert (tmp_path / "pa" / "config.json").read_bytes() == (tmp_path / "pb" / "config.json").read_bytes()


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"rope_parameters": {"rope_type": "fancy", "rope_theta": 1e4}}, "fancy"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4}}, "factor"),
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu'"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor=0.5"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
         "partial_rotary_factor=0.5"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = make_causal_lm(tmp_path / "hf", "llama", **TINY)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []
