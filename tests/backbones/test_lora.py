"""LoRA: only the factors train, and they travel by layer path to the right backbone only."""

import keras
import numpy as np
import pytest

from presetforge import Backbone, LoraError
from tests.backbones.tiny import inputs, make, outputs


def _perturb_lora(backbone):
    """LoRA's B factor starts at zero; give every factor values so outputs move."""
    rng = np.random.default_rng(7)
    for v in backbone.trainable_weights:
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.1)


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_enable_lora_trains_only_two_factors_per_target(kind):
    backbone = make(kind)
    backbone.enable_lora(4)
    trainable = sorted(v.path for v in backbone.trainable_weights)
    expected = sorted(
        f"transformer_layer_{i}/self_attention/{target}/lora_kernel_{ab}"
        for i in range(2)
        for target in ("query", "value")
        for ab in ("a", "b")
    )
    assert trainable == expected
    assert all(v.shape[-1] == 4 or v.shape[0] == 4 for v in backbone.trainable_weights)


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_lora_weights_round_trip_exactly(kind, tmp_path):
    backbone = make(kind)
    backbone.save_to_preset(tmp_path / "preset")
    backbone.enable_lora(4)
    _perturb_lora(backbone)
    backbone.save_lora_weights(tmp_path / "adapter.lora.h5")

    fresh = Backbone.from_preset(tmp_path / "preset")
    x = inputs(kind)
    assert not np.allclose(outputs(backbone, x)[0], outputs(fresh, x)[0])
    fresh.load_lora_weights(tmp_path / "adapter.lora.h5")
    for a, b in zip(outputs(backbone, x), outputs(fresh, x)):
        np.testing.assert_array_equal(a, b)
    assert sorted(v.path for v in fresh.trainable_weights) == sorted(v.path for v in backbone.trainable_weights)


@pytest.fixture
def gpt2_lora_file(tmp_path):
    backbone = make("gpt2")
    backbone.enable_lora(4)
    _perturb_lora(backbone)
    backbone.save_lora_weights(tmp_path / "gpt2.lora.h5")
    return tmp_path / "gpt2.lora.h5"


def test_lora_file_refused_by_other_architecture(gpt2_lora_file):
    with pytest.raises(LoraError, match="holds LoRA weights for a GPT2Backbone, not a BertBackbone"):
        make("bert").load_lora_weights(gpt2_lora_file)


def test_lora_file_refused_by_wider_model_without_touching_it(gpt2_lora_file):
    wider = make("gpt2", hidden_dim=32)
    before = [keras.ops.convert_to_numpy(v) for v in wider.weights]
    with pytest.raises(LoraError, match=r"'transformer_layer_0/self_attention/query/lora_kernel_a'.*shape \(16, 4\).*needs \(32, 4\)"):
        wider.load_lora_weights(gpt2_lora_file)
    assert len(wider.weights) == len(before)
    assert getattr(wider, "_lora_rank", None) is None


def test_lora_file_refused_by_deeper_model(gpt2_lora_file):
    with pytest.raises(LoraError, match="no LoRA weights for 'transformer_layer_2/self_attention/query/lora_kernel_a'"):
        make("gpt2", num_layers=3).load_lora_weights(gpt2_lora_file)


def test_lora_file_refused_for_other_rank(gpt2_lora_file):
    backbone = make("gpt2")
    backbone.enable_lora(8)
    with pytest.raises(LoraError, match="has rank 4 .* this backbone has LoRA rank 8"):
        backbone.load_lora_weights(gpt2_lora_file)


def test_lora_misuse_is_reported():
    backbone = make("gpt2")
    with pytest.raises(LoraError, match="not enabled"):
        backbone.save_lora_weights("unused.h5")
    with pytest.raises(LoraError, match="no layer of GPT2Backbone is named"):
        backbone.enable_lora(4, target_names=["nonexistent"])
    backbone.enable_lora(2)
    with pytest.raises(LoraError, match="already enabled"):
        backbone.enable_lora(2)
