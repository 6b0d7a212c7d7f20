"""Streaming deblurring engine: frames in, sharp frames out, recurrent state per stream.

Every front end (ROS node, ``sarn deblur``, evaluation, benchmarks) goes through
:class:`StreamDeblurrer`, so they all see the same look-ahead, substitutes and resets::

    engine = StreamDeblurrer("sarn_recurrent", device="auto", precision="fp32", future_frames=2)
    for frame, stamp in frames:                  # HxWx3 RGB or HxW / HxWx1 grey, uint8/uint16
        for out in engine.push(frame, stamp):    # outputs now ready, in order (maybe none)
            use(out.image, out.stamp)
    for out in engine.flush():                   # the look-ahead rest at the end of a stream
        use(out.image, out.stamp)

The model is an ``nn.Module``, a checkpoint path or packaged name, or a ``.onnx`` graph of
``sarn export``, whose network calls go to onnxruntime (:mod:`sarn_ros.onnx_net`).

Per stream the engine keeps the ConvLSTM state (h, c), the last two outputs (clamped to [0, 1],
fp32, on the device) and a look-ahead buffer of up to ``future_frames`` blurred frames that were
uploaded once, on arrival. A frame is deblurred when ``future_frames`` later frames have arrived
(latency in frames); missing neighbours at a segment's start and end are substituted by
:func:`sarn_ros.archs.fusion_inputs`, the same rule training uses.

A stream is reset (state and previous outputs dropped) when its resolution or pixel format
changes, a stamp goes backwards (an equal stamp is accepted), the gap to the previous stamp
exceeds ``max_gap_s`` (``None`` disables), or :meth:`reset` is called. Before a reset the old
segment's look-ahead is flushed, so no frame is lost: frames in == frames out, in order, with
their stamps. Outputs produced by :meth:`reset` or by setting :attr:`future_frames` (which
cannot return them) are queued and returned by the next ``push``/``push_many``/``flush``.

Several streams share one model copy. On CUDA :meth:`push_many` stacks the streams whose
frames are ready and of equal size into one batched forward pass (with their states), which
gives the same result as separate engines up to floating-point reordering. On a CPU it runs
them one at a time (``batch_streams=None``, the default): there a batch of 4 measured slower
per frame than 4 single passes (scripts/bench_streams.py; README, "Python API").

Precision: ``fp32``, ``bf16`` or ``fp16`` via ``torch.autocast``; state and previous outputs
stay fp32. ``fp16`` on CPU falls back to fp32 with a warning (CPU fp16 kernels are slow and
not what users expect of "fp16"; ask for ``bf16`` explicitly on CPUs that support it).
``device="auto"`` picks CUDA when available, else CPU; an explicit ``"cuda"`` without CUDA
raises RuntimeError. On CUDA frames go through a pinned host buffer with non-blocking copies
and the model runs channels-last on every device by default: on CPU it measured faster too
(default RecurrentSARN, 640x480 fp32, 2 cores: 2.41 s vs 2.87 s per frame with the grid_sample
deformable path, 3.36 s vs 3.96 s with torchvision's; ``sarn bench model --channels-last both``).

``torch_compile=True`` runs the network through ``torch.compile`` (inductor, static shapes): on
the 2-core CPU it measured 1.1-1.5x faster per frame in fp32 and 1.9-2.8x in bf16, with the same
output (docs/measurements.md, "torch.compile"), but the first frame of each new size (and
precision, or batch of streams) waits for a compile of tens of seconds. If compiling fails (no
C++ compiler, no Triton, an unsupported device), the engine logs one warning and runs eagerly;
:attr:`compiled` tells which one runs.

Diagnostics (:meth:`StreamDeblurrer.stats` returns them as a dict; the ROS node reads the
reset counts and the frames taken and lost):

- ``frames_in``, ``frames_out``: frames pushed / emitted since construction.
- ``frames_lost``: frames taken and never emitted: the look-ahead of a stream whose restart
  after a failure (``reset(..., reason="error")``) could not run the network.
- ``pending``: frames currently held in look-ahead buffers (all streams) or queued outputs.
- ``resets``: stream resets after the first frame, all reasons;
  ``resets_by_reason``: counts per ``resolution``, ``format``, ``backwards``, ``gap``,
  ``explicit``, ``future_frames``, ``error`` (a caller's restart after a failure);
  ``resets_by_stream``: the same counts per stream name (which camera restarted).
- ``forward_passes``: model calls (a batched call counts once).
- ``last_inference_ms``: wall time of the last forward pass incl. output download (ms).
- ``last_batch``: streams in the last forward pass.
- ``streams``: names of the streams that hold state.
- ``compiled``: the network runs through ``torch.compile`` (False when off or fallen back).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .archs import SARN, RecurrentSARN, fusion_inputs
from .archs.modules import check_deform_kernel, deform_path
from .checkpoint import load_model
from .onnx_net import OnnxNet, is_onnx

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# torch.uint16 came with torch 2.3; older ones (distribution and JetPack builds) carry 16-bit
# frames as int32, converted in numpy on the way in and out.
_TORCH_DTYPE = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.uint16): getattr(torch, "uint16", torch.int32),
}
RECOMPILE_LIMIT = 64  # compiled variants of the network per process (dynamo's default: 8)
MAX_GAP_S = 0.5  # stamps further apart restart a stream: a new scene (the node's default)
RESET_REASONS = ("resolution", "format", "backwards", "gap", "explicit", "future_frames", "error")


@dataclass
class DeblurredFrame:
    """One output frame: same shape and dtype as the pushed frame."""

    image: np.ndarray
    stamp: int
    stream: str
    meta: Any = None


@dataclass
class _Pending:
    slot: int  # index into the stream's frame ring
    stamp: int
    meta: Any
    squeeze: bool  # the pushed grey frame was HxW (not HxWx1)


@dataclass
class _Stream:
    """State of one stream's current segment; buffers are allocated once per segment format."""

    name: str
    fmt: tuple[int, int, int, np.dtype]  # H, W, channels (1 or 3), dtype
    frames: torch.Tensor  # (ring, 3, H, W) fp32 on device: look-ahead blurred frames
    prev: torch.Tensor  # (2, 3, H, W) fp32: previous outputs, clamped
    state: tuple[torch.Tensor, torch.Tensor] | None  # ConvLSTM (h, c), updated in place
    out_dev: torch.Tensor  # (H, W[, 3]) output in the frame dtype, on device
    host_in: torch.Tensor | None  # pinned staging buffer (CUDA only)
    dev_in: torch.Tensor | None  # raw frame on device (CUDA only)
    host_out: torch.Tensor | None  # pinned output buffer (CUDA only)
    upload_done: torch.cuda.Event | None
    pending: deque[_Pending] = field(default_factory=deque)
    n_prev: int = 0  # valid previous outputs (0..2); prev[1] is the newest
    counter: int = 0  # frames pushed into this segment (ring slot = counter % ring)
    last_stamp: int | None = None


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU; an explicit CUDA request without CUDA fails."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:  # torch's own message lists some twenty device types (a TypeError for None)
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):  # "meta" would wipe the model in place
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available here")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """Validate ``precision``; fp16 on CPU becomes fp32 (documented in the module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        log.warning("fp16 is not supported on CPU by sarn_ros; running fp32 (bf16 is available)")
        return "fp32"
    return precision


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively (x86 AVX512-BF16 or AMX, ARM BF16): there
    ``precision`` bf16 with ``torch_compile`` is the fast CPU setting, elsewhere the exported
    graph in onnxruntime (README, "Deployment"). Read from /proc/cpuinfo (Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


FASTER_ON_CPU = {  # README's speed tables, 2-core AMD EPYC; the node and sarn deblur cite them
    "bf16": "ran the network 2.7-3x faster than fp32 on a 2-core CPU (README, speed table)",
    "export": "ran up to 2x faster than fp32 PyTorch on a 2-core CPU, `sarn export --int8` "
    '1.2-1.4x faster again (README, "Deployment")',
}


def faster_cpu_setting(precision: str, compiled: bool, bf16_native: bool) -> str | None:
    """The fastest way to run PyTorch weights on this CPU when a slower one is in use, so the
    node and the tools can name it: "bf16" (bf16 with torch.compile, where the CPU computes
    bf16 natively) or "export" (the fp32 graph of `sarn export` in onnxruntime); None when the
    fastest is already in use."""
    if bf16_native:
        return None if precision == "bf16" and compiled else "bf16"
    return "export"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast to ``precision``, or no context for fp32: torch before 2.3 refuses a disabled
    CPU autocast whose dtype is not bf16."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


class CompiledCall:
    """``torch.compile(fn)`` that falls back to ``fn`` for good, with one warning, when compiling
    or the compiled call fails: a robot image without a C++ compiler or Triton, or an older
    PyTorch, still deblurs. A call that fails eagerly too (out of memory on a huge frame) is
    the network's failure, not the compiler's: it is raised and the compiled network kept."""

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        self.eager = fn
        self.label = label
        self.compiled: Callable[..., Any] | None = None
        try:
            # Each model, size, precision and batch adds an entry for the same code object;
            # past dynamo's default limit (8) the rest would run eagerly without a word.
            config = torch._dynamo.config
            name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
            self.compiled = torch.compile(fn, dynamic=False)
        except Exception as exc:  # e.g. a PyTorch whose dynamo does not support this Python
            self._fall_back(exc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # a compiler failure if the eager network still works
            result = self.eager(*args, **kwargs)
            self._fall_back(exc)
            return result

    def _fall_back(self, exc: Exception) -> None:
        first = str(exc).strip().splitlines()[:1]
        log.warning(
            "torch.compile of %s failed, running eagerly: %s%s",
            self.label,
            type(exc).__name__,
            f": {first[0][:200]}" if first else "",
        )
        self.compiled = None


def check_name(name: str) -> str:
    """A stream name is a str: 0 and "0" would be one stream in a self-ensemble, ``stats``
    could not sort mixed types, and None means every stream to ``reset`` and ``flush``."""
    if not isinstance(name, str):
        raise TypeError(f"stream names are str, got {name!r} ({type(name).__name__})")
    return name


def check_reason(reason: str) -> str:
    """A reset reason is one ``resets_by_reason`` counts."""
    if reason not in RESET_REASONS:
        raise ValueError(f"reset reason must be one of {RESET_REASONS}, got {reason!r}")
    return reason


def check_item(item: Any) -> tuple[Any, Any, Any, Any]:
    """An item of ``push_many``: a 3-tuple was Python's "not enough values to unpack", a
    dict's key "too many values" (a name is no item)."""
    if not isinstance(item, tuple | list) or len(item) != 4:
        what = (
            f"{len(item)}-{type(item).__name__}" if isinstance(item, tuple | list) else repr(item)
        )
        raise ValueError(f"push_many takes (stream, frame, stamp, meta) items, got a {what}")
    return tuple(item)


def check_stamp(stamp: int) -> int:
    """A stamp is whole nanoseconds (a numpy integer too): int() of time.time()'s seconds would
    keep whole seconds, under which a 5 s gap goes unseen and outputs carry another stamp."""
    if not isinstance(stamp, numbers.Integral) or isinstance(stamp, bool):
        raise TypeError(f"stamps are int nanoseconds, got {stamp!r} ({type(stamp).__name__})")
    return int(stamp)


def check_frame(frame: np.ndarray) -> None:
    """Raise ValueError if ``frame`` is not one :meth:`StreamDeblurrer.push` takes (HxW, HxWx1
    or HxWx3, uint8 or uint16), without copying it or giving it to any stream."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype not in _MAX_VALUE:  # a big-endian uint16 ('>u2') is named as such
        got = frame.dtype if frame.dtype.isnative else f"{frame.dtype} (byte-swapped)"
        raise ValueError(f"frame dtype must be uint8 or uint16 in native byte order, got {got}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3) or 0 in frame.shape:
        raise ValueError(f"frame must be HxW, HxWx1 or HxWx3, got shape {frame.shape}")


def names_the_cpu(device: str | torch.device) -> bool:
    """Whether ``device`` is the CPU, or auto: ``cpu:0`` and ``torch.device("cpu", 0)`` too."""
    try:
        return str(device) == "auto" or torch.device(device).type == "cpu"
    except RuntimeError:  # not a device name: not the CPU
        return False


def onnx_refusal(device: str | torch.device, precision: str, torch_compile: bool) -> str | None:
    """Why an ONNX graph cannot run with these settings (None where it can): the engine's
    check, made up front by tools that start the engine later, in a node."""
    if not names_the_cpu(device):
        try:
            with suppress(RuntimeError):  # CUDA missing here: the reason below
                resolve_device(device)
        except ValueError as exc:  # no device at all ('CPU', 'gpu'): said so first
            return str(exc)
        return f"an ONNX graph runs on the CPU (onnxruntime), not {device!r}"
    if torch_compile:
        return "torch_compile does not apply to an ONNX graph (onnxruntime)"
    if precision != "fp32":
        return f"an ONNX graph runs in fp32 (onnxruntime), not {precision!r}"
    return None


def stamp_break(before: int | None, stamp: int, max_gap_s: float | None) -> str | None:
    """Why a stream restarts between these stamps (ns): "backwards", "gap" (further apart than
    ``max_gap_s``; None or 0: never), or None where it goes on. The engine's rule, which the
    node's intake and the recordings training and eval read follow as well."""
    if before is None:
        return None
    if stamp < before:
        return "backwards"
    # in seconds: 2.01 * 1e9 is 2009999999.9999998 ns, and stamps exactly 2.01 s apart were
    # a gap; a whole ns over is more than an ulp at any max_gap_s the node takes (<= 3600)
    return "gap" if max_gap_s and (stamp - before) / 1e9 > max_gap_s else None


class StreamDeblurrer:
    """Deblur one or several frame streams with one model copy (see the module docstring).
    A module given as ``model`` is that copy, not a copy of it: moved to ``device``, put in
    eval mode and channels-last, as loaded weights are (deepcopy it to train on meanwhile)."""

    def __init__(
        self,
        model: nn.Module | str | Path = "sarn_recurrent",
        device: str = "auto",
        precision: str = "fp32",
        future_frames: int = 2,
        max_gap_s: float | None = MAX_GAP_S,
        channels_last: bool | None = None,
        batch_streams: bool | None = None,
        torch_compile: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module | str | os.PathLike):  # None: pathlib's TypeError
            raise TypeError(
                "model is an nn.Module, a weights path or a packaged name, got "
                f"{type(model).__name__}"
            )
        self.onnx = is_onnx(model)
        if self.onnx:
            if why := onnx_refusal(device, "fp32", torch_compile):  # precision: its setter
                raise ValueError(why)
            device = "cpu"
        self.device = resolve_device(device)
        self.precision = precision  # checked by its setter
        self.model: nn.Module | OnnxNet
        if self.onnx:
            self.model_name = str(model)
            self.model = OnnxNet(Path(str(model)))
            self.deform_path = "onnxruntime"
            self.is_recurrent = self.model.is_recurrent
            self.channels_last = False
        else:
            if isinstance(model, nn.Module):
                name = getattr(model, "meta", {}).get("name", type(model).__name__)
                self.model_name = str(name)
            else:
                self.model_name = str(model)
                model = load_model(model, device="cpu")
            if not isinstance(model, SARN | RecurrentSARN):
                raise TypeError(
                    f"expected a SARN or RecurrentSARN model, got {type(model).__name__}"
                )
            dtypes = {p.dtype for p in model.parameters()}
            if dtypes != {torch.float32}:  # precision is the engine's (autocast), state is fp32
                raise ValueError(
                    f"the model's parameters must be float32 (model.float()), got "
                    f"{sorted(map(str, dtypes))}; pick precision='bf16' or 'fp16' instead"
                )
            self.model = model.to(self.device).eval()
            check_deform_kernel(self.device)
            self.deform_path = deform_path(self.model, self.device)  # reported by the node
            self.is_recurrent = isinstance(model, RecurrentSARN)
            # channels-last measured faster on CPU as well (module docstring); None = on.
            self.channels_last = True if channels_last is None else channels_last
            if self.channels_last:
                self.model.to(memory_format=torch.channels_last)
        self.max_gap_s = max_gap_s  # checked by its setter
        # batching equal-sized streams pays on GPUs, not on CPUs (module docstring); None = auto;
        # an exported graph takes one frame at a time
        auto = self.device.type != "cpu"
        self.batch_streams = not self.onnx and (auto if batch_streams is None else batch_streams)
        net = self.model.step if self.is_recurrent else self.model
        self._net: Callable[..., Any] = CompiledCall(net, self.model_name) if torch_compile else net
        self._pinned = self.device.type == "cuda"
        self._lock = threading.RLock()
        self._streams: dict[str, _Stream] = {}
        self._queued: list[DeblurredFrame] = []
        self._future_frames = 0
        self.future_frames = future_frames
        self.frames_in = 0
        self.frames_out = 0
        self.frames_lost = 0
        self.forward_passes = 0
        self.last_inference_ms = 0.0
        self.last_batch = 0
        self.resets_by_reason = dict.fromkeys(RESET_REASONS, 0)
        self.resets_by_stream: dict[str, dict[str, int]] = {}

    # ----------------------------------------------------------------- properties / diagnostics
    @property
    def future_frames(self) -> int:
        """Look-ahead in frames (0..2); always 0 for a single-image model."""
        return self._future_frames

    @future_frames.setter
    def future_frames(self, value: int) -> None:
        # 1.7 is not a frame count, nor is 1.0 (True neither)
        if (
            not isinstance(value, numbers.Integral)
            or isinstance(value, bool)
            or value not in (0, 1, 2)
        ):
            raise ValueError(f"future_frames must be 0, 1 or 2, got {value!r}")
        value = int(value)
        if not self.is_recurrent:
            value = 0  # a single-image model has no use for future frames
        with self._lock:
            if value == self._future_frames:
                return
            for name in list(self._streams):
                self._end_segment(name, "future_frames", self._queued)
            self._future_frames = value

    @property
    def precision(self) -> str:
        """fp32, fp16 or bf16; may change between calls (checked as at construction)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if self.onnx and (why := onnx_refusal("cpu", value, False)):
            raise ValueError(why)
        self._precision = resolve_precision(value, self.device)

    @property
    def max_gap_s(self) -> float | None:
        """Stamp gap (s) that restarts a stream; None (or 0, as the node's parameter) disables."""
        return self._max_gap_s

    @max_gap_s.setter
    def max_gap_s(self, value: float | None) -> None:
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)  # "0.5", True
        if value is not None and not (number and 0 <= value < math.inf):  # nan: off unseen
            raise ValueError(f"max_gap_s must be a number, finite and >= 0, or None, got {value!r}")
        self._max_gap_s = float(value) if value else None

    @property
    def compiled(self) -> bool:
        """The network runs through ``torch.compile`` (off, or fallen back to eager: False)."""
        return isinstance(self._net, CompiledCall) and self._net.compiled is not None

    @property
    def resets(self) -> int:
        return sum(self.resets_by_reason.values())

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics (names documented in the module docstring)."""
        with self._lock:
            return {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "frames_lost": self.frames_lost,
                "pending": sum(len(s.pending) for s in self._streams.values()) + len(self._queued),
                "resets": self.resets,
                "resets_by_reason": dict(self.resets_by_reason),
                "resets_by_stream": {n: dict(c) for n, c in self.resets_by_stream.items()},
                "forward_passes": self.forward_passes,
                "last_inference_ms": self.last_inference_ms,
                "last_batch": self.last_batch,
                "streams": sorted(self._streams),
                "compiled": self.compiled,
            }

    # ----------------------------------------------------------------------------- public API
    def push(
        self, frame: np.ndarray, stamp: int, stream: str = "default", meta: Any = None
    ) -> list[DeblurredFrame]:
        """Add one frame; returns the outputs that are now ready (maybe none)."""
        return self.push_many([(stream, frame, stamp, meta)])

    def push_many(self, items: Sequence[tuple[str, np.ndarray, int, Any]]) -> list[DeblurredFrame]:
        """Add frames of several streams (stream, frame, stamp, meta); ready frames of equal
        size go through one batched forward pass (``batch_streams``). Frames of the same stream
        are taken in order.

        Returns every output now ready, of any stream (each carries ``stream``), with those
        queued by earlier calls. Raises ValueError or TypeError, before accepting any of
        ``items``, if a frame is not HxW, HxWx1 or HxWx3 uint8/uint16, a name not a str or a
        stamp not int nanoseconds. If the network fails, the outputs made so far come with the
        next call. Frames are taken in rounds of one per stream, each round only once the
        resets and look-ahead drains it needs have run: a failure in those takes none of the
        round (``stats()["frames_in"]`` before and after tells how many were taken). A stream
        whose network calls keep failing is restarted by ``reset(stream, reason="error")``.
        """
        checked = [
            (check_name(name), *self._check_frame(frame), check_stamp(stamp), meta)
            for name, frame, stamp, meta in map(check_item, items)
        ]
        with self._lock:
            out, self._queued = self._queued, []
            rounds: list[list[tuple]] = []
            for item in checked:  # at most one frame per stream in each batched round
                for rnd in rounds:
                    if all(it[0] != item[0] for it in rnd):
                        rnd.append(item)
                        break
                else:
                    rounds.append([item])
            try:
                for rnd in rounds:
                    # every network call and allocation before any frame is taken: a failure
                    # takes none of the round's frames (a self-ensemble's members stay in step)
                    plans = [self._prepare(it[0], it[2], it[4], out) for it in rnd]
                    touched = [self._accept(*it, *p) for it, p in zip(rnd, plans, strict=True)]
                    while ready := [s for s in touched if len(s.pending) > self._future_frames]:
                        self._run(ready, out)
            except Exception:
                self._queued = out  # not lost: returned by the next call
                raise
            self.frames_out += len(out)
            return out

    def flush(self, stream: str | None = None) -> list[DeblurredFrame]:
        """Emit every frame still in the look-ahead (of ``stream``, or all streams), using the
        substitutes for the missing future frames, after the outputs queued for them. The
        recurrent state is kept, so a stream may continue afterwards (its next frames just had
        no look-ahead at the flush point); ``reset(stream)`` frees it."""
        if stream is not None:
            check_name(stream)
        with self._lock:
            if stream is None:
                out, self._queued = self._queued, []
            else:  # another stream's outputs are not this caller's: they wait for theirs
                out = [o for o in self._queued if o.stream == stream]
                self._queued = [o for o in self._queued if o.stream != stream]
            try:
                for name in [stream] if stream is not None else list(self._streams):
                    s = self._streams.get(name)
                    while s is not None and s.pending:
                        self._run([s], out)
            except Exception:  # not lost: returned by the next call, as the other streams'
                self._queued = out + self._queued  # outputs set aside above
                raise
            self.frames_out += len(out)
            return out

    def reset(self, stream: str | None = None, reason: str = "explicit") -> None:
        """Start ``stream`` (or all streams) afresh and free its state. Its look-ahead is
        flushed first; those outputs are returned by the next push/push_many/flush call (at
        the end of a stream, call ``flush``, which returns them). ``reason`` is what
        ``resets_by_reason`` counts (a caller that detects gaps itself passes "gap").

        With ``reason="error"`` (a restart after a failure) it does not fail: where the
        network still fails on the pending frames (the look-ahead, or at future_frames 0 the
        frame whose pass failed), they are dropped (``frames_lost``) and
        the stream starts afresh all the same. With another reason such a failure is raised
        and the stream kept, so that the call may be repeated."""
        check_reason(reason)
        if stream is not None:
            check_name(stream)
        with self._lock:
            for name in [stream] if stream is not None else list(self._streams):
                if name not in self._streams:
                    continue
                if reason != "error":
                    self._end_segment(name, reason, self._queued)
                    continue
                try:
                    self._end_segment(name, reason, self._queued)
                except Exception as exc:  # the same failure again: end it without the network
                    lost = len(self._streams[name].pending)
                    self.frames_lost += lost
                    self._drop(name, reason)
                    log.warning(
                        "stream %s restarted after an error; %d pending frame(s) dropped: %s",
                        name,
                        lost,
                        f"{type(exc).__name__}: {exc}",
                    )

    # ------------------------------------------------------------------------------ internals
    def _end_segment(self, name: str, reason: str, out: list[DeblurredFrame]) -> None:
        """Emit the stream's waiting frames into ``out`` as they come, then drop the stream:
        if a forward pass fails, the outputs made so far and the stream itself remain."""
        s = self._streams[name]
        while s.pending:
            self._run([s], out)
        self._drop(name, reason)

    def _drop(self, name: str, reason: str) -> None:
        """Forget the stream, its look-ahead already emitted; a reset counted for ``reason``."""
        del self._streams[name]
        self._count_reset(name, reason)

    def _count_reset(self, name: str, reason: str) -> None:
        """Count a reset of stream ``name`` for ``reason``: in all, and per stream so that a
        node can say which of its cameras restarted."""
        self.resets_by_reason[reason] += 1
        self.resets_by_stream.setdefault(name, dict.fromkeys(RESET_REASONS, 0))[reason] += 1

    @staticmethod
    def _check_frame(
        frame: np.ndarray,
    ) -> tuple[np.ndarray, tuple[int, int, int, np.dtype], bool]:
        """Validate (:func:`check_frame`); returns the frame as HxWxC, copied where torch
        could not view it, its format and whether it was HxW."""
        check_frame(frame)
        squeeze = frame.ndim == 2
        if squeeze:
            frame = frame[:, :, None]
        # torch views neither negative strides nor ones that split an element (a uint16 image
        # with an odd row step in bytes, legal in a ROS Image)
        if any(st < 0 or st % frame.itemsize for st in frame.strides):
            frame = frame.copy()  # not ascontiguousarray: a flipped size-1 axis stays negative
        h, w, c = frame.shape
        return frame, (h, w, c, frame.dtype), squeeze

    def _prepare(
        self, name: str, fmt: tuple[int, int, int, np.dtype], stamp: int, out: list[DeblurredFrame]
    ) -> tuple[str | None, _Stream | None]:
        """Why a frame of ``fmt`` at ``stamp`` resets its stream (None: it continues) and the
        new segment's buffers where it starts one, after emitting into ``out`` what the stream
        must finish first: its whole look-ahead before a reset, else the oldest frame of a
        look-ahead a failed call left full (whose slot the frame would take, deblurred under
        the older frame's stamp). Takes nothing."""
        s = self._streams.get(name)
        if s is None:
            return None, self._new_stream(name, fmt)
        if fmt[:2] != s.fmt[:2]:
            reason = "resolution"
        elif fmt != s.fmt:
            reason = "format"
        else:
            reason = stamp_break(s.last_stamp, stamp, self.max_gap_s)
        while len(s.pending) > (0 if reason else self._future_frames):
            self._run([s], out)
        return reason, self._new_stream(name, fmt) if reason else None

    def _accept(
        self,
        name: str,
        frame: np.ndarray,
        fmt: tuple[int, int, int, np.dtype],
        squeeze: bool,
        stamp: int,
        meta: Any,
        reason: str | None,
        fresh: _Stream | None,
    ) -> _Stream:
        """Take the frame as :meth:`_prepare` decided: start the ``fresh`` segment (a reset for
        ``reason`` where one ends), upload the frame once."""
        if reason is not None:
            self._drop(name, reason)
        if fresh is not None:
            self._streams[name] = fresh
        s = self._streams[name]
        slot = s.counter % s.frames.shape[0]
        self._upload(s, frame, slot)
        s.pending.append(_Pending(slot, stamp, meta, squeeze))
        s.counter += 1
        s.last_stamp = stamp
        self.frames_in += 1
        return s

    def _new_stream(self, name: str, fmt: tuple[int, int, int, np.dtype]) -> _Stream:
        h, w, c, dtype = fmt
        dev = self.device
        ring = self._future_frames + 1
        tdtype = _TORCH_DTYPE[dtype]
        out_shape = (h, w) if c == 1 else (h, w, 3)
        with torch.inference_mode():
            state = (
                self.model.init_state(1, h, w, dev, torch.float32) if self.is_recurrent else None
            )
            return _Stream(
                name=name,
                fmt=fmt,
                frames=torch.empty((ring, 3, h, w), device=dev),
                prev=torch.empty((2, 3, h, w), device=dev),
                state=state,
                out_dev=torch.empty(out_shape, dtype=tdtype, device=dev),
                host_in=torch.empty((h, w, c), dtype=tdtype, pin_memory=True)
                if self._pinned
                else None,
                dev_in=torch.empty((h, w, c), dtype=tdtype, device=dev) if self._pinned else None,
                host_out=torch.empty(out_shape, dtype=tdtype, pin_memory=True)
                if self._pinned
                else None,
                upload_done=torch.cuda.Event() if self._pinned else None,
            )

    def _upload(self, s: _Stream, frame: np.ndarray, slot: int) -> None:
        """Frame (H, W, C) integer -> s.frames[slot] as (3, H, W) float in [0, 1]."""
        with warnings.catch_warnings():
            # Zero-copy views of ROS message buffers are read-only; this tensor is only read.
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            if _TORCH_DTYPE[frame.dtype] == torch.int32:
                frame = frame.astype(np.int32)
            src = torch.from_numpy(frame)
        with torch.inference_mode():
            if self._pinned:
                assert s.host_in is not None and s.dev_in is not None and s.upload_done
                s.upload_done.synchronize()  # the previous async copy has left host_in
                s.host_in.copy_(src)
                s.dev_in.copy_(s.host_in, non_blocking=True)
                # on the copy's stream: with device cuda:N the current device may be another
                s.upload_done.record(torch.cuda.current_stream(self.device))
                src = s.dev_in
            dst = s.frames[slot]
            dst.copy_(src.permute(2, 0, 1))  # a grey (1, H, W) broadcasts to 3 channels
            dst.mul_(1.0 / _MAX_VALUE[s.fmt[3]])

    def _run(self, streams: list[_Stream], out: list[DeblurredFrame]) -> None:
        """Deblur the oldest pending frame of each stream into ``out``; with ``batch_streams``,
        equal-sized ones in one batch. Each group's outputs are in ``out`` as soon as they are
        made, so a later group's failure loses none of them."""
        groups: dict[object, list[_Stream]] = {}
        for s in streams:
            groups.setdefault(s.fmt[:2] if self.batch_streams else s.name, []).append(s)
        for group in groups.values():
            out += self._forward(group)

    def _forward(self, group: list[_Stream]) -> list[DeblurredFrame]:
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast(self.device, self.precision):
            stacks = []
            for s in group:
                cur = s.frames[s.pending[0].slot : s.pending[0].slot + 1]
                if not self.is_recurrent:
                    stacks.append(cur)
                    continue
                future = [s.frames[p.slot : p.slot + 1] for p in list(s.pending)[1:3]]
                previous = [s.prev[i : i + 1] for i in range(2 - s.n_prev, 2)]
                stacks.append(fusion_inputs(previous, cur, future))
            x = stacks[0] if len(stacks) == 1 else torch.cat(stacks)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.is_recurrent:
                states = [s.state for s in group]
                if len(group) == 1:
                    state = states[0]
                else:
                    state = (
                        torch.cat([st[0] for st in states]),
                        torch.cat([st[1] for st in states]),
                    )
                y, (hid, cell) = self._net(x, state)
                for i, s in enumerate(group):
                    s.state[0].copy_(hid[i : i + 1])
                    s.state[1].copy_(cell[i : i + 1])
            else:
                y = self._net(x)
        results: list[DeblurredFrame] = []
        with torch.inference_mode():
            for i, s in enumerate(group):
                # Shift the previous-output pair in place; prev[1] becomes this output.
                s.prev[0].copy_(s.prev[1])
                s.prev[1].copy_(y[i])
                s.prev[1].clamp_(0.0, 1.0)
                s.n_prev = min(s.n_prev + 1, 2)
                p = s.pending.popleft()
                results.append(
                    DeblurredFrame(self._download(s, p.squeeze), p.stamp, s.name, p.meta)
                )
        self.forward_passes += 1
        self.last_batch = len(group)
        self.last_inference_ms = (time.perf_counter() - t0) * 1e3
        return results

    def _download(self, s: _Stream, squeeze: bool) -> np.ndarray:
        """s.prev[1] (clamped fp32 RGB) -> a new array in the pushed frame's shape and dtype."""
        img = s.prev[1]
        img = img.mean(0) if s.fmt[2] == 1 else img.permute(1, 2, 0)  # grey back: channel mean
        s.out_dev.copy_(img.mul(_MAX_VALUE[s.fmt[3]]).round_())
        host = s.out_dev
        if s.host_out is not None:
            s.host_out.copy_(s.out_dev, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            host = s.host_out
        arr = np.array(host.numpy(), dtype=s.fmt[3])  # one copy, int32 -> uint16 on torch < 2.3
        return arr if s.fmt[2] == 3 or squeeze else arr[:, :, None]
