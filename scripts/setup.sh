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
# Stockfish generates the chess_games demo dataset (MoE-X). Optional: without it only that
# dataset is unavailable (its builder then says how to install it), so nothing here may fail.
if ! command -v stockfish >/dev/null 2>&1 && [ ! -x /usr/games/stockfish ] \
    && [ -z "${STOCKFISH_PATH:-}" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq stockfish >/dev/null; } \
      || echo "setup.sh: could not install stockfish with apt-get (chess_games needs it)." >&2
  else
    echo "setup.sh: Stockfish not found; the chess_games demo dataset needs it:" \
         "sudo apt-get install stockfish (Debian/Ubuntu), or set STOCKFISH_PATH." >&2
  fi
fi
