"""`sarn export`: ONNX for deployment (e.g. TensorRT on a Jetson), validated in onnxruntime.

A single-image checkpoint exports as one graph ``frame -> deblurred``; a recurrent one as ONE
recurrent step ``(stack, h, c) -> (frame, h_out, c_out)`` whose state is explicit, so the
runtime keeps it between frames exactly as the streaming engine does (the 15-channel stack is
[out_t-2, out_t-1, blur_t, blur_t+1, blur_t+2], see ``sarn_ros.archs.fusion_inputs``).

Height and width are dynamic but must be multiples of 4 (the engine pads with edge replication
before calling the network; do the same, then crop). Deformable convolutions are exported
through their grid_sample form (ONNX GridSample, opset >= 16), which onnxruntime and TensorRT
(>= 8.5) run; the attention decomposes to MatMul/Softmax. The default opset, 17, is the newest
that TensorRT 8.5 and 8.6 (JetPack 5 and 6.0) support; TensorRT 10 reads 9 to 20.

``--int8`` writes the graph with 8-bit convolutions for onnxruntime on a CPU, its ranges
measured on frames of the user's camera (``--calib``) or the bundled sample (see
``sarn_ros.tools.quantize``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..archs import RecurrentSARN
from ..checkpoint import CheckpointError, first_line, load_model, onnx_inside
from ..image_files import keep_owner, kernel_path
from ..onnx_net import is_onnx
from .options import (
    DEBAYER_DEFAULT,
    HelpFormatter,
    add_bag_arguments,
    add_gap_argument,
    check_writable,
    file_arg,
    forget_empty,
    made_folder,
    path_arg,
    plural,
    ranged,
    spelled,
    stops_as_interrupts,
)

MIN_OPSET = 16  # GridSample
DEFAULT_OPSET = 17  # the newest TensorRT 8.5/8.6 support (onnx-tensorrt docs/operators.md)
# the newest the exporter converts the attention to (torch 2.14.1): 26 failed after the whole
# export, with onnxscript's traceback and an error naming opset 18
MAX_OPSET = 25
SPLIT_NUM_OUTPUTS_OPSET = 18
MAX_GRAPH_ERROR = 1 / 1020  # fp32 graph vs PyTorch: about 1e-6 where the graph is right
CALIB_FRAMES = 16  # per stream: half a second of a 30 fps camera, each a PyTorch step to record


class ExportError(RuntimeError):
    """An export that cannot be written as asked; the message is the user's one line."""


class SingleGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.model.forward_padded(frame)


class RecurrentStep(nn.Module):
    def __init__(self, model: RecurrentSARN) -> None:
        super().__init__()
        self.model = model

    def forward(self, stack: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        out, (hid, cell) = self.model.step_padded(stack, (h, c))
        return out, hid, cell


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="Export ONNX (single-image model or one recurrent step).",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--weights", default="sarn_recurrent", help="checkpoint path or packaged name")
    p.add_argument("-o", "--output", type=file_arg, required=True, help="the .onnx file to write")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing -o file once validated"
    )
    # at least 8: a size of 4 would be fixed in the graph; at most 4096: the dynamic size's
    # bound in export(), past which the exporter fails with pages of its own
    p.add_argument(
        "--height", type=ranged(int, 8, 4096), default=480, help="example height (multiple of 4)"
    )
    p.add_argument(
        "--width", type=ranged(int, 8, 4096), default=640, help="example width (multiple of 4)"
    )
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {MIN_OPSET} (GridSample) to {MAX_OPSET}; "
        f"{DEFAULT_OPSET}: TensorRT >= 8.5",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="8-bit convolutions (static QDQ) for onnxruntime on a CPU; not for TensorRT",
    )
    p.add_argument(
        "--calib",
        type=path_arg,
        help="with --int8: frames of your camera to measure ranges on (image folder, video or "
        "rosbag2; default: the bundled sample), downscaled to fit --height x --width and "
        "640x480 pixels",
    )
    p.add_argument(
        "--calib-frames",
        type=ranged(int, 1),
        help=f"with --int8: the first frames of each camera of --calib, played as the pieces "
        f"they fall in (default {CALIB_FRAMES})",
    )
    add_bag_arguments(p)  # a --calib bag's camera topics (its errors name --topics)
    add_gap_argument(p, "calibrate a camera's frames as separate streams")  # its errors name it
    p.set_defaults(func=run)


def example_inputs(model: nn.Module, h: int, w: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    if isinstance(model, RecurrentSARN):
        ch = model.cfg.lstm_channels
        return (
            torch.rand(1, 15, h, w, generator=g),
            torch.rand(1, ch, h // 4, w // 4, generator=g),
            torch.rand(1, ch, h // 4, w // 4, generator=g),
        )
    return (torch.rand(1, 3, h, w, generator=g),)


def export(model: nn.Module, path: Path, h: int, w: int, opset: int) -> nn.Module:
    recurrent = isinstance(model, RecurrentSARN)
    graph = (RecurrentStep(model) if recurrent else SingleGraph(model)).eval()
    H, W = torch.export.Dim("H4", min=1, max=1024), torch.export.Dim("W4", min=1, max=1024)
    image = {2: 4 * H, 3: 4 * W}
    shapes = (image, {2: H, 3: W}, {2: H, 3: W}) if recurrent else (image,)
    names = (
        (["stack", "h", "c"], ["frame", "h_out", "c_out"])
        if recurrent
        else (["frame"], ["deblurred"])
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # one self-contained file (12 MB, far below protobuf's 2 GB): PyTorch >= 2.6 would put the
    # weights in a side file <name>.data that a copied .onnx silently lacks
    single_file = (
        {"external_data": False}
        if "external_data" in inspect.signature(torch.onnx.export).parameters
        else {}
    )
    with quiet_exporter():
        torch.onnx.export(
            graph,
            example_inputs(model, h, w),
            str(path),
            input_names=names[0],
            output_names=names[1],
            dynamic_shapes=shapes,
            opset_version=opset,
            dynamo=True,
            verbose=False,  # its progress lines
            **single_file,
        )
    import onnx

    proto = onnx.load(str(path))
    # the exporter builds at 18 and converts, keeping 18 where that fails (its warning, now
    # quiet, said so): the line after the export names the opset asked for
    made = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if made != opset:
        raise RuntimeError(f"the exporter wrote opset {made}, not {opset}; give --opset {made}")
    if opset < SPLIT_NUM_OUTPUTS_OPSET:
        explicit_split_sizes(proto)
    save_checked(proto, path, opset)
    return graph


# what the exporter logs about every default export: "Setting ONNX exporter to use operator
# set version 18 because the requested opset_version 17 is lower", and the converter's
# fallback to the onnx C API, above the line that names the opset the file has
EXPORTER_LOGGERS = ("torch.onnx._internal.exporter._compat", "onnxscript.version_converter")


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter's warnings above ERROR held back while it runs (restored after), and the
    recurrent step's "The axis name: H4 will not be used, since it shares the same shape
    constraints with another axis" (its three inputs share H4 and W4 by design)."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"# The axis name: \w+ will not be used")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


META_KEY = "sarn_ros.meta"  # the graph's metadata_props key: the checkpoint's metadata as JSON


def record_provenance(path: Path, weights: str | Path, meta: dict[str, Any], opset: int) -> None:
    """Keep the weights' provenance (steps, training data, validation figures) in the graph, as
    the checkpoint has it: an exported fine-tune was otherwise a file of unknown origin.
    ``onnx.load(f).metadata_props`` reads it; onnxruntime and TensorRT ignore it."""
    import json

    import onnx

    proto = onnx.load(str(path))
    record = {"weights": str(weights), **meta}
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(record, default=str)})
    save_checked(proto, path, opset)


def save_checked(proto: Any, path: Path, opset: int) -> None:
    """Write ``proto`` with the oldest IR version that carries ``opset``, after ONNX's full
    check: the exporter and the quantizer both write their own, newer IR version."""
    import onnx

    # not min(own, oldest): the exporter wrote IR 10 under opset 25, which IR 13 first carries
    proto.ir_version = oldest_ir_version(opset)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def oldest_ir_version(opset: int) -> int:
    """The oldest ONNX IR version that carries ``opset``: the exporter writes its own (10 with
    onnx 1.16+), which onnxruntime before 1.18 (as on JetPack 5) refuses to load, though the
    graph uses nothing newer than the opset."""
    from onnx.helper import VERSION_TABLE

    known = [ir for _, ir, ai_onnx, *_ in VERSION_TABLE if ai_onnx >= opset]
    if not known:
        newest = max(ai_onnx for _, _, ai_onnx, *_ in VERSION_TABLE)
        raise ExportError(f"the installed onnx knows opsets up to {newest}")
    return min(known)


def explicit_split_sizes(proto: Any) -> int:
    """Give every Split its part sizes as the ``split`` input of opset 13-17, in place of the
    ``num_outputs`` attribute that only opset 18 has. The exporter builds at 18 and converts
    down, keeping the attribute, and that file fails ONNX's checker and onnxruntime. Returns
    how many nodes changed."""
    from onnx import helper, numpy_helper

    shapes = {v.name: v for v in (*proto.graph.value_info, *proto.graph.input)}
    changed = 0
    for node in proto.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type != "Split" or "num_outputs" not in attrs:
            continue
        parts = helper.get_attribute_value(attrs["num_outputs"])
        axis = helper.get_attribute_value(attrs["axis"]) if "axis" in attrs else 0
        info = shapes.get(node.input[0])
        dims = info.type.tensor_type.shape.dim if info is not None else []
        size = dims[axis].dim_value if -len(dims) <= axis < len(dims) else 0
        if not size or size % parts:
            raise ExportError(
                f"a Split of {node.input[0]!r} into {parts} has no static, evenly divisible "
                f"size below opset {SPLIT_NUM_OUTPUTS_OPSET}; use --opset {SPLIT_NUM_OUTPUTS_OPSET}"
            )
        name = f"{node.name or node.output[0]}_sizes"
        proto.graph.initializer.append(
            numpy_helper.from_array(np.full(parts, size // parts, dtype=np.int64), name)
        )
        node.input.append(name)
        node.attribute.remove(attrs["num_outputs"])
        changed += 1
    return changed


class NotFinite(ValueError):
    """Outputs with NaN or inf: weights that cannot deblur, whatever the graph."""


def validate(graph: nn.Module, model: nn.Module, path: Path, sizes: list[tuple[int, int]]) -> float:
    """Largest |onnxruntime - PyTorch| over all outputs at each size; NotFinite where PyTorch
    gives NaN or inf (max(0.0, nan) is 0.0: NaN weights were exported with an error of 0), a
    ValueError where onnxruntime alone does."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for h, w in sizes:
        inputs = example_inputs(model, h, w)
        with torch.no_grad():
            ref = graph(*inputs)
        ref = ref if isinstance(ref, tuple) else (ref,)
        feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs, strict=True)}
        for a, b in zip(session.run(None, feed), ref, strict=True):
            if not torch.isfinite(b).all():
                raise NotFinite(f"the network's outputs at {h}x{w} are not finite (NaN or inf)")
            if not np.isfinite(a).all():  # the weights are sound: the graph is not
                raise ValueError(f"onnxruntime's outputs at {h}x{w} are not finite; PyTorch's are")
            worst = max(worst, float(np.abs(a - b.numpy()).max()))
    return worst


def has_dynamo_exporter() -> bool:
    """The exporter used here (``torch.onnx.export(dynamo=True)``) came with PyTorch 2.5; older
    ones (distribution and JetPack builds) still run the node."""
    return "dynamo" in inspect.signature(torch.onnx.export).parameters


def run(args: argparse.Namespace) -> int:
    """`sarn export`, SIGTERM and SIGHUP taken as Ctrl-C: `timeout` or a closed terminal left
    the export's hidden working folder (up to 12 MB) beside the output."""
    with stops_as_interrupts():
        return export_command(args)


def export_command(args: argparse.Namespace) -> int:
    if not has_dynamo_exporter():
        print(
            f"sarn export: error: needs PyTorch >= 2.5 (the dynamo ONNX exporter); this is "
            f"{torch.__version__}. Export on a desktop with a newer PyTorch: the ONNX file runs "
            "anywhere.",
            file=sys.stderr,
        )
        return 2
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if find_spec(m) is None]
    if missing:  # checked first: the export itself takes a minute before validation needs them
        print(
            f"sarn export: error: needs the Python packages {', '.join(missing)}, not among "
            f"sarn_ros's ROS dependencies: python3 -m pip install --user {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    if args.opset < MIN_OPSET:
        print(
            f"sarn export: error: --opset {args.opset}: the deformable convolutions need "
            f"GridSample, opset {MIN_OPSET} or newer",
            file=sys.stderr,
        )
        return 2
    if args.opset > MAX_OPSET:
        print(
            f"sarn export: error: --opset {args.opset}: the exporter converts the network's "
            f"attention to opsets up to {MAX_OPSET} only",
            file=sys.stderr,
        )
        return 2
    try:  # all known before the minute of exporting
        oldest_ir_version(args.opset)
    except ExportError as exc:
        print(f"sarn export: error: --opset {args.opset}: {exc}", file=sys.stderr)
        return 2
    written = kernel_path(args.output)  # as written: `new/../x.onnx` is ./x.onnx
    if args.output.suffix.lower() != ".onnx" and written.is_dir():  # a folder to put it in
        print(
            f"sarn export: error: -o {args.output} is a folder: name the graph's file, ending "
            f".onnx ({args.output / 'step.onnx'})",
            file=sys.stderr,
        )
        return 2
    if args.output.suffix.lower() != ".onnx":  # how the node and the tools know a graph
        print(
            f"sarn export: error: -o {args.output}: name it .onnx, which is how the node and "
            "the sarn tools tell an ONNX graph from PyTorch weights",
            file=sys.stderr,
        )
        return 2
    try:
        # replaced by a rename: the folder must take the new file, not only the old be writable
        check_writable(written, "-o", folder=False, replaced=True)
    except ValueError as exc:
        print(f"sarn export: error: {exc}", file=sys.stderr)
        return 2
    if written.exists() and not args.overwrite:  # as `sarn deblur`: no file replaced unsaid
        print(
            f"sarn export: error: -o {args.output} exists: pass --overwrite to replace it",
            file=sys.stderr,
        )
        return 2
    if (args.calib is not None or args.calib_frames is not None) and not args.int8:
        print("sarn export: error: --calib and --calib-frames go with --int8", file=sys.stderr)
        return 2
    from ..recordings import recording_kind

    if args.calib is not None and not args.calib.exists():  # before what the path would be
        print(f"sarn export: error: --calib: no such file or folder: {args.calib}", file=sys.stderr)
        return 2
    bag = args.calib is not None and recording_kind(args.calib) == "bag"
    bag_only = args.topics is not None or args.debayer != DEBAYER_DEFAULT
    if (bag_only or spelled(args, "max_gap_s") == "set") and not bag:
        print(
            "sarn export: error: --topics, --debayer and --max-gap-s go with a --calib bag",
            file=sys.stderr,
        )
        return 2
    args.calib_frames = CALIB_FRAMES if args.calib_frames is None else args.calib_frames
    if args.height % 4 or args.width % 4:
        print("sarn export: error: --height and --width must be multiples of 4", file=sys.stderr)
        return 2
    given = Path(args.weights)
    if given.is_file() and (is_onnx(args.weights) or onnx_inside(given)):  # load_model's words
        # are the node's and sarn train --init's; a missing file is load_model's "no such file"
        print(
            f"sarn export: error: --weights {args.weights} is an ONNX graph already; export "
            "takes PyTorch weights (.pth: sarn_recurrent, sarn_single, a sarn train run's)",
            file=sys.stderr,
        )
        return 2
    try:
        model = load_model(args.weights, device="cpu", deform_impl="grid_sample")
    except CheckpointError as exc:
        print(f"sarn export: error: {exc}", file=sys.stderr)
        return 2
    streams: list[list[np.ndarray]] = []
    if args.int8:  # read before the minute of exporting: a bad source is one line at once
        from ..offline import InputError
        from .quantize import calibration_frames

        try:
            streams = calibration_frames(
                args.calib,
                args.calib_frames,
                args.height,
                args.width,
                args.topics,
                args.debayer,
                args.max_gap_s,
            )
        except (InputError, OSError) as exc:
            print(f"sarn export: error: --calib: {first_line(exc)}", file=sys.stderr)
            return 2
    sizes = [(args.height, args.width), (max(4, args.height // 8 * 4), max(4, args.width // 8 * 4))]
    folder = written.parent  # `new/../x.onnx`: no `new` made
    top = made_folder(folder)  # removed again, with the parents made for it, if not written
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written beside the output and moved over it only once validated: a failed export
        # leaves no half-written graph and keeps a file it would have replaced.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".sarn_export_") as tmp:
            fp32, final = Path(tmp) / "fp32.onnx", Path(tmp) / "out.onnx"
            try:
                try:
                    graph = export(model, fp32, args.height, args.width, args.opset)
                except OSError:  # its file written or read: no matter of --opset
                    raise
                except Exception as exc:  # the converter's: what --opset may change
                    raise ExportError(f"opset {args.opset}: {first_line(exc)}") from None
                err = validate(graph, model, fp32, sizes)
                if err > MAX_GRAPH_ERROR:  # it was written, and said, with exit 0
                    raise ValueError(
                        f"onnxruntime's outputs differ from PyTorch's by {err:.2e} at {sizes}, "
                        f"over {MAX_GRAPH_ERROR:.1e} (a quarter of a grey level): not written"
                    )
                if args.int8:
                    agreement = export_int8(model, fp32, final, streams, args.opset)
                done = final if args.int8 else fp32
                record_provenance(done, args.weights, getattr(model, "meta", {}), args.opset)
                keep_owner(written, done)  # a 0600 graph stays 0600
                os.replace(done, written)
                top = None  # written: the folders made for it stay
            except NotFinite as exc:
                print(f"sarn export: error: {args.weights}: {exc}", file=sys.stderr)
                return 2
            except Exception as exc:  # exporter, converter, calibration, onnxruntime, the move
                print(f"sarn export: error: {first_line(exc)}", file=sys.stderr)
                return 2
    except OSError as exc:  # the working folder beside the output, made or removed
        print(f"sarn export: error: -o {args.output}: {first_line(exc)}", file=sys.stderr)
        return 2
    finally:
        if top is not None:  # a failed or interrupted export: no empty folders left
            forget_empty(folder, top)
    kind = (
        "one recurrent step (stack, h, c)"
        if isinstance(model, RecurrentSARN)
        else "single-image model"
    )
    note = ""
    if args.int8:
        calib = sorted({f.shape[1::-1] for frames in streams for f in frames}, reverse=True)
        shown = ", ".join(f"{w}x{h}" for w, h in calib)  # a folder's may differ frame to frame
        note = (
            f"; int8 frames {agreement_text(agreement)} on "
            f"{plural(sum(map(len, streams)), 'frame')} ({shown}) of "
            f"{args.calib or 'the bundled sample'}"
        )
    checked = "the fp32 graph it was quantised from: " if args.int8 else ""  # int8's is `note`
    print(
        f"sarn export: {kind} -> {args.output} (opset {args.opset}, dynamic H/W multiples of 4); "
        f"{checked}onnxruntime vs PyTorch max abs error {err:.2e} at {sizes}{note}"
    )
    return 0


def agreement_text(db: float) -> str:
    """The int8 frames against the fp32 graph's: 'inf dB' where they are the same."""
    return "identical to fp32 frames" if math.isinf(db) else f"vs fp32 frames {db:.1f} dB PSNR"


def export_int8(
    model: nn.Module, fp32: Path, out: Path, streams: list[list[np.ndarray]], opset: int
) -> float:
    """Quantize ``fp32`` into ``out`` with ranges from ``streams``; returns the PSNR (dB) of
    its frames against the fp32 graph's on those streams."""
    import onnx

    from .quantize import agreement_db, calibration_feeds, quantize

    out.parent.mkdir(parents=True, exist_ok=True)
    quantize(fp32, out, calibration_feeds(model, streams))
    proto = onnx.load(str(out))
    # the quantizer imports every domain onnxruntime knows
    used = {n.domain for n in proto.graph.node} | {""}
    kept = [o for o in proto.opset_import if o.domain in used]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    save_checked(proto, out, opset)
    return agreement_db(fp32, out, streams)
