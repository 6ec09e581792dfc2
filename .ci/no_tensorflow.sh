#!/usr/bin/env bash
# Resolve a fresh install of presetforge with every extra and fail if TensorFlow is in it.
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp)
.venv/bin/pip install --dry-run --ignore-installed --quiet --disable-pip-version-check \
  --report "$report" -c .ci/constraints.txt ".[dev]"
.venv/bin/python - "$report" <<'PY'
import json, sys
names = sorted(item["metadata"]["name"] for item in json.load(open(sys.argv[1]))["install"])
bad = [n for n in names if n.lower().startswith(("tensorflow", "tf-keras", "tf_keras"))]
print(f"no-tensorflow check: {len(names)} distributions resolved, TensorFlow-like: {bad or 'none'}")
sys.exit(1 if bad else 0)
PY
