"""The gate: weights, every stage, logits and tokenizer of a preset against its upstream reference.

The reference is transformers in float32 with eager attention. Two probes
drive both sides: a deterministic padded batch (several lengths, right
padding) and one sequence at the model's full ``max_sequence_length`` (capped
at ``full_length_cap`` for very long contexts), so every position the model
supports shapes a compared number; only real (non-padding) positions are
compared. Language models add a logits stage through their LM head, with
top-1 agreement. The weight check (``checks.weights``) covers every element
no probe reaches.
"""

import contextlib
from pathlib import Path

import keras
import numpy as np

from presetforge import preset
from presetforge.backbones import Backbone
from presetforge.checks import tolerances
from presetforge.checks.report import ParityReport, StageResult
from presetforge.checks.tokenizer_parity import compare_tokenizers
from presetforge.checks.weights import check_weights
from presetforge.converters import get_converter

PROBE_LENGTHS = (24, 17, 9, 3)
PROBE_SEED = 0
FULL_LENGTH_CAP = 2048  # tokens of the full-length probe, at most
_BLOCK_ELEMENTS = 1 << 21  # compared at a time: float64 temporaries of 16 MiB, whatever the width


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


def _reference_model(reference_dir, language_model):
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    auto = transformers.AutoModelForCausalLM if language_model else transformers.AutoModel
    return auto.from_pretrained(reference_dir, attn_implementation="eager", dtype=torch.float32).eval()


def _run_reference(model, stages, inputs, language_model):
    """Every stage's float32 output of the reference for ``inputs``, captured by forward hooks;
    for language models also ``logits``, the model's own output: past its LM head, any final
    soft-capping (Gemma 2) is applied in the model's forward, not in a module a hook sees."""
    import torch

    captured = {}

    def hook(name):
        def record(module, args, output):
            captured[name] = (output[0] if isinstance(output, (tuple, list)) else output).detach().numpy()

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
        captured["logits"] = output.logits.numpy()
    return captured


def _inference():
    """No gradient bookkeeping while our backbone runs: on torch, calling a model outside
    ``fit``/``predict`` records the graph and keeps every activation alive for a backward pass."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _run_ours(backbone, inputs):
    """Every stage's output of our backbone for ``inputs`` (and logits for language models), as float32."""
    with _inference():
        states = backbone.hidden_states(inputs)
        if backbone.language_model:
            states["logits"] = backbone.logits(list(states.values())[-1])
        return {k: keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")) for k, v in states.items()}


def _real_positions(array, padding_mask):
    """A stage output without padding: ``[positions, features]`` (per-sequence outputs stay as they are).

    A probe without padding gives a view, not a copy (the full-length probe's logits are large)."""
    if array.ndim != 3:
        return array
    if padding_mask.all():
        return array.reshape(-1, array.shape[-1])
    return array[padding_mask.astype(bool)]


def _blocks(ours, reference):
    """Pairs of ``[rows, features]`` float64 blocks over every probe's arrays, about
    ``_BLOCK_ELEMENTS`` elements at a time (a logits row alone can hold 100k+)."""
    for a, b in zip(ours, reference, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"shape {a.shape} differs from the reference's {b.shape}")
        rows = max(1, _BLOCK_ELEMENTS // max(1, a.shape[-1]))
        for start in range(0, len(a), rows):
            yield np.asarray(a[start : start + rows], "float64"), np.asarray(b[start : start + rows], "float64")


def compare(name, ours, reference, tolerance, top1=False):
    """Error statistics of one stage over every probe: lists of ``[positions, features]`` arrays.

    Computed in float64, a block of rows at a time, so no probe's output is
    copied whole. With ``top1`` (logits), the arg-max must agree at every
    position where the reference's margin between its two best logits exceeds
    twice the stage's limit; closer calls are counted as ambiguous, not compared.
    """
    scale = max((max(float(b.max()), -float(b.min())) for b in reference if b.size), default=0.0)  # no |b| copy
    floor = max(1e-2 * scale, 1e-12)
    limit = tolerance.limit(scale)
    max_abs = max_rel = sum_abs = 0.0
    min_cosine = 1.0
    elements = positions = agree = decisive = 0
    try:
        for a, b in _blocks(ours, reference):
            diff = np.abs(a - b)
            max_abs, sum_abs = max(max_abs, float(diff.max())), sum_abs + float(diff.sum())
            max_rel = max(max_rel, float((diff / np.maximum(np.abs(b), floor)).max()))
            norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
            min_cosine = min(min_cosine, float((np.sum(a * b, axis=-1) / np.maximum(norms, 1e-30)).min()))
            elements, positions = elements + diff.size, positions + len(diff)
            if top1:
                best_two = np.partition(b, -2, axis=-1)[:, -2:]
                clear = best_two[:, 1] - best_two[:, 0] > 2 * limit
                decisive += int(clear.sum())
                agree += int((a.argmax(-1) == b.argmax(-1))[clear].sum())
    except ValueError as e:
        raise ValueError(f"stage '{name}': {e}") from None
    passed = max_abs <= limit and min_cosine >= tolerance.min_cosine and agree == decisive
    return StageResult(
        name=name,
        max_abs=max_abs,
        mean_abs=sum_abs / max(1, elements),
        max_rel=max_rel,
        min_cosine=min_cosine,
        limit=limit,
        passed=bool(passed),
        top1_agree=agree if top1 else None,
        top1_positions=decisive if top1 else None,
        top1_ambiguous=positions - decisive if top1 else None,
    )


def _upstream_name(preset_dir):
    """``repo@revision`` the preset records as its upstream, or ``None``: never a local path,
    which would make the report differ with the directory it was checked from."""
    source = preset.read_json(preset_dir, preset.METADATA_FILE).get("source") or {}
    if not source.get("repo_id"):
        return None
    return source["repo_id"] + (f"@{source['revision']}" if source.get("revision") else "")


def check(preset_dir, reference_dir, full_length_cap=FULL_LENGTH_CAP):
    """The full parity report of the preset at ``preset_dir`` against ``reference_dir``.

    ``reference_dir`` is the upstream HF checkpoint directory the preset came from.
    """
    import transformers

    preset_dir, reference_dir = Path(preset_dir), Path(reference_dir)
    preset.verify(preset_dir)
    model_type = preset.read_json(reference_dir, "config.json").get("model_type")
    converter = get_converter(model_type)  # an unknown model_type fails here, before any model is built
    weights = check_weights(preset_dir, reference_dir)
    backbone = Backbone.from_preset(preset_dir)
    dtype = backbone.dtype_policy.variable_dtype
    tolerance = tolerances.for_dtype(dtype)
    probes = {"padded batch": probe_inputs(backbone), "full length": full_length_inputs(backbone, full_length_cap)}
    model = _reference_model(reference_dir, backbone.language_model)
    reference_stages = converter.reference_stages(model.base_model)
    ours, theirs = {}, {}
    for inputs in probes.values():
        mask = inputs["padding_mask"]
        reference = _run_reference(model, reference_stages, inputs, backbone.language_model)
        for side, outputs in ((ours, _run_ours(backbone, inputs)), (theirs, reference)):
            for name, array in outputs.items():
                side.setdefault(name, []).append(_real_positions(array, mask))
    stages = [compare(name, ours.pop(name), theirs.pop(name), tolerance, top1=name == "logits") for name in list(ours)]
    return ParityReport(
        dtype=dtype,
        behaviour_sha256=preset.behaviour_digest(preset_dir),
        tolerance={"atol": tolerance.atol, "rtol": tolerance.rtol, "min_cosine": tolerance.min_cosine},
        reference={
            "implementation": f"transformers.{type(model).__name__}",
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
        stages=stages,
        weights=weights,
        tokenizer=compare_tokenizers(preset_dir, reference_dir),
        created=preset.build_date(),
    )
