"""Recurrent video SARN (paper Sec. 2.2, eq. 7).

    f_i = NetE(B_i, I_{i-1}),   (h_i, c_i) = ConvLSTM(f_i, (h_{i-1}, c_{i-1})),   I_i = NetD(...)

Early fusion of five frames at the input: the two previous deblurred outputs, the current
blurred frame and the two following blurred frames. A ConvLSTM at 1/4 resolution carries
features across frames; the decoder consumes ``f_i + W h_i`` (a 1x1 projection of the LSTM
output added to the encoder features), so the recurrent path refines the single-frame features
instead of replacing them; this keeps an untrained recurrence harmless and training stable.

Sizes: ConvLSTM hidden width 64 (3x3 gates over [f, h]) and a 15-channel input conv give
3.11M parameters (12.4 MB fp32, the paper's figure).

Missing neighbours (stream start, stream end, or fewer than two look-ahead frames) are
replaced by the nearest available frame, see :func:`fusion_inputs`. Training and the streaming
engine both go through that one function, so they see identical substitutes.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .modules import ConvLSTMCell
from .sarn_arch import SIZE_MULTIPLE, SARNConfig, SARNDecoder, SARNEncoder, pad_to_multiple

State = tuple[torch.Tensor, torch.Tensor]
FUSED_FRAMES = 5  # fusion_inputs: out_{t-2}, out_{t-1}, blur_t, blur_{t+1}, blur_{t+2}
FUTURE_FRAMES = 2  # the most blurred frames after the current one that the fusion takes
CURRENT = slice(6, 9)  # the channels of blur_t in that stack


@dataclass
class RecurrentSARNConfig(SARNConfig):
    """SARN hyper-parameters plus the ConvLSTM width."""

    lstm_channels: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


def fusion_inputs(
    previous: Sequence[torch.Tensor], current: torch.Tensor, future: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Stack [out_{t-2}, out_{t-1}, blur_t, blur_{t+1}, blur_{t+2}] along channels.

    ``previous`` holds up to two earlier outputs (oldest first), ``future`` up to two later
    blurred frames (nearest first). A missing previous output is replaced by the oldest one
    available, or by the current blurred frame at a stream's start; a missing future frame by
    the latest future frame available, or by the current frame. Previous outputs are clamped to
    [0, 1], as they would be once written out as an image.
    """
    prev = [p.clamp(0.0, 1.0) for p in list(previous)[-2:]]
    while len(prev) < 2:
        prev.insert(0, prev[0] if prev else current)
    fut = list(future)[:FUTURE_FRAMES]
    while len(fut) < FUTURE_FRAMES:
        fut.append(fut[-1] if fut else current)
    return torch.cat((*prev, current, *fut), dim=1)


def check_state(state: State, batch: int, channels: int, height: int, width: int) -> None:
    """ValueError unless ``state`` is (h, c) for ``batch`` frames of ``height`` x ``width``: a
    state kept from frames of another size failed deep inside, in the ConvLSTM's concatenation
    ("Sizes of tensors must match") or in onnxruntime's Reshape."""
    want = (batch, channels, -(-height // SIZE_MULTIPLE), -(-width // SIZE_MULTIPLE))
    got = [tuple(t.shape) for t in state]
    if got != [want, want]:
        raise ValueError(
            f"recurrent state of shapes {got} does not fit {batch} frame(s) of {height}x{width} "
            f"(needs {want}): frames of a new size start from init_state"
        )


class RecurrentSARN(nn.Module):
    """Video SARN: one call of :meth:`step` per frame, state carried by the caller."""

    def __init__(self, cfg: RecurrentSARNConfig | None = None, **overrides) -> None:
        super().__init__()
        self.cfg = cfg or RecurrentSARNConfig(**overrides)
        n4 = 4 * self.cfg.channels
        self.encoder = SARNEncoder(3 * FUSED_FRAMES, self.cfg)
        self.lstm = ConvLSTMCell(n4, self.cfg.lstm_channels)
        self.lstm_out = nn.Conv2d(self.cfg.lstm_channels, n4, 1)
        self.decoder = SARNDecoder(self.cfg)

    def init_state(
        self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> State:
        """Zero (h, c) for frames of ``height`` x ``width`` (unpadded image size)."""
        hh = -(-height // SIZE_MULTIPLE)
        ww = -(-width // SIZE_MULTIPLE)
        shape = (batch, self.cfg.lstm_channels, hh, ww)
        return (
            torch.zeros(shape, device=device, dtype=dtype),
            torch.zeros(shape, device=device, dtype=dtype),
        )

    def step(self, stack: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Deblur one frame from its 15-channel fusion stack; returns (output, new state).

        The output is the current frame (channels ``CURRENT`` of ``stack``) plus the predicted
        residual, unclamped.
        """
        x, h, w = pad_to_multiple(stack)
        if state is None:
            state = self.init_state(x.shape[0], h, w, x.device, x.dtype)
        check_state(state, x.shape[0], self.cfg.lstm_channels, h, w)
        out, state = self.step_padded(x, state)
        return out[..., :h, :w], state

    def step_padded(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """:meth:`step` on a stack already padded to ``SIZE_MULTIPLE``: the graph ONNX exports,
        free of shape-dependent padding."""
        f, s1, s2 = self.encoder(x)
        hid, cell = self.lstm(f, state)
        return x[:, CURRENT] + self.decoder(f + self.lstm_out(hid), s1, s2), (hid, cell)

    def forward(
        self,
        clip: torch.Tensor,
        future_frames: int = 2,
        state: State | None = None,
        n_out: int | None = None,
    ) -> tuple[torch.Tensor, State]:
        """Deblur the first ``n_out`` frames (default: all) of a clip (N, T, 3, H, W) in order,
        as the streaming engine would with ``future_frames`` look-ahead: the frames after
        ``n_out`` serve only as look-ahead, past the clip's end the engine's end-of-stream
        substitutes are used. Returns (N, n_out, 3, H, W) outputs and the state after them
        (for truncated BPTT across clips)."""
        whole = isinstance(future_frames, numbers.Integral) and not isinstance(future_frames, bool)
        if not whole or future_frames not in (0, 1, 2):
            # `model(clip, state)` failed deep in fusion_inputs; 5 ran as 2, -1 as 0
            got = future_frames if whole else type(future_frames).__name__
            raise ValueError(
                f"future_frames must be 0, 1 or 2 (the state goes as state=), got {got}"
            )
        outputs: list[torch.Tensor] = []
        end = clip.shape[1]
        for t in range(end if n_out is None else n_out):
            future = [clip[:, j] for j in range(t + 1, min(t + 1 + future_frames, end))]
            out, state = self.step(fusion_inputs(outputs[-2:], clip[:, t], future), state)
            outputs.append(out)
        return torch.stack(outputs, dim=1), state
