"""A separate process for test_ros_transport: publishes or receives one kind of image.

usage: ros_image_peer.py pub|sub WIDTH HEIGHT ENCODING COUNT RELIABLE(0/1) OUT.npz
The publisher sends COUNT frames made from a fixed seed; the subscriber saves what it got.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from sarn_ros.ros.image_conversion import image_to_numpy, numpy_to_image


def frame(i: int, w: int, h: int, encoding: str) -> np.ndarray:
    rng = np.random.default_rng(i)
    shape = (h, w) if encoding.startswith("mono") else (h, w, 3)
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=np.int64).astype(dtype)


def main() -> None:
    role, w, h, encoding, count, reliable, out = sys.argv[1:8]
    w, h, count = int(w), int(h), int(count)
    qos = QoSProfile(
        depth=count,
        reliability=ReliabilityPolicy.RELIABLE
        if reliable == "1"
        else ReliabilityPolicy.BEST_EFFORT,
    )
    rclpy.init()
    node = rclpy.create_node(f"peer_{role}")
    deadline = time.monotonic() + 60
    if role == "pub":
        pub = node.create_publisher(Image, "peer_image", qos)
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        time.sleep(1.0)  # let the subscriber's side of discovery finish too
        for i in range(count):
            msg = numpy_to_image(frame(i, w, h, encoding), encoding)
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000 + i, 123456789
            msg.header.frame_id = f"camera_{i}"
            pub.publish(msg)
            time.sleep(0.05)
        time.sleep(2.0)
    else:
        got: list[tuple] = []
        node.create_subscription(
            Image,
            "peer_image",
            lambda m: got.append(
                (
                    image_to_numpy(m).copy(),
                    m.encoding,
                    m.header.stamp.sec,
                    m.header.stamp.nanosec,
                    m.header.frame_id,
                )
            ),
            qos,
        )
        while len(got) < count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        np.savez(
            out,
            images=np.array([g[0] for g in got]) if got else np.zeros(0),
            meta=np.array([[g[1], g[2], g[3], g[4]] for g in got], dtype=object),
        )
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
