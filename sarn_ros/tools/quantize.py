"""`sarn export --int8`: the exported graph with 8-bit convolutions, for onnxruntime on a CPU.

Static QDQ quantization (onnxruntime.quantization): the convolution weights per output channel
as signed 8 bit, their inputs and outputs as unsigned 8 bit with ranges (min/max) measured on
calibration frames. Only convolutions are quantized: the deformable sampling and its GEMMs,
the attention's products and softmax and the ConvLSTM's gate nonlinearities stay fp32 (the
convolutions that feed them, attention's query/key/value and the ConvLSTM's gate conv, are int8
like the rest), and so do the full-resolution convolutions that read the frames and write the
output's detail (:data:`FP32_CONVS`): quantizing those too cost 0.22 dB on a real 720p GoPro
video for up to 1.2x more speed; kept fp32 the loss was 0.07 dB (docs/measurements.md, "int8
in onnxruntime"). Asymmetric uint8 activations, because onnxruntime's CPU kernels ran fast with
them here (signed symmetric ones ran slower than fp32); TensorRT takes only signed symmetric
int8, so a TensorRT engine is built from the fp32 graph (README, "Deployment").

The calibration stacks are the ones the streaming engine builds (previous outputs, look-ahead,
recurrent state), taken from a recording of the user's own camera or the bundled sample.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..archs import RecurrentSARN
from ..data.datasets import resize_by
from ..engine import MAX_GAP_S, StreamDeblurrer
from ..evaluation import deblur_sequence
from ..metrics import psnr
from ..offline import InputError
from ..onnx_net import graph_inputs
from ..recordings import read_streams
from .options import DEBAYER_DEFAULT

Feed = dict[str, np.ndarray]
# module paths (SARN and RecurrentSARN) of the convolutions left in fp32, see above
FP32_CONVS = ("encoder.inp.", "decoder.level1.", "decoder.out.")
CALIB_MAX_PIXELS = 640 * 480
# calibrated on 1x1 frames, the graph scored "identical to fp32" (3 pixels rounded to 8 bits)
# and lost 0.6 dB on the sample; on 32x24 frames it lost 0.07 dB
CALIB_MIN_SIDE = 16


def calibration_frames(
    source: Path | None,
    max_frames: int,
    height: int,
    width: int,
    topics: list[str] | None = None,
    debayer: str = DEBAYER_DEFAULT,
    max_gap_s: float = MAX_GAP_S,
) -> list[list[np.ndarray]]:
    """Each stream's first ``max_frames`` frames of ``source`` (an image folder, video or bag;
    None: the bundled sample), in the pieces they fall in (:func:`read_streams`),
    area-downscaled to fit ``height`` x ``width`` (the size the graph is exported for) and
    :data:`CALIB_MAX_PIXELS`: with onnxruntime's calibration session the 720p export took 14.3
    GB calibrated on 1280x720 frames, 5.4 GB on 739x416 ones, whose ranges served 720p as well
    (docs/measurements.md, "int8 in onnxruntime"); never below :data:`CALIB_MIN_SIDE` a side,
    and InputError for a frame under it: its few pixels set ranges that do not hold for a
    camera's frames."""
    if source is None:
        from .demo import load_sample

        rec, named = None, [("the bundled sample", load_sample()[0][:max_frames])]
    else:
        rec, named = read_streams(
            source, max_frames=max_frames, topics=topics, debayer=debayer, max_gap_s=max_gap_s
        )
    fit = []
    for name, frames in named:
        for frame in frames:
            if min(frame.shape[:2]) < CALIB_MIN_SIDE:
                h, w = frame.shape[:2]
                # of one camera (in pieces where its stamps broke off) nothing to pick
                cams = rec is not None and rec.kind == "bag" and len(rec.topics) > 1
                pick = "; --topics picks a bag's cameras" if cams else ""
                raise InputError(
                    f"{name}: a frame of {w}x{h} is too small to measure int8 ranges on: "
                    f"calibrate on frames of at least {CALIB_MIN_SIDE} px a side{pick}"
                )
        h, w = frames[0].shape[:2]
        scale = min(1.0, height / h, width / w, (CALIB_MAX_PIXELS / (h * w)) ** 0.5)
        # nor shrunk below it (a strip fitted to the width): the ranges hold at any size
        scale = min(1.0, max(scale, CALIB_MIN_SIDE / min(min(f.shape[:2]) for f in frames)))
        fit.append([resize_by(f, scale) for f in frames])
    return fit


def calibration_feeds(model: nn.Module, streams: list[list[np.ndarray]]) -> list[Feed]:
    """The graph's inputs as the engine feeds them while deblurring ``streams`` (look-ahead 2,
    state carried), recorded from the PyTorch model the graph was exported from."""
    feeds: list[Feed] = []
    recurrent = isinstance(model, RecurrentSARN)
    call: Callable[..., Any] = model.step if recurrent else model.forward

    def recording(x: torch.Tensor, *state: tuple[torch.Tensor, torch.Tensor]) -> Any:
        # copies: the engine updates its state tensors in place
        feeds.append({k: v.copy() for k, v in graph_inputs(x, *state).items()})
        return call(x, *state)

    setattr(model, "step" if recurrent else "forward", recording)  # this instance only
    try:
        engine = StreamDeblurrer(model, device="cpu", channels_last=False)
        for i, frames in enumerate(streams):
            deblur_sequence(engine, frames, f"calibration{i}")
    finally:
        delattr(model, "step" if recurrent else "forward")
    return feeds


def quantize(fp32: Path, out: Path, feeds: list[Feed]) -> None:
    """Write the int8 QDQ form of the graph ``fp32`` to ``out``, ranges from ``feeds``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> Feed | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # shapes inferred and constants folded, as onnxruntime's quantization guide asks; the
        # symbolic pass cannot follow the dynamic sizes and is not needed for Conv
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        kept = fp32_convs(prepared)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["Conv", "ConvTranspose"],
            nodes_to_exclude=kept,
        )  # min/max calibration reduces each tensor in the graph: little memory at any size


def fp32_convs(path: Path) -> list[str]:
    """Names of the nodes of :data:`FP32_CONVS` in the graph (found by their weights' names,
    which the exporter takes from the module paths)."""
    import onnx

    nodes = [
        n.name
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "Conv" and n.input[1].removeprefix("model.").startswith(FP32_CONVS)
    ]
    if not nodes:
        raise ValueError(f"none of the convolutions {FP32_CONVS} found in the exported graph")
    return nodes


def agreement_db(fp32: Path, int8: Path, streams: list[list[np.ndarray]]) -> float:
    """PSNR (dB) of the int8 graph's frames against the fp32 graph's, through the engine."""
    outputs = []
    for path in (fp32, int8):
        engine = StreamDeblurrer(path, device="cpu")
        outputs.append(
            [o for i, frames in enumerate(streams) for o in deblur_sequence(engine, frames, str(i))]
        )
    # each frame at its own peak: joined, numpy made an 8-bit camera's frames uint16, scored
    # against 65535 (48 dB too high beside a 16-bit one)
    ref, got = (np.concatenate([in_unit_range(o) for o in side]) for side in outputs)
    return psnr(got, ref, 1.0)


def in_unit_range(frame: np.ndarray) -> np.ndarray:
    """An 8- or 16-bit frame's values in [0, 1], flat."""
    return frame.reshape(-1) / (65535.0 if frame.dtype == np.uint16 else 255.0)
