"""Check benchmark: the parity gate (`presetforge check`) on a converted random GPT-2, time and memory.

    .venv/bin/python benchmarks/check.py                          # GPT-2 124M, this checkout
    .venv/bin/python benchmarks/check.py --before /tmp/pf-before  # side by side with another checkout

The check is everything `presetforge check PRESET --reference CHECKPOINT` does:
manifest verification, the weight check (every element), both probes through
our backbone and transformers (float32, eager), logits, tokenizer parity, the
report and model card written into the preset. ``--before DIR`` runs a checkout
of an earlier presetforge (``git worktree add DIR <commit>``) as a second
contender, interleaved, each on a preset its own version converted. Each
figure is one fresh process per run: median time, largest peak RSS above the
process's import baseline (torch, Keras and transformers imported).
"""

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("KERAS_BACKEND", "torch")

import common  # noqa: E402
from common import fmt_bytes, markdown_table  # noqa: E402


def _converted(label, tree, checkpoint, size):
    """A fresh preset converted by the checkout ``tree`` (None: this one), kept as a master copy."""
    master = common.CACHE / "presets" / f"check-{label}-{size}"
    common.remove(master)
    master.parent.mkdir(parents=True, exist_ok=True)
    common.run_worker(common.MAIN_PYTHON, "presetforge-convert", checkpoint, master, tree=tree)
    return master


def bench(size, repeat, before=None):
    spec = common.SIZES[size]
    checkpoint = common.checkpoint(size)
    trees = {"presetforge": None, **({"presetforge before": before} if before else {})}
    contenders = {}
    for label, tree in trees.items():
        master = _converted(label.replace(" ", "-"), tree, checkpoint, size)
        work = master.with_name(master.name + "-work")

        def fresh_copy(master=master, work=work):  # every run checks an unchecked copy
            common.remove(work)
            shutil.copytree(master, work)
            common.warm(work)
            common.warm(checkpoint)

        contenders[label] = (common.MAIN_PYTHON, "presetforge-check", (work, checkpoint), fresh_copy, tree)
    weights = common.tree_bytes(checkpoint / "model.safetensors")
    common.log(f"{spec['label']}: {fmt_bytes(weights)} of weights")
    results = common.interleaved(contenders, repeat)
    reference = results.get("presetforge before")
    rows = []
    for label, r in results.items():
        if "error" in r:
            rows.append([label, "failed", "", "", "", r["error"][:60]])
            continue
        rows.append(
            [
                label,
                f"{r['seconds']:.2f}",
                fmt_bytes(r["peak_above"]),
                f"{r['peak_above'] / weights:.2f}x",
                common.versus(r, reference) if label != "presetforge before" else "1.00x, 1.00x",
                " ".join(f"{t:.2f}" for t in r["all_seconds"]),
            ]
        )
    table = markdown_table(
        ["check " + spec["label"], "time s", "peak RSS above import", "÷ weights", "÷ before (time, RSS)", "runs s"],
        rows,
    )
    return common.render(table, []), {"size": size, "weights_bytes": weights, "results": results}


def main(argv=None):
    parser = common.argument_parser(__doc__, keras_hub=False)
    parser.add_argument("--before", type=Path, help="a checkout of an earlier presetforge to run side by side")
    args = parser.parse_args(argv)
    print(f"# presetforge check benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{common.machine_line()}\n")
    payload = []
    for size in common.parse_sizes(args.sizes):
        text, data = bench(size, args.repeat or (5 if size == "124m" else 3), args.before)
        payload.append(data)
        print(text + "\n", flush=True)
    common.save_results("check", payload)


if __name__ == "__main__":
    main()
