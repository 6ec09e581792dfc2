"""The H5 layout the converters write is Keras's own, byte-for-byte in structure and value."""

import json
import resource

import h5py
import keras
import numpy as np
import pytest

from presetforge import BertBackbone, GPT2Backbone, preset
from presetforge.converters import keras_weights
from presetforge.errors import ConversionError

TINY = dict(vocabulary_size=97, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=24, max_sequence_length=32)
CLASSES = {"gpt2": GPT2Backbone, "bert": BertBackbone}


class _Stage:
    def __init__(self, root):
        self.root = root

    def file(self, name):
        return self.root / name


def _real(kind, dtype):
    keras.utils.set_random_seed(0)
    with keras_weights.fresh_names():
        return CLASSES[kind](**TINY, dtype=dtype)


def _write_with_converter_writer(backbone, root, max_shard_size_gb=None):
    layout = keras_weights.layout(backbone, max_shard_size_gb)
    with keras_weights.Writer(_Stage(root), layout) as writer:
        for variable in reversed(backbone.weights):  # any order works
            writer.write(variable.path, keras.ops.convert_to_numpy(variable.value))
    return layout


def _describe(path):
    """Everything in an H5 file: groups with attributes, datasets with type, shape, attributes and bytes."""
    items = {}
    with h5py.File(path, "r") as f:
        items["/"] = ("group", dict(f.attrs))

        def visit(name, obj):
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                plist = obj.id.get_create_plist()
                items[name] = (
                    "dataset",
                    obj.dtype.str,
                    obj.shape,
                    attrs,
                    obj.id.get_type().get_class(),
                    plist.get_layout(),
                    obj.compression,
                    obj[()].tobytes(),
                )
            else:
                items[name] = ("group", attrs)

        f.visititems(visit)
    return items


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_written_file_equals_keras_save(tmp_path, kind, dtype):
    backbone = _real(kind, dtype)
    backbone.save_weights(tmp_path / "keras.weights.h5")
    (tmp_path / "ours").mkdir()
    _write_with_converter_writer(backbone, tmp_path / "ours")
    assert _describe(tmp_path / "ours" / preset.WEIGHTS_FILE) == _describe(tmp_path / "keras.weights.h5")

    fresh = CLASSES[kind](**TINY, dtype=dtype)
    fresh.load_weights(tmp_path / "ours" / preset.WEIGHTS_FILE)
    for a, b in zip(backbone.weights, fresh.weights):
        assert b.dtype == dtype
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))


def test_sharded_layout_equals_keras_sharded_save(tmp_path):
    backbone = _real("gpt2", "float32")
    size_gb = 8000 / 1024**3  # a few variables per shard (the largest is 6.2 KB)
    (tmp_path / "keras").mkdir()
    (tmp_path / "ours").mkdir()
    backbone.save_weights(tmp_path / "keras" / preset.SHARDED_WEIGHTS_FILE, max_shard_size=size_gb)
    layout = _write_with_converter_writer(backbone, tmp_path / "ours", size_gb)
    (tmp_path / "ours" / preset.SHARDED_WEIGHTS_FILE).write_text(json.dumps(layout.index, indent=4))
    keras_files = sorted(p.name for p in (tmp_path / "keras").iterdir())
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == keras_files
    assert len(keras_files) > 3
    assert layout.index == json.loads((tmp_path / "keras" / preset.SHARDED_WEIGHTS_FILE).read_text())
    for name in layout.files:
        assert _describe(tmp_path / "ours" / name) == _describe(tmp_path / "keras" / name), name
    fresh = GPT2Backbone(**TINY)
    fresh.load_weights(tmp_path / "ours" / preset.SHARDED_WEIGHTS_FILE)
    for a, b in zip(backbone.weights, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))


def test_abstract_backbone_has_the_real_layout_and_no_values():
    real = _real("bert", "bfloat16")
    abstract = keras_weights.abstract_backbone(BertBackbone, **TINY, dtype="bfloat16")
    assert keras_weights.layout(abstract) == keras_weights.layout(real)
    assert keras.saving.serialize_keras_object(abstract) == keras.saving.serialize_keras_object(real)
    assert abstract.count_params() == real.count_params()
    assert all(v._value is None for v in abstract.weights)


def test_abstract_backbone_of_a_large_model_allocates_nothing():
    from keras.src.backend.common import global_state

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # GPT-2 XL: 1.56e9 parameters, 6.2 GB in float32.
    backbone = keras_weights.abstract_backbone(
        GPT2Backbone, vocabulary_size=50257, num_layers=48, num_heads=25, hidden_dim=1600, intermediate_dim=6400
    )
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert backbone.count_params() == 1_557_611_200
    assert grown_mib < 200, grown_mib
    # Nothing left for Keras to initialize later (which would allocate it all).
    pending = {id(v) for v in global_state.get_global_attribute("uninitialized_variables") or []}
    assert not pending & {id(v) for v in backbone.weights}
    with keras.StatelessScope():  # closing one initializes every deferred variable Keras knows of
        pass
    assert backbone.weights[0]._value is None


def test_writer_checks_shape_dtype_and_coverage(tmp_path):
    backbone = _real("gpt2", "float32")
    layout = keras_weights.layout(backbone)
    with pytest.raises(ConversionError, match="was never filled"):
        with keras_weights.Writer(_Stage(tmp_path), layout) as writer:
            writer.write("layer_norm/gamma", np.ones(16, "float32"), source="ln_f.weight")
            with pytest.raises(ConversionError, match="'ln_f.weight' fills 'layer_norm/gamma', which was already"):
                writer.write("layer_norm/gamma", np.ones(16, "float32"), source="ln_f.weight")
            with pytest.raises(ConversionError, match=r"'x' gives 'layer_norm/beta' shape \(15,\) float32"):
                writer.write("layer_norm/beta", np.ones(15, "float32"), source="x")
            with pytest.raises(ConversionError, match="float16; the backbone needs"):
                writer.write("layer_norm/beta", np.ones(16, "float16"), source="x")
            with pytest.raises(ConversionError, match="does not have"):
                writer.write("nope/kernel", np.ones(16, "float32"), source="x")
