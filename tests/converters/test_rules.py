"""The rules that cut fused upstream tensors: unequal parts, transposed parts, and which of them stream by rows."""

import numpy as np
import pytest

from presetforge.converters import split, split_sizes, transpose, transposed

FUSED = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)  # a [q 3 + k 2 + v 2, hidden 3] Linear weight


def test_split_sizes_cuts_consecutive_unequal_parts():
    q, k, v = split_sizes(("q", "k", "v"), (3, 2, 2), axis=0)(FUSED)
    assert [p.tolist() for p in (q, k, v)] == [FUSED[:3].tolist(), FUSED[3:5].tolist(), FUSED[5:].tolist()]


def test_transposed_parts_are_dense_kernels_and_views_of_the_tensor():
    rule = transposed(split_sizes(("q", "k", "v"), (3, 2, 2), axis=0))
    parts = rule(FUSED)
    assert [p.shape for p in parts] == [(3, 3), (3, 2), (3, 2)]
    assert [p.tolist() for p in parts] == [FUSED[:3].T.tolist(), FUSED[3:5].T.tolist(), FUSED[5:].T.tolist()]
    assert all(np.shares_memory(p, FUSED) for p in parts)  # nothing copied before the cast
    assert rule.targets == ("q", "k", "v") and rule.format(i=0).targets == ("q", "k", "v")
    assert transpose("kernel")(FUSED)[0].tolist() == FUSED.T.tolist()


@pytest.mark.parametrize("sizes", [(3, 2, 1), (3, 2, 3)])
def test_parts_that_do_not_add_up_are_refused(sizes):
    with pytest.raises(ValueError, match=r"its axis 0 does not hold the 3 \+ 2 \+ \d entries of its parts"):
        split_sizes(("q", "k", "v"), sizes, axis=0)(FUSED)


def test_one_size_per_target():
    with pytest.raises(ValueError, match="3 targets but 2 sizes"):
        split_sizes(("q", "k", "v"), (3, 4))


def test_cuts_along_later_axes_stream_by_rows():
    """A cut along any axis but the first maps a block of rows to the same rows of each part."""
    rule = split_sizes(("a", "b"), (1, 2), axis=-1)
    assert rule.rowwise(2) and not rule.rowwise(1)
    blocks = [rule(FUSED[start : start + 2]) for start in range(0, 7, 2)]
    for index, whole in enumerate(rule(FUSED)):
        assert np.concatenate([block[index] for block in blocks]).tolist() == whole.tolist()
    assert not split_sizes(("a", "b"), (3, 4), axis=0).rowwise(2)
    assert not transposed(split("a", "b", axis=-1)).rowwise(2)  # a transpose needs the whole tensor
