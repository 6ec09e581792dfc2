"""From upstream tensors to Keras variables: the coverage-checked plan and the converted parts.

Shared by ``convert`` (which writes the parts) and the weight check (which
compares them with what a preset stores), so both apply exactly one rule per
variable and stream in the same bounded blocks.
"""

import dataclasses
import math

import numpy as np

from presetforge.converters.checkpoint import FLOAT_DTYPES, numpy_dtype
from presetforge.errors import ConversionError

BLOCK_BYTES = 1 << 20  # bytes of rows read, transformed and written (or compared) at a time


@dataclasses.dataclass(frozen=True)
class Step:
    """One upstream tensor (``name``, as stored) and the rule that turns it into variables."""

    name: str
    rule: object


def _names(names, limit=5):
    """``tensor 'a' is`` / ``tensors 'a', 'b' are``, listing at most ``limit`` names."""
    shown = ", ".join(f"'{n}'" for n in sorted(names)[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"tensor {shown} is" if len(names) == 1 else f"tensors {shown}{more} are"


def plan(converter, checkpoint, backbone, arguments):
    """The conversion steps, after proving coverage from headers alone; returns (steps, ignored names).

    ``arguments`` are the backbone's constructor arguments (they decide, say,
    the number of layers and whether an untied LM head is expected).
    """
    canonical = {}
    for name in checkpoint.tensors:
        key = converter.canonical_name(name)
        if key in canonical:
            raise ConversionError(
                f"tensors '{canonical[key]}' and '{name}' both stand for '{key}'; refusing to guess which to use",
                tensor=name,
            )
        canonical[key] = name
    expected = converter.expected_tensors(arguments)
    variables = {v.path: v for v in backbone.weights}

    ignored, steps, unknown, filled = [], [], [], {}
    for key, name in canonical.items():
        if key in expected:
            steps.append(Step(name, expected[key]))
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


def converted_parts(checkpoint, step, dtype, source, cast):
    """Yield ``(variable path, first row or None, array)``: one step's converted values, cast to ``dtype``.

    A block of rows at a time (``first row`` is then the block's offset in the
    variable; ``None`` when a variable is yielded whole). Blocks of about 1 MiB
    stay in the CPU cache from the read to their use (as a plain file copy's
    buffer does); rules that need the whole tensor (a transpose) read it whole,
    then copy it out in blocks. A tensor cut into several targets (fused q, k,
    v) is read once per target, so each target comes front to back: a weights
    file written in this order only ever grows at its end, which Linux writes
    fastest. ``source`` and ``cast`` are ``Scratch`` buffers; each array is
    valid until the next one is yielded.
    """
    info = checkpoint.tensors[step.name]
    if step.rule.rowwise(len(info.shape)) and checkpoint.can_read_rows(step.name) and info.shape[0] > 0:
        rows = info.shape[0]
        row_bytes = math.prod(info.shape[1:]) * numpy_dtype(info.dtype).itemsize
        block = max(1, BLOCK_BYTES * len(step.rule.targets) // max(1, row_bytes))
        for index, variable_path in enumerate(step.rule.targets):
            for start in range(0, rows, block):
                array = checkpoint.read_rows(step.name, start, min(start + block, rows), source)
                yield variable_path, start, cast.cast(step.rule(array)[index], dtype)
        return
    array = checkpoint.read_into(step.name, source)
    for variable_path, part in zip(step.rule.targets, step.rule(array)):
        if part.ndim < 2 or part.shape[0] == 0:
            yield variable_path, None, cast.cast(part, dtype)
            continue
        # The part is a view (a transpose, say): copied out a block of rows at a time, each
        # block reads a narrow band of the source, so both sides stay in the CPU cache.
        block = max(1, BLOCK_BYTES // max(1, math.prod(part.shape[1:]) * part.dtype.itemsize))
        for start in range(0, part.shape[0], block):
            yield variable_path, start, cast.cast(part[start : start + block], dtype)
