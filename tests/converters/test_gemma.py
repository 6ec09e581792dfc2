"""Gemma: every config variant the family allows converts and passes the whole gate against transformers."""

import json

import pytest

from presetforge import Backbone
from presetforge.checks import parity
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm
from tests.converters.helpers import leftovers
from tests.converters.test_llama import _legacy_layout

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,  # Gemma's default is 256, whatever the hidden size
    max_position_embeddings=48,
    rms_norm_eps=1e-5,
)

GATE_VARIANTS = {
    "gqa-2": {},
    "gqa-4": dict(num_attention_heads=8, head_dim=4),
    "mqa": dict(num_key_value_heads=1),  # Gemma 2B
    "mha": dict(num_key_value_heads=4),  # Gemma 7B
    "head-dim-differs": dict(head_dim=16),  # Gemma 7B: 16 heads of 256 on a width of 3072
    "attention-bias": dict(attention_bias=True),
    "untied": dict(tie_word_embeddings=False),
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


def assert_gate_passed(report, num_layers, full_length=48):
    """Every stage within 1e-5, logits within 1e-4 with identical top-1, on both probes."""
    assert report.passed, report.to_markdown()
    layers = [f"layer_{i}" for i in range(num_layers)]
    assert [s.name for s in report.stages] == ["embeddings", *layers, "final", "logits"]
    assert max(s.max_abs for s in report.stages[:-1]) <= 1e-5, report.stage_table()
    logits = report.stages[-1]
    assert logits.max_abs <= 1e-4 and logits.top1_agree == logits.top1_positions > 0
    assert report.inputs["probes"]["full length"]["lengths"] == [full_length]


def edit_config(source, drop=(), **edit):
    """Rewrite the checkpoint's config.json without the keys in ``drop`` and with ``edit`` merged in."""
    path = source / "config.json"
    config = {k: v for k, v in json.loads(path.read_text()).items() if k not in drop}
    path.write_text(json.dumps({**config, **edit}))
    return source


@pytest.mark.parametrize("layout", ["rope_parameters", "rope_scaling"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    source = make_causal_lm(tmp_path / "hf", "gemma", **{**TINY, **GATE_VARIANTS[variant]})
    if layout == "rope_scaling":
        _legacy_layout(source)
    convert(source, tmp_path / "preset")
    assert_gate_passed(parity.check(tmp_path / "preset", source), TINY["num_hidden_layers"])


def test_released_configs_plain_gelu_is_the_tanh_approximation(tmp_path):
    # Gemma's released config.json files say hidden_act "gelu"; transformers reads it as tanh GELU
    # (it rewrites the value when loading, so only an edited file carries it).
    source = edit_config(make_causal_lm(tmp_path / "hf", "gemma", **TINY), hidden_act="gelu")
    convert(source, tmp_path / "preset")
    assert Backbone.from_preset(tmp_path / "preset").activation == "gelu_approximate"
    assert_gate_passed(parity.check(tmp_path / "preset", source), TINY["num_hidden_layers"])


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu'"),
        ({"hidden_activation": "relu"}, "hidden_activation='relu' beside hidden_act='gelu_pytorch_tanh'"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention=True"),
        ({"rope_parameters": {"rope_type": "fancy", "rope_theta": 1e4}}, "fancy"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
         "partial_rotary_factor=0.5"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = edit_config(make_causal_lm(tmp_path / "hf", "gemma", **TINY), **edit)
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []
