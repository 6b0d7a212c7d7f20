"""Building blocks of SARN: residual blocks, deformable residual modules, pooled
self-attention and a ConvLSTM cell. Pure PyTorch, no ROS."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

try:  # optional: the CPU path never uses it, and a Jetson's torchvision is often missing or
    # built for another torch, which fails at import ("operator torchvision::nms does not exist")
    from torchvision.ops import deform_conv2d
except Exception as exc:
    deform_conv2d = None
    TORCHVISION_ERROR: str | None = f"{type(exc).__name__}: {exc}".splitlines()[0]
else:
    TORCHVISION_ERROR = None

DEFORM_IMPLS = ("auto", "torchvision", "grid_sample")
log = logging.getLogger(__name__)
_KERNEL_RUNS: dict[str, bool] = {}  # device type -> torchvision's kernel ran there


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (no normalisation, as in SRN/DeepDeblur)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


def deform_conv3x3_grid_sample(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Deformable convolution (stride 1, 'same' padding) as k*k bilinear gathers + GEMMs.

    Same maths and offset layout as ``torchvision.ops.deform_conv2d`` (offset channel 2i is
    the y shift and 2i+1 the x shift of kernel tap i, taps in row-major order; samples outside
    the map read zero). On CPU it is about 3x faster than torchvision's im2col kernel, forward
    and backward, because ``grid_sample`` on a channels-last map reads whole pixel vectors and
    the per-tap products are plain GEMMs. Returns a channels-last tensor.

    Positions stay fp32 under bf16/fp16 autocast: with 8 (bf16) or 11 (fp16) mantissa bits,
    pixel indices past 256 (bf16) collide and normalised coordinates are off by up to a few
    pixels, so zero offsets would no longer be a plain convolution. Only the GEMMs take the
    low precision.
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    taps = k * k
    f32 = {"device": x.device, "dtype": torch.float32}
    ys = torch.arange(h, **f32).view(1, 1, h, 1)
    xs = torch.arange(w, **f32).view(1, 1, 1, w)
    ky = torch.arange(k, **f32).repeat_interleave(k).view(1, taps, 1, 1)
    kx = torch.arange(k, **f32).repeat(k).view(1, taps, 1, 1)
    off = offset.float().view(n, taps, 2, h, w)
    py = ys + ky - (k // 2) + off[:, :, 0]  # sample positions in pixels, (n, taps, h, w)
    px = xs + kx - (k // 2) + off[:, :, 1]
    sample = _gather_bilinear if _dynamo_tracing() else _grid_sample_bilinear
    cols = sample(x, py, px).view(n, taps, h * w, c)
    out = torch.matmul(cols, weight.permute(2, 3, 1, 0).reshape(taps, c, -1)).sum(1)
    if bias is not None:
        out = out + bias
    return out.view(n, h, w, -1).permute(0, 3, 1, 2)


def _dynamo_tracing() -> bool:
    """Inside torch.compile's trace (decided once per graph, at trace time)."""
    check = getattr(torch.compiler, "is_dynamo_compiling", None)  # torch >= 2.3
    if check is None:
        from torch._dynamo import is_compiling as check
    return check()


def _exporting() -> bool:
    """Inside an ONNX export's trace, whose graph takes any size: no branch on one. (Under
    torch.compile, which specialises on sizes, the branch is taken as in eager.)"""
    check = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.7 or so
    return torch.jit.is_tracing() or (check() if check is not None else _dynamo_tracing())


def _grid_sample_bilinear(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """(n, taps*h*w, c) samples of ``x`` at fp32 pixel positions (n, taps, h, w) with one
    ``grid_sample``: the fastest eager kernel. It takes grid and input in one dtype, so both
    are fp32 (its output is cast back for the GEMMs)."""
    n, c, h, w = x.shape
    # Pixel centres in [-1, 1] with align_corners=False: pixel i maps to (2 i + 1) / size - 1.
    # (align_corners=True maps every position to pixel 0 on a side of 1 pixel, so taps off
    # the map read it instead of zero: frames 4 px or less high or wide.)
    gy = (2.0 * py + 1.0) / h - 1.0
    gx = (2.0 * px + 1.0) / w - 1.0
    grid = torch.stack((gx, gy), dim=-1).view(n, -1, w, 2)
    with torch.autocast(x.device.type, enabled=False):
        sampled = F.grid_sample(
            x.float().contiguous(memory_format=torch.channels_last),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
    return sampled.to(x.dtype).permute(0, 2, 3, 1).reshape(n, -1, c)  # free: channels-last


def _gather_bilinear(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """The same samples as four weighted corner gathers: inductor fuses them into one loop that
    reads the map in its own dtype, 2x (fp32) to 4x (bf16) faster than its ``grid_sample``
    (the DRM at 640x480 on the 2-core CPU), while eagerly they are 3.6x slower."""
    n, c, h, w = x.shape
    flat = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    y0, x0 = py.floor(), px.floor()
    wy, wx = py - y0, px - x0
    cols = None
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)  # zero padding
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().view(n, -1, 1)
            weight = ((wy if dy else 1 - wy) * (wx if dx else 1 - wx) * inside).to(x.dtype)
            corner = torch.gather(flat, 1, index.expand(-1, -1, c)) * weight.view(n, -1, 1)
            cols = corner if cols is None else cols + corner
    return cols


def resolve_deform_impl(impl: str, device: torch.device) -> str:
    """'auto' picks grid_sample on CPU (faster there) and torchvision's kernel elsewhere, unless
    torchvision is missing or :func:`check_deform_kernel` found its kernel cannot run there."""
    if impl not in DEFORM_IMPLS:
        raise ValueError(f"deform impl must be one of {DEFORM_IMPLS}, got {impl!r}")
    if impl == "torchvision" and deform_conv2d is None:
        raise RuntimeError(f"deform impl 'torchvision' needs torchvision ({TORCHVISION_ERROR})")
    if impl != "auto":
        return impl
    if device.type == "cpu" or deform_conv2d is None or not _KERNEL_RUNS.get(device.type, True):
        return "grid_sample"
    return "torchvision"


def check_deform_kernel(device: torch.device) -> str:
    """Run torchvision's kernel once on a tiny input on ``device`` (eagerly, before any
    compile), so that 'auto' takes the grid_sample path where it cannot run, e.g. a torchvision
    built without CUDA; returns what 'auto' resolves to on ``device``."""
    kind = device.type
    if kind != "cpu" and deform_conv2d is not None and kind not in _KERNEL_RUNS:
        try:
            x = torch.zeros(1, 1, 4, 4, device=device)
            offset = torch.zeros(1, 18, 4, 4, device=device)
            deform_conv2d(x, offset, torch.zeros(1, 1, 3, 3, device=device), padding=1)
            _KERNEL_RUNS[kind] = True
        except Exception as exc:
            _KERNEL_RUNS[kind] = False
            log.warning(
                "torchvision's deform_conv2d does not run on %s (%s); deformable "
                "convolutions take the grid_sample path",
                kind,
                f"{type(exc).__name__}: {exc}".splitlines()[0],
            )
    return resolve_deform_impl("auto", device)


class DeformableResidualModule(nn.Module):
    """DRM (paper Fig. 2): regular conv, offset-predicting conv (2k^2 channels, zero-initialised)
    and a deformable conv, with an additive skip. With zero offsets it is exactly a ResBlock,
    so training starts from the plain encoder-decoder and learns where to bend the filters."""

    def __init__(self, channels: int, kernel_size: int = 3, impl: str = "auto") -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.offset = nn.Conv2d(channels, 2 * kernel_size * kernel_size, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # same as nn.Conv2d's default
        if impl not in DEFORM_IMPLS:  # here, not at the first forward pass
            raise ValueError(f"deform impl must be one of {DEFORM_IMPLS}, got {impl!r}")
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.relu(self.conv1(x), inplace=True)
        offset = self.offset(feat)
        impl = resolve_deform_impl(self.impl, x.device)
        if impl == "grid_sample":
            y = deform_conv3x3_grid_sample(feat, offset, self.weight, self.bias)
        else:
            # torchvision's kernel has no half-precision path on every device: run it in fp32.
            y = deform_conv2d(
                feat.float(),
                offset.float(),
                self.weight.float(),
                self.bias.float(),
                padding=self.weight.shape[-1] // 2,  # 'same', as the grid_sample path
            ).to(feat.dtype)
        return x + y


# attention scores held at once (fp32: 256 MB): 1280x720 at stride 8 (57,600 x 900) fits
SCORE_BUDGET = 1 << 26


class PooledSelfAttention(nn.Module):
    """Non-local self-attention whose keys and values are average-pooled by a fixed stride.

    Full attention over all 1/4-resolution positions of a 720p frame needs a 57,600^2 score
    matrix (~13 GB). Pooling keys/values by a fixed stride s keeps the key density per image
    area the same for a 256 px training crop and a 1280x720 frame (so training and inference
    see the same operator) and cuts the work by s^2. The scores still grow with the square of
    the pixel count: ``scaled_dot_product_attention`` holds them whole on a CPU (its flash
    kernel wants q, k and v of one width; here q and k are narrower), 35 GB for a 12 MP
    frame. Past SCORE_BUDGET they are computed for a block of queries at a time, the same
    result (a softmax per query), so memory grows linearly. The output is added through a
    zero-initialised gain, so the untrained module is the identity.
    """

    def __init__(self, channels: int, stride: int = 8, qk_channels: int | None = None) -> None:
        super().__init__()
        qk = qk_channels or max(channels // 8, 1)
        self.stride = stride
        self.query = nn.Conv2d(channels, qk, 1)
        self.key = nn.Conv2d(channels, qk, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # Edge windows cut short by ceil_mode average what they hold. PyTorch does that either
        # way; saying count_include_pad=False makes the exported ONNX AveragePool say so too
        # (onnxruntime 1.16 and 1.17 divided those windows by the whole kernel with it on).
        # Pooled at every size, a row of 1 px too (a frame 4 px high): the exported graph
        # does, and keys left unpooled there gave other frames than the ONNX file's.
        pooled = F.avg_pool2d(x, self.stride, ceil_mode=True, count_include_pad=False)
        q = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1)  # n,1,hw,qk
        k = self.key(pooled).flatten(2).transpose(1, 2).unsqueeze(1)  # n,1,m,qk
        v = self.value(pooled).flatten(2).transpose(1, 2).unsqueeze(1)  # n,1,m,c
        # export first: a size test on its symbolic sizes would become an assertion in the graph
        if _exporting() or n * q.shape[2] * k.shape[2] <= SCORE_BUDGET:
            att = F.scaled_dot_product_attention(q, k, v)  # n,1,hw,c; export sees one call
        else:  # a frame past 720p: blocks of queries, each against every key
            rows = max(1, SCORE_BUDGET // (n * k.shape[2]))  # queries whose scores fit
            blocks = [
                F.scaled_dot_product_attention(q[:, :, i : i + rows], k, v)
                for i in range(0, q.shape[2], rows)
            ]
            att = torch.cat(blocks, dim=2)
        att = att.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return x + self.gamma * att


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM (Shi et al. 2015), all four gates from one 3x3 conv over [x, h]."""

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.gates = conv3x3(in_channels + hidden_channels, 4 * hidden_channels)
        with torch.no_grad():  # forget-gate bias 1: remember by default early in training
            self.gates.bias.zero_()
            self.gates.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat((x, h), dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def deform_path(model: nn.Module, device: torch.device) -> str:
    """The deformable-conv path ``model`` runs on ``device`` ('-' when it has no DRM)."""
    for m in model.modules():
        if isinstance(m, DeformableResidualModule):
            return resolve_deform_impl(m.impl, device)
    return "-"
