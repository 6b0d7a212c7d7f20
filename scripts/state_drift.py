"""Does the recurrent state drift on long streams? Training unrolls the ConvLSTM over clips of
a few frames; the engine and the node carry it for as long as a camera runs.

    .venv/bin/python scripts/state_drift.py ../shared/data/sharp/Vid4/calendar

Plays a sharp video forwards and backwards (ping-pong, so a short held-out video makes a
long stream) through the synthetic blur generator, deblurs it once with the state carried
throughout and once with a reset every ``--segment`` frames, and prints the PSNR gain over the
blurred input per segment for both. Equal gains late in the stream mean no drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from sarn_ros import StreamDeblurrer
from sarn_ros.archs import RecurrentSARN
from sarn_ros.checkpoint import CheckpointError, load_model
from sarn_ros.data.blur_synth import BlurParams, synthesize
from sarn_ros.data.datasets import list_images, read_rgb, resize_by
from sarn_ros.engine import resolve_device
from sarn_ros.metrics import psnr
from sarn_ros.tools.options import ranged


def ping_pong(n_source: int, n: int) -> list[int]:
    """Frame indices 0..last..1..last.. of length n (no frame repeated at the turns)."""
    cycle = list(range(n_source)) + list(range(n_source - 2, 0, -1))
    return [cycle[i % len(cycle)] for i in range(n)]


def gains(
    blurred: list[np.ndarray],
    sharp: list[np.ndarray],
    model: torch.nn.Module,
    device: str,
    reset_every: int,
) -> list[float]:
    engine = StreamDeblurrer(model, device=device, future_frames=2)
    outs = []
    for i, frame in enumerate(blurred):
        if reset_every and i and i % reset_every == 0:
            engine.reset()
        outs += engine.push(frame, i * 33_000_000)
    outs += engine.flush()
    return [psnr(o.image, s) - psnr(b, s) for o, b, s in zip(outs, blurred, sharp, strict=True)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("video", type=Path, help="a folder of sharp frames")
    p.add_argument("--weights", default="sarn_recurrent")
    p.add_argument("--frames", type=ranged(int, 1), default=240)
    p.add_argument("--segment", type=ranged(int, 1), default=40)
    p.add_argument("--scale", type=ranged(float, above=0, high=1), default=0.5)
    p.add_argument(
        "--blur-px", type=ranged(float, 0), default=24.0, help="at full resolution, as sarn eval"
    )
    p.add_argument("--seed", type=ranged(int, 0), default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    try:  # a mistyped name, weights that are no checkpoint, a device or an empty folder is
        # found before minutes of blurring
        model = load_model(args.weights)
        if not isinstance(model, RecurrentSARN):  # its two columns would be equal, unsaid
            raise ValueError(f"{args.weights} is a single-image model: it carries no state")
        resolve_device(args.device)
        if not args.video.is_dir():
            raise ValueError(f"not a folder: {args.video}")
        files = list_images(args.video)
        if not files:
            raise ValueError(f"no images in {args.video}")
        source = [resize_by(read_rgb(f), args.scale) for f in files]
        for f, img in zip(files, source, strict=True):  # the blur generator takes one size
            if img.shape != source[0].shape:
                raise ValueError(
                    f"{f} is {img.shape[1]}x{img.shape[0]} after --scale, "
                    f"{files[0].name} {source[0].shape[1]}x{source[0].shape[0]}"
                )
        if min(source[0].shape[:2]) < 16:  # 1 px frames blurred equal to sharp: -inf dB
            h, w = source[0].shape[:2]
            raise ValueError(f"{w}x{h} after --scale: at least 16 px a side")
    except (ValueError, RuntimeError, CheckpointError) as exc:
        p.exit(2, f"{p.prog}: error: {exc}\n")
    frames = [source[i] for i in ping_pong(len(source), args.frames)]
    params = BlurParams(blur_px=args.blur_px * args.scale, object_prob=0.0)
    blurred, sharp = synthesize(frames, params=params, seed=args.seed)
    if same := [
        i for i, (b, s) in enumerate(zip(blurred, sharp, strict=True)) if np.array_equal(b, s)
    ]:
        # a flat frame blurs to itself: its input PSNR is inf, every gain -inf dB
        p.exit(
            2,
            f"{p.prog}: error: frame {same[0]} blurred equals its sharp frame (flat content): "
            "no gain to measure; give textured frames\n",
        )
    carried = gains(blurred, sharp, model, args.device, 0)
    reset = gains(blurred, sharp, model, args.device, args.segment)
    resets = f"reset every {args.segment}" if args.segment < args.frames else "never reset"
    for k in range(0, args.frames, args.segment):
        part = slice(k, k + args.segment)
        print(
            f"frames {k:4d}-{min(k + args.segment, args.frames) - 1:4d}: state carried "
            f"{np.mean(carried[part]):+.3f} dB, {resets} {np.mean(reset[part]):+.3f} dB"
        )
    print(
        f"all {args.frames}: carried {np.mean(carried):+.3f} dB, {resets} {np.mean(reset):+.3f} dB"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # a stop, not a traceback
        print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
        sys.exit(130)
