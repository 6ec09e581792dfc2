"""Keras's own ``.weights.h5`` layout, filled by a writer that streams into it.

The layout itself, and the backbone with no values it is computed from, live
in ``presetforge.backbones.weights`` (loading reads the same layout) and are
re-exported here: ``abstract_backbone`` builds a backbone of full size whose
variables are never allocated, ``layout`` says where Keras's ``save_weights``
puts every variable (group, dataset key, group attributes and, past
``max_shard_size_gb``, the shard file and weight map of Keras's
``ShardedH5IOStore``). ``Writer`` creates that structure empty, then fills one
dataset per call, so the converted model is never held whole.
"""

import hashlib
import json
import math
import os
import sys
import tempfile
import threading
from pathlib import Path

import h5py
import numpy as np

from presetforge import preset
from presetforge.backbones.weights import Dataset, Layout, abstract_backbone, fresh_names, layout
from presetforge.converters.checkpoint import numpy_dtype
from presetforge.errors import ConversionError

__all__ = ["Dataset", "Layout", "Writer", "abstract_backbone", "fresh_names", "layout"]


_PIECE = 1 << 20  # bytes per write() call
# Raw bytes are written straight into the file only where they are the stored bytes.
_RAW_WRITES = sys.byteorder == "little" and hasattr(os, "pwrite")


def _early_allocation():
    """Dataset creation properties: storage allocated at creation, never pre-filled.

    Every dataset then has its final file offset before a byte of data is
    written, and no fill value is written only to be overwritten.
    """
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _create(path, layout, file_name, order):
    """Create one weights file of ``layout``: its groups (with attributes) in Keras's
    order, then its datasets, storage allocated, in ``order``. Returns the open file
    and ``{variable path: dataset}``.

    The same calls give the same bytes, whenever and wherever they run: the
    oldest file format (version 1 object headers, where groups hold no
    timestamps), no dataset timestamps, and no creation-order index, each
    stated here rather than left to h5py's defaults or its global config
    (``h5py.get_config().track_order``), which a user's code may change.
    """
    h5file = h5py.File(path, "w", libver="earliest", track_order=False)
    try:
        for name, group, attrs in layout.groups:
            if name == file_name:
                h5group = h5file.create_group(group, track_order=False)
                for k, v in attrs.items():
                    h5group.attrs[k] = v
        datasets = {}
        for variable_path in order:
            ds = layout.datasets[variable_path]
            if ds.file != file_name:
                continue
            dataset = h5file[ds.group].create_dataset(
                ds.key,
                shape=ds.shape,
                dtype=numpy_dtype(ds.dtype),
                dcpl=_early_allocation(),
                track_times=False,
                track_order=False,
            )
            if ds.dtype == "bfloat16":
                dataset.attrs["dtype"] = "bfloat16"
            datasets[variable_path] = dataset
    except BaseException:
        h5file.close()
        raise
    return h5file, datasets


def _regions(datasets):
    """``(offset, size, variable path)`` of every dataset's bytes in its file, by offset; None if unknown."""
    regions = []
    for key, dataset in datasets.items():
        offset, size = dataset.id.get_offset(), dataset.id.get_storage_size()
        if size:
            if offset is None:
                return None
            regions.append((offset, size, key))
    regions.sort()
    if any(a[0] + a[1] > b[0] for a, b in zip(regions, regions[1:])):
        return None
    return regions


def _final_metadata(path, layout, file_name, order):
    """Everything but the datasets' bytes of the weights file ``path`` will be, once closed.

    HDF5 writes a file's metadata (superblock, object headers, heaps) when it
    closes it, so the same file is first made without data, beside the real
    one, and closed (a sparse file, written in an instant); its regions and
    the bytes around them are what the real file will hold. Returns
    ``(regions, gaps, size)``; ``Writer`` checks the real file against them.
    """
    fd, scratch = tempfile.mkstemp(prefix=".layout-", suffix=".h5", dir=Path(path).parent)
    os.close(fd)
    try:
        h5file, datasets = _create(scratch, layout, file_name, order)
        with h5file:
            regions = _regions(datasets)
        if regions is None:
            return None
        gaps = []
        with open(scratch, "rb") as f:
            size = os.fstat(f.fileno()).st_size

            def gap(start, stop):
                if stop > start:
                    f.seek(start)
                    gaps.append((start, f.read(stop - start)))

            position = 0
            for offset, length, _ in regions:
                gap(position, offset)
                position = offset + length
            gap(position, size)  # metadata placed after the last dataset
        return regions, gaps, max(size, position)
    finally:
        os.unlink(scratch)


class _ProgressiveSha256:
    """The sha256 of a weights file, computed by a background thread while the file is written.

    Its datasets' regions and the bytes around them (``_final_metadata``) are
    known before any data is written. The thread hashes the file front to back:
    the metadata from that prediction, each dataset's bytes read back from the
    page cache as soon as ``written`` says they are all there (so no array is
    held for it). ``result`` checks, once the file is closed, that everything
    outside the datasets reads as predicted and the size is right; if anything
    differs it hashes the file again, so the digest is always the file's.
    """

    def __init__(self, path, regions, gaps, size):
        self.path = Path(path)
        self._regions = regions
        self._gaps = gaps
        self._end = size
        self._written = set()
        self._condition = threading.Condition()
        self._aborted = False
        self._digest = None
        self._error = None
        self._thread = threading.Thread(target=self._run, name="presetforge-sha256-progressive", daemon=True)
        self._thread.start()

    def written(self, key):
        with self._condition:
            self._written.add(key)
            self._condition.notify()

    def abort(self):
        with self._condition:
            self._aborted = True
            self._condition.notify()
        self._thread.join()

    def _run(self):
        try:
            digest = hashlib.sha256()
            gaps = dict(self._gaps)
            fd = os.open(self.path, os.O_RDONLY)
            try:
                position = 0
                for offset, size, key in self._regions:
                    if position in gaps:
                        digest.update(gaps[position])
                    with self._condition:
                        while key not in self._written and not self._aborted:
                            self._condition.wait()
                        if self._aborted:
                            return
                    preset.hash_range(digest, fd, offset, size)
                    position = offset + size
                if position in gaps:
                    digest.update(gaps[position])
            finally:
                os.close(fd)
            self._digest = digest.hexdigest()
        except BaseException as e:  # reported by result(), which then hashes the file whole
            self._error = e

    def result(self):
        """The file's sha256; call once the file is closed."""
        self._thread.join()
        if self._digest is not None and self._error is None and self._unchanged():
            return self._digest
        return preset.sha256_file(self.path)

    def _unchanged(self):
        """Whether the closed file reads, outside the datasets, as predicted and hashed."""
        with open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size != self._end:
                return False
            for offset, data in self._gaps:
                f.seek(offset)
                if f.read(len(data)) != data:
                    return False
        return True


class Writer:
    """Creates a layout's files, groups and (empty) datasets in a preset stage; ``write`` fills one.

    Every dataset must be written exactly once before ``close``; shapes and
    dtypes must match the layout. A bfloat16 dataset is stored as Keras stores
    it (2-byte opaque values with ``dtype="bfloat16"``), so Keras loads it as bfloat16.

    ``order``, the variable paths in the order they will be written, places the
    datasets in the file in that order, so writing them appends to the file.
    Datasets are contiguous and allocated at creation, so each one's bytes go
    straight to its place in the file with ``pwrite``, 1 MiB per call (through
    HDF5 the same writes ran 4-10x slower). In a real preset stage (one with
    ``seal``) each file's sha256 is computed while it is written (see
    ``_ProgressiveSha256``) and each file is closed and sealed as soon as its
    last dataset is written, so the manifest needs no second pass over the weights.
    """

    def __init__(self, stage, layout, order=None):
        self.layout = layout
        self._stage = stage
        self._seal = getattr(stage, "seal", None)
        self._written = set()
        self._rows = {}  # variable path -> rows written so far, for variables written in blocks
        self._h5 = {}
        self._datasets = {}
        self._fds = {}
        self._places = {}  # variable path -> byte offset in its file, where raw writes are possible
        self._hashers = {}
        order = list(layout.datasets) if order is None else list(order)
        if sorted(order) != sorted(layout.datasets):
            raise ValueError("order must list every variable of the layout exactly once")
        self._unwritten = {name: 0 for name in layout.files}  # datasets still to write, per file
        for ds in layout.datasets.values():
            self._unwritten[ds.file] += 1
        try:
            for name in layout.files:
                path = stage.file(name)
                predicted = _final_metadata(path, layout, name, order) if self._seal is not None else None
                self._h5[name], datasets = _create(path, layout, name, order)
                self._datasets.update(datasets)
                regions = _regions(datasets)
                if _RAW_WRITES and regions is not None:
                    self._fds[name] = os.open(path, os.O_WRONLY)
                    self._places.update({key: offset for offset, _, key in regions})
                if predicted is not None and regions == predicted[0]:
                    self._hashers[name] = _ProgressiveSha256(path, *predicted)
            if layout.index is not None:
                Path(stage.file(preset.SHARDED_WEIGHTS_FILE)).write_text(json.dumps(layout.index, indent=4))
        except BaseException:
            self._close_files()
            raise

    def write(self, variable_path, array, source=None, start=None):
        """Store ``array`` (exact shape and dtype, any memory order) as the variable ``variable_path``.

        With ``start``, ``array`` is the block of rows ``start:start + len(array)``
        of the variable; blocks come in order, and the variable is filled by its last.
        """
        culprit = f"tensor '{source}'" if source else "a tensor"
        ds = self.layout.datasets.get(variable_path)
        if ds is None:
            raise ConversionError(
                f"{culprit} maps to '{variable_path}', which the backbone does not have", tensor=source
            )
        if variable_path in self._written:
            raise ConversionError(f"{culprit} fills '{variable_path}', which was already filled", tensor=source)
        shape = tuple(array.shape)
        if start is None:
            fits = shape == ds.shape
        else:
            fits = len(shape) == len(ds.shape) > 0 and shape[1:] == ds.shape[1:]
            fits = fits and start == self._rows.get(variable_path, 0) and start + shape[0] <= ds.shape[0]
        if not fits or array.dtype != numpy_dtype(ds.dtype):
            rows = "" if start is None else f" (rows from {start})"
            raise ConversionError(
                f"{culprit} gives '{variable_path}' shape {shape} {array.dtype}{rows}; "
                f"the backbone needs {ds.shape} {ds.dtype}",
                tensor=source,
            )
        array = np.ascontiguousarray(array)
        place = self._places.get(variable_path)
        if place is not None:
            row_bytes = math.prod(ds.shape[1:]) * array.dtype.itemsize if ds.shape else 0
            _pwrite_all(self._fds[ds.file], array, place + (start or 0) * row_bytes)
        else:
            _write_in_pieces(self._datasets[variable_path], array, start)
        if start is not None:
            self._rows[variable_path] = start + shape[0]
            if self._rows[variable_path] < ds.shape[0]:
                return
        self._written.add(variable_path)
        hasher = self._hashers.get(ds.file)
        if hasher is not None:
            hasher.written(variable_path)
        self._unwritten[ds.file] -= 1
        if self._unwritten[ds.file] == 0:
            # The file is complete: close it and hand the stage its digest (or let it hash the file).
            self._close_file(ds.file)
            if self._seal is not None:
                hasher = self._hashers.pop(ds.file, None)
                self._seal(ds.file, digest=hasher.result if hasher is not None else None)

    def missing(self):
        """Variable paths not written (or not written whole) yet, in layout order."""
        return [path for path in self.layout.datasets if path not in self._written]

    def _close_file(self, name):
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        h5file = self._h5.pop(name, None)
        if h5file is not None:
            h5file.close()

    def _close_files(self):
        for hasher in self._hashers.values():
            hasher.abort()
        self._hashers.clear()
        for name in list(self._h5):
            self._close_file(name)

    def close(self):
        """Close the files; every variable must have been written."""
        self._close_files()
        missing = self.missing()
        if missing:
            raise ConversionError(f"Keras variable '{missing[0]}' was never filled ({len(missing)} unfilled)")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self._close_files()
            return False
        self.close()
        return False


def _pwrite_all(fd, array, offset):
    """Write a C-contiguous array's bytes at ``offset``, 1 MiB per call.

    Linux writes a file's pages far faster in 1 MiB writes than in one write of
    hundreds of MiB (measured 3-10x on ext4).
    """
    view = memoryview(array.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done : done + _PIECE], offset + done)


def _write_in_pieces(dataset, array, start=None):
    """``dataset[start:start + len(array)] = array`` (all of it without ``start``) through HDF5,
    about 1 MiB per write: the path for datasets whose bytes cannot be placed directly."""
    if start is None and (array.ndim == 0 or array.nbytes <= _PIECE or array.shape[0] <= 1):
        dataset.write_direct(array)
        return
    rows = array.shape[0]
    offset = start or 0
    step = max(1, _PIECE // max(1, array.nbytes // max(1, rows)))
    for first in range(0, rows, step):
        last = min(first + step, rows)
        dataset.write_direct(array, source_sel=np.s_[first:last], dest_sel=np.s_[offset + first : offset + last])
