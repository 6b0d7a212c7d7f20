"""One sarn_deblur_node (one model copy) for several cameras, e.g. a stereo pair.

    ros2 launch sarn_ros multi_camera_deblur.launch.py cameras:='[left, right]' namespace:=stereo

Each camera <namespace>/<cam>/image_raw (+ camera_info) is deblurred into
<namespace>/<cam>/deblurred/image_raw (+ camera_info), with its own recurrent state. On a
GPU, frames of equal size from the cameras go through one batched forward pass; on a CPU they
go one after another, which measured faster there.
"""

import os

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

HERE = os.path.dirname(os.path.abspath(__file__))
FORWARDED = (
    "weights",
    "device",
    "future_frames",
    "input_transport",
    "queue_policy",
    "use_sim_time",
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "cameras",
                default_value="[left, right]",
                description="Camera namespaces, relative to namespace.",
            ),
            DeclareLaunchArgument("namespace", default_value=""),
            *(DeclareLaunchArgument(name, default_value="") for name in FORWARDED),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(HERE, "sarn_deblur.launch.py")),
                launch_arguments={
                    name: LaunchConfiguration(name) for name in ("cameras", "namespace", *FORWARDED)
                }.items(),
            ),
        ]
    )
