"""camera_info scaled with the image, the same on rclpy messages and rosbags dataclasses."""

from __future__ import annotations

import numpy as np
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo

from sarn_ros.ros.camera_info import image_size, scale_camera_info

T = get_typestore(Stores.ROS2_HUMBLE).types
K = [500.0, 0.0, 320.0, 0.0, 480.0, 240.0, 0.0, 0.0, 1.0]
P = [500.0, 0.0, 320.0, -30.0, 0.0, 480.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def rclpy_info() -> CameraInfo:
    info = CameraInfo(width=640, height=480, k=K, p=P, d=[0.1, -0.2, 0.0, 0.0, 0.0])
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 40, 20, 400, 300
    info.header.frame_id = "cam"
    return info


def rosbags_info():
    return T["sensor_msgs/msg/CameraInfo"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam"
        ),
        height=480,
        width=640,
        distortion_model="plumb_bob",
        d=np.array([0.1, -0.2, 0.0, 0.0, 0.0]),
        k=np.array(K),
        r=np.eye(3).reshape(-1),
        p=np.array(P),
        binning_x=0,
        binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=40, y_offset=20, height=300, width=400, do_rectify=False
        ),
    )


def test_intrinsics_size_and_roi_follow_the_image():
    for info in (rclpy_info(), rosbags_info()):
        out = scale_camera_info(info, 0.5, 0.25)
        assert (out.width, out.height) == (320, 120)
        np.testing.assert_allclose(out.k, [250, 0, 160, 0, 120, 60, 0, 0, 1])
        np.testing.assert_allclose(out.p, [250, 0, 160, -15, 0, 120, 60, 0, 0, 0, 1, 0])
        roi = out.roi
        assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (20, 5, 200, 75)
        np.testing.assert_allclose(out.d, [0.1, -0.2, 0, 0, 0])  # distortion is scale-free
        assert info.width == 640 and info.k[0] == 500 and info.roi.width == 400  # a copy


def test_header_is_replaced_and_rosbags_can_serialise_the_result():
    store = get_typestore(Stores.ROS2_HUMBLE)
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=7, nanosec=5), frame_id="cam"
    )
    out = scale_camera_info(rosbags_info(), 1.0, 1.0, header)
    raw = store.serialize_cdr(out, "sensor_msgs/msg/CameraInfo")
    back = store.deserialize_cdr(raw, "sensor_msgs/msg/CameraInfo")
    assert (back.header.stamp.sec, back.width) == (7, 640)
    np.testing.assert_allclose(back.k, K)


def test_the_image_size_a_binned_or_cropped_calibration_describes():
    """REP 104: the calibration stays at the sensor's full size; the ROI (in full-size pixels)
    and binning give the published image's. Both were warned about as a wrong calibration."""
    info = CameraInfo(width=64, height=48)
    assert image_size(info) == (64, 48)  # binning 0: none, ROI all zero: the whole
    info.binning_x = info.binning_y = 2
    assert image_size(info) == (32, 24)
    info.roi.width, info.roi.height, info.roi.x_offset = 40, 30, 8
    assert image_size(info) == (20, 15)
    info = rclpy_info()  # ROI 400x300 of 640x480
    assert image_size(info) == (400, 300)
    assert image_size(scale_camera_info(info, 0.5, 0.5)) == (200, 150)  # what resize publishes
