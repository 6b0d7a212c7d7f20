"""sarn_deblur_node: deblurs camera topics with the streaming engine and republishes them.

Threads: the executor's callbacks only park the message in a per-camera slot (``latest``: the
newest replaces an unprocessed one, counted as a drop; with several cameras the last few are
kept, so the worker can take a synchronised set) or bounded FIFO (``all``); one worker
thread converts, runs the engine for every camera that has a frame (one batched forward pass
on a GPU) and publishes. rclpy holds the GIL while deserialising, so keeping the callbacks tiny
is what keeps intake from stalling behind inference.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from difflib import get_close_matches
from functools import partial
from typing import Any

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import (
    NameValidationException,
    ParameterException,
    ParameterNotDeclaredException,
)
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import uninstall_signal_handlers
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from ..checkpoint import CheckpointError, first_line
from ..engine import (
    FASTER_ON_CPU,
    check_frame,
    faster_cpu_setting,
    native_bf16,
    resolve_precision,
    stamp_break,
)
from ..ensemble import make_engine
from ..resources import use_packaged_dds_profile
from . import image_conversion as conv
from .camera_info import InfoCache, image_size, scale_camera_info
from .params import (
    BY_NAME,
    DOUBLES,
    PARAMS,
    camera_prefix,
    help_text,
    lost_rule,
    param_rules,
    untyped_list,
    validate,
)

RCLError = rclpy_implementation.RCLError  # how rclpy reports a failed rcl call
CAMERA_INFO_CACHE = 30  # camera_info messages kept per camera, by stamp (at least)
CLOCK_SILENCE_S = 1.0  # no /clock for this long (or max_gap_s): the player is gone
CAMERA_INFO_WAIT_S = 0.1  # longest wait for an output's camera_info (sent after its image)
OVERRIDABLE = (
    QoSPolicyKind.HISTORY,
    QoSPolicyKind.DEPTH,
    QoSPolicyKind.RELIABILITY,
    QoSPolicyKind.DURABILITY,
)  # qos_overrides.<topic>.<publisher|subscription>.<policy> parameters, per topic
THROTTLE_S = 10.0  # warnings per reason (and camera) at most this often
# frames kept per camera under queue_policy latest when the node serves several: enough for
# the newest stamp all cameras hold to be among them while a synchronised pair arrives
SYNC_DEPTH = 3
# state restarts the input caused behind the node's back, logged (throttled) with their cause
LOGGED_RESETS = {
    "resolution": "the image size changed",
    "format": "the pixel format changed",
    "backwards": "a stamp went back (a looping bag?)",
}


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def cpu_advice(precision: str, compiled: bool, bf16_native: bool) -> str | None:
    """The fastest CPU setting for this CPU when the node runs a slower one, worded as node
    parameters (``faster_cpu_setting`` decides)."""
    setting = faster_cpu_setting(precision, compiled, bf16_native)
    if setting == "bf16":
        return (
            "this CPU computes bf16 natively: precision:=bf16 torch_compile:=true "
            + FASTER_ON_CPU["bf16"]
        )
    if setting == "export":
        return (
            "this CPU has no native bf16 (AVX512-BF16, AMX): the graph of `sarn export` as "
            "weights (weights:=<file>.onnx with precision:=fp32 torch_compile:=false, "
            "onnxruntime) " + FASTER_ON_CPU["export"]
        )
    return None


def transport_topics(node: Node, image: str) -> tuple[str, str]:
    """The camera_info and compressed topics that go with ``image``, as image_transport
    derives them from its resolved name (``<dir>/camera_info``, ``<image>/compressed``): a
    remap of image_raw alone moves them too, as in image_pipeline. One remapped itself keeps
    its own remap."""
    resolved = node.resolve_topic_name(image)
    folder = image.rpartition("/")[0]

    def sibling(name: str, derived: str) -> str:
        remapped = node.resolve_topic_name(name) != node.resolve_topic_name(name, only_expand=True)
        return name if remapped else derived

    info = f"{folder}/camera_info" if folder else "camera_info"
    return (
        sibling(info, f"{resolved.rpartition('/')[0]}/camera_info"),
        sibling(f"{image}/compressed", f"{resolved}/compressed"),
    )


def camera_prefixes(
    node: Node, cameras: list[str], compressed: bool, publish_compressed: bool = False
) -> list[str]:
    """Each camera's topic prefix: '' for the node's own namespace, ``left/`` relative to it,
    ``/left/`` (``/`` for the root) absolute. ValueError for two whose input (as subscribed:
    ``compressed`` or not) or output topics resolve to one (``~`` and the node's name, "left"
    and "/left" in the root namespace, remaps): one state and topics for two cameras, every
    output twice; for a camera whose input or camera_info is an output of this node
    (``['', deblurred]``: its own output deblurred again; a driver's camera_info overwritten);
    and for a name rcl cannot resolve (``/~``). Cameras that share a camera_info topic (image
    remaps into one folder) are warned of: two streams of one camera do, two cameras must
    not (one camera's calibration published as the other's)."""
    prefixes = [camera_prefix(ns) for ns in cameras]
    used: list[dict[str, str]] = []  # per camera: role -> resolved topic
    for ns, p in zip(cameras, prefixes, strict=True):
        image, out = f"{p}image_raw", f"{p}deblurred/image_raw"
        try:
            info, packed = transport_topics(node, image)
            out_info, out_packed = transport_topics(node, out)
            roles = {
                "input": packed if compressed else image,
                "camera_info input": info,
                "output": out,
                "camera_info output": out_info,
            }
            if publish_compressed:
                roles["compressed output"] = out_packed
            used.append({role: node.resolve_topic_name(t) for role, t in roles.items()})
        except RCLError as exc:
            raise ValueError(
                f"cameras: {ns!r} is not a valid namespace ({first_line(exc)})"
            ) from None
    for kind in used[0]:  # the images first: their remaps move the camera_info topics too
        topics = [u[kind] for u in used]
        for topic in dict.fromkeys(topics):
            if topics.count(topic) < 2:
                continue
            sharing = [u for u in used if u[kind] == topic]
            names = ", ".join(repr(ns) for ns, t in zip(cameras, topics, strict=True) if t == topic)
            # one camera_info in, one out: two streams of one camera (image_raw and image_rect
            # beside one camera_info, as image_proc's), or two cameras: said, not refused;
            # two camera_info topics in and one out mix two calibrations: refused
            one_in = len({u["camera_info input"] for u in sharing}) == 1
            if not kind.startswith("camera_info") or not one_in:
                hint = (
                    " (remap each camera's deblurred/camera_info)" if "camera_info" in kind else ""
                )
                raise ValueError(f"cameras: {names} lead to one {kind} topic, {topic}{hint}")
            which = "camera_info" if kind.endswith("input") else "deblurred/camera_info"
            node.get_logger().warning(
                f"cameras {names} share one {kind} topic, {topic}: right for two image "
                "streams of one camera, but two cameras would each publish the other's "
                f"calibration (remap each camera's {which})"
            )
    outputs = {
        t: (ns, k)
        for ns, u in zip(cameras, used, strict=True)
        for k, t in u.items()
        if "output" in k
    }
    for ns, u in zip(cameras, used, strict=True):
        for kind in ("input", "camera_info input"):
            if (found := outputs.get(u[kind])) is None:
                continue
            owner, out_kind = found
            whose = f"its own {out_kind}" if owner == ns else f"the {out_kind} of camera {owner!r}"
            fix = (
                ""
                if kind == "input"
                else f" (remap {camera_prefix(owner)}deblurred/camera_info, or that output into a "
                "folder of its own)"
            )
            raise ValueError(
                f"cameras: the {kind} of camera {ns!r}, {u[kind]}, is {whose}: the node would "
                f"read what it publishes{fix}"
            )
    return prefixes


def synced_picks(stamps: list[list[int]]) -> list[int]:
    """Which queued frame of each camera the worker takes under queue_policy latest: cameras
    that hold a common stamp take its frames (the largest such group first, then the most
    recently received stamp), so synchronised stereo frames stay pairs for stereo SLAM when
    frames are dropped, also beside a free-running camera; every other camera takes its newest.
    ``stamps``: each camera's queue, oldest first."""
    picks = [len(s) - 1 for s in stamps]
    free = list(range(len(stamps)))
    while len(free) > 1:
        best: tuple[tuple[int, int], list[int], int] | None = None
        for i in free:
            for age, stamp in enumerate(reversed(stamps[i])):
                holders = [j for j in free if stamp in stamps[j]]
                rank = (len(holders), -age)
                if len(holders) > 1 and (best is None or rank > best[0]):
                    best = (rank, holders, stamp)
        if best is None:
            break
        _, holders, stamp = best
        for j in holders:
            picks[j] = len(stamps[j]) - 1 - stamps[j][::-1].index(stamp)
        free = [j for j in free if j not in holders]
    return picks


@dataclass
class Queued:
    """A message waiting for the worker."""

    msg: Any
    received: float  # time.monotonic() at the callback
    # the camera's state restarts before this frame: "gap" (its stamps jumped by more than
    # max_gap_s) or "explicit" (~/reset was called since the camera's last frame)
    restart: str | None
    stamp: int = 0  # of the header, ns


@dataclass
class FrameMeta:
    """What the worker needs to publish an output like its input."""

    camera: int
    header: Any
    encoding: str
    alpha: np.ndarray | None  # the input's alpha plane, at the output's size
    received: float  # time.monotonic() at the callback
    scale: tuple[float, float]


def latched_reliably(qos: QoSProfile) -> SetParametersResult:
    """A transient-local (latched) camera_info subscription made reliable: DDS (Fast DDS, at
    least) sends the messages a publisher kept to reliable late joiners only, so with the
    best-effort default the durability override alone heard nothing. Latching publishers are
    reliable, so the match holds."""
    if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
        qos.reliability = ReliabilityPolicy.RELIABLE
    return SetParametersResult(successful=True)


class Camera:
    """Topics, intake queue and camera_info cache of one camera namespace."""

    def __init__(self, node: DeblurNode, index: int, prefix: str) -> None:
        self.node, self.index = node, index
        # a profile per topic: rclpy writes a topic's qos_overrides.* into the profile object
        # it is given, so a shared one carried the image's override on to its camera_info
        sub_qos, pub_qos = partial(node.qos, "subscription"), partial(node.qos, "publisher")
        # rclpy's default policies plus durability: a driver that latches its camera_info
        # (transient local, published once) is heard by a transient-local subscription only
        overrides = QoSOverridingOptions(policy_kinds=OVERRIDABLE)
        self.queue: deque[Queued] = deque()
        self.last_stamp: int | None = None  # of the last frame queued, for gap detection
        self.last_taken = 0.0  # clock_s() when the worker last took a frame
        self.last_taken_wall = 0.0  # time.monotonic() of the same, for a /clock that stopped
        self.taken_on_ros_time = False  # which clock last_taken is on (use_sim_time is live)
        self.holding = False  # frames pushed since the last flush (maybe held for look-ahead)
        # the four above before the worker's last take, for a frame refused once taken
        self.before_take: tuple[float, float, bool, bool] = (0.0, 0.0, False, False)
        self.reset_requested = False  # ~/reset: the next frame queued restarts the state
        self.unmatched_said = False  # a camera_info of another stamp used, and logged once
        self.input_size: tuple[int, int] | None = None  # of the last frame, before resize
        # a backlog of queued frames (queue_policy all) must still find its camera_info
        self.infos = InfoCache(max(CAMERA_INFO_CACHE, node.queue_size + 3))
        image, out = f"{prefix}image_raw", f"{prefix}deblurred/image_raw"
        info, compressed = transport_topics(node, image)
        out_info, out_compressed = transport_topics(node, out)
        if node.input_transport == "compressed":
            kind, topic = CompressedImage, compressed
        else:
            kind, topic = Image, image
        sub = node.create_subscription(
            kind, topic, self.on_image, sub_qos(), qos_overriding_options=overrides
        )
        self.input_topic = sub.topic_name  # resolved: where remaps and namespaces led
        # unique (camera_prefixes), where "left" and "/left" under a namespace are two cameras
        self.stream = self.input_topic
        self.input_qos = sub.qos_profile  # with the overrides given
        given = getattr(node, "_parameter_overrides", {})
        # the policies of the intake set for this topic alone, which the global qos.* leave
        self.input_overrides = {
            policy
            for policy in ("reliability", "depth")
            if f"qos_overrides.{self.input_topic}.subscription.{policy}" in given
        }
        latched = QoSOverridingOptions(policy_kinds=OVERRIDABLE, callback=latched_reliably)
        self.info_topic = node.create_subscription(
            CameraInfo, info, self.on_info, sub_qos(), qos_overriding_options=latched
        ).topic_name
        self.pub = node.create_publisher(Image, out, pub_qos(), qos_overriding_options=overrides)
        self.info_pub = node.create_publisher(
            CameraInfo, out_info, pub_qos(), qos_overriding_options=overrides
        )
        self.compressed_pub = (
            node.create_publisher(
                CompressedImage, out_compressed, pub_qos(), qos_overriding_options=overrides
            )
            if node.publish_compressed
            else None
        )

    def drop_oldest(self, coming: int | None = None) -> str | None:
        """Drop the oldest queued frame; its restart mark moves on to the next one. Returned
        when there is none: the mark then belongs to the frame about to be queued, stamped
        ``coming``. Callers hold the lock."""
        dropped = self.queue.popleft()
        # a driver sending a stamp twice: the second frame's camera_info is the first's
        if dropped.stamp != coming and all(q.stamp != dropped.stamp for q in self.queue):
            # its camera_info would push out those of the frames held for look-ahead: a slow
            # device drops dozens while it holds them, and they got the newest calibration
            self.infos.discard(dropped.stamp)
        if dropped.restart and self.queue:
            self.queue[0].restart = self.queue[0].restart or dropped.restart
            return None
        return dropped.restart

    def on_image(self, msg: Any) -> None:
        self.node.enqueue(self, msg)

    def watched(self) -> bool:
        """Whether anything subscribes to this camera's outputs (for ``lazy``)."""
        pubs = (self.pub, self.info_pub, self.compressed_pub)
        return any(p.get_subscription_count() for p in pubs if p is not None)

    def on_info(self, msg: CameraInfo) -> None:
        self.infos.put(stamp_ns(msg.header), msg)


class RosLogHandler(logging.Handler):
    """The engine's own warnings (fp16 on a CPU, a torch.compile fallback) through the node's
    ROS logger, to the console format, /rosout and the launch log like the node's."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self.ros = logger

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelno
        log = (
            self.ros.error
            if level >= logging.ERROR
            else self.ros.warning
            if level >= logging.WARNING
            else self.ros.info
            if level >= logging.INFO
            else self.ros.debug
        )
        log(self.format(record))


STOP_WAIT_S = 2.0  # for the frame in progress at Ctrl-C; ros2 launch escalates after 5 s


class DeblurNode(Node):
    """The ROS side: parameters, QoS, topics, threads, diagnostics. Model work is the engine's."""

    def __init__(self, argv: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__("sarn_deblur", **kwargs)
        self.argv = sys.argv if argv is None else argv  # for its -p rules, see lost_rule
        self.log_handler = RosLogHandler(self.get_logger())
        package_log = logging.getLogger("sarn_ros")
        package_log.addHandler(self.log_handler)
        package_log.propagate = False  # not a second, bare copy on stderr
        try:
            self._build()
        except BaseException:
            # destroy what was made, before main shuts the context down: Humble's context
            # does not destroy its nodes, and the DDS entities would be left to exit-time GC
            self.destroy_node()
            raise

    def destroy_node(self) -> None:
        package_log = logging.getLogger("sarn_ros")
        package_log.removeHandler(self.log_handler)
        package_log.propagate = True
        super().destroy_node()

    def _build(self) -> None:
        """Parameters, engine, topics and worker; a bad parameter or weights file raises."""
        # `-p max_gap_s:=0` or `max_gap_s: 0` in a params file is an integer, which declaring a
        # double refused at start-up (the pre-set callback below converts live sets only)
        if why := lost_rule(param_rules(self.argv, self.get_fully_qualified_name())):
            raise ValueError(why)
        overrides = getattr(self, "_parameter_overrides", {})  # rclpy's, Humble to Rolling
        unset = Parameter.Type.NOT_SET
        if untyped := [n for n, p in overrides.items() if n in BY_NAME and p.type_ == unset]:
            raise ValueError(untyped_list(untyped[0]))  # a params file's empty list
        as_floats = self.whole_numbers_as_floats(list(overrides.values()))
        overrides.update((p.name, p) for p in as_floats)
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, p.descriptor())
        self.warn_misspelt(overrides)
        get = self.get_parameter
        for p in PARAMS:
            if (reason := validate(p.name, get(p.name).value)) is not None:
                raise ValueError(reason)
        cameras = list(get("cameras").value) or [""]
        prefixes = camera_prefixes(
            self,
            cameras,
            get("input_transport").value == "compressed",
            bool(get("publish_compressed").value),
        )
        self.input_transport = get("input_transport").value
        self.publish_compressed = bool(get("publish_compressed").value)
        self.jpeg_quality = int(get("jpeg_quality").value)
        self.queue_policy = get("queue_policy").value
        self.queue_size = int(get("queue_size").value)
        self.lazy = bool(get("lazy").value)
        self.resize = float(get("resize").value)
        self.max_megapixels = float(get("max_megapixels").value)
        self.debayer = get("debayer").value
        self.self_ensemble = int(get("self_ensemble").value)
        self.torch_compile = bool(get("torch_compile").value)
        if threads := int(get("cpu_threads").value):
            torch.set_num_threads(threads)
        device = get("device").value
        self.max_gap_s = float(get("max_gap_s").value) or None
        self.engine = make_engine(
            get("weights").value,
            self_ensemble=self.self_ensemble,
            device=device,
            precision=get("precision").value,
            future_frames=int(get("future_frames").value),
            max_gap_s=None,  # gaps are found at intake, see enqueue
            torch_compile=self.torch_compile,
        )
        if self.engine.precision != get("precision").value:  # fp16 asked on a CPU runs fp32
            # the parameter says what runs: `ros2 param get` read fp16 (the live set of fp16
            # on a CPU is refused for that reason); set before the live-change callback
            self.set_parameters([Parameter("precision", value=self.engine.precision)])
        if device == "auto" and self.engine.device.type == "cpu" and not self.engine.onnx:
            self.get_logger().warning("device=auto: no CUDA device found, running on the CPU")
        if self.engine.device.type == "cpu" and not self.engine.onnx:
            advice = cpu_advice(self.engine.precision, self.torch_compile, native_bf16())
            if advice:
                self.get_logger().info(advice)

        self.lock = threading.Condition()
        self.counts: Counter[str] = Counter()
        self.window: Counter[str] = Counter()  # counts since the last diagnostics message
        self.warned: dict[str, float] = {}  # reason -> time.monotonic() of its last warning
        self.latencies: deque[float] = deque(maxlen=200)  # receive -> publish, ms
        self.ages: deque[float] = deque(maxlen=200)  # header stamp -> publish, ms
        self.inference_ms: deque[float] = deque(maxlen=200)  # engine call per worker round
        self.overhead_ms: deque[float] = deque(maxlen=200)  # conversion + publish per frame
        self.waits_ms: deque[float] = deque(maxlen=200)  # callback -> worker takes the frame
        self.changes: dict[str, Any] = {}  # live parameter changes for the worker to apply
        self.engine_stats = self.engine.stats()  # refreshed by the worker after each round
        self.refused_quiet: list[Camera] = []  # the worker's, from untake to flush_refused
        self.latest_depth = SYNC_DEPTH if len(prefixes) > 1 else 1  # queue_policy latest
        self.cameras = [Camera(self, i, prefix) for i, prefix in enumerate(prefixes)]
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(  # wall time: a replay's /clock stops, pauses and starts late
            float(get("diagnostics_period_s").value),
            self.publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self.last_diag = time.monotonic()
        if hasattr(self, "add_pre_set_parameters_callback"):  # rclpy of Iron and newer
            self.add_pre_set_parameters_callback(self.whole_numbers_as_floats)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.clock_heard = time.monotonic()  # see clock_stopped; as rclpy's TimeSource hears it
        self.no_clock_since: float | None = None  # see no_clock
        clock_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(ClockMsg, "/clock", self.heard_clock, clock_qos)
        self.running = True
        self.worker = threading.Thread(target=self.work, name="sarn_worker", daemon=True)
        self.worker.start()
        self.get_logger().info(
            f"deblurring {', '.join(c.input_topic for c in self.cameras)} with "
            f"{self.engine.model_name} on {self.engine.device} ({self.engine.precision}, "
            f"deformable conv: {self.engine.deform_path}), "
            f"future_frames={self.engine.future_frames}, queue_policy={self.queue_policy}"
        )
        if advice := self.intake_advice():
            self.get_logger().warning(advice)
        if self.torch_compile:
            self.get_logger().info(
                "torch_compile: the first frame of each size compiles the network (15-30 s "
                "on a CPU); frames are dropped (latest) or queued (all) meanwhile"
            )

    # ------------------------------------------------------------------ parameters and QoS
    def intake_advice(self) -> str | None:
        """What queue_policy all needs to keep every frame: the node counts what it drops,
        but DDS drops, uncounted, the frames of a burst a best-effort input or a reliable one
        with a short history cannot hold while the worker has the CPU (5 of 80 frames into
        two cameras at depth 5, every one at depth 100). A policy a topic's qos_overrides
        set is named there: the global qos.subscription.* would not change it."""
        if self.queue_policy != "all":
            return None
        depth = min(self.queue_size, BY_NAME["qos.subscription.depth"].int_range[1])
        short: list[str] = []
        settings: list[tuple[bool, str]] = []  # (a depth, the setting): reliability first
        for cam in self.cameras:
            q, need = cam.input_qos, {}
            if q.reliability != ReliabilityPolicy.RELIABLE:
                need["reliability"] = "reliable"
            if q.history != HistoryPolicy.KEEP_ALL and q.depth < depth:
                need["depth"] = depth
            if need:
                short.append(cam.input_topic)
            for policy, value in need.items():
                scope = (
                    f"qos_overrides.{cam.input_topic}." if policy in cam.input_overrides else "qos."
                )
                settings.append((policy == "depth", f"{scope}subscription.{policy}:={value}"))
        if not short:
            return None
        said = dict.fromkeys(setting for _, setting in sorted(settings, key=lambda s: s[0]))
        return (
            f"queue_policy all: {', '.join(short)} may lose frames before the node sees them, "
            "uncounted (best-effort, or a history shorter than queue_size): for every frame "
            f"of a bag start the node with {' '.join(said)}"
        )

    def warn_misspelt(self, overrides: dict[str, Parameter]) -> None:
        """A parameter given that is not the node's but close to one of its names: rclpy
        ignores it without a word (`future_frame:=0` ran at future_frames 2). Names far from
        all of them (a shared parameter file's other nodes' settings) are left unsaid."""
        for given in overrides:
            if given not in BY_NAME and (near := get_close_matches(given, BY_NAME, 1, 0.8)):
                self.get_logger().warning(
                    f"parameter {given!r} is not one of this node's and is ignored: "
                    f"did you mean {near[0]!r}?"
                )

    def qos(self, side: str) -> QoSProfile:
        reliability = self.get_parameter(f"qos.{side}.reliability").value
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=int(self.get_parameter(f"qos.{side}.depth").value),
            reliability=ReliabilityPolicy.RELIABLE
            if reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )

    @staticmethod
    def whole_numbers_as_floats(params: list[Parameter]) -> list[Parameter]:
        """``ros2 param set ... max_gap_s 0`` sends an integer, which rclpy refused for a
        double parameter as "Wrong parameter type, expected '3' got '2'"; README says 0."""
        return [
            Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
            if p.name in DOUBLES and p.type_ == Parameter.Type.INTEGER
            else p
            for p in params
        ]

    def _check_undeclared_parameters(self, parameter_list: list[Parameter]) -> None:
        """rclpy's own check names none: it runs ``any()`` over a generator, then lists what
        is left of it, so ``ros2 param set`` of a misspelt name said "undeclared
        parameter(s): []", and an empty name, which ``any()`` passes, was stored. Each is
        named here, with this node's nearest name; rclpy's check (argument types) follows."""
        names = [p.name for p in parameter_list if isinstance(p, Parameter)]
        unknown = [name for name in names if not name or not self.has_parameter(name)]
        if unknown:
            near = [f"{m[0]!r}" for n in unknown if (m := get_close_matches(n, BY_NAME, 1, 0.6))]
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            hint += " (a parameter needs a name)" if "" in unknown else ""
            raise ParameterNotDeclaredException(f"{unknown}{hint}")
        super()._check_undeclared_parameters(parameter_list)

    def _apply_descriptor(self, parameter: Parameter, *args: Any, **kwargs: Any) -> Any:
        """rclpy's refusal of a read-only parameter ("Trying to set a read-only parameter:
        weights.") does not say how one is set; it is said here."""
        result = super()._apply_descriptor(parameter, *args, **kwargs)
        if not result.successful and result.reason.startswith("Trying to set a read-only"):
            result.reason += (
                f" It is read at start: give -p {parameter.name}:=... (or set it in the launch "
                "file's parameters) and restart the node"
            )
        return result

    def on_set_parameters(self, params: list) -> SetParametersResult:
        """Validate live changes; the worker applies them before its next frame. Read-only
        parameters and ranges are enforced by rclpy from the descriptors."""
        for p in params:
            if p.name in BY_NAME and (reason := validate(p.name, p.value)) is not None:
                return SetParametersResult(successful=False, reason=reason)
            if p.name == "precision" and self.engine.onnx and p.value != "fp32":
                reason = "an ONNX graph runs in fp32 (onnxruntime)"
                return SetParametersResult(successful=False, reason=reason)
            if p.name == "precision" and p.value == "fp16" and self.engine.device.type == "cpu":
                # accepted, it would read fp16 while the node runs fp32
                reason = "fp16 is for CUDA; on a CPU: bf16 (native on some CPUs) or fp32"
                return SetParametersResult(successful=False, reason=reason)
        with self.lock:
            for p in params:
                if p.name in BY_NAME and BY_NAME[p.name].live:
                    self.changes[p.name] = p.value
                    if p.name == "queue_policy":  # intake must follow at once
                        self.queue_policy = p.value
                        if advice := self.intake_advice():
                            self.get_logger().warning(advice)
                        if p.value == "latest":  # before the worker's next take
                            for cam in self.cameras:
                                while len(cam.queue) > self.latest_depth:
                                    cam.drop_oldest()
                                    self.count("dropped")
                    elif p.name == "lazy":
                        self.lazy = bool(p.value)
            self.lock.notify()
        return SetParametersResult(successful=True)

    def apply_changes(self, changes: dict[str, Any]) -> None:
        """Worker side of a live parameter change (between frames, so never mid-inference).
        Each change is applied even if one before it fails (a flush's forward pass can): the
        node's parameters show them all. The first failure is raised after the rest."""
        failure: Exception | None = None
        for name, value in changes.items():
            try:
                self.apply_change(name, value)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def apply_change(self, name: str, value: Any) -> None:
        """One live parameter change; a change of future_frames flushes the held frames."""
        note = ""
        if name == "future_frames":
            if int(value) != self.engine.future_frames:  # else the held frames wait on
                self.engine.future_frames = int(value)  # ends each segment; outputs queued
                for out in self.engine.flush():
                    self.publish(out)
            if self.engine.future_frames != int(value):  # accepted: the default is 2
                note = f", which {self.engine.model_name} ignores (it has no look-ahead)"
        elif name == "max_gap_s":
            with self.lock:
                self.max_gap_s = float(value) or None
        elif name == "precision":
            self.engine.precision = resolve_precision(value, self.engine.device)
        elif name == "resize":
            if float(value) != self.resize:  # restarted as asked: the new size would restart
                self.engine.reset(reason="explicit")  # it too, logged as a camera's own change
            self.resize = float(value)
        elif name == "debayer":
            self.debayer = value
        elif name == "max_megapixels":
            self.max_megapixels = float(value)
        if self.context.ok():  # a change just before Ctrl-C: rosout is gone
            self.get_logger().info(f"parameter {name} is now {value!r}{note}")

    def on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """``~/reset``: restart every camera's recurrent state at its next frame, for a cut
        the stamps do not show (a camera switched, a lens uncovered, SLAM relocalised).
        Frames received before the call keep the old state; those held for look-ahead come
        out with the next frame's round (or, if none comes, after max_gap_s), as at a gap."""
        with self.lock:
            for cam in self.cameras:
                cam.reset_requested = True
        response.success = True
        response.message = f"the state of {len(self.cameras)} camera(s) restarts at the next frame"
        return response

    # ------------------------------------------------------------------ intake (executor)
    def enqueue(self, cam: Camera, msg: Any) -> None:
        """The subscription callback: park the message, nothing else (rclpy holds the GIL
        while it deserialises, so long callbacks would stall intake).

        Gaps over max_gap_s are found here, between the stamps the camera sent, not between
        the frames the worker gets to: with ``latest`` on a slow device those are always
        further apart than max_gap_s, and every frame would restart the recurrent state."""
        idle = self.lazy and not cam.watched()
        stamp = stamp_ns(msg.header)
        if fault := intake_fault(msg):
            # rejected before its stamp can count: a driver's blank Image() (stamp 0) would
            # otherwise make the next good frame look like a gap and restart the stream
            with self.lock:
                self.count("received")
            self.reject(*fault, cam)
            return
        with self.lock:
            self.count("received")
            if idle:
                self.count("idle")
                return
            # gaps only: a stamp going back is the engine's to find, between frames it takes
            gap = stamp_break(cam.last_stamp, stamp, self.max_gap_s) == "gap"
            restart = "gap" if gap else None
            if cam.reset_requested:
                restart, cam.reset_requested = "explicit", False
            cam.last_stamp = stamp
            latest = self.queue_policy == "latest"
            limit = self.latest_depth if latest else self.queue_size
            overflow = not latest and len(cam.queue) >= limit
            while len(cam.queue) >= limit:
                dropped = cam.drop_oldest(stamp)  # the next frame kept starts the new segment
                restart = restart or dropped
                self.count("dropped")
            cam.queue.append(Queued(msg, time.monotonic(), restart, stamp))
            self.lock.notify()
        # latest drops by design; all promised every frame: its overflow is said (counted too)
        if overflow and self.due(f"queue_full.{cam.stream}"):
            self.get_logger().warning(
                f"queue_policy all: {cam.input_topic}'s queue is full ({limit} frames), its oldest "
                "dropped: the node is slower than the camera (raise queue_size for bursts, or "
                "see README's speed settings)"
            )

    def count(self, key: str, n: int = 1) -> None:
        """Add to a counter; callers hold ``self.lock``."""
        self.counts[key] += n
        self.window[key] += n

    def reject(self, reason: str, detail: str, cam: Camera) -> None:
        """Count a bad frame of ``cam`` and warn, throttled per reason and camera (rclpy
        throttles per call site, so one noisy camera would hide every other reason and
        camera); the node carries on."""
        with self.lock:
            self.count(f"rejected.{reason}")
        if self.due(f"{reason}.{cam.stream}"):
            self.get_logger().warning(f"skipping frame of {cam.input_topic} ({reason}): {detail}")

    def due(self, key: str) -> bool:
        """Whether a warning for ``key`` may go out now (at most one per THROTTLE_S)."""
        now = time.monotonic()
        with self.lock:
            due = now - self.warned.get(key, -THROTTLE_S) >= THROTTLE_S
            if due:
                self.warned[key] = now
        return due

    def log_resets(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Warn of the state restarts that a change of the input made in the engine between
        two ``stats()``: counted in /diagnostics, and worth a line in the log, which names the
        camera (its input topic, the engine's stream) and is throttled per camera."""
        for stream, counts in after["resets_by_stream"].items():
            was = before["resets_by_stream"].get(stream, {})
            for reason, cause in LOGGED_RESETS.items():
                if counts[reason] > was.get(reason, 0) and self.due(f"reset.{reason}.{stream}"):
                    self.get_logger().warning(f"recurrent state of {stream} restarted: {cause}")

    # ------------------------------------------------------------------ worker
    def work(self) -> None:
        """Worker thread: take the next frame of every camera, deblur them in one engine call,
        publish. When a camera goes quiet for max_gap_s its look-ahead frames are emitted."""
        while True:
            with self.lock:
                while self.running and not self.changes and not any(c.queue for c in self.cameras):
                    if self.lock.wait(0.1) or not self.running:
                        continue
                    if self.quiet_cameras(*self.clock_s()):
                        break
                if not self.running:
                    return
                changes, self.changes = self.changes, {}
                taken = self.take()
                (now, sim), wall = self.clock_s(), time.monotonic()
                for cam, *_ in taken:
                    cam.before_take = (
                        cam.last_taken,
                        cam.last_taken_wall,
                        cam.taken_on_ros_time,
                        cam.holding,
                    )
                    cam.last_taken, cam.last_taken_wall, cam.holding = now, wall, True
                    cam.taken_on_ros_time = sim
                quiet = self.quiet_cameras(now, sim)
                for cam in quiet:
                    cam.holding = False
            self.run_round(changes, taken, quiet)
            # Read by the diagnostics timer: the executor must never wait for the engine's
            # lock, which a forward pass holds for its whole duration.
            stats = self.engine.stats()
            self.log_resets(self.engine_stats, stats)
            self.engine_stats = stats

    def run_round(
        self, changes: dict[str, Any], taken: list[tuple[Camera, Queued]], quiet: list[Camera]
    ) -> None:
        """Apply the changes, deblur and publish the frames taken, flush the quiet cameras;
        each step on its own, so a failed change (a flush's forward pass) does not lose the
        frames just taken. Nothing may kill the worker: after a failure the engine starts
        afresh and the held frames it could not emit are counted (``rejected.internal``)."""
        steps = [partial(self.apply_changes, changes)]
        if taken:
            steps.append(partial(self.process, taken))  # counts its own failures' frames
            steps.append(self.flush_refused)
        for cam in quiet:  # its last frames are not left waiting for another camera
            steps.append(partial(self.flush_stream, cam.stream))
        for step in steps:
            try:
                step()
            except Exception as exc:
                # a failed step emits nothing and loses nothing itself (a flush queues what it
                # made): the frames are lost where the restart cannot run the network on them
                lost_before = self.engine.stats()["frames_lost"]
                with contextlib.suppress(Exception):
                    self.engine.reset(reason="error")
                lost = self.engine.stats()["frames_lost"] - lost_before
                self.frames_lost(
                    "internal",
                    lost,
                    f"internal error ({type(exc).__name__}: {exc}): {lost} "
                    "held frame(s) lost, camera state restarted",
                )

    def frames_lost(self, reason: str, lost: int, warning: str) -> None:
        """Count ``lost`` frames as rejected for ``reason`` and warn (throttled per reason)."""
        with self.lock:
            if lost > 0:
                self.count(f"rejected.{reason}", lost)
        if self.due(reason):
            self.get_logger().warning(warning)

    def flush_stream(self, stream: str) -> None:
        """Publish a quiet camera's held frames."""
        for out in self.engine.flush(stream):
            self.publish(out)

    def take(self) -> list[tuple[Camera, Queued]]:
        """The next frame of each camera that has one; under queue_policy latest the frames of
        the newest stamp all of them hold (``synced_picks``), the older ones dropped. Callers
        hold ``self.lock``."""
        cams = [c for c in self.cameras if c.queue]
        if self.queue_policy == "latest" and cams:
            picks = synced_picks([[q.stamp for q in c.queue] for c in cams])
            for cam, pick in zip(cams, picks, strict=True):
                for _ in range(pick):
                    cam.drop_oldest()  # the frame taken keeps any restart mark
                    self.count("dropped")
        return [(c, c.queue.popleft()) for c in cams]

    def clock_s(self) -> tuple[float, bool]:
        """Seconds by the node's clock, and whether they are ROS time (use_sim_time, so a bag
        replayed slower than recorded, `ros2 bag play --clock --rate 0.1`, is not taken for
        quiet cameras and flushed frame by frame without look-ahead) or the monotonic clock.
        One reading of the flag for both, as use_sim_time can switch between them."""
        clock = self.get_clock()
        if clock.ros_time_is_active:
            return clock.now().nanoseconds / 1e9, True
        return time.monotonic(), False

    def clock_stopped(self) -> bool:
        """Under use_sim_time with nothing publishing /clock any more (``ros2 bag play --clock``
        exits at the bag's end), ROS time stands still for good. A paused or stepped player
        still publishes /clock (the same time over and over); a killed one sends nothing,
        though DDS counts its publisher for some 20 s more (its lease), so silence counts."""
        if not self.get_clock().ros_time_is_active:
            return False
        silent = time.monotonic() - self.clock_heard > max(self.max_gap_s or 0, CLOCK_SILENCE_S)
        return silent or not self.count_publishers("/clock")

    def no_clock(self, received: int) -> bool:
        """Under use_sim_time, frames came and ROS time stood at 0 for CLOCK_SILENCE_S since
        the first report that saw them (a player without ``--clock``, sim time set by mistake,
        a simulator paused at 0): stamp ages are left out. Warned once, reported in
        /diagnostics while it lasts; the node carries on."""
        clock = self.get_clock()
        if not (received and clock.ros_time_is_active and clock.now().nanoseconds == 0):
            self.no_clock_since = None
            return False
        now = time.monotonic()
        if self.no_clock_since is None:
            self.no_clock_since = now
        if now - self.no_clock_since < CLOCK_SILENCE_S:
            return False
        self.get_logger().warning(
            "use_sim_time is true but ROS time stands at 0 while frames come (no /clock, or "
            "one standing at 0): /diagnostics has no stamp ages, and held look-ahead frames "
            "wait for /clock to move (without any /clock, the wall clock's max_gap_s); play "
            "bags with `ros2 bag play --clock`, or set use_sim_time false",
            once=True,
        )
        return True

    def heard_clock(self, _msg: ClockMsg) -> None:
        """A /clock message came (any time, a paused player's too): the player lives."""
        self.clock_heard = time.monotonic()

    def quiet_cameras(self, now: float, sim: bool) -> list[Camera]:
        """Cameras with frames in the engine and none taken for max_gap_s, or unwatched under
        ``lazy`` (with max_gap_s 0 their frames waited for the next viewer): their look-ahead
        is emitted now rather than when their next frame comes. Once /clock has stopped, quiet
        goes by the wall clock, or a bag's last frames would wait for ever. ``now`` and ``sim``
        are one :meth:`clock_s` reading. Callers hold ``self.lock``."""
        gap = self.max_gap_s
        wall = time.monotonic()
        holding = [c for c in self.cameras if c.holding]
        # the graph query only once some camera is quiet by the wall clock, not every round
        wall_quiet = [c for c in holding if gap and wall - c.last_taken_wall > gap]
        stopped = bool(wall_quiet) and self.clock_stopped()

        def quiet(c: Camera) -> bool:
            if self.lazy and not c.watched():
                return True
            if c.taken_on_ros_time != sim:  # use_sim_time set since: last_taken is on the
                return c in wall_quiet  # other clock (ROS time's 1.8e9 s held them for good)
            if now < c.last_taken:  # /clock went back (a bag's loop or seek): ROS time held
                return c in wall_quiet  # the frames of a camera that then fell silent
            return bool(gap) and (now - c.last_taken > gap or (stopped and c in wall_quiet))

        return [c for c in holding if quiet(c)]

    def process(self, taken: list[tuple[Camera, Queued]]) -> None:
        now = time.monotonic()
        with self.lock:
            self.waits_ms.extend((now - q.received) * 1e3 for _, q in taken)
        t0 = time.perf_counter()
        items = []
        refused: list[Camera] = []
        restarted, reset_s = False, 0.0  # a reset runs the look-ahead through the network
        for cam, q in taken:
            if q.restart:  # the held look-ahead comes out with this round's outputs
                r0 = time.perf_counter()
                self.engine.reset(cam.stream, reason=q.restart)
                restarted, reset_s = True, reset_s + time.perf_counter() - r0
            try:
                item = self.prepare(cam, q.msg, q.received)
            except Exception as exc:  # a converter's own fault loses this frame, not the
                # state of every camera (the worker's last resort)
                self.reject("decode_error", f"{type(exc).__name__}: {exc}", cam)
                refused.append(cam)
                continue
            if item is None:
                refused.append(cam)
                continue
            try:  # one camera's odd frame must not fail the others' engine call
                check_frame(item[1])
            except ValueError as exc:
                self.reject("malformed", str(exc), cam)
                refused.append(cam)
                continue
            items.append(item)
        self.untake(refused)
        if not items and not restarted:  # a restart's look-ahead goes out now, not with the
            return  # camera's next good frame (its frame here was rejected)
        t1 = time.perf_counter()
        before = self.engine.stats()
        try:
            outputs = self.engine.push_many(items)
        except Exception as exc:  # a model failure must not kill the node
            self.engine_failed(items, before, exc)
            return
        t2 = time.perf_counter()
        for out in outputs:
            self.publish(out)
        t3 = time.perf_counter()
        with self.lock:
            if outputs:  # the restarts' passes too: they were counted as the node's overhead
                self.inference_ms.append((t2 - t1 + reset_s) * 1e3)
            if items:
                convert = t1 - t0 - reset_s
                per_frame = (convert / len(items) + (t3 - t2) / max(len(outputs), 1)) * 1e3
                self.overhead_ms.append(per_frame)

    def untake(self, refused: list[Camera]) -> None:
        """Cameras whose frame was refused after the worker took it (too large since a live
        max_megapixels, corrupt past its header) took nothing: their quiet time goes on, and
        those quiet now (before this round's network time) are flushed by
        :meth:`flush_refused`. Their held look-ahead waited for as long as such frames came."""
        with self.lock:
            for cam in refused:
                (cam.last_taken, cam.last_taken_wall, cam.taken_on_ros_time, cam.holding) = (
                    cam.before_take
                )
            quiet = [c for c in self.quiet_cameras(*self.clock_s()) if c in refused]
            for cam in quiet:
                cam.holding = False
        self.refused_quiet = quiet

    def flush_refused(self) -> None:
        """Publish the held frames of the cameras :meth:`untake` found quiet, after this
        round's outputs (a step of its own: a failed flush loses none of them)."""
        quiet, self.refused_quiet = self.refused_quiet, []
        for cam in quiet:
            self.flush_stream(cam.stream)

    def engine_failed(self, items: list[tuple], before: dict[str, Any], exc: Exception) -> None:
        """Restart the cameras of a failed engine call (the others keep their state) and count
        as rejected the frames it did not take and those it took and could not emit: the ones
        it took come out with the next call where the restart could run the network."""
        for stream in {it[0] for it in items}:
            with contextlib.suppress(Exception):  # engine.reset(..., "error") does not fail
                self.engine.reset(stream, reason="error")
        after = self.engine.stats()
        taken = after["frames_in"] - before["frames_in"]
        lost = len(items) - taken + after["frames_lost"] - before["frames_lost"]
        self.frames_lost(
            "engine_error",
            lost,
            f"deblurring failed ({type(exc).__name__}: {exc}): {lost} "
            "frame(s) lost, camera state restarted",
        )

    def prepare(self, cam: Camera, msg: Any, received: float) -> tuple | None:
        """Decode ``msg`` into the engine's (stream, frame, stamp, meta); None if rejected."""
        check = partial(check_size, resize=self.resize, max_megapixels=self.max_megapixels)
        try:
            if isinstance(msg, CompressedImage):  # checked on the size its header states
                try:
                    raw, encoding = conv.compressed_to_numpy(msg, self.debayer, check)
                except conv.TooLarge:
                    raise
                except ValueError as exc:
                    self.reject("corrupt_compressed", str(exc), cam)
                    return None
            else:  # empty images were rejected at intake (intake_fault)
                check(msg.width, msg.height)
                raw, encoding = conv.decode_image(msg, self.debayer)  # Bayer/YUV: RGB
            frame = conv.to_rgb(raw, encoding)
            alpha = conv.alpha_plane(raw, encoding)
        except conv.TooLarge as exc:
            self.reject("too_large", str(exc), cam)
            return None
        except conv.UnsupportedEncoding as exc:
            self.reject("encoding", str(exc), cam)
            return None
        except (ValueError, cv2.error) as exc:  # data shorter than step * height, ...
            self.reject("malformed", (str(exc).strip().splitlines() or [repr(exc)])[-1], cam)
            return None
        scale = (1.0, 1.0)
        h, w = frame.shape[:2]
        nw, nh = resized_size(w, h, self.resize)
        if self.resize < 1.0 and cam.input_size not in (None, (h, w)):
            # 96x64 and 97x65 both become 48x32: the engine, seeing one size, would go on
            self.engine.reset(cam.stream, reason="resolution")
        cam.input_size = (h, w)
        if self.resize < 1.0:
            frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
            if alpha is not None:
                alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_AREA)
            scale = (nw / w, nh / h)
        meta = FrameMeta(cam.index, msg.header, encoding, alpha, received, scale)
        return cam.stream, frame, stamp_ns(msg.header), meta

    def publish(self, out: Any) -> None:
        """Publish one engine output with its input's header, plus the matching camera_info."""
        meta: FrameMeta = out.meta
        cam = self.cameras[meta.camera]
        if not self.context.ok():  # shutting down: nothing can be published any more
            return
        try:
            pixels = conv.from_rgb(out.image, meta.encoding, meta.alpha)
            cam.pub.publish(conv.numpy_to_image(pixels, meta.encoding, header=meta.header))
            if cam.compressed_pub is not None:
                cam.compressed_pub.publish(
                    conv.numpy_to_compressed(
                        pixels, meta.encoding, quality=self.jpeg_quality, header=meta.header
                    )
                )
        except Exception as exc:  # e.g. the context is shutting down
            self.reject("publish", f"{type(exc).__name__}: {exc}", cam)
            return
        info, matched = cam.infos.get(out.stamp, CAMERA_INFO_WAIT_S)
        if info is None:
            # throttled per camera: rclpy's throttle (per call site) named only the first
            if self.due(f"camera_info_missing.{cam.stream}"):
                self.get_logger().warning(
                    f"no camera_info received on {cam.info_topic} yet: publishing images "
                    f"without {cam.info_pub.topic_name} (for a driver that publishes it once, "
                    f"latched: -p qos_overrides.{cam.info_topic}.subscription.durability:="
                    "transient_local)"
                )
        else:
            if not matched and not cam.unmatched_said:  # a latched one never matches
                cam.unmatched_said = True
                self.get_logger().info(
                    f"{cam.info_topic} has no message of this image's stamp: the one nearest it is "
                    "republished with the image's header (a latched calibration, one that came "
                    "late, or a driver that stamps camera_info apart from its images; counted "
                    "as camera_info_unmatched)"
                )
            info = scale_camera_info(info, *meta.scale, header=meta.header)
            try:
                cam.info_pub.publish(info)
            except Exception:  # Ctrl-C in the camera_info wait: no internal error of ours
                if self.context.ok():
                    raise
                return
        h, w = out.image.shape[:2]
        # a driver's calibration for another resolution: SLAM would get wrong intrinsics
        size_off = info is not None and info.width and image_size(info) != (w, h)
        if size_off and self.due(f"camera_info_size.{cam.stream}"):
            iw, ih = image_size(info)
            self.get_logger().warning(
                f"{cam.info_topic} describes {iw}x{ih} images (binning and ROI applied) for "
                f"{w}x{h} ones (after resize): republished, not fitted to the image"
            )
        with self.lock:
            self.count("published")
            if info is None:
                self.count("camera_info_missing")
            elif not matched:
                self.count("camera_info_unmatched")
            if size_off:
                self.count("camera_info_size_mismatch")
            self.latencies.append((time.monotonic() - meta.received) * 1e3)
            if now_ns := self.get_clock().now().nanoseconds:  # 0: sim time without a /clock
                self.ages.append((now_ns - out.stamp) / 1e6)

    # ------------------------------------------------------------------ diagnostics
    def compile_status(self) -> str:
        """on / off / failed, eager (logged once through the ROS logger as well)."""
        if not self.torch_compile:
            return "off"
        if self.engine.compiled:
            return "on"
        self.get_logger().warning(
            "torch_compile failed, running eagerly (see the engine's message)", once=True
        )
        return "failed, eager"

    def publish_diagnostics(self) -> None:
        """One DiagnosticStatus for the node, as diagnostic_updater would publish it."""
        now = time.monotonic()
        with self.lock:
            period, self.last_diag = max(now - self.last_diag, 1e-6), now
            window, self.window = self.window, Counter()
            counts = dict(self.counts)
            lat, ages = sorted(self.latencies), sorted(self.ages)
            inference, overhead = list(self.inference_ms), list(self.overhead_ms)
            waits = sorted(self.waits_ms)
            for timings in (
                self.latencies,
                self.ages,
                self.inference_ms,
                self.overhead_ms,
                self.waits_ms,
            ):
                timings.clear()  # every timing figure covers the last period only
        stats = self.engine_stats
        rejected = sum(v for k, v in counts.items() if k.startswith("rejected."))
        no_clock = self.no_clock(counts.get("received", 0))

        def median(xs: list[float]) -> str:
            return f"{xs[len(xs) // 2]:.1f}" if xs else "n/a"

        def mean(xs: list[float]) -> str:
            return f"{sum(xs) / len(xs):.2f}" if xs else "n/a"

        values = {
            "input fps": f"{window['received'] / period:.2f}",
            "output fps": f"{window['published'] / period:.2f}",
            "inference ms (mean)": mean(inference),
            "node overhead ms per frame (mean)": mean(overhead),
            "latency ms (receive to publish, median)": median(lat),
            "intake wait ms (receive to worker, median)": median(waits),
            "latency ms (receive to publish, max)": f"{lat[-1]:.1f}" if lat else "n/a",
            "age ms (header stamp to publish, median)": median(ages),
            "frames received": str(counts.get("received", 0)),
            "frames published": str(counts.get("published", 0)),
            "dropped frames": str(counts.get("dropped", 0)),
            "idle frames (lazy, no subscriber)": str(counts.get("idle", 0)),
            "rejected frames": str(rejected),
            # queued, in the network or held for look-ahead: the rest of what was received
            "frames pending": str(
                counts.get("received", 0)
                - sum(counts.get(k, 0) for k in ("published", "dropped", "idle"))
                - rejected
            ),
            "state resets": str(stats["resets"]),
            "device": str(self.engine.device),
            "deformable conv": self.engine.deform_path,
            "precision": self.engine.precision,
            "model": self.engine.model_name,
            "future_frames": str(self.engine.future_frames),
            "self_ensemble": str(self.self_ensemble),
            "torch_compile": self.compile_status(),
            "queue_policy": self.queue_policy,
        }
        values.update(
            {k: str(v) for k, v in sorted(counts.items()) if k.startswith(("rejected.", "camera"))}
        )
        values.update({f"resets.{k}": str(v) for k, v in stats["resets_by_reason"].items() if v})
        problem = window["dropped"] or any(k.startswith("rejected.") for k in window)
        idle = window["idle"] and not window["published"]
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: deblurring",
            hardware_id=str(self.engine.device),
            level=DiagnosticStatus.WARN if problem or no_clock else DiagnosticStatus.OK,
            # each that holds: drops in a period without /clock hid the missing clock
            message="; ".join(
                said
                for said, holds in (
                    ("frames rejected or dropped", problem),
                    ("use_sim_time: ROS time stands at 0 (no /clock)", no_clock),
                    ("idle: nothing subscribes to the outputs (lazy)", idle),
                )
                if holds
            )
            or "ok",
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def stop(self, wait_s: float = STOP_WAIT_S) -> bool:
        """Stop the worker and wait ``wait_s`` for the frame it is on; False if it is still
        on it (a CPU forward pass at 1080p takes seconds, a first torch.compile many): the
        caller leaves it, as a camera's next frame would not come anyway. A Ctrl-C during
        the wait ends the wait."""
        with self.lock:
            self.running = False
            self.lock.notify_all()
        with contextlib.suppress(KeyboardInterrupt):
            self.worker.join(timeout=wait_s)
        return not self.worker.is_alive()


def resized_size(width: int, height: int, resize: float) -> tuple[int, int]:
    """(width, height) after the ``resize`` parameter, each side at least 1 px."""
    return max(1, round(width * resize)), max(1, round(height * resize))


def check_size(width: int, height: int, resize: float, max_megapixels: float) -> None:
    """Raise TooLarge for a side over MAX_SIDE or a frame over ``max_megapixels`` after
    ``resize``: called before decoding (a 1 KB JPEG stating 8000x8000 decoded to 64 MP, 192
    MB, then the network's memory for it had the kernel kill the node), so the camera's
    state never sees its size."""
    conv.check_sides(width, height)
    nw, nh = resized_size(width, height, resize)
    if nw * nh > max_megapixels * 1e6:
        resized = f" ({nw}x{nh} after resize)" if resize < 1.0 else ""
        raise conv.TooLarge(
            f"{width}x{height} image{resized}: over max_megapixels {max_megapixels:g}, about 1 "
            "GB of memory per megapixel on a CPU"
        )


def intake_fault(msg: Image | CompressedImage) -> tuple[str, str] | None:
    """(reason, detail) for a message the worker would reject anyway, found without decoding:
    refused here, its stamp never counts (a 32FC1 frame stamped 0 restarted the next one as a
    gap)."""
    if isinstance(msg, CompressedImage):
        try:
            conv.compressed_size(msg)
        except conv.UnsupportedEncoding as exc:  # compressedDepth
            return "encoding", str(exc)
        except ValueError as exc:
            return "corrupt_compressed", str(exc)
        return None
    if msg.height == 0 or msg.width == 0:
        return "empty", f"{msg.width}x{msg.height} image"
    try:
        conv.check_image(msg)
    except conv.UnsupportedEncoding as exc:
        return "encoding", str(exc)
    except conv.TooLarge as exc:
        return "too_large", str(exc)
    except ValueError as exc:  # step, data length, an odd size for YUV
        return "malformed", str(exc)
    return None


def leave_on_next_signal() -> None:
    """A further Ctrl-C or SIGTERM while the node winds down ends the process at once (exit
    code 0): through rclpy's handler, one during the teardown aborted it (SIGABRT)."""
    with contextlib.suppress(Exception):  # not installed (a test calling main twice)
        uninstall_signal_handlers()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: os._exit(0))


def main(argv: list[str] | None = None) -> int:
    """Console script ``sarn_deblur_node``: start, spin, stop cleanly; one line on errors."""
    argv = sys.argv if argv is None else argv
    user_args = argv[1 : argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    if "-h" in user_args or "--help" in user_args:
        print(help_text())
        return 0
    use_packaged_dds_profile()
    with contextlib.suppress(AttributeError):  # OpenCV's own line per corrupt PNG, unthrottled
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        rclpy.init(args=argv)  # a missing or broken --params-file fails here
    except RCLError as exc:
        print(f"sarn_deblur_node: error: {first_line(exc)}", file=sys.stderr)
        return 1
    try:
        # built before the ready line: rclpy.spin built its own after it, and a SIGTERM just
        # then left a half-built executor whose __del__ printed a traceback
        executor = rclpy.executors.SingleThreadedExecutor()
        node = DeblurNode(argv)
    except KeyboardInterrupt:  # Ctrl-C while the model loads: a stop, not a failure
        rclpy.try_shutdown()
        return 0
    except (
        CheckpointError,
        RuntimeError,
        ValueError,
        OSError,
        ParameterException,
        NameValidationException,  # a camera namespace that is no valid topic name
    ) as exc:
        stopped = not rclpy.ok()  # SIGINT/SIGTERM shut the context down under the start-up
        if not stopped:
            print(f"sarn_deblur_node: error: {first_line(exc)}", file=sys.stderr)
        rclpy.try_shutdown()
        return 0 if stopped else 1
    try:
        rclpy.spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM shut the context down while spin was building its wait set: a race
        # inside rclpy, not a failure of ours
    finally:
        leave_on_next_signal()
        finished = node.stop()
        node.destroy_node()
        if not finished:  # to the console: the context, and so /rosout, is down already
            node.get_logger().info("stopped in the middle of a frame: that frame is dropped")
        rclpy.try_shutdown()
    if not finished:
        # the worker is inside the network: interpreter shutdown under it aborts the process
        # (SIGABRT), and `ros2 launch` SIGKILLs a node still up 10 s after Ctrl-C
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
