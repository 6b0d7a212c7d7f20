"""A real `colcon build` of the package gives the layout `ros2 run` and `ros2 launch` use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the venv's colcon, else the one on PATH (`colcon test` of a ROS install)
COLCON = Path(sys.executable).parent / "colcon"
COLCON = COLCON if COLCON.exists() else Path(shutil.which("colcon") or COLCON)
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


def colcon_build(ws: Path, *options: str) -> None:
    """``colcon build`` of a copy of this repository in ``ws``; it must build without a
    warning (colcon reports any stderr output of a package)."""
    shutil.copytree(REPO, ws / "src" / "sarn_ros", ignore=SKIP)
    # set on some machines; setuptools then warns that it skips byte-compiling
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [str(COLCON), "build", *options, "--base-paths", "src"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stderr output" not in result.stdout, result.stdout + result.stderr


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    colcon_build(ws)
    return ws / "install" / "sarn_ros"


def test_installed_layout(install: Path):
    share = install / "share" / "sarn_ros"
    for exe in ("sarn_deblur_node", "sarn"):  # `ros2 run sarn_ros sarn deblur ...` (README)
        assert os.access(install / "lib" / "sarn_ros" / exe, os.X_OK), exe
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "sarn_ros").exists()
    assert (share / "package.xml").exists()
    assert "Apache License" in (share / "LICENSE").read_text()  # package.xml's licence, shipped
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
        "print(sarn_ros.__file__); print(r.find_share_file('config/sarn_deblur.yaml'));"
        "print(*r.share_dirs(), sep='|')"
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
    module, config, dirs = out.stdout.split()
    assert module.startswith(str(site))
    # site-packages is no share folder (a stray weights/ there was found as packaged)
    assert not any(Path(d).is_relative_to(site) for d in dirs.split("|")), dirs
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


def test_symlink_install_runs_from_the_workspace(tmp_path: Path):
    """The developer's build (``--symlink-install``, which setuptools >= 80 breaks: README's
    pin): sourced like a user's workspace, Python finds the package through the workspace
    and the node its share files."""
    ws = tmp_path / "ws"
    colcon_build(ws, "--symlink-install")
    share = ws / "install" / "sarn_ros" / "share" / "sarn_ros"
    assert (share / "launch" / "sarn_deblur.launch.py").is_symlink()
    code = (
        "import sarn_ros, sarn_ros.resources as r;"
        "print(sarn_ros.__file__); print(r.find_share_file('config/sarn_deblur.yaml'))"
    )
    script = (
        f'source install/setup.bash && {sys.executable} -c "{code}" && '
        "install/sarn_ros/lib/sarn_ros/sarn_deblur_node --help"
    )
    out = subprocess.run(
        ["bash", "-c", script], cwd=ws, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    module, config, *node_help = out.stdout.split("\n")
    assert Path(module).resolve().is_relative_to(ws.resolve())  # not the venv's own copy
    assert Path(config) == share / "config" / "sarn_deblur.yaml"
    assert "future_frames" in "\n".join(node_help)
