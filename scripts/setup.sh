#!/usr/bin/env bash
# Create or refresh .venv at the repository root with the pinned dependencies and sarn_ros.
# Idempotent: a second run with unchanged requirements only checks what is installed and returns.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# a sourced ROS workspace's PYTHONPATH made pip skip what it found there (missing from .venv
# later); a pip config's `user = true` refused every install into a venv
unset PYTHONPATH PYTHONHOME
export PIP_USER=0
py="${PYTHON:-python3}"
stamp=".venv/.sarn_setup_stamp"
want="$(cat requirements.txt setup.py setup.cfg | sha256sum | cut -d' ' -f1)"

version() { "$1" -c 'import sys; print(*sys.version_info[:2])' 2>/dev/null; }
supported() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }
# the Python a venv is made with; one named is checked before anything is removed (a
# mistyped PYTHON deleted a working .venv, then failed), the default only where it is used
# (a ready venv made with PYTHON=python3.12 beside an old python3 stays ready)
check_py() {
  if ! version "$py" >/dev/null; then
    echo "sarn_ros: ${PYTHON:+PYTHON=}$py does not run: install it, or name another with PYTHON=" >&2
    exit 1
  fi
  if ! supported "$py"; then
    echo "sarn_ros: $py is Python $(version "$py" | tr ' ' .); sarn_ros needs 3.10 or newer (PYTHON=python3.12 ...)" >&2
    exit 1
  fi
}
if [ -n "${PYTHON:-}" ]; then
  check_py
fi
if [ -e .venv ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  # no pip (an earlier run without python3-venv), or its Python removed (an upgrade)
  echo "sarn_ros: .venv has no working Python or pip: making it again"
  rm -rf .venv
elif [ -e .venv ] && ! supported .venv/bin/python; then
  echo "sarn_ros: .venv has Python $(version .venv/bin/python | tr ' ' .), under 3.10: making it again"
  rm -rf .venv
elif [ -n "${PYTHON:-}" ] && [ -e .venv ] && [ "$(version .venv/bin/python)" != "$(version "$py")" ]; then
  echo "sarn_ros: .venv has Python $(version .venv/bin/python | tr ' ' .), PYTHON=$py: making it again"
  rm -rf .venv
fi

# -I: not from the working directory, where the source folder would always be found. Ready:
# sarn_ros installed from this checkout (a .venv copied with the tree ran the other one's
# code) and every requirement installed at a version it allows (one uninstalled since, or
# skipped by an earlier pip, was trusted on the stamp alone)
ready='
import importlib.metadata as m, importlib.util as u, pathlib, sys
from pip._vendor.packaging.requirements import Requirement
spec = u.find_spec("sarn_ros")
if spec is None or pathlib.Path(spec.origin).resolve().parents[1] != pathlib.Path.cwd().resolve():
    sys.exit(1)
for line in open("requirements.txt"):
    if text := line.split("#")[0].strip():
        req = Requirement(text)
        try:
            if not req.specifier.contains(m.version(req.name), prereleases=True):
                sys.exit(1)
        except m.PackageNotFoundError:
            sys.exit(1)
'
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/sarn_deblur_node ] \
  && .venv/bin/python -I -c "$ready" 2>/dev/null; then
  exit 0
fi

if [ ! -e .venv ]; then
  check_py
  # Debian/Ubuntu: without python3-venv this fails half way; leave nothing to trip the next run
  "$py" -m venv .venv || { rm -rf .venv; exit 1; }
fi
.venv/bin/python -m pip install -q --upgrade pip wheel "setuptools<80"
.venv/bin/python -m pip install -q -r requirements.txt
# the venv's setuptools: an isolated build fetched the newest from the index on every run
# (a rerun on a robot without network failed)
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "sarn_ros: .venv ready ($(du -sh .venv | cut -f1))"
