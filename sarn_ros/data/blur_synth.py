"""Synthetic motion-blurred SEQUENCES with ground truth, from sharp frames or stills.

Blur is made the way GoPro's was: a camera moves continuously; each blurred frame averages
many sub-frame views over the exposure window, the sharp ground truth being the view at
mid-exposure. A sensor integrates **linear light** (sRGB decoded, averaged, re-encoded), which
brightens blurred texture; the GoPro benchmark's standard ``blur`` frames (the Flower pair
included) instead average the encoded 8-bit values (its linear-light version is
``blur_gamma``). ``linear_light`` sets the share of sequences made each way, so a model need
not learn one camera response. Camera motion is a smooth random walk of image-plane velocity
(translation, in-plane rotation, zoom), continuous across consecutive frames, so a recurrent
model sees realistic temporal structure. Optionally an independently moving object, sensor
noise and JPEG compression are added.

``blur_px`` (blur length in pixels during one exposure, at the output resolution) and
``exposure`` (shutter duty cycle) let a user match their camera: blur length is roughly the
image speed in px/s times the exposure time.
"""

from __future__ import annotations

import cmath
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class BlurParams:
    """Generator settings (all lengths at the output resolution). The bounds are what the
    trajectory draws, measured 2026-12-01 (weights/README, eighteenth session): blur_px bounds
    each axis (up to 1.41x along a diagonal; a moving object up to 1.5x); min_blur_fraction
    scales a sequence's speed, and single frames can blur less. Until 2026-12-02 rotation
    and zoom reached only 0.6 of their values; the defaults (then 1.5 deg and 0.03) were
    scaled so the default blur stays the same."""

    blur_px: float = 16.0  # largest translational blur per axis within one exposure
    min_blur_fraction: float = 0.2  # each sequence scales its speed by a draw from [min, 1]
    exposure: float = 0.8  # fraction of the frame interval the shutter is open
    rotation_deg: float = 0.9  # in-plane rotation bound per exposure
    zoom: float = 0.018  # log-scale change bound per exposure (0.018: about 1.8 %)
    smoothness: float = 0.85  # AR(1) coefficient of the velocity between frames
    subframes: int = 13  # views averaged per blurred frame
    object_prob: float = 0.3  # chance a sequence has an independently moving object
    noise_std: float = 2.0  # largest Gaussian noise sigma, in 8-bit levels
    jpeg_quality: tuple[int, int] | None = (70, 97)  # JPEG quality range, None = no JPEG
    linear_light: float = 1.0  # share of sequences averaged in linear light, not 8-bit values

    def to_dict(self) -> dict:
        return asdict(self)


def _unit(x: np.ndarray) -> np.ndarray:
    """8-bit values as floats in [0, 1], no curve applied."""
    return x.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] rounded to 8-bit values, no curve applied."""
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = _unit(x)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return _to_uint8(np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055))


def transfer(linear_light: bool) -> tuple[Callable, Callable]:
    """(decode, encode) between 8-bit frames and the floats an exposure is averaged in:
    linear light (a sensor's integration) or the 8-bit values as they are (GoPro's ``blur``)."""
    return (srgb_to_linear, linear_to_srgb) if linear_light else (_unit, _to_uint8)


def _flow(velocity: np.ndarray, s: float, center: tuple[float, float]) -> np.ndarray:
    """3x3 map of the image after moving for time ``s`` at the constant image-plane velocity
    (tx, ty px, angle rad, log-scale per interval), rotating and zooming about the image
    centre, i.e. about the optical axis of the view it starts from. In complex coordinates
    about the centre, w' = e^(sz) w + (e^(sz) - 1) / z * (tx + i ty), z = log-scale + i angle."""
    tx, ty, a, ls = velocity
    z = complex(ls, a)
    e = cmath.exp(s * z)
    shift = complex(tx, ty) * (s if abs(z) < 1e-12 else (e - 1) / z)
    cx, cy = center
    return np.array(
        [
            [e.real, -e.imag, cx - e.real * cx + e.imag * cy + shift.real],
            [e.imag, e.real, cy - e.imag * cx - e.real * cy + shift.imag],
            [0, 0, 1],
        ],
        dtype=np.float64,
    )


class Trajectory:
    """Camera motion as an image-plane velocity per frame interval (unit: frame intervals),
    smooth across frames. ``path`` integrates it into a continuous chain of views, so the
    views at the end of one exposure and the start of the next agree, and rotation and zoom
    always turn about the current view's centre: they add no translation however far the
    camera has moved (until 2026-12-02 they turned about the first view's centre carried
    along, which added up to 21 px of blur late in 60-frame clips)."""

    def __init__(self, n_frames: int, p: BlurParams, rng: np.random.Generator) -> None:
        scale = rng.uniform(p.min_blur_fraction, 1.0)
        per_interval = (
            np.array([p.blur_px, p.blur_px, np.deg2rad(p.rotation_deg), p.zoom])
            * scale
            / max(p.exposure, 1e-3)
        )
        n = n_frames + 2
        self.velocity = np.zeros((n, 4))  # interval i runs from t = i - 1 to t = i
        direction = rng.normal(size=4)
        for i in range(n):
            direction = p.smoothness * direction + np.sqrt(1 - p.smoothness**2) * rng.normal(size=4)
            self.velocity[i] = per_interval * np.tanh(direction)

    def path(self, center: tuple[float, float], k: float = 1.0) -> Callable[[float], np.ndarray]:
        """t -> 3x3 map from the view at t = -1 to the view at t, motion scaled by ``k``."""
        knots = [np.eye(3)]
        for v in self.velocity[:-1]:
            knots.append(_flow(k * v, 1.0, center) @ knots[-1])

        def at(t: float) -> np.ndarray:
            x = self._time(t)
            i = int(np.floor(x))
            return _flow(k * self.velocity[i], x - i, center) @ knots[i]

        return at

    def _time(self, t: float) -> float:
        """``t`` on the knots' axis (interval i spans [i, i + 1)), kept on the path."""
        return float(np.clip(t + 1.0, 0.0, len(self.velocity) - 1e-6))

    def between(self, t: float, tau: float, center: tuple[float, float]) -> np.ndarray:
        """The map from the view at ``t`` to the view at ``tau`` (at most one interval apart),
        composed of the motion between them only. ``path``'s at(tau) @ inv(at(t)) equals it,
        but through maps from t = -1 that a short exposure's fast motion grows without bound
        (0.001 turned 19 of calendar's 41 frames flat, sharp ones too)."""
        x, y = self._time(t), self._time(tau)
        i, j = int(np.floor(x)), int(np.floor(y))
        if abs(i - j) > 1:
            raise ValueError(f"views at {t} and {tau} are more than one interval apart")
        knot = max(i, j)  # the interval boundary crossed, if any (else a no-op flow of 0)
        return _flow(self.velocity[j], y - knot, center) @ _flow(self.velocity[i], knot - x, center)


def _moving_object(
    shape: tuple[int, int], rng: np.random.Generator, p: BlurParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A soft elliptical object: (source centre, start offset, velocity px/interval, mask)."""
    h, w = shape
    # at least 1 px: a radius of 0 (frames under 9 px) made the mask 0/0, NaN pixels
    rh, rw = max(1, int(h * rng.uniform(0.12, 0.3))), max(1, int(w * rng.uniform(0.12, 0.3)))
    yy, xx = np.mgrid[-rh : rh + 1, -rw : rw + 1]
    mask = np.clip(1.5 - np.sqrt((yy / rh) ** 2 + (xx / rw) ** 2) * 1.5, 0, 1).astype(np.float32)
    # a 1 px side is narrower than the object: numpy refused uniform(1, 0) ("high - low < 0")
    xs, ys = (rw, max(rw, w - rw)), (rh, max(rh, h - rh))
    src = np.array([rng.uniform(*xs), rng.uniform(*ys)])
    start = np.array([rng.uniform(*xs), rng.uniform(*ys)])
    vel = rng.normal(size=2)
    vel *= p.blur_px * rng.uniform(0.5, 1.5) / max(p.exposure, 1e-3) / (np.linalg.norm(vel) + 1e-6)
    return src, start, vel, mask


def _paste(img: np.ndarray, source: np.ndarray, obj: tuple, t: float) -> np.ndarray:
    src, start, vel, mask = obj
    rh, rw = mask.shape[0] // 2, mask.shape[1] // 2
    pos = start + vel * t
    m = np.array([[1, 0, src[0] - pos[0]], [0, 1, src[1] - pos[1]]], dtype=np.float64)
    layer = cv2.warpAffine(
        source, m, img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    full = np.zeros(img.shape[:2], np.float32)
    y0, x0 = round(pos[1]) - rh, round(pos[0]) - rw
    ys, xs = (
        slice(max(y0, 0), max(min(y0 + mask.shape[0], img.shape[0]), 0)),
        slice(max(x0, 0), max(min(x0 + mask.shape[1], img.shape[1]), 0)),
    )
    if ys.stop <= ys.start or xs.stop <= xs.start:  # the object has left the frame
        return img
    full[ys, xs] = mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return img * (1 - full[..., None]) + layer * full[..., None]


def _fit_still(
    traj: Trajectory,
    times: list[float],
    mid: float,
    center: tuple[float, float],
    h: int,
    w: int,
    margin: float,
    max_margin: float = 0.3,
) -> tuple[float, int, int]:
    """(k, my, mx): crop margins that keep the output crop inside the source in the views at
    ``times`` (a still's, relative to the view at ``mid``), and the factor k (below 1 only
    when even ``max_margin`` is too little, then within 0.5 % of the largest that fits) that
    scales the motion. Without this the path drifts with no bound and the views show the
    still's reflected borders (97 % of 6-frame sequences at 256 px and 24 px blur, up to
    185 px past the edge)."""

    def crop_for(k: float) -> tuple[int, int] | None:
        """The smallest margins that keep every view at motion scale k inside the still."""
        at = traj.path(center, k)
        ref = np.linalg.inv(at(mid))
        inverse = [np.linalg.inv(at(t) @ ref) for t in times]
        return _first_crop_inside(inverse, h, w, margin, max_margin)

    k, crop = 1.0, crop_for(1.0)
    while crop is None:
        if k < 0.01:  # no motion fits a crop this size: keep the still as it is
            return 0.0, int(h * margin), int(w * margin)
        k *= 0.8
        crop = crop_for(k)
    if k < 1.0:  # k fits, k / 0.8 does not: keep as much of the motion as fits
        low, high = k, min(1.0, k / 0.8)
        for _ in range(6):
            mid_k = (low + high) / 2
            if (found := crop_for(mid_k)) is not None:
                low, crop = mid_k, found
            else:
                high = mid_k
        k = low
    return k, *crop


def _fit_video(
    traj: Trajectory,
    times: list[tuple[int, float]],
    center: tuple[float, float],
    h: int,
    w: int,
    margin: float,
    max_margin: float = 0.3,
) -> tuple[int, int]:
    """(my, mx): the smallest crop margins from ``margin`` (to ``max_margin`` a side) that keep
    the output crop inside each video frame in its views at ``times`` ((frame, instant)
    pairs). A long blur on a small frame moved past the fixed 8 % into mirrored borders (up to
    11 px at 40 px of blur on 128x96), which the blurred frame showed and the sharp one not;
    past ``max_margin`` (a blur near the frame's size) they still show."""
    max_margin = max(max_margin, margin)
    inverse = [np.linalg.inv(traj.between(t, tau, center)) for t, tau in times]
    crop = _first_crop_inside(inverse, h, w, margin, max_margin)
    return crop or (int(h * max_margin), int(w * max_margin))


def _first_crop_inside(
    inverse: list[np.ndarray], h: int, w: int, margin: float, max_margin: float
) -> tuple[int, int] | None:
    """The smallest margins (my, mx), from ``margin`` to ``max_margin`` a side in steps of 1 %,
    whose crop each view's ``inverse`` map (output to source) keeps inside the h x w source."""
    for f in np.arange(margin, max_margin + 1e-9, 0.01):
        my, mx = int(h * f), int(w * f)
        corners = np.array(
            [[mx, my, 1], [w - mx, my, 1], [mx, h - my, 1], [w - mx, h - my, 1]], np.float64
        ).T
        x, y = np.concatenate([m @ corners for m in inverse], axis=1)[:2]  # in the source
        if x.min() >= 0 and x.max() <= w - 1 and y.min() >= 0 and y.max() <= h - 1:
            return my, mx
    return None


def _degrade(
    srgb: np.ndarray, rng: np.random.Generator, sigma: float, quality: int | None
) -> np.ndarray:
    out = srgb.astype(np.float32)
    if sigma > 0:
        out = out + rng.normal(0.0, sigma, out.shape).astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if quality is not None:
        _ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return out


def synthesize(
    sources: list[np.ndarray],
    n_frames: int | None = None,
    params: BlurParams | None = None,
    seed: int = 0,
    margin: float = 0.08,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Blurred and sharp sequences from sharp RGB uint8 ``sources``.

    One source (a still): a virtual camera moves over it for ``n_frames`` frames, about the
    middle of the sequence. Several sources (a video): frame t is moved relative to its own
    mid-exposure view, on top of the motion already in the video. Outputs are cropped by
    ``margin`` on each side so warped borders never show; the crop grows (to 30 % a side)
    until every view lies inside it, and where even that is too little a still's motion is
    scaled down. Deterministic for a given seed.
    """
    shapes = {src.shape for src in sources}
    if any(src.dtype != np.uint8 for src in sources) or len(shapes) != 1:
        raise ValueError(f"frames of one size, uint8, expected: got {sorted(shapes)}")
    if len(shape := shapes.pop()) != 3 or shape[2] != 3:  # grey came back mirrored as RGB
        raise ValueError(f"RGB frames (H, W, 3) expected, got {shape}")
    p = params or BlurParams()
    rng = np.random.default_rng(seed)
    still = len(sources) == 1
    n = n_frames or len(sources)
    h, w = sources[0].shape[:2]
    my, mx = int(h * margin), int(w * margin)
    traj = Trajectory(n, p, rng)
    obj = _moving_object((h, w), rng, p) if rng.random() < p.object_prob else None
    sigma = rng.uniform(0, p.noise_std)
    quality = (
        int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1)) if p.jpeg_quality else None
    )
    # Drawn only for a mixed share, so sequences of the default (all linear light) keep their
    # random stream and evaluation sets stay the same.
    linear = p.linear_light >= 1.0 or (p.linear_light > 0 and rng.random() < p.linear_light)
    decode, encode = transfer(linear)
    center = (w / 2.0, h / 2.0)
    offsets = (np.arange(p.subframes) + 0.5) / p.subframes - 0.5  # within the exposure
    k = 1.0
    if still:  # the camera's path, centred on the middle frame, must stay over the still
        taus = [t + o * p.exposure for t in range(n) for o in (*offsets, 0.0)]
        k, my, mx = _fit_still(traj, taus, (n - 1) / 2, center, h, w, margin)
    else:  # no draw: a sequence whose views fit the 8 % comes out as it did
        times = [(t, t + o * p.exposure) for t in range(n) for o in offsets]
        my, mx = _fit_video(traj, times, center, h, w, margin)
    at = traj.path(center, k)
    # a still is seen relative to the middle view (k keeps that path short); a video frame
    # is its own sharp view, moved by the motion within its exposure alone
    mid = np.linalg.inv(at((n - 1) / 2)) if still else None
    blurred, sharp = [], []
    for t in range(n):
        src = sources[0] if still else sources[t]
        lin = decode(src)

        def view(tau: float, lin=lin, t=t) -> np.ndarray:
            move = at(tau) @ mid if mid is not None else traj.between(t, tau, center)
            img = cv2.warpPerspective(
                lin, move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            return _paste(img, lin, obj, tau) if obj is not None else img

        acc = np.zeros_like(lin)
        for o in offsets:
            acc += view(t + o * p.exposure)
        crop = (slice(my, h - my), slice(mx, w - mx))
        # copied out: a view of the crop would keep the whole uncropped frame in memory (1.5x
        # the pixels at the 8 % margin, 6x at a still's 30 %) for as long as training runs
        sharp.append(np.ascontiguousarray(encode(view(float(t)))[crop]))
        blurred.append(
            np.ascontiguousarray(_degrade(encode(acc / len(offsets)), rng, sigma, quality)[crop])
        )
    return blurred, sharp
