"""Image files and headers, read and written so that no file can crash or stall a run.

Neutral ground for the ROS intake (:mod:`sarn_ros.ros.image_conversion`), the file readers
(:mod:`sarn_ros.data.datasets`) and the writers of the tools. OpenCV is given bytes, not
paths: its path-taking calls crash the process (SIGSEGV) on a name that is not UTF-8 (a
camera's or an old FAT drive's ``\\xff.png``), and its PNG reader allocates what a chunk
states before checking it against the bytes there are, 2 GB for a 49-byte file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (the frame size), all but DHT (C4), JPG (C8) and DAC (CC)
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


VIDEO_FPS = (0.01, 65535.0)  # the rates an mp4v video is written at (time base <= 65535)


def _png_size(read: Callable[[int, int], bytes], total: int) -> tuple[int, int] | None:
    """Walk a PNG's chunk headers through ``read(offset, count)``; (width, height) from IHDR.
    ValueError for a chunk longer than the ``total`` bytes left."""
    pos, size = len(PNG_SIGNATURE), None
    while pos + 8 <= total:
        head = read(pos, 16)
        length = int.from_bytes(head[:4], "big")
        kind = bytes(head[4:8])
        if length > total - pos - 12:
            raise ValueError(f"corrupt PNG: its {kind!r} chunk states more bytes than it has")
        if kind == b"IHDR" and length >= 8:
            size = (int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big"))
        if kind == b"IEND":
            break
        pos += 12 + length
    return size


def _tiff_size(data: memoryview) -> tuple[int, int] | None:
    """(width, height) from a classic TIFF's first directory (the page OpenCV decodes)."""
    order = {b"II": "little", b"MM": "big"}[bytes(data[:2])]

    def num(pos: int, size: int) -> int:
        return int.from_bytes(data[pos : pos + size], order)  # type: ignore[arg-type]

    ifd = num(4, 4)
    if ifd + 2 > len(data):
        return None
    sides: dict[int, int] = {}
    for at in range(ifd + 2, min(ifd + 2 + 12 * num(ifd, 2), len(data) - 11), 12):
        tag, kind = num(at, 2), num(at + 2, 2)
        if tag in (256, 257) and kind in (3, 4):  # ImageWidth, ImageLength: SHORT or LONG
            sides[tag] = num(at + 8, 2 if kind == 3 else 4)
    return (sides[256], sides[257]) if len(sides) == 2 else None


def stated_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) a PNG, JPEG or TIFF in memory states ahead of its pixels; None for
    other formats or no size found. ValueError for a PNG chunk longer than the bytes left."""
    data = memoryview(data).cast("B")  # slices without copies
    if data[: len(PNG_SIGNATURE)] == PNG_SIGNATURE:
        return _png_size(lambda pos, count: data[pos : pos + count], len(data))
    if len(data) >= 8 and data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                return None  # not at a marker: libjpeg skips such bytes, decoding any size
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):  # no length
                pos += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image, start of scan: no size stated before
                return None
            if marker in _SOF and pos + 9 <= len(data):
                height = int.from_bytes(data[pos + 5 : pos + 7], "big")
                return int.from_bytes(data[pos + 7 : pos + 9], "big"), height
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


# bytes: the largest image OpenCV decodes is 2**30 pixels, 6 GiB at 16-bit RGB uncompressed;
# a larger file (a 50 GB sparse one named .jpg) is no image to read whole
MAX_FILE_BYTES = 6 << 30


def cut_short(data: np.ndarray) -> bool:
    """A JPEG without its end marker (FF D9) after its first scan: a half-downloaded or
    half-copied file, which OpenCV decodes with its lower part grey and only a libjpeg warning
    on stderr, so a benchmark would score the grey. The marker is looked for from the scan on,
    whose coded data cannot hold FF D9 (an EXIF thumbnail before it has its own), not at the
    file's end: phones append data after it (a Motion Photo's video, Samsung's trailer). Data
    that is no JPEG (a PNG named .jpg) is left to the decoder."""
    raw = memoryview(data).cast("B")
    if raw[:2] != b"\xff\xd8":
        return False
    pos = 2
    while pos + 4 <= len(raw) and raw[pos] == 0xFF and raw[pos + 1] != 0xDA:
        # a header segment, skipped by its length (or a fill byte before a marker)
        pos += 1 if raw[pos + 1] == 0xFF else 2 + int.from_bytes(raw[pos + 2 : pos + 4], "big")
    return re.search(rb"\xff\xd9", raw[pos:]) is None  # on the buffer itself, no copy


def imread(path: Path, flags: int) -> np.ndarray | None:
    """``cv2.imread`` from the file's bytes; None for what it cannot or should not read: no
    regular file (a FIFO would block the read for good, ``/dev/zero`` never ends), a file
    over MAX_FILE_BYTES, a JPEG cut short (:func:`cut_short`), a PNG chunk stating more bytes
    than the file has, an image stating more pixels than OpenCV decodes (it raises for a
    header of 65000x65000). Decoding applies the EXIF orientation as ``cv2.imread`` does."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = np.fromfile(path, np.uint8)
        if data.size == 0 or cut_short(data):
            return None
        stated_size(data)  # ValueError: a chunk stating more than there is
        return cv2.imdecode(data, flags)
    except (OSError, ValueError, MemoryError, cv2.error):
        return None


def imwrite(path: Path, img: np.ndarray, params: list[int] | None = None) -> None:
    """``cv2.imwrite`` by way of ``cv2.imencode`` (the format from the suffix, ``params`` as
    OpenCV takes them), with OSError saying why an image was not written (a folder in the
    way, a full disk, a size the format cannot hold) where ``cv2.imwrite`` returns False
    and every caller guessed "disk full?". Written beside ``path`` and renamed onto it: a
    link there (an earlier output hard-linked to its input, `cp -al`; a symlink to it) is
    replaced, not written through onto the original, and a stop leaves no image cut short.
    In a folder the user cannot write, or a sticky one (/tmp) where the file is another's,
    a file they may write (no link) is written in place, as cv2.imwrite does."""
    try:
        ok, buf = cv2.imencode(path.suffix, img, params or [])
    except cv2.error:
        ok = False
    if not ok:
        h, w = img.shape[:2]
        raise OSError(f"cannot write {path}: OpenCV cannot encode a {w}x{h} image as {path.suffix}")

    def in_place() -> None:  # open().write: tofile needs a file position, a pipe has none
        with open(path, "wb") as f:
            f.write(buf.tobytes())

    try:
        if path.exists() and not path.is_symlink() and not path.is_file():
            in_place()  # a device or a pipe is written to, not replaced
            return
        part = path.with_name(f".{path.name[:40]}.{secrets.token_hex(4)}.part")
        try:
            try:
                buf.tofile(part)
                keep_owner(path, part)
                os.replace(part, path)
            except PermissionError:
                if path.is_symlink() or not path.is_file() or path.stat().st_nlink > 1:
                    raise
                in_place()
        finally:
            part.unlink(missing_ok=True)  # written and renamed: nothing left to remove
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None


def keep_owner(old: Path, new: Path) -> None:
    """Give ``new`` the mode and owner of ``old``, where there is one to replace: as root (a
    container writing into a mounted folder) the replacement was root's, 0644. Best effort: a
    folder that holds no modes (vfat) must not cost the output it was to keep."""
    try:
        st = os.stat(old)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.chmod(new, st.st_mode & 0o7777)
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):  # only root may give a file away
            os.chown(new, st.st_uid, st.st_gid)


def kernel_path(path: Path | str) -> Path:
    """``path`` with its folder as the kernel finds it: `new/../out.mp4` is `./out.mp4`, and
    `new` is no folder to make (mkdir -p made it, left empty beside the output). A link as
    the last part stays itself, as the write replaces it."""
    path = Path(path)
    return Path(os.path.realpath(path.parent)) / path.name


def video_path(path: Path) -> str:
    """``path`` for OpenCV's video reader and writer, which take only paths: ValueError for
    one that is not UTF-8, which they crash the process on."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{os.fsencode(path)!r}: OpenCV cannot open a video whose path is not UTF-8; rename it"
        ) from None
    return str(path)
