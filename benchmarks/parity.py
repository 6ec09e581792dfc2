"""Benchmark: convert + the full parity check, phase by phase, up to Llama 3 8B's shape on this machine.

    .venv/bin/python benchmarks/parity.py                          # GPT-2 124M, float32
    .venv/bin/python benchmarks/parity.py --sizes 124m,xl,llama3-8b --dtypes bfloat16,float32

Each row is one fresh process (``worker.py presetforge-convert-check``):
convert, then the check with its default probes, streamed a block at a time.
Each phase's time and peak RSS above the process's import baseline are its
own (the kernel's high-water mark is reset between phases): convert, weight
verification, the reference's stages (transformers, float32, eager) and ours.
Beside the 8B rows: keras-hub's route to the same comparison, its backbone
from the HF directory plus transformers' ``from_pretrained`` in one process,
stopped when it would run this machine out of memory.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time

import common
from common import GiB, MiB, fmt_bytes

PHASES = ("convert", "weights", "reference", "ours")
BUDGET_8B = 6 * GiB


def _vm_rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def watched(python, task, *args, limit):
    """``run_worker``'s measurement, with the child stopped once its RSS passes ``limit`` bytes:
    ``(result or None, the largest RSS seen, seconds)``."""
    env = {**os.environ, "KERAS_BACKEND": "torch", "KERAS_HOME": str(common.CACHE / "keras-home"),
           "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    child = subprocess.Popen([str(python), str(common.WORKER), task, *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    seen = 0
    while child.poll() is None:
        seen = max(seen, _vm_rss(child.pid))
        if seen > limit:
            child.kill()
            child.wait()
            return None, seen, time.perf_counter() - start
        time.sleep(0.2)
    out, err = child.communicate()
    if child.returncode:
        raise RuntimeError(f"{task} failed ({child.returncode}): {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), seen, time.perf_counter() - start


def ours(size, dtype, cap):
    checkpoint = common.checkpoint(size)
    out = common.CACHE / "presets" / f"parity-{size}-{dtype}"
    common.remove(out)
    common.settle()
    common.log(f"  presetforge: convert + check {size} to {dtype} …")
    try:
        result = common.run_worker(common.MAIN_PYTHON, "presetforge-convert-check", checkpoint, out, dtype, cap,
                                   timeout=4 * 3600)
        shutil.copyfile(out / "parity.md", common.CACHE / f"parity-{size}-{dtype}.md")  # the whole report, kept
    finally:
        common.remove(out)  # an 8B float32 preset takes 32 GB of disk
    return result


def keras_hub_route(size):
    python = common.keras_hub_python()
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"transformers=={importlib.metadata.version('transformers')}"],
                   check=True)
    limit = common.mem_available() - 2 * GiB
    common.log(f"  keras-hub route on {size} (stopped past {fmt_bytes(limit)}) …")
    result, seen, seconds = watched(python, "kerashub-parity-route", common.checkpoint(size), limit=limit)
    return {"result": result, "seen": seen, "seconds": seconds, "limit": limit}


def main(argv=None):
    parser = common.argument_parser(__doc__, keras_hub=True)
    parser.add_argument("--dtypes", default="float32", help="comma-separated preset dtypes (default: float32)")
    parser.add_argument("--full-length-cap", type=int, default=2048, help="the check's full-length probe cap")
    args = parser.parse_args(argv)
    sizes = common.parse_sizes(args.sizes)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    rows, checks, results = [], [], {}
    for size in sizes:
        spec = common.SIZES[size]
        for dtype in dtypes:
            r = ours(size, dtype, args.full_length_cap)
            results[f"{size}/{dtype}"] = r
            phases = r["phases"]
            peak = max(kib for _, kib in phases.values()) * 1024 - r["baseline_kib"] * 1024
            cells = [f"{phases[p][0]:.0f} s, {fmt_bytes(phases[p][1] * 1024 - r['baseline_kib'] * 1024)}"
                     for p in PHASES]
            verdict = "passed" if r["passed"] else f"FAILED: {r['first_failure']}"
            rows.append([f"{spec['label']} → {dtype}", *cells, f"{r['seconds']:.0f} s", fmt_bytes(peak),
                         f"{verdict}; worst stage {r['worst_max_abs']:.1e}, end to end {r['end_to_end_max_abs']:.1e}"])
            if size == "llama3-8b" and dtype == "bfloat16":
                checks.append((f"8B shape, bfloat16: convert + full check peak {fmt_bytes(peak)} above the import "
                               f"baseline ({fmt_bytes(r['baseline_kib'] * 1024)}) < 6 GiB", peak < BUDGET_8B))
        if size == "llama3-8b" and args.keras_hub != "no":
            route = keras_hub_route(size)
            results[f"{size}/keras-hub"] = route
            memory = (f"ran out of memory: stopped at {fmt_bytes(route['seen'])}" if route["result"] is None
                      else f"peak {fmt_bytes(route['result']['peak_kib'] * 1024)}")
            rows.append([f"{spec['label']}: keras-hub backbone + transformers, no check", "—", "—", "—", "—",
                         f"{route['seconds']:.0f} s", memory, "nothing compared"])
    header = ["convert + check", *[f"{p} (time, peak above import)" for p in PHASES], "total", "peak", "result"]
    common.save_results("parity", results)
    print(f"\n{common.machine_line()}\n")
    print(common.render(common.markdown_table(header, rows), checks))


if __name__ == "__main__":
    sys.exit(main())
