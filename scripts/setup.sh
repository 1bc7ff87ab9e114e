#!/usr/bin/env bash
# Creates ./.venv (if absent) with the pinned CPU requirements and this repo installed editable.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# compat mode puts the repo root on sys.path, so packages added later need no reinstall.
.venv/bin/python -m pip install -q --no-deps -e . --config-settings editable_mode=compat
