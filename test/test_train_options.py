"""`sarn train`: the option defaults and ranges README.md and the help state, every training
option passed on to the Trainer, and the arithmetic of the 'training data:' count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_training import TINY_ARGS, blurry_sequence, sharp_video

from sarn_ros.tools.cli import main as sarn
from sarn_ros.tools.train import count, option_defaults
from sarn_ros.training import trainer as trainer_module
from sarn_ros.training.trainer import TrainConfig


def test_defaults_are_those_readme_states() -> None:
    """README: clips of `--clip-frames` (default 60); `--linear-light` default 0.5; `--val-scale`
    default x0.5 (of --val-sharp); `--ema 0.999`; `--exposure` defaults to 0.8 as `sarn
    eval`'s; and a run naming only a set "validated at 24 px" (take_set_blur) with the
    default --blur-px."""
    d = option_defaults()
    assert d.clip_frames == 60
    assert d.linear_light == 0.5
    assert d.val_scale is None  # x0.5 for --val-sharp, x1 for --val-pairs (val_scales)
    assert d.ema == 0.999
    assert d.exposure == 0.8
    assert d.blur_px == 24.0
    assert d.val_blur_px is None  # "--val-blur-px (default --blur-px)"
    assert d.scales == [1.0] and d.variants == 1  # one copy, one blur draw per source


def test_the_optimisation_defaults_are_the_trainers() -> None:
    """Without an option the command trains as the Trainer's documented defaults do (the lr is
    checked by test_training): batch, clip length, stride, crop, loss, FFT weight, intervals."""
    d, t = option_defaults(), TrainConfig()
    assert (d.batch, d.clip_len, d.max_stride, d.crop) == (
        t.batch,
        t.clip_len,
        t.max_stride,
        t.crop,
    )
    assert (d.loss, d.fft_weight) == (t.loss, t.fft_weight)
    assert (d.ckpt_minutes, d.val_minutes) == (t.ckpt_minutes, t.val_minutes)
    assert (d.device, d.precision, d.torch_compile) == (t.device, t.precision, t.torch_compile)


class Stop(ValueError):
    pass


def trainer_config(monkeypatch, tmp_path: Path, *extra: str) -> TrainConfig:
    """The TrainConfig `sarn train` hands the Trainer, on a tiny sharp video (no training)."""
    seen = []

    def spy(cfg, *args, **kwargs):
        seen.append(cfg)
        raise Stop("stopped by the test")

    monkeypatch.setattr(trainer_module, "Trainer", spy)
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS, *extra]
    assert sarn(args) == 2
    (cfg,) = seen
    return cfg


def test_every_training_option_is_passed_on_to_the_trainer(monkeypatch, tmp_path: Path) -> None:
    """Each option of the 'optimisation' group is what the run trains with (and what the
    weights' train_config records), not the default."""
    cfg = trainer_config(
        monkeypatch,
        tmp_path,
        *("--batch", "3", "--max-stride", "2", "--fft-weight", "0.2", "--ema", "0.5"),
        *("--ckpt-minutes", "3", "--val-minutes", "7", "--loss", "l1", "--precision", "bf16"),
        *("--torch-compile", "--warmup", "3", "--seed", "5", "--steps", "9", "--lr", "1e-3"),
        *("--max-minutes", "2"),
    )
    assert (cfg.batch, cfg.clip_len, cfg.max_stride, cfg.crop) == (3, 3, 2, 32)
    assert (cfg.fft_weight, cfg.ema_decay, cfg.loss) == (0.2, 0.5, "l1")
    assert (cfg.ckpt_minutes, cfg.val_minutes, cfg.max_minutes) == (3, 7, 2)
    assert (cfg.precision, cfg.torch_compile, cfg.device) == ("bf16", True, "cpu")
    assert (cfg.warmup, cfg.seed, cfg.steps, cfg.lr) == (3, 5, 9, 1e-3)


def test_a_run_without_schedule_options_takes_the_defaults_its_help_names(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    """--steps, --warmup and --seed are None until run(): their defaults are the Trainer's
    (TrainConfig: 20000 steps, 200 warm-up, seed 0), as `--help` names them."""
    cfg = trainer_config(monkeypatch, tmp_path)
    t = TrainConfig()
    assert (cfg.steps, cfg.warmup, cfg.seed) == (t.steps, t.warmup, t.seed)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        sarn(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default {t.steps};" in help_text and f"(default {t.warmup})" in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a downscale of the validation frames: above 1 would upscale them
        (["--val-scale", "2"], "argument --val-scale: must be in (0, 1], got 2"),
        # a share of the clips: none is no training material
        (["--sharpest", "0"], "argument --sharpest: must be in (0, 1], got 0"),
        # decay 1 never moves the average off the initial weights ("0: off")
        (["--ema", "1"], "argument --ema: must be in [0, 1), got 1"),
        # both: --no-jpeg won, the range given unused without a word
        (["--jpeg", "70", "90", "--no-jpeg"], "argument --no-jpeg: not allowed with argument"),
    ],
)
def test_options_out_of_their_range_are_refused(tmp_path: Path, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exc:
        sarn(["train", "--run-dir", str(tmp_path / "r"), *args])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["--jpeg", "100", "100"],  # a quality range 1..100, both ends included
        ["--jpeg", "80", "80"],  # MIN equal to MAX is not "above" it
        ["--object-prob", "1"],  # a chance of 1: every sequence
        ["--clip-frames", "3"],  # "must be at least 3"
        ["--val-scale", "1"],  # no downscale
    ],
)
def test_options_at_the_ends_of_their_range_are_accepted(tmp_path: Path, args) -> None:
    video = sharp_video(tmp_path / "video")
    run = ["train", "--run-dir", str(tmp_path / "r"), "--data", str(video), "--steps", "0"]
    run += ["--trainset", str(tmp_path / "ts"), "--clip-len", "3", "--crop", "32"]
    assert sarn([*run, "--device", "cpu", "--blur-px", "4", *TINY_ARGS, *args]) == 0


def test_a_sequence_of_exactly_the_clip_length_and_crop_is_not_left_out() -> None:
    """'fewer than N frames' and 'smaller than the CxC crop': a sequence of N frames at CxC
    is neither, so it counts as nothing left out."""
    exact = blurry_sequence("exact", n=5, h=32, w=32)
    assert count([exact], [exact], 5, 32, synthetic=True) == "1 sequence, 5 frames"
    short = blurry_sequence("short", n=4, h=32, w=40)
    assert count([exact], [exact, short], 5, 32, synthetic=False) == (
        "1 sequence, 5 frames (1 of the 2 sequences is left out: 1 with fewer than 5 frames)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # torch's pooling takes a C int: 10**11 was a traceback at the first step
        (
            ["--attention-stride", "99999999999"],
            "argument --attention-stride: must be in [1, 1024]",
        ),
        # no error at all: the run built crops for hours
        (["--batch", "99999999999"], "argument --batch: must be in [1, 1024]"),
        # an OverflowError traceback from the blur generator (1e6), wrong sharp frames (1000)
        (["--zoom", "1e6"], "argument --zoom: must be in [0, 1], got 1e6"),
        (["--rotation-deg", "1e9"], "argument --rotation-deg: must be in [0, 180], got 1e9"),
        # 100: every frame enlarged 10,000 times in area, memory gone before the first step
        (["--scales", "1", "100"], "argument --scales: must be in (0, 8], got 100"),
    ],
)
def test_sizes_past_what_torch_or_memory_takes_are_usage_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        sarn(["train", "--run-dir", str(tmp_path / "r"), *args])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_run_refused_for_its_data_says_so_and_leaves_no_run_dir(tmp_path: Path, capsys) -> None:
    """Frames smaller than the crop: an error line without 'error:' nor the options to change,
    and an empty --run-dir left that looked like a started run. A --run-dir that was there
    before is kept."""
    video = sharp_video(tmp_path / "video")  # 60x80 frames, cropped by the synthetic blur
    run = tmp_path / "new" / "run"
    args = ["train", "--data", str(video), "--clip-len", "2", "--crop", "64", "--steps", "1"]
    args += ["--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "sarn train: error: no sequence has 4 frames of at least 64x64 (--clip-len with the "
        "look-ahead, --crop): give smaller ones, or longer or larger --data\n"
    )
    assert not run.exists()
    run.mkdir(parents=True)
    assert sarn([*args, "--run-dir", str(run)]) == 2
    assert run.is_dir()


def tiny_train(tmp_path: Path, video: Path, *extra: str) -> int:
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--batch", "1", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    return sarn([*args, *extra])


def test_a_runs_weights_are_not_replaced_unsaid(tmp_path: Path, capsys) -> None:
    """A run-dir whose last.pt was unreadable, or gone, had its latest.pth and best.pth
    replaced by a new run's without a word, under --resume too."""
    import os

    video = sharp_video(tmp_path / "video")
    assert tiny_train(tmp_path, video, "--steps", "1") == 0
    run = tmp_path / "run"
    first = (run / "latest.pth").read_bytes()
    (run / "last.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert tiny_train(tmp_path, video, "--steps", "1") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sarn train: error: --run-dir {run} holds a last.pt that is not a ")
    assert err.endswith(
        ", beside latest.pth, which a new run would overwrite: give another --run-dir (or move "
        "them away)\n"
    )
    assert (run / "latest.pth").read_bytes() == first
    os.remove(run / "last.pt")
    # trained weights whose last.pt is gone are not replaced at all, under --resume neither
    # (which starts anew without a last.pt: the first call of a loop)
    for resume in ([], ["--resume"]):
        assert tiny_train(tmp_path, video, "--steps", "1", *resume) == 2
        assert "holds latest.pth (step 1) without its last.pt" in capsys.readouterr().err
        assert (run / "latest.pth").read_bytes() == first
    shutil.rmtree(run)  # untrained ones (a --steps 0 call's) are replaced, and that said
    assert tiny_train(tmp_path, video, "--steps", "0") == 0
    untrained = (run / "latest.pth").read_bytes()
    os.remove(run / "last.pt")
    assert tiny_train(tmp_path, video, "--steps", "1", "--resume") == 0  # a loop's first call
    out = capsys.readouterr().out
    assert f"no last.pt in {run}: a new run starts, replacing its latest.pth\n" in out
    # another run's best.pth left beside them: removed as the new run starts, so that an
    # --export of a run that never validates does not ship it
    os.remove(run / "last.pt")
    for name in ("latest.pth", "best.pth"):
        (run / name).write_bytes(untrained)
    assert tiny_train(tmp_path, video, "--steps", "1", "--resume") == 0
    assert "replacing its latest.pth and best.pth\n" in capsys.readouterr().out
    assert not (run / "best.pth").exists()
    assert sarn(["train", "--run-dir", str(run), "--export", str(tmp_path / "x.pth")]) == 2
    assert "none before its first validation" in capsys.readouterr().err
    fresh = tmp_path / "fresh"  # the first call of a --resume loop
    args = ["--run-dir", str(fresh / "run"), "--steps", "1", "--resume"]
    assert tiny_train(fresh, video, *args) == 0
    assert f"no last.pt in {fresh / 'run'}: a new run starts\n" in capsys.readouterr().out


def test_ctrl_c_ends_a_run_with_130_after_its_checkpoint(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The run stopped at a step with its checkpoint, as it should, but exited 0 where every
    other sarn command's Ctrl-C is 130 (its closing line, where the weights are, still comes);
    a Ctrl-C while the set was built left the run-dir."""
    video = sharp_video(tmp_path / "video")
    real = trainer_module.Trainer.train_one

    def interrupted(self) -> float:
        loss = real(self)
        self._stop = True  # what the SIGINT handler sets
        return loss

    monkeypatch.setattr(trainer_module.Trainer, "train_one", interrupted)
    assert tiny_train(tmp_path, video, "--steps", "5") == 130
    assert trainer_module.trained_steps(tmp_path / "run") == 1
    out = capsys.readouterr().out
    assert out.endswith(
        f"no validation set: the weights are in {tmp_path / 'run' / 'latest.pth'}\n"
    )

    def build(*args, **kwargs):
        raise KeyboardInterrupt

    from sarn_ros.tools import train

    monkeypatch.setattr(train, "build_trainset", build)
    ts = ["--trainset", str(tmp_path / "ts"), "--run-dir", str(tmp_path / "new")]
    assert tiny_train(tmp_path, video, "--steps", "5", *ts) == 130
    assert not (tmp_path / "new").exists()


def test_sigterm_during_a_trainset_build_leaves_nothing(tmp_path: Path, monkeypatch, capsys):
    """`timeout`, docker stop or torchrun's agent ended a build at once: its half-built set
    and an empty run folder stayed, where Ctrl-C removed them."""
    import os
    import signal

    from sarn_ros.tools import train

    video = sharp_video(tmp_path / "video")
    save = train.save_sequence

    def killed_after_the_first(seq, folder):
        save(seq, folder)
        assert any(folder.glob("*.npz"))
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train, "save_sequence", killed_after_the_first)
    ts = ["--trainset", str(tmp_path / "ts"), "--run-dir", str(tmp_path / "new")]
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        assert tiny_train(tmp_path, video, "--steps", "5", *ts) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.endswith("sarn train: stopped by SIGTERM\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video"]
    monkeypatch.setattr(train, "save_sequence", save)  # the validation set read before it
    monkeypatch.setattr(train, "validation_set", lambda a: os.kill(os.getpid(), signal.SIGTERM))
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert tiny_train(tmp_path, video, "--steps", "5", *ts, "--val-sharp", str(video)) == 143
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # as it was: not left ours
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video"]


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_before_the_first_step_leaves_no_run(tmp_path: Path, monkeypatch, capsys, sig, code):
    """A stop between the data and the training (building the model, opening TensorBoard: a
    few seconds, more with CUDA) left the new run folder; SIGTERM there ended the run unsaid."""
    import os
    import signal

    from sarn_ros.training import trainer

    video = sharp_video(tmp_path / "video")

    class Stopped(trainer.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            assert any((tmp_path / "run" / "tb").iterdir())  # TensorBoard's file is there
            os.kill(os.getpid(), getattr(signal, sig))

    monkeypatch.setattr(trainer, "Trainer", Stopped)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        assert tiny_train(tmp_path, video, "--steps", "5") == code
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # as it was: not left ours
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert err.endswith("sarn train: stopped by SIGTERM\n" if code == 143 else "interrupted\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video"]


def test_a_stop_while_the_data_is_read_puts_the_handlers_back_at_once(
    tmp_path: Path, monkeypatch, capsys
):
    """The stop handlers stayed installed while the stop was said (the command's frame kept
    alive by the exception), ignoring a second SIGTERM there."""
    import builtins
    import signal

    from sarn_ros.tools import cli, train

    video = sharp_video(tmp_path / "video")
    seen = []

    def said(*args, **kwargs):
        seen.append(signal.getsignal(signal.SIGTERM))
        builtins.print(*args, **kwargs)

    def stopped(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "validation_set", stopped)
    monkeypatch.setattr(cli, "print", said, raising=False)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        assert tiny_train(tmp_path, video, "--steps", "5", "--val-sharp", str(video)) == 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.endswith("interrupted\n")
    assert seen == [signal.SIG_DFL]


def test_a_trainset_to_build_in_the_current_folder_is_refused(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The finished set was renamed onto the current folder, taking it from under the command
    (a traceback at its next read); with the run folder made in it first, the refusal said
    the folder, empty until then, was not a training set."""
    video = sharp_video(tmp_path / "video")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    capsys.readouterr()
    assert sarn(["train", "--run-dir", "run", "--data", str(video), "--trainset", "."]) == 2
    assert capsys.readouterr().err == (
        "sarn train: error: --trainset . is the current folder, which the finished set would "
        "replace: give a folder in it or beside it (--trainset set builds ./set)\n"
    )
    assert not any((tmp_path / "here").iterdir())


def test_only_rank_0_makes_the_run_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    """Under torchrun every rank made --run-dir: when rank 0 refused the run, torchrun
    stopped the others before they removed theirs, and an empty run folder stayed."""
    from sarn_ros.tools import train

    video = sharp_video(tmp_path / "video")
    monkeypatch.setenv("RANK", "1")
    seen = []

    def refused(*args, **kwargs):  # the others stopped here, as torchrun does
        seen.append((tmp_path / "run").exists())
        raise ValueError("stopped with rank 0")

    monkeypatch.setattr(train, "gather", refused)
    assert tiny_train(tmp_path, video, "--steps", "1") == 2
    assert seen == [False] and not (tmp_path / "run").exists()


def test_values_no_run_can_take_are_usage_errors(tmp_path: Path, capsys) -> None:
    """--lr 1e308 was a traceback in Adam; --seed -1 numpy's 'expected non-negative integer',
    which named no option."""
    for option, value, said in (
        ("--lr", "1e308", "argument --lr: must be in (0, 1], got 1e308"),
        ("--seed", "-1", "argument --seed: must be in [0, 4294967295], got -1"),
    ):
        with pytest.raises(SystemExit):
            sarn(["train", "--run-dir", str(tmp_path / "run"), option, value])
        assert said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_export_into_a_folder_or_over_the_runs_own_files_is_refused(tmp_path: Path, capsys):
    """--export <folder> failed in the rename and left a .tmp beside it; --export of the run's
    own last.pt or latest.pth replaced them (the run could not be resumed)."""
    video = sharp_video(tmp_path / "video")
    assert tiny_train(tmp_path, video, "--steps", "1") == 0
    run = tmp_path / "run"
    (tmp_path / "out").mkdir()
    base = ["train", "--run-dir", str(run), "--from", "latest", "--export"]
    capsys.readouterr()
    assert sarn([*base, str(tmp_path / "out")]) == 2
    assert "out is a folder: name the weights file to write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run", "video"]
    for own in ("last.pt", "latest.pth"):
        before = (run / own).read_bytes()
        assert sarn([*base, str(run / own)]) == 2
        assert "is one of the run's own files" in capsys.readouterr().err
        assert (run / own).read_bytes() == before
    # PyTorch weights named as a graph: the node and every tool failed on them in onnxruntime
    assert sarn([*base, str(tmp_path / "w.onnx")]) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --export {tmp_path / 'w.onnx'}: the node and the sarn tools read a "
        ".onnx file as an ONNX graph; name the weights .pth (`sarn export` makes the graph from "
        "them)\n"
    )
    assert not (tmp_path / "w.onnx").exists()
    by_name = tmp_path / "gone" / ".." / "w.pth"  # where the kernel finds it: no `gone` made
    assert sarn([*base, str(by_name)]) == 0 and (tmp_path / "w.pth").is_file()
    assert not (tmp_path / "gone").exists()


def test_a_training_set_of_other_arrays_or_a_broken_description_is_one_error_line(
    tmp_path: Path, capsys
) -> None:
    """A sequence of 1-channel frames failed at the first step with the network's traceback;
    a corrupt trainset.json was json's own message, naming no file."""
    import numpy as np

    video = sharp_video(tmp_path / "video")
    ts = tmp_path / "ts"
    assert tiny_train(tmp_path, video, "--trainset", str(ts), "--steps", "0") == 0
    (npz,) = ts.rglob("*.npz")
    with np.load(npz) as z:
        arrays = {k: z[k][..., :1] for k in ("blurred", "sharp")}
    np.savez(npz, **arrays)
    capsys.readouterr()
    again = ["--trainset", str(ts), "--run-dir"]
    assert tiny_train(tmp_path, video, *again, str(tmp_path / "r2")) == 2
    err = capsys.readouterr().err
    assert f"{npz} holds uint8 " in err and "is uint8 (frames, height, width, 3) twice" in err
    (desc,) = ts.rglob("trainset.json")
    desc.write_text("{oops")
    assert tiny_train(tmp_path, video, *again, str(tmp_path / "r3")) == 2
    assert f"{desc} is not a set's description (" in capsys.readouterr().err
    # JSON of another shape (by hand, another tool) was a KeyError traceback, the run's
    # folder left behind
    blur = {"blur_px": 4}  # no exposure
    for text in (
        "{}",
        "[]",
        json.dumps({"sources": [], "real_pairs": [], "synthetic_blur": [blur]}),
    ):
        desc.write_text(text)
        assert tiny_train(tmp_path, video, *again, str(tmp_path / "r4")) == 2
        assert f"{desc} is not a set's description (its fields" in capsys.readouterr().err
        assert not (tmp_path / "r4").exists()


def test_a_resume_names_the_settings_this_leg_trains_with_that_the_run_did_not(
    tmp_path: Path, capsys
) -> None:
    """Loss, EMA, crop, batch and clip length changed on --resume were taken without a word,
    and the weights' metadata then described the whole run by the last leg's."""
    video = sharp_video(tmp_path / "video")
    assert tiny_train(tmp_path, video, "--steps", "1") == 0
    capsys.readouterr()
    assert tiny_train(tmp_path, video, "--steps", "2", "--resume") == 0
    assert "this run trains with" not in capsys.readouterr().out  # the same command again
    extra = ["--steps", "3", "--resume", "--loss", "l1", "--ema", "0", "--crop", "40"]
    assert tiny_train(tmp_path, video, *extra) == 0
    assert (
        "note: from step 2 this run trains with --loss l1 (the run's charbonnier), --ema 0 (the "
        "run's 0.999), --crop 40 (the run's 32); give the run's values to keep them\n"
    ) in capsys.readouterr().out
    other = sharp_video(tmp_path / "other")  # the metadata named only the last leg's data
    assert tiny_train(tmp_path, other, "--steps", "4", "--resume", "--loss", "l1") == 0
    assert (
        f"note: from step 3 this run trains with --ema 0.999 (the run's 0), --crop 32 (the "
        f"run's 40), data from {other.resolve()} (the run's: {video.resolve()}); give the "
        "run's values to keep them\n"
    ) in capsys.readouterr().out


def test_data_beside_a_set_without_its_description_is_named_unused(
    tmp_path: Path, capsys, monkeypatch
):
    """A set with no trainset.json (built before sarn_ros wrote one, or linked together) was
    trained on while the --data and blur options given were ignored without a word; a
    --run-dir that is a file was '[Errno 17] File exists'."""
    video = sharp_video(tmp_path / "video")
    ts = tmp_path / "ts"
    assert tiny_train(tmp_path, video, "--trainset", str(ts), "--steps", "0") == 0
    (ts / "trainset.json").unlink()
    capsys.readouterr()
    args = ["--trainset", str(ts), "--steps", "1", "--run-dir", str(tmp_path / "r2")]
    assert tiny_train(tmp_path, video, *args) == 0
    assert f"note: --data not used: --trainset {ts} is built already (with no trainset.json" in (
        capsys.readouterr().out
    )
    # a set without trainset.json was recorded as typed: resumed from elsewhere, other data
    monkeypatch.chdir(tmp_path)
    args = ["--run-dir", str(tmp_path / "r4"), "--steps", "1"]
    assert tiny_train(tmp_path, video, "--trainset", "ts", *args) == 0
    monkeypatch.chdir(ts)
    assert (
        tiny_train(tmp_path, video, "--trainset", str(ts), *args, "--resume", "--steps", "2") == 0
    )
    assert "this run trains with" not in capsys.readouterr().out
    (tmp_path / "file").write_text("")
    assert tiny_train(tmp_path, video, "--run-dir", str(tmp_path / "file")) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --run-dir {tmp_path / 'file'} is a file, not a folder\n"
    )
    under = tmp_path / "file" / "run"  # it said "[Errno 20] Not a directory"
    assert tiny_train(tmp_path, video, "--run-dir", str(under)) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --run-dir {under}: {tmp_path / 'file'} is a file, not a folder\n"
    )
    args = ["--trainset", str(under), "--run-dir", str(tmp_path / "r3")]  # "[Errno 20]" too
    assert tiny_train(tmp_path, video, *args) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --trainset {under}: {tmp_path / 'file'} is a file, not a folder\n"
    )
    assert not (tmp_path / "r3").exists()


def test_a_set_linked_together_from_built_sets_takes_their_descriptions(tmp_path: Path):
    """weights/README.md's mixes are folders of links to built sets' sequences, with no
    trainset.json of their own: a run on one validated at the default 24 px, not at the
    sets' blur, and its weights said the set was built before trainset.json."""
    import argparse

    from sarn_ros.tools.train import read_description, take_set_blur

    video = sharp_video(tmp_path / "video")
    for px in ("4", "6"):
        args = ["--trainset", str(tmp_path / f"ts{px}"), "--blur-px", px, "--steps", "0"]
        assert tiny_train(tmp_path, video, *args, "--run-dir", str(tmp_path / f"r{px}")) == 0
    mix = tmp_path / "mix"
    mix.mkdir()
    for px in ("4", "6"):
        first = sorted((tmp_path / f"ts{px}").glob("*.npz"))[0]
        (mix / f"{px}_{first.name}").symlink_to(first)
    desc = read_description(mix)
    assert desc is not None and sorted(b["blur_px"] for b in desc["synthetic_blur"]) == [4, 6]
    assert len(desc["sources"]) == 1  # the one video both were built from, once
    args = argparse.Namespace(**vars(option_defaults()))
    take_set_blur(args, desc)
    assert args.val_blur_px == 6
    (mix / "a.npz").symlink_to(mix / "b.npz")  # a loop (resolve raised): the loader's error
    (mix / "b.npz").symlink_to(mix / "a.npz")
    assert read_description(mix)["synthetic_blur"] == desc["synthetic_blur"]


def test_a_source_given_twice_is_trained_on_once_and_repeated_options_gather(
    tmp_path: Path, capsys
) -> None:
    """`--data a --data b` kept only b (argparse's store), without a word; `--data v ./v`
    built and trained on v twice, and the count said 2 sequences."""
    video = sharp_video(tmp_path / "video")
    other = sharp_video(tmp_path / "other")
    assert tiny_train(tmp_path, video, "--data", str(other), "--steps", "0") == 0
    out = capsys.readouterr().out
    assert "training data: 2 sequences, 10 frames" in out
    # --steps 0 counts the data; its weights are not to be taken for a model
    assert out.endswith(
        f"note: no step trained: {tmp_path / 'run' / 'latest.pth'} holds untrained weights\n"
    )
    args = ["--data", f"{tmp_path}/./video", "--steps", "0", "--run-dir", str(tmp_path / "r2")]
    assert tiny_train(tmp_path, video, *args) == 0
    assert "training data: 1 sequence, 5 frames" in capsys.readouterr().out


def test_validation_frames_too_small_to_rank_checkpoints_are_refused(tmp_path: Path, capsys):
    """--val-scale 0.01 validated on 1x1 px frames, and best.pth was chosen on them."""
    video = sharp_video(tmp_path / "video")  # 60x80, 52x72 once the camera's move is cut off
    val = ["--val-sharp", str(video), "--val-frames", "3", "--steps", "0"]
    assert tiny_train(tmp_path, video, *val, "--val-scale", "0.25") == 2
    assert capsys.readouterr().err == (
        "sarn train: error: the validation frames of video are 16x11 at x0.25: "
        "below 16 px a side their PSNR ranks no checkpoint; give a larger --val-scale\n"
    )
    assert not (tmp_path / "run").exists()
    assert tiny_train(tmp_path, video, *val, "--val-scale", "0.5") == 0  # 36x26


def test_held_out_pairs_without_blur_are_refused(tmp_path: Path, capsys) -> None:
    """Blurred frames equal to the sharp ones (an 8-bit copy of 16-bit frames) scored the
    input 120 dB, with no word: the checkpoint that changed least was best.pth. Refused, as
    frames too small to rank one are."""
    video = sharp_video(tmp_path / "video")
    seq = tmp_path / "held" / "seq"
    for side in ("blur", "sharp"):
        shutil.copytree(video, seq / side)
    val = ["--val-pairs", str(seq.parent), "--val-frames", "3", "--steps", "0"]
    assert tiny_train(tmp_path, video, *val) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --val-pairs {seq.parent}: seq's blurred frames are its sharp ones "
        "(as read, 8-bit RGB): their PSNR ranks no checkpoint; hold out pairs with blur\n"
    )
    import cv2

    one = sorted((seq / "blur").iterdir())[1]  # blurred: one frame is enough
    cv2.imwrite(str(one), cv2.blur(cv2.imread(str(one)), (5, 5)))
    assert tiny_train(tmp_path, video, *val) == 0
    assert "ranks no checkpoint" not in capsys.readouterr().err


def test_a_folder_of_pairs_held_out_as_sharp_is_named(tmp_path: Path, capsys) -> None:
    """--val-sharp on a folder of blurred/sharp pairs validated on its blurred frames under
    more blur, without a word (--val-pairs reads the pairs)."""
    video = sharp_video(tmp_path / "video")
    seq = tmp_path / "held" / "seq"
    for side in ("blur", "sharp"):
        shutil.copytree(video, seq / side)
    val = ["--val-sharp", str(seq), "--val-frames", "3", "--val-scale", "1", "--steps", "0"]
    assert tiny_train(tmp_path, video, *val) == 0
    assert (
        f"note: --val-sharp {seq} holds blurred/sharp pairs: its blurred frames are read as "
        "sharp ones under synthetic blur, beside its sharp frames; give it to --val-pairs to "
        "use the real pairs"
    ) in capsys.readouterr().out
    # a folder of such sequences has no frames a sharp read reaches: it said it would read
    # them, then "no images or rosbag2"
    val[1] = str(seq.parent)
    assert tiny_train(tmp_path, video, *val) == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --val-sharp {seq.parent} holds blurred/sharp pairs and no sharp "
        "frames of its own: give it to --val-pairs\n"
    )


def test_a_warmup_as_long_as_the_run_is_named(tmp_path: Path, capsys) -> None:
    """The default 200-step warm-up on a 5-step run raised the rate all run, to 2.5 % of
    --lr, with no cosine phase and no word."""
    video = sharp_video(tmp_path / "video")
    assert tiny_train(tmp_path, video, "--steps", "2") == 0
    assert (
        "note: --warmup 200 is longer than --steps 2: the learning rate rises all run and "
        "never reaches --lr 0.0004; give a shorter --warmup\n"
    ) in capsys.readouterr().out
    assert (
        tiny_train(
            tmp_path, video, "--steps", "2", "--warmup", "2", "--run-dir", str(tmp_path / "r")
        )
        == 0
    )
    assert "--warmup" not in capsys.readouterr().out  # its last step reaches --lr


def test_loose_images_beside_pairs_are_named_as_such(tmp_path: Path, capsys) -> None:
    """An image beside a folder of pairs' sequences is not read, and cannot be given as its
    own --data: named apart from the sub-folders left out."""
    video = sharp_video(tmp_path / "video")
    root = tmp_path / "pairs"
    for side in ("blur", "sharp"):
        shutil.copytree(video, root / "seq" / side)
    shutil.copy(video / "000.png", root / "cover.png")
    assert tiny_train(tmp_path, root, "--steps", "0") == 0
    out = capsys.readouterr().out
    assert (
        f"note: {root}: not used: cover.png (images beside the sequences of a folder of pairs)"
        in out
    )


def test_a_new_run_keeps_the_weights_it_starts_from(tmp_path: Path, capsys) -> None:
    """--init run/best.pth into that run-dir without its last.pt: the new run's clean-up
    removed the weights it had just loaded, and its metadata named a file gone."""
    video = sharp_video(tmp_path / "video")
    assert tiny_train(tmp_path, video, "--steps", "1", "--warmup", "1") == 0
    run = tmp_path / "run"
    (run / "last.pt").unlink()
    shutil.copy(run / "latest.pth", run / "best.pth")  # as a validated run leaves it
    start = (run / "best.pth").read_bytes()
    init = ["--init", str(run / "best.pth"), "--steps", "1", "--warmup", "1"]
    assert tiny_train(tmp_path, video, *init) == 0
    assert (run / "best.pth").read_bytes() == start  # no validation: the start is the best
    # and frames that are small at --val-scale 1 are not fixed by a larger one
    val = ["--val-sharp", str(video), "--val-scale", "1", "--run-dir", str(tmp_path / "r2")]
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for i in range(3):
        shutil.copy(video / f"{i:03d}.png", tiny / f"{i:03d}.png")
    import cv2

    for f in tiny.iterdir():
        cv2.imwrite(str(f), cv2.resize(cv2.imread(str(f)), (12, 10)))
    val[1] = str(tiny)
    assert tiny_train(tmp_path, video, *val, "--steps", "0") == 2
    assert capsys.readouterr().err.endswith("give larger held-out frames\n")


def test_a_video_given_itself_and_in_its_folder_is_trained_on_once(tmp_path: Path, capsys):
    """`--data drives drives/run.mp4` built and trained on each clip twice, with the same blur
    (6 sequences for 3), and no word."""
    from test_training import sharp_mp4

    (tmp_path / "drives").mkdir()
    video = sharp_mp4(tmp_path / "drives" / "run.mp4")
    args = ["--data", str(video), "--clip-frames", "4", "--clip-len", "1", "--steps", "0"]
    assert tiny_train(tmp_path, tmp_path / "drives", *args) == 0
    out = capsys.readouterr().out
    assert "training data: 3 sequences, 12 frames" in out
    assert f"note: --data {video} repeats {video} of an earlier --data: read once\n" in out
    # a folder of pairs beside a link to one of its sequences: that sequence once; and a
    # video beside the pairs, named as not read, is read when given as its own --data
    frames = sharp_video(tmp_path / "frames")
    pairs = tmp_path / "pairs"
    for side in ("blur", "sharp"):
        shutil.copytree(frames, pairs / "seq" / side)
    shutil.copy(video, pairs / "extra.mp4")
    (tmp_path / "picked").mkdir()
    (tmp_path / "picked" / "seq").symlink_to(pairs / "seq")
    args = ["--data", str(tmp_path / "picked"), str(pairs / "extra.mp4"), "--steps", "0"]
    args += ["--clip-frames", "4", "--clip-len", "1", "--run-dir", str(tmp_path / "r2")]
    assert tiny_train(tmp_path, pairs, *args) == 0
    out = capsys.readouterr().out
    assert f"note: --data {tmp_path / 'picked'} repeats {tmp_path / 'picked' / 'seq'} of an" in out
    assert "training data: 4 sequences, 17 frames" in out  # seq once, extra.mp4's 3 clips
    # a bag in a folder given, and again as its one .db3 file: one recording, read once
    from test_recordings import grey_frames, write_camera_bag

    write_camera_bag(tmp_path / "bags" / "b1", grey_frames(8))
    (db3,) = (tmp_path / "bags" / "b1").glob("*.db3")
    args = ["--data", str(db3), "--clip-frames", "4", "--clip-len", "1", "--steps", "0"]
    args += ["--run-dir", str(tmp_path / "r3")]
    assert tiny_train(tmp_path, tmp_path / "bags", *args) == 0
    out = capsys.readouterr().out
    assert f"note: --data {db3} repeats {db3} of an earlier --data: read once\n" in out
    assert "training data: 2 sequences, 8 frames" in out
    # a part of a bag split by size, given after the bag: read within it (it was read twice)
    shutil.copy(db3, db3.with_name("b1_1.db3"))
    args[-1] = str(tmp_path / "r4")
    assert tiny_train(tmp_path, tmp_path / "bags", *args) == 0
    out = capsys.readouterr().out
    assert f"note: --data {db3} repeats {db3} of an earlier --data: read once\n" in out
    assert "training data: 2 sequences, 8 frames" in out
    # ... and given before the bag: read within it all the same (it was read twice)
    args[1], args[-1] = str(tmp_path / "bags"), str(tmp_path / "r5")
    assert tiny_train(tmp_path, db3, *args) == 0
    out = capsys.readouterr().out
    assert f"note: --data {db3} repeats {db3} of --data {tmp_path / 'bags'}: read once\n" in out
    assert "training data: 2 sequences, 8 frames" in out


def test_a_data_file_that_is_no_recording_is_refused_before_any_is_built(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """`--data GOPRO_Large cover.png` built every source before it (hours), then refused the
    image as an "unknown input type"."""
    from sarn_ros.tools import train as train_module

    built = []
    monkeypatch.setattr(train_module, "gather", lambda *a, **k: built.append(a) or [])
    video = sharp_video(tmp_path / "frames")
    still = next(video.iterdir())
    assert tiny_train(tmp_path, video, "--data", str(still), "--steps", "0") == 2
    said = capsys.readouterr().err
    assert said.startswith(
        f"sarn train: error: --data: unknown input type: {still} (video, image folder or rosbag2 "
        "expected; a video by its extension: .3g2, .3gp, "
    )
    bag = tmp_path / "run.DB3"  # the reader takes .db3 and .mcap as spelled
    bag.write_bytes(b"")
    assert tiny_train(tmp_path, video, "--data", str(bag), "--steps", "0") == 2
    assert f"--data: unknown input type: {bag}" in capsys.readouterr().err
    assert built == [] and not (tmp_path / "run").exists()


def test_a_refused_validation_set_comes_without_notes_on_it(tmp_path: Path, capsys) -> None:
    """`--data cal --val-pairs cal` noted that the two hold the same recordings, then refused
    cal as no folder of pairs: the note read as a second fault."""
    video = sharp_video(tmp_path / "frames")
    assert tiny_train(tmp_path, video, "--val-pairs", str(video), "--steps", "0") == 2
    out, err = capsys.readouterr()
    assert err == f"sarn train: error: --val-pairs: no blurred/sharp sequence found under {video}\n"
    assert "hold the same recordings" not in out


def test_a_pair_sequence_that_changes_size_is_trained_on_in_pieces(tmp_path: Path) -> None:
    """A camera reconfigured mid-sequence: the pairs were counted as training data, then the
    run was refused ("frames of several sizes"), where a folder of frames is cut into pieces."""
    import cv2
    import numpy as np

    from sarn_ros.data.blur_synth import BlurParams
    from sarn_ros.tools.train import gather

    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 64)] * 4 + [(60, 80)] * 4):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for side in ("blur", "sharp"):
            (tmp_path / "pairs" / "q" / side).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "pairs" / "q" / side / f"{i:03d}.png"), img)
    seqs = gather([tmp_path / "pairs"], BlurParams(), [1.0], 1, 6)
    assert [(s.name, len(s.blurred), s.blurred[0].shape) for s in seqs] == [
        ("q_x1#1", 4, (48, 64, 3)),
        ("q_x1#2", 4, (60, 80, 3)),
    ]


def test_read_within_keeps_the_widest_source_then_the_first() -> None:
    """Each source read once, whatever the --data order; two different ones both kept."""
    from sarn_ros.tools.train import read_within

    a, b, c = Path("/r/a.db3"), Path("/r/b.db3"), Path("/v/c.mp4")
    units = [[{a}], [{a, b}, {c}], [{c}], [{a}]]
    assert read_within(units) == [[1], [None, None], [1], [1]]
    assert read_within([[{a}, {a}]]) == [[None, 0]]  # a link beside its target: one folder


@pytest.mark.parametrize("link", ["s.mp4", "current"])
def test_a_link_beside_its_video_is_read_once_as_that_video(
    tmp_path: Path, capsys, link: str
) -> None:
    """A link that is a recording (s.mp4) is noted as repeating the video: the note said the
    folder repeated it "of --data <the folder itself>". One that is none (`current`, listed
    first) took what the video reads, which was then left out as read within it and the link
    skipped as no recording: the video read by none."""
    from test_training import sharp_mp4

    (tmp_path / "vids").mkdir()
    video = sharp_mp4(tmp_path / "vids" / "run.mp4")
    (tmp_path / "vids" / link).symlink_to(video)
    args = ["--clip-frames", "4", "--clip-len", "1", "--steps", "0"]
    assert tiny_train(tmp_path, tmp_path / "vids", *args) == 0
    out = capsys.readouterr().out
    note = f"note: --data {tmp_path / 'vids'} repeats {tmp_path / 'vids' / link} of another"
    assert (note in out) == ("repeats" in out) == (link == "s.mp4")
    assert "training data: 3 sequences, 12 frames" in out


def test_a_run_dir_or_a_set_in_use_by_another_command_is_refused(tmp_path: Path, capsys) -> None:
    """A second `sarn train --resume` on a running run's --run-dir trained from its
    checkpoints and wrote over them; a second build of one --trainset removed the first's
    half-built folder and failed on the rename. The folders are locked while in use (here by
    this process, as another would)."""
    from sarn_ros.tools.options import folder_lock

    video = sharp_video(tmp_path / "video")
    run = tmp_path / "run"
    assert tiny_train(tmp_path, video, "--steps", "1") == 0
    capsys.readouterr()
    with folder_lock(run) as ours:
        assert ours and tiny_train(tmp_path, video, "--steps", "2", "--resume") == 2
    assert capsys.readouterr().err == (
        f"sarn train: error: --run-dir {run} is in use by another sarn train: wait for it to "
        "end (then --resume continues the run), or give another --run-dir\n"
    )
    assert tiny_train(tmp_path, video, "--steps", "2", "--resume") == 0  # released
    partial = tmp_path / ".ts.partial"
    partial.mkdir()
    args = ["--trainset", str(tmp_path / "ts"), "--run-dir", str(tmp_path / "r2"), "--steps", "0"]
    with folder_lock(partial):
        assert tiny_train(tmp_path, video, *args) == 2
    assert capsys.readouterr().err.endswith(
        f"--trainset {tmp_path / 'ts'} is being built by another sarn train: wait for it to "
        "end, then give it again to train on the set\n"
    )
    assert partial.is_dir() and not (tmp_path / "r2").exists()
    partial.rmdir()  # a link there (the name is the build's): its target is left alone
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("mine")
    partial.symlink_to(tmp_path / "kept")
    assert tiny_train(tmp_path, video, *args) == 0 and (tmp_path / "ts").is_dir()
    assert not (tmp_path / "ts").is_symlink() and (tmp_path / "kept" / "mine.txt").exists()
