"""``convert``: an HF checkpoint directory in, a preset out, with coverage enforced and memory bounded.

The whole conversion is planned from headers before a byte of weight is read:
every upstream tensor must be one the converter uses or deliberately ignores,
every Keras variable must be filled exactly once, shapes must match. Then the
tensors stream one at a time (read, transform, cast, write into Keras's own
H5 layout) inside ``preset.writing``, so a failure leaves nothing behind.
"""

import concurrent.futures
import contextlib
import dataclasses
import math
import threading
from pathlib import Path

import numpy as np

from presetforge import preset
from presetforge.backbones import weights as backbone_weights
from presetforge.converters import keras_weights
from presetforge.converters.base import get_converter
from presetforge.converters.checkpoint import FLOAT_DTYPES, Checkpoint, Scratch, numpy_dtype
from presetforge.errors import ConversionError, PresetError
from presetforge.tokenizers import HF_TOKENIZER_FILES, Tokenizer, hf_dir_has_tokenizer

DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """What ``convert`` wrote: the preset directory (``output``) and a summary of its backbone."""

    output: Path
    backbone_class: str
    parameter_count: int
    tensor_count: int
    dtype: str


@dataclasses.dataclass(frozen=True)
class _Step:
    name: str  # as stored upstream
    rule: object


def _names(names, limit=5):
    """``tensor 'a' is`` / ``tensors 'a', 'b' are``, listing at most ``limit`` names."""
    shown = ", ".join(f"'{n}'" for n in sorted(names)[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"tensor {shown} is" if len(names) == 1 else f"tensors {shown}{more} are"


_BLOCK = 1 << 20  # bytes of rows read, transformed and written at a time


def _stream(checkpoint, step, writer, dtype, source, cast):
    """Convert one upstream tensor: a block of rows at a time where its rule allows, else whole.

    Blocks of about 1 MiB stay in the CPU cache from the read to the write (as a
    plain file copy's buffer does); only rules that need the whole tensor
    (a transpose) read it whole. A tensor cut into several targets (fused q, k,
    v) is read once per target, so each target is written front to back: the
    weights file then only ever grows at its end, which Linux writes fastest.
    """
    info = checkpoint.tensors[step.name]
    if step.rule.rowwise(len(info.shape)) and checkpoint.can_read_rows(step.name) and info.shape[0] > 0:
        rows = info.shape[0]
        row_bytes = math.prod(info.shape[1:]) * numpy_dtype(info.dtype).itemsize
        block = max(1, _BLOCK * len(step.rule.targets) // max(1, row_bytes))
        for index, variable_path in enumerate(step.rule.targets):
            for start in range(0, rows, block):
                array = checkpoint.read_rows(step.name, start, min(start + block, rows), source)
                part = step.rule(array)[index]
                writer.write(variable_path, cast.cast(part, dtype), source=step.name, start=start)
        return
    array = checkpoint.read_into(step.name, source)
    for variable_path, part in zip(step.rule.targets, step.rule(array)):
        writer.write(variable_path, cast.cast(part, dtype), source=step.name)


@contextlib.contextmanager
def _in_background(fn, *args):
    """``fn(*args, cancelled=event)`` running in a thread; yields its future, cancels it on error."""
    cancelled = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="presetforge-provenance") as pool:
        future = pool.submit(fn, *args, cancelled=cancelled)
        try:
            yield future
        except BaseException:
            cancelled.set()
            raise


def _plan(converter, checkpoint, backbone, num_layers):
    """The conversion steps, after proving coverage from headers alone; returns (steps, ignored names)."""
    canonical = {}
    for name in checkpoint.tensors:
        key = converter.canonical_name(name)
        if key in canonical:
            raise ConversionError(
                f"tensors '{canonical[key]}' and '{name}' both stand for '{key}'; refusing to guess which to use",
                tensor=name,
            )
        canonical[key] = name
    expected = converter.expected_tensors(num_layers)
    variables = {v.path: v for v in backbone.weights}

    ignored, steps, unknown, filled = [], [], [], {}
    for key, name in canonical.items():
        if key in expected:
            steps.append(_Step(name, expected[key]))
        elif converter.is_ignored(key):
            ignored.append(name)
        else:
            unknown.append(name)
    if unknown:
        raise ConversionError(
            f"upstream {_names(unknown)} neither converted nor deliberately ignored by the "
            f"{converter.name} converter; refusing to drop weights silently",
            tensor=unknown[0],
        )
    missing = [key for key in expected if key not in canonical]
    if missing:
        targets = ", ".join(t for key in missing[:3] for t in expected[key].targets)
        raise ConversionError(
            f"upstream {_names(missing)} missing from the checkpoint (needed for {targets})", tensor=missing[0]
        )

    for step in steps:
        info = checkpoint.tensors[step.name]
        if info.dtype not in FLOAT_DTYPES:
            raise ConversionError(
                f"tensor '{step.name}' is {info.dtype}; only float checkpoints can be converted", tensor=step.name
            )
        # The transform on a zero-strided stand-in gives the output shapes without memory.
        stand_in = np.broadcast_to(np.zeros((), np.float32), info.shape)
        try:
            parts = step.rule(stand_in)
        except ValueError as e:
            raise ConversionError(
                f"tensor '{step.name}' of shape {info.shape} cannot be converted: {e}", tensor=step.name
            ) from None
        for target, part in zip(step.rule.targets, parts, strict=True):
            variable = variables.get(target)
            if variable is None:
                raise ConversionError(
                    f"tensor '{step.name}' maps to '{target}', which the backbone does not have", tensor=step.name
                )
            if target in filled:
                raise ConversionError(
                    f"'{target}' would be filled by both '{filled[target]}' and '{step.name}'", tensor=step.name
                )
            filled[target] = step.name
            if tuple(part.shape) != tuple(variable.shape):
                raise ConversionError(
                    f"tensor '{step.name}' {info.shape} gives '{target}' shape {tuple(part.shape)}; "
                    f"the backbone needs {tuple(variable.shape)}",
                    tensor=step.name,
                )
    for path in variables:
        if path not in filled:
            raise ConversionError(f"no upstream tensor fills Keras variable '{path}'", tensor=path)
    # Write in the backbone's variable order, whatever the checkpoint's storage order,
    # so the same weights always give the same bytes (HDF5 allocates on first write).
    position = {path: i for i, path in enumerate(variables)}
    return sorted(steps, key=lambda s: min(position[t] for t in s.rule.targets)), sorted(ignored)


def convert(
    source_dir,
    output_dir,
    dtype="float32",
    progress=None,
    source_repo=None,
    revision=None,
    max_shard_size_gb=backbone_weights.DEFAULT_MAX_SHARD_SIZE_GB,
):
    """Convert the HF checkpoint in ``source_dir`` into a preset at ``output_dir``.

    Args:
        source_dir: a local HF model directory (``config.json`` and weights).
        output_dir: the preset directory to write; an existing preset there is
            replaced whole (no stale report or tokenizer survives).
        dtype: the variables' dtype: ``float32``, ``bfloat16`` or ``float16``.
        progress: optional ``callable(done, total, tensor_name)``, called after each tensor.
        source_repo, revision: the upstream repo id and revision, recorded in the provenance.
        max_shard_size_gb: past this size the weights are sharded, as ``save_to_preset`` does.

    The checkpoint's tokenizer, when it ships one, is converted into the same preset.
    Raises ``ConversionError`` for anything the converter cannot carry over faithfully;
    nothing is written then.
    """
    if dtype not in DTYPES:
        raise ConversionError(f"dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    target = numpy_dtype(dtype)
    source_dir = Path(source_dir)
    with Checkpoint(source_dir) as checkpoint:
        converter = get_converter(checkpoint.config.get("model_type"))
        converter.check_config(checkpoint.config)
        has_tokenizer = hf_dir_has_tokenizer(source_dir)
        source_files = list(checkpoint.files)
        if has_tokenizer:
            source_files += [n for n in HF_TOKENIZER_FILES if (source_dir / n).is_file()]
        # The provenance hashes of the upstream files are computed in a background
        # thread (hashlib releases the GIL) while the model is planned and the tensors stream.
        with _in_background(preset.sha256_files, source_dir, source_files) as source_hashes:
            kwargs = converter.backbone_config(checkpoint.config)
            backbone = keras_weights.abstract_backbone(converter.backbone_cls, **kwargs, dtype=dtype)
            steps, ignored = _plan(converter, checkpoint, backbone, kwargs[converter.num_layers_arg])
            total_bytes = sum(int(np.prod(v.shape)) * target.itemsize for v in backbone.weights)
            shard = max_shard_size_gb if total_bytes > max_shard_size_gb * 1024**3 else None
            try:
                layout = keras_weights.layout(backbone, shard)
            except PresetError as e:  # a variable larger than the shard size
                raise ConversionError(str(e)) from None

            metadata = {
                "source": {
                    "repo_id": source_repo,
                    "revision": revision,
                    "model_type": converter.model_type,
                    "architectures": checkpoint.config.get("architectures"),
                    "format": checkpoint.format,
                    "transformers_version": checkpoint.config.get("transformers_version"),
                    "files": None,  # filled below, once hashed
                    "ignored_tensors": ignored,
                },
                # Nothing about this machine (paths, clock, installed transformers, which
                # conversion never uses): the same inputs give the same preset anywhere.
                "converter": {"name": converter.name, "version": converter.version},
                "tensor_count": len(steps),
            }
            tokenizer = Tokenizer.from_hf_dir(source_dir) if has_tokenizer else None
            with preset.writing(output_dir, carry_over=False) as stage:
                order = [path for step in steps for path in step.rule.targets]  # datasets placed as written
                with keras_weights.Writer(stage, layout, order) as writer:
                    # Two reused buffers (what was read; a part cast or made contiguous): memory
                    # stays under twice the largest tensor, and is touched once, not per tensor.
                    source, cast = Scratch(), Scratch()
                    for done, step in enumerate(steps, 1):
                        _stream(checkpoint, step, writer, target, source, cast)
                        checkpoint.release(step.name)
                        if progress is not None:
                            progress(done, len(steps), step.name)
                metadata["source"]["files"] = source_hashes.result()
                backbone._stage_config_and_metadata(stage, metadata)
                if tokenizer is not None:
                    tokenizer.write_to(stage)
    return ConversionResult(
        output=Path(output_dir).absolute(),
        backbone_class=type(backbone).__name__,
        parameter_count=backbone.count_params(),
        tensor_count=len(steps),
        dtype=dtype,
    )
