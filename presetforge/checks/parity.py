"""Run a preset and its upstream reference on the same inputs and compare every stage.

The reference is transformers in float32 with eager attention. Both sides see
the same deterministic batch (several lengths, right padding); only real
(non-padding) positions are compared.
"""

from pathlib import Path

import keras
import numpy as np

from presetforge import preset
from presetforge.backbones import Backbone
from presetforge.checks import tolerances
from presetforge.checks.report import ParityReport, StageResult, TokenizerResult
from presetforge.checks.tokenizer_parity import compare_tokenizers
from presetforge.converters import get_converter

PROBE_LENGTHS = (24, 17, 9, 3)
PROBE_SEED = 0


def probe_inputs(backbone, lengths=PROBE_LENGTHS, seed=PROBE_SEED):
    """A deterministic padded batch in the backbone's own input names."""
    rng = np.random.default_rng(seed)
    lengths = [min(length, backbone.max_sequence_length) for length in lengths]
    seq = max(lengths)
    padding_mask = (np.arange(seq)[None, :] < np.asarray(lengths)[:, None]).astype("int32")
    token_ids = rng.integers(0, backbone.vocabulary_size, size=padding_mask.shape).astype("int32") * padding_mask
    inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
    if "segment_ids" in backbone.input:
        inputs["segment_ids"] = ((np.arange(seq)[None, :] >= np.asarray(lengths)[:, None] // 2) * padding_mask)
        inputs["segment_ids"] = inputs["segment_ids"].astype("int32")
    return inputs


def reference_outputs(reference_dir, model_type, inputs):
    """Every stage's float32 output from the transformers reference, captured by forward hooks,
    and the reference's class name."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(
        reference_dir, attn_implementation="eager", dtype=torch.float32
    ).eval()
    captured = {}

    def hook(name):
        def record(module, args, output):
            captured[name] = (output[0] if isinstance(output, (tuple, list)) else output).detach().numpy()

        return record

    stages = get_converter(model_type).reference_stages(model)
    handles = [m.register_forward_hook(hook(n)) for n, m in stages.items()]
    kwargs = {
        "input_ids": torch.from_numpy(inputs["token_ids"].astype("int64")),
        "attention_mask": torch.from_numpy(inputs["padding_mask"].astype("int64")),
    }
    if "segment_ids" in inputs:
        kwargs["token_type_ids"] = torch.from_numpy(inputs["segment_ids"].astype("int64"))
    try:
        with torch.no_grad():
            model(**kwargs)
    finally:
        for h in handles:
            h.remove()
    return captured, type(model).__name__


def compare(name, ours, reference, padding_mask, tolerance):
    """Error statistics of one stage over real positions (float64 arithmetic)."""
    ours, reference = np.asarray(ours, "float64"), np.asarray(reference, "float64")
    if ours.shape != reference.shape:
        raise ValueError(f"stage '{name}': shape {ours.shape} differs from the reference's {reference.shape}")
    if ours.ndim == 3:
        valid = padding_mask.astype(bool)
        ours, reference = ours[valid], reference[valid]
    diff = np.abs(ours - reference)
    scale = float(np.abs(reference).max())
    floor = max(1e-2 * scale, 1e-12)
    norms = np.linalg.norm(ours, axis=-1) * np.linalg.norm(reference, axis=-1)
    cosine = np.sum(ours * reference, axis=-1) / np.maximum(norms, 1e-30)
    max_abs, limit, min_cosine = float(diff.max()), tolerance.limit(scale), float(cosine.min())
    return StageResult(
        name=name,
        max_abs=max_abs,
        mean_abs=float(diff.mean()),
        max_rel=float((diff / np.maximum(np.abs(reference), floor)).max()),
        min_cosine=min_cosine,
        limit=limit,
        passed=bool(max_abs <= limit and min_cosine >= tolerance.min_cosine),
    )


def _upstream_name(preset_dir):
    """``repo@revision`` the preset records as its upstream, or ``None``: never a local path,
    which would make the report differ with the directory it was checked from."""
    source = preset.read_json(preset_dir, preset.METADATA_FILE).get("source") or {}
    if not source.get("repo_id"):
        return None
    return source["repo_id"] + (f"@{source['revision']}" if source.get("revision") else "")


def check(preset_dir, reference_dir):
    """The full parity report of the preset at ``preset_dir`` against ``reference_dir``.

    ``reference_dir`` is the upstream HF checkpoint directory the preset came from.
    """
    import transformers

    preset_dir, reference_dir = Path(preset_dir), Path(reference_dir)
    preset.verify(preset_dir)
    model_type = preset.read_json(reference_dir, "config.json").get("model_type")
    get_converter(model_type)  # an unknown model_type fails here, before any model is built
    backbone = Backbone.from_preset(preset_dir)
    dtype = backbone.dtype_policy.variable_dtype
    tolerance = tolerances.for_dtype(dtype)
    inputs = probe_inputs(backbone)
    lengths = inputs["padding_mask"].sum(axis=1).tolist()
    ours = {k: keras.ops.convert_to_numpy(keras.ops.cast(v, "float32")) for k, v in backbone.hidden_states(inputs).items()}
    theirs, reference_class = reference_outputs(reference_dir, model_type, inputs)
    stages = [compare(name, ours[name], theirs[name], inputs["padding_mask"], tolerance) for name in ours]
    return ParityReport(
        dtype=dtype,
        weights_sha256=preset.weights_digest(preset_dir),
        tolerance={"atol": tolerance.atol, "rtol": tolerance.rtol, "min_cosine": tolerance.min_cosine},
        reference={
            "implementation": f"transformers.{reference_class}",
            "transformers_version": transformers.__version__,
            "source": _upstream_name(preset_dir),
            "model_type": model_type,
        },
        inputs={"batch": len(lengths), "lengths": lengths, "seed": PROBE_SEED},
        stages=stages,
        tokenizer=compare_tokenizers(preset_dir, reference_dir),
        created=preset.build_date(),
    )
