"""Conversion streams: its peak memory grows with the largest tensor, not with the model.

A GPT-2-shaped checkpoint of about 1.25 GB, and a Llama-shaped one of 1.1 GB,
each with 50 MiB as its largest tensor, are converted in a subprocess; its peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``)
must stay under the import baseline (a subprocess doing the same imports) plus
twice the largest tensor plus 256 MiB, a bound each checkpoint is over 3 times larger than
(``tests/peak_memory.py`` says why each child has a driver).
"""

import json

import numpy as np
import pytest

from presetforge import preset
from tests.large_checkpoints import FAMILIES, tiled_values, write_safetensors
from tests.peak_memory import MiB, peak_rss_kib

SHAPES = {
    # 24 layers of 1024 wide: 52 MB per layer, 1.25 GB in all; the token embedding (50 MiB) is the largest tensor.
    "gpt2": dict(n_layer=24, n_embd=1024, n_head=16, vocab_size=12800, n_positions=1024),
    # A decoder whose projections are all transposed whole: 45 MB per layer, 1.1 GB in all; the embedding is 50 MiB.
    "llama": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, num_key_value_heads=4,
                  intermediate_size=2816, vocab_size=12800),
}

IMPORTS = "import presetforge\nfrom presetforge.converters import convert\n"


def _write_checkpoint(directory, family):
    """A float32 checkpoint of ``SHAPES[family]``, written tensor by tensor; (largest tensor, total) bytes."""
    tensors_of, config_of = FAMILIES[family]
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config_of(**SHAPES[family])))
    tensors = tensors_of(**SHAPES[family])
    total = write_safetensors(directory / "model.safetensors", tensors, tiled_values())
    return max(int(np.prod(shape)) * 4 for _, shape in tensors), total


@pytest.mark.slow
@pytest.mark.parametrize("family", SHAPES)
def test_conversion_peak_memory_is_bounded_by_the_largest_tensor(tmp_path, family):
    largest, total = _write_checkpoint(tmp_path / "hf", family)
    bound_kib = (2 * largest + 256 * MiB) // 1024
    assert total > 3 * bound_kib * 1024  # the model could not fit in the budget whole

    baseline = peak_rss_kib(IMPORTS)
    peak = peak_rss_kib(f"{IMPORTS}convert({str(tmp_path / 'hf')!r}, {str(tmp_path / 'preset')!r})\n")

    preset.verify(tmp_path / "preset")  # it did convert, whole
    assert preset.read_json(tmp_path / "preset", preset.METADATA_FILE)["parameter_count"] == total // 4
    assert peak - baseline < bound_kib, (
        f"peak RSS {peak / 1024:.0f} MiB is {(peak - baseline) / 1024:.0f} MiB above the import baseline "
        f"{baseline / 1024:.0f} MiB; the bound is {bound_kib / 1024:.0f} MiB (largest tensor {largest / MiB:.0f} MiB)"
    )
