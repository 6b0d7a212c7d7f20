"""Trainer: learning on a fixed batch, exact resume, schedule, validation export, fine-tuning
and the `sarn train` command, all with a tiny model on tiny frames."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from sarn_ros import metrics
from sarn_ros.archs import fusion_inputs
from sarn_ros.checkpoint import load_model, read_checkpoint, save_checkpoint
from sarn_ros.data.datasets import Sequence
from sarn_ros.tools.cli import main as sarn
from sarn_ros.tools.train import option_defaults, validation_set
from sarn_ros.training.trainer import (
    TRAINING_STATE_KEYS,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    amp_dtype,
    build_training_model,
    load_training_state,
    trained_steps,
)

TINY = {"channels": 8, "blocks_per_level": 1, "num_drm": 2, "attention_stride": 4}
TINY_REC = {**TINY, "lstm_channels": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blurry_sequence(name: str = "s", n: int = 5, h: int = 48, w: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    sharp = []
    base = cv2.resize(rng.uniform(0, 255, (12, 16, 3)).astype(np.float32), (w + n * 2, h))
    for t in range(n):  # a slow pan
        sharp.append(np.clip(base[:, 2 * t : 2 * t + w], 0, 255).astype(np.uint8))
    blurred = [cv2.blur(f, (7, 1)) for f in sharp]
    return Sequence(name, blurred, sharp)


def config(**kw) -> TrainConfig:
    base = {
        "arch": "recurrent",
        "steps": 50,
        "batch": 2,
        "clip_len": 3,
        "crop": 32,
        "lr": 2e-3,
        "warmup": 2,
        "device": "cpu",
        "model": dict(TINY_REC),
        "ckpt_minutes": 1e9,
        "val_minutes": 1e9,
    }
    base.update(kw)
    if base["arch"] == "single":
        base["model"] = dict(TINY)
    return TrainConfig(**base)


def test_loss_goes_down_on_a_fixed_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tr = Trainer(config(), [blurry_sequence()], [], tmp_path)
    blurred, sharp = tr.sampler.sample(np.random.default_rng(0), 2)
    losses = [tr.train_step(blurred, sharp, future_frames=2) for _ in range(30)]
    # a fresh model starts as the identity, so every gain is deblurring learnt
    assert np.mean(losses[-3:]) < 0.97 * losses[0]
    assert tr.step == 30


def test_recurrent_batches_carry_their_look_ahead_frames_unsupervised(tmp_path: Path) -> None:
    """Each step draws its look-ahead (0-2) and that many blurred frames after the clip, so
    the clip's last frames train on real future frames as the engine's steady state has them;
    the loss covers only the clip's own frames."""
    tr = Trainer(config(fft_weight=0.0, loss="l1"), [blurry_sequence(n=7)], [], tmp_path)
    seen = set()
    for _ in range(12):
        blurred, sharp, future = tr.draw_batch()
        seen.add(future)
        assert blurred.shape[1] == 3 + future and sharp.shape[1] == 3
    assert seen == {0, 1, 2}
    blurred, sharp, future = tr.draw_batch()
    while future != 2:
        blurred, sharp, future = tr.draw_batch()
    expected = (blurred[:, :3] - sharp).abs().mean()  # a fresh model is the identity
    assert tr.train_step(blurred, sharp, future) == pytest.approx(float(expected), rel=1e-4)
    # a model that is not the identity: the loss is that of the clip with its real look-ahead
    # (its end-of-stream substitutes, or none, give other numbers: 8e-4 relative away)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in tr.model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        expected = (tr.model(blurred, 2, n_out=3)[0] - sharp).abs().mean()
    assert tr.train_step(blurred, sharp, future) == pytest.approx(float(expected), rel=1e-4)


def test_bf16_autocast_on_cpu_learns_and_tracks_fp32(tmp_path: Path) -> None:
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        tr = Trainer(config(precision=precision), [blurry_sequence()], [], tmp_path / precision)
        blurred, sharp = tr.sampler.sample(np.random.default_rng(0), 2)
        runs[precision] = [tr.train_step(blurred, sharp, future_frames=2) for _ in range(30)]
    fp32, bf16 = np.array(runs["fp32"]), np.array(runs["bf16"])
    assert np.mean(bf16[-3:]) < 0.97 * bf16[0]
    assert not np.array_equal(fp32, bf16)  # autocast really ran in bf16
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)


def test_torch_compile_trains_the_same_model_through_the_compiled_graph(tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        tr = Trainer(
            config(torch_compile=compiled), [blurry_sequence()], [], tmp_path / str(compiled)
        )
        blurred, sharp = tr.sampler.sample(np.random.default_rng(0), 2)
        graphs = counters["stats"]["unique_graphs"]
        runs[compiled] = [tr.train_step(blurred, sharp, future_frames=2) for _ in range(4)]
        assert (counters["stats"]["unique_graphs"] > graphs) == compiled
    # The weights move (eager losses change by ~1 %) and move the same way through the
    # compiled forward and backward: its kernels only reorder float sums.
    assert np.ptp(runs[False]) > 1e-3 * runs[False][0]
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-4)


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [("auto", "cpu", None), ("fp32", "cpu", None), ("bf16", "cpu", torch.bfloat16)],
)
def test_precision_resolves_to_an_autocast_dtype(precision, device, expected) -> None:
    assert amp_dtype(precision, torch.device(device)) is expected


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cuda_asks_for_native_bf16_on_any_torch(monkeypatch, native) -> None:
    """Emulated bf16 is slow, so auto takes fp16 there; torch < 2.3 has no keyword to ask."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    expected = torch.bfloat16 if native else torch.float16
    assert amp_dtype("auto", torch.device("cuda")) is expected
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: native)  # torch 2.1/2.2
    assert amp_dtype("auto", torch.device("cuda")) is expected


@pytest.mark.parametrize(("precision", "match"), [("fp16", "needs CUDA"), ("int8", "unknown")])
def test_precision_a_cpu_cannot_train_in_is_refused(tmp_path: Path, precision, match) -> None:
    with pytest.raises(ValueError, match=match):
        Trainer(config(precision=precision), [blurry_sequence()], [], tmp_path)


@pytest.mark.parametrize("loss", ["l1", "charbonnier"])
def test_pixel_loss_of_the_identity_start_is_the_input_error(tmp_path: Path, loss: str) -> None:
    tr = Trainer(config(loss=loss, fft_weight=0.0), [blurry_sequence()], [], tmp_path)
    blurred, sharp = tr.sampler.sample(np.random.default_rng(0), 2)
    err = blurred - sharp  # a fresh model outputs each input frame as it is
    expected = err.abs().mean() if loss == "l1" else torch.sqrt(err**2 + 1e-6).mean()
    assert tr.train_step(blurred, sharp, 2) == pytest.approx(float(expected), rel=1e-4)


def test_unknown_loss_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        Trainer(config(loss="l2"), [blurry_sequence()], [], tmp_path)


def test_resume_continues_at_the_same_step_with_the_identical_next_loss(tmp_path: Path) -> None:
    data = [blurry_sequence(seed=1), blurry_sequence("t", seed=2)]
    straight = Trainer(config(seed=3), data, [], tmp_path / "a")
    expected = [straight.train_one() for _ in range(3)]

    first = Trainer(config(seed=3), data, [], tmp_path / "b")
    first.cfg.init = "start.pth"  # as if fine-tuned from weights (building from it is tested below)
    first.train_one()
    first.train_one()
    first.save()
    second = Trainer(config(seed=3), data, [], tmp_path / "b")
    assert second.resume() and second.step == 2
    assert second.cfg.init == "start.pth"  # the exported metadata keeps the start point
    assert second.sched.get_last_lr() == first.sched.get_last_lr()
    assert second.train_one() == expected[2]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k


def test_resumed_ddp_ranks_draw_their_own_batches(tmp_path: Path, monkeypatch) -> None:
    """Every rank loads rank 0's checkpoint; only rank 0 takes its batch stream back, the others
    continue on streams of their own, so data parallelism survives --resume."""
    data = [blurry_sequence(seed=1), blurry_sequence("t", seed=2)]
    first = Trainer(config(seed=3), data, [], tmp_path)
    first.train_one()
    first.save()
    drawn = []
    for rank in (0, 1, 2):
        monkeypatch.setenv("RANK", str(rank))  # WORLD_SIZE stays 1: no process group needed
        tr = Trainer(config(seed=3), data, [], tmp_path)
        assert tr.resume() and tr.step == 1
        drawn.append(tr.draw_batch()[0])
    assert torch.equal(drawn[0], first.draw_batch()[0])  # rank 0 resumes bit for bit
    assert not torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[1], drawn[2])


def test_ema_averages_weights_is_what_gets_exported_and_resumes(tmp_path: Path) -> None:
    data, val = [blurry_sequence()], [blurry_sequence("val", n=3, seed=9)]
    tr = Trainer(config(ema_decay=0.9, steps=3), data, val, tmp_path)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.train_one()
    d = 2 / 11  # decay ramped up: min(0.9, (1 + step) / (10 + step)) at step 1
    after = tr.model.state_dict()
    for k, v in tr.ema.state_dict().items():
        torch.testing.assert_close(v, d * before[k] + (1 - d) * after[k], msg=k)
    tr.train_one()
    tr.save()
    moved = [k for k, v in tr.ema.state_dict().items() if not torch.equal(v, after[k])]
    assert moved  # the average lags the raw weights: it is not a copy of them

    again = Trainer(config(ema_decay=0.9, steps=3), data, val, tmp_path)
    assert again.resume()
    for k, v in tr.ema.state_dict().items():
        assert torch.equal(v, again.ema.state_dict()[k]), k

    def val_psnr(model: torch.nn.Module) -> float:
        clip = torch.from_numpy(np.stack(val[0].blurred) / 255).float().permute(0, 3, 1, 2)
        with torch.no_grad():
            out, _ = model.eval()(clip[None], 2)
        out = (out[0].clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
        sharp = np.stack(val[0].sharp).astype(np.float64)
        return float(np.mean([metrics.psnr(o, t) for o, t in zip(out, sharp, strict=True)]))

    # validation, and so best.pth's choice and figures, measure the weights exported
    assert tr.validate()["val_psnr"] == pytest.approx(val_psnr(tr.ema), abs=1e-6)
    assert abs(val_psnr(tr.ema) - val_psnr(tr.model)) > 1e-5
    again.run(log=lambda _msg: None)  # step 3: validates and exports the average
    exported = read_checkpoint(tmp_path / "best.pth")["state_dict"]
    for k, v in again.ema.state_dict().items():
        assert torch.equal(exported[k], v.float()), k
    assert any(not torch.equal(exported[k], v) for k, v in again.model.state_dict().items())


def test_ema_starts_from_the_weights_of_a_run_saved_without_it(tmp_path: Path) -> None:
    plain = Trainer(config(), [blurry_sequence()], [], tmp_path)
    plain.train_one()
    plain.save()
    tr = Trainer(config(ema_decay=0.999), [blurry_sequence()], [], tmp_path)
    assert tr.resume()
    for k, v in plain.model.state_dict().items():
        assert torch.equal(tr.ema.state_dict()[k], v), k


def test_prefetched_run_trains_on_the_same_batches_and_checkpoints_where_it_stopped(
    tmp_path: Path,
) -> None:
    """The background sampler draws ahead, yet the run, its checkpoint and a resume from it
    match a run that drew each batch when it needed it."""
    data = [blurry_sequence(seed=1), blurry_sequence("t", seed=2)]
    straight = Trainer(config(seed=4, steps=5, prefetch=False), data, [], tmp_path / "a")
    straight.run(log=lambda _msg: None)
    ahead = Trainer(config(seed=4, steps=5, prefetch=True), data, [], tmp_path / "b")
    ahead._should_stop = lambda _start: ahead.step == 3  # as --max-minutes does
    ahead.run(log=lambda _msg: None)  # saves at the end, with batches 4-5 already queued
    assert ahead.prefetcher is None and ahead.step == 3
    resumed = Trainer(config(seed=4, steps=5, prefetch=True), data, [], tmp_path / "b")
    assert resumed.resume() and resumed.step == 3
    resumed.run(log=lambda _msg: None)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["np_rng"]
    assert saved == straight.rng.bit_generator.state == resumed.rng.bit_generator.state


def test_a_failing_background_sampler_stops_the_run_with_its_error(tmp_path: Path) -> None:
    tr = Trainer(config(prefetch=True), [blurry_sequence()], [], tmp_path)

    def broken(*_args, **_kwargs):
        raise OSError("disk gone")

    tr.sampler.sample = broken
    with pytest.raises(OSError, match="disk gone"):
        tr.run(log=lambda _msg: None)
    assert tr.prefetcher is None and tr.step == 0


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    tr = Trainer(config(), [blurry_sequence()], [], tmp_path)
    assert not tr.resume() and tr.step == 0


def test_warmup_then_cosine_down_to_min_lr(tmp_path: Path) -> None:
    tr = Trainer(
        config(steps=20, warmup=4, lr=1e-3, min_lr=1e-5), [blurry_sequence()], [], tmp_path
    )
    f = [tr._lr_factor(s) * 1e-3 for s in range(21)]
    assert f[0] < f[1] < f[3] == pytest.approx(1e-3)
    assert np.all(np.diff(f[3:]) <= 0)
    assert f[20] == pytest.approx(1e-5)
    # the cosine starts at the full rate after the warm-up and has its shape (a straight line
    # meets it at the middle only)
    assert f[4] == pytest.approx(1e-3)
    assert f[8] == pytest.approx(1e-5 + 0.99e-3 * 0.5 * (1 + np.cos(np.pi / 4)))
    assert tr.opt.param_groups[0]["betas"] == (0.9, 0.99)
    # a peak below min_lr never rises to it (--lr 5e-6 went up to 1e-5 as the cosine "fell")
    low = Trainer(
        config(steps=20, warmup=4, lr=5e-6, min_lr=1e-5), [blurry_sequence()], [], tmp_path
    )
    g = [low._lr_factor(s) * 5e-6 for s in range(21)]
    assert max(g) == pytest.approx(5e-6) and np.all(np.diff(g[3:]) <= 0)


def test_run_validates_exports_best_and_checkpoints(tmp_path: Path) -> None:
    val = [blurry_sequence("val", n=3, seed=9)]
    tr = Trainer(config(steps=2), [blurry_sequence()], val, tmp_path)
    tr.run(log=lambda _msg: None)
    assert tr.step == 2
    assert (tmp_path / "last.pt").exists() and (tmp_path / "tb").is_dir()
    model = load_model(tmp_path / "best.pth")
    v = model.meta["validation"]
    assert v["input_psnr"] == pytest.approx(tr.history[-1]["input_psnr"])
    assert np.isfinite(v["val_psnr"]) and model.meta["steps"] == 2
    assert read_checkpoint(tmp_path / "best.pth")["config"]["channels"] == 8
    latest = read_checkpoint(tmp_path / "latest.pth")  # the weights of the last checkpoint
    assert latest["meta"]["steps"] == 2 and latest["meta"]["validation"]["step"] == 2
    for k, w in tr.model.state_dict().items():
        assert torch.equal(latest["state_dict"][k], w), k


def test_checkpoint_before_any_validation_exports_latest_without_figures(tmp_path: Path) -> None:
    tr = Trainer(config(), [blurry_sequence()], [], tmp_path)
    tr.train_one()
    tr.save()
    meta = load_model(tmp_path / "latest.pth").meta
    assert meta["steps"] == 1 and "validation" not in meta


def test_max_minutes_stops_and_saves(tmp_path: Path) -> None:
    tr = Trainer(config(max_minutes=0.0), [blurry_sequence()], [], tmp_path)
    messages: list[str] = []
    tr.run(log=messages.append)
    assert tr.step == 0 and (tmp_path / "last.pt").exists()
    steps = tr.cfg.steps  # the user is told why the run ended early and how to go on
    assert messages == [
        f"--max-minutes 0 reached at step 0 of {steps}: checkpoint saved, continue with --resume"
    ]


def test_weights_gone_nan_end_the_run_before_they_are_saved(tmp_path: Path) -> None:
    """A run whose weights went NaN (a too-high --lr) exited 0 with NaN weights in
    latest.pth; a non-finite loss over finite weights (fp16's skipped step) goes on."""

    def run_with_nan_loss_at_step_2(poison: bool) -> Trainer:
        tr = Trainer(config(steps=4), [blurry_sequence()], [], tmp_path / str(poison))
        train_one = tr.train_one

        def step() -> float:
            loss = train_one()
            if tr.step != 2:
                return loss
            if poison:
                with torch.no_grad():
                    next(tr.model.parameters()).fill_(float("nan"))
            return float("nan")

        tr.train_one = step
        tr.run(log=lambda _msg: None)
        return tr

    assert run_with_nan_loss_at_step_2(poison=False).step == 4
    with pytest.raises(TrainingDiverged, match="became NaN or infinite at step 2"):
        run_with_nan_loss_at_step_2(poison=True)
    assert not (tmp_path / "True" / "last.pt").exists()


def test_only_rank_0_reports_a_stop(tmp_path: Path) -> None:
    """torchrun sends Ctrl-C to every rank: each printed the stop and `checkpoint saved`,
    though only rank 0 saves."""
    tr = Trainer(config(max_minutes=0.0), [blurry_sequence()], [], tmp_path)
    tr.rank = 1
    messages: list[str] = []
    tr.run(log=messages.append)
    assert messages == [] and not (tmp_path / "last.pt").exists()


def test_the_logged_loss_is_the_mean_over_the_ddp_ranks(tmp_path: Path, monkeypatch) -> None:
    """TensorBoard's train/loss under torchrun was rank 0's batches alone; it is now averaged
    over the ranks as the gradients are (here rank 1's mean loss is 1.5, rank 0's 0.5)."""
    from types import SimpleNamespace

    from sarn_ros.training import trainer as trainer_module

    def all_reduce(tensor: torch.Tensor, op=None) -> None:
        if op == trainer_module.dist.ReduceOp.SUM:
            tensor += 1.5  # the other rank's share; the stop flags (MAX) stay this rank's

    monkeypatch.setattr(trainer_module.dist, "all_reduce", all_reduce)
    tr = Trainer(config(steps=10), [blurry_sequence()], [], tmp_path)
    logged: dict[str, list] = {}
    tr.writer = SimpleNamespace(
        add_scalar=lambda tag, value, step: logged.setdefault(tag, []).append((value, step))
    )
    tr.world, train_one = 2, tr.train_one
    tr.train_one = lambda: (train_one(), 0.5)[1]
    tr.run(log=lambda *_: None)
    assert logged["train/loss"] == [(pytest.approx(1.0), 10)]


def test_single_image_model_trains(tmp_path: Path) -> None:
    tr = Trainer(config(arch="single"), [blurry_sequence()], [], tmp_path)
    assert type(tr.model).__name__ == "SARN"
    assert np.isfinite(tr.train_one())
    assert tr.sampler.clip_len == 1


def test_fine_tune_starts_from_given_weights(tmp_path: Path, tiny_recurrent_checkpoint) -> None:
    model = build_training_model(config(init=str(tiny_recurrent_checkpoint)))
    ref = load_model(tiny_recurrent_checkpoint)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_architectures_start_from_each_others_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 32)
    others = [torch.rand(1, 3, 24, 32) for _ in range(4)]
    # single -> recurrent: the neighbours' kernels and the LSTM projection start at zero, so
    # the first output equals the single model's whatever the neighbours hold
    single = build_training_model(config(arch="single"))
    nn.init.normal_(single.decoder.out.weight, std=0.1)  # a non-identity residual
    save_checkpoint(single, tmp_path / "single.pth")
    rec = build_training_model(config(init=str(tmp_path / "single.pth"), model={}))
    with torch.no_grad():
        out, _ = rec.step(fusion_inputs(others[:2], x, others[2:]))
        assert torch.allclose(out, single(x), atol=1e-5)
    # recurrent -> single: the five slots are summed, so the single model computes what the
    # recurrent one does on a stream's first frame (all slots hold it) without the LSTM term
    rec = build_training_model(config())
    nn.init.normal_(rec.decoder.out.weight, std=0.1)
    nn.init.zeros_(rec.lstm_out.weight)
    nn.init.zeros_(rec.lstm_out.bias)
    save_checkpoint(rec, tmp_path / "rec.pth")
    single = build_training_model(config(arch="single", init=str(tmp_path / "rec.pth")))
    with torch.no_grad():
        first, _ = rec.step(fusion_inputs([], x, []))
        assert torch.allclose(single(x), first, atol=1e-5)
        assert (first - x).abs().max() > 1e-3  # the check compares real residuals


def test_cli_reports_bad_data_in_one_line(tmp_path: Path, capsys) -> None:
    rc = sarn(["train", "--run-dir", str(tmp_path / "r"), "--data", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("sarn train:") and "\n" not in err


def test_cli_trains_from_sharp_folder_and_reuses_trainset(tmp_path: Path, capsys) -> None:
    video = tmp_path / "video"
    video.mkdir()
    for i, f in enumerate(blurry_sequence(n=5, h=60, w=80).sharp):
        cv2.imwrite(str(video / f"{i:03d}.png"), f[..., ::-1])
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--val-sharp", str(video), "--val-frames", "3"]
    args += ["--val-scale", "1", "--steps", "1", "--batch", "1", "--clip-len", "3"]
    args += ["--crop", "32", "--blur-px", "4", "--device", "cpu"]
    args += ["--channels", "8", "--blocks-per-level", "1", "--num-drm", "1"]
    args += ["--lstm-channels", "8", "--attention-stride", "4"]
    assert sarn(args) == 0
    assert list((tmp_path / "ts").glob("*.npz"))
    meta = load_model(tmp_path / "run" / "best.pth").meta
    assert meta["steps"] == 1 and "synthetic blur" in meta["data"][-1]
    want = f"{video}, synthetic blur 4 px, exposure 0.8 (seed 1234): 1 sequence, 3 frames at x1"
    assert meta["validation"]["set"] == want
    # a second call resumes from last.pt (already at --steps) and loads the stored trainset
    assert sarn([*args, "--resume", "--data"]) == 0
    assert "not used on --resume" not in capsys.readouterr().out
    # architecture options are for new runs: a resume names those it does not use
    assert sarn([*args, "--resume", "--data", "--arch", "single", "--channels", "16"]) == 0
    note = "note: --arch single, --channels 16 not used on --resume: the run keeps its recurrent "
    note += "model (channels 8, blocks_per_level 1, num_drm 1, lstm_channels 8, attention_stride 4)"
    assert note in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "run" / "latest.pth")["config"]["channels"] == 8


def write_pairs(root: Path, seq: Sequence) -> None:
    """``seq`` as a GoPro-layout sequence folder."""
    for kind, frames in (("blur", seq.blurred), ("sharp", seq.sharp)):
        (root / seq.name / kind).mkdir(parents=True)
        for i, f in enumerate(frames):
            cv2.imwrite(str(root / seq.name / kind / f"{i:06d}.png"), f[..., ::-1])


def test_cli_trains_on_real_pairs_and_validates_on_held_out_pairs(tmp_path: Path) -> None:
    """GoPro-style: train on one split's pairs, pick best.pth on the other split's pairs; the
    metadata says what the validation figure was measured on."""
    write_pairs(tmp_path / "train", blurry_sequence("t0", n=4, seed=1))
    held_out = [blurry_sequence("v0", n=4, seed=2), blurry_sequence("v1", n=4, seed=3)]
    for seq in held_out:
        write_pairs(tmp_path / "test", seq)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(tmp_path / "train")]
    args += ["--val-pairs", str(tmp_path / "test"), "--val-frames", "3", "--val-scale", "1"]
    # 4-frame sequences: clips of 2 plus the 2 look-ahead frames read after them
    args += ["--steps", "1", "--batch", "1", "--clip-len", "2", "--crop", "32", "--device", "cpu"]
    args += ["--channels", "8", "--blocks-per-level", "1", "--num-drm", "1"]
    args += ["--lstm-channels", "8", "--attention-stride", "4"]
    assert sarn(args) == 0
    v = load_model(tmp_path / "run" / "best.pth").meta["validation"]
    blurred_vs_sharp = [
        metrics.psnr(b, g)
        for seq in held_out
        for b, g in zip(seq.blurred[:3], seq.sharp[:3], strict=True)
    ]
    assert v["input_psnr"] == pytest.approx(np.mean(blurred_vs_sharp), abs=1e-3)
    assert v["set"] == f"real pairs {tmp_path / 'test'}: 2 sequences, 6 frames at x1"
    data = load_model(tmp_path / "run" / "best.pth").meta["data"]
    assert data[-1] == f"real pairs: {tmp_path / 'train'}"  # no synthetic blur line


def test_held_out_pairs_are_validated_at_full_size_as_sarn_eval_scores_them(tmp_path: Path):
    """--val-pairs were validated at the default x0.5, a figure `sarn eval --pairs` (full size
    only) could not reproduce; --val-sharp's synthetic frames stay at x0.5, as `sarn eval
    --synthetic` scores them. A --val-scale given applies to both."""
    from sarn_ros.tools.eval import SCALE
    from sarn_ros.tools.train import describe_validation, option_defaults, validation_set

    write_pairs(tmp_path / "test", blurry_sequence("v0", n=3, seed=2))  # 48x64
    (tmp_path / "stills").mkdir()
    for i, f in enumerate(blurry_sequence("s", n=2, h=128, w=160, seed=3).sharp):
        cv2.imwrite(str(tmp_path / "stills" / f"{i}.png"), f)
    args = option_defaults()
    args.val_pairs, args.val_frames = [tmp_path / "test"], 3
    (seq,) = validation_set(args)
    assert seq.blurred[0].shape == (48, 64, 3)
    assert describe_validation(args, [seq]) == (
        f"real pairs {tmp_path / 'test'}: 1 sequence, 3 frames at x1"
    )
    args.val_sharp = tmp_path / "stills"
    val = validation_set(args)
    sizes = [q.blurred[0].shape[:2] for q in val]
    assert sizes[2] == (48, 64) and max(sizes[0]) < 80  # a still's move, cropped, at x0.5
    assert SCALE == 0.5 and describe_validation(args, val) == (
        f"{tmp_path / 'stills'}, synthetic blur 12 px (24 px at full resolution), exposure 0.8 "
        "(seed 1234) at x0.5; "
        f"real pairs {tmp_path / 'test'} at x1: 3 sequences, {sum(len(q.blurred) for q in val)} "
        "frames"
    )
    args.val_scale = 0.5
    assert [q.blurred[0].shape[:2] for q in validation_set(args)] == [*sizes[:2], (24, 32)]
    assert describe_validation(args, val).endswith(" frames at x0.5")


def test_validation_eval_cannot_check_or_that_is_trained_on_is_noted(tmp_path: Path, capsys):
    """--val-pairs at --val-scale 0.5 gave a figure `sarn eval --pairs` cannot reproduce; a
    held-out recording that training also reads (by --data, a link, a reused --trainset)
    chose best.pth on trained frames; a one-sided sequence there was left out: each without
    a word. What is not read (a folder two levels down, the images in a sub-folder of a folder
    of images, a one-sided sequence) is no overlap."""
    from sarn_ros.tools.train import option_defaults, validation_notes, validation_set

    write_pairs(tmp_path / "val", blurry_sequence("v0", n=3, seed=2))
    (tmp_path / "val" / "half" / "blur").mkdir(parents=True)
    black = np.zeros((48, 64, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "val" / "half" / "blur" / "0.png"), black)
    for d in ("root/held/cal", "root/train", "root/train/inner"):  # held/cal: two levels down
        (tmp_path / d).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / d / "0.png"), black)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "cal").symlink_to(tmp_path / "root" / "held" / "cal")
    args = option_defaults()
    args.val_pairs, args.val_frames = [tmp_path / "val"], 3

    def notes(*paths: Path) -> list[str]:
        return validation_notes(args, [(f"--data {p}", p) for p in paths])

    def trained_on(label: str, option: str = f"--val-pairs {tmp_path / 'val'}") -> str:
        return (
            f"note: {option} and {label} hold the same recordings: best.pth is chosen on "
            "frames it trains on; hold a different recording out"
        )

    v0 = tmp_path / "val" / "v0"
    assert notes(tmp_path / "root", v0) == [trained_on(f"--data {v0}")]
    assert notes(v0 / "sharp") == [trained_on(f"--data {v0 / 'sharp'}")]
    args.val_scale = 0.5
    assert notes(tmp_path / "val" / "half" / "blur") == [  # not validated on
        "note: --val-pairs validated at x0.5: `sarn eval --pairs` scores them at full size "
        "only, so it cannot reproduce best.pth's figure"
    ]
    args.val_scale, args.val_pairs = None, []
    args.val_sharp = tmp_path / "root" / "held" / "cal"
    assert notes(tmp_path / "root") == []  # root reads root/train, not root/held/cal
    held = f"--val-sharp {args.val_sharp}"
    assert notes(tmp_path / "links") == [trained_on(f"--data {tmp_path / 'links'}", held)]
    args.val_sharp = tmp_path / "root" / "train" / "inner"
    assert notes(tmp_path / "root" / "train") == []  # a folder of images reads its own only
    args.val_sharp = tmp_path / "root" / "held" / "cal"
    label = f"--trainset ts (built from {tmp_path / 'root' / 'held'})"
    assert validation_notes(args, [(label, tmp_path / "root" / "held")]) == [
        trained_on(label, held)
    ]
    args.val_sharp, args.val_pairs = None, [tmp_path / "val"]
    (seq,) = validation_set(args)
    assert seq.name == "v0" and capsys.readouterr().out == (
        f"note: --val-pairs {tmp_path / 'val'}: not validated on: half (one side only)\n"
    )
    # a sequence given again, inside a folder given before or after it, is validated once
    # (by the first given of two that find as many)
    for given in ([tmp_path / "val", v0], [v0, tmp_path / "val"]):
        args.val_pairs = given
        assert [seq.name for seq in validation_set(args)] == ["v0"]
        assert capsys.readouterr().out.endswith(
            f"note: --val-pairs {given[1]}: v0 also under --val-pairs {given[0]}: "
            "validated there, once\n"
        )


def test_a_change_of_width_alone_cuts_a_validation_sequence() -> None:
    from sarn_ros.tools.train import one_size_pieces

    seq = blurry_sequence("v", n=4, h=32, w=32)
    wide = blurry_sequence("w", n=2, h=32, w=48)
    mixed = Sequence("v", [*seq.blurred[:2], *wide.blurred], [*seq.sharp[:2], *wide.sharp])
    pieces = one_size_pieces(mixed)
    assert [(p.name, len(p.blurred)) for p in pieces] == [("v#1", 2), ("v#2", 2)]


def test_held_out_pairs_of_two_sizes_are_validated_as_two_pieces(tmp_path: Path) -> None:
    """A --val-pairs sequence whose frames change size (as sarn eval --pairs takes them) ended
    the run at its first validation with numpy's stacking error, nothing exported."""
    seq = blurry_sequence("v0", n=5, seed=2)
    small = [cv2.resize(f, (48, 40), interpolation=cv2.INTER_AREA) for f in seq.blurred[3:]]
    small_gt = [cv2.resize(f, (48, 40), interpolation=cv2.INTER_AREA) for f in seq.sharp[3:]]
    mixed = Sequence("v0", [*seq.blurred[:3], *small], [*seq.sharp[:3], *small_gt])
    write_pairs(tmp_path / "test", mixed)
    write_pairs(tmp_path / "train", blurry_sequence("t0", n=4, seed=1))
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(tmp_path / "train")]
    args += ["--val-pairs", str(tmp_path / "test"), "--val-scale", "1", "--steps", "1"]
    args += ["--batch", "1", "--clip-len", "2", "--crop", "32", "--device", "cpu"]
    args += ["--channels", "8", "--blocks-per-level", "1", "--num-drm", "1"]
    args += ["--lstm-channels", "8", "--attention-stride", "4"]
    assert sarn(args) == 0
    v = load_model(tmp_path / "run" / "best.pth").meta["validation"]
    on_disk = [
        metrics.psnr(cv2.imread(str(b))[..., ::-1], cv2.imread(str(g))[..., ::-1])
        for b, g in zip(
            sorted((tmp_path / "test" / "v0" / "blur").iterdir()),
            sorted((tmp_path / "test" / "v0" / "sharp").iterdir()),
            strict=True,
        )
    ]
    assert v["input_psnr"] == pytest.approx(np.mean(on_disk), abs=1e-3)
    assert "2 sequences, 5 frames" in v["set"]


def test_validation_blur_follows_val_blur_px_or_else_blur_px(tmp_path: Path) -> None:
    video = tmp_path / "video"
    video.mkdir()
    for i, f in enumerate(blurry_sequence(n=4, h=96, w=128).sharp):
        cv2.imwrite(str(video / f"{i:03d}.png"), f[..., ::-1])
    base = {"val_sharp": video, "val_pairs": [], "val_scale": 1.0, "val_frames": 4}
    base |= {"exposure": 0.8}
    base |= {"topics": None, "debayer": "vng", "max_gap_s": 0.5}

    def input_psnr(**kw) -> float:
        (seq,) = validation_set(argparse.Namespace(**base, **kw))
        pairs = zip(seq.blurred, seq.sharp, strict=True)
        return float(np.mean([metrics.psnr(b, s) for b, s in pairs]))

    default = input_psnr(blur_px=4.0, val_blur_px=None)
    assert default == input_psnr(blur_px=24.0, val_blur_px=4.0)  # same blur, same seed
    assert input_psnr(blur_px=4.0, val_blur_px=24.0) < default - 1.0


def test_export_stores_fp16_and_loads_as_fp32(tmp_path: Path, capsys, monkeypatch) -> None:
    val = [blurry_sequence("val", n=3, seed=9)]
    Trainer(config(steps=1), [blurry_sequence()], val, tmp_path / "run").run(log=lambda _m: None)
    out = tmp_path / "w" / "sarn_recurrent.pth"
    assert sarn(["train", "--run-dir", str(tmp_path / "run"), "--export", str(out)]) == 0
    assert "val PSNR" in capsys.readouterr().out
    stored = read_checkpoint(out)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    full, shipped = load_model(tmp_path / "run" / "best.pth"), load_model(out)
    assert shipped.meta["storage"] == "fp16"
    assert all(p.dtype == torch.float32 for p in shipped.parameters())
    clip = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        diff = (full(clip, 1)[0] - shipped(clip, 1)[0]).abs().max()
    assert diff < 1e-2
    assert sarn(["train", "--run-dir", str(tmp_path / "nothing"), "--export", str(out)]) == 2
    capsys.readouterr()
    # weights of its own kind are replaced with a note; others (a typo naming the shipped
    # single-image file), or a file that is no weights, are refused and kept
    assert sarn(["train", "--run-dir", str(tmp_path / "run"), "--export", str(out)]) == 0
    assert f"note: --export {out} replaced its RecurrentSARN weights of step 1" in (
        capsys.readouterr().out
    )
    single = tmp_path / "sarn_single.pth"
    shutil.copy(Path(__file__).parents[1] / "weights" / "sarn_single.pth", single)
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)  # a file named like packaged weights is that file here
    (tmp_path / "sarn_recurrent").write_text("mine")
    for kept, why in (
        (single, "holds SARN weights, the run's are RecurrentSARN"),
        (tmp_path / "notes.txt", "exists and is not sarn_ros weights"),
        (Path("sarn_recurrent"), "exists and is not sarn_ros weights"),
    ):
        before = kept.read_bytes()
        assert sarn(["train", "--run-dir", str(tmp_path / "run"), "--export", str(kept)]) == 2
        assert f"sarn train: error: --export {kept} {why}" in capsys.readouterr().err
        assert kept.read_bytes() == before
    # a training command with --export added trains nothing: said, not silently ignored
    again = ["train", "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "x.pth")]
    assert sarn([*again, "--resume", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "note: --export only copies the run's weights: --resume, --steps not used" in out
    assert sarn(["train", "--run-dir", str(tmp_path / "run"), "--from", "latest"]) == 2
    assert "--from is for --export" in capsys.readouterr().err


def test_export_from_latest_takes_the_last_checkpoint(tmp_path: Path, capsys) -> None:
    val = [blurry_sequence("val", n=3, seed=9)]
    tr = Trainer(config(steps=1), [blurry_sequence()], val, tmp_path / "run")
    tr.run(log=lambda _m: None)  # validated and best at step 1
    tr.train_one()
    tr.save()  # step 2, not validated
    base = ["train", "--run-dir", str(tmp_path / "run"), "--export"]
    assert sarn([*base, str(tmp_path / "best.pth")]) == 0
    assert "step 1, val PSNR" in capsys.readouterr().out
    assert sarn([*base, str(tmp_path / "latest.pth"), "--from", "latest"]) == 0
    assert "step 2, not validated" in capsys.readouterr().out
    assert load_model(tmp_path / "best.pth").meta["steps"] == 1
    latest = load_model(tmp_path / "latest.pth").meta  # step 1's figures are not step 2's
    assert latest["steps"] == 2 and "validation" not in latest


def test_export_of_a_run_without_validation_points_to_latest(tmp_path: Path, capsys) -> None:
    tr = Trainer(config(steps=1), [blurry_sequence()], [], tmp_path / "run")
    tr.run(log=lambda _m: None)
    base = ["train", "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "w.pth")]
    assert sarn(base) == 2
    assert "--from latest" in capsys.readouterr().err and not (tmp_path / "w.pth").exists()
    assert sarn([*base, "--from", "latest"]) == 0
    assert load_model(tmp_path / "w.pth").meta["steps"] == 1


def test_fresh_model_starts_as_identity() -> None:
    model = build_training_model(config())
    clip = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        out, _ = model(clip, 1)
    assert torch.equal(out, clip)


def test_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(tmp_path: Path) -> None:
    """A real SIGINT during step 3 (as Ctrl-C or torchrun sends) must not kill the run
    half-way: the step finishes, last.pt holds it, and the handlers are restored."""
    import signal

    tr = Trainer(config(steps=50), [blurry_sequence()], [blurry_sequence("v", 3)], tmp_path)
    train_one = tr.train_one

    def step_then_signal() -> float:
        loss = train_one()
        if tr.step == 3:
            signal.raise_signal(signal.SIGINT)
        return loss

    tr.train_one = step_then_signal
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs in the background
    messages: list[str] = []
    tr.run(log=messages.append)
    assert tr.step == 3
    assert any("interrupted at step 3" in m for m in messages)
    assert not (tmp_path / "best.pth").exists()  # no final validation on interrupt
    resumed = Trainer(config(steps=50), [blurry_sequence()], [], tmp_path)
    assert resumed.resume() and resumed.step == 3
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_sigterm_aborts_as_the_message_says(tmp_path: Path) -> None:
    """ "stopping after this step (again to abort)": a second SIGTERM was caught as the first."""
    import signal

    tr = Trainer(config(steps=50), [blurry_sequence()], [], tmp_path)
    seen = []

    def step_then_signal() -> float:
        signal.raise_signal(signal.SIGTERM)
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0.0

    tr.train_one = step_then_signal
    before = signal.getsignal(signal.SIGTERM)
    messages: list[str] = []
    tr.run(log=messages.append)
    assert messages[0] == "SIGTERM: stopping after this step (again to abort)"
    assert seen == [signal.SIG_DFL] and signal.getsignal(signal.SIGTERM) is before


def test_a_stop_in_a_validation_leaves_it_at_once_not_after_its_sequence(tmp_path: Path) -> None:
    """A stop waited for the sequence being validated: on a CPU a long one outlasted the 30 s
    torchrun gives its ranks after a SIGTERM before it kills them, and the run ended without
    its checkpoint."""
    import signal

    val = [blurry_sequence("v", 6, seed=1)]
    tr = Trainer(config(steps=2), [blurry_sequence()], val, tmp_path)
    frames: list[int] = []

    def counted(module, args) -> None:  # a frame of the validated sequence through the network
        if not module.training:
            frames.append(1)
            if len(frames) == 2:
                signal.raise_signal(signal.SIGTERM)

    tr.eval_model.encoder.register_forward_pre_hook(counted)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        messages: list[str] = []
        tr.run(log=messages.append)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert tr.interrupted and tr.history == [] and trained_steps(tmp_path) == 2
    assert messages[-1] == (
        "interrupted in the validation of step 2: checkpoint saved, --resume validates it"
    )
    assert len(frames) == 2  # of the sequence's 6: left there


@pytest.mark.parametrize("during", ["mid-run", "closing", "time up"])
def test_ctrl_c_in_a_validation_stops_it_and_the_run(tmp_path: Path, during: str) -> None:
    """A stop during a validation (a full-size held-out set: minutes on a CPU) waited for the
    whole of it, said "stopping after this step" with no step running, and a finished run
    exited 130; the closing one's stop then lost the run to the second Ctrl-C it invited."""
    import signal

    val = [blurry_sequence(f"v{i}", 3, seed=i) for i in range(3)]
    kw = {"steps": 4} | ({"val_minutes": 0.0} if during == "mid-run" else {})
    tr = Trainer(config(**kw), [blurry_sequence()], val, tmp_path)
    at = {"mid-run": 2, "closing": 4, "time up": 3}[during]
    if during == "time up":  # --max-minutes ends the loop at step 3 of 4
        should_stop = tr._should_stop
        tr._should_stop = lambda spent: tr.step == 3 or should_stop(spent)
    tensors, read, fired = tr._val_tensors, [], []

    def stopped_in_the_first(seq):
        read.append(seq)
        if tr.step == at and not fired:  # once
            fired.append(signal.raise_signal(signal.SIGINT))
        return tensors(seq)

    tr._val_tensors = stopped_in_the_first
    before = signal.getsignal(signal.SIGINT)
    messages: list[str] = []
    tr.run(log=messages.append)
    assert signal.getsignal(signal.SIGINT) is before
    assert "SIGINT: stopping now, in the validation (it changes no weights) (again to abort)" in (
        messages
    )
    assert tr.interrupted and at not in [m["step"] for m in tr.history]
    if during == "mid-run":  # step 1 validated whole, step 2's first sequence read, then none
        assert tr.step == 2 and len(read) == 4 and "interrupted at step 2" in messages[-1]
        return
    assert tr.step == at and len(read) == 1 and tr.history == []
    then = "--resume validates it" if during == "closing" else "continue with --resume"
    assert messages[-1] == f"interrupted in the validation of step {at}: checkpoint saved, {then}"
    resumed = Trainer(config(**kw), [blurry_sequence()], val, tmp_path)
    assert resumed.resume() and resumed.step == at
    resumed.run(log=lambda _m: None)
    assert [m["step"] for m in resumed.history] == [4] and not resumed.interrupted


def test_ctrl_c_as_a_finished_run_saves_is_no_interruption(tmp_path: Path) -> None:
    """A stop while the last checkpoint was written (every step taken and validated) made the
    run exit 130, as if cut short."""
    import signal

    tr = Trainer(config(steps=2), [blurry_sequence()], [blurry_sequence("v", 3)], tmp_path)
    save, fired = tr.save, []

    def stopped_while_saving(*args, **kwargs):
        if tr.step == 2 and not fired:  # the closing save, once
            fired.append(signal.raise_signal(signal.SIGINT))
        return save(*args, **kwargs)

    tr.save = stopped_while_saving
    messages: list[str] = []
    tr.run(log=messages.append)
    assert tr.step == 2 and [m["step"] for m in tr.history] == [2]
    assert (
        "SIGINT: stopping once the last checkpoint is written: the run is done (again to abort)"
    ) in messages
    assert not tr.interrupted and (tmp_path / "last.pt").is_file()
    # as the closing validation's figures are exported: it ran whole, and the run is done
    tr = Trainer(config(steps=2), [blurry_sequence()], [blurry_sequence("v", 3)], tmp_path / "b")
    export, fired = tr._export, []

    def stopped_as_best_is_written(name, metrics):
        if name == "best.pth" and not fired:
            fired.append(signal.raise_signal(signal.SIGINT))
        return export(name, metrics)

    tr._export = stopped_as_best_is_written
    messages.clear()
    tr.run(log=messages.append)
    assert [m["step"] for m in tr.history] == [2] and not tr.interrupted
    assert "step 2 was validated whole: the run is done" in messages


@pytest.mark.parametrize("diverged_at", [None, "mid-run", "the last step"])
def test_ddp_ranks_stop_together_when_the_weights_diverge(
    tmp_path: Path, monkeypatch, diverged_at: str | None
) -> None:
    """One rank's corrupt batch: its loss was inf and, after the gradient all_reduce, every
    rank's weights NaN; it raised alone, and the other rank (its own loss finite) waited in
    its next all_reduce until the backend's timeout (gloo: 30 min). Rank 0 finding them NaN
    at a checkpoint did the same. Every rank now checks at the next step's collective (after
    the last step, at one of its own), and rank 0 validates no NaN weights meanwhile."""
    from sarn_ros.training import trainer as trainer_module

    told: list[bool] = []  # the other rank's "my loss was not finite", for the next all_reduce

    def all_reduce(tensor: torch.Tensor, op=None) -> None:
        if op == trainer_module.dist.ReduceOp.MAX and told:
            told.pop()
            tensor[-2] = 1.0  # the suspect flag: [.., suspect, bad]

    monkeypatch.setattr(trainer_module.dist, "all_reduce", all_reduce)
    steps = 2 if diverged_at == "the last step" else 6
    val = [blurry_sequence("val", 3)]
    tr = Trainer(config(steps=steps, val_minutes=1e-9), [blurry_sequence()], val, tmp_path)
    tr.world, train_one = 2, tr.train_one

    def step() -> float:
        loss = train_one()  # finite on this rank
        if tr.step == 2:
            told.append(True)  # an fp16 skip on the other rank: its loss inf, weights fine
            if diverged_at:
                with torch.no_grad():
                    next(tr.model.parameters()).fill_(float("nan"))
        return loss

    tr.train_one = step
    if diverged_at is None:
        tr.run(log=lambda *_: None)
        assert tr.step == 6
        return
    with pytest.raises(TrainingDiverged, match="by step 2"):
        tr.run(log=lambda *_: None)
    assert [m["step"] for m in tr.history] == [1]  # step 2's NaN weights not validated
    assert load_training_state(tmp_path / "last.pt")["step"] == 1
    # rank 0's checkpoint between steps: the others are told at the next step, not left
    tr._bad_weights = False
    tr.save(in_loop=True)
    assert tr._bad_weights and load_training_state(tmp_path / "last.pt")["step"] == 1
    with pytest.raises(TrainingDiverged, match="by step 2"):
        tr._should_stop(0.0)
    with pytest.raises(TrainingDiverged, match="by step 2"):  # after the last step: at once
        tr.save()


@pytest.mark.slow
def test_torchrun_trains_ddp_on_cpu_and_resumes(tmp_path: Path) -> None:
    """README's DDP line, for real: two gloo ranks on this CPU, a time-boxed run, then
    --resume; only rank 0 writes, and the weights record the world size."""
    video = tmp_path / "video"
    video.mkdir()
    for i, f in enumerate(blurry_sequence(n=6, h=60, w=80).sharp):
        cv2.imwrite(str(video / f"{i:03d}.png"), f[..., ::-1])
    # torchrun's module: its script is not beside every interpreter (`colcon test`)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        # each rank's output also in files, whose tails a failure shows (the console's last
        # 2000 characters held only torchrun's report when a rank died of a signal once)
        "--log-dir",
        str(tmp_path / "ranks"),
        "--tee",
        "3",
        "-m",
        "sarn_ros.tools.cli",
    ]
    cmd += ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    cmd += ["--data", str(video), "--val-sharp", str(video), "--val-frames", "3"]
    cmd += ["--val-scale", "1", "--batch", "1", "--clip-len", "3", "--crop", "32"]
    cmd += ["--blur-px", "4", "--device", "cpu", "--channels", "8", "--blocks-per-level", "1"]
    cmd += ["--num-drm", "1", "--lstm-channels", "8", "--attention-stride", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    env["PYTHONFAULTHANDLER"] = "1"  # a rank killed by a signal prints where it was
    env["TMPDIR"] = str(tmp_path)  # torchrun leaves a torchelastic_* folder in it per run
    for steps, resumed in ((10, False), (12, True)):  # 10: a logged loss, averaged over ranks
        extra = ["--steps", str(steps), *(["--resume"] if resumed else [])]
        run = subprocess.run(
            cmd + extra, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert run.returncode == 0, run.stderr[-2000:] + rank_logs(tmp_path / "ranks")
        assert run.stdout.count("resumed") == int(resumed)  # rank 0 speaks for both
        assert run.stdout.count("training data:") == 1
        assert run.stdout.count("best val PSNR") == 1  # rank 1 held a stale history
        meta = load_model(tmp_path / "run" / "latest.pth").meta  # best.pth: whichever won
        assert meta["steps"] == steps and meta["hardware"].endswith(" x2")
        assert meta["validation"]["step"] == steps
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.pth",
        "last.pt",
        "latest.pth",
        "tb",
    ]


def rank_logs(folder: Path) -> str:
    """The last lines of every rank's stderr that torchrun wrote under ``folder``."""
    logs = sorted(folder.rglob("stderr.log"))
    return "".join(f"\n--- {p.relative_to(folder)}\n{p.read_text()[-1500:]}" for p in logs)


TINY_ARGS = ["--channels", "8", "--blocks-per-level", "1", "--num-drm", "1"]
TINY_ARGS += ["--lstm-channels", "8", "--attention-stride", "4"]


def sharp_video(folder: Path, n: int = 5, h: int = 60, w: int = 80) -> Path:
    folder.mkdir()
    for i, f in enumerate(blurry_sequence(n=n, h=h, w=w).sharp):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f[..., ::-1])
    return folder


def test_what_a_data_folder_holds_but_training_leaves_out_is_named(tmp_path: Path, capsys) -> None:
    """Sub-folders one level too deep, a GoPro sequence without sharp/ (a half-extracted
    download), a frame folder beside pairs, a video inside a stills folder: all were left out
    of training with only a lower count in the 'training data' line."""
    from sarn_ros.tools.train import blur_params, gather

    pairs = tmp_path / "pairs"
    write_pairs(pairs, blurry_sequence("good", n=4, seed=1))
    write_pairs(pairs, blurry_sequence("half", n=4, seed=2))
    shutil.rmtree(pairs / "half" / "sharp")
    sharp_video(pairs / "frames")
    parent = tmp_path / "parent"
    (parent / "deep").mkdir(parents=True)
    sharp_video(parent / "shallow")
    sharp_video(parent / "deep" / "calendar")
    stills = sharp_video(tmp_path / "stills")
    sharp_video(stills / "inner")
    params = option_defaults()

    def notes(folder: Path) -> tuple[str, list[str]]:
        seqs = gather([folder], blur_params(params), [1.0], 1, 6)
        return capsys.readouterr().out, sorted(s.name for s in seqs)

    out, names = notes(pairs)
    # `half` holds blurred frames only: given as its own --data they would pass for sharp ones
    assert f"note: {pairs}: not used: frames (a folder of blurred/sharp pairs" in out
    assert f"note: {pairs}: not used: half (one side of a blurred/sharp pair layout" in out
    assert names == ["good_x1"]
    reds = tmp_path / "REDS" / "train"  # one-sided REDS sequences were left out unsaid
    for seq in ("train_blur/000", "train_sharp/000", "train_blur/001", "train_blur_jpeg/000"):
        (reds / seq).parent.mkdir(parents=True, exist_ok=True)
        sharp_video(reds / seq)
    out, names = notes(reds)
    assert f"note: {reds}: not used: train_blur/001, train_blur_jpeg (one side of" in out
    assert names == ["train_000_x1"]
    out, names = notes(parent)
    assert f"note: {parent}: not used: deep (folders that are no recording themselves" in out
    assert "shallow" not in out and [n.split("_")[0] for n in names] == ["shallow"]
    out, _ = notes(stills)
    assert f"note: {stills}: not used: inner (only the images directly" in out
    out, _ = notes(parent / "shallow")  # all of it used: no note
    assert "note" not in out


def test_resume_continues_the_runs_own_architecture(tmp_path: Path, capsys) -> None:
    """The architecture options are for new runs: a resume without them (or with another
    --arch) rebuilt the default model and died loading last.pt into it."""
    video = sharp_video(tmp_path / "video")

    def train(steps: int, *extra: str) -> int:
        args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video)]
        args += ["--steps", str(steps), "--batch", "1", "--clip-len", "3", "--crop", "32"]
        return sarn([*args, "--blur-px", "4", "--device", "cpu", *extra])

    assert train(1, *TINY_ARGS, "--lr", "1e-3", "--warmup", "5") == 0
    resume = ["--resume", "--arch", "single", "--lr", "1e-2", "--seed", "7", "--warmup", "9"]
    assert train(2, *resume) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "--lr 0.01 is not used on --resume: the run's 0.001 is" in out
    # the schedule goes on: a new warm-up would drop the learning rate mid-run
    assert "--warmup 9 is not used on --resume: the run's 5 is" in out
    assert "--steps 2: the run's cosine schedule, 1 step long, now ends at step 2" in out
    assert read_checkpoint(tmp_path / "run" / "latest.pth")["meta"]["train_config"]["warmup"] == 5
    # the run's batch stream goes on: the metadata named the new seed, on a stream it never drew
    assert "--seed 7 is not used on --resume: the run's 0 is" in out
    assert read_checkpoint(tmp_path / "run" / "latest.pth")["meta"]["train_config"]["seed"] == 0
    model = load_model(tmp_path / "run" / "latest.pth")
    assert type(model).__name__ == "RecurrentSARN" and model.cfg.channels == 8
    assert model.meta["steps"] == 2


def test_what_was_trained_on_is_counted_and_recorded(tmp_path: Path, capsys) -> None:
    """Sequences a crop leaves out are named, not counted as trained on; a reused --trainset
    records the blur it was built with, not the current command's defaults."""
    video = sharp_video(tmp_path / "video")  # 60x80: its x0.5 copy is below a 32 px crop
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "1", "--batch", "1", "--clip-len", "3", "--crop", "32"]
    args += ["--device", "cpu", *TINY_ARGS]
    build = ["--data", str(video), "--scales", "1", "0.5", "--blur-px", "4", "--linear-light", "0"]
    assert sarn([*args, *build]) == 0
    args[2] = str(tmp_path / "run2")  # a new run: the first one is not started over
    assert sarn(args) == 0  # reused, with the default blur options
    out = capsys.readouterr().out
    # --clip-len 3 needs 5 frames: the clip and the 2 look-ahead frames after it
    left_out = "1 sequence, 5 frames (1 of the 2 sequences is left out: 1 smaller than the 32x32 "
    # the x0.5 copy, 40x30, as cropped by the synthetic blur's 8 % margins
    assert f"training data: {left_out}crop, the largest 34x26, cropped 8-30 % a side by" in out
    data = load_model(tmp_path / "run2" / "latest.pth").meta["data"]
    assert data[0] == f"sources: {video}" and data[1].startswith(left_out)
    assert "'blur_px': 4.0" in data[2] and "'linear_light': 0.0" in data[2]


def test_a_reused_trainset_refuses_options_it_was_not_built_with(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """A set is never rebuilt: --blur-px changed to match a camera, or other --data, used to
    be silently ignored, training on the old set. Naming only --trainset still reuses it."""
    video, other = sharp_video(tmp_path / "video"), sharp_video(tmp_path / "other")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--data", str(video), "--blur-px", "4", "--scales", "1"]) == 0
    assert sarn([*args, "--data", str(video), "--blur-px", "4", "--scales", "1"]) == 0  # the same
    capsys.readouterr()
    for change, named in (
        (["--data", str(video), "--blur-px", "8"], "--blur-px 8 (the set: 4)"),
        (["--data", str(video), "--blur-px", "4", "--scales", "0.5"], "--scales 0.5 (the set: 1)"),
        (["--data", str(other), "--blur-px", "4"], f"--data {other} (the set: {video})"),
        (["--linear-light", "1"], "--linear-light 1 (the set: 0.5)"),  # without --data
    ):
        assert sarn([*args, *change]) == 2, change
        err = capsys.readouterr().err
        assert f"--trainset {tmp_path / 'ts'} was built with other settings" in err and named in err
    assert sarn(args) == 0  # only --trainset: the set as built
    assert f"reusing --trainset {tmp_path / 'ts'} (built from {video})" in capsys.readouterr().out
    # --data as typed elsewhere: the same folder from another directory is the set's; another
    # folder of the same relative name is not (both were judged from the current directory)
    same = ["--data", "video", "--blur-px", "4", "--scales", "1"]
    monkeypatch.chdir(tmp_path)
    assert sarn([*args, *same]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    sharp_video(tmp_path / "elsewhere" / "video")
    assert sarn([*args, *same]) == 2
    assert f"--data video (the set: {video})" in capsys.readouterr().err
    # a folder of something else is not built into (the rename failed after the whole build)
    images = ["--trainset", str(video), "--data", str(other)]
    assert sarn([*args, *images]) == 2
    assert f"--trainset {video} exists and is not a training set" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.partial"))
    # a set built on another machine: its sources are not here, so they may be recordings
    desc_file = tmp_path / "ts" / "trainset.json"
    desc = json.loads(desc_file.read_text())
    desc_file.write_text(json.dumps({**desc, "sources": ["/elsewhere/cam.mp4"]}))
    assert sarn([*args, "--sharpest", "0.5"]) == 2
    assert "--sharpest 0.5 (the set: 1)" in capsys.readouterr().err


def test_a_video_folder_validated_on_one_or_two_frames_stays_a_video(tmp_path: Path) -> None:
    from sarn_ros.data.datasets import synthesize_folder

    video = sharp_video(tmp_path / "video")
    for n in (1, 2, 3):
        (seq,) = synthesize_folder(video, 1234, max_frames=n)  # not one camera move per frame
        assert seq.name == "video" and len(seq.blurred) == n


def test_a_dry_run_validates_but_exports_no_best_pth(tmp_path: Path, capsys, monkeypatch) -> None:
    """--steps 0 from scratch with a validation set wrote its random weights to best.pth,
    said as the best validation, which an --export (of best, by default) then shipped."""
    scripted_validation(monkeypatch, [(30.0, 22.0), (23.0, 22.0)])  # random "beats" trained
    video = sharp_video(tmp_path / "video")
    extra = ["--val-sharp", str(video), "--val-frames", "3", *TINY_ARGS]
    assert tiny_run(tmp_path, video, 0, *extra) == 0
    out = capsys.readouterr().out
    assert "step 0: val PSNR 30.00 dB" in out and "best val PSNR" not in out
    assert "not validated yet" not in out and "holds untrained weights" in out
    assert not (tmp_path / "run" / "best.pth").exists()
    assert tiny_run(tmp_path, video, 1, "--resume", *extra) == 0
    assert "best val PSNR 23.00 dB at step 1" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "run" / "best.pth")["meta"]["steps"] == 1


def test_a_random_best_pth_of_an_older_dry_run_is_dropped_on_resume(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """sarn_ros before 2026-12-06 exported a dry run's random weights as best.pth, and kept
    its figure as the bar: every trained step validated below it, and best.pth (what
    --export ships) stayed random while the closing line named a trained step."""
    from sarn_ros.training.trainer import load_training_state

    scripted_validation(monkeypatch, [(30.0, 22.0), (23.0, 22.0), (24.0, 22.0), (22.5, 22.0)])
    video = sharp_video(tmp_path / "video")
    extra = ["--val-sharp", str(video), "--val-frames", "3", *TINY_ARGS]
    assert tiny_run(tmp_path, video, 0, *extra) == 0
    run = tmp_path / "run"
    untrained = (run / "latest.pth").read_bytes()

    def as_the_older_version_left_it() -> None:
        (run / "best.pth").write_bytes(untrained)
        state = load_training_state(run / "last.pt")
        state["best"] = 30.0
        if not any(m["step"] == 0 for m in state["history"]):
            state["history"].insert(0, {"step": 0, "val_psnr": 30.0, "input_psnr": 22.0})
        torch.save(state, run / "last.pt")

    as_the_older_version_left_it()
    capsys.readouterr()
    assert tiny_run(tmp_path, video, 2, "--resume", "--val-minutes", "1e-9", *extra) == 0
    assert "best val PSNR 24.00 dB at step 2" in capsys.readouterr().out
    assert read_checkpoint(run / "best.pth")["meta"]["steps"] == 2
    # a finished run resumed so (no step left) validates its last step again, into best.pth
    as_the_older_version_left_it()
    assert tiny_run(tmp_path, video, 2, "--resume", *extra) == 0
    assert "best val PSNR 22.50 dB at step 2" in capsys.readouterr().out
    assert read_checkpoint(run / "best.pth")["meta"]["steps"] == 2


def test_an_interrupted_run_with_validation_is_not_called_unvalidated(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    video = sharp_video(tmp_path / "video")

    def interrupted(self, log=print) -> None:  # Ctrl-C before the first validation
        self.train_one()
        self.save()

    monkeypatch.setattr(Trainer, "run", interrupted)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video)]
    args += ["--val-sharp", str(video), "--val-frames", "3", "--steps", "5", "--batch", "1"]
    assert sarn([*args, "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    assert "not validated yet: the weights are in" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --data, or a --trainset built before"),
        (["--batch", "0"], "argument --batch: must be in [1, 1024], got 0"),
        # each of these trained to NaN weights, hung or crashed minutes in, exiting 0 or 1
        (["--lr", "inf"], "argument --lr: must be a finite number in (0, 1], got inf"),
        (
            ["--fft-weight", "nan"],
            "argument --fft-weight: must be a finite number in [0, 10], got nan",
        ),
        (["--crop", "15"], "argument --crop: must be at least 16, got 15"),  # 1: a typo
        (["--fft-weight", "1e30"], "argument --fft-weight: must be in [0, 10], got 1e30"),
        (["--ema", "2"], "argument --ema: must be in [0, 1), got 2"),
        (["--exposure", "5"], "argument --exposure: must be in [0.001, 1], got 5"),
        (["--blur-px", "1e6"], "argument --blur-px: must be in [0, 1000], got 1e6"),
        (["--val-blur-px", "1001"], "argument --val-blur-px: must be in [0, 1000], got 1001"),
        (["--jpeg", "200", "-5"], "argument --jpeg: must be in [1, 100], got 200"),
        (["--jpeg", "90", "80", "--data", "x"], "--jpeg MIN MAX: MIN is above MAX"),
        (["--clip-len", "1.5"], "argument --clip-len: not a whole number: '1.5'"),
        (["--clip-frames", "2"], "argument --clip-frames: must be at least 3, got 2"),
    ],
)
def test_cli_usage_errors_say_what_is_missing(tmp_path: Path, capsys, args, message) -> None:
    try:
        rc = sarn(["train", "--run-dir", str(tmp_path / "r"), *args])
    except SystemExit as exc:  # argparse
        rc = exc.code
    assert rc == 2 and message in capsys.readouterr().err


def test_a_trainset_of_sets_built_apart_records_each_blur(tmp_path: Path) -> None:
    """The GPU recipe builds one set per source folder and trains on their parent folder."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import build_trainset, read_description

    video = sharp_video(tmp_path / "video")
    for name, px in (("a", 4.0), ("b", 8.0), ("c", 4.0)):
        build_trainset([video], BlurParams(blur_px=px), [1.0], 1, 6, tmp_path / "ts" / name)
    desc = read_description(tmp_path / "ts")
    assert [b["blur_px"] for b in desc["synthetic_blur"]] == [4.0, 8.0]
    assert desc["sources"] == [str(video)] and desc["real_pairs"] == []  # named once
    assert read_description(tmp_path / "video") is None


def test_blur_px_is_at_full_resolution_for_every_scale(tmp_path: Path, monkeypatch) -> None:
    """Validation and `sarn eval` scale --blur-px with the image; training gave an x0.5 copy
    the full length in its own pixels, twice the blur the sets were documented to have."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools import train as train_module

    seen, real = [], train_module.synthesize_folder

    def spy(src, seed, params, scale, **kwargs):
        seen.append((scale, params.blur_px))
        return real(src, seed, params, scale, **kwargs)

    monkeypatch.setattr(train_module, "synthesize_folder", spy)
    video = sharp_video(tmp_path / "video")
    train_module.gather([video], BlurParams(blur_px=8.0), [1.0, 0.5], 1, 6)
    assert seen == [(1.0, 8.0), (0.5, 4.0)]


def test_a_finished_run_resumed_again_is_not_validated_again(tmp_path: Path) -> None:
    """A job that repeats `--resume --max-minutes 9` after the last step validated the same
    weights each time: a history entry and a TensorBoard point more per call."""
    val = [blurry_sequence("v", 3)]
    Trainer(config(steps=2), [blurry_sequence()], val, tmp_path).run(log=lambda _msg: None)
    again = Trainer(config(steps=2), [blurry_sequence()], val, tmp_path)
    assert again.resume()
    again.run(log=lambda _msg: None)
    history = read_checkpoint(tmp_path / "latest.pth")["meta"]["validation"]
    assert [m["step"] for m in again.history] == [2] and history["step"] == 2


def test_a_resume_keeps_the_runs_learning_rate_in_its_schedule_and_metadata(
    tmp_path: Path,
) -> None:
    """--lr is not used on --resume (the CLI says so), yet the cosine floor was min_lr over the
    new --lr and the exported train_config named it: a 10x --lr ended 10x below min_lr."""
    data = [blurry_sequence()]
    first = Trainer(config(lr=1e-3, min_lr=1e-5, warmup=0, steps=3), data, [], tmp_path)
    first.train_one()
    first.save()
    again = Trainer(config(lr=1e-2, min_lr=1e-5, warmup=0, steps=3), data, [], tmp_path)
    assert again.resume()
    again.run(log=lambda _msg: None)
    assert again.sched.get_last_lr()[0] == pytest.approx(1e-5)
    assert read_checkpoint(tmp_path / "latest.pth")["meta"]["train_config"]["lr"] == 1e-3


def test_a_lengthened_resume_takes_its_next_rate_from_the_new_schedule(tmp_path: Path) -> None:
    """The optimiser's saved rate is the old schedule's: a finished run lengthened by --steps
    took its first step at the floor, not where the longer cosine stands, unlike a run of that
    length from the start."""
    data = [blurry_sequence()]
    straight = Trainer(config(lr=1e-3, min_lr=1e-5, warmup=0, steps=6), data, [], tmp_path / "a")
    short = Trainer(config(lr=1e-3, min_lr=1e-5, warmup=0, steps=2), data, [], tmp_path / "b")
    for _ in range(2):
        straight.train_one()
        short.train_one()
    short.save()
    assert short.opt.param_groups[0]["lr"] == pytest.approx(1e-5)  # at the floor
    longer = Trainer(config(lr=1e-3, min_lr=1e-5, warmup=0, steps=6), data, [], tmp_path / "b")
    assert longer.resume()
    expected = straight.opt.param_groups[0]["lr"]
    assert expected > 1e-4
    assert longer.opt.param_groups[0]["lr"] == pytest.approx(expected)
    assert longer.sched.get_last_lr()[0] == pytest.approx(expected)


@pytest.mark.skipif(not hasattr(torch.amp, "GradScaler"), reason="torch < 2.3: no CPU GradScaler")
def test_a_run_saved_without_loss_scaling_resumes_with_it(tmp_path: Path) -> None:
    """A run started in fp32 or bf16 (a CPU, an A100) saves an empty scaler state; resuming it
    where auto precision is fp16 (a T4, a V100) failed: 'The source state dict is empty'."""
    plain = Trainer(config(), [blurry_sequence()], [], tmp_path)
    plain.train_one()
    plain.save()
    tr = Trainer(config(), [blurry_sequence()], [], tmp_path)
    tr.scaler = torch.amp.GradScaler("cpu")  # enabled, as fp16 training has it
    fresh = tr.scaler.get_scale()
    assert tr.resume() and tr.step == 1
    assert tr.scaler.is_enabled() and tr.scaler.get_scale() == fresh


def test_the_last_step_is_not_validated_twice(tmp_path: Path) -> None:
    """A periodic validation at the last step was repeated by the final one: twice the time of
    a large validation set, and a duplicate record in the history."""
    val = [blurry_sequence("val", n=3, seed=9)]
    tr = Trainer(config(steps=2, val_minutes=1e-9), [blurry_sequence()], val, tmp_path)
    tr.run(log=lambda _msg: None)
    assert [m["step"] for m in tr.history] == [1, 2]


def test_a_rank_gone_before_the_closing_barrier_leaves_no_traceback(
    tmp_path: Path, monkeypatch
) -> None:
    """torchrun's SIGTERM reached rank 1 in close()'s barrier, after its run: rank 0, its
    checkpoint written and its stop said, then ended on gloo's "Connection reset by peer"."""
    from sarn_ros.training import trainer as trainer_module

    def reset(*args, **kwargs) -> None:
        raise RuntimeError("[gloo/transport/tcp/pair.cc:545] Read error: Connection reset by peer")

    monkeypatch.setattr(trainer_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(trainer_module.dist, "barrier", reset)
    tr = Trainer(config(steps=1), [blurry_sequence()], [], tmp_path)
    tr.world = 2
    tr.close()  # no RuntimeError


def test_the_runs_lines_are_written_above_the_progress_bar(tmp_path: Path, monkeypatch) -> None:
    """Printed, a validation's line (and a SIGTERM's) landed inside the bar's line, which then
    went on below it; tqdm.write clears the bar first and redraws it after."""
    import tqdm

    written = []
    monkeypatch.setattr(tqdm.tqdm, "write", classmethod(lambda cls, s, **kw: written.append(s)))
    val = [blurry_sequence("val", n=3, seed=9)]
    Trainer(config(steps=2, val_minutes=1e-9), [blurry_sequence()], val, tmp_path).run()
    assert [line.split(":")[0] for line in written] == ["step 1", "step 2"]
    assert "val PSNR" in written[-1]


def test_a_run_killed_after_a_validation_resumes_knowing_its_best(tmp_path: Path) -> None:
    """best.pth is written at a validation; last.pt only every --ckpt-minutes. A run killed in
    between resumed from an older last.pt whose best was lower, and its next validation could
    overwrite best.pth with worse weights."""

    class Killed(Exception):
        pass

    val = [blurry_sequence("val", n=3, seed=9)]
    cfg = {"steps": 5, "val_minutes": 1e-9}
    tr = Trainer(config(**cfg), [blurry_sequence()], val, tmp_path)
    tr.save()  # step 0, before any validation
    train_one = tr.train_one

    def killed_at_step_3() -> float:
        if tr.step == 2:
            raise Killed  # as SIGKILL or a command's time limit: nothing more is written
        return train_one()

    tr.train_one = killed_at_step_3
    with pytest.raises(Killed):
        tr.run(log=lambda _msg: None)
    best = read_checkpoint(tmp_path / "best.pth")["meta"]["validation"]["val_psnr"]
    resumed = Trainer(config(**cfg), [blurry_sequence()], val, tmp_path)
    assert resumed.resume() and resumed.step == 2
    assert resumed.best == best and [m["step"] for m in resumed.history] == [1, 2]


def test_init_weights_missing_a_tensor_or_of_another_config_are_refused_up_front(
    tmp_path: Path, capsys, tiny_recurrent_checkpoint
) -> None:
    """--init loaded whatever tensors fit: a file without its output head trained from a
    random one (74 of 75 tensors), one whose config said 16 channels over 8-channel tensors
    from 9 of 75, both with exit 0 and after the whole set was built."""
    ckpt = torch.load(tiny_recurrent_checkpoint, weights_only=True)
    sd = ckpt["state_dict"]
    headless, wider = tmp_path / "headless.pth", tmp_path / "wider.pth"
    torch.save(
        {**ckpt, "state_dict": {k: v for k, v in sd.items() if k != "decoder.out.weight"}}, headless
    )
    torch.save({**ckpt, "config": {**ckpt["config"], "channels": 16}}, wider)
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--steps", "1", "--clip-len", "3", "--crop", "32", *TINY_ARGS]
    for init, why in (
        (headless, r"1 missing \(decoder\.out\.weight\)"),
        (wider, "of another shape"),
    ):
        assert sarn([*args, "--init", str(init)]) == 2
        err = capsys.readouterr().err
        assert re.search(
            rf"sarn train: error: {re.escape(str(init))}: weights do not fit \w+: .*{why}", err
        ), err
        assert not (tmp_path / "ts").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--val-sharp", "missing"], "--val-sharp: no such file or folder: missing"),
        (["--init", "missing.pth"], "weights file not found"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--precision", "fp16"], "fp16 training needs CUDA"),
        (["--data", ".", "missing"], "--data: no such file or folder: missing"),  # after a build
        (["--val-pairs", "missing"], "--val-pairs: no such file or folder: missing"),
        (["--val-pairs", "README.md"], "--val-pairs README.md: not a folder"),
    ],
)
def test_cli_refuses_bad_options_before_building_the_trainset(
    tmp_path: Path, capsys, option, message
) -> None:
    """A misspelt --val-sharp or --init, or a device this machine lacks, was reported only once
    the whole training set had been built (hours for GoPro)."""
    if option[0] in ("--device", "--precision") and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--steps", "0", "--clip-len", "3", "--crop", "32", *TINY_ARGS]
    assert sarn([*args, *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarn train:") and message in err
    assert not (tmp_path / "ts").exists() and not (tmp_path / ".ts.partial").exists()


def test_a_build_that_fails_part_way_leaves_no_partial_set(tmp_path: Path, monkeypatch) -> None:
    """A bag that cannot be read after others were built, or Ctrl-C, left .<trainset>.partial."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools import train as train_module

    def one_then_fail(*args, **kwargs):
        yield blurry_sequence()
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "iter_gather", one_then_fail)
    with pytest.raises(KeyboardInterrupt):
        train_module.build_trainset([tmp_path], BlurParams(), [1.0], 1, 6, tmp_path / "ts")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_architecture_options_given_with_init_are_named_not_recorded(
    tmp_path: Path, capsys, tiny_recurrent_checkpoint
) -> None:
    """A fine-tune keeps its --init's architecture: --channels 16 was ignored without a word
    and recorded in the weights' train_config as if used."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--steps", "1"]
    args += ["--init", str(tiny_recurrent_checkpoint), "--clip-len", "3", "--crop", "32"]
    assert sarn([*args, "--device", "cpu", "--channels", "16", "--blocks-per-level", "1"]) == 0
    out = capsys.readouterr().out
    assert (
        f"note: --channels 16 not used with --init: the model keeps {tiny_recurrent_checkpoint}"
        in out
    )
    assert "--blocks-per-level" not in out  # as the weights have it
    weights = load_model(tmp_path / "run" / "latest.pth")
    assert weights.cfg.channels == 8 and weights.meta["train_config"]["model"]["channels"] == 8


def test_a_fine_tune_of_single_image_weights_stays_single_image_unless_arch_says(
    tmp_path: Path, capsys
) -> None:
    """`--init sarn_single` without --arch trained and exported a RecurrentSARN (the --arch
    default), though README says a fine-tune keeps its weights' architecture. An explicit
    --arch recurrent still builds a recurrent model from them."""
    from sarn_ros.archs import SARN

    torch.manual_seed(0)
    single = save_checkpoint(
        SARN(channels=8, blocks_per_level=1, attention_stride=4), tmp_path / "single.pth"
    )
    video = sharp_video(tmp_path / "video")
    args = ["train", "--data", str(video), "--steps", "1", "--init", str(single)]
    args += ["--clip-len", "3", "--crop", "32", "--device", "cpu"]
    assert sarn([*args, "--run-dir", str(tmp_path / "kept")]) == 0
    kept = load_model(tmp_path / "kept" / "latest.pth")
    assert type(kept).__name__ == "SARN" and kept.meta["name"] == "sarn_single"
    assert sarn([*args, "--run-dir", str(tmp_path / "rec"), "--arch", "recurrent"]) == 0
    assert type(load_model(tmp_path / "rec" / "latest.pth")).__name__ == "RecurrentSARN"
    # single-image weights have no LSTM width to keep: --lstm-channels is used (it was dropped
    # for the default 64, while a note blamed the weights' architecture)
    lstm = ["--arch", "recurrent", "--lstm-channels", "8"]
    assert sarn([*args, "--run-dir", str(tmp_path / "rec8"), *lstm]) == 0
    made = load_model(tmp_path / "rec8" / "latest.pth")
    assert made.cfg.lstm_channels == 8 and made.cfg.channels == 8
    assert made.meta["train_config"]["model"] == asdict(made.cfg)  # as built
    # without --arch the weights' single-image model has none: named, not a TypeError
    capsys.readouterr()
    assert sarn([*args, "--run-dir", str(tmp_path / "kept8"), "--lstm-channels", "8"]) == 0
    assert f"note: --lstm-channels 8 not used with --init: the model keeps {single}'s" in (
        capsys.readouterr().out
    )
    assert type(load_model(tmp_path / "kept8" / "latest.pth")).__name__ == "SARN"


def test_weights_gone_nan_after_a_finite_loss_are_not_checkpointed(tmp_path: Path) -> None:
    """An infinite gradient (clipped to NaN), or under DDP another rank's bad batch, ruins the
    weights in a step whose own loss was finite: the check on the loss let the next checkpoint
    write NaN weights over a good last.pt."""
    tr = Trainer(config(steps=4, ckpt_minutes=1e-9), [blurry_sequence()], [], tmp_path)
    tr.model.decoder.out.weight.register_hook(lambda g: g * float("inf") if tr.step == 1 else g)
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        tr.run(log=lambda _msg: None)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["step"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    latest = read_checkpoint(tmp_path / "latest.pth")["state_dict"]
    assert all(torch.isfinite(v).all() for v in latest.values())


@pytest.mark.parametrize("world", [1, 2])
def test_weights_whose_output_is_not_finite_end_the_run_before_they_are_saved(
    tmp_path: Path, monkeypatch, world: int
) -> None:
    """Finite weights can deblur to NaN (activations past fp32's range, an --lr far too high):
    validated "nan dB", they were saved as latest.pth, and only a resumed step stopped. Under
    DDP rank 0 (which validates) says so, and every rank stops at the next step."""
    from sarn_ros.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module.dist, "all_reduce", lambda tensor, op=None: None)
    val = [blurry_sequence("v", seed=1)]
    tr = Trainer(config(steps=4, val_minutes=1e-9), [blurry_sequence()], val, tmp_path)
    tr.world, train_one = world, tr.train_one

    def step() -> float:
        loss = train_one()
        if tr.step == 2:
            with torch.no_grad():
                tr.model.encoder.inp.weight.mul_(1e38)  # still finite
        return loss

    tr.train_one = step
    said: list[str] = []
    error = "output became NaN or infinite at step 2" if world == 1 else "NaN or infinite by step 2"
    with pytest.raises(TrainingDiverged, match=error):
        tr.run(log=said.append)
    if world > 1:
        assert "the model's output became NaN or infinite at step 2 (validation PSNR nan)" in said
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 1
    assert read_checkpoint(tmp_path / "latest.pth")["meta"]["steps"] == 1
    assert [m["step"] for m in tr.history] == [1]


def test_a_run_dir_holding_a_trained_run_is_not_started_over(tmp_path: Path, capsys) -> None:
    """Forgetting --resume started a new run that overwrote last.pt and best.pth at its first
    checkpoint. A run of --steps 0 (building a training set) trained nothing to lose."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--batch", "1", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--steps", "0"]) == 0
    assert sarn([*args, "--steps", "0"]) == 0  # nothing trained: the same folder again
    assert sarn([*args, "--steps", "1"]) == 0
    trained = (tmp_path / "run" / "last.pt").read_bytes()
    capsys.readouterr()
    assert sarn([*args, "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert f"--run-dir {tmp_path / 'run'} holds a run trained 1 step: --resume" in err
    assert (tmp_path / "run" / "last.pt").read_bytes() == trained
    assert sarn([*args, "--steps", "2", "--resume"]) == 0
    assert load_model(tmp_path / "run" / "latest.pth").meta["steps"] == 2


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", "torch"])
def test_an_unreadable_last_pt_is_said_in_one_line(tmp_path: Path, capsys, content) -> None:
    """An empty, garbage or foreign last.pt raised EOFError, KeyError: 101 or KeyError: 'model'
    as a traceback; a new run without --resume replaces it (nothing readable to lose)."""
    video = sharp_video(tmp_path / "video")
    run = tmp_path / "run"
    run.mkdir()
    if content == "torch":
        torch.save({"step": 3, "weights": torch.zeros(2)}, run / "last.pt")
    else:
        (run / "last.pt").write_bytes(content)
    args = ["train", "--run-dir", str(run), "--data", str(video), "--blur-px", "4", "--steps", "1"]
    args += ["--batch", "1", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(f"sarn train: error: cannot resume {run / 'last.pt'}: not a")
        and "\n" not in err
    )
    if content != "torch":  # a foreign file that says it trained 3 steps is left alone
        assert sarn(args) == 0
        assert load_model(run / "latest.pth").meta["steps"] == 1


def test_a_damaged_last_pt_is_not_resumed_from(tmp_path: Path) -> None:
    """torch.load checks no CRC: a last.pt with a byte flipped by a bad disk or copy resumed
    with the damaged weights and optimiser state, without a word."""
    from test_archs import flip_a_tensor_byte

    from sarn_ros.training.trainer import run_progress

    path = tmp_path / "last.pt"
    torch.save({k: {} for k in TRAINING_STATE_KEYS} | {"w": torch.arange(4096.0)}, path)
    assert load_training_state(path)["w"][2048] == 2048
    path.write_bytes(flip_a_tensor_byte(path))
    with pytest.raises(RuntimeError, match=r"^a damaged training checkpoint \(last/data/\d+ "):
        load_training_state(path)
    path.write_bytes(path.read_bytes()[:2000])  # cut short: said so, not miniz's advice
    with pytest.raises(RuntimeError, match=r"\(cut short: its zip has no end\)$"):
        load_training_state(path)
    # cut elsewhere, torch's zip reader raised OSError (Errno 22), a traceback on --resume
    # and on the start of a new run in that --run-dir; then "(Invalid argument)" alone
    torch.save({k: {} for k in TRAINING_STATE_KEYS} | {"w": torch.arange(640000.0)}, path)
    path.write_bytes(path.read_bytes()[:20000])
    for read in (load_training_state, lambda p: run_progress(p.parent)):
        with pytest.raises(RuntimeError, match=r"^not a readable training checkpoint \(cut sh"):
            read(path)
    path.write_text("hi\n")  # torch said "KeyError: 105", the 'i'
    for read in (load_training_state, lambda p: run_progress(p.parent)):
        with pytest.raises(RuntimeError, match=r"\(neither a zip nor a pickle of protocol 2 "):
            read(path)


def test_latest_pth_is_written_before_last_pt(tmp_path: Path, monkeypatch) -> None:
    """--resume takes the run's architecture from latest.pth: a run killed between writing
    last.pt and latest.pth was resumed into the command line's architecture and failed."""
    tr = Trainer(config(steps=2), [blurry_sequence()], [], tmp_path)
    tr.train_one()

    def killed(*args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("sarn_ros.training.trainer.save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        tr.save()
    assert not (tmp_path / "last.pt").exists()


def test_a_run_resumed_from_an_older_checkpoint_draws_one_curve(tmp_path: Path) -> None:
    """What the lost process logged after the checkpoint is purged in TensorBoard; the steps
    it logged up to the checkpoint stay (the same run's curve was drawn twice)."""
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    data = [blurry_sequence()]
    Trainer(config(steps=10), data, [], tmp_path).run()  # logs and checkpoints step 10
    at_10 = (tmp_path / "last.pt").read_bytes()
    later = Trainer(config(steps=20), data, [], tmp_path)
    assert later.resume()
    later.run()  # logs step 20, then "is lost": its checkpoint is not the one resumed
    (tmp_path / "last.pt").write_bytes(at_10)
    again = Trainer(config(steps=20), data, [], tmp_path)
    assert again.resume() and again.step == 10
    again.run()
    tb = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    tb.Reload()
    assert [e.step for e in tb.Scalars("train/loss")] == [10, 20]


def test_the_logged_rate_is_the_one_its_step_trained_at(tmp_path: Path) -> None:
    """The bar and TensorBoard showed the next step's rate beside a step's loss (step 1 of a
    200-step warm-up at 4e-4 read 4.0e-06, not the 2.0e-06 it trained at)."""
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    first = Trainer(config(steps=10, warmup=20, lr=1e-3), [blurry_sequence()], [], tmp_path / "a")
    first.train_one()
    assert first.step_lr == pytest.approx(1e-3 / 20)
    Trainer(config(steps=10, warmup=20, lr=1e-3), [blurry_sequence()], [], tmp_path).run()
    # step 10, the first logged, trained at (9 + 1) / 20 of the rate
    tb = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    tb.Reload()
    assert [(e.step, e.value) for e in tb.Scalars("train/lr")] == [(10, pytest.approx(5e-4))]


def test_max_minutes_counts_from_the_start_and_leaves_time_to_close(
    tmp_path: Path, monkeypatch
) -> None:
    """The budget of a 10-minute command: the clock ran from the first step, and the run
    stepped until the limit, then validated and checkpointed past it. On a fake clock (a step
    1 s, a validation 5 s), started 3 s before the trainer, a 30 s run ends by 30 s."""
    import types

    from sarn_ros.training import trainer as trainer_module

    clock = [3.0]
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    cfg = config(steps=1000, max_minutes=0.5, val_minutes=0.1)
    tr = Trainer(cfg, [blurry_sequence()], [blurry_sequence("v", seed=5)], tmp_path, started=0.0)
    step, validate = tr.train_one, tr.validate

    def slow_step() -> float:
        clock[0] += 1.0
        return step()

    def slow_validate() -> dict:
        clock[0] += 5.0
        return validate()

    monkeypatch.setattr(tr, "train_one", slow_step)
    monkeypatch.setattr(tr, "validate", slow_validate)
    tr.run(log=lambda _msg: None)
    assert tr.step >= 10 and clock[0] <= 30.0
    assert tr.history[-1]["step"] == tr.step  # its closing validation was still made


def scripted_validation(monkeypatch, figures: list[tuple[float, float]]) -> None:
    """Trainer.validate returns the next (val_psnr, input_psnr) of ``figures``."""
    left = iter(figures)

    def validate(self) -> dict[str, float]:
        val, inp = next(left)
        return {"val_psnr": val, "input_psnr": inp}

    monkeypatch.setattr(Trainer, "validate", validate)


def test_a_fine_tune_that_only_made_its_init_worse_leaves_them_in_best_pth(
    tmp_path: Path, capsys, monkeypatch, tiny_recurrent_checkpoint
) -> None:
    """The starting weights were never validated: at the default --lr a fine-tune on a camera
    of one's own validated below them (and below the input), and best.pth held the worse."""
    scripted_validation(monkeypatch, [(25.0, 22.0), (24.0, 22.0), (23.0, 22.0)])
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--steps", "2"]
    args += ["--init", str(tiny_recurrent_checkpoint), "--clip-len", "3", "--crop", "32"]
    args += ["--val-sharp", str(video), "--val-minutes", "1e-9", "--device", "cpu"]
    assert sarn(args) == 0
    out = capsys.readouterr().out
    assert "step 0: val PSNR 25.00 dB (input 22.00 dB)" in out
    assert "best val PSNR 25.00 dB at step 0 (input 22.00 dB)" in out
    assert "note: no step validated above the --init weights" in out
    best = read_checkpoint(tmp_path / "run" / "best.pth")
    start = read_checkpoint(tiny_recurrent_checkpoint)
    assert best["meta"]["steps"] == 0 and best["meta"]["train_config"]["lr"] == 5e-5
    assert all(
        torch.equal(best["state_dict"][k].float(), v.float())
        for k, v in start["state_dict"].items()
    )


def test_the_closing_line_names_the_best_of_the_current_validation_set(
    tmp_path: Path, monkeypatch
) -> None:
    """Resumed with another validation set, best.pth was chosen anew, yet the closing line took
    the best over the whole history and named a step whose weights were no longer there."""
    scripted_validation(monkeypatch, [(24.0, 22.0), (21.0, 20.0), (20.5, 20.0)])
    val = [blurry_sequence("val", n=3, seed=9)]
    logs: list[str] = []
    tr = Trainer(config(steps=3, val_minutes=1e-9), [blurry_sequence()], val, tmp_path)
    for _ in range(3):
        tr.train_one()
        tr._validate_and_export(logs.append)
    assert tr.best_validation() == {"val_psnr": 21.0, "input_psnr": 20.0, "step": 2}
    assert read_checkpoint(tmp_path / "best.pth")["meta"]["steps"] == 2
    assert any("the validation set differs from the run's last one" in line for line in logs)


def test_validation_builds_no_autograd_graph(tmp_path: Path, monkeypatch) -> None:
    """validate() runs under no_grad: a refactor once moved the decorator off it, and each
    validation would hold a whole sequence's graph (a training step's memory per frame)."""
    from sarn_ros.training import trainer as trainer_module

    seen: list[bool] = []
    real = trainer_module.psnr
    monkeypatch.setattr(
        trainer_module, "psnr", lambda x, y: seen.append(torch.is_grad_enabled()) or real(x, y)
    )
    tr = Trainer(config(steps=1), [blurry_sequence()], [blurry_sequence("val", 3)], tmp_path)
    tr.validate()
    assert len(seen) == 6 and not any(seen)


def test_a_tie_keeps_the_earlier_weights_in_best_pth(tmp_path: Path, monkeypatch) -> None:
    """Of two steps validated alike, best.pth holds the earlier, the one the closing line and
    best_validation() name: a later tie replaced the file under a line naming the first."""
    scripted_validation(monkeypatch, [(24.0, 22.0), (24.0, 22.0)])
    tr = Trainer(config(steps=2), [blurry_sequence()], [blurry_sequence("val", 3)], tmp_path)
    for _ in range(2):
        tr.train_one()
        tr._validate_and_export(lambda _msg: None)
    assert tr.best_validation()["step"] == 1
    assert read_checkpoint(tmp_path / "best.pth")["meta"]["steps"] == 1


def test_validation_measures_the_model_with_two_look_ahead_frames(tmp_path: Path) -> None:
    """validate(): mean PSNR of the 8-bit output over the held-out frames with
    future_frames=2 (the engine's default), next to the blurred input's."""
    val = [blurry_sequence("val", n=4, seed=9)]
    tr = Trainer(config(), [blurry_sequence()], val, tmp_path)
    torch.manual_seed(1)
    with torch.no_grad():  # an untrained model is the identity: give it a look-ahead to use
        for p in tr.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    blurred = np.stack(val[0].blurred).astype(np.float64)
    sharp = np.stack(val[0].sharp).astype(np.float64)

    def mean_psnr(frames: np.ndarray) -> float:
        return float(np.mean([metrics.psnr(f, s) for f, s in zip(frames, sharp, strict=True)]))

    def model_psnr(future_frames: int) -> float:
        clip = torch.from_numpy(blurred / 255).float().permute(0, 3, 1, 2)[None]
        with torch.no_grad():
            out, _ = tr.model.eval()(clip, future_frames)
        tr.model.train()
        return mean_psnr((out[0].clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy())

    got = tr.validate()
    assert got["input_psnr"] == pytest.approx(mean_psnr(blurred), abs=1e-4)
    assert got["val_psnr"] == pytest.approx(model_psnr(2), abs=1e-4)
    assert abs(model_psnr(0) - model_psnr(2)) > 2e-3  # the look-ahead is told apart


def test_the_fft_term_is_weighted_into_the_loss(tmp_path: Path) -> None:
    """loss = pixel loss + fft_weight * L1 between the output's and the target's orthonormal
    2-D spectra; a fresh model outputs its input, so both terms are the input's."""
    losses = {}
    for weight in (0.0, 0.5):
        tr = Trainer(config(loss="l1", fft_weight=weight), [blurry_sequence()], [], tmp_path)
        blurred, sharp = tr.sampler.sample(np.random.default_rng(0), 2)
        losses[weight] = tr.train_step(blurred, sharp, 2)
    b, s = blurred.double().numpy(), sharp.double().numpy()
    spectra = np.fft.rfft2(b, norm="ortho") - np.fft.rfft2(s, norm="ortho")
    assert losses[0.0] == pytest.approx(np.abs(b - s).mean(), rel=1e-4)
    assert losses[0.5] - losses[0.0] == pytest.approx(0.5 * np.abs(spectra).mean(), rel=1e-3)


def test_fresh_ddp_ranks_draw_batches_of_their_own(tmp_path: Path, monkeypatch) -> None:
    """Data parallelism: ranks of one run (one seed) train on different batches."""
    drawn = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))  # WORLD_SIZE stays 1: no process group needed
        tr = Trainer(config(seed=3), [blurry_sequence(n=7)], [], tmp_path / str(rank))
        drawn.append(tr.draw_batch()[0])
    assert not torch.equal(drawn[0], drawn[1])


def test_gradients_are_clipped_to_grad_clip(tmp_path: Path) -> None:
    """The step's gradient (left on the parameters) has a total L2 norm of at most
    ``grad_clip``: the raw gradient of this batch is larger."""
    norms = {}
    for clip in (1e6, 1e-3):
        torch.manual_seed(0)
        tr = Trainer(config(grad_clip=clip), [blurry_sequence()], [], tmp_path / str(clip))
        blurred, sharp = tr.sampler.sample(np.random.default_rng(0), 2)
        tr.train_step(blurred, sharp, 2)
        grads = [p.grad.detach().flatten() for p in tr.model.parameters() if p.grad is not None]
        norms[clip] = float(torch.cat(grads).norm())
    assert norms[1e6] > 1e-2  # unclipped
    assert norms[1e-3] <= 1e-3 * (1 + 1e-4)


def sharp_mp4(path: Path, n: int = 12, h: int = 60, w: int = 80) -> Path:
    """A sharp video file of ``n`` frames (a slow pan), as a camera of one's own records."""
    from test_deblur_offline import write_video

    write_video(path, blurry_sequence(n=n, h=h, w=w).sharp)
    return path


def sharp_stills(folder: Path, n: int, h: int = 96, w: int = 128) -> Path:
    """``n`` unrelated stills: a folder of them is one synthetic camera move per still."""
    folder.mkdir()
    for i in range(n):
        still = np.random.default_rng(i).integers(0, 256, (12, 16, 3), np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(still, (w, h)))
    return folder


def test_a_build_only_run_of_frames_smaller_than_the_crop_builds_and_succeeds(
    tmp_path: Path, capsys
) -> None:
    """weights/README's build recipe (--steps 0) exited 2 with "no sequence has 6 frames of at
    least 96x96" (the default --crop) after building the set it was run for."""
    stills = sharp_stills(tmp_path / "stills", 2, h=60, w=80)
    ts = tmp_path / "ts"
    args = ["train", "--data", str(stills), "--trainset", str(ts), "--steps", "0"]
    assert sarn([*args, "--run-dir", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert f"--trainset {ts} is built" in capsys.readouterr().out
    assert len(list(ts.glob("*.npz"))) == 2
    # and training on it at a crop that is too large is still an error
    assert (
        sarn(["train", "--trainset", str(ts), "--steps", "1", "--run-dir", str(tmp_path / "r")])
        == 2
    )
    assert "no sequence has" in capsys.readouterr().err
    # --steps 0 without --trainset builds nothing to keep: too small is an error, not a success
    args = ["train", "--data", str(stills), "--steps", "0", "--run-dir", str(tmp_path / "r0")]
    assert sarn([*args, "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert "no sequence has" in captured.err and "is built" not in captured.out


@pytest.mark.parametrize("held_out", ["video", "stills"])
def test_the_validation_set_is_what_sarn_eval_synthesises(
    tmp_path: Path, capsys, tiny_recurrent_checkpoint, held_out
) -> None:
    """README: validate the way you evaluate. With the defaults of both commands the held-out
    frames are blurred as `sarn eval --synthetic` blurs them (its seed, its x0.5 and its blur in
    full-resolution pixels, no moving object), so best.pth is the one eval ranks best."""
    if held_out == "video":
        folder = sharp_video(tmp_path / "video", n=4, h=96, w=128)
    else:  # one synthetic camera move per still, each drawn apart
        folder = sharp_stills(tmp_path / "stills", 6)
    out = tmp_path / "eval.json"
    args = ["eval", "--weights", str(tiny_recurrent_checkpoint), "--synthetic", str(folder)]
    args += ["--max-frames", "4", "--future-frames", "0", "--device", "cpu", "--json", str(out)]
    assert sarn(args) == 0
    rows = json.loads(out.read_text())["gt"]
    defaults = option_defaults()
    defaults.val_sharp, defaults.val_frames = folder, 4
    val = validation_set(defaults)
    assert [s.name for s in val] == [r["sequence"] for r in rows]
    for seq, row in zip(val, rows, strict=True):
        mine = [metrics.psnr(b, s) for b, s in zip(seq.blurred, seq.sharp, strict=True)]
        assert mine == pytest.approx(row["per_frame_input_psnr"], abs=1e-6)
    # a camera of shorter exposure: --exposure of both (eval had none, and blurred at 0.8)
    assert sarn([*args, "--exposure", "0.3"]) == 0
    rows = json.loads(out.read_text())["gt"]
    defaults.exposure = 0.3
    for seq, row in zip(validation_set(defaults), rows, strict=True):
        mine = [metrics.psnr(b, s) for b, s in zip(seq.blurred, seq.sharp, strict=True)]
        assert mine == pytest.approx(row["per_frame_input_psnr"], abs=1e-6)


def test_a_video_given_to_data_trains_on_every_clip_by_default(tmp_path: Path, capsys) -> None:
    """--sharpest is for ordinary recordings, asked for: by default every clip of a video is
    trained on, and no sharpness pass reads it first."""
    video = sharp_mp4(tmp_path / "drive.mp4")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video)]
    args += ["--clip-frames", "4", "--clip-len", "1", "--crop", "32", "--steps", "0"]
    assert sarn([*args, "--blur-px", "4", "--device", "cpu", *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "training data: 3 sequences, 12 frames\n" in out
    assert "sharpest" not in out
    # a clip needs --clip-len 3 and 2 look-ahead frames: the error names the option that cut them
    args += ["--run-dir", str(tmp_path / "r5"), "--clip-len", "3"]
    assert sarn([*args, "--blur-px", "4", "--device", "cpu", *TINY_ARGS]) == 2
    assert capsys.readouterr().err.endswith(
        "--data; --clip-frames 4 cuts videos and bags shorter\n"
    )
    # so does a still's sequence, made --still-frames long
    stills = sharp_stills(tmp_path / "stills", 2)
    args += ["--run-dir", str(tmp_path / "r6"), "--data", str(stills), "--still-frames", "4"]
    assert sarn([*args, "--blur-px", "4", "--device", "cpu", *TINY_ARGS]) == 2
    assert capsys.readouterr().err.endswith(  # --data adds to the video
        "--data; --clip-frames 4 cuts videos and bags shorter; --still-frames 4 makes a still's "
        "sequence shorter\n"
    )


def test_a_trainset_records_the_blur_options_it_was_built_with(tmp_path: Path, capsys) -> None:
    """trainset.json (and so the weights' metadata and the reuse check) holds the blur each
    option asked for, --no-jpeg as no compression."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--steps", "0"]
    args += ["--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    blur = {"--blur-px": 4, "--exposure": 0.5, "--rotation-deg": 0.3, "--zoom": 0.01}
    blur |= {"--noise": 1, "--object-prob": 0.6, "--linear-light": 0.25}
    given = [str(x) for kv in blur.items() for x in kv]
    assert sarn([*args, "--trainset", str(tmp_path / "ts"), *given, "--jpeg", "80", "90"]) == 0
    (built,) = json.loads((tmp_path / "ts" / "trainset.json").read_text())["synthetic_blur"]
    want = {"blur_px": 4, "exposure": 0.5, "rotation_deg": 0.3, "zoom": 0.01, "noise_std": 1}
    want |= {"object_prob": 0.6, "linear_light": 0.25, "jpeg_quality": [80, 90]}
    assert {k: built[k] for k in want} == want
    plain = [*args, "--trainset", str(tmp_path / "plain"), "--blur-px", "4"]
    assert sarn([*plain, "--no-jpeg"]) == 0
    (built,) = json.loads((tmp_path / "plain" / "trainset.json").read_text())["synthetic_blur"]
    assert built["jpeg_quality"] is None
    capsys.readouterr()
    assert sarn(plain) == 2  # the set has no compression, this command asks for it
    assert "--jpeg/--no-jpeg 70 97 (the set: off)" in capsys.readouterr().err


def test_a_trainset_named_through_a_missing_folder_is_built_and_reused_there(
    tmp_path: Path, capsys
) -> None:
    """`--trainset new/../ts` is ./ts, where the set is built; read as typed (no `new`), the
    set was never ready: its build recorded no trainset.json, and every later run said it
    was "built by another sarn train meanwhile"."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--clip-len", "3", "--crop", "32"]
    args += ["--device", "cpu", "--blur-px", "4", *TINY_ARGS, "--steps", "0"]
    typed = str(tmp_path / "new" / ".." / "ts")
    assert sarn([*args, "--data", str(video), "--trainset", typed]) == 0
    meta = read_checkpoint(tmp_path / "run" / "latest.pth")["meta"]
    assert "synthetic blur: {'blur_px': 4.0," in meta["data"][-1], meta["data"]
    assert not (tmp_path / "new").exists() and list((tmp_path / "ts").glob("*.npz"))
    capsys.readouterr()
    assert sarn([*args, "--trainset", typed, "--run-dir", str(tmp_path / "run2")]) == 0
    assert f"reusing --trainset {typed} (built from {video})" in capsys.readouterr().out


def test_blur_px_is_at_full_resolution_for_video_clips_too(tmp_path: Path, monkeypatch) -> None:
    """As for frame folders: a video's x0.5 clips get half the pixels of blur."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools import train as train_module

    seen, real = [], train_module.synthesize

    def spy(clip, params, seed):
        seen.append((clip[0].shape[1], params.blur_px))
        return real(clip, params=params, seed=seed)

    monkeypatch.setattr(train_module, "synthesize", spy)
    video = sharp_mp4(tmp_path / "drive.mp4", n=4)
    train_module.gather([video], BlurParams(blur_px=8.0), [1.0, 0.5], 1, 6, clip_frames=4)
    assert seen == [(80, 8.0), (40, 4.0)]


def test_every_blur_variant_of_a_video_clip_draws_its_own_blur(tmp_path: Path) -> None:
    """--variants 2 on a video: two different blurs of each clip, not one twice."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import gather

    video = sharp_mp4(tmp_path / "drive.mp4", n=8)
    seqs = gather([video], BlurParams(blur_px=6.0), [1.0], 2, 6, clip_frames=4)
    assert [s.name for s in seqs] == [
        "drive_1_x1_v0",
        "drive_1_x1_v1",
        "drive_2_x1_v0",
        "drive_2_x1_v1",
    ]
    for a, b in (seqs[:2], seqs[2:]):
        assert not np.array_equal(np.stack(a.blurred), np.stack(b.blurred))


def test_sharpest_is_recorded_as_applied_to_a_folder_holding_a_recording_among_other_files(
    tmp_path: Path,
) -> None:
    """A camera's folder: a video beside its notes; --sharpest picks among the video's clips,
    so the set (and the weights' metadata) says it was applied."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import describe_sources

    (tmp_path / "cam").mkdir()
    sharp_mp4(tmp_path / "cam" / "drive.mp4", n=4)
    (tmp_path / "cam" / "notes.txt").write_text("recorded at noon")
    desc = describe_sources([tmp_path / "cam"], BlurParams(), [1.0], 1, 6, sharpest=0.5)
    assert desc["sharpest_applied"]


def test_no_training_images_in_several_folders_names_them_all(tmp_path: Path, capsys) -> None:
    empty = [tmp_path / "a", tmp_path / "b"]
    for folder in empty:
        folder.mkdir()
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", *map(str, empty)]
    assert sarn([*args, "--steps", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == f"sarn train: error: no training images found in {empty[0]}, {empty[1]}\n"


def test_a_trainset_of_sets_built_apart_is_reused_whole(tmp_path: Path, capsys) -> None:
    """The GPU recipe builds one set per source folder and trains on their parent folder,
    which holds no .npz of its own: it is a training set, not a folder to refuse."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import build_trainset

    video = sharp_video(tmp_path / "video")
    for name in ("a", "b"):
        build_trainset([video], BlurParams(blur_px=4.0), [1.0], 1, 6, tmp_path / "ts" / name)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn(args) == 0
    out = capsys.readouterr().out
    assert f"reusing --trainset {tmp_path / 'ts'} (built from {video})" in out
    assert "training data: 2 sequences, 10 frames\n" in out


def test_a_build_killed_outright_is_built_again_from_scratch(tmp_path: Path) -> None:
    """SIGKILL (an OOM kill, a job's hard limit) leaves .<trainset>.partial behind: the next
    run builds the set anew rather than failing on the folder or keeping the old part."""
    video = sharp_video(tmp_path / "video")
    partial, old = tmp_path / ".ts.partial", tmp_path / "ts.partial"  # old: an earlier version's
    for left in (partial, old):
        left.mkdir()
        (left / "stale.npz").write_bytes(b"half written")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--blur-px", "4", "--steps", "0", "--clip-len", "3"]
    assert sarn([*args, "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    built = sorted(p.name for p in (tmp_path / "ts").glob("*.npz"))
    assert len(built) == 1 and "stale.npz" not in built
    assert not partial.exists() and not old.exists()


def test_a_trainset_built_inside_its_data_folder_is_not_named_as_left_out(
    tmp_path: Path, capsys
) -> None:
    """`--data d --trainset d/ts` said "note: d: not used: ts.partial": its own build folder."""
    data = tmp_path / "d"
    data.mkdir()
    sharp_video(data / "frames")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(data / "ts")]
    args += ["--data", str(data), "--blur-px", "4", "--steps", "0", "--clip-len", "3"]
    assert sarn([*args, "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    assert "not used" not in capsys.readouterr().out


def test_a_trainset_of_parts_records_the_sharpest_share_any_part_kept(tmp_path: Path) -> None:
    """A set built apart from a recording's sharpest half and from a frame folder trained on
    part of the recording: the weights' metadata says so."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import build_trainset

    video, frames = sharp_mp4(tmp_path / "drive.mp4", n=10), sharp_video(tmp_path / "frames")
    params, ts = BlurParams(blur_px=4.0), tmp_path / "ts"
    build_trainset([video], params, [1.0], 1, 6, ts / "a", clip_frames=5, sharpest=0.5)
    build_trainset([frames], params, [1.0], 1, 6, ts / "b")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(ts), "--steps", "0"]
    assert sarn([*args, "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    data = load_model(tmp_path / "run" / "latest.pth").meta["data"]
    assert data[-1] == "recordings: the sharpest 0.5 of their clips"


def test_a_trainset_of_parts_built_at_other_scales_takes_the_scales_of_all(
    tmp_path: Path, capsys
) -> None:
    """gpu_kit builds each folder at its own --scales: the parts' scales are no one build
    option of the whole set, so a command giving all of them is not refused over the first."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import build_trainset, read_description

    video = sharp_video(tmp_path / "video", h=96, w=128)
    ts = tmp_path / "ts"
    for name, scales in (("a", [0.5]), ("b", [1.0])):
        build_trainset([video], BlurParams(blur_px=4.0), scales, 1, 6, ts / name)
    desc = read_description(ts)
    assert "scales" not in desc and desc["variants"] == 1  # what the parts share is kept
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(ts), "--steps", "0"]
    args += ["--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--scales", "1", "0.5"]) == 0, capsys.readouterr().err


def test_a_set_built_from_one_folder_at_two_blurs_names_the_folder_once(tmp_path: Path) -> None:
    """gpu_kit builds each folder once per blur setting: the set's description (printed on
    reuse, stored in the weights) names each source once, not once per part."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import build_trainset, read_description

    video = sharp_video(tmp_path / "video", h=96, w=128)
    ts = tmp_path / "ts"
    for px in (4.0, 8.0):
        build_trainset([video], BlurParams(blur_px=px), [1.0], 1, 6, ts / f"b{px:g}" / "video")
    desc = read_description(ts)
    assert desc["sources"] == [str(video.resolve())]
    assert [b["blur_px"] for b in desc["synthetic_blur"]] == [4.0, 8.0]


def test_a_reused_trainset_given_its_data_compares_the_options_left_at_their_defaults(
    tmp_path: Path, capsys
) -> None:
    """With --data the command describes a build in full: a set made at --blur-px 4 is not the
    set that `--data video` at the default blur asks for."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--steps", "0", "--clip-len", "3", "--crop", "32"]
    args += ["--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--blur-px", "4"]) == 0
    capsys.readouterr()
    assert sarn(args) == 2
    default = option_defaults().blur_px
    assert f"--blur-px {default:g} (the set: 4)" in capsys.readouterr().err


def test_the_order_of_data_folders_is_no_other_set(tmp_path: Path, capsys) -> None:
    """--data compares as a set of whole paths: the same folders in another order are the
    set's own sources."""
    video, other = sharp_video(tmp_path / "video"), sharp_video(tmp_path / "other")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    args += ["--blur-px", "4"]
    assert sarn([*args, "--data", str(video), str(other)]) == 0
    assert sarn([*args, "--data", str(other), str(video)]) == 0, capsys.readouterr().err
    assert f"reusing --trainset {tmp_path / 'ts'}" in capsys.readouterr().out


def test_the_order_of_scales_is_no_other_set(tmp_path: Path, capsys) -> None:
    """--scales 0.5 1 was refused as a conflict with the set built at --scales 1 0.5; another
    scale is still one."""
    video = sharp_video(tmp_path / "video", h=64, w=96)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "24", "--device", "cpu", *TINY_ARGS]
    args += ["--data", str(video)]
    assert sarn([*args, "--scales", "1", "0.5"]) == 0
    assert sarn([*args, "--scales", "0.5", "1"]) == 0, capsys.readouterr().err
    assert f"reusing --trainset {tmp_path / 'ts'}" in capsys.readouterr().out
    assert sarn([*args, "--scales", "0.5", "0.75"]) == 2
    assert "--scales 0.5 0.75 (the set: 1 0.5)" in capsys.readouterr().err


def test_a_trainset_of_parts_refuses_a_blur_that_only_some_parts_have(
    tmp_path: Path, capsys
) -> None:
    """Parts built at --blur-px 4 and 8 are no set at --blur-px 4: half of it has another."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import build_trainset

    video = sharp_video(tmp_path / "video")
    for name, px in (("a", 4.0), ("b", 8.0)):
        build_trainset([video], BlurParams(blur_px=px), [1.0], 1, 6, tmp_path / "ts" / name)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--blur-px", "4"]) == 2
    assert "--blur-px 4 (the set: 4, 8)" in capsys.readouterr().err
    assert sarn(args) == 0  # only --trainset: the set as built


def test_validation_blur_follows_a_val_blur_px_of_0_and_the_exposure(tmp_path: Path) -> None:
    """--val-blur-px 0 (no motion blur) is a value, not "unset"; --exposure shapes the
    validation blur as it does the training blur (the camera's motion between a still's
    frames: a video brings its own)."""
    import argparse

    base = {"val_sharp": sharp_stills(tmp_path / "stills", 1), "val_pairs": [], "val_scale": 1.0}
    base |= {"val_frames": 4, "topics": None, "debayer": "vng", "max_gap_s": 0.5}

    def blurred(**kw) -> np.ndarray:
        (seq,) = validation_set(argparse.Namespace(**base, **kw))
        return np.stack(seq.blurred)

    still = blurred(blur_px=0.0, val_blur_px=None, exposure=0.8)
    assert np.array_equal(blurred(blur_px=24.0, val_blur_px=0.0, exposure=0.8), still)
    assert not np.array_equal(blurred(blur_px=24.0, val_blur_px=None, exposure=0.8), still)
    long = blurred(blur_px=24.0, val_blur_px=None, exposure=0.8)
    assert not np.array_equal(blurred(blur_px=24.0, val_blur_px=None, exposure=0.2), long)


def test_a_bag_held_out_for_validation_plays_the_topics_asked_for(tmp_path: Path) -> None:
    import argparse

    from test_recordings import grey_frames, write_camera_bag

    write_camera_bag(tmp_path / "run", grey_frames(4))
    args = {"val_sharp": tmp_path / "run", "val_pairs": [], "val_scale": 0.5, "val_frames": 3}
    args |= {"blur_px": 8.0, "val_blur_px": None, "exposure": 0.8, "debayer": "vng"}
    args |= {"max_gap_s": 0.5}
    (seq,) = validation_set(argparse.Namespace(**args, topics=["/cam/image_raw/compressed"]))
    assert seq.name == "run/cam/image_raw/compressed" and len(seq.blurred) == 3


def test_an_equal_jpeg_min_and_max_is_one_quality(tmp_path: Path) -> None:
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--steps", "0", "--clip-len", "3", "--crop", "32"]
    assert sarn([*args, "--device", "cpu", "--jpeg", "90", "90", *TINY_ARGS]) == 0
    (built,) = json.loads((tmp_path / "ts" / "trainset.json").read_text())["synthetic_blur"]
    assert built["jpeg_quality"] == [90, 90]


def test_export_from_a_folder_without_a_run_does_not_point_to_latest(
    tmp_path: Path, capsys
) -> None:
    """--from latest is the way out only where latest.pth exists."""
    args = ["train", "--run-dir", str(tmp_path / "nothing"), "--export", str(tmp_path / "w.pth")]
    assert sarn(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarn train:") and "--from latest" not in err


def test_a_resume_ignores_init_and_keeps_the_runs_own_start(
    tmp_path: Path, capsys, tiny_recurrent_checkpoint
) -> None:
    """--init is for new runs: a run from scratch resumed with one goes on from its own
    weights and architecture, and still records that it started from scratch."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--clip-len", "3", "--crop", "32", "--batch", "1", "--device", "cpu"]
    assert sarn([*args, "--steps", "1", *TINY_ARGS]) == 0  # num_drm 1: the fixture has more
    resumed = [*args, "--steps", "2", "--resume", "--init", str(tiny_recurrent_checkpoint)]
    capsys.readouterr()
    assert sarn(resumed) == 0, capsys.readouterr().err
    note = f"note: --init {tiny_recurrent_checkpoint} is not used on --resume: the run started"
    assert f"{note} from scratch" in capsys.readouterr().out  # it was ignored without a word
    weights = load_model(tmp_path / "run" / "latest.pth")
    assert weights.meta["steps"] == 2 and weights.meta["train_config"]["init"] is None
    assert weights.cfg.num_drm == 1


def test_a_trainset_that_is_a_file_is_named_as_no_training_set(tmp_path: Path, capsys) -> None:
    video = sharp_video(tmp_path / "video")
    (tmp_path / "ts").write_text("a file")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    assert sarn([*args, "--data", str(video), "--steps", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"--trainset {tmp_path / 'ts'} exists and is not a training set" in err


def tiny_run(tmp_path: Path, video: Path, steps: int, *extra: str) -> int:
    """`sarn train` of ``steps`` on ``video`` into tmp_path/run, a tiny model on a CPU."""
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--steps", str(steps), "--batch", "1", "--clip-len", "3", "--crop", "32"]
    return sarn([*args, "--device", "cpu", *extra])


def test_trained_weights_whose_last_pt_is_gone_are_not_replaced_by_a_new_run(
    tmp_path: Path, capsys
) -> None:
    """last.pt deleted to save space (4x the weights): a new run in that --run-dir replaced
    its best.pth and latest.pth with a note, the trained weights lost. Refused without
    --resume; --init from them still starts there."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 2, *TINY_ARGS) == 0
    (tmp_path / "run" / "last.pt").unlink()
    latest = (tmp_path / "run" / "latest.pth").read_bytes()
    capsys.readouterr()
    assert tiny_run(tmp_path, video, 1, *TINY_ARGS) == 2
    err = capsys.readouterr().err
    assert f"--run-dir {tmp_path / 'run'} holds latest.pth (step 2) without its last.pt" in err
    assert (tmp_path / "run" / "latest.pth").read_bytes() == latest
    shutil.copy(tmp_path / "run" / "latest.pth", tmp_path / "run" / "old.pth")
    assert tiny_run(tmp_path, video, 1, "--init", str(tmp_path / "run" / "old.pth")) == 2
    assert "holds latest.pth (step 2) without its last.pt" in capsys.readouterr().err
    init = str(tmp_path / "run" / "latest.pth")
    assert tiny_run(tmp_path, video, 1, "--init", init) == 0, capsys.readouterr().err


def test_a_resume_with_nothing_left_to_train_leaves_the_run_as_it_was(
    tmp_path: Path, capsys
) -> None:
    """A job loop run again after the last step: the run's files were saved again with this
    command's options as its last leg's (charbonnier for l1), and a note said it trains with
    them, though no step ran."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 2, *TINY_ARGS, "--loss", "l1") == 0
    files = {n: (tmp_path / "run" / n).read_bytes() for n in ("last.pt", "latest.pth")}
    capsys.readouterr()
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--batch", "1", "--clip-len", "3", "--crop", "32", "--device", "cpu", "--resume"]
    assert sarn(args) == 0
    assert "trains with" not in capsys.readouterr().out
    assert {n: (tmp_path / "run" / n).read_bytes() for n in files} == files
    assert load_model(tmp_path / "run" / "latest.pth").meta["train_config"]["loss"] == "l1"
    # a longer --steps whose time runs out before a step: the new schedule is still saved
    assert sarn([*args, "--steps", "4", "--max-minutes", "0.0001"]) == 0
    from sarn_ros.training.trainer import run_progress

    assert run_progress(tmp_path / "run") == (2, 4)


def test_a_resumed_run_records_what_a_straight_one_does(tmp_path: Path) -> None:
    """The weights' train_config.model was the options as typed for a straight run and every
    field of the architecture for the same run resumed (taken from its latest.pth)."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path / "a", video, 2, *TINY_ARGS) == 0
    assert tiny_run(tmp_path / "b", video, 1, *TINY_ARGS) == 0
    assert tiny_run(tmp_path / "b", video, 2, *TINY_ARGS, "--resume") == 0
    straight, resumed = (
        load_model(tmp_path / run / "run" / "latest.pth").meta["train_config"] for run in "ab"
    )
    assert straight["model"] == resumed["model"] == {**straight["model"], "attention": True}
    assert straight == resumed


def test_a_resume_names_only_the_options_given_that_the_run_does_not_use(
    tmp_path: Path, capsys
) -> None:
    """A run at --lr 1e-3 resumed without --lr keeps it without a note (the default is no
    choice of the user's); a shorter --steps is named as a longer one is, and one below the
    step the run is at is refused (it ended the schedule there for every later resume, and
    the weights' metadata said steps 2 of a 1-step schedule)."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 2, *TINY_ARGS, "--lr", "1e-3", "--warmup", "1") == 0
    capsys.readouterr()
    assert tiny_run(tmp_path, video, 1, "--resume") == 2
    assert capsys.readouterr().err == (
        "sarn train: error: --steps 1: the run is at step 2 already; give more, or leave "
        "--steps out to keep its 2 steps\n"
    )
    # said before a new --trainset is built, not after (hours for GoPro)
    assert tiny_run(tmp_path, video, 1, "--resume", "--trainset", str(tmp_path / "ts")) == 2
    assert "the run is at step 2 already" in capsys.readouterr().err
    assert not (tmp_path / "ts").exists() and not (tmp_path / ".ts.partial").exists()
    assert tiny_run(tmp_path, video, 3, "--resume") == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "--lr" not in out
    # nor --warmup: named at its default, 200, which no one had typed
    assert "--warmup" not in out and "--seed" not in out
    assert "note: --steps 3: the run's cosine schedule, 2 steps long, now ends at step 3" in out
    # shorter, from a run at step 1 of 4
    short = Trainer(config(steps=4), [blurry_sequence()], [], tmp_path / "s" / "run")
    short.train_one()
    short.save()
    assert tiny_run(tmp_path / "s", video, 2, "--resume") == 0
    out = capsys.readouterr().out
    assert "note: --steps 2: the run's cosine schedule, 4 steps long, now ends at step 2" in out
    # without --steps: the run's own schedule (3 now), not the 20,000 of a new run (README's
    # resume example gives none; a finished short run went on for 20,000 steps)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--batch", "1", "--clip-len", "3", "--crop", "32", "--device", "cpu", "--resume"]
    assert sarn(args) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "--steps" not in out, out
    assert load_model(tmp_path / "run" / "latest.pth").meta["steps"] == 3


def test_a_single_image_run_resumes_as_one_without_arch(tmp_path: Path, capsys) -> None:
    """--arch is for new runs: a single-image run resumed without it keeps its model, and the
    default --arch it did not give is no option to call unused."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 1, "--arch", "single", *TINY_ARGS) == 0
    capsys.readouterr()
    assert tiny_run(tmp_path, video, 2, "--resume") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "resumed" in out and "not used on --resume" not in out
    weights = load_model(tmp_path / "run" / "latest.pth")
    assert type(weights).__name__ == "SARN" and weights.meta["steps"] == 2


def test_a_single_image_run_takes_the_recurrent_tiny_options_but_lstm_channels(
    tmp_path: Path,
) -> None:
    """--lstm-channels is the recurrent model's: a single-image run started with the options
    of a recurrent one builds its SARN from the others."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 1, "--arch", "single", *TINY_ARGS) == 0
    weights = load_model(tmp_path / "run" / "latest.pth")
    assert type(weights).__name__ == "SARN" and weights.cfg.channels == 8
    assert weights.meta["train_config"]["model"] == asdict(weights.cfg)  # no lstm_channels
    assert "lstm_channels" not in weights.meta["train_config"]["model"]


def test_validating_the_init_weights_alone_is_no_fine_tune_gone_worse(
    tmp_path: Path, capsys, tiny_recurrent_checkpoint
) -> None:
    """--steps 0 with --init and a validation set measures the starting weights: that no step
    beat them is no news when there was no step."""
    video = sharp_video(tmp_path / "video")
    extra = ["--init", str(tiny_recurrent_checkpoint), "--val-sharp", str(video)]
    assert tiny_run(tmp_path, video, 0, *extra, "--val-frames", "3", "--val-scale", "1") == 0
    out = capsys.readouterr().out
    assert "best val PSNR" in out and "at step 0" in out
    assert "no step validated above" not in out


def test_a_run_without_validation_says_where_its_weights_are(tmp_path: Path, capsys) -> None:
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 1, *TINY_ARGS) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"no validation set: the weights are in {tmp_path / 'run' / 'latest.pth'}"


def test_sequences_left_out_are_counted_and_the_sizes_are_those_trained_on(
    tmp_path: Path, capsys
) -> None:
    from sarn_ros.data.datasets import load_sequences

    video = sharp_video(tmp_path / "video")  # 60x80: x0.5 and x0.25 are below a 32 px crop
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--scales", "1", "0.5", "0.25", "--steps", "0"]
    assert sarn([*args, "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "training data: 1 sequence, 5 frames (2 of the 3 sequences are left out: " in out
    (h, w), *_ = sorted(
        (s.blurred[0].shape[:2] for s in load_sequences(tmp_path / "ts")), reverse=True
    )
    data = load_model(tmp_path / "run" / "latest.pth").meta["data"]
    assert data[1].endswith(f", sizes {w}x{h}")


def test_sharpest_given_for_a_frame_folder_is_not_recorded_as_applied(tmp_path: Path) -> None:
    """--sharpest chooses among a recording's clips: a frame folder is used whole, and the
    weights' metadata does not say otherwise."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 0, "--sharpest", "0.5", *TINY_ARGS) == 0
    data = load_model(tmp_path / "run" / "latest.pth").meta["data"]
    assert not any(line.startswith("recordings:") for line in data)


def test_a_resume_without_last_pt_is_a_new_run_of_the_options_given(tmp_path: Path, capsys) -> None:
    """Untrained weights without a last.pt (a --steps 0 call's; trained ones are refused, in
    test_train_options): --resume starts the run the command describes, not the
    architecture of the weights left behind."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 0, *TINY_ARGS) == 0
    assert type(load_model(tmp_path / "run" / "latest.pth")).__name__ == "RecurrentSARN"
    (tmp_path / "run" / "last.pt").unlink()
    assert tiny_run(tmp_path, video, 1, "--resume", "--arch", "single", *TINY_ARGS) == 0
    assert type(load_model(tmp_path / "run" / "latest.pth")).__name__ == "SARN"


def test_a_resume_without_latest_pth_takes_the_architecture_from_last_pt(
    tmp_path: Path, capsys
) -> None:
    """With latest.pth moved away, --resume without the architecture options built the default
    model and failed loading last.pt into it, with an error that ended at its colon."""
    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 1, "--arch", "single", *TINY_ARGS) == 0
    (tmp_path / "run" / "latest.pth").rename(tmp_path / "moved.pth")
    assert tiny_run(tmp_path, video, 2, "--resume") == 0, capsys.readouterr().err
    assert "at step 1" in capsys.readouterr().out
    resumed = load_model(tmp_path / "run" / "latest.pth")
    assert type(resumed).__name__ == "SARN" and resumed.cfg.channels == 8
    # --lstm-channels, which a single-image model has not, is named (--arch single dropped it)
    capsys.readouterr()
    assert tiny_run(tmp_path, video, 3, "--resume", "--arch", "single", *TINY_ARGS) == 0
    out = capsys.readouterr().out
    assert "note: --lstm-channels 8 not used on --resume: the run keeps its single" in out, out
    # latest.pth cut short (a disk, a copy) is as one moved away: the next checkpoint rewrites it
    latest = tmp_path / "run" / "latest.pth"
    latest.write_bytes(latest.read_bytes()[:5000])
    assert tiny_run(tmp_path, video, 4, "--resume") == 0, capsys.readouterr().err
    assert type(load_model(latest)).__name__ == "SARN" and load_model(latest).cfg.channels == 8
    # a fine-tune (--init) resumed without its latest.pth: the architecture of the init weights
    fine = tmp_path / "fine"
    fine.mkdir()
    init = ["--init", str(tmp_path / "moved.pth")]
    assert tiny_run(fine, video, 1, *init) == 0, capsys.readouterr().err
    (fine / "run" / "latest.pth").unlink()
    assert tiny_run(fine, video, 2, "--resume") == 0, capsys.readouterr().err
    assert "at step 1" in capsys.readouterr().out
    assert type(load_model(fine / "run" / "latest.pth")).__name__ == "SARN"
    # single-image weights made recurrent: the LSTM's size is the run's, the rest the weights'
    made = tmp_path / "made"
    made.mkdir()
    init += ["--arch", "recurrent", "--lstm-channels", "12"]
    assert tiny_run(made, video, 1, *init) == 0, capsys.readouterr().err
    latest = made / "run" / "latest.pth"
    latest.write_bytes(latest.read_bytes()[:5000])
    assert tiny_run(made, video, 2, "--resume") == 0, capsys.readouterr().err
    assert load_model(latest).cfg.lstm_channels == 12


def test_a_run_from_scratch_trains_at_the_lr_its_help_names(tmp_path: Path, capsys) -> None:
    """Without --lr a new run trains at the trainer's default, the one `--help` names (a
    fine-tune's own default is checked with --init above)."""
    from sarn_ros.training.trainer import TrainConfig

    assert tiny_run(tmp_path, sharp_video(tmp_path / "video"), 0, *TINY_ARGS) == 0
    lr = load_model(tmp_path / "run" / "latest.pth").meta["train_config"]["lr"]
    assert lr == TrainConfig().lr
    capsys.readouterr()
    with pytest.raises(SystemExit):
        sarn(["train", "--help"])
    assert f"(default: {lr:g};" in " ".join(capsys.readouterr().out.split())


def test_data_given_relative_is_recorded_as_a_whole_path(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """trainset.json names its sources whole, so a command run from elsewhere that names the
    same folder by its whole path reuses the set."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    monkeypatch.chdir(tmp_path)
    assert sarn([*args, "--data", "video", "--blur-px", "4"]) == 0
    desc = json.loads((tmp_path / "ts" / "trainset.json").read_text())
    assert desc["sources"] == [str(video)]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert sarn([*args, "--data", str(video), "--blur-px", "4"]) == 0, capsys.readouterr().err
    assert f"reusing --trainset {tmp_path / 'ts'} (built from {video})" in capsys.readouterr().out


def test_a_resume_is_checked_before_the_data_is_built_and_keeps_its_own_schedule(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """--resume named a cut-short last.pt only once the training set was built (hours for
    GoPro); and a run past --steps' default resumed without --steps was refused as if
    --steps 20000 had been given, told to leave --steps out."""
    from sarn_ros.tools import train as train_module
    from sarn_ros.training.trainer import load_training_state

    video = sharp_video(tmp_path / "video")
    assert tiny_run(tmp_path, video, 1, *TINY_ARGS) == 0
    last = tmp_path / "run" / "last.pt"
    state = load_training_state(last)
    state["step"], state["config"]["steps"] = 25000, 40000
    torch.save(state, last)

    def synthesised(*args, **kwargs):
        raise ValueError("the data is being built")

    monkeypatch.setattr(train_module, "synthesize_folder", synthesised)
    capsys.readouterr()
    resume = ["train", "--run-dir", str(tmp_path / "run"), "--resume", "--data", str(video)]
    assert sarn([*resume, "--device", "cpu"]) == 2
    assert capsys.readouterr().err == "sarn train: error: the data is being built\n"
    assert sarn([*resume, "--device", "cpu", "--steps", "20000"]) == 2  # given: checked
    assert "--steps 20000: the run is at step 25000 already" in capsys.readouterr().err
    # a last.pt torch.load reads, but not memory-mapped (no zip): --steps checked all the same
    torch.save(state, last, _use_new_zipfile_serialization=False)
    assert sarn([*resume, "--device", "cpu", "--steps", "30000"]) == 2
    assert capsys.readouterr().err == "sarn train: error: the data is being built\n"
    torch.save(state, last)
    last.write_bytes(last.read_bytes()[:5000])
    assert sarn([*resume, "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: cannot resume {last}: not a readable training checkpoint (cut "
        "short: its zip has no end)\n"
    )


def test_a_missing_data_path_is_found_before_the_others_are_built(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """A typo in the last of several --data paths is said at once, not after the sources
    before it were synthesised (hours for a large set)."""
    from sarn_ros.tools import train as train_module

    def synthesised(*args, **kwargs):
        pytest.fail("a source was synthesised before the missing one was named")

    monkeypatch.setattr(train_module, "synthesize_folder", synthesised)
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), str(tmp_path / "missing"), "--steps", "0", "--device", "cpu"]
    assert sarn(args) == 2
    assert f"no such file or folder: {tmp_path / 'missing'}" in capsys.readouterr().err


def test_recording_options_conflict_only_with_a_set_of_such_recordings(
    tmp_path: Path, capsys
) -> None:
    """How recordings are cut and read builds another set, but a set without such a recording
    was refused over an option that could not have shaped it: a --sharpest the build had
    called unused, or --topics for a bag held out to validate on beside a set of videos."""
    from test_recordings import grey_frames, write_camera_bag

    frames, video = sharp_video(tmp_path / "frames"), sharp_mp4(tmp_path / "drive.mp4", n=8)
    bag = tmp_path / "held"
    write_camera_bag(bag, grey_frames(4))
    base = ["train", "--clip-len", "1", "--crop", "32", "--steps", "0", "--blur-px", "4"]
    base += ["--device", "cpu", *TINY_ARGS]
    videos = [*base, "--run-dir", str(tmp_path / "v"), "--trainset", str(tmp_path / "tv")]
    assert sarn([*videos, "--data", str(video), "--clip-frames", "4"]) == 0
    capsys.readouterr()
    for change, named in (
        (["--clip-frames", "6"], "--clip-frames 6 (the set: 4)"),
        (["--sharpest", "0.5"], "--sharpest 0.5 (the set: 1)"),
    ):
        assert sarn([*videos, *change]) == 2, change
        assert named in capsys.readouterr().err
    held = ["--val-sharp", str(bag), "--val-frames", "2", "--topics", "/cam/image_raw"]
    assert sarn([*videos, *held]) == 0  # a bag-only option: no bag in the set
    assert f"reusing --trainset {tmp_path / 'tv'}" in capsys.readouterr().out
    stills = [*base, "--run-dir", str(tmp_path / "f"), "--trainset", str(tmp_path / "tf")]
    assert sarn([*stills, "--data", str(frames), "--sharpest", "0.5"]) == 0
    assert "--sharpest 0.5 (for videos and bags)" in capsys.readouterr().out
    assert sarn([*stills, "--data", str(frames)]) == 0
    assert f"reusing --trainset {tmp_path / 'tf'}" in capsys.readouterr().out
    # a set of real pairs only: no variant or still was made, whatever the number asked
    write_pairs(tmp_path / "pairs", blurry_sequence("p0", n=4, seed=3))
    pairs = [*base, "--run-dir", str(tmp_path / "p"), "--trainset", str(tmp_path / "tp")]
    assert sarn([*pairs, "--data", str(tmp_path / "pairs")]) == 0
    capsys.readouterr()
    assert sarn([*pairs, "--variants", "2", "--still-frames", "3"]) == 0
    assert f"reusing --trainset {tmp_path / 'tp'}" in capsys.readouterr().out


def test_sequences_left_out_are_counted_per_reason_with_the_largest_too_small() -> None:
    """'fewer than 5 frames or smaller than the crop' did not say which, and a 340x300 still
    named smaller than a 256 px crop left its owner guessing: synthesis had cropped it."""
    from sarn_ros.tools.train import count

    seqs = [
        blurry_sequence("short", n=3, h=40, w=40),
        blurry_sequence("small", n=6, h=20, w=30),
        blurry_sequence("smaller", n=6, h=24, w=16),
        blurry_sequence("kept", n=6, h=40, w=36),
    ]
    text = count(seqs[3:], seqs, 5, 32, synthetic=True)
    assert text == (
        "1 sequence, 6 frames (3 of the 4 sequences are left out: 1 with fewer than 5 frames; "
        "2 smaller than the 32x32 crop, the largest 30x20, cropped 8-30 % a side by the "
        "synthetic blur (more with a longer --blur-px))"
    )
    assert count(seqs[1:2] + seqs[3:], seqs[1:], 5, 20, synthetic=False) == (
        "2 sequences, 12 frames (1 of the 3 sequences is left out: 1 smaller than the 20x20 "
        "crop, the largest 16x24)"
    )
    assert count(seqs[3:], seqs[3:], 5, 32, synthetic=True) == "1 sequence, 6 frames"


def test_a_refused_command_names_no_unused_recording_option(tmp_path: Path, capsys) -> None:
    """The 'not used' note came before a refusal, as if it were the command's fault."""
    frames = sharp_video(tmp_path / "frames")
    base = ["train", "--clip-len", "1", "--crop", "32", "--blur-px", "4", "--device", "cpu"]
    base += ["--data", str(frames), "--trainset", str(tmp_path / "ts"), *TINY_ARGS]
    assert sarn([*base, "--run-dir", str(tmp_path / "a"), "--steps", "1", "--batch", "1"]) == 0
    capsys.readouterr()
    idle = ["--clip-frames", "4"]
    # a run-dir holding a trained run; a set built with another blur; a folder not a set
    assert sarn([*base, "--run-dir", str(tmp_path / "a"), *idle]) == 2
    assert sarn([*base, "--run-dir", str(tmp_path / "b"), *idle, "--blur-px", "6"]) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    other = [*base, "--run-dir", str(tmp_path / "c"), *idle, "--trainset", str(tmp_path / "other")]
    assert sarn(other) == 2
    out, err = capsys.readouterr()
    assert "not used" not in out and err.count("sarn train: ") == 3
    assert sarn([*base, "--run-dir", str(tmp_path / "d"), *idle, "--steps", "0"]) == 0
    assert "note: --clip-frames 4 (for videos and bags) not used" in capsys.readouterr().out


def test_a_resume_without_its_validation_set_says_so_and_keeps_the_set_named(
    tmp_path: Path, capsys
) -> None:
    """Resumed without --val-sharp, a run went on unvalidated without a word, and a latest.pth
    written at its validated last step held figures on a set named ''."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--batch", "1"]
    args += ["--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--val-sharp", str(video), "--val-frames", "3", "--steps", "2"]) == 0
    named = read_checkpoint(tmp_path / "run" / "latest.pth")["meta"]["validation"]["set"]
    assert str(video) in named
    capsys.readouterr()
    assert sarn([*args, "--resume"]) == 0  # its last step again: latest.pth is rewritten
    out = capsys.readouterr().out
    assert f"note: this run validated on {named}: without --val-sharp or --val-pairs it is " in out
    assert "not validated from here on, and best.pth keeps step 2" in out
    assert read_checkpoint(tmp_path / "run" / "latest.pth")["meta"]["validation"]["set"] == named
    assert sarn([*args, "--resume", "--steps", "3"]) == 0
    assert "best.pth keeps step 2" in capsys.readouterr().out
    assert "validation" not in read_checkpoint(tmp_path / "run" / "latest.pth")["meta"]
    assert sarn([*args, "--resume", "--val-sharp", str(video), "--val-frames", "3"]) == 0
    assert "note: this run validated" not in capsys.readouterr().out


def test_a_best_pth_moved_away_is_said_gone_and_written_anew(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """best.pth moved out to ship it: the resumed run said best.pth held step 2, and a
    validation below step 2's never wrote it again (--export then blamed a missing set)."""
    video = sharp_video(tmp_path / "video")
    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run), "--data", str(video), "--batch", "1"]
    args += ["--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    val = ["--val-sharp", str(video), "--val-frames", "3"]
    assert sarn([*args, *val, "--steps", "2"]) == 0
    (run / "best.pth").rename(tmp_path / "shipped.pth")
    capsys.readouterr()
    assert sarn([*args, *val, "--resume", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert f"note: {run / 'best.pth'} (step 2's, " in out
    assert "is gone: the next validation writes it anew" in out and "at step 3 " in out
    assert read_checkpoint(run / "best.pth")["meta"]["steps"] == 3
    assert sarn([*args, *val, "--resume", "--steps", "4"]) == 0  # steps 1-2 stay left out
    out = capsys.readouterr().out
    step = read_checkpoint(run / "best.pth")["meta"]["steps"]
    assert "is gone" not in out and f"at step {step} " in out and step in (3, 4)
    (run / "best.pth").unlink()
    assert sarn([*args, "--resume", "--steps", "5"]) == 0  # unvalidated: nothing writes it
    out = capsys.readouterr().out
    assert f"(step {step}'s, " in out and "is gone: no validation writes it anew" in out
    assert "best.pth keeps" not in out and "best val PSNR" not in out
    assert not (run / "best.pth").exists()
    # validated again at the step it was resumed at (5, unvalidated): that validation counts
    assert sarn([*args, *val, "--resume"]) == 0
    assert "at step 5 " in capsys.readouterr().out
    assert read_checkpoint(run / "best.pth")["meta"]["steps"] == 5
    # moved away, then brought back: it is the bar again, not overwritten by a worse step
    (run / "best.pth").rename(tmp_path / "shipped.pth")
    assert sarn([*args, "--resume", "--steps", "6"]) == 0
    shutil.copy(tmp_path / "shipped.pth", run / "best.pth")
    validate = Trainer.validate

    def worse(self: Trainer) -> dict[str, float]:
        m = validate(self)
        return {**m, "val_psnr": m["val_psnr"] - 10}

    monkeypatch.setattr(Trainer, "validate", worse)
    capsys.readouterr()
    assert sarn([*args, *val, "--resume", "--steps", "7"]) == 0
    out = capsys.readouterr().out
    assert "is gone" not in out and "at step 5 " in out
    assert (run / "best.pth").read_bytes() == (tmp_path / "shipped.pth").read_bytes()
    (run / "best.pth").write_bytes(b"damaged")  # said so, not "holds other weights"
    assert sarn([*args, *val, "--resume", "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert (
        f"note: {run / 'best.pth'} (step 5's, " in out and ") cannot be read (cannot read " in out
    )
    assert read_checkpoint(run / "best.pth")["meta"]["steps"] == 8


def test_the_best_pth_there_is_is_the_bar_whatever_copy_it_is(tmp_path: Path, monkeypatch) -> None:
    """An older best.pth copied back over a better step's: the run named the better step as
    best.pth's and kept its bar, which the file did not reach (a step between them was not
    written). Another run's best.pth there is no step of this run: the next validation
    replaces it."""
    scripted_validation(monkeypatch, [(25.0, 20.0), (28.0, 20.0), (27.0, 20.0), (26.0, 20.0)])
    val, run = [blurry_sequence("v", seed=1)], tmp_path / "run"

    def leg(steps: int) -> Trainer:
        tr = Trainer(config(steps=steps, val_minutes=1e9), [blurry_sequence()], val, run)
        tr.resume()
        tr.run(log=lambda _msg: None)
        return tr

    leg(1)
    shutil.copy(run / "best.pth", tmp_path / "step1.pth")
    leg(2)  # 28 dB: best.pth
    shutil.copy(tmp_path / "step1.pth", run / "best.pth")
    tr = leg(3)  # 27 dB: above the 25 the file holds
    assert read_checkpoint(run / "best.pth")["meta"]["steps"] == 3
    assert tr.best_validation()["step"] == 3 and tr.best == 27.0
    other = Trainer(config(steps=1), [blurry_sequence()], [], tmp_path / "other")
    other.run(log=lambda _msg: None)
    shutil.copy(tmp_path / "other" / "latest.pth", run / "best.pth")
    tr = leg(4)  # 26 dB: the first of this run's that best.pth holds
    assert tr.lost_best["step"] == 3 and read_checkpoint(run / "best.pth")["meta"]["steps"] == 4
    assert tr.best_validation()["step"] == 4


def test_recording_options_no_data_source_uses_are_named(tmp_path: Path, capsys) -> None:
    """--sharpest and --clip-frames are for videos and bags, --topics and --debayer for bags:
    given with a frame folder they were accepted without a word and changed nothing."""
    frames, video = sharp_video(tmp_path / "frames"), sharp_mp4(tmp_path / "drive.mp4", n=8)
    base = ["train", "--clip-len", "1", "--crop", "32", "--steps", "0", "--blur-px", "4"]
    base += ["--device", "cpu", *TINY_ARGS]
    given = ["--sharpest", "0.5", "--clip-frames", "4", "--topics", "/cam/image_raw"]
    given += ["--debayer", "bilinear"]
    assert sarn([*base, "--run-dir", str(tmp_path / "a"), "--data", str(frames), *given]) == 0
    out = capsys.readouterr().out
    assert (
        "note: --sharpest 0.5 (for videos and bags), --clip-frames 4 (for videos and bags), "
        "--topics /cam/image_raw (for bags), --debayer bilinear (for bags) not used: "
        "no --data is or holds such a recording\n"
    ) in out
    assert "training data: 1 sequence, 5 frames" in out  # the folder was read as before
    assert sarn([*base, "--run-dir", str(tmp_path / "b"), "--data", str(video), *given]) == 0
    out = capsys.readouterr().out
    assert "note: --topics /cam/image_raw (for bags), --debayer bilinear (for bags) not used" in out
    assert sarn([*base, "--run-dir", str(tmp_path / "c"), "--data", str(frames)]) == 0
    assert "not used" not in capsys.readouterr().out
    # a bag held out for validation reads --topics and --debayer: they were named unused
    from test_recordings import grey_frames, write_camera_bag

    write_camera_bag(tmp_path / "held", grey_frames(4))
    held = ["--val-sharp", str(tmp_path / "held"), "--val-frames", "2", "--data", str(frames)]
    assert sarn([*base, "--run-dir", str(tmp_path / "d"), *held, *given]) == 0
    out = capsys.readouterr().out
    assert "--sharpest 0.5 (for videos and bags), --clip-frames 4 (for videos and bags) not" in out
    assert "--topics" not in out and "--debayer" not in out


def test_a_single_image_run_names_the_recurrent_options_it_does_not_use(
    tmp_path: Path, capsys
) -> None:
    """It trains on single frames: --clip-len and --max-stride were taken without a word (and
    recorded in its metadata), and --arch single dropped --lstm-channels unsaid."""
    frames = sharp_video(tmp_path / "frames")
    args = ["train", "--data", str(frames), "--crop", "32", "--steps", "0", "--blur-px", "4"]
    args += ["--device", "cpu", "--clip-len", "3", *TINY_ARGS]
    single = ["--arch", "single", "--run-dir", str(tmp_path / "single"), "--max-stride", "2"]
    assert sarn([*args, *single]) == 0
    note = "note: --lstm-channels 8, --clip-len 3, --max-stride 2 not used: the single-image model"
    assert note in capsys.readouterr().out
    assert sarn([*args, "--run-dir", str(tmp_path / "recurrent")]) == 0
    assert "not used" not in capsys.readouterr().out


def test_a_run_naming_only_its_trainset_validates_at_the_blur_the_set_was_built_with(
    tmp_path: Path, capsys
) -> None:
    """--blur-px not given means the set's blur when a built set is reused: it was the default
    24 px, so a run or a resume naming only a 4 px --trainset validated on another blur than
    it trains on (and a resume chose best.pth anew)."""
    video = sharp_video(tmp_path / "video", n=6, h=96, w=128)
    ts, common = tmp_path / "ts", ["--clip-len", "3", "--crop", "32", "--device", "cpu"]
    build = ["train", "--run-dir", str(tmp_path / "b"), "--trainset", str(ts)]
    build += ["--data", str(video), "--blur-px", "4", "--exposure", "0.5", "--steps", "0"]
    assert sarn([*build, *common, *TINY_ARGS]) == 0
    run = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(ts), "--steps", "1"]
    run += ["--val-sharp", str(video), "--val-scale", "1", "--val-frames", "4", "--ema", "0"]
    assert sarn([*run, *common, *TINY_ARGS]) == 0
    meta = read_checkpoint(tmp_path / "run" / "best.pth")["meta"]
    assert "synthetic blur 4 px" in meta["validation"]["set"]
    same = {"val_sharp": video, "val_scale": 1.0, "val_frames": 4, "blur_px": 4.0}
    same["exposure"] = 0.5  # the set's too: it sets the motion between frames, not the blur
    (seq,) = validation_set(argparse.Namespace(**{**vars(option_defaults()), **same}))
    pairs = zip(seq.blurred, seq.sharp, strict=True)
    expected = np.mean([metrics.psnr(b, s) for b, s in pairs])
    assert meta["validation"]["input_psnr"] == pytest.approx(expected, abs=1e-3)
    capsys.readouterr()
    assert sarn([*run, "--resume", "--steps", "2", *common, *TINY_ARGS]) == 0
    assert "validation set differs" not in capsys.readouterr().out


def test_a_finished_run_resumed_on_another_validation_set_says_whose_its_figure_is(
    tmp_path: Path, capsys
) -> None:
    """A finished run is not validated again: resumed with another --val-blur-px, it printed
    its best figure as if measured on the set now given. Sets are told apart as the run tells
    them, by the input's PSNR, not by how they were named."""
    video = sharp_video(tmp_path / "video", n=6, h=64, w=96)
    run = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--steps", "1"]
    run += ["--val-sharp", str(video), "--val-scale", "1", "--val-frames", "3", "--ema", "0"]
    run += ["--clip-len", "3", "--crop", "32", "--device", "cpu", "--blur-px", "4", *TINY_ARGS]
    assert sarn(run) == 0
    capsys.readouterr()
    assert sarn([*run, "--resume"]) == 0  # the same set: its figure
    out = capsys.readouterr().out
    assert "best val PSNR" in out and "that figure is on" not in out
    assert sarn([*run, "--resume", "--val-blur-px", "8"]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("best val PSNR")]
    there = line.split("(input ")[1].split(" dB")[0]
    assert (
        f"note: that figure is on another validation set than this command's (input {there}" in out
    )
    # the same set named otherwise (a copy of the frames): its figure
    shutil.copytree(video, tmp_path / "copy")
    assert sarn([*run, "--resume", "--val-sharp", str(tmp_path / "copy")]) == 0
    assert "that figure is on" not in capsys.readouterr().out


def test_a_reused_set_gives_its_exposure_only_where_all_its_parts_share_one() -> None:
    from sarn_ros.tools.train import take_set_blur

    args = option_defaults()
    take_set_blur(args, {"synthetic_blur": [{"blur_px": 12.0, "exposure": 0.5}]})
    assert (args.val_blur_px, args.exposure) == (12.0, 0.5)
    assert args.blur_px == option_defaults().blur_px  # not a build option: no conflict with parts
    args = option_defaults()
    parts = [{"blur_px": 12.0, "exposure": 0.5}, {"blur_px": 30.0, "exposure": 0.6}]
    take_set_blur(args, {"synthetic_blur": parts})
    assert (args.val_blur_px, args.exposure) == (30.0, option_defaults().exposure)
    args = option_defaults()
    args.blur_px, args.exposure = 6.0, 0.3  # given: kept, and validation follows --blur-px
    take_set_blur(args, {"synthetic_blur": [{"blur_px": 12.0, "exposure": 0.5}]})
    assert (args.blur_px, args.val_blur_px, args.exposure) == (6.0, None, 0.3)


def test_pairs_are_cut_where_their_own_size_changes_not_their_downscaled_one(
    tmp_path: Path,
) -> None:
    """97x65 and 96x64 frames are both 48x32 at x0.5: cut after the downscale, one piece
    ran across the change, where the node and `sarn eval` restart."""
    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.data.datasets import read_pair_pieces
    from sarn_ros.tools.train import iter_gather

    big, odd = blurry_sequence("a", n=3, h=64, w=96), blurry_sequence("b", n=3, h=65, w=97)
    write_pairs(tmp_path, Sequence("v", [*big.blurred, *odd.blurred], [*big.sharp, *odd.sharp]))
    pieces = read_pair_pieces("v", tmp_path / "v" / "blur", tmp_path / "v" / "sharp", 0.5)
    assert [(p.name, len(p.blurred)) for p in pieces] == [("v#1", 3), ("v#2", 3)]
    assert {f.shape for p in pieces for f in (*p.blurred, *p.sharp)} == {(32, 48, 3)}
    trained = iter_gather([tmp_path], BlurParams(), [0.5], variants=1, still_frames=3)
    assert [s.name for s in trained] == ["v_x0.5#1", "v_x0.5#2"]
