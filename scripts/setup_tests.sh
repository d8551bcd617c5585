#!/usr/bin/env bash
# What the tests need on a fresh machine (README, "Quick start"): the pinned Python
# packages, and Debian's chromium, in which tests/test_plots.py loads the HTML report.
# Installs only what is missing; apt-get needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -r requirements-dev.txt
pip install --no-deps -r requirements-nodeps.txt

have() { command -v "$1" >/dev/null 2>&1; }
if ! have chromium && ! have chromium-browser; then
  if ! have apt-get; then
    echo "setup_tests: install Chromium (the tests load the HTML report in it)" >&2
    exit 1
  fi
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium; then
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium
  fi
fi
