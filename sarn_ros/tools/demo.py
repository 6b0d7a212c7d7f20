"""`sarn demo`: the bundled sample through the real node over ROS 2, no camera needed.

Starts ``sarn_deblur_node`` in its own process (packaged config and weights, DDS kept on
loopback), plays the sample as a camera on ``image_raw`` + ``camera_info``, collects
``deblurred/image_raw`` and reports PSNR against the sample's ground truth, throughput and
latency. Writes a side-by-side strip (input | deblurred | sharp) and an mp4 to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np

from ..checkpoint import CheckpointError, load_model
from ..engine import onnx_refusal, resolve_device
from ..ensemble import MEMBERS
from ..image_files import imread, imwrite, video_path
from ..offline import FrameSink, InputError
from ..onnx_net import OnnxNet, is_onnx
from ..resources import die_with_parent, own_ros_domain
from .options import (
    HelpFormatter,
    add_domain_argument,
    check_writable,
    how_stopped,
    path_arg,
    plural,
    ranged,
    stops_as_interrupts,
)

SAMPLE = files("sarn_ros") / "sample"
DEMO_FPS = 10.0  # demo.mp4: slow enough to see each frame


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help=__doc__.split(":")[1].strip(),
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--weights", default="sarn_recurrent", help="checkpoint path or packaged name")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA if present, else the CPU), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--future-frames",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="blurred frames each output waits for (look-ahead; 0 = lowest latency)",
    )
    p.add_argument(
        "--self-ensemble",
        type=int,
        default=1,
        choices=MEMBERS,
        help="node self_ensemble: flipped passes averaged per frame (K times the compute)",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        default=Path("sarn_demo_out"),
        help="folder for demo_strip.png (input | deblurred | sharp) and demo.mp4",
    )
    p.add_argument(
        "--timeout",
        type=ranged(float, above=0),
        default=110.0,
        help="give up after this many seconds",
    )
    add_domain_argument(p, "demo")
    p.set_defaults(func=run)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def load_sample() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The sample's blurred frames and their ground truth, the pairs whose names both sides
    have (a demo_strip.png left in blur/ made the demo a traceback after its run)."""
    names = [
        sorted(p.name for p in (SAMPLE / kind).iterdir() if p.name.endswith(".png"))
        for kind in ("blur", "sharp")
    ]
    both = sorted(set(names[0]) & set(names[1]))

    def read(kind: str) -> list[np.ndarray]:
        return [imread(SAMPLE / kind / n, cv2.IMREAD_COLOR)[..., ::-1].copy() for n in both]

    return read("blur"), read("sharp")


def stop_node(proc: subprocess.Popen) -> str:
    """Stop the node (SIGTERM, its clean stop; killed after 20 s); returns what it printed.
    SIGTERM, not SIGINT: a node still importing torch (--timeout) then ends without the
    KeyboardInterrupt traceback a SIGINT would print into the demo's error message."""
    if proc.stdout is None or proc.stdout.closed:  # stopped and read already
        return ""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return (out or "").strip()


def run(args: argparse.Namespace) -> int:
    """`sarn demo`, SIGTERM and SIGHUP taken as Ctrl-C (`timeout`, a closed terminal)."""
    with stops_as_interrupts():
        return demo(args)


def demo(args: argparse.Namespace) -> int:
    blurred, sharp = load_sample()
    try:  # a single-image model ignores future_frames; say what the node really does (and
        recurrent = (  # weights it cannot build, as of another shape, before it starts)
            OnnxNet(args.weights).is_recurrent
            if is_onnx(args.weights)
            else type(load_model(args.weights)).__name__ == "RecurrentSARN"
        )
    except CheckpointError as exc:
        print(f"sarn demo: error: {exc}", file=sys.stderr)
        return 2
    try:  # known before the node runs, not from its log after it exited
        check_writable(args.out, "--out", folder=True)
        sample = Path(str(SAMPLE)).resolve()
        if args.out.resolve().is_relative_to(sample):  # read again by every later demo
            raise ValueError(f"--out {args.out} is inside the bundled sample ({sample})")
        for name in ("demo_strip.png", "demo.mp4"):  # a folder of that name: known now
            check_writable(args.out / name, "--out", folder=False)
        video_path(args.out / "demo.mp4")
        # an ONNX graph on CUDA: the node would start, then stop on it
        if is_onnx(args.weights) and (why := onnx_refusal(args.device, "fp32", False)):
            raise ValueError(why)
        resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        print(f"sarn demo: error: {exc}", file=sys.stderr)
        return 2
    look_ahead = args.future_frames if recurrent else 0
    own_ros_domain(args.domain_id)
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import CameraInfo, Image

    from ..resources import find_share_file, node_command, param_string
    from ..ros.image_conversion import image_to_numpy, numpy_to_image

    # a namespace of its own: two demos on one domain (--domain-id, or the same draw) had
    # each one's camera feed both nodes and took both nodes' outputs
    ns = f"/sarn_demo_{os.getpid()}"
    if args.domain_id is not None:  # to be watched: where
        print(f"sarn demo: ROS domain {args.domain_id}, topics under {ns}/", flush=True)
    cmd = [
        *node_command(),
        "--ros-args",
        "-r",
        f"__ns:={ns}",
        "--params-file",
        str(find_share_file("config/sarn_deblur.yaml")),
        "-p",
        f"weights:={param_string(args.weights)}",
        "-p",
        f"device:={param_string(args.device)}",
        "-p",
        f"future_frames:={args.future_frames}",
        "-p",
        f"self_ensemble:={args.self_ensemble}",
        "-p",
        "queue_policy:=all",
        "-p",
        "qos.subscription.reliability:=reliable",
        "-p",
        "qos.subscription.depth:=100",  # queue_size: every frame kept (intake_advice)
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent(),  # a demo killed (SIGKILL) leaves no node running
    )
    node = None
    try:  # from the Popen on: a Ctrl-C in the set-up left the node running, orphaned
        # Python's own Ctrl-C, and SIGTERM as Stopped: rclpy's handlers shut the context down
        # under the node being made (an RCLError) and raced the stop (130 for a SIGTERM)
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("sarn_demo_camera", namespace=ns)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Image, "image_raw", qos)  # relative: under ns
        info_pub = node.create_publisher(CameraInfo, "camera_info", qos)
        outputs: dict[int, tuple[np.ndarray, float]] = {}
        node.create_subscription(
            Image,
            "deblurred/image_raw",
            lambda m: outputs.__setitem__(
                m.header.stamp.nanosec, (image_to_numpy(m).copy(), time.monotonic())
            ),
            qos,
        )
        deadline = time.monotonic() + args.timeout
        while (
            pub.get_subscription_count() == 0 or node.count_publishers("deblurred/image_raw") == 0
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                alive = proc.poll() is None
                output = stop_node(proc)
                # its status: 0 for a stop of its own (a Ctrl-C the demo was started to ignore)
                why = f"was not up after --timeout {args.timeout:g} s"
                why = why if alive else f"exited ({proc.returncode})"
                output = output or "(it printed nothing)"
                print(f"sarn demo: error: the node {why}:\n{output}", file=sys.stderr)
                return 1
            rclpy.spin_once(node, timeout_sec=0.05)
        sent: dict[int, float] = {}
        start = time.monotonic()
        for i, frame in enumerate(blurred):
            msg = numpy_to_image(frame, "rgb8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1, i * 33_333_333  # a 30 fps camera
            msg.header.frame_id = "demo_camera"
            info = CameraInfo(header=msg.header, width=msg.width, height=msg.height)
            info_pub.publish(info)
            pub.publish(msg)
            sent[msg.header.stamp.nanosec] = time.monotonic()
            rclpy.spin_once(node, timeout_sec=1 / 30)
        while len(outputs) < len(blurred) and time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt as exc:
        how, code = how_stopped(exc)
        print(f"sarn demo: {how}; stopping the node", file=sys.stderr)
        return code
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        ended = proc.poll()  # of itself, before the stop below
        node_log = stop_node(proc)
    if len(outputs) < len(blurred):
        died = "" if ended is None else f" (the node exited ({ended}))"
        print(
            f"sarn demo: error: {len(outputs)} of {len(blurred)} frames came back in time"
            f"{died}; the node's log:\n{node_log or '(it printed nothing)'}",
            file=sys.stderr,
        )
        return 1
    deblurred, latency, rate = stream_figures(outputs, sent, start, look_ahead)
    # the figures first: a stop while the video is written keeps them on the screen
    print(report(args, look_ahead, blurred, sharp, deblurred, latency, rate), flush=True)
    try:
        write_outputs(args.out, blurred, deblurred, sharp)
    except OSError as exc:
        print(f"sarn demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # the node is stopped already: one line, as above
        how, code = how_stopped(exc)
        print(f"sarn demo: {how}; {args.out} not written", file=sys.stderr)
        return code
    print(f"  wrote {args.out / 'demo_strip.png'} and {args.out / 'demo.mp4'}")
    return 0


def stream_figures(
    outputs: dict[int, tuple[np.ndarray, float]],
    sent: dict[int, float],
    start: float,
    look_ahead: int,
) -> tuple[list[np.ndarray], list[float], float]:
    """The deblurred frames in stream order, each one's latency from its own publishing (s),
    and the throughput, from the outputs and publish times by stamp."""
    stamps = sorted(outputs)
    latency = [outputs[k][1] - sent[k] for k in stamps]
    rate = stream_rate([outputs[k][1] for k in stamps], start, look_ahead)
    return [outputs[k][0] for k in stamps], latency, rate


def report(
    args: argparse.Namespace,
    look_ahead: int,
    blurred: list[np.ndarray],
    sharp: list[np.ndarray],
    deblurred: list[np.ndarray],
    latency: list[float],
    rate: float,
) -> str:
    """What the demo measured: quality against the sample's ground truth, and speed."""
    p_in = np.mean([psnr(b, s) for b, s in zip(blurred, sharp, strict=True)])
    p_out = np.mean([psnr(d, s) for d, s in zip(deblurred, sharp, strict=True)])
    h, w = blurred[0].shape[:2]
    return "\n".join(
        [
            f"sarn demo: {len(blurred)} frames {w}x{h} through sarn_deblur_node ({args.weights}, "
            f"look-ahead {plural(look_ahead, 'frame')}, self-ensemble x{args.self_ensemble})",
            f"  PSNR input {p_in:.2f} dB -> deblurred {p_out:.2f} dB  "
            f"(gain {p_out - p_in:+.2f} dB)",
            f"  throughput {rate:.2f} fps, latency publish->receive median "
            f"{np.median(latency) * 1e3:.0f} ms (frames sent at 30 fps queue behind the model; "
            f"includes {plural(look_ahead, 'frame')} of look-ahead)",
        ]
    )


def stream_rate(received: list[float], start: float, look_ahead: int) -> float:
    """Frames per second from ``start`` to each output's arrival (in stream order), up to the
    last one the stream drove out: the node sends the last ``look_ahead`` frames only once
    max_gap_s passes without a next frame, a wait on the stream's end, not on the model."""
    timed = max(len(received) - look_ahead, 1)
    return timed / max(received[timed - 1] - start, 1e-9)


def write_outputs(out: Path, blurred: list, deblurred: list, sharp: list) -> None:
    """The video, then the strip, each written beside its name and moved there whole (a stop
    mid-video left one that did not play): a stop in the seconds of the video leaves both of
    an earlier run, not a new strip beside an old video. OSError where OpenCV could not write
    them."""
    out = Path(os.path.realpath(out))  # `new/../out`: no `new` made
    out.mkdir(parents=True, exist_ok=True)
    rows = [np.hstack([b, d, s]) for b, d, s in zip(blurred, deblurred, sharp, strict=True)]
    try:
        with FrameSink(out / "demo.mp4", DEMO_FPS, whole_only=True) as video:  # sarn deblur's
            for r in rows:
                video.write(r, "demo.mp4")
    except InputError as exc:  # OpenCV's writer did not open, or its file was cut short
        raise OSError(str(exc)) from None
    imwrite(out / "demo_strip.png", np.vstack(rows[:4])[..., ::-1])
