"""``from_preset`` computes no random initial values: each variable is created from the dataset read for it."""

import threading

import h5py
import keras
import ml_dtypes
import numpy as np
import pytest

from presetforge import Backbone, GPT2Backbone, IntegrityError, PresetError
from presetforge import preset as preset_lib
from presetforge.backbones import weights
from tests.backbones.tiny import inputs, make, outputs

KINDS = ["gpt2", "bert"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def initialized(monkeypatch):
    """The paths of the variables whose initializer ran (a random init, say)."""
    paths = []
    original = keras.Variable._initialize_with_initializer

    def spy(self, initializer):
        paths.append(self.path)
        return original(self, initializer)

    monkeypatch.setattr(keras.Variable, "_initialize_with_initializer", spy)
    return paths


def test_no_initializer_runs_for_the_weights(kind, tmp_path, initialized):
    original = make(kind)
    original.save_to_preset(tmp_path / "p")
    initialized.clear()
    loaded = Backbone.from_preset(tmp_path / "p")
    assert not {v.path for v in loaded.weights} & set(initialized)
    x = inputs(kind)
    for a, b in zip(outputs(original, x), outputs(loaded, x)):
        np.testing.assert_array_equal(a, b)
    # The spy does see initializers: without weights, every variable is initialized.
    initialized.clear()
    Backbone.from_preset(tmp_path / "p", load_weights=False)
    assert {v.path for v in loaded.weights} <= set(initialized)


def test_bfloat16_preset_loads_as_float32_exactly(kind, tmp_path):
    original = make(kind, dtype="bfloat16")
    original.save_to_preset(tmp_path / "p")
    loaded = Backbone.from_preset(tmp_path / "p", dtype="float32")
    assert {v.dtype for v in loaded.weights} == {"float32"}
    for a, b in zip(original.weights, loaded.weights):
        expected = keras.ops.convert_to_numpy(keras.ops.cast(a.value, "float32"))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(b.value), expected)


def test_float32_weights_round_to_nearest_even_in_bfloat16(tmp_path):
    original = make("gpt2")
    original.save_to_preset(tmp_path / "p")
    loaded = Backbone.from_preset(tmp_path / "p", dtype="bfloat16")
    for a, b in zip(original.weights, loaded.weights):
        expected = keras.ops.convert_to_numpy(a.value).astype(ml_dtypes.bfloat16).astype(np.float32)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.ops.cast(b.value, "float32")), expected)


def test_sharded_preset_loads_with_a_dtype_override(kind, tmp_path):
    original = make(kind)
    original.save_to_preset(tmp_path / "p", max_shard_size_gb=8e-6)
    assert len(preset_lib.weights_files(tmp_path / "p")) > 3
    loaded = Backbone.from_preset(tmp_path / "p", dtype="bfloat16")
    assert {v.dtype for v in loaded.weights} == {"bfloat16"}
    x = inputs(kind)
    for a, b in zip(outputs(original, x), outputs(loaded, x)):
        np.testing.assert_allclose(a, np.asarray(b, dtype="float32"), atol=0.1)


def test_weights_of_another_configuration_are_refused(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "p")
    with pytest.raises(PresetError, match=r"holds weights .* that this GPT2Backbone has no variable for"):
        Backbone.from_preset(tmp_path / "p", num_layers=1)
    with pytest.raises(PresetError, match=r"has no weights for 'transformer_layer_2/"):
        Backbone.from_preset(tmp_path / "p", num_layers=3)
    with pytest.raises(PresetError, match=r"have shape \(97, 16\); 'token_embedding/embeddings' needs \(97, 8\)"):
        Backbone.from_preset(tmp_path / "p", hidden_dim=8)


def test_a_tampered_weights_file_wins_over_other_errors(tmp_path):
    """Weights are hashed in the background while the model is built; their failure is what is reported."""
    make("bert").save_to_preset(tmp_path / "p")
    path = tmp_path / "p" / preset_lib.WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.weights.h5"):
        GPT2Backbone.from_preset(tmp_path / "p")  # would be "holds a BertBackbone, not a GPT2Backbone"
    with pytest.raises(IntegrityError, match="model.weights.h5"):
        Backbone.from_preset(tmp_path / "p", load_weights=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("presetforge-sha256")]


def test_loaded_variables_train(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "p")
    loaded = Backbone.from_preset(tmp_path / "p")
    before = [keras.ops.convert_to_numpy(v.value).copy() for v in loaded.trainable_weights]
    loaded.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = inputs("gpt2")
    loaded.fit(x, np.ones((3, 7, 16), "float32"), epochs=1, batch_size=3, verbose=0)
    after = [keras.ops.convert_to_numpy(v.value) for v in loaded.trainable_weights]
    assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > len(before) // 2


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch parameters")
def test_torch_parameters_are_the_loaded_values(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "p")
    loaded = Backbone.from_preset(tmp_path / "p")
    parameters = {id(p) for p in loaded.parameters()}
    assert all(id(v.value) in parameters for v in loaded.weights)
    assert all(v.value.requires_grad for v in loaded.weights)
    frozen = Backbone.from_preset(tmp_path / "p", trainable=False)
    assert not any(v.value.requires_grad for v in frozen.weights)


def test_load_reads_the_datasets_keras_wrote(kind, tmp_path):
    """The layout maps every variable to the H5 dataset Keras's ``save_weights`` put it in."""
    original = make(kind)
    original.save_to_preset(tmp_path / "p")
    plan = weights.layout(original).datasets
    with h5py.File(tmp_path / "p" / preset_lib.WEIGHTS_FILE) as f:
        for v in original.weights:
            np.testing.assert_array_equal(f[plan[v.path].path][()], keras.ops.convert_to_numpy(v.value))


def test_load_fills_a_live_backbone_too(tmp_path):
    original = make("gpt2")
    original.save_to_preset(tmp_path / "p")
    other = make("gpt2")
    rng = np.random.default_rng(11)
    for v in other.weights:  # every variable starts with values other than the preset's
        v.assign(rng.normal(size=v.shape).astype("float32"))
    pairs = [(keras.ops.convert_to_numpy(a.value), b) for a, b in zip(original.weights, other.weights)]
    assert all(not np.array_equal(saved, keras.ops.convert_to_numpy(live.value)) for saved, live in pairs)
    weights.load(other, tmp_path / "p")
    for saved, live in pairs:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(live.value), saved, err_msg=live.path)


def test_every_shard_is_verified_before_loading(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "p", max_shard_size_gb=8e-6)
    shard = tmp_path / "p" / "model_00001.weights.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="'model_00001.weights.h5'"):
        Backbone.from_preset(tmp_path / "p")
    shard.unlink()
    with pytest.raises(IntegrityError, match="'model_00001.weights.h5': listed in the manifest but missing"):
        Backbone.from_preset(tmp_path / "p")
