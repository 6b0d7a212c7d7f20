"""Command-line pieces the ``sarn`` subcommands share: the help layout, the bag options."""

from __future__ import annotations

import argparse

from ..ros.image_conversion import DEBAYER


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` names each option's default, as a user needs to know what a bare command
    does; not where the default means "not given" (None, off, an empty list) or where the help
    text already says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == []
        if unset or "default" in text:
            return text
        if isinstance(action.default, list):  # nargs: as typed, space-separated
            return f"{text} (default: {' '.join(map(str, action.default))})"
        return super()._get_help_string(action)


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
