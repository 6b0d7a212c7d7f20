"""Best-effort camera images between two processes over Fast DDS, with its default transports
and with the packaged profile (config/fastdds_shm.xml): how many arrive and how late; and what
building and parsing one Image message costs (sarn_ros.ros.image_conversion).

    .venv/bin/python scripts/bench_transport.py [--count 50] [--fps 10] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# both names: a defaults run must carry neither (Fast DDS 2 reads one, 3 the other)
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
TRANSPORTS = "FASTDDS_BUILTIN_TRANSPORTS"  # Jazzy on: a choice that would override both rows


def peer(role: str, w: int, h: int, count: int, fps: float, out: Path) -> None:
    """One side, in its own process: ``pub`` sends ``count`` rgb8 frames stamped with the
    wall clock as they go, and writes the rate it reached to ``out`` + ``.rate`` (building a
    large frame can take longer than ``1 / fps``); ``sub`` writes each arrival's delay (ms)
    to ``out`` once the publisher is done (``out`` + ``.done`` exists) or all have come."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    # the stops are main's: rclpy's handlers shut the context down under the loops (a
    # traceback from each peer on Ctrl-C or `timeout`)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"bench_transport_{role}")
    try:
        exchange_side(node, role, w, h, count, fps, out)
    finally:  # also on a stop: Fast DDS leaves its shared memory behind otherwise
        node.destroy_node()
        rclpy.try_shutdown()


def exchange_side(node: Any, role: str, w: int, h: int, count: int, fps: float, out: Path) -> None:
    """:func:`peer`'s work on its node."""
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from sarn_ros.ros.image_conversion import numpy_to_image

    if role == "pub":
        pub = node.create_publisher(Image, "image_raw", qos_profile_sensor_data)
        end = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.0)  # the subscriber's side of discovery too
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
        t0 = time.monotonic()
        for i in range(count):
            msg = numpy_to_image(frame, "rgb8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            pub.publish(msg)
            time.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))
        out.with_suffix(".rate").write_text(str(count / (time.monotonic() - t0)))
        time.sleep(0.5)  # let the last ones leave before the process goes
    else:
        delays: list[float] = []

        def arrived(msg: Image) -> None:
            sent = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            delays.append((time.time_ns() - sent) / 1e6)

        node.create_subscription(Image, "image_raw", arrived, qos_profile_sensor_data)
        done, end = out.with_suffix(".done"), time.monotonic() + run_s(count, fps) + 10
        # the deadline: a parent killed outright leaves no .done
        while len(delays) < count and not done.exists() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        end = time.monotonic() + 1.0  # stragglers after the publisher ended
        while len(delays) < count and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        out.write_text(json.dumps(delays))


def run_s(count: int, fps: float) -> float:
    """The most a publisher takes: discovery (up to 60 s), then its frames, with slack."""
    return 65 + 1.5 * count / fps


def exchange(
    profile: str | None, w: int, h: int, count: int, fps: float
) -> tuple[list[float], float]:
    """The delays of the frames that arrived, with ``profile`` (None: Fast DDS' defaults),
    and the rate they were sent at."""
    from sarn_ros.resources import dds_profile_variable

    # Fast DDS as the rows say, with neither a profile nor a transport choice of the caller's
    env = {k: v for k, v in os.environ.items() if k not in (*PROFILE_VARIABLES, TRANSPORTS)}
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    if profile is not None:
        env[dds_profile_variable()] = profile  # the one this distribution's Fast DDS reads
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "delays.json"
        args = [str(w), str(h), str(count), str(fps), str(out)]
        me = [sys.executable, __file__, "--peer"]
        sub = subprocess.Popen([*me, "sub", *args], env=env)
        peers = [sub]
        try:
            pub = subprocess.Popen([*me, "pub", *args], env=env)
            peers.append(pub)
            try:
                failed = pub.wait(timeout=run_s(count, fps))
            except subprocess.TimeoutExpired:
                raise SystemExit(
                    f"the publishing process ran past {run_s(count, fps):.0f} s"
                ) from None
            if failed:
                raise SystemExit(f"the publishing process failed (exit code {failed})")
            out.with_suffix(".done").touch()
            sub.wait(timeout=30)
        finally:
            for proc in peers:
                stop(proc)
        if not out.exists():
            raise SystemExit(f"the subscribing process failed (exit code {sub.returncode})")
        return json.loads(out.read_text()), float(out.with_suffix(".rate").read_text())


def stop(proc: subprocess.Popen) -> None:
    """A peer still running (a stop, or past its time) asked to end as a Ctrl-C ends it,
    its node destroyed (killed outright, it left Fast DDS' shared memory in /dev/shm)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def message_ms(w: int, h: int, repeat: int = 20) -> tuple[float, float]:
    """Median ms to build an rgb8 Image message from an array and to parse one back."""
    import numpy as np

    from sarn_ros.ros.image_conversion import image_to_numpy, numpy_to_image

    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    build, parse = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        msg = numpy_to_image(frame, "rgb8")
        build.append(time.perf_counter() - t)
        t = time.perf_counter()
        image_to_numpy(msg)
        parse.append(time.perf_counter() - t)
    return 1e3 * statistics.median(build), 1e3 * statistics.median(parse)


def size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    digits = all(t.isascii() and t.isdigit() for t in (w, h))  # int('²') raised
    if not (digits and 0 < int(w) <= 8192 and 0 < int(h) <= 8192):
        raise argparse.ArgumentTypeError(f"{text!r}: WIDTHxHEIGHT, 1 to 8192 a side")
    return int(w), int(h)


def main() -> None:
    if sys.argv[1:2] == ["--peer"]:
        # the group's Ctrl-C or `timeout` ends a peer quietly, also as it imports (a
        # traceback); the parent says it, once
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # `... &`: the parent ignores it
                signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
        role, w, h, count, fps, out = sys.argv[2:8]
        peer(role, int(w), int(h), int(count), float(fps), Path(out))
        return
    # imported here, after a peer's handlers: it takes numpy and OpenCV
    from sarn_ros.tools.options import add_domain_argument, how_stopped, ranged, stops_as_interrupts

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=ranged(int, 1, 10000), default=50)
    ap.add_argument("--fps", type=ranged(float, 1, 1000), default=10.0)
    ap.add_argument("--size", type=size, default=(1280, 720), metavar="WxH")
    add_domain_argument(ap, "two processes")
    args = ap.parse_args()
    from sarn_ros.resources import find_share_file, own_ros_domain

    own_ros_domain(args.domain_id)  # loopback only, on a domain of its own
    (w, h), n = args.size, args.count
    try:
        with stops_as_interrupts():  # `timeout`'s SIGTERM as Ctrl-C
            build, parse = message_ms(w, h)
            print(f"{w}x{h} rgb8 Image message: build {build:.2f} ms, parse {parse:.3f} ms")
            for label, profile in (
                ("Fast DDS defaults", None),
                ("config/fastdds_shm.xml", str(find_share_file("config/fastdds_shm.xml"))),
            ):
                delays, rate = exchange(profile, w, h, n, args.fps)
                late = f", median {statistics.median(delays):.1f} ms" if delays else ""
                # the rate reached: --fps 1000 at 1280x720 was printed "at 1000 fps", sent at 300
                sent = (
                    f"{args.fps:g}"
                    if rate >= 0.95 * args.fps
                    else f"{rate:.1f} (of {args.fps:g} asked)"
                )
                print(
                    f"{label}: {len(delays)}/{n} best-effort {w}x{h} rgb8 frames at "
                    f"{sent} fps delivered between two processes{late}",
                    flush=True,
                )
    except KeyboardInterrupt as exc:  # the peers go with the process group's signal
        how, code = how_stopped(exc)
        ap.exit(code, f"{ap.prog}: {how}\n")


if __name__ == "__main__":
    main()
