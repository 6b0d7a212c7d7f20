"""`sarn train`: train or fine-tune SARN / RecurrentSARN weights.

Data comes from ``--data`` folders (real blurred/sharp pairs in GoPro, DVD, BSD, REDS or
RealBlur layouts are used as they are; sharp frames or stills go through the synthetic blur
generator), sharp videos and rosbag2 recordings of one's own camera (cut into clips that go
through the generator), or from a ``--trainset`` folder of ``.npz`` sequences, which is built from
``--data`` the first time, one sequence at a time, and reused afterwards (and by
``--resume``); it is memory-mapped, so it may be larger than RAM. Runs under ``torchrun``
unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..archs.recurrent_sarn_arch import RecurrentSARNConfig
from ..archs.sarn_arch import SARNConfig
from ..checkpoint import CheckpointError, first_line, load_model, read_checkpoint
from ..data.blur_synth import BlurParams, synthesize
from ..data.datasets import (
    Sequence,
    blurred_sides_note,
    find_pair_dirs,
    is_pair_side,
    list_images,
    listed,
    load_sequences,
    natural_key,
    no_pairs_error,
    pairs_once,
    read_pair_pieces,
    save_sequence,
    synthesize_folder,
    unique_name,
    usable_sequences,
    visible,
)
from ..engine import MAX_GAP_S
from ..image_files import kernel_path
from ..offline import InputError, kind_of, read_units, recording_of
from ..onnx_net import is_onnx
from ..recordings import (
    gap_hint,
    holds_recordings,
    iter_clips,
    pairs_left_out,
    pairs_not_read,
    read_owners,
    recording_kind,
    sharp_source_note,
    sharpest_clips,
    synthetic_sequences,
)
from .options import (
    DEBAYER_DEFAULT,
    MAX_BLUR_PX,
    MIN_EXPOSURE,
    Gathered,
    HelpFormatter,
    add_bag_arguments,
    add_gap_argument,
    check_writable,
    file_arg,
    folder_lock,
    once_each,
    path_arg,
    plural,
    ranged,
    stops_as_interrupts,
)

CLIP_FRAMES = 60  # --clip-frames
MIN_VAL_SIDE = 16  # 4x4 at the network's lowest resolution
VAL_SCALE = 0.5  # --val-scale of --val-sharp, as `sarn eval --synthetic` scores it
WARMUP, SEED, STEPS = 200, 0, 20000  # --warmup, --seed, --steps (None until run(): given
# or not, for --resume)
POSITIVE = ranged(int, 1)
NON_NEGATIVE = ranged(float, 0)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="Train or fine-tune SARN weights.",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--arch",
        choices=("recurrent", "single"),
        help="RecurrentSARN (video) or SARN (single image); new runs only (default: recurrent, "
        "or with --init the architecture of those weights)",
    )
    p.add_argument("--run-dir", type=path_arg, required=True, help="checkpoints, logs, best.pth")
    p.add_argument("--resume", action="store_true", help="continue <run-dir>/last.pt if present")
    p.add_argument("--init", help="weights (path or packaged name) to fine-tune from")
    p.add_argument(
        "--export",
        type=file_arg,
        metavar="PTH",
        help="only copy <run-dir>/best.pth (or --from latest) to PTH for shipping (fp16 "
        "storage) and exit",
    )
    p.add_argument(
        "--from",
        dest="export_from",
        choices=("best", "latest"),
        default="best",
        help="--export the best validation weights or those of the last checkpoint",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        type=path_arg,
        nargs="*",
        action=Gathered,
        default=[],
        help="dataset folders, sharp frame/still folders, sharp videos or rosbag2 recordings "
        "(or folders of them)",
    )
    d.add_argument(
        "--trainset",
        type=path_arg,
        help="pre-built .npz sequences, memory-mapped (built here if missing or empty)",
    )
    d.add_argument(
        "--scales",
        # above 1 too: gpu_kit builds stills it packed small; 100 took every frame 10,000
        # times larger, memory gone before the first step
        type=ranged(float, high=8, above=0),
        nargs="+",
        action=Gathered,
        default=[1.0],
        help="scale factors of the sharp material (0.5: half size; above 1 enlarges)",
    )
    d.add_argument("--variants", type=POSITIVE, default=1, help="blur draws per sharp source")
    d.add_argument("--still-frames", type=POSITIVE, default=6, help="frames per synthesised still")
    d.add_argument(
        "--clip-frames",
        type=ranged(int, 3),
        default=CLIP_FRAMES,
        help="videos and bags are cut into sequences of this many frames",
    )
    add_bag_arguments(d)
    add_gap_argument(d, "cut clips")
    d.add_argument(
        "--sharpest",
        type=ranged(float, above=0, high=1),
        default=1.0,
        metavar="FRACTION",
        help="videos and bags: train on this share of their clips long enough to train on, "
        "the sharpest (median variance of the Laplacian), so ordinary recordings of your "
        "camera serve as sharp material",
    )
    d.add_argument(
        "--val-sharp",
        type=path_arg,
        help="held-out sharp video (frame folder, video file or bag) for validation PSNR",
    )
    d.add_argument(
        "--val-pairs",
        type=path_arg,
        nargs="+",
        action=Gathered,
        default=[],
        help="held-out real blurred/sharp folders (the layouts of --data, e.g. GOPRO_Large/test) "
        "for validation PSNR, beside or instead of --val-sharp",
    )
    d.add_argument(
        "--val-frames",
        type=POSITIVE,
        default=10,
        help="frames per validation sequence; of a --val-sharp folder of stills, the stills "
        "used (each a synthetic camera move)",
    )
    d.add_argument(
        "--val-scale",
        type=ranged(float, above=0, high=1),
        help=f"downscale of the validation frames (default: x{VAL_SCALE:g} for --val-sharp, "
        "as `sarn eval --synthetic` scores them; x1 for --val-pairs, as `sarn eval --pairs` "
        "does)",
    )
    d.add_argument(
        "--val-blur-px",
        type=ranged(float, 0, MAX_BLUR_PX),
        help="validation blur at full resolution (default: --blur-px); set it to `sarn eval "
        "--blur-px` (and --exposure alike) so best.pth is the checkpoint that evaluation ranks "
        "best",
    )
    b = p.add_argument_group("synthetic blur (match your camera)")
    b.add_argument(
        "--blur-px",
        type=ranged(float, 0, MAX_BLUR_PX),
        default=24.0,
        help="largest blur length, pixels at full resolution (a --scales 0.5 copy gets half)",
    )
    b.add_argument(
        "--exposure",
        type=ranged(float, MIN_EXPOSURE, 1),
        default=0.8,
        help="shutter duty cycle 0..1",
    )
    b.add_argument(
        "--rotation-deg",
        type=ranged(float, 0, 180),
        default=0.9,
        help="largest in-plane rotation per exposure",
    )
    b.add_argument(  # e^1: 2.7x the size within one exposure; past it a traceback (e^1e6)
        "--zoom",
        type=ranged(float, 0, 1),
        default=0.018,
        help="largest log-scale change per exposure",
    )
    b.add_argument(
        "--noise", type=NON_NEGATIVE, default=2.0, help="largest noise sigma, 8-bit levels"
    )
    jpeg = b.add_mutually_exclusive_group()  # both given: --no-jpeg won, unsaid
    jpeg.add_argument(
        "--jpeg",
        type=ranged(int, 1, 100),
        nargs=2,
        default=[70, 97],
        metavar=("MIN", "MAX"),
        help="JPEG quality range of the blurred frames' compression",
    )
    jpeg.add_argument("--no-jpeg", action="store_true", help="no compression of the blurred frames")
    b.add_argument(
        "--object-prob",
        type=ranged(float, 0, 1),
        default=0.3,
        help="chance that a sequence has an independently moving object",
    )
    b.add_argument(
        "--linear-light",
        type=ranged(float, 0, 1),
        default=0.5,
        metavar="SHARE",
        help="share of sequences integrated in linear light (a sensor; GoPro's blur_gamma); the "
        "rest average 8-bit values (GoPro's standard blur frames). 1 to match a real camera",
    )
    o = p.add_argument_group("optimisation")
    o.add_argument(
        "--steps",
        type=ranged(int, 0),
        help=f"cosine schedule length (default {STEPS}; on --resume the run's own, which a "
        "--steps given lengthens or shortens)",
    )
    o.add_argument(
        "--batch",
        type=ranged(int, 1, 1024),  # 10**11 made no error: it built crops for hours
        default=4,
        help="clips (recurrent) or frames (single) per step, per process under torchrun",
    )
    o.add_argument(
        "--clip-len",
        type=POSITIVE,
        default=4,
        help="frames deblurred and supervised per recurrent clip; up to 2 more are read after "
        "it as look-ahead, so a sequence needs --clip-len + 2 frames",
    )
    o.add_argument(
        "--max-stride",
        type=POSITIVE,
        default=1,
        metavar="K",
        help="clips of every k-th frame, k drawn up to K where a sequence has room: more motion "
        "between frames for the same blur, as a camera slower than the training material",
    )
    o.add_argument(
        "--crop",
        type=ranged(int, 16),
        default=96,
        help="side of the square training crops, pixels (at least 16: the network's lowest "
        "level, at 1/4, then holds 4x4); smaller sequences are left out",
    )
    o.add_argument(
        "--lr",
        type=ranged(float, above=0, high=1),  # 1e308 was a traceback in Adam
        default=None,
        help=f"Adam's peak learning rate (default: {LR:g}; {LR_INIT:g} with --init: at {LR:g} a "
        "fine-tune of the shipped weights on a camera of one's own came out worse than them)",
    )
    o.add_argument(
        "--warmup",
        type=ranged(int, 0),
        help=f"steps of linear learning-rate warm-up (default {WARMUP})",
    )
    o.add_argument(
        "--loss", choices=("charbonnier", "l1"), default="charbonnier", help="pixel loss"
    )
    o.add_argument(
        "--fft-weight",
        type=ranged(float, 0, 10),
        default=0.05,
        help="weight of the FFT loss (0..10: above, it drowns the pixel loss it sharpens)",
    )
    o.add_argument(
        "--ema",
        type=ranged(float, 0, below=1),
        default=0.999,
        metavar="DECAY",
        help="validate and export an exponential moving average of the weights (0: off)",
    )
    o.add_argument(
        "--seed",
        type=ranged(int, 0, 2**32 - 1),  # numpy's seed range; -1 was its own error, unnamed
        help=f"seeds the initialisation and the batches (default {SEED})",
    )
    o.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if present, else the CPU), cpu, cuda or cuda:N; torchrun: its rank's GPU",
    )
    o.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="autocast dtype; auto: mixed precision on CUDA, fp32 on a CPU (bf16 there is "
        "faster on CPUs with native bf16)",
    )
    o.add_argument(
        "--torch-compile",
        action="store_true",
        help="torch.compile forward and backward: 1.2x faster steps on a 2-core CPU in bf16 "
        "after 2-3 minutes of compiling (one graph per look-ahead 0, 1, 2)",
    )
    o.add_argument(
        "--max-minutes",
        type=ranged(float, above=0),
        help="end the command within this long, counted from its start (data loading and a "
        "--trainset build included): training stops with time left for its closing "
        "validation and checkpoint, as long as the last ones took",
    )
    o.add_argument(
        "--ckpt-minutes",
        type=ranged(float, above=0),
        default=5.0,
        help="write <run-dir>/last.pt and latest.pth this often",
    )
    o.add_argument(
        "--val-minutes",
        type=ranged(float, above=0),
        default=10.0,
        help="validate (and update best.pth and last.pt) this often",
    )
    m = p.add_argument_group("architecture (runs from scratch; --init and --resume keep their own)")
    paper = SARNConfig()
    m.add_argument(
        "--channels",
        type=POSITIVE,
        help=f"channels at full resolution, x2 per level (default: {paper.channels}, the paper's)",
    )
    m.add_argument(
        "--blocks-per-level",
        type=POSITIVE,
        help=f"ResBlocks per encoder/decoder level (default: {paper.blocks_per_level})",
    )
    m.add_argument(
        "--num-drm",
        type=ranged(int, 0),
        help=f"deformable residual modules (default: {paper.num_drm}, the paper's)",
    )
    m.add_argument(
        "--lstm-channels",
        type=POSITIVE,
        help=f"ConvLSTM width (recurrent; default: {RecurrentSARNConfig().lstm_channels})",
    )
    m.add_argument(
        "--attention-stride",
        type=ranged(int, 1, 1024),  # past the feature map's size it pools it all: torch's int
        help="average-pooling of the attention's keys and values "
        f"(default: {paper.attention_stride})",
    )
    p.set_defaults(func=run)


def blur_params(args: argparse.Namespace) -> BlurParams:
    return BlurParams(
        blur_px=args.blur_px,
        exposure=args.exposure,
        rotation_deg=args.rotation_deg,
        zoom=args.zoom,
        noise_std=args.noise,
        jpeg_quality=None if args.no_jpeg else (args.jpeg[0], args.jpeg[1]),
        object_prob=args.object_prob,
        linear_light=args.linear_light,
    )


def say_note(text: str) -> None:
    """A note on what of the data is used, among the lines that count it."""
    print(f"note: {text}", flush=True)


def iter_gather(
    folders: list[Path],
    params: BlurParams,
    scales: list[float],
    variants: int,
    still_frames: int,
    clip_frames: int = CLIP_FRAMES,
    topics: list[str] | None = None,
    debayer: str = DEBAYER_DEFAULT,
    sharpest: float = 1.0,
    max_gap_s: float | None = MAX_GAP_S,
    min_frames: int = 1,
) -> Iterator[Sequence]:
    """Real pairs where a known layout is found, otherwise synthesised sequences from every
    source of sharp images: the folder itself or its sub-folders as frame/still folders, and
    the videos and bags among them (or given directly) cut into clips of ``clip_frames``, of
    which the ``sharpest`` share of those with ``min_frames`` is used. Made one sequence at a
    time."""
    kept: dict[Path, set[str]] = {}  # per recording, for every scale
    owners: dict[str, dict[str, int]] = {}  # the sources seen under each seed name
    # a video given itself and in its folder, or a sequence in a folder of pairs and in a link
    # to it, was trained on twice; and a split bag's part before the bag
    plans = []
    for root in folders:
        kind = kind_of(root) if not root.is_dir() else recording_kind(root)
        found = find_pair_dirs(root) if root.is_dir() else []
        plans.append((root, kind, found, [] if found else [root] if kind else visible(root)))
    # what is no recording reads nothing: a `current` link to a video, listed first, took the
    # video as its own and was then skipped as no recording (the video read by none)
    reads = [[read_units(s) if recording_kind(s) else set() for s in p[3]] for p in plans]
    within = read_within(reads)
    paired: set[tuple[Path, Path]] = set()
    for i, (root, kind, found, sources) in enumerate(plans):
        pairs = bool(found)
        note_left_out(root, found, kind)
        repeated: dict[str, list[Path]] = {}  # by where they are read
        for src, owner in zip(sources, within[i], strict=True):
            if owner is not None:
                where = (  # a link beside its target in one folder: the folder itself
                    "an earlier --data"
                    if owner < i
                    else "another of its own sources"
                    if owner == i
                    else f"--data {plans[owner][0]}"
                )
                repeated.setdefault(where, []).append(src)
        seqs = [(n, b, s) for n, b, s in found if (b.resolve(), s.resolve()) not in paired]
        if again := [b.parent for n, b, s in found if (n, b, s) not in seqs]:
            repeated.setdefault("an earlier --data", []).extend(again)
        for where, items in repeated.items():
            if int(os.environ.get("RANK", 0)) == 0:
                print(
                    f"note: --data {root} repeats {listed(items, None)} of {where}: read once",
                    flush=True,
                )
        sources = [src for src, owner in zip(sources, within[i], strict=True) if owner is None]
        paired.update((b.resolve(), s.resolve()) for _, b, s in seqs)
        note = None if pairs else blurred_sides_note([root, *sources])
        if note and int(os.environ.get("RANK", 0)) == 0:
            print(note, flush=True)
        for i_scale, scale in enumerate(scales):
            # --blur-px is at full resolution, as for validation and `sarn eval`: an x0.5
            # copy gets half the pixels of blur (it had the full length, twice the blur)
            scaled = replace(params, blur_px=params.blur_px * scale)
            if pairs:
                for name, blur_dir, sharp_dir in seqs:
                    # cut where the size changes, as a folder of frames is (it was counted as
                    # training data, then refused: "frames of several sizes")
                    for piece in read_pair_pieces(name, blur_dir, sharp_dir, scale):
                        piece.name = f"{name}_x{scale:g}{piece.name[len(name) :]}"
                        yield piece
                continue
            for src in sources:
                src_kind = recording_kind(src)
                if src_kind in ("video", "bag"):
                    if sharpest < 1 and src not in kept:
                        kept[src], total, floor = sharpest_clips(
                            src, clip_frames, sharpest, topics, debayer, max_gap_s, min_frames
                        )
                        of = plural(total, "clip")
                        of += f" of {floor} frames or more" if floor > 1 else ""
                        if int(os.environ.get("RANK", 0)) == 0:  # one line, not one per GPU
                            print(f"{src}: the {len(kept[src])} sharpest of {of}", flush=True)
                    # said once: every scale cuts the recording alike
                    say = i_scale == 0 and int(os.environ.get("RANK", 0)) == 0
                    clips = iter_clips(
                        src,
                        clip_frames,
                        scale,
                        topics,
                        debayer,
                        max_gap_s,
                        say_note if say else None,
                    )
                    for name, clip in clips:
                        if src in kept and name not in kept[src]:
                            continue
                        for v in range(variants):
                            seed = hash_seed(seed_name(name, src, owners), scale, v)
                            b, sh = synthesize(clip, params=scaled, seed=seed)
                            yield Sequence(f"{name}_x{scale:g}_v{v}", b, sh)
                elif src_kind == "folder":
                    for v in range(variants):
                        seed = hash_seed(seed_name(src.name, src, owners), scale, v)
                        made = synthesize_folder(
                            src, seed, scaled, scale, still_frames=still_frames
                        )
                        for s in made:
                            s.name = f"{src.name}_{s.name}_x{scale:g}_v{v}"
                            yield s


LEFT_OUT_WHY = {
    "pairs": "a folder of blurred/sharp pairs trains on its sequences that have both, and on "
    "nothing else in it",
    "folder": "only the images directly in a folder of images are read",
    None: "folders that are no recording themselves: only the image folders, videos and bags "
    "directly in a --data folder are read",
}


def note_left_out(root: Path, found: list[tuple[str, Path, Path]], kind: str | None) -> None:
    """Name what a --data folder holds that training does not read (sub-folders one level too
    deep, a GoPro sequence without sharp/, a video beside pairs): only a lower count in the
    'training data' line told before. Each can be given as its own --data."""
    if not root.is_dir() or kind in ("video", "bag") or int(os.environ.get("RANK", 0)) != 0:
        return
    inside = [p for p in sorted(root.iterdir(), key=natural_key) if not p.name.startswith(".")]
    lone: list[Path] = []
    if found:  # a folder of pairs: its sequences
        out, lone = pairs_left_out(root, found)
        why = LEFT_OUT_WHY["pairs"]
    elif kind == "folder":
        out = [p for p in inside if p.is_dir() or recording_kind(p) in ("video", "bag")]
        why = LEFT_OUT_WHY["folder"]
    else:
        out = [p for p in inside if p.is_dir() and recording_kind(p) is None]
        why = LEFT_OUT_WHY[None]
    # one side of a pair layout (a sequence without sharp/, REDS' train_blur_jpeg beside
    # train_blur): as its own --data its blurred frames would pass for sharp ones
    lone += [p for p in out if p not in lone and is_pair_side(p)]
    out = [p for p in out if p not in lone]
    loose = list_images(root) if found else []  # a folder of images reads them all itself
    for items, tail in (
        (out, f"{why}; give them as their own --data"),
        (lone, "one side of a blurred/sharp pair layout, with no partner read here"),
        (loose, "images beside the sequences of a folder of pairs"),
    ):
        if items:
            print(f"note: {root}: not used: {listed(items, root)} ({tail})", flush=True)


RECORDING_OPTIONS = {  # option: the --data kinds it applies to
    "sharpest": ("video", "bag"),
    "clip_frames": ("video", "bag"),
    "topics": ("bag",),
    "debayer": ("bag",),
    "max_gap_s": ("bag",),
}


# recording options --val-sharp's bags read too
VALIDATION_OPTIONS = ("topics", "debayer", "max_gap_s")


def unused_recording_options(args: argparse.Namespace) -> list[str]:
    """The recording options given (not at their defaults) that no --data source can use
    (nor --val-sharp, for the options validation reads a bag with): image folders and pairs
    are read whole, so a --sharpest there was accepted without a word, as `sarn deblur` and
    `sarn eval` refuse options their input does not use."""
    defaults, unused = option_defaults(), []
    for key, kinds in RECORDING_OPTIONS.items():
        value = getattr(args, key)
        sources = list(args.data)
        if key in VALIDATION_OPTIONS and args.val_sharp is not None:
            sources.append(args.val_sharp)
        if value != getattr(defaults, key) and not any(holds_recordings(d, kinds) for d in sources):
            for_kinds = " and ".join(f"{k}s" for k in kinds)
            unused.append(f"{SET_OPTIONS[key]} {shown_value(value)} (for {for_kinds})")
    return unused


def set_holds(desc: dict[str, Any], kinds: tuple[str, ...]) -> bool:
    """Whether a built set's sources hold a recording of ``kinds``: an option for those cannot
    have shaped a set without one. A source no longer found here (a set built on another
    machine) counts as holding one."""
    return any(not Path(s).exists() or holds_recordings(s, kinds) for s in desc["sources"])


def gather(
    folders: list[Path],
    params: BlurParams,
    scales: list[float],
    variants: int,
    still_frames: int,
    min_frames: int = 1,
    **recordings: Any,
) -> list[Sequence]:
    seqs = list(
        iter_gather(
            folders, params, scales, variants, still_frames, **recordings, min_frames=min_frames
        )
    )
    if not seqs:
        raise no_training_data(folders, recordings.get("max_gap_s", MAX_GAP_S))
    return seqs


def no_training_data(folders: list[Path], max_gap_s: float | None = MAX_GAP_S) -> ValueError:
    if not folders:
        return ValueError("no training data: give --data, or a --trainset built before")
    error = (
        no_pairs_error(folders[0], "no training images found in")
        if len(folders) == 1
        else ValueError("no training images found in " + ", ".join(map(str, folders)))
    )
    kinds = [k for k in ("video", "bag") if any(holds_recordings(d, (k,)) for d in folders)]
    short = ""  # a 1- or 2-frame video read as "no images"
    if kinds:
        short = f"; a {' or '.join(kinds)} clip needs 3 frames at least"
    return ValueError(f"{error}{short}{gap_hint(folders, max_gap_s)}")


# settings a resumed run takes from the command, not from the run: named where they differ
LEG_OPTIONS = {
    "loss": "--loss",
    "fft_weight": "--fft-weight",
    "ema_decay": "--ema",
    "crop": "--crop",
    "batch": "--batch",
    "clip_len": "--clip-len",
    "max_stride": "--max-stride",
    "precision": "--precision",
}
RUN_WEIGHTS = ("latest.pth", "best.pth")  # a run's weights, beside its last.pt


def forget_run_dir(run_dir: Path, made: bool) -> None:
    """Remove the --run-dir this command made, while it is still empty: a run refused for its
    data left an empty folder that looked like a started run; a stop before the first step
    left one holding only TensorBoard's opening file."""
    if made:
        with contextlib.suppress(OSError):  # not empty (another rank's files), or gone
            if [p.name for p in run_dir.iterdir()] == ["tb"]:
                shutil.rmtree(run_dir / "tb")
            run_dir.rmdir()


def trainset_ready(ts: Path) -> bool:
    """A complete set: :func:`build_trainset` renames its side folder to ``ts`` when done."""
    return ts.is_dir() and any(ts.rglob("*.npz"))


def wait_for_trainset(ts: Path, poll_s: float = 2.0) -> None:
    """DDP ranks other than 0 wait for rank 0 to build the set rather than each building its
    own copy in RAM (GoPro's would be ~12 GB per rank). torchrun stops every rank when rank 0
    fails, so the wait cannot outlive a failed build."""
    while not trainset_ready(ts):
        time.sleep(poll_s)


def check_trainset_place(ts: Path | None) -> None:
    """ValueError for a set to build that is the current folder: the finished set, renamed
    onto it, took the folder from under the command (a traceback at its next read)."""
    at = os.path.realpath(ts) if ts is not None else None
    if at is not None and not trainset_ready(Path(at)) and at == os.getcwd():
        raise ValueError(
            f"--trainset {ts} is the current folder, which the finished set would replace: "
            "give a folder in it or beside it (--trainset set builds ./set)"
        )


def build_trainset(
    folders: list[Path],
    params: BlurParams,
    scales: list[float],
    variants: int,
    still_frames: int,
    out: Path,
    min_frames: int = 1,
    **recordings: Any,
) -> list[Sequence]:
    """Write every training sequence as it is made, then memory-map them back: the set is
    built and trained on without ever being in RAM as a whole. It is written to a side folder
    renamed to ``out`` when complete, so an interrupted build (or another DDP rank looking at
    ``out``) never takes a partial set for the whole one."""
    # a link's target (a bigger disk's folder): the side folder is built beside it and renamed
    # onto it; beside the link, the whole build ended in "Not a directory" and stayed hidden
    real = Path(os.path.realpath(out))
    partial = real.with_name(f".{real.name}.partial")  # hidden: not a folder --data leaves out
    busy = ValueError(
        f"--trainset {out} is being built by another sarn train: wait for it to end, then "
        "give it again to train on the set"
    )
    old = real.with_name(f"{real.name}.partial")  # an earlier version's, left by a killed build
    if old.is_dir() and all(p.suffix == ".npz" for p in old.iterdir()):
        shutil.rmtree(old, ignore_errors=True)
    if partial.is_symlink() or partial.is_file():  # the name is ours: not a link's target
        partial.unlink()
    partial.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    # locked before anything in it is touched: another build's was removed under it, then the
    # two mixed their sequences in one set
    with folder_lock(partial) as free:
        if not free:
            raise busy
        if trainset_ready(real):  # built by another command since this one looked: its own
            shutil.rmtree(partial, ignore_errors=True)  # rename would fail after a whole build
            raise ValueError(
                f"--trainset {out} was built by another sarn train meanwhile: give it again to "
                "train on the set"
            )
        for left in partial.iterdir():  # a killed build's
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left)
            else:
                left.unlink()
        try:
            made = iter_gather(
                folders, params, scales, variants, still_frames, **recordings, min_frames=min_frames
            )
            for seq in made:
                seq.name = unique_name(seq.name, seen)
                save_sequence(seq, partial)
        except BaseException:  # a bad source further on, Ctrl-C: no half-built set left behind
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if not seen:
            partial.rmdir()
            raise no_training_data(folders, recordings.get("max_gap_s", MAX_GAP_S))
        desc = describe_sources(
            folders, params, scales, variants, still_frames, **recordings, min_frames=min_frames
        )
        try:
            (partial / DESCRIPTION).write_text(json.dumps(desc, indent=2))
            partial.replace(real)  # onto a missing or empty folder
        except BaseException as exc:  # a full disk, a folder filled meanwhile: no hidden copy
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(exc, OSError):  # it named the hidden folder just removed
                raise ValueError(
                    f"--trainset {out}: the built set could not be put there ({exc.strerror}); "
                    "it is removed: give an empty or new folder"
                ) from None
            raise
    return load_sequences(real)


DESCRIPTION = "trainset.json"  # what a --trainset was built from, for the weights' metadata


def describe_sources(
    folders: list[Path],
    params: BlurParams,
    scales: list[float],
    variants: int,
    still_frames: int,
    sharpest: float = 1.0,
    clip_frames: int = CLIP_FRAMES,
    topics: list[str] | None = None,
    debayer: str = DEBAYER_DEFAULT,
    max_gap_s: float | None = MAX_GAP_S,
    min_frames: int = 1,
) -> dict[str, Any]:
    """The sources (whole paths: a later command names them from anywhere), how their
    recordings were cut and read, the share of clips used (ranked among clips of
    ``min_frames``, what the building command's --clip-len needed) and the synthetic blur they
    got (real pairs get none)."""
    sources = [str(Path(f).resolve()) for f in folders]
    pairs = [s for s in sources if Path(s).is_dir() and find_pair_dirs(Path(s))]
    synthetic = [s for s in sources if s not in pairs]
    return {
        "sources": sources,
        "real_pairs": pairs,
        "synthetic_blur": [params.to_dict()] if synthetic else [],
        "scales": scales,
        "variants": variants,
        "still_frames": still_frames,
        "sharpest": sharpest,
        # image folders are used whole: a --sharpest recorded as applied to them was not
        "sharpest_applied": any(map(holds_recordings, sources)),
        "sharpest_min_frames": min_frames,
        "clip_frames": clip_frames,
        "topics": topics,
        "debayer": debayer,
        "max_gap_s": max_gap_s,
    }


# a set's build options, compared where a reused set's parts all have them alike
SHARED_KEYS = (
    *("scales", "variants", "still_frames", "clip_frames"),
    *("topics", "debayer", "max_gap_s"),
)


def real(path: Path) -> Path:
    """``path`` with its links followed; a link loop (which Python 3.11's resolve raises
    for) as it is, for the reader of the file to refuse."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def read_description(ts: Path) -> dict[str, Any] | None:
    """A reused set's description, merged over the sets built into its sub-folders (the GPU
    recipe builds one per source folder) and those its linked sequences are in (a mix linked
    together from built sets, as weights/README.md's: it validated at the default blur, not
    theirs, unsaid); None where none was written (a set built before sarn_ros wrote them).
    A linked set is described whole, also where only some of its sequences are linked."""
    linked = (real(p).parent / DESCRIPTION for p in ts.rglob("*.npz") if p.is_symlink())
    own = (real(p) for p in ts.rglob(DESCRIPTION))
    found = []
    for p in sorted(set(own) | {d for d in linked if d.is_file()}):
        try:
            found.append(json.loads(p.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # said without the file
            raise ValueError(f"{p} is not a set's description ({exc}): rebuild the set") from None
        if not described(found[-1]):
            raise ValueError(
                f"{p} is not a set's description (its fields are missing or of other kinds): "
                "rebuild the set"
            )
    if not found:
        return None
    blurs: list[dict[str, Any]] = []
    for blur in (b for d in found for b in d["synthetic_blur"]):
        if blur not in blurs:
            blurs.append(blur)
    shared = {}  # the build options every part they could shape has alike
    for k in SHARED_KEYS:
        kinds = RECORDING_OPTIONS.get(k)  # a --max-gap-s did not make a part without a bag
        parts = [d for d in found if not kinds or set_holds(d, kinds)] or found
        if all(k in d and d[k] == parts[0][k] for d in parts):
            shared[k] = parts[0][k]
        elif k == "max_gap_s" and any(k in d for d in parts):
            shared[k] = "parts cut at other stamp breaks"  # taken for none of its values
    return {
        # once each: the GPU recipe builds every folder at several blur settings
        "sources": list(dict.fromkeys(s for d in found for s in d["sources"])),
        "real_pairs": list(dict.fromkeys(s for d in found for s in d["real_pairs"])),
        "synthetic_blur": blurs,
        "sharpest": min(d.get("sharpest", 1.0) for d in found),
        "sharpest_applied": any(
            d.get("sharpest_applied", True) for d in found if d.get("sharpest", 1.0) < 1
        ),
        # sets built before it was recorded ranked every clip of 3 frames or more
        "sharpest_min_frames": min(
            (d.get("sharpest_min_frames", 3) for d in found if d.get("sharpest", 1.0) < 1),
            default=1,
        ),
        **shared,
    }


def described(d: Any) -> bool:
    """Whether ``d``, read from a trainset.json, has the fields and kinds a set's description
    has: one written by hand or another tool (``{}``, a list) was a KeyError traceback, and
    the new run's folder stayed behind."""

    def strings(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if not isinstance(d, dict) or not (strings(d.get("sources")) and strings(d.get("real_pairs"))):
        return False
    blurs = d.get("synthetic_blur")
    return (
        isinstance(blurs, list)
        and all(
            isinstance(b, dict) and number(b.get("blur_px")) and number(b.get("exposure"))
            for b in blurs
        )
        and number(d.get("sharpest", 1.0))
        and number(d.get("sharpest_min_frames", 1))
    )


BLUR_OPTIONS = {  # trainset.json's synthetic_blur fields and the options that set them
    "blur_px": "--blur-px",
    "exposure": "--exposure",
    "rotation_deg": "--rotation-deg",
    "zoom": "--zoom",
    "noise_std": "--noise",
    "jpeg_quality": "--jpeg/--no-jpeg",
    "object_prob": "--object-prob",
    "linear_light": "--linear-light",
}
SET_OPTIONS = {
    "scales": "--scales",
    "variants": "--variants",
    "still_frames": "--still-frames",
    "sharpest": "--sharpest",
    "clip_frames": "--clip-frames",
    "topics": "--topics",
    "debayer": "--debayer",
    "max_gap_s": "--max-gap-s",
}


def shown_value(value: Any) -> str:
    """An option's value as typed on the command line."""
    if isinstance(value, list):
        return " ".join(map(shown_value, value))
    return "off" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def trainset_conflicts(args: argparse.Namespace, desc: dict[str, Any]) -> list[str]:
    """This command's build options that differ from those a reused set was built with
    (``desc``, its trainset.json): a set is never rebuilt, so a changed --blur-px would be
    silently ignored. Options are compared when --data is given, or when set away from their
    defaults (a later run that names only --trainset trains on the set as built)."""
    defaults = option_defaults()

    def given(value: Any, default: Any) -> bool:
        return bool(args.data) or value != default

    found = []
    if args.data and sorted(Path(d).resolve() for d in args.data) != sorted(
        Path(s).resolve() for s in desc["sources"]
    ):
        found.append(
            f"--data {shown_value([str(d) for d in args.data])} "
            f"(the set: {shown_value(desc['sources'])})"
        )
    mine, base = (json.loads(json.dumps(blur_params(a).to_dict())) for a in (args, defaults))
    for key, option in BLUR_OPTIONS.items():
        built = [b[key] for b in desc["synthetic_blur"] if key in b]
        if any(v != mine[key] for v in built) and given(mine[key], base[key]):
            found.append(
                f"{option} {shown_value(mine[key])} (the set: {', '.join(map(shown_value, built))})"
            )
    for key, option in SET_OPTIONS.items():
        value = getattr(args, key)
        if key in RECORDING_OPTIONS and not set_holds(desc, RECORDING_OPTIONS[key]):
            continue  # a --sharpest on stills: said to be unused when built, not a conflict now
        if key in ("variants", "still_frames") and not desc["synthetic_blur"]:
            continue  # real pairs only: nothing was blurred, in any number of variants
        if key not in desc and key not in MADE_BEFORE:
            continue
        built = desc.get(key, MADE_BEFORE.get(key))
        if not same(key, built, value) and given(value, getattr(defaults, key)):
            found.append(f"{option} {shown_value(value)} (the set: {shown_value(built)})")
    return found


# a set built before an option came, made as none of its values makes one: always a conflict
MADE_BEFORE = {"max_gap_s": "clips not cut at stamp breaks"}


def same(key: str, built: Any, value: Any) -> bool:
    """Whether a set built with ``built`` for option ``key`` is the set ``value`` asks for:
    --scales 0.5 1 makes the set of --scales 1 0.5."""
    if key == "scales" and isinstance(built, list):
        return sorted(built) == sorted(value)
    return built == value


def option_defaults() -> argparse.Namespace:
    """`sarn train`'s options as they are when not given."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["train", "--run-dir", "."])


def seed_name(name: str, source: Path, owners: dict[str, dict[str, int]]) -> str:
    """``name``, numbered ``name#k`` for the k-th other source that has it: same-named folders
    (``day1/sharp``, ``day2/sharp``) or videos would otherwise draw the same blur, while the
    first keeps the seeds sets were built with before."""
    sources = owners.setdefault(name, {})
    k = sources.setdefault(os.path.abspath(source), len(sources))
    return f"{name}#{k}" if k else name


def hash_seed(name: str, scale: float, variant: int) -> int:
    """A stable seed per (source, scale, variant), hashed over the whole key: Python's hash()
    is salted per process, and the key's raw bytes would let names sharing a prefix (a
    video's clips, GoPro's GOPR...) and every variant draw the same blur."""
    key = f"{name}/{scale:g}/{variant}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % (2**31)


def val_scales(args: argparse.Namespace) -> tuple[float, float]:
    """The downscale of the synthetic (--val-sharp) and of the real (--val-pairs) validation
    frames: as `sarn eval` scores each by default, so that best.pth is the checkpoint it ranks
    best (pairs validated at x0.5 gave a figure eval could not reproduce)."""
    if args.val_scale is not None:
        return args.val_scale, args.val_scale
    return VAL_SCALE, 1.0


def validation_set(args: argparse.Namespace) -> list[Sequence]:
    """The held-out video, synthesised with a fixed seed, and the held-out real pairs, each
    shortened (and the synthetic ones downscaled) for speed."""
    synthetic, real = val_scales(args)
    seqs = []
    if args.val_sharp is not None:
        try:  # a video that does not open: named as --data's are
            made = synthetic_sequences(
                args.val_sharp,
                1234,
                val_blur(args),
                synthetic,
                args.val_frames,
                topics=args.topics,
                debayer=args.debayer,
                max_gap_s=args.max_gap_s,
            )
        except InputError as exc:
            raise InputError(f"--val-sharp: {exc}") from None
        seqs += check_val_side(made, synthetic)
    found_by_root = {}
    for root in args.val_pairs:
        if not (found := find_pair_dirs(root)):
            raise no_pairs_error(root, "--val-pairs: no blurred/sharp sequence found under")
        note_val_left_out(root, found)
        found_by_root[root] = found
    found_by_root, notes = pairs_once(found_by_root, "--val-pairs", "validated")
    for note in notes:
        print(note)
    for root, found in found_by_root.items():
        read = [p for seq in found for p in read_pair_pieces(*seq, real, args.val_frames)]
        for seq in read:  # an identity scores best on it: best.pth kept what changed least
            if all(map(np.array_equal, seq.blurred, seq.sharp)):
                raise ValueError(
                    f"--val-pairs {root}: {seq.name}'s blurred frames are its sharp ones (as "
                    "read, 8-bit RGB): their PSNR ranks no checkpoint; hold out pairs with blur"
                )
        seqs += check_val_side(read, real)
    return [piece for seq in seqs for piece in one_size_pieces(seq)]


def note_val_left_out(root: Path, found: list[tuple[str, Path, Path]]) -> None:
    """Name what a --val-pairs folder holds that validation does not read (``found`` are the
    sequences it does), as `sarn eval --pairs` and --data name theirs: a sequence with one
    side only was left out unsaid."""
    for items, why in pairs_not_read(root, found, "--val-pairs"):
        print(f"note: --val-pairs {root}: not validated on: {listed(items, root)} ({why})")


def validation_notes(args: argparse.Namespace, trained_from: list[tuple[str, Path]]) -> list[str]:
    """What makes the validation figure, which chooses best.pth, other than `sarn eval`'s:
    real pairs downscaled (eval scores them at full size only), and held-out recordings that
    are also trained on, read through one of ``trained_from``'s (label, path): the --data, or
    the sources of a reused --trainset (best.pth chosen on frames it learnt)."""
    notes = []
    if args.val_pairs and val_scales(args)[1] < 1:
        notes.append(
            f"note: --val-pairs validated at x{val_scales(args)[1]:g}: `sarn eval --pairs` scores "
            "them at full size only, so it cannot reproduce best.pth's figure"
        )
    held = [("--val-sharp", args.val_sharp, False)] if args.val_sharp is not None else []
    held += [("--val-pairs", root, True) for root in args.val_pairs]
    trained = [(label, read_as(path, pairs=True)) for label, path in trained_from]
    for option, path, pairs in held:
        kept = read_as(path, pairs)
        for label, items in trained:
            if any(same_recording(a, b) for a in kept for b in items):
                notes.append(
                    f"note: {option} {path} and {label} hold the same recordings: best.pth is "
                    "chosen on frames it trains on; hold a different recording out"
                )
    return notes


def read_as(root: Path, pairs: bool) -> set[Path]:
    """What is read of a --data (``pairs``: its pair sequences first, as gather does) or a
    held-out path, resolved (links followed): pair sequences' blurred and sharp folders, else
    the recording given, else the recordings directly inside the folder; not what they hold
    deeper (a folder of images reads the images directly in it)."""
    if not root.exists():
        return set()
    found = find_pair_dirs(root) if pairs and root.is_dir() else []
    if found:
        return {d.resolve() for _, blur, sharp in found for d in (blur, sharp)}
    if root.is_file() or recording_kind(root):
        return {root.resolve()}
    return {p.resolve() for p in visible(root) if recording_kind(p)}


def same_recording(a: Path, b: Path) -> bool:
    """Whether two read paths are one recording: equal, or a bag and a file of it."""
    if a == b:
        return True
    outer, inner = (a, b) if a in b.parents else (b, a) if b in a.parents else (None, None)
    return outer is not None and inner.parent == outer and recording_kind(outer) == "bag"


def check_val_side(seqs: list[Sequence], scale: float) -> list[Sequence]:
    """``seqs``; ValueError where a frame is under MIN_VAL_SIDE px a side at ``scale``: its
    PSNR would choose best.pth (--val-scale 0.01 validated on 1x2 px frames)."""
    for seq in seqs:
        h, w = min((f.shape[:2] for f in seq.blurred), key=min, default=(MIN_VAL_SIDE,) * 2)
        if min(h, w) < MIN_VAL_SIDE:
            raise ValueError(
                f"the validation frames of {seq.name} are {w}x{h} at x{scale:g}: "
                f"below {MIN_VAL_SIDE} px a side their PSNR ranks no checkpoint; give "
                + ("a larger --val-scale" if scale < 1 else "larger held-out frames")
            )
    return seqs


def read_within(units: list[list[set[Path]]]) -> list[list[int | None]]:
    """For each --data's sources (``units``: what each reads, :func:`read_units`), the index
    of the --data whose source reads all it does and more, or as much and comes first; None
    for a source read here. Whatever the order: a split bag's part given before the bag was
    read again within it."""
    flat = [(i, u) for i, sources in enumerate(units) for u in sources]
    owners: list[list[int | None]] = [[] for _ in units]
    for (i, _), owner in zip(flat, read_owners([u for _, u in flat]), strict=True):
        owners[i].append(None if owner is None else flat[owner][0])
    return owners


def one_size_pieces(seq: Sequence) -> list[Sequence]:
    """``seq`` cut where its frame size changes: validation stacks a sequence's frames, and
    ``sarn eval`` restarts the stream there too. Pairs of two sizes in one --val-pairs folder
    ended a run with a stacking error at its first validation (pairs are cut as read:
    :func:`read_pair_pieces`)."""
    cuts = [
        i for i in range(1, len(seq.blurred)) if seq.blurred[i].shape != seq.blurred[i - 1].shape
    ]
    if not cuts:
        return [seq]
    bounds = list(zip([0, *cuts], [*cuts, len(seq.blurred)], strict=True))
    return [
        Sequence(f"{seq.name}#{k}", seq.blurred[a:b], seq.sharp[a:b])
        for k, (a, b) in enumerate(bounds, 1)
    ]


def take_set_blur(args: argparse.Namespace, desc: dict[str, Any] | None) -> None:
    """A reused --trainset's blur for what this command leaves unset: validation at its largest
    --blur-px (with neither --blur-px nor --val-blur-px given) and its --exposure (where all
    its parts share one). A run naming only the set validated at 24 px on a 12 px set, and a
    resume named so chose best.pth anew on that other validation set."""
    built = desc["synthetic_blur"] if desc else []
    defaults = option_defaults()
    if built and args.blur_px == defaults.blur_px and args.val_blur_px is None:
        args.val_blur_px = max(b["blur_px"] for b in built)
    exposures = {b["exposure"] for b in built}
    if len(exposures) == 1 and args.exposure == defaults.exposure:
        (args.exposure,) = exposures


def val_blur(args: argparse.Namespace) -> BlurParams:
    # Blur length scales with the image: --blur-px is meant at full resolution here.
    blur_px = args.blur_px if args.val_blur_px is None else args.val_blur_px
    scale = val_scales(args)[0]
    return BlurParams(blur_px=blur_px * scale, exposure=args.exposure, object_prob=0.0)


def describe_validation(args: argparse.Namespace, val: list[Sequence]) -> str:
    """What the validation PSNR in the exported weights' metadata was measured on."""
    synthetic, real = val_scales(args)
    parts = []
    if args.val_sharp is not None:
        given = args.blur_px if args.val_blur_px is None else args.val_blur_px
        blur = val_blur(args).blur_px
        # the px of the frames validated (README's "12 px at x0.5"), and those of the options
        # and of sarn eval's --blur-px and JSON, which a reader holds them against
        full = f" ({given:g} px at full resolution)" if blur != given else ""
        synthesis = f"synthetic blur {blur:g} px{full}, exposure {args.exposure:g} (seed 1234)"
        parts.append((f"{args.val_sharp.resolve()}, {synthesis}", synthetic))
    if args.val_pairs:
        parts.append(("real pairs " + ", ".join(str(d.resolve()) for d in args.val_pairs), real))
    n, frames = len(val), sum(len(s.blurred) for s in val)
    counted = f"{plural(n, 'sequence')}, {plural(frames, 'frame')}"
    scales = {scale for _, scale in parts}
    if len(scales) > 1:
        return f"{'; '.join(f'{part} at x{scale:g}' for part, scale in parts)}: {counted}"
    scale = next(iter(scales), synthetic)
    return f"{'; '.join(part for part, _ in parts)}: {counted} at x{scale:g}"


LR, LR_INIT = 4e-4, 5e-5  # --lr from scratch, and for a fine-tune


def run(args: argparse.Namespace) -> int:
    """`sarn train`, holding its --run-dir (:func:`train_command`) until it ends."""
    with contextlib.ExitStack() as held:
        return train_command(args, held)


def train_command(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    """`sarn train`; ``held``: the locks taken, released when the command ends."""
    started = time.monotonic()  # --max-minutes counts the data loading too
    lr_given = args.lr is not None
    if not lr_given:
        args.lr = LR if args.init is None else LR_INIT
    # given or not, told apart for --resume's notes: a default there is no choice of the user's
    seed_given, warmup_given = args.seed is not None, args.warmup is not None
    steps_given = args.steps is not None  # a resume without it keeps the run's schedule
    args.steps = STEPS if args.steps is None else args.steps
    args.seed = SEED if args.seed is None else args.seed
    args.warmup = WARMUP if args.warmup is None else args.warmup
    from ..engine import resolve_device
    from ..training.trainer import (
        TrainConfig,
        Trainer,
        TrainingDiverged,
        against,
        amp_dtype,
        clip_frames,
        export_weights,
        load_training_state,
        same_set,
        trained_steps,
    )

    if args.export is None and args.export_from != "best":
        print(
            "sarn train: error: --from is for --export (which weights it copies)", file=sys.stderr
        )
        return 2
    if args.export is not None:
        if idle := [
            f
            for f, given in (
                ("--resume", args.resume),
                ("--steps", steps_given),
                ("--data", bool(args.data)),
            )
            if given
        ]:
            print(f"note: --export only copies the run's weights: {', '.join(idle)} not used")
        source = args.run_dir / f"{args.export_from}.pth"
        own = [args.run_dir / name for name in ("last.pt", *RUN_WEIGHTS)]
        if any(args.export.resolve() == p.resolve() for p in own):
            print(
                f"sarn train: error: --export {args.export} is one of the run's own files: name "
                "another (latest.pth turned fp16, last.pt unable to --resume)",
                file=sys.stderr,
            )
            return 2
        if is_onnx(args.export):  # PyTorch weights under the name of a graph: every tool failed
            print(  # on it in onnxruntime ("Protobuf parsing failed")
                f"sarn train: error: --export {args.export}: the node and the sarn tools read a "
                ".onnx file as an ONNX graph; name the weights .pth (`sarn export` makes the "
                "graph from them)",
                file=sys.stderr,
            )
            return 2
        try:  # written beside and renamed over: torch.save's "open file failed" named no file
            if kernel_path(args.export).is_dir():
                raise ValueError(f"{args.export} is a folder: name the weights file to write")
            check_writable(args.export, "--export", folder=False, replaced=True)
        except ValueError as exc:
            print(f"sarn train: error: {exc}", file=sys.stderr)
            return 2
        if (
            args.export_from == "best"
            and not source.exists()
            and source.with_name("latest.pth").exists()
        ):
            print(
                f"sarn train: error: {source} does not exist (a run without --val-sharp or "
                "--val-pairs has none, one with them none before its first validation of a "
                "trained step, nor after it was moved away until the next): "
                "--from latest exports the last checkpoint's weights",
                file=sys.stderr,
            )
            return 2
        try:
            replaced = export_target(source, args.export)
            meta = export_weights(source, args.export)
        except (CheckpointError, OSError, RuntimeError) as exc:  # torch.save: "open file failed"
            print(f"sarn train: error: {exc}", file=sys.stderr)
            return 2
        if replaced:
            print(f"note: --export {args.export} replaced its {replaced}")
        v = meta.get("validation")
        figures = (
            f"val PSNR {v['val_psnr']:.2f} dB ({against(v)})"
            if v and "val_psnr" in v
            else "not validated at this step"
        )
        print(f"{args.export}: step {meta.get('steps')}, {figures}")
        return 0
    if args.jpeg[0] > args.jpeg[1]:
        print("sarn train: error: --jpeg MIN MAX: MIN is above MAX", file=sys.stderr)
        return 2
    # What can be wrong without the data is said before it is built (hours for GoPro).
    try:
        amp_dtype(args.precision, resolve_device(args.device))
    except (ValueError, RuntimeError) as exc:  # RuntimeError: torch's, for a bad device name
        print(f"sarn train: error: {first_line(exc)}", file=sys.stderr)
        return 2
    # a source or scale given twice (`a` and `./a` too) would be built and trained on twice
    for key in ("val_pairs", "scales"):
        setattr(args, key, once_each(getattr(args, key)))
    args.data = once_each(args.data, recording_of)  # a bag, its .db3
    given = [("--data", d) for d in args.data] + [("--val-pairs", d) for d in args.val_pairs]
    given += [("--val-sharp", args.val_sharp)] if args.val_sharp is not None else []
    missing = next(((option, d) for option, d in given if not d.exists()), None)
    if missing is not None:  # found now, not after building the sources before it
        print(
            f"sarn train: error: {missing[0]}: no such file or folder: {missing[1]}",
            file=sys.stderr,
        )
        return 2
    for option, d in given:  # a file that is no video or bag, found before the others are built
        if option == "--val-pairs":  # folders of pairs: checked below
            continue
        try:
            kind_of(d)
        except InputError as exc:
            if not d.is_dir():  # a folder of recordings is read as such
                print(f"sarn train: error: {option}: {exc}", file=sys.stderr)
                return 2
    loose = next((d for d in args.val_pairs if not d.is_dir()), None)
    if loose is not None:
        print(
            f"sarn train: error: --val-pairs {loose}: not a folder of blurred/sharp pairs",
            file=sys.stderr,
        )
        return 2
    weights = [w.name for w in (args.run_dir / name for name in RUN_WEIGHTS) if w.exists()]
    try:
        trained = 0 if args.resume else trained_steps(args.run_dir)
    except RuntimeError as exc:
        if weights:  # a lone unreadable last.pt has nothing readable to lose
            print(
                f"sarn train: error: --run-dir {args.run_dir} holds a last.pt that is {exc}, "
                f"beside {' and '.join(weights)}, which a new run would overwrite: give another "
                "--run-dir (or move them away)",
                file=sys.stderr,
            )
            return 2
        trained = 0
    if trained:  # a new run would overwrite its last.pt and best.pth at the first checkpoint
        print(
            f"sarn train: error: --run-dir {args.run_dir} holds a run trained "
            f"{plural(trained, 'step')}: --resume continues it; to start anew give another "
            "--run-dir (or delete this one)",
            file=sys.stderr,
        )
        return 2
    resuming = args.resume and (args.run_dir / "last.pt").exists()
    if not resuming and (kept := trained_weights(args.run_dir, args.init)):
        # last.pt deleted to save space: its weights were replaced with a note, then lost,
        # under --resume too (which then starts anew: the first call of a loop)
        print(
            f"sarn train: error: --run-dir {args.run_dir} holds {kept} without its last.pt, "
            "which a new run would replace: give another --run-dir (or move them away; "
            "--init starts from them)",
            file=sys.stderr,
        )
        return 2
    if resuming:  # said before the set is built (hours for GoPro), not after
        try:
            state = load_training_state(args.run_dir / "last.pt")
        except RuntimeError as exc:
            print(
                f"sarn train: error: cannot resume {args.run_dir / 'last.pt'}: {first_line(exc)}",
                file=sys.stderr,
            )
            return 2
        config = state["config"] if isinstance(state["config"], dict) else {}
        at, scheduled = int(state["step"]), int(config.get("steps") or 0)
        del state  # the weights and optimiser state: read again when the trainer resumes
        # without --steps the run keeps its own schedule; a last.pt without one: resuming names it
        if steps_given and scheduled and args.steps < at:
            print(
                f"sarn train: error: --steps {args.steps}: the run is at step {at} "
                f"already; give more, or leave --steps out to keep its "
                f"{plural(scheduled, 'step')}",
                file=sys.stderr,
            )
            return 2
    # the set where the kernel finds it, as build_trainset writes it: `new/../ts` is ./ts (the
    # typed path, read with no `new`, was never ready: "built meanwhile" at every try)
    at = Path(os.path.realpath(args.trainset)) if args.trainset is not None else None
    try:  # a file, or a file among its parents: mkdir said "[Errno 17] File exists" or 20
        check_writable(args.run_dir, "--run-dir", folder=True)
        if at is not None and not at.exists():  # a set to build there
            check_writable(at, "--trainset", folder=True)
        check_trainset_place(args.trainset)
    except ValueError as exc:
        print(f"sarn train: error: {exc}", file=sys.stderr)
        return 2
    # rank 0 makes it (and removes it again, empty, if the run stops before training): a rank
    # torchrun stopped for rank 0's error left the one it had made
    rank = int(os.environ.get("RANK", 0))
    made = rank == 0 and not args.run_dir.exists()
    # SIGTERM (`timeout`, docker stop, torchrun's agent) as Ctrl-C while the data is read (and
    # on to the training in one process): a half-built set and an empty run folder are removed.
    # Not around the training, nor under torchrun around init_process_group: a rank in that C
    # call would wait out torchrun's 30 s before its SIGKILL
    signals = contextlib.ExitStack()
    signals.enter_context(stops_as_interrupts())
    read = False  # the data read: one process keeps the stops on (below)
    try:
        if made:  # unwritable: said before a long build
            args.run_dir.mkdir(parents=True, exist_ok=True)
        # a second command on it trained from the first's checkpoints, or over them, unsaid;
        # torchrun's other ranks share it with rank 0
        if rank == 0 and not held.enter_context(folder_lock(args.run_dir)):
            print(
                f"sarn train: error: --run-dir {args.run_dir} is in use by another sarn train: "
                "wait for it to end (then --resume continues the run), or give another --run-dir",
                file=sys.stderr,
            )
            return 2
        ts = args.trainset
        sources = (args.data, blur_params(args), args.scales, args.variants, args.still_frames)
        recordings = {
            "clip_frames": args.clip_frames,
            "topics": args.topics,
            "debayer": args.debayer,
            "sharpest": args.sharpest,
            "max_gap_s": args.max_gap_s,
        }
        arch, init, model = args.arch, args.init, architecture_options(args)
        resumed = resumed_architecture(args.run_dir) if args.resume else None
        if resumed is not None:  # the run's own; Trainer.resume() restores its init record
            (arch, model), init = resumed, None
        elif init is not None:
            init_model = load_model(init)  # whole and sound: refused here, not after the build
            kept = init_model.cfg.to_dict()
            if arch is None:  # README: with --init the model keeps those weights' architecture
                arch = ARCH_OF[type(init_model).__name__]
            # the weights' own config records the architecture, but for what they have no
            # say in: single-image weights made recurrent take --lstm-channels (it was dropped)
            fields = (
                RecurrentSARNConfig if arch == "recurrent" else SARNConfig
            ).__dataclass_fields__
            new = {k: v for k, v in model.items() if k in fields and k not in kept}
            ignored = unused_options({k: v for k, v in model.items() if k not in new}, kept)
            if ignored and rank == 0:
                print(
                    f"note: {', '.join(ignored)} not used with --init: the model keeps "
                    f"{init}'s architecture ({architecture_text(kept)})"
                )
            model = new
        arch = arch or "recurrent"
        if arch == "single" and rank == 0:
            idle = single_image_unused(args, architecture_noted=resumed is not None)
            if idle:
                why = "the single-image model trains on single frames"
                print(f"note: {', '.join(idle)} not used: {why}")
        if at is not None and not args.data and trainset_ready(at):
            take_set_blur(args, read_description(at))
        val_sharp = args.val_sharp  # refused on every rank alike: under torchrun they agree
        note = (
            sharp_source_note("--val-sharp", val_sharp, "--val-pairs")
            if val_sharp is not None
            else None
        )
        if note and rank == 0:
            print(note, flush=True)
        if at is not None and rank != 0:
            wait_for_trainset(at)
        reuse = at is not None and trainset_ready(at)
        desc = read_description(at) if reuse else None
        conflicts = trainset_conflicts(args, desc) if desc is not None else []
        if conflicts:
            raise ValueError(
                f"--trainset {ts} was built with other settings than this command's: "
                f"{'; '.join(conflicts)}. Give a new --trainset folder to build a set with "
                "them, or leave them (and --data) out to train on this set as it is"
            )
        if not reuse and at is not None and at.exists() and (not at.is_dir() or any(at.iterdir())):
            raise ValueError(
                f"--trainset {ts} exists and is not a training set (no .npz sequences): "
                "give a new or empty folder"
            )
        # said once the command is sure to go on: before a refusal it read as the only fault
        unused = unused_recording_options(args) if args.data else []
        if unused and rank == 0:
            print(f"note: {', '.join(unused)} not used: no --data is or holds such a recording")
        val = validation_set(args) if rank == 0 else []  # rank 0 validates and exports
        if rank == 0:  # after the set is read: a refusal of it came after these notes
            if reuse:  # trained on the set's sources, whatever --data says
                sources = desc["sources"] if desc is not None else []
                trained_from = [(f"--trainset {ts} (built from {s})", Path(s)) for s in sources]
            else:
                trained_from = [(f"--data {d}", d) for d in args.data]
            for line in validation_notes(args, trained_from):
                print(line, flush=True)
        if reuse:
            train = load_sequences(at)
            if rank == 0 and desc is None and args.data:  # refused where a description says
                print(
                    f"note: --data not used: --trainset {ts} is built already (with no "
                    f"{DESCRIPTION} to check --data and the blur options against); give a new "
                    "--trainset to build one from --data"
                )
            if rank == 0:
                built = f"built from {', '.join(desc['sources'])}" if desc else "no trainset.json"
                print(f"reusing --trainset {ts} ({built})", flush=True)
        else:  # --sharpest ranks only clips this training can use
            need = sum(clip_frames(arch, args.clip_len))
            if ts is not None:
                train = build_trainset(*sources, ts, need, **recordings)
                desc = read_description(at)
            else:
                train = gather(*sources, need, **recordings)
                desc = describe_sources(*sources, **recordings, min_frames=need)
        read = True
    except (ValueError, OSError, CheckpointError) as exc:
        print(f"sarn train: error: {exc}", file=sys.stderr)
        forget_run_dir(args.run_dir, made)
        return 2
    except KeyboardInterrupt:  # Ctrl-C during a build: the cli says it; no empty run left
        forget_run_dir(args.run_dir, made)
        raise
    finally:
        if not read or int(os.environ.get("WORLD_SIZE", 1)) > 1:
            signals.close()
    trainer: Trainer | None = None
    try:  # a stop from here to the training: no empty run left, and SIGTERM said as Ctrl-C
        clip = sum(clip_frames(arch, args.clip_len))  # what a sequence needs, look-ahead included
        usable = usable_sequences(train, clip, args.crop)
        counted = count(usable, train, clip, args.crop, bool(desc and desc["synthetic_blur"]))
        if rank == 0:
            print(f"training data: {counted}", flush=True)
        ranked = desc.get("sharpest_min_frames", 1) if desc and desc.get("sharpest_applied") else 0
        if rank == 0 and reuse and 0 < ranked < clip and desc["sharpest"] < 1:
            print(
                f"note: --trainset {ts} took the sharpest {desc['sharpest']:g} of its recordings' "
                f"clips of {ranked} frames or more; this --clip-len needs {clip}: the shorter of "
                "them are left out (a new --trainset ranks the clips this run can use)",
                flush=True,
            )
        if args.steps == 0 and ts is not None and not usable:  # a build-only run: its set is made
            if rank == 0:
                print(
                    f"--trainset {ts} is built; train on it with a --crop and --clip-len "
                    "that fit it"
                )
            forget_run_dir(args.run_dir, made)
            return 0
        if not usable:
            cut = (
                f"; --clip-frames {args.clip_frames} cuts videos and bags shorter"
                if args.clip_frames < clip
                and any(holds_recordings(d, RECORDING_OPTIONS["clip_frames"]) for d in args.data)
                else ""
            )
            if args.still_frames < clip and any(
                holds_recordings(d, ("folder",)) for d in args.data
            ):
                cut += f"; --still-frames {args.still_frames} makes a still's sequence shorter"
            print(
                f"sarn train: error: no sequence has {plural(clip, 'frame')} of at least "
                f"{args.crop}x{args.crop}"
                " (--clip-len with the look-ahead, --crop): give smaller ones, or longer or larger "
                f"--data{cut}{gap_hint(args.data, args.max_gap_s)}",
                file=sys.stderr,
            )
            forget_run_dir(args.run_dir, made)
            return 2
        cfg = TrainConfig(
            arch=arch,
            steps=args.steps,
            batch=args.batch,
            clip_len=args.clip_len,
            max_stride=args.max_stride,
            crop=args.crop,
            lr=args.lr,
            warmup=args.warmup,
            loss=args.loss,
            fft_weight=args.fft_weight,
            ema_decay=args.ema,
            seed=args.seed,
            ckpt_minutes=args.ckpt_minutes,
            val_minutes=args.val_minutes,
            max_minutes=args.max_minutes,
            device=args.device,
            precision=args.precision,
            torch_compile=args.torch_compile,
            model=model,
            init=init,
            data_summary=summarise(args, desc, usable, counted),
            val_summary=describe_validation(args, val) if val else "",
        )
        try:
            trainer = Trainer(cfg, train, val, args.run_dir, started=started)
        except (ValueError, RuntimeError, OSError) as exc:  # OSError: an unwritable --run-dir
            print(f"sarn train: error: {str(exc).splitlines()[0]}", file=sys.stderr)
            forget_run_dir(args.run_dir, made)
            return 2
        if not (args.run_dir / "last.pt").exists() and rank == 0 and (args.resume or weights):
            # a first call of a --resume loop; or untrained weights without their run (trained
            # ones, or --init's, were refused or kept above): replaced, but not unsaid
            start = Path(args.init).resolve() if args.init else None
            gone = [n for n in weights if (args.run_dir / n).resolve() != start]
            replaced = f", replacing its {' and '.join(gone)}" if gone else ""
            if len(gone) < len(weights):  # --init run/best.pth: the weights it starts from
                replaced += f" ({args.init}, which it starts from, stays until replaced)"
            print(f"no last.pt in {args.run_dir}: a new run starts{replaced}", flush=True)
            for name in gone:  # now: a run unvalidated, or stopped early, left them to --export
                (args.run_dir / name).unlink(missing_ok=True)
        try:
            resumed_run = args.resume and trainer.resume(keep_steps=not steps_given)
        except RuntimeError as exc:  # a last.pt that does not fit (edited, or another version)
            print(
                f"sarn train: error: cannot resume {args.run_dir / 'last.pt'}: {first_line(exc)}",
                file=sys.stderr,
            )
            return 2
        if resumed_run and steps_given and args.steps < trainer.step:
            print(
                f"sarn train: error: --steps {args.steps}: the run is at step {trainer.step} "
                f"already; give more, or leave --steps out to keep its "
                f"{plural(trainer.resumed_steps or 0, 'step')}",
                file=sys.stderr,
            )
            return 2
        if resumed_run and rank == 0:  # every rank resumes, one reports
            print(f"resumed {args.run_dir / 'last.pt'} at step {trainer.step}", flush=True)
            run_lr = trainer.sched.base_lrs[0]  # the schedule's state continues
            if lr_given and not math.isclose(run_lr, args.lr):
                print(f"note: --lr {args.lr:g} is not used on --resume: the run's {run_lr:g} is")
            if args.init is not None and args.init != trainer.cfg.init:
                start = trainer.cfg.init or "scratch"
                print(
                    f"note: --init {args.init} is not used on --resume: the run started "
                    f"from {start}"
                )
            if seed_given and trainer.cfg.seed != args.seed:
                print(
                    f"note: --seed {args.seed} is not used on --resume: the run's "
                    f"{trainer.cfg.seed} is"
                )
            if warmup_given and trainer.cfg.warmup != args.warmup:
                print(
                    f"note: --warmup {args.warmup} is not used on --resume: the run's "
                    f"{trainer.cfg.warmup} is"
                )
            if (lost := trainer.lost_best) is not None:
                then = f"step {int(lost['step'])}'s, {lost['val_psnr']:.2f} dB"
                anew = (
                    "the next validation writes it anew" if val else "no validation writes it anew"
                )
                path = args.run_dir / "best.pth"
                what = "holds other weights" if path.exists() else "is gone"  # another run's
                if path.exists() and trainer.best_file_error:
                    what = f"cannot be read ({trainer.best_file_error})"
                print(f"note: {path} ({then}) {what}: {anew}")
            best = trainer.best_validation()
            if not val and best is not None:  # README's resume line names the set again
                print(
                    f"note: this run validated on {trainer.cfg.val_summary or 'a set'}: without "
                    f"--val-sharp or --val-pairs it is not validated from here on, and best.pth "
                    f"keeps step {int(best['step'])}"
                )
            if steps_given and trainer.resumed_steps != args.steps:
                print(
                    f"note: --steps {args.steps}: the run's cosine schedule, "
                    f"{plural(trainer.resumed_steps or 0, 'step')} long, now ends at step "
                    f"{args.steps}"
                )
            changed = [
                f"{flag} {now:g} (the run's {was:g})"
                if isinstance(now, float)
                else f"{flag} {now} (the run's {was})"
                for key, flag in LEG_OPTIONS.items()
                if (was := trainer.resumed_config.get(key)) is not None
                and (now := getattr(trainer.cfg, key)) != was
            ]
            # another data set: the weights' metadata named only this leg's, without a word
            was, now = (
                leg[0].removeprefix("sources: ") if leg else ""
                for leg in (trainer.resumed_config.get("data_summary"), trainer.cfg.data_summary)
            )
            if was and now and sorted(was.split(", ")) != sorted(now.split(", ")):
                changed.append(f"data from {now} (the run's: {was})")
            if changed and trainer.step < trainer.cfg.steps:  # the metadata records this leg's
                print(
                    f"note: from step {trainer.step} this run trains with {', '.join(changed)}; "
                    "give the run's values to keep them"
                )
            # as typed: with --arch single, architecture_options drops --lstm-channels unsaid
            ignored = unused_options(given_architecture(args), model)
            if args.arch not in (None, arch):
                ignored.insert(0, f"--arch {args.arch}")
            if ignored:
                print(
                    f"note: {', '.join(ignored)} not used on --resume: the run keeps its {arch} "
                    f"model ({architecture_text(model)})"
                )
        if not resumed_run and rank == 0 and 0 < args.steps < args.warmup:
            print(  # the default 200 on a short run: the rate rose all run, 1 % of --lr at 5 steps
                f"note: --warmup {args.warmup} is longer than --steps {args.steps}: the "
                f"learning rate rises all run and never reaches --lr {args.lr:g}; give a shorter "
                "--warmup"
            )
    except KeyboardInterrupt:
        if trainer is not None and trainer.world == 1:  # DDP's close waits for the other ranks
            trainer.close()  # its TensorBoard file, before the folder goes
        forget_run_dir(args.run_dir, made)
        raise
    finally:
        signals.close()  # the training takes stops itself
    validations = len(trainer.history)
    try:
        trainer.run()
    except TrainingDiverged as exc:  # under DDP on every rank: rank 0 says it
        trainer.close()
        if rank == 0:
            print(f"sarn train: error: {exc}", file=sys.stderr)
        return 2
    best = trainer.best_validation()
    # a finished run resumed, or one stopped before it validated: its figure may be on another
    # set than the one given now, told apart as the run tells them. Before close(): the other
    # ranks wait there, and torchrun kills rank 0 once one has exited 130 (a stop)
    given = None
    if rank == 0 and val and best is not None and len(trainer.history) == validations:
        given = {"input_psnr": trainer.input_psnr()}
    trainer.close()
    stopped = 130 if trainer.interrupted else 0  # a stop asked for: 130, as sarn's others
    if rank != 0:
        return stopped
    if best is not None:
        print(
            f"best val PSNR {best['val_psnr']:.2f} dB at step {int(best['step'])} "
            f"({against(best)}) -> {args.run_dir / 'best.pth'}"
        )
        if given is not None and not same_set(best, given):
            print(
                f"note: that figure is on another validation set than this command's "
                f"(input {best['input_psnr']:.2f} dB there, {given['input_psnr']:.2f} dB "
                "here), which this run did not validate; `sarn eval` scores best.pth on it"
            )
        if best["step"] == 0 and trainer.cfg.init is not None and trainer.step > 0:
            print(
                f"note: no step validated above the --init weights ({trainer.cfg.init}), so "
                f"best.pth holds them: more --steps, or a --lr below this run's "
                f"{trainer.cfg.lr:g}, may help (weights/README.md lists what each shipped "
                "fine-tune used)"
            )
    elif val:  # untrained (--steps 0): its validation line gave the random weights' figure
        if trainer.step > 0:
            print(f"not validated yet: the weights are in {args.run_dir / 'latest.pth'}")
    else:
        print(f"no validation set: the weights are in {args.run_dir / 'latest.pth'}")
    if trainer.step == 0 and trainer.cfg.init is None:  # a dry run (--steps 0) counts data
        print(f"note: no step trained: {args.run_dir / 'latest.pth'} holds untrained weights")
    return stopped


ARCH_OPTIONS = ("channels", "blocks_per_level", "num_drm", "lstm_channels", "attention_stride")


def given_architecture(args: argparse.Namespace) -> dict[str, int]:
    """The architecture options as typed, for the notes that name those not used."""
    return {k: getattr(args, k) for k in ARCH_OPTIONS if getattr(args, k) is not None}


def architecture_options(args: argparse.Namespace) -> dict[str, int]:
    model = given_architecture(args)
    if args.arch == "single":
        model.pop("lstm_channels", None)
    return model


def single_image_unused(args: argparse.Namespace, architecture_noted: bool) -> list[str]:
    """The recurrent-only options given to a single-image run, as typed: it trains on single
    frames, so a --clip-len or --max-stride went unsaid, and --arch single dropped
    --lstm-channels without a word (where the --resume note has not named it already)."""
    defaults = option_defaults()
    idle = [
        f"--{key.replace('_', '-')} {getattr(args, key)}"
        for key in ("clip_len", "max_stride")
        if getattr(args, key) != getattr(defaults, key)
    ]
    if args.lstm_channels is not None and args.arch == "single" and not architecture_noted:
        idle.insert(0, f"--lstm-channels {args.lstm_channels}")
    return idle


def unused_options(given: dict[str, Any], kept: dict[str, Any]) -> list[str]:
    """The architecture options ``given`` that differ from the ``kept`` model's, as typed."""
    return [f"--{k.replace('_', '-')} {v}" for k, v in given.items() if kept.get(k) != v]


def architecture_text(config: dict[str, Any]) -> str:
    """A model's architecture options, for a note: 'channels 32, num_drm 6, ...'."""
    return ", ".join(f"{k} {config[k]}" for k in ARCH_OPTIONS if k in config)


ARCH_OF = {"RecurrentSARN": "recurrent", "SARN": "single"}  # a checkpoint's class: its --arch


def export_target(source: Path, dst: Path) -> str:
    """What ``dst`` holds that an export of ``source`` replaces ('' where nothing): refused
    (CheckpointError) where that is not weights, or weights of the other architecture, as a
    typo (`--export weights/sarn_single.pth`) replaced the shipped single-image weights."""
    if not dst.is_file():
        return ""
    new = read_checkpoint(source)["arch"]
    try:
        old = read_checkpoint(dst.absolute())  # the file there, not a packaged name
    except CheckpointError:
        raise CheckpointError(
            f"--export {dst} exists and is not sarn_ros weights (a run's last.pt, a damaged "
            "file, another program's): name another file (or delete that one first)"
        ) from None
    if old["arch"] != new:
        raise CheckpointError(
            f"--export {dst} holds {old['arch']} weights, the run's are {new}: name another "
            "file (or delete that one first)"
        )
    steps = (old.get("meta") or {}).get("steps")
    return f"{old['arch']} weights" + (f" of step {steps}" if steps is not None else "")


def trained_weights(run_dir: Path, init: str | None) -> str:
    """The weights in ``run_dir`` that record trained steps, as 'best.pth (step 3)'; '' where
    none, or where --init starts from one of them."""
    start = Path(init).resolve() if init else None
    if start in {(run_dir / name).resolve() for name in RUN_WEIGHTS}:
        return ""  # the run's own weights, started from knowingly (their replacement is said)
    found = []
    for name in RUN_WEIGHTS:
        path = run_dir / name
        if not path.exists():
            continue
        with contextlib.suppress(CheckpointError):  # unreadable: nothing to lose
            if steps := read_checkpoint(path).get("meta", {}).get("steps"):
                found.append(f"{name} (step {steps})")
    return " and ".join(found)


def resumed_architecture(run_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """The architecture of the run in ``run_dir`` (``latest.pth`` holds it whole, also for a
    run started from --init): on --resume the architecture options are for new runs only."""
    if not (run_dir / "last.pt").exists():
        return None
    damaged = None
    if (run_dir / "latest.pth").exists():
        # damaged (a disk, a cut-short copy): last.pt's run config says it too, and the next
        # checkpoint writes latest.pth anew
        try:
            ckpt = read_checkpoint(run_dir / "latest.pth")
            return ARCH_OF[ckpt["arch"]], dict(ckpt["config"])
        except CheckpointError as exc:
            damaged = exc
    from ..training.trainer import load_training_state

    try:
        cfg = load_training_state(run_dir / "last.pt")["config"]
        model = cfg["model"]
        if cfg.get("init") is not None:  # as the run built it: the init weights' config, and
            # the run's own for what they have no say in (a single model's LSTM, made recurrent)
            model = {**model, **load_model(cfg["init"]).cfg.to_dict()}
    except (RuntimeError, CheckpointError, OSError, KeyError, ValueError):
        if damaged is not None:  # the fault to name: not last.pt's
            raise damaged from None
        return None  # resuming names what is wrong with last.pt
    fields = (
        RecurrentSARNConfig if cfg["arch"] == "recurrent" else SARNConfig
    ).__dataclass_fields__
    return cfg["arch"], {k: v for k, v in model.items() if k in fields}


def count(
    usable: list[Sequence], train: list[Sequence], clip: int, crop: int, synthetic: bool
) -> str:
    """'N sequences, F frames', naming those a crop or clip length leaves out (ClipSampler
    skips them: x0.5 copies and small stills at a 256 px crop, for one), each reason with its
    count, and the largest of those too small, as trained on: the synthetic blur crops a
    340x300 still to 246x218 or less, which its own size did not tell."""
    frames = sum(len(s.blurred) for s in usable)
    text = f"{plural(len(usable), 'sequence')}, {plural(frames, 'frame')}"
    if len(usable) < len(train):
        left = len(train) - len(usable)
        short = sum(len(s.blurred) < clip for s in train)
        small = [s.blurred[0].shape[:2] for s in train if min(s.blurred[0].shape[:2]) < crop]
        reasons = [f"{short} with fewer than {plural(clip, 'frame')}"] if short else []
        if small:
            h, w = max(small, key=min)
            # a video's crop grows with its blur too (blur_synth: up to 30 %)
            why = ", cropped 8-30 % a side by the synthetic blur (more with a longer --blur-px)"
            reasons.append(
                f"{len(small)} smaller than the {crop}x{crop} crop, the largest {w}x{h}"
                + (why if synthetic else "")
            )
        text += (
            f" ({left} of the {plural(len(train), 'sequence')} {'is' if left == 1 else 'are'} "
            f"left out: {'; '.join(reasons)})"
        )
    return text


def summarise(
    args: argparse.Namespace,
    desc: dict[str, Any] | None,
    usable: list[Sequence],
    counted: str,
) -> list[str]:
    """The data lines of the weights' metadata: what was trained on (``counted``, as the
    'training data:' line says it), and its blur."""
    sizes = [f"{w}x{h}" for h, w in sorted({s.blurred[0].shape[:2] for s in usable})]
    more = f" and {len(sizes) - 6} more" if len(sizes) > 6 else ""  # stills: one per image
    lines = [
        f"sources: {', '.join(desc['sources']) if desc else Path(args.trainset).resolve()}",
        f"{counted}, sizes {', '.join(sizes[:6])}{more}",
    ]
    if desc is None:
        why = "a --trainset built before sarn_ros wrote trainset.json, or linked from such sets"
        return [*lines, f"synthetic blur: not recorded ({why})"]
    if desc["real_pairs"]:
        lines.append(f"real pairs: {', '.join(desc['real_pairs'])}")
    lines += [f"synthetic blur: {blur}" for blur in desc["synthetic_blur"]]
    if desc.get("sharpest", 1.0) < 1 and desc.get("sharpest_applied", True):
        lines.append(f"recordings: the sharpest {desc['sharpest']:g} of their clips")
    return lines
