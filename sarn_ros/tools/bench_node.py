"""`sarn bench node`: the real sarn_deblur_node, end to end over DDS, at camera rate.

For each frame size a fresh node process is started by its console script (own ROS domain
and namespace, loopback only, the packaged Fast DDS shared-memory profile; ``max_gap_s`` 2.5
frame periods under 5 fps, so a slow camera is one stream) and fed rgb8 frames (or their
JPEG with ``--input-transport compressed``) by a best-effort publisher at ``--fps``, like a
camera driver. Reported per size:

- in fps: frames published per second of the measurement; out fps: the rate at which the
  measured frames' outputs came out (first to last; the last ones after the window, the
  pipeline's delay later, count too).
- drop %: frames published but never received (``latest`` drops stale frames by design when
  the model is slower than the camera). Under ``all`` the benchmark waits for the backlog
  while outputs keep coming, up to 2 minutes after the measurement.
- e2e ms: publish -> receive of the deblurred frame (median, 95th percentile). With
  ``--future-frames`` > 0 this includes waiting for the look-ahead frames; the default 0
  measures pure processing. The last ``--future-frames`` frames, which wait for the end of
  the stream (``max_gap_s``) instead, are left out.
- inference ms: the node's engine call per worker round, which takes one frame of every
  camera (mean, from /diagnostics).
- node ms: the node's own per-frame work beside the model (decoding, conversion, resize,
  message building, JPEG encoding with ``--publish-compressed``, publishing; mean, from
  /diagnostics). This is the overhead the node adds.
- e2e - inference: everything that is not the model: both DDS hops, the wait in the intake
  slot and the node's own work (mean e2e minus mean inference).
- callback -> publish ms: inside the node, from the subscription callback to the publish of
  the result (the node's per-period medians, averaged), i.e. e2e without the two DDS hops.

Percentiles interpolate linearly between frames (``numpy.percentile``); the node's per-period
means and medians are averaged weighted by the frames each period published.
- CPU %: node process CPU time over wall time (100 % = one core); RSS: node memory at the
  start and end of the measurement, its range sampled once a second and the least-squares
  trend of those samples in MiB per minute (flat under overload with ``latest``; a long
  ``--duration`` shows a leak as a steady positive trend; runs under a minute print none, as
  their first seconds' allocations read as one).
- With ``--publish-compressed`` the benchmark also subscribes to the JPEG output (so it is
  sent, as to a recorder) and the JSON rows count the outputs that came as JPEG and as raw.
- complete sets (``--cameras`` > 1): of the stamps that came out on any camera, how many came
  out on every camera. The cameras are synchronised (one stamp per set, as a stereo rig's),
  so this is what stereo SLAM can pair; in/out fps are then means per camera and the e2e
  percentiles are over the frames of all cameras.

The benchmark's own publisher/subscriber runs in this process on the same machine, so on a
small CPU it competes with the node; ``--tiny`` swaps in an untrained small network to show
the node's own overhead at camera rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..checkpoint import CheckpointError, load_model
from ..engine import onnx_refusal, resolve_device
from ..ensemble import MEMBERS
from ..image_files import kernel_path
from ..onnx_net import OnnxNet, is_onnx
from ..resources import (
    die_with_parent,
    find_share_file,
    node_command,
    own_ros_domain,
    param_string,
)
from .options import (
    Gathered,
    add_domain_argument,
    check_json_output,
    file_arg,
    how_stopped,
    plural,
    ranged,
    say_json_kept,
    stops_as_interrupts,
    stops_held,
)

# what a --json row records of the run beside its size and figures
RUN_SETTINGS = (
    *("device", "precision", "fps", "duration", "future_frames", "queue_policy"),
    *("self_ensemble", "torch_compile", "threads", "input_transport", "publish_compressed"),
    "stagger",
)
PENDING_SETTLE_S = 0.5  # the outputs published before "frames pending" read 0 still arrive
DRAIN_CAP_S = 120.0  # a backlog still coming out this long after the measurement is dropped
# the wait for a node's first output on every camera; with torch_compile the compile runs in it,
# which took 130 s at 32x32 on the 2-core CPU under load (longer at large sizes)
WARM_UP_S = 120.0
COMPILE_WARM_UP_S = 900.0
MAX_SIDE = 8192  # --sizes: a frame this side builds and sends (8K); a larger one ran out of memory
# --cameras: a rig's cameras; 1000 took minutes to warm up, past any sensible wait
MAX_CAMERAS = 16
TREND_MIN_S = 60.0  # the RSS trend of a shorter run is its warm-up allocations, not a leak


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--weights", default="sarn_recurrent", help="checkpoint path or name")
    model.add_argument(
        "--tiny",
        action="store_true",
        help="use an untrained small RecurrentSARN (isolates the node's overhead)",
    )
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "bf16"),
        help="node precision (fp16 on CUDA only)",
    )
    parser.add_argument(
        "--sizes",
        type=lambda t: [t],
        action=Gathered,
        default=["640x480,1280x720"],
        help="WxH list (default 640x480,1280x720)",
    )
    parser.add_argument(
        # down to 0.001: the node's max_gap_s, 2.5 periods (gap_s), holds up to 3600 s
        "--fps",
        type=ranged(float, 0.001, 1000),
        default=30.0,
        help="camera rate",
    )
    parser.add_argument(
        "--duration", type=ranged(float, above=0), default=10.0, help="seconds measured per size"
    )
    parser.add_argument(
        "--future-frames", type=int, default=0, choices=(0, 1, 2), help="node future_frames"
    )
    parser.add_argument(
        "--queue-policy", default="latest", choices=("latest", "all"), help="node queue_policy"
    )
    parser.add_argument(
        "--self-ensemble", type=int, default=1, choices=MEMBERS, help="node self_ensemble"
    )
    parser.add_argument(
        "--torch-compile",
        action="store_true",
        help="node torch_compile (the compile runs in the warm-up, before the measurement)",
    )
    parser.add_argument(
        "--threads",
        type=ranged(int, 0, 256),  # the node's cpu_threads range
        default=0,
        help="node cpu_threads (0 = PyTorch's default, one per core unless OMP_NUM_THREADS)",
    )
    parser.add_argument(
        "--input-transport",
        default="raw",
        choices=("raw", "compressed"),
        help="node input_transport: compressed publishes each frame as JPEG (quality 90) on "
        "image_raw/compressed, as a camera's image_transport republisher, for the node to decode",
    )
    parser.add_argument(
        "--publish-compressed",
        action="store_true",
        help="node publish_compressed (a JPEG of each output beside the raw image)",
    )
    parser.add_argument(
        "--cameras",
        type=ranged(int, 1, MAX_CAMERAS),
        default=1,
        metavar="N",
        help="N synchronised cameras served by one node process, in namespaces cam0..cam<N-1> "
        "(cam0/image_raw -> cam0/deblurred/image_raw, ...); the frames of a set share one "
        "stamp, as a stereo rig's",
    )
    parser.add_argument(
        "--stagger",
        type=ranged(float, 0, below=1),
        default=0.0,
        metavar="F",
        help="with --cameras N > 1: each next camera's frame is published F of a period after "
        "the previous one's (0: back to back, as from one driver; 0.5: two drivers half a "
        "frame apart); F * (N - 1) < 1",
    )
    parser.add_argument(
        "--json",
        type=file_arg,
        help="also write the rows as JSON here, each with the run's settings (the --sizes "
        "asked for, and complete: false for a run stopped or failed part-way); an existing "
        "JSON file is replaced (kept, and said, by a run that measured nothing)",
    )
    add_domain_argument(parser, "benchmark")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'640x480,1280x720' -> [(640, 480), (1280, 720)], each once (a size given twice was
    measured twice); ValueError for none, or below 8 px or above MAX_SIDE a side."""
    sizes = []
    for item in filter(str.strip, text.split(",")):  # '64x48,' as bench model takes it
        w, _, h = item.strip().lower().partition("x")
        sizes.append((int(w), int(h)))
    if not sizes or any(min(size) < 8 or max(size) > MAX_SIDE for size in sizes):
        raise ValueError("below 8 px or above MAX_SIDE")
    return list(dict.fromkeys(sizes))


def flushed_stamps(sent: dict[tuple[int, int], float], future_frames: int) -> set[int]:
    """The stamps of the last ``future_frames`` sets: their outputs waited for the end of the
    stream (max_gap_s), not for look-ahead frames, which is not what a running camera sees."""
    stamps = sorted({stamp for _, stamp in sent})
    return set(stamps[len(stamps) - future_frames :]) if future_frames else set()


def measured_periods(
    diags: list[dict[str, str]],
    diag_times: list[float],
    received: dict[tuple[int, int], float],
    flushed: set[int],
) -> list[dict[str, str]]:
    """The node's diagnostics periods (those since the measurement began, with the times they
    came) up to the first output of a ``flushed`` stamp: those after it hold the max_gap_s
    wait of the frames flushed at the stream's end (callback -> publish 1087 ms beside an e2e
    mean of 796 at 4 fps), which a running camera's frames never see."""
    cut = min((t for (_, s), t in received.items() if s in flushed), default=math.inf)
    return [d for d, t in zip(diags, diag_times, strict=True) if t < cut] or diags


def rates(
    sent: dict[tuple[int, int], float],
    received: dict[tuple[int, int], float],
    wall: float,
    flushed: set[int] | frozenset[int] = frozenset(),
) -> dict[str, float]:
    """Per camera (keys are (camera, stamp)): its rate over the measured window [t0, t0 +
    wall], the rate at which its measured frames came out (first output to last: outputs lag
    the frames by the pipeline's delay, so those of the window's last frames come after it;
    the ``flushed`` stamps left out, as from the e2e figures), and the share of frames never
    deblurred. Out rates are taken camera by camera: n outputs of 2 cameras over one span
    are not 2n - 1 intervals; none above the camera's own rate, which no node keeps up (a
    few outputs' span is mostly how their latencies differ)."""
    cameras = sorted({k for k, _ in sent})
    in_fps = len(sent) / wall / len(cameras)
    out_fps = []
    for cam in cameras:
        out = sorted(
            t
            for (k, stamp), t in received.items()
            if k == cam and (k, stamp) in sent
            if stamp not in flushed
        )
        span = out[-1] - out[0] if len(out) > 1 else 0.0
        rate = (len(out) - 1) / span if span > 0 else len(out) / wall
        out_fps.append(min(rate, in_fps))  # 3 outputs whose latency fell read 2.5 fps of 2 in
    came = sum(s in received for s in sent)
    return {
        "in_fps": in_fps,
        "out_fps": statistics.fmean(out_fps),
        "drop_pct": 100.0 * (1 - came / len(sent)),
    }


def complete_sets(received: set[tuple[int, int]], cameras: int) -> dict[str, int | float]:
    """Of the stamps that came out on any camera, how many came out on all ``cameras``
    (``received`` holds (camera, stamp) pairs)."""
    per_stamp: dict[int, int] = {}
    for _, stamp in received:
        per_stamp[stamp] = per_stamp.get(stamp, 0) + 1
    complete = sum(1 for n in per_stamp.values() if n == cameras)
    return {
        "sets_out": len(per_stamp),
        "sets_complete": complete,
        "complete_pct": 100.0 * complete / len(per_stamp) if per_stamp else float("nan"),
    }


def rss_trend(samples: list[tuple[float, float]]) -> dict[str, float | int]:
    """Range and least-squares slope (MiB per minute) of (seconds, MiB) samples: a range alone
    cannot tell a slow leak from allocator noise. NaN under TREND_MIN_S of samples."""
    t, mib = np.array(samples).T
    long_enough = len(samples) > 2 and t[-1] - t[0] >= TREND_MIN_S
    slope = float(np.polyfit(t, mib, 1)[0]) * 60 if long_enough else float("nan")
    return {
        "rss_mib_min": float(mib.min()),
        "rss_mib_max": float(mib.max()),
        "rss_mib_per_min": slope,
        "rss_samples": len(samples),
    }


def camera_names(count: int) -> list[str]:
    """The node's ``cameras`` parameter: its own namespace for one camera, else cam0, cam1..."""
    return [""] if count == 1 else [f"cam{k}" for k in range(count)]


def tiny_checkpoint(directory: Path) -> Path:
    import torch

    from ..archs import RecurrentSARN
    from ..checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    return save_checkpoint(model, directory / "tiny_recurrent.pth", meta={"note": "bench"})


class ProcessMeter:
    """CPU time and RSS of one process from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def nothing_pending(diags: list[dict[str, str]]) -> bool:
    """Whether a diagnostics period says the node holds no frame: every frame it received is
    published, dropped, idle or rejected (its "frames pending", which counts look-ahead too)."""
    return any(d.get("frames pending") == "0" for d in diags)


def times_ms(diags: list[dict[str, str]], key: str) -> list[float]:
    """The values of ``key`` in diagnostics messages that had one ("n/a" when no frame)."""
    return [float(d[key]) for d in diags if d.get(key, "n/a") != "n/a"]


def frame_weighted_mean(diags: list[dict[str, str]], key: str) -> float:
    """The mean of a per-period figure over the periods, each weighted by the frames it
    published (its output fps: the periods are equal): a period of 1 frame must not count
    as much as one of 10. NaN where no period has the figure."""
    pairs = [
        (float(d[key]), float(d.get("output fps", 0))) for d in diags if d.get(key, "n/a") != "n/a"
    ]
    weight = sum(w for _, w in pairs)
    if not pairs:
        return math.nan
    if weight <= 0:  # figures without outputs (cannot happen with inference): plain mean
        return statistics.fmean(v for v, _ in pairs)
    return sum(v * w for v, w in pairs) / weight


def bench_namespace() -> str:
    """The node's and the bench's namespace: two benches on one domain (a --domain-id given
    twice, or the same draw) fed each other's nodes and averaged both nodes' diagnostics."""
    return f"/sarn_bench_{os.getpid()}"


def gap_s(fps: float) -> float:
    """The node's ``max_gap_s`` for a camera at ``fps``: the packaged 0.5 s, or 2.5 periods
    for a camera slower than 5 fps (at 2 fps and below the 0.5 s restarted the stream at
    every frame: no inference figure, and e2e was the wait for the end of a stream)."""
    return max(0.5, 2.5 / fps)


def node_args(weights: str, args: argparse.Namespace) -> list[str]:
    cmd = node_command()
    params = {
        "weights": param_string(weights),
        "device": param_string(args.device),
        "precision": args.precision,
        "future_frames": args.future_frames,
        "queue_policy": args.queue_policy,
        "self_ensemble": args.self_ensemble,
        "torch_compile": str(args.torch_compile).lower(),
        "cpu_threads": args.threads,
        "input_transport": args.input_transport,
        "publish_compressed": str(args.publish_compressed).lower(),
        "diagnostics_period_s": 0.5,
        "max_megapixels": 67.2,  # every --sizes the bench takes (8192 a side) is measured
        "max_gap_s": gap_s(args.fps),
    }
    if args.cameras > 1:
        params["cameras"] = "[" + ", ".join(camera_names(args.cameras)) + "]"
    cmd += ["--ros-args", "-r", f"__ns:={bench_namespace()}"]
    cmd += ["--params-file", str(find_share_file("config/sarn_deblur.yaml"))]
    for name, value in params.items():
        cmd += ["-p", f"{name}:={value}"]
    return [*cmd, "--log-level", "warn"]


def log_tail(log: Any, lines: int = 3) -> str:
    """The last lines the node wrote (its log file), for an error message."""
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return " / ".join(text[-lines:]) if text else "(it logged nothing)"


def bench_size(
    weights: str, size: tuple[int, int], args: argparse.Namespace, rows: list[dict[str, Any]]
) -> None:
    """One node process, one frame size: warm up, then publish at --fps for --duration; the
    row goes into ``rows`` before the node is stopped (a Ctrl-C then keeps it)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from ..ros.image_conversion import numpy_to_compressed, numpy_to_image
    from ..ros.node import stamp_ns

    # a file, not a pipe nobody reads: a long run's warnings would fill a pipe and stall the node
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally that stops the node)
    proc = subprocess.Popen(  # the node goes with the bench, also when it is SIGKILLed
        node_args(weights, args),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(),
    )
    node = None
    try:  # from the Popen on: a Ctrl-C in the set-up left the node running, orphaned
        meter = ProcessMeter(proc.pid)
        # Python's own Ctrl-C, and SIGTERM as Stopped: rclpy's handlers shut the context down
        # under the node being made (an RCLError) and raced the stop (130 for a SIGTERM)
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("sarn_bench_node", namespace=bench_namespace())
        w, h = size
        rng = np.random.default_rng(0)
        frame = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
        camera_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        cams = []
        received: dict[tuple[int, int], float] = {}
        jpegs: set[tuple[int, int]] = set()
        for k, name in enumerate(camera_names(args.cameras)):
            prefix = f"{name}/" if name else ""
            if args.input_transport == "compressed":
                msg = numpy_to_compressed(frame, "rgb8", quality=90)
                pub = node.create_publisher(
                    CompressedImage, f"{prefix}image_raw/compressed", camera_qos
                )
            else:
                msg = numpy_to_image(frame, "rgb8")
                pub = node.create_publisher(Image, f"{prefix}image_raw", camera_qos)
            msg.header.frame_id = name or "bench"
            info_pub = node.create_publisher(CameraInfo, f"{prefix}camera_info", camera_qos)
            cams.append((msg, CameraInfo(width=w, height=h), pub, info_pub))

            def on_image(out: Image, k: int = k) -> None:
                received[k, stamp_ns(out.header)] = time.monotonic()

            node.create_subscription(Image, f"{prefix}deblurred/image_raw", on_image, 10)
            if args.publish_compressed:  # a subscriber, so the JPEGs are sent, and counted

                def on_jpeg(out: CompressedImage, k: int = k) -> None:
                    jpegs.add((k, stamp_ns(out.header)))

                node.create_subscription(
                    CompressedImage, f"{prefix}deblurred/image_raw/compressed", on_jpeg, 10
                )
        diags: list[dict[str, str]] = []
        diag_times: list[float] = []  # when each came

        def on_diag(array: DiagnosticArray) -> None:
            for status in array.status:
                if status.name.startswith(f"{bench_namespace()}/"):  # this bench's node only
                    diags.append({kv.key: kv.value for kv in status.values})
                    diag_times.append(time.monotonic())

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

        def spin_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            rclpy.spin_once(node, timeout_sec=0)  # behind schedule, outputs still get stamped
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=max(0.0, min(0.01, end - time.monotonic())))

        period = 1.0 / args.fps

        def send_set() -> dict[tuple[int, int], float]:
            """One frame per camera, all with one stamp, ``--stagger`` periods apart."""
            stamp = time.time_ns()
            times: dict[tuple[int, int], float] = {}
            for k, (msg, info, pub, info_pub) in enumerate(cams):
                if k:
                    spin_for(args.stagger * period)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                info.header = msg.header
                info_pub.publish(info)
                times[k, stamp] = time.monotonic()
                pub.publish(msg)
            return times

        def connected() -> bool:
            return all(pub.get_subscription_count() for _, _, pub, _ in cams)

        def warm() -> bool:
            return len({k for k, _ in received}) == len(cams)

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited ({proc.returncode}): {log_tail(log)}")

        wait_s = WARM_UP_S
        deadline = time.monotonic() + wait_s
        while not connected() and time.monotonic() < deadline:
            alive()
            spin_for(0.1)
        if connected() and args.torch_compile:  # a node that never subscribes is not compiling
            wait_s = COMPILE_WARM_UP_S
            deadline = time.monotonic() + wait_s
        while not warm() and time.monotonic() < deadline:  # warm-up: output on every camera
            alive()
            send_set()
            spin_for(1.0)
        if not warm():
            rejected = {k: v for k, v in (diags[-1] if diags else {}).items() if "rejected" in k}
            compiling = " (the torch_compile of this size included)" if wait_s != WARM_UP_S else ""
            raise RuntimeError(
                f"the node produced no output within {wait_s:g} s{compiling} "
                f"({rejected or 'no frame rejected'}; its log: {log_tail(log)})"
            )
        # the warm-up's backlog (under queue_policy all, a frame a second while a compile ran)
        # comes out before the measurement, not into it; it is out once the node says so
        # (the quiet wait alone idled twice the compile's minute per size)
        quiet_s = max(1.0, 2 * max(times_ms(diags, "inference ms (mean)"), default=0) / 1e3)
        seen, end, cap = len(received), time.monotonic() + quiet_s, time.monotonic() + DRAIN_CAP_S
        since = len(diags)
        while time.monotonic() < min(end, cap):
            spin_for(0.1)
            if len(received) > seen:
                seen, end = len(received), time.monotonic() + quiet_s
            elif nothing_pending(diags[since:]):
                end = min(end, time.monotonic() + PENDING_SETTLE_S)
        received.clear()
        n_diag = len(diags)

        sent: dict[tuple[int, int], float] = {}
        cpu0, rss0, t0 = meter.cpu_s(), meter.rss_mib(), time.monotonic()
        rss_samples, next_rss = [(0.0, rss0)], t0 + 1.0
        next_t = t0
        while time.monotonic() < t0 + args.duration:
            sent.update(send_set())
            next_t += period
            spin_for(max(0.0, next_t - time.monotonic()))
            if time.monotonic() >= next_rss:  # once a second: a long run shows any growth
                alive()  # a node that died mid-run gave a row of drops, and exit 0
                rss_samples.append((time.monotonic() - t0, meter.rss_mib()))
                next_rss += 1.0
        wall = time.monotonic() - t0
        cpu1, rss1 = meter.cpu_s(), meter.rss_mib()
        rss_samples.append((wall, rss1))
        # the drain: a backlog (queue_policy all on a slow device) still comes out while it
        # flows, so its frames are not counted as dropped
        # the measured periods' (not a warm-up compile's); none where no frame finished in the
        # window (1080p on a CPU): all, or the wait was 3 s for a 16 s frame
        key = "inference ms (mean)"
        measured = times_ms(diags[n_diag:], key) or times_ms(diags, key)
        quiet_s = max(3.0, 2 * max(measured, default=0) / 1e3)
        if args.future_frames:  # the look-ahead's frames come at the stream's end
            quiet_s = max(quiet_s, gap_s(args.fps) + 1.0)
        end, cap, seen = time.monotonic() + quiet_s, time.monotonic() + DRAIN_CAP_S, 0
        while time.monotonic() < min(end, cap):  # the diagnostics of the last frames too
            spin_for(0.1)
            if len(received) > seen and any(s not in received for s in sent):
                seen, end = len(received), time.monotonic() + quiet_s
        alive()
        flushed = flushed_stamps(sent, args.future_frames)
        window = measured_periods(diags[n_diag:], diag_times[n_diag:], received, flushed)
        window = window or diags[-1:]
        rows.append(row(size, args, len(cams), sent, received, jpegs, window, cpu1 - cpu0, wall))
        rows[-1].update(rss_mib_start=rss0, rss_mib_end=rss1, **rss_trend(rss_samples))
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        except KeyboardInterrupt:  # Ctrl-C during the wait: no node is left behind
            proc.kill()
            raise
        finally:
            proc.wait()
            log.close()


def nan_as_null(value: Any) -> Any:
    """NaN (a figure a short run has none of) as JSON null: Python's NaN is no JSON, and jq
    and JSON.parse reject the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_as_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_as_null(v) for v in value]
    return value


def row(
    size: tuple[int, int],
    args: argparse.Namespace,
    cameras: int,
    sent: dict[tuple[int, int], float],
    received: dict[tuple[int, int], float],
    jpegs: set[tuple[int, int]],
    window: list[dict[str, str]],
    cpu_s: float,
    wall: float,
) -> dict[str, Any]:
    """The figures of one size from what was sent (at its publish times) and received (at
    theirs) in ``wall`` seconds, the node's diagnostics of that ``window`` and the CPU time it
    used meanwhile."""
    last = flushed_stamps(sent, args.future_frames)
    latencies = [(received[s] - sent[s]) * 1e3 for s in sent if s in received and s[1] not in last]

    def diag_mean(key: str) -> float:
        return frame_weighted_mean(window, key)

    inference = diag_mean("inference ms (mean)")
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (math.nan, math.nan)
    e2e_mean = statistics.fmean(latencies) if latencies else math.nan
    out = set(received) & set(sent)  # outputs of the measured frames, not of the warm-up
    return {
        "size": f"{size[0]}x{size[1]}",
        "cameras": cameras,
        **rates(sent, received, wall, last),
        **(complete_sets(out, cameras) if cameras > 1 else {}),
        "e2e_ms_p50": float(p50),
        "e2e_ms_p95": float(p95),
        "e2e_ms_mean": e2e_mean,
        "inference_ms": inference,
        "node_ms": diag_mean("node overhead ms per frame (mean)"),
        "node_latency_ms": diag_mean("latency ms (receive to publish, median)"),
        "intake_wait_ms": diag_mean("intake wait ms (receive to worker, median)"),
        "e2e_minus_inference_ms": e2e_mean - inference,  # like from like: mean - mean
        "cpu_pct": 100.0 * cpu_s / wall,
        # as the node ran: on, off, or "failed, eager" where asked (the header said "true")
        "torch_compile": window[-1].get("torch_compile", "n/a") if window else "n/a",
        **(
            {"jpeg_out": len(jpegs & set(sent)), "raw_out": len(out)}
            if args.publish_compressed
            else {}
        ),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    sets = any(r["cameras"] > 1 for r in rows)
    per_camera = " per camera" if sets else ""
    columns = [
        "size",
        f"in fps{per_camera}",
        f"out fps{per_camera}",
        "drop %",
        "e2e ms p50",
        "e2e ms p95",
        "inference ms",
        "node ms",
        "e2e - inference ms",
        "callback -> publish ms",
        "node CPU %",
        "node RSS MiB (start -> end (range, trend))",
    ] + (["complete sets (of those out)"] if sets else [])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        cells = [
            r["size"],
            f"{r['in_fps']:.1f}",
            f"{r['out_fps']:.1f}",
            f"{r['drop_pct']:.0f}",
            f"{r['e2e_ms_p50']:.1f}",
            f"{r['e2e_ms_p95']:.1f}",
            f"{r['inference_ms']:.1f}",
            f"{r['node_ms']:.2f}",
            f"{r['e2e_minus_inference_ms']:.1f}",
            f"{r['node_latency_ms']:.1f}",
            f"{r['cpu_pct']:.0f}",
            f"{r['rss_mib_start']:.0f} -> {r['rss_mib_end']:.0f} "
            f"({r['rss_mib_min']:.0f}-{r['rss_mib_max']:.0f}, "
            + (
                f"{r['rss_mib_per_min']:+.1f}/min)"
                if math.isfinite(r["rss_mib_per_min"])
                else f"trend n/a under {TREND_MIN_S:.0f} s)"
            ),
        ]
        if sets:
            cells.append(
                f"{r['sets_complete']} of {r['sets_out']} ({r['complete_pct']:.0f} %)"
                if "sets_out" in r
                else "-"
            )
        print("| " + " | ".join(cells) + " |")


def run(args: argparse.Namespace) -> int:
    try:
        sizes = parse_sizes(",".join(args.sizes))
    except ValueError:
        print(
            f"sarn bench node: error: --sizes must be WxH[,WxH...], 8 to {MAX_SIDE} px a "
            f"side, got {' '.join(args.sizes)!r}",
            file=sys.stderr,
        )
        return 2
    if args.stagger and args.cameras == 1:
        print("sarn bench node: error: --stagger needs --cameras > 1", file=sys.stderr)
        return 2
    if args.stagger * (args.cameras - 1) >= 1:
        print(
            "sarn bench node: error: --stagger F: a set must end within its period "
            "(F * (cameras - 1) < 1)",
            file=sys.stderr,
        )
        return 2
    try:  # said at once, not by the node 15 s later
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        print(f"sarn bench node: error: {exc}", file=sys.stderr)
        return 2
    graph = not args.tiny and is_onnx(args.weights)
    if graph and (why := onnx_refusal(args.device, args.precision, args.torch_compile)):
        # each node it starts would stop with this
        print(f"sarn bench node: error: {why}", file=sys.stderr)
        return 2
    if args.precision == "fp16" and device.type == "cpu":
        print(  # the node would run fp32 under the label fp16 (its warning unseen)
            "sarn bench node: error: --precision fp16 runs on CUDA only (the node runs fp32 on "
            "a CPU); bf16 is the CPU's half precision",
            file=sys.stderr,
        )
        return 2
    if args.duration * args.fps < 1:
        print(
            f"sarn bench node: error: --duration {args.duration:g} s at --fps {args.fps:g} "
            f"is under one frame period: give at least {math.ceil(1e6 / args.fps) / 1e6:g} s",
            file=sys.stderr,
        )
        return 2
    if args.duration * args.fps < 1 + args.future_frames:  # a row of nan, out fps 0, exit 0
        print(
            f"sarn bench node: error: --duration {args.duration:g} s at --fps {args.fps:g} "
            f"measures no frame: the last --future-frames {args.future_frames} wait for the "
            "end of the stream and are not counted",
            file=sys.stderr,
        )
        return 2
    try:  # said at once, not as the node's exit at the first size (built, as the node does:
        if graph:  # weights of another shape, or NaN, read fine)
            OnnxNet(args.weights)
        elif not args.tiny:
            load_model(args.weights)
    except CheckpointError as exc:
        print(f"sarn bench node: error: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        try:  # known before the benchmark, not after it
            check_json_output(args.json)
        except ValueError as exc:
            print(f"sarn bench node: error: {exc}", file=sys.stderr)
            return 2
    own_ros_domain(args.domain_id)
    rows: list[dict[str, Any]] = []
    failed = False
    stop: KeyboardInterrupt | None = None
    # `timeout`'s SIGTERM or a closed terminal's SIGHUP as Ctrl-C: between sizes (a node
    # stopping) they ended the process with every row measured lost
    with tempfile.TemporaryDirectory() as tmp, stops_as_interrupts():
        weights = str(tiny_checkpoint(Path(tmp))) if args.tiny else args.weights
        for size in sizes:
            try:
                bench_size(weights, size, args, rows)
            except (RuntimeError, cv2.error, MemoryError) as exc:  # the sizes done still count
                print(f"sarn bench node: error at {size[0]}x{size[1]}: {exc}", file=sys.stderr)
                failed = True
                break
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: the sizes done count
                stop = exc
                break
    model = "tiny untrained RecurrentSARN" if args.tiny else args.weights
    rig = "" if args.input_transport == "raw" else "input JPEG (image_raw/compressed), "
    if args.publish_compressed:
        rig += "publish_compressed, "
    if args.cameras > 1:
        apart = f"{args.stagger:g} period apart" if args.stagger else "back to back"
        rig += f"{args.cameras} synchronised cameras, frames {apart}, "
    # auto: what the node resolves it to on this machine, as its log says
    used = f"{args.device} ({device})" if args.device == "auto" else args.device
    eager = [r["size"] for r in rows if r.get("torch_compile") == "failed, eager"]
    compiled = str(args.torch_compile).lower()
    compiled += f" (failed, eager at {', '.join(eager)})" if eager else ""
    print(
        f"sarn_deblur_node, {model}, device {used}, {args.precision}, camera {args.fps:g} "
        f"fps best effort, {rig}queue_policy {args.queue_policy}, future_frames "
        f"{args.future_frames}, self_ensemble {args.self_ensemble}, torch_compile "
        f"{compiled}, {args.duration:g} s per size, "
        f"cpu_threads {args.threads or 'default'}, {os.cpu_count()} CPU cores"
    )
    if rows:  # not a table of headings alone: a stop or a fault at the first size
        print_table(rows)
    if args.json and rows:  # a run that measured nothing leaves no file
        # each row with what it measured, as sarn bench model's: a bf16 and an fp32 run's
        # files could not be told apart
        settings = {
            "weights": "tiny" if args.tiny else args.weights,
            **{k: getattr(args, k) for k in RUN_SETTINGS},
            "device_used": str(device),
            "cpu_cores": os.cpu_count(),
            # a run stopped or failed part-way: its file read as a whole run of fewer --sizes
            "sizes": [f"{w}x{h}" for w, h in sizes],
            "complete": stop is None and not failed,
        }
        rows = [{**row, "settings": settings} for row in rows]
        written = kernel_path(args.json)  # `new/../b.json`: no `new` made
        written.parent.mkdir(parents=True, exist_ok=True)
        try:
            with stops_held():  # a stop mid-write left half a file that did not parse
                written.write_text(json.dumps(nan_as_null(rows), indent=2, allow_nan=False))
        except KeyboardInterrupt as late:  # held till the file was whole
            stop = stop or late  # the first stop is the one said
    if not rows:
        say_json_kept("sarn bench node", args.json, "nothing measured")
    if stop is not None:
        how, code = how_stopped(stop)
        print(
            f"sarn bench node: {how} after {plural(len(rows), 'size')} (the node was stopped)",
            file=sys.stderr,
        )
        return code
    return 1 if failed else 0
