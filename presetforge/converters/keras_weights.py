"""Keras's own ``.weights.h5`` layout, computed without a variable's value, and a writer that streams into it.

``abstract_backbone`` builds a backbone of full size whose variables are never
allocated (Keras defers a variable's initializer inside a ``StatelessScope``),
so every variable path, shape and dtype comes from Keras itself at no memory
cost. ``layout`` runs Keras's own saving traversal (``saving_lib._save_state``,
the code behind ``save_weights``) over it with a store that records, instead of
writing, where each variable would go: the exact group, dataset key, group
attributes and, past ``max_shard_size_gb``, the shard file and weight map of
Keras's ``ShardedH5IOStore``. ``Writer`` creates that structure empty, then
fills one dataset per call, so the converted model is never held whole.
"""

import collections
import contextlib
import dataclasses
import json
import math
from pathlib import Path

import h5py
import keras
import numpy as np
from keras.src.backend.common import global_state
from keras.src.saving import saving_lib

from presetforge import preset
from presetforge.converters.checkpoint import numpy_dtype
from presetforge.errors import ConversionError


@contextlib.contextmanager
def fresh_names():
    """Build layers with the automatic names a fresh process gives (``dropout``, ``dropout_1`` …).

    Keras writes layer names into the weights file, so this makes a conversion's
    bytes independent of what the process built before; the counters are restored after.
    """
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def abstract_backbone(backbone_cls, **kwargs):
    """A ``backbone_cls(**kwargs)`` whose variables have paths, shapes and dtypes but no values.

    Use it for structure only (``weights``, ``count_params``, ``get_config``,
    ``layout``): reading a variable's value fails. Layers get fresh-process names.
    """
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with fresh_names(), keras.StatelessScope(initialize_variables=False):
            backbone = backbone_cls(**kwargs)
    finally:
        # Forget the deferred variables, or the next StatelessScope to close
        # (Keras opens them internally) would allocate the whole model.
        global_state.set_global_attribute("uninitialized_variables", pending)
    return backbone


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Where one variable lives in the weights files."""

    file: str
    group: str
    key: str
    shape: tuple
    dtype: str

    @property
    def path(self):
        return f"{self.group}/{self.key}"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The weights files of a backbone: ``groups`` (file, group path, attributes)
    in Keras's creation order, ``datasets`` keyed by variable path, and ``index``,
    the content of ``model.weights.json`` when sharded (else ``None``)."""

    files: tuple
    groups: tuple
    datasets: dict
    index: dict | None


class _Recorder(saving_lib.H5IOStore):
    """A write-mode store for ``_save_state`` that records each call instead of touching a file."""

    def __init__(self):  # no file: nothing here calls the parent's I/O
        self.mode = "w"
        self.events = []
        self._group = None

    def __bool__(self):
        return True

    def make(self, path, metadata=None):
        self._group = f"{path}/vars" if path else "vars"
        self.events.append(("make", self._group, dict(metadata or {})))
        return self

    def __setitem__(self, key, variable):
        self.events.append(("set", self._group, key, variable))

    def close(self):
        pass


def _value_size(shape, dtype):
    """Bytes Keras's sharded store counts for a variable (same arithmetic, same float)."""
    from keras.src.utils import dtype_utils

    return math.prod(shape) * dtype_utils.dtype_size(dtype) / 8


def layout(backbone, max_shard_size_gb=None):
    """Where Keras's ``save_weights`` puts every variable of ``backbone``.

    Without ``max_shard_size_gb``: one ``model.weights.h5``. With it: Keras's
    sharded layout (``model.weights.json`` + ``model_NNNNN.weights.h5``), shard
    boundaries and weight map included, exactly as ``ShardedH5IOStore`` writes them.
    """
    recorder = _Recorder()
    saving_lib._save_state(backbone, weights_store=recorder, assets_store=None, inner_path="", visited_saveables=set())

    sharded = max_shard_size_gb is not None
    max_size = float(max_shard_size_gb) * 1024**3 if sharded else math.inf
    shard_names = []

    def new_file():
        name = f"model_{len(shard_names):05}.weights.h5" if sharded else preset.WEIGHTS_FILE
        shard_names.append(name)
        return name

    current = new_file()
    current_size = 0
    total_size = 0
    groups, created, datasets, weight_map = [], set(), {}, {}
    entry, entry_in = None, None  # the entry group of the last make(), and the file it exists in
    for event in recorder.events:
        if event[0] == "make":
            _, entry, metadata = event
            entry_in = None
            if metadata:
                groups.append((current, entry, metadata))
                created.add((current, entry))
                entry_in = current
            continue
        _, group, key, variable = event
        dtype = keras.backend.standardize_dtype(variable.dtype)
        shape = tuple(variable.shape)
        if sharded:
            size = _value_size(shape, dtype)
            total_size += size
            if size > max_size:
                raise ConversionError(
                    f"variable '{variable.path}' takes {size:.0f} bytes, more than the shard size "
                    f"{max_size:.0f}; raise max_shard_size_gb",
                    tensor=variable.path,
                )
            current_size += size
            if current_size > max_size:
                current = new_file()
                current_size = size
        if entry_in != current:
            if (current, group) not in created:
                groups.append((current, group, {}))
                created.add((current, group))
            entry_in = current
        if variable.path in datasets:
            raise ConversionError(f"variable '{variable.path}' is saved twice by Keras", tensor=variable.path)
        datasets[variable.path] = Dataset(current, group, key, shape, dtype)
        location = f"/{group}"  # Keras's quirk kept: a group's second variable turns its entry into a list
        if location not in weight_map:
            weight_map[location] = current
        else:
            if not isinstance(weight_map[location], list):
                weight_map[location] = [weight_map[location]]
            if current not in weight_map[location]:
                weight_map[location].append(current)
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map} if sharded else None
    return Layout(tuple(shard_names), tuple(groups), datasets, index)


class Writer:
    """Creates a layout's files, groups and (empty) datasets in a preset stage; ``write`` fills one.

    Every dataset must be written exactly once before ``close``; shapes and
    dtypes must match the layout. A bfloat16 dataset is stored as Keras stores
    it (2-byte opaque values with ``dtype="bfloat16"``), so Keras loads it as bfloat16.
    """

    def __init__(self, stage, layout):
        self.layout = layout
        self._written = set()
        self._h5 = {}
        try:
            for name in layout.files:
                self._h5[name] = h5py.File(stage.file(name), "w")
            for name, group, attrs in layout.groups:
                h5group = self._h5[name].create_group(group)
                for k, v in attrs.items():
                    h5group.attrs[k] = v
            for ds in layout.datasets.values():
                created = self._h5[ds.file][ds.group].create_dataset(
                    ds.key, shape=ds.shape, dtype=numpy_dtype(ds.dtype)
                )
                if ds.dtype == "bfloat16":
                    created.attrs["dtype"] = "bfloat16"
            if layout.index is not None:
                Path(stage.file(preset.SHARDED_WEIGHTS_FILE)).write_text(json.dumps(layout.index, indent=4))
        except BaseException:
            self._close_files()
            raise

    def write(self, variable_path, array, source=None):
        """Store ``array`` (exact shape and dtype, any memory order) as the variable ``variable_path``."""
        culprit = f"tensor '{source}'" if source else "a tensor"
        ds = self.layout.datasets.get(variable_path)
        if ds is None:
            raise ConversionError(
                f"{culprit} maps to '{variable_path}', which the backbone does not have", tensor=source
            )
        if variable_path in self._written:
            raise ConversionError(f"{culprit} fills '{variable_path}', which was already filled", tensor=source)
        if tuple(array.shape) != ds.shape or array.dtype != numpy_dtype(ds.dtype):
            raise ConversionError(
                f"{culprit} gives '{variable_path}' shape {tuple(array.shape)} {array.dtype}; "
                f"the backbone needs {ds.shape} {ds.dtype}",
                tensor=source,
            )
        self._h5[ds.file][ds.path].write_direct(np.ascontiguousarray(array))
        self._written.add(variable_path)

    def missing(self):
        """Variable paths not written yet, in layout order."""
        return [path for path in self.layout.datasets if path not in self._written]

    def _close_files(self):
        for f in self._h5.values():
            f.close()
        self._h5.clear()

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
