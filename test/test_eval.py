"""`sarn eval` end to end on tiny data, through the streaming engine."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sarn_ros import evaluation, metrics
from sarn_ros.data.datasets import read_pair
from sarn_ros.engine import StreamDeblurrer
from sarn_ros.ensemble import SelfEnsembleDeblurrer
from sarn_ros.evaluation import deblur_sequence
from sarn_ros.tools import cli
from sarn_ros.weights_path import resolve_weights


def run_sarn(*argv: str) -> subprocess.CompletedProcess:
    """`sarn ...` run in this process (the console script itself: test_packaging), with its
    exit code and output (log records included) as a subprocess would give them; a traceback
    raises here instead."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    finally:
        logging.getLogger().removeHandler(handler)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def sarn_eval(*args: str) -> subprocess.CompletedProcess:
    return run_sarn("eval", *args)


def eval_as_a_shell_starts_it(
    tmp_path: Path, weights: Path, *more: str
) -> subprocess.CompletedProcess:
    """`sarn eval` of ``tmp_path``/data into ``tmp_path``/e.json (and ``more`` options), with
    SIGTERM at its default action as a shell starts a command (pytest's own may differ)."""
    import signal

    args = ["--weights", str(weights), "--device", "cpu", "--future-frames", "0"]
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        json_out = str(tmp_path / "e.json")
        return sarn_eval(*args, "--pairs", str(tmp_path / "data"), "--json", json_out, *more)
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_pair(
    root: Path, n: int = 3, name: str = "seq", blur: int = 5
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    sharp = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(n)]
    blurred = [cv2.blur(s, (blur, 1)) for s in sharp]
    for kind, frames in (("blur", blurred), ("sharp", sharp)):
        (root / name / kind).mkdir(parents=True)
        for i, f in enumerate(frames):
            cv2.imwrite(str(root / name / kind / f"{i:02d}.png"), f[..., ::-1])
    return blurred, sharp


def test_eval_cli_gives_the_independently_computed_psnr(tmp_path, tiny_recurrent_checkpoint):
    blurred, sharp = write_pair(tmp_path / "data")
    nogt = tmp_path / "stream"
    nogt.mkdir()
    for i, b in enumerate(blurred):
        cv2.imwrite(str(nogt / f"{i}.png"), b[..., ::-1])
    out = tmp_path / "eval.json"
    result = sarn_eval(
        "--weights",
        str(tiny_recurrent_checkpoint),
        "--pairs",
        str(tmp_path / "data"),
        "--no-gt",
        str(nogt),
        "--future-frames",
        "0",
        "2",
        "--device",
        "cpu",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert [r["future_frames"] for r in data["gt"]] == [0, 2]
    expected_input = np.mean([metrics.psnr(b, s) for b, s in zip(blurred, sharp, strict=True)])
    engine = StreamDeblurrer(
        tiny_recurrent_checkpoint, device="cpu", future_frames=2, max_gap_s=None
    )
    outs = deblur_sequence(engine, blurred, "check")
    expected_model = np.mean([metrics.psnr(o, s) for o, s in zip(outs, sharp, strict=True)])
    row = data["gt"][1]
    assert abs(row["input_psnr"] - expected_input) < 1e-9
    assert abs(row["psnr"] - expected_model) < 0.05
    assert row["per_frame_input_ssim"] == pytest.approx(
        [metrics.ssim(b, s) for b, s in zip(blurred, sharp, strict=True)]
    )
    assert np.mean(row["per_frame_ssim"]) == pytest.approx(row["ssim"])
    # the model's own SSIM (the input's scored for it made the model look as good as it),
    # the gain's sign, and every frame counted with look-ahead 2
    assert row["per_frame_ssim"] == pytest.approx(
        [metrics.ssim(o, s) for o, s in zip(outs, sharp, strict=True)], abs=5e-3
    )
    assert row["psnr_gain"] == pytest.approx(row["psnr"] - row["input_psnr"])
    assert row["frames"] == len(blurred)
    stream = data["no_gt"][0]
    assert len(stream["orb_inliers_input"]) == len(stream["orb_matches_input"]) == 2
    assert all(m >= i for m, i in zip(stream["orb_matches"], stream["orb_inliers"], strict=True))
    change = stream["orb_inlier_change"]  # the per-pair verdict comes from the listed counts
    diffs = np.subtract(stream["orb_inliers"], stream["orb_inliers_input"])
    assert change["pairs"] == 2 and change["mean"] == pytest.approx(diffs.mean())
    assert change["better"] == int((diffs > 0).sum())
    assert "input PSNR" in result.stdout and "inliers change/pair [95% CI]" in result.stdout


def test_the_progress_bar_counts_every_frame_of_every_pass(
    tmp_path, monkeypatch, tiny_recurrent_checkpoint
):
    """The bar's total is what the frames it is told about add up to: 3 pairs and 4 stream
    frames, at two look-aheads."""
    import tqdm

    bars: list[SimpleNamespace] = []

    class Bar(SimpleNamespace):
        def __init__(self, total: int, **_kw) -> None:
            super().__init__(total=total, done=0)
            bars.append(self)

        def update(self, n: int) -> None:
            self.done += n

        def set_postfix_str(self, _s: str) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    write_pair(tmp_path / "data")
    nogt = tmp_path / "stream"
    nogt.mkdir()
    for i in range(4):
        cv2.imwrite(str(nogt / f"{i}.png"), np.full((40, 56, 3), 40 * i, np.uint8))
    args = ["--weights", str(tiny_recurrent_checkpoint), "--pairs", str(tmp_path / "data")]
    result = sarn_eval(*args, "--no-gt", str(nogt), "--future-frames", "0", "2")
    assert result.returncode == 0, result.stderr
    (bar,) = bars
    assert bar.done == bar.total == 2 * (3 + 4)


def test_eval_without_inputs_or_with_bad_weights_fails_cleanly(
    tmp_path, tiny_recurrent_checkpoint, capsys
):
    """Each fault is exit code 2 and an error line (in-process: a traceback would raise)."""

    def run(*args: str) -> str:
        assert cli.main(["eval", *args]) == 2
        return capsys.readouterr().err

    assert "give --pairs" in run()
    video = tmp_path / "v" / "clip.mp4"  # a video pair: a bare "[Errno 20]" before
    video.parent.mkdir()
    video.write_bytes(b"")
    assert f"--pairs {video}: not a folder" in run("--pairs", str(video))
    assert f"--pairs {tmp_path / 'no'}: no such folder" in run("--pairs", str(tmp_path / "no"))
    write_pair(tmp_path)
    assert "error" in run("--weights", str(tmp_path / "x.pth"), "--pairs", str(tmp_path))
    (tmp_path / "empty").mkdir()
    (tmp_path / "seq" / "blur" / "99.png").write_bytes(b"not a png")  # 4 blurred vs 3 sharp
    pairs = ("--pairs", str(tmp_path), "--max-frames", "5")
    # found before the (missing) weights are loaded
    assert "4 blurred vs 3 sharp" in run("--weights", str(tmp_path / "x.pth"), *pairs)
    (tmp_path / "seq" / "sharp" / "99.png").write_bytes(b"not a png either")
    weights = ("--weights", str(tiny_recurrent_checkpoint), "--device", "cpu")
    assert "cannot read image" in run(*pairs, *weights)  # found while evaluating
    for flag in ("--synthetic", "--no-gt"):  # an empty folder is an error, not an empty table
        assert "no " in run(flag, str(tmp_path / "empty"))


def test_eval_compares_self_ensemble_sizes(tmp_path, tiny_recurrent_checkpoint):
    blurred, sharp = write_pair(tmp_path / "data")
    out = tmp_path / "eval.json"
    result = sarn_eval(
        "--weights",
        str(tiny_recurrent_checkpoint),
        "--pairs",
        str(tmp_path / "data"),
        "--future-frames",
        "1",
        "--self-ensemble",
        "1",
        "4",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--save-images",
        str(tmp_path / "images"),
    )
    assert result.returncode == 0, result.stderr
    name = Path(tiny_recurrent_checkpoint).name
    for folder in (name, f"{name}_x4"):  # compared settings do not overwrite each other
        assert len(list((tmp_path / "images" / folder).glob("seq_ff1_*.png"))) == 3, folder
    rows = json.loads(out.read_text())["gt"]
    assert [r["self_ensemble"] for r in rows] == [1, 4]
    head, _, *body = [
        [c.strip() for c in line.strip("|").split("|")] for line in result.stdout.splitlines()[:4]
    ]
    for cells, r in zip(body, rows, strict=True):  # each SSIM under its own heading
        got = dict(zip(head, cells, strict=True))
        assert (got["input SSIM"], got["SSIM"]) == (f"{r['input_ssim']:.4f}", f"{r['ssim']:.4f}")
    engine = SelfEnsembleDeblurrer(
        tiny_recurrent_checkpoint, members=4, device="cpu", future_frames=1, max_gap_s=None
    )
    outs = deblur_sequence(engine, blurred, "check")
    expected = np.mean([metrics.psnr(o, s) for o, s in zip(outs, sharp, strict=True)])
    assert abs(rows[1]["psnr"] - expected) < 0.05
    assert abs(rows[1]["psnr"] - rows[0]["psnr"]) > 0.01  # the ensemble is really run
    assert f"{Path(tiny_recurrent_checkpoint).name} x4" in result.stdout


def test_two_runs_best_pth_keep_their_own_rows_and_images(tmp_path, tiny_recurrent_checkpoint):
    """Every training run writes a best.pth: compared, they are named by their run folders in
    the tables and the saved images, not both `best.pth` with one's images over the other's."""
    import torch

    from sarn_ros.archs import RecurrentSARN
    from sarn_ros.checkpoint import save_checkpoint

    write_pair(tmp_path / "data")
    first = tmp_path / "runs" / "rec" / "best.pth"
    first.parent.mkdir(parents=True)
    first.write_bytes(Path(tiny_recurrent_checkpoint).read_bytes())
    torch.manual_seed(1)
    other = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    second = save_checkpoint(other, tmp_path / "runs" / "other" / "best.pth", meta={})
    args = ["--weights", str(first), str(second), "--pairs", str(tmp_path / "data")]
    args += ["--future-frames", "0", "--device", "cpu", "--save-images", str(tmp_path / "img")]
    result = sarn_eval(*args)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "| seq |" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| rec/best.pth", "| other/best.pth"]
    assert rows[0].split(" | ")[5] != rows[1].split(" | ")[5]  # two models' PSNR
    for folder in ("rec_best.pth", "other_best.pth"):
        assert len(list((tmp_path / "img" / folder).glob("seq_ff0_*.png"))) == 3, folder


def test_a_missing_frame_is_found_whatever_max_frames_cuts(tmp_path, capsys):
    """--max-frames cut both folders before counting: a sharp frame missing further on
    paired every later blurred frame with the next sharp one, silently."""
    write_pair(tmp_path, n=5)
    (tmp_path / "seq" / "sharp" / "02.png").unlink()
    for cut in ("3", "10"):
        assert cli.main(["eval", "--pairs", str(tmp_path), "--max-frames", cut]) == 2
        err = capsys.readouterr().err  # the folders named: a benchmark has hundreds of "seq"s
        assert (
            "seq: 5 blurred vs 4 sharp frames (" in err and str(tmp_path / "seq" / "sharp") in err
        )


def test_a_missing_and_an_extra_frame_are_found_where_the_counts_agree(tmp_path, capsys):
    """Sharp 02 missing and a sharp 05 more: as many frames on each side, so blurred 02 was
    compared with sharp 03 and so on, silently. Folders named apart still pair in order."""
    write_pair(tmp_path / "named", n=5)
    sharp = tmp_path / "named" / "seq" / "sharp"
    (sharp / "02.png").unlink()
    shutil.copy(sharp / "04.png", sharp / "05.png")
    assert cli.main(["eval", "--pairs", str(tmp_path / "named"), "--max-frames", "2"]) == 2
    err = capsys.readouterr().err
    assert f"seq: no frame of the same name for {sharp.parent / 'blur' / '02.png'} and " in err
    assert str(sharp / "05.png") in err
    blurred, truth = write_pair(tmp_path / "apart", n=3)
    for kind, prefix in (("blur", "blur_"), ("sharp", "gt_")):
        for path in (tmp_path / "apart" / "seq" / kind).iterdir():
            path.rename(path.with_name(prefix + path.name))
    seq = read_pair("seq", *(tmp_path / "apart" / "seq" / k for k in ("blur", "sharp")))
    pairs = zip(seq.blurred + seq.sharp, blurred + truth, strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)


def test_same_named_inputs_keep_their_own_rows_and_images(tmp_path, tiny_recurrent_checkpoint):
    """Two runs' `blur` folders: one row each (named apart) and saved images that do not
    overwrite each other; a perfect frame (PSNR inf) is null in valid JSON."""
    rng = np.random.default_rng(1)
    for run, n in (("runA", 3), ("runB", 2)):
        (tmp_path / run / "blur").mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / run / "blur" / f"{i}.png"), img)
    data = tmp_path / "pairs"
    write_pair(data, n=2)
    frame = cv2.imread(str(data / "seq" / "sharp" / "00.png"))
    cv2.imwrite(str(data / "seq" / "blur" / "00.png"), frame)  # input == ground truth
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    args += ["--no-gt", str(tmp_path / "runA" / "blur"), str(tmp_path / "runB" / "blur")]
    args += ["--pairs", str(data), "--json", str(tmp_path / "e.json")]
    result = sarn_eval(*args, "--save-images", str(tmp_path / "img"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "e.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    out = json.loads(text)
    assert [(r["sequence"], r["frames"]) for r in out["no_gt"]] == [("blur", 3), ("blur_2", 2)]
    assert out["gt"][0]["per_frame_input_psnr"][0] is None
    saved = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert saved == [f"blur_2_ff0_{i:03d}.png" for i in range(2)] + [
        f"blur_ff0_{i:03d}.png" for i in range(3)
    ] + [f"seq_ff0_{i:03d}.png" for i in range(2)]


def test_saved_images_of_a_longer_earlier_run_are_replaced_not_left(tmp_path):
    """A rerun with fewer frames (--max-frames) into the same --save-images folder left the
    earlier run's later images beside the new ones; other files there stay."""
    from sarn_ros.evaluation import save_side_by_side

    def run(n: int, value: int) -> None:
        save_side_by_side(tmp_path / "seq_ff0", [np.full((4, 6, 3), value, np.uint8)] * n)

    run(1002, 10)  # numbered past 999 too
    others = ["seq_ff0_x_000.png", "seq_ff0_notes.png", "seq_ff2_005.png", "seq_ff0.txt"]
    for name in [*others, "seq_ff0_0005.png"]:  # numbered as this run never writes
        (tmp_path / name).write_bytes(b"kept")
    run(2, 200)
    kept = [*others, "seq_ff0_0005.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, "seq_ff0_000.png", "seq_ff0_001.png"]
    )
    assert (cv2.imread(str(tmp_path / "seq_ff0_001.png")) == 200).all()
    (tmp_path / "seq_ff0_002.png").mkdir()  # in the way: the error said only "cannot write"
    with pytest.raises(OSError, match=r"seq_ff0_002\.png: Is a directory$"):
        run(3, 30)


def test_synthetic_blur_is_at_full_resolution_and_same_named_sources_kept_apart(
    tmp_path, monkeypatch, tiny_recurrent_checkpoint
):
    """--blur-px 20 at --scale 0.5 blurs the half-size frames 10 px, as training validates;
    two `sharp` folders give two sequences named apart (their saved images collided)."""
    from sarn_ros import recordings

    seen = []
    synthesise = recordings.synthetic_sequences

    def recorded(path, seed, params, scale, *rest, **kw):
        seen.append((seed, params.blur_px, params.exposure, scale))
        return synthesise(path, seed, params, scale, *rest, **kw)

    monkeypatch.setattr(recordings, "synthetic_sequences", recorded)
    for run in ("a", "b"):
        write_pair(tmp_path / run, n=2, name="sharp")
    sources = [str(tmp_path / run / "sharp" / "sharp") for run in ("a", "b")]
    out = tmp_path / "e.json"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--json", str(out)]
    args += ["--synthetic", *sources, "--scale", "0.5", "--blur-px", "20", "--exposure", "0.4"]
    result = sarn_eval(*args, "--future-frames", "0", "--max-frames", "2")
    assert result.returncode == 0, result.stderr
    assert seen == [(1234, 10.0, 0.4, 0.5)] * 2
    names = [r["sequence"] for r in json.loads(out.read_text())["gt"]]
    assert len(names) == len(set(names)) >= 2, names


def test_a_folder_of_several_sequences_gets_a_frame_weighted_row(
    tmp_path, tiny_recurrent_checkpoint
):
    """A benchmark's figure is the mean over all its frames (GoPro: 1,111 test frames), so
    one row pools each input folder of several sequences, weighting them by frame count."""
    data, single = tmp_path / "data", tmp_path / "single"
    blur_a, sharp_a = write_pair(data, n=3, name="a", blur=2)
    blur_b, sharp_b = write_pair(data, n=1, name="b", blur=15)
    write_pair(single)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--pairs", str(data), str(single), "--future-frames", "0", "1"]
    result = sarn_eval(*args, "--json", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    out = json.loads((tmp_path / "e.json").read_text())
    pooled = out["gt_pooled"]
    assert [(r["input"], r["future_frames"], r["frames"]) for r in pooled] == [
        (str(data), 0, 4),
        (str(data), 1, 4),
    ]  # "single" holds one sequence: its own row is its figure
    blurred, sharp = blur_a + blur_b, sharp_a + sharp_b
    by_frame = np.mean([metrics.psnr(b, s) for b, s in zip(blurred, sharp, strict=True)])
    by_sequence = np.mean([r["input_psnr"] for r in out["gt"][:2]])
    assert pooled[0]["input_psnr"] == pytest.approx(by_frame)
    assert abs(by_frame - by_sequence) > 0.5  # the weighting matters here
    rows = [r for r in out["gt"] if r["input"] == str(data) and r["future_frames"] == 1]
    expected = np.mean([v for r in rows for v in r["per_frame_psnr"]])
    assert pooled[1]["psnr"] == pytest.approx(expected)
    assert pooled[1]["psnr_gain"] == pytest.approx(expected - by_frame)
    # each ensemble size pooled on its own
    again = sarn_eval(
        *args[:4],
        "--pairs",
        str(data),
        "--future-frames",
        "0",
        "--self-ensemble",
        "1",
        "2",
        "--json",
        str(tmp_path / "e2.json"),
    )
    assert again.returncode == 0, again.stderr
    pooled2 = json.loads((tmp_path / "e2.json").read_text())["gt_pooled"]
    assert [(r["self_ensemble"], r["frames"]) for r in pooled2] == [(1, 4), (2, 4)]
    # SSIM pooled the same way, each column from its own frames
    input_ssim = np.mean([metrics.ssim(b, s) for b, s in zip(blurred, sharp, strict=True)])
    assert pooled[1]["input_ssim"] == pytest.approx(input_ssim)
    assert pooled[1]["ssim"] == pytest.approx(
        np.mean([v for r in rows for v in r["per_frame_ssim"]])
    )
    assert "| all 2 of data | 1 | 4 |" in result.stdout


REFUSED = [  # (arguments, the error's words): nothing is evaluated or written
    (["--json", "{t}"], "is a folder, not a file"),
    (["--json", "{t}/data/seq/blur/00.png/e.json"], "00.png is a file, not a folder"),
    pytest.param(
        ["--json", "/proc/sarn_eval.json"],
        # root passes permission bits: the trial file shows it; ENOENT there named no folder
        "cannot write in /proc (no file can be made there)",
        marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc"),
    ),
    (["--save-images", "{t}/data/seq/blur/00.png"], "is a file, not a folder"),
    (["--save-images", "{t}/data"], "is the input {t}/data:"),
    (["--save-images", "{t}/stream/out"], "is inside the input {t}/stream:"),
    (["--save-images", "{t}/stills/a/b"], "is inside the input {t}/stills:"),
    (["--weights", "{w}", "nope"], "packaged weights named 'nope'"),
]


@pytest.mark.parametrize(("extra", "words"), REFUSED)
def test_bad_settings_are_refused_before_anything_is_evaluated(
    tmp_path, tiny_recurrent_checkpoint, extra, words
):
    """Output paths, --scale, --blur-px and every --weights entry are checked first: a bad
    one was a traceback after the whole run (results lost), a meaningless result with exit 0,
    or a later run reading this one's saved images as its input frames."""
    write_pair(tmp_path / "data")
    shutil.copytree(tmp_path / "data" / "seq" / "blur", tmp_path / "stream")
    shutil.copytree(tmp_path / "data" / "seq" / "sharp", tmp_path / "stills")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--pairs", str(tmp_path / "data"), "--no-gt", str(tmp_path / "stream")]
    args += ["--synthetic", str(tmp_path / "stills"), "--future-frames", "0"]
    args += ["--save-images", str(tmp_path / "img")]  # the last one given counts
    before = sorted(tmp_path.rglob("*"))
    fill = {"t": tmp_path, "w": tiny_recurrent_checkpoint}
    result = sarn_eval(*args, *(a.format(**fill) for a in extra))
    assert result.returncode == 2
    assert result.stderr.startswith("sarn eval: error: ")
    assert words.format(**fill) in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before


def test_a_no_gt_folder_of_recordings_is_no_place_for_images_and_its_left_out_are_named(
    tmp_path, tiny_recurrent_checkpoint
):
    """`--no-gt runs --save-images runs/imgs` was taken (the check saw only the recordings in
    it), and the next run then read runs/ as a folder of images: its videos, unsaid, unread."""
    rng = np.random.default_rng(3)
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("a.mp4", "b.mp4"):
        writer = cv2.VideoWriter(str(runs / name), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
        for _ in range(3):
            writer.write(rng.integers(0, 256, (64, 64, 3), np.uint8))
        writer.release()
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    for save in (runs / "imgs", runs):
        result = sarn_eval(*args, "--no-gt", str(runs), "--save-images", str(save))
        assert result.returncode == 2 and "a later run would read" in result.stderr, result.stderr
        assert f"the input {runs}:" in result.stderr, result.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["a.mp4", "b.mp4"]
    for i in range(2):  # images beside them: the folder is a stream of images
        cv2.imwrite(str(runs / f"{i}.png"), rng.integers(0, 256, (64, 64, 3), np.uint8))
    result = sarn_eval(*args, "--no-gt", str(runs))
    assert result.returncode == 0, result.stderr
    assert (
        f"note: --no-gt {runs}: not read: a.mp4, b.mp4 (only the images directly in a folder of "
        "images are read: give the others to --no-gt)"
    ) in result.stderr


def test_options_these_inputs_have_no_use_for_are_refused(tmp_path):
    """--pairs alone ran with exit 0 and --skip-frames, --scale, --blur-px, --topics and
    --debayer ignored, where `sarn deblur` refuses options its input has no use for."""
    write_pair(tmp_path / "data")
    extra = ["--skip-frames", "1", "--scale", "0.3", "--blur-px", "5", "--topics", "/nope"]
    extra += ["--exposure", "0.5"]
    result = sarn_eval("--pairs", str(tmp_path / "data"), *extra, "--debayer", "bilinear")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "sarn eval: error: not used in this run: --skip-frames (--no-gt streams); --scale "
        "(--synthetic); --blur-px (--synthetic); --exposure (--synthetic); --topics (bags of "
        "--synthetic or --no-gt); --debayer (bags of --synthetic or --no-gt)"
    )
    # spelled out at their defaults (a script passing every option): said, not refused
    result = sarn_eval(
        "--pairs",
        str(tmp_path / "data"),
        "--max-gap-s",
        "0.5",
        "--skip-frames",
        "0",
        "--weights",
        str(tmp_path / "missing.pth"),
    )
    assert result.returncode == 2 and "weights file not found" in result.stderr
    assert result.stderr.startswith(
        "sarn eval: note: not used in this run: --skip-frames (--no-gt streams); --max-gap-s "
        "(bags of --synthetic or --no-gt)\n"
    ), result.stderr


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        # 1x1 frames and a PSNR of nothing with exit 0, an upscale, NaN blur: usage errors now
        (["--scale", "0"], "argument --scale: must be in (0, 1], got 0"),
        (["--scale", "7"], "argument --scale: must be in (0, 1], got 7"),
        (["--scale", "nan"], "argument --scale: must be a finite number in (0, 1], got nan"),
        (["--blur-px", "-5"], "argument --blur-px: must be in [0, 1000], got -5"),
        (["--blur-px", "inf"], "argument --blur-px: must be a finite number in [0, 1000], got inf"),
        (["--max-frames", "0"], "argument --max-frames: must be at least 1, got 0"),
        (["--exposure", "0"], "argument --exposure: must be in [0.001, 1], got 0"),
        # the camera left the frame: these gave the same figures as each other
        (["--blur-px", "1e6"], "argument --blur-px: must be in [0, 1000], got 1e6"),
        (["--exposure", "1e-300"], "argument --exposure: must be in [0.001, 1], got 1e-300"),
    ],
)
def test_out_of_range_values_are_usage_errors(tmp_path, extra, words):
    result = sarn_eval("--synthetic", str(tmp_path), *extra)
    assert result.returncode == 2 and result.stderr.splitlines()[-1] == f"sarn eval: error: {words}"


def test_bounds_of_scale_and_blur_are_accepted(tmp_path, tiny_recurrent_checkpoint):
    """--scale 1 (full resolution) and --blur-px 0 (no motion: the generator takes it); the
    three unrelated frames are stills, a sequence of 6 each."""
    write_pair(tmp_path)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--synthetic", str(tmp_path / "seq" / "sharp"), "--future-frames", "0"]
    result = sarn_eval(*args, "--scale", "1", "--blur-px", "0")
    assert result.returncode == 0, result.stderr
    assert "| 00 | 0 | 6 |" in result.stdout
    assert "blurred side" not in result.stderr  # a sharp/ folder is sharp material
    # its blur/ partner as sharp material is named: the scores would be of blurred targets
    args[args.index("--synthetic") + 1] = str(tmp_path / "seq" / "blur")
    result = sarn_eval(*args, "--scale", "1", "--blur-px", "0")
    assert result.returncode == 0, result.stderr
    assert f"note: {tmp_path / 'seq' / 'blur'}: named as the blurred side" in result.stderr


def test_a_json_write_failing_at_the_end_keeps_the_results_on_stdout(
    tmp_path, tiny_recurrent_checkpoint
):
    """A file that passes the checks but cannot take the data (a full disk)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    write_pair(tmp_path)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--pairs", str(tmp_path), "--future-frames", "0", "--json", "/dev/full"]
    result = sarn_eval(*args)
    assert result.returncode == 2
    assert "| seq | 0 | 3 |" in result.stdout
    error = result.stderr.splitlines()[-1]
    assert error == (
        "sarn eval: error: cannot write --json /dev/full (No space left on device); "
        "the results are above"
    )


@pytest.mark.parametrize(
    ("flag", "block"), [("--pairs", "image"), ("--no-gt", "image"), ("--no-gt", "folder")]
)
def test_an_image_that_cannot_be_saved_is_an_error(
    tmp_path, tiny_recurrent_checkpoint, flag, block
):
    """cv2.imwrite only returns False (ignored: exit 0 without images), and the folder of a
    --no-gt stream's images was made outside the error handling (a traceback)."""
    write_pair(tmp_path / "data")
    source = tmp_path / "data" if flag == "--pairs" else tmp_path / "data" / "seq" / "blur"
    stem = "seq" if flag == "--pairs" else "blur"
    save = tmp_path / "img"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", flag, str(source)]
    args += ["--future-frames", "0", "--save-images", str(save)]
    if block == "image":
        (save / f"{stem}_ff0_001.png").mkdir(parents=True)  # where the 2nd image goes
    else:  # the first setting's subfolder is a file
        save.mkdir()
        (save / Path(tiny_recurrent_checkpoint).name).write_text("")
        args += ["--self-ensemble", "1", "2"]
    result = sarn_eval(*args)
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("sarn eval: error: ") and str(save) in error


def test_a_run_stopped_by_an_error_says_the_json_is_an_earlier_runs(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """A run that failed part way left an earlier run's --json unsaid, read as this run's."""
    from sarn_ros import evaluation

    def unreadable(*args):
        raise ValueError("frame 3 of seq cannot be read")

    monkeypatch.setattr(evaluation, "evaluate_gt", unreadable)
    write_pair(tmp_path / "data")
    earlier = tmp_path / "e.json"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--json", str(earlier)]
    args += ["--pairs", str(tmp_path / "data"), "--future-frames", "0"]
    result = sarn_eval(*args)
    assert result.returncode == 2 and not earlier.exists()  # none: nothing to say
    assert result.stderr.splitlines()[-1] == "sarn eval: error: frame 3 of seq cannot be read"
    earlier.write_text("[]")
    result = sarn_eval(*args)
    assert result.returncode == 2 and earlier.read_text() == "[]"
    assert result.stderr.splitlines()[-2:] == [
        "sarn eval: error: frame 3 of seq cannot be read",
        f"sarn eval: --json {earlier} not written (the run stopped at the error): it is as an "
        "earlier run left it",
    ]


def test_the_network_running_out_of_memory_is_one_error_line(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """A 4000x3000 pair asked the attention for 35 GB: PyTorch's RuntimeError came out as a
    traceback (exit 1) after the process had used 12 GB."""
    from sarn_ros import evaluation

    def out_of_memory(*args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] . DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 35250000000 bytes.\nmore"
        )

    monkeypatch.setattr(evaluation, "evaluate_gt", out_of_memory)
    write_pair(tmp_path / "data")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    result = sarn_eval(*args, "--pairs", str(tmp_path / "data"), "--future-frames", "0")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "sarn eval: error: out of memory ([enforce fail at alloc_cpu.cpp:127] . "
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 35250000000 bytes.)"
        "; evaluate smaller frames"
    )

    def bug(*args):  # any other RuntimeError is a fault to see whole, not one anonymous line
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(evaluation, "evaluate_gt", bug)
    with pytest.raises(RuntimeError, match="same device"):
        sarn_eval(*args, "--pairs", str(tmp_path / "data"), "--future-frames", "0")


@pytest.mark.parametrize("stop", ["Ctrl-C", "SIGTERM"])
def test_ctrl_c_reports_the_sequences_finished_before_it(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, stop
):
    """A Ctrl-C threw away the sequences already scored: no table, no JSON, one line. So did
    a SIGTERM (`timeout`, a batch system), which ended the process at once. Images saved
    are said to be partial only where --save-images saves some."""
    import os
    import signal

    from sarn_ros import evaluation

    real = evaluation.evaluate_gt

    def second_interrupted(engine, seq, *args):
        if seq.name == "b":
            if stop == "SIGTERM":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return real(engine, seq, *args)

    monkeypatch.setattr(evaluation, "evaluate_gt", second_interrupted)
    write_pair(tmp_path / "data", name="a")
    write_pair(tmp_path / "data", name="b")
    saving = ["--save-images", str(tmp_path / "img")] if stop == "SIGTERM" else []
    result = eval_as_a_shell_starts_it(tmp_path, tiny_recurrent_checkpoint, *saving)
    assert result.returncode == (143 if stop == "SIGTERM" else 130)
    assert "| a |" in result.stdout and "| b |" not in result.stdout
    how = "stopped by SIGTERM" if stop == "SIGTERM" else "interrupted"
    partial = " (the images saved of the sequence running may be partial)" if saving else ""
    assert result.stderr.splitlines()[-1] == (
        f"sarn eval: {how}: the rows above are what finished before it{partial}"
    )
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["interrupted"] is True and [r["sequence"] for r in saved["gt"]] == ["a"]


def test_a_pool_a_stop_cut_short_is_not_all_of_the_folder(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """After a Ctrl-C the pooled row of the sequences finished read "all 2 of data", the
    folder's figure, with 3 of its sequences to score (one unreadable one left out)."""
    from sarn_ros import evaluation

    real = evaluation.evaluate_gt

    def last_interrupted(engine, seq, *args):
        if seq.name == "d":
            raise KeyboardInterrupt
        return real(engine, seq, *args)

    monkeypatch.setattr(evaluation, "evaluate_gt", last_interrupted)
    for name in "abcd":
        write_pair(tmp_path / "data", name=name)
    cv2.imwrite(str(tmp_path / "data" / "c" / "blur" / "01.png"), np.zeros((8, 8, 3), np.uint8))
    result = eval_as_a_shell_starts_it(tmp_path, tiny_recurrent_checkpoint)
    assert result.returncode == 130
    assert "| 2 of 3 of data (interrupted) |" in result.stdout and "all 2 of" not in result.stdout
    (pool,) = json.loads((tmp_path / "e.json").read_text())["gt_pooled"]
    assert pool["sequence"] == "2 of 3 of data (interrupted)" and pool["interrupted"] is True
    monkeypatch.setattr(evaluation, "evaluate_gt", real)  # a whole run: all of them
    result = eval_as_a_shell_starts_it(tmp_path, tiny_recurrent_checkpoint)
    assert result.returncode == 2 and "| all 3 of data |" in result.stdout  # c unreadable
    (pool,) = json.loads((tmp_path / "e.json").read_text())["gt_pooled"]
    assert "interrupted" not in pool


def test_a_sigterm_after_a_ctrl_c_as_the_results_are_written_keeps_the_ctrl_c(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """A Ctrl-C in the second sequence, then a SIGTERM while the tables were printed, said
    "stopped by SIGTERM" (143): the first stop is the one said."""
    import os
    import signal

    from sarn_ros import evaluation
    from sarn_ros.tools import eval as eval_tool

    real, tables = evaluation.evaluate_gt, eval_tool.print_tables
    fired = []

    def second_interrupted(engine, seq, *args):
        if seq.name == "b":
            raise KeyboardInterrupt
        return real(engine, seq, *args)

    def terminated_as_printed(*args):
        if not fired:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
        return tables(*args)

    monkeypatch.setattr(evaluation, "evaluate_gt", second_interrupted)
    monkeypatch.setattr(eval_tool, "print_tables", terminated_as_printed)
    write_pair(tmp_path / "data", name="a")
    write_pair(tmp_path / "data", name="b")
    result = eval_as_a_shell_starts_it(tmp_path, tiny_recurrent_checkpoint)
    assert fired and result.returncode == 130
    assert result.stderr.splitlines()[-1].startswith("sarn eval: interrupted: the rows above")


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [("SIGTERM", 143, "stopped by SIGTERM"), ("SIGINT", 130, "interrupted")],
)
def test_a_stop_as_the_results_are_written_comes_after_a_whole_json(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, stop, code, said
):
    """Every row done, a SIGTERM during the tables skipped the --json, and one during its
    write left half a file that did not parse: held till the file is whole. A Ctrl-C too (it
    cut the file, and the next run refused the path as "holds no JSON")."""
    import os
    import signal

    from sarn_ros.tools import eval as eval_tool

    real = eval_tool.print_tables

    def stopped_while_printing(*args):
        os.kill(os.getpid(), getattr(signal, stop))
        real(*args)

    monkeypatch.setattr(eval_tool, "print_tables", stopped_while_printing)
    write_pair(tmp_path / "data", name="a")
    result = eval_as_a_shell_starts_it(tmp_path, tiny_recurrent_checkpoint)
    assert result.returncode == code and "| a |" in result.stdout
    assert result.stderr.splitlines()[-1].startswith(f"sarn eval: {said}: ")
    saved = json.loads((tmp_path / "e.json").read_text())
    assert "interrupted" not in saved and [r["sequence"] for r in saved["gt"]] == ["a"]


def test_frames_one_pixel_high_or_wide_get_no_orb_matches(tmp_path, tiny_recurrent_checkpoint):
    """ORB raised (cv2.error) on a frame 1 px high or wide; 2 px worked."""
    rng = np.random.default_rng(0)
    streams = {"dot": (1, 1), "row": (1, 64), "column": (64, 1)}
    for name, shape in streams.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), img)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--no-gt", *(str(tmp_path / n) for n in streams), "--future-frames", "0"]
    result = sarn_eval(*args, "--json", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "e.json").read_text())["no_gt"]
    assert [r["sequence"] for r in rows] == list(streams)
    assert all(r["orb_matches_input"] == r["orb_inliers"] == [0, 0] for r in rows)


def test_pairs_of_different_sizes_name_the_files_and_the_others_are_scored(
    tmp_path, tiny_recurrent_checkpoint
):
    """Found when the pair is read, not as numpy's broadcast error after inference; and found
    only then, so a bad last sequence ended the run with every earlier result unprinted."""
    write_pair(tmp_path, name="a")
    write_pair(tmp_path, name="b")
    write_pair(tmp_path, name="c")
    sharp = tmp_path / "b" / "sharp" / "01.png"
    cv2.imwrite(str(sharp), np.zeros((32, 48, 3), np.uint8))
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--pairs"]
    out = tmp_path.parent / f"{tmp_path.name}.json"
    result = sarn_eval(*args, str(tmp_path), "--future-frames", "0", "1", "--json", str(out))
    assert result.returncode == 2
    blurred = tmp_path / "b" / "blur" / "01.png"
    why = f"b: blurred {blurred} is 56x40 but sharp {sharp} is 48x32"
    assert result.stderr.count(f"sarn eval: error: {why} (left out") == 1  # not once a pass
    assert "1 sequence(s) could not be read" in result.stderr.splitlines()[-1]
    report = json.loads(out.read_text())
    assert sorted({r["sequence"] for r in report["gt"]}) == ["a", "c"]
    assert report["unreadable"] == {"b": why}
    assert "all 2 of" in result.stdout


def test_grey_blurred_frames_against_colour_sharp_ones_are_named_once(
    tmp_path, tiny_recurrent_checkpoint
):
    """A mono camera's blur against a colour reference scores several dB below a colour
    pair, and the table alone does not say why; a grey pair, or a colour one, needs no
    note."""
    for name in ("mono", "grey", "colour"):
        write_pair(tmp_path, name=name)
    for name in ("mono", "grey"):
        for kind in ("blur", "sharp") if name == "grey" else ("blur",):
            for f in (tmp_path / name / kind).iterdir():
                cv2.imwrite(str(f), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--pairs"]
    result = sarn_eval(*args, str(tmp_path), "--future-frames", "0", "1")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "grey" in line]
    assert len(notes) == 1, result.stderr  # not once a pass
    assert notes[0].startswith("sarn eval: note: mono: the blurred frames are grey")
    assert all(f" | {name} | " in result.stdout for name in ("mono", "grey", "colour"))


def test_one_sided_sequences_are_named_and_same_named_inputs_pooled_apart(
    tmp_path, tiny_recurrent_checkpoint
):
    """A sequence without sharp/ was dropped without a word, and two inputs both called
    `train` gave two pooled rows both labelled `all 2 of train`."""
    for top in ("gopro", "other"):
        write_pair(tmp_path / top / "train", name="a")
        write_pair(tmp_path / top / "train", name="b")
    shutil.rmtree(tmp_path / "other" / "train" / "b" / "sharp")
    write_pair(tmp_path / "other" / "train", name="c")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--pairs"]
    inputs = [str(tmp_path / top / "train") for top in ("gopro", "other")]
    result = sarn_eval(*args, *inputs, "--future-frames", "0")
    assert result.returncode == 0, result.stderr
    assert (
        f"note: --pairs {inputs[1]}: not scored: b (one side only)" in result.stderr
    )  # not in the tables
    assert f"all 2 of {inputs[0]}" in result.stdout and f"all 2 of {inputs[1]}" in result.stdout


def test_a_sequence_given_again_inside_a_folder_given_is_scored_once(
    tmp_path, tiny_recurrent_checkpoint
):
    """`--pairs a a/seq` scored seq twice, as a second row `seq_2`; scored once, it stays in
    the folder's pooled row whichever order the two come in."""
    write_pair(tmp_path / "a", name="s1")
    write_pair(tmp_path / "a", name="s2")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--pairs"]
    out = tmp_path.parent / f"{tmp_path.name}.json"
    outer, inner = tmp_path / "a", tmp_path / "a" / "s2"
    for given in ([outer, inner], [inner, outer]):
        result = sarn_eval(*args, *map(str, given), "--future-frames", "0", "--json", str(out))
        assert result.returncode == 0, result.stderr
        said = f"note: --pairs {inner}: s2 also under --pairs {outer}: scored there, once"
        assert said in result.stderr
        report = json.loads(out.read_text())
        assert sorted(r["sequence"] for r in report["gt"]) == ["s1", "s2"]
        assert [r["sequence"] for r in report["gt_pooled"]] == ["all 2 of a"]


def test_a_recording_given_again_inside_a_folder_given_is_blurred_once(
    tmp_path, tiny_recurrent_checkpoint
):
    """`--synthetic a a/s2` scored s2 twice, as a second row `s2_2` with the same figures."""
    ramp = np.linspace(60, 190, 48, dtype=np.float32)
    for name in ("s1", "s2"):
        (tmp_path / "a" / name).mkdir(parents=True)
        for i in range(3):  # a video: frames of one size that look alike
            frame = np.broadcast_to(ramp + 3 * i, (40, 48)).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "a" / name / f"{i}.png"), frame)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--scale", "1"]
    out = tmp_path.parent / f"{tmp_path.name}.json"
    outer, inner = tmp_path / "a", tmp_path / "a" / "s2"
    for given in ([outer, inner], [inner, outer]):
        extra = ["--future-frames", "0", "--json", str(out)]
        result = sarn_eval(*args, "--synthetic", *map(str, given), *extra)
        assert result.returncode == 0, result.stderr
        said = f"note: --synthetic {inner} is read within --synthetic {outer}: scored there, once"
        assert said in result.stderr
        report = json.loads(out.read_text())
        assert sorted(r["sequence"] for r in report["gt"]) == ["s1", "s2"]
        assert [r["sequence"] for r in report["gt_pooled"]] == ["all 2 of a"]
    result = sarn_eval(*args, "--synthetic", str(inner), str(tmp_path / "a" / "s1"), *extra)
    assert "read within" not in result.stderr  # neither reads the other
    assert sorted(r["sequence"] for r in json.loads(out.read_text())["gt"]) == ["s1", "s2"]


def test_a_part_of_a_split_bag_given_beside_the_bag_is_read_within_it(
    tmp_path, tiny_recurrent_checkpoint
):
    """`--synthetic bag bag/bag_0.db3`, a part of a bag split by size beside the bag, scored
    the part's cameras twice (rows left_2, right_2 of the same frames)."""
    from rosbags.rosbag2 import StoragePlugin
    from test_deblur_offline import write_bag

    bag = tmp_path / "bag"
    write_bag(bag, StoragePlugin.SQLITE3)
    (part,) = bag.glob("*.db3")
    shutil.copy(part, bag / "bag_1.db3")  # split by size
    out = tmp_path / "report.json"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--scale", "1"]
    args += ["--future-frames", "0", "--json", str(out), "--synthetic"]
    for given in ([bag, part], [part, bag]):
        result = sarn_eval(*args, *map(str, given))
        assert result.returncode == 0, result.stderr
        said = f"note: --synthetic {part} is read within --synthetic {bag}: scored there, once"
        assert said in result.stderr
        assert len(json.loads(out.read_text())["gt"]) == 2  # each camera once


def test_a_folder_given_to_pairs_and_synthetic_pools_each_apart(
    tmp_path, tiny_recurrent_checkpoint
):
    """`--pairs mix --synthetic mix` pooled the real pairs and mix's own stills under synthetic
    blur in one row `all 4 of mix`, with a note that its blurred frames were read as sharp (only
    its own images are); a pooled row named a link by its target."""
    mix = tmp_path / "mix"
    write_pair(mix, name="s1")
    write_pair(mix, name="s2")
    rng = np.random.default_rng(1)
    for name, size in (("a", (40, 56)), ("b", (48, 64))):  # stills: unlike frames
        cv2.imwrite(str(mix / f"{name}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    out = tmp_path.parent / f"{tmp_path.name}.json"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--future-frames", "0", "--json", str(out)]
    again = str(mix / ".." / "mix")  # spelled otherwise: still one folder given to both
    result = sarn_eval(*args, "--pairs", str(mix), "--synthetic", again, "--scale", "1")
    assert result.returncode == 0, result.stderr
    assert "holds blurred/sharp pairs" not in result.stderr
    said = (
        f"note: --synthetic {again}: not read: s1, s2 (blurred/sharp pairs: give them to --pairs)"
    )
    assert said in result.stderr
    report = json.loads(out.read_text())
    assert [(r["sequence"], r["option"]) for r in report["gt"]] == [
        ("s1", "--pairs"),
        ("s2", "--pairs"),
        ("a", "--synthetic"),
        ("b", "--synthetic"),
    ]
    assert [(r["sequence"], r["option"], r["frames"]) for r in report["gt_pooled"]] == [
        ("all 2 of mix (--pairs)", "--pairs", 6),
        ("all 2 of mix (--synthetic)", "--synthetic", 12),
    ]
    (tmp_path / "my link").symlink_to(mix)
    result = sarn_eval(*args, "--pairs", str(tmp_path / "my link"))
    assert result.returncode == 0, result.stderr
    assert [r["sequence"] for r in json.loads(out.read_text())["gt_pooled"]] == ["all 2 of my link"]


def test_a_settings_image_folder_is_checked_as_the_images_folder_is(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """With two weights, the folder of one (`sarn_single`) given as an input was written into;
    --json where the images go was found after the run (`Is a directory`), or replaced one."""
    out = tmp_path / "out"
    write_pair(out, name="seq")
    shutil.copytree(out / "seq" / "blur", out / "sarn_single")
    weights = ["--weights", str(tiny_recurrent_checkpoint), "sarn_single", "--device", "cpu"]
    cases = {
        ("--no-gt", str(out / "sarn_single"), "--save-images", str(out)): (
            f"--save-images {out} (its sarn_single) is the input {out / 'sarn_single'}:"
        ),
        ("--pairs", str(out), "--save-images", str(tmp_path / "img"), "--json", "img"): (
            f"--json img is where --save-images {tmp_path / 'img'} puts images"
        ),
        ("--pairs", str(out), "--save-images", "img", "--json", "img/sarn_single/s_000.png"): (
            "--json img/sarn_single/s_000.png is where --save-images img puts images"
        ),
    }
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    for given, words in cases.items():
        result = sarn_eval(*weights, *given, "--future-frames", "0")
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert sorted(tmp_path.rglob("*")) == before


def test_what_a_folder_of_pairs_holds_unscored_is_named(tmp_path, tiny_recurrent_checkpoint):
    """GOPRO_Large with a stray sequence beside its splits scored that one alone, unsaid (the
    splits were dropped); the same folder given to --synthetic blurred its blurred frames
    again, unsaid: only a blur/ folder given itself was named."""
    gopro = tmp_path / "GOPRO_Large"
    write_pair(gopro, n=2, name="GOPR0384")
    write_pair(gopro / "test", n=2, name="GOPR0410")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    result = sarn_eval(*args, "--pairs", str(gopro))
    assert result.returncode == 0, result.stderr
    assert f"note: --pairs {gopro}: not scored: test (only the sequences directly in" in (
        result.stderr
    )
    assert "images beside" not in result.stderr
    (gopro / "stills").mkdir()  # no pairs in it: giving it as its own --pairs reads nothing
    cv2.imwrite(str(gopro / "stills" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    result = sarn_eval(*args, "--pairs", str(gopro))
    assert "not scored: stills (no blurred/sharp pairs in them)" in result.stderr
    assert "not scored: test (only the sequences directly in" in result.stderr
    shutil.rmtree(gopro / "stills")
    cv2.imwrite(str(gopro / "cover.png"), np.zeros((8, 8, 3), np.uint8))  # a loose image
    result = sarn_eval(*args, "--pairs", str(gopro))
    assert f"note: --pairs {gopro}: not scored: cover.png (images beside sequences)" in (
        result.stderr
    )
    result = sarn_eval(*args, "--synthetic", str(gopro / "GOPR0384"), "--scale", "1")
    assert result.returncode == 0, result.stderr
    assert (
        f"note: --synthetic {gopro / 'GOPR0384'} holds blurred/sharp pairs: its blurred frames "
        "are read as sharp ones under synthetic blur, beside its sharp frames; give it to "
        "--pairs to use the real pairs"
    ) in result.stderr
    (gopro / "cover.png").unlink()  # now only sequences: nothing a sharp read reaches
    result = sarn_eval(*args, "--synthetic", str(gopro), "--scale", "1")
    assert result.returncode == 2 and result.stderr == (
        f"sarn eval: error: --synthetic {gopro} holds blurred/sharp pairs and no sharp frames "
        "of its own: give it to --pairs\n"
    )


def test_deblur_sequence_refuses_an_engine_that_serves_other_streams(tiny_recurrent_checkpoint):
    """Its opening flush returned the other streams' outputs into nothing: they were lost."""
    engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu")
    frame = np.zeros((16, 24, 3), np.uint8)
    engine.push(frame, 0, stream="live")
    with pytest.raises(ValueError, match="live"):
        deblur_sequence(engine, [frame], "check")
    assert [o.stream for o in engine.flush()] == ["live"]  # untouched
    engine.reset("live")
    assert len(deblur_sequence(engine, [frame, frame], "check")) == 2  # now alone: fine


def test_a_setting_or_input_given_twice_is_evaluated_once(tmp_path, tiny_recurrent_checkpoint):
    """`--future-frames 0 0`, a weights file or a folder named twice: one row each, and the
    pooled row counts the folder's sequences and frames once (it said "all 4 of data")."""
    data = tmp_path / "data"
    write_pair(data, n=2, name="a")
    write_pair(data, n=1, name="b")
    weights = str(tiny_recurrent_checkpoint)
    twice = str(tiny_recurrent_checkpoint.parent / "." / tiny_recurrent_checkpoint.name)
    args = ["--weights", weights, twice, "--device", "cpu", "--future-frames", "0", "0"]
    args += ["--self-ensemble", "1", "1"]
    data_again = str(data / ".." / "data")  # spelled otherwise: once all the same
    report = tmp_path / "new" / "folder" / "e.json"  # made, as --save-images' folder is
    result = sarn_eval(*args, "--pairs", str(data), data_again, "--json", str(report))
    assert result.returncode == 0, result.stderr
    out = json.loads(report.read_text())
    assert [r["sequence"] for r in out["gt"]] == ["a", "b"]
    assert [(r["sequence"], r["frames"]) for r in out["gt_pooled"]] == [("all 2 of data", 3)]
    assert "| all 2 of data | 0 | 3 |" in result.stdout
    # a packaged name and its file are one weights file (two rows and two image folders)
    shipped = ["sarn_single", str(resolve_weights("sarn_single"))]
    result = sarn_eval("--weights", *shipped, "--pairs", str(data / "b"), "--json", str(report))
    assert result.returncode == 0, result.stderr
    assert [r["weights"] for r in json.loads(report.read_text())["gt"]] == ["sarn_single"]


def test_topics_and_debayer_without_a_bag_and_same_named_setting_folders(
    tmp_path, tiny_recurrent_checkpoint
):
    """--topics and --debayer were taken without a word for a folder or video of --no-gt;
    `rec/best.pth` and `rec_best.pth` both saved their images into `rec_best.pth/`."""
    write_pair(tmp_path / "data")
    frames_dir = tmp_path / "data" / "seq" / "sharp"
    for extra in (["--topics", "/cam/image_raw"], ["--debayer", "bilinear"]):
        result = sarn_eval("--no-gt", str(frames_dir), *extra)
        assert result.returncode == 2 and "not used in this run: --" in result.stderr, extra
    for run in ("rec", "single"):
        (tmp_path / run).mkdir()
        shutil.copy(tiny_recurrent_checkpoint, tmp_path / run / "best.pth")
    shutil.copy(tiny_recurrent_checkpoint, tmp_path / "rec_best.pth")
    weights = [str(tmp_path / run / "best.pth") for run in ("rec", "single")]
    weights.append(str(tmp_path / "rec_best.pth"))  # rec/best.pth's folder name
    save = tmp_path / "img"
    args = ["--weights", *weights, "--device", "cpu", "--future-frames", "0"]
    result = sarn_eval(*args, "--no-gt", str(frames_dir), "--save-images", str(save))
    assert result.returncode == 0, result.stderr
    folders = sorted(p.name for p in save.iterdir())
    assert len(folders) == 3 and "single_best.pth" in folders, folders


def test_save_images_through_a_missing_folder_makes_only_the_folder_named(
    tmp_path, tiny_recurrent_checkpoint
):
    """`--save-images new/../img` is ./img, as for --json: an empty `new` was made beside it,
    with one setting and with several."""
    write_pair(tmp_path / "data")
    weights = str(tiny_recurrent_checkpoint)
    args = ["--device", "cpu", "--future-frames", "0", "--pairs", str(tmp_path / "data")]
    typed = str(tmp_path / "new" / ".." / "img")
    for many in ([weights], [weights, "sarn_single"]):
        result = sarn_eval("--weights", *many, *args, "--save-images", typed)
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "img"]
    assert list((tmp_path / "img" / "sarn_single").glob("*.png"))  # a folder per setting


def test_weights_that_cannot_load_end_the_run_before_any_is_evaluated(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """A second weights file that is no checkpoint was found only after the first one's whole
    evaluation, whose results were then lost with the exit code 2."""
    from sarn_ros import evaluation

    evaluated = []
    real = evaluation.evaluate_gt
    monkeypatch.setattr(evaluation, "evaluate_gt", lambda *a: evaluated.append(a) or real(*a))
    write_pair(tmp_path / "data")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    args = ["--weights", str(tiny_recurrent_checkpoint), str(bad), "--device", "cpu"]
    result = sarn_eval(*args, "--pairs", str(tmp_path / "data"), "--future-frames", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("sarn eval: error: ") and "bad.pth" in result.stderr
    assert evaluated == []


def panning_frames(n: int = 4) -> list[np.ndarray]:
    """Crops of one blocky texture, moving like a panning camera: ORB finds keypoints in them
    (120x160; none are found below ~63 px) and matches them between consecutive frames."""
    rng = np.random.default_rng(0)
    scene = cv2.resize(
        rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
        (320, 240),
        interpolation=cv2.INTER_NEAREST,
    )
    return [scene[4 * i : 4 * i + 120, 6 * i : 6 * i + 160].copy() for i in range(n)]


def test_the_no_gt_proxy_compares_consecutive_frames_of_input_and_output(monkeypatch):
    """ORB matches/inliers per consecutive pair, of the input and of the deblurred frames,
    the inlier change from the inlier counts, the sharpness of each side's own frames."""
    frames = panning_frames()
    outs = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames]  # an output unlike its input
    monkeypatch.setattr(evaluation, "deblur_sequence", lambda engine, fr, name, progress: outs)
    row = evaluation.evaluate_nogt(SimpleNamespace(future_frames=2), "pan", frames)
    for side, imgs in (("_input", frames), ("", outs)):
        pairs = [metrics.orb_matches(a, b) for a, b in itertools.pairwise(imgs)]
        assert row[f"orb_matches{side}"] == [m for m, _ in pairs]
        assert row[f"orb_inliers{side}"] == [i for _, i in pairs]
        assert all(i > 0 for _, i in pairs)  # the proxy measures something here
        # a frame against itself matches every keypoint: not what consecutive frames give
        assert pairs != [metrics.orb_matches(a, a) for a in imgs[:-1]]
        expected = np.mean([metrics.sharpness(f) for f in imgs])
        assert row[f"sharpness{side}"] == pytest.approx(expected)
    assert row["sharpness"] < row["sharpness_input"] / 10  # the blurred side reads blurred
    d_inliers = np.subtract(row["orb_inliers"], row["orb_inliers_input"])
    d_matches = np.subtract(row["orb_matches"], row["orb_matches_input"])
    assert d_inliers.mean() != pytest.approx(d_matches.mean())  # the two can be told apart
    change = row["orb_inlier_change"]
    assert change["pairs"] == 3 and change["mean"] == pytest.approx(d_inliers.mean())


def test_side_by_side_images_are_saved_in_their_true_colours(tmp_path):
    """Frames are RGB; the PNG on disk must show red as red (cv2 reads it back as BGR)."""
    red = np.zeros((4, 6, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((4, 6), 40, np.uint8)  # and a grey frame beside it
    evaluation.save_side_by_side(tmp_path / "seq_ff0", [red], [grey])
    saved = cv2.imread(str(tmp_path / "seq_ff0_000.png"), cv2.IMREAD_UNCHANGED)
    assert saved.shape == (4, 12, 3)
    assert saved[0, 0].tolist() == [0, 0, 255]  # BGR order on read: red
    assert saved[0, 6].tolist() == [40, 40, 40]


def test_the_verdict_and_interval_say_what_the_inlier_counts_say():
    """The proxy's cell and verdict, from metrics.paired_change of real counts: the interval in
    order, "more"/"fewer" only where it excludes zero, the tally of pairs that went up, and a
    stream of one pair too short for an interval."""
    from sarn_ros.tools.eval import change_cell, verdict

    up = metrics.paired_change([10, 12, 11, 10], [20, 23, 21, 22])
    down = metrics.paired_change([20, 23, 21, 22], [10, 12, 11, 10])
    mixed = metrics.paired_change([10, 20, 10, 20], [20, 10, 21, 9])
    one = metrics.paired_change([10], [14])
    assert verdict(up) == "more inliers (4 of 4 pairs up)"
    assert verdict(down) == "fewer inliers (0 of 4 pairs up)"
    assert verdict(mixed) == "no clear change (2 of 4 pairs up; a longer stream narrows it)"
    assert verdict(one) == "too few frame pairs (1)"
    # none on either side (frames too small or flat): "a longer stream narrows it" misled
    none = metrics.paired_change([0, 0, 0], [0, 0, 0])
    assert verdict(none) == (
        "no RANSAC inliers in input and output (frames too small, flat or regular for the proxy)"
    )
    assert metrics.paired_change([0, 0, 0], [0, 1, 0])["verdict"] == "no clear change"
    for change in (up, down, mixed):
        mean, interval = change_cell(change).split(" [")
        low, high = interval.removesuffix("]").split(", ")
        mean, low, high = float(mean), float(low), float(high)
        assert low < mean < high
        assert (mean, low, high) == pytest.approx(
            (change["mean"], change["low"], change["high"]), abs=0.051
        )
    assert change_cell(one) == "+4.0"


def test_the_no_gt_table_puts_each_figure_under_its_own_heading(monkeypatch, capsys):
    """Every cell of a --no-gt row is the figure its column names (input vs deblurred)."""
    from sarn_ros.tools.eval import print_tables

    frames = panning_frames(5)
    outs = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames]  # fewer ORB inliers than input
    monkeypatch.setattr(evaluation, "deblur_sequence", lambda engine, fr, name, progress: outs)
    row = evaluation.evaluate_nogt(SimpleNamespace(future_frames=1), "pan", frames)
    results = {"gt": [], "gt_pooled": [], "seconds": 0.0}
    results["no_gt"] = [{"weights": "w.pth", "self_ensemble": 4, **row}]  # 4 members, look 1
    print_tables(results, {"w.pth": "w.pth"})
    lines = capsys.readouterr().out.splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[:3]]
    head, rule, body = cells
    assert len(head) == len(rule) == len(body)
    got = dict(zip(head, body, strict=True))
    assert got["sequence"] == "pan" and got["future"] == "1" and "w.pth x4" in body
    for column, key in (
        ("ORB matches input", "mean_orb_matches_input"),
        ("ORB matches deblurred", "mean_orb_matches"),
        ("ORB inliers input", "mean_orb_inliers_input"),
        ("ORB inliers deblurred", "mean_orb_inliers"),
        ("sharpness input", "sharpness_input"),
        ("sharpness", "sharpness"),
    ):
        assert float(got[column]) == pytest.approx(row[key], abs=0.051), column
    assert row["mean_orb_inliers"] != pytest.approx(row["mean_orb_inliers_input"], abs=0.1)


@pytest.mark.parametrize("closer", [True, False])
def test_the_gt_table_puts_each_figure_under_its_own_heading_gain_signed(
    monkeypatch, capsys, closer
):
    """Every cell of a ground-truth row is its column's figure, and the gain carries its sign
    either way (a '+' tells a gain from a loss at a glance, as the ORB change's cell does)."""
    from sarn_ros.data.datasets import Sequence
    from sarn_ros.tools.eval import print_tables

    rng = np.random.default_rng(1)
    sharp = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    blurred = [cv2.blur(f, (5, 1)) for f in sharp]
    outs = [cv2.blur(f, (3, 1) if closer else (9, 1)) for f in sharp]
    monkeypatch.setattr(evaluation, "deblur_sequence", lambda engine, fr, name, progress: outs)
    res, _ = evaluation.evaluate_gt(SimpleNamespace(future_frames=2), Sequence("s", blurred, sharp))
    row = {"weights": "w.pth", "self_ensemble": 1, "input": "data", **res.summary()}
    print_tables({"gt": [row], "gt_pooled": [], "no_gt": [], "seconds": 0.0}, {"w.pth": "w.pth"})
    lines = capsys.readouterr().out.splitlines()
    head, _, body = ([c.strip() for c in line.strip("|").split("|")] for line in lines[:3])
    got = dict(zip(head, body, strict=True))
    assert (got["weights"], got["sequence"], got["future"], got["frames"]) == (
        "w.pth",
        "s",
        "2",
        "3",
    )
    for column, key, places in (
        ("input PSNR", "input_psnr", 2),
        ("PSNR", "psnr", 2),
        ("input SSIM", "input_ssim", 4),
        ("SSIM", "ssim", 4),
    ):
        assert float(got[column]) == pytest.approx(row[key], abs=0.6 * 10**-places), column
    gain = row["psnr"] - row["input_psnr"]
    assert (gain > 0) == closer and got["gain dB"] == f"{'+' if closer else '-'}{abs(gain):.2f}"


def test_the_json_says_what_the_figures_were_measured_on(tmp_path, tiny_recurrent_checkpoint):
    """Figures (and seconds) compared across runs need the device and the precision as run:
    fp16 asked for on a CPU runs in fp32, bf16 runs in bf16."""
    import torch

    import sarn_ros

    write_pair(tmp_path / "data", n=2)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--pairs", str(tmp_path / "data")]
    args += ["--device", "cpu", "--future-frames", "0"]
    for asked, ran in (("bf16", "bf16"), ("fp16", "fp32")):
        out = tmp_path / f"{asked}.json"
        result = sarn_eval(*args, "--precision", asked, "--json", str(out))
        assert result.returncode == 0, result.stderr
        settings = json.loads(out.read_text())["settings"]
        assert settings["precision"] == ran and settings["device"].startswith("cpu (")
        assert settings["torch"] == torch.__version__
        assert settings["sarn_ros"] == sarn_ros.__version__
        assert settings["torch_compile"] == "off"
        assert settings["max_frames"] == 10 and "synthetic_blur" not in settings
    # --synthetic figures with the blur they were measured at, to hold against training's
    out = tmp_path / "synthetic.json"
    sharp = str(tmp_path / "data" / "seq" / "sharp")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--synthetic", sharp]
    args += ["--blur-px", "16", "--exposure", "0.5", "--max-frames", "3", "--json", str(out)]
    result = sarn_eval(*args, "--device", "cpu", "--future-frames", "0")
    assert result.returncode == 0, result.stderr
    settings = json.loads(out.read_text())["settings"]
    assert settings["max_frames"] == 3 and settings["synthetic_blur"] == {
        "blur_px": 16.0,
        "exposure": 0.5,
        "scale": 0.5,
        "seed": 1234,
    }


def test_single_image_weights_are_evaluated_once_whatever_the_look_ahead(tmp_path):
    """--future-frames only means something to recurrent weights: a single-image model gives
    the same frames at every setting, which counted as three rows (and three times the time)."""
    import torch

    from sarn_ros.archs import SARN
    from sarn_ros.checkpoint import save_checkpoint

    torch.manual_seed(0)
    single = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "single.pth")
    write_pair(tmp_path / "data", n=2)
    args = ["--weights", str(single), "--device", "cpu", "--pairs", str(tmp_path / "data")]
    result = sarn_eval(*args, "--future-frames", "0", "1", "2", "--json", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "e.json").read_text())["gt"]
    assert [(r["sequence"], r["future_frames"]) for r in rows] == [("seq", 0)]


def test_names_tell_three_or_more_weights_apart():
    """Every weights file gets a name no other one has, as short as that allows."""
    from sarn_ros.tools.eval import short_names

    weights = ["runs/a/rec/best.pth", "runs/b/rec/best.pth", "old/sarn.pth", "sarn_recurrent"]
    names = short_names(weights)
    assert names == {
        "runs/a/rec/best.pth": "a/rec/best.pth",
        "runs/b/rec/best.pth": "b/rec/best.pth",
        "old/sarn.pth": "sarn.pth",
        "sarn_recurrent": "sarn_recurrent",
    }
    assert len(set(short_names(["x/best.pth", "y/best.pth", "z/last.pth"]).values())) == 3
    # the packaged weights and a file of that name beside: two files, shown as typed
    both = ["sarn_recurrent", "./sarn_recurrent"]
    assert short_names(both) == {w: w for w in both}


def test_each_settings_image_folder_is_visible_and_its_own(tmp_path):
    """``./sarn_recurrent`` beside the packaged one saved into ``._sarn_recurrent``: hidden,
    and the prefix macOS gives its resource forks."""
    from argparse import Namespace

    from sarn_ros.tools.eval import image_folders

    weights = ["sarn_recurrent", "./sarn_recurrent", "../runs/best.pth", "/abs/best.pth"]
    args = Namespace(weights=weights, self_ensemble=[1], save_images=tmp_path)
    names = [f.name for f in image_folders(args)]
    assert len(set(names)) == 4 and not any(n.startswith((".", "_")) for n in names), names


def test_a_pairs_folder_without_pairs_is_an_error(tmp_path, capsys):
    """An empty (or mistyped-split) --pairs folder, alone or beside others, is an error naming
    it, not an evaluation that leaves it out with exit 0."""
    (tmp_path / "empty").mkdir()
    write_pair(tmp_path / "data")
    for inputs in ([tmp_path / "empty"], [tmp_path / "data", tmp_path / "empty"]):
        assert cli.main(["eval", "--pairs", *map(str, inputs), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("sarn eval: error: ") and str(tmp_path / "empty") in err, err


def test_no_gt_streams_skip_frames_and_are_read_once(tmp_path, tiny_recurrent_checkpoint):
    """--skip-frames goes with --no-gt (not refused there) and starts the stream that many
    frames in; a stream given twice is one row, not two (`blur`, `blur_2`) of the same frames."""
    blurred, _ = write_pair(tmp_path / "data", n=4)
    stream = tmp_path / "data" / "seq" / "blur"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    args += ["--no-gt", str(stream), str(stream), "--skip-frames", "1"]
    result = sarn_eval(*args, "--json", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "e.json").read_text())["no_gt"]
    assert [(r["sequence"], r["frames"]) for r in rows] == [("blur", 3)]
    row = rows[0]
    expected = np.mean([metrics.sharpness(f) for f in blurred[1:]])
    assert row["sharpness_input"] == pytest.approx(expected)


def test_a_folder_of_streams_given_to_no_gt_is_each_of_them(tmp_path, tiny_recurrent_checkpoint):
    """`--no-gt bags/` (a day's runs) was refused, naming the very recordings it said were not
    there, where --synthetic and train's --data read such a folder; one given in it as well
    is read once, and an empty folder stays an error."""
    from test_deblur_offline import frames, write_video

    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("a", "b"):
        write_video(runs / f"{name}.mp4", frames(3))
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    result = sarn_eval(
        *args, "--no-gt", str(runs), str(runs / "b.mp4"), "--json", str(tmp_path / "e.json")
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "e.json").read_text())["no_gt"]
    assert [(r["sequence"], r["frames"]) for r in rows] == [("a", 3), ("b", 3)]
    write_pair(tmp_path / "pairs", n=3)  # a sequence's ground truth is no camera's stream
    result = sarn_eval(
        *args, "--no-gt", str(tmp_path / "pairs" / "seq"), "--json", str(tmp_path / "p.json")
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "p.json").read_text())["no_gt"]
    assert [(r["sequence"], r["frames"]) for r in rows] == [("blur", 3)]
    assert f"note: --no-gt {tmp_path / 'pairs' / 'seq'}: sharp not read: its ground truth" in (
        result.stderr
    )
    # GoPro's blur_gamma/ beside blur/: one stream of the sequence, not two
    shutil.copytree(tmp_path / "pairs" / "seq" / "blur", tmp_path / "pairs" / "seq" / "blur_gamma")
    result = sarn_eval(
        *args, "--no-gt", str(tmp_path / "pairs" / "seq"), "--json", str(tmp_path / "p.json")
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "p.json").read_text())["no_gt"]
    assert [r["sequence"] for r in rows] == [
        "blur"
    ] and "blur_gamma, sharp not read" in result.stderr
    (tmp_path / "mine" / "input").mkdir(parents=True)  # a stream of one's own beside a pair
    shutil.copytree(tmp_path / "pairs" / "seq", tmp_path / "mine" / "seq")
    shutil.copytree(
        tmp_path / "pairs" / "seq" / "blur", tmp_path / "mine" / "input", dirs_exist_ok=True
    )
    result = sarn_eval(*args, "--no-gt", str(tmp_path / "mine"), "--json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "m.json").read_text())["no_gt"]
    assert [r["sequence"] for r in rows] == ["input"]
    assert f"note: --no-gt {tmp_path / 'mine'}: not read: seq/blur (blurred/sharp" in result.stderr
    linked = tmp_path / "linked"  # sides that are links to folders elsewhere
    linked.mkdir()
    for side in ("blur", "sharp"):
        (linked / side).symlink_to(tmp_path / "pairs" / "seq" / side)
    result = sarn_eval(*args, "--no-gt", str(linked), "--json", str(tmp_path / "l.json"))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "l.json").read_text())["no_gt"]
    assert [r["sequence"] for r in rows] == ["blur"] and "sharp not read" in result.stderr
    result = sarn_eval(*args, "--no-gt", str(tmp_path / "pairs"))  # sequences one level down
    assert result.returncode == 2
    assert f"--no-gt {tmp_path / 'pairs'} holds blurred/sharp pairs and no stream" in result.stderr
    (tmp_path / "empty").mkdir()
    result = sarn_eval(*args, "--no-gt", str(tmp_path / "empty"))
    assert (
        result.returncode == 2 and f"no images or rosbag2 in {tmp_path / 'empty'}" in result.stderr
    )


def test_a_synthetic_bag_takes_topics(tmp_path, tiny_recurrent_checkpoint):
    """--topics and --debayer choose the cameras of a --synthetic bag as of a --no-gt one."""
    StoragePlugin = pytest.importorskip("rosbags.rosbag2").StoragePlugin
    from test_deblur_offline import write_bag

    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    args += ["--synthetic", str(tmp_path / "bag"), "--max-frames", "2", "--scale", "1"]
    result = sarn_eval(*args, "--topics", "/right/image_raw", "--debayer", "bilinear")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "image_raw" in line]
    assert len(rows) == 1 and "/right/image_raw" in rows[0], result.stdout


@pytest.mark.parametrize(
    "extra",
    [["--scale", "0.8"], ["--scale", "0.2"], ["--blur-px", "30"], ["--blur-px", "0"]],
)
def test_synthetic_settings_either_side_of_their_defaults_are_refused_without_it(tmp_path, extra):
    """--scale and --blur-px mean nothing without --synthetic, above their default as below."""
    write_pair(tmp_path / "data")
    result = sarn_eval("--pairs", str(tmp_path / "data"), *extra)
    assert result.returncode == 2 and result.stdout == ""
    flag = extra[0]
    assert result.stderr.strip() == f"sarn eval: error: not used in this run: {flag} (--synthetic)"


def test_a_stream_without_a_frame_pair_has_no_orb_figure(tmp_path, tiny_recurrent_checkpoint):
    """One frame gives no pair to match: its ORB means read 0.0, as if ORB had found nothing
    (what a 1 px wide frame gives), where nothing was measured."""
    write_pair(tmp_path / "data", n=1)
    write_pair(tmp_path / "two", n=2)
    out = tmp_path.parent / f"{tmp_path.name}_one.json"
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--json", str(out)]
    args += ["--future-frames", "0", "--no-gt", str(tmp_path / "data" / "seq" / "sharp")]
    result = sarn_eval(*args, str(tmp_path / "two" / "seq" / "sharp"))
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "too few frame pairs (0)" in line]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:7] == ["-"] * 4 and cells[-2] == "-"  # no inlier change either (+0.0)
    r, two = json.loads(out.read_text())["no_gt"]
    assert (r["input"], two["input"]) == (args[-1], str(tmp_path / "two" / "seq" / "sharp"))
    keys = ("matches_input", "matches", "inliers_input", "inliers")
    assert [r[f"mean_orb_{k}"] for k in keys] == [None] * 4
    assert r["orb_inlier_change"]["mean"] is None and r["orb_inlier_change"]["pairs"] == 0


def test_an_eval_with_no_frame_pair_anywhere_is_an_error(tmp_path, tiny_recurrent_checkpoint):
    """Every --no-gt stream a single frame (with nothing else to score): a table of dashes and
    exit 0 measured nothing."""
    write_pair(tmp_path / "data", n=1)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    result = sarn_eval(*args, "--no-gt", str(tmp_path / "data" / "seq" / "sharp"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().endswith(
        "sarn eval: error: no --no-gt stream has two frames in a row for the ORB proxy to compare"
    )


def test_saved_images_read_input_then_deblurred_then_sharp(tmp_path, monkeypatch):
    """The order the demo strip and README name; a swap would show the sharp frame as the
    network's output."""
    from sarn_ros.data.datasets import Sequence

    def tile(value: int) -> list[np.ndarray]:
        return [np.full((4, 6, 3), value, np.uint8)] * 2

    monkeypatch.setattr(evaluation, "deblur_sequence", lambda *_args: tile(100))
    engine = SimpleNamespace(future_frames=0)
    evaluation.evaluate_gt(engine, Sequence("seq", tile(10), tile(200)), save_dir=tmp_path)
    strip = cv2.imread(str(tmp_path / "seq_ff0_000.png"))
    assert [int(strip[0, x, 0]) for x in (0, 6, 12)] == [10, 100, 200]


def test_a_no_gt_stream_shorter_than_skip_frames_is_left_out_not_the_run(
    tmp_path, tiny_recurrent_checkpoint
):
    """One bag of a folder of runs shorter than --skip-frames ended the whole run ("no
    readable frames in short"), the others unscored: left out with a note, as a bag's silent
    topic is; alone, it is still the run's error."""
    rng = np.random.default_rng(0)
    for name, n in (("long", 6), ("short", 3)):
        (tmp_path / name).mkdir()
        for i in range(n):
            img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), img)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--future-frames", "0"]
    args += ["--skip-frames", "3", "--json", str(tmp_path / "e.json"), "--no-gt"]
    result = sarn_eval(*args, str(tmp_path / "long"), str(tmp_path / "short"))
    assert result.returncode == 0, result.stderr
    note = "note: --no-gt: left out: no readable frames in short (it has 3, --skip-frames is 3)"
    assert note in result.stderr
    rows = json.loads((tmp_path / "e.json").read_text())["no_gt"]
    assert [r["sequence"] for r in rows] == ["long"]
    result = sarn_eval(*args, str(tmp_path / "short"))
    assert result.returncode == 2
    assert "no readable frames in short (it has 3, --skip-frames is 3)" in result.stderr
