"""sarn_deblur_node in its own process, over real rclpy + Fast DDS (loopback only)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
import torch
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import (
    CONFIG,
    Camera,
    Diagnostics,
    NodeProcess,
    qos,
    spin_until,
    stamp,
    wait_connected,
)
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from sarn_ros.archs import RecurrentSARN
from sarn_ros.engine import StreamDeblurrer
from sarn_ros.ensemble import SelfEnsembleDeblurrer
from sarn_ros.evaluation import deblur_sequence
from sarn_ros.resources import node_command
from sarn_ros.ros.camera_info import InfoCache
from sarn_ros.ros.image_conversion import decode_image, image_to_numpy, numpy_to_image

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SEC = 1_000_000_000
RELIABLE = {"qos.subscription.reliability": "reliable"}  # default input QoS is best effort
# bag-like intake: reliable, deep enough for the bursts these tests send
RELIABLE_IN = {"qos.subscription.reliability": "reliable", "qos.subscription.depth": 100}


@pytest.fixture
def ros(ros_domain: int):
    rclpy.init(domain_id=ros_domain)
    node = rclpy.create_node("sarn_test")
    started: list[NodeProcess] = []

    def start(weights, remaps=None, **params) -> NodeProcess:
        proc = NodeProcess(weights, remaps, **params)
        started.append(proc)
        return proc

    yield node, start
    for proc in started:
        rc, out = proc.stop()
        print(out)  # shown by pytest when the test fails
        assert rc == 0, f"node did not exit cleanly on SIGINT (rc {rc}):\n{out}"
    node.destroy_node()
    rclpy.shutdown()


def frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8), (w, h))
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


def set_param(node, name: str, value: ParameterValue, target: str = "/sarn_deblur"):
    client = node.create_client(SetParameters, f"{target}/set_parameters")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(
        SetParameters.Request(parameters=[Parameter(name=name, value=value)])
    )
    assert spin_until(node, future.done, 10)
    return future.result().results[0]


def play(node, cam: Camera, src: list[np.ndarray], stamps: list[int], encoding: str, **kw):
    """Publish ``src`` as a 30 fps camera would."""
    for f, s in zip(src, stamps, strict=True):
        cam.publish(f, encoding, s, **kw)
        spin_until(node, lambda: False, 1 / 30)


def engine_frames(engine: StreamDeblurrer, src: list[np.ndarray]) -> list[np.ndarray]:
    """The engine's frames for ``src`` on one thread, as the node runs (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return deblur_sequence(engine, src, "check")
    finally:
        torch.set_num_threads(threads)


def test_outputs_keep_headers_order_encoding_and_match_engine(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    wait_connected(node, [cam], proc)
    bgr = frames(6)
    stamps = [100 * SEC + i * SEC // 30 for i in range(6)]
    play(node, cam, bgr, stamps, "bgr8", frame_id="left_optical")
    # The last two frames wait for look-ahead; the node emits them once the stream is idle.
    assert spin_until(node, lambda: len(cam.outputs) == 6 and len(cam.infos) == 6, 30)

    assert [stamp(m) for m in cam.outputs] == stamps
    assert {m.header.frame_id for m in cam.outputs} == {"left_optical"}
    assert {(m.encoding, m.width, m.height) for m in cam.outputs} == {("bgr8", 64, 48)}
    assert [stamp(i) for i in cam.infos] == stamps
    assert cam.infos[0].k[2] == 32.0

    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=2)
    expected = engine_frames(engine, [f[..., ::-1].copy() for f in bgr])
    for msg, exp in zip(cam.outputs, expected, strict=True):
        np.testing.assert_array_equal(image_to_numpy(msg), exp[..., ::-1])


def sim_time_node(ros, weights: Path):
    """A node under use_sim_time taking every frame, its camera, and a /clock publisher the
    node hears."""
    node, start = ros
    proc = start(weights, queue_policy="all", use_sim_time=True, **RELIABLE_IN)
    cam = Camera(node)
    clock = node.create_publisher(Clock, "/clock", 10)
    wait_connected(node, [cam], proc)
    assert spin_until(node, lambda: clock.get_subscription_count() > 0, 20), proc.stop()
    return node, proc, cam, clock


def play_on_clock(node, cam: Camera, clock, src: list, stamps: list[int], apart_s: float) -> None:
    """Frames as a bag player with --clock sends them: /clock at each stamp, then the frame,
    ``apart_s`` of wall time apart."""
    for f, s in zip(src, stamps, strict=True):
        clock.publish(Clock(clock=rclpy.time.Time(nanoseconds=s).to_msg()))
        cam.publish(f, "rgb8", s)
        spin_until(node, lambda: False, apart_s)


def test_a_player_killed_under_sim_time_still_gets_its_held_frames_out(
    ros, tiny_recurrent_checkpoint
):
    """A player killed (SIGKILL) sends no more /clock, but DDS counts its publisher for some
    20 s (its lease): the held frames waited that long. Silence on /clock counts as gone."""
    node, proc, cam, clock = sim_time_node(ros, tiny_recurrent_checkpoint)
    src = frames(4, seed=13)
    stamps = [950 * SEC + i * SEC // 30 for i in range(4)]
    play_on_clock(node, cam, clock, src, stamps, 0.1)
    assert spin_until(node, lambda: len(cam.outputs) == 2, 30), proc.stop()
    # the publisher stays (as a killed process's does until its lease ends), silent
    assert spin_until(node, lambda: len(cam.outputs) == 4, 8), proc.stop()
    assert clock.get_subscription_count() > 0


def test_a_bag_replayed_slowly_under_sim_time_keeps_its_look_ahead(ros, tiny_recurrent_checkpoint):
    """`ros2 bag play --clock --rate 0.05`: 30 fps stamps 0.7 s apart on the wall clock. The
    quiet-camera flush was timed by the wall clock, so every frame came out without its
    look-ahead (pixels up to 38 off); under use_sim_time it goes by /clock."""
    node, proc, cam, clock = sim_time_node(ros, tiny_recurrent_checkpoint)
    src = frames(5, seed=11)
    stamps = [800 * SEC + i * SEC // 30 for i in range(5)]
    play_on_clock(node, cam, clock, src, stamps, 0.7)
    end = rclpy.time.Time(nanoseconds=stamps[-1] + SEC).to_msg()  # the bag's end: flushed
    clock.publish(Clock(clock=end))
    assert spin_until(node, lambda: len(cam.outputs) == 5, 30), proc.stop()
    expected = engine_frames(StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu"), src)
    for msg, exp in zip(cam.outputs, expected, strict=True):
        np.testing.assert_array_equal(image_to_numpy(msg), exp)


def test_a_bag_that_ends_under_sim_time_still_gets_its_held_frames_out(
    ros, tiny_recurrent_checkpoint
):
    """`ros2 bag play --clock` exits at the bag's end and /clock stops: ROS time stood still for
    good, the camera never looked quiet by it, and the last future_frames frames of every bag
    waited for ever (lost at Ctrl-C). A paused player, still publishing /clock, keeps them."""
    node, proc, cam, clock = sim_time_node(ros, tiny_recurrent_checkpoint)
    diag = Diagnostics(node)
    src = frames(4, seed=12)
    stamps = [900 * SEC + i * SEC // 30 for i in range(4)]
    play_on_clock(node, cam, clock, src, stamps, 0.1)
    assert spin_until(node, lambda: len(cam.outputs) == 2, 30), proc.stop()
    paused = Clock(clock=rclpy.time.Time(nanoseconds=stamps[-1]).to_msg())
    for _ in range(20):  # paused: 4x max_gap_s of wall time, /clock sent without a step
        clock.publish(paused)
        spin_until(node, lambda: False, 0.1)
    assert len(cam.outputs) == 2
    node.destroy_publisher(clock)  # the player exits
    assert spin_until(node, lambda: len(cam.outputs) == 4, 15), proc.stop()
    # /diagnostics goes by the wall clock: on /clock it stood still with the player, and its
    # last report (2 of 4 published, or none at all) stayed for good
    assert spin_until(node, lambda: diag.count("frames published") == 4, 15), diag.values
    expected = engine_frames(StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu"), src)
    for msg, exp in zip(cam.outputs, expected, strict=True):
        np.testing.assert_array_equal(image_to_numpy(msg), exp)


def test_sim_time_without_a_clock_still_deblurs_and_says_what_is_missing(
    ros, tiny_recurrent_checkpoint
):
    """A bag played without --clock to a node under use_sim_time: every frame still comes out,
    held ones by the wall clock, and the log and /diagnostics say /clock is missing."""
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, queue_policy="all", use_sim_time=True, **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    play(node, cam, frames(3, seed=14), [70 * SEC + i * SEC // 30 for i in range(3)], "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 3, 30), proc.stop()
    assert spin_until(node, lambda: "(no /clock)" in diag.message, 10), diag.message
    out = proc.stop()[1]
    assert out.count("but ROS time stands at 0 while frames come") == 1, out


def test_lazy_node_deblurs_only_while_its_output_is_watched(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, lazy=True, future_frames=0, **RELIABLE_IN)
    camera = node.create_publisher(Image, "image_raw", qos(True))  # nobody watches the output
    diag = Diagnostics(node)
    assert spin_until(node, lambda: camera.get_subscription_count() > 0, 40), proc.stop()[1]
    img = frames(1)[0]
    sent = 0

    def send() -> None:
        nonlocal sent
        msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=img.tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = 60 + sent, 0
        camera.publish(msg)
        sent += 1
        spin_until(node, lambda: False, 0.1)

    for _ in range(4):
        send()
    idle = "idle frames (lazy, no subscriber)"
    assert spin_until(node, lambda: diag.count(idle) == 4, 20), diag.values
    assert diag.count("frames published") == 0 and diag.count("dropped frames") == 0
    outputs: list[Image] = []
    node.create_subscription(Image, "deblurred/image_raw", outputs.append, qos(True))
    while not outputs and sent < 100:  # until the node sees the new subscriber
        send()
    for _ in range(3):
        send()
    assert spin_until(node, lambda: outputs[-1].header.stamp.sec == 59 + sent, 20)
    got = [o.header.stamp.sec - 60 for o in outputs]
    assert got == list(range(got[0], sent))  # once watched, every frame
    assert spin_until(node, lambda: diag.count("frames published") == len(got), 10)
    assert diag.count(idle) == got[0]  # and every frame before was skipped


def test_a_new_viewer_of_a_lazy_node_gets_no_frames_held_for_the_last(
    ros, tiny_recurrent_checkpoint
):
    """With max_gap_s 0 the frames held for look-ahead when the last viewer left waited in
    the engine and went to the next viewer, minutes stale; now they are flushed at once."""
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, lazy=True, max_gap_s=0.0, **RELIABLE_IN)
    cam = Camera(node)  # watches the outputs
    wait_connected(node, [cam], proc)
    sent = 0

    def send(n: int) -> None:
        nonlocal sent
        for f in frames(n, seed=sent):
            cam.publish(f, "rgb8", 300 * SEC + sent * SEC // 30)
            sent += 1
            spin_until(node, lambda: False, 0.05)

    send(5)  # the last 2 wait for look-ahead, then are flushed as the viewer leaves
    assert spin_until(node, lambda: len(cam.outputs) >= 3, 30), proc.stop()
    for sub in [s for s in node.subscriptions if "/deblurred/" in s.topic_name]:
        node.destroy_subscription(sub)  # image and camera_info: nothing watches now
    send(3)  # unwatched: skipped
    spin_until(node, lambda: False, 1.0)
    late: list[Image] = []
    node.create_subscription(Image, "deblurred/image_raw", late.append, qos(True))
    while not late and sent < 60:
        send(1)
    assert late and stamp(late[0]) >= 300 * SEC + 8 * SEC // 30, [stamp(m) for m in late]


def test_self_ensemble_outputs_match_the_engine(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, self_ensemble=4, future_frames=1, **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    src = frames(3, seed=7)
    stamps = [110 * SEC + i * SEC // 30 for i in range(3)]
    play(node, cam, src, stamps, "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 3, 30)
    assert [stamp(m) for m in cam.outputs] == stamps
    assert spin_until(node, lambda: diag.values.get("self_ensemble") == "4", 10)
    assert diag.values["deformable conv"] == "grid_sample"  # the CPU path
    engine = SelfEnsembleDeblurrer(
        tiny_recurrent_checkpoint, members=4, device="cpu", future_frames=1
    )
    expected = engine_frames(engine, src)
    for msg, exp in zip(cam.outputs, expected, strict=True):
        assert np.abs(image_to_numpy(msg).astype(int) - exp).max() <= 1


def test_torch_compile_in_the_worker_thread_gives_the_engine_frames(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, torch_compile=True, future_frames=1, **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    src = frames(3, seed=9)
    stamps = [120 * SEC + i * SEC // 30 for i in range(3)]
    play(node, cam, src, stamps, "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 3, 120)  # the first frame compiles
    assert [stamp(m) for m in cam.outputs] == stamps
    assert spin_until(node, lambda: diag.values.get("torch_compile") == "on", 10)
    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=1)
    expected = engine_frames(engine, src)
    for msg, exp in zip(cam.outputs, expected, strict=True):
        assert np.abs(image_to_numpy(msg).astype(int) - exp).max() <= 1


def test_best_effort_camera_grey_and_alpha_encodings(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, future_frames=0)  # default: best-effort subscription
    cam = Camera(node, reliable=False)
    wait_connected(node, [cam], proc)
    rgb = frames(3)
    rgba = np.dstack([rgb[0], np.full(rgb[0].shape[:2], 77, np.uint8)])
    grey16 = rgb[1][..., 0].astype(np.uint16) * 257
    sent = [(rgb[2], "rgb8"), (rgba, "rgba8"), (rgb[0][..., 0].copy(), "mono8"), (grey16, "mono16")]
    for i, (f, enc) in enumerate(sent):
        cam.publish(f, enc, 5 * SEC + i * SEC // 10)
        spin_until(node, lambda n=i: len(cam.outputs) > n, 15)
    assert [m.encoding for m in cam.outputs] == ["rgb8", "rgba8", "mono8", "mono16"]
    assert (image_to_numpy(cam.outputs[1])[..., 3] == 77).all()  # alpha passes through
    assert image_to_numpy(cam.outputs[3]).dtype == np.uint16


def raw_camera_msg(encoding: str, buffer: np.ndarray, width: int, height: int, t: int) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=buffer[0].nbytes)
    msg.data = buffer.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, SEC)
    return msg


def test_bayer_and_yuv_cameras_need_no_debayer_node(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(
        tiny_recurrent_checkpoint,
        future_frames=1,
        queue_policy="all",
        debayer="bilinear",  # not the default: the node must pass it on
        **RELIABLE_IN,
    )
    cam = Camera(node)
    wait_connected(node, [cam], proc)
    rgb = frames(4, seed=5)
    bayer = [np.empty((48, 64), np.uint8) for _ in rgb]
    for b, f in zip(bayer, rgb, strict=True):  # an RGGB sensor's samples
        b[0::2, 0::2], b[0::2, 1::2] = f[0::2, 0::2, 0], f[0::2, 1::2, 1]
        b[1::2, 0::2], b[1::2, 1::2] = f[1::2, 0::2, 1], f[1::2, 1::2, 2]
    # what a UVC webcam sends: luma, then U and V alternating (every byte pattern is YUYV;
    # built by hand: OpenCV 4.6, Jazzy's, has no RGB->YUY2 conversion)
    yuyv = np.stack([cv2.cvtColor(rgb[3], cv2.COLOR_RGB2GRAY), rgb[3][:, :, 2]], axis=-1)
    sent = [("bayer_rggb8", b) for b in bayer[:3]]
    sent += [("yuv422_yuy2", yuyv), ("bayer_rggb16", bayer[3].astype(np.uint16) * 257)]
    msgs = [raw_camera_msg(e, b, 64, 48, 20 * SEC + i * SEC // 30) for i, (e, b) in enumerate(sent)]
    for msg in msgs:
        cam.publish_raw(msg)
        spin_until(node, lambda: False, 1 / 30)
    assert spin_until(node, lambda: len(cam.outputs) == 5, 30)
    assert [m.encoding for m in cam.outputs] == ["rgb8"] * 4 + ["rgb16"]
    assert [stamp(m) for m in cam.outputs] == [stamp(m) for m in msgs]
    # the node's frames are the engine's on the same RGB (a new segment at the 16-bit switch)
    decoded = [decode_image(m, "bilinear")[0] for m in msgs]
    assert not np.array_equal(decoded[0], decode_image(msgs[0], "vng")[0])
    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=1)
    expected = engine_frames(engine, decoded[:4]) + engine_frames(engine, decoded[4:])
    for msg, exp in zip(cam.outputs, expected, strict=True):
        out = image_to_numpy(msg)
        assert out.dtype == exp.dtype and np.abs(out.astype(int) - exp).max() <= 1


def test_bad_inputs_are_skipped_counted_and_the_node_carries_on(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, future_frames=0, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    good = frames(1)[0]

    def bad(encoding: str, h: int, w: int, step: int, nbytes: int) -> Image:
        msg = Image(height=h, width=w, encoding=encoding, step=step)
        msg.data = bytes(nbytes)
        msg.header.stamp.sec = 7
        return msg

    for msg in (
        bad("nv24", 48, 64, 64, 48 * 64 * 3),  # needs ROS cv_bridge (absent here)
        bad("32FC1", 48, 64, 256, 48 * 256),  # unsupported
        bad("rgb8", 48, 64, 192, 100),  # data shorter than step * height
        bad("rgb8", 0, 0, 0, 0),  # zero size
        bad("rgb8", 48, 64, 10, 48 * 192),  # step smaller than a row
    ):
        cam.publish_raw(msg)
    small = cv2.resize(good, (31, 17))  # odd size and a resolution switch
    cam.publish(good, "rgb8", 10 * SEC)
    cam.publish(small, "rgb8", 10 * SEC + SEC // 30)
    msg = cam.publish(small, "rgb8", 3 * SEC)  # stamp jumps back (a looping bag)
    msg.header.stamp.nanosec = 10_000_000  # no camera_info with this stamp: the nearest is used
    cam.publish_raw(msg)
    assert spin_until(node, lambda: len(cam.outputs) == 4 and len(cam.infos) == 4, 30)
    msg.header.stamp.nanosec = 20_000_000  # a calibration made at another resolution
    cam.info_pub.publish(CameraInfo(header=msg.header, width=640, height=480))
    cam.publish_raw(msg)
    stamps = [10 * SEC, 10 * SEC + SEC // 30, 3 * SEC, 3 * SEC + 10_000_000, 3 * SEC + 20_000_000]
    assert spin_until(node, lambda: len(cam.outputs) == 5 and len(cam.infos) == 5, 30)
    assert [(m.width, m.height) for m in cam.outputs] == [(64, 48)] + [(31, 17)] * 4
    assert [stamp(m) for m in cam.outputs] == stamps
    assert [stamp(i) for i in cam.infos] == stamps  # camera_info follows each output
    assert [i.width for i in cam.infos] == [64, 31, 31, 31, 640]  # not fitted to the image
    expected = {
        "rejected.encoding": 2,
        "rejected.malformed": 2,
        "rejected.empty": 1,
        "resets.resolution": 1,
        "resets.backwards": 1,
        "camera_info_unmatched": 1,
        "camera_info_size_mismatch": 1,
        "frames published": 5,
    }
    assert spin_until(node, lambda: all(diag.count(k) == v for k, v in expected.items()), 10), (
        diag.values
    )
    rc, out = proc.stop()
    assert rc == 0, out
    # the README's promise for a resolution switch and a looping bag: logged as well as counted
    assert "image_raw restarted: the image size changed" in out, out
    assert "image_raw restarted: a stamp went back (a looping bag?)" in out, out
    # counted only, it was: an image stamped apart from every camera_info
    assert "has no message of this image's stamp: the one nearest it is republished" in out, out


def test_a_camera_info_sent_just_after_its_image_still_goes_with_it(ros, tiny_recurrent_checkpoint):
    """image_transport's CameraPublisher sends the image, then its camera_info. With no
    look-ahead the tiny network finished first, and each output went out with the previous
    frame's calibration (the first with none): a zoom lens' SLAM got the wrong intrinsics."""
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, future_frames=0, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    stamps = [20 * SEC + i * SEC // 30 for i in range(4)]
    for i, (f, s) in enumerate(zip(frames(4), stamps, strict=True)):
        msg = numpy_to_image(f, "rgb8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(s, SEC)
        cam.publish_raw(msg)
        time.sleep(0.03)  # a driver's camera_info, a little behind its image
        info = CameraInfo(header=msg.header, width=64, height=48)
        info.k = [50.0 + i, 0.0, 32.0, 0.0, 50.0 + i, 24.0, 0.0, 0.0, 1.0]  # zooming
        cam.info_pub.publish(info)
        spin_until(node, lambda: False, 0.2)
    assert spin_until(node, lambda: len(cam.outputs) == 4 and len(cam.infos) == 4, 30)
    assert [stamp(i) for i in cam.infos] == stamps
    assert [i.k[0] for i in cam.infos] == [50.0, 51.0, 52.0, 53.0]
    assert spin_until(node, lambda: diag.count("frames published") == 4, 10), diag.values
    assert diag.count("camera_info_unmatched") == 0, diag.values


def test_compressed_in_and_out_with_corrupt_jpeg(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(
        tiny_recurrent_checkpoint,
        future_frames=0,
        input_transport="compressed",
        publish_compressed=True,
        resize=0.5,
        queue_policy="all",  # latest would (rightly) drop the first of two back-to-back frames
        **RELIABLE_IN,
    )
    pub = node.create_publisher(CompressedImage, "image_raw/compressed", qos(True))
    cam = Camera(node)
    got: list[CompressedImage] = []
    node.create_subscription(
        CompressedImage, "deblurred/image_raw/compressed", got.append, qos(True)
    )
    diag = Diagnostics(node)
    assert spin_until(node, lambda: pub.get_subscription_count() > 0 or not proc.alive(), 40)
    spin_until(node, lambda: False, 0.5)

    def jpeg(data: bytes, sec: int) -> CompressedImage:
        msg = CompressedImage(format="jpeg", data=data)
        msg.header.stamp.sec, msg.header.frame_id = sec, "cam"
        return msg

    _, good = cv2.imencode(".jpg", frames(1)[0])
    pub.publish(jpeg(b"\xff\xd8 not a jpeg", 1))
    pub.publish(jpeg(b"", 2))
    k = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    cam.info_pub.publish(CameraInfo(header=jpeg(b"", 3).header, width=64, height=48, k=k))
    spin_until(node, lambda: False, 0.3)
    pub.publish(jpeg(good.tobytes(), 3))
    assert spin_until(node, lambda: cam.outputs and got and cam.infos, 20), diag.values
    out = cam.outputs[0]
    assert (out.encoding, out.width, out.height, stamp(out)) == ("bgr8", 32, 24, 3 * SEC)
    assert cv2.imdecode(np.frombuffer(bytes(got[0].data), np.uint8), 1).shape == (24, 32, 3)
    info = cam.infos[0]
    assert (info.width, info.height, info.k[0], info.k[2], info.k[5]) == (32, 24, 25, 16, 12)
    assert spin_until(node, lambda: diag.count("rejected.corrupt_compressed") == 2, 10)


def test_compressed_depth_is_refused_as_depth_not_as_corrupt_data():
    """A valid '16UC1; compressedDepth png' frame (a depth header before the PNG) was counted
    corrupt_compressed, "no PNG, JPEG or TIFF header"; a raw depth image is refused as an
    encoding with no colour."""
    from sarn_ros.ros.node import intake_fault

    png = cv2.imencode(".png", np.zeros((8, 8), np.uint16))[1].tobytes()
    for fmt in ("16UC1; compressedDepth png", "32FC1; compressedDepth rvl"):
        reason, detail = intake_fault(CompressedImage(format=fmt, data=bytes(12) + png))
        assert reason == "encoding" and "depth, no colour to deblur" in detail, fmt
    assert intake_fault(CompressedImage(format="mono16; png compressed mono16", data=png)) is None


def test_live_parameters_change_or_are_rejected(ros, tiny_recurrent_checkpoint):
    node, start = ros
    # no idle flush (max_gap_s 0), so the held look-ahead frames stay visible; given as
    # `-p max_gap_s:=0`, an integer, which the node refused at start-up for a double
    proc = start(tiny_recurrent_checkpoint, max_gap_s=0, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    for i, f in enumerate(frames(2)):
        cam.publish(f, "rgb8", 20 * SEC + i * SEC // 30)
    spin_until(node, lambda: False, 2.0)
    assert cam.outputs == []  # future_frames=2: both frames wait for look-ahead
    assert spin_until(node, lambda: diag.values.get("frames pending") == "2", 10), diag.values

    ok = set_param(
        node, "future_frames", ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=0)
    )
    assert ok.successful, ok.reason
    cam.publish(frames(3)[2], "rgb8", 20 * SEC + 2 * SEC // 30)
    # Changing the look-ahead ends the segment: the two held frames come out, then the new one.
    assert spin_until(node, lambda: len(cam.outputs) == 3, 15)
    assert [stamp(m) for m in cam.outputs] == [20 * SEC + i * SEC // 30 for i in range(3)]
    assert spin_until(node, lambda: diag.values.get("future_frames") == "0", 10)
    debayer = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="edge_aware")
    assert set_param(node, "debayer", debayer).successful  # live
    zero = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=0)
    result = set_param(node, "max_gap_s", zero)  # `ros2 param set ... max_gap_s 0`: a double
    assert result.successful, result.reason
    result = set_param(node, "use_sim_time", zero)  # rclpy's own, a bool: refused, no crash
    assert not result.successful and "type" in result.reason
    result = set_param(node, "debayr", debayer)  # `ros2 param set` of a misspelt name
    assert not result.successful and result.reason.endswith("['debayr'] (did you mean 'debayer'?)")

    for name, value in (
        ("future_frames", ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=5)),
        ("queue_policy", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="bogus")),
        ("debayer", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="nearest")),
        ("weights", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="other.pth")),
        ("self_ensemble", ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=2)),
        ("precision", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="fp16")),
    ):
        result = set_param(node, name, value)
        assert not result.successful and result.reason, name


def test_a_camera_sending_only_refused_frames_gets_its_held_frames_out(
    ros, tiny_recurrent_checkpoint
):
    """Held look-ahead comes out once a camera is quiet for max_gap_s; a camera that went on
    sending frames the worker refused once taken (too large since a live max_megapixels) was
    never quiet: its last good frames waited until it stopped sending."""
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, max_gap_s=0.5, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    src = frames(10, 120, 160)  # 0.019 MP
    stamps = [40 * SEC + i * SEC // 10 for i in range(10)]
    play(node, cam, src[:3], stamps[:3], "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 1, 20)  # two held for look-ahead
    small = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.01)
    assert set_param(node, "max_megapixels", small).successful
    for f, s in zip(src[3:], stamps[3:], strict=True):  # 1.75 s, 0.25 s apart
        cam.publish(f, "rgb8", s)
        spin_until(node, lambda: False, 0.25)
    assert [stamp(m) for m in cam.outputs] == stamps[:3]  # while refused frames still came
    assert spin_until(node, lambda: diag.count("rejected.too_large") == 7, 10), diag.values


def test_fp16_asked_on_a_cpu_reads_fp32_as_it_runs(ros, tiny_recurrent_checkpoint):
    """The node ran fp32 and `ros2 param get precision` said fp16."""
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, precision="fp16")
    wait_connected(node, [Camera(node)], proc)  # the engine is made: its topics are up
    client = node.create_client(GetParameters, "/sarn_deblur/get_parameters")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(GetParameters.Request(names=["precision"]))
    assert spin_until(node, future.done, 10)
    assert [v.string_value for v in future.result().values] == ["fp32"]


def test_queue_policy_all_set_live_on_a_best_effort_intake_is_warned(
    ros, tiny_recurrent_checkpoint
):
    """The warning of intake_advice, live: a node started under latest (best effort, where
    drops are the point) says nothing; set to all, it names the topic and what to restart
    with."""
    node, start = ros
    proc = start(tiny_recurrent_checkpoint)
    wait_connected(node, [Camera(node)], proc)
    policy = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="all")
    assert set_param(node, "queue_policy", policy).successful
    log = proc.stop()[1]
    assert log.count("may lose frames") == 1, log
    assert "queue_policy all: /image_raw may lose frames before the node sees them" in log
    assert "qos.subscription.reliability:=reliable qos.subscription.depth:=100" in log
    # the topic's own override is the short one: the global depth would not change it
    short = {"qos_overrides./image_raw.subscription.depth": 5}
    proc = start(tiny_recurrent_checkpoint, queue_policy="all", **RELIABLE_IN, **short)
    wait_connected(node, [Camera(node)], proc)
    log = proc.stop()[1]
    assert "start the node with qos_overrides./image_raw.subscription.depth:=100\n" in log, log


def test_an_exported_onnx_graph_serves_as_weights(
    ros, tiny_recurrent_checkpoint, tiny_recurrent_onnx
):
    """weights: <file>.onnx runs the same frames through onnxruntime; the precision it cannot
    run is refused live, not left to fail in the worker."""
    node, start = ros
    proc = start(tiny_recurrent_onnx, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    src = frames(6)
    stamps = [30 * SEC + i * SEC // 30 for i in range(6)]
    play(node, cam, src, stamps, "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 6, 30)
    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=2)
    for msg, exp in zip(cam.outputs, engine_frames(engine, src), strict=True):
        assert np.abs(image_to_numpy(msg).astype(int) - exp).max() <= 1
    assert spin_until(node, lambda: diag.values.get("deformable conv") == "onnxruntime", 10)
    bf16 = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="bf16")
    result = set_param(node, "precision", bf16)
    assert not result.successful and "fp32" in result.reason
    fp32 = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="fp32")
    assert set_param(node, "precision", fp32).successful


def test_reset_service_restarts_the_state_at_the_next_frame(ros, tiny_recurrent_checkpoint):
    node, start = ros
    # no idle flush (max_gap_s 0): the held look-ahead comes out only when the reset ends it
    proc = start(tiny_recurrent_checkpoint, max_gap_s=0.0, queue_policy="all", **RELIABLE_IN)
    cam = Camera(node)
    diag = Diagnostics(node)
    wait_connected(node, [cam], proc)
    client = node.create_client(Trigger, "/sarn_deblur/reset")
    assert client.wait_for_service(timeout_sec=10)

    src = frames(7, seed=3)
    stamps = [40 * SEC + i * SEC // 30 for i in range(7)]
    play(node, cam, src[:3], stamps[:3], "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 1, 15)  # two wait for look-ahead
    future = client.call_async(Trigger.Request())
    assert spin_until(node, future.done, 10)
    assert future.result().success, future.result().message
    spin_until(node, lambda: False, 1.0)
    assert len(cam.outputs) == 1  # nothing happens until the camera's next frame
    play(node, cam, src[3:], stamps[3:], "rgb8")
    # frame 3 ends the old segment (1 and 2 come out) and starts afresh; 5 and 6 wait
    assert spin_until(node, lambda: len(cam.outputs) == 5, 15)
    assert [stamp(m) for m in cam.outputs] == stamps[:5]
    assert spin_until(node, lambda: diag.count("resets.explicit") == 1, 10), diag.values

    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=2)
    # a segment ending at frame 3, then a fresh one whose last two frames are still held
    expected = engine_frames(engine, src[:3]) + engine_frames(engine, src[3:])[:2]
    carried = engine_frames(engine, src)
    got = [image_to_numpy(m) for m in cam.outputs]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    assert not np.array_equal(got[4], carried[4])  # the state did restart


def test_a_remapped_image_topic_takes_its_camera_info_along(ros, tiny_recurrent_checkpoint):
    """As image_transport names them: remapping image_raw alone moved the image but left the
    node on /camera_info (and, with compressed input, on /image_raw/compressed: nothing came);
    the same on the output side."""
    node, start = ros
    remaps = {"image_raw": "/cam/image_color", "deblurred/image_raw": "/sharp/image_color"}
    proc = start(tiny_recurrent_checkpoint, remaps, future_frames=0, **RELIABLE)
    cam = Camera(node, image="/cam/image_color", output="/sharp/image_color")
    wait_connected(node, [cam], proc)
    assert spin_until(node, lambda: cam.info_pub.get_subscription_count() > 0, 20), proc.stop()
    src = frames(3)
    play(node, cam, src, [SEC + i * SEC // 30 for i in range(3)], "rgb8")
    assert spin_until(node, lambda: len(cam.outputs) == 3 and len(cam.infos) == 3, 30), proc.stop()
    assert [stamp(m) for m in cam.infos] == [stamp(m) for m in cam.outputs]


def test_a_camera_info_or_compressed_remap_of_its_own_is_kept(ros):
    from sarn_ros.ros.node import transport_topics

    args = ["--ros-args", "-r", "__ns:=/robot", "-r", "image_raw:=/cam/image_color"]
    node = rclpy.create_node("remapped", cli_args=args)
    try:
        assert transport_topics(node, "image_raw") == (
            "/cam/camera_info",
            "/cam/image_color/compressed",
        )
        assert transport_topics(node, "left/deblurred/image_raw") == (
            "/robot/left/deblurred/camera_info",
            "/robot/left/deblurred/image_raw/compressed",
        )
    finally:
        node.destroy_node()
    args += ["-r", "camera_info:=/calib/info", "-r", "image_raw/compressed:=/jpeg"]
    node = rclpy.create_node("remapped", cli_args=args)
    try:
        assert transport_topics(node, "image_raw") == ("camera_info", "image_raw/compressed")
        assert node.resolve_topic_name("camera_info") == "/calib/info"
    finally:
        node.destroy_node()


def test_two_cameras_share_one_node_with_separate_state(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(
        tiny_recurrent_checkpoint,
        cameras="[left, right]",
        queue_policy="all",
        **RELIABLE_IN,
        future_frames=1,
    )
    left, right = Camera(node, "left"), Camera(node, "right")
    wait_connected(node, [left, right], proc)
    lf, rf = frames(45, seed=1), frames(4, seed=2)
    for i in range(45):  # right stops after 4 frames, left streams on for 1.4 s (> max_gap_s)
        left.publish(lf[i], "rgb8", 30 * SEC + i * SEC // 30, "left")
        if i < 4:
            right.publish(rf[i], "rgb8", 30 * SEC + i * SEC // 30, "right")
        spin_until(node, lambda: False, 1 / 30)
    # right's last frame, held for look-ahead, came out while left was still streaming
    assert len(right.outputs) == 4
    assert spin_until(node, lambda: len(left.outputs) == 45, 30)
    assert {m.header.frame_id for m in left.outputs} == {"left"}
    assert {m.header.frame_id for m in right.outputs} == {"right"}
    for cam, src in ((left, lf), (right, rf)):  # each stream equals its own engine
        engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=1)
        exp = [o.image for i, f in enumerate(src) for o in engine.push(f, 30 * SEC + i * SEC // 30)]
        exp += [o.image for o in engine.flush()]
        for msg, e in zip(cam.outputs, exp, strict=True):
            assert np.abs(image_to_numpy(msg).astype(int) - e).max() <= 1
    # the topics as resolved, where namespaces and remaps led (it named 'left, right')
    assert "deblurring /left/image_raw, /right/image_raw with" in proc.stop()[1]


def test_each_camera_without_camera_info_is_named(ros, tiny_recurrent_checkpoint):
    """rclpy throttles a warning per call site: with two cameras missing camera_info, only the
    first one's was named, and the other seemed fine."""
    node, start = ros
    proc = start(
        tiny_recurrent_checkpoint,
        cameras="[left, right]",
        future_frames=0,
        queue_policy="all",
        **RELIABLE_IN,
    )
    left, right = Camera(node, "left"), Camera(node, "right")
    wait_connected(node, [left, right], proc)
    for i, f in enumerate(frames(3, seed=4)):
        for cam in (left, right):
            msg = numpy_to_image(f, "rgb8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = 70 + i, 0
            cam.publish_raw(msg)  # no camera_info beside it
        spin_until(node, lambda: False, 1 / 30)
    ok = spin_until(node, lambda: len(left.outputs) == len(right.outputs) == 3, 30)
    log = proc.stop()[1]
    assert ok, (len(left.outputs), len(right.outputs), log)
    for cam in ("left", "right"):
        assert log.count(f"no camera_info received on /{cam}/camera_info yet") == 1, log
    assert left.infos == right.infos == []


def test_overloaded_stereo_cameras_keep_their_pairs(ros, tiny_recurrent_checkpoint):
    """Two synchronised cameras (equal stamps, the right frame 1/2 period after the left, as
    from two driver processes) faster than the node: under queue_policy latest the frames it
    drops are dropped in pairs, so stereo SLAM can pair what comes out. Taking each camera's
    newest frame instead left a quarter of them unpaired (17 of 24 paired, twice; a left frame
    newer than the right one)."""
    node, start = ros
    h, w = 240, 320
    proc = start(tiny_recurrent_checkpoint, cameras="[left, right]", future_frames=0)
    left, right = Camera(node, "left", reliable=False), Camera(node, "right", reliable=False)
    wait_connected(node, [left, right], proc)
    src = frames(2, h, w)
    left.publish(src[0], "rgb8", 50 * SEC, "left")  # warm-up
    assert spin_until(node, lambda: len(left.outputs) == 1, 20)
    left.publish(src[1], "rgb8", 50 * SEC + SEC // 30, "left")  # the model's time
    t0 = time.monotonic()
    assert spin_until(node, lambda: len(left.outputs) == 2, 20)
    # four frames per round, twice overloaded even where the model time above was measured
    # twice too long (under load the cameras came no faster than the node: nothing dropped)
    period = max(time.monotonic() - t0, 0.02) / 2
    for i in range(30):
        s = 51 * SEC + i * SEC // 30
        left.publish(src[i % 2], "rgb8", s, "left")
        spin_until(node, lambda: False, period / 2)
        right.publish(src[i % 2], "rgb8", s, "right")
        spin_until(node, lambda: False, period / 2)
    spin_until(node, lambda: False, 3.0)
    got = {
        cam: {stamp(m) for m in c.outputs if stamp(m) >= 51 * SEC}
        for cam, c in (("left", left), ("right", right))
    }
    assert 0 < len(got["left"]) < 30, "the node must have dropped frames"
    paired = got["left"] & got["right"]
    # the first left frame may come out alone (the worker, idle, takes it before its pair)
    assert len(paired) >= len(got["left"] | got["right"]) - 2, got
    assert proc.alive()


def test_overload_latest_bounds_latency_all_loses_nothing(ros, tiny_recurrent_checkpoint):
    node, start = ros
    h, w = 240, 320  # slow enough on one thread that a 4x faster camera overloads the node
    proc = start(tiny_recurrent_checkpoint, future_frames=0)
    cam = Camera(node, reliable=False)
    wait_connected(node, [cam], proc)
    src = frames(2, h, w)
    cam.publish(src[0], "rgb8", 40 * SEC)  # warm-up; measure the model time
    t0 = time.monotonic()
    assert spin_until(node, lambda: len(cam.outputs) == 1, 20)
    period = max(time.monotonic() - t0, 0.02) / 4
    sent = {}
    for i in range(40):
        s = 41 * SEC + i * SEC // 100
        cam.publish(src[i % 2], "rgb8", s)
        sent[s] = time.monotonic()
        spin_until(node, lambda: False, period)
    spin_until(node, lambda: False, 3.0)
    got = [stamp(m) for m in cam.outputs[1:]]
    assert 0 < len(got) < 40, "latest policy must drop frames under overload"
    assert got == sorted(got)
    worst = max(cam.arrival[s] - sent[s] for s in got)
    assert worst < 2.0, f"latency grew to {worst:.2f} s"
    assert proc.alive()


def test_all_policy_keeps_every_frame_in_order(ros, tiny_recurrent_checkpoint):
    node, start = ros
    # reliable intake through rclpy's standard QoS override parameters this time
    overrides = {
        "qos_overrides./image_raw.subscription.reliability": "reliable",
        "qos_overrides./image_raw.subscription.depth": 100,
    }
    proc = start(tiny_recurrent_checkpoint, queue_policy="all", future_frames=1, **overrides)
    cam = Camera(node)
    wait_connected(node, [cam], proc)
    (intake,) = node.get_subscriptions_info_by_topic("/image_raw")
    assert intake.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    # the image's override only: the camera_info subscription shared its profile object and
    # took the override too
    (info_intake,) = node.get_subscriptions_info_by_topic("/camera_info")
    assert info_intake.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    src = frames(2, 120, 160)
    stamps = [50 * SEC + i * SEC // 100 for i in range(30)]
    for i, s in enumerate(stamps):
        cam.publish(src[i % 2], "rgb8", s)
        spin_until(node, lambda: False, 0.005)
    assert spin_until(node, lambda: len(cam.outputs) == 30, 60)
    assert [stamp(m) for m in cam.outputs] == stamps
    assert "may lose frames" not in proc.stop()[1]  # the override's depth is the one used


def test_a_qos_override_of_the_output_image_leaves_its_camera_info(ros, tiny_recurrent_checkpoint):
    """`qos_overrides./deblurred/image_raw.publisher.reliability: best_effort` (to spare a
    link) made deblurred/camera_info best effort too, so rviz, which reads it reliably, got
    none; `ros2 param get` showed an override nobody set."""
    node, start = ros
    override = {"qos_overrides./deblurred/image_raw.publisher.reliability": "best_effort"}
    proc = start(tiny_recurrent_checkpoint, publish_compressed=True, **override)
    topics = ("/deblurred/image_raw", "/deblurred/camera_info", "/deblurred/image_raw/compressed")
    assert spin_until(
        node, lambda: all(node.get_publishers_info_by_topic(t) for t in topics), 40
    ), proc.stop()[1]
    offered = {t: node.get_publishers_info_by_topic(t)[0].qos_profile.reliability for t in topics}
    assert offered == {
        "/deblurred/image_raw": ReliabilityPolicy.BEST_EFFORT,
        "/deblurred/camera_info": ReliabilityPolicy.RELIABLE,
        "/deblurred/image_raw/compressed": ReliabilityPolicy.RELIABLE,
    }


def test_a_camera_info_latched_once_is_heard_through_a_durability_override(
    ros, tiny_recurrent_checkpoint
):
    """A driver (or a static calibration publisher) that sends camera_info once, transient
    local, before the node starts: a volatile subscription never got it, and the override that
    asks for it was not declared, so it was ignored."""
    node, start = ros
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    info_pub = node.create_publisher(CameraInfo, "camera_info", latched)
    info = CameraInfo(width=64, height=48)
    info.header.stamp.sec = 1
    info.k = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    info_pub.publish(info)
    override = {"qos_overrides./camera_info.subscription.durability": "transient_local"}
    # as README gives it: no reliability override (best effort heard no latched message)
    proc = start(tiny_recurrent_checkpoint, future_frames=0, **override)
    cam = Camera(node)  # its own camera_info publisher stays silent
    wait_connected(node, [cam], proc)
    (info_intake,) = node.get_subscriptions_info_by_topic("/camera_info")
    assert info_intake.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert info_intake.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    (image_intake,) = node.get_subscriptions_info_by_topic("/image_raw")  # its own profile
    assert image_intake.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    stamps = [70 * SEC + i * SEC // 10 for i in range(3)]
    for s in stamps:
        msg = numpy_to_image(frames(1)[0], "rgb8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(s, SEC)
        cam.publish_raw(msg)
        spin_until(node, lambda: False, 0.1)
    assert spin_until(node, lambda: len(cam.infos) == 3, 30), proc.stop()[1]
    # the one calibration, with each image's header
    assert [stamp(i) for i in cam.infos] == stamps
    assert {tuple(i.k) for i in cam.infos} == {tuple(info.k)}


def test_a_misspelt_parameter_is_named_with_the_one_meant(ros, tiny_recurrent_checkpoint):
    """rclpy ignores a parameter the node does not declare: `future_frame:=0` ran at 2 without
    a word. One far from every name (another node's, from a shared file) is left unsaid."""
    node, start = ros
    typos = {"future_frame": 0, "qos.subscriber.reliability": "reliable", "exposure_ms": 5}
    proc = start(tiny_recurrent_checkpoint, **typos)
    cam = Camera(node)
    wait_connected(node, [cam], proc)
    rc, out = proc.stop()
    assert rc == 0, out
    assert "parameter 'future_frame' is not one of this node's and is ignored: did you mean " in out
    assert "'future_frames'?" in out
    assert "'qos.subscriber.reliability' is not one of this node's" in out
    assert "did you mean 'qos.subscription.reliability'?" in out
    assert "exposure_ms" not in out


def test_720p_best_effort_frames_arrive_through_the_node(ros, tiny_recurrent_checkpoint):
    node, start = ros
    proc = start(tiny_recurrent_checkpoint, future_frames=0)
    cam = Camera(node, reliable=False)
    wait_connected(node, [cam], proc)
    src = frames(1, 720, 1280)[0]
    for i in range(3):
        cam.publish(src, "rgb8", 60 * SEC + i * SEC // 10)
        assert spin_until(node, lambda n=i: len(cam.outputs) > n, 30), f"720p frame {i} lost"
    assert (cam.outputs[0].width, cam.outputs[0].height) == (1280, 720)
    rc, out = proc.stop(signal.SIGTERM)  # as systemd or docker stop would
    assert rc == 0, out


def test_a_stop_in_the_middle_of_a_long_frame_is_prompt_and_clean(ros, tiny_recurrent_checkpoint):
    """Ctrl-C waited up to 30 s for the frame in progress (`ros2 launch` SIGKILLs after 10 s)
    and a second Ctrl-C during that wait aborted the node (SIGABRT). A 1080p frame with an
    8-member self-ensemble takes the tiny model over 30 s on one thread."""
    node, start = ros
    # a second signal ends the process at once, leaving its DDS participant to time out: last
    for second in (None, signal.SIGINT):
        proc = start(tiny_recurrent_checkpoint, future_frames=0, self_ensemble=8, **RELIABLE)
        cam = Camera(node)
        diag = Diagnostics(node)
        wait_connected(node, [cam], proc)
        cam.publish(frames(1, 1080, 1920)[0], "rgb8", 5 * SEC)
        # received (a fixed 1.5 s was at times too short for the 6 MB message), then taken
        assert spin_until(node, lambda d=diag: d.values.get("frames pending") == "1", 20)
        spin_until(node, lambda: False, 0.5)  # the worker is in the frame
        began = time.monotonic()
        proc.proc.send_signal(signal.SIGINT)
        if second is not None:
            time.sleep(0.3)
            proc.proc.send_signal(second)
        rc, out = proc.stop()
        assert rc == 0 and time.monotonic() - began < 5, (second, rc, out)
        assert "Traceback" not in out and "terminate called" not in out, out
        if second is None:
            assert "stopped in the middle of a frame: that frame is dropped" in out, out


def test_a_second_signal_while_an_idle_node_winds_down_is_a_stop(ros, tiny_recurrent_checkpoint):
    """Python's teardown (about 1 s of PyTorch's) resets the handlers it installed: a second
    Ctrl-C or SIGTERM in it ended the process with -2 or -15, which `ros2 launch` reports as a
    crash."""
    node, start = ros
    for second in (signal.SIGINT, signal.SIGTERM):
        proc = start(tiny_recurrent_checkpoint)
        cam = Camera(node)
        wait_connected(node, [cam], proc)
        proc.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        while proc.alive() and time.monotonic() < deadline:  # one lands in every phase
            time.sleep(0.05)  # of the stop: the node's, then the interpreter's teardown
            with contextlib.suppress(ProcessLookupError):
                proc.proc.send_signal(second)
        rc, out = proc.stop()
        assert rc == 0 and "Traceback" not in out, (second, rc, out)


def test_startup_errors_exit_with_one_line(
    tmp_path, ros_domain, more_domains, tiny_recurrent_checkpoint
):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    weights = f"weights:={tiny_recurrent_checkpoint}"
    cases = {
        "missing weights": [f"weights:={tmp_path / 'nope.pth'}"],
        "corrupt weights": [f"weights:={corrupt}"],
        "out of range": [weights, "future_frames:=7"],
        "bad choice": [weights, "queue_policy:=newest"],
        "bad ensemble": [weights, "self_ensemble:=3"],
        "bad camera name": [weights, "cameras:=[left, front-left]"],
        "one topic twice": [weights, "cameras:=[~, sarn_deblur]"],
        "no camera": [weights, "cameras:=[]"],
    }
    if not torch.cuda.is_available():
        cases["no CUDA"] = [weights, "device:=cuda"]
    args = {case: [a for p in params for a in ("-p", p)] for case, params in cases.items()}
    args["missing params file"] = ["--params-file", str(tmp_path / "nope.yaml")]
    # beside a params file giving them, rcl drops a value it reads as a string or an untyped
    # list without a word, and the node ran on the file's
    for case, rule in (("typo", "sarn_deblur:max_gap_s:=0,5"), ("no camera, file", "cameras:=[]")):
        args[case] = ["--params-file", CONFIG, "-p", weights, "-p", rule]
    procs = {  # started together: each spends seconds importing torch before it fails
        case: subprocess.Popen(
            [*node_command(), "--ros-args", *a],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # each on its own domain: the test is about messages, not about discovery; the
            # fault handler prints Python's stacks if a hung process gets SIGABRT below
            env={**os.environ, "ROS_DOMAIN_ID": str(more_domains()), "PYTHONFAULTHANDLER": "1"},
        )
        for case, a in args.items()
    }
    errors = {}
    for case, proc in procs.items():
        try:
            _, stderr = errors[case] = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            try:
                stacks = proc.communicate(timeout=30)[1]
            except subprocess.TimeoutExpired:
                proc.kill()
                stacks = proc.communicate()[1]
            pytest.fail(f"{case}: no exit in 120 s; stderr:\n{stacks}")
        assert proc.returncode != 0, case
        assert "Traceback" not in stderr, case
        # rcl logs its own [ERROR] line for arguments it cannot parse
        lines = [x for x in stderr.strip().splitlines() if "[rcl]" not in x]
        assert len(lines) == 1 and lines[0].startswith("sarn_deblur_node: error:"), (case, lines)
    assert "'front-left' is not a valid namespace" in errors["bad camera name"][1]
    assert "cameras: '~', 'sarn_deblur' lead to one input topic" in errors["one topic twice"][1]
    for case in ("no camera", "no camera, file"):
        assert (
            "cameras: an empty list gives a ROS parameter no type: [''] is the node's own"
            in errors[case][1]
        ), case
    assert errors["typo"][1].strip() == (
        "sarn_deblur_node: error: Trying to set parameter 'max_gap_s' to '0,5' of type "
        "'STRING', expecting type 'DOUBLE'"
    )


def test_param_rules_a_node_reads_and_those_rcl_would_drop():
    """Beside a params file rcl drops a `-p` value it reads as another type than the file's
    without a word: the node refuses it as rclpy refuses it alone, and no value rcl reads as
    the parameter's own type."""
    from sarn_ros.ros.params import lost_rule, param_rules

    argv = ["node", "--ros-args", "-p", "max_gap_s:=0,5", "-p", "other:resize:=half"]
    argv += ["--param", "sarn_deblur:max_gap_s:=1e3", "--", "-p", "lazy:=maybe"]
    assert param_rules(argv, "/sarn_deblur") == {"max_gap_s": "1e3"}  # not another node's
    assert param_rules(argv, "/ns/sarn_deblur") == {"max_gap_s": "0,5"}  # rcl's: /sarn_deblur
    assert lost_rule({"max_gap_s": "1e3"}) is None
    for text in ("0.5", "2", "0x10", "010", "08", ".inf", ".NaN", "-1", "+5", "1.", " 3 "):
        assert lost_rule({"max_gap_s": text}) is None, text
    for text in ("true", "False", "on", "Y"):
        assert lost_rule({"lazy": text}) is None, text
    assert lost_rule({"weights": "'123'"}) is None and lost_rule({"nope": "x"}) is None
    assert lost_rule({"cameras": "[left, right]"}) is None
    for name, text, got, expected in (
        ("lazy", "maybe", "STRING", "BOOL"),
        ("lazy", "tRuE", "STRING", "BOOL"),  # rcl's bools are three spellings of each word
        ("lazy", "1", "INTEGER", "BOOL"),
        ("future_frames", "1.0", "DOUBLE", "INTEGER"),
        ("future_frames", "0o1", "STRING", "INTEGER"),  # C's strtol has no 0o
        ("future_frames", "'7'", "STRING", "INTEGER"),
        ("queue_size", "1_000", "STRING", "INTEGER"),
        ("max_gap_s", "1e400", "STRING", "DOUBLE"),  # out of a double's range
        ("weights", "123", "INTEGER", "STRING"),
        ("cameras", "left", "STRING", "STRING_ARRAY"),
    ):
        assert lost_rule({name: text}) == (
            f"Trying to set parameter '{name}' to '{text}' of type '{got}', expecting type "
            f"'{expected}'"
        ), text


@pytest.mark.parametrize(
    "text",
    [
        "tRuE",
        "TRUE",
        "Yes",
        "yES",
        "0o1",
        "08",
        "010",
        "0x10",
        "-0x10",
        "0x1p3",
        "Infinity",
        "-.inf",
        ".NaN",
        "1.5e",
        "0b1",
        "+.5",
        "5.",
        "1e400",
        "1e-400",
        "1e-310",
        "99999999999999999999",
        "0,5",
        "1_000",
        "'7'",
        "1.0",
        "-1",
    ],
)
def test_rcl_type_is_the_type_rcl_gives_a_p_rule(ros_domain, text):
    """rcl_type against rcl itself: what lost_rule refuses is what rclpy would."""
    from rclpy.context import Context
    from rclpy.node import Node

    from sarn_ros.ros.params import TYPE_NAMES, rcl_type

    ctx = Context()
    rclpy.init(args=["x", "--ros-args", "-p", f"x:={text}"], context=ctx)
    try:
        node = Node("t", context=ctx, start_parameter_services=False)
        assert node._parameter_overrides["x"].type_.name == TYPE_NAMES[rcl_type(text)]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_help_needs_no_ros():
    result = subprocess.run([*node_command(), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "future_frames" in result.stdout and "queue_policy" in result.stdout


RACING_SPIN = """
import sys
import rclpy
from sarn_ros.ros import node
def racing_spin(_node, executor=None):
    if {shut_down}:
        rclpy.shutdown()  # what rclpy's SIGINT/SIGTERM handler does mid-spin
    raise node.RCLError("failed to initialize wait set: the given context is not valid")
rclpy.spin = racing_spin
sys.exit(node.main(["sarn_deblur_node", "--ros-args", "-p", "weights:={weights}"]))
"""


@pytest.mark.parametrize("shut_down", [True, False])
def test_shutdown_race_in_spin_exits_cleanly_but_real_rcl_errors_do_not(
    shut_down, ros_domain, tiny_recurrent_checkpoint
):
    code = RACING_SPIN.format(shut_down=shut_down, weights=tiny_recurrent_checkpoint)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    if shut_down:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and "RCLError" in result.stderr


SIGNAL_AFTER_START = """
import sys
import rclpy
from sarn_ros.ros import node
built = node.DeblurNode.__init__
def then_signalled(self, *args, **kwargs):
    built(self, *args, **kwargs)
    rclpy.shutdown()  # SIGTERM just after the ready line, before spin has its executor
node.DeblurNode.__init__ = then_signalled
sys.exit(node.main(["sarn_deblur_node", "--ros-args", "-p", "weights:={weights}"]))
"""


def test_a_signal_right_after_start_up_exits_without_a_traceback(
    ros_domain, tiny_recurrent_checkpoint
):
    """rclpy.spin built its executor on the shut-down context: that raised, was taken for the
    known race, and the half-built executor's __del__ then printed a traceback."""
    code = SIGNAL_AFTER_START.format(weights=tiny_recurrent_checkpoint)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, (
        result.stderr
    )


def test_an_opencv_error_while_decoding_rejects_that_frame_only(monkeypatch):
    """OpenCV 4.5.4 (Humble's) raises cv2.error on some pathological frames (a 1x1 bgr8 image):
    that frame is counted as malformed, not as an internal error that resets every camera."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    def broken(array, encoding):
        raise cv2.error("OpenCV(4.5.4) matrix.cpp:466: error: (-215:Assertion failed)\n")

    monkeypatch.setattr(node_module.conv, "to_rgb", broken)
    rejected = []
    fake = SimpleNamespace(
        debayer="vng", resize=1.0, max_megapixels=8.3, reject=lambda *why: rejected.append(why[:2])
    )
    msg = Image(height=1, width=1, encoding="bgr8", step=3, data=bytes(3))
    assert node_module.DeblurNode.prepare(fake, None, msg, 0.0) is None
    assert rejected == [
        ("malformed", "OpenCV(4.5.4) matrix.cpp:466: error: (-215:Assertion failed)")
    ]


def test_a_size_change_that_resize_hides_still_restarts_the_state():
    """At resize 0.5, 96x64 and 97x65 frames both become 48x32: the engine saw one size and
    carried the state on across a change of the camera's image."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    resets = []
    engine = SimpleNamespace(reset=lambda stream, reason: resets.append((stream, reason)))
    fake = SimpleNamespace(debayer="vng", resize=0.5, engine=engine, reject=None, max_megapixels=1)
    cam = SimpleNamespace(index=0, stream="/left", input_size=None)

    def prepared(w: int, h: int) -> tuple[int, ...]:
        msg = numpy_to_image(np.zeros((h, w, 3), np.uint8), "rgb8")
        return node_module.DeblurNode.prepare(fake, cam, msg, 0.0)[1].shape

    assert [prepared(96, 64), prepared(96, 64), prepared(97, 65)] == [(32, 48, 3)] * 3
    assert resets == [("/left", "resolution")]
    fake.resize = 1.0  # the engine sees every size change itself
    assert prepared(96, 64) == (64, 96, 3) and len(resets) == 1


def test_a_converter_fault_loses_that_frame_not_the_other_cameras_state():
    """The worker's catch-all resets every camera; a fault while converting one camera's frame
    (an exception no decoder anticipated) must be rejected before it gets there."""
    import threading
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    pushed, resets, rejected = [], [], []

    def prepare(cam, msg, received):
        if cam == "depth":
            raise KeyError("unexpected")
        return (cam, np.zeros((2, 2, 3), np.uint8), 1, None)

    fake = SimpleNamespace(
        untake=lambda refused: None,  # the quiet clock: its own tests
        prepare=prepare,
        engine=SimpleNamespace(
            push_many=lambda items: pushed.extend(items) or [],
            reset=lambda *a: resets.append(a),
            stats=lambda: {"frames_in": len(pushed), "frames_lost": 0},
        ),
        lock=threading.Condition(),
        waits_ms=[],
        inference_ms=[],
        overhead_ms=[],
        publish=lambda out: None,
        reject=lambda *why: rejected.append(why[:2]),
    )
    queued = [(cam, node_module.Queued("frame", 0.0, None)) for cam in ("left", "depth")]
    node_module.DeblurNode.process(fake, queued)
    assert [item[0] for item in pushed] == ["left"] and not resets
    assert rejected == [("decode_error", "KeyError: 'unexpected'")]


def test_the_engines_own_warnings_go_through_the_ros_logger():
    """They went to bare stderr, past /rosout and the launch log."""
    import logging

    from sarn_ros.ros.node import RosLogHandler

    said: list[tuple[str, str]] = []

    class Logger:
        def __getattr__(self, level: str):
            return lambda text: said.append((level, text))

    log = logging.getLogger("sarn_ros.test_only")
    handler = RosLogHandler(Logger())
    log.addHandler(handler)
    try:
        log.warning("fp16 is not supported on CPU")
        log.error("compile failed")
    finally:
        log.removeHandler(handler)
    assert said == [("warning", "fp16 is not supported on CPU"), ("error", "compile failed")]


def test_warnings_are_throttled_per_reason_and_camera(monkeypatch):
    """rclpy throttles per call site: one reason at 30 Hz would hide all the others."""
    import threading
    from collections import Counter
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    logged = []
    fake = SimpleNamespace(
        lock=threading.Condition(),
        counts=Counter(),
        window=Counter(),
        warned={},
        get_logger=lambda: SimpleNamespace(warning=logged.append),
    )
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    fake.due = lambda key: node_module.DeblurNode.due(fake, key)
    left, right = (SimpleNamespace(stream=t, input_topic=t) for t in ("/l/image", "/r/image"))
    for reason, cam in (
        ("encoding", left),
        ("encoding", left),
        ("malformed", left),
        ("encoding", right),  # another camera's fault is not hidden by the first's
        ("encoding", left),
        ("decode_error", right),
    ):
        node_module.DeblurNode.reject(fake, reason, "detail", cam)
    assert logged == [
        "skipping frame of /l/image (encoding): detail",
        "skipping frame of /l/image (malformed): detail",
        "skipping frame of /r/image (encoding): detail",
        "skipping frame of /r/image (decode_error): detail",
    ]
    assert fake.counts["rejected.encoding"] == 4


def intake(policy: str, max_gap_s: float | None = 0.5, queue_size: int = 100):
    """The node's intake (enqueue) and a camera, without ROS."""
    import threading
    from collections import Counter, deque
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    fake = SimpleNamespace(
        lock=threading.Condition(),
        counts=Counter(),
        window=Counter(),
        lazy=False,
        queue_policy=policy,
        queue_size=queue_size,
        max_gap_s=max_gap_s,
        latest_depth=1,  # one camera
        warned={},
        said=[],  # the warnings logged
    )
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    fake.reject = lambda reason, detail, cam: fake.count(f"rejected.{reason}")
    fake.due = lambda key: node_module.DeblurNode.due(fake, key)
    fake.get_logger = lambda: SimpleNamespace(warning=fake.said.append)
    cam = SimpleNamespace(
        stream="cam",
        input_topic="/cam/image_raw",
        said=fake.said,
        queue=deque(),
        last_stamp=None,
        reset_requested=False,
        watched=lambda: True,
        counts=fake.counts,
        infos=InfoCache(5),
    )
    cam.drop_oldest = lambda coming=None: node_module.Camera.drop_oldest(cam, coming)

    def send(stamp_s: float, msg: Image | CompressedImage | None = None) -> None:
        msg = msg or Image(height=1, width=1, encoding="mono8", step=1, data=bytes(1))
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), round(stamp_s % 1 * 1e9)
        node_module.DeblurNode.enqueue(fake, cam, msg)

    return cam, send


def test_a_full_queue_of_queue_policy_all_is_said_once_not_under_latest():
    """`all` promises every frame: its overflow dropped the oldest frames with only a count
    in /diagnostics. Said, throttled; `latest` drops by design and says nothing."""
    cam, send = intake("all", queue_size=3)
    for i in range(8):
        send(10 + i / 30)
    assert cam.counts["dropped"] == 5 and len(cam.said) == 1
    assert cam.said[0].startswith("queue_policy all: /cam/image_raw's queue is full (3 frames)")
    cam, send = intake("latest")
    for i in range(8):
        send(10 + i / 30)
    assert cam.counts["dropped"] == 7 and not cam.said


def test_gaps_are_found_between_the_stamps_a_camera_sends_not_the_frames_processed():
    """A slow device with queue_policy latest processes every 20th frame of a 30 fps camera:
    those frames are 0.67 s apart, but the camera had no gap, so the state must carry on."""
    cam, send = intake("latest")
    for i in range(60):
        send(10 + i / 30)
        if i % 20 == 19:
            assert not cam.queue.popleft().restart  # what the worker takes
    send(12.5)  # the camera stalled for 0.5+ s
    send(12.5 + 1 / 30)  # ... and this one replaced it before the worker came: still a gap
    (q,) = cam.queue
    assert q.restart == "gap" and q.msg.header.stamp.nanosec == round((0.5 + 1 / 30) * 1e9)


def test_a_stamp_sent_twice_keeps_its_camera_info():
    """Under queue_policy latest the second frame of a stamp sent twice replaced the first,
    whose drop threw away the camera_info both share: camera_info_unmatched was counted."""
    cam, send = intake("latest")
    cam.infos.put(10 * SEC, "info of 10 s")
    send(10.0)
    send(10.0)  # the driver repeats the stamp: this frame replaces the first
    (q,) = cam.queue
    assert cam.infos.get(q.stamp) == ("info of 10 s", True)
    cam.infos.put(11 * SEC, "info of 11 s")
    send(11.0)  # a new stamp: the dropped frame's camera_info goes (the cache is small)
    assert 10 * SEC not in cam.infos.infos


def test_a_frame_the_worker_would_refuse_is_refused_before_its_stamp_counts():
    """A depth frame (32FC1) or a bad layout stamped 0 between two good frames: its stamp
    used to count, so the next good frame looked like a gap and restarted the state."""
    cam, send = intake("all")
    send(10.0)
    bad = [
        Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16)),
        Image(height=2, width=2, encoding="16SC1", step=4, data=bytes(8)),
        Image(height=2, width=4, encoding="rgb8", step=8, data=bytes(16)),  # step < a row
        Image(height=2, width=3, encoding="yuv422", step=6, data=bytes(12)),  # odd width
        Image(height=2, width=2, encoding="mono16", step=4, data=bytes(6)),  # data too short
    ]
    for msg in bad:
        send(0.0, msg)
    send(10.0 + 1 / 30)
    assert [q.restart for q in cam.queue] == [None, None] and len(cam.queue) == 2
    assert cam.counts["rejected.encoding"] == 2 and cam.counts["rejected.malformed"] == 3
    assert cam.counts["received"] == 2 + len(bad)


def test_with_every_frame_kept_the_gap_marks_the_first_frame_after_it():
    cam, send = intake("all", queue_size=3)
    for t in (1.0, 1.1, 2.0, 2.1):  # the 1.0 frame overflows the queue
        send(t)
    assert [q.restart for q in cam.queue] == [None, "gap", None]
    send(2.2)  # 1.1 overflows; 2.0 keeps its mark
    assert [q.restart for q in cam.queue] == ["gap", None, None]
    send(2.3)  # 2.0 overflows: the first frame kept after the gap carries the mark on
    assert [q.restart for q in cam.queue] == ["gap", None, None]
    cam, send = intake("all", max_gap_s=None)
    for t in (1.0, 5.0):
        send(t)
    assert [q.restart for q in cam.queue] == [None, None]  # max_gap_s 0 disables


def test_a_reset_call_marks_the_next_frame_received_not_those_queued_before():
    """~/reset is a cut in the camera's stream: frames already waiting keep the old state (the
    worker may be mid-inference), the first frame after the call starts afresh, and with
    queue_policy latest the mark survives that frame being replaced."""
    cam, send = intake("all")
    for t in (1.0, 1.1):
        send(t)
    cam.reset_requested = True  # what the service callback sets, under the lock
    for t in (1.2, 1.3):
        send(t)
    assert [q.restart for q in cam.queue] == [None, None, "explicit", None]
    assert not cam.reset_requested
    cam, send = intake("latest")
    send(1.0)
    cam.reset_requested = True
    for t in (1.1, 1.2):  # 1.1, marked, is replaced by 1.2 before the worker comes
        send(t)
    assert [q.restart for q in cam.queue] == ["explicit"]


def test_a_slow_cpu_setting_names_the_fast_one_for_that_cpu():
    from sarn_ros.ros.node import cpu_advice

    assert "precision:=bf16 torch_compile:=true" in cpu_advice("fp32", False, bf16_native=True)
    assert "precision:=bf16 torch_compile:=true" in cpu_advice("bf16", False, bf16_native=True)
    assert cpu_advice("bf16", True, bf16_native=True) is None  # already the fastest
    for precision, compiled in (("fp32", False), ("bf16", True)):  # no native bf16
        advice = cpu_advice(precision, compiled, bf16_native=False)
        assert "sarn export" in advice and "precision:=fp32 torch_compile:=false" in advice


def test_latest_takes_the_newest_stamp_every_camera_holds():
    from sarn_ros.ros.node import synced_picks

    assert synced_picks([[1, 2, 3], [1, 2]]) == [1, 1]  # 3's right frame is still on its way
    assert synced_picks([[1, 2, 3], [2, 3]]) == [2, 1]
    assert synced_picks([[1, 2], [5, 6], [2]]) == [1, 1, 0]  # the second: no common stamp
    # a stereo pair beside a free-running camera, and two pairs on clocks of their own
    assert synced_picks([[4, 5, 6], [4, 5], [17, 19, 23]]) == [1, 1, 2]
    assert synced_picks([[4, 5], [4, 5], [11, 12], [11]]) == [1, 1, 0, 0]
    assert synced_picks([[5, 6], [5, 6], [5]]) == [0, 0, 0]  # all three before the newest two
    assert synced_picks([[1, 2], [5, 6]]) == [1, 1]  # unsynchronised: each one's newest
    assert synced_picks([[9, 1], [9, 1]]) == [1, 1]  # a looping bag: the newest received
    assert synced_picks([[4]]) == [0]


def test_setting_future_frames_to_its_value_keeps_the_held_frames(tiny_recurrent_checkpoint):
    """`ros2 param set ... future_frames 2` on a node at 2 (or `ros2 param load` of its own
    file) flushed every camera's held frames, so they came out without their look-ahead."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=2)
    src = frames(4, seed=5)
    published = []
    fake = SimpleNamespace(
        engine=engine,
        publish=published.append,
        context=SimpleNamespace(ok=lambda: True),
        get_logger=lambda: SimpleNamespace(info=lambda text: None),
    )
    fake.apply_change = lambda *change: node_module.DeblurNode.apply_change(fake, *change)
    for i, f in enumerate(src[:3]):
        published += engine.push(f, i * SEC // 30, "cam")
    node_module.DeblurNode.apply_changes(fake, {"future_frames": 2})
    assert len(published) == 1  # the two held frames still wait for their look-ahead
    published += engine.push(src[3], 3 * SEC // 30, "cam") + engine.flush()
    expected = engine_frames(StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu"), src)
    for out, exp in zip(published, expected, strict=True):
        np.testing.assert_array_equal(out.image, exp)


def test_a_failing_change_in_a_batch_leaves_the_others_applied():
    """`ros2 param set_parameters_atomically` (or a params load) of future_frames and resize
    together: a failure in the flush that future_frames makes lost the resize, while the
    node's parameters showed it."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    def flush() -> list:
        raise RuntimeError("CUDA out of memory")

    logged: list[str] = []
    fake = SimpleNamespace(
        engine=SimpleNamespace(future_frames=2, flush=flush, reset=lambda reason: None),
        resize=1.0,
        debayer="bilinear",
        context=SimpleNamespace(ok=lambda: True),
        get_logger=lambda: SimpleNamespace(info=logged.append),
    )
    fake.apply_change = lambda *change: node_module.DeblurNode.apply_change(fake, *change)
    changes = {"future_frames": 0, "resize": 0.5, "debayer": "edge_aware"}
    with pytest.raises(RuntimeError, match="out of memory"):  # the worker counts and resets
        node_module.DeblurNode.apply_changes(fake, changes)
    assert (fake.engine.future_frames, fake.resize, fake.debayer) == (0, 0.5, "edge_aware")
    assert logged == ["parameter resize is now 0.5", "parameter debayer is now 'edge_aware'"]


def test_a_live_resize_restarts_the_state_as_asked_not_as_a_camera_change():
    """The new size restarted the streams as a resolution change, logged as a warning that
    "the image size changed" and counted as the camera's; the user's own change is an
    explicit restart, and setting the same size again is none."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    resets: list[str] = []
    fake = SimpleNamespace(
        engine=SimpleNamespace(reset=lambda reason: resets.append(reason)),
        resize=1.0,
        context=SimpleNamespace(ok=lambda: True),
        get_logger=lambda: SimpleNamespace(info=lambda _msg: None),
    )
    for value in (0.5, 0.5, 1.0):
        node_module.DeblurNode.apply_change(fake, "resize", value)
    assert resets == ["explicit", "explicit"] and fake.resize == 1.0


def test_a_live_switch_to_latest_trims_the_backlog_at_once():
    """From queue_policy all to latest with a backlog: the queues are cut to the few frames
    latest keeps before the worker's next take, drops counted, restart marks kept."""
    import threading
    from collections import Counter, deque
    from types import SimpleNamespace

    from rclpy.parameter import Parameter

    from sarn_ros.ros import node as node_module

    cams = []
    for _ in range(2):
        cam = SimpleNamespace(
            queue=deque(node_module.Queued(None, 0.0, None, s) for s in range(10)),
            infos=InfoCache(5),
        )
        cam.queue[1].restart = "gap"
        cam.drop_oldest = lambda coming=None, cam=cam: node_module.Camera.drop_oldest(cam, coming)
        cams.append(cam)
    fake = SimpleNamespace(
        cameras=cams,
        queue_policy="all",
        latest_depth=node_module.SYNC_DEPTH,
        engine=SimpleNamespace(onnx=False),
        changes={},
        lazy=False,
        counts=Counter(),
        window=Counter(),
        lock=threading.Condition(),
        intake_advice=lambda: None,
    )
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    result = node_module.DeblurNode.on_set_parameters(
        fake, [Parameter("queue_policy", Parameter.Type.STRING, "latest")]
    )
    assert result.successful and fake.queue_policy == "latest"
    for cam in cams:
        assert [(q.stamp, q.restart) for q in cam.queue] == [(7, "gap"), (8, None), (9, None)]
    assert fake.counts["dropped"] == 14 and fake.changes == {"queue_policy": "latest"}


def test_a_synchronised_take_drops_the_older_frames_and_keeps_their_restart_marks():
    import threading
    from collections import Counter, deque
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    def camera(stamps, marks):
        cam = SimpleNamespace(
            queue=deque(
                node_module.Queued(None, 0.0, m, s) for s, m in zip(stamps, marks, strict=True)
            ),
            infos=InfoCache(5),
        )
        cam.drop_oldest = lambda coming=None: node_module.Camera.drop_oldest(cam, coming)
        return cam

    left, right = camera([1, 2, 3], ["gap", None, None]), camera([1, 2], [None, None])
    fake = SimpleNamespace(
        cameras=[left, right],
        queue_policy="latest",
        counts=Counter(),
        window=Counter(),
        lock=threading.Condition(),
    )
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    taken = node_module.DeblurNode.take(fake)
    assert [(q.stamp, q.restart) for _, q in taken] == [(2, "gap"), (2, None)]
    assert [q.stamp for q in left.queue] == [3] and not right.queue
    assert fake.counts["dropped"] == 2
    fake.queue_policy = "all"  # every frame, in order
    assert [q.stamp for _, q in node_module.DeblurNode.take(fake)] == [3]


def test_a_gap_or_reset_call_resets_that_camera_with_its_reason():
    import threading
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    resets = []
    fake = SimpleNamespace(
        untake=lambda refused: None,  # the quiet clock: its own tests
        prepare=lambda cam, msg, received: None,
        engine=SimpleNamespace(
            reset=lambda stream, reason="explicit": resets.append((stream, reason)),
            stats=dict,
            push_many=lambda items: [],  # the restarts' look-ahead, had there been one
        ),
        lock=threading.Condition(),
        waits_ms=[],
    )
    cams = [SimpleNamespace(stream=name) for name in ("left", "right", "third")]
    queued = [node_module.Queued(None, 0.0, mark) for mark in (None, "gap", "explicit")]
    node_module.DeblurNode.process(fake, list(zip(cams, queued, strict=True)))
    assert resets == [("right", "gap"), ("third", "explicit")]


def test_dropped_frames_leave_the_camera_info_of_held_frames_in_the_cache():
    """Under `latest` a CPU takes one frame in 30 and holds 2 for look-ahead: the camera_info
    of the dozens dropped meanwhile pushed theirs out of the cache, and they were published
    with the newest calibration instead of their own."""
    cam, send = intake("latest")
    held = 10 * SEC  # taken by the worker, waiting for look-ahead in the engine
    cam.infos.put(held, "held")
    for i in range(1, 12):  # camera_info first, then its image, which displaces the last
        cam.infos.put(held + i * SEC // 8, i)
        send(10 + i / 8)
    assert cam.infos.get(held) == ("held", True)
    assert cam.infos.get(held + 11 * SEC // 8) == (11, True)  # the queued frame's own
    assert cam.counts["dropped"] == 10


def test_a_blank_short_or_empty_compressed_image_is_rejected_at_intake_and_makes_no_gap():
    """A driver's uninitialised Image() (0x0, stamp 0) set the camera's last stamp, so the next
    good frame looked 10 s late: every bad frame restarted the good stream as a 'gap'."""
    cam, send = intake("all")
    for i in range(3):
        send(10 + i / 30)
    send(0.0, Image())  # blank, stamp 0
    send(10.1, Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(20)))  # short
    send(10 + 3 / 30)
    assert [q.restart for q in cam.queue] == [None] * 4
    assert (cam.counts["rejected.empty"], cam.counts["rejected.malformed"]) == (1, 1)
    assert cam.counts["received"] == 6
    send(0.0, CompressedImage(format="jpeg"))  # blank compressed (input_transport compressed)
    send(0.0, CompressedImage(format="jpeg", data=b"\xff\xd8"))  # no size stated: undecoded
    send(10 + 4 / 30)
    assert [q.restart for q in cam.queue] == [None] * 5
    assert (cam.counts["rejected.corrupt_compressed"], cam.counts["received"]) == (2, 9)


def test_a_frame_over_8192_px_a_side_is_refused_as_too_large():
    """A 100000x1 frame, raw or a 177-byte PNG, held the worker 14 s in the network: refused
    at intake (raw) or before decoding (compressed), and counted under its own reason."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    cam, send = intake("all")
    send(10.0, Image(height=1, width=9000, encoding="mono8", step=9000, data=bytes(9000)))
    send(10.1, Image(height=8192, width=1, encoding="mono8", step=1, data=bytes(8192)))
    assert cam.counts["rejected.too_large"] == 1 and len(cam.queue) == 1
    rejected = []
    fake = SimpleNamespace(
        debayer="vng", resize=1.0, max_megapixels=67.2, reject=lambda *why: rejected.append(why[:2])
    )
    png = cv2.imencode(".png", np.zeros((1, 100000), np.uint8))[1].tobytes()
    msg = CompressedImage(format="png", data=png)
    assert node_module.DeblurNode.prepare(fake, None, msg, 0.0) is None
    assert rejected == [("too_large", "100000x1 image: sides up to 8192 px are deblurred")]


def test_a_frame_over_max_megapixels_is_refused_before_the_network():
    """A 1 KB JPEG stating 8000x8000 (under 8192 a side) decoded to 64 MP, and the network's
    memory for it, about 1 GB per megapixel, had the kernel kill the node."""
    frame = np.zeros((1000, 1500, 3), np.uint8)  # 1.5 MP
    assert prepared("rgb8", frame, 1.0, max_megapixels=1.4) == (
        None,
        [
            (
                "too_large",
                "1500x1000 image: over max_megapixels 1.4, about 1 GB of memory per "
                "megapixel on a CPU",
            )
        ],
    )
    out, rejected = prepared("rgb8", frame, 1.0, max_megapixels=1.5)
    assert out is not None and not rejected
    out, rejected = prepared("rgb8", frame, 0.5, max_megapixels=0.3)  # counted after resize
    assert out is None and rejected[0][1].startswith("1500x1000 image (750x500 after resize)")
    assert prepared("rgb8", frame, 0.5, max_megapixels=0.4)[0] is not None


def test_a_jpeg_stating_more_than_max_megapixels_is_refused_before_it_is_decoded(monkeypatch):
    """The 1 KB JPEG stating 8000x8000 was refused only once decoded: 192 MB and a second of
    libjpeg for a frame known from its header to be refused."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    jpeg = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = (8000).to_bytes(2, "big") * 2  # height, width
    decoded: list = []
    real_decode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or real_decode(*a))
    rejected: list = []
    fake = SimpleNamespace(
        debayer="vng", resize=0.5, max_megapixels=8.3, reject=lambda *why: rejected.append(why[:2])
    )
    cam = SimpleNamespace(index=0, stream="/", input_size=None)
    msg = CompressedImage(format="jpeg", data=bytes(jpeg))
    assert node_module.DeblurNode.prepare(fake, cam, msg, 0.0) is None
    assert rejected[0][0] == "too_large" and decoded == []
    assert rejected[0][1].startswith("8000x8000 image (4000x4000 after resize): over max_meg")
    fake.resize = 0.25  # 2000x2000 after resize: under the limit, so decoded
    node_module.DeblurNode.prepare(fake, cam, msg, 0.0)
    assert decoded == [1] and len(rejected) == 1


def test_a_frame_refused_as_too_large_leaves_the_cameras_state_alone():
    """Under resize, a refused oversized frame between two ordinary ones restarted the state
    twice (its size, then the ordinary one's), though it never reached the network."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    resets: list = []
    engine = SimpleNamespace(reset=lambda stream, reason: resets.append(reason))
    fake = SimpleNamespace(
        debayer="vng", resize=0.5, engine=engine, max_megapixels=0.01, reject=lambda *why: None
    )
    cam = SimpleNamespace(index=0, stream="/", input_size=None)
    for w, h in ((96, 64), (960, 640), (96, 64)):
        msg = numpy_to_image(np.zeros((h, w, 3), np.uint8), "rgb8")
        node_module.DeblurNode.prepare(fake, cam, msg, 0.0)
    assert resets == [] and cam.input_size == (64, 96)


def process_fake(
    frames: dict[str, np.ndarray],
    push_error: Exception | None = None,
    engine: StreamDeblurrer | None = None,
    stamp: int = 1,
    fakes: list | None = None,
):
    """DeblurNode.process over fake cameras whose prepared frames are ``frames``, into a fake
    engine or ``engine``; returns what was pushed, reset, rejected, counted and published (the
    fake node itself into ``fakes``)."""
    import threading
    from collections import Counter
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    pushed, resets, rejected, published = [], [], [], []

    def push_many(items):
        if push_error is not None:
            raise push_error
        pushed.extend(items)
        return []

    fake = SimpleNamespace(
        untake=lambda refused: None,  # the quiet clock: its own tests
        prepare=lambda cam, msg, received: (cam, frames[cam], stamp, None),
        engine=engine
        or SimpleNamespace(
            push_many=push_many,
            reset=lambda stream=None, reason="explicit": resets.append((stream, reason)),
            stats=lambda: {"frames_in": len(pushed), "frames_lost": 0},
        ),
        lock=threading.Condition(),
        counts=Counter(),
        window=Counter(),
        waits_ms=[],
        inference_ms=[],
        overhead_ms=[],
        publish=published.append,
        reject=lambda reason, detail, cam: rejected.append(reason),
        due=lambda key: True,
        get_logger=lambda: SimpleNamespace(warning=rejected.append),
    )
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    fake.engine_failed = lambda *args: node_module.DeblurNode.engine_failed(fake, *args)
    fake.frames_lost = lambda *args: node_module.DeblurNode.frames_lost(fake, *args)
    queued = [(cam, node_module.Queued(None, 0.0, None)) for cam in frames]
    node_module.DeblurNode.process(fake, queued)
    if fakes is not None:
        fakes.append(fake)
    return pushed, resets, rejected, fake.counts, published


def test_a_rounds_timings_are_per_frame_and_inference_only_when_it_emitted(monkeypatch):
    """Two frames in, none out (held for look-ahead): two intake waits, no inference time
    (the push ran no network), and the conversion time shared by the two frames."""
    from sarn_ros.ros import node as node_module

    ticks = iter([0.0, 2.0, 5.0, 7.0])  # before conversion, before push, after, after publish
    monkeypatch.setattr(node_module.time, "perf_counter", lambda: next(ticks))
    good = np.zeros((8, 8, 3), np.uint8)
    fakes: list = []
    process_fake({"left": good, "right": good}, fakes=fakes)
    (fake,) = fakes
    assert len(fake.waits_ms) == 2 and fake.inference_ms == []
    assert fake.overhead_ms == [pytest.approx((2.0 / 2 + 2.0 / 1) * 1e3)]


def test_one_cameras_unusable_frame_leaves_the_others_frame_and_state():
    """A float frame (a float TIFF on image_raw/compressed) failed the whole engine call:
    counted once as engine_error, the other camera's frame lost unseen, every camera reset."""
    good = np.zeros((8, 8, 3), np.uint8)
    pushed, resets, rejected, *_ = process_fake({"left": good.astype(np.float32), "right": good})
    assert [item[0] for item in pushed] == ["right"] and not resets
    assert rejected == ["malformed"]


def test_an_engine_failure_resets_and_counts_the_cameras_in_that_call_only():
    good = np.zeros((8, 8, 3), np.uint8)
    _, resets, logged, counts, _ = process_fake(
        {"left": good, "right": good}, push_error=RuntimeError("CUDA out of memory")
    )
    # by name, not reset() of every stream; counted apart from ~/reset's explicit resets
    assert sorted(resets) == [("left", "error"), ("right", "error")]
    assert counts["rejected.engine_error"] == 2  # neither frame was taken
    assert logged == [
        "deblurring failed (RuntimeError: CUDA out of memory): 2 frame(s) lost, camera state "
        "restarted"
    ]


@pytest.mark.parametrize("failures", [1, 99])
def test_an_engine_failure_counts_the_frames_it_lost_not_those_it_took(failures):
    """Every frame of a failed call was counted rejected, though the engine had taken them
    and the restart emitted them; and a camera whose network kept failing never recovered
    (its restart drained the look-ahead through the same failure)."""
    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    engine = StreamDeblurrer(model.eval(), device="cpu", future_frames=2)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    engine.push(imgs[0], 0, "left")
    engine.push(imgs[1], SEC // 30, "left")
    net, calls = engine._net, [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] <= failures:
            raise RuntimeError("CUDA out of memory")
        return net(*args, **kwargs)

    engine._net = failing
    _, _, logged, counts, _ = process_fake({"left": imgs[2]}, engine=engine, stamp=SEC // 15)
    lost = 0 if failures == 1 else 3
    assert counts["rejected.engine_error"] == lost and f": {lost} frame(s) lost" in logged[0]
    engine._net = net
    out = engine.push(imgs[0], SEC, "left") + engine.flush()
    expected = [0, SEC // 30, SEC // 15, SEC] if failures == 1 else [SEC]
    assert [o.stamp for o in out] == expected


def test_a_restarts_passes_count_as_inference_not_node_overhead(monkeypatch):
    """A reset runs the held look-ahead through the network before the round's push: its
    time went into the node's overhead (261 ms beside an inference of 0.3 ms)."""
    import threading
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    # before conversion, around the reset, before the push, after it, after publishing
    ticks = iter([0.0, 1.0, 4.0, 5.0, 6.0, 7.0])
    monkeypatch.setattr(node_module.time, "perf_counter", lambda: next(ticks))
    fake = SimpleNamespace(
        untake=lambda refused: None,  # the quiet clock: its own tests
        prepare=lambda cam, msg, received: (cam.stream, np.zeros((8, 8, 3), np.uint8), 1, None),
        engine=SimpleNamespace(
            reset=lambda stream, reason: None,
            stats=dict,
            push_many=lambda items: ["held", "held"],  # the reset's, out with this push
        ),
        lock=threading.Condition(),
        waits_ms=[],
        inference_ms=[],
        overhead_ms=[],
        publish=lambda out: None,
    )
    cam = SimpleNamespace(stream="left")
    node_module.DeblurNode.process(fake, [(cam, node_module.Queued(None, 0.0, "explicit"))])
    assert fake.inference_ms == [pytest.approx((1.0 + 3.0) * 1e3)]  # push + reset
    assert fake.overhead_ms == [pytest.approx((2.0 + 1.0 / 2) * 1e3)]  # conversion, publish


def test_a_restart_publishes_the_held_frames_also_where_its_frame_is_rejected():
    """A reset (~/reset, stamps going back) marks the camera's next frame; where that frame
    was rejected, the look-ahead the restart flushed waited for the next good frame, or for
    good under max_gap_s 0."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    engine = StreamDeblurrer(model.eval(), device="cpu", future_frames=2)
    img = np.zeros((16, 16, 3), np.uint8)
    assert engine.push(img, 0, "left") + engine.push(img, SEC // 30, "left") == []  # held
    fakes: list = []
    _, _, rejected, _, published = process_fake(
        {"left": img}, engine=engine, stamp=SEC // 15, fakes=fakes
    )
    (fake,) = fakes
    assert [o.stamp for o in published] == [0]  # two held for the look-ahead
    fake.prepare = lambda cam, msg, received: fake.reject("malformed", "odd", cam) or None
    cam = SimpleNamespace(stream="left")
    node_module.DeblurNode.process(fake, [(cam, node_module.Queued(None, 0.0, "explicit"))])
    assert [o.stamp for o in published] == [0, SEC // 30, SEC // 15]
    assert rejected == ["malformed"]


def test_a_stop_during_the_camera_info_wait_is_no_internal_error():
    """Ctrl-C while a frame waited for its camera_info: publishing that on the shut context
    raised into the worker's last-resort handler, which warned "internal error ... camera
    state restarted" (1 in 4 stops of a busy node)."""
    import threading
    from collections import Counter
    from types import SimpleNamespace

    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from sarn_ros.ros import node as node_module

    context = {"ok": True}
    published = []

    def info_publish(msg):
        if not context["ok"]:
            raise RuntimeError("Failed to publish: publisher's context is invalid")
        published.append(msg)

    def wait_for_info(stamp, wait_s):  # Ctrl-C arrives while publish waits here
        context["ok"] = False
        return CameraInfo(width=16, height=16), True

    cam = SimpleNamespace(
        pub=SimpleNamespace(publish=published.append),
        compressed_pub=None,
        infos=SimpleNamespace(get=wait_for_info),
        info_pub=SimpleNamespace(publish=info_publish),
        info_topic="camera_info",
        stream="/",
    )
    fake = SimpleNamespace(
        cameras=[cam],
        context=SimpleNamespace(ok=lambda: context["ok"]),
        lock=threading.Condition(),
        counts=Counter(),
        reject=lambda *args: pytest.fail(f"rejected: {args}"),
        due=lambda key: True,
    )
    meta = node_module.FrameMeta(0, Header(), "rgb8", None, 0.0, (1.0, 1.0))
    out = SimpleNamespace(meta=meta, image=np.zeros((16, 16, 3), np.uint8), stamp=0)
    node_module.DeblurNode.publish(fake, out)  # returns quietly
    assert len(published) == 1  # the image went out before the stop
    context["ok"] = True  # a failure while running is still one
    cam.infos = SimpleNamespace(get=lambda stamp, wait_s: (CameraInfo(width=16, height=16), True))
    cam.info_pub = SimpleNamespace(publish=lambda msg: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        node_module.DeblurNode.publish(fake, out)


def test_a_failed_live_change_counts_the_held_frames_it_lost_and_keeps_the_frame_taken():
    """A future_frames change whose flush failed counted one rejected frame for the two held
    ones lost ("frames pending" then stayed at 1 for good), and lost the frame just taken."""
    import threading
    from collections import Counter
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    engine = StreamDeblurrer(model.eval(), device="cpu", future_frames=2)
    rng = np.random.default_rng(0)
    for i in range(2):  # held for look-ahead
        engine.push(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), i * SEC // 30, "/")

    def failing(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory")

    engine._net = failing
    processed, warned = [], []
    fake = SimpleNamespace(
        engine=engine,
        lock=threading.Condition(),
        counts=Counter(),
        window=Counter(),
        process=processed.append,
        refused_quiet=[],
        publish=lambda out: pytest.fail("nothing can come out"),
        due=lambda key: True,
        get_logger=lambda: SimpleNamespace(warning=warned.append, info=lambda msg: None),
        model_name="m",
    )
    node = node_module.DeblurNode
    names = ("run_round", "apply_changes", "apply_change", "flush_stream", "frames_lost")
    for name in (*names, "flush_refused"):
        setattr(fake, name, getattr(node, name).__get__(fake))
    fake.count = lambda key, n=1: node.count(fake, key, n)
    taken = [(SimpleNamespace(stream="/"), node_module.Queued(None, 0.0, None))]
    fake.run_round({"future_frames": 0}, taken, [])
    assert fake.counts["rejected.internal"] == 2 and processed == [taken]
    assert warned == [
        "internal error (RuntimeError: CUDA out of memory): 2 held frame(s) lost, camera state "
        "restarted"
    ]
    # a failure that lost no frame counts none ("frames pending" read -1)
    fake.counts.clear()
    fake.run_round({"precision": "fp64"}, [], [])  # params.py refuses it; the engine too
    assert "rejected.internal" not in fake.counts and "0 held frame(s) lost" in warned[-1]


def test_a_signal_during_start_up_is_a_stop_not_an_error(monkeypatch, capsys):
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    state = {"ok": True}
    fake_rclpy = SimpleNamespace(
        init=lambda args: None,
        ok=lambda: state["ok"],
        try_shutdown=lambda: None,
        executors=SimpleNamespace(SingleThreadedExecutor=lambda: None),
    )
    monkeypatch.setattr(node_module, "rclpy", fake_rclpy)
    monkeypatch.setattr(node_module, "use_packaged_dds_profile", lambda: None)

    def interrupted(_argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(node_module, "DeblurNode", interrupted)
    assert node_module.main(["sarn_deblur_node"]) == 0

    def context_shut_down(_argv):  # SIGTERM: rclpy shut the context, the next call fails
        state["ok"] = False
        raise RuntimeError("Failed to create publisher: the given context is not valid")

    monkeypatch.setattr(node_module, "DeblurNode", context_shut_down)
    assert node_module.main(["sarn_deblur_node"]) == 0
    assert capsys.readouterr().err == ""
    state["ok"] = True

    def broken(_argv):
        raise RuntimeError("no such device")

    monkeypatch.setattr(node_module, "DeblurNode", broken)
    assert node_module.main(["sarn_deblur_node"]) == 1
    assert "no such device" in capsys.readouterr().err


def test_a_camera_info_remap_of_the_nodes_own_camera_leaves_its_other_cameras(ros):
    """`-r camera_info:=/calib/info` names the camera_info beside image_raw only: a camera
    `left` of the same node keeps left/camera_info, and its output left/deblurred/camera_info."""
    from sarn_ros.ros.node import transport_topics

    args = ["--ros-args", "-r", "camera_info:=/calib/info", "-r", "deblurred/camera_info:=/out"]
    node = rclpy.create_node("remapped", cli_args=args)
    try:
        assert transport_topics(node, "image_raw")[0] == "camera_info"  # its own remap
        assert transport_topics(node, "deblurred/image_raw")[0] == "deblurred/camera_info"
        assert transport_topics(node, "left/image_raw")[0] == "/left/camera_info"
        assert transport_topics(node, "left/deblurred/image_raw")[0] == (
            "/left/deblurred/camera_info"
        )
    finally:
        node.destroy_node()


def test_latest_takes_the_largest_group_before_a_newer_pair_and_a_repeated_stamps_newest():
    from sarn_ros.ros.node import synced_picks

    # three synchronised cameras: the stamp all three hold, though two hold a newer one
    assert synced_picks([[5, 6], [5, 6], [5, 7]]) == [0, 0, 0]
    # a looping two-frame bag: the newest frame of the repeated stamp, not its first
    assert synced_picks([[1, 9, 1], [1, 9, 1]]) == [2, 2]


def test_a_dropped_frame_leaves_the_camera_info_of_a_queued_frame_with_its_stamp():
    """A driver that repeats a stamp (no clock yet, a stuck one): dropping the older frame must
    not take the camera_info the queued frame of that stamp is published with."""
    cam, send = intake("all", queue_size=2)
    cam.infos.put(10 * SEC, "calibration")
    for t in (10.0, 10.0, 10.1):  # the first 10.0 frame overflows the queue
        send(t)
    assert [q.stamp for q in cam.queue] == [10 * SEC, 10 * SEC + SEC // 10]
    assert cam.infos.get(10 * SEC) == ("calibration", True)


def test_a_reset_call_after_a_gap_stays_explicit_when_the_gap_frame_overflows():
    """The gap's mark moves on to the next frame kept; that frame's own mark (~/reset, counted
    as resets.explicit) stays."""
    cam, send = intake("all", queue_size=2)
    send(1.0)
    send(2.0)  # a gap
    cam.reset_requested = True
    send(2.1)  # 1.0 overflows
    send(2.2)  # the gap's frame overflows
    assert [(q.stamp, q.restart) for q in cam.queue] == [
        (2 * SEC + SEC // 10, "explicit"),
        (2 * SEC + 2 * SEC // 10, None),
    ]


def test_a_reset_call_outlives_the_gap_frame_that_latest_replaces():
    """Under latest the newer frame takes the older one's place and its restart mark: the
    ~/reset asked for after the gap is what /diagnostics counts (resets.explicit)."""
    cam, send = intake("latest")
    send(1.0)
    cam.queue.popleft()  # taken by the worker
    send(2.0)  # a gap
    cam.reset_requested = True
    send(2.1)  # replaces the gap's frame
    assert [q.restart for q in cam.queue] == ["explicit"]


def test_live_parameter_changes_reach_the_worker():
    """`ros2 param set` of max_gap_s (0: no gap detection) and the other worker-side values."""
    import threading
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    fake = SimpleNamespace(
        lock=threading.Condition(),
        max_gap_s=0.5,
        resize=1.0,
        debayer="vng",
        engine=SimpleNamespace(reset=lambda reason: None, device=torch.device("cpu")),
        context=SimpleNamespace(ok=lambda: True),
        get_logger=lambda: SimpleNamespace(info=lambda msg: None),
    )
    change = node_module.DeblurNode.apply_change
    for name, value, attr, want in (
        ("max_gap_s", 0.0, "max_gap_s", None),
        ("max_gap_s", 2, "max_gap_s", 2.0),
        ("resize", 0.5, "resize", 0.5),
        ("debayer", "edge_aware", "debayer", "edge_aware"),
    ):
        change(fake, name, value)
        assert getattr(fake, attr) == want, name
    change(fake, "precision", "bf16")
    assert fake.engine.precision == "bf16"


def test_qos_parameters_make_the_topics_profiles_and_a_backlog_keeps_its_camera_infos():
    """qos.*.depth and reliability reach the profiles (DDS discovery does not carry depth, so
    a subscriber cannot see it); a camera keeps a camera_info for every frame an `all` queue
    may hold, or a backlog's frames went out with the newest calibration."""
    from types import SimpleNamespace

    from rclpy.qos import DurabilityPolicy as Durability

    from sarn_ros.ros import node as node_module

    values = {
        "qos.subscription.depth": 7,
        "qos.subscription.reliability": "reliable",
        "qos.publisher.depth": 3,
        "qos.publisher.reliability": "best_effort",
    }
    profiles: dict[str, object] = {}

    def create(kind, topic, *args, qos_overriding_options):
        qos_profile = args[-1]  # (type, topic, callback, qos) or (type, topic, qos)
        profiles[topic] = (qos_profile, qos_overriding_options.policy_kinds)
        return SimpleNamespace(topic_name=f"/{topic}", qos_profile=qos_profile)

    fake = SimpleNamespace(
        get_parameter=lambda name: SimpleNamespace(value=values[name]),
        queue_size=100,
        input_transport="raw",
        publish_compressed=False,
        resolve_topic_name=lambda name, only_expand=False: f"/{name}",
        create_subscription=create,
        create_publisher=create,
    )
    fake.qos = lambda side: node_module.DeblurNode.qos(fake, side)
    cam = node_module.Camera(fake, 0, "")
    sub, sub_kinds = profiles["image_raw"]
    pub, _ = profiles["deblurred/image_raw"]
    assert (sub.depth, sub.reliability) == (7, ReliabilityPolicy.RELIABLE)
    assert (pub.depth, pub.reliability) == (3, ReliabilityPolicy.BEST_EFFORT)
    assert sub.durability == Durability.VOLATILE and "DURABILITY" in {k.name for k in sub_kinds}
    assert cam.infos.size >= fake.queue_size + 3  # the queue, the frame taken, the look-ahead


def test_diagnostics_say_when_torch_compile_fell_back():
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    logged: list[str] = []
    fake = SimpleNamespace(
        torch_compile=True,
        engine=SimpleNamespace(compiled=False),
        get_logger=lambda: SimpleNamespace(warning=lambda msg, **_kw: logged.append(msg)),
    )
    assert node_module.DeblurNode.compile_status(fake) == "failed, eager"
    assert logged and "torch_compile failed" in logged[0]
    fake.engine.compiled = True
    assert node_module.DeblurNode.compile_status(fake) == "on"
    fake.torch_compile = False
    assert node_module.DeblurNode.compile_status(fake) == "off"


def test_a_gap_is_a_stamp_step_longer_than_max_gap_s_not_one_equal_to_it():
    cam, send = intake("all", max_gap_s=0.5)
    for t in (1.0, 1.5, 2.1):  # 0.5 s: no gap (README: further apart); 0.6 s: a gap
        send(t)
    assert [q.restart for q in cam.queue] == [None, None, "gap"]


def test_an_image_zero_wide_or_zero_high_is_rejected_at_intake_as_empty():
    cam, send = intake("all")
    send(10.0)
    send(10.1, Image(height=4, width=0, encoding="rgb8", step=0))
    send(10.2, Image(height=0, width=4, encoding="rgb8", step=12))
    assert [q.stamp for q in cam.queue] == [10 * SEC]
    assert cam.counts["rejected.empty"] == 2


def test_a_lazy_camera_is_watched_through_any_of_its_outputs():
    """README: deblurred while something subscribes to its image, camera_info or compressed."""
    from types import SimpleNamespace

    from sarn_ros.ros.node import Camera

    def outputs(image: int, info: int, compressed: int | None) -> SimpleNamespace:
        def pub(n: int | None):
            return None if n is None else SimpleNamespace(get_subscription_count=lambda: n)

        return SimpleNamespace(pub=pub(image), info_pub=pub(info), compressed_pub=pub(compressed))

    for watched in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 2, None)):
        assert Camera.watched(outputs(*watched)), watched
    for unwatched in ((0, 0, 0), (0, 0, None)):
        assert not Camera.watched(outputs(*unwatched)), unwatched


def test_the_engines_info_and_debug_lines_keep_their_level_in_the_ros_logger():
    import logging

    from sarn_ros.ros.node import RosLogHandler

    said: list[tuple[str, str]] = []

    class Logger:
        def __getattr__(self, level: str):
            return lambda text: said.append((level, text))

    log = logging.getLogger("sarn_ros.test_only_levels")
    log.setLevel(logging.DEBUG)
    handler = RosLogHandler(Logger())
    log.addHandler(handler)
    try:
        log.info("compiled")
        log.debug("batch of 2")
    finally:
        log.removeHandler(handler)
    assert said == [("info", "compiled"), ("debug", "batch of 2")]


def test_a_live_lazy_set_takes_effect_at_intake_at_once():
    """`ros2 param set ... lazy true` (README: live): the intake's check must follow, as the
    worker has nothing to apply for it."""
    import threading
    from types import SimpleNamespace

    from rclpy.parameter import Parameter

    from sarn_ros.ros import node as node_module

    fake = SimpleNamespace(
        cameras=[],
        lazy=False,
        engine=SimpleNamespace(onnx=False),
        changes={},
        lock=threading.Condition(),
    )
    for value in (True, False):
        result = node_module.DeblurNode.on_set_parameters(
            fake, [Parameter("lazy", Parameter.Type.BOOL, value)]
        )
        assert result.successful and fake.lazy is value


def test_queue_policy_all_on_an_intake_that_may_lose_frames_says_what_to_set():
    """Reliable at the default depth 5, a burst of 40 frames into each of two cameras reached
    the node as 38 and 37, and /diagnostics counted no drop: DDS dropped them."""
    from types import SimpleNamespace

    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from sarn_ros.ros import node as node_module

    def advice(
        policy: str, *profiles: QoSProfile, queue_size: int = 100, overridden: dict | None = None
    ) -> str | None:
        cams = [
            SimpleNamespace(
                input_topic=f"/c{i}", input_qos=q, input_overrides=(overridden or {}).get(i, set())
            )
            for i, q in enumerate(profiles)
        ]
        fake = SimpleNamespace(queue_policy=policy, queue_size=queue_size, cameras=cams)
        return node_module.DeblurNode.intake_advice(fake)

    reliable = ReliabilityPolicy.RELIABLE
    deep = QoSProfile(depth=100, reliability=reliable)
    keep_all = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1, reliability=reliable)
    short = QoSProfile(depth=5, reliability=reliable)
    best_effort = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
    assert advice("all", deep, keep_all) is None
    assert advice("latest", short, best_effort) is None  # latest drops, and counts its drops
    said = advice("all", deep, short, best_effort)
    assert said.startswith("queue_policy all: /c1, /c2 may lose frames before the node sees")
    assert said.endswith(
        "start the node with qos.subscription.reliability:=reliable qos.subscription.depth:=100"
    )
    # a queue_size over the depth's range (1000): its largest depth is enough
    assert advice("all", QoSProfile(depth=1000, reliability=reliable), queue_size=2000) is None
    assert advice("all", deep, queue_size=2000).endswith("qos.subscription.depth:=1000")
    # only what is short is named
    assert advice("all", short).endswith("start the node with qos.subscription.depth:=100")
    # a policy a topic's qos_overrides set is named there: the global one would not change it
    said = advice("all", short, best_effort, overridden={0: {"depth"}, 1: {"depth"}})
    assert said.endswith(
        "start the node with qos.subscription.reliability:=reliable "
        "qos_overrides./c0.subscription.depth:=100"
    )


def test_cameras_are_told_apart_by_their_resolved_topics(ros_domain):
    """Under __ns:=/robot, cameras [/abs/cam] subscribed /robot/abs/cam/image_raw (the leading
    / was stripped), and [~, sarn_deblur], one topic, were two cameras: every frame deblurred
    by two states and published twice; so were two whose compressed inputs, or outputs, a
    remap made one."""
    from types import SimpleNamespace

    import rclpy
    from rclpy.node import Node

    from sarn_ros.ros.node import camera_prefixes

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    remap = ["--ros-args", "-r", "right/image_raw:=left/image_raw"]
    remap += ["-r", "a/image_raw/compressed:=b/image_raw/compressed"]
    remap += ["-r", "c/deblurred/image_raw:=d/deblurred/image_raw"]
    for cam in "efg":  # image remaps into one folder: one camera_info beside them
        remap += ["-r", f"{cam}/image_raw:=/x/{cam}_img"]
    remap += ["-r", "g/camera_info:=/x/g/camera_info"]
    for cam in "efhi":  # output remaps into one folder: one deblurred/camera_info beside them
        remap += ["-r", f"{cam}/deblurred/image_raw:=/o/{cam}_img"]
    remap += ["-r", "j/deblurred/image_raw/compressed:=k/deblurred/image_raw/compressed"]
    loop_remap = ["--ros-args", "-r", "image_raw:=/cam/image_color"]
    loop_remap += ["-r", "deblurred/image_raw:=/cam/image_deblurred"]
    try:
        for ns in ("/robot", "/"):
            node = Node("sarn_deblur", namespace=ns, context=context, cli_args=remap)
            base = ns.rstrip("/")

            def topics(cams: list[str], node: Node = node) -> list[str]:
                prefixes = camera_prefixes(node, cams, compressed=False)
                return [node.resolve_topic_name(f"{p}image_raw") for p in prefixes]

            assert topics(["/abs/cam/", "left", "", "stereo/right"]) == [
                "/abs/cam/image_raw",
                f"{base}/left/image_raw",
                f"{base}/image_raw",
                f"{base}/stereo/right/image_raw",
            ]
            assert topics(["/"]) == ["/image_raw"]
            one = rf"'~', 'sarn_deblur' lead to one input topic, {base}/sarn_deblur/image_raw"
            with pytest.raises(ValueError, match=one):
                camera_prefixes(node, ["~", "sarn_deblur"], compressed=False)
            with pytest.raises(ValueError, match="'left', 'right' lead to one input topic"):
                camera_prefixes(node, ["left", "right"], compressed=False)  # the remap
            assert camera_prefixes(node, ["a", "b"], compressed=False) == ["a/", "b/"]
            with pytest.raises(ValueError, match=r"'a', 'b' lead to one input topic, .*compressed"):
                camera_prefixes(node, ["a", "b"], compressed=True)
            with pytest.raises(ValueError, match="'c', 'd' lead to one output topic"):
                camera_prefixes(node, ["c", "d"], compressed=True)
            with pytest.raises(ValueError, match=r"cameras: '/~' is not a valid namespace \(.*"):
                camera_prefixes(node, ["/~"], compressed=False)
            # one camera_info for two: two streams of one camera (image_raw and image_rect),
            # or one camera's calibration published as the other's: warned of, once a topic
            warned: list[str] = []
            node.get_logger = lambda said=warned: SimpleNamespace(warning=said.append)
            assert camera_prefixes(node, ["e", "f"], compressed=False) == ["e/", "f/"]
            assert camera_prefixes(node, ["e", "g"], compressed=False) == ["e/", "g/"]
            assert warned == [
                "cameras 'e', 'f' share one camera_info input topic, /x/camera_info: right for "
                "two image streams of one camera, but two cameras would each publish the "
                "other's calibration (remap each camera's camera_info)",
                "cameras 'e', 'f' share one camera_info output topic, /o/camera_info: right for "
                "two image streams of one camera, but two cameras would each publish the "
                "other's calibration (remap each camera's deblurred/camera_info)",
            ]
            # two calibrations in (h/camera_info, i/camera_info), one out: mixed, refused
            with pytest.raises(ValueError, match="'h', 'i' lead to one camera_info output topic"):
                camera_prefixes(node, ["h", "i"], compressed=False)
            assert camera_prefixes(node, ["j", "k"], compressed=False) == ["j/", "k/"]
            with pytest.raises(ValueError, match="'j', 'k' lead to one compressed output topic"):
                camera_prefixes(node, ["j", "k"], compressed=False, publish_compressed=True)
            # a camera fed with the node's own output
            loop = (
                f"the input of camera 'deblurred', {base}/deblurred/image_raw, is the output of "
                "camera '': the node would read what it publishes"
            )
            with pytest.raises(ValueError, match=re.escape(loop)):
                camera_prefixes(node, ["", "deblurred"], compressed=False)
            with pytest.raises(ValueError, match=r"of camera 'a/deblurred', .*of camera 'a'"):
                camera_prefixes(node, ["a", "a/deblurred"], compressed=False)
            # the driver's camera_info overwritten by the node's: refused, the fix named
            solo = Node("sarn_deblur", namespace=ns, context=context, cli_args=loop_remap)
            info = (
                "the camera_info input of camera '', /cam/camera_info, is its own camera_info "
                "output: the node would read what it publishes (remap deblurred/camera_info"
            )
            with pytest.raises(ValueError, match=re.escape(info)):
                camera_prefixes(solo, [""], compressed=False)
            solo.destroy_node()
            if ns == "/robot":
                assert topics(["left", "/left", "", "/"])[1::2] == ["/left/image_raw", "/image_raw"]
            else:
                with pytest.raises(ValueError, match="'left', '/left' lead to one input topic"):
                    camera_prefixes(node, ["left", "/left"], compressed=False)
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_an_unknown_or_empty_parameter_name_is_refused_by_name(ros_domain):
    """rclpy refuses undeclared names by any() over a generator and lists what is left: a
    misspelt name was refused as "undeclared parameter(s): []", and an empty name, which
    any() passes, was stored as a new parameter while an atomic set applied the rest."""
    import rclpy
    from rclpy.exceptions import ParameterNotDeclaredException
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from sarn_ros.ros import node as node_module
    from sarn_ros.ros.params import BY_NAME

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    try:
        probe = node_module.DeblurNode.__new__(node_module.DeblurNode)  # its checks, no model
        Node.__init__(probe, "params_probe", context=context)
        for name in ("resize", "future_frames", "weights"):
            probe.declare_parameter(name, BY_NAME[name].default, BY_NAME[name].descriptor())
        cases = {
            "resise": "['resise'] (did you mean 'resize'?)",
            "": "[''] (a parameter needs a name)",
            "colour_space": "['colour_space']",
        }
        for name, said in cases.items():
            given = [Parameter(name, value=0.5), Parameter("resize", value=0.5)]
            with pytest.raises(ParameterNotDeclaredException) as err:
                probe.set_parameters_atomically(given)
            assert str(err.value) == f"Invalid access to undeclared parameter(s): {said}"
            assert probe.get_parameter("resize").value == BY_NAME["resize"].default
            assert not probe.has_parameter(name)
        both = [Parameter("future_frame", value=0), Parameter("resize", value=0.5)]
        with pytest.raises(ParameterNotDeclaredException, match=r"\['future_frame'\] \(did"):
            probe.set_parameters(both)
        assert probe.set_parameters_atomically([Parameter("resize", value=0.5)]).successful
        # `ros2 param set` of a read-only one says how it is set (rclpy's words did not)
        (result,) = probe.set_parameters([Parameter("weights", value="other.pth")])
        assert result.reason == (
            "Trying to set a read-only parameter: weights. It is read at start: give -p "
            "weights:=... (or set it in the launch file's parameters) and restart the node"
        )
        Node.destroy_node(probe)  # not its own: that also stops the worker it has not
    finally:
        rclpy.shutdown(context=context)


def test_a_change_applied_as_rclpy_shuts_down_is_applied_without_a_log_line():
    """A change just before Ctrl-C logged to a rosout already gone: rcl printed "Failed to
    publish log message to rosout: publisher's context is invalid"."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    logged = []
    fake = SimpleNamespace(
        engine=SimpleNamespace(reset=lambda reason: None),
        resize=1.0,
        context=SimpleNamespace(ok=lambda: False),
        get_logger=lambda: SimpleNamespace(info=logged.append),
    )
    node_module.DeblurNode.apply_change(fake, "resize", 0.5)
    assert fake.resize == 0.5 and logged == []


def test_the_first_of_several_failing_changes_is_the_one_raised():
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    applied = []

    def apply_change(name, value):
        applied.append(name)
        raise RuntimeError(f"{name} failed")

    fake = SimpleNamespace(apply_change=apply_change)
    with pytest.raises(RuntimeError, match="future_frames failed"):
        node_module.DeblurNode.apply_changes(fake, {"future_frames": 0, "precision": "bf16"})
    assert applied == ["future_frames", "precision"]


def test_a_future_frames_set_on_a_single_image_model_says_it_is_ignored():
    from types import SimpleNamespace

    from sarn_ros.archs import SARN
    from sarn_ros.ros import node as node_module

    logged: list[str] = []
    for model in (
        SARN(channels=8, blocks_per_level=1, attention_stride=4),
        RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4),
    ):
        fake = SimpleNamespace(
            engine=StreamDeblurrer(model.eval(), device="cpu", future_frames=0),
            publish=lambda out: None,
            context=SimpleNamespace(ok=lambda: True),
            get_logger=lambda: SimpleNamespace(info=logged.append),
        )
        node_module.DeblurNode.apply_change(fake, "future_frames", 1)
    single, recurrent = logged
    assert single.startswith("parameter future_frames is now 1, which ")
    assert single.endswith("ignores (it has no look-ahead)")
    assert recurrent == "parameter future_frames is now 1"


def test_the_reset_service_restarts_every_camera():
    import threading
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    cams = [SimpleNamespace(reset_requested=False) for _ in range(3)]
    fake = SimpleNamespace(cameras=cams, lock=threading.Condition())
    response = node_module.DeblurNode.on_reset(fake, Trigger.Request(), Trigger.Response())
    assert response.success and "3 camera(s)" in response.message
    assert all(cam.reset_requested for cam in cams)


@pytest.mark.parametrize("members", [1, 2])
def test_restarts_the_input_caused_are_logged_with_their_camera_and_cause_only(members: int):
    """With several cameras the line names the one that restarted (it said "recurrent state
    restarted" alone, and one camera's line hid the other's for 10 s); gaps are counted only.
    A self-ensemble counts each camera once, not once per member."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    kind = StreamDeblurrer if members == 1 else partial(SelfEnsembleDeblurrer, members=members)
    engine = kind(model.eval(), device="cpu", future_frames=0)
    small, big = np.zeros((16, 16, 3), np.uint8), np.zeros((24, 16, 3), np.uint8)
    engine.push_many([("/l", small, 0, None), ("/r", small, 0, None)])
    before = engine.stats()
    engine.push_many([("/l", small, SEC // 30, None), ("/r", big, SEC // 30, None)])
    engine.reset("/l", reason="gap")
    after = engine.stats()
    assert after["resets_by_stream"]["/r"]["resolution"] == 1
    assert after["resets_by_stream"]["/l"]["gap"] == 1
    logged: list[str] = []
    keys: list[str] = []
    fake = SimpleNamespace(
        due=lambda key: keys.append(key) or True,
        get_logger=lambda: SimpleNamespace(warning=logged.append),
    )
    node_module.DeblurNode.log_resets(fake, before, after)
    assert logged == ["recurrent state of /r restarted: the image size changed"]
    assert keys == ["reset.resolution./r"]  # throttled per camera
    logged.clear()
    node_module.DeblurNode.log_resets(fake, after, after)
    assert logged == []


def test_an_engine_failure_that_lost_no_frame_counts_no_rejection():
    """The restart emitted every frame of the failed call: /diagnostics must not list an
    engine_error rejection of 0, which turns the status to WARN, "frames rejected"."""
    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    engine = StreamDeblurrer(model.eval(), device="cpu", future_frames=2)
    net, calls = engine._net, [0]

    def failing_once(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("CUDA out of memory")
        return net(*args, **kwargs)

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    engine.push(imgs[0], 0, "left")
    engine.push(imgs[1], SEC // 30, "left")
    engine._net = failing_once  # the third frame's call fails; the restart runs the network
    _, _, logged, counts, _ = process_fake({"left": imgs[2]}, engine=engine, stamp=SEC // 15)
    assert ": 0 frame(s) lost" in logged[0]
    assert not [key for key in counts if key.startswith("rejected.")], counts


def prepared(encoding: str, pixels: np.ndarray, resize: float, max_megapixels: float = 8.3):
    """DeblurNode.prepare of one raw image at ``resize``; what it rejected."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    rejected: list = []
    fake = SimpleNamespace(
        debayer="vng",
        resize=resize,
        max_megapixels=max_megapixels,
        reject=lambda *why: rejected.append(why[:2]),
    )
    cam = SimpleNamespace(index=0, stream="/", input_size=None)
    msg = numpy_to_image(pixels, encoding)
    return node_module.DeblurNode.prepare(fake, cam, msg, 0.0), rejected


def test_resize_scales_each_side_by_its_own_rounding_alpha_included():
    """31x17 at 0.5 is 16x8: x scaled by 16/31, y by 8/17; camera_info's K and P follow them,
    and the alpha plane goes back onto the deblurred frame at its size."""
    rgba = np.dstack([frames(1, 17, 31)[0], np.full((17, 31), 200, np.uint8)])
    (_, frame, _, meta), rejected = prepared("rgba8", rgba, 0.5)
    assert not rejected and frame.shape == (8, 16, 3)
    assert meta.scale == (16 / 31, 8 / 17)
    assert meta.alpha.shape == (8, 16) and (meta.alpha == 200).all()


def test_resize_keeps_at_least_one_pixel_a_side():
    (_, frame, _, meta), rejected = prepared("rgb8", frames(1, 4, 4)[0][:1, :4], 0.1)
    assert not rejected and frame.shape == (1, 1, 3)
    assert meta.scale == (1 / 4, 1.0)


def publish_fake(
    info: CameraInfo | None,
    size: tuple[int, int] = (64, 48),
    fakes: list | None = None,
    now_ns: int = 6 * SEC,
):
    """DeblurNode.publish of one 64x48 rgb8 output stamped 5 s at ``now_ns``, with ``info`` in
    its camera's cache; returns what it published, counted and warned (the fake into
    ``fakes``)."""
    import threading
    from collections import Counter, deque
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    images, infos, warned = [], [], []
    cam = SimpleNamespace(
        pub=SimpleNamespace(publish=images.append),
        info_pub=SimpleNamespace(publish=infos.append, topic_name="/out/camera_info"),
        compressed_pub=None,
        infos=InfoCache(5),
        stream="/",
        info_topic="/camera_info",
    )
    if info is not None:
        cam.infos.put(5 * SEC, info)
    fake = SimpleNamespace(
        cameras=[cam],
        context=SimpleNamespace(ok=lambda: True),
        lock=threading.Condition(),
        counts=Counter(),
        window=Counter(),
        latencies=deque(),
        ages=deque(),
        due=lambda key: True,
        get_logger=lambda: SimpleNamespace(warning=warned.append),
        get_clock=lambda: SimpleNamespace(now=lambda: rclpy.time.Time(nanoseconds=now_ns)),
    )
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    header = Image().header
    header.stamp.sec = 5
    meta = node_module.FrameMeta(0, header, "rgb8", None, time.monotonic(), (1.0, 1.0))
    out = SimpleNamespace(meta=meta, image=np.zeros((*size[::-1], 3), np.uint8), stamp=5 * SEC)
    node_module.DeblurNode.publish(fake, out)
    if fakes is not None:
        fakes.append(fake)
    return images, infos, fake.counts, warned


def test_an_output_without_camera_info_is_counted_as_missing():
    images, infos, counts, warned = publish_fake(None)
    assert len(images) == 1 and not infos
    assert counts["camera_info_missing"] == 1 and counts["published"] == 1
    assert len(warned) == 1 and "no camera_info received on /camera_info" in warned[0]
    assert "publishing images without /out/camera_info (" in warned[0]  # as remapped


def test_an_outputs_age_is_in_milliseconds_from_its_stamp():
    fakes: list = []
    publish_fake(None, fakes=fakes)
    assert list(fakes[0].ages) == [1000.0]  # stamped 5 s, published at 6 s
    publish_fake(None, fakes=fakes, now_ns=0)  # sim time before any /clock: no age to tell
    assert not fakes[1].ages


def test_a_camera_info_without_a_size_is_not_a_size_mismatch():
    """A camera_info left at 0x0 (no calibration loaded) describes no other resolution."""
    header = Image().header
    header.stamp.sec = 5
    images, infos, counts, warned = publish_fake(CameraInfo(header=header))
    assert len(images) == len(infos) == 1 and not warned
    assert "camera_info_size_mismatch" not in counts and counts["published"] == 1
    images, infos, counts, warned = publish_fake(CameraInfo(header=header, width=32, height=24))
    assert counts["camera_info_size_mismatch"] == 1 and "describes 32x24 images" in warned[0]


def diagnostics_fake():
    """A node's diagnostics state without ROS; its published statuses in ``fake.sent``."""
    import threading
    from collections import Counter, deque
    from types import SimpleNamespace

    from sarn_ros.engine import RESET_REASONS
    from sarn_ros.ros import node as node_module

    fake = SimpleNamespace(
        lock=threading.Condition(),
        counts=Counter(),
        window=Counter(),
        last_diag=time.monotonic() - 1.0,
        latencies=deque(),
        ages=deque(),
        inference_ms=deque(),
        overhead_ms=deque(),
        waits_ms=deque(),
        engine_stats={"resets": 0, "resets_by_reason": dict.fromkeys(RESET_REASONS, 0)},
        engine=SimpleNamespace(
            device="cpu",
            deform_path="grid_sample",
            precision="fp32",
            model_name="m",
            future_frames=2,
        ),
        self_ensemble=1,
        queue_policy="latest",
        compile_status=lambda: "off",
        get_fully_qualified_name=lambda: "/sarn_deblur",
        clock=SimpleNamespace(now=lambda: rclpy.time.Time(), ros_time_is_active=False),
        no_clock_since=None,
        warned=[],
        sent=[],
    )
    fake.get_clock = lambda: fake.clock
    fake.get_logger = lambda: SimpleNamespace(warning=lambda *a, **kw: fake.warned.append((*a, kw)))
    fake.diag_pub = SimpleNamespace(publish=lambda array: fake.sent.append(array.status[0]))
    fake.count = lambda key, n=1: node_module.DeblurNode.count(fake, key, n)
    fake.no_clock = lambda received: node_module.DeblurNode.no_clock(fake, received)

    def report():
        node_module.DeblurNode.publish_diagnostics(fake)
        status = fake.sent[-1]
        return status.level, status.message, {kv.key: kv.value for kv in status.values}

    return fake, report


def test_diagnostics_report_the_last_period_and_the_totals():
    """Rates, WARN and timings cover the period since the last report; counts are totals, and
    frames pending are those received and not yet published, dropped, idle or rejected."""
    from diagnostic_msgs.msg import DiagnosticStatus

    fake, report = diagnostics_fake()
    with fake.lock:
        for key, n in (("received", 6), ("published", 2), ("dropped", 1), ("rejected.encoding", 1)):
            fake.count(key, n)
        fake.latencies.extend([30.0, 10.0, 20.0])
    fake.engine_stats["resets"] = 1
    fake.engine_stats["resets_by_reason"]["gap"] = 1
    level, message, values = report()
    assert (level, message) == (DiagnosticStatus.WARN, "frames rejected or dropped")
    assert float(values["input fps"]) > 0 and values["frames pending"] == "2"
    assert values["latency ms (receive to publish, median)"] == "20.0"
    assert values["latency ms (receive to publish, max)"] == "30.0"
    assert values["resets.gap"] == "1" and "resets.resolution" not in values
    level, message, values = report()  # a quiet period
    assert (level, message) == (DiagnosticStatus.OK, "ok")
    assert values["input fps"] == "0.00" and values["frames pending"] == "2"
    assert values["latency ms (receive to publish, median)"] == "n/a"
    assert (values["rejected frames"], values["rejected.encoding"]) == ("1", "1")


def test_diagnostics_say_idle_only_while_nothing_is_published():
    from diagnostic_msgs.msg import DiagnosticStatus

    fake, report = diagnostics_fake()
    with fake.lock:
        fake.count("received", 2)
        fake.count("idle", 2)
    level, message, values = report()
    assert level == DiagnosticStatus.OK and message.startswith("idle: nothing subscribes")
    assert values["frames pending"] == "0"  # idle frames are done with, not waiting
    with fake.lock:  # a viewer came in this period
        fake.count("received", 2)
        fake.count("idle")
        fake.count("published")
    assert report()[:2] == (DiagnosticStatus.OK, "ok")


def test_frames_under_sim_time_without_a_clock_are_a_diagnostics_warning():
    """use_sim_time and a player without --clock: ROS time stands at 0, the stamp ages were
    -1.7e12 ms and nothing said why. Said (once) after a second of frames without /clock."""
    from diagnostic_msgs.msg import DiagnosticStatus

    fake, report = diagnostics_fake()
    fake.clock.ros_time_is_active = True
    assert report()[:2] == (DiagnosticStatus.OK, "ok")  # no frames yet: nothing to say
    with fake.lock:
        fake.count("received")
    assert report()[0] == DiagnosticStatus.OK  # the first /clock may still be on its way
    fake.no_clock_since -= 1.5
    for _ in range(2):
        level, message, _ = report()
        assert (level, message) == (
            DiagnosticStatus.WARN,
            "use_sim_time: ROS time stands at 0 (no /clock)",
        )
    with fake.lock:  # drops in the same period: both are said (drops alone hid the clock)
        fake.count("dropped")
    assert report()[1] == (
        "frames rejected or dropped; use_sim_time: ROS time stands at 0 (no /clock)"
    )
    assert "ros2 bag play --clock" in fake.warned[0][0]
    assert all(kw == {"once": True} for *_, kw in fake.warned)  # rclpy logs it once
    fake.clock.now = lambda: rclpy.time.Time(nanoseconds=5 * SEC)  # the player's /clock came
    assert report()[:2] == (DiagnosticStatus.OK, "ok") and fake.no_clock_since is None


def test_stop_ends_an_idle_worker_at_once():
    """A worker that missed the stop would be reported as in the middle of a frame, and main
    would leave the process with os._exit instead of a clean teardown."""
    import threading
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    fake = SimpleNamespace(
        lock=threading.Condition(),
        running=True,
        changes={},
        cameras=[],
        clock_s=lambda: (time.monotonic(), False),
        quiet_cameras=lambda now, sim: [],
    )
    fake.worker = threading.Thread(target=node_module.DeblurNode.work, args=(fake,), daemon=True)
    fake.worker.start()
    assert node_module.DeblurNode.stop(fake, wait_s=2.0) and not fake.worker.is_alive()


def test_a_quiet_cameras_held_frames_are_flushed_once_not_every_round():
    """The worker flushes a camera max_gap_s after its last frame, then sleeps: a camera still
    marked as holding would be flushed again at every 0.1 s wake-up of an idle node."""
    import threading
    from collections import deque
    from functools import partial
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    flushed: list[str | None] = []
    stats = {"resets_by_reason": {}, "frames_lost": 0}
    now = time.monotonic()
    cam = SimpleNamespace(
        queue=deque(),
        holding=True,
        last_taken=now,
        last_taken_wall=now,
        taken_on_ros_time=False,
        stream="left",
    )
    fake = SimpleNamespace(
        lock=threading.Condition(),
        running=True,
        changes={},
        cameras=[cam],
        lazy=False,
        max_gap_s=0.05,
        queue_policy="all",
        clock_s=lambda: (time.monotonic(), False),
        clock_stopped=lambda: False,
        engine=SimpleNamespace(
            flush=lambda stream=None: flushed.append(stream) or [], stats=lambda: stats
        ),
        engine_stats=stats,
        log_resets=lambda before, after: None,
        due=lambda key: pytest.fail(f"worker failed ({key})"),
    )
    methods = ("quiet_cameras", "take", "apply_changes", "run_round", "flush_stream", "frames_lost")
    for method in methods:
        setattr(fake, method, partial(getattr(node_module.DeblurNode, method), fake))
    fake.worker = threading.Thread(target=node_module.DeblurNode.work, args=(fake,), daemon=True)
    fake.worker.start()
    deadline = time.monotonic() + 10
    while not flushed and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.35)  # three more wake-ups of the idle worker
    assert node_module.DeblurNode.stop(fake, wait_s=2.0)
    assert flushed == ["left"] and not cam.holding


@pytest.mark.parametrize("taken_on_ros_time", [True, False])
def test_use_sim_time_set_live_leaves_no_held_frame_waiting_nor_flushes_early(taken_on_ros_time):
    """The last frame was taken on one clock, use_sim_time switched the node to the other:
    ROS time's 1.8e9 s against the monotonic clock held the look-ahead frames for good (to
    the wall clock), or flushed them at once (to ROS time). Quiet goes by the wall clock."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    wall = time.monotonic()
    ros_now = 1.8e9
    for taken_ago, expected in ((1.0, True), (0.1, False)):  # max_gap_s 0.5
        cam = SimpleNamespace(
            holding=True,
            last_taken=ros_now - taken_ago if taken_on_ros_time else wall - taken_ago,
            last_taken_wall=wall - taken_ago,
            taken_on_ros_time=taken_on_ros_time,
        )
        fake = SimpleNamespace(
            cameras=[cam],
            lazy=False,
            max_gap_s=0.5,
            clock_stopped=lambda: False,
        )
        now = wall if taken_on_ros_time else ros_now
        quiet = node_module.DeblurNode.quiet_cameras(fake, now, not taken_on_ros_time)
        assert (quiet == [cam]) == expected, (taken_ago, quiet)


def test_a_clock_sent_back_leaves_no_held_frame_waiting_for_it_to_catch_up():
    """A bag played again (or sought back) set /clock before the frames a camera last gave:
    its held look-ahead waited till ROS time passed them again (some 50 s in the report).
    Quiet then goes by the wall clock."""
    from types import SimpleNamespace

    from sarn_ros.ros import node as node_module

    wall = time.monotonic()
    for taken_ago, expected in ((1.0, True), (0.1, False)):  # max_gap_s 0.5
        cam = SimpleNamespace(
            holding=True,
            last_taken=100.5,  # sim time, before /clock went back to 50 s
            last_taken_wall=wall - taken_ago,
            taken_on_ros_time=True,
        )
        fake = SimpleNamespace(
            cameras=[cam], lazy=False, max_gap_s=0.5, clock_stopped=lambda: False
        )
        quiet = node_module.DeblurNode.quiet_cameras(fake, 50.0, True)
        assert (quiet == [cam]) == expected, (taken_ago, quiet)
