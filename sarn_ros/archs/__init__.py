"""Network definitions (pure PyTorch, no ROS)."""

from .recurrent_sarn_arch import RecurrentSARN, RecurrentSARNConfig, fusion_inputs
from .sarn_arch import SARN, SARNConfig

__all__ = ["SARN", "RecurrentSARN", "RecurrentSARNConfig", "SARNConfig", "fusion_inputs"]
