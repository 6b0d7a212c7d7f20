"""Shared fixtures. ROS tests get their own ROS_DOMAIN_ID and stay on loopback."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sarn_ros.resources import keep_dds_local, use_dds_profile

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# DDS traffic of every test, and of every process a test starts, stays on this machine.
keep_dds_local()
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
_profile = REPO / "config" / "fastdds_shm.xml"
if _profile.exists():
    use_dds_profile(_profile)

# Domain ids 1..100 are valid for Fast DDS; start at an offset from the pid so two test runs
# on one machine are unlikely to share a domain.
_domains = itertools.cycle(range(1, 101))
for _ in range(os.getpid() % 100):
    next(_domains)


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> int:
    """A fresh ROS_DOMAIN_ID for this test (set in os.environ, inherited by subprocesses)."""
    domain = next(_domains)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def more_domains() -> Callable[[], int]:
    """Draws further fresh domain ids, for processes of one test that should not meet."""
    return lambda: next(_domains)


@pytest.fixture(scope="session")
def tiny_recurrent_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained, small RecurrentSARN checkpoint: fast enough for node and tool tests."""
    import torch

    from sarn_ros.archs import RecurrentSARN
    from sarn_ros.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    path = tmp_path_factory.mktemp("weights") / "tiny_recurrent.pth"
    return save_checkpoint(model, path, meta={"note": "untrained test fixture"})


@pytest.fixture(scope="session")
def tiny_recurrent_onnx(tiny_recurrent_checkpoint: Path, tmp_path_factory) -> Path:
    """``tiny_recurrent_checkpoint`` through ``sarn export``'s own export (default opset)."""
    from importlib.util import find_spec

    from sarn_ros.checkpoint import load_model
    from sarn_ros.tools import export

    if not export.has_dynamo_exporter() or find_spec("onnxscript") is None:
        pytest.skip("no dynamo ONNX exporter (PyTorch < 2.5) or no onnxscript")
    model = load_model(tiny_recurrent_checkpoint, deform_impl="grid_sample")
    path = tmp_path_factory.mktemp("onnx") / "tiny_recurrent.onnx"
    export.export(model, path, 32, 32, export.DEFAULT_OPSET)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture
def ctrl_c_in_rclpy_set_up(monkeypatch: pytest.MonkeyPatch) -> list:
    """For tools that start a node process, then set up their own rclpy side: the processes
    started (subprocess.Popen), and a Ctrl-C as rclpy.create_node runs."""
    import subprocess

    import rclpy

    started: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def spy(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", spy)
    monkeypatch.setattr(rclpy, "create_node", ctrl_c)
    return started


@pytest.fixture
def sigint_in_rclpy_set_up(ctrl_c_in_rclpy_set_up: list, monkeypatch: pytest.MonkeyPatch):
    """As ctrl_c_in_rclpy_set_up, with a real SIGINT as rclpy.create_node runs: the processes
    started, and whether rclpy's context was still up when the KeyboardInterrupt came (rclpy's
    own handlers shut it down first)."""
    import signal

    import rclpy

    context_up: list[bool] = []

    def sigint(*args, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            context_up.append(rclpy.ok())
            raise

    monkeypatch.setattr(rclpy, "create_node", sigint)
    return ctrl_c_in_rclpy_set_up, context_up
