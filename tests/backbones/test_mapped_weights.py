"""Loaded weights are copy-on-write maps of the verified preset file: nothing copied, nothing written back."""

import mmap
import os
import sys

import h5py
import keras
import numpy as np
import pytest

from presetforge import Backbone, IntegrityError
from presetforge import preset as preset_lib
from presetforge.backbones import weights
from tests.backbones.tiny import inputs, make

torch_only = pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch tensors share the mapped memory")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def _mapping_of(address):
    """``(permissions, inode, path)`` of the mapping of this process that holds ``address``, or ``None``."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[1], int(fields[4]), fields[5].strip() if len(fields) > 5 else ""
    return None


def _as_numpy(variable):
    return keras.ops.convert_to_numpy(keras.ops.cast(variable.value, "float32"))


@torch_only
@linux_only
@pytest.mark.parametrize(
    "saved, loaded, mapped",
    [
        ("float32", "float32", True),
        ("bfloat16", "bfloat16", True),
        ("float32", "bfloat16", False),
        ("bfloat16", "float32", False),
    ],
)
def test_weights_stored_at_the_variables_dtype_are_a_private_map_of_the_verified_file(tmp_path, saved, loaded, mapped):
    original = make("gpt2", dtype=saved)
    original.save_to_preset(tmp_path / "p")
    path = tmp_path / "p" / preset_lib.WEIGHTS_FILE
    backbone = Backbone.from_preset(tmp_path / "p", dtype=loaded)
    where = {v.path: _mapping_of(v.value.data_ptr()) for v in backbone.weights}
    if mapped:
        # Private ("p"), writable mappings of the very file (its inode), not a copy in fresh memory.
        assert set(where.values()) == {("rw-p", path.stat().st_ino, str(path))}
    else:  # a cast is a copy in fresh memory
        assert not [p for p, (_, _, name) in where.items() if name == str(path)]
    for a, b in zip(original.weights, backbone.weights):
        expected = keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(a.value, loaded), "float32"))
        np.testing.assert_array_equal(_as_numpy(b), expected)


def test_training_after_load_changes_neither_the_file_nor_other_loads(tmp_path):
    make("gpt2").save_to_preset(tmp_path / "p")
    path = tmp_path / "p" / preset_lib.WEIGHTS_FILE
    before = path.read_bytes()
    identity = preset_lib.verify(tmp_path / "p")
    trained = Backbone.from_preset(tmp_path / "p")
    other = Backbone.from_preset(tmp_path / "p")
    saved = [_as_numpy(v).copy() for v in other.weights]

    trained.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = inputs("gpt2")
    trained.fit(x, np.ones((3, 7, 16), "float32"), epochs=2, batch_size=3, verbose=0)
    trained.weights[0].assign(np.zeros(trained.weights[0].shape, "float32"))
    changed = [not np.array_equal(_as_numpy(v), s) for v, s in zip(trained.weights, saved)]
    assert changed[0] and sum(changed) > len(changed) // 2

    assert path.read_bytes() == before  # every write went to private copies
    assert preset_lib.verify(tmp_path / "p") == identity  # the manifest and every file unchanged
    for v, s in zip(other.weights, saved):  # another load of the same file sees none of it
        np.testing.assert_array_equal(_as_numpy(v), s)
    for v, s in zip(Backbone.from_preset(tmp_path / "p").weights, saved):
        np.testing.assert_array_equal(_as_numpy(v), s)


def test_a_tampered_weights_file_is_neither_parsed_nor_mapped(tmp_path, monkeypatch):
    """The weights are hashed in the background; not a byte of them is used before the hash matched."""
    make("gpt2", vocabulary_size=20_000).save_to_preset(tmp_path / "p")
    path = tmp_path / "p" / preset_lib.WEIGHTS_FILE
    assert path.stat().st_size > 1 << 20  # large enough to be hashed in the background
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    used = []
    h5_file, verification_map = weights.h5py.File, preset_lib.Verification.map
    monkeypatch.setattr(weights.h5py, "File", lambda *a, **k: used.append("parsed") or h5_file(*a, **k))
    monkeypatch.setattr(preset_lib.Verification, "map", lambda *a: used.append("mapped") or verification_map(*a))
    with pytest.raises(IntegrityError, match="'model.weights.h5': sha256 does not match"):
        Backbone.from_preset(tmp_path / "p")
    assert used == []


def _rewrite_compressed(preset_dir):
    """Store every other dataset of the preset's weights chunked and compressed, and reseal the manifest."""
    path = preset_dir / preset_lib.WEIGHTS_FILE
    rewritten = path.with_suffix(".new")
    with h5py.File(path, "r") as source, h5py.File(rewritten, "w") as target:
        names = []
        source.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for i, name in enumerate(sorted(names)):
            dataset = source[name]
            options = dict(chunks=True, compression="gzip") if i % 2 == 0 and dataset.ndim else {}
            copy = target.create_dataset(name, data=dataset[()], **options)
            copy.attrs.update(dataset.attrs)
    os.replace(rewritten, path)
    preset_lib.write_json(preset_dir / preset_lib.MANIFEST_FILE, preset_lib.build_manifest(preset_dir))
    return sorted(names)


def test_datasets_not_stored_plainly_are_read(tmp_path):
    original = make("gpt2")
    original.save_to_preset(tmp_path / "p")
    names = _rewrite_compressed(tmp_path / "p")
    with h5py.File(tmp_path / "p" / preset_lib.WEIGHTS_FILE, "r") as f:
        offsets = [weights._offset_in_file(f[name]) for name in names]
    assert offsets[0] is None and offsets[1] is not None  # some read, some mapped
    loaded = Backbone.from_preset(tmp_path / "p")
    for a, b in zip(original.weights, loaded.weights):
        np.testing.assert_array_equal(_as_numpy(b), _as_numpy(a))


def test_misaligned_or_foreign_byte_order_values_are_read(tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as f:  # h5py lays the values out one after another
        f.create_dataset("bytes", data=np.arange(3, dtype="u1"))
        f.create_dataset("misaligned", data=np.arange(6, dtype="<f4"))
        f.create_dataset("big_endian", data=np.arange(5, dtype=">f4"))
    with open(tmp_path / "w.h5", "rb") as raw, h5py.File(tmp_path / "w.h5", "r") as f:
        mapping = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_COPY)
        assert f["misaligned"].id.get_offset() % 4 and f["big_endian"].id.get_offset() is not None
        assert [weights._offset_in_file(f[n]) is None for n in ("bytes", "misaligned", "big_endian")] == [
            False,
            True,
            True,
        ]
        arrays = {name: weights._read(f[name], mapping, f[name].dtype.newbyteorder("=")) for name in f}
    mapped = np.frombuffer(mapping, np.uint8)
    assert [np.shares_memory(arrays[n], mapped) for n in ("bytes", "misaligned", "big_endian")] == [True, False, False]
    for name, n in (("bytes", 3), ("misaligned", 6), ("big_endian", 5)):
        np.testing.assert_array_equal(arrays[name], np.arange(n))
