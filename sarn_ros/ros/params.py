"""Parameters of sarn_deblur_node, declared up front (image_pipeline style).

One table drives the declarations, the live-change policy, `--help` and the README, so they
cannot drift apart. ``live`` parameters take effect at the next frame; the others are read-only
after start-up (rclpy rejects changes to them with a reason).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidTopicNameException
from rclpy.validate_topic_name import validate_topic_name

from .image_conversion import DEBAYER


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    live: bool = False
    choices: tuple[Any, ...] = ()
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" One of: {', '.join(map(str, self.choices))}."
        d = ParameterDescriptor(description=text, read_only=not self.live)
        if self.int_range:
            d.integer_range = [
                IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)
            ]
        if self.float_range:
            d.floating_point_range = [
                FloatingPointRange(
                    from_value=self.float_range[0], to_value=self.float_range[1], step=0.0
                )
            ]
        return d


PARAMS: tuple[Param, ...] = (
    Param(
        "weights",
        "sarn_recurrent",
        "Checkpoint path or packaged weights name: sarn_recurrent (video, uses "
        "future_frames) or sarn_single (per frame, no look-ahead), the packaged file even "
        "where the working folder holds one of that name (`./sarn_recurrent` is that one, as "
        "with `--weights`); or a .onnx file of "
        "`sarn export`, run by onnxruntime on the CPU (fp32, no torch_compile).",
    ),
    Param("device", "auto", "auto (CUDA if present, else CPU), cpu, cuda or cuda:N."),
    Param(
        "precision",
        "fp32",
        "Inference precision (autocast; state stays fp32). fp16 is for CUDA (a CPU started "
        "with it runs fp32, and the parameter then reads fp32; a live set to it is refused); "
        "bf16 is faster on CPUs with native bf16 (AVX512-BF16, AMX) at the same PSNR.",
        live=True,
        choices=("fp32", "fp16", "bf16"),
    ),
    Param(
        "future_frames",
        2,
        "Blurred frames the model waits for (latency in frames); 0 = lowest latency. A "
        "live change restarts the recurrent state (counted as a future_frames reset).",
        live=True,
        int_range=(0, 2),
    ),
    Param(
        "self_ensemble",
        1,
        "Average this many flipped/transposed passes per frame (each with its own recurrent "
        "state): sharper output for this many times the compute; for GPUs with headroom.",
        choices=(1, 2, 4, 8),
        int_range=(1, 8),
    ),
    Param(
        "torch_compile",
        False,
        "Run the network through torch.compile: on a 2-core CPU 1.1-1.5x faster in fp32 and "
        "1.9-2.8x in bf16, on an H200 1.26x in bf16 at 720p, same output, but the first frame "
        "(and the first after a size or precision change) waits for a compile of 15-30 s. Runs "
        "eagerly, with a warning, where compiling fails.",
    ),
    Param(
        "resize",
        1.0,
        "Scale factor applied before deblurring; output and camera_info are published at "
        "the scaled size. Below 1 trades detail for speed. A live change restarts the "
        "recurrent state (counted as an explicit reset).",
        live=True,
        float_range=(0.1, 1.0),
    ),
    Param(
        "max_megapixels",
        8.3,
        "Frames larger than this (after resize) are rejected, counted as too_large: the "
        "network needs about 1 GB of memory per megapixel on a CPU, so one corrupt or "
        "oversized frame (a 1 KB JPEG stating 8000x8000) ran the machine out of memory. "
        "The default passes 4K UHD (3840x2160). It bounds each camera's frame: cameras of one "
        "size are deblurred in one batch, N of them taking N times the memory.",
        live=True,
        float_range=(0.01, 67.2),
    ),
    Param(
        "debayer",
        "vng",
        "Demosaicing of bayer_* input (image_proc's choices): vng is the sharpest (41.1 dB "
        "against the RGB frame on GoPro Flower, 36.4 dB for the others) at about 6 ms per "
        "720p frame on a 2-core CPU, edge_aware and bilinear take 0.3 ms. 16-bit Bayer uses "
        "edge_aware for vng (OpenCV's VNG is 8-bit only). The 2-row shift of OpenCV < 4.12's "
        "VNG (the distributions' python3-opencv) is detected and corrected.",
        live=True,
        choices=tuple(DEBAYER),
    ),
    Param(
        "queue_policy",
        "latest",
        "latest: keep only the newest frame per camera (bounded latency, drops counted; "
        "live cameras; with several cameras, those sharing a stamp take its frames, so "
        "synchronised stereo frames are dropped in pairs). all: process every frame in order "
        "from a bounded queue (bags; with reliable QoS and qos.subscription.depth at "
        "queue_size, else DDS may drop frames of a burst uncounted: the node warns).",
        live=True,
        choices=("latest", "all"),
    ),
    Param("queue_size", 100, "Queue bound per camera for queue_policy=all.", int_range=(1, 10000)),
    Param(
        "lazy",
        False,
        "Deblur a camera only while something subscribes to its deblurred outputs (image, "
        "camera_info or compressed), as image_pipeline's lazy nodes: an unwatched node spends "
        "no GPU/CPU. Frames with no subscriber are skipped (counted as idle); the recurrent "
        "state restarts after max_gap_s.",
        live=True,
    ),
    Param(
        "max_gap_s",
        0.5,
        "Reset the recurrent state when the camera's consecutive stamps are further apart; "
        "frames dropped by queue_policy latest do not count as gaps. Also the quiet after "
        "which a camera's frames held for look-ahead are published. 0 disables both: held "
        "frames then wait for the camera's next frame. Whole numbers are taken for every "
        "decimal parameter (`-p max_gap_s:=0`).",
        live=True,
        float_range=(0.0, 3600.0),
    ),
    Param(
        "input_transport",
        "raw",
        "raw: subscribe image_raw (sensor_msgs/Image); compressed: image_raw/compressed.",
        choices=("raw", "compressed"),
    ),
    Param("publish_compressed", False, "Also publish deblurred/image_raw/compressed (JPEG)."),
    Param("jpeg_quality", 90, "JPEG quality of the compressed output.", int_range=(1, 100)),
    Param(
        "cameras",
        [""],
        "Camera namespaces served by this node with one model copy, relative to the node's "
        "namespace ('' = the node's own; a leading / makes one absolute), each once: "
        "<cam>/image_raw -> <cam>/deblurred/image_raw. Refused at start-up: two whose input or "
        "output topics resolve to one, and a camera whose input or camera_info is one of the "
        "node's outputs (`['', deblurred]`). Cameras that share a camera_info topic (images "
        "remapped into one folder share the one beside them) are warned of: right for two "
        "streams of one camera, wrong for two cameras (remap each camera's `camera_info`).",
    ),
    Param(
        "qos.subscription.reliability",
        "best_effort",
        "Input QoS reliability (REP-2003 sensor data default: best_effort, which also accepts "
        "reliable publishers).",
        choices=("best_effort", "reliable"),
    ),
    Param("qos.subscription.depth", 5, "Input QoS history depth.", int_range=(1, 1000)),
    Param(
        "qos.publisher.reliability",
        "reliable",
        "Output QoS reliability (REP-2003 system default: reliable).",
        choices=("best_effort", "reliable"),
    ),
    Param("qos.publisher.depth", 5, "Output QoS history depth.", int_range=(1, 1000)),
    Param(
        "cpu_threads",
        0,
        "Threads for CPU inference (0 = PyTorch's default, one per core). On a CPU shared with "
        "other nodes fewer threads often give lower, steadier latency.",
        int_range=(0, 256),
    ),
    Param(
        "diagnostics_period_s",
        1.0,
        "Period of the /diagnostics status, in wall time (also under use_sim_time: a replay's "
        "/clock pauses and stops).",
        float_range=(0.1, 60.0),
    ),
)
BY_NAME = {p.name: p for p in PARAMS}
DOUBLES = frozenset(p.name for p in PARAMS if isinstance(p.default, float))


def camera_prefix(camera: str) -> str:
    """A ``cameras`` entry's topic prefix: '' for the node's own namespace, ``left/`` relative
    to it, ``/left/`` (``/`` for the root) absolute."""
    return f"{camera.rstrip('/')}/" if camera else ""


def topic_fault(topic: str) -> str | None:
    """Why rcl refuses ``topic`` (None where it takes it): validate_topic_name's reason, or
    a repeated '/', which it lets through and rcl refuses when the topics are made."""
    try:
        validate_topic_name(topic)
    except InvalidTopicNameException as exc:
        return str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
    return "a repeated '/'" if "//" in topic else None


def validate(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``name`` (None when it is). Ranges are checked by
    rclpy from the descriptors; choices are checked here."""
    p = BY_NAME.get(name)
    if p is not None and p.choices and value not in p.choices:
        return f"{name} must be one of {', '.join(map(str, p.choices))}, got {value!r}"
    if name == "cameras":  # checked before the model loads, not when the topics are made
        # "left" and "/left" are one camera in the root namespace only: the node compares
        # the resolved topics
        names = [cam.rstrip("/") or cam[:1] for cam in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # one state and topics for two cameras: every output twice, or mixed
            return f"cameras: {', '.join(repr(n) for n in twice)} given twice"
        for cam in value:
            if why := topic_fault(f"{camera_prefix(cam)}image_raw"):
                return f"cameras: {cam!r} is not a valid namespace ({why})"
    return None


# rcl's reading of a `-p name:=value` (rcl_yaml_param_parser): these spellings are bools,
# then a whole C strtol(base 0) is an integer, a whole strtod a double (out of range: a
# string), YAML's .inf/.nan a double; anything else, and anything quoted, a string
RCL_BOOLS = frozenset(
    {"Y", "y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
    | {"N", "n", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
)
C_LONG = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
C_DOUBLE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.I)
C_HEX_DOUBLE = re.compile(r"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?\d+)?")
YAML_DOUBLE = re.compile(r"[+-]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
TYPE_NAMES = {bool: "BOOL", int: "INTEGER", float: "DOUBLE", str: "STRING", list: "STRING_ARRAY"}


def rcl_type(text: str) -> type:
    """The type rcl gives a ``-p name:=text`` scalar: bool, int, float or str."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return str
    if t in RCL_BOOLS:
        return bool
    if C_LONG.fullmatch(t):
        sign = -1 if t.startswith("-") else 1
        digits = t.lstrip("+-")
        value = int(digits, 16 if digits[:2].lower() == "0x" else 8 if digits[:1] == "0" else 10)
        if -(2**63) <= sign * value < 2**63:  # else ERANGE, and strtod's turn
            return int
    if YAML_DOUBLE.fullmatch(t):
        return float
    hexadecimal = C_HEX_DOUBLE.fullmatch(t)
    if hexadecimal or C_DOUBLE.fullmatch(t):
        if t.lower().lstrip("+-").startswith(("inf", "nan")):
            return float
        value = float.fromhex(t) if hexadecimal else float(t)
        mantissa = re.split(r"[eEpP]", t.lower().removeprefix("0x"))[0]
        tiny = abs(value) < sys.float_info.min and any(c not in "+-.0x" for c in mantissa)
        return str if math.isinf(value) or tiny else float  # ERANGE: 1e400, 1e-400
    return str


def param_rules(argv: list[str], node: str) -> dict[str, str]:
    """The ``-p [node:]name:=value`` rules of ``argv``'s --ros-args for the node whose fully
    qualified name is ``node`` (rcl prefixes a bare node name with /), the last of each
    name (rcl's order)."""
    rules, inside, args = {}, False, iter(argv)
    for arg in args:
        if arg in ("--ros-args", "--"):
            inside = arg == "--ros-args"
        elif inside and arg in ("-p", "--param"):
            name, sep, value = next(args, "").partition(":=")
            target, _, param = name.rpartition(":")
            if sep and (not target or "/" + target.lstrip("/") == node):
                rules[param] = value
    return rules


def untyped_list(name: str) -> str:
    """Why an empty list for ``name`` is refused: rclpy's own words, "The parameter 'cameras'
    is not initialized", named no way out."""
    hint = ": [''] is the node's own namespace" if name == "cameras" else ""
    return f"{name}: an empty list gives a ROS parameter no type{hint}"


def lost_rule(rules: dict[str, str]) -> str | None:
    """Why a ``-p`` rule for one of the node's parameters will not apply, in rclpy's words: a
    value rcl reads as another type (``0,5`` a string, ``1.0`` for an integer, ``1`` for a
    bool, ``[]`` an untyped list) is refused by rclpy alone but, where a --params-file (the
    packaged one, the launch files') gives the parameter too, dropped by rcl without a word:
    ``-p max_gap_s:=0,5`` ran at the file's 0.5. A whole number is a decimal's (see
    ``whole_numbers_as_floats``)."""
    for name, text in rules.items():
        p = BY_NAME.get(name)
        if p is None:
            continue
        expected = type(p.default)
        if expected is list and text.strip().startswith("["):
            if text.strip()[1:].strip() == "]":
                return untyped_list(name)
            continue
        got = rcl_type(text)
        if got is not expected and not (expected is float and got is int):
            return (
                f"Trying to set parameter '{name}' to '{text}' of type '{TYPE_NAMES[got]}', "
                f"expecting type '{TYPE_NAMES[expected]}'"
            )
    return None


def help_text() -> str:
    lines = [
        "usage: ros2 run sarn_ros sarn_deblur_node [--ros-args -p NAME:=VALUE ...]",
        "",
        "Deblurs <cam>/image_raw into <cam>/deblurred/image_raw (+ deblurred/camera_info).",
        "Service ~/reset (std_srvs/Trigger): restart the recurrent state at the next frame.",
        "Parameters (live = may change at run time):",
    ]
    for p in PARAMS:
        bounds = p.int_range or p.float_range  # what the descriptor enforces on sets
        limits = f" Range: {bounds[0]:g} to {bounds[1]:g}." if bounds else ""
        lines.append(f"  {p.name} (default {p.default!r}{', live' if p.live else ''})")
        lines.append(f"      {p.descriptor().description}{limits}")
    return "\n".join(lines)
