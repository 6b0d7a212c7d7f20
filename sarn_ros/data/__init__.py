"""Training data: synthetic blur generator and dataset loaders (no ROS)."""
