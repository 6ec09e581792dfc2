"""Phi-3: every config variant the family allows converts and passes the whole gate against transformers."""

import json

import pytest

from presetforge import Backbone
from presetforge.converters import convert
from presetforge.errors import ConversionError
from tests.checkpoints import make_causal_lm, rewrite_tensors
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
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,  # Phi3Config's 32000 is outside a tiny vocabulary
)

# Distinct per frequency, and short differs from long everywhere: picking the wrong list fails the gate.
SHORT, LONG = [1.0, 1.1, 1.3, 1.7], [1.5, 2.5, 4.0, 8.0]


def _longrope(original, short=SHORT, long=LONG, **extra):
    return dict(
        original_max_position_embeddings=original,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": short, "long_factor": long,
                         **extra},
    )


GATE_VARIANTS = {
    "gqa-2": {},
    "gqa-4": dict(num_attention_heads=8, num_key_value_heads=2),
    "mqa": dict(num_key_value_heads=1),
    "mha": dict(num_key_value_heads=4),
    "head-dim-differs": dict(head_dim=16),
    "tied": dict(tie_word_embeddings=True),
    "gelu-mlp": dict(hidden_act="gelu_pytorch_tanh"),
    "sliding-window": dict(sliding_window=7),  # shorter than every probe but the 3-token one
    # Every probe (the padded batch's longest is 24, the full-length one 64) within the original context: short factors.
    "longrope-below-original": {**_longrope(64), "max_position_embeddings": 64},
    # Every probe beyond the original context of 16: long factors, and the scaling of a factor 48 / 16.
    "longrope-above-original": _longrope(16),
    "longrope-attention-factor": _longrope(16, attention_factor=0.8),
    # Half of each head rotated: two frequencies, so two factors each.
    "longrope-partial-rotary": {**_longrope(16, SHORT[:2], LONG[:2]), "partial_rotary_factor": 0.5},
    "longrope-sliding-window": {**_longrope(16), "sliding_window": 7},
    # config.json then spells the type the legacy ways Phi3Config still renames to longrope (_SPELLINGS).
    "longrope-spelled-su": _longrope(16),
    "longrope-spelled-yarn": _longrope(16),
}
_SPELLINGS = {"longrope-spelled-su": "su", "longrope-spelled-yarn": "yarn"}


def _phi3(directory, **overrides):
    return make_causal_lm(directory, "phi3", **{**TINY, **overrides})


def _edit_config(source, edit):
    path = source / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return source


def _legacy_layout(config):
    """``rope_parameters`` as Hub Phi-3 checkpoints carry it: ``rope_theta`` + ``rope_scaling`` keyed ``type``,
    with ``partial_rotary_factor`` and ``original_max_position_embeddings`` at the top level only."""
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    partial = rope.pop("partial_rotary_factor", 1.0)
    if partial != 1.0:
        config["partial_rotary_factor"] = partial
    rope_type = rope.pop("rope_type")
    if rope_type != "default":
        config["original_max_position_embeddings"] = rope.pop("original_max_position_embeddings")
        config["rope_scaling"] = {"type": rope_type, **rope}
    return config


def _spelled(config, spelling):
    """The longrope type renamed to a legacy ``spelling``; the rope dict keeps its own original context,
    which the installed transformers requires of these spellings (it validates them before renaming)."""
    rope = config.get("rope_parameters") or config["rope_scaling"]
    rope.update({key: spelling for key in ("type", "rope_type") if key in rope})
    rope.setdefault("original_max_position_embeddings", config["original_max_position_embeddings"])
    return config


def _gate(source, preset_dir):
    report = assert_gate_passes(source, preset_dir)
    assert [s.name for s in report.stages] == ["embeddings", "layer_0", "layer_1", "final", "logits"]
    return report


@pytest.mark.parametrize("layout", ["rope_parameters", "rope_scaling"])
@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant, layout):
    config = {**TINY, **GATE_VARIANTS[variant]}
    source = _phi3(tmp_path / "hf", **config)
    if layout == "rope_scaling":
        _edit_config(source, _legacy_layout)
    if variant in _SPELLINGS:
        _edit_config(source, lambda c: _spelled(c, _SPELLINGS[variant]))
    report = _gate(source, tmp_path / "preset")
    assert report.inputs["probes"]["full length"]["lengths"] == [config["max_position_embeddings"]]
    rope = Backbone.from_preset(tmp_path / "preset").rope
    assert rope["rope_type"] == ("longrope" if "longrope" in variant else "default")


def test_layouts_and_spellings_give_the_same_preset(tmp_path):
    variant = GATE_VARIANTS["longrope-partial-rotary"]
    convert(_phi3(tmp_path / "a", **variant), tmp_path / "pa")
    convert(_edit_config(_phi3(tmp_path / "b", **variant), _legacy_layout), tmp_path / "pb")
    convert(_edit_config(_phi3(tmp_path / "c", **variant), lambda c: _spelled(_legacy_layout(c), "su")), tmp_path / "pc")
    config = (tmp_path / "pa" / "config.json").read_bytes()
    assert (tmp_path / "pb" / "config.json").read_bytes() == config == (tmp_path / "pc" / "config.json").read_bytes()
    assert Backbone.from_preset(tmp_path / "pa").rope["partial_rotary_factor"] == 0.5


def test_the_top_level_original_context_wins_and_defaults_to_4096(tmp_path):
    """Phi3Config always has ``original_max_position_embeddings`` (4096 unless set), and it overrides the
    rope dict's: with the top-level key gone, a dict saying 16 still means 4096, so every probe is short."""

    def drop_top_level(config):
        assert config.pop("original_max_position_embeddings") == 16
        assert config["rope_parameters"]["original_max_position_embeddings"] == 16
        return config

    source = _edit_config(_phi3(tmp_path / "hf", **GATE_VARIANTS["longrope-above-original"]), drop_top_level)
    _gate(source, tmp_path / "preset")
    assert Backbone.from_preset(tmp_path / "preset").rope["original_max_position_embeddings"] == 4096


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"attention_sink": True}, "'attention_sink' is not understood"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "rope type 'linear'"),
        # A genuine yarn dict is not longrope, though Phi3Config renames its type.
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "lacks 'short_factor'"),
        (_longrope(16, SHORT[:3]), "short_factor has 3 entries; a rotary dimension of 8 needs 4"),
        (
            {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.125}},
            "partial_rotary_factor=0.125 rotates 1 of 8",
        ),
        ({"sliding_window": 0}, "sliding_window=0"),
        ({"attention_bias": True}, "attention_bias=True"),
        ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu'"),
    ],
)
def test_unknown_keys_and_values_are_refused(tmp_path, edit, message):
    source = _edit_config(_phi3(tmp_path / "hf"), lambda config: {**config, **edit})
    with pytest.raises(ConversionError, match=message) as info:
        convert(source, tmp_path / "preset")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path / "preset") == []


def test_a_fused_tensor_that_does_not_hold_its_parts_is_named(tmp_path):
    """Key/value heads in the config that the fused qkv_proj does not have: refused by name, not misread."""
    name = "model.layers.0.self_attn.qkv_proj.weight"
    source = rewrite_tensors(_phi3(tmp_path / "hf", num_key_value_heads=1), lambda t: {**t, name: t[name][:40]})
    with pytest.raises(ConversionError, match=rf"'{name}' of shape \(40, 32\) cannot be converted: its axis 0 "
                                              r"does not hold the 32 \+ 8 \+ 8 entries") as info:
        convert(source, tmp_path / "preset")
    assert info.value.tensor == name
    assert leftovers(tmp_path / "preset") == []
