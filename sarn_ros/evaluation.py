"""Evaluation through the streaming engine, so figures measure exactly what the node does.

Sequences with ground truth give PSNR/SSIM for the model AND for the blurred input (the
baseline any model must beat); sequences without give the SLAM proxy (RANSAC-inlier ORB
matches between consecutive frames) and no-reference sharpness, input vs deblurred.
"""

from __future__ import annotations

import glob
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import metrics
from .data.datasets import Sequence, file_stem
from .engine import StreamDeblurrer
from .image_files import imwrite

FRAME_NS = 33_333_333  # evaluation streams are played as a 30 fps camera


def deblur_sequence(
    engine: StreamDeblurrer,
    frames: list[np.ndarray],
    stream: str,
    progress: Callable[[int], object] | None = None,
) -> list[np.ndarray]:
    """Every frame through the engine as one stream segment (reset first, flushed at the end);
    ``progress(1)`` after each frame pushed (a progress bar's update). The engine must serve
    no other stream: their outputs would come back here and be lost."""
    others = set(engine.stats()["streams"]) - {stream}
    if others:
        raise ValueError(
            f"deblur_sequence needs an engine of its own; this one serves {sorted(others)} "
            "(flush and reset them first)"
        )
    engine.reset(stream)
    engine.flush(stream)
    out = []
    for i, f in enumerate(frames):
        out += engine.push(f, i * FRAME_NS, stream=stream)
        if progress is not None:
            progress(1)
    out += engine.flush(stream)
    engine.reset(stream)
    return [o.image for o in out]


@dataclass
class GTResult:
    name: str
    future_frames: int
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    input_psnr: list[float] = field(default_factory=list)
    input_ssim: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "sequence": self.name,
            "future_frames": self.future_frames,
            "frames": len(self.psnr),
            "psnr": float(np.mean(self.psnr)),
            "ssim": float(np.mean(self.ssim)),
            "input_psnr": float(np.mean(self.input_psnr)),
            "input_ssim": float(np.mean(self.input_ssim)),
            "psnr_gain": float(np.mean(self.psnr) - np.mean(self.input_psnr)),
            "per_frame_psnr": self.psnr,
            "per_frame_input_psnr": self.input_psnr,
            "per_frame_ssim": self.ssim,
            "per_frame_input_ssim": self.input_ssim,
        }


def pooled(rows: list[dict], name: str) -> dict:
    """Frame-weighted means over several sequences' summaries: a benchmark's figure (GoPro's
    is the mean over its 1,111 test frames), not the mean of the sequences' means."""

    def frames(key: str) -> list[float]:
        return [v for r in rows for v in r[key]]

    psnr, input_psnr = frames("per_frame_psnr"), frames("per_frame_input_psnr")
    return {
        "sequence": name,
        "sequences": len(rows),
        "future_frames": rows[0]["future_frames"],
        "frames": len(psnr),
        "psnr": float(np.mean(psnr)),
        "ssim": float(np.mean(frames("per_frame_ssim"))),
        "input_psnr": float(np.mean(input_psnr)),
        "input_ssim": float(np.mean(frames("per_frame_input_ssim"))),
        "psnr_gain": float(np.mean(psnr) - np.mean(input_psnr)),
    }


def evaluate_gt(
    engine: StreamDeblurrer,
    seq: Sequence,
    save_dir: Path | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[GTResult, list[np.ndarray]]:
    res = GTResult(seq.name, engine.future_frames)
    outs = deblur_sequence(engine, seq.blurred, seq.name, progress)
    for b, o, s in zip(seq.blurred, outs, seq.sharp, strict=True):
        res.psnr.append(metrics.psnr(o, s))
        res.ssim.append(metrics.ssim(o, s))
        res.input_psnr.append(metrics.psnr(b, s))
        res.input_ssim.append(metrics.ssim(b, s))
    if save_dir is not None:
        save_side_by_side(
            save_dir / f"{file_stem(seq.name)}_ff{engine.future_frames}",
            seq.blurred,
            outs,
            seq.sharp,
        )
    return res, outs


def orb_counts(frames: list[np.ndarray]) -> tuple[list[int], list[int]]:
    """ORB matches and RANSAC inliers for each pair of consecutive frames."""
    stats = [metrics.orb_matches(a, b) for a, b in itertools.pairwise(frames)]
    return [m for m, _ in stats], [i for _, i in stats]


def evaluate_nogt(
    engine: StreamDeblurrer,
    name: str,
    frames: list[np.ndarray],
    save_dir: Path | None = None,
    progress: Callable[[int], object] | None = None,
) -> dict:
    outs = deblur_sequence(engine, frames, name, progress)
    m_in, inl_in = orb_counts(frames)
    m_out, inl_out = orb_counts(outs)
    if save_dir is not None:
        prefix = save_dir / f"{file_stem(name)}_ff{engine.future_frames}"
        save_side_by_side(prefix, frames, outs)
    return {
        "sequence": name,
        "future_frames": engine.future_frames,
        "frames": len(frames),
        "orb_matches_input": m_in,
        "orb_matches": m_out,
        "orb_inliers_input": inl_in,
        "orb_inliers": inl_out,
        # None without a frame pair: nothing measured, where 0.0 would read as no match found
        "mean_orb_matches_input": float(np.mean(m_in)) if m_in else None,
        "mean_orb_matches": float(np.mean(m_out)) if m_out else None,
        "mean_orb_inliers_input": float(np.mean(inl_in)) if inl_in else None,
        "mean_orb_inliers": float(np.mean(inl_out)) if inl_out else None,
        "orb_inlier_change": metrics.paired_change(inl_in, inl_out),
        "sharpness_input": float(np.mean([metrics.sharpness(f) for f in frames])),
        "sharpness": float(np.mean([metrics.sharpness(f) for f in outs])),
    }


def save_side_by_side(prefix: Path, *columns: list[np.ndarray]) -> None:
    """One ``<prefix>_NNN.png`` per frame; OSError for an image not written, so a run never
    ends as if its images were there. Those of an earlier, longer run of the same sequence
    go: a folder of them would mix two runs."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(zip(*columns, strict=True)):
        tiles = [t if t.ndim == 3 else cv2.cvtColor(t, cv2.COLOR_GRAY2RGB) for t in row]
        path = prefix.with_name(f"{prefix.name}_{i:03d}.png")
        imwrite(path, np.hstack(tiles)[..., ::-1])
    frame_file = re.compile(re.escape(prefix.name) + r"_(\d{3,})\.png")
    for old in prefix.parent.glob(f"{glob.escape(prefix.name)}_*.png"):
        match = frame_file.fullmatch(old.name)  # numbered as written above: not _0005
        if match and f"{int(match[1]):03d}" == match[1] and int(match[1]) >= len(columns[0]):
            old.unlink()
