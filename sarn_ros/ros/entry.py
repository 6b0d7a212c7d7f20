"""Console script of ``sarn_deblur_node``.

Importing the node takes seconds (PyTorch), before rclpy installs its signal handlers. A
Ctrl-C in that time printed a KeyboardInterrupt traceback and a SIGTERM (``docker stop``,
systemd, a launch file shut down early) ended the process with -15, which ``ros2 launch``
reports as a crash. Both are a stop asked for: the process now exits 0, as it does later on.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from ..resources import torch_missing


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # a shell starts background jobs (`node &` in a script) with SIGINT ignored, which Python
    # keeps: a `kill -INT` during start-up was lost, though rclpy's handler takes it later on
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        # numpy first: imported from within PyTorch's C extension, a stop there is dropped
        # and the start goes on (as `sarn`'s was)
        import numpy  # noqa: F401

        from .node import main as node_main
    except KeyboardInterrupt:
        return 0
    except ModuleNotFoundError as exc:
        if (why := torch_missing(exc)) is None:
            raise
        print(f"sarn_deblur_node: error: {why}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    code = node_main()
    # The node is down. Interpreter teardown (PyTorch's: about 1 s) resets the handlers Python
    # installed to the default, under which a second Ctrl-C or SIGTERM ended the process with
    # -2 or -15; ignored handlers it leaves as they are.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
