"""Time the node's conversion of camera-native frames (Bayer, YUV) to RGB; with ``--image``,
also how close each demosaicing method gets to a real RGB picture seen through an RGGB sensor.

Usage: .venv/bin/python scripts/bench_decode.py [--width 1280 --height 720 --repeat 20]
           [--image ../shared/data/GoPro_DeepDeblur_examples/Flower/blur/Flower_blur1.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from bayer_pairs import rggb  # this folder's script (run as a file, so it is on sys.path)

from sarn_ros.metrics import psnr
from sarn_ros.ros.image_conversion import DEBAYER, MAX_SIDE, RAW, decode_image
from sarn_ros.tools.options import ranged

YUV = ["yuv422_yuy2", "yuv422", "nv12"]


def message(encoding: str, buf: np.ndarray, width: int, height: int) -> SimpleNamespace:
    """A duck-typed sensor_msgs/Image holding ``buf``'s rows."""
    return SimpleNamespace(
        height=height,
        width=width,
        encoding=encoding,
        step=buf[0].nbytes,
        is_bigendian=0,
        data=buf.tobytes(),
    )


def random_message(encoding: str, width: int, height: int) -> SimpleNamespace:
    raw = RAW[encoding]
    rows = height * 3 // 2 if raw.planar_420 else height
    top = np.iinfo(raw.dtype).max
    buf = np.random.default_rng(0).integers(0, top, (rows, width * raw.channels), raw.dtype)
    return message(encoding, buf, width, height)


def ms_per_call(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def read_picture(path: Path) -> np.ndarray:
    """``path`` as RGB cropped to an even size (whole RGGB cells); ValueError says what is
    wrong, so that a bad ``--image`` is refused before the timings, not after them."""
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"not an image OpenCV can read: {path}")
    h, w = (s - s % 2 for s in bgr.shape[:2])
    if not h or not w:
        raise ValueError(f"smaller than one 2x2 Bayer cell: {path}")
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"over {MAX_SIDE} px a side, which the node does not decode: {path}")
    return np.ascontiguousarray(bgr[:h, :w, ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=ranged(int, 2, MAX_SIDE), default=1280)
    parser.add_argument("--height", type=ranged(int, 2, MAX_SIDE), default=720)
    parser.add_argument("--repeat", type=ranged(int, 1), default=20)
    parser.add_argument("--image", type=Path, help="an RGB picture for the demosaicing quality")
    args = parser.parse_args()
    if args.width % 2 or args.height % 2:  # YUV 4:2:2 and NV12 share chroma between pixel pairs
        parser.error(f"--width and --height must be even, got {args.width}x{args.height}")
    try:
        rgb = read_picture(args.image) if args.image else None
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: --image: {exc}\n")
    size = f"{args.width}x{args.height}"
    for encoding in ("bayer_rggb8", "bayer_rggb16"):
        msg = random_message(encoding, args.width, args.height)
        for method in DEBAYER:
            if method == "vng" and encoding.endswith("16"):
                continue  # OpenCV's VNG is 8-bit only: 16-bit Bayer uses edge_aware for it
            ms = ms_per_call(lambda m=msg, d=method: decode_image(m, d), args.repeat)
            print(f"{encoding:>13} {method:>10}: {ms:6.2f} ms per {size} frame")
    for encoding in YUV:
        msg = random_message(encoding, args.width, args.height)
        ms = ms_per_call(lambda m=msg: decode_image(m), args.repeat)
        print(f"{encoding:>13} {'':>10}: {ms:6.2f} ms per {size} frame")
    if rgb is not None:
        h, w = rgb.shape[:2]
        msg = message("bayer_rggb8", rggb(rgb), w, h)
        for method in DEBAYER:
            out, _ = decode_image(msg, method)
            print(f"{args.image.name} via RGGB, {method:>10}: {psnr(out, rgb):.2f} dB vs the RGB")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # a stop, not a traceback
        print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
        sys.exit(130)
