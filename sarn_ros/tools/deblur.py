"""`sarn deblur INPUT -o OUTPUT`: deblur a video, an image folder, an image or a rosbag2
offline."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from ..checkpoint import CheckpointError
from ..data.datasets import folder_name, list_images
from ..ensemble import MEMBERS
from ..image_files import VIDEO_FPS, kernel_path, video_path
from .options import (
    Given,
    HelpFormatter,
    add_bag_arguments,
    add_gap_argument,
    check_writable,
    folder_lock,
    forget_empty,
    how_stopped,
    made_folder,
    nonempty,
    path_arg,
    plural,
    ranged,
    spelled,
    split_idle,
    stops_as_interrupts,
)

JPEG_QUALITY = 90
FPS = 30.0
JPEG_EXTS = (".jpg", ".jpeg")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deblur",
        help="Deblur a video, an image folder, an image or a rosbag2 offline.",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "input",
        type=path_arg,
        help="video file, folder of images, image file, or rosbag2 (sqlite3/mcap)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=nonempty,
        required=True,  # a str: a trailing '/' says "folder" for a name with a dot
        help="videos and image folders: a video file (.mp4, .avi, .mkv, .mov, .m4v) or a folder "
        "(PNG frames named by their index in a video, the same file names from a folder); an "
        "image: an image file or a folder (the same file name); bags: a bag directory that does "
        "not exist yet",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="videos, images and image folders: replace an existing output video or image, "
        "write into a folder that holds images (the files of the same names are replaced)",
    )
    p.add_argument("--weights", default="sarn_recurrent", help="checkpoint path or packaged name")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA if present, else the CPU), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "bf16"),
        help="inference precision (autocast); fp16 is for CUDA (a CPU runs fp32, with a "
        "warning), bf16 for CPUs with native bf16; an .onnx graph runs fp32 only",
    )
    p.add_argument(
        "--future-frames",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="blurred frames each output waits for (look-ahead; 0 = lowest latency)",
    )
    p.add_argument(
        "--resize",
        type=ranged(float, 0.1, 1),  # the node's `resize` range
        default=1.0,
        help="scale factor applied before deblurring",
    )
    p.add_argument(
        "--self-ensemble",
        type=int,
        default=1,
        choices=MEMBERS,
        help="average K flipped/transposed passes per frame: better frames, K times the compute",
    )
    p.add_argument(
        "--torch-compile",
        action="store_true",
        help="torch.compile the network: faster per frame after a compile of 15-30 s per size",
    )
    add_bag_arguments(p)
    add_gap_argument(p, "restart the recurrent state")
    p.add_argument(
        "--compressed",
        action="store_true",
        help="bags: write <ns>/deblurred/image_raw/compressed (JPEG, as the node's "
        "publish_compressed) instead of raw images: 5.5x smaller for 752x480 mono8 at quality 90",
    )
    p.add_argument(
        "--jpeg-quality",
        action=Given,
        type=ranged(int, 1, 100),
        default=JPEG_QUALITY,
        help="JPEG quality: bags with --compressed; a folder's JPEG frames, a JPEG image "
        "(default there: OpenCV's 95)",
    )
    p.add_argument(
        "--side-by-side",
        action="store_true",
        help="videos, images and folders: write input | deblurred",
    )
    p.add_argument(
        "--fps",
        action=Given,
        type=ranged(float, VIDEO_FPS[0], 1000),  # OpenCV's writer hangs at inf, fails at 0.001
        default=FPS,
        help="an image folder written as a video: its frame rate",
    )
    p.add_argument(
        "--skip-frames",
        type=ranged(int, 0),
        default=0,
        help="leave out the first N readable frames (of each camera of a bag)",
    )
    p.add_argument(
        "--max-frames",
        type=ranged(int, 1),
        default=None,
        help="deblur at most N frames (of each camera of a bag): a quick preview of a long "
        "recording; a bag still gets every original message",
    )
    p.set_defaults(func=run)


HINT_AFTER_S = 30.0  # a run long enough that a faster setting is worth a user's time
CPU_HINTS = {
    "bf16": "this CPU computes bf16 natively: --precision bf16 --torch-compile",
    "export": "this CPU has no native bf16 (AVX512-BF16, AMX): `sarn export -o net.onnx` (with "
    "your --weights), then --weights net.onnx (fp32, without --torch-compile; onnxruntime)",
}


def idle_options(
    args: argparse.Namespace, kind: str, out_kind: str, dst: Path
) -> tuple[list[str], list[str]]:
    """The options given that this input and output (``dst``: an image's file) have no use
    for, each with what it is for (see :func:`split_idle`)."""
    bag = kind == "bag"
    # a folder into a folder: only its JPEG frames take a quality; an image: a JPEG written
    jpegs = (kind, out_kind) == ("folder", "folder") and any(
        p.suffix.lower() in JPEG_EXTS for p in list_images(args.input)
    )
    jpegs |= kind == "image" and dst.suffix.lower() in JPEG_EXTS
    return split_idle(
        {
            "--compressed (bags)": ("set" if args.compressed else None, not bag),
            "--jpeg-quality (bags with --compressed; JPEG frames or a JPEG image written)": (
                spelled(args, "jpeg_quality"),
                not (bag and args.compressed) and not jpegs,
            ),
            "--topics (bags)": ("set" if args.topics is not None else None, not bag),
            "--debayer (bags)": (spelled(args, "debayer"), not bag),
            "--max-gap-s (bags)": (spelled(args, "max_gap_s"), not bag),
            "--fps (an image folder written as a video)": (
                spelled(args, "fps"),
                (kind, out_kind) != ("folder", "video"),
            ),
            "--overwrite (videos, images and image folders; an output bag must be new)": (
                "set" if args.overwrite else None,
                bag,
            ),
            # one image: nothing to skip, nothing to stop at
            "--skip-frames (videos, image folders and bags)": (
                "set" if args.skip_frames else None,
                kind == "image",
            ),
            "--max-frames (videos, image folders and bags)": (
                "set" if args.max_frames is not None else None,
                kind == "image",
            ),
        }
    )


def images_before(folder: Path, began: float) -> int:
    """The images in ``folder`` this run did not write (older than ``began``): a shorter run
    into an earlier one's folder left its later frames there, read as one video later on. A
    link's own time: a dangling one (named like an image) raised after the run was done."""

    def older(p: Path) -> bool:
        try:
            return p.lstat().st_mtime < began
        except OSError:  # gone meanwhile
            return False

    return sum(map(older, list_images(folder)))


def run(args: argparse.Namespace) -> int:
    with stops_as_interrupts(), contextlib.ExitStack() as held:
        return deblur(args, held)


def deblur(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    """`sarn deblur`; ``held``: the output folder's lock, released when the command ends."""
    from tqdm import tqdm

    from .. import offline
    from ..engine import FASTER_ON_CPU, faster_cpu_setting, native_bf16
    from ..ensemble import make_engine
    from ..recordings import restarts_said

    bar = None
    written = 0
    try:
        kind = "image" if offline.is_image_file(args.input) else offline.kind_of(args.input)
        dst = Path(args.output)
        if kind == "image":  # into a folder: under its own name, as a folder's images are
            dst = offline.image_output(args.input, args.output)
        shown = dst if kind == "image" else args.output  # the file written
        if dst.resolve() == args.input.resolve():
            raise offline.InputError(
                f"output {shown} is the input itself: name another (the originals are "
                "never overwritten)"
            )
        # the recording's folder, also where one of its storage files is given (a split part)
        home = args.input if args.input.is_dir() else args.input.parent
        if (
            kind == "bag"
            and (home / "metadata.yaml").is_file()
            and dst.resolve().is_relative_to(home.resolve())
        ):
            raise offline.InputError(  # a bag written into the recording's own folder
                f"output {args.output} is inside the input bag {home}: name a place outside "
                "it (the originals are never changed)"
            )
        out_kind = {"bag": "bag", "image": "image"}.get(kind) or offline.output_kind(args.output)
        unused, noted = idle_options(args, kind, out_kind, dst)
        if unused:  # before minutes of work that are not what the user asked for
            raise offline.InputError(f"not used in this run: {'; '.join(unused)}")
        if noted:
            print(f"sarn deblur: note: not used in this run: {'; '.join(noted)}", file=sys.stderr)
        # a link to nothing: check_writable's error, not "pass --overwrite", then that one
        if kind == "image" and not args.overwrite and kernel_path(dst).exists():
            raise offline.InputError(f"output {dst} already exists: pass --overwrite to replace it")
        if kind not in ("bag", "image"):
            offline.check_new_output(args.output, args.overwrite)
        try:  # where it cannot be made: known now, not after the model loaded
            # a video is written beside the output and renamed over it
            # an image is too (imwrite)
            whole_file = out_kind in ("video", "image")
            check_writable(dst, "-o", folder=not whole_file, replaced=whole_file)
            if out_kind == "video":
                video_path(dst)
        except ValueError as exc:
            raise offline.InputError(str(exc)) from None
        # a stop leaves an earlier video as it was (FrameSink), not its first frames over it
        replaced = out_kind == "video" and kernel_path(dst).exists()
        if whole_file and (top := made_folder(kernel_path(dst).parent)) is not None:
            # the writer makes them: a run that fails before its video goes leaves none
            held.callback(forget_empty, kernel_path(dst).parent, top)
        if out_kind == "folder":  # two runs into one folder mixed their frames without a word
            # the folder written, as the kernel finds it (`new/../kept`, `link/../out`)
            whole = Path(os.path.realpath(dst))
            top = made_folder(whole)
            whole.mkdir(parents=True, exist_ok=True)
            dst = whole  # written there: by its name, `new/../out` made `new` back
            if not held.enter_context(folder_lock(whole)):
                raise offline.InputError(
                    f"another sarn deblur writes into {args.output}: wait for it to end, or "
                    "name another -o"
                )
            if top is not None:  # a run that wrote nothing leaves none (the lock held still)
                held.callback(forget_empty, whole, top)
        if kind == "video":
            offline.check_video(args.input)
        if kind == "bag":  # pip-only: a missing one is reported (by the cli) before the model
            import rosbags  # noqa: F401

            if dst.suffix.lower() in offline.OUTPUT_VIDEO_EXTS or args.side_by_side:
                raise offline.InputError(
                    "a bag is deblurred into a new bag (a directory, its other topics copied): "
                    "no video output or --side-by-side"
                )
            dst = kernel_path(dst)  # by its name, `new/../out` made `new` beside it
            offline.check_new_bag(dst)  # as deblur_bag does, but before the model loads
            if (top := made_folder(dst.parent)) is not None:  # rosbags makes them: a failed
                held.callback(forget_empty, dst.parent, top)  # run's bag goes, so do they
            with offline.open_bag(args.input) as reader:
                offline.bag_topics(reader, args.input, args.topics)
        window = offline.Window(args.skip_frames, args.max_frames)
        try:
            engine = make_engine(
                args.weights,
                self_ensemble=args.self_ensemble,
                device=args.device,
                precision=args.precision,
                future_frames=args.future_frames,
                max_gap_s=args.max_gap_s if kind == "bag" and args.max_gap_s else None,
                torch_compile=args.torch_compile,
            )
        except ValueError as exc:  # settings the weights cannot run with (an ONNX graph: fp32)
            raise offline.InputError(str(exc)) from None
        bar = tqdm(
            unit="frame",
            desc=f"deblurring {folder_name(args.input)}",
            dynamic_ncols=True,
            leave=False,
        )
        # began: for the images left, by mtime (a filesystem's clock lags by a tick or so,
        # FAT's by up to 2 s)
        start, began = time.monotonic(), time.time() - 2.0

        def expect(total: int) -> None:  # the bar's total, so it shows how far and how long
            bar.total = total
            bar.refresh()

        def tick() -> None:  # a frame written: counted here, as TQDM_DISABLE=1 leaves bar.n 0
            nonlocal written
            written += 1
            bar.update()

        if kind == "video":
            report = offline.deblur_video(
                args.input,
                dst,
                engine,
                args.resize,
                args.side_by_side,
                tick,
                window=window,
                expect=expect,
            )
        elif kind == "image":
            report = offline.deblur_image(
                args.input,
                kernel_path(dst),
                engine,
                args.resize,
                args.side_by_side,
                tick,
                jpeg_quality=args.jpeg_quality if spelled(args, "jpeg_quality") else None,
            )
        elif kind == "folder":
            report = offline.deblur_folder(
                args.input,
                dst,
                engine,
                args.resize,
                args.side_by_side,
                tick,
                fps=args.fps,
                window=window,
                expect=expect,
                jpeg_quality=args.jpeg_quality if spelled(args, "jpeg_quality") else None,
            )
        else:
            report = offline.deblur_bag(
                args.input,
                dst,
                engine,
                args.resize,
                args.topics,
                tick,
                debayer=args.debayer,
                jpeg_quality=args.jpeg_quality if args.compressed else None,
                window=window,
                expect=expect,
            )
        bar.close()
    except (offline.InputError, CheckpointError, RuntimeError, OSError) as exc:
        if bar is not None:
            bar.close()
        print(f"sarn deblur: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: say what is left, not a traceback
        if bar is None:
            raise  # before any output: the cli's one line
        bar.close()
        left = (
            "a half-written bag is removed"
            if kind == "bag"
            else f"{shown} is left as it was (a stopped run replaces no whole video)"
            if replaced
            else f"{shown} has the first {plural(written, 'frame')}"
            if written
            else f"nothing was written to {shown}"  # it may not even exist
        )
        how, code = how_stopped(exc)
        print(f"sarn deblur: {how}; {left}", file=sys.stderr)
        return code
    secs = time.monotonic() - start
    for topic, why in report.ignored_topics.items():
        if why.removeprefix(offline.SAME_CAMERA) in report.unreadable_topics:  # it was not: named
            continue  # with the chosen one
        print(f"sarn deblur: {topic} not deblurred: {why} (choose with --topics)", file=sys.stderr)
    for topic, why in report.unreadable_topics.items():  # a whole camera lost: not only a count
        instead = report.instead(list(report.unreadable_topics), [topic])
        print(
            f"sarn deblur: {topic} not deblurred: no readable frame ({why}){instead}",
            file=sys.stderr,
        )
    for topic, why in report.misfit_infos.items():  # as the node warns
        print(
            f"sarn deblur: {topic} {why}{' (after --resize)' * (args.resize != 1)}: "
            "republished, not fitted to them",
            file=sys.stderr,
        )
    for topic, msgtype in report.undefined_topics.items():
        print(
            f"sarn deblur: {topic} is left out of the copy: the bag holds no definition of "
            f"{msgtype} (recorded on Humble) and rosbags does not know it",
            file=sys.stderr,
        )
    for topic in report.replaced_topics:
        print(f"sarn deblur: the bag's own {topic} is replaced by the new output", file=sys.stderr)
    for topic, why in report.stale_topics.items():
        print(
            f"sarn deblur: the bag's own {topic} is left out: {why}, and the bag has no "
            "camera_info of this camera to make a new one from",
            file=sys.stderr,
        )
    print(
        f"sarn deblur: {plural(report.frames, 'frame')} -> {shown} in {secs:.1f} s "
        f"({report.frames / max(secs, 1e-9):.2f} fps on {engine.device})"
        + (f", {plural(report.skipped, 'unreadable frame')} skipped" if report.skipped else "")
        + (f" (first: {report.first_skip})" if report.first_skip else "")
        + (
            f", {plural(report.unread, 'more frame')} the video announces could not be read "
            "(a file cut short? OPENCV_FFMPEG_LOGLEVEL=24 shows FFmpeg's reason)"
            if report.unread
            else ""
        )
        + (f", torch.compile {'on' if engine.compiled else 'failed'}" if args.torch_compile else "")
    )
    if out_kind == "folder" and (left := images_before(dst, began)):
        print(
            f"sarn deblur: note: {plural(left, 'image')} in {args.output} not from this run "
            "(--overwrite replaced those of the same names only)",
            file=sys.stderr,
        )
    if kind == "bag" and engine.is_recurrent:  # a slow camera restarted at every frame
        resets = engine.stats()["resets_by_reason"]
        if said := restarts_said(resets["backwards"], resets["gap"], args.max_gap_s):
            print(
                f"sarn deblur: the recurrent state restarted {' and '.join(said)}", file=sys.stderr
            )
    if secs >= HINT_AFTER_S and engine.device.type == "cpu" and not engine.onnx:
        setting = faster_cpu_setting(engine.precision, args.torch_compile, native_bf16())
        if setting:
            hint = f"{CPU_HINTS[setting]} {FASTER_ON_CPU[setting]}"
            print(f"sarn deblur: hint: {hint}", file=sys.stderr)
    return 0
