"""Training loop for SARN / RecurrentSARN (no ROS)."""

from .trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
