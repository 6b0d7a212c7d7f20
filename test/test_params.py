"""The node's parameter table is the one source: config/sarn_deblur.yaml and README agree."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from sarn_ros.ros.params import PARAMS

REPO = Path(__file__).resolve().parent.parent


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def test_config_file_declares_every_parameter_with_its_default():
    config = yaml.safe_load((REPO / "config" / "sarn_deblur.yaml").read_text())
    values = flatten(config["/**"]["ros__parameters"])
    assert values == {p.name: p.default for p in PARAMS}


def test_readme_table_lists_every_parameter_with_default_live_flag_and_description():
    rows = re.findall(
        r"^\| `([\w.]+)` \| `([^`]*)` \|[^|]*\| (yes|no) \| (.*) \|$",
        (REPO / "README.md").read_text(),
        re.M,
    )
    assert [(name, live == "yes") for name, _, live, _ in rows] == [
        (p.name, p.live) for p in PARAMS
    ]
    assert [yaml.safe_load(default) for _, default, _, _ in rows] == [p.default for p in PARAMS]
    assert [text for *_, text in rows] == [p.description for p in PARAMS]


def test_readme_range_column_is_each_parameters_range_or_choices():
    """A range narrowed or a choice dropped in the code (self_ensemble 8, jpeg_quality 100)
    would refuse a value README offers; every default and choice passes validation."""
    from sarn_ros.ensemble import MEMBERS
    from sarn_ros.ros.params import BY_NAME, DOUBLES, validate

    rows = dict(
        re.findall(
            r"^\| `([\w.]+)` \| `[^`]*` \| ([^|]*) \| (?:yes|no) \|",
            (REPO / "README.md").read_text(),
            re.M,
        )
    )
    for p in PARAMS:
        if p.choices:
            assert rows[p.name].strip() == " / ".join(map(str, p.choices)), p.name
        elif bounds := p.int_range or p.float_range:
            assert rows[p.name].strip() == f"{bounds[0]:g}..{bounds[1]:g}", p.name
        assert validate(p.name, p.default) is None, p.name
        assert all(validate(p.name, c) is None for c in p.choices), p.name
    assert BY_NAME["self_ensemble"].choices == MEMBERS
    # the whole numbers the node takes for these (`-p max_gap_s:=0`), and for no others
    assert {"resize", "max_megapixels", "max_gap_s", "diagnostics_period_s"} == DOUBLES


def test_help_lists_every_parameter_with_the_range_a_set_is_checked_against():
    from sarn_ros.ros.params import PARAMS, help_text

    text = help_text()
    for p in PARAMS:
        assert f"  {p.name} (default {p.default!r}" in text
    lines = text.splitlines()
    future = lines[lines.index("  future_frames (default 2, live)") + 1]
    assert future.endswith("Range: 0 to 2.")
    resize = next(ln for i, ln in enumerate(lines) if lines[i - 1].startswith("  resize "))
    assert resize.endswith("Range: 0.1 to 1.")


def test_a_camera_given_twice_is_refused_and_no_camera_is_called_default():
    """['left', 'left/'] published every output twice; ['', 'default'] shared one state.
    'left' and '/left' are two cameras under a namespace: the node compares resolved topics
    (test_node's test_cameras_are_told_apart_by_their_resolved_topics)."""
    from sarn_ros.ros.params import validate

    assert validate("cameras", ["left", "left//", "right"]) == "cameras: 'left' given twice"
    assert validate("cameras", ["/a/", "/a"]) == "cameras: '/a' given twice"
    assert validate("cameras", ["", "default"]) is None
    assert validate("cameras", ["/", "//"]) == "cameras: '/' given twice"
    assert validate("cameras", ["/", "", "left", "/left/"]) is None
    assert (
        validate("cameras", ["a//b"]) == "cameras: 'a//b' is not a valid namespace (a repeated '/')"
    )
    assert "cameras: '/~' is not a valid namespace (topic name must not have tilde" in validate(
        "cameras", ["/~"]
    )  # '~' is the node's private namespace, '/~' no name rcl resolves
    assert validate("cameras", ["~", "/{node}", "//"]) is None


def test_choices_and_camera_namespaces_are_checked_and_live_parameters_can_be_set():
    from sarn_ros.ros.params import BY_NAME, validate

    assert validate("precision", "fp64") == (
        "precision must be one of fp32, fp16, bf16, got 'fp64'"
    )
    assert validate("precision", "bf16") is None and validate("queue_policy", "all") is None
    assert validate("self_ensemble", 3) is not None and validate("self_ensemble", 4) is None
    assert "is not a valid namespace" in validate("cameras", ["left cam"])
    assert validate("cameras", ["left", "stereo/right"]) is None
    assert not BY_NAME["precision"].descriptor().read_only  # live: set at run time
    assert BY_NAME["weights"].descriptor().read_only


def test_rclpy_enforces_each_range_and_takes_any_value_inside_it(ros_domain):
    """rclpy checks values against the descriptors alone, at start-up (-p) and on live sets: a
    range left off them let resize:=5 or queue_size:=0 through, and a float step other than 0
    refused resize:=0.75."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from sarn_ros.ros.params import BY_NAME

    context = rclpy.Context()
    rclpy.init(context=context)
    try:

        def starts_with(name: str, value: object) -> bool:
            node = Node(
                "params_probe", context=context, parameter_overrides=[Parameter(name, value=value)]
            )
            try:
                node.declare_parameter(name, BY_NAME[name].default, BY_NAME[name].descriptor())
                return True
            except Exception:  # InvalidParameterValueException
                return False
            finally:
                node.destroy_node()

        for name in ("queue_size", "jpeg_quality", "qos.subscription.depth", "qos.publisher.depth"):
            assert not starts_with(name, 0) and starts_with(name, 1), name  # 0 holds no frame
        assert not starts_with("future_frames", 3) and starts_with("future_frames", 0)
        assert not starts_with("resize", 1.5) and not starts_with("resize", 0.05)
        assert starts_with("resize", 0.75) and starts_with("max_gap_s", 0.25)
        assert not starts_with("max_gap_s", -1.0) and not starts_with("diagnostics_period_s", 0.0)

        node = Node("params_probe", context=context)
        resize = BY_NAME["resize"]
        node.declare_parameter("resize", resize.default, resize.descriptor())
        results = node.set_parameters([Parameter("resize", value=v) for v in (0.33, 1.5, 0.0)])
        assert [r.successful for r in results] == [True, False, False]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_descriptions_name_the_choices_for_ros2_param_describe():
    from sarn_ros.ros.params import BY_NAME, help_text

    for name in ("precision", "queue_policy", "debayer"):
        choices = ", ".join(map(str, BY_NAME[name].choices))
        assert f"One of: {choices}." in BY_NAME[name].descriptor().description
        assert f"One of: {choices}." in help_text()


def test_a_weights_path_that_reads_as_a_number_reaches_the_node_as_text(ros_domain):
    """rcl reads a -p value as YAML: weights named 123 (or true) reached the node as an
    integer (or a bool) from sarn demo and sarn bench node, which refused it."""
    import rclpy
    from rclpy.node import Node

    from sarn_ros.resources import param_string

    for text in ("123", "true", "1.5", "it's.pth", "[a]"):
        context = rclpy.Context()
        argv = ["x", "--ros-args", "-p", f"weights:={param_string(text)}"]
        rclpy.init(args=argv, context=context, domain_id=ros_domain)
        try:
            node = Node("quoting_probe", context=context)
            assert node.declare_parameter("weights", "").value == text
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
