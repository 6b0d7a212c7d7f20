"""The packaged weights really deblur: on held-out material (Vid4 calendar, never trained on)
blurred by the generator with settings unlike the validation set's, the output is closer to
the sharp frames than the blurred input is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sarn_ros.checkpoint import load_model
from sarn_ros.data.blur_synth import BlurParams, synthesize
from sarn_ros.data.datasets import list_images, read_rgb, resize_by

REPO = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    path = REPO / "weights" / f"{name}.pth"
    if not path.exists():
        pytest.skip(f"weights/{name}.pth not shipped yet")
    return path


@pytest.fixture(scope="module")
def held_out_clip(shared_data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """4 calendar frames (not the 10 used for validation), downscaled and cropped to 160x128."""
    paths = list_images(shared_data / "sharp" / "Vid4" / "calendar")[24:28]
    frames = [resize_by(read_rgb(p), 0.4)[8:158, 20:198] for p in paths]
    params = BlurParams(blur_px=8.0, min_blur_fraction=0.8, object_prob=0.0, noise_std=1.0)
    blurred, sharp = synthesize(frames, params=params, seed=77, margin=0.05)

    def tensor(x: list[np.ndarray]) -> torch.Tensor:
        t = torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).float() / 255
        return t[None, :, :, :128, :160]

    return tensor(blurred), tensor(sharp)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    x = (x.clamp(0, 1) * 255).round() / 255
    return float(10 * torch.log10(1 / torch.mean((x - y) ** 2)))


def test_recurrent_weights_load_and_beat_the_blurred_input(held_out_clip) -> None:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = load_model(shipped("sarn_recurrent"))
    assert type(model).__name__ == "RecurrentSARN"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    v = model.meta["validation"]
    assert v["val_psnr"] > v["input_psnr"]
    blurred, sharp = held_out_clip
    with torch.no_grad():
        for future in (0, 2):
            out, _ = model(blurred, future)
            # shipped weights (H200 fine-tune, batch 16 at 256 px) gain +1.24 / +1.25 dB here
            # (+1.23 / +1.24 before the 2026-12-02 generator fix); half is the regression bar
            gain = psnr(out, sharp) - psnr(blurred, sharp)
            print(f"recurrent weights, look-ahead {future}: gain {gain:+.3f} dB on the clip")
            assert gain > 0.61, future


def test_single_image_weights_beat_the_blurred_input(held_out_clip) -> None:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = load_model(shipped("sarn_single"))
    assert type(model).__name__ == "SARN"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    blurred, sharp = held_out_clip
    with torch.no_grad():
        out = model(blurred[0])  # the four frames as a batch of stills
    gain = psnr(out, sharp[0]) - psnr(blurred[0], sharp[0])
    print(f"single-image weights: gain {gain:+.3f} dB on the held-out clip")
    assert gain > 0.48  # shipped weights (extra stills, step 3,449) gain +0.98 dB; half is the bar


@pytest.mark.parametrize(
    ("name", "bar"),
    # shipped weights gain +1.20 (recurrent, look-ahead 2) and +0.92 dB (single) on the
    # sample as regenerated 2026-12-02 (generator fix; +1.25 / +1.00 before); half is the bar
    [("sarn_recurrent", 0.60), ("sarn_single", 0.46)],
)
def test_weights_beat_the_input_on_the_bundled_sample(name: str, bar: float) -> None:
    """Runs without ../shared/data: the packaged sample through the streaming engine, as the
    demo and the node run it, must come out closer to its ground truth than it went in."""
    from sarn_ros import StreamDeblurrer
    from sarn_ros.metrics import psnr as psnr8
    from sarn_ros.tools.demo import load_sample

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    blurred, sharp = load_sample()
    engine = StreamDeblurrer(shipped(name), device="cpu", future_frames=2)
    outs = [o for i, f in enumerate(blurred) for o in engine.push(f, i * 33_000_000)]
    outs += engine.flush()
    assert [o.stamp for o in outs] == [i * 33_000_000 for i in range(len(blurred))]
    triples = zip(outs, blurred, sharp, strict=True)
    gains = [psnr8(o.image, s) - psnr8(b, s) for o, b, s in triples]
    print(f"bundled sample, {name}: mean PSNR gain {np.mean(gains):+.3f} dB")
    assert np.mean(gains) > bar


def test_self_ensemble_of_the_shipped_weights_beats_one_pass_on_the_bundled_sample() -> None:
    """The averaged flips must be closer to the ground truth than the plain pass (the README
    figures, on the sample the demo plays)."""
    from sarn_ros import SelfEnsembleDeblurrer, StreamDeblurrer
    from sarn_ros.metrics import psnr as psnr8
    from sarn_ros.tools.demo import load_sample

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    blurred, sharp = load_sample()
    path = shipped("sarn_recurrent")
    mean_psnr = {}
    for members in (1, 4):
        engine = (
            StreamDeblurrer(path, device="cpu")
            if members == 1
            else SelfEnsembleDeblurrer(path, members=members, device="cpu")
        )
        outs = [o for i, f in enumerate(blurred) for o in engine.push(f, i * 33_000_000)]
        outs += engine.flush()
        mean_psnr[members] = np.mean([psnr8(o.image, s) for o, s in zip(outs, sharp, strict=True)])
    gain = mean_psnr[4] - mean_psnr[1]
    print(f"bundled sample, sarn_recurrent: self-ensemble x4 adds {gain:+.3f} dB")
    assert gain > 0.07  # the shipped file gains +0.152 dB from 4 members here; half is the bar
