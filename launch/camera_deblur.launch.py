"""A camera driver and sarn_deblur_node side by side in one namespace.

    ros2 launch sarn_ros camera_deblur.launch.py driver:=v4l2_camera video_device:=/dev/video0
    ros2 launch sarn_ros camera_deblur.launch.py driver:=usb_cam pixel_format:=mjpeg2rgb

Both drivers publish the relative topics image_raw and camera_info, so in the shared
namespace <namespace>/image_raw feeds the node and <namespace>/deblurred/image_raw comes out.
They are asked for rgb8 output (v4l2_camera output_encoding, usb_cam *2rgb pixel formats), so
any other consumer of image_raw sees plain RGB; the node itself also takes the camera's own
YUYV/UYVY (usb_cam pixel_format:=yuyv: 2 bytes a pixel over DDS instead of 3). Install the
driver you choose
(ros-$ROS_DISTRO-v4l2-camera or ros-$ROS_DISTRO-usb-cam).

The packaged Fast DDS profile (large shared-memory segment) is set before the driver starts:
it is the publisher whose default 512 KiB segment loses best-effort VGA/720p frames.
"""

import os

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchContext, LaunchDescription
from sarn_ros.resources import launch_file_module

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVERS = ("v4l2_camera", "usb_cam")
FORWARDED = ("weights", "device", "future_frames", "input_transport", "use_sim_time")


NODE_LAUNCH = launch_file_module(os.path.join(HERE, "sarn_deblur.launch.py"))
# the profile is set before the driver starts, by the node launch file's own rule
dds_profile = NODE_LAUNCH.dds_profile


def driver_is(name: str) -> IfCondition:
    return IfCondition(PythonExpression(["'", LaunchConfiguration("driver"), f"' == '{name}'"]))


def capture_settings(context: LaunchContext) -> list[object]:
    """The capture size and rate checked by name before any driver starts: a bad one was
    ParameterValue's "could not convert string to float: 'abc'", naming no argument, and one
    of 0 or below went to the driver."""
    for name, kind in (("image_width", int), ("image_height", int), ("framerate", float)):
        text = LaunchConfiguration(name).perform(context)
        value = NODE_LAUNCH.typed(name, text, kind)
        if not 0 < value < float("inf"):  # went to the driver as it was
            raise ValueError(f"launch argument {name}:={text}: expected a number above 0")
    return []


def generate_launch_description() -> LaunchDescription:
    ns, frame_id = LaunchConfiguration("namespace"), LaunchConfiguration("frame_id")
    width, height = LaunchConfiguration("image_width"), LaunchConfiguration("image_height")
    device = LaunchConfiguration("video_device")
    return LaunchDescription(
        [
            OpaqueFunction(function=dds_profile),
            DeclareLaunchArgument(
                "driver",
                default_value="v4l2_camera",
                choices=list(DRIVERS),
                description="Camera driver package.",
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="camera",
                description="Namespace of the driver and the node: the driver's "
                "<namespace>/image_raw is deblurred into <namespace>/deblurred/image_raw.",
            ),
            DeclareLaunchArgument(
                "video_device", default_value="/dev/video0", description="V4L2 device."
            ),
            DeclareLaunchArgument(
                "image_width", default_value="640", description="Capture width in pixels."
            ),
            DeclareLaunchArgument(
                "image_height", default_value="480", description="Capture height in pixels."
            ),
            DeclareLaunchArgument(
                "framerate",
                default_value="30.0",
                description="Frames per second (usb_cam only).",
            ),
            DeclareLaunchArgument(
                "pixel_format",
                default_value="yuyv2rgb",
                description="usb_cam pixel_format (yuyv2rgb, mjpeg2rgb, yuyv, ...); "
                "v4l2_camera converts to rgb8 itself.",
            ),
            DeclareLaunchArgument(
                "frame_id",
                default_value="camera_optical_frame",
                description="frame_id of the images and camera_info (the deblurred ones keep it).",
            ),
            *NODE_LAUNCH.forwarded(FORWARDED),
            OpaqueFunction(function=capture_settings),
            Node(
                package="v4l2_camera",
                executable="v4l2_camera_node",
                name="v4l2_camera",
                namespace=ns,
                parameters=[
                    {
                        "video_device": device,
                        "image_size": ParameterValue(
                            ["[", width, ",", height, "]"], value_type=list[int]
                        ),
                        "output_encoding": "rgb8",
                        "camera_frame_id": frame_id,
                    }
                ],
                output="screen",
                condition=driver_is("v4l2_camera"),
            ),
            Node(
                package="usb_cam",
                executable="usb_cam_node_exe",
                name="usb_cam",
                namespace=ns,
                parameters=[
                    {
                        "video_device": device,
                        "image_width": ParameterValue(width, value_type=int),
                        "image_height": ParameterValue(height, value_type=int),
                        "framerate": ParameterValue(
                            LaunchConfiguration("framerate"), value_type=float
                        ),
                        "pixel_format": LaunchConfiguration("pixel_format"),
                        "frame_id": frame_id,
                    }
                ],
                output="screen",
                condition=driver_is("usb_cam"),
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(HERE, "sarn_deblur.launch.py")),
                launch_arguments={
                    "namespace": ns,
                    **{name: LaunchConfiguration(name) for name in FORWARDED},
                }.items(),
            ),
        ]
    )
