"""Backbones round-trip through preset format v1 with exact outputs and honoured overrides."""

import keras
import numpy as np
import pytest

from presetforge import Backbone, BertBackbone, GPT2Backbone, HandleError, PresetError
from presetforge import preset as preset_lib
from tests.backbones.tiny import inputs, make, outputs

KINDS = ["gpt2", "bert"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def saved(kind, tmp_path):
    backbone = make(kind)
    backbone.save_to_preset(tmp_path / "preset")
    return backbone, tmp_path / "preset"


def test_round_trip_gives_class_and_bitwise_outputs(kind, saved):
    original, path = saved
    loaded = Backbone.from_preset(path)
    assert type(loaded) is type(original)
    x = inputs(kind)
    for a, b in zip(outputs(original, x), outputs(loaded, x)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_pathlib_and_string_handles_are_equivalent(kind, saved):
    _, path = saved
    x = inputs(kind)
    for a, b in zip(outputs(Backbone.from_preset(path), x), outputs(Backbone.from_preset(str(path)), x)):
        np.testing.assert_array_equal(a, b)


def test_dtype_override_gives_bfloat16_variables(kind, saved):
    original, path = saved
    loaded = Backbone.from_preset(path, dtype="bfloat16")
    assert {v.dtype for v in loaded.weights} == {"bfloat16"}
    x = inputs(kind)
    for a, b in zip(outputs(original, x), outputs(loaded, x)):
        np.testing.assert_allclose(a, np.asarray(b, dtype="float32"), atol=0.1)


def test_trainable_false_leaves_nothing_trainable(saved):
    _, path = saved
    loaded = Backbone.from_preset(path, trainable=False)
    assert loaded.trainable_weights == []
    assert len(loaded.non_trainable_weights) == len(loaded.weights) > 0


def test_load_weights_false_gives_other_outputs(kind, saved):
    original, path = saved
    keras.utils.set_random_seed(123)
    fresh = Backbone.from_preset(path, load_weights=False)
    x = inputs(kind)
    assert not np.allclose(outputs(original, x)[0], outputs(fresh, x)[0])


def test_subclass_refuses_other_architecture(kind, saved):
    _, path = saved
    other = BertBackbone if kind == "gpt2" else GPT2Backbone
    with pytest.raises(PresetError, match=f"holds a {type(saved[0]).__name__}, not a {other.__name__}"):
        other.from_preset(path)


def test_config_round_trip(kind):
    backbone = make(kind, activation="relu", layer_norm_epsilon=1e-3, dropout=0.0)
    config = backbone.get_config()
    rebuilt = type(backbone).from_config(config)
    assert rebuilt.get_config() == config
    assert config["activation"] == "relu" and config["layer_norm_epsilon"] == 1e-3


def test_numerics_fields_change_outputs(kind, tmp_path):
    """Activation and epsilon are honoured, not ignored: same weights, other numbers."""
    base = make(kind, layer_norm_epsilon=1e-5)
    base.save_to_preset(tmp_path / "p")
    x = inputs(kind)
    reference = outputs(base, x)[-1]
    for override in ({"activation": "relu"}, {"layer_norm_epsilon": 1.0}):
        changed = Backbone.from_preset(tmp_path / "p", **override)
        assert not np.allclose(reference, outputs(changed, x)[-1], atol=1e-6), override


def test_token_embedding_and_hidden_states(kind):
    backbone = make(kind)
    assert isinstance(backbone.token_embedding, keras.layers.Embedding)
    assert backbone.token_embedding.input_dim == 97
    x = inputs(kind)
    stages = backbone.hidden_states(x)
    final = "final" if kind == "gpt2" else "pooled_output"
    assert list(stages) == ["embeddings", "layer_0", "layer_1", final]
    out = backbone(x)
    sequence = out if kind == "gpt2" else out["sequence_output"]
    last = stages["final"] if kind == "gpt2" else stages["layer_1"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(last), keras.ops.convert_to_numpy(sequence), atol=1e-6)


def test_sharded_weights_round_trip(kind, tmp_path):
    backbone = make(kind)
    backbone.save_to_preset(tmp_path / "p", max_shard_size_gb=8e-6)
    names = preset_lib.weights_files(tmp_path / "p")
    assert preset_lib.SHARDED_WEIGHTS_FILE in names and len(names) > 2
    x = inputs(kind)
    for a, b in zip(outputs(backbone, x), outputs(Backbone.from_preset(tmp_path / "p"), x)):
        np.testing.assert_array_equal(a, b)


def test_metadata_describes_the_weights(saved):
    original, path = saved
    metadata = preset_lib.read_json(path, preset_lib.METADATA_FILE)
    assert metadata["parameter_count"] == original.count_params()
    assert metadata["dtype"] == "float32"
    assert metadata["format_version"] == 1
    assert metadata["keras_version"] == keras.__version__
    config = preset_lib.read_json(path, preset_lib.CONFIG_FILE)
    assert config["registered_name"] == f"presetforge>{type(original).__name__}"


def test_presets_come_from_the_catalog():
    assert "gpt2_base_en" in GPT2Backbone.presets
    assert "bert_base_en_uncased" not in GPT2Backbone.presets
    assert "bert_base_en_uncased" in BertBackbone.presets
    assert set(Backbone.presets) == {name for cls in Backbone.__subclasses__() for name in cls.presets}
    assert set(GPT2Backbone.presets) | set(BertBackbone.presets) < set(Backbone.presets)


def test_unpublished_and_unknown_presets_are_clear_errors():
    with pytest.raises(HandleError, match="'gpt2_base_en' is in the catalog but has not been published"):
        Backbone.from_preset("gpt2_base_en")
    with pytest.raises(HandleError, match="unknown preset 'gpt9_base_en'"):
        Backbone.from_preset("gpt9_base_en")
