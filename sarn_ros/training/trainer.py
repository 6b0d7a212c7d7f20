"""Training loop for SARN and RecurrentSARN: resumable, time-boxed, DDP-ready.

Recurrent training is truncated BPTT over short clips through ``RecurrentSARN.forward``, which
builds every 5-frame stack with :func:`sarn_ros.archs.fusion_inputs`, the rule the streaming
engine uses. ``future_frames`` is drawn from {0, 1, 2} per step, so one set of weights serves
every look-ahead setting of the engine and the node, and each clip comes with that many
blurred frames after it, as look-ahead only: its last frames then see real future frames, as
they do mid-stream in the engine, not the end-of-stream substitutes.

Checkpoints (``<run-dir>/last.pt``: model, optimiser, scheduler, step, RNG states) are written
atomically every few minutes, after each validation and at the end, so a run can be cut at any
time (a 10-minute GPU command, a session ending) and continued with ``--resume``. Ctrl-C or
SIGTERM (as torchrun and job schedulers send) stops at the next step boundary (in a
validation, at once) and checkpoints; a second Ctrl-C aborts at once. The best validation model
is exported in the project's checkpoint format to ``<run-dir>/best.pth``, and the current one to
``<run-dir>/latest.pth`` with each checkpoint, so either can go straight to ``sarn eval``.
With ``ema_decay`` set, an exponential moving average of the weights (BasicSR's
``ema_decay``) is what gets validated and exported: it follows the same run but averages out
the step-to-step noise of small batches.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import pickle
import platform
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..archs import SARN, RecurrentSARN, RecurrentSARNConfig, SARNConfig
from ..archs.modules import check_deform_kernel
from ..archs.recurrent_sarn_arch import CURRENT, FUSED_FRAMES, FUTURE_FRAMES
from ..checkpoint import (
    CUT_SHORT,
    NOT_TORCH,
    CheckpointError,
    cut_short,
    damaged_member,
    first_bytes,
    load_model,
    not_torch_file,
    read_checkpoint,
    save_checkpoint,
    torch_load_error,
)
from ..data.datasets import ClipSampler, Sequence
from ..engine import PRECISIONS, CompiledCall
from ..image_files import keep_owner, kernel_path


class ValidationStopped(Exception):
    """A stop (Ctrl-C, SIGTERM) came during a validation: left unfinished, its figure unmade
    (a full-size held-out set takes minutes on a CPU, and the stop waited it out). Raised by
    the stop's handler itself: waiting for the sequence outlasted torchrun's 30 s."""


class TrainingDiverged(RuntimeError):
    """The weights are no longer finite: saving them would overwrite good checkpoints."""


@dataclass
class TrainConfig:
    arch: str = "recurrent"  # recurrent | single
    steps: int = 20000  # length of the cosine schedule
    batch: int = 4
    clip_len: int = 4
    max_stride: int = 1  # clips of every k-th frame, k <= max_stride (lower camera frame rates)
    crop: int = 96
    lr: float = 4e-4
    min_lr: float = 1e-5
    warmup: int = 200
    loss: str = "charbonnier"  # charbonnier | l1 (pixel term)
    fft_weight: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # 0: validate/export the raw weights; e.g. 0.999: their EMA
    seed: int = 0
    ckpt_minutes: float = 5.0
    val_minutes: float = 10.0
    max_minutes: float | None = None
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: autocast dtype, see amp_dtype()
    prefetch: bool | None = None  # draw batches on a background thread; None: on CUDA only
    torch_compile: bool = False  # torch.compile forward and backward (compiles per look-ahead)
    model: dict[str, Any] = field(default_factory=dict)  # architecture overrides
    init: str | None = None  # checkpoint to fine-tune from (its architecture wins)
    data_summary: list[str] = field(default_factory=list)
    val_summary: str = ""  # what validation measures, for the exported metadata


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


PIXEL_LOSSES = {"charbonnier": charbonnier, "l1": F.l1_loss}


def fft_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between amplitude-and-phase spectra: rewards restoring high frequencies."""
    return (
        (torch.fft.rfft2(x.float(), norm="ortho") - torch.fft.rfft2(y.float(), norm="ortho"))
        .abs()
        .mean()
    )


def same_set(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two validations ran on one set: the blurred input's PSNR identifies it, within
    what float32 sums in another order give (a CUDA run resumed on a CPU: some 1e-6 dB)."""
    return abs(a["input_psnr"] - b["input_psnr"]) <= 1e-4


def against(m: dict[str, float]) -> str:
    """What a validation figure is compared with and was measured at: the input's PSNR, and
    the look-ahead (a `sarn eval --future-frames 0` row is not the one to compare)."""
    ahead = f", look-ahead {m['future_frames']}" if "future_frames" in m else ""
    return f"input {m['input_psnr']:.2f} dB{ahead}"


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = F.mse_loss(x.clamp(0, 1), y).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Carry the first conv across single-image (3) and recurrent (15) inputs.

    15 -> 3 sums the five frame slots: at a stream's start every slot holds the current frame,
    so the single model starts as the recurrent one on a first frame. 3 -> 15 puts the kernel
    in the current-frame slot and zeros the others, so the recurrent model starts by ignoring
    its neighbours and computing exactly what the single model did.
    """
    have = weight.shape[1]
    if have == 3 and in_channels == 3 * FUSED_FRAMES:
        out = weight.new_zeros(weight.shape[0], in_channels, *weight.shape[2:])
        out[:, CURRENT] = weight
        return out
    if in_channels == 3 and have == 3 * FUSED_FRAMES:
        return weight.unflatten(1, (FUSED_FRAMES, 3)).sum(1)
    raise ValueError(f"cannot adapt a {have}-channel input conv to {in_channels}")


def build_training_model(cfg: TrainConfig) -> nn.Module:
    """A fresh model of ``cfg.arch`` (with ``cfg.model`` overrides), or the checkpoint
    ``cfg.init`` to fine-tune. Either architecture can start from the other's weights: the
    encoder-decoder parameters are shared by name, the input conv is adapted
    (:func:`adapt_input_conv`), and a recurrent model made from single-image weights starts
    with a zero LSTM projection, so its first output equals the single model's."""
    model_cls, cfg_cls = (
        (RecurrentSARN, RecurrentSARNConfig) if cfg.arch == "recurrent" else (SARN, SARNConfig)
    )
    if cfg.init is None:
        model = model_cls(cfg_cls(**cfg.model))
        # Zero residual head: a fresh model starts as the identity (output = input frame)
        # instead of adding a random residual it must first unlearn.
        nn.init.zeros_(model.decoder.out.weight)
        nn.init.zeros_(model.decoder.out.bias)
        return model
    # whole and sound in its own architecture first, as load_model takes it: a file missing a
    # tensor, or of another config, loaded 74 or 9 of 75 tensors here and trained on the rest
    source = load_model(cfg.init)
    init_cfg = source.cfg.to_dict()
    arch_cfg = {k: v for k, v in init_cfg.items() if k in cfg_cls.__dataclass_fields__}
    # cfg.model for what the weights have no say in (a single model's LSTM, made recurrent)
    arch_cfg |= {
        k: v
        for k, v in cfg.model.items()
        if k not in init_cfg and k in cfg_cls.__dataclass_fields__
    }
    model = model_cls(cfg_cls(**arch_cfg))
    own = model.state_dict()
    given = source.state_dict()
    inp = "encoder.inp.weight"
    if inp in given and given[inp].shape[1] != own[inp].shape[1]:
        given[inp] = adapt_input_conv(given[inp], own[inp].shape[1])
    usable = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{cfg.init}: no parameter fits a {model_cls.__name__}")
    model.load_state_dict(usable, strict=False)
    if isinstance(model, RecurrentSARN) and "lstm_out.weight" not in usable:
        nn.init.zeros_(model.lstm_out.weight)
        nn.init.zeros_(model.lstm_out.bias)
    return model


# What torch.load raises for an empty, cut-short or foreign file (KeyError: 101 for garbage)
# OSError: "[Errno 22] Invalid argument" from torch's zip reader on some cut-short files
UNREADABLE = (RuntimeError, EOFError, KeyError, ValueError, OSError, pickle.UnpicklingError)
TRAINING_STATE_KEYS = (
    *("model", "opt", "sched", "scaler", "step", "best", "history"),
    *("torch_rng", "np_rng", "config"),
)


def unreadable(exc: Exception, path: Path) -> RuntimeError:
    """The error for a last.pt torch.load could not read (its first line, or what an empty
    message means; a text file's "KeyError: 105" named as no file torch.save writes)."""
    if not_torch_file(first_bytes(path)):
        why = NOT_TORCH
    else:
        why = CUT_SHORT if cut_short(path) else torch_load_error(exc)
    return RuntimeError(f"not a readable training checkpoint ({why})")


def above_bar(line: str) -> None:
    """``line`` on stdout above tqdm's progress bar: printed, a SIGTERM's or a validation's
    line landed inside the bar's, which then went on on the line below."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(line, flush=True)
    else:
        tqdm.write(line)


def load_training_state(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A ``last.pt`` as :meth:`Trainer.state` wrote it; RuntimeError naming the fault for an
    empty, cut-short or foreign file."""
    if (member := damaged_member(path)) is not None:  # torch.load would resume from it
        raise RuntimeError(f"a damaged training checkpoint ({member} does not match its checksum)")
    try:
        st = torch.load(path, map_location=device, weights_only=True)
    except UNREADABLE as exc:
        raise unreadable(exc, path) from exc
    missing = [k for k in TRAINING_STATE_KEYS if not isinstance(st, dict) or k not in st]
    if missing:
        raise RuntimeError(f"not a training checkpoint (no {', '.join(missing)})")
    return st


def trained_steps(run_dir: Path) -> int:
    """The steps the run in ``run_dir`` has trained: 0 without a ``last.pt``; RuntimeError for
    one that cannot be read (a new run would overwrite the run's files unsaid)."""
    return run_progress(run_dir)[0]


def run_progress(run_dir: Path) -> tuple[int, int]:
    """The step the run in ``run_dir`` is at and the steps of its schedule, from its
    ``last.pt`` ((0, 0) without one), as :func:`trained_steps`."""
    path = Path(run_dir) / "last.pt"
    if not path.exists():
        return 0, 0
    try:  # mmap: the step without reading the weights and optimiser state
        # str: torch < 2.2 takes mmap only with a file name, and says so as a ValueError, which
        # would read as an unreadable file
        st = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except UNREADABLE as exc:
        raise unreadable(exc, path) from exc
    if not isinstance(st, dict):
        return 0, 0
    config = st.get("config")
    steps = config.get("steps", 0) if isinstance(config, dict) else 0
    return int(st.get("step", 0)), int(steps or 0)


def export_weights(src: str | Path, dst: str | Path, half: bool = True) -> dict[str, Any]:
    """Copy a project checkpoint for shipping, weights stored as fp16 to halve the file (the
    loader copies them into fp32 parameters, so inference is unchanged up to fp16 rounding).
    Returns its metadata."""
    ckpt = read_checkpoint(src)
    if half:
        ckpt["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()
        }
        ckpt["meta"] = dict(ckpt.get("meta") or {}, storage="fp16")  # meta is optional
    dst = kernel_path(dst)  # `new/../w.pth`: no `new` made
    if dst.is_dir():  # the rename below failed on it, leaving the .tmp file
        raise OSError(f"{dst} is a folder: name the weights file to write")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    try:
        torch.save(ckpt, tmp)
        keep_owner(dst, tmp)  # a 0600 file written over stays 0600
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return ckpt.get("meta") or {}


TRAIN_PRECISIONS = ("auto", *PRECISIONS)


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32).

    ``auto`` is mixed precision on CUDA (bf16 where supported, no loss scaling; else fp16) and
    fp32 on a CPU. bf16 on a CPU is opt-in: CPU autocast runs the convolutions in bf16 through
    oneDNN, which is faster only on CPUs with native bf16 instructions (AVX512-BF16, AMX).
    """
    if precision not in TRAIN_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: one of {', '.join(TRAIN_PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return None
        try:
            bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 counts native bf16 (compute capability 8+) only
            bf16 = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    if precision == "fp16" and not cuda:
        raise ValueError("fp16 training needs CUDA; on a CPU use bf16 or fp32")
    return None if precision == "fp32" else PRECISIONS[precision]


Batch = tuple[torch.Tensor, torch.Tensor, int]  # blurred, sharp, future_frames


def clip_frames(arch: str, clip_len: int) -> tuple[int, int]:
    """(frames deblurred and supervised, look-ahead frames read after them) per training
    clip: a recurrent clip comes with up to FUTURE_FRAMES blurred frames after it, a
    single-image model trains on one frame."""
    return (clip_len, FUTURE_FRAMES) if arch == "recurrent" else (1, 0)


class Prefetcher:
    """Draws the next batches on a background thread while the accelerator trains on the
    current one: reading crops from memory-mapped sequences and converting them to float costs
    about as much as a GPU step, and would otherwise leave the GPU idle in between.

    Each batch comes with the state of the generator right after it was drawn, so a checkpoint
    records the batches actually trained on, not those queued ahead, and a resumed run draws the
    same batches as an uninterrupted one.
    """

    def __init__(
        self, draw: Callable[[], Batch], rng: np.random.Generator, depth: int = 2, pin: bool = False
    ) -> None:
        self._draw, self._rng, self._pin = draw, rng, pin
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                blurred, sharp, future = self._draw()
                if self._pin:
                    blurred, sharp = blurred.pin_memory(), sharp.pin_memory()
                self._put((blurred, sharp, future, self._rng.bit_generator.state))
        except BaseException as exc:  # re-raised in the training thread by get()
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return

    def get(self) -> tuple[Batch, dict[str, Any]]:
        """The next batch and the generator state after it."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        *batch, state = item
        return tuple(batch), state  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Trainer:
    """One training run: model, optimiser, schedule and sampler, with every piece of state
    needed to continue it bit-for-bit after an interruption."""

    def __init__(
        self,
        cfg: TrainConfig,
        train: list[Sequence],
        val: list[Sequence],
        run_dir: Path,
        started: float | None = None,
    ) -> None:
        """``started``: the ``time.monotonic()`` that ``max_minutes`` counts from (the
        command's start, so its data loading counts too); by default now."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.started = time.monotonic() if started is None else started
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        if cfg.device == "auto":
            cfg.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.world > 1:
            dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
            if cfg.device.startswith("cuda"):
                cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                torch.cuda.set_device(cfg.device)
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: pick the fastest kernels
        if cfg.loss not in PIXEL_LOSSES:
            raise ValueError(f"unknown loss {cfg.loss!r}: one of {', '.join(PIXEL_LOSSES)}")
        torch.manual_seed(cfg.seed)
        self.model = build_training_model(cfg).to(self.device)
        # the architecture as built, not as typed: the weights' train_config read {channels: 8}
        # for a new run and every field for the same run resumed (taken from its latest.pth)
        cfg.model = asdict(self.model.cfg)
        check_deform_kernel(self.device)
        self.model.train()
        self.net: nn.Module = (
            nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        )
        # The training call; weights, optimiser and checkpoints stay on self.model either way.
        self.forward = (
            CompiledCall(self.net, "the training model") if cfg.torch_compile else self.net
        )
        self.ema: nn.Module | None = None
        if cfg.ema_decay > 0:
            self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
            # Tensors paired once: state_dict tensors share the parameters' storage and loading
            # a checkpoint copies into them, so the lists stay valid for the whole run.
            ema_sd, own_sd = self.ema.state_dict(), self.model.state_dict()
            avg = [k for k, v in ema_sd.items() if v.is_floating_point()]
            self._ema_avg = ([ema_sd[k] for k in avg], [own_sd[k] for k in avg])
            self._ema_copy = [(ema_sd[k], own_sd[k]) for k in ema_sd if k not in avg]
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.step_lr = cfg.lr  # the rate the last step trained at, shown beside its loss
        supervised, lookahead = clip_frames(cfg.arch, cfg.clip_len)
        self.sampler = ClipSampler(train, supervised, cfg.crop, cfg.max_stride, lookahead)
        self.rng = np.random.default_rng(cfg.seed + 1000 * self.rank)
        self.val = val
        self.prefetcher: Prefetcher | None = None
        self._drawn_rng_state: dict[str, Any] | None = None  # self.rng after the last batch used
        self.step = 0
        self._stop = False  # set by SIGINT/SIGTERM during run()
        self._doing = "step"  # what a stop waits for: said by the signal's line
        # DDP: a non-finite loss here, or weights rank 0 found non-finite when saving, for the
        # next step's collective check: a rank that raised alone left the others waiting in
        # their next all_reduce (a hang of the backend's timeout, 30 min under gloo)
        self._suspect_loss = self._bad_weights = False
        self.best = -math.inf
        self.history: list[dict[str, float]] = []
        # the steps validated whose weights best.pth does not hold (moved away to ship it, an
        # older copy brought back): the run said it held the best of them, and a resumed
        # validation below that never wrote it
        self.lost_steps: set[int] = set()
        self.lost_best: dict[str, float] | None = None  # their best, for the resume's note
        self.best_file_error = ""  # why a best.pth there could not be read
        self._validated_step: int | None = None  # the step last validated
        self.resumed_steps: int | None = None  # --steps of the run resumed
        self.resumed_config: dict[str, Any] = {}  # its settings until the resume
        self.amp_dtype = amp_dtype(cfg.precision, self.device)
        fp16 = self.amp_dtype == torch.float16
        if hasattr(torch.amp, "GradScaler"):
            self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        else:  # torch < 2.3 (distribution and JetPack builds)
            self.scaler = torch.cuda.amp.GradScaler(enabled=fp16)
        self.writer: Any = None
        self.sample_image: torch.Tensor | None = None
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._open_writer()

    def _open_writer(self, purge_step: int | None = None) -> None:
        """TensorBoard's writer (None without tensorboard); ``purge_step`` hides what an earlier
        process logged after it, so a run resumed from an older checkpoint draws one curve."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge_step)

    def _lr_factor(self, step: int) -> float:
        c = self.cfg
        if step < c.warmup:
            return (step + 1) / c.warmup
        t = min((step - c.warmup) / max(c.steps - c.warmup, 1), 1.0)
        floor = min(c.min_lr / c.lr, 1.0)  # an --lr below min_lr stays there: it rose to it
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": self.best,
            "history": self.history,
            "lost_steps": sorted(self.lost_steps),  # what the run last said best.pth held
            "torch_rng": torch.get_rng_state(),
            "np_rng": self._drawn_rng_state
            if self.prefetcher is not None
            else self.rng.bit_generator.state,
            "config": asdict(self.cfg),
        }

    def save(self, in_loop: bool = False) -> None:
        """Write latest.pth and last.pt (rank 0). ``in_loop``: between steps, where under DDP
        non-finite weights are raised on every rank at the next step, not here alone."""
        if self.rank != 0:
            return
        # The step loop checks the weights only after a non-finite loss; they can also go NaN
        # in a step whose loss was finite (an infinite gradient).
        if self._bad_weights or not self._finite_weights():  # or their output (validated)
            if in_loop and self.world > 1:  # the other ranks stop with it at the next step
                self._bad_weights = True
                return
            raise self._diverged(f"by step {self.step}")
        last = self.history[-1] if self.history else None
        # figures from an earlier step would describe other weights. latest.pth goes first: a
        # --resume takes the run's architecture from it, so a last.pt must never be without it
        self._export("latest.pth", last if last and last.get("step") == self.step else None)
        tmp = self.run_dir / "last.pt.tmp"
        torch.save(self.state(), tmp)
        tmp.replace(self.run_dir / "last.pt")

    def resume(self, keep_steps: bool = False) -> bool:
        """Continue the run in ``run_dir`` from last.pt; ``keep_steps``: on its own schedule's
        length (no --steps given), not this config's."""
        path = self.run_dir / "last.pt"
        if not path.exists():
            return False
        st = load_training_state(path, self.device)
        self.model.load_state_dict(st["model"])
        if self.ema is not None:  # a run that had no EMA yet starts it from its weights
            self.ema.load_state_dict(st["ema"] if st.get("ema") is not None else st["model"])
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        # --lr is not used on a resume: the floor of the schedule and the metadata follow the
        # run's learning rate, which the schedule's state holds
        self.cfg.lr = self.sched.base_lrs[0]
        self.cfg.seed = st["config"]["seed"]  # its batch stream goes on, drawn from the run's
        self.cfg.warmup = st["config"]["warmup"]  # a warm-up again would be a jump in the lr
        self.resumed_steps = int(st["config"]["steps"])  # the schedule's length until now
        self.resumed_config = dict(st["config"])  # the settings the run trained with so far
        if keep_steps:
            self.cfg.steps = self.resumed_steps
        # the next step's rate on this run's schedule: the optimiser saved the old schedule's,
        # which for a run lengthened by --steps is its floor, or a step further down its curve
        for group, base in zip(self.opt.param_groups, self.sched.base_lrs, strict=True):
            group["lr"] = base * self._lr_factor(self.sched.last_epoch)
        self.sched._last_lr = [group["lr"] for group in self.opt.param_groups]  # as step() sets
        if st["scaler"]:  # empty from a run without loss scaling: the new scaler starts fresh
            self.scaler.load_state_dict(st["scaler"])
        self.step, self.best, self.history = st["step"], st["best"], list(st["history"])
        self.lost_steps = set(st.get("lost_steps", []))
        if self.history and self.history[-1]["step"] == self.step:
            self._validated_step = self.step  # a finished run resumed: not validated again
        if self.writer is not None:  # this step was logged before its checkpoint: keep it
            self.writer.close()
            self._open_writer(purge_step=self.step + 1)
        torch.set_rng_state(st["torch_rng"].cpu())
        if self.rank == 0:
            self.rng.bit_generator.state = st["np_rng"]
        else:  # the checkpoint holds rank 0's stream: restoring it everywhere would give every
            # DDP rank the same crops from here on (the batch of one rank, world-size times)
            self.rng = np.random.default_rng([self.cfg.seed, self.rank, self.step])
        if self.cfg.init is None:  # a resumed fine-tune still records what it started from
            self.cfg.init = st["config"].get("init")
        if self.cfg.init is None and any(m["step"] == 0 for m in self.history):
            self._forget_random_best()
        if not self.val:  # not validated now: latest.pth's figures, from the run, name its set
            self.cfg.val_summary = st["config"].get("val_summary", "")
        self._check_best_file()
        return True

    def _check_best_file(self) -> None:
        """Hold the validations to the best.pth there is, by the step and figure its metadata
        records: the one it holds is the bar (an older copy brought back too); gone, or other
        weights, none is, and the next validation writes it anew."""
        validated = {int(m["step"]) for m in self.history}
        if not validated:
            return
        held = None
        try:
            meta = read_checkpoint(self.run_dir / "best.pth").get("meta") or {}
            held = (meta.get("steps"), (meta.get("validation") or {}).get("val_psnr"))
        except CheckpointError as exc:  # gone, or damaged: said so, then written anew
            self.best_file_error = str(exc)
        match = next((m for m in self.history if (m["step"], m["val_psnr"]) == held), None)
        if match is None:
            self.lost_best = self.best_validation()  # what the run said best.pth held
            self.lost_steps, self.best = validated, -math.inf
            return
        self.lost_steps = validated - {int(match["step"])}
        best = self.best_validation()  # None where it holds a step of an earlier set
        self.best = best["val_psnr"] if best else -math.inf

    def _forget_random_best(self) -> None:
        """A --steps 0 run from scratch validated its random weights, and sarn_ros before
        2026-12-06 exported them as best.pth: as the bar to beat, they kept every trained
        step out of it, and an --export shipped them. Removed with the figures they beat
        (whose weights were never exported); else the bar is the best trained step."""
        stale = self.run_dir / "best.pth"
        with contextlib.suppress(CheckpointError):
            if stale.exists() and (read_checkpoint(stale).get("meta") or {}).get("steps") == 0:
                if self.rank == 0:
                    stale.unlink()
                self.history, self.best = [], -math.inf
                self._validated_step = None  # a finished run validates its last step again
                return
        best = self.best_validation()
        self.best = best["val_psnr"] if best else -math.inf

    # ------------------------------------------------------------------ training
    def train_step(self, blurred: torch.Tensor, sharp: torch.Tensor, future_frames: int) -> float:
        # non_blocking: a prefetched batch is in pinned memory, so the copy overlaps the GPU
        blurred = blurred.to(self.device, non_blocking=True)
        sharp = sharp.to(self.device, non_blocking=True)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            if self.cfg.arch == "recurrent":
                # frames past the ground truth are look-ahead only, as in the engine
                out, _ = self.forward(blurred, future_frames, n_out=sharp.shape[1])
            else:
                out = self.forward(blurred[:, 0]).unsqueeze(1)
            loss = PIXEL_LOSSES[self.cfg.loss](out.float(), sharp)
            if self.cfg.fft_weight:
                loss = loss + self.cfg.fft_weight * fft_loss(out.flatten(0, 1), sharp.flatten(0, 1))
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step_lr = self.opt.param_groups[0]["lr"]  # before sched.step() sets the next one
        self.sched.step()
        self.step += 1
        self._update_ema()
        return float(loss.item())

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- d * ema + (1 - d) * weights, with d ramped up over the first steps of the run
        (as in timm / TensorFlow) so an early average does not keep its starting point."""
        if self.ema is None:
            return
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(*self._ema_avg, 1 - d)
        for e, o in self._ema_copy:  # integer buffers (counters) are copied, not averaged
            e.copy_(o)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and exported: the EMA when enabled."""
        return self.ema if self.ema is not None else self.model

    def draw_batch(self) -> Batch:
        """A look-ahead from {0, 1, 2} and a fresh random batch with that many blurred frames
        after each clip, from the checkpointed generator."""
        future = int(self.rng.integers(0, self.sampler.lookahead + 1))
        blurred, sharp = self.sampler.sample(self.rng, self.cfg.batch, extra=future)
        return blurred, sharp, future

    def train_one(self) -> float:
        """One step on the next batch (prefetched during :meth:`run` where enabled); all
        randomness comes from the checkpointed generators, so a resumed run repeats the same
        batches."""
        if self.prefetcher is not None:
            batch, self._drawn_rng_state = self.prefetcher.get()
        else:
            batch = self.draw_batch()
        return self.train_step(*batch)

    @contextlib.contextmanager
    def _prefetching(self):
        """Run :meth:`train_one` from a :class:`Prefetcher` (by default on CUDA only: on a
        CPU the thread would take cores from the step itself); afterwards the generator is
        rewound to the last batch used, as if nothing had been drawn ahead."""
        on = self.cfg.prefetch if self.cfg.prefetch is not None else self.device.type == "cuda"
        if not on:
            yield
            return
        self._drawn_rng_state = self.rng.bit_generator.state
        self.prefetcher = Prefetcher(self.draw_batch, self.rng, pin=self.device.type == "cuda")
        try:
            yield
        finally:
            self.prefetcher.close()
            self.prefetcher = None
            self.rng.bit_generator.state = self._drawn_rng_state

    def _val_tensors(self, seq: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """A held-out sequence's blurred and sharp frames as (1, T, 3, H, W) in [0, 1]."""
        b, g = (
            torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
            for frames in (seq.blurred, seq.sharp)
        )
        return b.to(self.device), g.to(self.device)

    def input_psnr(self) -> float:
        """The blurred input's mean PSNR on the held-out set, as :meth:`validate` gives it: what
        tells two validation sets apart (:func:`same_set`) without running the model."""
        values = []
        for seq in self.val:  # a sequence at a time, as validate holds them
            b, g = self._val_tensors(seq)
            values += [psnr(b[:, t], g[:, t]) for t in range(g.shape[1])]
        return float(np.mean(values))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR over the held-out sequences, model vs blurred input; the recurrent model at
        look-ahead 2 (the node's default), recorded: `sarn eval` scores 0, 1 and 2."""
        model = self.eval_model
        model.eval()
        model_psnr, input_psnr = [], []
        try:
            self._doing = "validation"  # within the try: a stop from here on ends it
            for seq in self.val:
                if self._stop:  # a sequence at a time: a stop need not wait for the rest
                    raise ValidationStopped
                b, g = self._val_tensors(seq)
                if self.cfg.arch == "recurrent":
                    out, _ = model(b, 2)
                else:
                    out = torch.stack([model(b[:, t]) for t in range(b.shape[1])], 1)
                out = (out.clamp(0, 1) * 255).round() / 255  # as published: 8-bit
                model_psnr += [psnr(out[:, t], g[:, t]) for t in range(g.shape[1])]
                if not input_psnr:  # first sequence, middle frame: blurred | output | sharp
                    mid = g.shape[1] // 2
                    image = torch.cat([b[0, mid], out[0, mid], g[0, mid]], dim=2)
                    self.sample_image = image.cpu()
                input_psnr += [psnr(b[:, t], g[:, t]) for t in range(g.shape[1])]
        finally:
            self._doing = "step"
            self.model.train()
        m = {"val_psnr": float(np.mean(model_psnr)), "input_psnr": float(np.mean(input_psnr))}
        return m | ({"future_frames": 2} if self.cfg.arch == "recurrent" else {})

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return str(self.device)

    def _export(self, name: str, metrics: dict[str, float] | None) -> None:
        """The validated/exported weights as a project checkpoint, with the run's provenance
        and the given validation figures."""
        meta = {
            "name": f"sarn_{self.cfg.arch}",
            "steps": self.step,
            "train_config": {
                k: v
                for k, v in asdict(self.cfg).items()
                if k not in ("data_summary", "val_summary")
            },
            "data": self.cfg.data_summary,
            "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, {self.device_name()}"
            + (f" x{self.world}" if self.world > 1 else ""),
        }
        if metrics is not None:
            meta["validation"] = dict(metrics, set=self.cfg.val_summary)
        save_checkpoint(self.eval_model, self.run_dir / name, meta=meta)

    @contextlib.contextmanager
    def _stop_on_signal(self, log):
        """SIGINT/SIGTERM set ``_stop`` instead of killing the step half-way, so the run ends
        with a checkpoint; handlers are restored afterwards (and only the main thread can
        install them)."""
        self._stop = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, _frame) -> None:
            doing = {
                "step": "after this step",
                "validation": "now, in the validation (it changes no weights)",
                "closing": "once the last checkpoint is written: the run is done",
            }[self._doing]
            log(f"{signal.Signals(signum).name}: stopping {doing} (again to abort)")
            self._stop = True
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if self._doing == "validation":
                # left at once, not after its sequence: one validated on a CPU can outlast
                # the 30 s torchrun gives its ranks before it kills them, checkpoint unsaved
                raise ValidationStopped

        old = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    @property
    def interrupted(self) -> bool:
        """Whether the last :meth:`run` stopped on SIGINT/SIGTERM (its checkpoint saved)."""
        return bool(self._stop)

    def run(self, log: Callable[[str], object] | None = None) -> None:
        """Train to ``cfg.steps`` (or a stop); ``log`` takes each line for the user, by default
        written above the progress bar."""
        if log is None:
            log = above_bar
        if self.rank != 0:  # torchrun signals every rank; rank 0 speaks for the run
            log = lambda *_: None  # noqa: E731
        with self._stop_on_signal(log), self._prefetching():
            self._run(log)

    def _run(self, log) -> None:
        cfg = self.cfg
        last_ckpt = last_val = time.monotonic()
        # what the last step, validation and checkpoint took: a run under max_minutes stops
        # while there is still time for a step and its closing validation and checkpoint
        step_s = val_s = save_s = 0.0
        resumed_at = self.step
        losses: list[float] = []
        try:
            from tqdm import tqdm

            bar = tqdm(
                total=cfg.steps, initial=self.step, disable=self.rank != 0, dynamic_ncols=True
            )
        except ImportError:
            bar = None
        if self.step == 0 and cfg.init is not None and self.val and self.rank == 0:
            # the starting weights are the bar to beat: best.pth holds them until a step
            # validates above them, so a fine-tune that only made them worse leaves them
            with contextlib.suppress(ValidationStopped):  # the loop's head ends the run
                self._validate_and_export(log)
        while self.step < cfg.steps:
            try:
                if self._should_stop(step_s + (val_s if self.val else 0.0) + save_s):
                    break
            except TrainingDiverged:
                if bar is not None:
                    bar.close()
                raise
            began = time.monotonic()
            loss = self.train_one()
            step_s = time.monotonic() - began
            if not math.isfinite(loss):
                if self.world > 1:
                    self._suspect_loss = True  # checked by every rank at the next step
                elif not self._finite_weights():
                    if bar is not None:
                        bar.close()
                    raise self._diverged(f"at step {self.step} (loss {loss})")
            losses.append(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{self.step_lr:.1e}")
            # 10 steps of this process: the first point after a resume would average fewer
            full = len(losses) >= 10
            if self.step % 10 == 0 and full and (self.writer is not None or self.world > 1):
                loss_10 = self._mean_over_ranks(float(np.mean(losses[-10:])))  # on every rank
                if self.writer is not None:
                    self.writer.add_scalar("train/loss", loss_10, self.step)
                    self.writer.add_scalar("train/lr", self.step_lr, self.step)
            now = time.monotonic()
            if self.val and self.rank == 0 and now - last_val > cfg.val_minutes * 60:
                if self.world > 1 and not self._finite_weights():
                    self._bad_weights = True  # every rank stops at the next step, unvalidated
                    continue
                try:
                    self._validate_and_export(log)
                except ValidationStopped:
                    continue  # the loop's head ends the run, on every rank together
                except TrainingDiverged:
                    if bar is not None:
                        bar.close()
                    raise
                val_s = time.monotonic() - now
                # a checkpoint with it: resumed from an older one, the run would not know the
                # best it exported and a worse validation could overwrite best.pth
                self.save(in_loop=True)
                last_val = last_ckpt = time.monotonic()
                save_s = last_ckpt - now - val_s
            if now - last_ckpt > cfg.ckpt_minutes * 60:
                self.save(in_loop=True)
                last_ckpt = time.monotonic()
                save_s = last_ckpt - now
        if bar is not None:
            bar.close()
        if self.world > 1:  # after the last step too: neither validated nor raised by rank 0 alone
            self._raise_if_diverged(*self._on_any_rank(self._suspect_loss, self._bad_weights))
        if self._stop:
            self.save()
            log(f"interrupted at step {self.step}: checkpoint saved, continue with --resume")
            return
        validated = self.val and self.rank == 0 and self._validated_step != self.step
        if validated:
            try:
                self._validate_and_export(log)
            except ValidationStopped:
                self.save()
                log(  # before the last step (--max-minutes): a resume trains on
                    f"interrupted in the validation of step {self.step}: checkpoint saved, "
                    + (
                        "--resume validates it"
                        if self.step >= cfg.steps
                        else "continue with --resume"
                    )
                )
                return
        # resumed at the end of its schedule, unchanged, and no step taken
        finished = (
            self.step == resumed_at and self.step >= cfg.steps and self.resumed_steps == cfg.steps
        )
        if self.step >= cfg.steps:
            if self._stop:  # it came in the closing validation's last sequence, run whole
                log(f"step {self.step} was validated whole: the run is done")
            self._doing = "closing"
        if not finished or validated:
            # a resume of a run that had finished its schedule leaves its files as they are:
            # saved again, they recorded this command's options as the last leg's
            self.save()
        if self._doing == "closing":
            self._stop = False  # one now came with the work done: not an interrupted run
        if self.step < cfg.steps and cfg.max_minutes is not None:  # time was up
            log(
                f"--max-minutes {cfg.max_minutes:g} reached at step {self.step} of {cfg.steps}: "
                "checkpoint saved, continue with --resume"
            )

    def close(self) -> None:
        """Flush TensorBoard and leave the process group (torchrun) together. Rank 0 validates
        and saves after the last step; a rank that left before it was done could fail on its
        way out (a SIGABRT at exit, seen twice in CI-like runs, cause unconfirmed), and then
        torchrun kills rank 0 in the middle of writing the final checkpoint. The barrier is a
        mitigation: the others wait for rank 0 as the next step's all_reduce does after a
        mid-run validation (within the backend's timeout: gloo 30 min, NCCL 10 min). A rank
        gone first (a stop's SIGTERM reached it in this barrier, or a kill) fails the others'
        barrier: their files are written by then, and gloo's "Connection reset by peer"
        traceback after the stop's line said nothing more."""
        if self.writer is not None:
            self.writer.close()
        if self.world > 1 and dist.is_initialized():
            with contextlib.suppress(RuntimeError):  # DistBackendError is one
                if self.device.type == "cuda":
                    dist.barrier(device_ids=[self.device.index])
                else:
                    dist.barrier()
                dist.destroy_process_group()

    def _diverged(self, when: str, what: str = "the weights") -> TrainingDiverged:
        return TrainingDiverged(
            f"{what} became NaN or infinite {when}: nothing after the last checkpoint "
            "was saved; lower --lr (or check the data) and start anew or --resume"
        )

    def _finite_weights(self) -> bool:
        """Whether the weights are still numbers. A non-finite loss alone is not divergence:
        fp16's loss scaler skips the step of an overflowed batch."""
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _mean_over_ranks(self, value: float) -> float:
        """``value`` averaged over the DDP ranks (each rank's own batches), as the gradients
        are: rank 0's alone is a world-size times smaller sample. Every rank must call it."""
        if self.world == 1:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.item() / self.world

    def best_validation(self) -> dict[str, float] | None:
        """The figures of the weights in best.pth: the best validation on the run's current
        set (the earliest of equals, as exported), not on one it was resumed away from, nor
        of the random weights before a first step (not exported), nor of those in a best.pth
        gone when the run was resumed."""
        current: list[dict[str, float]] = []
        untrained = self.cfg.init is None
        kept = (m for m in self.history if m["step"] not in self.lost_steps)
        for m in (m for m in kept if m["step"] > 0 or not untrained):
            if current and not same_set(current[-1], m):
                current = []  # validated on another set from here on
            current.append(m)
        return max(current, key=lambda m: m["val_psnr"]) if current else None

    def _should_stop(self, reserve_s: float) -> bool:
        """``--max-minutes`` would be passed within ``reserve_s``, or a stop signal; under DDP
        every rank stops at the same step, and raises TrainingDiverged together where the
        last step's loss was not finite on some rank and the weights (alike on every rank)
        are not, or rank 0 found them so when saving."""
        up = (
            self.cfg.max_minutes is not None
            and time.monotonic() - self.started + reserve_s > self.cfg.max_minutes * 60
        )
        if self.world > 1:
            up, self._stop, suspect, bad = self._on_any_rank(
                up, self._stop, self._suspect_loss, self._bad_weights
            )
            self._raise_if_diverged(suspect, bad)
        return up or self._stop

    def _on_any_rank(self, *flags: bool) -> list[bool]:
        """Each flag, true where it is on some DDP rank (one all_reduce; every rank calls)."""
        reduced = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
        return [bool(f) for f in reduced.tolist()]

    def _raise_if_diverged(self, suspect: bool, bad: bool) -> None:
        """TrainingDiverged on every rank alike: a non-finite loss on some rank (``suspect``)
        with weights that are not finite (the same on every rank), or rank 0 found so."""
        self._suspect_loss = False
        if bad or (suspect and not self._finite_weights()):
            raise self._diverged(f"by step {self.step}")

    def _validate_and_export(self, log) -> None:
        m = self.validate()
        if not math.isfinite(m["val_psnr"]):
            # finite weights whose activations overflow (lr far too high): the next step's loss
            # makes them NaN too; saved, latest.pth deblurred to NaN and was resumed from
            when, what = (
                f"at step {self.step} (validation PSNR {m['val_psnr']})",
                "the model's output",
            )
            if self.world > 1:  # the other ranks stop with it at the next step (or save), their
                log(f"{what} became NaN or infinite {when}")  # error naming the weights
                self._bad_weights = True
                return
            raise self._diverged(when, what)
        m["step"] = self.step
        self._validated_step = self.step
        if self.history and not same_set(self.history[-1], m):
            self.best = -math.inf  # resumed with another validation set: old best not comparable
            log(
                "the validation set differs from the run's last one (input "
                f"{self.history[-1]['input_psnr']:.2f} dB, now {m['input_psnr']:.2f} dB): "
                "best.pth is chosen anew on this one"
            )
        self.history.append(m)
        log(f"step {self.step}: val PSNR {m['val_psnr']:.2f} dB ({against(m)})")
        if self.writer is not None:
            self.writer.add_scalar("val/psnr", m["val_psnr"], self.step)
            self.writer.add_scalar("val/gain_db", m["val_psnr"] - m["input_psnr"], self.step)
            if self.sample_image is not None:
                self.writer.add_image("val/blurred_output_sharp", self.sample_image, self.step)
            self.writer.flush()
        if self.step == 0 and self.cfg.init is None:  # random weights: an --export of best
            return  # shipped them, said as the best validation
        if m["val_psnr"] > self.best:
            self.best = m["val_psnr"]
            self._export("best.pth", m)
