"""sarn_ros: real-time motion deblurring of camera streams with the recurrent SARN.

Public API (no ROS needed)::

    from sarn_ros import SARN, RecurrentSARN, SelfEnsembleDeblurrer, StreamDeblurrer, load_model
"""

import re

import torch

# The oldest PyTorch the test suite ran with (2.1.2); Ubuntu 22.04's
# python3-torch (1.8) lacks torch.compile, weights_only loading and fused attention.
MIN_TORCH = (2, 1)


def require_torch(version: str) -> None:
    """Raise ImportError naming the fix when ``version`` is older than MIN_TORCH."""
    if tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < MIN_TORCH:
        raise ImportError(
            f"sarn_ros needs PyTorch >= {'.'.join(map(str, MIN_TORCH))}, found {version}: "
            "install a newer torch with pip (README, 'On a robot')"
        )


require_torch(torch.__version__)

from .archs import SARN, RecurrentSARN  # noqa: E402  (after the version check)
from .checkpoint import load_model  # noqa: E402

__all__ = ["SARN", "RecurrentSARN", "SelfEnsembleDeblurrer", "StreamDeblurrer", "load_model"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The engine is imported on first use so that `import sarn_ros` stays light for tools
    # that only need the networks.
    if name == "StreamDeblurrer":
        from .engine import StreamDeblurrer

        return StreamDeblurrer
    if name == "SelfEnsembleDeblurrer":
        from .ensemble import SelfEnsembleDeblurrer

        return SelfEnsembleDeblurrer
    raise AttributeError(name)
