"""A backbone's weights in Keras's own (optionally sharded) ``.weights.h5`` layout.

Three things live here, all shared by ``Backbone`` and the converters:

- ``abstract_backbone`` / ``deferred_variables``: build a backbone of full size
  whose variables have paths, shapes and dtypes but no values (Keras defers a
  variable's initializer inside a ``StatelessScope``), so nothing is allocated
  and no random initial value is ever computed.
- ``layout``: where Keras's ``save_weights`` puts every variable (file, group,
  dataset key, group attributes, shard boundaries and weight map), found by
  running Keras's own saving traversal with a store that records instead of writing.
- ``save`` / ``load``: a preset's weights out and in. ``load`` gives each
  variable its dataset, one at a time: a deferred variable is created from it
  (no random init), a live one is assigned to. Datasets stored plainly, as
  Keras writes them, are not even read: the value is a copy-on-write map of the
  verified file, paged in when used (on torch; JAX copies it into its own buffer).
"""

import collections
import contextlib
import dataclasses
import functools
import math
from pathlib import Path

import h5py
import keras
import ml_dtypes
import numpy as np
from keras.src.backend.common import global_state
from keras.src.saving import saving_lib

from presetforge import preset
from presetforge.errors import PresetError

DEFAULT_MAX_SHARD_SIZE_GB = 5.0


# -- building without values ---------------------------------------------------


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


def deferred_variables(build):
    """``build()`` with every variable it creates left uninitialized (no value, no allocation).

    Layers get fresh-process names. The variables stay out of Keras's list of
    pending ones, so nothing initializes them behind our back; ``load`` (or
    ``initialize_remaining``) gives them values.
    """
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with fresh_names(), keras.StatelessScope(initialize_variables=False):
            return build()
    finally:
        # Forget the deferred variables, or the next StatelessScope to close
        # (Keras opens them internally) would allocate the whole model.
        global_state.set_global_attribute("uninitialized_variables", pending)


def abstract_backbone(backbone_cls, **kwargs):
    """A ``backbone_cls(**kwargs)`` whose variables have paths, shapes and dtypes but no values.

    Use it for structure only (``weights``, ``count_params``, ``get_config``,
    ``layout``): reading a variable's value fails. Layers get fresh-process names.
    """
    return deferred_variables(lambda: backbone_cls(**kwargs))


def is_deferred(variable):
    return getattr(variable, "_value", None) is None and getattr(variable, "_initializer", None) is not None


def initialize_remaining(model):
    """Give every still-deferred variable of ``model`` its initializer's value (seed states, say)."""
    for variable in model.variables:
        if is_deferred(variable):
            variable._deferred_initialize()


# -- where Keras puts each variable ----------------------------------------------


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


@contextlib.contextmanager
def _memoized_skipsets():
    """Compute each of Keras's attribute skip sets once during a traversal.

    ``saving_lib.get_attr_skipset`` means to cache them, but stores under another
    key than it reads (Keras 3.15), so it builds a reference ``Layer()`` for every
    layer visited: a third of the traversal's time. The sets do not change.
    """
    original = saving_lib.get_attr_skipset
    cache = {}

    def cached(obj_type):
        if obj_type not in cache:
            cache[obj_type] = original(obj_type)
        return cache[obj_type]

    saving_lib.get_attr_skipset = cached
    try:
        yield
    finally:
        saving_lib.get_attr_skipset = original


def layout(backbone, max_shard_size_gb=None):
    """Where Keras's ``save_weights`` puts every variable of ``backbone``.

    Without ``max_shard_size_gb``: one ``model.weights.h5``. With it: Keras's
    sharded layout (``model.weights.json`` + ``model_NNNNN.weights.h5``), shard
    boundaries and weight map included, exactly as ``ShardedH5IOStore`` writes them.
    Needs the variables' shapes and dtypes only, never their values.
    """
    recorder = _Recorder()
    with _memoized_skipsets():
        saving_lib._save_state(
            backbone, weights_store=recorder, assets_store=None, inner_path="", visited_saveables=set()
        )

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
                raise PresetError(
                    f"variable '{variable.path}' takes {size:.0f} bytes, more than the shard size "
                    f"{max_size:.0f}; raise max_shard_size_gb"
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
            raise PresetError(f"variable '{variable.path}' is saved twice by Keras")
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


# -- saving and loading ---------------------------------------------------------


def weights_size(backbone):
    """Bytes the backbone's variables take at their stored dtype."""
    return sum(int(np.prod(v.shape)) * np.dtype(_numpy_dtype(v.dtype)).itemsize for v in backbone.weights)


@contextlib.contextmanager
def _untracked_creation_order():
    """h5py's default, no creation-order index, whatever ``h5py.get_config().track_order``
    a user's code set: Keras's H5 store leaves it to that global, which changes the bytes."""
    config = h5py.get_config()
    saved = config.track_order
    config.track_order = False
    try:
        yield
    finally:
        config.track_order = saved


def save(backbone, stage, max_shard_size_gb=DEFAULT_MAX_SHARD_SIZE_GB):
    """Write the weights into a preset stage: one file, or shards past ``max_shard_size_gb``.

    The same weights give the same bytes at any time: Keras's store writes the
    oldest HDF5 format through h5py's defaults, which keep no timestamps; the one
    default a process can change globally is pinned here.
    """
    stage.remove("model*.weights.*")
    with _untracked_creation_order():
        if weights_size(backbone) > max_shard_size_gb * 1024**3:
            backbone.save_weights(stage.file(preset.SHARDED_WEIGHTS_FILE), max_shard_size=max_shard_size_gb)
        else:
            backbone.save_weights(stage.file(preset.WEIGHTS_FILE))


def _numpy_dtype(name):
    name = keras.backend.standardize_dtype(name)
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def weight_files(root, verification=None):
    """The H5 files holding a preset's weights: ``model.weights.h5``, or the shards its index names.

    Read through ``verification`` (a ``preset.Verification``) when given, as ``load`` does, else from ``root``.
    """
    root = Path(root)
    if verification is not None:
        files = set(verification.files)
        read_json = verification.read_json
    else:
        files = {p.name for p in root.iterdir() if p.is_file()}
        read_json = functools.partial(preset.read_json, root)
    if preset.SHARDED_WEIGHTS_FILE in files:
        index = read_json(preset.SHARDED_WEIGHTS_FILE)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise PresetError(f"{root / preset.SHARDED_WEIGHTS_FILE} has no weight_map")
        names = set()
        for value in weight_map.values():
            names.update(value if isinstance(value, list) else [value])
        for name in sorted(names):
            if not isinstance(name, str) or "/" in name or name not in files:
                raise PresetError(f"{preset.SHARDED_WEIGHTS_FILE} names shard {name!r}, which is not a file in {root}")
        return sorted(names)
    if preset.WEIGHTS_FILE not in files:
        raise PresetError(f"{root} holds no weights ({preset.WEIGHTS_FILE} or {preset.SHARDED_WEIGHTS_FILE})")
    return [preset.WEIGHTS_FILE]


def stored_datasets(h5files):
    """Every dataset in the weight files: its path → the file holding it.

    Listed from each object's header info (``h5o.visit``, what ``visititems``
    runs), without opening every group and dataset as an h5py object: 0.013 s
    against 0.13 s for the 654 datasets of GPT-2 XL's larger shard.
    """
    found = {}
    for name, f in h5files.items():

        def visit(path, info, name=name):
            if info.type == h5py.h5o.TYPE_DATASET:
                path = path.decode()
                if path in found:
                    raise PresetError(f"weights '{path}' are stored twice ({found[path]}, {name})")
                found[path] = name

        h5py.h5o.visit(f.id, visit, info=True)
    return found


def _offset_in_file(dataset):
    """Where ``dataset``'s values lie in its file as one run of native-order numbers, else ``None``.

    Keras writes every dataset so. HDF5 gives an offset only for contiguous
    storage in the file itself (not chunked, compressed, compact, external or
    unallocated); the values must also be plain numbers in this machine's byte
    order, aligned for their size. Anything else is left to h5py to read.
    """
    offset = dataset.id.get_offset()
    dtype = dataset.dtype
    if offset is None or dtype.kind not in "biufV" or dtype.fields is not None or dtype.subdtype is not None:
        return None
    if not dtype.isnative or offset % dtype.itemsize:
        return None
    return offset


def _stored_array(dataset, mapping):
    """``dataset``'s values as stored: a view of ``mapping`` (its file, mapped, if given) where they lie
    plainly, else read."""
    offset = None if mapping is None else _offset_in_file(dataset)
    if offset is not None and offset + dataset.nbytes <= len(mapping):
        return np.frombuffer(mapping, dataset.dtype, dataset.size, offset).reshape(dataset.shape)
    array = np.empty(dataset.shape, dtype=dataset.dtype)
    if array.size:
        dataset.read_direct(array)
    return array


def _read(dataset, mapping, dtype):
    """One dataset as a numpy array of ``dtype`` (Keras's bfloat16 convention understood).

    The array is a view of ``mapping``, a copy-on-write map of the verified file
    (``preset.Verification.map``), where the dataset lies plainly in it and is
    stored as ``dtype``: no byte is read until used, and writes stay private.
    Otherwise it is fresh memory (read, or cast).
    """
    stored = dataset.attrs.get("dtype")
    if isinstance(stored, bytes):
        stored = stored.decode()
    array = _stored_array(dataset, mapping)
    if stored == "bfloat16":
        array = array.view(ml_dtypes.bfloat16)
    if array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _backend_tensor(array):
    """``array`` as a tensor of the Keras backend, sharing its memory where the backend can."""
    if keras.backend.backend() == "torch":
        import torch

        if array.dtype == ml_dtypes.bfloat16:
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(array)
    return array


def _fill(variable, array):
    if is_deferred(variable):
        # The variable gets the array read as its first value: no initializer runs.
        value = variable._convert_to_tensor(_backend_tensor(array), dtype=variable.dtype)
        variable._initialize(value)
        variable._initializer = None
    else:
        variable.assign(_backend_tensor(array))


def load(backbone, root, verification=None):
    """Fill the backbone's variables from a preset directory's weights, one dataset at a time.

    Variables left deferred by ``deferred_variables`` are created straight from
    their datasets, as copy-on-write maps of the file where they are stored at
    the variable's dtype (``_read``); live ones are assigned to. Each array is
    cast to its variable's dtype, so a float32 preset loads as bfloat16 and
    back. The file must hold exactly the backbone's variables, with their
    shapes. The files are read and mapped through ``verification`` (a
    ``preset.Verification`` of ``root``, made here if not given): only bytes
    that matched the manifest are loaded, whatever happens to the paths meanwhile
    (``preset.Verification.map`` says what a write in place would do).
    """
    root = Path(root)
    if verification is None:
        with preset.Verification(root) as verification:
            return load(backbone, root, verification)
    with opened(backbone, root, verification) as fill:
        fill(backbone.weights)
    initialize_remaining(backbone)


@contextlib.contextmanager
def opened(backbone, root, verification, mapped=True):
    """The preset's weight files opened for ``backbone``: yields ``fill(variables)``, which gives
    those variables (any subset, any order) their stored values.

    The files must hold exactly the backbone's variables; that is checked once,
    on entry. ``mapped``: values are copy-on-write maps of the files where they
    can be (see ``load``); else read into fresh memory, as layer-streamed parity
    wants, which fills one block at a time and ``release``s it (a mapped block's
    pages would stay resident while the map lives).
    """
    plan = layout(backbone).datasets
    names = weight_files(root, verification)
    with contextlib.ExitStack() as stack:
        h5files, mappings = {}, {}
        for name in names:
            verified = stack.enter_context(verification.open(name))
            h5files[name] = stack.enter_context(h5py.File(verified, "r"))
            if mapped:
                mappings[name] = verification.map(name)
        stored = stored_datasets(h5files)
        wanted = {ds.path: variable_path for variable_path, ds in plan.items()}
        missing = [p for p in wanted if p not in stored]
        if missing:
            raise PresetError(
                f"{root} has no weights for '{wanted[missing[0]]}' ({len(missing)} variables missing); "
                f"was it saved from another architecture or configuration?"
            )
        extra = sorted(set(stored) - set(wanted))
        if extra:
            raise PresetError(
                f"{root} holds weights '{extra[0]}' ({len(extra)} in all) that this "
                f"{type(backbone).__name__} has no variable for"
            )

        def fill(variables):
            for variable in variables:
                ds = plan[variable.path]
                dataset = h5files[stored[ds.path]][ds.path]
                if tuple(dataset.shape) != tuple(variable.shape):
                    raise PresetError(
                        f"weights '{ds.path}' have shape {tuple(dataset.shape)}; "
                        f"'{variable.path}' needs {tuple(variable.shape)}"
                    )
                _fill(variable, _read(dataset, mappings.get(stored[ds.path]), _numpy_dtype(variable.dtype)))

        yield fill


class _Released:
    """The initializer a released variable is left with: reading it is a bug, so it says so."""

    def __call__(self, shape, dtype=None):
        raise RuntimeError("this variable's weights were released; fill it again before use")


def release(variables):
    """Drop the values of ``variables`` (filled by ``opened``), leaving them deferred again:
    their memory goes back as soon as nothing else holds it."""
    for variable in variables:
        variable._value = None
        variable._initializer = _Released()
