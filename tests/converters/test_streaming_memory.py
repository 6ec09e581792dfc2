"""Conversion streams: its peak memory grows with the largest tensor, not with the model.

A GPT-2-shaped checkpoint of about 1.25 GB whose largest tensor is 50 MiB is
converted in a subprocess; its peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``)
must stay under the import baseline (a subprocess doing the same imports) plus
twice the largest tensor plus 256 MiB, a bound the checkpoint is 3.5 times larger than.

Linux carries ``ru_maxrss`` over ``execve`` from the process that spawns the
child, so a child of the (large) pytest process would start at pytest's size
and the bound would hold vacuously. Each child is therefore spawned by a small
Python driver, which reports its children's ``ru_maxrss``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from presetforge import preset

MiB = 1024**2
# 24 layers of 1024 wide: 52 MB per layer, 1.25 GB in all; the token embedding (50 MiB) is the largest tensor.
SHAPE = dict(n_layer=24, n_embd=1024, n_head=16, vocab_size=12800, n_positions=1024)

IMPORTS = "import presetforge\nfrom presetforge.converters import convert\n"

DRIVER = textwrap.dedent(
    """
    import json, resource, subprocess, sys
    done = subprocess.run([sys.executable, "-c", sys.argv[1]], env=json.loads(sys.argv[2]))
    if done.returncode:
        sys.exit(done.returncode)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)


def _tensors(n_layer, n_embd, vocab_size, n_positions, **_):
    tensors = [("wte.weight", (vocab_size, n_embd)), ("wpe.weight", (n_positions, n_embd))]
    for i in range(n_layer):
        tensors += [
            (f"h.{i}.ln_1.weight", (n_embd,)),
            (f"h.{i}.ln_1.bias", (n_embd,)),
            (f"h.{i}.attn.c_attn.weight", (n_embd, 3 * n_embd)),
            (f"h.{i}.attn.c_attn.bias", (3 * n_embd,)),
            (f"h.{i}.attn.c_proj.weight", (n_embd, n_embd)),
            (f"h.{i}.attn.c_proj.bias", (n_embd,)),
            (f"h.{i}.ln_2.weight", (n_embd,)),
            (f"h.{i}.ln_2.bias", (n_embd,)),
            (f"h.{i}.mlp.c_fc.weight", (n_embd, 4 * n_embd)),
            (f"h.{i}.mlp.c_fc.bias", (4 * n_embd,)),
            (f"h.{i}.mlp.c_proj.weight", (4 * n_embd, n_embd)),
            (f"h.{i}.mlp.c_proj.bias", (n_embd,)),
        ]
    return tensors + [("ln_f.weight", (n_embd,)), ("ln_f.bias", (n_embd,))]


def _write_checkpoint(directory):
    """A float32 GPT-2 checkpoint written tensor by tensor (safetensors by hand: header, then bytes)."""
    directory.mkdir(parents=True)
    config = {"model_type": "gpt2", "architectures": ["GPT2Model"], "n_inner": None, **SHAPE}
    (directory / "config.json").write_text(json.dumps(config))
    tensors = _tensors(**SHAPE)
    header, offset = {}, 0
    for name, shape in tensors:
        size = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    block = np.random.default_rng(0).standard_normal(1 << 18, dtype=np.float32) * 0.02  # 1 MiB, tiled
    with open(directory / "model.safetensors", "wb") as f:
        f.write(len(encoded).to_bytes(8, "little") + encoded)
        for _, shape in tensors:
            f.write(np.resize(block, shape).tobytes())
    return max(int(np.prod(shape)) * 4 for _, shape in tensors), offset


def _peak_rss_kib(code):
    """``ru_maxrss`` (KiB) of a child running ``code``, spawned by a small driver process."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, code, json.dumps(env)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_conversion_peak_memory_is_bounded_by_the_largest_tensor(tmp_path):
    largest, total = _write_checkpoint(tmp_path / "hf")
    bound_kib = (2 * largest + 256 * MiB) // 1024
    assert total > 3 * bound_kib * 1024  # the model could not fit in the budget whole

    baseline = _peak_rss_kib(IMPORTS)
    peak = _peak_rss_kib(f"{IMPORTS}convert({str(tmp_path / 'hf')!r}, {str(tmp_path / 'preset')!r})\n")

    preset.verify(tmp_path / "preset")  # it did convert, whole
    assert preset.read_json(tmp_path / "preset", preset.METADATA_FILE)["parameter_count"] == total // 4
    assert peak - baseline < bound_kib, (
        f"peak RSS {peak / 1024:.0f} MiB is {(peak - baseline) / 1024:.0f} MiB above the import baseline "
        f"{baseline / 1024:.0f} MiB; the bound is {bound_kib / 1024:.0f} MiB (largest tensor {largest / MiB:.0f} MiB)"
    )
