#!/usr/bin/env bash
# The headless browser the dashboard test drives (tests/pipeline/test_dashboard_browser.py): Debian's
# chromium, run by Playwright for Python (a dev dependency) through its executable_path, so Playwright's
# own browser downloads are never needed. A no-op when chromium is already there; apt-get as root, or
# through sudo otherwise.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; install chromium yourself (the browser test is skipped without it)" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install_browser: not root and no sudo: cannot install chromium" >&2
    exit 1
  fi
  as_root=(sudo)
fi
echo "install_browser: installing Debian's chromium for the dashboard's browser test (a minute or two)" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
