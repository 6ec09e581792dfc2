#!/usr/bin/env bash
# The test suite: everything on the torch backend, then the backbone and preset tests on JAX.
# Runs in the virtualenv scripts/bootstrap.sh makes (PRESETFORGE_VENV, default .venv).
# PRESETFORGE_BACKENDS picks the legs (default "torch jax"; CI runs each leg as its own job).
# Arguments go to the torch leg's pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
venv="${PRESETFORGE_VENV:-.venv}"
export KERAS_HOME="${KERAS_HOME:-$(mktemp -d)}"
for backend in ${PRESETFORGE_BACKENDS:-torch jax}; do
  case "$backend" in
    torch) KERAS_BACKEND=torch "$venv/bin/python" -m pytest -q "$@" ;;
    jax) KERAS_BACKEND=jax "$venv/bin/python" -m pytest -q tests/backbones tests/test_preset.py ;;
    *) echo "test.sh: unknown backend '$backend' in PRESETFORGE_BACKENDS (torch, jax)" >&2; exit 2 ;;
  esac
done
