"""What a PNG or JPEG states about itself ahead of its pixels, read without decoding.

Neutral ground for the ROS intake (:mod:`sarn_ros.ros.image_conversion`) and the file readers
(:mod:`sarn_ros.data.datasets`): OpenCV's PNG reader allocates what a chunk states before
checking it against the bytes there are, 2 GB for a 49-byte file, so both check first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (the frame size), all but DHT (C4), JPG (C8) and DAC (CC)
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


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


def stated_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) a PNG or JPEG in memory states ahead of its pixels; None for other
    formats or no size found (the decoder then says what is wrong). ValueError for a PNG
    chunk longer than the bytes left."""
    data = memoryview(data).cast("B")  # slices without copies
    if data[: len(PNG_SIGNATURE)] == PNG_SIGNATURE:
        return _png_size(lambda pos, count: data[pos : pos + count], len(data))
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                return None  # not at a marker: for the decoder to judge
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


def check_png_file(path: Path) -> None:
    """ValueError for a PNG file (by content, whatever its name) with a chunk stating more
    bytes than the file has. Reads the chunk headers only: a 20 MB still is a few thousand
    seeks, not a second copy in memory."""
    with open(path, "rb") as f:
        if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            return
        total = os.fstat(f.fileno()).st_size

        def read(pos: int, count: int) -> bytes:
            f.seek(pos)
            return f.read(count)

        _png_size(read, total)
