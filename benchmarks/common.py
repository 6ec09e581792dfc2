"""Shared machinery of the benchmarks: random GPT-2 checkpoints, keras-hub's own environment,
runs in fresh processes, and the table.

Everything heavy is cached under ``$PRESETFORGE_BENCH_CACHE`` (default
``/tmp/presetforge-bench``) and reused across runs: the random checkpoints, the
keras-hub virtual environment, the presets the load benchmark reads.

Each measurement is one fresh Python process running ``benchmarks/worker.py``:
it does its imports, takes its peak RSS so far as the *import baseline*, runs
the operation once under a wall clock, then reports the operation's time and
its peak RSS (``VmHWM`` from ``/proc/self/status``, the kernel's high-water
mark of that process's memory). "Above baseline" is what the operation itself
added to the peak.
"""

import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the checkpoint shapes are shared with the tests

from tests.large_checkpoints import FAMILIES, write_safetensors  # noqa: E402
WORKER = Path(__file__).resolve().parent / "worker.py"
CACHE = Path(os.environ.get("PRESETFORGE_BENCH_CACHE", "/tmp/presetforge-bench"))
MAIN_PYTHON = Path(sys.executable)
KERAS_HUB_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
MiB = 1024**2
GiB = 1024**3

# GPT-2 shapes (vocabulary 50257, 1024 positions) and a Llama shape (Llama 3.2 1B's: tied head).
SIZES = {
    "124m": dict(label="GPT-2 124M", family="gpt2", n_layer=12, n_embd=768, n_head=12),
    "xl": dict(label="GPT-2 XL shape", family="gpt2", n_layer=48, n_embd=1600, n_head=25),
    "llama-1b": dict(
        label="Llama 3.2 1B shape", family="llama", num_hidden_layers=16, hidden_size=2048, num_attention_heads=32,
        num_key_value_heads=8, intermediate_size=8192, vocab_size=128256,
    ),
    # Llama 3 8B's shape as published: bfloat16, 8192 positions, no rope scaling, untied head (16 GB).
    "llama3-8b": dict(
        label="Llama 3 8B shape", family="llama", num_hidden_layers=32, hidden_size=4096, num_attention_heads=32,
        num_key_value_heads=8, intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192,
        rope_scaling=None, tie_word_embeddings=False, dtype="bfloat16",
    ),
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# -- checkpoints -------------------------------------------------------------------


def checkpoint(size, cache=CACHE):
    """The random checkpoint of ``size`` (a key of ``SIZES``), made once and cached."""
    spec = SIZES[size]
    tensors, config = FAMILIES[spec["family"]]
    directory = cache / "checkpoints" / f"{spec['family']}-{size}"
    if (directory / "model.safetensors").is_file() and (directory / "config.json").is_file():
        return directory
    log(f"making the random {spec['label']} checkpoint in {directory} …")
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    dtype = spec.get("dtype", "float32")
    (staging / "config.json").write_text(json.dumps(config(**spec, torch_dtype=dtype), indent=2) + "\n")
    write_safetensors(staging / "model.safetensors", tensors(**spec), dtype=dtype)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return directory


def largest_tensor_bytes(size):
    """Bytes of the checkpoint's largest tensor in float32."""
    spec = SIZES[size]
    return max(int(np.prod(shape)) * 4 for _, shape in FAMILIES[spec["family"]][0](**spec))


def tree_bytes(path):
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def warm(path):
    """Read a file or directory once, so every contender starts from the page cache."""
    path = Path(path)
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(16 * MiB):
                    pass


# -- keras-hub's environment ---------------------------------------------------------


def keras_hub_python(cache=CACHE):
    """Python of a separate virtualenv holding keras-hub without TensorFlow (built once).

    keras-hub is installed with ``--no-deps``, then its light dependencies from
    its own metadata, minus ``tensorflow-text`` (only some tokenizers need it);
    Keras is pinned to the version presetforge runs on and torch to the CPU wheel,
    so both sides run the same Keras on the same backend.
    """
    keras_version = importlib.metadata.version("keras")
    venv = cache / "venv-keras-hub"
    python = venv / "bin" / "python"
    marker = venv / ".presetforge-ready"
    wanted = f"keras-hub=={KERAS_HUB_VERSION} keras=={keras_version} torch=={TORCH_VERSION}\n"
    if marker.is_file() and marker.read_text() == wanted:
        return python
    log(f"building keras-hub's environment in {venv} (once) …")
    shutil.rmtree(venv, ignore_errors=True)
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base) if base.is_file() else "python3", "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", f"keras-hub=={KERAS_HUB_VERSION}"], check=True)
    light = [
        f"keras=={keras_version}",
        f"torch=={TORCH_VERSION}",
        "absl-py",
        "numpy",
        "packaging",
        "regex",
        "rich",
        "kagglehub!=1.0.1",
        "kagglesdk==0.1.28",
        "sentencepiece",
        "tokenizers",
        "safetensors",
        "huggingface_hub",
    ]
    subprocess.run([*pip, *light], check=True)
    check = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow') is None)"],
        capture_output=True,
        text=True,
        check=True,
    )
    if check.stdout.strip() != "True":
        raise RuntimeError("TensorFlow found in keras-hub's environment; it must not be there")
    marker.write_text(wanted)
    return python


# -- fresh-process runs -----------------------------------------------------------------


def run_worker(python, task, *args, timeout=1800, tree=None):
    """One measurement in a fresh process: the worker's JSON, plus the process's own wall time.

    ``tree``: the presetforge source tree to import (default: this checkout, for the main Python);
    another checkout measures an earlier version side by side.
    """
    env = {
        **os.environ,
        "KERAS_BACKEND": "torch",
        "KERAS_HOME": str(CACHE / "keras-home"),
        "PYTHONPATH": "",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    if tree is not None or Path(python) == MAIN_PYTHON:
        env["PYTHONPATH"] = str(tree or REPO)
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), str(WORKER), task, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    return result


# -- the table ------------------------------------------------------------------------


def fmt_bytes(n):
    return f"{n / GiB:.2f} GiB" if abs(n) >= GiB else f"{n / MiB:.0f} MiB"


def markdown_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def verdict(ok):
    return "PASS" if ok else "FAIL"


def machine_line():
    """Versions, read from package metadata: the driver never imports Keras or torch, so it stays
    small and its children (whose ``ru_maxrss`` starts at the spawner's size) measure only themselves."""
    import platform

    version = importlib.metadata.version
    return (
        f"{os.cpu_count()} cores, {mem_total() / GiB:.0f} GiB, Python {platform.python_version()}, "
        f"keras {version('keras')} (torch backend), torch {version('torch')}, "
        f"transformers {version('transformers')}, keras-hub {KERAS_HUB_VERSION}"
    )


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def parse_sizes(text):
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}; choose from {sorted(SIZES)}")
    return sizes


# -- a benchmark run ---------------------------------------------------------------------


def settle():
    """Flush dirty pages, so one contender's writeback does not slow the next one down."""
    os.sync()
    time.sleep(0.5)


def interleaved(contenders, repeat, once=()):
    """Run each contender ``repeat`` times (those in ``once``: once), round-robin, each run in a fresh process.

    ``contenders`` maps a label to ``(python, task, args, before)``, optionally with a fifth
    element, the source tree to import (see ``run_worker``); returns label → summary (median
    time, largest peak above baseline, every run's time), or the error text.
    """
    runs = {label: [] for label in contenders}
    errors = {}
    for round_ in range(repeat):
        for label, (python, task, args, before, *tree) in contenders.items():
            if label in errors or (label in once and runs[label]):
                continue
            if before is not None:
                before()
            settle()
            log(f"  [{round_ + 1}/{repeat}] {label} …")
            try:
                runs[label].append(run_worker(python, task, *args, tree=tree[0] if tree else None))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                errors[label] = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                log(f"    failed: {e}")
    summary = {}
    for label, results in runs.items():
        if label in errors:
            summary[label] = {"error": errors[label]}
            continue
        summary[label] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "process_seconds": statistics.median(r["process_seconds"] for r in results),
            "baseline": max(r["baseline_kib"] for r in results) * 1024,
            "peak_above": max(r["peak_kib"] - r["baseline_kib"] for r in results) * 1024,
            "all_seconds": [round(r["seconds"], 3) for r in results],
        }
    return summary


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def remove(path):
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def ratio(a, b):
    return a / b if b else float("nan")


def versus(result, reference, memory=True):
    """``result``'s time (and peak RSS above baseline) as multiples of ``reference``'s."""
    if reference is None or "error" in reference:
        return "—"
    text = f"{ratio(result['seconds'], reference['seconds']):.2f}x"
    if memory:
        text += f", {ratio(result['peak_above'], reference['peak_above']):.2f}x"
    return text


def save_results(name, payload):
    path = CACHE / f"results-{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def render(table, checks):
    """The table followed by one PASS/FAIL/info line per target check."""
    lines = [table, ""]
    for text, passed in checks:
        lines.append(f"- {'info' if passed is None else verdict(passed)}: {text}")
    return "\n".join(lines)


def argument_parser(doc, keras_hub=True):
    """The options the benchmarks take: sizes, repeats, and (where it runs) whether to run keras-hub."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--sizes", default="124m", help="comma-separated: 124m, xl (default: 124m)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per contender (default: 5, 3 for xl; keras-hub runs once on xl)"
    )
    if keras_hub:
        parser.add_argument("--keras-hub", choices=("auto", "yes", "no"), default="auto")
    return parser
