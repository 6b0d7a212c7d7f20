"""Metrics against closed forms and an independent SSIM implementation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sarn_ros import metrics


def textured(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(
        rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    return np.clip(img.astype(int) + rng.integers(-40, 41, img.shape), 0, 255).astype(np.uint8)


def test_psnr_closed_form():
    a = np.full((8, 8, 3), 100, np.uint8)
    for d in (1, 5, 20):
        assert metrics.psnr(a + d, a) == pytest.approx(20 * math.log10(255 / d))
    assert metrics.psnr(a, a) == math.inf


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written out directly: explicit 11x11 Gaussian, valid region only."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(x.shape[2]):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
        for i in range(0, a.shape[0] - 10, 3):
            for j in range(0, a.shape[1] - 10, 3):
                pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                ma, mb = (g * pa).sum(), (g * pb).sum()
                va, vb = (g * (pa - ma) ** 2).sum(), (g * (pb - mb) ** 2).sum()
                cov = (g * (pa - ma) * (pb - mb)).sum()
                vals.append(
                    (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
    return float(np.mean(vals))


def test_ssim_identity_noise_and_reference():
    img = textured()
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    light = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(img + rng.normal(0, 30, img.shape), 0, 255).astype(np.uint8)
    assert 1.0 > metrics.ssim(light, img) > metrics.ssim(heavy, img)
    # Interior windows (away from the border handling) agree with the direct formula.
    ours = metrics.ssim(heavy[20:-20, 20:-20], img[20:-20, 20:-20])
    assert ours == pytest.approx(
        reference_ssim(heavy[20:-20, 20:-20], img[20:-20, 20:-20]), abs=0.02
    )


def test_sharpness_drops_with_blur():
    img = textured()
    assert metrics.sharpness(cv2.GaussianBlur(img, (9, 9), 3)) < metrics.sharpness(img) / 2


def test_orb_proxy_prefers_sharp_pairs():
    base = textured(240, 320, seed=3)
    shifted = np.roll(base, (4, 7), axis=(0, 1))
    kernel = np.zeros((1, 15), np.float32)
    kernel[0, :] = 1 / 15  # horizontal motion blur
    blur_a, blur_b = cv2.filter2D(base, -1, kernel), cv2.filter2D(shifted, -1, kernel)
    matches, inliers = metrics.orb_matches(base, shifted)
    assert inliers > metrics.orb_matches(blur_a, blur_b)[1] > 0
    assert matches >= inliers
    assert metrics.orb_matches(np.zeros_like(base), base) == (0, 0)  # no features in a flat frame


def test_sixteen_bit_frames_read_like_their_eight_bit_top_bytes():
    """mono16/rgb16 streams reach the proxy as uint16 (ORB takes 8-bit only)."""
    base = textured(240, 320, seed=3)
    shifted = np.roll(base, (4, 7), axis=(0, 1))
    wide = [x.astype(np.uint16) * 257 for x in (base, shifted)]
    assert metrics.orb_matches(*wide) == metrics.orb_matches(base, shifted)
    assert metrics.sharpness(wide[0]) == metrics.sharpness(base)
    assert metrics.sharpness(wide[0][..., 0]) == metrics.sharpness(base[..., 0])


def test_t_quantiles_match_the_table_and_the_normal_limit():
    assert metrics.t975(1) == 12.706 and metrics.t975(30) == 2.042
    assert metrics.t975(31) == pytest.approx(2.0395, abs=1e-3)  # expansion beyond the table
    assert metrics.t975(120) == pytest.approx(1.9799, abs=1e-3)
    assert metrics.t975(10**6) == pytest.approx(1.95996, abs=1e-4)


def test_paired_change_interval_and_verdicts():
    # differences 1..5: mean 3, sd sqrt(2.5), t(4) = 2.776
    c = metrics.paired_change([10] * 5, [11, 12, 13, 14, 15])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert (c["mean"], c["low"], c["high"]) == pytest.approx((3, 3 - half, 3 + half))
    assert (c["better"], c["worse"], c["pairs"], c["verdict"]) == (5, 0, 5, "more")
    assert metrics.paired_change([5, 5, 5], [1, 2, 3])["verdict"] == "fewer"
    # a mean of -6 from a noisy handful is not a verdict (the real stream: 348.7 -> 342.8)
    noisy = metrics.paired_change([350, 340, 360, 345, 350, 347], [330, 352, 340, 349, 338, 350])
    assert noisy["verdict"] == "no clear change" and noisy["low"] < 0 < noisy["high"]
    lucky = metrics.paired_change([0] * 4, [10, -8, 9, -7])  # a positive mean is no win either
    assert lucky["mean"] == 1 and lucky["verdict"] == "no clear change"
    one = metrics.paired_change([3], [4])
    assert one["verdict"] == "too few pairs" and one["low"] is None
    none = metrics.paired_change([], [])  # nothing measured: no mean, not a change of 0
    assert none["mean"] is None and none["verdict"] == "too few pairs" and none["pairs"] == 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 64), (64, 1), (1, 64, 3), (64, 1, 3)])
def test_orb_proxy_takes_frames_one_pixel_high_or_wide(shape):
    """ORB's pyramid scales a 1 px side to 0 px (cv2.error); such a frame has no features."""
    rng = np.random.default_rng(0)
    thin = rng.integers(0, 256, shape, dtype=np.uint8)
    assert metrics.orb_matches(thin, thin) == (0, 0)
    small = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)  # the smallest ORB takes
    assert metrics.orb_matches(small, small) == (0, 0)


def test_no_fundamental_matrix_means_no_inliers():
    """In a 63 px high frame ORB finds keypoints on one row only (31 px from either edge): no
    fundamental matrix fits them, and OpenCV then returns None and a mask of garbage bytes."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (63, 400), dtype=np.uint8)
    matches, inliers = metrics.orb_matches(base, np.roll(base, 3, axis=1))
    assert matches >= 8  # enough to try RANSAC
    assert 0 <= inliers <= matches  # the garbage summed to 1971 of 38 matches


def gaussian_ssim_reference(x: np.ndarray, y: np.ndarray, peak: float = 255.0) -> float:
    """Wang et al. 2004 SSIM as the module docstring specifies it, written independently:
    11-tap Gaussian window (sigma 1.5, normalised), K1 = 0.01, K2 = 0.03, population
    (co)variances, every pixel with borders reflected edge-inclusive (numpy "symmetric", as
    scipy/scikit-image "reflect"), the SSIM map's mean per channel, averaged over channels."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def window_mean(a: np.ndarray) -> np.ndarray:
        p = np.pad(a, 5, mode="symmetric")
        rows = sum(g[k] * p[k : k + a.shape[0], :] for k in range(11))
        return sum(g[k] * rows[:, k : k + a.shape[1]] for k in range(11))

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    per_channel = []
    for c in range(x.shape[2]):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
        mu_a, mu_b = window_mean(a), window_mean(b)
        var_a = window_mean(a * a) - mu_a**2
        var_b = window_mean(b * b) - mu_b**2
        cov = window_mean(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
        per_channel.append(s.mean())
    return float(np.mean(per_channel))


def test_ssim_equals_an_independent_gaussian_reference_on_every_channel():
    """Whole-image SSIM, borders included, against the reference to float precision: a dark
    picture (where K1 weighs most) with noise on one channel only (the others are equal, 1.0:
    the figure is the mean of the three, not one channel's)."""
    img = (textured(48, 64, seed=5) // 4).astype(np.uint8)  # dark: means 0..64
    rng = np.random.default_rng(2)
    noisy = img.copy()
    noisy[..., 2] = np.clip(img[..., 2] + rng.normal(0, 12, img.shape[:2]), 0, 255)
    ours = metrics.ssim(noisy, img)
    ref = gaussian_ssim_reference(noisy, img)
    assert 0.5 < ref < 0.99  # one channel of three degraded: far from 1
    assert ours == pytest.approx(ref, abs=1e-9)
    assert metrics.ssim(noisy[..., 2], img[..., 2]) == pytest.approx(3 * ref - 2, abs=1e-9)


def test_ssim_and_psnr_of_16_bit_frames_at_their_peak_equal_the_8_bit_figures():
    """Both constants follow ``peak``: frames scaled by 257 (8 to 16 bit) at peak 65535 read as
    the 8-bit frames at 255. A constant kept at 8-bit size weighs nothing at 16 bit."""
    img = (textured(48, 64, seed=5) // 4).astype(np.uint8)
    noisy = np.clip(img + np.random.default_rng(3).normal(0, 12, img.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    wide, wide_noisy = img.astype(np.uint16) * 257, noisy.astype(np.uint16) * 257
    assert metrics.ssim(wide_noisy, wide, peak=65535) == pytest.approx(
        metrics.ssim(noisy, img), abs=1e-9
    )
    assert metrics.psnr(wide_noisy, wide, peak=65535) == pytest.approx(metrics.psnr(noisy, img))


def mutual_nearest_matches(a: np.ndarray, b: np.ndarray) -> int:
    """Cross-checked matching written out: ORB descriptors (the module's settings), Hamming
    distances, pairs that are each other's nearest neighbour."""
    orb = cv2.ORB_create(nfeatures=1500)
    _, da = orb.detectAndCompute(metrics.grey(a), None)
    _, db = orb.detectAndCompute(metrics.grey(b), None)
    dist = np.unpackbits(da[:, None, :] ^ db[None, :, :], axis=2).sum(axis=2)
    best_b, best_a = dist.argmin(axis=1), dist.argmin(axis=0)
    return int(sum(best_a[j] == i for i, j in enumerate(best_b)))


def test_orb_matches_are_cross_checked():
    """Matches are "cross-checked": only descriptor pairs that are each other's nearest
    neighbour, so two unrelated frames give far fewer matches than keypoints."""
    a, b = textured(120, 160, seed=3), textured(120, 160, seed=4)
    keypoints = len(cv2.ORB_create(nfeatures=1500).detect(metrics.grey(a), None))
    matches, _ = metrics.orb_matches(a, b)
    assert matches == pytest.approx(mutual_nearest_matches(a, b), abs=3)  # ties may differ
    assert matches < keypoints / 2


def test_matches_off_any_one_epipolar_geometry_by_two_pixels_are_no_inliers():
    """Blocks of the second frame move 7 px sideways plus 2 px each in its own direction (a
    deforming scene, or false matches): no one epipolar geometry fits them all to within a
    pixel or so, and only matches that survive the RANSAC check are inliers, most of the rigid
    motion's but less than 60 % of these."""
    base = textured(240, 320, seed=3)
    rng = np.random.default_rng(1)
    moved = np.empty_like(base)
    for y in range(0, 240, 40):
        for x in range(0, 320, 40):
            t = rng.uniform(0, 2 * np.pi)
            shift = np.float32([[1, 0, 7 + 2 * np.cos(t)], [0, 1, 2 * np.sin(t)]])
            warped = cv2.warpAffine(base, shift, (320, 240), borderMode=cv2.BORDER_REFLECT)
            moved[y : y + 40, x : x + 40] = warped[y : y + 40, x : x + 40]
    matches, inliers = metrics.orb_matches(base, np.roll(base, 7, axis=1))
    assert inliers > 0.9 * matches
    matches, inliers = metrics.orb_matches(base, moved)
    assert matches > 300
    assert inliers < 0.6 * matches


@pytest.mark.parametrize("n", [8, 11, 14, 15, 40])
def test_few_matches_are_judged_by_ransac_at_one_pixel_too(n):
    """OpenCV's FM_RANSAC fits fewer than 15 points by LMedS, without the 1 px threshold: 11
    exact matches gave 7 inliers, and a blurred input's few matches were judged otherwise
    than a sharp output's many. Points of one rigid scene seen by two cameras all fit; one
    moved 30 px does not."""
    rng = np.random.default_rng(n)
    scene = rng.uniform([-1, -1, 4], [1, 1, 8], (n, 3))
    turn, _ = cv2.Rodrigues(np.array([0.05, 0.1, 0.02]))

    def seen(points: np.ndarray) -> np.ndarray:
        return (points[:, :2] / points[:, 2:] * 500 + 320).astype(np.float32)

    a, b = seen(scene), seen(scene @ turn.T + [0.3, 0, 0])
    assert metrics.ransac_inliers(a, b) == n
    # a still camera (a repeated frame) and a sideways move: degenerate, yet all fit (OpenCV's
    # USAC found no model for 8 still points, 0 inliers, or raised)
    assert metrics.ransac_inliers(a, a.copy()) == n
    assert metrics.ransac_inliers(a, a + np.float32([7, 0])) == n
    if n > 8:  # 8 points leave one over the 7 a fundamental matrix has: any may fit
        b[0] += 30
        assert metrics.ransac_inliers(a, b) == n - 1


def test_an_unchanged_pair_is_neither_better_nor_worse():
    c = metrics.paired_change([5, 5, 5, 5], [5, 6, 4, 5])
    assert (c["better"], c["worse"], c["pairs"]) == (1, 1, 4)
    assert c["mean"] == 0.0


def test_grey_weighs_the_channels_of_rgb_frames():
    """Frames are RGB throughout; BGR weights would read red as blue (0.114, not 0.299)."""
    red, blue = np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    assert (int(metrics.grey(red)[0, 0]), int(metrics.grey(blue)[0, 0])) == (76, 29)
