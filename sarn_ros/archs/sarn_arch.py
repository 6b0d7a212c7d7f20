"""Single-image SARN (Purohit & Rajagopalan, arXiv 1903.11394, Fig. 1).

Residual encoder-decoder with 3x3 convolutions, n = 32 channels at full resolution and two
stride-2 levels (n, 2n, 4n). The lowest level holds six Deformable Residual Modules followed by
a self-attention module; the decoder mirrors the encoder with transposed convolutions and
additive skips, and the network predicts a residual added to the blurred input. No multi-scale
input pyramid: one pass per frame.

Choices the paper leaves open (stated here so they can be checked against its sizes):
three ResBlocks per encoder/decoder level (as SRN), additive skips, ReLU after every strided or
transposed conv, attention keys/values pooled by 8 at 1/4 resolution. With 6 DRMs and attention
this gives 2.66M parameters (10.6 MB fp32; paper: 11.2 MB). Each DRM adds only its offset conv
(20.8k parameters) over a ResBlock, matching the paper's 10.7 -> 11.2 MB step in Table 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .modules import DeformableResidualModule, PooledSelfAttention, ResBlock, conv3x3

SIZE_MULTIPLE = 4  # two stride-2 levels


@dataclass
class SARNConfig:
    """Architecture hyper-parameters; stored in every checkpoint."""

    channels: int = 32
    blocks_per_level: int = 3
    num_drm: int = 6
    attention: bool = True
    attention_stride: int = 8
    deform_impl: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


def pad_to_multiple(
    x: torch.Tensor, multiple: int = SIZE_MULTIPLE
) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad bottom/right so H and W divide by ``multiple``; returns the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


class SARNEncoder(nn.Module):
    """NetE: full-res level, two stride-2 levels, DRMs and attention at 1/4 resolution.

    Returns the bottleneck features and the two skip tensors for the decoder.
    """

    def __init__(self, in_channels: int, cfg: SARNConfig) -> None:
        super().__init__()
        n, b = cfg.channels, cfg.blocks_per_level
        self.inp = conv3x3(in_channels, n)
        self.level1 = nn.Sequential(*[ResBlock(n) for _ in range(b)])
        self.down1 = conv3x3(n, 2 * n, stride=2)
        self.level2 = nn.Sequential(*[ResBlock(2 * n) for _ in range(b)])
        self.down2 = conv3x3(2 * n, 4 * n, stride=2)
        # Table 3 ablation: plain ResBlocks stand in for the DRMs that are switched off.
        mid: list[nn.Module] = [
            DeformableResidualModule(4 * n, impl=cfg.deform_impl) for _ in range(cfg.num_drm)
        ]
        mid += [ResBlock(4 * n) for _ in range(6 - cfg.num_drm)]
        self.level3 = nn.Sequential(*mid)
        self.attention = (
            PooledSelfAttention(4 * n, stride=cfg.attention_stride) if cfg.attention else None
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1 = self.level1(F.relu(self.inp(x), inplace=True))
        s2 = self.level2(F.relu(self.down1(s1), inplace=True))
        f = self.level3(F.relu(self.down2(s2), inplace=True))
        if self.attention is not None:
            f = self.attention(f)
        return f, s1, s2


class SARNDecoder(nn.Module):
    """NetD: two transposed-conv levels with additive skips, then a conv to an RGB residual."""

    def __init__(self, cfg: SARNConfig, out_channels: int = 3) -> None:
        super().__init__()
        n, b = cfg.channels, cfg.blocks_per_level
        self.up2 = nn.ConvTranspose2d(4 * n, 2 * n, 3, stride=2, padding=1, output_padding=1)
        self.level2 = nn.Sequential(*[ResBlock(2 * n) for _ in range(b)])
        self.up1 = nn.ConvTranspose2d(2 * n, n, 3, stride=2, padding=1, output_padding=1)
        self.level1 = nn.Sequential(*[ResBlock(n) for _ in range(b)])
        self.out = conv3x3(n, out_channels)

    def forward(self, f: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        x = self.level2(F.relu(self.up2(f), inplace=True) + s2)
        x = self.level1(F.relu(self.up1(x), inplace=True) + s1)
        return self.out(x)


class SARN(nn.Module):
    """Single-image SARN. Input and output: RGB in [0, 1], NCHW, any size (padded inside).

    The output is not clamped, so losses see the raw prediction; clamp for display.
    """

    def __init__(self, cfg: SARNConfig | None = None, **overrides) -> None:
        super().__init__()
        self.cfg = cfg or SARNConfig(**overrides)
        self.encoder = SARNEncoder(3, self.cfg)
        self.decoder = SARNDecoder(self.cfg)

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        x, h, w = pad_to_multiple(blurred)
        return self.forward_padded(x)[..., :h, :w]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on an input already padded to ``SIZE_MULTIPLE``: the graph ONNX
        exports, free of shape-dependent padding."""
        f, s1, s2 = self.encoder(x)
        return x + self.decoder(f, s1, s2)
