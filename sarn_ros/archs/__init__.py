"""Network definitions (pure PyTorch, no ROS)."""

import torch

from .. import require_torch

require_torch(torch.__version__)  # before the networks, which use newer PyTorch

from .recurrent_sarn_arch import RecurrentSARN, RecurrentSARNConfig, fusion_inputs  # noqa: E402
from .sarn_arch import SARN, SARNConfig  # noqa: E402

__all__ = ["SARN", "RecurrentSARN", "RecurrentSARNConfig", "SARNConfig", "fusion_inputs"]
