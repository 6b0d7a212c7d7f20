"""Image quality metrics for evaluation (numpy/OpenCV, no torch, no ROS).

- PSNR on 8-bit RGB (peak 255), averaged over all pixels and channels.
- SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, computed
  per RGB channel over the whole image (reflected borders) and averaged: scikit-image's
  ``structural_similarity(..., channel_axis=2, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` less its 5-pixel border crop. Papers differ (Y only, or
  MATLAB's ``ssim`` default, which takes an RGB array as one 3-D volume), so compare
  figures measured the same way.
- Sharpness (no reference): variance of the Laplacian of the grey image.
- SLAM proxy (no reference): ORB matches between consecutive frames that survive a RANSAC
  fundamental-matrix check — roughly what a feature-based odometry front end can use.
"""

from __future__ import annotations

import cv2
import numpy as np


def psnr(x: np.ndarray, ref: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((x.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


def ssim(x: np.ndarray, ref: np.ndarray, peak: float = 255.0) -> float:
    x, ref = x.astype(np.float64), ref.astype(np.float64)
    if x.ndim == 2:
        x, ref = x[..., None], ref[..., None]
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    values = []
    for c in range(x.shape[2]):
        a, b = x[..., c], ref[..., c]
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        values.append(np.mean(num / den))
    return float(np.mean(values))


def grey(img: np.ndarray) -> np.ndarray:
    """8-bit grey, the form ORB takes: 16-bit streams (mono16, rgb16, 16-bit Bayer) are scaled
    down, so their proxy and sharpness read in the same units as an 8-bit camera's."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return img
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def sharpness(img: np.ndarray) -> float:
    """Variance of the Laplacian: higher means more high-frequency detail."""
    return float(cv2.Laplacian(grey(img), cv2.CV_64F).var())


def orb_matches(a: np.ndarray, b: np.ndarray, features: int = 1500) -> tuple[int, int]:
    """(cross-checked ORB matches, of which RANSAC inliers) between two frames.

    Both counts, so a drop can be traced to detection/description (fewer matches) or to
    geometry (a lower inlier share); (0, 0) when too few features, no inliers when too few
    matches to fit or no fundamental matrix fits them.
    A frame 1 px high or wide is (0, 0) too: ORB's pyramid rounds that side to 0 px at its
    fourth level and OpenCV raises (2 px works; no keypoint is found below 63 px anyway).
    """
    if min(a.shape[:2] + b.shape[:2]) < 2:
        return 0, 0
    orb = cv2.ORB_create(nfeatures=features)
    ka, da = orb.detectAndCompute(grey(a), None)
    kb, db = orb.detectAndCompute(grey(b), None)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return 0, 0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 8:
        return len(matches), 0
    pa = np.float32([ka[m.queryIdx].pt for m in matches])
    pb = np.float32([kb[m.trainIdx].pt for m in matches])
    return len(matches), ransac_inliers(pa, pb)


RANSAC_MIN_POINTS = 15  # below it OpenCV's FM_RANSAC is LMedS


def ransac_inliers(pa: np.ndarray, pb: np.ndarray) -> int:
    """How many of 8 or more matched points (N x 2, float32) fit one fundamental matrix
    within 1 px, by RANSAC. OpenCV runs its RANSAC on 15 points or more only, and fits fewer
    by LMedS with no threshold (7 "inliers" of 11 exact matches); its USAC found no model for
    a still camera's 8. Fewer are repeated up to 15: RANSAC's answer per distinct point."""
    n = len(pa)
    copies = -(-RANSAC_MIN_POINTS // n)  # ceil: 1 from 15 points on
    f, mask = cv2.findFundamentalMat(
        np.tile(pa, (copies, 1)), np.tile(pb, (copies, 1)), cv2.FM_RANSAC, 1.0, 0.999
    )
    # no model (keypoints on one line): OpenCV returns None and a mask of garbage bytes
    return 0 if f is None or mask is None else int(mask[:n].sum())


# Two-sided 95 % Student t quantiles for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(dof: int) -> float:
    """95 % two-sided t quantile (table to 30 dof, Cornish-Fisher beyond: < 0.001 off)."""
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


def paired_change(before: list[float], after: list[float]) -> dict:
    """Mean per-pair change with a 95 % t interval, and a verdict a user can act on.

    One short stream moves the ORB count by several inliers either way, so a bare difference
    of means over-reads noise. Frame pairs are treated as independent, which consecutive pairs
    are not quite: the interval is a lower bound on the real uncertainty.
    """
    d = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    n = len(d)
    mean = float(d.mean()) if n else None  # no pair, no figure (`-` in sarn eval's table)
    low = high = None
    if n < 2:
        verdict = "too few pairs"
    elif not np.any(before) and not np.any(after):  # a longer stream would not help
        verdict = "no inliers"
    else:
        half = t975(n - 1) * float(d.std(ddof=1)) / np.sqrt(n)
        low, high = mean - half, mean + half
        verdict = "more" if low > 0 else "fewer" if high < 0 else "no clear change"
    return {
        "mean": mean,
        "low": low,
        "high": high,
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
        "pairs": n,
        "verdict": verdict,
    }
