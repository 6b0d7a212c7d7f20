"""`sarn bench model`: network speed, memory and FLOPs per variant, resolution and device.

One row per (variant, resolution, precision, deform impl, layout, mode). Each row runs the
network as the engine does (one recurrent ``step`` per frame with the state carried, inference
mode, autocast for bf16/fp16; with ``--torch-compile`` through the engine's ``CompiledCall``,
compiled during the warm-up) on random input, and reports:

- ms/frame: median of ``--iters`` timed frames after ``--warmup`` frames. CUDA timings use
  CUDA events with a synchronize, so queued kernels are counted.
- peak memory: on CUDA the rise of ``max_memory_allocated`` during the timed frames over what
  was allocated before them (weights, state, the input), i.e. a frame's working memory; on CPU
  the growth of the process RSS over the value just before the timed frames (sampled every
  2 ms from /proc/self/statm after ``malloc_trim``), so it is a lower bound of the true peak.
- GFLOPs per frame: ``torch.utils.flop_counter.FlopCounterMode`` over one frame, counted on a
  grid_sample copy of the model because torchvision's ``deform_conv2d`` is invisible to the
  counter (the grid_sample path expresses the same multiply-adds as a matmul). Convolutions,
  transposed convolutions, matmuls and attention are counted (2 FLOPs per multiply-add);
  bilinear sampling, activations and additions are not (a few percent).
- % of peak: achieved FLOP/s over the device's peak. CPU peak is an estimate: threads used
  (at most the CPUs the process may run on) x clock (the fastest core's current "cpu MHz" in
  /proc/cpuinfo at the time: frequency scaling moves it between runs, and boost can push a row
  past 100 %) x fp32 FLOPs per cycle per core from the ISA flags (see
  ``cpu_flops_per_cycle``). CUDA peaks come from a table of dense datasheet figures; fp32 uses
  the TF32 figure when cuDNN's TF32 is on (PyTorch's default for convs).

A variant may also be a ``.onnx`` graph of ``sarn export`` (fp32, or ``--int8``): one row per
size, the step run by onnxruntime on the CPU as the node runs it (``OnnxNet``, the same state
carried), whatever the PyTorch settings; its parameters and FLOPs are not counted (n/a).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..archs import SARN, RecurrentSARN
from ..archs.modules import DEFORM_IMPLS, deform_path
from ..checkpoint import first_line
from ..engine import CompiledCall, autocast, resolve_device, resolve_precision
from ..image_files import kernel_path
from ..onnx_net import OnnxNet, is_onnx
from ..ros.image_conversion import MAX_SIDE  # --sizes: the largest side the node deblurs
from .options import (
    Gathered,
    check_json_output,
    file_arg,
    how_stopped,
    plural,
    ranged,
    say_json_kept,
    stops_as_interrupts,
    stops_held,
)

VARIANTS: dict[str, tuple[type[nn.Module], dict]] = {
    "single": (SARN, {}),
    "recurrent": (RecurrentSARN, {}),
    "recurrent-no-attention": (RecurrentSARN, {"attention": False}),
    "recurrent-3drm": (RecurrentSARN, {"num_drm": 3}),
    "recurrent-0drm": (RecurrentSARN, {"num_drm": 0}),
}
DEFAULT_VARIANTS = "single,recurrent,recurrent-no-attention,recurrent-0drm"

# Dense datasheet peaks in TFLOP/s: (fp32, tf32, bf16/fp16 tensor cores). Matched as whole words
# of the device name, first match wins (so "L4" is not an L40's, nor "A100" an RTX A1000's).
CUDA_PEAKS_TFLOPS: dict[str, tuple[float, float, float]] = {
    "H200": (67.0, 494.7, 989.4),
    "H100 SXM": (67.0, 494.7, 989.4),
    "H100 NVL": (60.0, 417.5, 835.0),
    "H100 PCIe": (51.2, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.4),
    "A100": (19.5, 156.0, 312.0),
    "L40S": (91.6, 183.0, 366.0),
    "L4": (30.3, 60.0, 121.0),
    "A10": (31.2, 62.5, 125.0),
    "RTX 4090": (82.6, 82.6, 165.2),
    "RTX 3090": (35.6, 35.6, 71.0),
    "T4": (8.1, 8.1, 65.0),
}


@dataclass
class Row:
    variant: str
    resolution: str
    device: str
    precision: str
    deform: str
    layout: str
    mode: str  # eager, compiled, or "eager (compile failed)"
    ms: float
    fps: float
    peak_mib: float
    memory_kind: str
    params_m: float | None  # None: a graph's, not counted
    gflops: float | None
    pct_peak: float | None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def cpu_ghz() -> float | None:
    try:
        mhz = [
            float(line.split(":", 1)[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
    except (OSError, ValueError):
        return None
    return max(mhz) / 1e3 if mhz else None


def cpu_flops_per_cycle(cpuinfo: str) -> int:
    """fp32 FLOPs per cycle per core: 2 FMA pipes x SIMD lanes x 2, from /proc/cpuinfo text.

    Two full-width 512-bit FMA pipes (AMD Zen 5, family 26+; Intel server AVX-512 cores) give
    64; Zen 4 runs AVX-512 on 256-bit pipes and AVX2/FMA cores have two 256-bit pipes: 32.
    Without FMA: 16 (AVX) or 8 (SSE).
    """
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    vendor = fields.get("vendor_id", "")
    try:
        family = int(fields.get("cpu family", "0"))
    except ValueError:
        family = 0
    if "avx512f" in flags and (vendor == "GenuineIntel" or family >= 26):
        return 64
    if "fma" in flags:
        return 32
    return 16 if "avx" in flags else 8


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} x{torch.get_num_threads()} threads"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, as a container or taskset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Device peak FLOP/s for ``precision`` (CPU: an estimate, see the module docstring)."""
    if device.type == "cpu":
        ghz = cpu_ghz()
        if ghz is None or precision != "fp32":
            return None  # CPU bf16 peaks vary too much by model to estimate honestly
        try:
            per_cycle = cpu_flops_per_cycle(Path("/proc/cpuinfo").read_text())
        except OSError:
            return None
        # threads beyond the CPUs this process may run on share them: no more peak
        return min(torch.get_num_threads(), usable_cpus()) * ghz * 1e9 * per_cycle
    peaks = cuda_peaks(torch.cuda.get_device_name(device))
    if peaks is None:
        return None
    fp32, tf32, half = peaks
    if precision == "fp32":
        return (tf32 if torch.backends.cudnn.allow_tf32 else fp32) * 1e12
    return half * 1e12


def cuda_peaks(name: str) -> tuple[float, float, float] | None:
    """The datasheet peaks of the GPU called ``name`` (``torch.cuda.get_device_name``)."""
    for key, peaks in CUDA_PEAKS_TFLOPS.items():
        if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", name):
            return peaks
    return None


class RssSampler:
    """Peak RSS growth over a baseline, sampled by a thread (CPU memory figure)."""

    def __init__(self, period_s: float = 0.002) -> None:
        self.period_s = period_s
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period_s)

    def __enter__(self) -> RssSampler:
        gc.collect()
        # Hand freed heap pages back so the baseline is not inflated by earlier rows.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self.base = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def build(variant: str, deform: str) -> nn.Module:
    cls, overrides = VARIANTS[variant]
    torch.manual_seed(0)
    return cls(**overrides, deform_impl=deform).eval()


def make_input(model: nn.Module, h: int, w: int, device: torch.device) -> torch.Tensor:
    channels = 15 if isinstance(model, RecurrentSARN) else 3
    return torch.rand(1, channels, h, w, device=device)


def count_flops(variant: str, h: int, w: int) -> float:
    model = build(variant, "grid_sample")
    x = make_input(model, h, w, torch.device("cpu"))
    # no_grad, not inference_mode: torch < 2.2's FlopCounterMode sees nothing under the latter
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.step(x) if isinstance(model, RecurrentSARN) else model(x)
    return float(counter.get_total_flops())


def layout_label(channels_last: bool) -> str:
    return "channels_last" if channels_last else "NCHW"


def bench_row(
    variant: str,
    size: tuple[int, int],
    device: torch.device,
    precision: str,
    deform: str,
    channels_last: bool,
    compiled: bool,
    iters: int,
    warmup: int,
    flops: float,
) -> Row:
    w, h = size
    model = build(variant, deform).to(device)
    params = sum(p.numel() for p in model.parameters())
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    x = make_input(model, h, w, device).contiguous(memory_format=layout)
    recurrent = isinstance(model, RecurrentSARN)
    net = model.step if recurrent else model
    if compiled:
        torch._dynamo.reset()  # each row compiles afresh, as a new engine would
        net = CompiledCall(net, variant)
    cuda = device.type == "cuda"
    times: list[float] = []
    with torch.inference_mode(), autocast(device, precision):
        state = model.init_state(1, h, w, device, torch.float32) if recurrent else None

        def frame() -> None:
            if recurrent:  # the state is updated in place, as the engine does
                _, (hid, cell) = net(x, state)
                state[0].copy_(hid)
                state[1].copy_(cell)
            else:
                net(x)

        for _ in range(warmup):
            frame()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            for _ in range(iters):
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                stream = torch.cuda.current_stream(device)  # cuda:N's, not the current device's
                start.record(stream)
                frame()
                end.record(stream)
                end.synchronize()
                times.append(start.elapsed_time(end))
            peak = torch.cuda.max_memory_allocated(device) - base
            memory_kind = "cuda max_allocated"
        else:
            times, peak = cpu_times(frame, iters)
            memory_kind = "RSS growth"
    ms = statistics.median(times)
    peak_dev = peak_flops(device, precision)
    return Row(
        variant=variant,
        resolution=f"{w}x{h}",
        device=device_label(device),
        precision=precision,
        deform=deform_path(model, device),
        layout=layout_label(channels_last),
        mode=mode_label(net),
        ms=ms,
        fps=1e3 / ms,
        peak_mib=peak / 2**20,
        memory_kind=memory_kind,
        params_m=params / 1e6,
        gflops=flops / 1e9,
        pct_peak=100.0 * flops / (ms / 1e3) / peak_dev if peak_dev else None,
    )


def cpu_times(frame: Callable[[], object], iters: int) -> tuple[list[float], int]:
    """The ms of each of ``iters`` calls of ``frame``, and the RSS growth over them."""
    times = []
    with RssSampler() as sampler:
        for _ in range(iters):
            t0 = time.perf_counter()
            frame()
            times.append((time.perf_counter() - t0) * 1e3)
    return times, sampler.growth


def graph_precision(path: str) -> str:
    """int8 for a graph of ``sarn export --int8`` (QuantizeLinear nodes), else fp32; n/a where
    the onnx package that reads the graph is missing."""
    try:
        import onnx
    except ImportError:
        return "n/a"
    graph = onnx.load(path, load_external_data=False).graph
    return "int8" if any(n.op_type == "QuantizeLinear" for n in graph.node) else "fp32"


def bench_graph(path: str, net: OnnxNet, size: tuple[int, int], iters: int, warmup: int) -> Row:
    """A row of a graph of ``sarn export``: frames of random input through onnxruntime, the
    state carried, timed and sampled as a PyTorch row on the CPU."""
    w, h = size
    cpu = torch.device("cpu")
    x = torch.rand(1, 15 if net.is_recurrent else 3, h, w)
    state = net.init_state(1, h, w, cpu, torch.float32) if net.is_recurrent else None

    def frame() -> None:
        nonlocal state
        if state is None:
            net(x)
        else:
            _, state = net.step(x, state)

    for _ in range(warmup):
        frame()
    times, peak = cpu_times(frame, iters)
    ms = statistics.median(times)
    return Row(
        variant=path,  # as given: two graphs of one name told apart
        resolution=f"{w}x{h}",
        device=device_label(cpu),
        precision=graph_precision(path),
        deform="onnxruntime",
        layout="NCHW",
        mode="onnxruntime",
        ms=ms,
        fps=1e3 / ms,
        peak_mib=peak / 2**20,
        memory_kind="RSS growth",
        params_m=None,
        gflops=None,
        pct_peak=None,
    )


COMPILED_MODES = ("compiled", "eager (compile failed)")  # rows warmed up at least once


def mode_label(net: object) -> str:
    if not isinstance(net, CompiledCall):
        return "eager"
    return "compiled" if net.compiled is not None else "eager (compile failed)"


# The FLOP count's forward pass on the CPU (every device's), measured as peak RSS at 512x512
# and 1024x1024 here: 0.87 GB a megapixel for the single-image network, 1.02 for the
# recurrent ones, over about 1 GB for PyTorch and the process. 8192x8192 asked for 63 GB and
# was killed by the kernel, not refused; with the single network's rate for all, 8192x3000
# of the recurrent one passed the check and was killed too
GB_BASE = 1.0
GB_PER_MEGAPIXEL = {v: 0.9 if cls is SARN else 1.05 for v, (cls, _) in VARIANTS.items()}


# the cgroup file systems (v2, v1) and the file holding a group's memory limit in each
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def cgroup_limits() -> list[Path]:
    """The memory-limit files of this process's cgroups and of each group above them: a
    systemd slice's MemoryMax or a container's limit sits on the process's own group, which
    the file system's root (all that was read before) does not show outside a container."""
    files = []
    with contextlib.suppress(OSError, ValueError):  # no /proc (macOS), an unknown format
        for line in PROC_CGROUP.read_text().splitlines():
            _, controllers, group = line.split(":", 2)
            if not controllers:  # v2's one hierarchy
                base, name = CGROUP_ROOT, "memory.max"
            elif "memory" in controllers.split(","):
                base, name = CGROUP_ROOT / "memory", "memory.limit_in_bytes"
            else:
                continue
            folder = PurePosixPath(group)
            for level in (folder, *folder.parents):
                files.append(base / level.relative_to("/") / name)
    return files


def memory_gb() -> float:
    """The memory this process may use in GB: the machine's, or its container's limit where
    lower (a robot's Docker container: the machine's figure let a size through to be killed)."""
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in cgroup_limits():
        with contextlib.suppress(OSError, ValueError, IndexError):  # "max": no limit
            have = min(have, int(limit.read_text().split()[0]))
    return have / 1e9


def check_memory(sizes: list[tuple[int, int]], variants: list[str]) -> None:
    """ValueError for a size whose FLOP count alone would need more than the machine has."""
    if not variants:  # graphs only: no FLOP count
        return
    have, rate = memory_gb(), max(GB_PER_MEGAPIXEL[v] for v in variants)
    for w, h in sizes:
        if (need := GB_BASE + w * h / 1e6 * rate) > have:
            raise ValueError(
                f"--sizes {w}x{h} needs about {need:.0f} GB of memory on the CPU (the FLOP "
                f"count runs there), more than the {have:.0f} GB this process may use"
            )


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x480: {text!r}") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):  # 100000x8 took 2.5 GB to fail
        raise argparse.ArgumentTypeError(f"size must be 1 to {MAX_SIDE} px a side: {text!r}")
    return w, h


def csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:  # an empty sweep printed an empty table and exit 0
        raise argparse.ArgumentTypeError(f"an empty list: {text!r}")
    return items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variants",
        type=csv,
        action=Gathered,
        default=csv(DEFAULT_VARIANTS),
        help=f"comma list of {', '.join(VARIANTS)}, or .onnx graphs of `sarn export` (run by "
        f"onnxruntime on the CPU, once per size) (default {DEFAULT_VARIANTS})",
    )
    parser.add_argument(
        "--sizes",
        type=lambda t: [parse_size(s) for s in csv(t)],
        action=Gathered,
        default=[(320, 240), (640, 480)],
        help="comma list of WxH (default 320x240,640x480; add 1280x720 for 720p)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        type=csv,
        action=Gathered,
        default=["fp32"],
        help="comma list of fp32, bf16, fp16 (default fp32; fp16 on CUDA only)",
    )
    parser.add_argument(
        "--deform-impl",
        type=csv,
        action=Gathered,
        default=["auto"],
        help="comma list of auto, torchvision, grid_sample: compare deformable-conv paths "
        "(default auto)",
    )
    parser.add_argument(
        "--channels-last",
        choices=("auto", "on", "off", "both"),
        default="auto",
        help="memory layout; auto = channels_last, as the engine runs it",
    )
    parser.add_argument(
        "--torch-compile",
        choices=("off", "on", "both"),
        default="off",
        help="torch.compile the network as the engine's torch_compile does (the compile runs "
        "in the first warm-up frame, so warm-up is at least 1)",
    )
    parser.add_argument(
        "--iters", type=ranged(int, 1), default=5, help="timed frames per row (median)"
    )
    parser.add_argument("--warmup", type=ranged(int, 0), default=2, help="untimed frames first")
    parser.add_argument(
        "--threads",
        type=ranged(int, 0, 256),
        help="torch CPU threads (as the node's cpu_threads and sarn bench node's: 0, as unset, "
        "PyTorch's default)",
    )
    parser.add_argument(
        "--json",
        type=file_arg,
        default=None,
        help="also write the rows to this file, each with its settings (complete: false for a "
        "run stopped part-way or with a setting failed); a run that measured nothing leaves "
        "it as it was, and says so",
    )


def format_table(rows: list[Row]) -> str:
    head = (
        "| variant | resolution | device | precision | deform | layout | mode | ms/frame | fps "
        "| peak MiB | params M | GFLOPs/frame | % of peak |"
    )
    lines = [head, "|" + "---|" * 13]

    def cell(value: float | None, digits: int) -> str:
        return f"{value:.{digits}f}" if value is not None else "n/a"

    for r in rows:
        lines.append(
            f"| {r.variant} | {r.resolution} | {r.device} | {r.precision} | {r.deform} "
            f"| {r.layout} | {r.mode} | {r.ms:.1f} | {r.fps:.2f} | {r.peak_mib:.0f} "
            f"| {cell(r.params_m, 2)} | {cell(r.gflops, 1)} | {cell(r.pct_peak, 1)} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        device = resolve_device(args.device)
        if "fp16" in args.precision and device.type == "cpu":  # as `sarn bench node`
            raise ValueError(  # its rows would be fp32's, the label fp16 silently dropped
                "--precision fp16 runs on CUDA only (fp32 would run under that name on a "
                "CPU); bf16 is the CPU's half precision"
            )
        precisions = [resolve_precision(p, device) for p in args.precision]
        # a size or variant given twice measured its rows twice, as precisions once did; a
        # graph given by two paths too
        args.sizes = list(dict.fromkeys(args.sizes))
        variants: dict[str, str] = {}
        for v in args.variants:
            variants.setdefault(str(Path(v).resolve()) if is_onnx(v) else v, v)
        args.variants = list(variants.values())
        for v in args.variants:
            if v not in VARIANTS and not is_onnx(v):
                raise ValueError(
                    f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}, or give a .onnx "
                    "graph of `sarn export`"
                )
        check_memory(args.sizes, [v for v in args.variants if not is_onnx(v)])
        for d in args.deform_impl:
            if d not in DEFORM_IMPLS:
                raise ValueError(f"unknown deform impl {d!r}; choose from {DEFORM_IMPLS}")
        if args.json is not None:  # known before the benchmark, not after it
            check_json_output(args.json)
    except (RuntimeError, ValueError) as exc:
        print(f"sarn bench model: error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
        if args.threads > usable_cpus():
            print(
                f"note: --threads {args.threads} on {plural(usable_cpus(), 'usable CPU')}: "
                "threads share them (% of peak counts the CPUs)",
                file=sys.stderr,
            )
    try:  # after --threads, which the session's threads follow
        graphs = {v: OnnxNet(v) for v in args.variants if is_onnx(v)}
    except RuntimeError as exc:  # a CheckpointError: missing, not a graph of `sarn export`
        print(f"sarn bench model: error: {exc}", file=sys.stderr)
        return 2
    layouts = {
        "auto": [True],
        "on": [True],
        "off": [False],
        "both": [False, True],
    }[args.channels_last]
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.torch_compile]
    rows: list[Row] = []
    print(f"# device: {device_label(device)}; torch {torch.__version__}", flush=True)
    stop: KeyboardInterrupt | None = None  # Ctrl-C, or a Stopped (SIGTERM, SIGHUP)
    failed: list[str] = []

    def failure(setting: str, exc: RuntimeError) -> None:
        """A setting that cannot run here (out of memory at a large size): the sweep goes on
        and the rows measured still count."""
        failed.append(f"{setting}: {type(exc).__name__}: {first_line(exc)}")
        print(f"# {failed[-1]}", file=sys.stderr, flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def said(row: Row) -> None:
        print(
            f"# {row.variant} {row.resolution} {row.precision} {row.deform} {row.layout} "
            f"{row.mode}: {row.ms:.1f} ms",
            file=sys.stderr,
            flush=True,
        )

    try:
        with stops_as_interrupts():  # `timeout`'s SIGTERM too: it lost every row measured
            for size in args.sizes:
                for variant in args.variants:
                    setting = f"{variant} {size[0]}x{size[1]}"
                    if variant in graphs:
                        try:
                            row = bench_graph(
                                variant, graphs[variant], size, args.iters, args.warmup
                            )
                        except RuntimeError as exc:
                            failure(f"{setting} onnxruntime", exc)
                        else:
                            rows.append(row)
                            said(row)
                        continue
                    try:
                        flops = count_flops(variant, size[1], size[0])
                    except RuntimeError as exc:
                        failure(setting, exc)
                        continue
                    # one row per path that runs: auto is one of the others, and a variant without
                    # deformable modules has none to choose
                    by_path: dict[str, str] = {}
                    for d in args.deform_impl:
                        by_path.setdefault(deform_path(build(variant, d), device), d)
                    for precision, deform, channels_last, compiled in itertools.product(
                        dict.fromkeys(precisions), by_path.values(), layouts, modes
                    ):
                        try:
                            row = bench_row(
                                variant,
                                size,
                                device,
                                precision,
                                deform,
                                channels_last,
                                compiled,
                                args.iters,
                                max(args.warmup, int(compiled)),
                                flops,
                            )
                        except RuntimeError as exc:
                            mode = "compiled" if compiled else "eager"
                            layout = layout_label(channels_last)
                            failure(f"{setting} {precision} {deform} {layout} {mode}", exc)
                            continue
                        rows.append(row)
                        said(row)
    except KeyboardInterrupt as exc:  # a long sweep stopped: the rows measured still count
        stop = exc
    if rows:  # a table of headings and "peak memory: ;" said nothing
        print(format_table(rows))
        kinds = ", ".join(dict.fromkeys(r.memory_kind for r in rows))  # a graph's is RSS growth
        print(
            f"peak memory: {kinds}; GFLOPs = 2 x multiply-adds of "
            "conv/deconv/matmul/attention (FlopCounterMode); % of peak vs "
            + (
                "an estimated CPU fp32 peak (threads, at most the CPUs, x current clock x "
                "FLOP/cycle from the ISA flags)"
                if device.type == "cpu"
                else "datasheet dense peak"
            )
        )
    if args.json and rows:  # a run that measured nothing wrote [] over an earlier file
        written = kernel_path(args.json)  # `new/../b.json`: no `new` made
        written.parent.mkdir(parents=True, exist_ok=True)
        # each row with how it was measured, as the header line says it: two runs' files
        # could not be told apart by their iterations, threads or torch
        settings = {
            "iters": args.iters,
            "warmup": args.warmup,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "complete": stop is None and not failed,  # every setting asked for measured
        }
        # a compiled row warms up at least once (compiling): its own count, not --warmup 0
        rows_out = [
            {
                **asdict(r),
                "settings": settings
                | {"host": r.device, "warmup": max(args.warmup, int(r.mode in COMPILED_MODES))},
            }
            for r in rows
        ]
        try:
            with stops_held():  # a stop mid-write left half a file that did not parse
                written.write_text(json.dumps(rows_out, indent=2))
        except KeyboardInterrupt as late:  # held till the file was whole
            stop = stop or late  # the first stop is the one said
    if not rows:
        say_json_kept("sarn bench model", args.json, "nothing measured")
    if stop is not None:
        how, code = how_stopped(stop)
        print(f"sarn bench model: {how} after {plural(len(rows), 'row')}", file=sys.stderr)
        return code
    if failed:
        print(
            f"sarn bench model: {plural(len(failed), 'setting')} failed, {len(rows)} measured; "
            f"first: {failed[0]}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sarn bench model", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
