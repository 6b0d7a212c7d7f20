#!/usr/bin/env bash
# Create or refresh .venv at the repository root with the pinned dependencies and sarn_ros.
# Idempotent: a second run with unchanged requirements only checks a stamp and returns.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
stamp=".venv/.sarn_setup_stamp"
want="$(cat requirements.txt setup.py setup.cfg | sha256sum | cut -d' ' -f1)"

version() { "$1" -c 'import sys; print(*sys.version_info[:2])'; }
if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "sarn_ros: .venv has no pip (an earlier run without python3-venv?): making it again"
  rm -rf .venv
elif [ -n "${PYTHON:-}" ] && [ -x .venv/bin/python ] && [ "$(version .venv/bin/python)" != "$(version "$py")" ]; then
  echo "sarn_ros: .venv has Python $(version .venv/bin/python | tr ' ' .), PYTHON=$py: making it again"
  rm -rf .venv
fi

# -I: not from the working directory, where the source folder would always be found
installed="import importlib.util as u, sys; sys.exit(u.find_spec('sarn_ros') is None)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/sarn_deblur_node ] \
  && .venv/bin/python -I -c "$installed" 2>/dev/null; then
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  # Debian/Ubuntu: without python3-venv this fails half way; leave nothing to trip the next run
  "$py" -m venv .venv || { rm -rf .venv; exit 1; }
fi
.venv/bin/python -m pip install -q --upgrade pip wheel "setuptools<80"
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$want" > "$stamp"
echo "sarn_ros: .venv ready ($(du -sh .venv | cut -f1))"
