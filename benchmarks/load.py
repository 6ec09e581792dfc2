"""Loading benchmark: presetforge vs keras-hub vs transformers, each loading its own format of the same
weights, beside the time to sha256 the weights with every core.

    .venv/bin/python benchmarks/load.py                       # GPT-2 124M
    .venv/bin/python benchmarks/load.py --sizes 124m,xl       # + GPT-2 XL's shape (6.2 GB float32)
    .venv/bin/python benchmarks/load.py --repeat 5 --rebuild  # remake the presets first

presetforge: ``Backbone.from_preset(preset_dir)`` (every file verified against
the manifest, the weights hashed while the model is built, then mapped
copy-on-write: no random initial values, no copy). keras-hub:
``keras_hub.models.Backbone.from_preset(its_preset_dir)``, in its own virtualenv
without TensorFlow. transformers: ``GPT2Model.from_pretrained(hf_dir)``. The
floor of a load that verifies what it loads: sha256 of every weight file of our
preset, a pool of one process per usable core (one file per core at a time: a
file's sha256 is sequential). The presets are made once from the random
checkpoint (by each library's own conversion) and cached. Each figure is one
fresh process per run (median time over ``--repeat`` runs, largest peak RSS
above the process's import baseline), contenders interleaved, every file read
in the page cache before each run. Last, the whole ``presetforge --help``
process, timed from outside.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("KERAS_BACKEND", "torch")

import common  # noqa: E402
from common import GiB, fmt_bytes, markdown_table  # noqa: E402


def _preset(kind, size, rebuild):
    """The cached preset of ``kind`` (presetforge or keras-hub) for ``size``, converted if missing."""
    path = common.CACHE / "presets" / f"{kind}-{size}"
    if path.is_dir() and not rebuild:
        return path
    common.remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = common.checkpoint(size)
    common.log(f"  making the {kind} preset of {size} …")
    if kind == "presetforge":
        common.run_worker(common.MAIN_PYTHON, "presetforge-convert", checkpoint, path)
    else:
        common.run_worker(common.keras_hub_python(), "kerashub-convert", checkpoint, path)
    return path


def _weights_bytes(preset_dir):
    return sum(p.stat().st_size for p in Path(preset_dir).glob("model*.weights.h5"))


def bench(size, repeat, rebuild=False, keras_hub="auto"):
    spec = common.SIZES[size]
    checkpoint = common.checkpoint(size)
    model_bytes = common.tree_bytes(checkpoint / "model.safetensors")
    use_keras_hub = keras_hub == "yes" or (keras_hub == "auto" and common.mem_available() > 3 * model_bytes + 2 * GiB)
    ours = _preset("presetforge", size, rebuild)
    weights = _weights_bytes(ours)

    def warming(path):
        return lambda: common.warm(path)

    cores = len(os.sched_getaffinity(0))
    hashing = f"sha256, {cores} cores"
    contenders = {"presetforge": (common.MAIN_PYTHON, "presetforge-load", (ours,), warming(ours))}
    if use_keras_hub:
        theirs = _preset("keras-hub", size, rebuild)
        contenders["keras-hub"] = (common.keras_hub_python(), "kerashub-load", (theirs,), warming(theirs))
    else:
        common.log(f"  skipping keras-hub on {spec['label']}")
    contenders[hashing] = (common.MAIN_PYTHON, "sha256-all-cores", (ours,), warming(ours))
    contenders["transformers (lazy)"] = (
        common.MAIN_PYTHON,
        "transformers-load",
        (checkpoint,),
        warming(checkpoint),
    )
    common.log(f"{spec['label']}: {fmt_bytes(weights)} of weights")
    # keras-hub takes minutes and 12 GiB on the XL shape: one run of it there.
    results = common.interleaved(contenders, repeat, once=("keras-hub",) if size == "xl" else ())

    pf, kh, floor = results["presetforge"], results.get("keras-hub"), results[hashing]
    rows = []
    for label, r in results.items():
        if "error" in r:
            rows.append([label, "failed", "", "", "", "", "", r["error"][:60]])
            continue
        memory = label != hashing  # the pool's processes are not measured, only its parent
        rows.append(
            [
                label,
                f"{r['seconds']:.2f}",
                ", ".join(f"{t:.2f}" for t in r["all_seconds"]),
                fmt_bytes(r["peak_above"]) if memory else "—",
                f"{r['peak_above'] / weights:.2f}x" if memory else "—",
                common.versus(r, kh, memory=memory),
                f"{r['process_seconds']:.2f}",
                fmt_bytes(r["baseline"]) if memory else "—",
            ]
        )
    table = markdown_table(
        [
            "load " + spec["label"],
            "time s",
            "runs s",
            "peak RSS above import",
            "÷ weights",
            "÷ keras-hub (time, RSS)",
            "process s",
            "import RSS",
        ],
        rows,
    )
    checks = []
    if "error" not in pf:
        checks.append(
            (
                f"peak RSS above baseline {fmt_bytes(pf['peak_above'])} <= 1.2 x weights ({fmt_bytes(1.2 * weights)})",
                pf["peak_above"] <= 1.2 * weights,
            )
        )
        if kh is not None and "error" not in kh:
            t = common.ratio(pf["seconds"], kh["seconds"])
            m = common.ratio(pf["peak_above"], kh["peak_above"])
            if size == "124m":
                checks.append((f"load above the import baseline vs keras-hub's {t:.2f}x <= 0.35x", t <= 0.35))
            else:
                checks.append((f"load above the import baseline vs keras-hub's {t:.2f}x", None))
            checks.append((f"peak RSS above baseline vs keras-hub {m:.2f}x", None))
        if "error" not in floor:
            h = common.ratio(pf["seconds"], floor["seconds"])
            if size == "xl":
                checks.append((f"load vs {hashing} of the weights {h:.2f}x <= 1.3x", h <= 1.3))
            else:
                checks.append((f"load vs {hashing} of the weights {h:.2f}x", None))
    return common.render(table, checks), {"size": size, "weights_bytes": weights, "results": results, "checks": checks}


def help_process(repeat):
    """The whole ``presetforge --help`` process, timed from outside: median wall seconds and every run."""
    script = common.MAIN_PYTHON.parent / "presetforge"
    command = [str(script)]
    if not script.is_file():
        command = [str(common.MAIN_PYTHON), "-c", "from presetforge.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(common.REPO)}
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([*command, "--help"], check=True, capture_output=True, env=env)
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    table = markdown_table(
        ["process", "time s", "runs s"], [["presetforge --help", f"{median:.2f}", ", ".join(f"{t:.2f}" for t in runs)]]
    )
    return common.render(table, [(f"presetforge --help {median:.2f} s < 0.5 s", median < 0.5)]), {
        "help_seconds": median,
        "all_seconds": runs,
    }


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rebuild", action="store_true", help="convert the cached presets again")
    args = parser.parse_args(argv)
    sizes = common.parse_sizes(args.sizes)
    print(f"# presetforge load benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{common.machine_line()}\n")
    payload = []
    for size in sizes:
        repeat = args.repeat or (3 if size == "xl" else 5)
        text, data = bench(size, repeat, args.rebuild, args.keras_hub)
        payload.append(data)
        print(text + "\n", flush=True)
    text, data = help_process(args.repeat or 5)
    payload.append(data)
    print(text + "\n", flush=True)
    common.save_results("load", payload)


if __name__ == "__main__":
    main()
