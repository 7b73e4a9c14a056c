#!/usr/bin/env bash
# Creates (or updates) the project virtualenv: torch pinned to the build this machine serves,
# then rdm with its test extras, editable. Re-runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RDM_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "rdm: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.rdm-install-stamp"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "rdm: installing dependencies into $VENV (first run takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch 2.14.1 + torchvision 0.29.1: the newest pair this machine's pip serves (see README).
  "$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
