"""Time per frame of several camera streams through one engine: batched into one forward pass
per round (``batch_streams=True``, the CUDA default) against one pass per stream (the CPU
default), for the README's figures on why a CPU runs them singly.

    .venv/bin/python scripts/bench_streams.py [--streams 4] [--sizes 320x240 640x480]
        [--rounds 4] [--device cpu] [--weights sarn_recurrent]
"""

from __future__ import annotations

import argparse
import time

from sarn_ros.checkpoint import CheckpointError
from sarn_ros.tools.options import how_stopped, ranged, stops_as_interrupts

WARM_ROUNDS = 3  # the look-ahead filled and the first passes' allocations made


def size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    digits = all(t.isascii() and t.isdigit() for t in (w, h))
    if not (digits and 16 <= int(w) <= 4096 and 16 <= int(h) <= 4096):
        raise argparse.ArgumentTypeError(f"{text!r}: WIDTHxHEIGHT, 16 to 4096 a side")
    return int(w), int(h)


def ms_per_frame(args: argparse.Namespace, wh: tuple[int, int], batched: bool) -> float:
    """Median over rounds of one push_many round's time, per frame (a round: one frame of each
    stream, and the outputs it makes ready)."""
    import statistics

    import numpy as np

    from sarn_ros.engine import StreamDeblurrer

    engine = StreamDeblurrer(args.weights, device=args.device, batch_streams=batched)
    w, h = wh
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    times = []
    for r in range(WARM_ROUNDS + args.rounds):
        items = [(f"cam{s}", frame, r * 50_000_000, None) for s in range(args.streams)]
        t = time.perf_counter()
        engine.push_many(items)
        if engine.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        if r >= WARM_ROUNDS:
            times.append(time.perf_counter() - t)
    if batched and engine.stats()["last_batch"] < args.streams:
        raise SystemExit(f"the engine did not batch the {args.streams} streams")
    return 1e3 * statistics.median(times) / args.streams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=ranged(int, 2, 16), default=4)
    ap.add_argument("--sizes", type=size, nargs="+", default=[(320, 240), (640, 480)])
    ap.add_argument("--rounds", type=ranged(int, 1, 1000), default=4)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--weights", default="sarn_recurrent", help="checkpoint path or packaged name")
    args = ap.parse_args()
    try:
        with stops_as_interrupts():  # `timeout`'s SIGTERM as Ctrl-C
            for wh in args.sizes:
                single = ms_per_frame(args, wh, batched=False)
                batch = ms_per_frame(args, wh, batched=True)
                print(
                    f"{wh[0]}x{wh[1]}, {args.streams} streams on {args.device}: "
                    f"{batch:.0f} ms per frame batched, {single:.0f} ms one pass per stream",
                    flush=True,
                )
    except (CheckpointError, ValueError, RuntimeError) as exc:  # weights, a device not there
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    except KeyboardInterrupt as exc:
        how, code = how_stopped(exc)
        ap.exit(code, f"{ap.prog}: {how}\n")


if __name__ == "__main__":
    main()
