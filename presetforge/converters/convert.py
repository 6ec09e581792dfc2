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
import threading
from pathlib import Path

import numpy as np

from presetforge import preset
from presetforge.backbones import weights as backbone_weights
from presetforge.converters import keras_weights
from presetforge.converters.base import get_converter
from presetforge.converters.checkpoint import Checkpoint, Scratch, numpy_dtype
from presetforge.converters.plan import converted_parts, plan
from presetforge.errors import ConversionError, PresetError, hdf5_errors
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
        has_tokenizer = hf_dir_has_tokenizer(source_dir)
        source_files = list(checkpoint.files)
        if has_tokenizer:
            source_files += [n for n in HF_TOKENIZER_FILES if (source_dir / n).is_file()]
        # The provenance hashes of the upstream files are computed in a background
        # thread (hashlib releases the GIL) while the model is planned and the tensors stream.
        with _in_background(preset.sha256_files, source_dir, source_files) as source_hashes:
            kwargs = converter.arguments(checkpoint.config, checkpoint.tensors)
            backbone = keras_weights.abstract_backbone(converter.backbone_cls, **kwargs, dtype=dtype)
            steps, ignored = plan(converter, checkpoint, backbone, kwargs)
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
            with preset.writing(output_dir, carry_over=False) as stage, hdf5_errors(output_dir):
                order = [path for step in steps for path in step.rule.targets]  # datasets placed as written
                with keras_weights.Writer(stage, layout, order) as writer:
                    # Two reused buffers (what was read; a part cast or made contiguous): memory
                    # stays under twice the largest tensor, and is touched once, not per tensor.
                    source, cast = Scratch(), Scratch()
                    for done, step in enumerate(steps, 1):
                        for variable_path, start, part in converted_parts(checkpoint, step, target, source, cast):
                            writer.write(variable_path, part, source=step.name, start=start)
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
