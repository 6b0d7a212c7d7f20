"""`sarn bench model|node`: benchmark scripts that print tables (never timed tests)."""

from __future__ import annotations

import argparse
import importlib

from .options import HelpFormatter

TARGETS = {
    "model": ("bench_model", "Network speed, memory, FLOPs per variant, resolution, device."),
    "node": ("bench_node", "End-to-end ROS node latency, overhead, fps and drops."),
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help=__doc__.split(":")[0],
        description="Benchmarks that print tables (and --json): the network alone, or the "
        "node end to end; `sarn bench TARGET --help` for each.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, (module, help_text) in TARGETS.items():
        p = targets.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        mod = importlib.import_module(f"sarn_ros.tools.{module}")
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
