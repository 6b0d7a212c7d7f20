"""A graph written by ``sarn export``, run by onnxruntime as the streaming engine's network.

Only the network call changes: the engine keeps the look-ahead, the previous outputs, the
recurrent state and the conversions, so a ``.onnx`` file gives the frames its checkpoint
gives (test_onnx_net). On the 2-core CPU onnxruntime ran the recurrent step about twice as
fast as PyTorch's eager fp32 (README, "Deployment"), with no compile to wait for: the choice
for CPUs without native bf16. fp32 only; onnxruntime's CPU provider.
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from .archs.recurrent_sarn_arch import check_state
from .archs.sarn_arch import SIZE_MULTIPLE, pad_to_multiple
from .checkpoint import CheckpointError, first_bytes, first_line, resolve_weights

RECURRENT_INPUTS = ["stack", "h", "c"]
SINGLE_INPUTS = ["frame"]
CHANNELS = {"frame": 3, "stack": 15}  # the state's are the model's own (64: sarn_recurrent)


def is_onnx(weights: object) -> bool:
    return isinstance(weights, str | Path) and str(weights).lower().endswith(".onnx")


def _session_source(path: Path) -> str | bytes:
    """The graph for onnxruntime: its path (weights kept in external data files are found
    beside it), or its bytes where the path is not UTF-8, which onnxruntime refuses
    ("incompatible constructor arguments")."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return path.read_bytes()
    return str(path)


class OnnxNet:
    """The callables the engine uses of a model (``step`` and ``init_state``, or a call per
    frame) over one onnxruntime session; tensors are CPU float32."""

    def __init__(self, path: str | Path) -> None:
        path = resolve_weights(path)  # refused as a checkpoint's path is
        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError(
                f"{path}: ONNX weights need onnxruntime, not among sarn_ros's ROS "
                "dependencies: python3 -m pip install --user onnxruntime"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the node's cpu_threads
        # worker threads sleep between frames instead of spinning: the same speed through the
        # node, 14 points of a core less at a 10 fps camera, 77 -> 63 % at 2 fps (int8 graph at
        # 320x240, docs/measurements.md), CPU left to the SLAM beside it
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                _session_source(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own error types, one per failure kind
            if looks_like_checkpoint(path):
                raise CheckpointError(  # as a graph named .pth is told to be named .onnx
                    f"cannot load {path} in onnxruntime: it looks like a PyTorch checkpoint "
                    f"(torch.save); name it {path.stem}.pth to run it"
                ) from None
            raise CheckpointError(f"cannot load {path} in onnxruntime: {first_line(exc)}") from None
        inputs = self.session.get_inputs()
        names = [i.name for i in inputs]
        if names not in (RECURRENT_INPUTS, SINGLE_INPUTS):
            raise CheckpointError(
                f"{path} is not a graph of `sarn export` (inputs {names}, expected "
                f"{RECURRENT_INPUTS} or {SINGLE_INPUTS})"
            )
        self.is_recurrent = names == RECURRENT_INPUTS
        if why := layout_fault(inputs):
            raise CheckpointError(f"{path} is not a graph of `sarn export`: {why}")
        self.state_channels = int(inputs[1].shape[1]) if self.is_recurrent else 0
        if why := output_fault(self.session.get_outputs(), self.state_channels):
            raise CheckpointError(f"{path} is not a graph of `sarn export`: {why}")

    def init_state(
        self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c) for frames of ``height`` x ``width``, as ``RecurrentSARN.init_state``."""
        shape = (
            batch,
            self.state_channels,
            -(-height // SIZE_MULTIPLE),
            -(-width // SIZE_MULTIPLE),
        )
        return torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)

    def step(
        self, stack: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, w = stack.shape[-2:]
        check_state(state, stack.shape[0], self.state_channels, h, w)
        feed = graph_inputs(stack, state)
        out, hid, cell = self.run(feed)
        check_frame(out, feed["stack"])
        for name, new, old in (("h", hid, state[0]), ("c", cell, state[1])):
            if tuple(new.shape) != tuple(old.shape):  # the engine's copy_ would broadcast it
                raise RuntimeError(
                    f"the graph returned {name} of shape {list(new.shape)} for a state of "
                    f"{list(old.shape)}: not a recurrent step of `sarn export`"
                )
        return torch.from_numpy(out)[..., :h, :w], (torch.from_numpy(hid), torch.from_numpy(cell))

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        feed = graph_inputs(frame)
        (out,) = self.run(feed)
        check_frame(out, feed["frame"])
        h, w = frame.shape[-2:]
        return torch.from_numpy(out)[..., :h, :w]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs; onnxruntime's errors (not RuntimeErrors) as a RuntimeError of
        one line, which the tools report as they report PyTorch's."""
        try:
            return self.session.run(None, feed)
        except Exception as exc:
            raise RuntimeError(f"onnxruntime: {first_line(exc)}") from exc


def looks_like_checkpoint(path: Path) -> bool:
    """Whether ``path`` is what torch.save writes: a pickle, or a zip holding one (a zip or
    a numpy .npz is not)."""
    first = first_bytes(path)
    if first != b"PK":
        return first[:1] == b"\x80"
    with contextlib.suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(path) as z:
        return any(n.endswith("/data.pkl") for n in z.namelist())
    return False


def check_frame(out: np.ndarray, fed: np.ndarray) -> None:
    """Refuse a frame of another size than the (padded) one fed: a graph with the export's
    layout that halves its frame failed every frame on a tensor-size mismatch deep in the
    engine, named nowhere."""
    want = [fed.shape[0], 3, *fed.shape[2:]]
    if list(out.shape) != want:
        raise RuntimeError(
            f"the graph returned a frame of shape {list(out.shape)} for {want}: not a graph "
            "of `sarn export`"
        )


def layout_fault(inputs: list) -> str | None:
    """Why a graph with this module's input names is still not one of ``sarn export``: another
    element type, rank or channel count, or a fixed frame size would fail at the first frame
    (with onnxruntime's traceback)."""
    for i in inputs:
        shape = list(i.shape)
        if i.type != "tensor(float)" or len(shape) != 4:
            return f"input {i.name} is a {i.type} of shape {shape}, expected float (N, C, H, W)"
        # c has the channels of h: the engine makes both of init_state's one size
        channels = CHANNELS.get(i.name, inputs[1].shape[1] if i.name == "c" else shape[1])
        if not isinstance(shape[1], int) or shape[1] != channels:
            return f"input {i.name} has {shape[1]!r} channels, expected {channels}"
        if any(isinstance(d, int) for d in shape[2:]):
            return f"input {i.name} is fixed at {shape[2]}x{shape[3]}: frames of any size are fed"
    return None


def output_fault(outputs: list, state_channels: int) -> str | None:
    """Why these outputs are not the frame (and the new h and c, with ``state_channels``, for a
    recurrent step) that the engine unpacks: a graph with the export's inputs and other outputs
    failed at the first frame with a ValueError of Python's tuple unpacking."""
    channels = [3, state_channels, state_channels] if state_channels else [3]
    if len(outputs) != len(channels):
        what = "the frame, h and c" if state_channels else "the frame"
        return f"{len(outputs)} outputs, expected {len(channels)} ({what})"
    for o, expected in zip(outputs, channels, strict=True):
        shape = list(o.shape)
        if o.type != "tensor(float)" or len(shape) != 4 or shape[1] != expected:
            want = f"float (N, {expected}, H, W)"
            return f"output {o.name} is a {o.type} of shape {shape}, expected {want}"
    return None


def graph_inputs(
    x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
) -> dict[str, np.ndarray]:
    """A graph's feed: the stack and state of a recurrent step, or the frame without a state,
    edge-padded to the size multiple, as float32 arrays (sharing the tensors' memory where they
    are already float32 and contiguous)."""
    padded = _array(pad_to_multiple(x)[0])
    if state is None:
        return {"frame": padded}
    return {"stack": padded, "h": _array(state[0]), "c": _array(state[1])}


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().contiguous().numpy()
