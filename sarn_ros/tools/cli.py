"""`sarn`: one command with subcommands. Each subcommand lives in its own module of
``sarn_ros.tools`` exposing ``register(subparsers)`` which adds its parser and sets
``func`` (called with the parsed args, returns the exit code). Modules are imported only when
their subcommand runs, so `sarn --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys

from sarn_ros import __version__
from sarn_ros.resources import torch_missing

# Python packages some subcommands need that package.xml does not declare (rosdistro has pip
# keys at most, and rosdep's pip installs into the system Python fail under PEP 668): a ROS
# install lacks them until the user pip-installs them, so their absence is one line, not a
# traceback.
PIP_ONLY = {
    "rosbags": "reading or writing rosbag2 files",
    "onnx": "ONNX export",
    "onnxscript": "ONNX export",
    "onnxruntime": "checking the ONNX export",
}

SUBCOMMANDS = {
    "demo": "Play the bundled sample through the real ROS node and report PSNR gain and fps.",
    "deblur": "Deblur a video, an image folder or a rosbag2 offline.",
    "train": "Train or fine-tune SARN weights.",
    "eval": "Evaluate weights: PSNR/SSIM vs the blurred input, SLAM proxy on real streams.",
    "bench": "Benchmark the model or the node and print a table.",
    "export": "Export ONNX (single-image model and one recurrent step).",
}


def quiet_opencv() -> None:
    """Leave out FFmpeg's and OpenCV's own lines ("moov atom not found", "[ERROR:0@0.138]
    global grfmt_png.cpp:297 readHeader IHDR chunk shall be first") before sarn's: each case
    is said once in sarn's words (a video it cannot open, unreadable frames counted), and an
    [ERROR] line above a run that ends well misleads. Set before OpenCV is imported, which
    reads them once. A user's OPENCV_FFMPEG_LOGLEVEL, OPENCV_FFMPEG_DEBUG or OPENCV_LOG_LEVEL
    is kept."""
    if not {"OPENCV_FFMPEG_LOGLEVEL", "OPENCV_FFMPEG_DEBUG"} & set(os.environ):
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "8"  # AV_LOG_FATAL
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # the node sets the same in its main


def print_any_path() -> None:
    """Print a path that is not UTF-8 (``\\xff.png`` from an old FAT drive) as its own
    bytes, as ``ls`` does: under a UTF-8 locale Python's strict output raised at the closing
    line, after the work was done."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # not a replaced stream without it
            stream.reconfigure(errors="surrogateescape")


def subcommand(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is no option."""
    return next((a for a in argv if not a.startswith("-")), None)


class CommandParser(argparse.ArgumentParser):
    """`sarn`'s parser: words its subcommand does not take are refused with that
    subcommand's usage (`sarn deblur a b -o x` printed `sarn`'s own, naming no input rule)."""

    def parse_args(  # type: ignore[override] # argparse's overloads: one form used here
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        words = sys.argv[1:] if args is None else list(args)
        parsed, extras = self.parse_known_args(words, namespace)
        if extras:
            refusing = innermost(self, words, set(extras))
            refusing.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def innermost(
    parser: argparse.ArgumentParser, words: list[str], extras: set[str]
) -> argparse.ArgumentParser:
    """The (sub)parser ``words`` choose whose own words hold the ``extras``: `bench model ...`
    is bench's ``model`` parser; `sarn --overwrite deblur ...` is sarn's (deblur takes it)."""
    for action in parser._actions:  # argparse keeps its subparsers in no public place
        if isinstance(action, argparse._SubParsersAction):
            word = subcommand(words)
            at = words.index(word) if word in action.choices else None
            if at is not None and not extras & set(words[:at]):
                return innermost(action.choices[word], words[at + 1 :], extras)
    return parser


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    # here, not at the top: a Ctrl-C during their seconds-long import is main's. numpy first:
    # imported from within torch's C extension, a Ctrl-C then was dropped and the run went on
    import numpy  # noqa: F401
    import torch

    parser = CommandParser(
        prog="sarn",
        description="SARN motion deblurring: demo, offline deblurring, training, evaluation.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"sarn_ros {__version__} (PyTorch {torch.__version__}, "
        f"Python {platform.python_version()})",  # what a bug report needs
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = subcommand(argv)
    for name, help_text in SUBCOMMANDS.items():
        if name == chosen:
            importlib.import_module(f"sarn_ros.tools.{name}").register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = subcommand(argv)
    prog = f"sarn {command}" if command else "sarn"
    quiet_opencv()
    print_any_path()
    try:
        from .options import stops_as_interrupts, warnings_above_bars

        # torch's import and the parse: seconds in which a SIGTERM or SIGHUP ended the run
        # without its line (each tool takes them over where it installs its own)
        with stops_as_interrupts():
            args = build_parser(argv).parse_args(argv)
        if args.command is None:
            build_parser([]).print_help()
            return 0
        with warnings_above_bars(prog):
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, during the imports too: a stop asked for
        while isinstance(exc.__context__, KeyboardInterrupt):  # a second, in the first's clean-up
            exc = exc.__context__  # the first stop is the one said
        code = getattr(exc, "code", 130)  # options.Stopped: 128 + its signal
        print(f"\n{prog}: {f'stopped by {exc}' if code != 130 else 'interrupted'}", file=sys.stderr)
        return code
    except ModuleNotFoundError as exc:
        if why := torch_missing(exc):
            print(f"{prog}: error: {why}", file=sys.stderr)
            return 2
        missing = (exc.name or "").split(".")[0]
        if missing not in PIP_ONLY:
            raise
        print(
            f"{prog}: error: {PIP_ONLY[missing]} needs the Python package "
            f"{missing}, not among sarn_ros's ROS dependencies: "
            f"python3 -m pip install --user {missing}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
