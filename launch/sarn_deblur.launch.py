"""sarn_deblur_node with the packaged config; launch arguments override single parameters.

    ros2 launch sarn_ros sarn_deblur.launch.py namespace:=camera device:=cuda future_frames:=1

Topics (relative to ``namespace``): image_raw (or image_raw/compressed), camera_info in;
deblurred/image_raw, deblurred/camera_info out. Arguments left empty keep the value from
``params_file``, so a custom parameter file is not silently overridden by launch defaults.
Fast DDS is pointed at the packaged large shared-memory profile unless a profile file is already
set (best-effort 720p images are lost with Fast DDS' default 512 KiB segment): through
FASTRTPS_DEFAULT_PROFILES_FILE up to Jazzy (Fast DDS 2), FASTDDS_DEFAULT_PROFILES_FILE from
Kilted on (Fast DDS 3). Set it for the camera driver and the consumers too.
"""

import atexit
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription
from sarn_ros.resources import dds_profile_setting
from sarn_ros.ros.params import BY_NAME, camera_prefix, topic_fault, validate
from sarn_ros.weights_path import CheckpointError, resolve_weights

PACKAGE = "sarn_ros"
NODE = "sarn_deblur"

# launch argument -> (default, description); '' = keep the parameter file's value
ARGUMENTS = {
    "namespace": ("camera", "Camera namespace: <namespace>/image_raw is deblurred."),
    "params_file": ("", "Parameter file (default: the packaged config/sarn_deblur.yaml)."),
    "weights": (
        "",
        "Checkpoint path or packaged name (sarn_recurrent, sarn_single), or a sarn export .onnx.",
    ),
    "device": ("", "auto, cpu, cuda or cuda:N."),
    "precision": ("", "fp32, fp16 (CUDA) or bf16 (CUDA, CPUs with AVX512-BF16/AMX)."),
    "future_frames": ("", "Look-ahead frames 0..2 (latency in frames)."),
    "self_ensemble": ("", "Flipped passes averaged per frame: 1, 2, 4 or 8 (x compute)."),
    "torch_compile": ("", "true: torch.compile the network (faster; first frame waits)."),
    "input_transport": ("", "raw (image_raw) or compressed (image_raw/compressed)."),
    "queue_policy": ("", "latest (live cameras) or all (bags)."),
    "lazy": ("", "true: deblur only while something subscribes to the outputs."),
    "resize": ("", "Scale factor 0.1..1 applied before deblurring (speed for detail)."),
    "debayer": ("", "Demosaicing of bayer_* input: vng, edge_aware or bilinear."),
    "publish_compressed": ("", "true: also publish deblurred/image_raw/compressed (JPEG)."),
    "cameras": ("", "Camera namespaces served by one node, e.g. '[left, right]'."),
    "image": ("image_raw", "Input image topic (remapping of image_raw)."),
    "camera_info": (
        "camera_info",
        "Input camera_info topic (remapping of camera_info; left as it is, the one beside "
        "image, as image_transport names it).",
    ),
    "use_sim_time": ("", "true: use /clock (e.g. when playing a bag with --clock)."),
    "log_level": (
        "info",
        "Logger level of the node (debug, info, warn, error, fatal): its own logger, not rcl's.",
    ),
}


def camera_list(text: str) -> list[str]:
    """The ``cameras`` argument: ``[left, right]``, ``['a', 'b']``, ``left,right``."""
    text = text.strip()
    listed = text.startswith("[") and text.endswith("]")
    items = [c.strip() for c in (text[1:-1] if listed else text).split(",")]
    if listed and len(items) > 1 and not items[-1]:
        items.pop()  # YAML's trailing comma: [left, right,]
    if "" in items and items != [""]:  # 'left,' served the node's own namespace too
        raise ValueError(
            f"launch argument cameras:={text}: an empty camera name (write '' for the node's "
            "own namespace)"
        )
    names = [c[1:-1] if len(c) > 1 and c[0] == c[-1] and c[0] in "'\"" else c for c in items]
    # a split by hand: ['a,b'] was two cameras and [a]] the camera a
    for name in names:
        if any(mark in name for mark in "[]'\","):
            raise ValueError(
                f"launch argument cameras:={text}: not a list of camera names "
                "([left, right] or left,right)"
            )
    return names


def forwarded(names: tuple[str, ...]) -> list[DeclareLaunchArgument]:
    """The arguments a launch file that includes this one passes on: '' (the params file's
    value) by default, described as here."""
    return [DeclareLaunchArgument(n, default_value="", description=ARGUMENTS[n][1]) for n in names]


def boolean(text: str) -> bool:
    """A launch argument as a bool parameter ('true'/'false' as ROS writes them, or 1/0)."""
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")


TYPES = {
    "use_sim_time": boolean,
    "future_frames": int,
    "self_ensemble": int,
    "torch_compile": boolean,
    "lazy": boolean,
    "resize": float,
    "publish_compressed": boolean,
}


def typed(name: str, text: str, kind: type | None = None) -> object:
    """A launch argument as its parameter's type (or ``kind``); a bad value named with its
    argument (ros2 launch showed int()'s "invalid literal for int() with base 10: 'two'" and
    no name)."""
    kind = kind or TYPES.get(name, str)
    try:
        if kind in (int, float) and "_" in text:  # Python's 1_0; rcl's string
            raise ValueError(text)
        return kind(text)
    except ValueError:
        expected = {int: "a whole number", float: "a number", boolean: "true or false"}[kind]
        raise ValueError(f"launch argument {name}:={text}: expected {expected}") from None


LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")  # rcutils' names, any case
DEVICE = re.compile(r"auto|(cpu|cuda)(:(0|[1-9]\d*))?")  # torch.device refuses cuda:01


def refusal(name: str, value: object) -> str | None:
    """Why the node would refuse this value of a parameter (None if it takes it): said at
    launch, as for a wrong type, not by a node that starts and dies with exit 1."""
    if name == "device":
        fits = DEVICE.fullmatch(str(value))
        return None if fits else f"expected auto, cpu, cuda or cuda:N, got {value!r}"
    if why := validate(name, value):
        return why
    if name == "weights":  # a mistyped path started a node that exited at once
        try:
            resolve_weights(str(value))
        except CheckpointError as exc:
            return str(exc)
    p = BY_NAME.get(name)
    bounds = p and (p.int_range or p.float_range)
    if bounds and not bounds[0] <= value <= bounds[1]:
        return f"{name} must be in {bounds[0]}..{bounds[1]}, got {value}"
    return None


def share_file(*parts: str) -> str:
    return os.path.join(get_package_share_directory(PACKAGE), *parts)


def full_namespace(context: LaunchContext, namespace: str) -> str:
    """``namespace`` as launch_ros resolves it: a relative one under the namespace an including
    launch file pushed (PushRosNamespace), an absolute one as it is."""
    pushed = context.launch_configurations.get("ros_namespace") or ""
    return namespace if namespace.startswith("/") else f"{pushed}/{namespace}"


def node_name(namespace: str) -> str:
    """The node's full name under ``namespace`` (relative or absolute, as launch_ros takes it)."""
    return "/".join(["", *(t for t in namespace.split("/") if t), NODE])


def name_matches(pattern: list[str], name: list[str]) -> bool:
    """Whether a parameter file's node name matches a node's, token by token as rcl reads
    it: ``*`` one token, ``**`` any number (none too)."""
    if not pattern:
        return not name
    if pattern[0] == "**":
        return any(name_matches(pattern[1:], name[i:]) for i in range(len(name) + 1))
    return bool(name) and pattern[0] in ("*", name[0]) and name_matches(pattern[1:], name[1:])


def parameter_entries(content: object, path: list[str]) -> Iterator[tuple[list[str], dict]]:
    """(name tokens, parameters) of each node entry of a parameter file, in file order."""
    if not isinstance(content, dict):
        return
    params = content.get("ros__parameters")
    if isinstance(params, dict):
        yield path, params
    for key, value in content.items():
        if key != "ros__parameters":
            yield from parameter_entries(value, path + [t for t in str(key).split("/") if t])


class RclLoader(yaml.SafeLoader):
    """YAML as rcl reads a parameter file: a tag is taken for its plain value (launch_ros'
    own files hold !!python/tuple), a lone ``=`` is text."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


RclLoader.add_multi_constructor("", _untagged)


class QuotedDumper(yaml.SafeDumper):
    """Text written quoted: rcl reads a plain n, y, inf or 1e5 as a bool or a double."""


QuotedDumper.add_representer(
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="'")
)


def documents(params_file: str) -> list[object] | None:
    """The YAML documents of ``params_file`` (rcl reads them all); None where PyYAML cannot
    read it, which is left to rcl to report."""
    try:
        with open(params_file, encoding="utf-8") as f:
            return list(yaml.load_all(f, Loader=RclLoader))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        return None


def params_file_fault(params_file: str) -> str | None:
    """Why rcl would refuse ``params_file``, where that is sure (None otherwise): a value
    outside ros__parameters (``sarn_deblur: {future_frames: 0}``), ros__parameters that are
    no mapping, a list of nodes. Such a file started a node that died in rcl_init, the
    argument unnamed."""
    try:
        with open(params_file, "rb"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)

    def fault(entry: dict, path: str) -> str | None:
        for key, value in entry.items():
            if key == "ros__parameters":
                # rcl reads a mapping, and a list of mappings ([a: 1], !!omap, !!pairs)
                pairs = isinstance(value, list) and all(isinstance(i, dict | tuple) for i in value)
                if not isinstance(value, dict) and not pairs:
                    return f"{path}ros__parameters is not a mapping of parameters"
            elif value is None:  # a bare node name: refused by rcl as well
                return f"{path}{key} has no ros__parameters"
            elif not isinstance(value, dict):
                return (
                    f"{path}{key} has a value outside ros__parameters (a node's parameters go "
                    "under <node>: ros__parameters:)"
                )
            elif why := fault(value, f"{path}{key}/"):
                return why
        return None

    for content in documents(params_file) or []:
        if isinstance(content, list):
            return "not a mapping of node names to ros__parameters"
        if isinstance(content, dict) and (why := fault(content, "")):
            return why
    return None


def params_file_cameras(params_file: str, node: str = f"/{NODE}") -> list[str] | None:
    """The cameras a ROS 2 parameter file gives the node of this full name, as rcl reads the
    file: of the entries whose names match it (``/**``, ``/ns/node``, namespaces written as
    nested keys, wildcards), the last one that sets cameras. None where it names none:
    ``[""]``, the node's own namespace, names none (every copy of the packaged config spells
    it out). One file for several nodes gave every node the first entry's cameras. A file
    that cannot be read is left to rcl to report."""
    tokens = [t for t in node.split("/") if t]
    found = None
    for content in documents(params_file) or []:
        for pattern, params in parameter_entries(content, []):
            if "cameras" in params and name_matches(pattern, tokens):
                found = params["cameras"]
    if isinstance(found, list) and found not in ([""], []):
        return [str(c) for c in found]
    return None


def key_paths(params_file: str) -> set[tuple[str, ...]]:
    """Every name a key of ``params_file`` spells (nested keys joined, as tokens), a key given
    twice too (PyYAML keeps the last, rcl both)."""
    paths: set[tuple[str, ...]] = set()

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    sub = path + tuple(t for t in key.value.split("/") if t)
                    paths.add(sub)
                    walk(value, sub)

    try:
        with open(params_file, encoding="utf-8") as f:
            for document in yaml.compose_all(f, Loader=RclLoader):
                walk(document, ())
    except (OSError, ValueError, yaml.YAMLError):  # left to rcl
        pass
    return paths


def overrides_file(overrides: dict, node: str, params_file: str) -> str:
    """The launch arguments given as a parameter file that rcl applies after every entry of
    ``params_file``. launch_ros writes a dict under the node's full name, which rcl merges
    into the file's entry of that name, ahead of a later ``/**`` entry of the file, which
    then won: the arguments given were dropped unsaid. rcl applies a node's matching entries
    in the order their names first appear, so these go under a spelling of the node's name
    that the file does not use (``/**/ns/node``), the last entry. The file goes when the
    launch ends (a respawned node reads it again)."""
    used = key_paths(params_file)
    tokens = tuple(t for t in node.split("/") if t)
    depth = 1
    while ("**",) * depth + tokens in used:
        depth += 1
    key = "/**" * depth + node
    with tempfile.NamedTemporaryFile("w", prefix="launch_params_", delete=False) as f:
        yaml.dump({key: {"ros__parameters": overrides}}, f, Dumper=QuotedDumper)
    atexit.register(Path(f.name).unlink, missing_ok=True)
    return f.name


def camera_remappings(cameras: list[str], image: str, info: str) -> list[tuple[str, str]]:
    """The ``image`` and ``camera_info`` arguments for each camera: a remap rule matches one
    name, and a camera's topics are ``<camera>/image_raw``, not ``image_raw``. Several cameras
    take relative names (``image:=image_color``), one each."""
    prefixes = [camera_prefix(c) for c in cameras]  # as the node's: /c absolute
    if len(prefixes) > 1 and (image.startswith("/") or info.startswith("/")):
        raise ValueError(
            f"image:={image} camera_info:={info} with {len(prefixes)} cameras: give names "
            "relative to each camera (image:=image_color), not one absolute topic for all"
        )

    def under(prefix: str, name: str) -> str:
        return name if name.startswith("/") else prefix + name

    def checked(argument: str, given: str, topic: str) -> str:
        """``topic`` where rcl takes it as a remap's target; else the argument named (rcl
        refused 'color image', {node}/image or l/~/image with a lexer error naming none, and
        image_raw/ made the rule image_raw/compressed:=image_raw//compressed)."""
        if why := topic_fault(topic):
            raise ValueError(f"launch argument {argument}:={given}: not a topic name ({why})")
        for bad, why in (
            ("__", "a double underscore, which rcl's remap rules refuse"),
            ("{", "a substitution"),
            ("~", "'~' here"),
        ):
            if bad in (topic[1:] if bad == "~" and topic.startswith("~/") else topic):
                raise ValueError(f"launch argument {argument}:={given}: not a topic name ({why})")
        return topic

    rules = []
    for p in prefixes:
        rules += [
            (f"{p}image_raw", checked("image", image, under(p, image))),
            (f"{p}image_raw/compressed", under(p, f"{image}/compressed")),
            (f"{p}camera_info", checked("camera_info", info, under(p, info))),
        ]
    return rules


def dds_profile(context: LaunchContext) -> list[SetEnvironmentVariable]:
    """The packaged profile under the name this distribution's Fast DDS reads, unless the user
    set a profile of their own (under either name): the node's own rule."""
    profile = share_file("config", "fastdds_shm.xml")
    setting = dds_profile_setting(profile, context.environment)
    return [SetEnvironmentVariable(*setting)] if setting is not None else []


def node_actions(context: LaunchContext) -> list[Node]:
    """The node, built once the arguments are known (empty ones are not passed on)."""
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    overrides: dict = {}
    forwarded = (
        "use_sim_time",
        "weights",
        "device",
        "precision",
        "future_frames",
        "self_ensemble",
        "torch_compile",
        "input_transport",
        "queue_policy",
        "lazy",
        "resize",
        "debayer",
        "publish_compressed",
    )
    for name in forwarded:
        if arg[name]:
            overrides[name] = typed(name, arg[name])
            if why := refusal(name, overrides[name]):
                raise ValueError(f"launch argument {name}:={arg[name]}: {why}")
    if arg["log_level"] and arg["log_level"].lower() not in LOG_LEVELS:
        expected = ", ".join(LOG_LEVELS)
        raise ValueError(
            f"launch argument log_level:={arg['log_level']}: expected one of {expected}"
        )
    if arg["cameras"].strip():
        overrides["cameras"] = camera_list(arg["cameras"])
    # launch_ros only warns of a params file that is not there and starts the node on its
    # defaults: a mistyped path ran another configuration
    if arg["params_file"] and not os.path.isfile(arg["params_file"]):
        raise ValueError(f"launch argument params_file:={arg['params_file']}: no such file")
    if arg["params_file"] and (why := params_file_fault(arg["params_file"])):
        raise ValueError(f"launch argument params_file:={arg['params_file']}: {why}")
    params_file = arg["params_file"] or share_file("config", "sarn_deblur.yaml")
    cameras = (
        overrides.get("cameras")
        or params_file_cameras(params_file, node_name(full_namespace(context, arg["namespace"])))
        or [""]
    )
    # checked before they become remap rules: rcl refuses 'front left/image_raw' with a
    # lexer error naming no argument, before the node could say which camera is wrong
    if why := validate("cameras", cameras):
        given = f"cameras:={arg['cameras']}" if arg["cameras"] else f"params_file {params_file}"
        raise ValueError(f"launch argument {given}: {why}")
    image = arg["image"] or ARGUMENTS["image"][0]  # '' keeps the default, as every argument
    info = arg["camera_info"] or ARGUMENTS["camera_info"][0]
    # the node's logger only: a global level gave 300 lines of rcl and rmw a second at debug
    name = node_name(full_namespace(context, arg["namespace"]))
    logger = name.strip("/").replace("/", ".")
    level = ["--log-level", f"{logger}:={arg['log_level']}"] if arg["log_level"] else []
    remappings = camera_remappings(cameras, image, info)  # refused before a file is written
    return [
        Node(
            package=PACKAGE,
            executable="sarn_deblur_node",
            name=NODE,
            namespace=arg["namespace"],
            parameters=[params_file, overrides_file(overrides, name, params_file)],
            remappings=remappings,
            ros_arguments=level,
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()
            ),
            OpaqueFunction(function=dds_profile),
            OpaqueFunction(function=node_actions),
        ]
    )
