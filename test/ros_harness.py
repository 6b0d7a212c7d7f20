"""Helpers for tests that run sarn_deblur_node in its own process and talk to it over DDS."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from sarn_ros.resources import node_command
from sarn_ros.ros.image_conversion import numpy_to_image

REPO = Path(__file__).resolve().parent.parent
CONFIG = str(REPO / "config" / "sarn_deblur.yaml")


def qos(reliable: bool, depth: int = 50) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


class NodeProcess:
    """sarn_deblur_node started by its console script with the packaged config."""

    def __init__(self, weights: Path, remaps: dict[str, str] | None = None, **params: Any) -> None:
        args = [*node_command(), "--ros-args", "--params-file", CONFIG, "-p", f"weights:={weights}"]
        params.setdefault("device", "cpu")
        for k, v in params.items():
            value = str(v).lower() if isinstance(v, bool) else v
            args += ["-p", f"{k}:={value}"]
        for name, topic in (remaps or {}).items():
            args += ["-r", f"{name}:={topic}"]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.result: tuple[int, str] | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """SIGINT (Ctrl-C, `ros2 launch`) or SIGTERM; returns (exit code, output). Idempotent."""
        if self.result is None:
            if self.alive():
                self.proc.send_signal(sig)
            try:
                out, _ = self.proc.communicate(timeout=20)
                self.result = self.proc.returncode, out
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, _ = self.proc.communicate()
                self.result = -9, out
        return self.result


def beside(image: str) -> str:
    """The camera_info topic of ``image``."""
    folder = image.rpartition("/")[0]
    return f"{folder}/camera_info" if folder else "camera_info"


class Camera:
    """A fake camera plus a listener on the node's outputs, in this test process."""

    def __init__(
        self,
        node: Node,
        ns: str = "",
        reliable: bool = True,
        image: str = "image_raw",
        output: str = "deblurred/image_raw",
    ) -> None:
        """``image`` and ``output`` with their camera_info beside them, as image_transport
        names them."""
        p = f"{ns}/" if ns else ""
        self.node = node
        self.pub = node.create_publisher(Image, f"{p}{image}", qos(reliable))
        self.info_pub = node.create_publisher(CameraInfo, f"{p}{beside(image)}", qos(reliable))
        self.outputs: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.arrival: dict[int, float] = {}
        node.create_subscription(Image, f"{p}{output}", self._on_out, qos(True))
        node.create_subscription(CameraInfo, f"{p}{beside(output)}", self.infos.append, qos(True))
        self.out_topic = f"{p}{output}"

    def _on_out(self, msg: Image) -> None:
        self.outputs.append(msg)
        self.arrival[stamp(msg)] = time.monotonic()

    def publish(
        self, frame: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "cam"
    ) -> Image:
        msg = numpy_to_image(frame, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame_id
        info = CameraInfo(header=msg.header, width=msg.width, height=msg.height)
        info.k = [50.0, 0.0, msg.width / 2, 0.0, 50.0, msg.height / 2, 0.0, 0.0, 1.0]
        self.info_pub.publish(info)
        self.pub.publish(msg)
        return msg

    def publish_raw(self, msg: Image) -> None:
        self.pub.publish(msg)


class Diagnostics:
    """The node's latest /diagnostics key/values."""

    def __init__(self, node: Node) -> None:
        self.values: dict[str, str] = {}
        self.message = ""
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on, 10)

    def _on(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "sarn_deblur" in status.name:
                self.values = {kv.key: kv.value for kv in status.values}
                self.message = status.message

    def count(self, key: str) -> int:
        return int(self.values.get(key, 0))


def stamp(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def spin_until(node: Node, cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        rclpy.spin_once(node, timeout_sec=0.02)
    return cond()


def wait_connected(
    node: Node, cams: list[Camera], proc: NodeProcess, timeout: float = 40.0
) -> None:
    """Until the node subscribes to every camera and publishes every output topic."""
    ok = spin_until(
        node,
        lambda: (
            not proc.alive()
            or all(
                c.pub.get_subscription_count() > 0 and node.count_publishers(c.out_topic) > 0
                for c in cams
            )
        ),
        timeout,
    )
    assert proc.alive(), proc.stop()[1]
    assert ok, "node did not connect"
    spin_until(node, lambda: False, 0.5)  # let discovery of the reverse direction settle
