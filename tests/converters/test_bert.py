"""BERT: exact and tanh GELU, pooler, pretraining heads and legacy names, refused flags."""

import json

import pytest
import torch

from presetforge import Backbone
from presetforge.converters import convert, get_converter
from presetforge.errors import ConversionError
from tests.checkpoints import make_bert, rewrite_tensors
from tests.converters.helpers import assert_gate_passes, assert_parity, leftovers, parity_errors


def test_exact_gelu_parity_including_pooler(tmp_path):
    source = make_bert(tmp_path / "hf", layer_norm_eps=1e-3, type_vocab_size=3)
    convert(source, tmp_path / "preset")
    backbone = Backbone.from_preset(tmp_path / "preset")
    assert (backbone.activation, backbone.layer_norm_epsilon, backbone.num_segments) == ("gelu", 1e-3, 3)
    assert (backbone.intermediate_dim, backbone.max_sequence_length) == (48, 32)
    errors = assert_parity(tmp_path / "preset", source)
    assert set(errors) == {"last_hidden_state", "pooler_output"}
    # Tanh GELU would be off by far more than the tolerance on these weights.
    wrong = parity_errors(tmp_path / "preset", source, activation="gelu_approximate")
    assert min(wrong.values()) > 1e-4, wrong


@pytest.mark.parametrize("hidden_act", ["gelu_new", "gelu_pytorch_tanh"])
def test_tanh_gelu_parity(tmp_path, hidden_act):
    source = make_bert(tmp_path / "hf", hidden_act=hidden_act)
    convert(source, tmp_path / "preset")
    assert Backbone.from_preset(tmp_path / "preset").activation == "gelu_approximate"
    assert_parity(tmp_path / "preset", source)


def test_pretraining_checkpoint_strips_prefix_and_ignores_heads(tmp_path):
    source = make_bert(tmp_path / "hf", model_class="BertForPreTraining", fmt="sharded")
    convert(source, tmp_path / "preset")
    ignored = json.loads((tmp_path / "preset" / "metadata.json").read_text())["source"]["ignored_tensors"]
    assert ignored and all(name.startswith("cls.") for name in ignored)
    assert_parity(tmp_path / "preset", source)


def test_legacy_layer_norm_names_and_buffers(tmp_path):
    source = make_bert(tmp_path / "hf")

    def legacy(tensors):
        renamed = {
            k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
            for k, v in tensors.items()
        }
        renamed["embeddings.position_ids"] = torch.arange(32)[None]
        return renamed

    rewrite_tensors(source, legacy)
    convert(source, tmp_path / "preset")
    assert_parity(tmp_path / "preset", source)


@pytest.mark.parametrize(
    "hf, keras_name",
    [("gelu", "gelu"), ("gelu_new", "gelu_approximate"), ("gelu_pytorch_tanh", "gelu_approximate"), ("relu", "relu")],
)
def test_activation_mapping(hf, keras_name):
    assert get_converter("bert").backbone_config({"hidden_act": hf})["activation"] == keras_name


@pytest.mark.parametrize(
    "flag, value",
    [
        ("position_embedding_type", "relative_key"),
        ("position_embedding_type", "relative_key_query"),
        ("is_decoder", True),
        ("add_cross_attention", True),
    ],
)
def test_unimplemented_flags_are_refused(tmp_path, flag, value):
    source = make_bert(tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, flag: value}))
    with pytest.raises(ConversionError, match=f"{flag}={value!r}"):
        convert(source, tmp_path / "preset")
    assert leftovers(tmp_path / "preset") == []


def test_absolute_position_embeddings_are_accepted(tmp_path):
    source = make_bert(tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "position_embedding_type": "absolute"}))
    convert(source, tmp_path / "preset")


GATE_VARIANTS = {
    "default": {},
    "tanh-gelu": dict(hidden_act="gelu_new"),
    "relu": dict(hidden_act="relu"),
    "three-segments": dict(type_vocab_size=3),
    "epsilon-1e-5": dict(layer_norm_eps=1e-5),
}


@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant):
    assert_gate_passes(make_bert(tmp_path / "hf", **GATE_VARIANTS[variant]), tmp_path / "preset")
