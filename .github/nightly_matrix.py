"""The nightly workflow's plan: `presetforge list --json` on stdin, the check matrix on stdout.

Prints ``matrix=`` (``{"include": [{"preset": ..., "family": ..., "runner": ...}]}``, one entry
per catalog preset with a pinned publication, in catalog order) and ``count=``, as lines for
``$GITHUB_OUTPUT``. A preset of more than ``LARGE_PARAMETERS`` parameters gets the runner label
``LARGE_RUNNER``, the others ``RUNNER``; ``FAMILY`` keeps one family or one preset.
"""

import json
import os
import sys


def plan(catalog, family, runner, large_runner, large_parameters):
    """The matrix entries: every published preset (of ``family``), with the runner its size needs."""
    chosen = {n: e for n, e in catalog.items() if not family or family in (n, e["family"])}
    if family and not chosen:
        raise SystemExit(f"nightly_matrix: '{family}' is neither a catalog preset nor a family")
    return [
        {
            "preset": name,
            "family": e["family"],
            "runner": large_runner if e["parameter_count"] > large_parameters else runner,
        }
        for name, e in chosen.items()
        if e["published"]
    ]


def main():
    entries = plan(
        json.load(sys.stdin),
        os.environ.get("FAMILY", ""),
        os.environ.get("RUNNER") or "ubuntu-latest",
        os.environ.get("LARGE_RUNNER") or os.environ.get("RUNNER") or "ubuntu-latest",
        int(float(os.environ.get("LARGE_PARAMETERS") or 1e9)),
    )
    print("matrix=" + json.dumps({"include": entries}, separators=(",", ":")))
    print(f"count={len(entries)}")


if __name__ == "__main__":
    main()
