"""Real blurred/sharp video pairs from a high-frame-rate recording, made as GoPro's and REDS'
were: each blurred frame averages ``--window`` consecutive frames (the exposure), its ground
truth is the middle one, and a new blurred frame starts every ``--stride`` frames (240 fps,
window 7, stride 8: a 30 fps camera with its shutter open 7/8 of the frame interval). The
output is one sequence in the GoPro layout, ``OUT/NAME/{blur,sharp}/``, which `sarn eval
--pairs`, `sarn train --data` and `--val-pairs` read; its blur is the recording's own camera
and scene motion, so a recurrent model is judged on real motion, frame after frame.

    .venv/bin/python scripts/highspeed_pairs.py FRAMES_DIR OUT [--name NAME] [--window 7]
        [--stride 8] [--linear-light]
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sarn_ros.data.blur_synth import transfer
from sarn_ros.data.datasets import folder_name, list_images, read_rgb
from sarn_ros.image_files import imwrite
from sarn_ros.tools.options import how_stopped, stops_as_interrupts


def average(frames: list[np.ndarray], linear_light: bool) -> np.ndarray:
    """The exposure of ``frames``, averaged as the generator averages its sub-frames: in
    linear light (GoPro's ``blur_gamma``) or as 8-bit values (GoPro's standard ``blur``)."""
    decode, encode = transfer(linear_light)
    return encode(np.mean([decode(f) for f in frames], axis=0))


def check(frames: int, window: int, stride: int) -> None:
    """Refuse, before anything is written, settings no camera could have recorded."""
    if window < 1 or window % 2 == 0:
        raise ValueError(
            f"--window must be a positive odd number, so one frame is mid-exposure (got {window})"
        )
    if window == 1:  # blurred == sharp: sarn eval's input PSNR inf, and its pooled row with it
        raise ValueError("--window 1 blurs nothing: each pair would be its sharp frame twice")
    if stride < window:
        raise ValueError(f"--stride {stride} < --window {window}: exposures would overlap")
    if frames < window:
        raise ValueError(f"{frames} readable frames, fewer than one --window of {window}")


def pairs(
    paths: list[Path], window: int, stride: int, linear_light: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(blurred, sharp) for every whole window; only ``window`` frames are held at a time."""
    check(len(paths), window, stride)
    shape = None
    for start in range(0, len(paths) - window + 1, stride):
        frames = []
        for p in paths[start : start + window]:
            frame = read_rgb(p)
            shape = shape or frame.shape
            if frame.shape != shape:  # np.mean would fail with no file named
                raise ValueError(
                    f"{p} is {frame.shape[1]}x{frame.shape[0]}, "
                    f"the frames before it {shape[1]}x{shape[0]}"
                )
            frames.append(frame)
        yield average(frames, linear_light), frames[window // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("frames", type=Path, help="folder of consecutive high-frame-rate frames")
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", help="sequence folder name (default: the frames folder's)")
    ap.add_argument(
        "--window", type=int, default=7, help="frames per exposure (odd; default %(default)s)"
    )
    ap.add_argument(
        "--stride", type=int, default=8, help="frames between exposure starts (default %(default)s)"
    )
    ap.add_argument("--linear-light", action="store_true", help="average decoded sRGB")
    args = ap.parse_args()
    if not args.frames.is_dir():
        ap.exit(2, f"{ap.prog}: error: no folder {args.frames}\n")
    if args.out.exists() and not args.out.is_dir():
        ap.exit(2, f"{ap.prog}: error: not a folder: {args.out}\n")
    paths = list_images(args.frames)
    # a link's own name (`GOPR0477` linked to a card's DCIM/100GOPRO), `.` the folder's
    name = args.name or folder_name(args.frames)
    if name.startswith(".") or "/" in name or "\\" in name:  # readers skip hidden folders
        ap.exit(2, f"{ap.prog}: error: --name {name!r}: give a plain folder name (no '.' first)\n")
    seq = args.out / name
    if seq.exists():  # an earlier run's frames left beside these would read as one sequence
        ap.exit(2, f"{ap.prog}: error: {seq} exists: remove it, or give another --name\n")
    partial = seq.with_name(f".{seq.name}.partial")  # readers skip it; renamed when whole
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with stops_as_interrupts():  # `timeout`'s SIGTERM as Ctrl-C: it left the partial
            check(len(paths), args.window, args.stride)
            (partial / "blur").mkdir(parents=True)
            (partial / "sharp").mkdir()
            n = 0
            for n, (blur, sharp) in enumerate(
                pairs(paths, args.window, args.stride, args.linear_light), 1
            ):
                for side, img in (("blur", blur), ("sharp", sharp)):
                    imwrite(partial / side / f"{n:06d}.png", img[..., ::-1])
            partial.rename(seq)
    except (ValueError, OSError) as exc:  # the settings, a frame of another size or an
        # unreadable one, an output that cannot be written
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    except KeyboardInterrupt as exc:  # a stop, not a failure: nothing half-made is left
        how, code = how_stopped(exc)
        ap.exit(code, f"{ap.prog}: {how}: no sequence written\n")
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(f"{n} blurred/sharp pairs from {len(paths)} frames in {seq}")


if __name__ == "__main__":
    main()
