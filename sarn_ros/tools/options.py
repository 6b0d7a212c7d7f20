"""Command-line options shared by the tools that read rosbag2 recordings."""

from __future__ import annotations

import argparse

from ..ros.image_conversion import DEBAYER


def add_bag_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--topics`` and ``--debayer``: which camera topics of a bag, demosaiced how."""
    p.add_argument(
        "--topics",
        nargs="+",
        help="bag image topics (default: every Image/CompressedImage but depth, one per camera)",
    )
    p.add_argument(
        "--debayer",
        default="vng",
        choices=tuple(DEBAYER),
        help="bags: demosaicing of bayer_* topics, as the node's debayer parameter",
    )
