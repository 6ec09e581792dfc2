"""Reading a local Hugging Face checkpoint directory, one tensor at a time.

Weights come from ``model.safetensors``, a sharded ``model.safetensors.index.json``
or, for older checkpoints, ``pytorch_model.bin`` (or its sharded index), which is
only ever opened with ``torch.load(..., weights_only=True, mmap=True)``: nothing
in a checkpoint is unpickled otherwise.

Memory stays bounded by the largest tensor: names, shapes and dtypes come from
headers, and ``read`` returns one tensor's array. Safetensors are read with
``pread`` where the library offers it, so the file is never mapped whole; the
pages of a memory-mapped ``.bin`` are handed back to the kernel after each
tensor (``release``), so they do not pile up in the resident set either.
"""

import ctypes
import dataclasses
import json
import math
import mmap
import os
import pickle
import re
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

from presetforge.errors import ConversionError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
BIN_FILE = "pytorch_model.bin"
BIN_INDEX_FILE = "pytorch_model.bin.index.json"

# safetensors header dtypes and torch dtypes, as numpy-style names.
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
_PREADV = hasattr(os, "preadv") and sys.byteorder == "little"
# Tensors read as raw bytes: safetensors stores little-endian values.
_RAW_DTYPES = {
    "float64": np.dtype("<f8"),
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """What a checkpoint says about one tensor, read from headers only."""

    name: str
    shape: tuple
    dtype: str
    file: str


def numpy_dtype(name):
    """The numpy dtype for ``float32``, ``float16``, ``bfloat16`` … (``bfloat16`` via ml_dtypes, as Keras does)."""
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _torch_to_numpy(tensor):
    """A CPU torch tensor as a numpy array, without a copy when it is contiguous."""
    import torch

    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def _read_json_object(path):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConversionError(f"{path} does not hold a JSON object")
    return value


def _torch_dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


class Checkpoint:
    """A local HF checkpoint directory opened for streaming.

    ``config`` is the parsed ``config.json``; ``tensors`` maps every stored
    tensor name to its ``TensorInfo``; ``read(name)`` returns its array in the
    stored dtype; ``files`` lists every file the conversion reads (for their
    sha256 in the provenance).
    """

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConversionError(f"{self.root} is not a directory holding a Hugging Face checkpoint")
        config_path = self.root / CONFIG_FILE
        if not config_path.is_file():
            raise ConversionError(f"{self.root} has no {CONFIG_FILE}; is it a Hugging Face checkpoint directory?")
        self.config = _read_json_object(config_path)
        self.files = [CONFIG_FILE]
        self._handles = {}
        self._state_dicts = {}
        self._offsets = {}  # safetensors: tensor name -> (file, byte offset, byte size)
        self._fds = {}
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self):
        if (self.root / SAFETENSORS_FILE).is_file():
            self.format = "safetensors"
            self._open_safetensors([SAFETENSORS_FILE])
        elif (self.root / SAFETENSORS_INDEX_FILE).is_file():
            self.format = "safetensors"
            self._open_safetensors(self._shards(SAFETENSORS_INDEX_FILE))
        elif (self.root / BIN_FILE).is_file():
            self.format = "pytorch"
            self._open_bins([BIN_FILE])
        elif (self.root / BIN_INDEX_FILE).is_file():
            self.format = "pytorch"
            self._open_bins(self._shards(BIN_INDEX_FILE))
        else:
            raise ConversionError(
                f"{self.root} holds no weights presetforge can read; expected one of "
                f"{SAFETENSORS_FILE}, {SAFETENSORS_INDEX_FILE}, {BIN_FILE}, {BIN_INDEX_FILE}"
            )

    # -- opening -------------------------------------------------------------

    def _shards(self, index_name):
        """The shard files of a sharded checkpoint, checked against its index."""
        weight_map = _read_json_object(self.root / index_name).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ConversionError(f"{self.root / index_name} has no weight_map")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if Path(shard).name != shard or not (self.root / shard).is_file():
                raise ConversionError(f"{index_name} names shard {shard!r}, which is not a file in {self.root}")
        self.files.append(index_name)
        self._index = (index_name, weight_map)
        return shards

    def _check_index(self):
        index = getattr(self, "_index", None)
        if index is None:
            return
        index_name, weight_map = index
        for name, info in self.tensors.items():
            if weight_map.get(name) != info.file:
                raise ConversionError(
                    f"tensor '{name}' is stored in {info.file} but {index_name} says {weight_map.get(name)!r}",
                    tensor=name,
                )
        for name in sorted(set(weight_map) - set(self.tensors)):
            raise ConversionError(f"{index_name} lists tensor '{name}', which no shard holds", tensor=name)

    def _add(self, info):
        if info.name in self.tensors:
            raise ConversionError(
                f"tensor '{info.name}' is stored twice ({self.tensors[info.name].file}, {info.file})", tensor=info.name
            )
        self.tensors[info.name] = info

    def _open_safetensors(self, names):
        from safetensors import safe_open

        try:
            import torch  # noqa: F401  (bfloat16 needs the torch framework)

            framework = "pt"
        except ImportError:
            framework = "numpy"
        self._framework = framework
        self.tensors = {}
        for name in names:
            path = self.root / name
            try:
                handle = safe_open(path, framework=framework, backend="pread")
            except TypeError:  # safetensors before 0.8 has no pread backend: memory-mapped reads
                handle = safe_open(path, framework=framework)
            except Exception as e:
                raise ConversionError(f"cannot read {path}: {e}") from None
            self._handles[name] = handle
            self._offsets.update({key: (name, *where) for key, where in _safetensors_offsets(path).items()})
            for key in handle.keys():
                sl = handle.get_slice(key)
                dtype = _SAFETENSORS_DTYPES.get(sl.get_dtype(), sl.get_dtype().lower())
                self._add(TensorInfo(key, tuple(sl.get_shape()), dtype, name))
            self.files.append(name)
        self._check_index()

    def _open_bins(self, names):
        try:
            import torch
        except ImportError:
            raise ConversionError(f"reading {names[0]} needs torch; install presetforge[torch]") from None
        self.tensors = {}
        for name in names:
            path = self.root / name
            try:
                state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except pickle.UnpicklingError as e:  # weights_only refused an object that is not a tensor
                wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
                raise ConversionError(
                    f"refusing to unpickle {path}: it asks for "
                    f"{wanted[1] if wanted else 'objects other than tensors'}, which could run code; "
                    "only plain tensors are loaded from .bin files (use safetensors)"
                ) from None
            except Exception as e:  # legacy (non-zip) files cannot be mapped
                reason = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                raise ConversionError(
                    f"cannot load {path} with torch.load(weights_only=True, mmap=True): {reason}; "
                    "re-save the checkpoint with a recent torch or as safetensors"
                ) from None
            if not isinstance(state_dict, dict):
                raise ConversionError(f"{path} does not hold a state dict")
            for key, value in state_dict.items():
                if not isinstance(value, torch.Tensor):
                    raise ConversionError(
                        f"entry '{key}' of {path} is a {type(value).__name__}, not a tensor", tensor=key
                    )
                self._add(TensorInfo(key, tuple(value.shape), _torch_dtype_name(value.dtype), name))
            self._state_dicts[name] = state_dict
            self.files.append(name)
        self._check_index()

    # -- reading -------------------------------------------------------------

    def read(self, name):
        """The array of one tensor, in its stored dtype."""
        info = self.tensors[name]
        if self.format == "safetensors":
            if self._framework == "numpy" and info.dtype == "bfloat16":
                raise ConversionError(f"tensor '{name}' is bfloat16, which needs torch to read", tensor=name)
            value = self._handles[info.file].get_tensor(name)
            return _torch_to_numpy(value) if self._framework == "pt" else value
        return _torch_to_numpy(self._state_dicts[info.file][name])

    def can_read_rows(self, name):
        """Whether ``read_rows`` can read this tensor a block of rows at a time (raw safetensors)."""
        info = self.tensors[name]
        return _PREADV and name in self._offsets and info.dtype in _RAW_DTYPES and len(info.shape) > 0

    def read_into(self, name, scratch):
        """Like ``read``, but into ``scratch`` (a ``Scratch``): the array is valid until scratch is reused.

        Safetensors are read with ``pread`` straight into the reused buffer, so
        streaming a model touches memory for its largest tensor only, not for
        every tensor afresh. Memory-mapped ``.bin`` tensors are returned as ``read`` does.
        """
        info = self.tensors[name]
        if not self.can_read_rows(name):
            return self.read(name)
        return self.read_rows(name, 0, info.shape[0], scratch)

    def read_rows(self, name, start, stop, scratch):
        """Rows ``start:stop`` (along the first axis) of a safetensors tensor, read into ``scratch``.

        Streaming a large tensor a block of rows at a time keeps the data in the
        CPU cache between reading and writing it, and memory at one block.
        """
        info = self.tensors[name]
        file, offset, size = self._offsets[name]
        rows = info.shape[0]
        itemsize = _RAW_DTYPES[info.dtype].itemsize
        if math.prod(info.shape) * itemsize != size:
            raise ConversionError(
                f"tensor '{name}' takes {size} bytes in {file}, "
                f"but {info.dtype}{list(info.shape)} needs {math.prod(info.shape) * itemsize}",
                tensor=name,
            )
        if not 0 <= start <= stop <= rows:
            raise ValueError(f"rows {start}:{stop} of a tensor with {rows}")
        row_bytes = size // rows if rows else 0
        array = scratch.view((stop - start, *info.shape[1:]), _RAW_DTYPES[info.dtype])
        fd = self._fds.get(file)
        if fd is None:
            fd = self._fds[file] = os.open(self.root / file, os.O_RDONLY)
        view, done, offset = memoryview(array.reshape(-1).view(np.uint8)), 0, offset + start * row_bytes
        while done < array.nbytes:
            n = os.preadv(fd, [view[done:]], offset + done)
            if n <= 0:
                raise ConversionError(f"{file} ends inside tensor '{name}'", tensor=name)
            done += n
        return array

    def release(self, name):
        """Hand the pages a memory-mapped tensor occupied back to the kernel (a no-op for pread)."""
        if self.format != "pytorch":
            return
        storage = self._state_dicts[self.tensors[name].file][name].untyped_storage()
        _dontneed(storage.data_ptr(), storage.nbytes())


    def close(self):
        for handle in self._handles.values():
            close = getattr(handle, "__exit__", None)
            if close is not None:
                close(None, None, None)
        self._handles.clear()
        self._state_dicts.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_TILE_COLUMNS = 128  # measured: 64-256 copy a transposed float32 matrix about 3x faster than no tiling


class Scratch:
    """One reusable buffer handed out as arrays of any shape and dtype, each valid until the next.

    Streaming a model through it touches memory for the largest tensor once,
    instead of allocating (and faulting in) fresh memory for every tensor.
    """

    def __init__(self, nbytes=0):
        self._buffer = np.empty(nbytes, np.uint8)

    def view(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > self._buffer.nbytes:
            self._buffer = None  # let the old one go before the new one is allocated
            self._buffer = np.empty(nbytes, np.uint8)
        return self._buffer[:nbytes].view(dtype).reshape(shape)

    def cast(self, array, dtype):
        """``array`` as a C-contiguous array of ``dtype``: itself if it already is, else a copy in here."""
        dtype = np.dtype(dtype)
        if array.dtype == dtype and array.flags.c_contiguous:
            return array
        out = self.view(array.shape, dtype)
        if array.ndim == 2 and not array.flags.c_contiguous:
            # A transposed view: copied in column tiles, so the source rows each tile reads stay cached
            # (numpy walks a transposed view with a stride as long as a source row: 2-3x slower).
            for start in range(0, array.shape[1], _TILE_COLUMNS):
                stop = start + _TILE_COLUMNS
                np.copyto(out[:, start:stop], array[:, start:stop], casting="unsafe")
            return out
        np.copyto(out, array, casting="unsafe")
        return out


def _safetensors_offsets(path):
    """Where each tensor's bytes are in a safetensors file: name -> (offset, size), from its header."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 0 < length <= min(size - 8, 100 << 20):
            raise ConversionError(f"{path} has a malformed safetensors header")
        try:
            header = json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConversionError(f"{path} has a malformed safetensors header") from None
    start, offsets = 8 + length, {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ConversionError(f"{path}: tensor '{key}' has no valid data_offsets", tensor=key) from None
        if not 0 <= begin <= end or start + end > size:
            raise ConversionError(f"{path}: tensor '{key}' lies outside the file", tensor=key)
        offsets[key] = (start + begin, end - begin)
    return offsets


_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
try:
    _libc = ctypes.CDLL(None, use_errno=True) if _MADV_DONTNEED is not None else None
    _madvise = _libc.madvise if _libc is not None else None
    if _madvise is not None:
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError):
    _madvise = None


def _dontneed(address, size):
    """``madvise(MADV_DONTNEED)`` on the pages spanning ``[address, address + size)``.

    Only used on torch's private, read-only file mapping of a ``.bin``: dropped
    pages are simply read from the file again if anything touches them.
    """
    if _madvise is None or size <= 0:
        return
    page = mmap.PAGESIZE
    start = address - address % page
    end = -(-(address + size) // page) * page
    _madvise(start, end - start, _MADV_DONTNEED)
