"""Where a weights argument points, without torch: the launch files check ``weights:=``
before they start a node that would only exit on it, and importing torch there would cost
the launch process seconds and hundreds of MB."""

from __future__ import annotations

import contextlib
import os
from difflib import get_close_matches
from pathlib import Path

from .resources import find_share_file

PACKAGED = ("sarn_recurrent", "sarn_single")  # weights/*.pth, installed with the package


class CheckpointError(RuntimeError):
    """A weights file that is missing, truncated, or not a sarn_ros checkpoint."""


def resolve_weights(weights: str | Path) -> Path:
    """A path as given, or a packaged weights name such as ``sarn_recurrent``: that name means
    the packaged file, also where the working folder (a shell's, the node's) holds a file or
    a run directory of that name, which took its place unsaid (``./sarn_recurrent`` is that
    file)."""
    if isinstance(weights, str) and not weights.strip():  # Path("") is ".": "is a folder"
        raise CheckpointError("weights: an empty path (a weights file or a packaged name)")
    p = Path(weights).expanduser()
    # a name as typed: a Path has lost the "./" of ./sarn_recurrent, and the "/" of runs/
    path_typed = isinstance(weights, str) and ("/" in weights or os.sep in weights)
    if isinstance(weights, str) and weights in PACKAGED:
        with contextlib.suppress(FileNotFoundError):  # not installed: as any other name
            return find_share_file(f"weights/{p.name}.pth")
    if p.is_file():
        return p
    if p.suffix == "" and p.parent == Path(".") and not path_typed:
        try:
            return find_share_file(f"weights/{p.name}.pth")
        except FileNotFoundError as exc:
            if p.is_dir():  # no packaged name: the folder was meant (a run's, not its best.pth)
                raise CheckpointError(f"weights {p} is a folder, not a weights file") from None
            near = get_close_matches(p.name.lower(), PACKAGED, 1, 0.8)
            meant = f" (did you mean {near[0]}?)" if near else f"; packaged: {', '.join(PACKAGED)}"
            raise CheckpointError(
                f"no weights file or packaged weights named {weights!r}{meant}: {exc}"
            ) from None
    if p.is_dir():
        raise CheckpointError(f"weights {p} is a folder, not a weights file")
    if p.exists():  # a FIFO would block the load for good, /dev/zero never ends
        raise CheckpointError(f"weights {p} is not a regular file (a pipe or a device)")
    named = p.parent == Path(".") and p.suffix == ".pth" and p.stem in PACKAGED
    packaged = f" (packaged weights are named without .pth: {p.stem})" if named else ""
    raise CheckpointError(f"weights file not found: {p}{packaged}")
