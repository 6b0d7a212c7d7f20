"""sarn_ros: real-time motion deblurring of camera streams with the recurrent SARN.

Public API (no ROS needed)::

    from sarn_ros import SARN, RecurrentSARN, SelfEnsembleDeblurrer, StreamDeblurrer, load_model
"""

from .archs import SARN, RecurrentSARN
from .checkpoint import load_model

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
