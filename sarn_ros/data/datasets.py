"""Sequence datasets for training and evaluation: real blurred/sharp folders in the standard
layouts, and sharp material turned into blurred sequences by :mod:`blur_synth`.

Accepted layouts (``root`` may hold one sequence or many):

- GoPro: ``GOPRO_Large/{train,test}/<seq>/{blur,blur_gamma,sharp}/`` (pass the split folder)
- DVD: ``quantitative_datasets/<seq>/{input,GT}/``
- BSD: ``BSD_2ms16ms/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/``
- REDS: ``REDS/{train,val}/{train,val}_{blur,blur_jpeg,sharp}/<seq>/`` (blurred and sharp
  sequences in sibling trees; pass the split folder)
- RealBlur and the like: ``<root>/<seq>/{blur,gt}/`` or ``<root>/<seq>/{blur,sharp}/``
  (folder names in any case); ``<name>_blur/`` beside ``<name>_sharp/`` holding frames, or
  ``blur/<seq>/`` beside ``sharp/<seq>/``
- sharp only (for synthesis): a folder of frames (a video) or of stills.

A pre-built training set (``.npz`` per sequence, :func:`save_sequence`) is memory-mapped by
:func:`load_sequences`, so a set larger than RAM (GoPro's 2,103 training pairs are ~12 GB of
pixels) trains from the page cache: the sampler only touches the rows of its crops.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import torch

from ..checkpoint import first_line
from ..image_files import imread
from .blur_synth import BlurParams, synthesize

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BLUR_DIRS = ("blur", "input", "blur_gamma")  # matched in any case (BSD: Blur, Sharp)
SHARP_DIRS = ("sharp", "gt")
REDS_TREE = re.compile(r"(?P<split>.+)_(?P<kind>blur|blur_jpeg|sharp)", re.IGNORECASE)


def folder_name(path: Path) -> str:
    """The name of the folder ``path`` is, also for '.' or '..' (whose ``name`` is '' or
    '..'); made absolute without following symlinks, so a link keeps its own name."""
    return Path(os.path.abspath(path)).name


def natural_key(path: Path) -> tuple[list, str]:
    """Sort 'Frame 2' before 'Frame 10', and decimal stamps in seconds by value: frames saved
    from a bag as '1692000000.05.png' came after '1692000000.1.png' (5 after 1). The name
    itself breaks ties ('f1' and 'f01'), which would otherwise keep the directory's order,
    another on another filesystem."""
    parts = re.split(r"(\d+(?:\.\d+)?)", path.name)  # text at even places, numbers at odd
    return [Decimal(t) if i % 2 else t.lower() for i, t in enumerate(parts)], path.name


def list_images(folder: Path) -> list[Path]:
    """Image files by natural order, hidden ones left out: macOS leaves an AppleDouble
    ``._name.png`` beside every frame on exFAT/FAT drives and network shares."""
    return sorted(
        (
            p
            for p in Path(folder).iterdir()
            if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
        ),
        key=natural_key,
    )


def read_rgb(path: Path) -> np.ndarray:
    img = imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(img[..., ::-1])


def read_frame(path: Path) -> np.ndarray | None:
    """An image as the engine takes it: RGB (alpha dropped) or grey, 8 or 16 bit as stored,
    turned upright by its EXIF orientation as :func:`read_rgb` and viewers do (a phone's
    portrait photo is stored sideways); None when it cannot be read or is neither (callers
    skip and count it)."""
    # not IMREAD_UNCHANGED: it alone ignores the EXIF orientation
    img = imread(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is not None and img.dtype not in (np.uint8, np.uint16):  # float/HDR TIFF, EXR
        return None
    if img is not None and img.ndim == 3 and _png_grey_alpha(path):  # decoded as grey BGR
        return np.ascontiguousarray(img[..., 0])  # grey, as a grey PNG (it came out colour)
    if img is not None and img.ndim == 3:  # not cvtColor: OpenCV 4.5's fails on a 1x1 image
        img = np.ascontiguousarray(img[..., ::-1])
    return img


def _png_grey_alpha(path: Path) -> bool:
    """Whether ``path`` is a PNG of grey with alpha (colour type 4 in its IHDR)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return False
    return len(head) == 26 and head.startswith(b"\x89PNG\r\n\x1a\n") and head[25] == 4


Frames = list[np.ndarray] | np.ndarray
"""uint8 RGB frames of equal size: a list of (H, W, 3) arrays or one (T, H, W, 3) array, which
may be a read-only memory map of a training-set file."""


@dataclass
class Sequence:
    """A blurred sequence with its sharp ground truth."""

    name: str
    blurred: Frames
    sharp: Frames


def visible(folder: Path) -> list[Path]:
    """A folder's entries by name, hidden ones (a file manager's ``.thumbnails/``, macOS's
    ``._clip.mp4``) left out, as :func:`list_images` and :func:`_subdirs` leave them out: they
    were read as sharp material, trained on and scored."""
    return sorted(p for p in Path(folder).iterdir() if not p.name.startswith("."))


def _subdirs(folder: Path) -> list[Path]:
    """Sub-folders by natural order, hidden ones (``.ipynb_checkpoints``, a tool's
    ``.name.partial``) left out as :func:`list_images` leaves out hidden files."""
    dirs = (d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    return sorted(dirs, key=natural_key)


def holds_images(folder: Path, strict: bool = False) -> bool:
    """Whether ``folder`` has image files of its own, asked until the first (a side holds
    thousands); not a hidden ``._cover.jpg`` (macOS) nor a folder so named: a folder of clips
    beside one was taken for a folder of images, its clips unread. An unreadable folder has
    none to give, or with ``strict`` raises: a side chosen among others (an unreadable
    ``blur/RGB/`` had ``blur_gamma/`` read instead, unsaid)."""
    try:
        with os.scandir(folder) as entries:
            return any(
                os.path.splitext(e.name)[1].lower() in IMAGE_EXTS
                and not e.name.startswith(".")
                and e.is_file()
                for e in entries
            )
    except OSError:
        if strict:
            raise
        return False


def _side(found: Path) -> Path | None:
    """The frames folder a folder named as a side stands for: itself, or where it has no
    frames of its own BSD's ``RGB/`` in it (beside ``RAW/``, in any case); None where it holds
    sequences instead (``blur/<seq>/``, a tree: :func:`_reds_trees`). An empty one is a side
    all the same: its pair is an error naming it, not a sequence left out unsaid."""
    if holds_images(found):
        return found
    # by name first: a side holds thousands of frames, each a stat to ask whether a folder
    names = {n.lower(): n for n in os.listdir(found)}
    if "rgb" in names and (found / names["rgb"]).is_dir():
        return found / names["rgb"]
    if "raw" in names:  # BSD's side without its RGB/: no tree, whose RAW/ (Bayer) read as RGB
        return found
    return None if _subdirs(found) else found


def _frames_dir(seq: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` under ``seq``, in any case, that holds frames, else the first
    (empty): an empty ``blur/`` beside ``blur_gamma/`` reads the latter."""
    by_name = {d.name.lower(): d for d in _subdirs(seq)}
    sides = [s for n in names if n in by_name if (s := _side(by_name[n])) is not None]
    return next((s for s in sides if holds_images(s, strict=True)), sides[0] if sides else None)


def _reds_trees(root: Path) -> list[tuple[str, Path | None, Path | None]]:
    """REDS' (split, blurred tree, sharp tree) under ``root``: ``<split>_blur`` (or
    ``_blur_jpeg`` where there is no ``_blur``) beside ``<split>_sharp``, either maybe absent;
    and ``blur/<seq>/`` beside ``sharp/<seq>/`` (a side's usual names holding sequences, not
    frames or BSD's ``RGB/``), whose split is ''."""
    trees: dict[str, dict[str, Path]] = {}
    subdirs = _subdirs(root)
    names = {d.name.lower() for d in subdirs}
    for d in subdirs:
        m = REDS_TREE.fullmatch(d.name)
        if m and not (_frames_dir(d, BLUR_DIRS) or _frames_dir(d, SHARP_DIRS)):  # `x_blur/blur/`
            trees.setdefault(m["split"], {})[m["kind"].lower()] = d
        elif (
            (name := d.name.lower()) in (*BLUR_DIRS, *SHARP_DIRS)
            and _side(d) is None
            # a sequence named `blur` (its own blur/ and sharp/), unless a `sharp/` tree beside
            # it makes it one (`blur/{000,blur}` beside `sharp/{000,blur}`)
            and not (
                _frames_dir(d, BLUR_DIRS)
                and _frames_dir(d, SHARP_DIRS)
                and not names & set(SHARP_DIRS if name in BLUR_DIRS else BLUR_DIRS)
            )
        ):
            kinds = trees.setdefault("", {})
            kinds.setdefault("blur" if name in BLUR_DIRS else "sharp", d)  # the first, by name
    return [(s, k.get("blur", k.get("blur_jpeg")), k.get("sharp")) for s, k in trees.items()]


def _reds_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """REDS: ``<split>_blur/<seq>/`` beside ``<split>_sharp/<seq>/``; named ``<split>_<seq>``
    since every split numbers from 000. A pair of trees holding their frames directly
    (``office_blur/`` beside ``office_sharp/``) is one sequence, ``<split>``."""
    found = []
    for split, blur, sharp in _reds_trees(root):
        if blur is None or sharp is None:
            continue
        if split and holds_images(blur) and holds_images(sharp):
            found.append((split, blur, sharp))
            continue
        for seq in _subdirs(blur):
            if (sharp / seq.name).is_dir():  # its frames maybe in RGB/, as BSD keeps them
                sides = [_side(s) or s for s in (seq, sharp / seq.name)]
                found.append((f"{split}_{seq.name}" if split else seq.name, *sides))
    return found


def unpaired_dirs(root: Path) -> list[Path]:
    """The sequence folders under ``root`` that have blurred or sharp frames but not both,
    in the layouts :func:`find_pair_dirs` reads: it leaves them out, and a user should hear
    so (a benchmark figure over fewer sequences than downloaded, a half-copied split)."""
    dirs = [Path(root), *_subdirs(Path(root))]
    sides = [(_frames_dir(d, BLUR_DIRS), _frames_dir(d, SHARP_DIRS)) for d in dirs]
    lone = [
        d for d, (blur, sharp) in zip(dirs, sides, strict=True) if (blur is None) != (sharp is None)
    ]
    for _, blur, sharp in _reds_trees(Path(root)):
        seqs = [_subdirs(t) if t else [] for t in (blur, sharp)]
        names = [{q.name for q in side} for side in seqs]
        lone += [q for q in seqs[0] if q.name not in names[1]]
        lone += [q for q in seqs[1] if q.name not in names[0]]
    return lone


def listed(paths: list[Path], root: Path | None, most: int = 6) -> str:
    """``paths`` for a note, relative to ``root`` (``root`` itself by name; whole without
    one), the first ``most`` of them and how many more."""
    shown = [
        str(p) if root is None else p.relative_to(root).as_posix() if p != root else folder_name(p)
        for p in paths
    ]
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def is_pair_side(folder: Path) -> bool:
    """Whether ``folder`` is named as one side of a pair layout (``blur``, ``GT``,
    ``train_blur_jpeg``): its frames are blurred, or ground truth, not sharp training material."""
    name = folder.name.lower()
    return name in (*BLUR_DIRS, *SHARP_DIRS) or REDS_TREE.fullmatch(name) is not None


def blurred_sides(folders: list[Path]) -> list[Path]:
    """The ``folders`` named as the blurred side of a pair layout (``blur``, ``input``,
    ``blur_gamma``, REDS' ``train_blur`` or a sequence in it): read as sharp material, their
    blurred frames would become the targets. Named, not refused: a folder of one's own sharp
    frames may well be called ``input``."""

    def blurred(folder: Path) -> bool:
        for f in (folder, folder.parent):
            m = REDS_TREE.fullmatch(f.name)
            if m and m["kind"].lower() != "sharp":
                return True
        return folder.name.lower() in BLUR_DIRS

    return [f for f in folders if f.is_dir() and blurred(Path(os.path.abspath(f)))]


def blurred_sides_note(folders: list[Path]) -> str | None:
    """One line naming :func:`blurred_sides` among synthetic-blur sources, or None."""
    found = blurred_sides(list(dict.fromkeys(folders)))  # a --data folder is its own source
    if not found:
        return None
    given = {os.path.abspath(f) for f in folders}
    if any(f.name.lower() in BLUR_DIRS and os.path.abspath(f.parent) in given for f in found):
        how = "name the sharp side beside it sharp/ or gt/ (any case)"  # its folder was given
    else:
        how = "give the folder that holds both sides (blur/ and sharp/)"
    return (  # three at most: REDS' train_blur holds 240 sequences
        f"note: {listed(found, None, most=3)}: named as the blurred side of a pair "
        f"layout, yet read as sharp frames under synthetic blur (blurred targets); {how} to "
        "use the real pairs"
    )


def find_pair_dirs(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, blur dir, sharp dir) for every sequence under ``root`` in a known layout."""
    root = Path(root)
    found: list[tuple[str, Path, Path]] = []
    seen: set[tuple[Path, Path]] = set()
    for d in [root, *_subdirs(root)]:
        blur, sharp = _frames_dir(d, BLUR_DIRS), _frames_dir(d, SHARP_DIRS)
        if blur is None or sharp is None:
            continue
        if (key := (blur.resolve(), sharp.resolve())) not in seen:
            seen.add(key)  # a link to the folder itself (`again -> .`) scored it twice
            found.append((folder_name(d), blur, sharp))
    return found + _reds_pairs(root)  # a REDS tree beside a sequence was dropped unsaid


Pair = tuple[str, Path, Path]  # a sequence's name, blurred and sharp folders


def pairs_once(
    found_by_root: dict[Path, list[Pair]], option: str, verb: str
) -> tuple[dict[Path, list[Pair]], list[str]]:
    """Each sequence that several given folders reach (`--pairs a a/seq` scored seq twice, as
    a second row) kept under one: the folder that finds the most, so that its pooled row stays
    whole whichever order they came in, the first given of equals; and a note for the others
    (``option``: the folders' option, ``verb``: what is done to a sequence there, "scored")."""
    owners: dict[tuple[Path, Path], Path] = {}  # by resolved folders
    for root, found in sorted(found_by_root.items(), key=lambda item: -len(item[1])):
        for _, blur, sharp in found:
            owners.setdefault((blur.resolve(), sharp.resolve()), root)
    kept: dict[Path, list[Pair]] = {}
    notes = []
    for root, found in found_by_root.items():
        elsewhere: dict[Path, list[str]] = {}
        for name, blur, sharp in found:
            owner = owners[(blur.resolve(), sharp.resolve())]
            if owner == root:
                kept.setdefault(root, []).append((name, blur, sharp))
            else:
                elsewhere.setdefault(owner, []).append(name)
        notes += [
            f"note: {option} {root}: {', '.join(names)} also under {option} {owner}: "
            f"{verb} there, once"
            for owner, names in elsewhere.items()
        ]
    return {root: kept.get(root, []) for root in found_by_root}, notes


def no_pairs_error(root: Path, what: str = "no blurred/sharp sequence found under") -> ValueError:
    """The error for a folder without sequences, naming where they are: its sub-folders that
    have some (a dataset's root, ``GOPRO_Large``, given where a split was meant), the folder
    above one side given (``<seq>/blur``, REDS' ``train_blur/000``), or the sequences it
    has with one side only (a half-copied split: else left unnamed)."""
    root = Path(root)
    try:  # a hint: an unreadable folder (lost+found) on the way gives none, not its error
        hint = _pairs_hint(root) if root.is_dir() else ""
    except OSError:
        hint = ""
    return ValueError(f"{what} {root}{hint}")


def _pairs_hint(root: Path) -> str:
    """Where :func:`no_pairs_error`'s sequences are, or ''."""
    splits = [d.name for d in _subdirs(root) if find_pair_dirs(d)]
    if len(splits) == 1:
        return f" (its sub-folder {splits[0]} has some: pass that)"
    if splits:
        return f" (its sub-folders {', '.join(splits)} have some: pass one)"
    full = Path(os.path.abspath(root))  # `.` in a side, a link's own name
    # a side (`<seq>/blur`): its sequence; a sequence in a side (REDS' `train_blur/000`): the split
    up = (
        full.parent
        if is_pair_side(full)
        else full.parent.parent
        if is_pair_side(full.parent)
        else None
    )
    if up is not None:
        if find_pair_dirs(up):
            return f" (one side of a pair layout: pass {up})"
        return f" (one side of a pair layout, and {up} holds no sequence with both)"
    if lone := unpaired_dirs(root):
        return f" ({listed(lone, root)}: one side only)"
    return ""


def pair_files(
    name: str, blur_dir: Path, sharp_dir: Path, max_frames: int | None = None
) -> tuple[list[Path], list[Path]]:
    """The first ``max_frames`` blurred and sharp frames of a sequence. The whole folders are
    checked first: a frame missing further on would pair every later blurred frame with the
    wrong sharp one. Where the two folders share file names (GoPro, DVD, BSD, REDS), frames
    are paired by name (:func:`frame_key`), every name must be in both, also when one missing
    and one extra frame leave the counts equal, and only once a side. Folders named apart
    (RealBlur's ``blur_1`` and ``gt_1``) are paired by the numbers in their names where the
    two sides share any, each frame then needing a number of its own (a frame missing on each
    side shifted every later pair), and in sorted order, checked by count only, where the two
    sides' numbers have none in common."""
    blurs, sharps = list_images(blur_dir), list_images(sharp_dir)
    blur_keys, sharp_keys = [frame_key(p) for p in blurs], [frame_key(p) for p in sharps]
    named_alike = bool(set(blur_keys) & set(sharp_keys))
    if named_alike:  # paired by name, so each name once a side: said before the counts, which
        # a second file of one frame (001.png beside 1.jpg) makes differ
        for files, keys in ((blurs, blur_keys), (sharps, sharp_keys)):
            seen: dict[tuple, Path] = {}
            for path, key in zip(files, keys, strict=True):
                if key in seen:
                    raise ValueError(f"{name}: {seen[key]} and {path} name the same frame")
                seen[key] = path
    if len(blurs) != len(sharps):
        lone = ""
        if named_alike:  # which ones: in folders of thousands the counts alone left a search
            for side, files, keys, other in (
                ("blurred", blurs, blur_keys, set(sharp_keys)),
                ("sharp", sharps, sharp_keys, set(blur_keys)),
            ):
                if names := [p.name for p, k in zip(files, keys, strict=True) if k not in other]:
                    lone += f"; only {side}: {', '.join(names[:3])}{', ...' * (len(names) > 3)}"
        raise ValueError(
            f"{name}: {len(blurs)} blurred vs {len(sharps)} sharp frames ({blur_dir}, "
            f"{sharp_dir}){lone}"
        )
    if not blurs:
        raise ValueError(f"{name}: no readable frames in {blur_dir} and {sharp_dir}")
    if named_alike:
        sharps = _paired_by(name, "name", blurs, blur_keys, sharps, sharp_keys)
    else:
        blur_nums, sharp_nums = (
            [frame_numbers(p) for p in blurs],
            [frame_numbers(p) for p in sharps],
        )
        if (set(blur_nums) & set(sharp_nums)) - {()}:  # paired by number: each once a side
            for files, nums in ((blurs, blur_nums), (sharps, sharp_nums)):
                seen: dict[tuple, Path] = {}
                for path, num in zip(files, nums, strict=True):
                    if not num:  # sorted order instead paired a stray cover.png with blur_1
                        raise ValueError(
                            f"{name}: {path} has no number in its name, and the folders' other "
                            "frames are paired by theirs"
                        )
                    if num in seen:
                        raise ValueError(f"{name}: {seen[num]} and {path} carry the same number")
                    seen[num] = path
            sharps = _paired_by(name, "number", blurs, blur_nums, sharps, sharp_nums)
    return blurs[:max_frames], sharps[:max_frames]


def _paired_by(
    name: str, what: str, blurs: list[Path], blur_keys: list, sharps: list[Path], sharp_keys: list
) -> list[Path]:
    """The sharp frames in the blurred frames' order of key (each key once a side); a key on
    one side only is an error naming a frame of each side."""
    in_blur, in_sharp = set(blur_keys), set(sharp_keys)
    if in_blur != in_sharp:
        lone = [p for p, k in zip(blurs, blur_keys, strict=True) if k not in in_sharp][:1]
        lone += [p for p, k in zip(sharps, sharp_keys, strict=True) if k not in in_blur][:1]
        raise ValueError(
            f"{name}: no frame of the same {what} for {' and '.join(map(str, lone))} "
            f"(the folders share other {what}s, so a frame is missing on each side)"
        )
    by_key = dict(zip(sharp_keys, sharps, strict=True))
    return [by_key[k] for k in blur_keys]


def frame_numbers(path: Path) -> tuple[Decimal, ...]:
    """The numbers in a frame's name (``blur_12`` and ``gt_12``: (12,))."""
    return tuple(k for i, k in enumerate(natural_key(Path(path.stem))[0]) if i % 2)


def frame_key(path: Path) -> tuple:
    """A frame's name without extension, numbers by value: ``1.png``, ``01.png`` and ``1.jpg``
    name one frame (a folder saved with padding beside one without)."""
    return tuple(natural_key(Path(path.stem))[0])


def read_pair(
    name: str, blur_dir: Path, sharp_dir: Path, scale: float = 1.0, max_frames: int | None = None
) -> Sequence:
    """A sequence's frames, each blurred frame checked to be its sharp frame's size: found
    here, naming both files, not as a broadcast error once the frames are compared."""
    (seq,) = read_pair_pieces(name, blur_dir, sharp_dir, scale, max_frames, cut=False)
    return seq


def read_pair_pieces(
    name: str,
    blur_dir: Path,
    sharp_dir: Path,
    scale: float = 1.0,
    max_frames: int | None = None,
    cut: bool = True,
) -> list[Sequence]:
    """:func:`read_pair`'s frames, cut where their own size changes (``name#1``, ...: the node
    and ``sarn eval`` restart the stream there, and validation stacks a piece's frames), each
    downscaled as it is read. Cut after the downscale, 96x64 and 97x65 frames at x0.5 were one
    piece; held at full size first, a pair took several times the memory."""
    blurs, sharps = pair_files(name, blur_dir, sharp_dir, max_frames)
    pieces: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    size = None
    for blur_path, sharp_path in zip(blurs, sharps, strict=True):
        b, s = read_rgb(blur_path), read_rgb(sharp_path)
        if b.shape != s.shape:
            raise ValueError(
                f"{name}: blurred {blur_path} is {b.shape[1]}x{b.shape[0]} but sharp "
                f"{sharp_path} is {s.shape[1]}x{s.shape[0]}"
            )
        if not pieces or (cut and b.shape != size):
            pieces.append(([], []))
        size = b.shape
        pieces[-1][0].append(resize_by(b, scale))
        pieces[-1][1].append(resize_by(s, scale))
    if len(pieces) == 1:
        return [Sequence(name, *pieces[0])]
    return [Sequence(f"{name}#{k}", b, s) for k, (b, s) in enumerate(pieces, 1)]


def resize_by(img: np.ndarray, scale: float) -> np.ndarray:
    """Area-downscale (anti-aliased, so the sharp targets stay sharp) by ``scale``."""
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    return cv2.resize(
        img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def synthesize_folder(
    folder: Path,
    seed: int,
    params: BlurParams | None = None,
    scale: float = 1.0,
    max_frames: int | None = None,
    still_frames: int = 6,
) -> Iterator[Sequence]:
    """Blurred sequences from a sharp folder: one video if its frames share a size and look
    alike (>= 3 frames), else one synthetic camera move per still, made as they are consumed
    (only the sharp stills are held, not every blurred sequence made from them). Where the
    size changes, each run of >= 3 alike frames of one size is a video piece (``name#k``), as
    videos and bags are cut there, rather than the whole folder turning into stills."""
    paths = list_images(folder)
    if max_frames:  # a video's first 1 or 2 frames are still a video: decide on 3 at least
        paths = paths[: max_frames + 2]
    imgs = [resize_by(read_rgb(p), scale) for p in paths]
    end = len(imgs) if max_frames is None else min(len(imgs), max_frames)
    runs = _same_size_runs(imgs)
    if len(runs) == 1 and len(imgs) >= 3 and _looks_like_video(imgs):
        b, s = synthesize(imgs[:end], params=params, seed=seed)
        yield Sequence(folder_name(folder), b, s)
        return
    piece = 0
    for a, z in runs:
        if z - a >= 3 and _looks_like_video(imgs[a:z]):
            if a < end:
                piece += 1
                b, s = synthesize(imgs[a : min(z, end)], params=params, seed=seed * 1000 + a)
                yield Sequence(f"{folder_name(folder)}#{piece}", b, s)
            continue
        for i in range(a, min(z, end)):
            b, s = synthesize([imgs[i]], n_frames=still_frames, params=params, seed=seed * 1000 + i)
            yield Sequence(paths[i].stem, b, s)


def _same_size_runs(imgs: list[np.ndarray]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive frames of one size."""
    cuts = [i for i in range(1, len(imgs)) if imgs[i].shape != imgs[i - 1].shape]
    return list(zip([0, *cuts], [*cuts, len(imgs)], strict=True))


def _looks_like_video(imgs: list[np.ndarray]) -> bool:
    """Consecutive frames of a video differ little; unrelated stills differ a lot. Compared
    as area-averaged 64x64 thumbnails (a plain resize aliased, so one folder of a 10 fps
    camera read as stills at x1 and as a video at x0.5), median of up to 4 neighbours: Vid4
    differs by 2-4 (8-bit levels) between frames, 6-12 at every 3rd frame, up to 21 at
    every 6th; the stills of CSet5/CSet14/CBSD68 by 51-99."""
    thumbs = [
        cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) for x in imgs[:5]
    ]
    diffs = [float(np.abs(a - b).mean()) for a, b in pairwise(thumbs)]
    return float(np.median(diffs)) < 25.0


def unique_name(name: str, seen: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when taken: one file (or row) per sequence, so two
    sources with the same sequence names (BSD_1ms8ms and BSD_2ms16ms, two runs' ``blur``
    folders) keep both."""
    stem, n = name, 1
    while file_stem(name) in seen:
        n += 1
        name = f"{stem}_{n}"
    seen.add(file_stem(name))
    return name


def file_stem(name: str) -> str:
    """One file name for a sequence name: 'run1/left/image_raw' -> 'run1_left_image_raw'."""
    return name.strip("/").replace("/", "_")


def check_one_size(seq: Sequence) -> None:
    """Raise unless all of ``seq``'s frames share a size: a training clip is cropped at one
    place in every frame and a training-set file stacks them, so pairs of several sizes in
    one folder (unrelated stills) failed as a bare stacking error, after a long build or at
    a random training step."""
    sizes = {f.shape[:2] for f in seq.blurred} | {f.shape[:2] for f in seq.sharp}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
        raise ValueError(
            f"{seq.name}: frames of several sizes ({shown}); a training sequence has one: "
            "give each size its own sequence folder"
        )


def save_sequence(seq: Sequence, out_dir: Path) -> None:
    """One uncompressed ``.npz``, the form :func:`load_sequences` can memory-map."""
    check_one_size(seq)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(
        out_dir / f"{file_stem(seq.name)}.npz",
        blurred=np.stack(seq.blurred),
        sharp=np.stack(seq.sharp),
    )


def _npz_memmap(path: Path, zf: zipfile.ZipFile, key: str) -> np.ndarray | None:
    """A read-only memory map of array ``key`` inside an uncompressed ``.npz``; None when the
    member is compressed (np.savez_compressed) and has to be read instead."""
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        # local file header: 30 fixed bytes, then the name and an extra field whose lengths
        # (bytes 26-29) may differ from the central directory's copy
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), "<u2")
        fh.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(np.lib.format.read_magic(fh))
        if read_header is None:
            return None
        shape, fortran, dtype = read_header(fh)
        if fortran or dtype.hasobject:
            return None
        return np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape)


def load_sequences(folder: Path, mmap: bool = True) -> list[Sequence]:
    """Every ``.npz`` sequence under ``folder``; memory-mapped unless ``mmap`` is False (or a
    file is compressed), so only the crops being trained on are read from disk."""
    seqs = []
    for f in sorted(Path(folder).rglob("*.npz"), key=natural_key):
        if not f.is_file():  # a FIFO would block the read for good, /dev/zero never ends
            raise ValueError(f"{f} is not a regular file: no sequence of a training set")
        arrays = {}
        try:
            with zipfile.ZipFile(f) as zf:
                for key in ("blurred", "sharp"):
                    arrays[key] = _npz_memmap(f, zf, key) if mmap else None
            if any(a is None for a in arrays.values()):
                with np.load(f) as z:
                    arrays = {k: z[k] for k in arrays}
        except (zipfile.BadZipFile, KeyError, EOFError) as exc:  # not an .npz, or not ours
            raise ValueError(f"{f} is no sequence of a training set ({first_line(exc)})") from None
        blurred, sharp = arrays["blurred"], arrays["sharp"]
        if not (
            blurred.dtype == sharp.dtype == np.uint8
            and blurred.ndim == 4
            and blurred.shape[-1] == 3
            and blurred.shape == sharp.shape
        ):  # a network expecting 15 channels failed on it at the first step, a traceback
            raise ValueError(
                f"{f} holds {blurred.dtype} {blurred.shape} and {sharp.dtype} {sharp.shape}: a "
                "training-set sequence is uint8 (frames, height, width, 3) twice"
            )
        seqs.append(Sequence(f.stem, arrays["blurred"], arrays["sharp"]))
    return seqs


def usable_sequences(seqs: list[Sequence], clip_len: int, crop: int) -> list[Sequence]:
    """The sequences a :class:`ClipSampler` draws from: ``clip_len`` frames (look-ahead
    included) of at least ``crop`` x ``crop``."""
    return [s for s in seqs if len(s.blurred) >= clip_len and min(s.blurred[0].shape[:2]) >= crop]


class ClipSampler:
    """Random training clips (N, T, 3, crop, crop) in [0, 1] with random crops and flips.

    Sequences are weighted by the number of clips they hold (start frames); those shorter
    than T plus ``lookahead``, or smaller than the crop, are skipped.
    ``max_stride`` > 1 takes every k-th frame (k drawn from the strides the sequence has room
    for): the same blur with k times the motion between frames, as a camera with a lower frame
    rate than the material's sees it, so the temporal path learns not to trust a stale past.
    ``lookahead`` frames more are kept in reserve: ``sample(..., extra=n)`` adds n blurred
    frames after the clip, without ground truth, so its last frames see real future frames as
    the streaming engine's do (they would otherwise always get the end-of-stream substitutes).
    """

    def __init__(
        self,
        seqs: list[Sequence],
        clip_len: int,
        crop: int,
        max_stride: int = 1,
        lookahead: int = 0,
    ) -> None:
        span = clip_len + lookahead
        self.seqs = usable_sequences(seqs, span, crop)
        if not self.seqs:
            raise ValueError(
                f"no sequence has {span} frame{'s' * (span != 1)} of at least {crop}x{crop}"
            )
        for s in self.seqs:
            check_one_size(s)
        weights = np.array([len(s.blurred) - span + 1 for s in self.seqs], dtype=np.float64)
        self.p = weights / weights.sum()
        self.clip_len, self.crop, self.max_stride = clip_len, crop, max(1, max_stride)
        self.lookahead = lookahead

    def sample(
        self, rng: np.random.Generator, batch: int, extra: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(blurred (N, clip_len + extra, ...), sharp (N, clip_len, ...)); ``extra`` is at
        most ``lookahead``."""
        if not 0 <= extra <= self.lookahead:
            raise ValueError(f"extra must be 0..{self.lookahead}, got {extra}")
        n = self.clip_len + extra
        blurred, sharp = [], []
        for _ in range(batch):
            s = self.seqs[rng.choice(len(self.seqs), p=self.p)]
            k = 1
            if self.max_stride > 1 and n > 1:
                room = (len(s.blurred) - 1) // (n - 1)
                k = int(rng.integers(1, min(self.max_stride, room) + 1))
            t0 = int(rng.integers(0, len(s.blurred) - (n - 1) * k))
            h, w = s.blurred[0].shape[:2]
            y, x = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
            win = (slice(y, y + self.crop), slice(x, x + self.crop))
            frames = slice(t0, t0 + (n - 1) * k + 1, k)
            b = np.stack([f[win] for f in s.blurred[frames]])
            g = np.stack([f[win] for f in s.sharp[frames]])
            if rng.random() < 0.5:
                b, g = b[:, :, ::-1], g[:, :, ::-1]
            if rng.random() < 0.5:
                b, g = b[:, ::-1], g[:, ::-1]
            if rng.random() < 0.5:  # play the clip backwards: blur statistics are symmetric
                b, g = b[::-1], g[::-1]
            blurred.append(b)
            sharp.append(g[: self.clip_len])  # the look-ahead frames are input only

        def to_tensor(x: list[np.ndarray]) -> torch.Tensor:
            return (
                torch.from_numpy(np.ascontiguousarray(np.stack(x))).permute(0, 1, 4, 2, 3).float()
                / 255.0
            )

        return to_tensor(blurred), to_tensor(sharp)
