"""Synthetic blur generator: determinism, blur strength, linear-light integration, motion
continuity, borders and ground truth."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from sarn_ros.data import blur_synth
from sarn_ros.data.blur_synth import (
    BlurParams,
    Trajectory,
    linear_to_srgb,
    srgb_to_linear,
    synthesize,
)

CLEAN = {"noise_std": 0.0, "jpeg_quality": None, "object_prob": 0.0}


def texture(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """A natural-looking sharp image: random detail at several scales."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cells in (4, 12, 32):
        small = rng.uniform(0, 255, (cells, cells * w // h, 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / 3
    return np.clip(img, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def mean_psnr(blurred: list[np.ndarray], sharp: list[np.ndarray]) -> float:
    return float(np.mean([psnr(b, s) for b, s in zip(blurred, sharp, strict=True)]))


def test_srgb_round_trip() -> None:
    x = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear_to_srgb(srgb_to_linear(x)), x)


def test_same_seed_same_output_and_other_seed_differs() -> None:
    src = [texture()]
    p = BlurParams(object_prob=1.0)  # noise, JPEG and a moving object all drawn from the seed
    a_b, a_s = synthesize(src, n_frames=3, params=p, seed=7)
    b_b, b_s = synthesize(src, n_frames=3, params=p, seed=7)
    c_b, _ = synthesize(src, n_frames=3, params=p, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a_b + a_s, b_b + b_s, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a_b, c_b, strict=True))


def test_blur_grows_with_blur_length() -> None:
    src = [texture()]
    scores = [
        mean_psnr(
            *synthesize(
                src, n_frames=3, params=BlurParams(blur_px=px, min_blur_fraction=1.0, **CLEAN)
            )
        )
        for px in (0.0, 3.0, 8.0, 16.0)
    ]
    assert scores[0] > 45  # no motion: only the sRGB round trip
    assert scores[0] > scores[1] > scores[2] > scores[3]


def test_shorter_exposure_same_blur_means_faster_motion_between_frames() -> None:
    """--blur-px is blur within one exposure; a shorter shutter at equal blur implies the
    camera moved further between frames."""

    def frame_gap(exposure: float) -> float:
        p = BlurParams(blur_px=6.0, exposure=exposure, min_blur_fraction=1.0, **CLEAN)
        _, sharp = synthesize([texture(seed=1)], n_frames=3, params=p, seed=3)
        return psnr(sharp[0], sharp[1])

    assert frame_gap(0.25) < frame_gap(1.0) - 1.0


def test_linear_light_integration_brightens_mixed_edges() -> None:
    """Averaging black and white in linear light gives sRGB ~188, not the 128 of a naive
    sRGB average, so a blurred fine stripe pattern gets brighter on the mean."""
    stripes = np.zeros((64, 96, 3), np.uint8)
    stripes[:, ::4] = stripes[:, 1::4] = 255
    p = BlurParams(blur_px=16.0, min_blur_fraction=1.0, rotation_deg=0.0, zoom=0.0, **CLEAN)
    blurred, sharp = synthesize([stripes], n_frames=3, params=p, seed=2)
    # Mostly horizontal motion mixes the stripes; the sharp mean stays near 127.5.
    assert abs(np.mean(sharp) - 127.5) < 20
    assert np.mean(blurred) > np.mean(sharp) + 25


def test_linear_light_share_sets_how_blur_is_averaged() -> None:
    """Share 0 averages 8-bit values (GoPro's standard blur frames): the blurred stripes keep
    the sharp mean; a mixed share makes both kinds across seeds."""
    stripes = np.zeros((64, 96, 3), np.uint8)
    stripes[:, ::4] = stripes[:, 1::4] = 255
    base = {"blur_px": 16.0, "min_blur_fraction": 1.0, "rotation_deg": 0.0, "zoom": 0.0, **CLEAN}

    def brightening(share: float, seed: int) -> float:
        p = BlurParams(**base, linear_light=share)
        blurred, sharp = synthesize([stripes], n_frames=3, params=p, seed=seed)
        return float(np.mean(blurred) - np.mean(sharp))

    assert abs(brightening(0.0, 2)) < 3
    assert brightening(1.0, 2) > 25
    mixed = [brightening(0.5, seed) > 25 for seed in range(12)]
    assert 0 < sum(mixed) < 12


def test_zero_motion_gives_input_back_cropped() -> None:
    frames = [texture(seed=s) for s in range(3)]
    p = BlurParams(blur_px=0.0, rotation_deg=0.0, zoom=0.0, **CLEAN)
    blurred, sharp = synthesize(frames, params=p, seed=0, margin=0.1)
    for src, b, s in zip(frames, blurred, sharp, strict=True):
        crop = src[7:65, 9:87]  # 10% of 72 and 96 cut from each side, no warped border
        assert s.shape == b.shape == crop.shape
        assert np.abs(s.astype(int) - crop).max() <= 1
        assert np.abs(b.astype(int) - crop).max() <= 1


def test_video_ground_truth_is_the_frame_itself() -> None:
    """For a video the sharp target of frame t is frame t at mid-exposure (camera shake is
    added relative to it), so GT equals the source frame however strong the blur."""
    frames = [texture(seed=s) for s in range(4)]
    p = BlurParams(blur_px=12.0, min_blur_fraction=1.0, object_prob=0.0)
    blurred, sharp = synthesize(frames, params=p, seed=5, margin=0.1)
    for src, b, s in zip(frames, blurred, sharp, strict=True):
        crop = src[7:65, 9:87]
        assert np.abs(s.astype(int) - crop).max() <= 1
        assert psnr(b, s) < 30


def test_frames_other_than_rgb_uint8_of_one_size_are_refused() -> None:
    """Called directly (the tools convert first): grey came back as RGB mirrored left-right,
    RGBA's sharp frames had 4 channels and its blurred 3, uint16 saturated at 255."""
    rgb = texture(h=24, w=32)
    for frames in (
        [rgb[..., 0]],
        [np.dstack([rgb, rgb[..., :1]])],
        [rgb.astype(np.uint16) * 257],
        [rgb, texture(h=24, w=30)],
    ):
        with pytest.raises(ValueError, match="expected"):
            synthesize(frames, n_frames=3)


def test_a_short_exposure_keeps_a_long_videos_ground_truth() -> None:
    """At --exposure 0.001 the motion per interval is 1000x the blur: the views were maps
    from the clip's start, which grew past float precision, and frames 19 on of a 41-frame
    clip came out flat, sharp and blurred alike, scored and trained on without a word."""
    frames = [texture(h=40, w=48, seed=s % 3) for s in range(41)]
    p = BlurParams(blur_px=12.0, exposure=0.001, min_blur_fraction=1.0, object_prob=0.0)
    blurred, sharp = synthesize(frames, params=p, seed=1234, margin=0.1)
    for src, b, s in zip(frames, blurred, sharp, strict=True):
        my, mx = (40 - s.shape[0]) // 2, (48 - s.shape[1]) // 2  # 10 %, or grown to fit
        crop = src[my : 40 - my, mx : 48 - mx]
        assert np.abs(s.astype(int) - crop).max() <= 1
        assert 10 < psnr(b, s) < 30  # blurred by about the 12 px asked, not flat


@pytest.mark.parametrize("smoothness", [0.0, 0.95])
def test_trajectory_is_continuous(smoothness: float) -> None:
    p = BlurParams(blur_px=10.0, exposure=0.5, smoothness=smoothness)
    at = Trajectory(6, p, np.random.default_rng(0)).path((48.0, 36.0))
    ts = np.linspace(-0.5, 6.5, 7001)
    corners = np.array([[0, 0, 1], [96, 0, 1], [0, 72, 1], [96, 72, 1]], np.float64).T
    points = np.stack([(at(t) @ corners)[:2] for t in ts])
    step = np.abs(np.diff(points, axis=0)).max()
    assert step < 2 * 10.0 / 0.5 * (ts[1] - ts[0])  # no jump beyond the speed limit


def test_velocity_is_smooth_across_frames() -> None:
    """With high smoothness, the motion of consecutive frame intervals points the same way;
    with none, it does not (over many random trajectories)."""

    def correlation(smoothness: float) -> float:
        rng = np.random.default_rng(1)
        pairs = []
        for _ in range(200):
            traj = Trajectory(4, BlurParams(smoothness=smoothness), rng)
            v = traj.velocity[:, 0]
            pairs += list(itertools.pairwise(v))
        a = np.array(pairs)
        return float(np.corrcoef(a[:, 0], a[:, 1])[0, 1])

    assert correlation(0.95) > 0.8
    assert abs(correlation(0.0)) < 0.2


def test_moving_object_is_pasted_and_may_leave_the_frame() -> None:
    src = [texture(seed=4)]
    with_obj = BlurParams(blur_px=30.0, object_prob=1.0, noise_std=0.0, jpeg_quality=None)
    no_obj = BlurParams(blur_px=30.0, object_prob=0.0, noise_std=0.0, jpeg_quality=None)
    for seed in range(4):  # fast objects leave the small frame within a few frames
        a, _ = synthesize(src, n_frames=8, params=with_obj, seed=seed)
        b, _ = synthesize(src, n_frames=8, params=no_obj, seed=seed)
        assert len(a) == 8 and a[0].shape == b[0].shape


def test_noise_and_jpeg_degrade_only_the_input() -> None:
    src = [texture(seed=6)]
    clean = BlurParams(blur_px=4.0, min_blur_fraction=1.0, **CLEAN)
    noisy = BlurParams(
        blur_px=4.0, min_blur_fraction=1.0, noise_std=8.0, jpeg_quality=(30, 30), object_prob=0.0
    )
    cb, cs = synthesize(src, n_frames=2, params=clean, seed=9)
    nb, ns = synthesize(src, n_frames=2, params=noisy, seed=9)
    assert all(np.array_equal(x, y) for x, y in zip(cs, ns, strict=True))
    assert mean_psnr(nb, ns) < mean_psnr(cb, cs)


def test_a_stills_views_stay_inside_it() -> None:
    """The still's camera path drifted with no bound, so most sequences showed its reflected
    borders (97 % of them at 256 px and 24 px blur). A ramp shows a reflection as a reversal."""
    yy, xx = np.mgrid[0:128, 0:128]
    ramp = np.dstack([xx * 2, yy * 2, np.full_like(xx, 128)]).astype(np.uint8)
    p = BlurParams(blur_px=24.0, **{**CLEAN, "linear_light": 0.0})
    for seed in range(10):
        blurred, sharp = synthesize([ramp], n_frames=6, params=p, seed=seed)
        for f in sharp + blurred:
            assert (np.diff(f[..., 0].astype(int), axis=1) >= -2).all(), seed  # x grows
            assert (np.diff(f[..., 1].astype(int), axis=0) >= -2).all(), seed  # y grows
    # large enough stills keep their motion: the views still differ frame to frame
    _, sharp = synthesize([texture(256, 256)], n_frames=6, params=p, seed=1)
    assert psnr(sharp[0], sharp[5]) < 20


def test_rotation_and_zoom_turn_about_the_view_not_where_the_clip_began(monkeypatch) -> None:
    """Within one exposure the image centre moves only by the camera's translation, however
    far the camera has moved since the clip began. Until 2026-12-02 rotation and zoom turned
    about the first view's centre carried along with the accumulated translation, adding up
    to 21 px of blur late in 60-frame clips. The views are read from the warps the generator
    makes."""
    maps: list[np.ndarray] = []

    def record(img: np.ndarray, m: np.ndarray, *args, **kwargs) -> np.ndarray:
        maps.append(m)
        return img

    monkeypatch.setattr(blur_synth.cv2, "warpPerspective", record)
    blur = 12.0
    p = BlurParams(blur_px=blur, min_blur_fraction=1.0, rotation_deg=3.0, zoom=0.06, **CLEAN)
    frames = [np.zeros((48, 64, 3), np.uint8)] * 60
    centre = np.array([32.0, 24.0, 1.0])
    worst = 0.0
    for seed in range(4):
        maps.clear()
        synthesize(frames, params=p, seed=seed)
        per_frame = np.array(maps).reshape(60, p.subframes + 1, 3, 3)  # the exposure, then GT
        for views in per_frame:
            moved = (views[-2] @ centre - views[0] @ centre)[:2]
            worst = max(worst, float(np.abs(moved).max()))
    # each axis moves at most blur_px over the exposure (the curve of the turn adds < 2 %)
    assert blur * 0.5 < worst <= blur * 1.02


def test_rotation_and_zoom_reach_their_bounds() -> None:
    """--rotation-deg and --zoom are the largest rotation and scale change per exposure, as
    --blur-px is the largest shift (until 2026-12-02 only 0.6 of them was ever drawn)."""
    p = BlurParams(rotation_deg=2.0, zoom=0.05, min_blur_fraction=1.0, exposure=0.5)
    rng = np.random.default_rng(3)
    per_exposure = np.concatenate([Trajectory(8, p, rng).velocity for _ in range(100)]) * 0.5
    reached = np.abs(per_exposure[:, 2:]).max(axis=0) / [np.deg2rad(2.0), 0.05]
    assert ((reached > 0.95) & (reached <= 1.0)).all(), reached


def test_a_still_keeps_as_much_motion_as_fits() -> None:
    """Where a still's motion must be scaled down, it is scaled to (nearly) the largest factor
    that fits, not to the next power of 0.8 below it (up to 20 % less, measured 2026-12-02)."""
    p = BlurParams(blur_px=48.0, rotation_deg=0.0, zoom=0.1, **CLEAN)
    h = w = 256
    center = (w / 2.0, h / 2.0)
    scaled = 0
    for seed in range(12):
        traj = Trajectory(6, p, np.random.default_rng(seed))
        offsets = (np.arange(p.subframes) + 0.5) / p.subframes - 0.5
        times = [t + o * p.exposure for t in range(6) for o in (*offsets, 0.0)]
        k, _, _ = blur_synth._fit_still(traj, times, 2.5, center, h, w, 0.08)
        if k < 1.0:
            scaled += 1
            # 1 % more motion no longer fits at the largest margin
            at = traj.path(center, k * 1.01)
            ref = np.linalg.inv(at(2.5))
            m = int(w * 0.3)  # the largest margin _fit_still tries
            corners = np.array([[m, m, 1], [w - m, m, 1], [m, h - m, 1], [w - m, h - m, 1]]).T
            x, y = np.concatenate([np.linalg.inv(at(t) @ ref) @ corners for t in times], 1)[:2]
            assert x.min() < 0 or x.max() > w - 1 or y.min() < 0 or y.max() > h - 1, seed
    assert scaled >= 3


def test_frames_hold_only_their_own_pixels() -> None:
    """Each output frame was a view of the crop into its uncropped frame, which it kept in
    memory: 1.5x the pixels of an in-RAM training set at the default margin, more for stills
    whose crop grows."""
    for sources, n in (([texture(seed=s) for s in range(3)], None), ([texture(128, 128)], 4)):
        p = BlurParams(blur_px=24.0, object_prob=0.0)  # noise and JPEG on
        blurred, sharp = synthesize(sources, n_frames=n, params=p, seed=1)
        for f in blurred + sharp:
            held = f if f.base is None else f.base
            assert held.nbytes == f.nbytes and f.flags.c_contiguous


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("shape", [(3, 3, 3), (1, 6, 3), (6, 1, 3), (1, 1, 3)])
def test_a_moving_object_in_a_frame_under_9_px_is_no_nan(shape) -> None:
    """Its radius rounded to 0 px: the mask was 0/0, and the NaN pixels cast to garbage; a
    side of 1 px, narrower than the object, ended `sarn train` ("high - low < 0")."""
    tiny = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    params = BlurParams(blur_px=4.0, object_prob=1.0, noise_std=0.0, jpeg_quality=None)
    blurred, sharp = synthesize([tiny], n_frames=3, params=params, seed=0)
    assert len(blurred) == len(sharp) == 3
    assert [b.shape for b in blurred] == [s.shape for s in sharp]


def test_the_moving_object_is_in_the_frames_and_moves_across_them() -> None:
    """With an object drawn, the frames differ from the same sequence without one only in an
    object-sized patch, and that patch moves (an independently moving object)."""
    src = [texture(96, 128, seed=4)]
    common = {"blur_px": 6.0, "min_blur_fraction": 1.0, "noise_std": 0.0, "jpeg_quality": None}
    _, with_obj = synthesize(src, n_frames=3, params=BlurParams(object_prob=1.0, **common), seed=1)
    _, without = synthesize(src, n_frames=3, params=BlurParams(object_prob=0.0, **common), seed=1)
    centres = []
    for a, b in zip(with_obj, without, strict=True):
        patch = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 12
        assert 0.005 < patch.mean() < 0.4  # an object, not the whole frame
        ys, xs = np.nonzero(patch)
        centres.append((ys.mean(), xs.mean()))
    steps = np.linalg.norm(np.diff(np.array(centres), axis=0), axis=1)
    assert (steps > 2.0).all()  # it moves by pixels per frame interval


def test_one_subframe_per_exposure_is_the_mid_exposure_view() -> None:
    """The ground truth is the view at mid-exposure and the blurred frame averages views
    spread evenly over the exposure: with one view per exposure they are the same picture."""
    p = BlurParams(blur_px=12.0, min_blur_fraction=1.0, subframes=1, **CLEAN)
    for frames in ([texture(seed=2)], [texture(seed=s) for s in range(3)]):  # still, video
        blurred, sharp = synthesize(frames, n_frames=3, params=p, seed=3)
        for b, s in zip(blurred, sharp, strict=True):
            assert np.abs(b.astype(int) - s).max() <= 1


def test_motion_does_not_fade_along_a_long_clip() -> None:
    """The velocity is a stationary AR(1) walk: late frames of a long clip blur as much as
    the first ones, on average over many trajectories."""
    rng = np.random.default_rng(0)
    p = BlurParams()
    speeds = np.array([np.abs(Trajectory(60, p, rng).velocity[:, :2]) for _ in range(300)])
    first, late = speeds[:, :5].mean(), speeds[:, -20:].mean()
    assert abs(late / first - 1) < 0.15


def test_sensor_noise_is_drawn_per_pixel_and_colour() -> None:
    """Gaussian sensor noise: independent in each colour channel, not a grey speckle."""
    src = [np.full((64, 80, 3), 128, np.uint8)]  # flat mid grey: no clipping, no texture
    p = BlurParams(
        blur_px=0.0, rotation_deg=0.0, zoom=0.0, noise_std=16.0, jpeg_quality=None, object_prob=0.0
    )
    blurred, sharp = synthesize(src, n_frames=1, params=p, seed=0)
    noise = blurred[0].astype(float) - sharp[0]
    assert noise.std() > 2.0  # this seed drew a sigma worth measuring
    corr = np.corrcoef(noise.reshape(-1, 3).T)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.1


def test_jpeg_keeps_the_colours_of_the_input() -> None:
    """OpenCV encodes BGR: a missed channel swap would train on red and blue exchanged."""
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    p = BlurParams(blur_px=0.0, rotation_deg=0.0, zoom=0.0, noise_std=0.0, jpeg_quality=(95, 95))
    blurred, sharp = synthesize([red], n_frames=2, params=p, seed=0)
    for b, s in zip(blurred, sharp, strict=True):
        means = b.reshape(-1, 3).mean(axis=0) - s.reshape(-1, 3).mean(axis=0)
        assert np.abs(means).max() < 3, means


def test_sensor_noise_adds_no_brightness_and_its_strength_varies() -> None:
    """Noise is rounded, not truncated (that darkened inputs by half a level against their
    ground truth), and each sequence draws its own sigma up to noise_std, so the network
    also sees clean input."""
    grey = [np.full((128, 128, 3), 128, np.uint8)]
    p = BlurParams(blur_px=0.0, rotation_deg=0.0, zoom=0.0, noise_std=16.0, jpeg_quality=None)
    stds = []
    for seed in range(16):
        blurred, sharp = synthesize(grey, n_frames=1, params=p, seed=seed)
        noise = blurred[0].astype(float) - sharp[0]
        assert abs(noise.mean()) < 0.15, (seed, noise.mean())
        stds.append(noise.std())
    assert min(stds) < 6 and max(stds) > 12, stds


def test_a_still_without_motion_keeps_all_but_the_margin() -> None:
    """The crop grows beyond the margin only for motion that needs it."""
    p = BlurParams(blur_px=0.0, rotation_deg=0.0, zoom=0.0, **CLEAN)
    blurred, sharp = synthesize([texture(256, 200)], n_frames=3, params=p, seed=0, margin=0.08)
    assert {f.shape for f in blurred + sharp} == {(256 - 2 * 20, 200 - 2 * 16, 3)}


@pytest.mark.parametrize("exposure", [1.0, 0.25])
def test_a_moving_objects_blur_follows_blur_px_whatever_the_exposure(exposure) -> None:
    """Its speed per frame interval is divided by the exposure, as the camera's is, so the
    distance it moves while the shutter is open stays 0.5 to 1.5 blur_px."""
    p = BlurParams(blur_px=10.0, exposure=exposure)
    for seed in range(20):
        *_, vel, _ = blur_synth._moving_object((96, 128), np.random.default_rng(seed), p)
        assert 5.0 - 1e-6 <= np.linalg.norm(vel) * exposure <= 15.0 + 1e-6, seed


def test_a_long_blur_on_a_small_video_frame_keeps_its_views_inside_the_frame(
    monkeypatch,
) -> None:
    """40 px of blur on 128x96 frames moved past the fixed 8 % crop into mirrored borders (up
    to 11 px, most seeds): the blurred frame showed them and the sharp one did not. The crop
    now grows until every view of it lies inside its frame; 8 % where that suffices. Seen
    with black frames whose outside is white: no white may reach the crop."""
    warp = cv2.warpPerspective

    def white_outside(src, m, size, **kw):
        return warp(src, m, size, flags=kw["flags"], borderMode=cv2.BORDER_CONSTANT,
                    borderValue=(1.0, 1.0, 1.0))  # fmt: skip

    monkeypatch.setattr(blur_synth.cv2, "warpPerspective", white_outside)
    black = [np.zeros((96, 128, 3), np.uint8)] * 4
    p = BlurParams(blur_px=40.0, **CLEAN)
    sizes = set()
    for seed in range(5):
        blurred, sharp = synthesize(black, params=p, seed=seed)
        assert max(int(b.max()) for b in blurred) == 0, seed
        assert [b.shape for b in blurred] == [s.shape for s in sharp]
        sizes.add(sharp[0].shape[:2])
    assert sizes != {(96 - 14, 128 - 20)}  # these draws did reach past 8 %
    small = BlurParams(blur_px=4.0, **CLEAN)
    assert synthesize(black, params=small, seed=0)[1][0].shape[:2] == (96 - 14, 128 - 20)
    assert synthesize(black, params=small, seed=0, margin=0.35)[1][0].shape[:2] == (
        96 - 2 * int(96 * 0.35),
        128 - 2 * int(128 * 0.35),
    )  # a margin past 30 % is kept (it came out 30 %)
