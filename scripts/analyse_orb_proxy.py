"""Why does deblurring change the ORB SLAM proxy on a real stream? Prints, per weights file:
matches and RANSAC inliers (input vs deblurred), fine-detail statistics, and three controls
(the input smoothed by a Gaussian; the model output with the input's finest band put back;
each frame deblurred alone, without the neighbours and recurrent state of a stream).

    .venv/bin/python scripts/analyse_orb_proxy.py ../shared/data/SelfDeblur_real/real_demo/blur \
        weights/sarn_recurrent.pth [more.pth ...]

A bag's first camera is measured unless ``--topic`` names another.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from sarn_ros import StreamDeblurrer, load_model, metrics
from sarn_ros.checkpoint import CheckpointError
from sarn_ros.evaluation import deblur_sequence, orb_counts
from sarn_ros.offline import kind_of
from sarn_ros.recordings import read_streams
from sarn_ros.tools.eval import short_names


def low_pass(img: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return cv2.GaussianBlur(metrics.grey(img).astype(np.float32), (0, 0), sigma)


def high_pass(img: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return metrics.grey(img).astype(np.float32) - low_pass(img, sigma)


def one_camera(path: Path, topic: str | None) -> list[list[np.ndarray]]:
    """Every piece of ``topic``'s camera (None: the first camera): where its size changes or
    its stamps break off it comes in pieces (``name#1``, ...), and pairs are only matched
    within one piece."""
    if topic is not None and (kind := kind_of(path)) != "bag":  # read_streams ignores it there
        raise ValueError(f"--topic goes with a rosbag2; {path} is a {kind}")
    _, streams = read_streams(path, topics=None if topic is None else [topic])
    camera = [n.split("#")[0] for n, _ in streams]
    pieces = [frames for c, (_, frames) in zip(camera, streams, strict=True) if c == camera[0]]
    if all(len(p) < 2 for p in pieces):
        raise ValueError(f"{streams[0][0]}: ORB matches need at least 2 consecutive frames")
    return pieces


def report(label: str, pieces: list[list[np.ndarray]]) -> None:
    """Means over the frame pairs of every piece, as if the pieces were one stream."""
    counts = [orb_counts(p) for p in pieces]
    matches = np.mean([m for c in counts for m in c[0]])
    inliers = np.mean([i for c in counts for i in c[1]])
    share = f"{inliers / matches:5.1%}" if matches else "  n/a"  # a featureless stream
    hp = np.concatenate([high_pass(f).ravel() for p in pieces for f in p])
    print(
        f"{label:<44} matches {matches:6.1f}  inliers {inliers:6.1f} ({share})"
        f"  finest band: median |hp| {np.median(np.abs(hp)):.2f}, std {hp.std():.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stream", type=Path, help="image folder, video or rosbag2")
    ap.add_argument("--topic", help="a bag's camera image topic (default: its first camera)")
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--future-frames", type=int, default=2, choices=(0, 1, 2))
    args = ap.parse_args()
    try:  # the weights first, loaded: a mistyped name or a file that is no checkpoint is
        # found before the stream is read and measured
        models = {w: load_model(w) for w in args.weights}
        pieces = one_camera(args.stream, args.topic)
    except (ValueError, OSError, CheckpointError) as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    report("input", pieces)
    report(
        "input, Gaussian sigma 1.2", [[cv2.GaussianBlur(f, (0, 0), 1.2) for f in p] for p in pieces]
    )
    names = short_names(args.weights)  # two runs' best.pth: rec/best.pth and single/best.pth
    for w in args.weights:
        engine = StreamDeblurrer(models[w], device="cpu", future_frames=args.future_frames)
        outs = [deblur_sequence(engine, p, "stream") for p in pieces]
        report(names[w], outs)
        restored = [  # the model's output below the finest band, the input's finest band
            [
                np.clip(low_pass(o) + high_pass(f), 0, 255).astype(np.uint8)
                for f, o in zip(p, po, strict=True)
            ]
            for p, po in zip(pieces, outs, strict=True)
        ]
        report(f"{names[w]} + input finest band", restored)
        if engine.is_recurrent:
            alone = [[deblur_sequence(engine, [f], "stream")[0] for f in p] for p in pieces]
            report(f"{names[w]}, each frame alone", alone)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # a stop, not a traceback
        print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
        sys.exit(130)
