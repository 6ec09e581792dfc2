"""LoRA: only the factors train, and they travel by layer path to the right backbone only."""

import h5py
import keras
import numpy as np
import pytest

from presetforge import Backbone, LoraError, preset
from tests.backbones.tiny import inputs, make, outputs


def _values(variables):
    return {v.path: keras.ops.convert_to_numpy(v) for v in variables}


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
def test_training_moves_the_lora_factors_and_nothing_else(kind):
    backbone = make(kind)
    backbone.enable_lora(4)
    x = inputs(kind)
    frozen = _values(v for v in backbone.weights if "lora_kernel" not in v.path)
    factors = _values(v for v in backbone.weights if "lora_kernel" in v.path)
    assert len(factors) == 8 and len(frozen) > len(factors)
    before = outputs(backbone, x)

    rng = np.random.default_rng(0)  # random targets: a constant one is flat through the final layer norm
    targets = keras.tree.map_structure(lambda t: rng.normal(size=t.shape).astype("float32"), backbone(x))
    backbone.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    backbone.fit(x, targets, epochs=3, batch_size=3, verbose=0)

    now = _values(backbone.weights)
    for path, value in frozen.items():
        np.testing.assert_array_equal(now[path], value, err_msg=path)
    for path, value in factors.items():
        assert not np.array_equal(now[path], value), f"{path} did not train"
    for a, b in zip(before, outputs(backbone, x)):
        assert not np.allclose(a, b)


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
    before = _values(wider.weights)
    with pytest.raises(LoraError, match=r"'transformer_layer_0/self_attention/query/lora_kernel_a'.*shape \(16, 4\).*needs \(32, 4\)"):
        wider.load_lora_weights(gpt2_lora_file)
    after = _values(wider.weights)
    assert after.keys() == before.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
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


def test_lora_file_is_tied_to_the_base_weights_it_was_trained_on(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "base")
    other = make("gpt2")
    rng = np.random.default_rng(3)
    for v in other.weights:  # the same shapes, other values
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.1)
    other.save_to_preset(tmp_path / "other")
    base_digest, other_digest = preset.weights_digest(tmp_path / "base"), preset.weights_digest(tmp_path / "other")
    assert other._base_weights_sha256 == other_digest != base_digest  # save_to_preset records what it wrote

    trained = Backbone.from_preset(tmp_path / "base")
    trained.enable_lora(4)
    _perturb_lora(trained)
    trained.save_lora_weights(tmp_path / "adapter.lora.h5")
    with h5py.File(tmp_path / "adapter.lora.h5") as f:
        assert f.attrs["base_weights_sha256"] == base_digest

    on_other = Backbone.from_preset(tmp_path / "other")
    untouched = _values(on_other.weights)
    with pytest.raises(LoraError, match=f"trained on base weights sha256 {base_digest[:12]}, this backbone has {other_digest[:12]}"):
        on_other.load_lora_weights(tmp_path / "adapter.lora.h5")
    assert getattr(on_other, "_lora_rank", None) is None and _values(on_other.weights).keys() == untouched.keys()

    on_other.load_lora_weights(tmp_path / "adapter.lora.h5", strict=False)
    assert _values(on_other.trainable_weights).keys() == _values(trained.trainable_weights).keys()
    for path, value in _values(trained.trainable_weights).items():
        np.testing.assert_array_equal(_values(on_other.trainable_weights)[path], value)

    on_base = Backbone.from_preset(tmp_path / "base")
    on_base.load_lora_weights(tmp_path / "adapter.lora.h5")
    x = inputs("gpt2")
    for a, b in zip(outputs(trained, x), outputs(on_base, x)):
        np.testing.assert_array_equal(a, b)


def test_lora_without_a_known_base_needs_strict_false(gpt2_lora_file, tmp_path):
    make("gpt2").save_to_preset(tmp_path / "base")
    loaded = Backbone.from_preset(tmp_path / "base")
    with pytest.raises(LoraError, match="records no base weights digest"):
        loaded.load_lora_weights(gpt2_lora_file)
    loaded.enable_lora(4)
    loaded.save_lora_weights(tmp_path / "known-base.lora.h5")
    built = make("gpt2")  # never saved to or loaded from a preset
    with pytest.raises(LoraError, match="this backbone's weights digest is unknown"):
        built.load_lora_weights(tmp_path / "known-base.lora.h5")
    built.load_lora_weights(gpt2_lora_file, strict=False)
    assert built._lora_rank == 4
