"""Two separate processes exchange images over rclpy + Fast DDS (loopback only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sarn_ros.resources import dds_profile_variable

PEER = str(Path(__file__).with_name("ros_image_peer.py"))
PROFILE = str(Path(__file__).resolve().parent.parent / "config" / "fastdds_shm.xml")
pytestmark = pytest.mark.ros


def exchange(tmp_path: Path, w: int, h: int, encoding: str, count: int, reliable: bool) -> dict:
    out = tmp_path / "received.npz"
    env = dict(os.environ, **{dds_profile_variable(): PROFILE})
    args = [str(w), str(h), encoding, str(count), "1" if reliable else "0", str(out)]
    sub = subprocess.Popen([sys.executable, PEER, "sub", *args], env=env)
    pub = subprocess.run([sys.executable, PEER, "pub", *args], env=env, timeout=120)
    assert pub.returncode == 0
    assert sub.wait(timeout=120) == 0
    return dict(np.load(out, allow_pickle=True))


def expected(i: int, w: int, h: int, encoding: str) -> np.ndarray:
    sys.path.insert(0, str(Path(PEER).parent))
    from ros_image_peer import frame

    return frame(i, w, h, encoding)


@pytest.mark.parametrize("encoding", ["rgb8", "mono16"])
def test_640x480_image_arrives_unchanged(tmp_path, ros_domain, encoding):
    got = exchange(tmp_path, 640, 480, encoding, count=3, reliable=True)
    assert len(got["meta"]) == 3
    for i, (img, meta) in enumerate(zip(got["images"], got["meta"], strict=True)):
        np.testing.assert_array_equal(img, expected(i, 640, 480, encoding))
        assert list(meta) == [encoding, 1700000000 + i, 123456789, f"camera_{i}"]


@pytest.mark.slow
def test_720p_best_effort_arrives_with_the_shipped_profile(tmp_path, ros_domain):
    got = exchange(tmp_path, 1280, 720, "rgb8", count=10, reliable=False)
    assert len(got["meta"]) >= 9, "best-effort 720p frames lost despite the shared-memory profile"
    np.testing.assert_array_equal(
        got["images"][0], expected(int(got["meta"][0][1]) - 1700000000, 1280, 720, "rgb8")
    )
