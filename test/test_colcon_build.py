"""A real `colcon build` of the package gives the layout `ros2 run` and `ros2 launch` use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).parent / "colcon"
SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "install",
    "log",
    "runs",
    ".trainset",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    "sarn_demo_out",
)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "sarn_ros", ignore=SKIP)
    result = subprocess.run(
        [
            str(COLCON),
            "build",
            "--base-paths",
            "src",
            "--build-base",
            "build",
            "--install-base",
            "install",
        ],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / "install" / "sarn_ros"


def test_installed_layout(install: Path):
    share = install / "share" / "sarn_ros"
    for exe in ("sarn_deblur_node", "sarn"):  # `ros2 run sarn_ros sarn deblur ...` (README)
        assert os.access(install / "lib" / "sarn_ros" / exe, os.X_OK), exe
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "sarn_ros").exists()
    assert (share / "package.xml").exists()
    for name in (p.name for p in (REPO / "launch").glob("*.launch.py")):
        assert (share / "launch" / name).exists(), name
    assert (share / "config" / "sarn_deblur.yaml").exists()
    assert (share / "config" / "fastdds_shm.xml").exists()
    assert (share / "weights").is_dir()
    for name in (p.name for p in (REPO / "weights").glob("*.pth")):
        assert (share / "weights" / name).exists(), name


def test_installed_package_finds_its_share_files(install: Path, tmp_path: Path):
    site = next(install.glob("lib/python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(install))
    code = (
        "import sarn_ros, sarn_ros.resources as r;"
        "print(sarn_ros.__file__); print(r.find_share_file('config/sarn_deblur.yaml'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    module, config = out.stdout.split()
    assert module.startswith(str(site))
    assert config == str(install / "share" / "sarn_ros" / "config" / "sarn_deblur.yaml")
    sample = site / "sarn_ros" / "sample"  # `sarn demo` plays it from the installed package
    for kind in ("blur", "sharp"):
        assert sorted(p.name for p in (sample / kind).glob("*.png")) == sorted(
            p.name for p in (REPO / "sarn_ros" / "sample" / kind).glob("*.png")
        )
    assert (sample / "ATTRIBUTION.md").exists()
    node = subprocess.run(
        [str(install / "lib" / "sarn_ros" / "sarn_deblur_node"), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert node.returncode == 0 and "future_frames" in node.stdout
