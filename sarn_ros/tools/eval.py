"""`sarn eval`: PSNR/SSIM against ground truth (model AND blurred input), and a SLAM proxy
(RANSAC-inlier ORB matches) plus sharpness on real streams without ground truth.

Streams without ground truth and sharp material for synthetic blur may be image folders,
videos or rosbag2 recordings (each camera topic of a bag is one stream), so a robot's own
recording is measured as it was recorded."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import CheckpointError, first_line, resolve_weights
from ..data.blur_synth import BlurParams
from ..data.datasets import (
    Sequence,
    find_pair_dirs,
    is_pair_side,
    listed,
    no_pairs_error,
    pair_files,
    pairs_once,
    read_pair,
    unique_name,
    visible,
)
from ..ensemble import MEMBERS
from ..image_files import kernel_path
from ..offline import InputError, read_units, recording_of
from .options import (
    MAX_BLUR_PX,
    MIN_EXPOSURE,
    Gathered,
    Given,
    HelpFormatter,
    add_bag_arguments,
    add_gap_argument,
    check_json_output,
    check_writable,
    file_arg,
    how_stopped,
    once_each,
    path_arg,
    ranged,
    say_json_kept,
    spelled,
    split_idle,
    stops_as_interrupts,
    stops_held,
)

# The held-out synthetic set is made exactly as `sarn train` makes its validation set.
SYNTH_SEED = 1234
SKIP_FRAMES, SCALE, BLUR_PX = 0, 0.5, 24.0
EXPOSURE = BlurParams().exposure  # sarn train's --exposure default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="Evaluate weights against the blurred input.",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--weights",
        nargs="+",
        action=Gathered,
        default=["sarn_recurrent"],
        help="paths or packaged names",
    )
    p.add_argument(
        "--pairs",
        type=path_arg,
        nargs="*",
        action=Gathered,
        default=[],
        help="blurred/sharp folders as downloaded (GoPro <seq>/{blur,sharp}, DVD "
        "<seq>/{input,GT}, BSD <seq>/{Blur,Sharp}/RGB, REDS {split}_{blur,sharp}/<seq>, ...)",
    )
    p.add_argument(
        "--synthetic",
        type=path_arg,
        nargs="*",
        action=Gathered,
        default=[],
        help="sharp sequences (folders, videos, bags), blurred with the fixed held-out seed",
    )
    p.add_argument(
        "--no-gt",
        type=path_arg,
        nargs="*",
        action=Gathered,
        default=[],
        dest="no_gt",
        help="real streams without ground truth (image folders, videos, bags, or a folder of "
        "them): SLAM proxy, sharpness",
    )
    p.add_argument(
        "--skip-frames",
        action=Given,
        type=ranged(int, 0),
        default=SKIP_FRAMES,
        metavar="N",
        help="start --no-gt streams N frames in (recordings often begin standing still)",
    )
    add_bag_arguments(p)
    add_gap_argument(p, "play a camera's frames as separate sequences")
    p.add_argument(
        "--future-frames",
        type=int,
        nargs="+",
        action=Gathered,
        default=[0, 1, 2],
        choices=(0, 1, 2),
        help="look-ahead settings to evaluate (recurrent weights; single-image ones run once)",
    )
    p.add_argument(
        "--scale",
        action=Given,
        type=ranged(float, above=0, high=1),
        default=SCALE,
        help="downscale synthetic sources (as training)",
    )
    p.add_argument(
        "--max-frames",
        type=ranged(int, 1),
        default=10,
        help="frames per sequence or stream (--no-gt streams: after --skip-frames; a "
        "--synthetic folder of stills: the first N stills, 6 frames each). A --synthetic "
        "source is blurred as a clip of this length: its frames differ from the same frames "
        "of a longer run",
    )
    p.add_argument(
        "--blur-px",
        action=Given,
        type=ranged(float, 0, MAX_BLUR_PX),
        default=BLUR_PX,
        help="synthetic blur at full resolution",
    )
    p.add_argument(
        "--exposure",
        action=Given,
        type=ranged(float, MIN_EXPOSURE, 1),
        default=EXPOSURE,
        help="synthetic blur's shutter duty cycle 0..1: sarn train validates at its --exposure",
    )
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
        "--self-ensemble",
        type=int,
        nargs="+",
        action=Gathered,
        default=[1],
        choices=MEMBERS,
        help="flip/transpose members averaged per frame (K times the compute); "
        "several values are compared",
    )
    p.add_argument(
        "--torch-compile",
        action="store_true",
        help="torch.compile the network (as the node's torch_compile); each size compiles once",
    )
    p.add_argument("--json", type=file_arg, help="write all results here")
    p.add_argument(
        "--save-images",
        type=path_arg,
        help="write side-by-side images here (a subfolder per weights/ensemble when several)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with stops_as_interrupts():  # `timeout`'s SIGTERM too: the rows finished are reported
        return evaluate(args)


def evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..ensemble import make_engine
    from ..evaluation import evaluate_gt, evaluate_nogt, pooled
    from ..recordings import (
        NoFrames,
        gap_hint,
        read_streams,
        sharp_source_note,
        synthetic_sequences,
    )

    source = {"topics": args.topics, "debayer": args.debayer, "max_gap_s": args.max_gap_s}
    try:
        check_args(args)
        # a setting or input given twice (`a` and `./a` too) would run twice and count twice
        # in the pooled rows
        for key in ("self_ensemble", "future_frames", "pairs"):
            setattr(args, key, once_each(getattr(args, key)))
        args.weights = once_each(args.weights, resolve_weights)  # sarn_recurrent, its file
        args.synthetic = once_each(args.synthetic, recording_of)  # a bag, its .db3
        given = list(args.no_gt)  # a folder of recordings: its own are no place for images
        args.no_gt = [r for d in args.no_gt for r in streams_in(d)]
        args.no_gt = once_each(args.no_gt, recording_of)
        folders = image_folders(args)
        check_image_folders(args, folders, given)
        # Real pairs are read one sequence at a time in each pass (a whole benchmark, GoPro's
        # 1,111 test pairs at 720p, would take 6 GB of RAM), after checking them all here.
        pairs, per_pass = [], 0  # per_pass: frames one pass of every input plays
        roots = []  # (option, input folder) of each ground-truth sequence, pairs first
        found_by_root, notes = pairs_once(
            {d: find_pairs(d) for d in args.pairs}, "--pairs", "scored"
        )
        for note in notes:
            print(note, file=sys.stderr)
        for d, found in found_by_root.items():
            pairs += found
            roots += [("--pairs", str(d))] * len(found)
            per_pass += sum(len(pair_files(*seq, args.max_frames)[0]) for seq in found)
        synthetic = []
        params = BlurParams(
            blur_px=args.blur_px * args.scale, exposure=args.exposure, object_prob=0.0
        )
        args.synthetic, notes = read_once(args.synthetic)
        for note in notes:
            print(note, file=sys.stderr)
        for d in args.synthetic:
            if note := sharp_source_note("--synthetic", d, "--pairs"):
                print(note, file=sys.stderr)
            found = synthetic_sequences(
                d, SYNTH_SEED, params, args.scale, args.max_frames, **source
            )
            synthetic += found
            roots += [("--synthetic", str(d))] * len(found)
        nogt = []  # (name, frames, input) of the streams without ground truth
        args.no_gt, notes = read_once(args.no_gt, "--no-gt", into_folders=False)
        for note in notes:
            print(note, file=sys.stderr)
        empty = []  # one short stream of a folder of runs (--skip-frames) ended them all
        cut = False  # a bag's stream cut where its stamps broke off (--max-gap-s)
        for d in args.no_gt:
            try:
                rec, streams = read_streams(d, args.max_frames, args.skip_frames, **source)
            except NoFrames as exc:
                empty.append(exc)
                continue
            cut = cut or any(rec.breaks.values())
            nogt += [(name, frames, str(d)) for name, frames in streams]
        if empty and not (nogt or pairs or synthetic):
            raise empty[0]
        for exc in empty:  # as a bag's silent topic, an unreadable pair: the others go on
            print(f"sarn eval: note: --no-gt: left out: {exc}", file=sys.stderr)
        if nogt and not pairs and not synthetic and all(len(f) < 2 for _, f, _ in nogt):
            raise ValueError(
                "no --no-gt stream has two frames in a row for the ORB proxy to compare"
                + (gap_hint(args.no_gt, args.max_gap_s, "streams") if cut else "")
            )
        # one row and one image prefix per input: two runs' `blur` folders keep both
        seen: set[str] = set()
        pairs = [(unique_name(name, seen), b, s) for name, b, s in pairs]
        for seq in synthetic:
            seq.name = unique_name(seq.name, seen)
        nogt = [(unique_name(name, seen), frames, root) for name, frames, root in nogt]
        for weights in args.weights:  # a mistyped second name is found before the first runs
            resolve_weights(weights)
    except (ValueError, OSError, CheckpointError) as exc:
        print(f"sarn eval: error: {exc}", file=sys.stderr)
        return 2
    # Every engine is made before any evaluates: weights that cannot load, or cannot run these
    # settings (an ONNX graph: fp32 on the CPU), end the run before the others' work is lost.
    engines = []
    start = time.monotonic()
    for weights, members in itertools.product(args.weights, args.self_ensemble):
        try:
            engine = make_engine(
                weights,
                self_ensemble=members,
                device=args.device,
                precision=args.precision,
                max_gap_s=None,
                torch_compile=args.torch_compile,
            )
        except (CheckpointError, RuntimeError, ValueError) as exc:
            print(f"sarn eval: error: {exc}", file=sys.stderr)
            return 2
        engines.append(({"weights": str(weights), "self_ensemble": members}, engine))
    results: dict = {"gt": [], "no_gt": []}
    failed: dict[str, str] = {}  # sequence: why it could not be read
    noted: set[str] = set()  # sequences whose grey blurred frames were named
    per_pass += sum(len(s.blurred) for s in synthetic) + sum(len(f) for _, f, _ in nogt)
    bar = tqdm(total=0, unit="frame", desc="sarn eval", leave=False, dynamic_ncols=True)
    names = short_names([str(w) for w in args.weights])
    stop: KeyboardInterrupt | None = None  # Ctrl-C, or a Stopped (SIGTERM, SIGHUP)
    try:  # Ctrl-C: the sequences finished so far are reported, not lost
        for (tag, engine), save in zip(engines, folders, strict=True):
            looks = args.future_frames if engine.is_recurrent else [0]
            bar.total += per_pass * len(looks)  # known once the weights say whether they look ahead
            bar.set_postfix_str(label(tag, names))
            for ff in looks:
                engine.future_frames = ff
                try:
                    sequences = readable(pairs, synthetic, failed, args.max_frames, noted)
                    for seq, (option, root) in zip(sequences, roots, strict=True):
                        if seq is None:  # unreadable: said once, the others go on
                            continue
                        res, _ = evaluate_gt(engine, seq, save, bar.update)
                        given = {"input": root, "option": option}
                        results["gt"].append({**tag, **given, **res.summary()})
                    for name, frames, root in nogt:
                        result = evaluate_nogt(engine, name, frames, save, bar.update)
                        results["no_gt"].append({**tag, "input": root, **result})
                except (ValueError, OSError) as exc:  # an unreadable frame, an unwritable image
                    bar.close()
                    print(f"sarn eval: error: {exc}", file=sys.stderr)
                    say_json_kept("sarn eval", args.json, "the run stopped at the error")
                    return 2
                except RuntimeError as exc:  # the network's out of memory; any other is a bug
                    why = first_line(exc)[:300]
                    if "allocate" not in why and "out of memory" not in why.lower():
                        raise
                    bar.close()
                    print(
                        f"sarn eval: error: out of memory ({why}); evaluate smaller frames",
                        file=sys.stderr,
                    )
                    say_json_kept("sarn eval", args.json, "the run stopped at the error")
                    return 2
    except KeyboardInterrupt as exc:
        stop = exc
    bar.close()
    groups: dict[tuple, list[dict]] = {}  # an input folder's sequences, per setting
    for r in results["gt"]:
        key = (r["weights"], r["self_ensemble"], r["future_frames"], r["input"], r["option"])
        groups.setdefault(key, []).append(r)
    shown = pooled_names(results["gt"])
    # per input, the sequences a whole run scores: a pool a stop cut short is not "all" of them
    left_out = [roots[i] for i, (name, *_) in enumerate(pairs) if name in failed]
    scored = Counter(roots) - Counter(left_out)

    def pool(rows: list[dict]) -> dict:
        at = (rows[0]["option"], rows[0]["input"])
        name, whole = shown[at[1], at[0]], scored[at]
        cut = stop is not None and len(rows) < whole
        label = (
            f"{len(rows)} of {whole} of {name} (interrupted)"
            if cut
            else f"all {len(rows)} of {name}"
        )
        return {
            **{k: rows[0][k] for k in ("weights", "self_ensemble", "input", "option")},
            **pooled(rows, label),
            **({"interrupted": True} if cut else {}),
        }

    results["gt_pooled"] = [pool(rows) for rows in groups.values() if len(rows) > 1]
    results["seconds"] = time.monotonic() - start
    results["unreadable"] = failed
    results["settings"] = measured_on(engines[0][1], args)
    if stop is not None:
        results["interrupted"] = True
    try:
        with stops_held():  # one now (every row done) comes after the tables and a whole --json
            code = report(args, results, names, failed)
    except KeyboardInterrupt as late:  # held till then: it skipped the --json, or cut it
        stop = stop or late  # the first stop is the one said
    else:
        if code:
            return code
    if stop is not None:
        how, code = how_stopped(stop)
        partial = " (the images saved of the sequence running may be partial)"
        print(
            f"sarn eval: {how}: the rows above are what finished before it"
            f"{partial if args.save_images else ''}",
            file=sys.stderr,
        )
        return code
    return 2 if failed else 0


def measured_on(engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    """How the figures were made, for the JSON: figures compared across runs (and seconds)
    mean something only with the device, the precision as run (fp16 asked on a CPU runs fp32)
    and the versions beside them; --synthetic ones with their blur, to hold against a
    training run's validation (its --val-blur-px and --exposure)."""
    import torch

    from .. import __version__
    from .bench_model import device_label

    compiled = "off"  # known after the run: a compile that failed ran eagerly
    if args.torch_compile:
        compiled = "on" if engine.compiled else "failed, eager"
    frames = {"max_frames": args.max_frames}
    if args.no_gt:
        frames["skip_frames"] = args.skip_frames
    if args.synthetic:
        blur = {"blur_px": args.blur_px, "exposure": args.exposure, "scale": args.scale}
        frames["synthetic_blur"] = blur | {"seed": SYNTH_SEED}
    return {
        "device": f"{engine.device} ({device_label(engine.device)})",
        "precision": engine.precision,
        "torch_compile": compiled,
        "torch": torch.__version__,
        "sarn_ros": __version__,
        **frames,
    }


def check_args(args: argparse.Namespace) -> None:
    """Raise ValueError for settings that would fail, or mean nothing, only after the whole
    evaluation: checked before any input is read or model loaded."""
    if not (args.pairs or args.synthetic or args.no_gt):
        raise ValueError("give --pairs, --synthetic and/or --no-gt inputs")
    from ..recordings import holds_recordings

    # a missing path is named by its own check, not as a bag option's "not used"
    bags = any(
        not d.exists() or holds_recordings(d, ("bag",)) for d in (*args.synthetic, *args.no_gt)
    )
    unused, noted = split_idle(
        {
            "--skip-frames (--no-gt streams)": (
                spelled(args, "skip_frames"),
                not args.no_gt,
            ),
            "--scale (--synthetic)": (spelled(args, "scale"), not args.synthetic),
            "--blur-px (--synthetic)": (spelled(args, "blur_px"), not args.synthetic),
            "--exposure (--synthetic)": (spelled(args, "exposure"), not args.synthetic),
            "--topics (bags of --synthetic or --no-gt)": (
                "set" if args.topics is not None else None,
                not bags,
            ),
            "--debayer (bags of --synthetic or --no-gt)": (
                spelled(args, "debayer"),
                not bags,
            ),
            "--max-gap-s (bags of --synthetic or --no-gt)": (
                spelled(args, "max_gap_s"),
                not bags,
            ),
        }
    )
    if unused:  # they used to be ignored without a word
        raise ValueError(f"not used in this run: {'; '.join(unused)}")
    if noted:
        print(f"sarn eval: note: not used in this run: {'; '.join(noted)}", file=sys.stderr)
    for d in args.pairs:
        if not d.is_dir():
            what = "no such folder" if not d.exists() else "not a folder"
            raise ValueError(f"--pairs {d}: {what} (blurred/sharp image folders)")
    if args.json is not None:
        check_json_output(args.json)
    if args.save_images is not None:
        check_writable(kernel_path(args.save_images), "--save-images", folder=True)


def image_folders(args: argparse.Namespace) -> list[Path | None]:
    """Where each compared setting (weights x self-ensemble, in that order) saves its images:
    --save-images itself for one, else a folder in it per setting (`rec/best.pth` and
    `rec_best.pth` keep theirs)."""
    settings = list(itertools.product(args.weights, args.self_ensemble))
    if args.save_images is None:
        return [None] * len(settings)
    # where the kernel finds it: `new/../x` is ./x, and no empty `new` is made beside it
    base = Path(os.path.realpath(args.save_images))
    if len(settings) == 1:
        return [base]
    names, seen, folders = short_names([str(w) for w in args.weights]), set(), []
    for w, m in settings:
        name = label({"weights": str(w), "self_ensemble": m}, names).replace(" ", "_")
        # ./sarn_recurrent was ._sarn_recurrent: hidden, and macOS's resource-fork prefix
        folder = name.replace("/", "_").lstrip("._") or "weights"
        folders.append(base / unique_name(folder, seen))
    return folders


def check_image_folders(
    args: argparse.Namespace, folders: list[Path | None], no_gt: list[Path]
) -> None:
    """The image folders are no input nor inside one (a later run would read the saved images
    as frames; a setting's folder named as an input, `sarn_single`, was written into), and
    --json is neither one of them nor an image in one (both were found after the run).
    ``no_gt``: the --no-gt inputs as given, a folder of recordings among them (saved into,
    its recordings were left unread by the next run, which took the images as its stream)."""
    if args.save_images is None:
        return
    save = args.save_images.resolve()
    made = dict.fromkeys([save, *(f.resolve() for f in folders if f is not None)])
    for folder in made:
        for d in dict.fromkeys((*args.pairs, *args.synthetic, *no_gt, *args.no_gt)):
            if folder.is_relative_to(d.resolve()):
                where = "the input" if folder == d.resolve() else "inside the input"
                which = "" if folder == save else f" (its {folder.name})"
                raise ValueError(
                    f"--save-images {args.save_images}{which} is {where} {d}: "
                    "a later run would read the saved images as frames"
                )
    json_path = args.json.resolve() if args.json is not None else None
    if json_path is not None and (
        json_path in made or (json_path.parent in made and json_path.suffix.lower() == ".png")
    ):
        raise ValueError(
            f"--json {args.json} is where --save-images {args.save_images} puts images: "
            "give the JSON another name"
        )


def pooled_names(rows: list[dict]) -> dict[tuple[str, str], str]:
    """The name in each pooled row, per (input, option): the folder's name as given (a link's
    own, not its target's), its path as given where two inputs share it (`GOPRO_Large/train`,
    `REDS/train`), and the option where a folder is given to both --pairs and --synthetic
    (real and synthetic blur are pooled apart)."""
    given = {(r["input"], r["option"]) for r in rows}
    names = {i: Path(os.path.abspath(i)).name for i, _ in given}
    options: dict[Path, set[str]] = {}  # per folder, however spelled
    for i, o in given:
        options.setdefault(Path(i).resolve(), set()).add(o)
    clash = Counter({Path(i).resolve(): name for i, name in names.items()}.values())
    shown = {}
    for i, o in given:
        shown[i, o] = i if clash[names[i]] > 1 else names[i]
        if len(options[Path(i).resolve()]) > 1:
            shown[i, o] += f" ({o})"
    return shown


def streams_in(source: Path) -> list[Path]:
    """The --no-gt streams ``source`` gives: itself, or each recording in a folder of them
    (bags of a day's runs), as --synthetic and train's --data read one; of a sequence of
    blurred/sharp pairs given, its blurred frames only (its ``sharp/`` was scored as a
    camera's stream, GoPro's ``blur_gamma/`` as a second one), and sequences further down
    named; a folder with none stays itself, for its error."""
    from ..recordings import recording_kind, sharp_recordings

    found = sharp_recordings(source)
    pairs = find_pair_dirs(source) if source.is_dir() and not recording_kind(source) else []
    if recording_kind(source) == "folder":  # its images are the stream, as --synthetic reads
        out = [p for p in visible(source) if p.is_dir() or recording_kind(p) in ("video", "bag")]
        if out:  # its videos and bags were left out without a word
            print(
                f"note: --no-gt {source}: not read: {listed(out, source)} (only the images "
                "directly in a folder of images are read: give the others to --no-gt)",
                file=sys.stderr,
            )
    if not pairs:
        return found or [source]
    here = os.path.abspath(source)  # by name: a side may be a link to a folder elsewhere
    own = [  # the sequence given: its blurred side, or BSD's side/RGB
        blur
        for _, blur, _ in pairs
        if os.path.abspath((blur.parent if blur.name.lower() == "rgb" else blur).parent) == here
    ]
    kept = own + [r for r in found if not (own and is_pair_side(r))]
    read = {k.resolve() for k in kept}
    if left := [r.name for r in found if r.resolve() not in read]:
        print(
            f"note: --no-gt {source}: {', '.join(left)} not read: its ground truth or another "
            "blurred copy (give the folder to --pairs to score against the ground truth)",
            file=sys.stderr,
        )
    deeper = [blur for _, blur, _ in pairs if blur not in own]
    if deeper and kept:
        print(
            f"note: --no-gt {source}: not read: {listed(deeper, source)} (blurred/sharp "
            "pairs: give them to --pairs, or their blurred sides to --no-gt)",
            file=sys.stderr,
        )
    if not kept:  # pairs one level down, which a stream's read does not reach
        raise InputError(
            f"--no-gt {source} holds blurred/sharp pairs and no stream of its own: give it to "
            "--pairs, or their blurred sides to --no-gt"
        )
    return list(dict.fromkeys(kept))


def read_once(
    sources: list[Path], option: str = "--synthetic", into_folders: bool = True
) -> tuple[list[Path], list[str]]:
    """The sources of ``option`` without those another reads whole (`--synthetic a a/s2`
    scored s2 twice, as a second row; `--no-gt bag bag/bag_1.db3` a split bag's part), with a
    note for each left out: kept under the one that reads the most, a folder before the one
    recording it holds, the first given of equals. ``into_folders``: whether a folder source
    reads the recordings in it (--synthetic does; --no-gt's were each given by then)."""
    from ..recordings import read_owners, recording_kind, sharp_recordings

    within = sharp_recordings if into_folders else lambda d: [d]
    reads = [set().union(*map(read_units, within(d))) for d in sources]
    owners = read_owners(reads, [(recording_kind(d) is None,) for d in sources])
    kept, notes = [], []
    for d, owner in zip(sources, owners, strict=True):
        if owner is None:
            kept.append(d)
        else:
            notes.append(
                f"note: {option} {d} is read within {option} {sources[owner]}: scored there, once"
            )
    return kept, notes


def find_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """The sequences under ``root``, naming what it holds that is not scored."""
    found = find_pair_dirs(root)
    if not found:
        raise no_pairs_error(root)
    from ..recordings import pairs_not_read

    # else a figure "all K of" covers fewer sequences than the folder holds, unsaid
    for items, why in pairs_not_read(root, found, "--pairs"):
        print(f"note: --pairs {root}: not scored: {listed(items, root)} ({why})", file=sys.stderr)
    return found


def readable(
    pairs: list[tuple[str, Path, Path]],
    synthetic: list[Sequence],
    failed: dict[str, str],
    max_frames: int | None,
    noted: set[str],
) -> Iterator[Sequence | None]:
    """Each ground-truth sequence, read when its turn comes; None for a pair that cannot be
    read (a frame of another size, a broken file: found only on reading, and not worth the
    sequences scored before it), named once in ``failed`` and skipped in later passes. A
    pair of grey blurred and colour sharp frames is named once (in ``noted``): its figures
    are far below a colour pair's, and why is not in the table."""
    from tqdm import tqdm  # above the bar: a plain print was overwritten by its redraw

    for name, blur, sharp in pairs:
        if name in failed:
            yield None
            continue
        try:
            seq = read_pair(name, blur, sharp, max_frames=max_frames)
        except (ValueError, OSError) as exc:
            failed[name] = str(exc)
            tqdm.write(f"sarn eval: error: {exc} (left out; the others go on)", file=sys.stderr)
            yield None
            continue
        if name not in noted and grey_against_colour(seq):
            noted.add(name)
            tqdm.write(
                f"sarn eval: note: {name}: the blurred frames are grey, the sharp ones colour: "
                "both are scored against the colour frames, so input and output PSNR/SSIM "
                "count the missing colour (the gain compares like with like)",
                file=sys.stderr,
            )
        yield seq
    yield from synthetic


def grey_against_colour(seq: Sequence) -> bool:
    """Whether the first blurred frame is grey (read as three equal channels) and its sharp
    frame is not: a mono camera's blur paired with a colour reference."""

    def grey(img: np.ndarray) -> bool:
        return bool((img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all())

    return bool(seq.blurred) and grey(seq.blurred[0]) and not grey(seq.sharp[0])


def finite(value: Any) -> Any:
    """``value`` with every inf and nan float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def table(headers: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def short_names(weights: list[str]) -> dict[str, str]:
    """Each weights path by its file name, or by as many of its last path parts as tell it
    from the others: two runs' ``best.pth`` are ``rec/best.pth`` and ``single/best.pth``."""
    names = {}
    for w in weights:
        parts = Path(w).parts or (w,)
        others = [Path(o).parts for o in weights if o != w]
        n = 1
        while n < len(parts) and any(o[-n:] == parts[-n:] for o in others):
            n += 1
        names[w] = "/".join(parts[-n:])
    # ./sarn_recurrent and the packaged sarn_recurrent, one name apart: as typed
    shown = list(names.values())
    return {w: w if shown.count(name) > 1 else name for w, name in names.items()}


def label(r: dict, names: dict[str, str]) -> str:
    """Weights name, with ``xK`` for a self-ensemble of K members."""
    name = names[r["weights"]]
    return name if r["self_ensemble"] == 1 else f"{name} x{r['self_ensemble']}"


def change_cell(c: dict) -> str:
    if c["mean"] is None:
        return "-"
    if c["low"] is None:
        return f"{c['mean']:+.1f}"
    return f"{c['mean']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}]"


def verdict(c: dict) -> str:
    """What the ORB change says for SLAM, counting the pairs that went each way."""
    tally = f"{c['better']} of {c['pairs']} pairs up"
    if c["verdict"] == "too few pairs":
        return f"too few frame pairs ({c['pairs']})"
    if c["verdict"] == "no inliers":
        return (
            "no RANSAC inliers in input and output (frames too small, flat or regular for the "
            "proxy)"
        )
    if c["verdict"] == "no clear change":
        return f"no clear change ({tally}; a longer stream narrows it)"
    return f"{c['verdict']} inliers ({tally})"


def report(args: argparse.Namespace, results: dict, names: dict[str, str], failed: list) -> int:
    """The tables, the sequences that could not be read, and --json: 2 where it could not be
    written, else 0."""
    print_tables(results, names)
    if failed:
        print(
            f"sarn eval: error: {len(failed)} sequence(s) could not be read and are left out "
            f"of the rows above: {', '.join(failed)}",
            file=sys.stderr,
        )
    if not args.json:
        return 0
    try:
        written = kernel_path(args.json)  # `new/../e.json`: no `new` made
        written.parent.mkdir(parents=True, exist_ok=True)
        # an identical frame's PSNR is inf: null in JSON, which has no Infinity or NaN
        written.write_text(json.dumps(finite(results), indent=2, allow_nan=False))
    except OSError as exc:  # checked up front, but a disk fills or a folder goes meanwhile
        reason = exc.strerror or exc
        print(
            f"sarn eval: error: cannot write --json {args.json} ({reason}); the results are above",
            file=sys.stderr,
        )
        return 2
    return 0


def print_tables(results: dict, names: dict[str, str]) -> None:
    if results["gt"]:
        table(
            [
                "weights",
                "sequence",
                "future",
                "frames",
                "input PSNR",
                "PSNR",
                "gain dB",
                "input SSIM",
                "SSIM",
            ],
            [
                [
                    label(r, names),
                    r["sequence"],
                    str(r["future_frames"]),
                    str(r["frames"]),
                    f"{r['input_psnr']:.2f}",
                    f"{r['psnr']:.2f}",
                    f"{r['psnr_gain']:+.2f}",
                    f"{r['input_ssim']:.4f}",
                    f"{r['ssim']:.4f}",
                ]
                for r in results["gt"] + results["gt_pooled"]
            ],
        )
    if results["no_gt"]:
        table(
            [
                "weights",
                "sequence",
                "future",
                "ORB matches input",
                "ORB matches deblurred",
                "ORB inliers input",
                "ORB inliers deblurred",
                "sharpness input",
                "sharpness",
                "inliers change/pair [95% CI]",
                "verdict",
            ],
            [
                [
                    label(r, names),
                    r["sequence"],
                    str(r["future_frames"]),
                    *(
                        "-" if r[key] is None else f"{r[key]:.1f}"  # no frame pair: not measured
                        for key in (
                            "mean_orb_matches_input",
                            "mean_orb_matches",
                            "mean_orb_inliers_input",
                            "mean_orb_inliers",
                        )
                    ),
                    f"{r['sharpness_input']:.1f}",
                    f"{r['sharpness']:.1f}",
                    change_cell(r["orb_inlier_change"]),
                    verdict(r["orb_inlier_change"]),
                ]
                for r in results["no_gt"]
            ],
        )
    print(f"evaluated in {results['seconds']:.1f} s")
