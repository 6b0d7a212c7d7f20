"""`sarn train`: what its printed lines and the weights' metadata say, against README.md and
the labels they carry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from test_training import (
    TINY_ARGS,
    blurry_sequence,
    config,
    scripted_validation,
    sharp_mp4,
    sharp_video,
)

from sarn_ros.checkpoint import load_model
from sarn_ros.data.blur_synth import BlurParams
from sarn_ros.tools.cli import main as sarn
from sarn_ros.tools.train import describe_sources, describe_validation
from sarn_ros.training.trainer import Trainer


def test_the_export_line_names_the_validation_and_input_psnr_as_labelled(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """'val PSNR X dB (input Y dB)': X is the model's figure, Y the blurred input's, as the
    weights' metadata records them (val_psnr, input_psnr)."""
    scripted_validation(monkeypatch, [(23.25, 20.5)] * 4)
    val = [blurry_sequence("val", n=3, seed=9)]
    Trainer(config(steps=1), [blurry_sequence()], val, tmp_path / "run").run(log=lambda _m: None)
    out = tmp_path / "w.pth"
    assert sarn(["train", "--run-dir", str(tmp_path / "run"), "--export", str(out)]) == 0
    v = load_model(out).meta["validation"]
    assert (v["val_psnr"], v["input_psnr"]) == (23.25, 20.5)
    assert f"{out}: step 1, val PSNR 23.25 dB (input 20.50 dB)" in capsys.readouterr().out


def test_the_closing_line_reports_best_pth_as_the_export_line_does(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """The closing 'best val PSNR X dB at step N (input Y dB) -> best.pth' names best.pth's
    figures: the model's as 'val PSNR', the blurred input's as 'input', to the hundredth as
    `--export` of the same file prints them."""
    scripted_validation(monkeypatch, [(23.456, 21.234)] * 4)
    video = sharp_video(tmp_path / "video", n=5)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "4"]
    args += ["--val-sharp", str(video), "--val-frames", "3", "--steps", "1", "--batch", "1"]
    assert sarn([*args, "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    closing = capsys.readouterr().out.strip().splitlines()[-1]
    assert closing == (
        f"best val PSNR 23.46 dB at step 1 (input 21.23 dB) -> {tmp_path / 'run' / 'best.pth'}"
    )
    assert sarn(["train", "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "w")]) == 0
    assert "val PSNR 23.46 dB (input 21.23 dB)" in capsys.readouterr().out


def test_a_recurrent_validation_names_its_look_ahead(tmp_path: Path, capsys) -> None:
    """The recurrent model validates at look-ahead 2; unsaid, `sarn eval --future-frames 0`
    on the same set gave another figure than the run's (0.05 dB here) with no note."""
    val = [blurry_sequence("val", n=3, seed=9)]
    for arch in ("recurrent", "single"):
        said: list[str] = []
        run = tmp_path / arch
        Trainer(config(arch=arch, steps=1), [blurry_sequence()], val, run).run(log=said.append)
        ahead = ", look-ahead 2)" if arch == "recurrent" else " dB)"
        assert said[-1].startswith("step 1: val PSNR ") and said[-1].endswith(ahead)
        assert load_model(run / "best.pth").meta["validation"].get("future_frames") == (
            2 if arch == "recurrent" else None
        )
        out = tmp_path / f"{arch}.pth"
        assert sarn(["train", "--run-dir", str(run), "--export", str(out)]) == 0
        assert capsys.readouterr().out.strip().endswith(ahead)


def validation_args(tmp_path: Path, **kw) -> argparse.Namespace:
    base = {"val_sharp": tmp_path, "val_pairs": [], "val_scale": 0.5, "exposure": 0.8}
    return argparse.Namespace(**{**base, "blur_px": 24.0, "val_blur_px": None, **kw})


def test_the_validation_set_names_its_blur_at_the_scale_it_is_measured_at(tmp_path: Path) -> None:
    """README: the default validation is 'half resolution; 24 px blur at full resolution', which
    README and weights/README.md name 'synthetic blur 12 px at x0.5': the px named beside the
    x0.5 are those of the frames validated, --val-blur-px (or --blur-px) times --val-scale;
    the options' own (and sarn eval's --blur-px and JSON's) beside them: 12 read as another
    blur than the JSON's 24."""
    val = [blurry_sequence("v", n=3)]
    text = describe_validation(validation_args(tmp_path), val)
    want = f"{tmp_path}, synthetic blur 12 px (24 px at full resolution), exposure 0.8 (seed "
    want += "1234): 1 sequence, 3 frames"
    assert text == f"{want} at x0.5"
    text = describe_validation(validation_args(tmp_path, val_blur_px=16.0, blur_px=4.0), val)
    assert "synthetic blur 8 px (16 px at full resolution), exposure 0.8 (seed 1234)" in text
    assert text.endswith(" at x0.5")
    text = describe_validation(validation_args(tmp_path, val_scale=1.0), val)
    assert "synthetic blur 24 px, exposure 0.8 (seed 1234)" in text and text.endswith(" at x1")


def test_a_run_validated_at_half_scale_records_the_blur_of_its_frames(tmp_path: Path) -> None:
    """The same through the command: --blur-px 8 at the default --val-scale 0.5 is 4 px on the
    frames validated, and the exported weights' metadata says so."""
    video = sharp_video(tmp_path / "video", n=5, h=96, w=128)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(video), "--blur-px", "8"]
    args += ["--val-sharp", str(video), "--val-frames", "3", "--steps", "1", "--batch", "1"]
    assert sarn([*args, "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]) == 0
    v = load_model(tmp_path / "run" / "best.pth").meta["validation"]
    assert (
        v["set"]
        == f"{video}, synthetic blur 4 px (8 px at full resolution), exposure 0.8 (seed 1234): "
        "1 sequence, 3 frames at x0.5"
    )


def test_a_trainset_records_the_build_options_it_was_made_with(tmp_path: Path) -> None:
    """trainset.json records 'the share of clips used' and how the sources were read: the
    --sharpest, --variants and --still-frames given, not the defaults."""
    desc = describe_sources([tmp_path], BlurParams(), [1.0], 3, 7, sharpest=0.4)
    assert (desc["variants"], desc["still_frames"], desc["sharpest"]) == (3, 7, 0.4)
    assert json.loads(json.dumps(desc))["variants"] == 3  # as trainset.json holds it


def test_a_reused_trainset_refuses_variants_and_still_frames_it_was_not_built_with(
    tmp_path: Path, capsys
) -> None:
    """README: a run whose build options differ from those the set was built with (its
    trainset.json) stops and names them: --variants and --still-frames are build options."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--blur-px", "4", "--steps", "0", "--clip-len", "3"]
    args += ["--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn([*args, "--variants", "2", "--still-frames", "4"]) == 0
    capsys.readouterr()
    assert sarn(args) == 2  # the defaults, 1 and 6, compared as --data is given
    err = capsys.readouterr().err
    assert "--variants 1 (the set: 2)" in err and "--still-frames 6 (the set: 4)" in err
    assert sarn([*args, "--variants", "2", "--still-frames", "4"]) == 0


def test_the_sharpest_line_is_recorded_only_for_a_share_below_all_clips(tmp_path: Path) -> None:
    """'recordings: the sharpest S of their clips' says a share was chosen: by default
    (--sharpest 1) every clip of a video is trained on (README), and no such line is written;
    with --sharpest 0.5 it is."""
    video = sharp_mp4(tmp_path / "drive.mp4")
    base = ["--data", str(video), "--clip-frames", "4", "--clip-len", "1", "--crop", "32"]
    base += ["--steps", "0", "--blur-px", "4", "--device", "cpu", *TINY_ARGS]

    def data_lines(run: str, *extra: str) -> list[str]:
        assert sarn(["train", "--run-dir", str(tmp_path / run), *base, *extra]) == 0
        return load_model(tmp_path / run / "latest.pth").meta["data"]

    assert not [line for line in data_lines("all") if line.startswith("recordings:")]
    assert "recordings: the sharpest 0.5 of their clips" in data_lines("half", "--sharpest", "0.5")


def test_a_missing_val_pairs_folder_is_refused_before_anything_is_built(
    tmp_path: Path, capsys
) -> None:
    """README: a --data path that does not exist is an error before anything is built; a
    --val-pairs folder is checked with it (hours of a GoPro build would otherwise precede it)."""
    video = sharp_video(tmp_path / "video")
    args = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    args += ["--data", str(video), "--val-pairs", str(tmp_path / "nope"), "--steps", "0"]
    assert sarn([*args, "--device", "cpu", *TINY_ARGS]) == 2
    assert f"no such file or folder: {tmp_path / 'nope'}" in capsys.readouterr().err
    assert not (tmp_path / "ts").exists()


def test_real_pairs_get_no_synthetic_blur_line_and_frames_get_no_real_pairs_line(
    tmp_path: Path,
) -> None:
    """describe_sources: 'real pairs get none' (no synthetic blur); sharp frames get theirs and
    are no real pairs."""
    video = sharp_video(tmp_path / "video")
    desc = describe_sources([video], BlurParams(blur_px=4.0), [1.0], 1, 6)
    assert desc["real_pairs"] == [] and desc["synthetic_blur"] == [BlurParams(4.0).to_dict()]


def test_real_pairs_too_small_for_the_crop_are_not_said_cropped_by_synthetic_blur(
    tmp_path: Path, capsys
) -> None:
    """README: a still loses 8-30 % a side to its synthetic camera move; real pairs get no
    synthetic blur, so a pair too small for the crop is named at its own size, with no word of
    the generator's cropping."""
    from test_training import write_pairs

    write_pairs(tmp_path / "train", blurry_sequence("big", n=5, h=48, w=64, seed=1))
    write_pairs(tmp_path / "train", blurry_sequence("small", n=5, h=24, w=40, seed=2))
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(tmp_path / "train")]
    args += ["--steps", "0", "--clip-len", "3", "--crop", "32", "--device", "cpu", *TINY_ARGS]
    assert sarn(args) == 0
    out = capsys.readouterr().out
    assert (
        "training data: 1 sequence, 5 frames (1 of the 2 sequences is left out: 1 smaller than "
        "the 32x32 crop, the largest 40x24)\n"
    ) in out


def test_the_weights_metadata_names_six_sizes_in_numeric_order_and_counts_the_rest() -> None:
    """A set of stills has a size per image: the list stopped at 6 without saying so, and
    sorted as text (1280x720 before 640x480)."""
    from sarn_ros.data.datasets import Sequence
    from sarn_ros.tools.train import summarise

    def seq(w: int, h: int) -> Sequence:
        frames = [np.zeros((h, w, 3), np.uint8)]
        return Sequence(f"{w}x{h}", frames, frames)

    args = argparse.Namespace(trainset="ts")
    few = [seq(1280, 720), seq(640, 480), seq(640, 360), seq(640, 480)]
    assert summarise(args, None, few, "3 sequences")[1] == (
        "3 sequences, sizes 640x360, 640x480, 1280x720"
    )
    many = [seq(8 * k, 8) for k in range(9, 0, -1)]
    assert summarise(args, None, many, "9 stills")[1] == (
        "9 stills, sizes 8x8, 16x8, 24x8, 32x8, 40x8, 48x8 and 3 more"
    )
