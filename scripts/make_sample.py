"""Regenerate the bundled demo sample (sarn_ros/sample/) from Vid4 `calendar`.

    .venv/bin/python scripts/make_sample.py /path/to/shared/data/sharp/Vid4/calendar

Eight consecutive frames, downscaled by 2, blurred by the project's synthetic generator with a
fixed seed; the sharp frames are kept as ground truth so the demo can report PSNR.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2

from sarn_ros.data.blur_synth import BlurParams
from sarn_ros.data.datasets import Sequence, list_images, synthesize_folder
from sarn_ros.image_files import imwrite
from sarn_ros.tools.options import how_stopped, plural, stops_as_interrupts

OUT = Path(__file__).resolve().parent.parent / "sarn_ros" / "sample"
PARAMS = BlurParams(blur_px=12.0, min_blur_fraction=0.8, object_prob=0.0, jpeg_quality=None)


def sample(calendar: Path) -> Sequence:
    """The one 8-frame sequence ``calendar`` must give: fewer frames would leave the old
    sample's later ones beside the new, and a folder of stills is not the sample."""
    if not calendar.is_dir():
        raise ValueError(f"not a folder: {calendar}")
    n = len(list_images(calendar))
    if n < 8:  # a still's synthetic sequence's length was named ("gave [6]" for 1 frame)
        raise ValueError(
            f"{calendar} has {plural(n, 'frame')}; the sample takes 8 consecutive ones"
        )
    seqs = list(synthesize_folder(calendar, seed=2024, params=PARAMS, scale=0.5, max_frames=8))
    if len(seqs) != 1 or len(seqs[0].sharp) != 8:
        lengths = [len(s.sharp) for s in seqs]
        raise ValueError(f"{calendar} must give one video of 8 frames, gave {lengths}")
    return seqs[0]


def main(calendar: Path, out: Path = OUT) -> None:
    """The sample written whole into a hidden folder, then moved into ``out`` frame by frame
    (blur/ and sharp/ hold other files too): a failed write left blur/ new and sharp/ old.
    The old frames go only once every new one can take its place (a folder in the way of
    one left sharp/ with neither sample's frames)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file")
    for kind in ("blur", "sharp"):
        if (out / kind).exists() and not (out / kind).is_dir():
            raise ValueError(f"{out / kind} is a file")
        if calendar.resolve().is_relative_to((out / kind).resolve()):  # deleted, then rewritten
            raise ValueError(f"{calendar} is in {out / kind}, which the sample replaces")
    seq = sample(calendar)
    new = out / ".sample.partial"
    shutil.rmtree(new, ignore_errors=True)
    try:
        for kind, frames in (("blur", seq.blurred), ("sharp", seq.sharp)):
            (new / kind).mkdir(parents=True)
            for i, f in enumerate(frames):
                path = new / kind / f"{i:03d}.png"
                imwrite(path, f[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        for kind in ("blur", "sharp"):
            (out / kind).mkdir(exist_ok=True)
            placed = [out / kind / f.name for f in (new / kind).iterdir()]
            # a folder named as a frame: the deletes or moves would fail
            for p in [*list_images(out / kind), *placed]:
                if p.is_dir():  # part way, sharp/ left with neither sample's frames
                    raise ValueError(f"{p} is a folder where the sample's frames go")
        for kind in ("blur", "sharp"):
            for old in list_images(out / kind):  # no frame of an older sample left
                old.unlink()  # (__init__.py is)
            for f in sorted((new / kind).iterdir()):
                f.rename(out / kind / f.name)
    finally:
        shutil.rmtree(new, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calendar", type=Path, help="the Vid4 calendar frame folder")
    parser.add_argument("--out", type=Path, default=OUT, help="where blur/ and sharp/ go")
    args = parser.parse_args()
    try:
        with stops_as_interrupts():  # `timeout`'s SIGTERM as Ctrl-C: it left the partial
            main(args.calendar, args.out)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except OSError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt as exc:
        how, code = how_stopped(exc)
        print(f"{parser.prog}: {how}", file=sys.stderr)
        sys.exit(code)
