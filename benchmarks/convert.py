"""Conversion benchmark: presetforge vs keras-hub on the same random checkpoints (GPT-2 and Llama shapes).

    .venv/bin/python benchmarks/convert.py                       # GPT-2 124M
    .venv/bin/python benchmarks/convert.py --sizes 124m,xl       # + GPT-2 XL's shape (6.2 GB float32)
    .venv/bin/python benchmarks/convert.py --sizes llama-1b      # Llama 3.2 1B's shape (4.9 GB float32, tied head)
    .venv/bin/python benchmarks/convert.py --repeat 5

presetforge: ``presetforge.converters.convert(hf_dir, out)`` (what ``presetforge
convert --no-check`` runs: the parity check is a separate stage). keras-hub:
``keras_hub.models.Backbone.from_preset(hf_dir)`` + ``save_to_preset(out)``, in
its own virtualenv without TensorFlow. Both on the torch backend, same Keras.
Copying the checkpoint file is the floor: once in the kernel (``sendfile``, the
bytes never reach user space) and once through a user-space buffer (read +
write, the least any converter that transforms the bytes must do).

Each figure is one fresh process per run (median time over ``--repeat`` runs,
largest peak RSS above the process's import baseline), contenders interleaved,
the checkpoint in the page cache and dirty pages flushed before every run.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("KERAS_BACKEND", "torch")

import common  # noqa: E402
from common import GiB, MiB, fmt_bytes, markdown_table  # noqa: E402


def _contenders(size, out, use_keras_hub):
    checkpoint = common.checkpoint(size)
    weights = checkpoint / "model.safetensors"

    def fresh(path):
        def before():
            common.remove(path)
            common.warm(checkpoint)

        return before

    contenders = {
        "presetforge": (
            common.MAIN_PYTHON,
            "presetforge-convert",
            (checkpoint, out / "presetforge"),
            fresh(out / "presetforge"),
        ),
    }
    if use_keras_hub:
        contenders["keras-hub"] = (
            common.keras_hub_python(),
            "kerashub-convert",
            (checkpoint, out / "keras-hub"),
            fresh(out / "keras-hub"),
        )
    contenders["copy (sendfile)"] = (common.MAIN_PYTHON, "copy", (weights, out / "copy"), fresh(out / "copy"))
    contenders["copy (user space)"] = (
        common.MAIN_PYTHON,
        "copy-userspace",
        (weights, out / "copy"),
        fresh(out / "copy"),
    )
    return checkpoint, contenders


def bench(size, repeat, out, keras_hub="auto"):
    spec = common.SIZES[size]
    checkpoint = common.checkpoint(size)
    model_bytes = common.tree_bytes(checkpoint / "model.safetensors")
    use_keras_hub = keras_hub == "yes" or (keras_hub == "auto" and common.mem_available() > 3 * model_bytes + 2 * GiB)
    if not use_keras_hub and keras_hub == "auto":
        common.log(f"  skipping keras-hub on {spec['label']}: not enough free memory for it")
    _, contenders = _contenders(size, out, use_keras_hub)
    common.log(f"{spec['label']}: {fmt_bytes(model_bytes)} of float32 weights")
    # keras-hub takes minutes and 12 GiB on the XL shape: one run of it there.
    results = common.interleaved(contenders, repeat, once=("keras-hub",) if size == "xl" else ())
    for path in ("presetforge", "keras-hub", "copy"):
        common.remove(out / path)

    largest = common.largest_tensor_bytes(size)
    bound = 2 * largest + 256 * MiB
    pf = results["presetforge"]
    kh = results.get("keras-hub")
    copy_user = results["copy (user space)"]
    copy_kernel = results["copy (sendfile)"]

    rows = []
    for label, r in results.items():
        if "error" in r:
            rows.append([label, "failed", "", "", "", "", r["error"][:60]])
            continue
        is_copy = label.startswith("copy")
        rows.append(
            [
                label,
                f"{r['seconds']:.2f}",
                "—" if is_copy else fmt_bytes(r["peak_above"]),
                common.versus(r, kh, memory=not is_copy),
                f"{model_bytes / r['seconds'] / GiB:.2f} GiB/s",
                f"{r['process_seconds']:.2f}",
                "—" if is_copy else fmt_bytes(r["baseline"]),
            ]
        )
    table = markdown_table(
        [
            "convert " + spec["label"],
            "time s",
            "peak RSS above import",
            "÷ keras-hub (time, RSS)",
            "throughput",
            "process s",
            "import RSS",
        ],
        rows,
    )

    checks = []
    ok = "error" not in pf
    if ok:
        checks.append(
            (
                f"streaming: peak RSS above baseline {fmt_bytes(pf['peak_above'])} < 2 x largest tensor "
                f"({fmt_bytes(largest)}) + 256 MiB = {fmt_bytes(bound)}",
                pf["peak_above"] < bound,
            )
        )
    have_kh = ok and kh is not None and "error" not in kh
    if have_kh:
        t, m = common.ratio(pf["seconds"], kh["seconds"]), common.ratio(pf["peak_above"], kh["peak_above"])
        if size == "124m":
            checks.append((f"time vs keras-hub {t:.2f}x <= 0.5x", t <= 0.5))
            checks.append((f"peak RSS above baseline vs keras-hub {m:.2f}x <= 0.5x", m <= 0.5))
        else:
            checks.append((f"time vs keras-hub {t:.2f}x, peak RSS above baseline {m:.2f}x", None))
    if ok and size == "xl":
        checks.append((f"peak RSS above baseline {fmt_bytes(pf['peak_above'])} < 1 GiB", pf["peak_above"] < GiB))
        if "error" not in copy_user:
            c = common.ratio(pf["seconds"], copy_user["seconds"])
            checks.append((f"time vs copying the bytes through user space {c:.2f}x <= 2x", c <= 2))
        if "error" not in copy_kernel:
            c = common.ratio(pf["seconds"], copy_kernel["seconds"])
            checks.append((f"time vs in-kernel copy (sendfile) {c:.2f}x <= 2x (stricter)", c <= 2))
    return common.render(table, checks), {"size": size, "model_bytes": model_bytes, "results": results, "checks": checks}


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--out", type=Path, default=common.CACHE / "out", help="where the outputs go (deleted)")
    args = parser.parse_args(argv)
    sizes = common.parse_sizes(args.sizes)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# presetforge convert benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{common.machine_line()}\n")
    payload = []
    for size in sizes:
        repeat = args.repeat or (5 if size == "124m" else 3)
        text, data = bench(size, repeat, args.out, args.keras_hub)
        payload.append(data)
        print(text + "\n", flush=True)
    common.save_results("convert", payload)


if __name__ == "__main__":
    main()
