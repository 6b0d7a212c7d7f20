"""Streaming engine: ordering, look-ahead, resets, several streams, formats, devices."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
import torch

from sarn_ros import engine as engine_module
from sarn_ros.archs import SARN, RecurrentSARN
from sarn_ros.engine import DeblurredFrame, StreamDeblurrer

H, W = 48, 64
NS = 33_000_000  # ~30 fps in nanoseconds


@pytest.fixture(scope="module")
def model() -> RecurrentSARN:
    torch.manual_seed(0)
    return RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4).eval()


def frames(n: int, shape: tuple[int, ...] = (H, W, 3), seed: int = 0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype) for _ in range(n)]


def run(engine: StreamDeblurrer, imgs, stamps, stream: str = "default", flush: bool = True):
    out: list[DeblurredFrame] = []
    for i, (img, stamp) in enumerate(zip(imgs, stamps, strict=True)):
        out += engine.push(img, stamp, stream, meta=("m", i))
    if flush:
        out += engine.flush()
    return out


def reference(model: RecurrentSARN, imgs, future_frames: int) -> list[np.ndarray]:
    """The clip through RecurrentSARN.forward, as uint8 images."""
    clip = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in imgs])[None]
    with torch.no_grad():
        out, _ = model(clip, future_frames=future_frames)
    out = (out[0].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return list(out)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize("future_frames", [0, 1, 2])
def test_frames_in_equal_frames_out_and_match_the_model(model, future_frames: int) -> None:
    imgs = frames(6)
    stamps = [1_000 + i * NS for i in range(6)]
    engine = StreamDeblurrer(model, device="cpu", future_frames=future_frames)
    without_flush = run(engine, imgs, stamps, flush=False)
    # Latency in frames: the last `future_frames` frames wait for look-ahead.
    assert [o.stamp for o in without_flush] == stamps[: 6 - future_frames]
    assert engine.stats()["pending"] == future_frames
    out = without_flush + engine.flush()
    assert [o.stamp for o in out] == stamps
    assert [o.meta for o in out] == [("m", i) for i in range(6)]
    assert all(o.stream == "default" and o.image.dtype == np.uint8 for o in out)
    # Same result as the network's own clip forward with that look-ahead (1 LSB: rounding).
    for got, ref in zip(out, reference(model, imgs, future_frames), strict=True):
        assert max_diff(got.image, ref) <= 1
    stats = engine.stats()
    assert stats["frames_in"] == stats["frames_out"] == 6
    assert stats["pending"] == 0


@pytest.mark.parametrize("future_frames", [1, 2])
def test_a_training_clip_with_look_ahead_frames_sees_the_engine_mid_stream(
    model, future_frames: int
) -> None:
    """The trainer gives a clip's last frames the real frames after it (``n_out``): they
    must get what the engine makes of them mid-stream, not its end-of-stream substitutes."""
    imgs = frames(6)
    engine = StreamDeblurrer(model, device="cpu", future_frames=future_frames)
    mid_stream = run(engine, imgs, [1_000 + i * NS for i in range(6)], flush=False)
    n = 6 - future_frames
    assert len(mid_stream) == n
    clip = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in imgs])[None]
    with torch.no_grad():
        out, _ = model(clip, future_frames=future_frames, n_out=n)
    assert out.shape[1] == n
    trained = (out[0].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for got, ref in zip(mid_stream, trained, strict=True):
        assert max_diff(got.image, ref) <= 1
    # a clip cut at its last supervised frame (the old training) ends on substitutes instead
    assert max_diff(mid_stream[-1].image, reference(model, imgs[:n], future_frames)[-1]) > 1


def test_output_depends_on_look_ahead(model) -> None:
    imgs = frames(4)
    stamps = [i * NS for i in range(4)]
    outs = {
        ff: run(StreamDeblurrer(model, device="cpu", future_frames=ff), imgs, stamps)
        for ff in (0, 2)
    }
    assert max_diff(outs[0][0].image, outs[2][0].image) > 0


@pytest.mark.parametrize(
    ("reason", "second_stamps", "second_shape"),
    [
        ("resolution", [10 * NS + i * NS for i in range(3)], (40, 56, 3)),
        ("backwards", [2 * NS + i * NS for i in range(3)], (H, W, 3)),
        ("gap", [10 * NS + 2_000_000_000 + i * NS for i in range(3)], (H, W, 3)),
        ("format", [10 * NS + i * NS for i in range(3)], (H, W)),
    ],
)
def test_reset_triggers_flush_old_segment_and_restart_fresh(
    model, reason: str, second_stamps, second_shape
) -> None:
    first = frames(4, seed=1)
    first_stamps = [7 * NS + i * NS for i in range(4)]
    second = frames(3, second_shape, seed=2)
    engine = StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=0.5)
    out = run(engine, first + second, first_stamps + second_stamps)
    assert [o.stamp for o in out] == first_stamps + second_stamps
    assert engine.stats()["resets_by_reason"][reason] == 1
    assert engine.resets == 1
    # The second segment is computed exactly as by a fresh engine (state really dropped).
    fresh = run(StreamDeblurrer(model, device="cpu", future_frames=2), second, second_stamps)
    for a, b in zip(out[4:], fresh, strict=True):
        assert a.image.shape == second_shape
        assert np.array_equal(a.image, b.image)


def test_no_reset_within_gap_or_on_equal_stamp(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", max_gap_s=0.5)
    run(engine, frames(4), [0, 400_000_000, 400_000_000, 800_000_000])
    assert engine.resets == 0
    run(engine, frames(1), [1_300_000_000])  # exactly max_gap_s: a 2 Hz camera, no gap
    assert engine.resets == 0
    engine = StreamDeblurrer(model, device="cpu", max_gap_s=None)
    run(engine, frames(2), [0, 100 * 10**9])
    assert engine.resets == 0


def test_a_gap_of_exactly_max_gap_s_is_none_whatever_its_float() -> None:
    """2.01 * 1e9 is 2009999999.9999998: stamps exactly 2.01 s apart restarted the stream
    (904 of the values 0.01..360 in steps of 0.01 did so)."""
    from sarn_ros.engine import stamp_break

    for hundredths in range(1, 36001, 7):
        gap_s, ns = hundredths / 100, hundredths * 10_000_000
        assert stamp_break(5, 5 + ns, gap_s) is None, gap_s
        assert stamp_break(5, 5 + ns + 1, gap_s) == "gap", gap_s
    for never in (1e300, float("inf")):  # finite, as the engine takes it: no overflow
        assert stamp_break(0, 10**18, never) is None


def test_explicit_reset_restarts_bit_identically(model) -> None:
    imgs = frames(4)
    stamps = [i * NS for i in range(4)]
    engine = StreamDeblurrer(model, device="cpu", future_frames=1)
    first = [o for i in range(4) for o in engine.push(imgs[i], stamps[i])]
    assert len(first) == 3
    engine.reset()
    later = stamps[-1] + NS
    queued_and_new = engine.push(imgs[0], later)
    # The flushed look-ahead frame of the old segment comes back first.
    assert [o.stamp for o in queued_and_new] == [stamps[3]]
    second = queued_and_new[1:] + [
        o for i in range(1, 4) for o in engine.push(imgs[i], later + i * NS)
    ]
    second += engine.flush()
    assert len(second) == 4
    fresh = run(StreamDeblurrer(model, device="cpu", future_frames=1), imgs, stamps)
    for a, b in zip(second, fresh, strict=True):
        assert np.array_equal(a.image, b.image)
    assert engine.stats()["resets_by_reason"]["explicit"] == 1


def test_changing_future_frames_loses_no_frame(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=2)
    imgs = frames(6)
    out = [o for i in range(3) for o in engine.push(imgs[i], i * NS)]
    assert len(out) == 1
    engine.future_frames = 0
    assert engine.future_frames == 0
    out += [o for i in range(3, 6) for o in engine.push(imgs[i], i * NS)]
    assert [o.stamp for o in out] == [i * NS for i in range(6)]
    assert engine.stats()["resets_by_reason"]["future_frames"] == 1
    assert engine.stats()["resets_by_reason"]["explicit"] == 0
    with pytest.raises(ValueError):
        engine.future_frames = 3


def test_more_look_ahead_mid_stream_gives_the_frames_of_a_fresh_engine(model) -> None:
    """0 -> 2 starts a segment whose look-ahead holds three frames: the one frame kept for
    no look-ahead must not hold them (later frames overwrote earlier ones)."""
    imgs, stamps = frames(6), [i * NS for i in range(6)]
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    out = run(engine, imgs[:3], stamps[:3], flush=False)
    engine.future_frames = 2
    out += run(engine, imgs[3:], stamps[3:])
    assert [o.stamp for o in out] == stamps
    assert engine.stats()["resets_by_reason"]["future_frames"] == 1
    fresh = run(StreamDeblurrer(model, device="cpu", future_frames=2), imgs[3:], stamps[3:])
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out[3:], fresh, strict=True))


def test_a_flush_keeps_the_state_for_the_stream_to_go_on(model) -> None:
    """The node flushes a camera gone quiet: when it comes back within max_gap_s, its frames
    are those of a stream never flushed, its previous outputs and state kept."""
    imgs, stamps = frames(6), [i * NS for i in range(6)]
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    out = run(engine, imgs[:3], stamps[:3]) + run(engine, imgs[3:], stamps[3:])
    whole = run(StreamDeblurrer(model, device="cpu", future_frames=0), imgs, stamps)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, whole, strict=True))
    assert engine.resets == 0


def test_two_streams_batched_equal_two_separate_engines(model) -> None:
    left, right = frames(5, seed=3), frames(5, seed=4)
    stamps = [i * NS for i in range(5)]
    shared = StreamDeblurrer(model, device="cpu", future_frames=1, batch_streams=True)
    one_by_one = StreamDeblurrer(model, device="cpu", future_frames=1)  # the CPU default
    out: list[DeblurredFrame] = []
    for i in range(5):
        items = [("left", left[i], stamps[i], "L"), ("right", right[i], stamps[i], "R")]
        out += shared.push_many(items)
        assert len(one_by_one.push_many(items)) == (2 if i >= 1 else 0)
        if i >= 1:
            assert shared.stats()["last_batch"] == 2  # one forward pass for both streams
            assert one_by_one.stats()["last_batch"] == 1
    out += shared.flush()
    assert one_by_one.stats()["forward_passes"] == 8
    for name, imgs in (("left", left), ("right", right)):
        got = [o for o in out if o.stream == name]
        alone = run(StreamDeblurrer(model, device="cpu", future_frames=1), imgs, stamps)
        assert [o.stamp for o in got] == stamps
        for a, b in zip(got, alone, strict=True):
            assert max_diff(a.image, b.image) <= 1  # batched GEMMs may round differently
    assert shared.stats()["forward_passes"] < 10


def test_push_many_keeps_order_within_a_stream_and_batches_by_size(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    a, b = frames(2), frames(1, (30, 40, 3))
    out = engine.push_many([("a", a[0], 0, 0), ("b", b[0], 0, 1), ("a", a[1], NS, 2)])
    assert [(o.stream, o.meta) for o in out] == [("a", 0), ("b", 1), ("a", 2)]
    assert out[1].image.shape == (30, 40, 3)


def test_batched_cameras_of_two_sizes_go_through_one_pass_per_size(model) -> None:
    """batch_streams (the CUDA default) stacks frames of one size only: a stereo pair of
    different resolutions in one batch would fail torch.cat."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=0, batch_streams=True)
    out = engine.push_many(
        [("a", frames(1)[0], 0, None), ("b", frames(1, (30, 40, 3))[0], 0, None)]
    )
    assert [o.image.shape for o in out] == [(H, W, 3), (30, 40, 3)]
    assert engine.stats()["forward_passes"] == 2


def test_a_change_of_width_alone_is_a_resolution_change(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    run(engine, frames(1) + frames(1, (H, W + 16, 3)), [0, NS])
    assert engine.stats()["resets_by_reason"]["resolution"] == 1
    assert engine.stats()["resets_by_reason"]["format"] == 0


def test_bf16_runs_the_network_in_bf16():
    """A CPU bf16 run that silently stayed fp32 would give none of its speed."""
    from sarn_ros.engine import autocast

    context = autocast(torch.device("cpu"), "bf16")
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    with context:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((321, 481, 3), np.uint8),
        ((1, 1, 3), np.uint8),
        ((1, 1), np.uint8),
        ((37, 29), np.uint8),
        ((37, 29, 1), np.uint8),
        ((24, 32, 3), np.uint16),
        ((24, 32), np.uint16),
    ],
)
def test_odd_sizes_and_formats_round_trip(model, shape, dtype) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=1)
    imgs = frames(3, shape, dtype=dtype)
    out = run(engine, imgs, [0, NS, 2 * NS])
    assert len(out) == 3
    for o in out:
        assert o.image.shape == shape
        assert o.image.dtype == dtype


def test_grey_frames_use_the_rgb_model_on_replicated_channels(model) -> None:
    grey = frames(2, (H, W))
    rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in grey]
    out_grey = run(StreamDeblurrer(model, device="cpu"), grey, [0, NS])
    out_rgb = run(StreamDeblurrer(model, device="cpu"), rgb, [0, NS])
    for g, c in zip(out_grey, out_rgb, strict=True):
        mean = c.image.astype(np.float64).mean(axis=2)
        assert np.abs(g.image - mean).max() <= 1.0


def test_uint16_uses_the_full_range(model) -> None:
    img8 = frames(1)[0]
    img16 = img8.astype(np.uint16) * 257  # same picture, 16-bit scale
    out8 = run(StreamDeblurrer(model, device="cpu"), [img8], [0])[0].image
    out16 = run(StreamDeblurrer(model, device="cpu"), [img16], [0])[0].image
    assert np.abs(out16 / 257.0 - out8).max() <= 1.0


@pytest.mark.parametrize("shape", [(H, W, 3), (H, W)])
def test_uint16_without_torch_uint16_gives_the_same_frames(model, monkeypatch, shape) -> None:
    """PyTorch < 2.3 (distribution builds) has no uint16: 16-bit frames travel as int32."""
    imgs = frames(3, shape, dtype=np.uint16)
    native = run(StreamDeblurrer(model, device="cpu"), imgs, [0, NS, 2 * NS])
    monkeypatch.setitem(engine_module._TORCH_DTYPE, np.dtype(np.uint16), torch.int32)
    engine = StreamDeblurrer(model, device="cpu")
    fallback = run(engine, imgs, [0, NS, 2 * NS])
    assert engine._streams["default"].out_dev.dtype == torch.int32  # the int32 path ran
    for a, b in zip(native, fallback, strict=True):
        assert b.image.dtype == np.uint16 and b.image.shape == shape
        assert np.array_equal(a.image, b.image)


def test_negative_stride_views_are_accepted(model) -> None:
    bgr = frames(1)[0]
    rgb_view = bgr[:, :, ::-1]
    out_view = run(StreamDeblurrer(model, device="cpu"), [rgb_view], [0])[0].image
    out_copy = run(StreamDeblurrer(model, device="cpu"), [rgb_view.copy()], [0])[0].image
    assert np.array_equal(out_view, out_copy)


def test_bad_frames_raise_and_do_not_break_the_stream(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    good = frames(2)
    assert len(engine.push(good[0], 0)) == 1
    for bad in (
        good[0].astype(np.float32),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
    ):
        with pytest.raises(ValueError):
            engine.push(bad, NS)
        with pytest.raises(ValueError):
            engine.push_many([("x", good[1], NS, None), ("y", bad, NS, None)])
    assert len(engine.push(good[1], NS)) == 1
    assert engine.stats()["frames_in"] == engine.stats()["frames_out"] == 2
    # a big-endian frame (from a FITS or PGM reader) is uint16 by name: the error says what
    with pytest.raises(ValueError, match=r"in native byte order, got >u2 \(byte-swapped\)$"):
        engine.push(good[1].astype(">u2"), 2 * NS)


def test_single_image_model_has_no_latency() -> None:
    torch.manual_seed(0)
    single = SARN(channels=8, blocks_per_level=1, attention_stride=4).eval()
    engine = StreamDeblurrer(single, device="cpu", future_frames=2)
    assert engine.future_frames == 0 and not engine.is_recurrent
    img = frames(1)[0]
    out = engine.push(img, 0)
    with torch.no_grad():
        ref = single(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
    ref = (ref[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert len(out) == 1 and max_diff(out[0].image, ref) <= 1


def test_model_loaded_from_checkpoint(tiny_recurrent_checkpoint) -> None:
    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu")
    assert engine.is_recurrent and engine.model_name == str(tiny_recurrent_checkpoint)
    assert engine.device == torch.device("cpu")
    assert not engine.model.training


def test_device_and_precision_choices(model, caplog) -> None:
    assert StreamDeblurrer(model, device="auto").device.type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            StreamDeblurrer(model, device="cuda")
    with caplog.at_level(logging.WARNING):
        assert StreamDeblurrer(model, device="cpu", precision="fp16").precision == "fp32"
    assert "fp16" in caplog.text
    with pytest.raises(ValueError):
        StreamDeblurrer(model, device="cpu", precision="int8")
    bf16 = StreamDeblurrer(model, device="cpu", precision="bf16", future_frames=0)
    out = bf16.push(frames(1)[0], 0)[0].image
    ref = run(StreamDeblurrer(model, device="cpu", future_frames=0), frames(1), [0])[0].image
    assert max_diff(out, ref) <= 12  # bf16 keeps ~3 significant digits


def test_torch_compile_runs_the_compiled_network_with_the_eager_frames(model) -> None:
    from torch._dynamo.utils import counters

    imgs, stamps = frames(4), [i * NS for i in range(4)]
    eager = run(StreamDeblurrer(model, device="cpu"), imgs, stamps)
    graphs = counters["stats"]["unique_graphs"]
    engine = StreamDeblurrer(model, device="cpu", torch_compile=True)
    got = run(engine, imgs, stamps)
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo really compiled the step
    assert engine.compiled and engine.stats()["compiled"]
    assert [o.stamp for o in got] == stamps
    for a, b in zip(eager, got, strict=True):
        assert max_diff(a.image, b.image) <= 1


@pytest.mark.parametrize("when", ["first call", "torch.compile"])
def test_a_failing_compile_falls_back_to_eager_with_one_warning(
    model, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, when: str
) -> None:
    def no_compiler(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError("InductorError: CppCompileError: no C++ compiler\nstack...")

        if when == "torch.compile":  # as an old PyTorch on a new Python does
            raise RuntimeError("no C++ compiler: Dynamo is not supported on this Python")
        return compiled

    monkeypatch.setattr(torch, "compile", no_compiler)
    imgs, stamps = frames(4), [i * NS for i in range(4)]
    with caplog.at_level(logging.WARNING, logger="sarn_ros.engine"):
        engine = StreamDeblurrer(model, device="cpu", torch_compile=True)
        got = run(engine, imgs, stamps)
    assert not engine.compiled and not engine.stats()["compiled"]
    warnings = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler" in warnings[0]
    for a, b in zip(run(StreamDeblurrer(model, device="cpu"), imgs, stamps), got, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    assert not StreamDeblurrer(model, device="cpu").compiled  # off by default


def flaky_network(engine: StreamDeblurrer, fail_on: set[int]):
    """The engine's network, raising (as a transient CUDA out-of-memory) on the listed calls."""
    net, calls = engine._net, [0]

    def call(*args, **kwargs):
        calls[0] += 1
        if calls[0] in fail_on:
            raise RuntimeError("CUDA out of memory (transient)")
        return net(*args, **kwargs)

    engine._net = call


def test_a_push_that_failed_does_not_shift_the_stream(model) -> None:
    """The failed frame stayed in a full look-ahead, and the next frame took its slot: the
    older frame came out with the newer frame's pixels under its own stamp."""
    imgs, stamps = frames(8, seed=11), [i * NS for i in range(8)]
    clean = run(StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=None), imgs, stamps)
    engine = StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=None)
    flaky_network(engine, {2})
    out = []
    for i, (img, stamp) in enumerate(zip(imgs, stamps, strict=True)):
        with contextlib.suppress(RuntimeError):
            out += engine.push(img, stamp, meta=("m", i))
    out += engine.flush()
    assert [o.stamp for o in out] == stamps
    assert [max_diff(a.image, b.image) for a, b in zip(out, clean, strict=True)] == [0] * 8


def test_a_reset_that_failed_loses_no_frame(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=None)
    imgs = frames(2, seed=12)
    engine.push(imgs[0], 0)
    engine.push(imgs[1], NS)
    flaky_network(engine, {2})  # the second of the two look-ahead passes fails
    with pytest.raises(RuntimeError):
        engine.reset()
    out = engine.flush()  # the frame done before the failure, then the other
    assert [o.stamp for o in out] == [0, NS]
    assert engine.stats()["frames_out"] == engine.stats()["frames_in"] == 2


def test_a_flush_that_failed_loses_no_frame(model) -> None:
    """The node flushes a quiet camera: a transient failure there dropped the outputs the
    same flush had already made."""
    imgs, stamps = frames(4, seed=13), [i * NS for i in range(4)]
    clean = run(StreamDeblurrer(model, device="cpu", future_frames=2), imgs, stamps)
    engine = StreamDeblurrer(model, device="cpu", future_frames=2)
    out = run(engine, imgs, stamps, flush=False)  # frames 0 and 1; 2 and 3 wait
    flaky_network(engine, {2})  # frame 2 is made, frame 3's pass fails
    with pytest.raises(RuntimeError):
        engine.flush()
    out += engine.flush()
    assert [o.stamp for o in out] == stamps
    assert [max_diff(a.image, b.image) for a, b in zip(out, clean, strict=True)] == [0] * 4
    assert engine.stats()["frames_out"] == engine.stats()["frames_in"] == 4


def test_a_failed_flush_of_one_camera_keeps_the_outputs_queued_for_another(model) -> None:
    """flush(stream) sets the other streams' queued outputs aside; a failure then put back
    only its own, so another camera's reset look-ahead was gone and frames_out fell short."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=None)
    img = frames(1, seed=16)[0]
    for i in range(3):
        for cam in ("a", "b"):
            engine.push(img, i * NS, stream=cam, meta=(cam, i))
    engine.reset("b")  # b's frames 1 and 2 are made and queued
    flaky_network(engine, {1})
    with pytest.raises(RuntimeError):
        engine.flush("a")
    out = engine.flush()
    assert sorted(o.meta for o in out) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    s = engine.stats()
    assert (s["frames_in"], s["frames_out"], s["pending"]) == (6, 6, 0)


def test_a_failure_on_one_camera_keeps_the_frame_made_for_another(model) -> None:
    """Cameras run one after another on a CPU: the first camera's frame, already made, was
    lost with the second's failure."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    a, b = frames(2, seed=15)
    flaky_network(engine, {2})
    with pytest.raises(RuntimeError):
        engine.push_many([("left", a, 0, "a0"), ("right", b, 0, "b0")])
    out = engine.push_many([("left", a, NS, "a1"), ("right", b, NS, "b1")])
    assert [o.meta for o in out] == ["a0", "b0", "a1", "b1"]
    assert engine.stats()["frames_out"] == engine.stats()["frames_in"] == 4


def test_a_stream_whose_network_keeps_failing_restarts_on_an_error_reset(model, caplog) -> None:
    """A failure that repeats (out of memory at one resolution) wedged the stream: its
    look-ahead was drained before every restart, reset(reason="error") included, so every
    later push, reset and flush raised the same error and the node's camera never recovered."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=None)
    imgs = frames(3, seed=16)
    engine.push(imgs[0], 0, "cam")
    engine.push(imgs[1], NS, "cam")
    net = engine._net

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory at this size")

    engine._net = broken
    with pytest.raises(RuntimeError):
        engine.push(imgs[2], 2 * NS, "cam")  # taken, its forward pass fails
    with pytest.raises(RuntimeError):
        engine.reset("cam")  # another reason: raised, the stream kept for a retry
    with caplog.at_level(logging.WARNING, logger="sarn_ros.engine"):
        engine.reset("cam", reason="error")
    assert "3 pending frame(s) dropped" in caplog.text
    stats = engine.stats()
    assert stats["streams"] == [] and stats["frames_lost"] == 3 and stats["pending"] == 0
    assert stats["resets_by_reason"]["error"] == 1
    engine._net = net
    small = frames(1, shape=(24, 32, 3), seed=17)[0]
    out = engine.push(small, 3 * NS, "cam") + engine.flush()
    assert [o.stamp for o in out] == [3 * NS]


def test_an_error_reset_after_a_transient_failure_loses_nothing(model) -> None:
    engine = StreamDeblurrer(model, device="cpu", future_frames=2, max_gap_s=None)
    imgs = frames(3, seed=18)
    engine.push(imgs[0], 0)
    engine.push(imgs[1], NS)
    flaky_network(engine, {1})
    with pytest.raises(RuntimeError):
        engine.push(imgs[2], 2 * NS)
    engine.reset(reason="error")
    assert [o.stamp for o in engine.flush()] == [0, NS, 2 * NS]
    assert engine.stats()["frames_lost"] == 0


def test_flush_of_one_stream_returns_only_its_outputs(model) -> None:
    """flush("B") also returned stream A's queued outputs, to B's consumer."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=2)
    a, b = frames(2, seed=19)
    engine.push_many([("A", a, 0, None), ("B", b, 0, None)])
    engine.reset("A")  # A's look-ahead is queued for the next call
    assert [o.stream for o in engine.flush("B")] == ["B"]
    assert [o.stream for o in engine.flush("A")] == ["A"]
    assert engine.stats()["pending"] == 0


@pytest.mark.parametrize(
    ("name", "stamp", "match"),
    [
        (0, 0, "stream names are str"),
        (None, 0, "stream names are str"),
        ("cam", 1.7e9, "stamps are int nanoseconds"),
        ("cam", "1700000000", "stamps are int nanoseconds"),
        ("cam", True, "stamps are int nanoseconds"),
    ],
)
def test_a_name_or_stamp_of_another_type_is_refused(model, name, stamp, match) -> None:
    """int() kept whole seconds of a float stamp (a 5 s gap unseen, outputs under another
    stamp); a name 0 beside "cam0" broke stats(), and was stream "0" in a self-ensemble."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=0)
    img = frames(1)[0]
    with pytest.raises(TypeError, match=match):
        engine.push(img, stamp, name)
    assert engine.stats()["frames_in"] == 0
    out = engine.push(img, np.int64(5), "cam")  # numpy integers are whole nanoseconds
    assert [(o.stamp, type(o.stamp)) for o in out] == [(5, int)]


def test_a_model_or_items_of_another_kind_are_named(model) -> None:
    """None as the model was pathlib's "expected str, bytes or os.PathLike object"; a
    push_many item without its meta Python's "not enough values to unpack (expected 4, got
    3)"; a reset reason the engine does not count passed a self-ensemble with no stream."""
    from sarn_ros.ensemble import SelfEnsembleDeblurrer

    for bad in (None, 123):
        with pytest.raises(TypeError, match=r"^model is an nn.Module, a weights path or a pack"):
            StreamDeblurrer(bad, device="cpu")
    img = frames(1)[0]
    for engine in (
        StreamDeblurrer(model, device="cpu"),
        SelfEnsembleDeblurrer(model, members=2, device="cpu"),
    ):
        for items, got in (([("a", img, 0)], "a 3-tuple"), ({"a": img}, "a 'a'")):
            with pytest.raises(ValueError, match=rf"meta\) items, got {got}$"):
                engine.push_many(items)
        assert engine.stats()["frames_in"] == 0
        with pytest.raises(ValueError, match="reset reason must be one of"):
            engine.reset(reason="x")


def test_a_model_not_in_float32_is_refused_at_construction(model) -> None:
    """A float64 model was taken, and failed at the third push, wedging the stream."""
    import copy

    with pytest.raises(ValueError, match=r"float32 \(model.float\(\)\)"):
        StreamDeblurrer(copy.deepcopy(model).double(), device="cpu")


def test_a_16_bit_frame_with_an_odd_row_step_is_taken(model) -> None:
    """A ROS Image's step may be any byte count: rows of a uint16 frame then start between
    elements, which torch cannot view (it raised after other cameras' frames were taken)."""
    img = frames(1, dtype=np.uint16, seed=14)[0]
    step = W * 3 * 2 + 1
    buf = np.zeros(H * step + 1, np.uint8)
    odd = np.ndarray((H, W, 3), np.uint16, buf, 1, (step, 6, 2))  # offset 1: unaligned too
    odd[...] = img
    assert odd.strides[0] % 2 == 1
    a = run(StreamDeblurrer(model, device="cpu"), [odd], [0])[0].image
    b = run(StreamDeblurrer(model, device="cpu"), [img], [0])[0].image
    assert a.dtype == np.uint16 and max_diff(a, b) == 0


def test_settings_are_checked_when_changed_too(model) -> None:
    engine = StreamDeblurrer(model, device="cpu")
    for bad in (1.7, 1.0, True, 3, -1):  # 1.0 became 1 where members=4.0 is refused
        with pytest.raises(ValueError, match="future_frames"):
            engine.future_frames = bad
    assert engine.future_frames == 2
    engine.future_frames = np.int64(1)  # a numpy count is fine
    assert engine.future_frames == 1 and type(engine.future_frames) is int
    for bad in (float("nan"), float("inf"), "0.5", True, [1]):  # "0.5": a TypeError, unnamed
        with pytest.raises(ValueError, match="max_gap_s"):
            StreamDeblurrer(model, device="cpu", max_gap_s=bad)
    assert StreamDeblurrer(model, device="cpu", max_gap_s=np.float32(0.25)).max_gap_s == 0.25
    with pytest.raises(ValueError, match="precision"):
        engine.precision = "fp64"
    assert engine.precision == "fp32"
    with pytest.raises(ValueError, match="max_gap_s"):
        engine.max_gap_s = -1
    engine.max_gap_s = 0  # as the node's parameter: off
    assert engine.max_gap_s is None
    with pytest.raises(ValueError, match="device"):
        StreamDeblurrer(model, device="meta")  # would have wiped the model's weights
    assert next(model.parameters()).device.type == "cpu"
    from sarn_ros.ensemble import SelfEnsembleDeblurrer

    for members in (4.0, True):
        with pytest.raises(ValueError, match="members"):
            SelfEnsembleDeblurrer(model, members=members, device="cpu")


def test_native_bf16_is_read_from_the_cpu_flags():
    from sarn_ros.engine import native_bf16

    zen4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
    skylake = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
    sapphire = "flags\t\t: avx512f amx_bf16 amx_tile\n"
    graviton3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
    orin = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics\n"
    found = [native_bf16(text) for text in (zen4, skylake, sapphire, graviton3, orin, "")]
    assert found == [True, False, True, True, False, False]


def test_the_faster_cpu_setting_follows_native_bf16():
    from sarn_ros.engine import faster_cpu_setting

    assert faster_cpu_setting("fp32", False, bf16_native=True) == "bf16"
    assert faster_cpu_setting("bf16", False, bf16_native=True) == "bf16"  # compiled is the fast one
    assert faster_cpu_setting("bf16", True, bf16_native=True) is None
    assert faster_cpu_setting("fp32", False, bf16_native=False) == "export"
    assert faster_cpu_setting("bf16", True, bf16_native=False) == "export"


def test_a_network_failure_under_torch_compile_keeps_the_compiled_network(
    model, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame too big for the device fails eagerly too: that is no compiler fault, yet it
    switched the compiled network off for good, every later frame running eagerly."""
    calls = {"compiled": 0}

    def compile_passthrough(fn, **kwargs):
        def compiled(*args):
            calls["compiled"] += 1
            return fn(*args)

        return compiled

    step = model.step

    def out_of_memory(stack, state):
        if stack.shape[-1] > W:
            raise RuntimeError("CUDA out of memory")
        return step(stack, state)

    monkeypatch.setattr(torch, "compile", compile_passthrough)
    monkeypatch.setattr(model, "step", out_of_memory)
    engine = StreamDeblurrer(model, device="cpu", future_frames=0, torch_compile=True)
    with caplog.at_level(logging.WARNING, logger="sarn_ros.engine"), pytest.raises(RuntimeError):
        engine.push(frames(1, (H, 2 * W, 3))[0], 0, "big")
    assert engine.compiled and "torch.compile" not in caplog.text
    assert len(engine.push(frames(1)[0], 0)) == 1 and calls["compiled"] == 2


def test_batched_streams_keep_each_streams_own_recurrent_state(model) -> None:
    """Each camera of a batched pass carries its own ConvLSTM state on to its next frame,
    the same state a separate engine keeps (up to floating-point reordering)."""
    cams = {"left": frames(4, seed=3), "right": frames(4, seed=4), "top": frames(4, seed=5)}
    stamps = [i * NS for i in range(4)]
    shared = StreamDeblurrer(model, device="cpu", future_frames=0, batch_streams=True)
    for i in range(4):
        shared.push_many([(name, imgs[i], stamps[i], None) for name, imgs in cams.items()])
        assert shared.stats()["last_batch"] == 3
    for name, imgs in cams.items():
        alone = StreamDeblurrer(model, device="cpu", future_frames=0)
        run(alone, imgs, stamps, stream=name)
        for got, want in zip(shared._streams[name].state, alone._streams[name].state, strict=True):
            assert want.abs().max() > 1e-4  # the state carries something to tell apart
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_a_change_of_bit_depth_alone_resets_the_stream(model) -> None:
    """The pixel format is part of a stream's format: uint8 -> uint16 at the same size and
    channels restarts it (reason "format"), the 16-bit frames come out as a fresh engine's."""
    first = frames(3, seed=1)
    second = frames(3, seed=2, dtype=np.uint16)
    stamps = [i * NS for i in range(6)]
    engine = StreamDeblurrer(model, device="cpu", future_frames=1)
    out = run(engine, first + second, stamps)
    assert engine.stats()["resets_by_reason"]["format"] == 1
    assert engine.resets == 1
    fresh = run(StreamDeblurrer(model, device="cpu", future_frames=1), second, stamps[3:])
    for a, b in zip(out[3:], fresh, strict=True):
        assert a.image.dtype == np.uint16
        assert np.array_equal(a.image, b.image)


def test_outputs_are_rounded_to_the_nearest_level_not_truncated(model) -> None:
    """Quantising the network's output to integers rounds: over many pixels the error
    against the float output averages ~0 (truncation would make the picture 0.5 LSB dark)."""
    imgs = frames(2, seed=7)
    out = run(StreamDeblurrer(model, device="cpu", future_frames=1), imgs, [0, NS])
    clip = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in imgs])[None]
    with torch.no_grad():
        ref, _ = model(clip, future_frames=1)
    ref = (ref[0].clamp(0, 1) * 255).permute(0, 2, 3, 1).numpy().astype(np.float64)
    for got, want in zip(out, ref, strict=True):
        err = got.image.astype(np.float64) - want
        assert np.abs(err).max() <= 0.5 + 1e-3
        assert abs(err.mean()) < 0.1


def test_pending_counts_outputs_queued_by_a_reset(model) -> None:
    """stats()["pending"] counts the frames held in look-ahead buffers or queued outputs:
    a reset moves the look-ahead into the queue, the frames are still pending."""
    engine = StreamDeblurrer(model, device="cpu", future_frames=2)
    imgs = frames(3)
    out: list[DeblurredFrame] = []
    for i in range(3):
        out += engine.push(imgs[i], i * NS)
    assert len(out) == 1 and engine.stats()["pending"] == 2
    engine.reset()
    assert engine.stats()["streams"] == []
    assert engine.stats()["pending"] == 2  # queued for the next call
    out += engine.flush()
    assert [o.stamp for o in out] == [0, NS, 2 * NS]
    assert engine.stats()["pending"] == 0


def test_setting_future_frames_to_its_current_value_changes_nothing(model) -> None:
    imgs = frames(6, seed=9)
    stamps = [i * NS for i in range(6)]
    engine = StreamDeblurrer(model, device="cpu", future_frames=2)
    out = run(engine, imgs[:3], stamps[:3], flush=False)
    engine.future_frames = 2  # e.g. a ROS parameter set again to the value it has
    assert engine.resets == 0 and engine.stats()["pending"] == 2
    out += run(engine, imgs[3:], stamps[3:])
    uninterrupted = run(StreamDeblurrer(model, device="cpu", future_frames=2), imgs, stamps)
    assert [o.stamp for o in out] == stamps
    for a, b in zip(out, uninterrupted, strict=True):
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("device", ["foo", "gpu", "meta", "cuda:x", None])
def test_a_device_other_than_cpu_or_cuda_is_refused_naming_the_four_choices(device):
    """torch's own message for 'foo' lists some twenty device types the tools do not take."""
    with pytest.raises(ValueError, match=r"^device must be auto, cpu, cuda or cuda:N, got"):
        engine_module.resolve_device(device)
