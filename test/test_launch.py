"""The launch files, expanded the way `ros2 launch` does, without starting processes.

launch/launch_ros have no PyPI wheel, so these tests skip unless they are importable (a ROS 2
install, or the sources on PYTHONPATH).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("launch_ros")

from launch_ros.actions import Node

from launch import LaunchContext
from sarn_ros.resources import DDS_PROFILE_VARIABLES

REPO = Path(__file__).resolve().parent.parent
FASTRTPS, FASTDDS = DDS_PROFILE_VARIABLES  # Fast DDS 2 (to Jazzy), Fast DDS 3 (Kilted on)


@pytest.fixture
def share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ament prefix whose share/sarn_ros is this checkout (as after colcon build)."""
    index = tmp_path / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "sarn_ros").touch()
    (tmp_path / "share" / "sarn_ros").symlink_to(REPO)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # launch_ros' launch_params_* files
    for name in (*DDS_PROFILE_VARIABLES, "ROS_DISTRO"):
        monkeypatch.setenv(name, "")  # recorded, so what a launch file sets is undone after
        monkeypatch.delenv(name)
    return tmp_path / "share" / "sarn_ros"


def expand(launch_file: str, **arguments: str) -> tuple[list[Node], LaunchContext]:
    """Visit the description like LaunchService does; Nodes are expanded, not executed."""
    spec = importlib.util.spec_from_file_location("ld", REPO / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    nodes: list[Node] = []

    def walk(entity: Any) -> None:
        if isinstance(entity, Node):
            if entity.condition is None or entity.condition.evaluate(context):
                entity._perform_substitutions(context)
                entity.test_environment = dict(context.environment)  # what it would start with
                nodes.append(entity)
            return
        for child in entity.visit(context) or []:
            walk(child)

    walk(module.generate_launch_description())
    return nodes, context


def parameters(node: Node) -> tuple[list[str], dict[str, Any]]:
    """(parameter files given as paths, the merged inline parameters) of an expanded Node."""
    files, inline = [], {}
    for path, is_file in node._Node__expanded_parameter_arguments:
        assert is_file
        if Path(path).name.startswith("launch_params_"):  # launch_ros' file for a dict
            content = yaml.load(Path(path).read_text(), Loader=yaml.FullLoader)  # tuples
            (section,) = content.values()
            inline.update(section["ros__parameters"])
        else:
            files.append(path)
    return files, inline


def declared(launch_file: str) -> set[str]:
    spec = importlib.util.spec_from_file_location("ld", REPO / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {a.name for a in module.generate_launch_description().get_launch_arguments()}


def test_sarn_deblur_launch_node_parameters_remaps_and_dds_profile(share: Path, tmp_path: Path):
    weights = tmp_path / "x.pth"
    weights.write_bytes(b"")
    assert {"namespace", "weights", "device", "future_frames", "input_transport"} | {
        "use_sim_time"
    } <= declared("sarn_deblur.launch.py")
    (node,), context = expand(
        "sarn_deblur.launch.py",
        namespace="front",
        weights=str(weights),
        future_frames="1",
        self_ensemble="4",
        torch_compile="True",
        precision="bf16",
        lazy="true",
        resize="0.5",
        debayer="edge_aware",
    )
    assert (node.node_package, node.node_executable) == ("sarn_ros", "sarn_deblur_node")
    assert node.node_name == "/front/sarn_deblur"
    files, inline = parameters(node)
    assert files == [str(share / "config" / "sarn_deblur.yaml")]
    # only the arguments given override the file; the types are the parameters' types
    assert inline == {
        "weights": str(weights),
        "future_frames": 1,
        "self_ensemble": 4,
        "torch_compile": True,
        "precision": "bf16",
        "lazy": True,
        "resize": 0.5,
        "debayer": "edge_aware",
    }
    assert ("image_raw", "image_raw") in node.expanded_remapping_rules
    assert ("camera_info", "camera_info") in node.expanded_remapping_rules
    assert context.environment[FASTDDS] == str(share / "config" / "fastdds_shm.xml")
    assert Path(context.environment[FASTDDS]).is_file()
    assert FASTRTPS not in context.environment


@pytest.mark.parametrize(
    ("distro", "variable"),
    [("humble", FASTRTPS), ("jazzy", FASTRTPS), ("kilted", FASTDDS), ("rolling", FASTDDS)],
)
@pytest.mark.parametrize("launch_file", ["sarn_deblur.launch.py", "camera_deblur.launch.py"])
def test_the_profile_goes_to_the_variable_the_distros_fast_dds_reads(
    share: Path, monkeypatch: pytest.MonkeyPatch, distro: str, variable: str, launch_file: str
):
    """Fast DDS 2 (Humble, Jazzy) never reads FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 3 never
    FASTRTPS_DEFAULT_PROFILES_FILE: the wrong name leaves the 512 KiB segment in place."""
    monkeypatch.setenv("ROS_DISTRO", distro)
    nodes, _ = expand(launch_file)
    profile = str(share / "config" / "fastdds_shm.xml")
    other = FASTDDS if variable == FASTRTPS else FASTRTPS
    for node in nodes:  # the camera driver too
        assert node.test_environment[variable] == profile
        assert other not in node.test_environment


def test_use_sim_time_from_the_parameter_file_is_kept_unless_given(share: Path, tmp_path: Path):
    """A bag workflow's YAML with use_sim_time: true must not be turned back to wall time."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n")
    for launch_file in ("sarn_deblur.launch.py", "multi_camera_deblur.launch.py"):
        (node,), _ = expand(launch_file, params_file=str(mine))
        files, inline = parameters(node)
        assert files == [str(mine)] and "use_sim_time" not in inline
    (_, node), _ = expand("camera_deblur.launch.py", params_file=str(mine), use_sim_time="true")
    assert parameters(node)[1]["use_sim_time"] is True


def test_an_argument_of_the_wrong_type_is_an_error_naming_it(share: Path):
    """int()'s "invalid literal for int() with base 10: 'two'" named no argument."""
    (node,), _ = expand("sarn_deblur.launch.py", torch_compile="0", resize="0.5")
    assert parameters(node)[1]["torch_compile"] is False
    assert parameters(node)[1]["resize"] == 0.5
    for name, value, expected in (
        ("torch_compile", "yes", "true or false"),
        ("future_frames", "two", "a whole number"),
        ("resize", "half", "a number"),
    ):
        message = f"launch argument {name}:={value}: expected {expected}"
        with pytest.raises(ValueError, match=f"^{message}$"):
            expand("sarn_deblur.launch.py", **{name: value})


@pytest.mark.parametrize("mine", DDS_PROFILE_VARIABLES)
def test_a_profile_the_user_set_is_kept(share: Path, monkeypatch: pytest.MonkeyPatch, mine: str):
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    monkeypatch.setenv(mine, "/etc/my_dds.xml")
    for launch_file in ("sarn_deblur.launch.py", "camera_deblur.launch.py"):
        _, context = expand(launch_file)
        assert {v: context.environment.get(v) for v in DDS_PROFILE_VARIABLES} == {
            FASTRTPS: None,
            FASTDDS: None,
        } | {mine: "/etc/my_dds.xml"}


def test_remapped_input_and_compressed_transport(share: Path):
    (node,), _ = expand(
        "sarn_deblur.launch.py", image="/cam/color/image", input_transport="compressed"
    )
    rules = node.expanded_remapping_rules
    assert ("image_raw", "/cam/color/image") in rules
    assert ("image_raw/compressed", "/cam/color/image/compressed") in rules
    assert parameters(node)[1]["input_transport"] == "compressed"


@pytest.mark.parametrize(
    ("driver", "package", "executable"),
    [
        ("v4l2_camera", "v4l2_camera", "v4l2_camera_node"),
        ("usb_cam", "usb_cam", "usb_cam_node_exe"),
    ],
)
def test_camera_deblur_launch_wires_the_driver_into_the_node(
    share: Path, driver: str, package: str, executable: str
):
    nodes, _ = expand(
        "camera_deblur.launch.py",
        driver=driver,
        namespace="cam0",
        image_width="1280",
        image_height="720",
        precision="bf16",
        torch_compile="true",
    )
    camera, deblur = nodes  # only the chosen driver, then the node
    # the driver publishes the large frames: it needs the shared-memory profile as well
    profile = str(share / "config" / "fastdds_shm.xml")
    assert camera.test_environment[FASTDDS] == deblur.test_environment[FASTDDS] == profile
    assert (camera.node_package, camera.node_executable) == (package, executable)
    assert (deblur.node_package, deblur.node_executable) == ("sarn_ros", "sarn_deblur_node")
    assert {"precision": "bf16", "torch_compile": True}.items() <= parameters(deblur)[1].items()
    # both in one namespace: the driver's relative image_raw/camera_info are the node's inputs
    assert camera.expanded_node_namespace == deblur.expanded_node_namespace == "/cam0"
    params = parameters(camera)[1]
    if driver == "v4l2_camera":
        assert list(params["image_size"]) == [1280, 720]
        assert params["output_encoding"] == "rgb8"
    else:
        assert (params["image_width"], params["image_height"]) == (1280, 720)
        assert params["pixel_format"].endswith("2rgb")


def test_multi_camera_launch_serves_cameras_from_one_node(share: Path):
    (node,), _ = expand(
        "multi_camera_deblur.launch.py",
        cameras="[left, right]",
        namespace="stereo",
        self_ensemble="2",
        torch_compile="false",
    )
    assert node.node_name == "/stereo/sarn_deblur"
    inline = parameters(node)[1]
    assert list(inline["cameras"]) == ["left", "right"]
    assert (inline["self_ensemble"], inline["torch_compile"]) == (2, False)


@pytest.mark.parametrize(
    "launch_file",
    ["sarn_deblur.launch.py", "camera_deblur.launch.py", "multi_camera_deblur.launch.py"],
)
def test_every_argument_has_a_description_and_a_default(launch_file: str):
    """`ros2 launch sarn_ros X --show-args` explains every argument (with those of the included
    node launch file), and none is required."""
    spec = importlib.util.spec_from_file_location("ld", REPO / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    arguments = ld.get_launch_arguments()  # with those of included launch files
    undescribed = [a.name for a in arguments if a.description == "no description given"]
    assert not undescribed, undescribed
    assert all(a.default_value is not None for a in arguments)


def test_multi_camera_keeps_the_cameras_of_the_users_parameter_file(share: Path, tmp_path: Path):
    """A stereo rig's own YAML naming its cameras must not be overridden by the launch file's
    [left, right] example, as no other argument left out overrides the file."""
    flat = tmp_path / "rig.yaml"
    flat.write_text("/**:\n  ros__parameters:\n    cameras: [cam0, cam1]\n")
    nested = tmp_path / "nested.yaml"  # node names may also be written as nested keys
    nested.write_text("stereo:\n  sarn_deblur:\n    ros__parameters:\n      cameras: [cam0]\n")
    for mine in (flat, nested):
        (node,), _ = expand(
            "multi_camera_deblur.launch.py", params_file=str(mine), namespace="stereo"
        )
        files, inline = parameters(node)
        assert files == [str(mine)] and "cameras" not in inline, mine
    # no file, or one that names no cameras: the stereo default; an argument always wins
    other = tmp_path / "other.yaml"
    other.write_text("/**:\n  ros__parameters:\n    device: cpu\n")
    for given in ({}, {"params_file": str(other)}):
        (node,), _ = expand("multi_camera_deblur.launch.py", **given)
        assert list(parameters(node)[1]["cameras"]) == ["left", "right"], given
    (node,), _ = expand("multi_camera_deblur.launch.py", params_file=str(flat), cameras="[a, b]")
    assert list(parameters(node)[1]["cameras"]) == ["a", "b"]
    # keyed by the full name under a namespace an including file pushed (PushRosNamespace)
    keyed = tmp_path / "robot1.yaml"
    keyed.write_text("/robot1/stereo/sarn_deblur:\n  ros__parameters:\n    cameras: [front]\n")
    (node,), _ = expand(
        "multi_camera_deblur.launch.py",
        params_file=str(keyed),
        namespace="stereo",
        ros_namespace="/robot1",
    )
    assert "cameras" not in parameters(node)[1]
    with pytest.raises(ValueError, match=r"cameras:=left,: an empty camera name"):
        expand("multi_camera_deblur.launch.py", cameras="left,")
    for given, cameras in (
        ("[]", [""]),
        ("[left, right,]", ["left", "right"]),
        ("['', a]", ["", "a"]),
        ("'a', \"b\"", ["a", "b"]),
    ):
        (node,), _ = expand("sarn_deblur.launch.py", cameras=given)
        assert list(parameters(node)[1]["cameras"]) == cameras, given
    # split by hand, ['a,b'] was two cameras and [a]] the camera a
    for given in ("['a,b']", "[a]]", "[a, b", "'a"):
        with pytest.raises(ValueError, match="not a list of camera names"):
            expand("sarn_deblur.launch.py", cameras=given)
    # a copy of the packaged config spells out cameras: [""], the node's own namespace: it
    # names no cameras (the node served one camera, /stereo/image_raw)
    copy = tmp_path / "my_sarn_deblur.yaml"
    copy.write_text((REPO / "config" / "sarn_deblur.yaml").read_text())
    (node,), _ = expand("multi_camera_deblur.launch.py", params_file=str(copy))
    assert list(parameters(node)[1]["cameras"]) == ["left", "right"]


def test_one_parameter_file_for_several_nodes_gives_each_its_own_cameras(
    share: Path, tmp_path: Path
):
    """The launch remapped every node's topics by the first `cameras` in the file, whichever
    node it was written for; rcl gives a node the last entry matching its name."""
    rig = tmp_path / "robot.yaml"
    rig.write_text(
        "/**:\n  ros__parameters:\n    cameras: [all]\n"
        "/front/sarn_deblur:\n  ros__parameters:\n    cameras: [left, right]\n"
        "rear:\n  sarn_deblur:\n    ros__parameters:\n      cameras: [cam0]\n"
        "/*/other:\n  ros__parameters:\n    cameras: [nope]\n"
        "/**/arm/*:\n  ros__parameters:\n    cameras: [wrist]\n"
    )
    for namespace, cameras in (
        ("front", ["left", "right"]),
        ("/rear", ["cam0"]),
        ("side", ["all"]),
        ("robot/arm", ["wrist"]),
    ):
        (node,), _ = expand("sarn_deblur.launch.py", params_file=str(rig), namespace=namespace)
        rules = dict(node.expanded_remapping_rules)
        assert sorted(k for k in rules if k.endswith("/image_raw")) == sorted(
            f"{c}/image_raw" for c in cameras
        ), namespace
    (node,), _ = expand("multi_camera_deblur.launch.py", params_file=str(rig), namespace="none")
    assert "cameras" not in parameters(node)[1]  # /** names cameras for it too


def test_image_and_camera_info_arguments_reach_every_camera(share: Path, tmp_path: Path):
    """image:=image_color for a stereo driver remapped `image_raw`, which no camera of a
    multi-camera node subscribes (theirs are left/image_raw, right/image_raw): ignored."""
    (node,), _ = expand("multi_camera_deblur.launch.py", namespace="stereo", image="image_color")
    rules = node.expanded_remapping_rules
    for cam in ("left", "right"):
        assert (f"{cam}/image_raw", f"{cam}/image_color") in rules
        assert (f"{cam}/image_raw/compressed", f"{cam}/image_color/compressed") in rules
        assert (f"{cam}/camera_info", f"{cam}/camera_info") in rules
    rig = tmp_path / "rig.yaml"  # cameras named by the user's file
    rig.write_text("/**:\n  ros__parameters:\n    cameras: [cam0]\n")
    (node,), _ = expand("sarn_deblur.launch.py", params_file=str(rig), image="/drv/image")
    assert ("cam0/image_raw", "/drv/image") in node.expanded_remapping_rules  # one: absolute
    with pytest.raises(ValueError, match="give names relative to each camera"):
        expand("multi_camera_deblur.launch.py", image="/drv/image")
    # an absolute camera (/abs) is /abs/image_raw under any namespace: so are its rules
    (node,), _ = expand(
        "multi_camera_deblur.launch.py", namespace="stereo", cameras="[left, /abs/]", image="color"
    )
    rules = node.expanded_remapping_rules
    assert ("/abs/image_raw", "/abs/color") in rules and ("left/image_raw", "left/color") in rules


def test_weights_named_like_a_number_reach_the_node_as_text(
    share: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """rcl and launch_ros read values as YAML: weights:=123 must stay the path '123', as the
    node's weights parameter is a string (sarn demo's -p had made it an integer)."""
    monkeypatch.chdir(tmp_path)  # the node starts where the launch does: relative paths agree
    for text in ("123", "true", "1.5"):
        Path(text).write_bytes(b"")
        (node,), _ = expand("sarn_deblur.launch.py", weights=text, device="cpu")
        inline = parameters(node)[1]
        assert (inline["weights"], inline["device"]) == (text, "cpu")
    with pytest.raises(ValueError, match=r"^launch argument device:=0: expected auto, cpu"):
        expand("sarn_deblur.launch.py", device="0")  # no device: the node would refuse it


def test_a_params_file_that_is_not_there_is_an_error_naming_it(share: Path, tmp_path: Path):
    """launch_ros only warned and started the node on its defaults: a mistyped path ran
    another configuration (and the multi-camera file's default cameras)."""
    missing = tmp_path / "mine.yml"
    for launch_file in ("sarn_deblur.launch.py", "multi_camera_deblur.launch.py"):
        with pytest.raises(ValueError, match=f"^launch argument params_file:={missing}: no such"):
            expand(launch_file, params_file=str(missing))


def test_empty_image_camera_info_and_log_level_keep_their_defaults(share: Path):
    """'' keeps the default for every argument; for these three it made rules rcl cannot
    parse ('-r camera_info:=', '--log-level ') and image_raw/compressed -> /compressed."""
    (node,), _ = expand("sarn_deblur.launch.py", image="", camera_info="", log_level="")
    assert sorted(node.expanded_remapping_rules) == [
        ("camera_info", "camera_info"),
        ("image_raw", "image_raw"),
        ("image_raw/compressed", "image_raw/compressed"),
    ]
    assert node._Node__ros_arguments == []
    # the node's own logger: a global debug was some 300 lines a second of rcl and rmw
    (node,), _ = expand("sarn_deblur.launch.py", log_level="debug", namespace="/robot/cam")
    assert node._Node__ros_arguments == ["--log-level", "robot.cam.sarn_deblur:=debug"]


def test_a_camera_name_that_is_no_namespace_is_named_before_rcl_parses_it(
    share: Path, tmp_path: Path
):
    """rcl refused the remap 'front left/image_raw' with a lexer error and no argument's name."""
    with pytest.raises(ValueError, match="cameras:=\\[front left, right\\]: cameras: 'front left'"):
        expand("multi_camera_deblur.launch.py", cameras="[front left, right]")
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"cameras": ["a", "a"]}}}))
    with pytest.raises(ValueError, match=f"params_file {mine}: cameras: 'a' given twice"):
        expand("sarn_deblur.launch.py", params_file=str(mine))


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("framerate", "abc", "a number"),
        ("image_width", "wide", "a whole number"),
        ("image_width", "-640", "a number above 0"),
        ("framerate", "0", "a number above 0"),
        ("framerate", "nan", "a number above 0"),
    ],
)
def test_a_capture_setting_of_the_wrong_type_is_named(share: Path, name, value, expected):
    """ParameterValue said "could not convert string to float: 'abc'", naming no argument; a
    negative size or rate went to the driver."""
    with pytest.raises(ValueError, match=f"^launch argument {name}:={value}: expected {expected}$"):
        expand("camera_deblur.launch.py", driver="usb_cam", **{name: value})


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("device", "gpu", "expected auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("queue_policy", "every", "queue_policy must be one of latest, all, got 'every'"),
        ("self_ensemble", "3", "self_ensemble must be one of 1, 2, 4, 8, got 3"),
        ("future_frames", "5", "future_frames must be in 0..2, got 5"),
        ("resize", "2", "resize must be in 0.1..1.0, got 2.0"),
        ("device", "cuda:01", "expected auto, cpu, cuda or cuda:N, got 'cuda:01'"),
        ("log_level", "loud", "expected one of debug, info, warn, error, fatal"),
        ("weights", "/nonexistent/w.pth", "weights file not found: /nonexistent/w.pth"),
        ("weights", "sarn_recurrent.pth", "weights file not found: sarn_recurrent.pth (packaged"),
    ],
)
def test_a_value_the_node_would_refuse_stops_the_launch_naming_it(share: Path, name, value, why):
    """A node started with it died with exit 1 (and `ros2 launch` exited 0); a wrong type was
    caught at launch already."""
    with pytest.raises(ValueError, match=f"^launch argument {name}:={value}: {re.escape(why)}"):
        expand("sarn_deblur.launch.py", **{name: value})


def test_packaged_weights_and_an_exported_graph_pass_the_launch(share: Path, tmp_path: Path):
    graph = tmp_path / "step.onnx"
    graph.write_bytes(b"")  # its contents are the node's to check, as for a .pth
    for fine in ("sarn_single", str(graph)):
        (node,), _ = expand("sarn_deblur.launch.py", weights=fine)
        assert parameters(node)[1]["weights"] == fine
    with pytest.raises(ValueError, match=r"named 'sarn_singel' \(did you mean sarn_single\?\)"):
        expand("sarn_deblur.launch.py", weights="sarn_singel")


def test_the_devices_the_node_takes_pass_the_launch(share: Path):
    for fine in ("cpu", "cpu:0", "cuda", "cuda:1", "cuda:10", "auto"):
        (node,), _ = expand("sarn_deblur.launch.py", device=fine)
        assert parameters(node)[1]["device"] == fine


def test_log_level_names_the_node_under_a_namespace_an_including_file_pushed(share: Path):
    """PushRosNamespace('outer') with namespace:=a puts the node at /outer/a/sarn_deblur: the
    level went to a.sarn_deblur, a logger of no node, and was lost without a word."""
    for pushed, namespace, logger in (
        ("/outer", "a", "outer.a.sarn_deblur"),
        ("/outer", "/abs", "abs.sarn_deblur"),
        ("", "", "sarn_deblur"),
    ):
        (node,), _ = expand(
            "sarn_deblur.launch.py", ros_namespace=pushed, namespace=namespace, log_level="debug"
        )
        assert node._Node__ros_arguments == ["--log-level", f"{logger}:=debug"]


def test_arguments_win_over_a_later_wildcard_entry_of_the_params_file(
    share: Path, tmp_path: Path, ros_domain: int
):
    """launch_ros wrote the arguments under the node's full name, which rcl merged into the
    file's entry of that name, ahead of the file's later /** entry: that won, and
    future_frames:=0 precision:=bf16 ran 2 and fp32 unsaid. Read here by rcl itself."""
    import rclpy
    from rclpy.node import Node as RclNode

    mine = tmp_path / "mine.yaml"
    later = "/**:\n  ros__parameters: {future_frames: 2, precision: fp32, lazy: true}\n"
    files = [
        f"{first}:\n  ros__parameters: {{cameras: [a], future_frames: 1}}\n{later}"
        for first in ("/camera/sarn_deblur", "/**/camera/sarn_deblur")  # the second: our key
    ]
    # a key given twice (PyYAML keeps the last, rcl both): the first spelled our key
    files.append(f"/**:\n  camera:\n    sarn_deblur:\n      ros__parameters: {{a: 1}}\n{later}")
    for text in files:
        mine.write_text(text)
        (node,), _ = expand(
            "sarn_deblur.launch.py",
            params_file=str(mine),
            namespace="camera",
            future_frames="0",
            precision="bf16",
            cameras="[n, inf]",  # text, not a bool and a double
        )
        args = ["--ros-args"]
        for path, _ in node._Node__expanded_parameter_arguments:
            args += ["--params-file", path]
        context = rclpy.Context()
        rclpy.init(args=args, context=context, domain_id=ros_domain)
        try:
            got = RclNode(
                "sarn_deblur",
                namespace="/camera",
                context=context,
                automatically_declare_parameters_from_overrides=True,
            )
            values = {n: got.get_parameter(n).value for n in ("future_frames", "precision")}
            assert values == {"future_frames": 0, "precision": "bf16"}, text
            assert got.get_parameter("lazy").value is True  # the file's, not given
            assert list(got.get_parameter("cameras").value) == ["n", "inf"]
            got.destroy_node()
        finally:
            rclpy.shutdown(context=context)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sarn_deblur:\n  future_frames: 0\n", "sarn_deblur/future_frames has a value outside"),
        ("- a\n- b\n", "not a mapping of node names to ros__parameters"),
        ("/**: {ros__parameters: [1]}\n", "/\\*\\*/ros__parameters is not a mapping"),
        ("camera:\n  sarn_deblur:\n", "camera/sarn_deblur has no ros__parameters"),
        ("/**:\n  ros__parameters:\n", "/\\*\\*/ros__parameters is not a mapping"),
    ],
)
def test_a_params_file_rcl_cannot_read_is_an_error_naming_it(
    share: Path, tmp_path: Path, text: str, why: str
):
    """rcl_init refused these ("Cannot have a value before ros__parameters", "Sequences
    cannot be key"): the node died, naming no launch argument."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(text)
    for launch_file in ("sarn_deblur.launch.py", "multi_camera_deblur.launch.py"):
        with pytest.raises(ValueError, match=f"^launch argument params_file:={mine}: {why}"):
            expand(launch_file, params_file=str(mine))
    readable = (  # rcl reads these (documents, tags, '='); a YAML error is left to rcl
        "",
        "sarn_deblur:\n  ros__parameters: {}\n",
        "/**:\n  ros__parameters: {lazy: true}\n---\nx:\n  ros__parameters: {a: 1}\n",
        "/**:\n  ros__parameters:\n    cameras: !!python/tuple [left, right]\n    a: =\n",
        "/**:\n  ros__parameters: [a: 1]\n",
        "a: [b\n",
    )
    for text in readable:
        mine.write_text(text)
        (node,), _ = expand("sarn_deblur.launch.py", params_file=str(mine))
        assert parameters(node)[0] == [str(mine)]


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("image", "color image", "not a topic name"),
        ("image", "image_raw/", "not a topic name"),
        ("image", "a//b", "a repeated '/'"),
        ("camera_info", "info 2", "not a topic name"),
        ("image", "{node}/image", "a substitution"),
        ("image", "~", "'~' here"),
        ("image", "a__b", "a double underscore"),
    ],
)
def test_an_image_or_camera_info_that_is_no_topic_name_is_named(share: Path, name, value, why):
    """rcl refused '-r image_raw:=color image' with a lexer error naming no argument, and
    image:=image_raw/ made the rule image_raw/compressed:=image_raw//compressed."""
    with pytest.raises(ValueError, match=f"^launch argument {name}:={value}: .*{why}"):
        expand("sarn_deblur.launch.py", **{name: value})


def test_blank_cameras_keep_the_default_and_numbers_take_no_underscores(share: Path):
    """cameras:=' ' served the node's own namespace (multi_camera's [left, right] unset);
    Python's int('1_0') made future_frames:=1_0 "got 10" (rcl reads it as text)."""
    nodes, _ = expand("multi_camera_deblur.launch.py", cameras=" ")
    assert parameters(nodes[0])[1]["cameras"] == ["left", "right"]
    for name, value in (("future_frames", "1_0"), ("resize", "0_5")):
        with pytest.raises(ValueError, match=f"^launch argument {name}:={value}: expected"):
            expand("sarn_deblur.launch.py", **{name: value})


def test_the_arguments_file_goes_when_the_launch_ends(share: Path, tmp_path: Path):
    """Each launch left a launch_params_* file of its arguments in /tmp for good."""
    launch_file = REPO / "launch" / "sarn_deblur.launch.py"
    params = share / "config" / "sarn_deblur.yaml"
    script = f"""
import importlib.util
from pathlib import Path
spec = importlib.util.spec_from_file_location("ld", {str(launch_file)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
path = module.overrides_file({{"lazy": True}}, "/sarn_deblur", {str(params)!r})
assert "'lazy': true" in Path(path).read_text()  # there while the launch runs
print(path)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.strip())
    assert written.parent == tmp_path and written.name.startswith("launch_params_")
    assert not written.exists()
