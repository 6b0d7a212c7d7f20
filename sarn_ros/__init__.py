"""sarn_ros: real-time motion deblurring of camera streams with the recurrent SARN.

Public API (no ROS needed)::

    from sarn_ros import SARN, RecurrentSARN, SelfEnsembleDeblurrer, StreamDeblurrer, load_model
"""

import re
from importlib import import_module

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


__all__ = ["SARN", "RecurrentSARN", "SelfEnsembleDeblurrer", "StreamDeblurrer", "load_model"]
__version__ = "0.1.0"

# Imported on first use: PyTorch takes seconds to import, and the console scripts must be able
# to take a Ctrl-C or SIGTERM in that time (sarn_ros.ros.entry) before anything imports it.
_HOMES = {
    "SARN": ".archs",
    "RecurrentSARN": ".archs",
    "load_model": ".checkpoint",
    "StreamDeblurrer": ".engine",
    "SelfEnsembleDeblurrer": ".ensemble",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'sarn_ros' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name], __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
