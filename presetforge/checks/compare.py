"""Error statistics of one stage: our outputs against the reference's, in bounded float64 blocks."""

import numpy as np

from presetforge.checks.report import StageResult

_BLOCK_ELEMENTS = 1 << 21  # compared at a time: float64 temporaries of 16 MiB, whatever the width


def real_positions(array, padding_mask):
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
