"""Time the node's conversion of camera-native 1280x720 frames (Bayer, YUV) to RGB.

Usage: .venv/bin/python scripts/bench_decode.py [--width 1280 --height 720 --repeat 50]
Prints milliseconds per frame for each raw encoding, next to rgb8 (a zero-copy view).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

from sarn_ros.ros.image_conversion import RAW, decode_image

CASES = ["rgb8", "bayer_rggb8", "bayer_rggb16", "yuv422_yuy2", "yuv422", "nv12"]


def message(encoding: str, width: int, height: int) -> SimpleNamespace:
    """A duck-typed sensor_msgs/Image of random data in ``encoding``."""
    if encoding == "rgb8":
        dtype, rows, cols = np.dtype(np.uint8), height, width * 3
    else:
        raw = RAW[encoding]
        dtype, cols = raw.dtype, width * raw.channels
        rows = height * 3 // 2 if raw.planar_420 else height
    buf = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (rows, cols), dtype=dtype)
    return SimpleNamespace(
        height=height,
        width=width,
        encoding=encoding,
        step=buf[0].nbytes,
        is_bigendian=0,
        data=buf.tobytes(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    for encoding in CASES:
        msg = message(encoding, args.width, args.height)
        decode_image(msg)  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeat):
            decode_image(msg)
        ms = (time.perf_counter() - start) / args.repeat * 1e3
        print(f"{encoding:>14}: {ms:6.2f} ms per {args.width}x{args.height} frame")


if __name__ == "__main__":
    main()
