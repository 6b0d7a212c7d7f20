"""What carrying the recurrent state where it does not belong costs: README's figures for a
missed cut (a scene change no stamp shows, ``~/reset`` not called) and for frames dropped under
``queue_policy: latest`` (the state carried over the frames the worker never got).

    .venv/bin/python scripts/state_cuts.py ../shared/data/sharp/Vid4/calendar \\
        ../shared/data/sharp/Vid4/city

Both videos go through the synthetic blur generator (as ``sarn eval --synthetic``) and are
cropped to one size. Cut: the second video's first ``--frames`` frames deblurred right after
the first video's, with the state carried across, against a fresh start (look-ahead 2).
Gaps: every k-th frame of the first video (``--strides``; blurred at the full rate, as a camera
exposes each frame) with the state carried against a restart at each frame (look-ahead 0, as
the node under ``latest`` on a slow device).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sarn_ros import StreamDeblurrer
from sarn_ros.archs import RecurrentSARN
from sarn_ros.checkpoint import CheckpointError, load_model
from sarn_ros.data.blur_synth import BlurParams, synthesize
from sarn_ros.data.datasets import list_images, read_rgb, resize_by
from sarn_ros.engine import resolve_device
from sarn_ros.metrics import psnr
from sarn_ros.tools.options import ranged

Clip = tuple[list[np.ndarray], list[np.ndarray]]  # blurred, sharp


def blurred_video(folder: Path, args: argparse.Namespace) -> Clip:
    files = list_images(folder) if folder.is_dir() else []
    if len(files) < 3:
        raise ValueError(f"{folder}: a folder of 3 or more sharp frames expected")
    frames = [resize_by(read_rgb(f), args.scale) for f in files]
    if any(f.shape != frames[0].shape for f in frames):
        raise ValueError(f"{folder}: frames of several sizes")
    params = BlurParams(blur_px=args.blur_px * args.scale, object_prob=0.0)
    return synthesize(frames, params=params, seed=args.seed)


def crop(clip: Clip, h: int, w: int) -> Clip:
    """The middle ``h`` x ``w`` of every frame: one size for both videos, so the engine does
    not restart at the cut on its own."""

    def middle(img: np.ndarray) -> np.ndarray:
        top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        return np.ascontiguousarray(img[top : top + h, left : left + w])

    return [middle(b) for b in clip[0]], [middle(s) for s in clip[1]]


def deblurred(
    model: RecurrentSARN,
    device: str,
    frames: list[np.ndarray],
    future: int,
    restart_at: int | None = None,
) -> list[np.ndarray]:
    """``frames`` through one stream; ``restart_at``: reset before that frame and every
    multiple of it (1: each frame alone)."""
    engine = StreamDeblurrer(model, device=device, future_frames=future, max_gap_s=None)
    outs = []
    for i, frame in enumerate(frames):
        if restart_at and i and i % restart_at == 0:
            engine.reset()
        outs += engine.push(frame, i * 33_000_000)
    return [o.image for o in outs + engine.flush()]


def mean_psnr(outs: list[np.ndarray], sharp: list[np.ndarray]) -> float:
    return float(np.mean([psnr(o, s) for o, s in zip(outs, sharp, strict=True)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=Path, help="a folder of sharp frames (also the gaps' video)")
    p.add_argument("second", type=Path, help="a folder of sharp frames: the scene after the cut")
    p.add_argument("--weights", default="sarn_recurrent")
    p.add_argument("--frames", type=ranged(int, 2), default=8, help="frames each side of the cut")
    p.add_argument("--strides", type=ranged(int, 2), nargs="+", default=[2, 4, 8])
    p.add_argument("--scale", type=ranged(float, above=0, high=1), default=0.5)
    p.add_argument(
        "--blur-px", type=ranged(float, 0), default=24.0, help="at full resolution, as sarn eval"
    )
    p.add_argument("--seed", type=ranged(int, 0), default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    try:  # found before minutes of deblurring
        model = load_model(args.weights)
        if not isinstance(model, RecurrentSARN):
            raise ValueError(f"{args.weights} is a single-image model: it carries no state")
        resolve_device(args.device)
        first, second = blurred_video(args.first, args), blurred_video(args.second, args)
        h = min(first[0][0].shape[0], second[0][0].shape[0])
        w = min(first[0][0].shape[1], second[0][0].shape[1])
        if min(h, w) < 16:
            raise ValueError(f"{w}x{h} after --scale: at least 16 px a side")
        first, second = crop(first, h, w), crop(second, h, w)
        if min(len(first[0]), len(second[0])) < args.frames:
            raise ValueError(f"--frames {args.frames}: a video is shorter")
    except (ValueError, RuntimeError, CheckpointError) as exc:
        p.exit(2, f"{p.prog}: error: {exc}\n")

    n = args.frames
    before, after = first[0][:n], second[0][:n]
    sharp = second[1][:n]
    carried = deblurred(model, args.device, before + after, 2)[n:]
    fresh = deblurred(model, args.device, after, 2)
    print(
        f"cut ({args.first.name} then {args.second.name}, {w}x{h}, look-ahead 2): first frame "
        f"after it {psnr(carried[0], sharp[0]):.2f} dB carried, {psnr(fresh[0], sharp[0]):.2f} "
        f"fresh (input {psnr(after[0], sharp[0]):.2f}); the next {n - 1}: "
        f"{mean_psnr(carried[1:], sharp[1:]):.2f} carried, {mean_psnr(fresh[1:], sharp[1:]):.2f} "
        f"fresh (input {mean_psnr(after[1:], sharp[1:]):.2f})",
        flush=True,
    )
    for k in args.strides:
        blurred, sharp = first[0][::k], first[1][::k]
        kept = mean_psnr(deblurred(model, args.device, blurred, 0), sharp)
        alone = mean_psnr(deblurred(model, args.device, blurred, 0, restart_at=1), sharp)
        print(
            f"1 frame in {k} of {args.first.name} ({len(blurred)} frames, look-ahead 0): "
            f"{kept:.2f} dB carried, {alone:.2f} restarted at each frame "
            f"(input {mean_psnr(blurred, sharp):.2f})",
            flush=True,
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # a stop, not a traceback
        print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
        sys.exit(130)
