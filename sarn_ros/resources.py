"""Find the package's shared files (weights, config, launch) however it was installed.

A colcon/apt install puts them under ``<prefix>/share/sarn_ros`` and registers the package in
the ament index; ``pip install .`` puts them under ``sys.prefix/share/sarn_ros``; an editable
install (``pip install -e .``, the bare-machine venv) installs no data files, so the source tree
next to the package is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "sarn_ros"


def share_dirs() -> list[Path]:
    """Candidate share directories, most specific first."""
    dirs: list[Path] = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if (
            prefix
            and (
                Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
            ).exists()
        ):
            dirs.append(Path(prefix) / "share" / PACKAGE)
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    dirs.append(Path(__file__).resolve().parent.parent)  # source tree (editable install)
    return [d for d in dirs if d.is_dir()]


def find_share_file(relative: str) -> Path:
    """Path of ``share/sarn_ros/<relative>``; FileNotFoundError lists where it looked."""
    candidates = share_dirs()
    for d in candidates:
        p = d / relative
        if p.exists():
            return p
    looked = ", ".join(str(d) for d in candidates) or "(no share directory found)"
    raise FileNotFoundError(f"{relative} not found in the sarn_ros share directories: {looked}")


def node_command() -> list[str]:
    """How to start sarn_deblur_node from this interpreter: its console script beside the
    interpreter (a venv, pip), else the module (``ros2 run`` uses /usr/bin/python3, while colcon
    puts the script under install/sarn_ros/lib/sarn_ros)."""
    script = Path(sys.executable).parent / "sarn_deblur_node"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sarn_ros.ros.node"]
