"""ROS 2 side of sarn_ros: the deblurring node and message conversion."""
