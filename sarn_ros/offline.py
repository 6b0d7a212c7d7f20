"""Offline deblurring of videos, image folders, images and rosbag2 files with the engine.

Same engine, same look-ahead and flush as the node, so offline results equal what the robot
would have published. Bags are read and written with ``rosbags`` (no ROS install needed):
every original message is copied byte for byte with its receive time, and each chosen camera
topic gains ``<ns>/deblurred/image_raw`` (or its ``/compressed`` JPEG with ``jpeg_quality``)
and ``<ns>/deblurred/camera_info`` when the bag has ``<ns>/camera_info``, with the original
header and the source message's receive time.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import os
import re
import secrets
import shutil
import sqlite3
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .data.datasets import (
    IMAGE_EXTS,
    holds_images,
    list_images,
    read_frame,
    resize_by,
    visible,
)
from .engine import DeblurredFrame, StreamDeblurrer
from .image_files import VIDEO_FPS, imwrite, keep_owner, kernel_path, video_path

log = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"  # a String on a camera_info name is no calibration
# what OpenCV's FFmpeg reads (phones' .3gp, camcorders' .mts/.m2ts, broadcast .ts/.mxf...)
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".3gp", ".3g2"}
VIDEO_EXTS |= {".wmv", ".asf", ".flv", ".ts", ".m2ts", ".mts", ".mxf", ".vob", ".ogv"}
# written as mp4v, which WebM and the others cannot hold, and which an MPEG program stream
# (.mpg) holds only at MPEG's frame rates: 12.5 fps came back as 25 (twice as fast)
OUTPUT_VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".m4v"}
WIDE_EXTS = {".png", ".tif", ".tiff"}  # image files that hold 16 bits per channel
MAX_BAD_READS = 30  # failed reads in a row that end a video past the frames it announces
MAX_ANNOUNCED = 10_000_000  # a frame count beyond this is a broken header, not a promise


# why a camera's other topic (raw or compressed) is left out
SAME_CAMERA = "the same camera is deblurred from "


class InputError(ValueError):
    """An input that cannot be deblurred at all (one clear line for the user)."""


@dataclass
class Report:
    frames: int = 0
    skipped: int = 0
    unread: int = 0  # frames a video announces after the last one that could be read
    ignored_topics: dict[str, str] = field(default_factory=dict)  # bag topic -> why not deblurred
    replaced_topics: list[str] = field(default_factory=list)  # the bag's own deblurred outputs
    # the bag's own deblurred camera_info of another size than the new images: why, and no
    # camera_info to remake it from
    stale_topics: dict[str, str] = field(default_factory=dict)
    first_skip: str = ""  # which frame was skipped first (a bag's: why)
    # before --skip-frames' window: not counted as skipped, but why nothing was read
    skipped_before: int = 0
    first_before: str = ""
    # a bag's chosen topics without one readable frame, while others had some: why, the first
    unreadable_topics: dict[str, str] = field(default_factory=dict)
    chosen_topics: list[str] = field(default_factory=list)  # a bag's topics deblurred
    # camera_info topics that describe another size than their deblurred frames: how
    misfit_infos: dict[str, str] = field(default_factory=dict)
    # a Humble bag's topics of a type neither it defines nor rosbags knows: not copied
    undefined_topics: dict[str, str] = field(default_factory=dict)  # topic -> type

    def skip(self, which: str, in_window: bool) -> None:
        """Count an unreadable frame (``which``: its name, or a bag's topic and why): as
        skipped within the --skip-frames window, apart before it."""
        if in_window:
            self.skipped += 1
            self.first_skip = self.first_skip or which
        else:
            self.skipped_before += 1
            self.first_before = self.first_before or which

    def others(self, topic: str) -> list[str]:
        """A chosen topic's camera's other topics, left out for it."""
        return [t for t, why in self.ignored_topics.items() if why == SAME_CAMERA + topic]

    def instead(self, unread: list[str], named: list[str] | None = None) -> str:
        """For chosen topics without a readable frame: the other topics of ``named``'s
        cameras (default: all of them), and the one ``--topics`` that takes each camera's
        first in its place and keeps the other cameras (a hint per camera kept the others'
        unreadable topics)."""
        have = [t for t in (unread if named is None else named) if self.others(t)]
        if not have:
            return ""
        alts = [o for t in have for o in self.others(t)]
        whose = "this camera's" if len(have) == 1 else "these cameras'"
        swap = {t: alt[0] for t in unread if (alt := self.others(t))}
        pick = " ".join(swap.get(t, t) for t in self.chosen_topics)
        return f"; {whose} {', '.join(alts)} may be: --topics {pick}"

    @property
    def first_unreadable(self) -> str:
        """The first unreadable frame, before the window or in it: why nothing was read."""
        return self.first_before or self.first_skip


@dataclass(frozen=True)
class Window:
    """``--skip-frames`` / ``--max-frames``: the readable frames of each stream that are
    deblurred, counted from 0, so a long recording can be previewed (or a still start left out)
    without cutting it first."""

    skip: int = 0
    limit: int | None = None

    def wants(self, index: int) -> bool:
        return index >= self.skip and not self.done(index)

    def done(self, index: int) -> bool:
        return self.limit is not None and index >= self.skip + self.limit

    def expected(self, readable: int) -> int:
        """How many of a stream's ``readable`` frames are deblurred (a progress bar's total)."""
        wanted = max(readable - self.skip, 0)
        return wanted if self.limit is None else min(wanted, self.limit)


def _bag_metadata(path: Path) -> bool:
    """Whether ``path`` is a rosbag2 metadata.yaml: its top key, in its first bytes (a
    corrupt one, binary or cut short, still names the folder a bag, to be said unreadable)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"rosbag2_bagfile_information" in head or b"\0" in head or not head.strip()


def _is_bag_dir(path: Path) -> bool:
    """A bag's folder, or one cut short (no metadata.yaml yet: reindexed, not read file by
    file), its .mcap files one or named as rosbag2 names a split recording's parts
    (``<folder>_<n>.mcap``). Not a folder of other bare .mcap files: each is a recording of its
    own, which reindexing would merge into one. A metadata.yaml counts where it is rosbag2's
    (a folder of images beside a camera's own metadata.yaml was refused as a bag)."""
    if _bag_metadata(path / "metadata.yaml") or any(path.glob("*.db3")):
        return True
    parts = [p.name for p in path.glob("*.mcap")]
    split = re.compile(rf"{re.escape(path.resolve().name)}_\d+\.mcap")  # also for a dot
    return len(parts) == 1 or (bool(parts) and all(split.fullmatch(p) for p in parts))


def recording_of(path: str | Path) -> Path:
    """The recording a path stands for: a bag's folder for its only storage file (the two
    spellings read the same frames), else the path."""
    path = Path(path)
    bag = path.parent
    alone = path.suffix in (".db3", ".mcap") and len(list(bag.glob(f"*{path.suffix}"))) == 1
    return bag if alone and (bag / "metadata.yaml").exists() else path


def read_units(path: str | Path) -> set[Path]:
    """What a read of the recording ``path`` takes, to find one input read within another: a
    bag's storage files (a part of a split bag given beside the bag was read twice), else
    the recording itself."""
    rec = recording_of(path).resolve()
    if rec.is_dir() and _is_bag_dir(rec):
        return {p.resolve() for p in rec.iterdir() if p.suffix in (".db3", ".mcap")} or {rec}
    return {rec}


_SAID: set[Path] = set()  # the parts of split bags warned of


def kind_of(path: Path) -> str:
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    if path.is_dir():
        if _is_bag_dir(path):
            return "bag"
        if holds_images(path):
            return "folder"
        inside = visible(path)
        kinds = {  # one level up from them: it said "no images or rosbag2" and named its bags
            "image folders": [d.name for d in inside if d.is_dir() and holds_images(d)],
            "recordings": [
                d.name
                for d in inside
                # a folder named like a video is none; .mcap in the case a given one is taken
                if (
                    _is_bag_dir(d)
                    if d.is_dir()
                    else d.suffix.lower() in VIDEO_EXTS or d.suffix == ".mcap"
                )
            ],
        }
        held = [
            f"the {kind} {', '.join(names[:3])}{', ...' * (len(names) > 3)}"
            for kind, names in kinds.items()
            if names
        ]
        if held:
            raise InputError(
                f"no images or rosbag2 of its own in {path}: it holds {' and '.join(held)} "
                "(give one)"
            )
        # a folder of .ppm or .gif frames: what is read as an image went unsaid
        files = [d.name for d in inside if d.is_file()]
        names = f"{', '.join(files[:3])}{', ...' * (len(files) > 3)}"
        read = (
            f" (its {len(files)} file{'s' * (len(files) > 1)}, {names}, "
            f"{'are' if len(files) > 1 else 'is'} none of the images read: "
            f"{' '.join(sorted(IMAGE_EXTS))})"
            if files
            else ""
        )
        raise InputError(f"no images or rosbag2 in {path}{read}")
    if path.suffix in (".db3", ".mcap"):
        parts = sorted(path.parent.glob(f"*{path.suffix}"))
        # split by size; said once, though each tool asks what a path is several times
        said = path.resolve()
        if len(parts) > 1 and (path.parent / "metadata.yaml").exists() and said not in _SAID:
            _SAID.add(said)
            log.warning(
                "%s is one of the %d files of the bag %s: only it is read (give the folder "
                "for the whole recording)",
                path,
                len(parts),
                path.parent,
            )
        return "bag"
    if path.suffix.lower() in VIDEO_EXTS:
        return "video"
    if path.name.endswith((".db3.zstd", ".mcap.zstd")):  # ros2 bag record --compression-mode file
        raise InputError(f"{path} is the compressed storage file of a bag: give its folder")
    raise InputError(
        f"unknown input type: {path} (video, image folder or rosbag2 expected; a video by its "
        f"extension: {', '.join(sorted(VIDEO_EXTS))})"
    )


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.hstack([a, b])


def is_image_file(path: Path) -> bool:
    """A single image to deblur: named as the images of a folder are (any file so named,
    read or skipped as a folder's are)."""
    return path.suffix.lower() in IMAGE_EXTS and path.exists() and not path.is_dir()


def image_output(src: Path, dst: str) -> Path:
    """Where the image ``src`` is written: the image file ``dst`` names, or a file of its own
    name in the folder ``dst`` names (as :func:`output_kind` tells a folder)."""
    path = Path(dst)
    if path.suffix.lower() in IMAGE_EXTS and not dst.endswith(("/", os.sep)) and not path.is_dir():
        return path
    with contextlib.suppress(InputError):
        if output_kind(dst) == "folder":
            return path / src.name
    raise InputError(
        f"output {dst}: an image is deblurred into an image file ({' '.join(sorted(IMAGE_EXTS))}) "
        f"or a folder (a new one named with a dot ends in '/': {dst}/)"
    )


def output_kind(dst: Path | str) -> str:
    """'video' for a video file name, 'folder' for a folder (existing, or a name without a
    suffix or ending in '/': give the name as typed, a Path drops the slash). Anything else
    is an :class:`InputError`, where OpenCV would write nothing, or one broken file, without
    a word."""
    path = Path(dst)
    if str(dst).endswith(("/", os.sep)):
        return "folder"
    if path.is_dir():  # also one named like a video
        return "folder"
    if path.suffix.lower() in OUTPUT_VIDEO_EXTS:
        return "video"
    if not path.suffix:
        return "folder"
    raise InputError(
        f"output {dst}: a video file ({', '.join(sorted(OUTPUT_VIDEO_EXTS))}) "
        f"or a folder for images (a new one named with a dot ends in '/': {dst}/)"
    )


def announced_frames(cap: cv2.VideoCapture) -> int:
    """The frame count the container states (0 where it states none or nonsense)."""
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if 0 < count <= MAX_ANNOUNCED else 0


def video_frames(cap: cv2.VideoCapture) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, BGR frame) to the end of the video, None for a frame that fails to decode in
    the middle (callers skip and count it). OpenCV's read() fails both at the end and on a
    corrupt frame, so failures count as skipped frames only when a readable one follows.
    Reading goes on to the frame count the container announces, however long a corrupt
    stretch is, and :data:`MAX_BAD_READS` past it (an estimated count, as Matroska's)."""
    announced = announced_frames(cap)
    bad = 0
    for i in itertools.count():
        ok, bgr = cap.read()
        if not ok:
            bad += 1
            if bad >= MAX_BAD_READS and i >= announced:
                return
            continue
        for j in range(i - bad, i):
            yield j, None
        bad = 0
        yield i, bgr


def check_new_output(dst: Path | str, overwrite: bool) -> None:
    """Refuse, before the model loads, to replace a video or write into a folder of images
    that are already there: an earlier result was replaced without a word (and deleted when
    the run then failed), and a folder mixed two runs' frames."""
    path = kernel_path(dst)  # where it is written: `new/../old.mp4` is ./old.mp4
    if path.is_file() and output_kind(dst) == "folder":  # a name without a suffix: a folder
        raise InputError(f"output {dst} is a file, not a folder for images")
    if overwrite or not path.exists():
        return
    if output_kind(dst) == "video":
        raise InputError(f"output {dst} already exists: pass --overwrite to replace it")
    if path.is_dir() and holds_images(path):
        raise InputError(
            f"output folder {dst} already holds images: pass --overwrite to write into it "
            "(the files of the same names are replaced, the others left)"
        )


def opencv_rate(fps: float) -> tuple[int, int]:
    """The time base OpenCV's FFmpeg writer builds for ``fps``, (ticks, per seconds): the
    rate's decimals to within 0.001, 240.038 fps as 240038 / 1000, 1/60 fps as 17 / 1000."""
    base, rate = 1, int(fps + 0.5)
    while abs(rate / base - fps) > 0.001:
        base *= 10
        rate = int(fps * base + 0.5)
    return rate, base


def mpeg4_holds(fps: float) -> bool:
    """Whether MPEG-4 takes OpenCV's time base for ``fps``: at most 65535 ticks a second
    once reduced."""
    rate, base = opencv_rate(fps)
    return rate // math.gcd(rate, base) <= 65535


def writable_fps(fps: float) -> list[float]:
    """``fps`` and it rounded to 2, 1 and 0 decimals, those MPEG-4 holds first: a phone's
    slow-motion rate (240.0379 fps) could not be written at all, and a failed try prints
    OpenCV's error line."""
    rates = list(dict.fromkeys([fps, *(r for d in (2, 1, 0) if (r := round(fps, d)) > 0)]))
    return sorted(rates, key=lambda r: not mpeg4_holds(r))


class FrameSink:
    """Where the deblurred frames of a video or an image folder go, as the output's name says:
    a video file (mp4v at ``fps``, 8 bit) or a folder of images (lossless, 16 bit kept). Both
    are made at the first frame, so an input without a readable frame leaves nothing behind.
    A video is written beside its name (``.<stem>.<random>.part<ext>``) and moved there when
    done, so a run that fails leaves any file of that name as it was. The random part: an
    input of the fixed name (a file left by a killed run) was emptied as it was read, and
    two runs to one output wrote one file; the stem is cut so the name stays short."""

    def __init__(
        self,
        dst: Path | str,
        fps: float,
        jpeg_quality: int | None = None,
        whole_only: bool = False,
    ) -> None:
        """``whole_only``: a stop keeps no part of the video either (the demo's, 8 frames, is
        shown whole or not at all: a stop replaced an earlier whole one with 2 frames)."""
        self.dst, self.fps, self.whole_only = Path(dst), fps, whole_only
        # a folder's JPEG frames: OpenCV's 95 unless given
        self.jpeg = [] if jpeg_quality is None else [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self.video = output_kind(dst) == "video"
        # a video's, written beside it (`-o .`, a folder, has no name to take one from)
        self.part: Path | None = None
        self.written = kernel_path(self.dst)  # what the video is renamed to (`new/..` no folder)
        # an earlier whole video (--overwrite): a stop leaves it, not the first frames over it
        self.replaces = self.video and self.written.exists()
        if self.video:
            self.part = self.written.with_name(
                f".{self.dst.stem[:40]}.{secrets.token_hex(4)}.part{self.dst.suffix}"
            )
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None  # the video's, an odd side padded by one
        self.frames = 0  # written into the video
        self.first = ""  # the first frame's own size, for the error naming another

    def write(self, frame: np.ndarray, name: str) -> None:
        """``frame``: RGB or grey; ``name``: its file name in a folder."""
        img = np.ascontiguousarray(frame[..., ::-1] if frame.ndim == 3 else frame)
        if not self.video:
            self.dst.mkdir(parents=True, exist_ok=True)
            if img.dtype == np.uint16 and Path(name).suffix.lower() not in WIDE_EXTS:
                img = (img >> 8).astype(np.uint8)  # imwrite would saturate them at 255
            jpeg = Path(name).suffix.lower() in (".jpg", ".jpeg")
            try:
                imwrite(self.dst / name, img, self.jpeg if jpeg else None)
            except OSError as exc:
                raise InputError(str(exc)) from None
            return
        h, w = img.shape[:2]
        own = f"{w}x{h}"
        if h % 2 or w % 2:  # mp4v (4:2:0) would drop the last row or column without a word
            img = cv2.copyMakeBorder(img, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
            h, w = img.shape[:2]
        if self.writer is None:
            self.size, self.first = (w, h), own
            self.writer = self.open_writer()
        if (w, h) != self.size:  # OpenCV would drop the frame without a word
            raise InputError(
                f"output frames of sizes {self.first} and {own} ({own} from {name} on); a "
                "video holds one size: write a folder instead"
            )
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        self.writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img)
        self.frames += 1

    def open_writer(self) -> cv2.VideoWriter:
        self.written.parent.mkdir(parents=True, exist_ok=True)  # as a folder output's are
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        for fps in writable_fps(self.fps):
            writer = cv2.VideoWriter(video_path(self.part), fourcc, fps, self.size)
            if writer.isOpened():
                rate, base = opencv_rate(fps)
                if fps != self.fps:
                    log.warning(
                        "%s: written at %g fps (MPEG-4 cannot hold %g)", self.dst, fps, self.fps
                    )
                elif abs(rate / base - fps) > 1e-4 * fps:  # a slow rate: 1/60 fps ran 2 % fast
                    log.warning(
                        "%s: written at %g fps, not %g (OpenCV's video writer holds a rate to "
                        "within 0.001)",
                        self.dst,
                        rate / base,
                        fps,
                    )
                return writer
        self.part.unlink(missing_ok=True)
        raise InputError(f"cannot write video {self.dst} (OpenCV's writer did not open)")

    def plays_whole(self) -> bool:
        """Whether the video written reads back with every frame: OpenCV's writer says nothing
        of a write that failed (a full disk, a file size limit), which left a file cut short
        that would not play in place of the video, or of an earlier one, and exit 0. Its
        container states the count written (MP4, MOV, AVI, MKV); one cut short states none,
        or nonsense, or cannot be opened."""
        if self.part.suffix.lower() == ".avi" and not riff_whole(self.part):
            return False
        cap = cv2.VideoCapture(video_path(self.part))
        try:
            if not cap.isOpened() or announced_frames(cap) != self.frames:
                return False
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
            return cap.read()[0]
        finally:
            cap.release()

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        """Finish the video; one cut short by an error (frames of another size, an unreadable
        one) is removed rather than pass for the whole. Ctrl-C keeps what was written, also
        one that comes during the release (raised as it returns: the video was left hidden),
        but for a whole one it was to replace; a stop as the writer opened leaves no hidden
        file."""
        stopped = error is not None and not issubclass(error, Exception)
        partial = not (self.whole_only or self.replaces)  # a stop may keep the first frames
        keep = self.writer is not None and (error is None or (stopped and partial))
        try:
            if self.writer is not None:
                self.writer.release()
                if keep and error is None and not self.plays_whole():
                    raise InputError(
                        f"cannot write video {self.dst}: the file written does not play back "
                        "whole (a full disk? a file size limit?), so it is not kept"
                    )
        except BaseException as exc:  # a video not finished: no name of its own
            keep = keep and partial and not isinstance(exc, Exception)
            raise
        finally:
            if keep:
                keep_owner(self.written, self.part)  # a 0600 video stays 0600
                os.replace(self.part, self.written)
            elif self.part is not None:
                self.part.unlink(missing_ok=True)


def riff_whole(path: Path) -> bool:
    """Whether an AVI's RIFF chunks (AVI, then AVIX ones past 1 GB) end where the file does.
    Its writer states the frame count at the start of the file, and seeks back to write it,
    so one cut short in its last frame or index still stated every frame and read back."""
    size, pos = path.stat().st_size, 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8 or head[:4] != b"RIFF":
                return False
            chunk = int.from_bytes(head[4:], "little")
            pos += 8 + chunk + chunk % 2
    return pos == size


def open_video(src: Path) -> cv2.VideoCapture:
    """OpenCV's reader of ``src``; InputError where it cannot open it, or must not be asked
    to (a path that is not UTF-8 crashes it)."""
    try:
        cap = cv2.VideoCapture(video_path(src))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not cap.isOpened():
        raise InputError(f"cannot open video {src}")
    return cap


def stated_fps(cap: cv2.VideoCapture, src: Path) -> float:
    """The frame rate a video states, 30 where it states none or one no video has (a broken
    header's 2147483647 fps gave neighbouring frames one stamp, and no video could be written
    at it), said once."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    if fps == 0:
        log.warning("%s states no frame rate: taken as 30 fps", src)
        return 30.0
    if not VIDEO_FPS[0] <= fps <= VIDEO_FPS[1]:  # nan too
        log.warning("%s states %g fps: taken as 30", src, fps)
        return 30.0
    return fps


def unread_frames(src: Path, announced: int, last: int) -> int:
    """The frames a video announces past ``last``, the last index read (a file cut short):
    0 within what an estimated count (Matroska's) can be off by; an AVI's is its index's, so
    one frame lost is said."""
    slack = 0 if src.suffix.lower() == ".avi" else max(1, announced // 100)
    return announced - (last + 1) if announced - (last + 1) > slack else 0


def timeline_gaps(stamps: dict[int, float]) -> tuple[int, int] | None:
    """(frame times without a frame, the index of the frame before the first gap) where a
    constant-rate video's times skip whole frame intervals at a few places (at most one
    interval in ten): a frame the camera dropped, or one the decoder passed over without a
    failed read, which was said to be a variable frame rate, or not at all in a folder. None
    for a steady or a variable rate."""
    apart = {i: stamps[i] - stamps[i - 1] for i in stamps if i - 1 in stamps}
    if not apart or (unit := float(np.median(list(apart.values())))) <= 0:
        return None
    steps = {i: round(d / unit) for i, d in apart.items()}
    if any(k < 1 or abs(apart[i] - k * unit) > 0.1 * unit for i, k in steps.items()):
        return None
    wide = [i for i, k in steps.items() if k > 1]
    if not wide or len(wide) > max(1, len(apart) // 10):
        return None
    return sum(steps[i] - 1 for i in wide), min(wide) - 1


def say_non_square(cap: cv2.VideoCapture, src: Path, dst: Path | str, sbs: bool) -> None:
    """Warn that a video of non-square pixels (anamorphic DV, HDV's 1440x1080) is written with
    square ones: OpenCV's writer has no aspect ratio to set, and the video played squeezed.
    The -aspect that sets it back is the output's: twice as wide side by side, and turned with
    a rotated video's frames (OpenCV's size is the turned one, its ratio the stored one's)."""
    num, den = cap.get(cv2.CAP_PROP_SAR_NUM), cap.get(cv2.CAP_PROP_SAR_DEN)
    w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if output_kind(dst) != "video" or min(num, den, w, h) <= 0 or num == den:
        return
    across, down = (den, num) if cap.get(cv2.CAP_PROP_ORIENTATION_META) % 180 == 90 else (num, den)
    shown = Fraction(round(w * across) * (2 if sbs else 1), round(h * down))
    log.warning(
        "%s has non-square pixels (sample aspect ratio %d:%d): %s is written with square ones, "
        "so players show it %s; ffmpeg's -aspect %d:%d with -c copy sets its shape back",
        src,
        num,
        den,
        dst,
        "narrower" if across > down else "wider",
        shown.numerator,
        shown.denominator,
    )


def check_video(src: Path) -> None:
    """Refuse a file OpenCV cannot open as a video before the model loads: the error came
    after seconds of start-up."""
    open_video(src).release()


def deblur_video(
    src: Path,
    dst: Path | str,
    engine: StreamDeblurrer,
    scale: float,
    sbs: bool,
    tick: Callable[[], None],
    window: Window = Window(),
    expect: Callable[[int], None] | None = None,
) -> Report:
    """Deblur a video into a video or a folder; ``expect`` is told how many frames will come
    out where the container states its count."""
    cap = open_video(src)
    fps = stated_fps(cap, src)
    say_non_square(cap, src, dst, sbs)
    announced, read = announced_frames(cap), []  # read: the last index, once all are read
    if expect is not None and announced:
        expect(window.expected(announced))
    stamps: dict[int, float] = {}  # ms, by index: a phone's variable frame rate

    def frames() -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        i = -1
        for i, bgr in video_frames(cap):
            if bgr is not None:
                stamps[i] = cap.get(cv2.CAP_PROP_POS_MSEC)
            # a folder's frames are named by their index in the video, skipped ones counted
            yield (i, None, None) if bgr is None else (i, bgr[..., ::-1], f"{i:06d}.png")
        read.append(i)

    try:
        report = deblur_frames(frames(), dst, engine, scale, sbs, tick, fps, window)
    finally:
        cap.release()
    if not report.frames:
        after = f" after --skip-frames {window.skip}" if window.skip else ""
        raise InputError(f"no readable frame in {src}{after}")
    if read:
        report.unread = unread_frames(src, announced, read[0])
    apart = [stamps[i] - stamps[i - 1] for i in stamps if i - 1 in stamps]
    if gaps := timeline_gaps(stamps):
        missing, after = gaps
        log.warning(
            "%s: its steady timeline has no frame at %s, the first after frame %d (dropped "
            "by the camera, or passed over by the decoder in a damaged file); the frames after "
            "it are numbered and timed as read, not by their times",
            src,
            "1 frame time" if missing == 1 else f"{missing} frame times",
            after,
        )
    elif output_kind(dst) == "video" and apart and min(apart) > 0 and max(apart) > 1.5 * min(apart):
        # written at one rate, its frames played out of time with the original, unsaid
        log.warning(
            "%s has a variable frame rate (frames %.0f to %.0f ms apart): %s has the same "
            "frames at a constant %g fps, not their times",
            src,
            min(apart),
            max(apart),
            dst,
            round(fps, 2),
        )
    return report


def deblur_folder(
    src: Path,
    dst: Path | str,
    engine: StreamDeblurrer,
    scale: float,
    sbs: bool,
    tick: Callable[[], None],
    fps: float = 30.0,
    window: Window = Window(),
    expect: Callable[[int], None] | None = None,
    jpeg_quality: int | None = None,
) -> Report:
    """Deblur the images of ``src`` in natural order into a folder (same file names, JPEGs at
    ``jpeg_quality``, else OpenCV's 95) or, when ``dst`` names a video file, into a video at
    ``fps``; ``expect`` is told how many."""
    images = list_images(src)
    if expect is not None:
        expect(window.expected(len(images)))
    frames = ((i, read_frame(p), p.name) for i, p in enumerate(images))
    report = deblur_frames(frames, dst, engine, scale, sbs, tick, fps, window, jpeg_quality)
    if not report.frames:
        after = f" after --skip-frames {window.skip}" if window.skip else ""
        # a corrupt file or a float image reads as None: the file is all there is to name
        n, first = report.skipped + report.skipped_before, report.first_unreadable
        files = f"{n} file{'s' * (n != 1)}"
        verb = "decodes" if n == 1 else "decode"
        why = f" ({files} that {verb} to no 8- or 16-bit image, first {first})" if n else ""
        raise InputError(f"no readable image in {src}{after}{why}")
    return report


def deblur_image(
    src: Path,
    dst: Path,
    engine: StreamDeblurrer,
    scale: float,
    sbs: bool,
    tick: Callable[[], None],
    jpeg_quality: int | None = None,
) -> Report:
    """Deblur the one image ``src`` into the image file ``dst`` (its format from its suffix,
    JPEG at ``jpeg_quality``, else OpenCV's 95): a folder of one frame, named as the output.
    A recurrent model sees it as a stream of one frame, as the first frame of a video."""
    frames = iter([(0, read_frame(src), dst.name)])
    # the folder side of FrameSink: written beside dst and renamed onto it
    report = deblur_frames(
        frames, f"{dst.parent}{os.sep}", engine, scale, sbs, tick, 30.0, Window(), jpeg_quality
    )
    if not report.frames:
        raise InputError(f"{src} decodes to no 8- or 16-bit image")
    return report


def restart_on_new_size(
    engine: StreamDeblurrer,
    sizes: dict[str | None, tuple[int, ...]],
    stream: str | None,
    frame: np.ndarray,
    scale: float,
) -> None:
    """Restart ``stream`` where its frames' size changes but not their resized size (96x64
    and 97x65 both become 48x32, one size to the engine), as the node does: the last frames
    before the change took the new scene's as look-ahead."""
    if scale < 1.0 and sizes.get(stream, frame.shape[:2]) != frame.shape[:2]:
        engine.reset(stream, reason="resolution")
    sizes[stream] = frame.shape[:2]


def deblur_frames(
    frames: Iterator[tuple[int, np.ndarray | None, str | None]],
    dst: Path | str,
    engine: StreamDeblurrer,
    scale: float,
    sbs: bool,
    tick: Callable[[], None],
    fps: float,
    window: Window,
    jpeg_quality: int | None = None,
) -> Report:
    """The loop a video and an image folder share. ``frames``: (index, RGB or grey image,
    None where unreadable, file name in a folder output or None to number the outputs),
    read lazily so that ``window`` stops the reading."""
    report = Report()
    inputs: dict[int, np.ndarray] = {}
    with FrameSink(dst, fps, jpeg_quality) as sink:

        def write(outs: list[DeblurredFrame]) -> None:
            for o in outs:
                i, name = o.meta
                frame = side_by_side(inputs.pop(i), o.image) if sbs else o.image
                sink.write(frame, name or f"{report.frames:06d}.png")
                report.frames += 1
                tick()

        readable = 0
        sizes: dict[str | None, tuple[int, ...]] = {}
        for i, img, name in frames:
            if window.done(readable):
                break
            if img is None:  # a corrupt frame or file: skip it, keep going
                report.skip(name or f"frame {i}", readable >= window.skip)
                continue
            readable += 1
            if not window.wants(readable - 1):
                continue
            restart_on_new_size(engine, sizes, None, img, scale)
            img = resize_by(np.ascontiguousarray(img), scale)
            if sbs:
                inputs[i] = img
            write(engine.push(img, round(i * 1e9 / fps), meta=(i, name)))
        write(engine.flush())
    return report


IMAGE_NAMES = (
    "image_raw",
    "image",
    "image_mono",
    "image_color",
    "image_rect",
    "image_rect_color",
    "image_rect_raw",  # RealSense
)


def camera_ns(topic: str) -> str:
    """'/cam/image_raw', '/cam/image_raw/compressed', '/zed/rgb/image_rect_color' -> '/cam',
    '/cam', '/zed/rgb': the namespace of the camera_info and of the deblurred topics
    (image_pipeline's image names)."""
    parts = topic.rstrip("/").split("/")
    if parts[-1] == "compressed":
        parts.pop()
    if parts and parts[-1] in IMAGE_NAMES:
        parts.pop()
    return "/".join(parts) or ""


def info_topic(topic: str, info_topics: set[str]) -> str | None:
    """The camera_info topic of an image topic among ``info_topics`` (a bag's CameraInfo
    topics): ``<ns>/camera_info`` for image_pipeline's image names, else image_transport's
    sibling of the image (ZED's ``left/image_rect_gray`` beside ``left/camera_info``)."""
    parent = topic.rstrip("/").removesuffix("/compressed").rsplit("/", 1)[0]
    return next(
        (f for ns in (camera_ns(topic), parent) if (f := f"{ns}/camera_info") in info_topics), None
    )


def is_depth(topic: str) -> bool:
    """Depth and disparity images (RealSense, ZED, stereo_image_proc) are not camera pictures."""
    return any("depth" in part or "disparity" in part for part in topic.lower().split("/"))


def is_deblurred(topic: str) -> bool:
    """Our own output (``<ns>/deblurred/image_raw``), e.g. a bag recorded beside the node."""
    return camera_ns(topic).rsplit("/", 1)[-1] == "deblurred"


def choose_topics(
    available: dict[str, str], topics: list[str] | None, counts: dict[str, int] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The bag topics to deblur, and why each other image topic is not.

    Each chosen topic becomes ``<ns>/deblurred/image_raw``, so there is one per camera
    namespace. By default depth/disparity topics and deblurred outputs are left out, and of a
    camera recorded both raw and compressed (a common recording) the raw Image is taken
    (lossless), then ``image_raw`` over other names; a topic without messages (``counts``)
    last: a recorder subscribed to both, with only the compressed one published, lost the
    camera. Topics asked for by name are taken as they are, but must not share a camera.
    """
    if topics:
        topics = list(dict.fromkeys(topics))  # one given twice is one topic, not two cameras
        missing = [t for t in topics if t not in available]
        if missing:
            raise InputError(
                f"topics {missing} not in the bag; its image topics: {sorted(available)}"
            )
    ignored = {}
    if not topics:
        ignored = {t: "a depth image" for t in available if is_depth(t)}
        ignored |= {t: "deblurred already" for t in available if is_deblurred(t)}
    by_camera: dict[str, list[str]] = {}
    for t in topics or sorted(set(available) - set(ignored)):
        by_camera.setdefault(camera_ns(t), []).append(t)
    chosen = []
    for ns, group in by_camera.items():
        if topics and len(group) > 1:
            raise InputError(
                f"topics {group} all feed {ns}/deblurred/image_raw; pass one of them to --topics"
            )
        best = min(
            group,
            key=lambda t: (
                counts is not None and not counts.get(t),
                available[t].endswith("CompressedImage"),
                t.rstrip("/").split("/")[-1] != "image_raw",
                t,
            ),
        )
        chosen.append(best)
        ignored |= {t: SAME_CAMERA + best for t in group if t != best}
    # an input another camera's output is written over would be lost from the new bag
    outputs = {
        f"{camera_ns(u)}/deblurred/image_raw{x}": u for u in chosen for x in ("", "/compressed")
    }
    clash = next((t for t in chosen if t in outputs), None)
    if clash is not None:
        raise InputError(
            f"topics {clash} and {outputs[clash]}: the output of {outputs[clash]} would be "
            f"written over {clash}; pass one of them to --topics"
        )
    return chosen, dict(sorted(ignored.items()))


def bag_topics(
    reader: Any, src: Path, topics: list[str] | None
) -> tuple[list[str], dict[str, str]]:
    """:func:`choose_topics` over an open rosbags reader; a bag with nothing to take is an
    :class:`InputError`."""
    available = {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}
    kinds = {c.topic: c.msgtype for c in reader.connections}
    # a bag's names are absolute: `cam/image_raw` (as a launch file or remap writes it) was
    # "not in the bag" beside /cam/image_raw
    topics = [t if t in kinds or f"/{t}" not in kinds else f"/{t}" for t in topics or ()]
    not_images = [f"{t} ({kinds[t]})" for t in topics or () if t in kinds and t not in available]
    if not_images:
        raise InputError(
            f"--topics {', '.join(not_images)}: not an image topic; the image topics of {src}: "
            f"{sorted(available)}"
        )
    if not available:
        raise InputError(f"no sensor_msgs/Image or CompressedImage topic in {src}")
    try:
        counts: dict[str, int] = {}
        for c in reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        chosen, ignored = choose_topics(available, topics, counts)
    except InputError as exc:  # which bag: --topics also applies to a --val-sharp one
        raise InputError(f"{src}: {exc}") from None
    if not chosen:
        raise InputError(f"only depth images in {src}: {sorted(available)}; use --topics")
    return chosen, ignored


def mcap_chunks_compressed(reader: Any) -> bool:
    """Whether an MCAP bag compresses its chunks (``ros2 bag record -s mcap`` with the
    zstd_fast or zstd_small preset, or a storage config's compression), which its
    metadata.yaml does not say; read from rosbags' storage readers, so False where a rosbags
    release names them otherwise (the copy then comes out uncompressed, as before)."""
    return any(
        getattr(chunk, "compression", "")
        for r in reader.readers
        # a bag folder's files, or the one .mcap file given alone
        for s in getattr(getattr(r, "storage", None), "storages", [getattr(r, "storage", None)])
        for chunk in getattr(s, "chunks", ())
    )


@contextlib.contextmanager
def open_bag(src: Path) -> Iterator[Any]:
    """A rosbags AnyReader over ``src``, with Humble's message types for a bag that has no
    definitions of its own (Humble records none); a bag it cannot open is an InputError."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    if src.is_dir() and not (src / "metadata.yaml").exists():  # a recording cut short
        raise InputError(
            f"cannot read bag {src}: it has no metadata.yaml (`ros2 bag reindex {src}` writes "
            "one from the storage files)"
        )
    # a message-compressed bag's file: read through its metadata.yaml, which says how (read
    # alone, every frame was "not CDR"); a file it does not list is a recording of its own
    listed = compressed_files(src.parent) if src.is_file() else []
    whole = src.parent if listed == [src.name] else src
    if src.name in listed and len(listed) > 1:
        raise InputError(
            f"{src} is one of the {len(listed)} files of the bag {src.absolute().parent}, whose "
            "messages are compressed (zstd): a file of it cannot be read alone; give the folder"
        )
    reader = AnyReader([Path(whole)], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
    try:
        reader.open()
    except (AnyReaderError, *BAG_FAULTS) as exc:
        raise unreadable_bag(src, exc) from exc
    try:
        yield reader
    finally:
        reader.close()


def compressed_files(folder: Path) -> list[str]:
    """The storage files of the bag in ``folder`` where it compresses each message (`ros2 bag
    record --compression-mode message`), as its metadata.yaml says (read as rosbags reads
    it); [] where it does not, or has no readable metadata."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        meta = YAML(typ="safe").load((folder / "metadata.yaml").read_text())
        info = meta["rosbag2_bagfile_information"]
        if str(info.get("compression_mode") or "").lower() != "message":
            return []
        return [str(Path(p).name) for p in info["relative_file_paths"]]
    except (OSError, UnicodeDecodeError, YAMLError, KeyError, TypeError, AttributeError):
        return []


# what rosbags lets through from a corrupt storage file or metadata.yaml: a record stating a
# huge length (OverflowError, or MemoryError where it allocates it), a binary metadata.yaml,
# a damaged sqlite page
BAG_FAULTS = (UnicodeDecodeError, OverflowError, MemoryError, struct.error, sqlite3.DatabaseError)


def unreadable_bag(src: Path, exc: BaseException) -> InputError:
    if isinstance(exc, (OverflowError, MemoryError)):
        why = "a record in it states an impossible size (a corrupt storage file)"
    elif isinstance(exc, UnicodeDecodeError):
        why = "its metadata.yaml or a text record in it is not UTF-8"
    else:
        why = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return InputError(f"cannot read bag {src}: {why}")


def bag_messages(reader: Any, src: Path, connections: list | None = None) -> Iterator[tuple]:
    """``reader.messages``, with a storage file corrupt past its index an InputError naming
    the bag, not rosbags' or Python's traceback."""
    from rosbags.highlevel import AnyReaderError

    messages = reader.messages() if connections is None else reader.messages(connections)
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except (AnyReaderError, *BAG_FAULTS) as exc:
            raise unreadable_bag(src, exc) from exc
        yield item


def deserialize(reader: Any, raw: bytes, msgtype: str) -> Any:
    """``reader.deserialize``, with a record cut short a ValueError like any corrupt frame
    (rosbags says AnyReaderError, which is none)."""
    from rosbags.highlevel import AnyReaderError

    try:
        return reader.deserialize(raw, msgtype)
    except AnyReaderError as exc:
        raise ValueError(f"cannot deserialise {msgtype}: {exc}") from None


def check_new_bag(dst: Path) -> None:
    """An output bag is always new: deblur_bag removes what it wrote when it fails. It is a
    folder (rosbag2's layout, the storage the input's): ``-o out.mcap`` made a folder
    ``out.mcap`` holding ``out.mcap.mcap``, and ``-o out.db3`` an mcap one where mcap came in."""
    if dst.exists():
        raise InputError(f"output bag {dst} already exists")
    if dst.suffix.lower() in (".db3", ".mcap"):
        folder = dst.with_suffix("")
        raise InputError(
            f"output bag {dst}: a bag is written as a folder, its storage the input's: name the "
            "folder" + ("" if folder.exists() else f" (-o {folder})")
        )


def bag_image(msg: Any, msgtype: str, debayer: str) -> tuple[np.ndarray, str]:
    """A bag's Image or CompressedImage decoded as the node decodes it (Bayer/YUV to RGB);
    ValueError for a corrupt or unsupported frame."""
    from .ros.image_conversion import compressed_to_numpy, decode_image

    if msgtype.endswith("CompressedImage"):
        return compressed_to_numpy(msg, debayer)
    return decode_image(msg, debayer)


def deblur_bag(
    src: Path,
    dst: Path,
    engine: StreamDeblurrer,
    scale: float,
    topics: list[str] | None,
    tick: Callable[[], None],
    debayer: str = "vng",
    jpeg_quality: int | None = None,
    window: Window = Window(),
    expect: Callable[[int], None] | None = None,
) -> Report:
    """Deblur ``topics`` of the bag ``src`` into the new bag ``dst``; with ``jpeg_quality`` the
    deblurred frames are written as ``<ns>/deblurred/image_raw/compressed`` JPEGs. Every
    original message is copied; ``window`` picks the frames of each camera that are deblurred.
    ``expect`` is told how many frames will come out (by the bag's message counts)."""
    from rosbags.rosbag2 import (
        CompressionFormat,
        CompressionMode,
        StoragePlugin,
        Writer,
        WriterError,
    )
    from rosbags.typesys import Stores, get_typestore

    from .ros.camera_info import image_size, scale_camera_info
    from .ros.image_conversion import (
        alpha_plane,
        from_rgb,
        numpy_to_compressed,
        numpy_to_image,
        to_rgb,
    )

    check_new_bag(dst)
    store = get_typestore(Stores.ROS2_HUMBLE)
    report = Report()
    try:
        with open_bag(src) as reader:
            chosen, report.ignored_topics = bag_topics(reader, src, topics)
            report.chosen_topics = chosen
            if expect is not None:
                counts = [
                    sum(c.msgcount for c in reader.connections if c.topic == t) for t in chosen
                ]
                expect(sum(window.expected(n) for n in counts))
            infos: dict[str, list[tuple[int, object]]] = {}  # by camera namespace
            info_topics = {c.topic for c in reader.connections if c.msgtype == CAMERA_INFO}
            info_of = {camera_ns(t): i for t in chosen if (i := info_topic(t, info_topics))}
            info_conns = [
                c
                for c in reader.connections
                if c.msgtype == CAMERA_INFO and c.topic in info_of.values()
            ]
            # a camera's calibration rarely changes: each message was held (2 KB, 0.9 GB for an
            # hour of four cameras at 30 Hz); their headers are the images' when written
            one_copy: dict[tuple, object] = {}
            # an empty list would mean every connection to rosbags: a bag without camera_info
            for conn, received, raw in bag_messages(reader, src, info_conns) if info_conns else ():
                try:
                    msg = deserialize(reader, raw, conn.msgtype)
                except ValueError:  # cut short: the frames take their neighbours' info
                    continue
                stamp = stamp_of(msg)  # the copy kept has another's header
                msg = one_copy.setdefault(calibration(msg), msg)
                for ns in (ns for ns, i in info_of.items() if i == conn.topic):
                    infos.setdefault(ns, []).append((stamp, received, msg))
            for cam_infos in infos.values():  # in receive order, which stamps need not follow
                cam_infos.sort(key=lambda item: item[:2])  # by stamp, then received
            files = list(src.iterdir()) if src.is_dir() else [src]
            mcap = any(".mcap" in f.suffixes for f in files)  # also a file-compressed .mcap.zstd
            storage = StoragePlugin.MCAP if mcap else StoragePlugin.SQLITE3
            suffix = "" if jpeg_quality is None else "/compressed"
            # a bag recorded beside the node has outputs of its own: the new ones replace them,
            # also those of the other transport, which playback would send beside the new ones,
            # and a camera_info that described the old images; a camera that gives no new
            # frame keeps its own (copied after the frames)
            owner = {
                f"{camera_ns(t)}/deblurred/{n}": t
                for t in chosen
                for n in ("image_raw", "image_raw/compressed", "camera_info")
            }
            own_outputs = set(owner) & {c.topic for c in reader.connections}
            # version 8, not 9: Humble's rosbag2 reads the QoS as a YAML string, which 9 made a
            # list (ros2/rosbag2#2013); every later distribution reads 8 as well
            writer = Writer(dst, version=8, storage_plugin=storage)
            mode = getattr(reader.readers[0], "compression_mode", None)
            if mode:  # as recorded (zstd): else the copy comes out several times larger
                writer.set_compression(CompressionMode[mode.upper()], CompressionFormat.ZSTD)
            elif mcap and mcap_chunks_compressed(reader):  # ros2 bag record's zstd presets
                writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
            with writer:
                offered: dict[str, list] = {}  # the camera's QoS, for its deblurred topics
                for c in reader.connections:
                    offered.setdefault(c.topic, c.ext.offered_qos_profiles)
                out_conns: dict[int, Any] = {}  # the copied connections, by the bag's id
                kept: dict[int, Any] = {}  # and those of the old outputs kept

                def copied(c: Any, how: dict[str, Any]) -> Any:
                    return writer.add_connection(  # same definition and QoS
                        c.topic,
                        c.msgtype,
                        **how,
                        serialization_format=c.ext.serialization_format,
                        offered_qos_profiles=c.ext.offered_qos_profiles,
                    )

                for c in reader.connections:
                    if c.topic in own_outputs:
                        continue
                    if (how := type_definition(c, reader.typestore)) is None:
                        report.undefined_topics[c.topic] = c.msgtype
                        continue
                    out_conns[c.id] = copied(c, how)
                img_cls = store.types["sensor_msgs/msg/Image"]
                jpeg_cls = store.types["sensor_msgs/msg/CompressedImage"]
                out_type = (
                    "sensor_msgs/msg/Image"
                    if jpeg_quality is None
                    else "sensor_msgs/msg/CompressedImage"
                )
                deb: dict[str, tuple[Any, Any]] = {}
                sizes: dict[str, set[tuple[int, int]]] = {}  # each camera's output (w, h)

                def outputs(t: str) -> tuple[Any, Any]:
                    """A camera's output connections, added with its first deblurred frame:
                    one that never decodes leaves no empty topic in the bag."""
                    if t not in deb:
                        deb[t] = (
                            writer.add_connection(
                                f"{camera_ns(t)}/deblurred/image_raw{suffix}",
                                out_type,
                                typestore=store,
                                offered_qos_profiles=offered[t],
                            ),
                            writer.add_connection(
                                f"{camera_ns(t)}/deblurred/camera_info",
                                CAMERA_INFO,
                                typestore=store,
                                offered_qos_profiles=offered[info_of[camera_ns(t)]],
                            )
                            if camera_ns(t) in infos
                            else None,
                        )
                    return deb[t]

                def emit(outs: list[DeblurredFrame]) -> None:
                    for o in outs:
                        topic, header, encoding, alpha, receive, (sx, sy) = o.meta
                        pixels = from_rgb(o.image, encoding, alpha)
                        nothing = np.zeros(0, np.uint8)
                        if jpeg_quality is None:
                            fields = {"height": 0, "width": 0, "encoding": "", "is_bigendian": 0}
                            empty = img_cls(header=header, step=0, data=nothing, **fields)
                            msg = numpy_to_image(pixels, encoding, msg=empty)
                        else:
                            empty = jpeg_cls(header=header, format="", data=nothing)
                            msg = numpy_to_compressed(
                                pixels, encoding, quality=jpeg_quality, msg=empty
                            )
                        img_conn, info_conn = outputs(topic)
                        writer.write(img_conn, receive, store.serialize_cdr(msg, out_type))
                        w, h = pixels.shape[1::-1]
                        sizes.setdefault(topic, set()).add((w, h))
                        cam_infos = infos.get(camera_ns(topic))
                        if info_conn is not None and cam_infos:
                            calib = nearest(cam_infos, o.stamp, receive)
                            info = scale_camera_info(calib, sx, sy, header)
                            # a calibration of another resolution: SLAM gets wrong intrinsics
                            iw, ih = image_size(info)
                            if info.width and (iw, ih) != (w, h):
                                report.misfit_infos.setdefault(
                                    info_of[camera_ns(topic)],
                                    f"describes {iw}x{ih} images (binning and ROI applied) for "
                                    f"{w}x{h} ones",
                                )
                            writer.write(
                                info_conn,
                                receive,
                                store.serialize_cdr(info, CAMERA_INFO),
                            )
                        report.frames += 1
                        tick()

                readable = dict.fromkeys(chosen, 0)
                input_sizes: dict[str | None, tuple[int, ...]] = {}
                why_not: dict[str, str] = {}  # each topic's first skipped frame: why
                for conn, receive, raw in bag_messages(reader, src):
                    if conn.id in out_conns:
                        writer.write(out_conns[conn.id], receive, raw)
                    if conn.topic not in chosen or window.done(readable[conn.topic]):
                        continue
                    try:
                        msg = deserialize(reader, raw, conn.msgtype)
                        pixels, encoding = bag_image(msg, conn.msgtype, debayer)
                        frame = resize_by(to_rgb(pixels, encoding), scale)
                        alpha = alpha_plane(pixels, encoding)
                        alpha = None if alpha is None else resize_by(alpha, scale)
                        scales = (
                            frame.shape[1] / pixels.shape[1],
                            frame.shape[0] / pixels.shape[0],
                        )
                    except ValueError as exc:  # corrupt, cut short or unsupported: skip it
                        report.skip(f"{conn.topic}: {exc}", readable[conn.topic] >= window.skip)
                        why_not.setdefault(conn.topic, str(exc))
                        continue
                    readable[conn.topic] += 1
                    if not window.wants(readable[conn.topic] - 1):
                        continue
                    restart_on_new_size(engine, input_sizes, conn.topic, pixels, scale)
                    emit(
                        engine.push(
                            frame,
                            stamp_of(msg),
                            stream=conn.topic,
                            meta=(conn.topic, msg.header, encoding, alpha, receive, scales),
                        )
                    )
                emit(engine.flush())
                report.unreadable_topics = {
                    t: why_not.get(t, "no message recorded") for t in chosen if not readable[t]
                }
                # the bag's own outputs of a camera that gave no new frame are kept, and so is
                # its old camera_info beside new images where none is made and it fits them
                gone = {o for o in own_outputs if owner[o] in deb}
                old = [
                    c
                    for c in reader.connections
                    if c.topic in own_outputs - gone
                    or (c.topic in gone and c.msgtype == CAMERA_INFO and not deb[owner[c.topic]][1])
                ]
                defs = {c.id: type_definition(c, reader.typestore) for c in old}
                for c in old:  # an old output of a type the Humble bag does not define
                    if defs[c.id] is None:
                        report.undefined_topics[c.topic] = c.msgtype
                old = [c for c in old if defs[c.id] is not None]
                held: dict[str, list[tuple[Any, int, bytes]]] = {}  # such camera_info

                def copy_of(conn: Any) -> Any:
                    if conn.id not in kept:
                        kept[conn.id] = copied(conn, defs[conn.id])
                    return kept[conn.id]

                for conn, receive, raw in bag_messages(reader, src, old) if old else ():
                    if conn.topic in gone:
                        held.setdefault(conn.topic, []).append((conn, receive, raw))
                    else:
                        writer.write(copy_of(conn), receive, raw)
                for topic, msgs in held.items():
                    made = sizes[owner[topic]]
                    told = {info_size(reader, raw) for _, _, raw in msgs} - {(0, 0)}
                    if not told <= made:
                        report.stale_topics[topic] = (
                            f"it describes {listed_sizes(told)} images, the new ones are "
                            f"{listed_sizes(made)}"
                        )
                        continue
                    gone.discard(topic)
                    for conn, receive, raw in msgs:
                        writer.write(copy_of(conn), receive, raw)
                report.replaced_topics = sorted(gone - set(report.stale_topics))
            if not report.frames:  # a bag of nothing new is no success
                after = f" after --skip-frames {window.skip}" if window.skip else ""
                # a topic with no message has no unreadable one to name
                first = report.first_unreadable or next(iter(report.unreadable_topics.values()), "")
                why = f" ({first})" if first else ""
                # a one-camera bag's compressed twin went unnamed (named beside another camera)
                instead = report.instead(chosen)
                raise InputError(
                    f"no readable frame on {', '.join(sorted(chosen))}{after}{why}{instead}"
                )
    except BaseException as exc:  # no half-written bag left behind to block the next run
        shutil.rmtree(dst, ignore_errors=True)
        if isinstance(exc, WriterError):
            raise InputError(f"cannot write bag {dst}: {exc}") from exc
        raise
    return report


def type_definition(conn: Any, typestore: Any) -> dict[str, Any] | None:
    """How the writer learns ``conn``'s message type: the bag's own definition and hash, or,
    for a bag that has none (recorded on Humble; a bare .mcap), the reader's typestore; None
    where that does not know the type either (a Humble bag's realsense2_camera_msgs, a
    robot's own messages): the topic is left out and named, where the whole bag was refused."""
    if conn.digest and conn.msgdef.data:
        return {"msgdef": conn.msgdef.data, "rihs01": conn.digest}
    if conn.msgtype not in typestore.fielddefs:
        return None
    return {"typestore": typestore}


def calibration(info: Any) -> tuple:
    """A CameraInfo's content but its header: equal for the messages of one calibration."""
    roi = info.roi
    arrays = tuple(np.asarray(a, np.float64).tobytes() for a in (info.d, info.k, info.r, info.p))
    return (
        *arrays,
        info.width,
        info.height,
        info.distortion_model,
        info.binning_x,
        info.binning_y,
        (roi.x_offset, roi.y_offset, roi.width, roi.height, roi.do_rectify),
    )


def info_size(reader: Any, raw: bytes) -> tuple[int, int]:
    """The image size a recorded CameraInfo describes (binning and ROI applied, as the node
    compares it: a binned camera's calibration states the sensor's size); (0, 0), no size,
    for one cut short or stating none."""
    from .ros.camera_info import image_size

    try:
        info = deserialize(reader, raw, CAMERA_INFO)
    except ValueError:
        return (0, 0)
    return image_size(info) if info.width else (0, 0)


def listed_sizes(sizes: set[tuple[int, int]]) -> str:
    return " and ".join(f"{w}x{h}" for w, h in sorted(sizes))


def stamp_of(msg: object) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def nearest(items: list[tuple[int, int, object]], stamp: int, receive: int = 0) -> object:
    """The message of ``items`` ((stamp, receive time, message), by stamp, then received)
    nearest ``stamp``, and of those of that stamp the one received nearest ``receive``: a
    driver stamping every message 0, or one calibration changing under one stamp, gave
    every frame the first. Bisections, not a list of the keys per call, which made a long
    bag quadratic in its frames."""
    i = bisect.bisect_left(items, stamp, key=lambda item: item[0])
    near = (j for j in (i - 1, i) if 0 <= j < len(items))
    at = items[min(near, key=lambda j: abs(items[j][0] - stamp))][0]
    lo = bisect.bisect_left(items, at, key=lambda item: item[0])
    hi = bisect.bisect_right(items, at, key=lambda item: item[0])
    k = bisect.bisect_left(items, receive, lo, hi, key=lambda item: item[1])
    close = (j for j in (k - 1, k) if lo <= j < hi)
    return items[min(close, key=lambda j: abs(items[j][1] - receive))][2]
