"""sensor_msgs/Image and CompressedImage <-> numpy, without PyPI's broken cv-bridge.

Duck-typed: works on rclpy messages and on the dataclasses ``rosbags`` deserialises, since
both expose ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and ``data``.
Reading returns a zero-copy view of ``msg.data`` whenever the layout allows (no row padding
to drop for the caller, native byte order); writing builds ``data`` from one ``tobytes`` of a
contiguous array, never per pixel (the field notes' 1.4 s cv2_to_imgmsg pitfall).

The real ROS ``cv_bridge`` is used only for encodings this module does not decode itself
(bayer_*, yuv422, ...) and only when it is importable (a ROS install has it).
"""

from __future__ import annotations

import array as pyarray
import sys
from typing import Any

import cv2
import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "16UC1": (np.dtype(np.uint16), 1),
}
GREY = {"mono8", "mono16", "8UC1", "16UC1"}


class UnsupportedEncoding(ValueError):
    """An image encoding that neither this module nor an installed cv_bridge can decode."""


def _buffer(data: Any) -> np.ndarray:
    """``msg.data`` as a flat uint8 array without copying (bytes, array.array, list, ndarray)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # array.array
    except TypeError:
        return np.asarray(data, dtype=np.uint8)  # plain list: rare, copies


def _data_field(msg: Any, flat: np.ndarray) -> Any:
    """``flat`` in the type ``msg.data`` holds: rclpy's setter accepts an ``array.array('B')``
    as is but validates bytes element by element (~170 ms for 720p rgb8); rosbags wants a
    numpy array."""
    current = getattr(msg, "data", None)
    if isinstance(current, np.ndarray):
        return flat
    if isinstance(current, pyarray.array):
        out = pyarray.array("B")
        out.frombytes(flat.tobytes())
        return out
    return flat.tobytes()


def _cv_bridge_decode(msg: Any) -> np.ndarray:
    try:
        from cv_bridge import CvBridge  # the ROS one; PyPI's cv-bridge is broken (numpy 2)
    except ImportError:
        raise UnsupportedEncoding(
            f"encoding {msg.encoding!r} is not supported without ROS cv_bridge; "
            "debayer/convert first (e.g. image_proc) or publish rgb8/bgr8/mono8/mono16"
        ) from None
    return np.asarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8"))


def image_to_numpy(msg: Any) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as (H, W) or (H, W, C) array in the message's encoding.

    Raises ValueError (UnsupportedEncoding for unknown encodings) on malformed messages.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    encoding = msg.encoding
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image ({width}x{height})")
    if encoding not in ENCODINGS:
        return _cv_bridge_decode(msg)
    dtype, channels = ENCODINGS[encoding]
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than width*channels*bytes {row_bytes}")
    buf = _buffer(msg.data)
    if buf.size < step * (height - 1) + row_bytes:
        raise ValueError(
            f"data has {buf.size} bytes, {encoding} {width}x{height} needs {step * height}"
        )
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(height, row_bytes), strides=(step, 1), writeable=False
    )
    if dtype.itemsize > 1:
        swap = bool(msg.is_bigendian) != (sys.byteorder == "big")
        order = ">" if bool(msg.is_bigendian) else "<"
        if step % dtype.itemsize:  # rows not aligned for a view: copy them out
            rows = np.ascontiguousarray(rows)
        arr = rows.view(dtype.newbyteorder(order))
        if swap:
            arr = arr.astype(dtype)  # native byte order (copy only for foreign-endian data)
    else:
        arr = rows
    shape = (height, width) if channels == 1 else (height, width, channels)
    return arr.reshape(shape)


def numpy_to_image(array: np.ndarray, encoding: str, header: Any = None, msg: Any = None) -> Any:
    """Fill ``msg`` (default: a new ``sensor_msgs.msg.Image``) with ``array`` in ``encoding``."""
    if encoding not in ENCODINGS:
        raise UnsupportedEncoding(f"cannot encode {encoding!r}")
    dtype, channels = ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if (array.ndim == 2 and channels != 1) or (array.ndim == 3 and array.shape[2] != channels):
        raise ValueError(f"array of shape {array.shape} does not fit encoding {encoding}")
    if msg is None:
        from sensor_msgs.msg import Image

        msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == "big"
    msg.step = int(array.shape[1] * channels * dtype.itemsize)
    msg.data = _data_field(msg, array.reshape(-1).view(np.uint8))
    return msg


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """The engine's input for a decoded image: RGB (H, W, 3) or grey (H, W), alpha dropped."""
    if encoding in GREY:
        return array
    if encoding in ("bgr8", "8UC3"):
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if encoding in ("bgra8", "8UC4"):
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if encoding == "rgba8":
        return np.ascontiguousarray(array[:, :, :3])
    if encoding == "rgb8":
        return array
    raise UnsupportedEncoding(f"no RGB mapping for {encoding!r}")


def from_rgb(rgb: np.ndarray, encoding: str, original: np.ndarray | None = None) -> np.ndarray:
    """Map the engine's output back to ``encoding``; 4-channel encodings take alpha from
    ``original`` (the decoded input), or opaque when it is not given."""
    if encoding in GREY or encoding == "rgb8":
        return rgb
    if encoding in ("bgr8", "8UC3"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if encoding in ("rgba8", "bgra8", "8UC4"):
        code = cv2.COLOR_RGB2RGBA if encoding == "rgba8" else cv2.COLOR_RGB2BGRA
        out = cv2.cvtColor(rgb, code)
        if original is not None:
            out[:, :, 3] = original[:, :, 3]
        return out
    raise UnsupportedEncoding(f"no RGB mapping for {encoding!r}")


def compressed_to_numpy(msg: Any) -> tuple[np.ndarray, str]:
    """Decode a sensor_msgs/CompressedImage; returns (array, encoding): bgr8 or mono8/16."""
    buf = _buffer(msg.data)
    if buf.size == 0:
        raise ValueError("empty compressed image")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode compressed image (format {msg.format!r})")
    if img.ndim == 2:
        return img, "mono16" if img.dtype == np.uint16 else "mono8"
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8)
    return img, "bgr8"


def numpy_to_compressed(
    array: np.ndarray,
    encoding: str,
    fmt: str = "jpeg",
    quality: int = 90,
    header: Any = None,
    msg: Any = None,
) -> Any:
    """Encode ``array`` (in ``encoding``) as a sensor_msgs/CompressedImage (jpeg or png)."""
    bgr = array if encoding in GREY else from_rgb(to_rgb(array, encoding), "bgr8")
    ext, params = (
        (".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)]) if fmt == "jpeg" else (".png", [])
    )
    ok, data = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"cannot encode {encoding} image as {fmt}")
    if msg is None:
        from sensor_msgs.msg import CompressedImage

        msg = CompressedImage()
    if header is not None:
        msg.header = header
    # image_transport's format string: "<orig encoding>; <fmt> compressed <stored encoding>"
    stored = "mono8" if encoding in GREY else "bgr8"
    msg.format = f"{encoding}; {fmt} compressed {stored}"
    msg.data = _data_field(msg, data.reshape(-1))
    return msg
