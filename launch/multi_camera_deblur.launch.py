"""One sarn_deblur_node (one model copy) for several cameras, e.g. a stereo pair.

    ros2 launch sarn_ros multi_camera_deblur.launch.py cameras:='[left, right]' namespace:=stereo

Each camera <namespace>/<cam>/image_raw (+ camera_info) is deblurred into
<namespace>/<cam>/deblurred/image_raw (+ camera_info), with its own recurrent state. On a
GPU, frames of equal size from the cameras go through one batched forward pass; on a CPU they
go one after another, which measured faster there. Without a cameras argument the cameras are
those of params_file where it names them, else [left, right].
"""

import os

from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetLaunchConfiguration,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from launch import LaunchContext, LaunchDescription
from sarn_ros.resources import launch_file_module

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CAMERAS = "[left, right]"
FORWARDED = (
    "weights",
    "device",
    "future_frames",
    "input_transport",
    "queue_policy",
    "use_sim_time",
)


NODE_LAUNCH = launch_file_module(os.path.join(HERE, "sarn_deblur.launch.py"))


def default_cameras(context: LaunchContext) -> list[SetLaunchConfiguration]:
    """[left, right] unless the cameras are given, or named by the user's params_file (which
    a launch default must not silently override)."""
    if LaunchConfiguration("cameras").perform(context).strip():
        return []
    params_file = LaunchConfiguration("params_file", default="").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    # under the namespace an including file pushed, as the node will be: a file keyed
    # /robot1/stereo/sarn_deblur was overridden with [left, right] under PushRosNamespace
    node = NODE_LAUNCH.node_name(NODE_LAUNCH.full_namespace(context, namespace))
    if params_file and NODE_LAUNCH.params_file_cameras(params_file, node) is not None:
        return []
    return [SetLaunchConfiguration("cameras", DEFAULT_CAMERAS)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "cameras",
                default_value="",
                description="Camera namespaces, relative to namespace unless they start with / "
                "(default: the cameras "
                f"params_file names, else {DEFAULT_CAMERAS}).",
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="Namespace of the node; the cameras are relative to it (unless "
                "absolute).",
            ),
            *NODE_LAUNCH.forwarded(FORWARDED),
            OpaqueFunction(function=default_cameras),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(HERE, "sarn_deblur.launch.py")),
                launch_arguments={
                    name: LaunchConfiguration(name) for name in ("cameras", "namespace", *FORWARDED)
                }.items(),
            ),
        ]
    )
