"""sensor_msgs/Image <-> numpy for rclpy and rosbags messages."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the bag tests need rosbags (README: colcon test)")
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image

from sarn_ros import metrics
from sarn_ros.ros import image_conversion as conv

SAMPLE = Path(conv.__file__).parent.parent / "sample" / "sharp" / "000.png"

SHAPES = {1: (5, 7), 3: (5, 7, 3), 4: (5, 7, 4)}


def sample(encoding: str) -> np.ndarray:
    dtype, channels = conv.ENCODINGS[encoding]
    rng = np.random.default_rng(len(encoding))
    hi = 65535 if dtype == np.uint16 else 255
    return rng.integers(0, hi + 1, SHAPES[channels], dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("encoding", sorted(conv.ENCODINGS))
def test_round_trip_every_encoding(encoding):
    arr = sample(encoding)
    msg = conv.numpy_to_image(arr, encoding)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    back = conv.image_to_numpy(msg)
    assert back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)


def test_reading_is_zero_copy_and_building_is_fast_path():
    arr = sample("rgb8")
    msg = conv.numpy_to_image(arr, "rgb8")
    assert type(msg.data).__name__ == "array"  # rclpy's fast path, not per-element validation
    view = conv.image_to_numpy(msg)
    assert np.shares_memory(view, np.frombuffer(memoryview(msg.data).cast("B"), np.uint8))


def test_step_padding_is_honoured():
    arr = sample("bgr8")
    padded = np.zeros((5, 7 * 3 + 11), np.uint8)
    padded[:, : 7 * 3] = arr.reshape(5, -1)
    msg = Image(height=5, width=7, encoding="bgr8", step=7 * 3 + 11)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(conv.image_to_numpy(msg), arr)


def test_big_endian_mono16():
    arr = sample("mono16")
    msg = Image(height=5, width=7, encoding="mono16", step=14, is_bigendian=True)
    msg.data = arr.astype(">u2").tobytes()
    out = conv.image_to_numpy(msg)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.isnative


@pytest.mark.parametrize(
    ("encoding", "h", "w", "step", "nbytes", "error"),
    [
        ("32FC1", 2, 2, 8, 16, conv.UnsupportedEncoding),
        ("rgb8", 0, 0, 0, 0, ValueError),
        ("rgb8", 4, 4, 12, 20, ValueError),  # shorter than step * height
        ("rgb8", 4, 4, 6, 48, ValueError),  # step shorter than a row
        ("rgb8", 4, 4, 11, 48, ValueError),  # one byte short: rows would overlap, skewed
        ("rgb8", 4, 0, 0, 0, ValueError),  # no width
    ],
)
def test_malformed_messages_raise_clear_errors(encoding, h, w, step, nbytes, error):
    msg = Image(height=h, width=w, encoding=encoding, step=step)
    msg.data = bytes(nbytes)
    with pytest.raises(error):
        conv.image_to_numpy(msg)


def test_rosbags_messages_work_too():
    store = get_typestore(Stores.ROS2_HUMBLE)
    RosImage = store.types["sensor_msgs/msg/Image"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    arr = sample("mono16")
    msg = RosImage(
        header=Header(stamp=Time(sec=1, nanosec=2), frame_id="cam"),
        height=5,
        width=7,
        encoding="mono16",
        is_bigendian=0,
        step=14,
        data=arr.view(np.uint8).reshape(-1).copy(),
    )
    np.testing.assert_array_equal(conv.image_to_numpy(msg), arr)
    rebuilt = conv.numpy_to_image(arr, "mono16", msg=msg)
    assert isinstance(rebuilt.data, np.ndarray)
    raw = store.serialize_cdr(rebuilt, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(
        conv.image_to_numpy(store.deserialize_cdr(raw, "sensor_msgs/msg/Image")), arr
    )


@pytest.mark.parametrize(
    "encoding",
    [
        "rgb8",
        "bgr8",
        "rgba8",
        "bgra8",
        "mono8",
        "mono16",
        "rgb16",
        "bgra16",
        "16UC3",
        "8UC1",
        "8UC3",
        "8UC4",
    ],
)
def test_rgb_mapping_round_trips(encoding):
    arr = sample(encoding)
    rgb = conv.to_rgb(arr, encoding)
    assert rgb.shape[:2] == arr.shape[:2] and (rgb.ndim == 2 or rgb.shape[2] == 3)
    np.testing.assert_array_equal(
        conv.from_rgb(rgb, encoding, conv.alpha_plane(arr, encoding)), arr
    )


@pytest.mark.parametrize("encoding", ["bgr8", "8UC3", "bgra8", "8UC4"])
def test_bgr_is_really_swapped(encoding):
    """OpenCV's nUC3/nUC4 are BGR(A), as cv_bridge reads them."""
    bgr = np.zeros((2, 2, 4 if "a" in encoding or "4" in encoding else 3), np.uint8)
    bgr[0, 0, :3] = (255, 0, 0)  # blue (not 1x1: OpenCV 4.5.4, Humble's, cannot convert it)
    assert tuple(conv.to_rgb(bgr, encoding)[0, 0]) == (0, 0, 255)


def test_a_last_row_without_padding_is_read():
    msg = Image(height=2, width=2, encoding="rgb8", step=8, data=bytes(range(14)))
    assert conv.image_to_numpy(msg).tolist() == [[[0, 1, 2], [3, 4, 5]], [[8, 9, 10], [11, 12, 13]]]


def test_building_a_message_checks_the_array_against_the_encoding():
    with pytest.raises(ValueError, match="does not fit"):
        conv.numpy_to_image(np.zeros((4, 5, 3), np.uint8), "mono8")
    with pytest.raises(ValueError, match="does not fit"):
        conv.numpy_to_image(np.zeros((4, 5), np.uint8), "rgb8")
    msg = conv.numpy_to_image(np.full((2, 3, 3), 200, np.int64), "rgb8")  # 8 bytes an element
    assert len(msg.data) == 18 and (conv.image_to_numpy(msg) == 200).all()


def test_compressed_output_keeps_the_header_and_follows_the_quality():
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    header = Header(frame_id="cam", stamp=Time(sec=5, nanosec=7))
    msg = conv.numpy_to_compressed(img, "rgb8", quality=30, header=header)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("cam", 5, 7)
    assert len(msg.data) < len(conv.numpy_to_compressed(img, "rgb8", quality=95).data)
    with pytest.raises(ValueError, match="empty"):  # cv2.error would end a bag's deblurring
        conv.compressed_to_numpy(CompressedImage(format="jpeg", data=b""))


def test_compressed_round_trip_and_corrupt_jpeg():
    arr = cv2.resize(sample("bgr8"), (64, 48), interpolation=cv2.INTER_NEAREST)
    msg = conv.numpy_to_compressed(arr, "bgr8", fmt="png")
    assert isinstance(msg, CompressedImage) and "png" in msg.format
    out, enc = conv.compressed_to_numpy(msg)
    assert enc == "bgr8"
    np.testing.assert_array_equal(out, arr)
    bad = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(ValueError):
        conv.compressed_to_numpy(bad)


def test_the_size_a_png_jpeg_or_tiff_states_is_read_before_decoding():
    rng = np.random.default_rng(3)
    for h, w, c in ((48, 64, 3), (7, 5, 1), (33, 130, 3), (70000 // 130, 130, 1)):
        img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        for ext, params in (
            (".png", []),
            (".jpg", []),
            (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
            (".tiff", []),
        ):
            buf = cv2.imencode(ext, img, params)[1]
            assert conv.stated_size(buf) == (w, h), (ext, params)
        buf = cv2.imencode(".tiff", img.astype(np.uint16) * 257)[1]
        assert conv.stated_size(buf) == (w, h)
    # big-endian, ImageWidth a SHORT and ImageLength a LONG, after a tag of another kind
    tiff = b"MM\x00*" + (8).to_bytes(4, "big") + (3).to_bytes(2, "big")
    for tag, kind, value in (
        (254, 4, b"\x00" * 4),
        (256, 3, b"\x01\x2c\x00\x00"),
        (257, 4, b"\x00\x01\x00\x00"),
    ):
        tiff += tag.to_bytes(2, "big") + kind.to_bytes(2, "big") + (1).to_bytes(4, "big") + value
    assert conv.stated_size(tiff) == (300, 65536)
    assert conv.stated_size(tiff[:-12]) is None  # no ImageLength
    webp = cv2.imencode(".webp", np.zeros((4, 4, 3), np.uint8))[1]
    assert conv.stated_size(webp) is None


def stray_bytes_jpeg(width: int, height: int) -> bytes:
    """A 64x48 JPEG stating ``width`` x ``height``, two stray bytes before its frame header:
    libjpeg skips them (with a warning) and decodes the stated size whole."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    app0_end = 4 + int.from_bytes(data[4:6], "big")  # SOI, then the JFIF segment
    return bytes(data[:app0_end] + b"\x00\x00" + data[app0_end:])


@pytest.mark.parametrize("kind", ["stray bytes", "webp", "bmp", "cut short"])
def test_compressed_data_stating_no_size_is_refused_undecoded(kind, monkeypatch):
    """A 4 KB JPEG with two stray bytes before its frame header, stating 20000x20000, was
    decoded whole before its size was checked (2.3 GB, 2.7 s in the node's worker), and a
    10 KB WebP of 16000x16000 0.5 GB; a JPEG cut short was published with its lower part
    grey."""
    if kind == "stray bytes":
        data, why = stray_bytes_jpeg(20000, 20000), "not decoded"
    elif kind == "cut short":
        noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        whole = cv2.imencode(".jpg", noise)[1].tobytes()
        data, why = whole[: len(whole) * 2 // 3], "cut short"
    else:
        data, why = (
            cv2.imencode(f".{kind}", np.zeros((8, 8, 3), np.uint8))[1].tobytes(),
            "not decoded",
        )
    decoded: list = []
    monkeypatch.setattr(conv.cv2, "imdecode", lambda *args: decoded.append(args))
    with pytest.raises(ValueError, match=why):
        conv.compressed_to_numpy(CompressedImage(format="rgb8; jpeg compressed bgr8", data=data))
    assert decoded == []


def test_a_compressed_frame_stating_a_side_over_8192_px_is_refused_before_decoding():
    """A 177-byte PNG of 100000x1 pixels held the worker 14 s in the network; a 840 KB PNG
    decoded to an 864 MB frame. 8192 px a side (8K) still goes through."""
    for shape, ext in (((1, 100000), ".png"), ((9000, 8), ".jpg"), ((8, 8193), ".png")):
        data = cv2.imencode(ext, np.zeros(shape, np.uint8))[1].tobytes()
        with pytest.raises(conv.TooLarge, match=r"image: sides up to 8192 px are deblurred"):
            conv.compressed_to_numpy(CompressedImage(format=ext[1:], data=data))
    data = cv2.imencode(".png", np.zeros((2, 8192), np.uint8))[1].tobytes()
    assert conv.compressed_to_numpy(CompressedImage(format="png", data=data))[0].shape == (2, 8192)
    raw = Image(height=1, width=8193, encoding="mono8", step=8193, data=bytes(8193))
    with pytest.raises(conv.TooLarge, match="8193x1 image"):
        conv.check_image(raw)
    raw = Image(height=1, width=8192, encoding="mono8", step=8192, data=bytes(8192))
    conv.check_image(raw)
    assert conv.decode_image(raw)[0].shape == (1, 8192)


def test_a_png_chunk_stating_more_bytes_than_it_has_is_refused_without_allocating_them():
    """OpenCV's PNG reader allocated what a chunk states: this 49-byte frame took 2 GB."""
    bomb = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x00\x00\x00"
        b"\x00\xe1d\xe1W\x7f\xff\xff\xfftEXt" + bytes(8)
    )
    code = (
        "import resource, sys\n"
        "from sensor_msgs.msg import CompressedImage\n"
        "from sarn_ros.ros.image_conversion import compressed_to_numpy\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    compressed_to_numpy(CompressedImage(format='png', data={bomb!r}))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    why, grown_mib = out.stdout.split("\n")[:2]
    assert why == "corrupt PNG: its b'tEXt' chunk states more bytes than it has", out
    assert int(grown_mib) < 100, out.stdout


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_float_or_signed_tiff_never_reaches_the_engine(dtype, channels):
    """Labelled mono8, a float TIFF reached the engine and failed every camera's call."""
    img = (np.random.default_rng(0).random((6, 8, channels)) * 100).astype(dtype)
    try:
        ok, buf = cv2.imencode(".tiff", img[..., 0] if channels == 1 else img)
    except cv2.error:  # OpenCV 4.6's TIFF writer: BGR->RGB by cvtColor, which has no CV_16S
        pytest.skip("this OpenCV cannot write a 3-channel int16 TIFF")
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert ok and (dtype is not np.float32 or decoded.dtype == np.float32)
    msg = CompressedImage(format="tiff", data=buf.tobytes())
    if decoded.dtype in (np.uint8, np.uint16):  # OpenCV 4.5 makes int16 TIFFs 8-bit itself
        assert conv.compressed_to_numpy(msg)[0].dtype == decoded.dtype
    else:
        with pytest.raises(ValueError, match="8 or 16 bits per channel"):
            conv.compressed_to_numpy(msg)


def test_compressed_16_bit_is_scaled_in_jpeg_and_kept_in_png():
    """As image_transport's compressed plugin: jpeg holds 8 bits (its subscriber scales them
    back by 256), png 16. A png stored 8 bits under "mono16; png compressed mono8", which
    image_transport's subscriber republishes as a mono16 image of 8-bit pixels."""
    grey = np.tile(np.arange(0, 65536, 1024, dtype=np.uint16), (4, 1))  # 0 .. 64512
    msg = conv.numpy_to_compressed(grey, "mono16", fmt="png")
    assert msg.format == "mono16; png compressed mono16"
    out, enc = conv.compressed_to_numpy(msg)
    assert enc == "mono16"
    np.testing.assert_array_equal(out, grey)
    msg = conv.numpy_to_compressed(grey, "mono16", fmt="jpeg", quality=100)
    out, enc = conv.compressed_to_numpy(msg)
    # scaled, not saturated at 255; and back by 256 (it came out mono8: the deblurred topic
    # of a 16-bit camera sent as jpeg changed encoding)
    assert msg.format == "mono16; jpeg compressed mono8" and enc == "mono16"
    assert np.abs(out.astype(int) - grey).max() <= 256 and not (out & 255).any()
    msg = conv.numpy_to_compressed(np.dstack([grey] * 3), "bgr16", fmt="jpeg", quality=100)
    assert msg.format == "bgr16; jpeg compressed bgr8"
    assert conv.compressed_to_numpy(msg)[1] == "bgr16"
    rgb = np.dstack([grey, grey // 2, grey // 4])
    msg = conv.numpy_to_compressed(rgb, "rgb16", fmt="png")
    out, enc = conv.compressed_to_numpy(msg)
    assert msg.format == "rgb16; png compressed bgr16" and enc == "rgb16"
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("camera", ["rgb8", "rgba8", "bgr8", "bgra8", ""])
def test_compressed_frames_come_back_in_the_cameras_colour_order(camera):
    """As image_transport's compressed subscriber: an rgb8 camera's frames ("rgb8; jpeg
    compressed bgr8") come back rgb8, so the deblurred topic keeps the camera's encoding; they
    came out bgr8. Alpha is not kept (the network sees 3 channels); a bare "png" is BGR."""
    rgb = cv2.resize(sample("rgb8"), (64, 48), interpolation=cv2.INTER_AREA)
    data = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    fmt = f"{camera}; png compressed bgr8" if camera else "png"
    out, enc = conv.compressed_to_numpy(CompressedImage(format=fmt, data=data))
    if camera.startswith("rgb"):
        assert enc == "rgb8"
        np.testing.assert_array_equal(out, rgb)
    else:
        assert enc == "bgr8"
        np.testing.assert_array_equal(out, rgb[..., ::-1])


@pytest.mark.parametrize(
    "camera, image, stated",
    [
        ("16UC1; png compressed mono16", np.full((4, 6), 40000, np.uint16), "16UC1"),
        ("16UC1; png", np.full((4, 6), 40000, np.uint16), "16UC1"),
        ("16UC1; jpeg compressed mono8", np.full((8, 8), 160, np.uint8), "16UC1"),
        ("8UC1", np.full((4, 6), 7, np.uint8), "8UC1"),
        ("8UC3; jpeg compressed bgr8", np.full((8, 8, 3), (10, 120, 240), np.uint8), "8UC3"),
        ("16UC3; png compressed bgr16", np.full((4, 6, 3), (9, 900, 9000), np.uint16), "16UC3"),
        ("8UC4; png compressed bgra8", np.full((4, 6, 4), (1, 2, 250, 255), np.uint8), "8UC3"),
        ("16UC1; png compressed mono8", np.full((4, 6), 7, np.uint8), "mono8"),  # 8 bits in it
    ],
)
def test_an_opencv_type_cameras_compressed_frames_keep_its_encoding(camera, image, stated):
    """As image_transport's subscriber gives them back: a 16UC1 camera's frames came out mono16
    and an 8UC3 camera's bgr8 (raw 16UC3 kept its name), in OpenCV's order as decoded."""
    ext = ".jpg" if "jpeg" in camera else ".png"
    data = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    out, enc = conv.compressed_to_numpy(CompressedImage(format=camera, data=data))
    assert enc == stated
    want, tolerance = (image[..., :3] if image.ndim == 3 else image), 0
    if "jpeg" in camera:
        tolerance = 2  # flat patches: jpeg's rounding only
        if stated.startswith("16"):  # scaled back, as image_transport's subscriber does
            want, tolerance = want.astype(np.uint16) << 8, tolerance << 8
    assert out.dtype == want.dtype and np.abs(out.astype(int) - want).max() <= tolerance


@pytest.mark.parametrize("stored", ["rgb8", "", "RGB8"])
@pytest.mark.parametrize("camera", ["rgb8", "bgr8", "rgba8"])
def test_compressed_frames_stored_as_rgb_keep_their_colours(camera, stored):
    """A publisher other than image_transport's that stored the RGB bytes as they are says
    "compressed rgb8" (or names no order): decoded, they are RGB already, and came out with
    red and blue swapped (image_transport's subscriber takes all but "compressed bgr..." of
    a colour camera as RGB, and swaps only to the camera's own order)."""
    rgb = cv2.resize(sample("rgb8"), (64, 48), interpolation=cv2.INTER_AREA)
    data = cv2.imencode(".png", rgb)[1].tobytes()  # RGB bytes, written as they are
    fmt = f"{camera}; png compressed {stored}"
    out, enc = conv.compressed_to_numpy(CompressedImage(format=fmt, data=data))
    assert enc == ("bgr8" if camera == "bgr8" else "rgb8")
    np.testing.assert_array_equal(out, rgb[..., ::-1] if camera == "bgr8" else rgb)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_a_bayer_cameras_compressed_mosaic_is_demosaiced(pattern, bits):
    """image_transport compresses a Bayer image as its mosaic ("bayer_rggb8; png compressed
    "): it was decoded as a grey image, and the network deblurred the checkerboard."""
    rgb = cv2.resize(sample("rgb8"), (64, 48), interpolation=cv2.INTER_AREA)
    if bits == 16:
        rgb = rgb.astype(np.uint16) * 257
    mosaic = np.empty(rgb.shape[:2], rgb.dtype)
    for i, colour in enumerate(pattern):  # the pattern names the first 2x2 block row-wise
        dy, dx = divmod(i, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    encoding = f"bayer_{pattern}{bits}"
    data = cv2.imencode(".png", mosaic)[1].tobytes()
    msg = CompressedImage(format=f"{encoding}; png compressed ", data=data)
    out, enc = conv.compressed_to_numpy(msg, "bilinear")
    raw = raw_msg(encoding, mosaic, 64, 48)
    expected, expected_enc = conv.decode_image(raw, "bilinear")
    assert enc == expected_enc == f"rgb{bits}"
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(float) - rgb).mean() < 0.04 * np.iinfo(rgb.dtype).max


def raw_msg(encoding: str, buffer: np.ndarray, width: int, height: int, big: bool = False):
    """An Image holding ``buffer``'s rows as they are (any padding included)."""
    step = buffer.shape[1] * buffer.itemsize
    data = buffer.astype(buffer.dtype.newbyteorder(">" if big else "<")).tobytes()
    return Image(
        height=height, width=width, encoding=encoding, step=step, is_bigendian=big, data=data
    )


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """A Bayer sensor's samples of ``rgb``: ``pattern`` names the top-left 2x2 block."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    return out


def smooth_rgb(h: int, w: int, dtype: type) -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.uniform(0.1, 0.9, (3, 4, 3)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (big * np.iinfo(dtype).max).round().astype(dtype)


@pytest.mark.parametrize("debayer", sorted(conv.DEBAYER))
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_is_demosaiced_with_the_right_colours(pattern, bits, debayer):
    dtype = np.uint8 if bits == 8 else np.uint16
    scale = 1 if bits == 8 else 257
    flat = np.empty((6, 8, 3), dtype)
    flat[:] = np.array([200, 100, 30]) * scale  # R, G and B all different: any swap shows
    out, enc = conv.decode_image(
        raw_msg(f"bayer_{pattern}{bits}", mosaic(flat, pattern), 8, 6), debayer
    )
    assert (enc, out.shape, out.dtype) == (f"rgb{bits}", (6, 8, 3), dtype)
    np.testing.assert_allclose(out[1:-1, 1:-1], flat[1:-1, 1:-1], atol=scale)
    rgb = smooth_rgb(48, 64, dtype)  # and a real picture comes back close, not just flat colour
    out, _ = conv.decode_image(
        raw_msg(f"bayer_{pattern}{bits}", mosaic(rgb, pattern), 64, 48), debayer
    )
    err = np.abs(out.astype(float) - rgb)[2:-2, 2:-2] / scale
    assert err.mean() < 1.5 and err.max() < 12


@pytest.mark.parametrize("debayer", sorted(conv.DEBAYER))
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize(("h", "w"), [(2, 2), (2, 8), (8, 2)])
def test_a_bayer_frame_two_px_high_or_wide_keeps_its_colours(pattern, debayer, h, w):
    """OpenCV demosaiced a frame with a side under 3 px all black, published as such."""
    flat = np.empty((h, w, 3), np.uint16)
    flat[:] = np.array([200, 100, 30]) * 257
    out, _ = conv.decode_image(raw_msg(f"bayer_{pattern}16", mosaic(flat, pattern), w, h), debayer)
    np.testing.assert_allclose(out, flat, atol=257)


def test_vng_is_the_sharpest_demosaicing_on_a_real_picture():
    sharp = cv2.imread(str(SAMPLE), cv2.IMREAD_COLOR)[..., ::-1]
    h, w = (s - s % 2 for s in sharp.shape[:2])
    rgb = np.ascontiguousarray(sharp[:h, :w])
    msg = raw_msg("bayer_rggb8", mosaic(rgb, "rggb"), w, h)
    db = {m: metrics.psnr(conv.decode_image(msg, m)[0], rgb) for m in conv.DEBAYER}
    assert db["vng"] > db["edge_aware"] + 1 and db["vng"] > db["bilinear"] + 1, db
    with pytest.raises(ValueError, match="debayer"):
        conv.decode_image(msg, "nearest")


class OldOpenCV:
    """cv2 whose VNG shifts its output up by two rows, as OpenCV before 4.12 does
    (opencv/opencv#27225; the distributions' OpenCV: Humble 4.5, Jazzy 4.6, JetPack 4.8)."""

    VNG = frozenset(getattr(cv2, f"COLOR_Bayer{p}2RGB_VNG") for p in ("BG", "GB", "RG", "GR"))

    def __getattr__(self, name: str):
        return getattr(cv2, name)

    def cvtColor(self, src, code):
        out = cv2.cvtColor(src, code)
        if code in self.VNG:
            out[:-2] = out[2:].copy()
            out[-2:] = 0  # what the lost bottom rows hold does not matter
        return out


@pytest.mark.parametrize("pattern", ["rggb", "gbrg"])
def test_vng_of_an_old_opencv_is_shifted_back(monkeypatch, pattern):
    rgb = smooth_rgb(48, 64, np.uint8)
    msg = raw_msg(f"bayer_{pattern}8", mosaic(rgb, pattern), 64, 48)
    if conv.vng_shift(conv.RAW[msg.encoding].bayer) != 0:
        pytest.skip("this OpenCV's own VNG is shifted: the other Bayer tests check the fix")
    good, _ = conv.decode_image(msg, "vng")
    monkeypatch.setattr(conv, "cv2", OldOpenCV())
    conv.vng_shift.cache_clear()
    try:
        assert conv.vng_shift(conv.RAW[msg.encoding].bayer) == 2
        fixed, _ = conv.decode_image(msg, "vng")
        np.testing.assert_array_equal(fixed[2:], good[2:])  # VNG's own rows, moved back
        assert np.abs(fixed[:2].astype(int) - rgb[:2]).max() <= 3  # the two it lost: edge-aware
        tiny = raw_msg(f"bayer_{pattern}8", mosaic(smooth_rgb(6, 8, np.uint8), pattern), 8, 6)
        ea, _ = conv.decode_image(tiny, "edge_aware")  # too small for the old VNG
        np.testing.assert_array_equal(conv.decode_image(tiny, "vng")[0], ea)
    finally:
        conv.vng_shift.cache_clear()


@pytest.mark.parametrize("debayer", ["edge_aware", "bilinear"])
def test_an_old_opencv_shifts_vng_only(monkeypatch, debayer):
    """Only VNG lost two rows before OpenCV 4.12: the other methods are not moved."""
    msg = raw_msg("bayer_rggb8", mosaic(smooth_rgb(48, 64, np.uint8), "rggb"), 64, 48)
    good, _ = conv.decode_image(msg, debayer)
    monkeypatch.setattr(conv, "cv2", OldOpenCV())
    conv.vng_shift.cache_clear()
    try:
        np.testing.assert_array_equal(conv.decode_image(msg, debayer)[0], good)
    finally:
        conv.vng_shift.cache_clear()


@pytest.mark.parametrize("old_numpy", [False, True])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_honours_step_padding_and_byte_order(bits, old_numpy, monkeypatch):
    """Padded and big-endian rows, also as numpy < 1.23 (Humble's 1.21) must read them."""
    monkeypatch.setattr(
        conv, "NUMPY_VIEW_NEEDS_CONTIGUOUS", old_numpy or conv.NUMPY_VIEW_NEEDS_CONTIGUOUS
    )
    dtype = np.uint8 if bits == 8 else np.uint16
    encoding = f"bayer_rggb{bits}"
    samples = mosaic(smooth_rgb(6, 8, dtype), "rggb")
    padded = np.zeros((6, 8 + 3), dtype)
    padded[:, :8] = samples
    expected, _ = conv.decode_image(raw_msg(encoding, samples, 8, 6))
    msgs = [raw_msg(encoding, padded, 8, 6)]
    if bits == 16:
        msgs.append(raw_msg(encoding, samples, 8, 6, big=True))
    for msg in msgs:
        np.testing.assert_array_equal(conv.decode_image(msg)[0], expected)
    assert conv.image_to_numpy(msgs[0]).shape == (6, 8)


def bt601(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Limited-range BT.601 Y, U, V of one colour (the YUV that cameras send)."""
    r, g, b = rgb
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return round(y), round(u), round(v)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv", "nv12", "nv21"])
def test_yuv_is_converted_with_the_right_layout(encoding):
    colour = (200, 100, 30)
    y, u, v = bt601(colour)
    h, w = 4, 6
    if encoding in ("yuv422", "uyvy"):  # ROS's yuv422 is UYVY
        buffer = np.tile(np.array([u, y, v, y], np.uint8), (h, w // 2))
    elif encoding in ("yuv422_yuy2", "yuyv"):
        buffer = np.tile(np.array([y, u, y, v], np.uint8), (h, w // 2))
    else:  # a Y plane, then one row of interleaved chroma per two image rows
        chroma = [u, v] if encoding == "nv12" else [v, u]
        buffer = np.vstack(
            [np.full((h, w), y, np.uint8), np.tile(np.array(chroma, np.uint8), (h // 2, w // 2))]
        )
    out, enc = conv.decode_image(raw_msg(encoding, buffer, w, h))
    assert (enc, out.shape) == ("rgb8", (h, w, 3))
    np.testing.assert_allclose(out.reshape(-1, 3), np.tile(colour, (h * w, 1)), atol=2)


@pytest.mark.parametrize(
    ("encoding", "w", "h", "nbytes"),
    [
        ("yuv422_yuy2", 5, 4, 40),
        ("nv12", 6, 3, 27),
        ("nv12", 5, 4, 30),  # odd width: OpenCV's cv2.error, which the bag reader does not take
        ("nv21", 6, 4, 24),
        ("bayer_rggb8", 6, 4, 20),
    ],
)
def test_malformed_raw_layouts_raise(encoding, w, h, nbytes):
    step = w * 2 if encoding.startswith("yuv") else w
    msg = Image(height=h, width=w, encoding=encoding, step=step, data=bytes(nbytes))
    with pytest.raises(ValueError):
        conv.decode_image(msg)
    with pytest.raises(ValueError):  # what the node checks on arrival
        conv.check_image(msg)


def test_what_ros_cv_bridge_refuses_is_an_unsupported_encoding(monkeypatch):
    """cv_bridge raises CvBridgeError (a TypeError) for what it cannot convert: that is the
    frame's encoding, not a fault of the node. Images without colour (32FC1 depth) are refused
    before, with that reason: the old message suggested installing cv_bridge."""
    import types

    class CvBridgeError(TypeError):
        pass

    class CvBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            raise CvBridgeError(f"[{msg.encoding}] is not a color format. but [rgb8] is.")

    monkeypatch.setitem(sys.modules, "cv_bridge", types.SimpleNamespace(CvBridge=CvBridge))
    msg = Image(height=2, width=2, encoding="nv24", step=6, data=bytes(12))
    with pytest.raises(conv.UnsupportedEncoding, match="cv_bridge cannot convert 'nv24'"):
        conv.decode_image(msg)
    # numeric data is refused with its reason, not as a decoder missing or failing
    for encoding in ("32FC1", "16SC1", "8UC2", "64FC1"):
        msg = Image(height=2, width=2, encoding=encoding, step=16, data=bytes(32))
        for check in (conv.check_image, conv.decode_image):
            with pytest.raises(conv.UnsupportedEncoding, match=f"'{encoding}' holds no colour"):
                check(msg)


@pytest.mark.skipif(find_spec("cv_bridge") is not None, reason="ROS cv_bridge decodes these")
def test_encodings_without_a_decoder_are_unsupported():
    for encoding in ("nv24", "32FC1"):
        msg = Image(height=2, width=2, encoding=encoding, step=8, data=bytes(16))
        with pytest.raises(conv.UnsupportedEncoding):
            conv.decode_image(msg)


def test_a_compressed_format_other_than_jpeg_or_png_is_refused():
    """'jpg' was written as PNG bytes under 'rgb8; jpg compressed bgr8', without a word."""
    arr = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="jpeg or png"):
        conv.numpy_to_compressed(arr, "rgb8", fmt="jpg")
    assert bytes(conv.numpy_to_compressed(arr, "rgb8", fmt="jpeg").data[:2]) == b"\xff\xd8"


def test_a_compressed_depth_frame_is_refused_as_depth():
    """`sarn deblur --topics` on a compressedDepth topic (a depth header before its PNG) said
    each frame was corrupt, "no PNG, JPEG or TIFF header"."""
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint16))[1].tobytes()
    msg = CompressedImage(format="16UC1; compressedDepth png", data=bytes(12) + png)
    with pytest.raises(conv.UnsupportedEncoding, match="depth, no colour to deblur"):
        conv.compressed_to_numpy(msg)


@pytest.mark.parametrize("encoding", ["mono16", "bgr16", "bayer_rggb16"])
def test_16_bit_rows_with_an_odd_step_are_read_and_converted(encoding):
    """A ROS Image's step may be any byte count (an odd padding byte after 16-bit rows): the
    rows then start off the 2-byte grid, and must still read as the stored values and go
    through OpenCV's conversions, which refuse unaligned arrays."""
    rgb = smooth_rgb(6, 8, np.uint16)
    pixels = mosaic(rgb, "rggb") if encoding.startswith("bayer") else rgb
    if encoding == "mono16":
        pixels = rgb[..., 1]
    rows = np.ascontiguousarray(pixels.reshape(6, -1))
    padded = np.zeros((6, rows.nbytes // 6 + 1), np.uint8)  # one byte of padding per row
    padded[:, :-1] = rows.view(np.uint8)
    msg = raw_msg(encoding, padded, 8, 6)
    assert msg.step % 2 == 1
    expected, expected_enc = conv.decode_image(raw_msg(encoding, rows, 8, 6))
    got, enc = conv.decode_image(msg)
    assert enc == expected_enc
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(conv.to_rgb(got, enc), conv.to_rgb(expected, enc))


def test_a_compressed_png_with_alpha_keeps_its_colours():
    """A 4-channel PNG decodes to bgr8 with alpha dropped: red stays red (BGR 0, 0, 255)."""
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., 3] = 255
    bgra[:, :3, 2] = 255  # left half red (OpenCV's BGRA order)
    bgra[:, 3:, 0] = 255  # right half blue
    msg = CompressedImage(format="png", data=cv2.imencode(".png", bgra)[1].tobytes())
    out, enc = conv.compressed_to_numpy(msg)
    assert (enc, out.shape) == ("bgr8", (4, 6, 3))
    assert out[0, 0].tolist() == [0, 0, 255] and out[0, 5].tolist() == [255, 0, 0]
    assert conv.to_rgb(out, enc)[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("pattern", ["rggb", "gbrg"])
def test_16_bit_bayer_asked_for_vng_is_demosaiced_edge_aware(pattern):
    """OpenCV has VNG for 8 bit only, so 16-bit Bayer uses edge-aware then (module docs)."""
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 65536, (16, 20, 3), dtype=np.int64).astype(np.uint16)  # detail
    msg = raw_msg(f"bayer_{pattern}16", mosaic(rgb, pattern), 20, 16)
    vng, enc = conv.decode_image(msg, "vng")
    assert enc == "rgb16"
    np.testing.assert_array_equal(vng, conv.decode_image(msg, "edge_aware")[0])
    assert not np.array_equal(vng, conv.decode_image(msg, "bilinear")[0])  # they differ
