"""Self-ensemble: K transformed member streams through the engine, mapped back and averaged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import flaky_network  # the engine's network, failing on chosen calls

from sarn_ros.archs import SARN, RecurrentSARN
from sarn_ros.engine import StreamDeblurrer
from sarn_ros.ensemble import TRANSFORMS, SelfEnsembleDeblurrer, make_engine

H, W = 24, 40  # not square: transposed members run as their own batch
NS = 33_000_000


@pytest.fixture(scope="module")
def model() -> RecurrentSARN:
    torch.manual_seed(0)
    return RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4).eval()


def frames(n: int, shape: tuple[int, ...] = (H, W, 3), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def push_all(engine: StreamDeblurrer, imgs: list[np.ndarray], stream: str = "default") -> list:
    out = []
    for i, f in enumerate(imgs):
        out += engine.push(f, 1_000 + i * NS, stream, meta=i)
    return out + engine.flush()


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize("members", [2, 4, 8])
def test_equals_the_mean_of_separate_engines_on_transformed_streams(model, members) -> None:
    imgs = frames(5)
    got = push_all(SelfEnsembleDeblurrer(model, members=members, device="cpu"), imgs)
    assert [o.stamp for o in got] == [1_000 + i * NS for i in range(5)]
    assert [o.meta for o in got] == list(range(5))
    assert {o.stream for o in got} == {"default"}
    members_out = []
    for fwd, inv in TRANSFORMS[:members]:
        plain = StreamDeblurrer(model, device="cpu")
        outs = push_all(plain, [np.ascontiguousarray(fwd(f)) for f in imgs])
        members_out.append([inv(o.image).astype(np.float32) for o in outs])
    for i, o in enumerate(got):
        assert o.image.shape == (H, W, 3) and o.image.dtype == np.uint8
        expected = np.rint(np.mean([m[i] for m in members_out], axis=0))
        assert diff(o.image, expected) <= 1  # float reordering only
    # The members really differ (the model is not flip-equivariant), so the mean is not a copy.
    assert diff(members_out[0][2], members_out[1][2]) > 2
    assert diff(got[2].image, members_out[0][2].astype(np.uint8)) > 0


def test_grey_and_uint16_frames_keep_their_shape_and_dtype(model) -> None:
    engine = SelfEnsembleDeblurrer(model, members=8, device="cpu", future_frames=1)
    grey = [f[:, :, 0] for f in frames(3)]
    out = push_all(engine, grey, "grey")
    assert [o.image.shape for o in out] == [(H, W)] * 3
    deep = [f.astype(np.uint16) * 257 for f in frames(2, seed=1)]
    out = push_all(engine, deep, "deep")
    assert [(o.image.shape, o.image.dtype) for o in out] == [((H, W, 3), np.uint16)] * 2


def test_a_grey_np_matrix_frame_is_taken_as_its_array(model) -> None:
    """The plain engine takes an np.matrix (a 2-D ndarray subclass); the ensemble's flip kept
    it a matrix, which the engine's HxW -> HxWx1 could not make 3-D (a numpy broadcast error)."""
    grey = [f[:, :, 0] for f in frames(2)]
    as_arrays = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), grey)
    matrices = push_all(
        SelfEnsembleDeblurrer(model, members=2, device="cpu"), [np.asmatrix(g) for g in grey]
    )
    assert all(np.array_equal(a.image, m.image) for a, m in zip(as_arrays, matrices, strict=True))


def test_streams_stay_separate_and_stats_count_user_frames(model) -> None:
    engine = SelfEnsembleDeblurrer(model, members=4, device="cpu", future_frames=2)
    a, b = frames(4, seed=2), frames(4, seed=3)
    out = []
    for i in range(4):
        out += engine.push_many([("a", a[i], i * NS, None), ("b", b[i], i * NS, None)])
    stats = engine.stats()
    assert stats["frames_in"] == 8 and stats["frames_out"] == 4 and stats["pending"] == 4
    assert stats["streams"] == ["a", "b"] and stats["self_ensemble"] == 4
    out += engine.flush("a")
    assert engine.stats()["pending"] == 2
    out += engine.flush()
    for name, src in (("a", a), ("b", b)):
        mine = [o for o in out if o.stream == name]
        assert [o.stamp for o in mine] == [i * NS for i in range(4)]
        alone = push_all(SelfEnsembleDeblurrer(model, members=4, device="cpu"), src, name)
        assert max(diff(x.image, y.image) for x, y in zip(mine, alone, strict=True)) <= 1
    assert engine.stats()["frames_out"] == 8


def test_resets_and_look_ahead_changes_apply_to_every_member(model) -> None:
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=2)
    imgs = frames(6, seed=4)
    out = []
    for i in range(3):
        out += engine.push(imgs[i], i * NS)
    out += engine.push(imgs[3], 0)  # backwards: the held look-ahead comes out, state resets
    assert [o.stamp for o in out] == [0, NS, 2 * NS]
    engine.reset("default")
    engine.future_frames = 0
    out = engine.push(imgs[4], NS)
    assert [o.stamp for o in out] == [0, NS]
    stats = engine.stats()
    assert stats["resets_by_reason"]["backwards"] == 1
    assert stats["resets_by_reason"]["explicit"] == 1
    assert stats["resets"] == 2 == engine.resets
    assert stats["frames_in"] == stats["frames_out"] == 5 and stats["pending"] == 0


def test_bad_input_is_rejected_before_any_member_takes_it(model) -> None:
    engine = SelfEnsembleDeblurrer(model, members=4, device="cpu")
    good = frames(1)[0]
    with pytest.raises(ValueError):
        engine.push_many([("a", good, 0, None), ("b", good.astype(np.float32), 0, None)])
    with pytest.raises(ValueError):
        engine.push(np.zeros((H, W, 2), np.uint8), 0)
    assert engine.stats()["frames_in"] == 0
    with pytest.raises(ValueError, match="members"):
        SelfEnsembleDeblurrer(model, members=3, device="cpu")


@pytest.mark.parametrize("members", [2, 4])
def test_frames_one_pixel_wide_or_high(model, members) -> None:
    """A flipped size-1 axis keeps a negative stride through np.ascontiguousarray, which torch
    refused: the first member took the frame, the second raised, and the stream stayed broken."""
    imgs = [frames(1, (H, W, 3))[0], *frames(1, (H, 1, 3), 1), *frames(1, (1, W, 3), 2)]
    imgs.append(frames(1, (H, W, 3), 3)[0])
    engine = SelfEnsembleDeblurrer(model, members=members, device="cpu")
    got = push_all(engine, imgs)
    assert [o.image.shape for o in got] == [f.shape for f in imgs]
    assert [o.meta for o in got] == [0, 1, 2, 3]
    plain = StreamDeblurrer(model, device="cpu", future_frames=0)  # a flipped 1-pixel view
    assert len(plain.push_many([("a", imgs[0], 0, None), ("b", np.flipud(imgs[2]), 0, None)])) == 2


def test_an_iterator_of_frames_is_taken_whole(model) -> None:
    imgs = frames(3, seed=6)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=0)
    out = engine.push_many(("s", f, i * NS, i) for i, f in enumerate(imgs))
    assert [o.meta for o in out] == [0, 1, 2] and engine.stats()["frames_in"] == 3


def fail_the_second_member(monkeypatch) -> None:
    """Member 1 fails to take its frame (out of memory, say) after member 0 took it."""
    accept = StreamDeblurrer._accept

    def second_member_fails(self, name, *args):
        if name.endswith("1"):
            raise RuntimeError("out of memory")
        return accept(self, name, *args)

    monkeypatch.setattr(StreamDeblurrer, "_accept", second_member_fails)


def test_a_failed_push_restarts_the_members_in_step(model, monkeypatch) -> None:
    """One member failing after another took the frame (out of memory, say) must not leave
    them a frame apart: the stream starts afresh, like a fresh ensemble on the later frames."""
    imgs = frames(5, seed=7)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=0)
    out = engine.push(imgs[0], 0) + engine.push(imgs[1], NS)
    fail_the_second_member(monkeypatch)
    with pytest.raises(RuntimeError):
        engine.push(imgs[2], 2 * NS)
    monkeypatch.undo()
    later = [engine.push(imgs[i], i * NS, meta=i) for i in (3, 4)]
    fresh = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=0)
    expected = [fresh.push(imgs[i], i * NS, meta=i) for i in (3, 4)]
    assert [[o.meta for o in b] for b in later] == [[3], [4]]
    for a, b in zip(later, expected, strict=True):
        assert diff(a[0].image, b[0].image) == 0
    assert [o.stamp for o in out] == [0, NS] and engine.stats()["pending"] == 0
    assert engine.stats()["resets_by_reason"]["error"] == 1  # not ~/reset's "explicit"


def test_reset_counts_agree_in_all_and_per_stream(model, monkeypatch) -> None:
    """A first frame that one member took and the other failed restarts one member of the
    stream: half a reset, none per stream; two such streams made one in all, which no stream
    showed."""
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=0)
    fail_the_second_member(monkeypatch)
    for stream in ("a", "b"):
        with pytest.raises(RuntimeError):
            engine.push(frames(1)[0], 0, stream=stream)
    monkeypatch.undo()
    s = engine.stats()
    from sarn_ros.engine import RESET_REASONS

    assert s["resets_by_stream"] == {u: dict.fromkeys(RESET_REASONS, 0) for u in "ab"}
    assert s["resets"] == engine.resets == sum(s["resets_by_reason"].values()) == 0


def test_a_flush_that_failed_part_way_keeps_the_members_in_step(model) -> None:
    """The first member's flushed outputs were dropped when the second's failed: the members
    then stood a frame apart and every later output averaged two different frames."""
    imgs = frames(6, seed=8)
    clean = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), imgs)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu")
    out = [o for i in range(3) for o in engine.push(imgs[i], 1_000 + i * NS, meta=i)]
    flaky_network(engine, {3})  # member 0 flushes its 2 frames, member 1 fails on its first
    with pytest.raises(RuntimeError):
        engine.flush("default")
    out += engine.flush("default")
    for i in range(3, 6):
        out += engine.push(imgs[i], 1_000 + i * NS, meta=i)
    out += engine.flush()
    assert [o.meta for o in out] == list(range(6))
    assert diff(out[0].image, clean[0].image) == 0
    again = SelfEnsembleDeblurrer(model, members=2, device="cpu")  # the same flush, unfailed
    expected = [o for i in range(3) for o in again.push(imgs[i], 1_000 + i * NS, meta=i)]
    expected += again.flush("default")
    expected += [o for i in range(3, 6) for o in again.push(imgs[i], 1_000 + i * NS, meta=i)]
    expected += again.flush()
    assert [diff(a.image, b.image) for a, b in zip(out, expected, strict=True)] == [0] * 6
    s = engine.stats()
    assert (s["frames_in"], s["frames_out"], s["pending"], s["resets"]) == (6, 6, 0, 0)


def test_a_refused_push_leaves_transposed_members_in_step(model) -> None:
    """Members 4-7 hold W x H frames: compared by their format, they always looked out of
    step on a non-square frame, so a push refused before taking anything (a float stamp)
    restarted the stream and dropped its look-ahead."""
    engine = SelfEnsembleDeblurrer(model, members=8, device="cpu")
    imgs = frames(3)
    out = [o for i in range(3) for o in engine.push(imgs[i], 1_000 + i * NS, meta=i)]
    with pytest.raises(TypeError):
        engine.push(imgs[0], 1.5)
    out += engine.flush()
    s = engine.stats()
    assert [o.meta for o in out] == [0, 1, 2]
    assert (s["frames_lost"], s["resets_by_reason"]["error"]) == (0, 0)


def test_a_failed_forward_pass_loses_no_frame_of_members_that_took_it(model) -> None:
    """Every member took the frame, so they stay in step: the stream went on without a
    restart, where it used to drop the look-ahead it held and count an explicit reset."""
    imgs = frames(5, seed=9)
    clean = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), imgs)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu")
    flaky_network(engine, {2})  # frame 0 of member 1, the push of frame 2
    out = []
    for i, img in enumerate(imgs):
        try:
            out += engine.push(img, 1_000 + i * NS, meta=i)
        except RuntimeError:
            assert i == 2
    out += engine.flush()
    assert [o.meta for o in out] == list(range(5))
    assert [diff(a.image, b.image) for a, b in zip(out, clean, strict=True)] == [0] * 5
    s = engine.stats()
    assert (s["frames_in"], s["frames_out"], s["pending"], s["resets"]) == (5, 5, 0, 0)


def test_make_engine_picks_the_plain_engine_for_one_member() -> None:
    single = SARN(channels=8, blocks_per_level=1, attention_stride=4).eval()
    assert type(make_engine(single, self_ensemble=1, device="cpu")) is StreamDeblurrer
    for members in (2, 4):
        engine = make_engine(single, self_ensemble=members, device="cpu")
        assert isinstance(engine, SelfEnsembleDeblurrer) and engine.members == members
    engine = make_engine(single, self_ensemble=8, device="cpu")
    assert isinstance(engine, SelfEnsembleDeblurrer) and engine.members == 8
    out = push_all(engine, frames(2, seed=5))
    assert [o.stamp for o in out] == [1_000, 1_000 + NS]


def assert_only_the_failed_push_lost(model, engine, imgs: list[np.ndarray], out: list) -> None:
    """After frame 3's push raised at a resolution change: frame 4 and the old segment's
    frames come out, the latter as a clean ensemble makes them, and one reset is counted."""
    out = out + engine.push(imgs[4], 1_000 + 4 * NS, meta=4)
    out += engine.flush()
    assert [o.meta for o in out] == [0, 1, 2, 4]  # only the frame whose push raised is lost
    clean = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), imgs[:3])
    assert [diff(a.image, b.image) for a, b in zip(out[:3], clean, strict=True)] == [0] * 3
    s = engine.stats()
    assert (s["frames_in"], s["frames_out"], s["pending"]) == (4, 4, 0)
    assert s["resets_by_reason"]["resolution"] == 1 and s["resets"] == 1


def test_a_reset_flush_that_failed_on_one_member_loses_no_frame(model) -> None:
    """A new resolution ends the segment: member 0 flushed its look-ahead and took the new
    frame, member 1's flush failed. The members were then a frame apart, and the restart that
    put them back in step dropped the old segment's frames both of them still held."""
    imgs = frames(3, seed=10) + frames(2, (W, H, 3), seed=11)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=2)
    out = [o for i in range(3) for o in engine.push(imgs[i], 1_000 + i * NS, meta=i)]
    flaky_network(engine, {3})  # member 0 flushes frames 1-2 in calls 1-2, member 1 fails
    with pytest.raises(RuntimeError):
        engine.push(imgs[3], 1_000 + 3 * NS, meta=3)
    assert_only_the_failed_push_lost(model, engine, imgs, out)


def test_a_new_stream_that_could_not_be_allocated_loses_no_frame(model, monkeypatch) -> None:
    """Out of memory on a new resolution's buffers for member 1, after member 0 had taken the
    frame: the restart that put the members back in step dropped the old segment's frames."""
    imgs = frames(3, seed=12) + frames(2, (W, H, 3), seed=13)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=2)
    out = [o for i in range(3) for o in engine.push(imgs[i], 1_000 + i * NS, meta=i)]
    new_stream = StreamDeblurrer._new_stream

    def second_member_fails(self, name, fmt):
        if name.endswith("1"):
            raise RuntimeError("CUDA out of memory")
        return new_stream(self, name, fmt)

    monkeypatch.setattr(StreamDeblurrer, "_new_stream", second_member_fails)
    with pytest.raises(RuntimeError):
        engine.push(imgs[3], 1_000 + 3 * NS, meta=3)
    monkeypatch.undo()
    assert_only_the_failed_push_lost(model, engine, imgs, out)


@pytest.mark.parametrize("stream", ["default", None])
def test_a_reset_that_failed_on_one_member_restarts_the_members_in_step(model, stream) -> None:
    """Member 0 flushed its look-ahead and was dropped, member 1's flush failed and kept its
    old segment: every later output averaged a new frame with an old one."""
    imgs = frames(6, seed=14)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=2)
    out = [o for i in range(3) for o in engine.push(imgs[i], 1_000 + i * NS, meta=i)]
    flaky_network(engine, {3})  # member 0 flushes frames 1-2 in calls 1-2, member 1 fails
    with pytest.raises(RuntimeError):
        engine.reset(stream)
    for i in range(3, 6):
        out += engine.push(imgs[i], 1_000 + i * NS, meta=i)
    out += engine.flush()
    assert [o.meta for o in out] == [0, 3, 4, 5]  # the failed reset's look-ahead is lost
    clean = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), imgs[3:])
    assert [diff(a.image, b.image) for a, b in zip(out[1:], clean, strict=True)] == [0] * 3
    s = engine.stats()
    assert (s["frames_out"], s["pending"], s["resets_by_reason"]["explicit"], s["resets"]) == (
        4,
        0,
        1,
        1,
    )


@pytest.mark.parametrize("fail_on", [{3}, {1, 2, 3, 4, 5, 6}])
def test_an_error_reset_restarts_members_that_could_not_all_flush(model, fail_on) -> None:
    """reset(reason="error") ends a stream even where the network fails on its look-ahead: a
    member that then dropped its frames leaves nothing to average the others' with, so the
    stream restarts whole, in step, and counts them lost."""
    imgs = frames(6, seed=15)
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=2)
    out = [o for i in range(3) for o in engine.push(imgs[i], 1_000 + i * NS, meta=i)]
    net = engine._net
    flaky_network(engine, fail_on)  # {3}: member 0 flushes frames 1-2, member 1 fails
    engine.reset(reason="error")
    engine._net = net
    for i in range(3, 6):
        out += engine.push(imgs[i], 1_000 + i * NS, meta=i)
    out += engine.flush()
    assert [o.meta for o in out] == [0, 3, 4, 5]
    clean = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), imgs[3:])
    assert [diff(a.image, b.image) for a, b in zip(out[1:], clean, strict=True)] == [0] * 3
    s = engine.stats()
    assert (s["frames_in"], s["frames_out"], s["frames_lost"], s["pending"]) == (6, 4, 2, 0)


def test_a_stream_name_that_is_no_str_is_refused(model) -> None:
    """Names became "<name>#k": streams 0 and "0" were one, their frames interleaved."""
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu")
    with pytest.raises(TypeError, match="stream names are str"):
        engine.push(frames(1)[0], 0, 0)
    assert engine.stats()["frames_in"] == 0


@pytest.mark.parametrize(
    ("cls", "kw"), [(StreamDeblurrer, {}), (SelfEnsembleDeblurrer, {"members": 2})]
)
def test_flush_and_reset_of_a_name_that_is_no_str_are_refused(model, cls, kw) -> None:
    """flush(0) returned stream "0"'s held frames and reset(0) restarted it in a self-ensemble
    (its members are "0#k"), where the plain engine ignored both: neither acts now."""
    engine = cls(model, device="cpu", future_frames=2, **kw)
    for i, img in enumerate(frames(2)):
        engine.push(img, i, "0")
    for call in (engine.flush, engine.reset):
        with pytest.raises(TypeError, match="stream names are str"):
            call(0)
    assert engine.stats()["pending"] == 2 and engine.resets == 0
    assert [o.stamp for o in engine.flush("0")] == [0, 1]


def test_every_members_inverse_undoes_its_transform() -> None:
    """Each (forward, inverse) pair maps a frame back onto itself, on HxW and HxWxC frames
    that are neither square nor symmetric; the 8 forwards are the 8 distinct flips/transposes
    (the dihedral group of the rectangle's grid)."""
    x = np.arange(5 * 7 * 3).reshape(5, 7, 3)
    grey = x[:, :, 0]
    seen = set()
    for k, (fwd, inv) in enumerate(TRANSFORMS):
        y = fwd(x)
        assert y.shape in ((5, 7, 3), (7, 5, 3)), k
        assert np.array_equal(inv(y), x), f"member {k}: inverse(forward(x)) != x"
        assert np.array_equal(inv(fwd(grey)), grey), f"member {k} (HxW)"
        # forward is a pure re-indexing of pixels: each keeps its channels together
        assert sorted(map(tuple, y.reshape(-1, 3))) == sorted(map(tuple, x.reshape(-1, 3)))
        seen.add((y.shape, y.tobytes()))
    assert len(seen) == len(TRANSFORMS) == 8


@pytest.mark.parametrize("members", [4, 8])
def test_the_mean_of_the_members_is_rounded_to_the_nearest_level(model, members) -> None:
    """Outputs are averaged in float and rounded: the error against the float mean of the
    members' outputs is at most half a level and has no bias (truncation: darker)."""
    imgs = frames(2, seed=6)
    got = push_all(SelfEnsembleDeblurrer(model, members=members, device="cpu"), imgs)
    members_out = []
    for fwd, inv in TRANSFORMS[:members]:
        outs = push_all(StreamDeblurrer(model, device="cpu"), [fwd(f).copy() for f in imgs])
        members_out.append([inv(o.image).astype(np.float64) for o in outs])
    for i, o in enumerate(got):
        err = o.image - np.mean([m[i] for m in members_out], axis=0)
        assert np.abs(err).max() <= 1.0  # float reordering only
        assert abs(err.mean()) < 0.1


def test_a_stream_named_with_the_members_separator_is_one_stream(model) -> None:
    """Members are named `<stream>#k`: a camera named `cam#1` was read as member 1 of `cam`."""
    engine = SelfEnsembleDeblurrer(model, members=2, device="cpu", future_frames=0)
    engine.push(frames(1)[0], 1_000, "cam#1")
    assert engine.stats()["streams"] == ["cam#1"]
    engine.reset()
    stats = engine.stats()
    assert stats["resets_by_reason"]["explicit"] == 1 and stats["resets"] == 1


def test_16_bit_members_are_averaged_without_loss(model) -> None:
    """The members' mean is taken in float32: half precision overflows past 65504 and rounds
    16-bit values (and 8-bit ones' averages) off by more than one level."""
    deep = [f.astype(np.uint16) * 257 for f in frames(2, seed=1)]
    got = push_all(SelfEnsembleDeblurrer(model, members=2, device="cpu"), deep)
    separate = []
    for fwd, inv in TRANSFORMS[:2]:
        outs = push_all(StreamDeblurrer(model, device="cpu"), [fwd(f).copy() for f in deep])
        separate.append([inv(o.image).astype(np.float64) for o in outs])
    for i, out in enumerate(got):
        assert diff(out.image, np.rint(np.mean([m[i] for m in separate], axis=0))) <= 1
