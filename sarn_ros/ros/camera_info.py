"""camera_info for a resized image, on rclpy messages and rosbags dataclasses alike (duck-typed,
so the node and offline bag deblurring publish the same calibration for the same ``resize``)."""

from __future__ import annotations

import copy
import threading
import time
from itertools import pairwise
from typing import Any

import numpy as np

LATE_PAUSE_S = 5.0
"""How long a camera goes without waits after one timed out and a camera_info came after it:
one late or lost message (a network or CPU hiccup) must not end them for the rest of the run."""
MAX_PAUSE_S = 320.0
"""The longest pause: it doubles from :data:`LATE_PAUSE_S` with every wait in a row that times
out, so a camera whose camera_info never pairs with its images (stamped 0 or just before the
image, or sent at a lower rate) costs the worker a wait every few minutes, not every frame."""


def scale_camera_info(info: Any, sx: float, sy: float, header: Any = None) -> Any:
    """A copy of ``info`` for its image resized by (sx, sy), as image_proc's resize node does:
    K, P, width, height and the ROI describe the calibration at the new scale. binning_x/y stay
    as they are (they relate the calibration size to the published size, which scales alike).

    K's and P's first two rows scale whole (u' = sx u, v' = sy v), so a calibrated skew does
    too. Where the rounded ROI would end past the rounded full size (an odd size halved, say),
    the full size grows to hold it: the ROI keeps the published image's size, and one outside
    the calibrated image is invalid (REP 104)."""
    out = copy.deepcopy(info)
    if header is not None:
        out.header = header
    k = np.array(info.k, np.float64).reshape(3, 3)
    p = np.array(info.p, np.float64).reshape(3, 4)
    k[:2] *= [[sx], [sy]]
    p[:2] *= [[sx], [sy]]
    out.k, out.p = k.reshape(-1), p.reshape(-1)
    roi = info.roi
    out.roi.x_offset, out.roi.width = round(roi.x_offset * sx), round(roi.width * sx)
    out.roi.y_offset, out.roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    out.width, out.height = round(info.width * sx), round(info.height * sy)
    # grown by the rounding only: an ROI outside the image (a driver's garbage) grew it past
    # uint32 (2**32 - 1 + 2**32 - 1 wide), which a subscriber cannot read
    if roi.x_offset + roi.width <= info.width and roi.y_offset + roi.height <= info.height:
        out.width = max(out.width, out.roi.x_offset + out.roi.width)
        out.height = max(out.height, out.roi.y_offset + out.roi.height)
    return out


def image_size(info: Any) -> tuple[int, int]:
    """(width, height) of the images ``info`` describes (REP 104): its ROI, or the whole
    calibrated size where the ROI is all zero, divided by the binning (0 means none). A binned
    or cropped camera's calibration stays at the sensor's full size."""
    roi = info.roi
    w, h = (roi.width, roi.height) if roi.width and roi.height else (info.width, info.height)
    return w // max(info.binning_x, 1), h // max(info.binning_y, 1)


class InfoCache:
    """One camera's camera_info messages by stamp, for the outputs that need theirs.

    A driver publishes camera_info just after its image (image_transport's CameraPublisher
    order), so a frame without look-ahead can come out of the network before its calibration
    arrives. ``get`` then waits a moment for it instead of pairing the image with the previous
    frame's calibration (or none, for the first frame). It waits only while the camera_info
    can still come: none with a newer stamp has arrived (they come in order), no earlier wait
    is still unanswered (a camera without camera_info costs one wait), and no camera_info has
    come since a wait timed out within the pause (:data:`LATE_PAUSE_S`, doubling with every
    such wait in a row up to :data:`MAX_PAUSE_S`; an answered wait starts it afresh). Waits run
    on the node's one worker, so an unanswered one stalls every camera.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.infos: dict[int, Any] = {}
        self.latest: Any = None
        self.latest_stamp: int | None = None
        self.missed: int | None = None  # the stamp a wait timed out on, until one comes
        # when one came after a timed-out wait: late, lost or never paired with the images
        self.late_at: float | None = None
        self.timeouts = 0  # timed-out waits since the last answered one: the pause doubles
        self.arrived = threading.Condition()

    def put(self, stamp: int, info: Any) -> None:
        with self.arrived:
            self.infos.pop(stamp, None)  # a bag played again: newest, not first out
            self.infos[stamp] = info
            while len(self.infos) > self.size:
                del self.infos[next(iter(self.infos))]
            self.latest, self.latest_stamp = info, stamp
            if self.missed is not None:  # the next one ends the miss (also a looping bag's)
                self.late_at = time.monotonic()
                self.missed = None
            self.arrived.notify_all()

    def discard(self, stamp: int) -> None:
        """Forget the camera_info of a frame that will not be published (dropped)."""
        with self.arrived:
            self.infos.pop(stamp, None)

    def get(self, stamp: int, wait_s: float = 0.0) -> tuple[Any, bool]:
        """camera_info with this stamp, else the one held nearest it (the earlier of two as
        near), else the latest; the flag says whether it matched. The nearest, not the
        latest: with look-ahead that was a later frame's, so the frames before a calibration
        or size change took the new one. The latest where the nearest is further off than the
        held ones are apart: a driver stamping on another clock (an hour ahead) had the
        oldest held stand in, not the newest."""
        deadline = time.monotonic() + wait_s
        with self.arrived:
            waited = False
            while stamp not in self.infos and self.may_come(stamp):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.missed = stamp
                    self.timeouts += 1
                    break
                waited = True
                self.arrived.wait(left)
            info = self.infos.get(stamp)
            if waited and info is not None:
                self.timeouts = 0
            if info is not None:
                return info, True
            held = sorted(self.infos)
            if not held:  # all discarded: a dropped frame's was the newest
                return self.latest, False
            near = min(held, key=lambda s: (abs(s - stamp), s))
            spacing = max((b - a for a, b in pairwise(held)), default=0)
            if len(held) == 1 or abs(near - stamp) <= spacing:
                return self.infos[near], False
            return self.latest, False

    def may_come(self, stamp: int) -> bool:
        """Whether a camera_info with ``stamp`` is worth waiting for. Callers hold the lock."""
        newer = self.latest_stamp is not None and self.latest_stamp >= stamp
        doublings = min(max(self.timeouts - 1, 0), 16)  # bounded: no float overflow in days
        pause = min(LATE_PAUSE_S * 2**doublings, MAX_PAUSE_S)
        late = self.late_at is not None and time.monotonic() - self.late_at < pause
        return not (newer or late or self.missed is not None)
