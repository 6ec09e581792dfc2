"""The streaming machinery: reused read buffers, weights hashed while written, sharded output."""

import json

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from presetforge import preset
from presetforge.converters import convert, keras_weights
from presetforge.converters.checkpoint import Checkpoint, Scratch
from presetforge.errors import ConversionError
from tests.checkpoints import make_gpt2
from tests.converters.helpers import assert_parity


@pytest.fixture
def no_fallback(monkeypatch):
    """Records whether each weights file's progressive digest held up once the file was closed."""
    outcomes = []
    original = keras_weights._ProgressiveSha256._unchanged

    def spy(self):
        outcomes.append((self.path.name, self._error, original(self)))
        return outcomes[-1][2]

    monkeypatch.setattr(keras_weights._ProgressiveSha256, "_unchanged", spy)
    return outcomes


@pytest.mark.parametrize("shard_bytes", [None, 40_000])
def test_manifest_digests_come_from_hashing_while_writing(tmp_path, no_fallback, shard_bytes):
    source = make_gpt2(tmp_path / "hf")
    kwargs = {} if shard_bytes is None else {"max_shard_size_gb": shard_bytes / 1024**3}
    convert(source, tmp_path / "preset", **kwargs)
    names = [n for n in preset.weights_files(tmp_path / "preset") if n.endswith(".h5")]
    assert len(names) == (1 if shard_bytes is None else len(names)) and (shard_bytes is None or len(names) > 3)
    assert sorted(name for name, _, _ in no_fallback) == sorted(names)
    assert all(error is None and unchanged for _, error, unchanged in no_fallback), no_fallback
    files = preset.read_json(tmp_path / "preset", preset.MANIFEST_FILE)["files"]
    for name in names:
        assert files[name]["sha256"] == preset.sha256_file(tmp_path / "preset" / name)
    assert_parity(tmp_path / "preset", source)


def test_a_digest_that_does_not_hold_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_weights._ProgressiveSha256, "_unchanged", lambda self: False)
    convert(make_gpt2(tmp_path / "hf"), tmp_path / "preset")
    preset.verify(tmp_path / "preset")


def test_streamed_bytes_do_not_depend_on_the_process(tmp_path):
    """Same checkpoint, same preset weights, byte for byte (datasets placed as written)."""
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "a")
    convert(source, tmp_path / "b")
    assert preset.weights_digest(tmp_path / "a") == preset.weights_digest(tmp_path / "b")


def test_read_into_reuses_one_buffer_and_reads_what_read_reads(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    with Checkpoint(source) as checkpoint:
        largest = max(np.prod(info.shape) * 4 for info in checkpoint.tensors.values())
        scratch = Scratch(int(largest))
        arrays = {}
        for name in checkpoint.tensors:
            array = checkpoint.read_into(name, scratch)
            np.testing.assert_array_equal(array, checkpoint.read(name))
            arrays[name] = array
        start = scratch._buffer.__array_interface__["data"][0]
    assert {a.__array_interface__["data"][0] for a in arrays.values()} == {start}  # all in one buffer


def test_read_into_handles_bfloat16_without_a_copy_through_torch(tmp_path):
    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    values = torch.randn(5, 3).to(torch.bfloat16)
    save_file({"x": values}, directory / "model.safetensors")
    with Checkpoint(directory) as checkpoint:
        array = checkpoint.read_into("x", Scratch())
    assert array.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(array.astype(np.float32), values.float().numpy())


def test_a_truncated_safetensors_file_is_refused(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    path = source / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(ConversionError, match="lies outside the file|cannot read"):
        Checkpoint(source)


def test_scratch_cast_copies_only_when_needed():
    scratch = Scratch(64)
    contiguous = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert scratch.cast(contiguous, np.float32) is contiguous
    transposed = scratch.cast(contiguous.T, np.float32)
    assert transposed.flags.c_contiguous
    np.testing.assert_array_equal(transposed, contiguous.T)
    halved = scratch.cast(contiguous, ml_dtypes.bfloat16)
    np.testing.assert_array_equal(halved, contiguous.astype(ml_dtypes.bfloat16))
    bigger = scratch.view((100,), np.float32)  # grows past its size
    assert bigger.shape == (100,)


def test_upstream_values_survive_streaming_exactly(tmp_path):
    source = make_gpt2(tmp_path / "hf")
    convert(source, tmp_path / "preset")
    from presetforge import Backbone

    upstream = load_file(source / "model.safetensors")
    backbone = Backbone.from_preset(tmp_path / "preset")
    query = backbone.get_layer("transformer_layer_1").self_attention.query.kernel
    width = upstream["h.1.attn.c_attn.weight"].shape[1] // 3
    np.testing.assert_array_equal(np.asarray(query.numpy()), upstream["h.1.attn.c_attn.weight"][:, :width].numpy())
