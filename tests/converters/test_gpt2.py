"""GPT-2: config mapping, refused flags, prefixes and buffers, and parity with transformers."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from presetforge import Backbone, PresetforgeError
from presetforge.converters import convert, get_converter
from presetforge.errors import ConversionError
from tests.checkpoints import make_gpt2, rewrite_tensors
from tests.converters.helpers import assert_gate_passes, assert_parity, leftovers, parity_errors


def test_parity_with_narrow_mlp_and_custom_numerics(tmp_path):
    source = make_gpt2(tmp_path / "hf", n_inner=40, layer_norm_epsilon=1e-3, n_positions=24)
    result = convert(source, tmp_path / "preset")
    backbone = Backbone.from_preset(tmp_path / "preset")
    assert (backbone.intermediate_dim, backbone.max_sequence_length) == (40, 24)
    assert (backbone.layer_norm_epsilon, backbone.activation) == (1e-3, "gelu_approximate")
    assert result.backbone_class == "GPT2Backbone" and result.tensor_count == 4 + 2 * 12
    assert_parity(tmp_path / "preset", source)


def test_exact_gelu_parity_and_sensitivity(tmp_path):
    source = make_gpt2(tmp_path / "hf", activation_function="gelu")
    convert(source, tmp_path / "preset")
    assert Backbone.from_preset(tmp_path / "preset").activation == "gelu"
    assert_parity(tmp_path / "preset", source)
    # The inputs are sensitive to the GELU flavour, so parity above means something.
    wrong = parity_errors(tmp_path / "preset", source, activation="gelu_approximate")
    assert wrong["last_hidden_state"] > 1e-4


def test_lm_head_checkpoint_strips_prefix_and_ignores_tied_head(tmp_path):
    source = make_gpt2(tmp_path / "hf", model_class="GPT2LMHeadModel", fmt="bin")
    convert(source, tmp_path / "preset")
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["source"]["ignored_tensors"] == ["lm_head.weight"]
    assert_parity(tmp_path / "preset", source)


def test_causal_mask_buffers_of_old_checkpoints_are_ignored(tmp_path):
    source = make_gpt2(tmp_path / "hf")

    def add_buffers(tensors):
        for i in range(2):
            tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))
            tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        return tensors

    rewrite_tensors(source, add_buffers)
    convert(source, tmp_path / "preset")
    assert_parity(tmp_path / "preset", source)


@pytest.mark.parametrize(
    "hf, keras_name",
    [
        ("gelu_new", "gelu_approximate"),
        ("gelu_pytorch_tanh", "gelu_approximate"),
        ("gelu", "gelu"),
        ("relu", "relu"),
        ("silu", "silu"),
    ],
)
def test_activation_mapping(hf, keras_name):
    assert get_converter("gpt2").backbone_config({"activation_function": hf})["activation"] == keras_name


def test_config_mapping_defaults_follow_transformers():
    config = get_converter("gpt2").backbone_config({"n_embd": 64, "n_inner": None, "n_layer": 3, "n_head": 4})
    assert config == dict(
        vocabulary_size=50257,
        num_layers=3,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=256,
        dropout=0.1,
        max_sequence_length=1024,
        layer_norm_epsilon=1e-5,
        activation="gelu_approximate",
        tie_word_embeddings=True,
    )


def test_unknown_activation_is_refused():
    with pytest.raises(ConversionError, match="activation_function='quick_gelu'"):
        get_converter("gpt2").backbone_config({"activation_function": "quick_gelu"})


@pytest.mark.parametrize(
    "flag, value",
    [
        ("scale_attn_by_inverse_layer_idx", True),
        ("reorder_and_upcast_attn", True),
        ("scale_attn_weights", False),
        ("add_cross_attention", True),
    ],
)
def test_unimplemented_flags_are_refused(tmp_path, flag, value):
    source = make_gpt2(tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, flag: value}))
    with pytest.raises(ConversionError, match=f"{flag}={value!r}") as info:
        convert(source, tmp_path / "preset")
    assert isinstance(info.value, PresetforgeError) and "only implements" in str(info.value)
    assert leftovers(tmp_path / "preset") == []


def test_an_untied_head_converts_and_a_missing_one_is_refused(tmp_path):
    source = make_gpt2(tmp_path / "hf", model_class="GPT2LMHeadModel", tie_word_embeddings=False)
    convert(source, tmp_path / "preset")
    head = Backbone.from_preset(tmp_path / "preset").token_embedding.reverse_embeddings.numpy()
    np.testing.assert_array_equal(head, load_file(source / "model.safetensors")["lm_head.weight"].numpy().T)

    rewrite_tensors(source, lambda tensors: {k: v for k, v in tensors.items() if k != "lm_head.weight"})
    with pytest.raises(ConversionError, match="upstream tensor 'lm_head.weight' is missing from the checkpoint"):
        convert(source, tmp_path / "other")
    assert leftovers(tmp_path / "other") == []


GATE_VARIANTS = {
    "default": {},
    "untied-head": dict(model_class="GPT2LMHeadModel", tie_word_embeddings=False),
    "exact-gelu": dict(activation_function="gelu"),
    "narrow-mlp": dict(n_inner=40),
    "epsilon-1e-3": dict(layer_norm_epsilon=1e-3),
}


@pytest.mark.parametrize("variant", GATE_VARIANTS)
def test_variant_passes_the_gate(tmp_path, variant):
    assert_gate_passes(make_gpt2(tmp_path / "hf", **GATE_VARIANTS[variant]), tmp_path / "preset")
