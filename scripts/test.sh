#!/usr/bin/env bash
# The test suite: everything on the torch backend, then the backbone and preset tests on JAX.
# Runs in the virtualenv scripts/bootstrap.sh makes (PRESETFORGE_VENV, default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
venv="${PRESETFORGE_VENV:-.venv}"
export KERAS_HOME="${KERAS_HOME:-$(mktemp -d)}"
KERAS_BACKEND=torch "$venv/bin/python" -m pytest -q "$@"
KERAS_BACKEND=jax "$venv/bin/python" -m pytest -q tests/backbones tests/test_preset.py
