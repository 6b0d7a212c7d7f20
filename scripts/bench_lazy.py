"""CPU of an unwatched sarn_deblur_node (a camera publishes, nothing subscribes to the output),
with ``lazy`` on and off: what the lazy parameter saves.

    .venv/bin/python scripts/bench_lazy.py [--seconds 15] [--fps 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from sarn_ros.tools.options import add_domain_argument, how_stopped, ranged, stops_as_interrupts


def node_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(lazy: bool, seconds: float, fps: float) -> float:
    """Percent of one core the node process used while fed frames nobody asks for."""
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image

    from sarn_ros.resources import node_command

    args = [*node_command(), "--ros-args", "-p", "device:=cpu", "-p", f"lazy:={str(lazy).lower()}"]
    args += ["-p", "future_frames:=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        node = None
        try:  # from the Popen on: a stop in the set-up left the node running
            # the stops are main's: rclpy's own handler shut the context down under the
            # publish loop, a SIGTERM then an RCLError traceback ("publisher's context is
            # invalid")
            rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
            node = rclpy.create_node("bench_lazy")
            pub = node.create_publisher(Image, "image_raw", qos_profile_sensor_data)
            end = time.monotonic() + 120
            while pub.get_subscription_count() == 0:
                if proc.poll() is not None or time.monotonic() > end:  # a dead node measures 0 %
                    log.seek(0)
                    raise SystemExit(f"the node did not start:\n{log.read().decode().strip()}")
                rclpy.spin_once(node, timeout_sec=0.1)
            time.sleep(5)  # start-up work is not what is measured
            data = np.random.default_rng(0).integers(0, 256, 240 * 320 * 3, np.uint8).tobytes()
            c0, t0, i = node_cpu_s(proc.pid), time.monotonic(), 0
            while time.monotonic() - t0 < seconds:
                msg = Image(height=240, width=320, encoding="rgb8", step=960, data=data)
                # the camera's own rate: stamps 1 s apart restarted the stream at every frame
                # (the node's max_gap_s 0.5), a cost no camera at --fps has
                ns = 100 * 10**9 + round(i * 1e9 / fps)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
                pub.publish(msg)
                i += 1
                time.sleep(max(0.0, t0 + i / fps - time.monotonic()))
            if proc.poll() is not None:
                raise SystemExit("the node exited during the measurement")
            return 100 * (node_cpu_s(proc.pid) - c0) / (time.monotonic() - t0)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a node stuck past SIGTERM: not left running
                proc.kill()
                proc.wait()
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=ranged(float, above=0), default=15.0)
    # at least one frame a second: --fps 0.01 slept 100 s a frame past --seconds, 1e-300 crashed
    ap.add_argument("--fps", type=ranged(float, 1, 1000), default=15.0)
    add_domain_argument(ap, "node and camera")
    args = ap.parse_args()
    from sarn_ros.resources import own_ros_domain

    # loopback only, on a domain of its own (as sarn bench node): it publishes a camera topic
    own_ros_domain(args.domain_id)
    try:
        with stops_as_interrupts():  # `timeout`'s SIGTERM as Ctrl-C
            for lazy in (True, False):
                cpu = measure(lazy, args.seconds, args.fps)
                print(
                    f"lazy={str(lazy).lower():5}: 320x240 rgb8 at {args.fps:g} fps, no "
                    f"subscriber: node CPU {cpu:.0f} % of one core (one inference thread)",
                    flush=True,
                )
    except KeyboardInterrupt as exc:  # the node is stopped by measure's finally
        how, code = how_stopped(exc)
        ap.exit(code, f"{ap.prog}: {how}\n")


if __name__ == "__main__":
    main()
