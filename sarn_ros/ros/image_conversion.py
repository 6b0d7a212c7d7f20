"""sensor_msgs/Image and CompressedImage <-> numpy, without PyPI's broken cv-bridge.

Duck-typed: works on rclpy messages and on the dataclasses ``rosbags`` deserialises, since
both expose ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and ``data``.
Reading returns a zero-copy view of ``msg.data`` whenever the layout allows (no row padding
to drop for the caller, native byte order); writing builds ``data`` from one ``tobytes`` of a
contiguous array, never per pixel (the field notes' 1.4 s cv2_to_imgmsg pitfall).

Raw camera formats (Bayer 8/16 bit, YUV 4:2:2, NV12/NV21) are converted to RGB here with
OpenCV, as cv_bridge and image_proc would, so a driver's native output needs no extra node. The
real ROS ``cv_bridge`` is used only for the rest (nv24, ...) and only when it is importable.
"""

from __future__ import annotations

import array as pyarray
import functools
import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import cv2
import numpy as np

from ..image_files import cut_short, stated_size

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
    "rgb16": (np.dtype(np.uint16), 3),
    "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4),
    "bgra16": (np.dtype(np.uint16), 4),
    "16UC3": (np.dtype(np.uint16), 3),
    "16UC4": (np.dtype(np.uint16), 4),
}


def _padded_rows_view_as_wider_dtype() -> bool:
    """numpy >= 1.23 views padded rows of bytes as 16-bit in place; older ones (Humble's 1.21)
    need a C-contiguous array for that, so padded 16-bit rows are copied there."""
    try:
        np.zeros((2, 4), np.uint8)[:, :2].view(np.uint16)
    except ValueError:
        return False
    return True


NUMPY_VIEW_NEEDS_CONTIGUOUS = not _padded_rows_view_as_wider_dtype()

GREY = {"mono8", "mono16", "8UC1", "16UC1"}
_RGB = {"rgb8", "rgb16"}
_BGR = {"bgr8", "8UC3", "bgr16", "16UC3"}  # nUC3/nUC4 are OpenCV's (BGR) order, as in cv_bridge
_RGBA = {"rgba8", "rgba16"}
_BGRA = {"bgra8", "8UC4", "bgra16", "16UC4"}
ALPHA = _RGBA | _BGRA


class Raw(NamedTuple):
    """A camera-native layout: how its buffer is read and how OpenCV makes it RGB."""

    dtype: np.dtype
    channels: int  # per buffer element: 1 for Bayer and NV planes, 2 for packed 4:2:2
    code: int = -1  # cv2.cvtColor code to RGB (YUV)
    bayer: str = ""  # OpenCV's name of the Bayer pattern (the code depends on ``debayer``)
    planar_420: bool = False  # NV12/NV21: a full-size Y plane, then a half-height UV plane


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
# ROS names the Bayer pattern by its first two rows, OpenCV by the second row's 2nd and 3rd
# pixel: bayer_rggb is OpenCV's BG (the mapping cv_bridge uses).
RAW: dict[str, Raw] = {
    f"bayer_{ros}{bits}": Raw(dtype, 1, bayer=cv)
    for ros, cv in (("rggb", "BG"), ("bggr", "RG"), ("gbrg", "GR"), ("grbg", "GB"))
    for bits, dtype in ((8, _U8), (16, _U16))
} | {
    "yuv422": Raw(_U8, 2, cv2.COLOR_YUV2RGB_UYVY),  # ROS's yuv422 is UYVY
    "uyvy": Raw(_U8, 2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": Raw(_U8, 2, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": Raw(_U8, 2, cv2.COLOR_YUV2RGB_YUY2),
    "nv12": Raw(_U8, 1, cv2.COLOR_YUV2RGB_NV12, planar_420=True),
    "nv21": Raw(_U8, 1, cv2.COLOR_YUV2RGB_NV21, planar_420=True),
}
# Demosaicing methods, after image_proc's `debayer` choices. VNG (image_proc's default) is the
# sharpest: 41.1 dB against the RGB frame on GoPro Flower, bilinear and edge-aware 36.4 dB
# (scripts/bench_decode.py --image); OpenCV has it for 8 bit only, so 16-bit Bayer uses
# edge-aware then. OpenCV before 4.12 shifts it by two rows: see vng_shift.
DEBAYER: dict[str, str] = {"vng": "_VNG", "edge_aware": "_EA", "bilinear": ""}


def _rgb_code(raw: Raw, debayer: str) -> int:
    if not raw.bayer:
        return raw.code
    if debayer not in DEBAYER:
        raise ValueError(f"debayer must be one of {list(DEBAYER)}, got {debayer!r}")
    if debayer == "vng" and raw.dtype == _U16:
        debayer = "edge_aware"
    return getattr(cv2, f"COLOR_Bayer{raw.bayer}2RGB{DEBAYER[debayer]}")


def row_shift(image: np.ndarray, reference: np.ndarray, max_shift: int = 3) -> int:
    """The s for which ``image[y]`` best matches ``reference[y + s]`` (interior rows)."""
    m = max_shift + 2
    ref = reference[m:-m, m:-m].astype(np.float32)

    def err(s: int) -> float:
        return float(np.abs(image[m - s : image.shape[0] - m - s, m:-m] - ref).mean())

    return min(range(-max_shift, max_shift + 1), key=err)


@functools.cache
def vng_shift(pattern: str) -> int:
    """Rows by which this OpenCV's VNG output for an OpenCV Bayer ``pattern`` ('BG', ...) is
    shifted up: 0, or 2 before OpenCV 4.12 (opencv/opencv#27225), which the distributions'
    OpenCV still is (Humble 4.5, Jazzy 4.6, JetPack 4.8). Measured on a smooth test picture,
    so any OpenCV is judged by what it does, not by its version number."""
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.uniform(20, 235, (4, 5, 3)).astype(np.float32), (80, 64))
    rgb = rgb.round().astype(np.uint8)
    ros = next(k for k, v in RAW.items() if v.bayer == pattern and v.dtype == _U8)
    mosaic = np.zeros(rgb.shape[:2], np.uint8)
    for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), ros[6:10], strict=True):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    vng = cv2.cvtColor(mosaic, getattr(cv2, f"COLOR_Bayer{pattern}2RGB_VNG"))
    return row_shift(vng, rgb)


def _demosaic(bayer: np.ndarray, raw: Raw, debayer: str) -> np.ndarray:
    if min(bayer.shape) < 3:  # OpenCV gives such a frame all black: mirrored out to 2 px more
        # a side, an even count that keeps the colour filter's phase, then cut back (a 1 px
        # side holds two of the colours: the third is made up, not black)
        wide = cv2.copyMakeBorder(bayer, 2, 2, 2, 2, cv2.BORDER_REFLECT_101)
        return _demosaic(wide, raw, debayer)[2:-2, 2:-2]
    code = _rgb_code(raw, debayer)
    shift = vng_shift(raw.bayer) if code == getattr(cv2, f"COLOR_Bayer{raw.bayer}2RGB_VNG") else 0
    if shift == 0:
        return cv2.cvtColor(bayer, code)
    edge_aware = getattr(cv2, f"COLOR_Bayer{raw.bayer}2RGB_EA")
    if min(bayer.shape) < 8:  # the shifted VNG also gets the colours wrong below 8 px
        return cv2.cvtColor(bayer, edge_aware)
    out = cv2.cvtColor(bayer, code)
    out[shift:] = out[:-shift].copy()  # back down; the rows it lost come from edge-aware
    out[:shift] = cv2.cvtColor(bayer[: shift + 6], edge_aware)[:shift]
    return out


class UnsupportedEncoding(ValueError):
    """An image encoding that neither this module nor an installed cv_bridge can decode."""


class TooLarge(ValueError):
    """An image too large to deblur (a side over MAX_SIDE, or the node's max_megapixels):
    found from its fields or a PNG or JPEG header before decoding, else once decoded."""


# px a side: 8K. A compressed frame a few hundred bytes long can state 100000x1 or 16000x16000
# pixels (a corrupt header, a decompression bomb): gigabytes, and tens of seconds in the
# network, for one frame
MAX_SIDE = 8192


def check_sides(width: int, height: int) -> None:
    """Raise TooLarge for a side over MAX_SIDE."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise TooLarge(f"{width}x{height} image: sides up to {MAX_SIDE} px are deblurred")


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


# OpenCV-type encodings outside ENCODINGS (32FC1 depth, 16SC1, 8UC2, ...): no colour to
# deblur, and cv_bridge refuses them too ("is not a color format")
_NUMERIC = re.compile(r"(8|16|32|64)[USF]C\d+")


def _cv_bridge(encoding: str) -> Any:
    """ROS cv_bridge's CvBridge for an encoding only it may decode; UnsupportedEncoding where
    nothing can."""
    if _NUMERIC.fullmatch(encoding):
        raise UnsupportedEncoding(
            f"{encoding!r} holds no colour (depth or other numeric data): nothing to deblur"
        )
    try:
        from cv_bridge import CvBridge  # the ROS one; PyPI's cv-bridge is broken (numpy 2)
    except ImportError:
        raise UnsupportedEncoding(
            f"encoding {encoding!r} is not supported without ROS cv_bridge; "
            "convert it first or publish rgb8/bgr8/mono8/mono16, Bayer, yuv422 or nv12/nv21"
        ) from None
    return CvBridge


def _cv_bridge_decode(msg: Any) -> np.ndarray:
    CvBridge = _cv_bridge(msg.encoding)
    try:
        return np.asarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    except Exception as exc:  # CvBridgeError (a TypeError): a layout it cannot convert
        raise UnsupportedEncoding(
            f"cv_bridge cannot convert {msg.encoding!r} to rgb8: {exc}"
        ) from exc


def _row_bytes(msg: Any, dtype: np.dtype, channels: int, rows: int, size: int) -> int:
    """Bytes of pixels per row; ValueError where ``step`` or the ``size`` bytes of data are
    too few for ``rows`` rows."""
    width, step = int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than width*channels*bytes {row_bytes}")
    if size < step * (rows - 1) + row_bytes:
        raise ValueError(
            f"data has {size} bytes, {msg.encoding} {width}x{msg.height} needs {step * rows}"
        )
    return row_bytes


def _read(msg: Any, dtype: np.dtype, channels: int, rows: int) -> np.ndarray:
    """``rows`` rows of ``width * channels`` elements, honouring ``step`` and byte order."""
    step = int(msg.step)
    buf = _buffer(msg.data)
    row_bytes = _row_bytes(msg, dtype, channels, rows, buf.size)
    view = np.lib.stride_tricks.as_strided(
        buf, shape=(rows, row_bytes), strides=(step, 1), writeable=False
    )
    if dtype.itemsize == 1:
        return view
    swap = bool(msg.is_bigendian) != (sys.byteorder == "big")
    order = ">" if bool(msg.is_bigendian) else "<"
    if step % dtype.itemsize or (step != row_bytes and NUMPY_VIEW_NEEDS_CONTIGUOUS):
        view = np.ascontiguousarray(view)  # rows not aligned for a view: copy them out
    arr = view.view(dtype.newbyteorder(order))
    return arr.astype(dtype) if swap else arr  # native byte order (copies only foreign data)


def _layout(msg: Any) -> tuple[np.dtype, int, int]:
    """(dtype, channels, rows) of the buffer ``image_to_numpy`` reads; raises as it does."""
    height, width, encoding = int(msg.height), int(msg.width), msg.encoding
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image ({width}x{height})")
    check_sides(width, height)
    if encoding in ENCODINGS:
        dtype, channels = ENCODINGS[encoding]
        rows = height
    elif encoding in RAW:
        raw = RAW[encoding]
        dtype, channels = raw.dtype, raw.channels
        if raw.planar_420 and (height % 2 or width % 2):
            raise ValueError(f"{encoding} needs an even width and height, got {width}x{height}")
        if channels == 2 and width % 2:
            raise ValueError(f"{encoding} needs an even width, got {width}")
        rows = height * 3 // 2 if raw.planar_420 else height
    else:
        raise UnsupportedEncoding(f"cannot read {encoding!r}")
    return dtype, channels, rows


def check_image(msg: Any) -> None:
    """Raise as ``decode_image`` would for a layout it cannot read (encoding, size, step, data
    length), from the message's fields alone: cheap enough for every frame on arrival, so the
    node refuses it before its stamp counts for gap detection."""
    if msg.encoding in ENCODINGS or msg.encoding in RAW:
        _row_bytes(msg, *_layout(msg), len(msg.data))
    elif int(msg.height) <= 0 or int(msg.width) <= 0:
        raise ValueError(f"empty image ({msg.width}x{msg.height})")
    else:
        check_sides(int(msg.width), int(msg.height))
        _cv_bridge(msg.encoding)


def image_to_numpy(msg: Any) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as stored: (H, W) or (H, W, C) in the message's encoding;
    raw layouts as their buffer is (Bayer (H, W), 4:2:2 (H, W, 2), NV12/NV21 (H * 3/2, W)).

    Raises ValueError (UnsupportedEncoding for unknown encodings) on malformed messages.
    """
    width = int(msg.width)
    dtype, channels, rows = _layout(msg)
    arr = _read(msg, dtype, channels, rows)
    if channels == 1:
        return arr.reshape(rows, width)
    return arr.reshape(rows, width, channels)


def decode_image(msg: Any, debayer: str = "vng") -> tuple[np.ndarray, str]:
    """A sensor_msgs/Image as (pixels, encoding) the engine's ``to_rgb`` takes: the stored
    pixels for plain encodings, RGB for camera-native ones (Bayer 16 bit gives rgb16, the rest
    rgb8; ``debayer`` picks the demosaicing), or what an installed ROS cv_bridge makes of
    anything else (rgb8)."""
    encoding = msg.encoding
    if encoding in ENCODINGS:
        return image_to_numpy(msg), encoding
    if encoding in RAW:
        raw = RAW[encoding]
        # contiguous: OpenCV's demosaicing misreads rows padded past the width
        pixels = np.ascontiguousarray(image_to_numpy(msg))
        pixels = _demosaic(pixels, raw, debayer) if raw.bayer else cv2.cvtColor(pixels, raw.code)
        return pixels, "rgb16" if pixels.dtype == np.uint16 else "rgb8"
    if int(msg.height) <= 0 or int(msg.width) <= 0:
        raise ValueError(f"empty image ({msg.width}x{msg.height})")
    check_sides(int(msg.width), int(msg.height))
    return _cv_bridge_decode(msg), "rgb8"


def alpha_plane(array: np.ndarray, encoding: str) -> np.ndarray | None:
    """The alpha channel of a decoded 4-channel image, to put back on the deblurred frame (the
    network sees colour only); None for encodings without alpha."""
    return np.ascontiguousarray(array[:, :, 3]) if encoding in ALPHA else None


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
    if encoding in GREY or encoding in _RGB:
        return array
    if encoding in _BGR:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if encoding in _BGRA:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if encoding in _RGBA:
        return np.ascontiguousarray(array[:, :, :3])
    raise UnsupportedEncoding(f"no RGB mapping for {encoding!r}")


def from_rgb(rgb: np.ndarray, encoding: str, alpha: np.ndarray | None = None) -> np.ndarray:
    """Map the engine's output back to ``encoding``; 4-channel encodings take ``alpha`` (the
    input's :func:`alpha_plane`, at the output's size), or are opaque when it is not given."""
    if encoding in GREY or encoding in _RGB:
        return rgb
    if encoding in _BGR:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if encoding in ALPHA:
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA if encoding in _RGBA else cv2.COLOR_RGB2BGRA)
        if alpha is not None:
            out[:, :, 3] = alpha
        return out
    raise UnsupportedEncoding(f"no RGB mapping for {encoding!r}")


def compressed_size(msg: Any, buf: np.ndarray | None = None) -> tuple[int, int]:
    """(width, height) a sensor_msgs/CompressedImage states ahead of its pixels (``buf``: its
    data, where already at hand). ValueError for data that states none, which is not decoded:
    image_transport writes PNG, JPEG and TIFF, each stating its size in its header (TIFF's
    directory may follow the pixels), and OpenCV decodes whatever else it is given, whole,
    before its size can be checked (a 4 KB JPEG with two stray bytes before its frame header,
    stating 20000x20000, took 2.3 GB and 2.7 s; a 10 KB WebP 0.5 GB). Also for a JPEG cut
    short, which OpenCV decodes half grey. UnsupportedEncoding for image_transport's
    compressedDepth, which was taken for corrupt data."""
    if "compresseddepth" in str(msg.format).lower():  # a depth header before a PNG or RVL
        raise UnsupportedEncoding(f"format {msg.format!r}: depth, no colour to deblur")
    buf = _buffer(msg.data) if buf is None else buf
    if buf.size == 0:
        raise ValueError("empty compressed image")
    size = stated_size(buf)
    if size is None:
        raise ValueError(
            f"no PNG, JPEG or TIFF header stating the image's size (format {msg.format!r}): "
            "not decoded"
        )
    if cut_short(buf):
        raise ValueError(f"JPEG cut short, no end marker (format {msg.format!r})")
    return size


def compressed_to_numpy(
    msg: Any, debayer: str = "vng", check: Callable[[int, int], None] = check_sides
) -> tuple[np.ndarray, str]:
    """Decode a sensor_msgs/CompressedImage; returns (array, encoding): mono8/16, bgr8/16, or
    rgb8/16 where the camera's own encoding (before ``;`` in the format) is RGB, 8UC1/16UC1/
    8UC3/16UC3 where it is that OpenCV type (nUC4: alpha dropped), 16 bit where
    it is (jpeg stores 8: scaled by 256), as
    image_transport's subscriber gives it back (an rgb8 camera's output came out bgr8), in the
    colour order the part after ``compressed`` says was stored, or for
    a Bayer camera's mosaic (image_transport compresses it as it is, format
    ``bayer_rggb8; png compressed ``), demosaiced as :func:`decode_image` does. ``check``
    (width, height) raises TooLarge for a size not to decode, before decoding, on the size
    the header states (:func:`compressed_size`)."""
    buf = _buffer(msg.data)
    check(*compressed_size(msg, buf))
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode compressed image (format {msg.format!r})")
    check(img.shape[1], img.shape[0])  # as decoded, where that differs from the header
    if img.dtype not in (np.uint8, np.uint16):  # a float or int16 TIFF, an HDR image
        raise ValueError(f"{img.dtype} compressed image: 8 or 16 bits per channel expected")
    camera = str(msg.format).split(";")[0].strip()
    if "jpeg" in str(msg.format) and img.dtype == np.uint8 and "16" in camera:
        img = img.astype(np.uint16) << 8  # a 16-bit camera, as image_transport gives it back
    raw = RAW.get(camera)
    if img.ndim == 2 and raw is not None and raw.bayer:
        rgb = _demosaic(img, raw, debayer)
        return rgb, "rgb16" if rgb.dtype == np.uint16 else "rgb8"
    depth = "16" if img.dtype == np.uint16 else "8"
    if img.ndim == 2:  # an OpenCV-type camera keeps its name, as image_transport's subscriber
        # gives it back (a 16UC1 camera's deblurred topic came out mono16)
        return img, camera if camera == f"{depth}UC1" else f"mono{depth}"
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    # image_transport stores colour as bgr ("; png compressed bgr8"); for a colour camera its
    # subscriber takes any other stored part ("compressed rgb8", "compressed ") as RGB, which
    # decodes as RGB, and swaps only to the camera's own order (it came out red for blue)
    rgb = camera in _RGB | _RGBA
    fmt = str(msg.format)
    colour = rgb or camera in {"bgr8", "bgr16", "bgra8", "bgra16"}
    stored_rgb = colour and ";" in fmt and "compressed bgr" not in fmt.split(";", 1)[1]
    if rgb != stored_rgb:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if camera in (f"{depth}UC3", f"{depth}UC4"):  # OpenCV's order, as decoded; alpha dropped
        return img, f"{depth}UC3"
    return img, ("rgb" if rgb else "bgr") + depth


def numpy_to_compressed(
    array: np.ndarray,
    encoding: str,
    fmt: str = "jpeg",
    quality: int = 90,
    header: Any = None,
    msg: Any = None,
) -> Any:
    """Encode ``array`` (in ``encoding``) as a sensor_msgs/CompressedImage (jpeg or png), as
    image_transport's compressed plugin does: 16-bit images as 8 bit in jpeg (its subscriber
    scales them back by 256), as 16 bit in png (mono16, bgr16)."""
    if fmt not in ("jpeg", "png"):  # any other name would be written as PNG under that name
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    bgr = array if encoding in GREY else cv2.cvtColor(to_rgb(array, encoding), cv2.COLOR_RGB2BGR)
    if bgr.dtype == np.uint16 and fmt == "jpeg":  # imencode would saturate them at 255
        bgr = (bgr >> 8).astype(np.uint8)
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
    stored = ("mono" if encoding in GREY else "bgr") + ("16" if bgr.dtype == np.uint16 else "8")
    msg.format = f"{encoding}; {fmt} compressed {stored}"
    msg.data = _data_field(msg, data.reshape(-1))
    return msg
