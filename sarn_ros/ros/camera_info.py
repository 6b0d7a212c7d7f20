"""camera_info for a resized image, on rclpy messages and rosbags dataclasses alike (duck-typed,
so the node and offline bag deblurring publish the same calibration for the same ``resize``)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np


def scale_camera_info(info: Any, sx: float, sy: float, header: Any = None) -> Any:
    """A copy of ``info`` for its image resized by (sx, sy), as image_proc's resize node does:
    K, P, width, height and the ROI describe the calibration at the new scale. binning_x/y stay
    as they are (they relate the calibration size to the published size, which scales alike)."""
    out = copy.deepcopy(info)
    if header is not None:
        out.header = header
    out.height, out.width = round(info.height * sy), round(info.width * sx)
    k, p = np.array(info.k, np.float64), np.array(info.p, np.float64)
    k[[0, 2]] *= sx
    k[[4, 5]] *= sy
    p[[0, 2, 3]] *= sx
    p[[5, 6, 7]] *= sy
    out.k, out.p = k, p
    roi = info.roi
    out.roi.x_offset, out.roi.width = round(roi.x_offset * sx), round(roi.width * sx)
    out.roi.y_offset, out.roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    return out


def image_size(info: Any) -> tuple[int, int]:
    """(width, height) of the images ``info`` describes (REP 104): its ROI, or the whole
    calibrated size where the ROI is all zero, divided by the binning (0 means none). A binned
    or cropped camera's calibration stays at the sensor's full size."""
    roi = info.roi
    w, h = (roi.width, roi.height) if roi.width and roi.height else (info.width, info.height)
    return w // max(info.binning_x, 1), h // max(info.binning_y, 1)
