#!/usr/bin/env bash
# The offline demo: convert the real all-MiniLM-L6-v2, gate it on parity, load it and use it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export KERAS_HOME="${KERAS_HOME:-$PWD/out/.keras}"
exec .venv/bin/presetforge demo "$@"
