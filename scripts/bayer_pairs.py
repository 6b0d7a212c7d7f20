"""Blurred/sharp pair folders as a Bayer camera would give them to the node: each blurred frame
is sampled through an RGGB mosaic and demosaiced by the node's own decoder; the sharp frame is
kept. `sarn eval --pairs` on the result tells how deblurring fares behind a Bayer sensor.

    .venv/bin/python scripts/bayer_pairs.py /tmp/bayer \
        ../shared/data/GoPro_DeepDeblur_examples/Flower [--debayer vng|edge_aware|bilinear]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from sarn_ros.data.datasets import list_images
from sarn_ros.ros.image_conversion import DEBAYER, decode_image


def rggb(rgb: np.ndarray) -> np.ndarray:
    """What an RGGB sensor records of an RGB picture (even size)."""
    raw = np.empty(rgb.shape[:2], rgb.dtype)
    raw[0::2, 0::2], raw[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    raw[1::2, 0::2], raw[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    return raw


def through_bayer(rgb: np.ndarray, debayer: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    raw = rggb(rgb)
    msg = SimpleNamespace(
        height=h, width=w, encoding="bayer_rggb8", step=w, is_bigendian=0, data=raw.tobytes()
    )
    return decode_image(msg, debayer)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("pairs", type=Path, nargs="+", help="folders with blur/ and sharp/")
    parser.add_argument("--debayer", default="vng", choices=tuple(DEBAYER))
    args = parser.parse_args()
    if args.out.exists() and not args.out.is_dir():
        parser.exit(2, f"{parser.prog}: error: not a folder: {args.out}\n")
    for src in args.pairs:  # every pair before anything is written: no half-made output
        for sub in ("blur", "sharp"):
            if not (src / sub).is_dir():
                parser.exit(2, f"{parser.prog}: error: no {sub}/ folder in {src}\n")
    for src in args.pairs:
        dst = args.out / src.name
        (dst / "blur").mkdir(parents=True, exist_ok=True)
        shutil.copytree(src / "sharp", dst / "sharp", dirs_exist_ok=True)
        for p in list_images(src / "blur"):
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SystemExit(f"{p}: not an image OpenCV can read")
            rgb = bgr[..., ::-1]
            if rgb.shape[0] % 2 or rgb.shape[1] % 2:
                raise SystemExit(f"{p}: a Bayer mosaic needs an even width and height")
            out = through_bayer(np.ascontiguousarray(rgb), args.debayer)
            cv2.imwrite(str(dst / "blur" / p.name), out[..., ::-1])
        print(f"{src} -> {dst} ({args.debayer})")


if __name__ == "__main__":
    main()
