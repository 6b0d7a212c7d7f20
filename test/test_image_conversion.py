"""sensor_msgs/Image <-> numpy for rclpy and rosbags messages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image

from sarn_ros.ros import image_conversion as conv

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


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"])
def test_rgb_mapping_round_trips(encoding):
    arr = sample(encoding)
    rgb = conv.to_rgb(arr, encoding)
    assert rgb.shape[:2] == arr.shape[:2] and (rgb.ndim == 2 or rgb.shape[2] == 3)
    np.testing.assert_array_equal(conv.from_rgb(rgb, encoding, arr), arr)


def test_bgr_is_really_swapped():
    bgr = np.zeros((1, 1, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)  # blue
    assert tuple(conv.to_rgb(bgr, "bgr8")[0, 0]) == (0, 0, 255)


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
