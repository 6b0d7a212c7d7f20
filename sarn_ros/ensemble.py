"""Geometric self-ensemble: the same stream deblurred K times under flips/transposes, averaged.

Why: it raises quality without new weights, for users who can pay K times the compute (offline
bags and videos, or a GPU with headroom). Measured on the shipped ``sarn_recurrent``
(docs/measurements.md, "Self-ensemble"), 4 members gave +0.1 to +0.35 dB on every ground-truth
set.

Each member is an ordinary engine stream (named ``<stream>#<k>``) that sees the transformed
frames and carries its own recurrent state and previous outputs, so look-ahead, substitutes,
resets and batching are exactly the engine's (on CUDA, members of equal size go through one
batched forward pass). Outputs are mapped back, averaged in float and rounded to the frame
dtype.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .engine import (
    RESET_REASONS,
    DeblurredFrame,
    StreamDeblurrer,
    check_frame,
    check_item,
    check_name,
    check_reason,
)

Transform = Callable[[np.ndarray], np.ndarray]


def _t(x: np.ndarray) -> np.ndarray:
    return x.swapaxes(0, 1)


# (forward, inverse) on the first two axes of HxW or HxWxC frames; the first 2/4/8 are used.
TRANSFORMS: tuple[tuple[Transform, Transform], ...] = (
    (lambda x: x, lambda x: x),
    (lambda x: x[:, ::-1], lambda x: x[:, ::-1]),
    (lambda x: x[::-1], lambda x: x[::-1]),
    (lambda x: x[::-1, ::-1], lambda x: x[::-1, ::-1]),
    (_t, _t),
    (lambda x: _t(x)[:, ::-1], lambda x: _t(x[:, ::-1])),
    (lambda x: _t(x)[::-1], lambda x: _t(x[::-1])),
    (lambda x: _t(x)[::-1, ::-1], lambda x: _t(x[::-1, ::-1])),
)
MEMBERS = (1, 2, 4, 8)
_SEP = "#"


class SelfEnsembleDeblurrer(StreamDeblurrer):
    """A :class:`StreamDeblurrer` whose every stream is deblurred by ``members`` transformed
    copies (1 = plain engine, 2 = + horizontal flip, 4 = all flips, 8 = flips x transpose).

    Same public API and semantics as the engine; :meth:`stats` counts user frames and streams.
    """

    def __init__(self, *args: Any, members: int = 4, **kwargs: Any) -> None:
        if type(members) is not int or members not in MEMBERS:  # 4.0 or True slip through `in`
            raise ValueError(f"self-ensemble members must be one of {MEMBERS}, got {members!r}")
        self.members = members
        # per user stream, per member: inverse-transformed outputs waiting for the others
        self._parts: dict[str, list[deque[DeblurredFrame]]] = {}
        super().__init__(*args, **kwargs)

    def push_many(self, items: Sequence[tuple[str, np.ndarray, int, Any]]) -> list[DeblurredFrame]:
        items = [check_item(item) for item in items]  # read twice: an iterator would be empty
        for name, frame, _, _ in items:  # validate before transforming (frame may not be an
            check_name(name)  # array; a name 0 would be "0#k" below)
            check_frame(frame)
        expanded = [
            (f"{name}{_SEP}{k}", fwd(np.asarray(frame)), stamp, meta)  # np.matrix stays 2-D
            for name, frame, stamp, meta in items
            for k, (fwd, _) in enumerate(TRANSFORMS[: self.members])
        ]
        with self._lock:
            try:
                return self._merge(super().push_many(expanded))
            except Exception:
                self._restart(self._out_of_step({name for name, *_ in items}))
                raise

    def flush(self, stream: str | None = None) -> list[DeblurredFrame]:
        with self._lock:
            if stream is None:
                return self._merge(super().flush())
            check_name(stream)  # 0 would flush stream "0"'s members
            out: list[DeblurredFrame] = []
            try:
                for k in range(self.members):
                    out += super().flush(f"{stream}{_SEP}{k}")
            except Exception:  # the members flushed so far keep their outputs for the next
                # call (the failed one queued its own), so the averages stay in step
                self._queued = out + self._queued
                self.frames_out -= len(out)  # counted again when returned
                raise
            return self._merge(out)

    def reset(self, stream: str | None = None, reason: str = "explicit") -> None:
        if stream is not None:
            check_name(stream)
        check_reason(reason)  # the members check it too, but only where there are members
        with self._lock:
            users = {n.rsplit(_SEP, 1)[0] for n in self._streams} if stream is None else {stream}
            broken = set()
            try:
                for name in users:
                    lost = self.frames_lost
                    for k in range(self.members):
                        super().reset(f"{name}{_SEP}{k}", reason)
                    if self.frames_lost != lost:
                        broken.add(name)
            except Exception:  # a member whose flush failed kept its old segment, the ones
                # before it were dropped: their next frames would be averaged out of step
                self._restart(self._out_of_step(users), reason)
                raise
            # reason "error": a member dropped its look-ahead where others emitted theirs,
            # which have nothing left to be averaged with
            self._restart(broken, reason)

    def stats(self) -> dict[str, Any]:
        with self._lock:  # one consistent snapshot of the engine and the waiting parts
            s = super().stats()
            waiting = sum(len(q) for parts in self._parts.values() for q in parts)
        k = self.members
        s["frames_in"] //= k
        s["frames_out"] = (s["frames_out"] - waiting) // k
        s["pending"] = (s["pending"] + waiting) // k
        # taken, never emitted: members' dropped look-ahead and the parts a restart let go
        s["frames_lost"] = max(0, s["frames_in"] - s["frames_out"] - s["pending"])
        s["resets_by_stream"] = users = self._user_resets(s["resets_by_stream"])
        s["resets_by_reason"] = {r: sum(c[r] for c in users.values()) for r in RESET_REASONS}
        s["resets"] = sum(s["resets_by_reason"].values())
        s["streams"] = sorted({n.rsplit(_SEP, 1)[0] for n in s["streams"]})
        s["self_ensemble"] = k
        return s

    @property
    def resets(self) -> int:
        with self._lock:  # a push adding a stream meanwhile
            users = self._user_resets(self.resets_by_stream)
        return sum(sum(c.values()) for c in users.values())

    def _user_resets(self, by_member: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """Member reset counts as each user stream's: all its members reset together, but a
        restart after a failure counts only the members that held frames (a first frame
        taken by some): floored per stream, where the totals' floor counted half-restarts of
        two streams as one that neither showed."""
        users: dict[str, dict[str, int]] = {}
        for name, counts in by_member.items():
            user = users.setdefault(name.rsplit(_SEP, 1)[0], dict.fromkeys(RESET_REASONS, 0))
            for r, n in counts.items():
                user[r] += n
        return {u: {r: n // self.members for r, n in c.items()} for u, c in users.items()}

    def _out_of_step(self, names: set[str]) -> set[str]:
        """The streams among ``names`` whose members did not all take the same frames (a push
        that failed part way through uploading them). Members that took the same frames are
        in step even where a failed forward pass left some outputs unmade: the engine makes
        them first at the next call, in order. Callers hold the lock."""

        def taken(member: str) -> tuple | None:
            s = self._streams.get(member)
            if s is None:
                return None
            h, w, *rest = s.fmt  # a transposed member's frames are W x H: the same frames
            return (min(h, w), max(h, w), *rest, s.counter, s.last_stamp)

        return {n for n in names if len({taken(f"{n}{_SEP}{k}") for k in range(self.members)}) > 1}

    def _restart(self, names: set[str], reason: str = "error") -> None:
        """After a failed push some members may hold the frame and others not: forget those
        streams' member states, queued outputs and waiting parts, so that their next frame
        starts every member afresh and in step (a reset for ``reason``, which a failed reset
        keeps: its members reset before the failure counted it)."""
        members = {f"{n}{_SEP}{k}" for n in names for k in range(self.members)}
        self._queued = [o for o in self._queued if o.stream not in members]
        for m in members:
            if self._streams.pop(m, None) is not None:
                self._count_reset(m, reason)
        for n in names:
            self._parts.pop(n, None)

    def _merge(self, outs: list[DeblurredFrame]) -> list[DeblurredFrame]:
        """Member outputs -> averaged user outputs, in each stream's order (members run in
        lockstep: they get the same stamps, so they emit and reset together)."""
        touched: list[str] = []
        for o in outs:
            name, k = o.stream.rsplit(_SEP, 1)
            parts = self._parts.setdefault(name, [deque() for _ in range(self.members)])
            inv = TRANSFORMS[int(k)][1]
            parts[int(k)].append(DeblurredFrame(inv(o.image), o.stamp, name, o.meta))
            if name not in touched:
                touched.append(name)
        merged: list[DeblurredFrame] = []
        for name in touched:
            parts = self._parts[name]
            while all(parts):
                frames = [q.popleft() for q in parts]
                first = frames[0]
                acc = np.zeros(first.image.shape, np.float32)
                for f in frames:
                    acc += f.image
                acc *= 1.0 / len(frames)
                image = np.rint(acc).astype(first.image.dtype)
                merged.append(DeblurredFrame(image, first.stamp, name, first.meta))
            if not any(parts):
                del self._parts[name]
        return merged


def make_engine(
    model: nn.Module | str | Path = "sarn_recurrent", self_ensemble: int = 1, **kwargs: Any
) -> StreamDeblurrer:
    """The plain engine, or a self-ensemble of ``self_ensemble`` members (2, 4 or 8)."""
    if self_ensemble == 1:
        return StreamDeblurrer(model, **kwargs)
    return SelfEnsembleDeblurrer(model, members=self_ensemble, **kwargs)
