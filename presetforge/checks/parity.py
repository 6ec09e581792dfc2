"""The gate: weights, every stage, logits and tokenizer of a preset against its upstream reference.

The reference is transformers in float32 with eager attention. Two probes
drive both sides: a deterministic padded batch (several lengths, right
padding) and one sequence at the model's full ``max_sequence_length`` (capped
at ``full_length_cap`` for very long contexts), so every position the model
supports shapes a compared number; only real (non-padding) positions are
compared. Language models add a logits stage through their LM head, with
top-1 agreement. The weight check (``checks.weights``) covers every element
no probe reaches.

Both models run a stage at a time (``checks.reference`` for transformers'
side): the reference first, its stage outputs going to disk, then each of our
stages on the reference's output of the stage before, so a stage's error is
its own, never inherited: that is the gate. Our model also runs alone, end to
end, and those accumulated errors are reported beside each stage's. Memory stays
bounded by a block of each side, the largest tensor and the activations.
"""

import contextlib
import ctypes
import tempfile
from pathlib import Path

import keras
import numpy as np

from presetforge import preset
from presetforge.backbones import Backbone, weights
from presetforge.backbones.backbone import backbone_class
from presetforge.checks import tolerances
from presetforge.checks.compare import compare, real_positions
from presetforge.checks.reference import opened as opened_reference
from presetforge.checks.report import ParityReport
from presetforge.checks.tokenizer_parity import compare_tokenizers
from presetforge.checks.weights import check_weights
from presetforge.converters import get_converter

PROBE_LENGTHS = (24, 17, 9, 3)
PROBE_SEED = 0
FULL_LENGTH_CAP = 2048  # tokens of the full-length probe, at most
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _inputs(backbone, lengths, seq, rng):
    padding_mask = (np.arange(seq)[None, :] < np.asarray(lengths)[:, None]).astype("int32")
    token_ids = rng.integers(0, backbone.vocabulary_size, size=padding_mask.shape).astype("int32") * padding_mask
    inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
    if "segment_ids" in backbone.input:
        segments = (np.arange(seq)[None, :] >= np.asarray(lengths)[:, None] // 2) * padding_mask
        inputs["segment_ids"] = segments.astype("int32")
    return inputs


def probe_inputs(backbone, lengths=PROBE_LENGTHS, seed=PROBE_SEED):
    """A deterministic padded batch in the backbone's own input names."""
    lengths = [min(length, backbone.max_sequence_length) for length in lengths]
    return _inputs(backbone, lengths, max(lengths), np.random.default_rng(seed))


def full_length_inputs(backbone, cap=FULL_LENGTH_CAP, seed=PROBE_SEED + 1):
    """One sequence of ``min(max_sequence_length, cap)`` random tokens: every position row in play."""
    length = min(backbone.max_sequence_length, cap)
    return _inputs(backbone, [length], length, np.random.default_rng(seed))


class _ReferenceOutputs:
    """The reference's stage outputs of every probe, kept on disk (a model's worth of stages
    would not fit the memory bound); each is read back when its stage is compared."""

    def __init__(self, directory):
        self._directory = Path(directory)
        self._files = {}

    def write(self, stage, probe, array):
        path = self._directory / f"{len(self._files)}.npy"
        np.save(path, array, allow_pickle=False)
        self._files[stage, probe] = path

    def read(self, stage, probe):
        return np.load(self._files[stage, probe], allow_pickle=False)

    def __len__(self):
        return len(self._files)


def _run_reference(model, stages, inputs, language_model, write):
    """Run the reference on ``inputs``, handing every stage's float32 output to ``write(stage, array)``
    as the forward pass produces it; for language models also ``logits``, the model's own output
    (past its LM head, any final soft-capping is applied in the model's forward, which no hook sees)."""
    import torch

    def hook(name):
        def record(module, args, output):
            write(name, (output[0] if isinstance(output, (tuple, list)) else output).detach().numpy())

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in stages.items()]
    kwargs = {
        "input_ids": torch.from_numpy(inputs["token_ids"].astype("int64")),
        "attention_mask": torch.from_numpy(inputs["padding_mask"].astype("int64")),
    }
    if "segment_ids" in inputs:
        kwargs["token_type_ids"] = torch.from_numpy(inputs["segment_ids"].astype("int64"))
    try:
        with torch.no_grad():
            output = model(**kwargs)
    finally:
        for h in handles:
            h.remove()
    if language_model:
        write("logits", output.logits.numpy())


def _unmapped_large_blocks():
    """Have glibc serve every block of 1 MiB or more by its own mapping, returned to the system on
    free. By default glibc raises that threshold as blocks are freed, up to 32 MiB, then serves them
    from its heap, which a block-by-block run of a model fragments: freed blocks accumulate instead
    of going back (measured: +1.5 GiB over 80 blocks of 25 MB; with this, none)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def _inference():
    """No gradient bookkeeping while our backbone runs: on torch, calling a model outside
    ``fit``/``predict`` records the graph and keeps every activation alive for a backward pass."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _our_backbone(preset_dir, streamed):
    """Our backbone and ``materialised(variables)``, a context in which those variables hold their
    stored values. Whole: ``from_preset``, everything loaded up front. Streamed: every variable
    deferred (no memory) until its stage runs, read from the verified weight files, dropped after."""
    if not streamed:
        yield Backbone.from_preset(preset_dir), lambda variables: contextlib.nullcontext()
        return
    with preset.Verification(preset_dir) as verification:
        serialized = verification.read_json(preset.CONFIG_FILE)
        backbone_cls = backbone_class(serialized, preset_dir)
        backbone = weights.deferred_variables(lambda: backbone_cls.from_config(serialized["config"]))
        with weights.opened(backbone, preset_dir, verification, mapped=False) as fill:

            @contextlib.contextmanager
            def materialised(variables):
                fill(variables)
                try:
                    yield
                finally:
                    weights.release(variables)

            yield backbone, materialised


def _float32(tensor):
    return keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32"))


def _compare_ours(backbone, probes, reference, materialised, tolerance, progress):
    """Run our backbone a stage at a time and compare each stage with the reference's.

    Each stage runs twice: on the reference's output of the stage before (its
    own error) and on ours (our model alone, end to end); the first stage has
    no stage before, so its two results are one. Each reference output is read
    from disk once. Returns the two lists of ``StageResult``.
    """
    names = list(backbone.input)
    arguments = {p: [keras.ops.convert_to_tensor(inputs[n]) for n in names] for p, inputs in probes.items()}
    masks = {p: inputs["padding_mask"] for p, inputs in probes.items()}
    dtype = backbone.dtype_policy.compute_dtype
    alone, previous, per_stage, end_to_end = {}, None, [], []

    def compared(name, outputs, theirs, top1=False):
        ours = [real_positions(_float32(outputs[p]), masks[p]) for p in probes]
        return compare(name, ours, [real_positions(theirs[p], masks[p]) for p in probes], tolerance, top1=top1)

    def fed(p):  # the reference's output of the stage before, as our stage's input
        return keras.ops.cast(previous[p], dtype)

    stage_models = backbone.stage_models()
    total = len(stage_models) + backbone.language_model
    for done, (name, model) in enumerate(stage_models.items(), 1):
        theirs = {p: reference.read(name, p) for p in probes}
        with materialised(model.weights), _inference():
            if previous is not None:
                per_stage.append(compared(name, {p: model([fed(p), *arguments[p]]) for p in probes}, theirs))
            alone = {p: model(arguments[p] if previous is None else [alone[p], *arguments[p]]) for p in probes}
        end_to_end.append(compared(name, alone, theirs))
        if previous is None:
            per_stage.append(end_to_end[-1])
        previous = theirs
        progress("ours", done, total)
    if backbone.language_model:
        theirs = {p: reference.read("logits", p) for p in probes}
        with materialised(backbone.token_embedding.head_weights), _inference():
            per_stage.append(compared("logits", {p: backbone.logits(fed(p)) for p in probes}, theirs, top1=True))
            end_to_end.append(
                compared("logits", {p: backbone.logits(alone.pop(p)) for p in list(alone)}, theirs, top1=True)
            )
        progress("ours", total, total)
    return per_stage, end_to_end


def _upstream_name(preset_dir):
    """``repo@revision`` the preset records as its upstream, or ``None``: never a local path,
    which would make the report differ with the directory it was checked from."""
    source = preset.read_json(preset_dir, preset.METADATA_FILE).get("source") or {}
    if not source.get("repo_id"):
        return None
    return source["repo_id"] + (f"@{source['revision']}" if source.get("revision") else "")


def _no_progress(phase, done, total):
    pass


def check(preset_dir, reference_dir, full_length_cap=FULL_LENGTH_CAP, probe_lengths=PROBE_LENGTHS, streamed=True,
          progress=_no_progress):
    """The full parity report of the preset at ``preset_dir`` against ``reference_dir``.

    ``reference_dir`` is the upstream HF checkpoint directory the preset came from.
    ``streamed`` (the default) runs both models a block at a time, so memory is
    bounded by a block, not the model; ``streamed=False`` loads both whole
    (transformers' own ``from_pretrained``): the same numbers, for a cross-check.
    ``progress(phase, done, total)`` hears of each step: ``weights`` (once, when
    the weight check is done), then each stage of ``reference`` and of ``ours``.
    """
    import transformers

    preset_dir, reference_dir = Path(preset_dir), Path(reference_dir)
    preset.verify(preset_dir)
    model_type = preset.read_json(reference_dir, "config.json").get("model_type")
    converter = get_converter(model_type)  # an unknown model_type fails here, before any model is built
    if streamed:
        _unmapped_large_blocks()
    progress("weights", 0, 1)
    weights_result = check_weights(preset_dir, reference_dir)
    progress("weights", 1, 1)
    with _our_backbone(preset_dir, streamed) as (backbone, materialised), tempfile.TemporaryDirectory(
        prefix="presetforge-parity-"
    ) as scratch:
        dtype = backbone.dtype_policy.variable_dtype
        tolerance = tolerances.for_dtype(dtype)
        probes = {
            "padded batch": probe_inputs(backbone, probe_lengths),
            "full length": full_length_inputs(backbone, full_length_cap),
        }
        reference = _ReferenceOutputs(scratch)
        with opened_reference(reference_dir, backbone.language_model, streamed) as (model, stream):
            stages = converter.reference_stages(model.base_model)
            stream(stages.values())
            implementation = f"transformers.{type(model).__name__}"
            outputs = len(probes) * (len(stages) + backbone.language_model)

            def write(stage, probe, array):
                reference.write(stage, probe, array)
                progress("reference", len(reference), outputs)

            for probe, inputs in probes.items():
                _run_reference(model, stages, inputs, backbone.language_model,
                               lambda stage, array, probe=probe: write(stage, probe, array))
            del model
        per_stage, end_to_end = _compare_ours(backbone, probes, reference, materialised, tolerance, progress)
    return ParityReport(
        dtype=dtype,
        behaviour_sha256=preset.behaviour_digest(preset_dir),
        tolerance={"atol": tolerance.atol, "rtol": tolerance.rtol, "min_cosine": tolerance.min_cosine},
        reference={
            "implementation": implementation,
            "transformers_version": transformers.__version__,
            "source": _upstream_name(preset_dir),
            "model_type": model_type,
        },
        inputs={
            "probes": {
                name: {"lengths": inputs["padding_mask"].sum(axis=1).tolist(), "seed": seed}
                for (name, inputs), seed in zip(probes.items(), (PROBE_SEED, PROBE_SEED + 1))
            },
            "full_length_cap": full_length_cap,
        },
        stages=per_stage,
        end_to_end=end_to_end,
        weights=weights_result,
        tokenizer=compare_tokenizers(preset_dir, reference_dir),
        created=preset.build_date(),
    )
