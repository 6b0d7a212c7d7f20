"""Frames from the recordings a user has of their own camera: an image folder, a video file or
a rosbag2 (the camera topics ``sarn deblur`` would take, decoded as the node decodes them).

``sarn eval`` reads its streams and ``sarn train`` its sharp material through here, so a bag
recorded on the robot can be evaluated or fine-tuned on without extracting frames first.
Frames are read one at a time, so a long recording is never held whole in memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .data.blur_synth import BlurParams, synthesize
from .data.datasets import (
    Sequence,
    blurred_sides_note,
    find_pair_dirs,
    folder_name,
    is_pair_side,
    list_images,
    listed,
    natural_key,
    read_frame,
    resize_by,
    synthesize_folder,
    unpaired_dirs,
    visible,
)
from .engine import MAX_GAP_S, stamp_break
from .metrics import sharpness
from .offline import (
    InputError,
    announced_frames,
    bag_image,
    bag_messages,
    bag_topics,
    deserialize,
    kind_of,
    open_bag,
    open_video,
    stamp_of,
    unread_frames,
    video_frames,
)

log = logging.getLogger(__name__)
# (bag, topic) left out, or (video, "unread") cut short, and said so in this process
_TOLD: set[tuple[Path, str]] = set()


class NoFrames(InputError):
    """A recording with no frame to read (or none after --skip-frames): one of several
    streams, it can be left out where the others are read."""


class Recording:
    """One recording and the streams in it: one for a folder or video, one per chosen camera
    topic for a bag (depth topics and duplicate raw/compressed topics left out, named in
    :attr:`ignored`). Unreadable frames are skipped and counted in :attr:`skipped`; where a
    bag camera's stamps go back or jump more than ``max_gap_s`` (None: only back), as the
    node restarts the stream, is counted in :attr:`breaks`."""

    def __init__(
        self,
        path: Path,
        topics: list[str] | None = None,
        debayer: str = "vng",
        max_gap_s: float | None = MAX_GAP_S,
    ) -> None:
        self.path = Path(path)
        self.kind = kind_of(self.path)
        self.debayer = debayer
        self.max_gap_s = max_gap_s
        self.skips: Counter[str] = Counter()  # per stream: where a run of frames is broken
        self.breaks: Counter[str] = Counter()  # per stream: where its stamps break off
        self.paused: Counter[str] = Counter()  # the breaks of those where they paused
        self.why_skipped: dict[str, str] = {}  # each stream's first unreadable frame: why
        self.ignored: dict[str, str] = {}
        if self.kind == "bag":
            with open_bag(self.path) as reader:
                self.topics, self.ignored = bag_topics(reader, self.path, topics)
            for topic, why in self.ignored.items():
                if (self.path.resolve(), topic) not in _TOLD:  # once, not per scale or pass
                    _TOLD.add((self.path.resolve(), topic))
                    log.warning("%s: %s left out: %s (choose with --topics)", self.path, topic, why)
        else:  # topics name bag topics only
            self.topics = [""]

    def name(self, topic: str) -> str:
        """'run1' for a folder or run1.mp4, 'run1/left/image_raw' for a topic of a bag."""
        stem = self.path.stem if self.path.is_file() else folder_name(self.path)
        return stem + topic

    def frames(self) -> Iterator[tuple[str, np.ndarray]]:
        """(stream name, frame) in recording order; frames are RGB (H, W, 3) or grey (H, W),
        uint8 or uint16, as the node would feed them to the engine."""
        try:
            yield from getattr(self, f"_{self.kind}")()
        finally:
            if self.skipped:
                s = "" if self.skipped == 1 else "s"
                # the first reason (32FC1 holds no colour): a run left without frames told
                # only of clip lengths and stamp gaps
                why = next(iter(self.why_skipped.values()), None)
                why = f" (first: {why})" if why else ""
                log.warning("%s: %d unreadable frame%s skipped%s", self.path, self.skipped, s, why)

    def _folder(self) -> Iterator[tuple[str, np.ndarray]]:
        for p in list_images(self.path):
            img = read_frame(p)
            if img is None:
                self.skip(self.name(""))
                continue
            yield self.name(""), img

    def _video(self) -> Iterator[tuple[str, np.ndarray]]:
        cap = open_video(self.path)
        try:
            last, announced = -1, announced_frames(cap)
            for i, bgr in video_frames(cap):
                last = i
                if bgr is None:
                    self.skip(self.name(""))
                    continue
                yield self.name(""), np.ascontiguousarray(bgr[..., ::-1])
            # read to its end: a file cut short was scored or trained on as if whole, unsaid;
            # once, not per scale or pass
            unread = unread_frames(self.path, announced, last)
            if unread and last >= 0 and (self.path.resolve(), "unread") not in _TOLD:
                _TOLD.add((self.path.resolve(), "unread"))
                log.warning(
                    "%s: %d more frame%s the video announces could not be read (a file cut short?)",
                    self.path,
                    unread,
                    "" if unread == 1 else "s",
                )
        finally:
            cap.release()

    def _bag(self) -> Iterator[tuple[str, np.ndarray]]:
        from .ros.image_conversion import to_rgb

        last: dict[str, int] = {}  # each stream's last stamp read
        with open_bag(self.path) as reader:
            conns = [c for c in reader.connections if c.topic in self.topics]
            for conn, _, raw in bag_messages(reader, self.path, conns):
                name = self.name(conn.topic)
                try:
                    msg = deserialize(reader, raw, conn.msgtype)
                    pixels, encoding = bag_image(msg, conn.msgtype, self.debayer)
                    frame = to_rgb(pixels, encoding)
                except ValueError as exc:  # corrupt, cut short or unsupported
                    self.skip(name, str(exc))
                    continue
                stamp = stamp_of(msg)
                if why := stamp_break(last.get(name), stamp, self.max_gap_s):  # the node restarts
                    self.breaks[name] += 1
                    self.paused[name] += why == "gap"
                last[name] = stamp
                yield name, frame

    @property
    def skipped(self) -> int:
        """Unreadable frames skipped so far, all streams."""
        return self.skips.total()

    def skip(self, stream: str, why: str | None = None) -> None:
        """Count an unreadable frame of ``stream``."""
        self.skips[stream] += 1
        if why is not None:
            self.why_skipped.setdefault(stream, why)


def recording_kind(path: Path) -> str | None:
    """'video', 'bag' or 'folder' for what the offline tools read, None for anything else."""
    try:
        return kind_of(path)
    except InputError:
        return None


def sharp_source_note(option: str, source: Path, instead: str) -> str | None:
    """A note for a sharp-material ``option`` (`sarn eval --synthetic`, `sarn train
    --val-sharp`) whose read takes the blurred side of a pair (a sequence's ``blur/``), which
    would be the synthetic blur's targets, or leaves out the pairs it holds (beside a folder's
    own frames, its videos or bags). A folder of pairs whose frames lie only in its sequences'
    sub-folders, which a sharp read does not reach, is refused naming ``instead``: the note
    said its blurred frames would be read, then the read found no images."""
    source = Path(source)
    pairs = find_pair_dirs(source) if source.is_dir() else []
    read = {p.resolve() for p in sharp_recordings(source)}
    if pairs and not read:
        raise InputError(
            f"{option} {source} holds blurred/sharp pairs and no sharp frames of its own: "
            f"give it to {instead}"
        )
    if any(blur.resolve() in read for _, blur, _ in pairs):
        besides = any(sharp.resolve() in read for _, _, sharp in pairs)
        return (
            f"note: {option} {source} holds blurred/sharp pairs: its blurred frames are read as "
            f"sharp ones under synthetic blur{', beside its sharp frames' if besides else ''}; "
            f"give it to {instead} to use the real pairs"
        )
    if pairs:  # beside the folder's own frames, or its videos and bags
        return (
            f"note: {option} {source}: not read: {listed([b.parent for _, b, _ in pairs], source)} "
            f"(blurred/sharp pairs: give them to {instead})"
        )
    notes = [blurred_sides_note([source])]
    if recording_kind(source) == "folder":  # its own frames: a figure "all K of" it, unsaid
        out = [p for p in visible(source) if p.is_dir() or recording_kind(p) in ("video", "bag")]
        sides = [p for p in out if is_pair_side(p)]  # its blurred frames are no sharp ones
        for items, why in (
            (
                [p for p in out if p not in sides],
                "only the images directly in a folder of images are read",
            ),
            (sides, "one side of a blurred/sharp pair layout"),
        ):
            if items:
                notes.append(f"note: {option} {source}: not read: {listed(items, source)} ({why})")
    return "\n".join(n for n in notes if n) or None


def pairs_left_out(
    root: Path, found: list[tuple[str, Path, Path]] | None = None
) -> tuple[list[Path], list[Path]]:
    """What a folder of blurred/sharp pairs holds beyond the sequences read from it
    (``found``, :func:`find_pair_dirs` of it where the caller has it): the folders and
    recordings in it nothing reads (a split beside a sequence, a video), and the sequences
    with one side only (a half-copied sequence, REDS' ``train_blur_jpeg``). A figure or a
    training count over less than the folder holds should say so."""
    found = find_pair_dirs(root) if found is None else found
    inside = [p for p in sorted(root.iterdir(), key=natural_key) if not p.name.startswith(".")]
    used = {q for _, b, s in found for d in (b, s) for q in (d, *d.parents)}
    used |= {q.resolve() for q in used}  # a link to a folder read (`again -> .`) is read
    out = [p for p in inside if p.resolve() not in used and (p.is_dir() or recording_kind(p))]
    lone = unpaired_dirs(root)
    lone += [p for p in out if p not in lone and is_pair_side(p)]
    return [p for p in out if p not in lone], lone


def pairs_not_read(
    root: Path, found: list[tuple[str, Path, Path]], option: str
) -> list[tuple[list[Path], str]]:
    """(items, why) for what a folder of pairs given as ``option`` (`sarn eval --pairs`, `sarn
    train --val-pairs`) holds that is not read: :func:`pairs_left_out`'s, and images beside
    the sequences. A figure over less than the folder holds should say so."""
    out, lone = pairs_left_out(root, found)
    nested = [p for p in out if p.is_dir() and find_pair_dirs(p)]
    return [
        (items, why)
        for items, why in (
            (
                nested,
                "only the sequences directly in a folder of pairs are read; give them as "
                f"their own {option}",
            ),
            ([p for p in out if p not in nested], "no blurred/sharp pairs in them"),
            (lone, "one side only"),
            (list_images(root), "images beside sequences"),
        )
        if items
    ]


def holds_recordings(source: str | Path, kinds: tuple[str, ...] = ("video", "bag")) -> bool:
    """Whether a source (`sarn train --data`, `sarn eval --synthetic` or `--no-gt`) is, or
    holds, a recording of ``kinds``: what --sharpest, --topics and the other recording
    options apply to."""
    path = Path(source)
    kind = recording_kind(path)
    inside = visible(path) if kind is None and path.is_dir() else [path]
    return any(recording_kind(p) in kinds for p in inside)


def read_streams(
    path: Path,
    max_frames: int | None = None,
    skip: int = 0,
    scale: float = 1.0,
    topics: list[str] | None = None,
    debayer: str = "vng",
    max_gap_s: float | None = MAX_GAP_S,
) -> tuple[Recording, list[tuple[str, list[np.ndarray]]]]:
    """Each stream's frames ``skip`` .. ``skip + max_frames`` (area-downscaled by ``scale``);
    reading stops as soon as every stream has its frames. A stream without any is left out
    with a warning (a topic a bag declares and never published), unless all are; a stream
    whose frame size or format changes, or whose stamps break off (see :class:`Recording`),
    comes in pieces (``<name>#1``, ...), each of which the node would deblur as one, numbered
    from the stream's first frame: ``--skip-frames`` leaves a piece its name."""
    rec = Recording(path, topics, debayer, max_gap_s)
    seen: dict[str, int] = {}
    taken: dict[str, list[np.ndarray]] = {rec.name(t): [] for t in rec.topics}
    breaks: dict[str, list[tuple[int, int]]] = {name: [] for name in taken}  # per frame taken
    numbers: dict[str, list[int]] = {name: [] for name in taken}  # its piece, per frame taken
    # per frame taken, as recorded: x0.5 makes 96x64 and 97x65 one size, a change all the same
    kinds: dict[str, list[tuple[Any, ...]]] = {name: [] for name in taken}
    piece: dict[str, tuple[int, tuple[Any, ...]]] = {}  # per stream: its piece number and kind
    for name, frame in rec.frames():
        seen[name] = seen.get(name, 0) + 1
        run = (frame.shape, frame.dtype, rec.breaks[name])
        k, before = piece.get(name, (0, None))
        piece[name] = (k + (run != before), run)
        if seen[name] > skip and (max_frames is None or len(taken[name]) < max_frames):
            taken[name].append(resize_by(frame, scale))
            kinds[name].append((frame.shape, frame.dtype))
            breaks[name].append((rec.breaks[name], rec.paused[name]))
            numbers[name].append(piece[name][0])
        if max_frames is not None and all(len(f) >= max_frames for f in taken.values()):
            break
    empty = {}
    for name, frames in taken.items():
        if not frames:
            has = f" (it has {seen.get(name, 0)}, --skip-frames is {skip})" if skip else ""
            why = f": {rec.why_skipped[name]}" if name in rec.why_skipped else ""
            empty[name] = f"no readable frames in {name}{has}{why}"
    if len(empty) == len(taken):
        raise NoFrames(next(iter(empty.values())))
    streams = []
    for name, frames in taken.items():
        if name in empty:
            log.warning("left out (%s)", empty[name])
            continue
        pieces = unbroken_pieces(frames, numbers[name])
        first, last = numbers[name][0], numbers[name][-1]
        if first > 1 and len(pieces) == 1:
            log.warning(
                "%s: its frames after --skip-frames %d are piece #%d: the node restarted %s "
                "before them",
                name,
                skip,
                first,
                times(first - 1),
            )
        if len(pieces) > 1:
            (b0, p0), (b1, p1) = breaks[name][0], breaks[name][-1]
            changes = sum(a != b for a, b in pairwise(kinds[name]))
            said = restarts_said(b1 - b0 - (p1 - p0), p1 - p0, max_gap_s, changes)
            log.warning(
                "%s: taken apart in %d pieces (#%d to #%d), as the node restarts there: %s",
                name,
                len(pieces),
                first,
                last,
                "; ".join(said),
            )
        starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
        streams += [
            (f"{name}#{numbers[name][i]}" if last > 1 else name, p)
            for i, p in zip(starts, pieces, strict=True)
        ]
    return rec, streams


def gap_hint(sources: list[Path], max_gap_s: float | None, what: str = "clips") -> str:
    """Where a bag is among ``sources``: that its ``what`` end at stamp breaks, which can leave
    every piece too short (a camera at 1 fps): "no training images" named neither."""
    if not any(holds_recordings(d, ("bag",)) for d in sources):
        return ""
    if not max_gap_s:  # cut only where they go back: nothing to raise
        return f"; a bag's {what} end where a camera's stamps go back"
    return (
        f"; a bag's {what} end where a camera's stamps go back or pause over --max-gap-s "
        f"{max_gap_s:g} s (raise it for a camera slower than {1 / max_gap_s:g} fps)"
    )


def times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def restarts_said(back: int, paused: int, max_gap_s: float | None, changed: int = 0) -> list[str]:
    """Where a stream restarts at its stamps, in words with the option that sets it: at the
    default a camera slower than 2 fps restarts at every frame, and nothing said so; and
    where its frame size or format ``changed``, as the node restarts there too."""
    said = []
    if back:
        said.append(f"{times(back)} where the stamps went back")
    if paused and max_gap_s:
        said.append(
            f"{times(paused)} where the stamps paused over --max-gap-s {max_gap_s:g} s (raise "
            f"it for a camera slower than {1 / max_gap_s:g} fps)"
        )
    if changed:
        said.append(f"{times(changed)} where the frame size or format changed")
    return said


def unbroken_pieces(frames: list[np.ndarray], runs: list[int]) -> list[list[np.ndarray]]:
    """``frames`` cut where their shape or dtype changes (a camera reconfigured mid-recording:
    the blur generator, and the recurrent state, take one size at a time) or ``runs`` does
    (one per frame: the piece of the stream it is in, which a stamp break ends: a pause is a
    new scene)."""
    pieces: list[list[np.ndarray]] = []
    run = None
    for f, b in zip(frames, runs, strict=True):
        if (f.shape, f.dtype, b) != run:
            pieces.append([])
            run = (f.shape, f.dtype, b)
        pieces[-1].append(f)
    return pieces


def iter_clips(
    path: Path,
    clip_frames: int,
    scale: float = 1.0,
    topics: list[str] | None = None,
    debayer: str = "vng",
    max_gap_s: float | None = MAX_GAP_S,
    note: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, list[np.ndarray]]]:
    """Consecutive frames of each stream in pieces of ``clip_frames`` (a shorter tail of at
    least 3 frames too, also where the frame size or format changes, an unreadable frame
    breaks the run, or the stamps break off), as uint8 RGB for the blur generator: a long
    recording becomes many training sequences without being held in memory. ``note`` is told,
    once the recording is read, of each stream's frames left out in pieces under 3 frames
    and where it was cut (a jittery bag's pieces were dropped unsaid), and of each stream
    without a readable frame."""
    rec = Recording(path, topics, debayer, max_gap_s)
    pending: dict[str, list[np.ndarray]] = {}
    counts: dict[str, int] = {}
    left_out: Counter[str] = Counter()  # per stream: frames in pieces under 3
    changed: Counter[str] = Counter()  # per stream: where its frame size or format changed
    # per stream: its format, and its skips and stamp breaks so far
    runs: dict[str, tuple[tuple[int, ...], np.dtype, int, int]] = {}

    def numbered(name: str) -> tuple[str, list[np.ndarray]]:
        """The stream's pending clip, taken and named ``<stream>_<k>``."""
        counts[name] = counts.get(name, 0) + 1
        return f"{name}_{counts[name]}", pending.pop(name)

    for name, frame in rec.frames():
        # the frame as recorded: a size x0.5 rounds away (64 and 65 px) or mono8 to rgb8 is
        # a cut at every scale, so the clips of each scale and --sharpest's names agree
        run = (frame.shape, frame.dtype, rec.skips[name], rec.breaks[name])
        if name in runs and runs[name][:2] != run[:2]:
            changed[name] += 1
        if pending.get(name) and runs[name] != run:  # a clip ends
            if len(pending[name]) >= 3:
                yield numbered(name)
            left_out[name] += len(pending.pop(name, []))
        runs[name] = run
        frame = resize_by(_rgb8(frame), scale)
        pending.setdefault(name, []).append(frame)
        if len(pending[name]) == clip_frames:
            yield numbered(name)
    for name, clip in list(pending.items()):
        if len(clip) >= 3:
            yield numbered(name)
        else:
            left_out[name] += len(clip)
    for name, n in left_out.items():
        if note is None or not n:
            continue
        back, paused = rec.breaks[name] - rec.paused[name], rec.paused[name]
        said = restarts_said(back, paused, max_gap_s, changed[name])
        if rec.skips[name]:
            said.append(f"{times(rec.skips[name])} at an unreadable frame")
        cut = f"; the stream was cut {'; '.join(said)}" if said else ""
        note(f"{name}: {n} frame{'s' * (n != 1)} left out, in pieces of fewer than 3 frames{cut}")
    for name in map(rec.name, rec.topics):  # a camera never published, or all unreadable:
        if note is not None and name not in runs:  # it went unsaid (--val-sharp says it)
            why = f": {rec.why_skipped[name]}" if name in rec.why_skipped else ""
            note(f"left out (no readable frames in {name}{why})")


def sharpest_clips(
    path: Path,
    clip_frames: int,
    fraction: float,
    topics: list[str] | None = None,
    debayer: str = "vng",
    max_gap_s: float | None = MAX_GAP_S,
    min_frames: int = 1,
) -> tuple[set[str], int, int]:
    """The names of the ``fraction`` of :func:`iter_clips`' clips of ``path`` with the highest
    median frame sharpness (variance of the Laplacian at half size, where sensor noise counts
    less than at full size), how many clips were ranked, and the fewest frames a ranked clip
    had to have: a robot's ordinary recordings hold sharp stretches (standing, turning slowly)
    to synthesise blur from. Clips shorter than ``min_frames`` (what a training clip needs) are
    not ranked, as a sharp 3-frame tail would take a place of the share and then be left out
    of training; where none has that many, all are (training then says the clips are short)."""
    scores = {
        name: (len(clip), float(np.median([sharpness(f) for f in clip])))
        for name, clip in iter_clips(path, clip_frames, 0.5, topics, debayer, max_gap_s)
    }
    if not any(n >= min_frames for n, _ in scores.values()):
        min_frames = 1
    ranked = sorted(
        (name for name, (n, _) in scores.items() if n >= min_frames),
        key=lambda name: scores[name][1],
        reverse=True,
    )
    return set(ranked[: max(1, round(fraction * len(ranked)))]), len(ranked), min_frames


def _rgb8(frame: np.ndarray) -> np.ndarray:
    """The generator's input: uint8 RGB (grey replicated, 16 bit scaled)."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB) if frame.ndim == 2 else frame


def read_owners(reads: list[set[Path]], ranks: list[tuple] | None = None) -> list[int | None]:
    """For each source (``reads``: the files each reads, :func:`read_units`), the index of
    another that reads all it does and comes before it: the one that reads the most, then the
    higher of ``ranks``, then the first given; None for a source read itself (one given twice,
    a video inside a folder given too, a split bag's part beside the bag, in any order). Only
    sources sharing a file are compared: 10,000 sources took 6 s pairwise."""
    ranks = ranks or [()] * len(reads)

    def key(j: int) -> tuple:
        return (len(reads[j]), *ranks[j], -j)

    holding: dict[Path, set[int]] = {}  # the sources that read each file
    for j, read in enumerate(reads):
        for p in read:
            holding.setdefault(p, set()).add(j)
    owners: list[int | None] = []
    for k, read in enumerate(reads):
        wider = set.intersection(*(holding[p] for p in read)) - {k} if read else set()
        owners.append(max((j for j in wider if key(j) > key(k)), key=key, default=None))
    return owners


def sharp_recordings(path: Path) -> list[Path]:
    """The recordings a read of ``path`` as sharp material (:func:`synthetic_sequences`)
    takes: itself, or each one in the folder it is (one level down, as that read goes)."""
    if recording_kind(path):
        return [path]
    return [c for c in visible(path) if recording_kind(c)] if path.is_dir() else []


def synthetic_sequences(
    path: Path,
    seed: int,
    params: BlurParams,
    scale: float = 1.0,
    max_frames: int | None = None,
    topics: list[str] | None = None,
    debayer: str = "vng",
    max_gap_s: float | None = MAX_GAP_S,
) -> list[Sequence]:
    """Blurred sequences with ground truth from sharp material: a folder as
    :func:`synthesize_folder` makes them (a video or one sequence per still), a video file or
    each camera of a bag as one video, or a folder of those (each named after its own)."""
    path = Path(path)
    try:
        kind = kind_of(path)
    except InputError:
        children = sharp_recordings(path)
        if not children:
            raise
        seqs = []
        for child in children:
            folder = recording_kind(child) == "folder"
            made = synthetic_sequences(
                child, seed, params, scale, max_frames, topics, debayer, max_gap_s
            )
            for seq in made:
                # a folder's stills are named by their own stems: `s/s0`, not `s0` (the name of
                # a video s0.mp4 beside them); its video is the folder's name, or `name#k`
                if folder and seq.name.split("#")[0] != child.name:
                    seq.name = f"{child.name}/{seq.name}"
                seqs.append(seq)
        return seqs
    if kind == "folder":
        made = list(synthesize_folder(path, seed, params, scale, max_frames))
        if not made:
            raise InputError(f"no sharp images in {path}")
        return made
    _, streams = read_streams(path, max_frames, 0, scale, topics, debayer, max_gap_s)
    seqs = []
    for k, (name, frames) in enumerate(streams):
        # each camera and piece draws its own blur, as a folder's pieces do; the first keeps
        # the seed, so that a one-camera recording is blurred as it was before
        drawn = seed if k == 0 else seed * 1000 + k
        blurred, sharp = synthesize([_rgb8(f) for f in frames], params=params, seed=drawn)
        seqs.append(Sequence(name, blurred, sharp))
    return seqs
