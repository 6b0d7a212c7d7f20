"""Blurred/sharp pair folders as a Bayer camera would give them to the node: each blurred frame
is sampled through an RGGB mosaic and demosaiced by the node's own decoder; the sharp frame is
kept. `sarn eval --pairs` on the result tells how deblurring fares behind a Bayer sensor.

    .venv/bin/python scripts/bayer_pairs.py /tmp/bayer \
        ../shared/data/GoPro_DeepDeblur_examples/Flower [--debayer vng|edge_aware|bilinear]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from sarn_ros.data.datasets import list_images, pair_files
from sarn_ros.image_files import imread, imwrite
from sarn_ros.ros.image_conversion import DEBAYER, MAX_SIDE, decode_image
from sarn_ros.tools.options import how_stopped, stops_as_interrupts


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


def readable_blur(src: Path) -> list[Path]:
    """The blur/ frames of ``src``, each read once up front so an odd size or a broken file
    is refused before any pair is written (these pair sets are small)."""
    paths = list_images(src / "blur")
    if not paths:
        raise ValueError(f"no images in {src / 'blur'}")
    for p in paths:
        bgr = imread(p, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{p}: not an image OpenCV can read")
        if bgr.shape[0] % 2 or bgr.shape[1] % 2:
            raise ValueError(f"{p}: a Bayer mosaic needs an even width and height")
        if max(bgr.shape[:2]) > MAX_SIDE:  # TooLarge's traceback, pairs written before it
            raise ValueError(f"{p}: sides up to {MAX_SIDE} px are deblurred")
    return paths


def plan(out: Path, pairs: list[Path]) -> list[tuple[Path, Path, list[Path]]]:
    """(pair, OUT/NAME, blur frames) for every pair, all checked before anything is written:
    no pair merged into another's or an earlier run's folder, none written into an input (OUT
    in a pair's sharp/ copied itself into itself until a RecursionError), none that does not
    pair."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"not a folder: {out}")
    jobs = []
    for src in pairs:
        for sub in ("blur", "sharp"):
            if not (src / sub).is_dir():
                raise ValueError(f"no {sub}/ folder in {src}")
        if out.resolve().is_relative_to(src.resolve()):
            raise ValueError(f"{out} is in the pair {src}: write the pairs outside it")
        dst = out / Path(os.path.abspath(src)).name  # "." has none; a link keeps its own
        if dst.exists() or dst.resolve() in {d.resolve() for _, d, _ in jobs}:
            raise ValueError(f"{dst} exists or is named twice: each pair needs its own name")
        blur = readable_blur(src)
        pair_files(str(src), src / "blur", src / "sharp")  # counts and names that pair
        jobs.append((src, dst, blur))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("pairs", type=Path, nargs="+", help="folders with blur/ and sharp/")
    parser.add_argument("--debayer", default="vng", choices=tuple(DEBAYER))
    args = parser.parse_args()
    try:
        with stops_as_interrupts():
            jobs = plan(args.out, args.pairs)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt as exc:  # in the check up front (a traceback): nothing written
        how, code = how_stopped(exc)
        parser.exit(code, f"{parser.prog}: {how}\n")
    for src, dst, blur in jobs:
        partial = dst.with_name(f".{dst.name}.partial")  # readers skip it; renamed when whole
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with stops_as_interrupts():  # `timeout`'s SIGTERM as Ctrl-C: it left the partial
                (partial / "blur").mkdir(parents=True)
                # its files only, not their modes: a read-only sharp/ (a shared data set) made
                # a folder the clean-up could not empty, and an output rm -rf could not remove
                shutil.copytree(src / "sharp", partial / "sharp", copy_function=shutil.copyfile)
                for folder in [partial / "sharp", *(partial / "sharp").rglob("*")]:
                    if folder.is_dir():
                        folder.chmod(folder.stat().st_mode | 0o700)
                for p in blur:
                    bgr = imread(p, cv2.IMREAD_COLOR)
                    if bgr is None:  # read up front, gone since
                        raise OSError(f"cannot read {p}")
                    out = through_bayer(np.ascontiguousarray(bgr[..., ::-1]), args.debayer)
                    # lossless: a JPEG written again lost as much as the demosaicing it measures
                    # (x.jpg and x.png in one blur/ are refused by pair_files: one name)
                    imwrite(partial / "blur" / p.with_suffix(".png").name, out[..., ::-1])
                partial.rename(dst)
        except OSError as exc:
            parser.exit(1, f"{parser.prog}: error: {exc}\n")
        except KeyboardInterrupt as exc:  # a stop: the pairs written before are whole
            how, code = how_stopped(exc)
            parser.exit(code, f"{parser.prog}: {how}: {dst} not written\n")
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        print(f"{src} -> {dst} ({args.debayer})")


if __name__ == "__main__":
    main()
