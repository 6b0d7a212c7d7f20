"""camera_info scaled with the image, the same on rclpy messages and rosbags dataclasses."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the bag tests need rosbags (README: colcon test)")
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo

from sarn_ros.ros import camera_info
from sarn_ros.ros.camera_info import InfoCache, image_size, scale_camera_info

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


def test_a_skewed_calibration_projects_onto_the_resized_pixels():
    """K[1] (skew) is in K's first row: it scales with x, or every projection in the resized
    image is off by (1 - sx) * skew * y/z pixels (it was left as calibrated)."""
    k = [500.0, 4.0, 320.0, 0.0, 480.0, 240.0, 0.0, 0.0, 1.0]
    p = [500.0, 4.0, 320.0, -30.0, 0.0, 480.0, 240.0, 6.0, 0.0, 0.0, 1.0, 0.0]
    point = np.array([0.3, -0.2, 2.0, 1.0])  # homogeneous, in the camera frame
    for info in (rclpy_info(), rosbags_info()):
        info.k, info.p = np.array(k), np.array(p)
        out = scale_camera_info(info, 0.5, 0.25)
        for before, after, cols in ((k, out.k, 3), (p, out.p, 4)):
            uvw = np.reshape(before, (3, cols)) @ point[:cols]
            expected = uvw[:2] / uvw[2] * [0.5, 0.25]  # the pixel in the resized image
            uvw = np.reshape(after, (3, cols)) @ point[:cols]
            np.testing.assert_allclose(uvw[:2] / uvw[2], expected)


def test_the_resized_roi_lies_inside_the_resized_calibration():
    """641x481, ROI from (7, 7) to the far corner at 0.5: the full size rounded to 320x240
    (320.5, 240.5), the ROI to 4 + 317 and 4 + 237, ending past it: an invalid camera_info for
    rectification (REP 104)."""
    info = rclpy_info()
    info.width, info.height = 641, 481
    info.roi.x_offset, info.roi.width, info.roi.y_offset, info.roi.height = 7, 634, 7, 474
    w, h = image_size(info)
    nw, nh = round(w * 0.5), round(h * 0.5)  # as the node resizes: 317 x 237
    out = scale_camera_info(info, nw / w, nh / h)
    roi = out.roi
    assert roi.x_offset + roi.width <= out.width and roi.y_offset + roi.height <= out.height
    assert image_size(out) == (nw, nh)  # still the published image's size
    assert (out.width, out.height) == (321, 241)  # 320.5 and 240.5, rounded up to hold it
    info.roi.x_offset = info.roi.y_offset = info.roi.width = info.roi.height = 0
    out = scale_camera_info(info, 0.5, 0.5)
    assert (out.width, out.height) == (320, 240)  # no ROI: rounded as before


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


def put_later(cache: InfoCache, stamp: int, delay_s: float) -> threading.Thread:
    """A driver's camera_info, published ``delay_s`` after the image it belongs to."""
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), cache.put(stamp, stamp)))
    thread.start()
    return thread


def timed_get(cache: InfoCache, stamp: int, wait_s: float) -> tuple[object, bool, float]:
    t0 = time.monotonic()
    info, matched = cache.get(stamp, wait_s)
    return info, matched, time.monotonic() - t0


def test_an_output_waits_for_the_camera_info_sent_just_after_its_image():
    """At future_frames 0 the network can finish before the driver's camera_info for that
    frame arrives: the output took the previous frame's calibration (none for the first)."""
    cache = InfoCache(5)
    for stamp in (1, 2, 3):
        thread = put_later(cache, stamp, 0.05)
        info, matched, took = timed_get(cache, stamp, 5.0)
        thread.join()
        assert (info, matched) == (stamp, True)
        assert took < 2.0  # answered by the arrival, not by the time limit
    assert timed_get(cache, 3, 5.0)[:2] == (3, True)  # already there: no wait


def test_no_wait_where_the_camera_info_cannot_come_any_more():
    cache = InfoCache(5)
    cache.put(5, "five")
    info, matched, took = timed_get(cache, 4, 5.0)  # a newer one came: 4's was lost
    assert (info, matched) == ("five", False) and took < 1.0
    cache.discard(5)  # its frame was dropped, and a frame repeating the stamp comes out
    info, matched, took = timed_get(cache, 5, 5.0)  # 5's came and went: no wait, no miss
    assert (info, matched) == ("five", False) and took < 1.0 and cache.missed is None


def test_a_camera_without_camera_info_costs_one_wait():
    cache = InfoCache(5)
    info, matched, took = timed_get(cache, 1, 0.2)
    assert (info, matched) == (None, False) and took >= 0.2
    info, matched, took = timed_get(cache, 2, 5.0)
    assert (info, matched) == (None, False) and took < 1.0
    cache.put(7, 7)  # camera_info starts (a driver that came up late): after a pause,
    assert timed_get(cache, 8, 5.0)[:2] == (7, False)
    cache.late_at -= camera_info.LATE_PAUSE_S  # it waits again
    thread = put_later(cache, 9, 0.05)
    assert timed_get(cache, 9, 5.0)[:2] == (9, True)
    thread.join()


def test_a_camera_whose_camera_info_came_later_than_the_wait_pauses_its_waits():
    """One late camera_info (a hiccup) used to end the waits for good: every later output that
    beat its camera_info took the previous frame's calibration under its own stamp."""
    cache = InfoCache(5)
    assert timed_get(cache, 1, 0.1)[:2] == (None, False)
    cache.put(1, 1)  # came after all, too late: waiting would only delay the images
    info, matched, took = timed_get(cache, 2, 5.0)
    assert (info, matched) == (1, False) and took < 1.0
    assert cache.late_at is not None
    cache.late_at -= camera_info.LATE_PAUSE_S  # the pause is over: it waits again
    thread = put_later(cache, 3, 0.05)
    assert timed_get(cache, 3, 5.0)[:2] == (3, True)
    thread.join()


def test_a_camera_whose_camera_info_never_pairs_with_its_images_waits_ever_more_rarely():
    """A driver that stamps camera_info 0 (or just before its image, or sends it at a lower
    rate) never answers a wait, but every camera_info ended the miss: the node's one worker
    waited 0.1 s on every frame (27 of 73 frames published at 30 fps, all cameras stalled)."""
    cache = InfoCache(5)
    assert timed_get(cache, 1, 0.1)[:2] == (None, False)
    for stamp in range(2, 30):
        cache.put(0, "zero")
        info, matched, took = timed_get(cache, stamp, 5.0)
        assert (info, matched) == ("zero", False) and took < 1.0
    cache.late_at -= camera_info.LATE_PAUSE_S  # the pause is over: one more wait times out,
    assert timed_get(cache, 30, 0.1)[:2] == ("zero", False)
    cache.put(0, "zero")
    cache.late_at -= camera_info.LATE_PAUSE_S  # and the next pause is twice as long
    assert timed_get(cache, 31, 5.0)[2] < 1.0
    cache.late_at -= 100 * camera_info.LATE_PAUSE_S  # bounded by MAX_PAUSE_S
    thread = put_later(cache, 32, 0.05)  # the driver mended: an answered wait
    assert timed_get(cache, 32, 5.0)[:2] == (32, True)
    thread.join()
    assert cache.timeouts == 0  # the next timed-out wait pauses LATE_PAUSE_S again


def test_the_pause_after_many_missed_waits_in_a_row_stays_bounded():
    """Twelve timed-out waits in a row would double the pause to hours: a driver mended
    meanwhile had its images paired with the previous frame's calibration for that long."""
    cache = InfoCache(5)
    cache.timeouts = 12
    cache.put(0, "zero")
    cache.late_at = time.monotonic() - camera_info.MAX_PAUSE_S - 1
    thread = put_later(cache, 5, 0.05)
    assert timed_get(cache, 5, 5.0)[:2] == (5, True)
    thread.join()


def test_the_cache_keeps_the_newest_stamps():
    cache = InfoCache(3)
    for stamp in range(10):
        cache.put(stamp, stamp)
    assert [cache.get(s)[1] for s in range(10)] == [False] * 7 + [True] * 3
    assert cache.get(8) == (8, True)
    assert cache.get(6) == (7, False)  # the nearest held, one frame off
    assert cache.get(2) == (9, False)  # the latest, for a stamp far past the held ones


def test_an_unmatched_frame_takes_the_camera_info_nearest_its_stamp():
    """With look-ahead the latest camera_info is a later frame's: a driver stamping it 1 ms
    after its image, or at half the image rate, had every frame take the calibration (and
    size) of one two frames on, wrong for the frames before a resolution change."""
    cache = InfoCache(10)
    for stamp in (101, 201, 301):  # each 1 ms after its image
        cache.put(stamp, stamp - 1)
    assert [cache.get(s, 0.05)[0] for s in (100, 200, 300)] == [100, 200, 300]
    half = InfoCache(10)
    for stamp in (100, 300, 500):
        half.put(stamp, stamp)
    assert [half.get(s)[0] for s in (0, 100, 200, 400, 600)] == [100, 100, 100, 300, 500]
    # a driver stamping camera_info on another clock, an hour ahead: the nearest is the
    # oldest held, a calibration since replaced; the newest stands in, as for a latched one
    ahead = InfoCache(30)
    for k in range(30):
        ahead.put(3600 * 10**9 + k * 33_000_000, "old" if k < 20 else "new")
    assert ahead.get(29 * 33_000_000) == ("new", False)


def test_unequal_binning_divides_each_side_by_its_own_factor():
    """binning_x divides the width, binning_y the height (REP 104): a camera binning 2x1."""
    info = CameraInfo(width=64, height=48)
    info.binning_x, info.binning_y = 2, 1
    assert image_size(info) == (32, 48)
    info.binning_x, info.binning_y = 0, 4  # 0: no binning on that side
    assert image_size(info) == (64, 12)
    info = rclpy_info()  # ROI 400x300 of 640x480
    info.binning_x, info.binning_y = 4, 2
    assert image_size(info) == (100, 150)


def test_only_an_answered_wait_ends_the_backoff():
    """A camera_info already there when its output asks says nothing of whether waiting for a
    late one pays: only an answered wait resets the count that lengthens the pause, or a camera
    whose camera_info is often late stalled the worker again at each short pause's end."""
    cache = InfoCache(10)
    assert timed_get(cache, 1, 0.01)[:2] == (None, False)
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.get(2, 0.5) == ("b", True) and cache.timeouts == 1


def test_an_roi_outside_the_image_does_not_grow_it():
    """x_offset and width of 2**32 - 1 each made the republished width 8589934590, past
    uint32; the rounding of a resized ROI inside the image still grows it (above)."""
    info = CameraInfo(width=64, height=48)
    info.roi.x_offset = info.roi.width = 2**32 - 1
    info.roi.y_offset, info.roi.height = 40, 20  # ends at 60 of 48
    for s in (1.0, 0.5):
        out = scale_camera_info(info, s, s)
        assert (out.width, out.height) == (round(64 * s), round(48 * s))


def test_a_half_set_roi_is_no_roi():
    """REP 104: the ROI counts where both its sides are set; a width alone gave a 0 px height."""
    info = CameraInfo(width=640, height=480)
    info.roi.width = 320
    assert image_size(info) == (640, 480)
    info.roi.width, info.roi.height = 0, 240
    assert image_size(info) == (640, 480)


def test_a_camera_info_given_again_is_kept_as_the_newest():
    """A bag played again sends its stamps anew: the second pass's camera_info kept the first
    one's place and was the next one evicted, while the frame it is for was still to come."""
    cache = InfoCache(2)
    cache.put(1, "first pass")
    cache.put(2, "two")
    cache.put(1, "second pass")
    cache.put(3, "three")
    assert cache.get(1) == ("second pass", True)
    assert cache.get(2)[1] is False  # the oldest went
