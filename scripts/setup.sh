#!/usr/bin/env bash
# Create or refresh .venv at the repository root with the pinned dependencies and sarn_ros.
# Idempotent: a second run with unchanged requirements only checks a stamp and returns.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
stamp=".venv/.sarn_setup_stamp"
want="$(cat requirements.txt setup.py setup.cfg | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import sarn_ros" 2>/dev/null; then
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip wheel "setuptools<80"
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$want" > "$stamp"
echo "sarn_ros: .venv ready ($(du -sh .venv | cut -f1))"
