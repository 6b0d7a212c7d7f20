"""Regenerate the bundled demo sample (sarn_ros/sample/) from Vid4 `calendar`.

    .venv/bin/python scripts/make_sample.py /path/to/shared/data/sharp/Vid4/calendar

Eight consecutive frames, downscaled by 2, blurred by the project's synthetic generator with a
fixed seed; the sharp frames are kept as ground truth so the demo can report PSNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from sarn_ros.data.blur_synth import BlurParams
from sarn_ros.data.datasets import synthesize_folder

OUT = Path(__file__).resolve().parent.parent / "sarn_ros" / "sample"
PARAMS = BlurParams(blur_px=12.0, min_blur_fraction=0.8, object_prob=0.0, jpeg_quality=None)


def main(calendar: Path) -> None:
    (seq,) = synthesize_folder(calendar, seed=2024, params=PARAMS, scale=0.5, max_frames=8)
    for kind, frames in (("blur", seq.blurred), ("sharp", seq.sharp)):
        (OUT / kind).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            cv2.imwrite(
                str(OUT / kind / f"{i:03d}.png"), f[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calendar", type=Path, help="the Vid4 calendar frame folder")
    main(parser.parse_args().calendar)
