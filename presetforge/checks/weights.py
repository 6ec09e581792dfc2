"""Exhaustive weight verification: every stored element equals the converter's rule applied upstream.

Stage parity only sees the rows its probes touch (a 24-token probe reaches 24
of GPT-2's 1,024 position rows); this check reaches all of them. For every
Keras variable, the upstream tensor is read again, transformed by the same
rule the converter applied and cast to the preset's dtype (numpy's casts round
to nearest even), and compared bit for bit with what the preset stores. It
streams in the converter's blocks, so its memory is bounded like conversion's.
The preset's backbone arguments are compared with what the converter derives
from the upstream config too: a config edited after conversion is named here.
"""

import contextlib

import h5py
import keras
import numpy as np

from presetforge import preset
from presetforge.checks.report import WeightsResult
from presetforge.backbones import weights
from presetforge.backbones.backbone import backbone_class
from presetforge.converters import get_converter
from presetforge.converters.checkpoint import Checkpoint, Scratch, numpy_dtype
from presetforge.converters.plan import converted_parts, plan
from presetforge.errors import ConversionError, PresetError

# Constructor arguments that do not change what the model computes in inference.
_NOT_NUMERICS = ("name", "trainable", "dtype", "dropout")


def _bits(array):
    """The array's raw bits as unsigned integers of its item size, for an exact comparison."""
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))


def _first_difference(stored, expected, start):
    """``(index, stored value, expected value)`` of the first differing element, or ``None``."""
    differs = _bits(stored) != _bits(expected)
    if not differs.any():
        return None
    flat = int(np.argmax(differs.reshape(-1)))
    index = list(np.unravel_index(flat, stored.shape)) if stored.ndim else []
    if start is not None:
        index[0] += start
    return [int(i) for i in index], float(stored.reshape(-1)[flat]), float(expected.reshape(-1)[flat])


def _read_stored(dataset, start, rows, like, scratch):
    """Rows ``start:start + rows`` of a stored dataset (all of it when ``start`` is None), as ``like``'s dtype."""
    shape = tuple(dataset.shape) if start is None else (rows, *dataset.shape[1:])
    raw = scratch.view(shape, dataset.dtype)
    if raw.size:
        selection = np.s_[...] if start is None else np.s_[start : start + rows]
        dataset.read_direct(raw, source_sel=selection)
    if raw.dtype.itemsize != like.dtype.itemsize:
        raise PresetError(f"'{dataset.name}' is stored as {dataset.dtype}, not {like.dtype}")
    return raw.view(like.dtype)


def _config_mismatches(arguments, upstream_arguments):
    return [
        {"argument": key, "preset": arguments.get(key), "upstream": value}
        for key, value in upstream_arguments.items()
        if key not in _NOT_NUMERICS and arguments.get(key) != value
    ]


def check_weights(preset_dir, reference_dir):
    """Compare every weight of the preset at ``preset_dir`` with the upstream checkpoint it came from."""
    serialized = preset.read_json(preset_dir, preset.CONFIG_FILE)
    backbone_cls = backbone_class(serialized, preset_dir)
    arguments = serialized["config"]
    with Checkpoint(reference_dir) as checkpoint:
        converter = get_converter(checkpoint.config.get("model_type"))
        mismatches = _config_mismatches(arguments, converter.arguments(checkpoint.config, checkpoint.tensors))
        if mismatches:
            return WeightsResult(checked=True, passed=False, config_mismatches=mismatches)
        backbone = weights.deferred_variables(lambda: backbone_cls.from_config(arguments))
        try:
            steps, _ = plan(converter, checkpoint, backbone, arguments)
        except ConversionError as e:
            return WeightsResult(checked=True, passed=False, reason=str(e))
        return _compare(preset_dir, checkpoint, backbone, steps)


def _compare(preset_dir, checkpoint, backbone, steps):
    """Stream every step's converted values and compare them with the stored datasets."""
    variables = {v.path: v for v in backbone.weights}
    places = {path: ds.path for path, ds in weights.layout(backbone).datasets.items()}
    source, cast, stored_scratch = Scratch(), Scratch(), Scratch()
    elements = 0
    with contextlib.ExitStack() as stack:
        files = {n: stack.enter_context(h5py.File(preset_dir / n, "r")) for n in weights.weight_files(preset_dir)}
        stored = weights.stored_datasets(files)
        for step in steps:
            dtype = numpy_dtype(keras.backend.standardize_dtype(variables[step.rule.targets[0]].dtype))
            for path, start, expected in converted_parts(checkpoint, step, dtype, source, cast):
                place = places[path]
                dataset = files[stored[place]][place] if place in stored else None
                if dataset is None or tuple(dataset.shape) != tuple(variables[path].shape):
                    found = "no dataset" if dataset is None else f"shape {tuple(dataset.shape)}"
                    reason = f"the preset stores {found} for '{path}', which needs {tuple(variables[path].shape)}"
                    return WeightsResult(checked=True, passed=False, reason=reason)
                rows = None if start is None else len(expected)
                difference = _first_difference(_read_stored(dataset, start, rows, expected, stored_scratch),
                                               expected, start)
                if difference is not None:
                    index, got, want = difference
                    return WeightsResult(
                        checked=True,
                        passed=False,
                        variables=len(variables),
                        elements=elements,
                        first_mismatch={"variable": path, "index": index, "stored": got, "expected": want},
                    )
                elements += expected.size
            checkpoint.release(step.name)
    return WeightsResult(checked=True, passed=True, variables=len(variables), elements=elements)
