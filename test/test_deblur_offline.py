"""`sarn deblur` on videos, image folders and rosbag2 files (sqlite3 and mcap)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("rosbags", reason="the bag tests need rosbags (README: colcon test)")
from rosbags.highlevel import AnyReader
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from test_eval import run_sarn

from sarn_ros.ensemble import SelfEnsembleDeblurrer, make_engine
from sarn_ros.evaluation import deblur_sequence
from sarn_ros.offline import (
    FrameSink,
    InputError,
    camera_ns,
    choose_topics,
    deblur_bag,
    deblur_folder,
    deblur_video,
    nearest,
)
from sarn_ros.ros.image_conversion import decode_image, image_to_numpy
from sarn_ros.tools import cli

STORE = get_typestore(Stores.ROS2_HUMBLE)
T = STORE.types
# a camera driver's sensor-data QoS (best effort, keep last 5)
SENSOR_QOS = Qos(
    QosHistory.KEEP_LAST,
    5,
    QosReliability.BEST_EFFORT,
    QosDurability.VOLATILE,
    QosTime(0, 0),
    QosTime(0, 0),
    QosLiveliness.AUTOMATIC,
    QosTime(0, 0),
    False,
)


def deblur(*args: str) -> subprocess.CompletedProcess:
    return run_sarn("deblur", *args, "--device", "cpu")


def frames(n: int, h: int = 32, w: int = 48, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def write_video(
    path: Path, imgs: list[np.ndarray], fps: float = 10.0, fourcc: str = "mp4v"
) -> None:
    """RGB or grey frames as a video (written BGR, as OpenCV does)."""
    h, w = imgs[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for img in imgs:
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img[..., ::-1])
    writer.release()


def test_video_keeps_frame_count_and_fps(tmp_path, tiny_recurrent_checkpoint):
    src = tmp_path / "in.mp4"
    write_video(src, frames(7), fps=12.0)
    result = deblur(
        str(src), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_recurrent_checkpoint)
    )
    assert result.returncode == 0, result.stderr
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    # a folder gets the same frames as lossless PNGs, in order
    folder = deblur(
        str(src), "-o", str(tmp_path / "frames"), "--weights", str(tiny_recurrent_checkpoint)
    )
    assert folder.returncode == 0, folder.stderr
    pngs = sorted((tmp_path / "frames").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(7)]
    cap = cv2.VideoCapture(str(src))
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    expected = deblur_sequence(engine, [cap.read()[1][..., ::-1].copy() for _ in range(7)], "v")
    for p, e in zip(pngs, expected, strict=True):
        assert np.abs(cv2.imread(str(p))[..., ::-1].astype(int) - e).max() <= 1
    # an output OpenCV would silently not write is refused before any work
    bad = deblur(str(src), "-o", str(tmp_path / "out.png"))
    assert bad.returncode == 2 and "a video file" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "out.png").exists()
    # a trailing '/' says "folder" for a new name with a dot (argparse's Path dropped it)
    dotted = deblur(str(src), "-o", f"{tmp_path / 'frames.v2'}/", "--max-frames", "2")
    assert dotted.returncode == 0, dotted.stderr
    assert sorted(p.name for p in (tmp_path / "frames.v2").iterdir()) == [
        "000000.png",
        "000001.png",
    ]


def test_folder_keeps_names_and_skips_a_corrupt_file(tmp_path, tiny_recurrent_checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    names = ["frame_2.png", "frame_10.png", "frame_1.jpg"]
    for name, f in zip(names, frames(3), strict=True):
        cv2.imwrite(str(src / name), f)
    (src / "frame_5.png").write_bytes(b"not a png")
    result = deblur(
        str(src), "-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    assert "1 unreadable frame skipped (first: frame_5.png)" in result.stdout
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    in_place = deblur(str(src), "-o", str(src) + "/", "--weights", str(tiny_recurrent_checkpoint))
    assert in_place.returncode == 2 and "is the input" in in_place.stderr
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_a_single_image_into_a_file_or_a_folder(tmp_path, tiny_recurrent_checkpoint):
    """`sarn deblur photo.png -o sharp.png` was "unknown input type": a user's first try."""
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), frames(1, seed=7)[0])
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(src), "-o", str(tmp_path / "sharp.png"), *weights)
    assert result.returncode == 0, result.stderr
    assert f"1 frame -> {tmp_path / 'sharp.png'} in " in result.stdout
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    (expected,) = deblur_sequence(engine, [cv2.imread(str(src))[..., ::-1].copy()], "p")
    got = cv2.imread(str(tmp_path / "sharp.png"))[..., ::-1]
    assert np.abs(got.astype(int) - expected).max() <= 1
    # into a folder (made, or there already with other images): under its own name
    into = deblur(str(src), "-o", f"{tmp_path / 'out.d'}/", *weights, "--side-by-side")
    assert into.returncode == 0, into.stderr
    assert [p.name for p in (tmp_path / "out.d").iterdir()] == ["photo.png"]
    assert cv2.imread(str(tmp_path / "out.d" / "photo.png")).shape == (32, 96, 3)
    # an earlier output is replaced only under --overwrite; a JPEG takes --jpeg-quality
    before = (tmp_path / "sharp.png").read_bytes()
    again = deblur(str(src), "-o", str(tmp_path / "sharp.png"), *weights)
    assert again.returncode == 2 and "sharp.png already exists: pass --overwrite" in again.stderr
    assert (tmp_path / "sharp.png").read_bytes() == before
    for name, options in (("s.jpg", ["--jpeg-quality", "50"]), ("s95.jpg", [])):
        jpeg = deblur(str(src), "-o", str(tmp_path / name), *options, *weights)
        assert jpeg.returncode == 0 and cv2.imread(str(tmp_path / name)).shape == (32, 48, 3)
    assert (tmp_path / "s.jpg").stat().st_size < (tmp_path / "s95.jpg").stat().st_size
    other = tmp_path / "other.png"  # a second image into the folder: no --overwrite needed
    cv2.imwrite(str(other), frames(1, seed=8)[0])
    assert deblur(str(other), "-o", str(tmp_path / "out.d"), *weights).returncode == 0
    assert sorted(p.name for p in (tmp_path / "out.d").iterdir()) == ["other.png", "photo.png"]
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    for out, options, said in (
        (tmp_path, [], "is the input itself"),  # its own folder: its own name
        (tmp_path / "s.mp4", [], "an image is deblurred into an image file"),
        (tmp_path / "t.png", ["--fps", "5"], "not used in this run: --fps"),
        (tmp_path / "t.png", ["--jpeg-quality", "50"], "not used in this run: --jpeg-quality"),
        (tmp_path / "t.png", ["--skip-frames", "1"], "not used in this run: --skip-frames"),
        (tmp_path / "t.png", ["--max-frames", "1"], "not used in this run: --max-frames"),
        (tmp_path / "dangling.png", [], "is a link to nothing"),  # not "pass --overwrite"
    ):
        refused = deblur(str(src), "-o", str(out), *options, *weights)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
    assert not (tmp_path / "s.mp4").exists() and not (tmp_path / "t.png").exists()
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    bad = deblur(str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "new" / "t.png"), *weights)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.endswith(f"{tmp_path / 'bad.jpg'} decodes to no 8- or 16-bit image\n")
    assert not (tmp_path / "new").exists()  # the folder made for it is gone with the run


def test_folder_into_a_video_at_fps_and_mixed_sizes_refused(tmp_path, tiny_recurrent_checkpoint):
    src = write_folder(tmp_path / "in", frames(5, seed=4))
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(src), "-o", str(tmp_path / "out.mp4"), "--fps", "12", *weights)
    assert result.returncode == 0, result.stderr
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    cv2.imwrite(str(src / "9.png"), frames(1, h=16, w=16)[0])  # a video has one frame size
    mixed = deblur(str(src), "-o", str(tmp_path / "mixed.mp4"), *weights)
    assert mixed.returncode == 2 and mixed.stderr.endswith(
        "error: output frames of sizes 48x32 and 16x16 (16x16 from 9.png on); a video holds "
        "one size: write a folder instead\n"
    ), mixed.stderr  # the frame named: in a folder of thousands the sizes left a search
    assert not (tmp_path / "mixed.mp4").exists()  # the 5 frames before it would pass for all


def write_folder(folder: Path, imgs: list[np.ndarray]) -> Path:
    """RGB frames as 0.png, 1.png, ... (written BGR, as OpenCV does)."""
    folder.mkdir()
    for i, f in enumerate(imgs):
        cv2.imwrite(str(folder / f"{i}.png"), f[..., ::-1])
    return folder


def assert_folder_matches(out: Path, expected: list[np.ndarray]) -> None:
    for i, e in enumerate(expected):
        got = cv2.imread(str(out / f"{i}.png"))[..., ::-1]
        assert np.abs(got.astype(int) - e).max() <= 1


def test_a_video_that_cannot_be_written_leaves_the_file_there(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys
):
    """A writer OpenCV could not open (a read-only earlier result, as another user) was
    taken for this run's half-written video and deleted."""
    from sarn_ros import offline

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "0.png"), frames(1)[0])
    (tmp_path / "keep.mp4").write_bytes(b"an earlier result")
    unopened = cv2.VideoWriter
    monkeypatch.setattr(offline.cv2, "VideoWriter", lambda *args: unopened())
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    argv = ["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "keep.mp4"), *weights]
    assert cli.main([*argv, "--overwrite"]) == 2
    assert "cannot write video" in capsys.readouterr().err
    assert (tmp_path / "keep.mp4").read_bytes() == b"an earlier result"


def test_an_earlier_output_is_kept_unless_overwrite_and_a_failed_run_leaves_it(
    tmp_path, tiny_recurrent_checkpoint, capsys
):
    """An existing video was replaced without a word, and deleted when the run then failed
    (frames of two sizes); a folder mixed two runs' frames; a video in a folder not yet made
    could not be written, and .mpg came back at another frame rate."""
    src = write_folder(tmp_path / "in", frames(3, seed=5))
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    keep = tmp_path / "keep.mp4"
    keep.write_bytes(b"an earlier result")
    assert cli.main(["deblur", str(src), "-o", str(keep), *weights]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    cv2.imwrite(str(src / "9.png"), frames(1, h=16, w=16)[0])  # the run fails at the 4th
    assert cli.main(["deblur", str(src), "-o", str(keep), "--overwrite", *weights]) == 2
    assert "write a folder instead" in capsys.readouterr().err
    assert keep.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "keep.mp4"]  # no part left
    lost = tmp_path / "lost" / "deeper" / "x.mp4"  # the folders made for it go with it
    assert cli.main(["deblur", str(src), "-o", str(lost), *weights]) == 2
    assert "write a folder instead" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "keep.mp4"]
    (src / "9.png").unlink()
    keep.chmod(0o600)  # the video written over it keeps its mode, as an image does
    assert cli.main(["deblur", str(src), "-o", str(keep), "--overwrite", *weights]) == 0
    assert int(cv2.VideoCapture(str(keep)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert keep.stat().st_mode & 0o777 == 0o600

    out = tmp_path / "out"
    assert cli.main(["deblur", str(src), "-o", str(out), *weights]) == 0
    assert cli.main(["deblur", str(src), "-o", str(out), *weights]) == 2
    assert "already holds images: pass --overwrite" in capsys.readouterr().err
    assert cli.main(["deblur", str(src), "-o", str(out), "--overwrite", *weights]) == 0
    assert "not from this run" not in capsys.readouterr().err  # each image written again
    old = time.time() - 60  # a longer earlier run's last frame, left beside a shorter one's
    (out / "9.png").write_bytes((out / "0.png").read_bytes())
    os.utime(out / "9.png", (old, old))
    assert cli.main(["deblur", str(src), "-o", str(out), "--overwrite", *weights]) == 0
    assert f"note: 1 image in {out} not from this run" in capsys.readouterr().err

    deep = tmp_path / "new" / "deeper" / "x.mp4"
    assert cli.main(["deblur", str(src), "-o", str(deep), *weights]) == 0
    assert int(cv2.VideoCapture(str(deep)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capsys.readouterr()
    assert cli.main(["deblur", str(src), "-o", str(tmp_path / "x.mpg"), *weights]) == 2
    assert "a video file (.avi, .m4v, .mkv, .mov, .mp4)" in capsys.readouterr().err
    assert cli.main(["deblur", str(src), "-o", str(tmp_path / "out.v2"), *weights]) == 2
    hint = f"or a folder for images (a new one named with a dot ends in '/': {tmp_path}/out.v2/)"
    assert hint in capsys.readouterr().err  # a folder was meant: how to say so
    assert cli.main(["deblur", str(src), "-o", f"{tmp_path}/out.v2/", *weights]) == 0
    assert sorted(p.name for p in (tmp_path / "out.v2").iterdir()) == ["0.png", "1.png", "2.png"]


def under_file_size_limit(limit: int) -> Callable[[], None]:
    """A child's set-up: files cut at ``limit`` bytes, writes past it failing (EFBIG), as on
    a full disk, not the SIGXFSZ that would end it."""
    import resource
    import signal

    def set_up() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_up


def test_a_video_whose_writes_failed_is_an_error_not_a_file_cut_short(
    tmp_path, tiny_recurrent_checkpoint
):
    """OpenCV's writer says nothing of a failed write: a full disk left a file cut short that
    would not play, exit 0, in place of the video, or of an earlier one under --overwrite."""
    src = write_folder(tmp_path / "in", frames(6, h=240, w=320, seed=9))
    earlier = tmp_path / "earlier.mp4"
    write_video(earlier, frames(2))
    before = earlier.read_bytes()
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    # an AVI cut in its index (or last frame) still stated every frame, written at its start
    whole = tmp_path / "whole.avi"
    assert deblur(str(src), "-o", str(whole), "--max-frames", "1", *weights).returncode == 0
    avi_limit = whole.stat().st_size - 100
    whole.unlink()
    for out, options, limit in (
        (earlier, ["--overwrite"], 60_000),  # 6 frames of noise: some 10x that
        (tmp_path / "new.mkv", [], 60_000),
        (whole, ["--max-frames", "1"], avi_limit),
    ):
        argv = [sys.executable, "-m", "sarn_ros.tools.cli", "deblur", str(src), "-o", str(out)]
        done = subprocess.run(
            [*argv, *options, *weights],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=under_file_size_limit(limit),
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.endswith(
            f"error: cannot write video {out}: the file written does not play back whole (a "
            "full disk? a file size limit?), so it is not kept\n"
        ), done.stderr
    assert earlier.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.mp4", "in"]  # no part left


def test_a_frame_rate_mpeg4_cannot_hold_is_rounded(tmp_path, tiny_recurrent_checkpoint, caplog):
    """A phone's slow motion (239.877 fps) needs a time base over 65535 ticks a second:
    "cannot write video", after the model had loaded."""
    src = write_folder(tmp_path / "in", frames(2, seed=6))
    dst = tmp_path / "slow.mp4"
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    assert cli.main(["deblur", str(src), "-o", str(dst), "--fps", "239.877", *weights]) == 0
    assert "written at 239.88 fps (MPEG-4 cannot hold 239.877)" in caplog.text
    cap = cv2.VideoCapture(str(dst))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(239.877, abs=0.01)
    # run as users run it (no logging set up): a line of its own, not the bar's line's end
    from sarn_ros.resources import script_command

    dst.unlink()
    argv = ["deblur", str(src), "-o", str(dst), "--fps", "239.877", *weights]
    run = subprocess.run(
        [*script_command("sarn"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = [line.split("\r")[-1].rstrip() for line in run.stderr.split("\n")]
    expected = f"sarn deblur: {dst}: written at 239.88 fps (MPEG-4 cannot hold 239.877)"
    assert expected in lines, run.stderr


def test_a_video_of_non_square_pixels_is_said_to_lose_its_shape(
    tmp_path, tiny_recurrent_checkpoint, caplog
):
    """An anamorphic video (DV, HDV's 1440x1080) came out with square pixels, played
    squeezed, unsaid; a folder's frames keep the stored pixels SLAM is calibrated on."""
    src = tmp_path / "anamorphic.mp4"
    write_video(src, frames(3, seed=2))
    data = bytearray(src.read_bytes())
    vol = data.find(b"\x00\x00\x01\x20") + 4  # MPEG-4 part 2's video object layer header
    bits = f"{int.from_bytes(data[vol : vol + 4], 'big'):032b}"
    at = 10 + 7 * int(bits[9])  # past the layer's identifier, if it has one
    assert bits[at : at + 4] == "0001"  # aspect_ratio_info 1: square
    bits = bits[:at] + "0010" + bits[at + 4 :]  # 2: 12:11, PAL 4:3's
    data[vol : vol + 4] = int(bits, 2).to_bytes(4, "big")
    src.write_bytes(bytes(data))
    cap = cv2.VideoCapture(str(src))
    assert (cap.get(cv2.CAP_PROP_SAR_NUM), cap.get(cv2.CAP_PROP_SAR_DEN)) == (12, 11)
    h, w = frames(1)[0].shape[:2]
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    assert cli.main(["deblur", str(src), "-o", str(tmp_path / "out.mp4"), *weights]) == 0
    said = (
        f"{src} has non-square pixels (sample aspect ratio 12:11): {tmp_path / 'out.mp4'} is "
        "written with square ones, so players show it narrower; ffmpeg's -aspect "
    )
    shown = Fraction(w * 12, h * 11)
    assert f"{said}{shown.numerator}:{shown.denominator} with -c copy" in caplog.text
    caplog.clear()
    sbs = ["--side-by-side", "-o", str(tmp_path / "sbs.mp4")]
    assert cli.main(["deblur", str(src), *sbs, *weights]) == 0
    shown *= 2  # the -aspect of the output: twice as wide
    assert f"-aspect {shown.numerator}:{shown.denominator} with -c copy" in caplog.text
    caplog.clear()
    assert cli.main(["deblur", str(src), "-o", str(tmp_path / "out"), *weights]) == 0
    assert "non-square" not in caplog.text


def test_a_slow_rate_the_writer_rounds_is_said(tmp_path, tiny_recurrent_checkpoint, caplog):
    """OpenCV's writer holds a rate to within 0.001: a frame a minute (1/60 fps) came out at
    0.017 fps, 2 % fast, unsaid; 30 fps is held exactly and says nothing."""
    src = write_folder(tmp_path / "in", frames(2, seed=6))
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    for fps, dst in (("0.0166667", "slow.mp4"), ("30", "plain.mp4")):
        assert (
            cli.main(["deblur", str(src), "-o", str(tmp_path / dst), "--fps", fps, *weights]) == 0
        )
    written = cv2.VideoCapture(str(tmp_path / "slow.mp4")).get(cv2.CAP_PROP_FPS)
    assert written == pytest.approx(0.017, abs=1e-6)
    assert f"{tmp_path / 'slow.mp4'}: written at 0.017 fps, not 0.0166667" in caplog.text
    assert "plain.mp4: written" not in caplog.text


def test_16_bit_frames_in_8_bit_files_and_a_folder_named_like_a_video(
    tmp_path, tiny_recurrent_checkpoint
):
    """A 16-bit PNG misnamed .jpg (read by its content) came out all white: imwrite saturates
    16-bit values in an 8-bit format. An existing folder named like a video takes images."""
    ramp = np.linspace(0, 65535, 48)[None, :, None] * np.linspace(0.2, 1, 32)[:, None, None]
    img = np.repeat(ramp, 3, axis=2).astype(np.uint16)  # smooth: JPEG keeps it closely
    outs = {}
    for name in ("x.png", "x.jpg"):
        src, dst = tmp_path / f"in_{name}", tmp_path / f"out_{name}.mp4"
        src.mkdir()
        dst.mkdir()
        assert cv2.imencode(".png", img)[1].tofile(str(src / name)) is None
        result = deblur(str(src), "-o", str(dst), "--weights", str(tiny_recurrent_checkpoint))
        assert result.returncode == 0, result.stderr
        outs[name] = cv2.imread(str(dst / name), cv2.IMREAD_UNCHANGED)
    assert outs["x.png"].dtype == np.uint16 and outs["x.jpg"].dtype == np.uint8
    eight_bit = (outs["x.png"] >> 8).astype(int)
    assert np.abs(outs["x.jpg"].astype(int) - eight_bit).mean() < 8  # JPEG's loss only


def test_ctrl_c_says_what_is_left_in_one_line(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys
):
    """Ctrl-C printed a KeyboardInterrupt traceback; the frames written so far stay."""
    from sarn_ros import ensemble, offline
    from sarn_ros.tools import eval as eval_module

    (tmp_path / "in").mkdir()
    for i, img in enumerate(frames(5)):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), img)
    read_frame = offline.read_frame

    def ctrl_c_at(path: Path, name: str = "3.png"):
        if path.name == name:
            raise KeyboardInterrupt
        return read_frame(path)

    monkeypatch.setattr(offline, "read_frame", ctrl_c_at)  # the fourth frame
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    assert cli.main(["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *weights]) == 130
    err = capsys.readouterr().err
    assert (
        err.splitlines()[-1]
        == f"sarn deblur: interrupted; {tmp_path / 'out'} has the first 1 frame"
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0.png"]  # 1, 2: look-ahead
    # a bar that counts nothing (TQDM_DISABLE=1, as in CI logs) said "nothing was written"
    with monkeypatch.context() as quiet:
        quiet.setattr("tqdm.tqdm.update", lambda self, n=1: None)
        out = tmp_path / "quiet"
        assert cli.main(["deblur", str(tmp_path / "in"), "-o", str(out), *weights]) == 130
    assert capsys.readouterr().err.endswith(f"interrupted; {out} has the first 1 frame\n")
    # before the first frame is out (it waits for two of look-ahead), and while the model loads
    for first, out in (("1.png", tmp_path / "first.mp4"), ("0.png", tmp_path / "first")):
        monkeypatch.setattr(offline, "read_frame", lambda p, f=first: ctrl_c_at(p, f))
        assert cli.main(["deblur", str(tmp_path / "in"), "-o", str(out), *weights]) == 130
        last = capsys.readouterr().err.splitlines()[-1]
        assert last == f"sarn deblur: interrupted; nothing was written to {out}"
    # over an earlier whole video (--overwrite): its first frames replaced it
    whole = tmp_path / "whole.mp4"
    monkeypatch.setattr(offline, "read_frame", read_frame)
    assert cli.main(["deblur", str(tmp_path / "in"), "-o", str(whole), *weights]) == 0
    before = whole.read_bytes()
    monkeypatch.setattr(offline, "read_frame", ctrl_c_at)
    again = ["deblur", str(tmp_path / "in"), "-o", str(whole), "--overwrite", *weights]
    assert cli.main(again) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"sarn deblur: interrupted; {whole} is left as it was (a stopped run replaces no whole "
        "video)"
    )
    assert whole.read_bytes() == before and not list(tmp_path.glob(".whole*"))
    monkeypatch.setattr(offline, "read_frame", read_frame)

    def ctrl_c(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ensemble, "make_engine", ctrl_c)
    out = str(tmp_path / "loading")
    assert cli.main(["deblur", str(tmp_path / "in"), "-o", out, *weights]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "sarn deblur: interrupted"

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_module, "run", interrupted)  # any command: one line, exit 130
    assert cli.main(["eval", "--pairs", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "sarn eval: interrupted"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_keeps_the_frames_written_as_ctrl_c_does(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys, signame
):
    """timeout, docker stop, systemd or a closed terminal killed the run at once: a hidden
    half-written video stayed beside the output, and nothing under its name. Not where the
    signal is ignored (nohup): there the run goes on to the end."""
    import signal

    from sarn_ros import offline

    signum = getattr(signal, signame)
    src = write_folder(tmp_path / "in", frames(6))
    read_frame = offline.read_frame

    def killed_at_the_fifth(path: Path):
        if path.name == "4.png":
            os.kill(os.getpid(), signum)
        return read_frame(path)

    monkeypatch.setattr(offline, "read_frame", killed_at_the_fifth)
    finish = offline.FrameSink.__exit__

    def signalled_again(self, *exc):  # the second SIGHUP of a closed terminal, mid clean-up
        os.kill(os.getpid(), signum)
        return finish(self, *exc)

    monkeypatch.setattr(offline.FrameSink, "__exit__", signalled_again)
    out = tmp_path / "out.mp4"
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    previous = signal.signal(signum, signal.SIG_DFL)  # as a shell starts it
    try:
        assert cli.main(["deblur", str(src), "-o", str(out), *weights]) == 128 + signum
        last = capsys.readouterr().err.splitlines()[-1]
        assert last == f"sarn deblur: stopped by {signame}; {out} has the first 2 frames"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.mp4"]  # no part left
        assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == 2
        assert signal.getsignal(signum) is signal.SIG_DFL  # given back
        out.unlink()
        signal.signal(signum, signal.SIG_IGN)  # as under nohup
        assert cli.main(["deblur", str(src), "-o", str(out), *weights]) == 0
    finally:
        signal.signal(signum, previous)
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_a_video_stating_no_frame_rate_is_taken_at_30_with_a_warning(caplog):
    from types import SimpleNamespace

    from sarn_ros.offline import stated_fps

    with caplog.at_level("WARNING"):
        assert stated_fps(SimpleNamespace(get=lambda prop: 0.0), Path("v.avi")) == 30.0
    assert "v.avi states no frame rate: taken as 30 fps" in caplog.text


def test_an_input_named_like_a_half_written_output_is_read_whole(
    tmp_path, tiny_recurrent_checkpoint
):
    """The half-written video had one fixed name, .<stem>.part<ext>: an input of that name
    (one a killed run left) was emptied as it was read, then moved onto the output, exit 0.
    Videos of the rarer containers (.3gp from a phone) are read too."""
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    for name in (".x.part.mp4", "phone.3gp"):
        src = tmp_path / name
        write_video(src, frames(5))
        before = src.read_bytes()
        result = deblur(str(src), "-o", str(tmp_path / "x.mp4"), "--overwrite", *weights)
        assert result.returncode == 0, result.stderr
        assert src.read_bytes() == before
        assert int(cv2.VideoCapture(str(tmp_path / "x.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.part.mp4", "phone.3gp", "x.mp4"]
    (tmp_path / "x.unknown").write_bytes(before)
    unknown = deblur(str(tmp_path / "x.unknown"), "-o", str(tmp_path / "y.mp4"))
    assert unknown.returncode == 2 and ".3gp" in unknown.stderr and ".mts" in unknown.stderr


def test_folder_with_self_ensemble_matches_the_engine(tmp_path, tiny_recurrent_checkpoint):
    imgs = frames(3, seed=3)
    src = write_folder(tmp_path / "in", imgs)
    args = ["--weights", str(tiny_recurrent_checkpoint), "--future-frames", "1"]
    result = deblur(str(src), "-o", str(tmp_path / "out"), *args, "--self-ensemble", "2")
    assert result.returncode == 0, result.stderr
    engine = SelfEnsembleDeblurrer(
        tiny_recurrent_checkpoint, members=2, device="cpu", future_frames=1, max_gap_s=None
    )
    assert_folder_matches(tmp_path / "out", deblur_sequence(engine, imgs, "check"))
    assert deblur(str(src), "-o", str(tmp_path / "o2"), "--self-ensemble", "3").returncode == 2


def test_folder_with_torch_compile_matches_the_eager_engine(tmp_path, tiny_recurrent_checkpoint):
    imgs = frames(3, seed=4)
    src = write_folder(tmp_path / "in", imgs)
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(src), "-o", str(tmp_path / "out"), *weights, "--torch-compile")
    assert result.returncode == 0, result.stderr
    assert "torch.compile on" in result.stdout
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    assert_folder_matches(tmp_path / "out", deblur_sequence(engine, imgs, "check"))


def header(i: int, frame_id: str):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=10, nanosec=i * 33_333_333), frame_id=frame_id
    )


def bag_image(pixels: np.ndarray, encoding: str, hdr):
    """A rosbags sensor_msgs/Image of ``pixels`` as stored (no row padding)."""
    return T["sensor_msgs/msg/Image"](
        header=hdr,
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=pixels[0].nbytes,
        data=pixels.view(np.uint8).reshape(-1),
    )


def camera_info(hdr, focal: float = 1.0):
    """A 48x32 camera's CameraInfo; K = diag(focal, focal, 1)."""
    return T["sensor_msgs/msg/CameraInfo"](
        header=hdr,
        height=32,
        width=48,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.diag([focal, focal, 1.0]).reshape(-1),
        r=np.eye(3).reshape(-1),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def write_bag(
    path: Path, plugin: StoragePlugin, compression: CompressionMode | None = None
) -> dict[str, list[np.ndarray]]:
    sent: dict[str, list[np.ndarray]] = {"left": frames(4, seed=1), "right": frames(4, seed=2)}
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression is not None:  # ros2 bag record --compression-mode file|message
        writer.set_compression(compression, CompressionFormat.ZSTD)
    with writer as w:
        conns = {}
        for cam in sent:
            conns[cam] = w.add_connection(
                f"/{cam}/image_raw",
                "sensor_msgs/msg/Image",
                typestore=STORE,
                offered_qos_profiles=[SENSOR_QOS],
            )
            conns[cam + "_info"] = w.add_connection(
                f"/{cam}/camera_info",
                "sensor_msgs/msg/CameraInfo",
                typestore=STORE,
                offered_qos_profiles=[SENSOR_QOS],
            )
        chatter = w.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        for i in range(4):
            t = (i + 1) * 1_000_000_000
            for cam, imgs in sent.items():
                msg = bag_image(imgs[i], "rgb8", header(i, cam))
                w.write(conns[cam], t, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
                info = camera_info(header(i, cam))
                w.write(
                    conns[cam + "_info"],
                    t + 1,
                    STORE.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"),
                )
            w.write(
                chatter,
                t + 2,
                STORE.serialize_cdr(
                    T["std_msgs/msg/String"](data=f"hi {i}"), "std_msgs/msg/String"
                ),
            )
    return sent


def chunk_compressions(bag: Path) -> set[str]:
    """How the chunks of a bag's .mcap files are compressed ('' for none)."""
    from rosbags.rosbag2.storage_mcap import McapReader

    found = set()
    for path in bag.glob("*.mcap"):
        reader = McapReader(path)
        reader.open()
        found |= {c.compression for c in reader.chunks}
        reader.close()
    return found


def read_bag(path: Path) -> list[tuple[str, int, bytes]]:
    with AnyReader([path]) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def humble_qos(bag: Path) -> dict[str, list[dict]]:
    """Each topic's offered QoS as ROS 2 Humble's rosbag2 reads them (rosbag2_storage's
    metadata_io.cpp and rosbag2_transport's qos.cpp on the humble branch): from version 4 on
    ``offered_qos_profiles`` must be a YAML *string* (yaml-cpp's ``as<std::string>()``), empty
    or a list of profiles whose policies are integers."""
    import sqlite3

    import yaml

    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert isinstance(info["version"], int) and info["version"] >= 5
    for key in ("storage_identifier", "compression_format", "compression_mode"):
        assert isinstance(info[key], str)
    assert all(isinstance(f["path"], str) for f in info["files"])
    qos = {}
    for t in info["topics_with_message_count"]:
        meta = t["topic_metadata"]
        assert isinstance(meta["offered_qos_profiles"], str), meta  # "bad conversion" otherwise
        profiles = yaml.safe_load(meta["offered_qos_profiles"]) or []
        for p in profiles:
            for key in ("history", "depth", "reliability", "durability", "liveliness"):
                assert isinstance(p[key], int), p
            for key in ("deadline", "lifespan", "liveliness_lease_duration"):
                assert {type(p[key]["sec"]), type(p[key]["nsec"])} == {int}, p
            assert isinstance(p["avoid_ros_namespace_conventions"], bool)
        qos[meta["name"]] = profiles
    for db in bag.glob("*.db3"):  # Humble's sqlite3 plugin reads the topics table's copy
        rows = sqlite3.connect(db).execute("SELECT name, offered_qos_profiles FROM topics")
        assert {name: yaml.safe_load(text) or [] for name, text in rows} == qos
    return qos


def messages(bag: list[tuple[str, int, bytes]], topic: str, msgtype: str) -> list:
    return [STORE.deserialize_cdr(raw, msgtype) for t, _, raw in bag if t == topic]


@pytest.mark.parametrize(
    ("plugin", "members"), [(StoragePlugin.SQLITE3, 1), (StoragePlugin.MCAP, 2)]
)
def test_bag_copies_everything_and_adds_deblurred_topics(
    tmp_path, tiny_recurrent_checkpoint, plugin, members
):
    sent = write_bag(tmp_path / "in", plugin)
    result = deblur(
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--weights",
        str(tiny_recurrent_checkpoint),
        "--self-ensemble",
        str(members),
    )
    assert result.returncode == 0, result.stderr
    original, output = read_bag(tmp_path / "in"), read_bag(tmp_path / "out")
    copied = [m for m in output if "/deblurred/" not in m[0]]
    assert sorted(copied) == sorted(original)  # every message: same topic, receive time, bytes
    assert [t for _, t, _ in output] == sorted(t for _, t, _ in output)
    # Humble's `ros2 bag` reads the copy, and the deblurred topics offer the camera's QoS
    qos = humble_qos(tmp_path / "out")
    zero = {"sec": 0, "nsec": 0}
    sensor = [
        {"history": 1, "depth": 5, "reliability": 2, "durability": 2, "liveliness": 1}
        | {"deadline": zero, "lifespan": zero, "liveliness_lease_duration": zero}
        | {"avoid_ros_namespace_conventions": False}
    ]
    for cam in sent:
        for name in ("image_raw", "camera_info", "deblurred/image_raw", "deblurred/camera_info"):
            assert qos[f"/{cam}/{name}"] == sensor, name
    for cam, imgs in sent.items():
        outs = messages(output, f"/{cam}/deblurred/image_raw", "sensor_msgs/msg/Image")
        infos = [m for m in output if m[0] == f"/{cam}/deblurred/camera_info"]
        assert [o.header.stamp.nanosec for o in outs] == [i * 33_333_333 for i in range(4)]
        assert {o.header.frame_id for o in outs} == {cam} and len(infos) == 4
        # recorded when their source frame was: in step with the camera on playback
        received = [(i + 1) * 10**9 for i in range(4)]
        assert [t for topic, t, _ in output if topic == f"/{cam}/deblurred/image_raw"] == received
        assert [t for _, t, _ in infos] == received
        engine = make_engine(
            tiny_recurrent_checkpoint, self_ensemble=members, device="cpu", max_gap_s=0.5
        )
        expected = [
            o.image for i, f in enumerate(imgs) for o in engine.push(f, 10 * 10**9 + i * 33_333_333)
        ]
        expected += [o.image for o in engine.flush()]
        for o, e in zip(outs, expected, strict=True):  # each camera has its own state
            assert np.abs(image_to_numpy(o).astype(int) - e).max() <= 1


def test_bag_resize_scales_camera_info_like_the_node(tmp_path, tiny_recurrent_checkpoint):
    write_bag(tmp_path / "in", StoragePlugin.SQLITE3)
    args = ["-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)]
    # as a launch file names it: relative (it was "not in the bag")
    result = deblur(str(tmp_path / "in"), *args, "--resize", "0.5", "--topics", "left/image_raw")
    assert result.returncode == 0, result.stderr
    out = read_bag(tmp_path / "out")
    imgs = messages(out, "/left/deblurred/image_raw", "sensor_msgs/msg/Image")
    infos = messages(out, "/left/deblurred/camera_info", "sensor_msgs/msg/CameraInfo")
    assert not messages(out, "/right/deblurred/image_raw", "sensor_msgs/msg/Image")
    assert {(m.width, m.height) for m in imgs} == {(24, 16)}
    assert len(infos) == 4 and {(i.width, i.height) for i in infos} == {(24, 16)}
    np.testing.assert_allclose(infos[0].k, [0.5, 0, 0, 0, 0.5, 0, 0, 0, 1])  # K of eye(3) at x0.5
    assert [i.header.stamp.nanosec for i in infos] == [m.header.stamp.nanosec for m in imgs]


def test_an_output_inside_the_input_bag_is_refused(tmp_path, tiny_recurrent_checkpoint):
    """`-o bag/inside` wrote a whole bag into the recording's own folder, which `-o bag`
    refuses: the originals are never changed."""
    write_bag(tmp_path / "in", StoragePlugin.SQLITE3)
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    for given, inside in (("in", "in/out"), ("in", "in/deep/out"), ("in/in.db3", "in/out")):
        # its storage file given: the same recording's folder
        result = deblur(str(tmp_path / given), "-o", str(tmp_path / inside), *weights)
        assert result.returncode == 2, result.stderr
        assert f"output {tmp_path / inside} is inside the input bag {tmp_path / 'in'}" in (
            result.stderr
        )
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before


def test_a_bag_camera_info_of_another_size_is_said_as_the_node_warns(
    tmp_path, tiny_recurrent_checkpoint
):
    """A calibration of another resolution was republished without a word: SLAM fed from
    the deblurred bag got wrong intrinsics. One fitting its frames is not named."""
    writer = Writer(tmp_path / "in", version=9, storage_plugin=StoragePlugin.SQLITE3)
    with writer as w:
        img = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        cal = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=STORE)
        for i, pixels in enumerate(frames(3)):
            hdr = header(i, "cam")
            info = camera_info(hdr)
            info.width, info.height = 640, 480
            t = (i + 1) * 10**9
            w.write(img, t, STORE.serialize_cdr(bag_image(pixels, "rgb8", hdr), img.msgtype))
            w.write(cal, t + 1, STORE.serialize_cdr(info, cal.msgtype))
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(tmp_path / "in"), "-o", str(tmp_path / "out"), *weights)
    assert result.returncode == 0, result.stderr
    assert (
        "sarn deblur: /cam/camera_info describes 640x480 images (binning and ROI applied) for "
        "48x32 ones: republished, not fitted to them"
    ) in result.stderr
    half = deblur(str(tmp_path / "in"), "-o", str(tmp_path / "half"), *weights, "--resize", "0.5")
    assert half.returncode == 0 and "/cam/camera_info describes 320x240 images" in half.stderr
    write_bag(tmp_path / "fit", StoragePlugin.SQLITE3)  # 48x32 calibrations of 48x32 frames
    fitting = deblur(str(tmp_path / "fit"), "-o", str(tmp_path / "fout"), *weights)
    assert fitting.returncode == 0 and "not fitted" not in fitting.stderr


def test_bag_compressed_output_is_the_deblurred_frames_as_jpeg(tmp_path, tiny_recurrent_checkpoint):
    """--compressed writes image_raw/compressed as the node's publish_compressed would."""
    sent = write_bag(tmp_path / "in", StoragePlugin.MCAP)
    args = ["-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(tmp_path / "in"), *args, "--compressed", "--jpeg-quality", "98")
    assert result.returncode == 0, result.stderr
    out = read_bag(tmp_path / "out")
    assert not [t for t, _, _ in out if t.endswith("/deblurred/image_raw")]  # instead of raw
    jpegs = messages(out, "/left/deblurred/image_raw/compressed", "sensor_msgs/msg/CompressedImage")
    infos = messages(out, "/left/deblurred/camera_info", "sensor_msgs/msg/CameraInfo")
    assert len(jpegs) == len(infos) == 4
    assert {j.format for j in jpegs} == {"rgb8; jpeg compressed bgr8"}
    assert [j.header.stamp.nanosec for j in jpegs] == [i * 33_333_333 for i in range(4)]
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=0.5)
    expected = [
        o.image
        for i, f in enumerate(sent["left"])
        for o in engine.push(f, 10 * 10**9 + i * 33_333_333)
    ] + [o.image for o in engine.flush()]
    for j, e in zip(jpegs, expected, strict=True):  # the engine's frame, through JPEG
        same = cv2.imencode(".jpg", e[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])[1]
        decoded = [cv2.imdecode(np.asarray(d), cv2.IMREAD_COLOR) for d in (j.data, same)]
        assert np.abs(decoded[0].astype(int) - decoded[1]).max() <= 2
    bad = deblur(str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--jpeg-quality", "0")
    assert bad.returncode == 2 and "--jpeg-quality" in bad.stderr


def test_bag_from_a_bayer16_camera_gives_rgb16(tmp_path, tiny_recurrent_checkpoint):
    """A raw industrial camera, recorded without camera_info."""
    rng = np.random.default_rng(4)
    raw = [rng.integers(0, 65536, (32, 48), dtype=np.uint16) for _ in range(3)]
    msgs = [bag_image(r, "bayer_grbg16", header(i, "cam")) for i, r in enumerate(raw)]
    with Writer(tmp_path / "in", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, msg in enumerate(msgs):
            w.write(conn, i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    args = ["-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(tmp_path / "in"), *args, "--debayer", "bilinear")
    assert result.returncode == 0, result.stderr
    outs = messages(read_bag(tmp_path / "out"), "/cam/deblurred/image_raw", "sensor_msgs/msg/Image")
    assert [(o.encoding, o.width, o.height) for o in outs] == [("rgb16", 48, 32)] * 3
    assert not [t for t, _, _ in read_bag(tmp_path / "out") if t.endswith("camera_info")]
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu")
    expected = deblur_sequence(engine, [decode_image(m, "bilinear")[0] for m in msgs], "check")
    for o, e in zip(outs, expected, strict=True):
        assert e.dtype == np.uint16 and np.abs(image_to_numpy(o).astype(int) - e).max() <= 1


def test_bag_from_a_bgra_camera_keeps_its_alpha_like_the_node(tmp_path, tiny_recurrent_checkpoint):
    """bgra8 comes out bgra8 with the input's alpha (area-downscaled with --resize, as the
    node does); the colour is the deblurred frame."""
    rgb = frames(3, seed=5)
    alpha = np.tile(np.arange(0, 192, 4, dtype=np.uint8), (32, 1))  # a horizontal ramp
    bgra = [np.dstack([f[..., ::-1], alpha]) for f in rgb]
    with Writer(tmp_path / "in", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, f in enumerate(bgra):
            msg = bag_image(f, "bgra8", header(i, "cam"))
            w.write(conn, i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    args = ["-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(tmp_path / "in"), *args, "--resize", "0.5")
    assert result.returncode == 0, result.stderr
    outs = messages(read_bag(tmp_path / "out"), "/cam/deblurred/image_raw", "sensor_msgs/msg/Image")
    assert [(o.encoding, o.width, o.height) for o in outs] == [("bgra8", 24, 16)] * 3
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu")
    small = [cv2.resize(f, (24, 16), interpolation=cv2.INTER_AREA) for f in rgb]
    expected = deblur_sequence(engine, small, "check")
    for o, e in zip(outs, expected, strict=True):
        pixels = image_to_numpy(o)
        np.testing.assert_array_equal(pixels[..., 3], alpha[::2, ::2] + 2)  # the mean of 2x2 pixels
        assert np.abs(pixels[..., 2::-1].astype(int) - e).max() <= 1


def test_camera_namespace_of_image_pipeline_topics():
    assert camera_ns("/cam/image_raw") == camera_ns("/cam/image_raw/compressed") == "/cam"
    assert camera_ns("/zed/zed_node/rgb/image_rect_color") == "/zed/zed_node/rgb"
    assert camera_ns("/camera/color/image_raw") == "/camera/color"
    assert camera_ns("/camera/infra1/image_rect_raw") == "/camera/infra1"
    assert camera_ns("/image_raw") == ""
    assert camera_ns("/robot/image_raw/image_raw") == "/robot/image_raw"  # one image name only


def test_one_topic_per_camera_raw_preferred_depth_left_out():
    image, compressed = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
    available = {
        "/cam/image_raw": image,
        "/cam/image_raw/compressed": compressed,
        "/left/image_raw/compressed": compressed,
        "/right/image": image,
        "/right/image_raw": image,
        "/rs/color/image_raw": image,  # a RealSense bag
        "/rs/infra1/image_rect_raw": image,
        "/rs/depth/image_rect_raw": image,
        "/rs/aligned_depth_to_color/image_raw": image,
    }
    chosen, ignored = choose_topics(available, None)
    assert chosen == [
        "/cam/image_raw",
        "/left/image_raw/compressed",
        "/right/image_raw",
        "/rs/color/image_raw",
        "/rs/infra1/image_rect_raw",
    ]
    assert ignored == {
        "/cam/image_raw/compressed": "the same camera is deblurred from /cam/image_raw",
        "/right/image": "the same camera is deblurred from /right/image_raw",
        "/rs/aligned_depth_to_color/image_raw": "a depth image",
        "/rs/depth/image_rect_raw": "a depth image",
    }
    asked = ["/cam/image_raw/compressed", "/rs/depth/image_rect_raw"]  # by name: as asked
    assert choose_topics(available, asked) == (asked, {})
    with pytest.raises(InputError, match="pass one of them"):
        choose_topics(available, ["/cam/image_raw", "/cam/image_raw/compressed"])
    with pytest.raises(InputError, match="not in the bag"):
        choose_topics(available, ["/other/image_raw"])
    # a recorder subscribed to both, only the compressed one published: the camera was lost
    counts = dict.fromkeys(available, 5) | {"/cam/image_raw": 0}
    chosen, ignored = choose_topics(available, None, counts)
    assert "/cam/image_raw/compressed" in chosen and "/cam/image_raw" in ignored


def test_bag_recorded_raw_and_compressed(tmp_path, tiny_recurrent_checkpoint):
    """The same camera as image_raw and image_raw/compressed: one deblurred topic, not a crash."""
    rng = np.random.default_rng(6)
    imgs = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(3)]
    with Writer(tmp_path / "in", version=9) as w:
        raw = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        jpg = w.add_connection(
            "/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=STORE
        )
        for i, img in enumerate(imgs):
            msg = bag_image(img, "rgb8", header(i, "cam"))
            w.write(raw, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            data = cv2.imencode(".png", img[..., ::-1])[1].reshape(-1)  # lossless: exact check
            msg = T["sensor_msgs/msg/CompressedImage"](
                header=header(i, "cam"), format="rgb8; png compressed bgr8", data=data
            )
            w.write(jpg, 10 * i + 2, STORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
    expected = deblur_sequence(make_engine(tiny_recurrent_checkpoint, device="cpu"), imgs, "c")
    # the compressed topic comes back in the camera's rgb8, as image_transport gives it
    for topics in ([], ["--topics", "/cam/image_raw/compressed"]):
        out = tmp_path / f"out{len(topics)}"
        args = ["-o", str(out), "--weights", str(tiny_recurrent_checkpoint), *topics]
        result = deblur(str(tmp_path / "in"), *args)
        assert result.returncode == 0, result.stderr
        lines = result.stderr.splitlines()
        ignored = [line for line in lines if "/cam/image_raw/compressed not deblurred" in line]
        assert len(ignored) == (0 if topics else 1), result.stderr
        assert all(line.endswith("(choose with --topics)") for line in ignored)  # the way out
        outs = messages(read_bag(out), "/cam/deblurred/image_raw", "sensor_msgs/msg/Image")
        assert [o.encoding for o in outs] == ["rgb8"] * 3
        for o, e in zip(outs, expected, strict=True):
            assert np.abs(image_to_numpy(o).astype(int) - e).max() <= 1
    both = ["--topics", "/cam/image_raw", "/cam/image_raw/compressed"]
    args = ["-o", str(tmp_path / "bad"), "--weights", str(tiny_recurrent_checkpoint), *both]
    result = deblur(str(tmp_path / "in"), *args)
    assert result.returncode == 2 and "pass one of them" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bad").exists()


def test_bad_inputs_fail_with_one_line(tmp_path, tiny_recurrent_checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    with Writer(tmp_path / "noimg", version=9) as w:
        c = w.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        w.write(
            c, 1, STORE.serialize_cdr(T["std_msgs/msg/String"](data="x"), "std_msgs/msg/String")
        )
    with Writer(tmp_path / "depth", version=9) as w:  # nothing to deblur by default
        w.add_connection("/cam/depth/image_rect_raw", "sensor_msgs/msg/Image", typestore=STORE)
    with Writer(tmp_path / "silent", version=9) as w:  # a camera topic with no message
        w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
    with Writer(tmp_path / "weird", version=9) as w:  # a bag of 0 frames used to be a success
        c = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        msg = bag_image(frames(1)[0], "weird42", header(0, "cam"))
        w.write(c, 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"garbage")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "000.png").write_bytes(b"garbage")
    (tmp_path / "nometa").mkdir()  # a recording cut short: storage without metadata.yaml
    shutil.copy(next((tmp_path / "noimg").glob("*.db3")), tmp_path / "nometa")
    srcs = ("missing.mp4", "empty", "corrupt", "noimg", "depth", "silent", "weird", "bad.mp4")
    srcs += ("nometa",)
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    for src in (tmp_path / name for name in srcs):  # in-process: a traceback would raise
        assert cli.main(["deblur", str(src), "-o", str(tmp_path / "o"), *weights]) == 2, src
        err = capsys.readouterr().err
        assert len([line for line in err.splitlines() if "error" in line]) == 1, err
        assert not (tmp_path / "o").exists(), src  # no empty output folder left behind
        if src.name == "nometa":
            assert f"`ros2 bag reindex {src}` writes one" in err, err
        if src.name == "weird":  # the reason, not only a count of skipped frames
            assert "no readable frame on /cam/image_raw (/cam/image_raw:" in err, err
            assert "weird42" in err, err
        if src.name == "silent":  # a reason there too
            assert "no readable frame on /cam/image_raw (no message recorded)" in err, err


def test_options_a_run_has_no_use_for_are_refused_before_the_model_loads(tmp_path, capsys):
    """--fps on a video's output, --topics or --debayer on a folder, --jpeg-quality without
    --compressed: each was accepted and ignored, so a user got other output than asked."""
    write_video(tmp_path / "in.mp4", frames(2))
    (tmp_path / "pngs").mkdir()
    cv2.imwrite(str(tmp_path / "pngs" / "0.png"), frames(1)[0])
    with Writer(tmp_path / "bag", version=9) as w:
        w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=STORE)
    video, folder, bag = (str(tmp_path / name) for name in ("in.mp4", "pngs", "bag"))
    refused = {
        (video, "out.mp4", "--fps", "60"): ["--fps (an image folder written as a video)"],
        (folder, "out", "--fps", "60"): ["--fps"],
        (folder, "o.mp4", "--topics", "/cam/image_raw", "--debayer", "bilinear"): [
            "--topics (bags)",
            "--debayer (bags)",
        ],
        (video, "out", "--jpeg-quality", "50"): ["--jpeg-quality"],
        (bag, "out", "--jpeg-quality", "50"): [
            "--jpeg-quality (bags with --compressed; JPEG frames or a JPEG image written)"
        ],
        (folder, "o.mp4", "--jpeg-quality", "50"): ["--jpeg-quality"],
        (folder, "out", "--jpeg-quality", "50"): ["--jpeg-quality"],  # PNG frames only
        (video, "out", "--compressed"): ["--compressed (bags)"],
        (folder, "out", "--max-gap-s", "2"): ["--max-gap-s (bags)"],
    }
    missing = str(tmp_path / "missing.pt")  # were the model loaded, its error would show
    for (src, out, *options), flags in refused.items():
        dst = str(tmp_path / out)
        argv = ["deblur", src, "-o", dst, *options, "--weights", missing, "--device", "cpu"]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("sarn deblur: error: not used in this run: "), err
        assert all(flag in err for flag in flags) and "missing.pt" not in err, err
        assert not Path(dst).exists()
    # set to their defaults, as a script passing every option does, they are no error, but
    # said: a video's output at --fps 30 kept the video's 12.5 fps without a word
    argv = ["deblur", video, "-o", str(tmp_path / "out"), "--fps", "30", "--debayer", "vng"]
    assert cli.main([*argv, "--weights", missing, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "error: not used in this run" not in err and "missing.pt" in err
    assert (
        "sarn deblur: note: not used in this run: --debayer (bags); --fps (an image folder "
        "written as a video)"
    ) in err
    argv = ["deblur", video, "-o", str(tmp_path / "out"), "--weights", missing]
    assert cli.main(argv) == 2 and "not used" not in capsys.readouterr().err  # not given
    # --topics naming what the bag cannot deblur: said as it is, before the model loads
    for topic, why in (
        ("/cam/camera_info", "/cam/camera_info (sensor_msgs/msg/CameraInfo): not an image topic"),
        ("/nope", f"{bag}: topics ['/nope'] not in the bag"),  # which bag, for --val-sharp's
    ):
        argv = ["deblur", bag, "-o", str(tmp_path / "out"), "--topics", topic]
        assert cli.main([*argv, "--weights", missing, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert why in err and "missing.pt" not in err, err


def test_an_output_that_cannot_be_made_is_refused_before_the_model_loads(tmp_path, capsys):
    """A video, folder or bag under a file, or where no file can be made (/proc), failed
    after the model loaded and the bar started, with a bare "[Errno 17] File exists"."""
    write_video(tmp_path / "in.mp4", frames(2))
    with Writer(tmp_path / "bag", version=9) as w:
        w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
    (tmp_path / "file").write_text("")
    video, bag = str(tmp_path / "in.mp4"), str(tmp_path / "bag")
    under_file = f"{tmp_path / 'file'} is a file, not a folder"
    cases = {
        (video, str(tmp_path / "file" / "x.mp4")): under_file,
        (video, str(tmp_path / "file" / "frames")): under_file,
        (bag, str(tmp_path / "file" / "out")): under_file,
        (video, "/proc/sarn_test/x.mp4"): "cannot write in /proc (no file can be made there)",
        (bag, "/proc/sarn_test_bag"): "cannot write in /proc (no file can be made there)",
    }
    missing = str(tmp_path / "missing.pt")  # were the model loaded, its error would show
    for (src, dst), why in cases.items():
        argv = ["deblur", src, "-o", dst, "--weights", missing, "--device", "cpu"]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err == f"sarn deblur: error: -o {dst}: {why}\n", err


def test_a_folder_whose_images_are_in_its_folders_names_them(tmp_path, capsys):
    """`sarn deblur sample/` (blur/ and sharp/ inside) said only "no images or rosbag2"."""
    for sub in ("sharp", "blur", "notes"):
        (tmp_path / "set" / sub).mkdir(parents=True)
    for sub in ("sharp", "blur"):
        cv2.imwrite(str(tmp_path / "set" / sub / "0.png"), frames(1)[0])
    argv = ["deblur", str(tmp_path / "set"), "-o", str(tmp_path / "out"), "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        f"own in {tmp_path / 'set'}: it holds the image folders blur, sharp (give one)\n"
    )
    (tmp_path / "set" / "blur" / "0.png").unlink()
    (tmp_path / "set" / "sharp" / "0.png").rename(tmp_path / "set" / "sharp" / "0.txt")
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.endswith(f"no images or rosbag2 in {tmp_path / 'set'}\n")
    (tmp_path / "set" / "0.ppm").write_bytes(b"P6 1 1 255 ...")  # not read: said so
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.endswith(
        f"no images or rosbag2 in {tmp_path / 'set'} (its 1 file, 0.ppm, is none of the images "
        "read: .bmp .jpeg .jpg .png .tif .tiff .webp)\n"
    )
    (tmp_path / "set" / "0.ppm").unlink()
    # a folder of recordings (`sarn eval --synthetic` and --no-gt take one; deblur does not)
    (tmp_path / "set" / "drive.mp4").write_bytes(b"")
    (tmp_path / "set" / "run").mkdir()
    (tmp_path / "set" / "run" / "metadata.yaml").write_text("rosbag2_bagfile_information: {}")
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.endswith(": it holds the recordings drive.mp4, run (give one)\n")
    cv2.imwrite(str(tmp_path / "set" / "sharp" / "0.png"), frames(1)[0])  # both kinds named
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.endswith(
        ": it holds the image folders sharp and the recordings drive.mp4, run (give one)\n"
    )
    (tmp_path / "set" / "z.mp4").mkdir()  # a folder named like a video: a folder, once
    cv2.imwrite(str(tmp_path / "set" / "z.mp4" / "0.png"), frames(1)[0])
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.endswith(
        ": it holds the image folders sharp, z.mp4 and the recordings drive.mp4, run (give one)\n"
    )


def png_stating(width: int, height: int) -> bytes:
    """An 8x8 grey PNG whose header states ``width`` x ``height`` pixels (its CRC fixed)."""
    import zlib

    data = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR's type and fields
    return bytes(data)


def test_an_image_stating_more_pixels_than_opencv_decodes_is_an_unreadable_frame(tmp_path):
    """OpenCV raises, not returns None, for a header of 65000x65000: a traceback in sarn
    deblur and sarn eval, where such a frame is one skipped and counted."""
    from sarn_ros.data.datasets import read_frame, read_rgb

    src = write_folder(tmp_path / "in", frames(3))
    (src / "bad.png").write_bytes(png_stating(65000, 65000))
    assert read_frame(src / "bad.png") is None
    with pytest.raises(ValueError, match="cannot read image"):
        read_rgb(src / "bad.png")
    result = deblur(str(src), "-o", str(tmp_path / "out"), "--weights", "sarn_single")
    assert result.returncode == 0, result.stderr
    assert "1 unreadable frame skipped (first: bad.png)" in result.stdout
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_a_bag_corrupt_past_its_index_is_one_error_line(tmp_path, monkeypatch, capsys):
    """rosbags lets Python's errors through from a corrupt file: a binary metadata.yaml
    (UnicodeDecodeError), an mcap record stating a huge length (OverflowError while reading
    messages, MemoryError while opening): each was a traceback."""
    from rosbags.highlevel import AnyReader

    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    weights = ["--weights", "sarn_single", "--device", "cpu"]
    (tmp_path / "bag" / "metadata.yaml").write_bytes(b"\xc2\x00\xff" * 10)
    for argv in (["deblur", str(tmp_path / "bag"), "-o", str(tmp_path / "o")], ["eval"]):
        if argv == ["eval"]:
            argv = ["eval", "--no-gt", str(tmp_path / "bag")]
        assert cli.main([*argv, *weights]) == 2
        err = capsys.readouterr().err
        assert err.endswith(
            f"cannot read bag {tmp_path / 'bag'}: its metadata.yaml or a text record in it is "
            "not UTF-8\n"
        ), err
    write_bag(tmp_path / "good", StoragePlugin.SQLITE3)
    real_messages = AnyReader.messages

    def cut(self, *args, **kwargs):
        it = real_messages(self, *args, **kwargs)
        yield next(it)
        raise OverflowError("Python int too large to convert to C ssize_t")

    monkeypatch.setattr(AnyReader, "messages", cut)
    impossible = "a record in it states an impossible size (a corrupt storage file)\n"
    assert cli.main(["deblur", str(tmp_path / "good"), "-o", str(tmp_path / "o2"), *weights]) == 2
    assert capsys.readouterr().err.endswith(impossible)
    assert not (tmp_path / "o2").exists()  # the half-written bag removed
    monkeypatch.setattr(AnyReader, "open", lambda self: (_ for _ in ()).throw(MemoryError()))
    assert cli.main(["eval", "--no-gt", str(tmp_path / "good"), *weights]) == 2
    assert capsys.readouterr().err.endswith(impossible)


def test_a_file_that_is_no_video_is_one_line_without_ffmpegs_own(tmp_path):
    """FFmpeg printed "[mov,mp4,...] moov atom not found" above sarn's one error line, and
    OpenCV "[ERROR:0@0.138] global grfmt_png.cpp:297 readHeader IHDR chunk shall be first"
    for a PNG cut short (skipped and counted); a user's OPENCV_FFMPEG_LOGLEVEL or
    OPENCV_LOG_LEVEL still shows them."""
    (tmp_path / "notavideo.mp4").write_bytes(b"not a video")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    argv = [sys.executable, "-m", "sarn_ros.tools.cli", "deblur", "notavideo.mp4", "-o", "x.mp4"]
    for level in (None, "16"):  # 16: AV_LOG_ERROR (OpenCV then prints FFmpeg's to stdout)
        run_env = env if level is None else {**env, "OPENCV_FFMPEG_LOGLEVEL": level}
        result = subprocess.run(
            argv, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr == "sarn deblur: error: cannot open video notavideo.mp4\n"
        assert ("moov atom not found" in result.stdout) == (level is not None), result.stdout
    argv = [*argv[:4], "cut", "-o", "out"]
    for level in (None, "WARNING"):
        run_env = env if level is None else {**env, "OPENCV_LOG_LEVEL": level}
        result = subprocess.run(
            argv, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2, result.stderr
        said = result.stdout + result.stderr
        assert ("grfmt_png" in said) == (level is not None), said
        assert result.stderr.endswith(
            "error: no readable image in cut (1 file that decodes to no 8- or 16-bit image, "
            "first 1.png)\n"
        ), result.stderr


def test_a_slow_camera_keeps_its_state_with_a_longer_max_gap(tmp_path, tiny_recurrent_checkpoint):
    """A 1 fps camera's frames are 1 s apart: at the node's 0.5 s every frame started afresh,
    and `sarn deblur` had no option to say otherwise."""
    imgs = frames(4, seed=21)
    with Writer(tmp_path / "slow", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(imgs):
            hdr = T["std_msgs/msg/Header"](
                stamp=T["builtin_interfaces/msg/Time"](sec=10 + i, nanosec=0), frame_id="cam"
            )
            raw = STORE.serialize_cdr(bag_image(img, "rgb8", hdr), "sensor_msgs/msg/Image")
            w.write(conn, (10 + i) * 10**9, raw)
    got = {}
    for gap in ("0.5", "2"):
        out = tmp_path / f"out{gap}"
        result = deblur(
            str(tmp_path / "slow"),
            "-o",
            str(out),
            "--max-gap-s",
            gap,
            "--weights",
            str(tiny_recurrent_checkpoint),
        )
        assert result.returncode == 0, result.stderr
        # said, with the option that keeps the state: nothing did
        restarted = (
            "restarted 3 times where the stamps paused over --max-gap-s 0.5 s (raise it for a "
            "camera slower than 2 fps)"
        )
        assert (restarted in result.stderr) == (gap == "0.5"), result.stderr
        msgs = messages(read_bag(out), "/cam/deblurred/image_raw", "sensor_msgs/msg/Image")
        got[gap] = [image_to_numpy(m).astype(int) for m in msgs]
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    carried = deblur_sequence(engine, imgs, "slow")
    alone = [deblur_sequence(engine, [img], "slow")[0] for img in imgs]
    assert max(np.abs(c.astype(int) - a).max() for c, a in zip(carried, alone, strict=True)) > 1
    for expected, gap in ((alone, "0.5"), (carried, "2")):
        for g, e in zip(got[gap], expected, strict=True):
            assert np.abs(g - e).max() <= 1, gap


def test_skip_and_max_frames_preview_each_input_kind(tmp_path, tiny_recurrent_checkpoint):
    """A preview of a long recording: frames skip..skip+max of each stream, deblurred as that
    stretch alone would be (the engine starts at the first one)."""
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    window = ["--skip-frames", "2", "--max-frames", "3"]
    imgs = frames(7, seed=5)
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    expected = deblur_sequence(engine, imgs[2:5], "window")
    # a folder, with a corrupt file among the skipped ones (the window counts readable frames)
    src = write_folder(tmp_path / "in", imgs)
    (src / "1a.png").write_bytes(b"not a png")
    result = deblur(str(src), "-o", str(tmp_path / "out"), *weights, *window)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2.png", "3.png", "4.png"]
    for i, e in zip((2, 3, 4), expected, strict=True):
        got = cv2.imread(str(tmp_path / "out" / f"{i}.png"))[..., ::-1]
        assert np.abs(got.astype(int) - e).max() <= 1
    # a video: PNG frames named by their index in the video, as a folder's keep their names
    video = tmp_path / "in.mp4"
    write_video(video, imgs)
    result = deblur(str(video), "-o", str(tmp_path / "vout"), *weights, *window)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "vout").iterdir()) == [
        f"{i:06d}.png" for i in range(2, 5)
    ]
    cap = cv2.VideoCapture(str(video))
    decoded = [cap.read()[1][..., ::-1].copy() for _ in range(7)]
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    for i, e in enumerate(deblur_sequence(engine, decoded[2:5], "v"), start=2):
        got = cv2.imread(str(tmp_path / "vout" / f"{i:06d}.png"))[..., ::-1]
        assert np.abs(got.astype(int) - e).max() <= 1
    past_the_end = deblur(str(video), "-o", str(tmp_path / "none"), "--skip-frames", "7")
    assert past_the_end.returncode == 2 and "after --skip-frames 7" in past_the_end.stderr
    # a bag: every original message, frames 2..3 of each camera deblurred
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    result = deblur(str(tmp_path / "bag"), "-o", str(tmp_path / "bout"), *weights, *window)
    assert result.returncode == 0, result.stderr
    output = read_bag(tmp_path / "bout")
    assert sorted(m for m in output if "/deblurred/" not in m[0]) == sorted(
        read_bag(tmp_path / "bag")
    )
    for cam in ("left", "right"):
        outs = messages(output, f"/{cam}/deblurred/image_raw", "sensor_msgs/msg/Image")
        assert [o.header.stamp.nanosec for o in outs] == [2 * 33_333_333, 3 * 33_333_333]
    bad = deblur(str(src), "-o", str(tmp_path / "o3"), "--max-frames", "0")
    assert bad.returncode == 2 and "argument --max-frames: must be at least 1, got 0" in bad.stderr
    # what a bag cannot be made into is refused before any work, not ignored
    bag = str(tmp_path / "bag")
    for wrong in (["-o", str(tmp_path / "o4.mp4")], ["-o", str(tmp_path / "o5"), "--side-by-side"]):
        refused = deblur(bag, *wrong)
        assert refused.returncode == 2 and "a bag is deblurred into a new bag" in refused.stderr
    past_the_end = deblur(bag, "-o", str(tmp_path / "o6"), *weights, "--skip-frames", "4")
    assert past_the_end.returncode == 2 and "after --skip-frames 4" in past_the_end.stderr
    assert not list(tmp_path.glob("o[456]*"))  # nor an empty bag left behind


@pytest.mark.parametrize("command", [["deblur", "-o", "out"], ["eval", "--no-gt"]])
def test_a_bag_without_rosbags_installed_is_one_line_naming_it(
    tmp_path, monkeypatch, capsys, tiny_recurrent_checkpoint, command
):
    """rosbags is not in package.xml (a pip key at most), so a ROS install may lack it: the
    tools say what to install instead of a ModuleNotFoundError traceback."""
    write_bag(tmp_path / "in", StoragePlugin.MCAP)
    for name in [n for n in sys.modules if n.split(".")[0] == "rosbags"]:
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if never installed
    name, *rest = command
    monkeypatch.chdir(tmp_path)
    args = [
        name,
        *(["in"] if name == "deblur" else []),
        *rest,
        *([] if name == "deblur" else ["in"]),
    ]
    assert cli.main([*args, "--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"sarn {name}: error: reading or writing rosbag2 files needs the Python package rosbags, "
        "not among "
        "sarn_ros's ROS dependencies: python3 -m pip install --user rosbags"
    ]


def as_humble_bag(v9: Path, out: Path) -> Path:
    """``v9`` (sqlite3) as ROS 2 Humble records it: metadata version 5, schema 3, no message
    definitions or type hashes anywhere, the QoS as a YAML string."""
    import sqlite3

    import yaml

    out.mkdir()
    (db,) = v9.glob("*.db3")
    src, dst = sqlite3.connect(db), sqlite3.connect(out / "humble_0.db3")
    dst.executescript(
        "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);"
        "INSERT INTO schema VALUES(3, 'humble');"
        "CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,"
        " metadata TEXT NOT NULL);"
        "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,"
        " serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,"
        " timestamp INTEGER NOT NULL, data BLOB NOT NULL);"
    )
    for row in src.execute("SELECT id, name, type, serialization_format FROM topics"):
        dst.execute("INSERT INTO topics VALUES(?, ?, ?, ?, '')", row)
    dst.executemany(
        "INSERT INTO messages VALUES(?, ?, ?, ?)",
        src.execute("SELECT id, topic_id, timestamp, data FROM messages"),
    )
    dst.commit()
    info = yaml.safe_load((v9 / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    info |= {"version": 5, "relative_file_paths": ["humble_0.db3"]}
    info["files"][0]["path"] = "humble_0.db3"
    for key in ("ros_distro", "custom_data"):
        info.pop(key, None)
    for t in info["topics_with_message_count"]:
        t["topic_metadata"].pop("type_description_hash", None)
        t["topic_metadata"]["offered_qos_profiles"] = ""
    (out / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}))
    return out


def test_bags_without_type_definitions_humble_and_a_bare_mcap_file(
    tmp_path, tiny_recurrent_checkpoint
):
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    write_bag(tmp_path / "v9", StoragePlugin.SQLITE3)
    humble = as_humble_bag(tmp_path / "v9", tmp_path / "humble")
    result = deblur(str(humble), "-o", str(tmp_path / "out"), *weights)
    assert result.returncode == 0, result.stderr
    original, output = read_bag(tmp_path / "v9"), read_bag(tmp_path / "out")
    assert sorted(m for m in output if "/deblurred/" not in m[0]) == sorted(original)
    for cam in ("left", "right"):
        assert len(messages(output, f"/{cam}/deblurred/image_raw", "sensor_msgs/msg/Image")) == 4
    # sarn eval and sarn train read it too
    rc = run_sarn("eval", *weights, "--no-gt", str(humble), "--device", "cpu")
    assert rc.returncode == 0, rc.stderr
    # a type neither the bag defines nor rosbags knows (a robot's own, realsense2_camera_msgs)
    # refused the whole bag: it is left out of the copy and named
    import sqlite3

    import yaml

    with sqlite3.connect(humble / "humble_0.db3") as db:
        db.execute("INSERT INTO topics VALUES(99, '/robot/status', 'my_msgs/msg/S', 'cdr', '')")
        db.execute("INSERT INTO messages VALUES(9999, 99, 5, ?)", (b"\x00\x01\x00\x00",))
    meta = yaml.safe_load((humble / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    info["message_count"] += 1
    info["files"][0]["message_count"] += 1
    info["topics_with_message_count"].append(
        {
            "message_count": 1,
            "topic_metadata": {
                "name": "/robot/status",
                "type": "my_msgs/msg/S",
                "serialization_format": "cdr",
                "offered_qos_profiles": "",
            },
        }
    )
    (humble / "metadata.yaml").write_text(yaml.safe_dump(meta))
    result = deblur(str(humble), "-o", str(tmp_path / "custom"), *weights)
    assert result.returncode == 0, result.stderr
    assert (
        "sarn deblur: /robot/status is left out of the copy: the bag holds no definition of "
        "my_msgs/msg/S (recorded on Humble) and rosbags does not know it"
    ) in result.stderr
    output = read_bag(tmp_path / "custom")
    assert sorted(m for m in output if "/deblurred/" not in m[0]) == sorted(original)
    write_bag(tmp_path / "m", StoragePlugin.MCAP)
    (bare,) = (tmp_path / "m").glob("*.mcap")
    result = deblur(str(bare), "-o", str(tmp_path / "mout"), *weights)
    assert result.returncode == 0, result.stderr
    assert "one of the" not in result.stderr
    shutil.copy(bare, tmp_path / "m" / "m_1.mcap")  # a bag split by size: only a part is read
    split = deblur(str(bare), "-o", str(tmp_path / "part"), *weights)
    assert split.returncode == 0 and f"{bare} is one of the 2 files of the bag" in split.stderr
    assert list((tmp_path / "mout").glob("*.mcap"))  # the storage it came in
    # a file-compressed mcap bag (one .mcap.zstd) came out as sqlite3
    write_bag(tmp_path / "z", StoragePlugin.MCAP, CompressionMode.FILE)
    assert [f.suffixes for f in (tmp_path / "z").glob("z.*")] == [[".mcap", ".zstd"]]
    result = deblur(str(tmp_path / "z"), "-o", str(tmp_path / "zout"), *weights)
    assert result.returncode == 0, result.stderr
    assert [f.suffixes for f in (tmp_path / "zout").glob("zout.*")] == [[".mcap", ".zstd"]]
    # and a message-compressed sqlite3 bag stays compressed (it came out several times larger)
    write_bag(tmp_path / "mz", StoragePlugin.SQLITE3, CompressionMode.MESSAGE)
    result = deblur(str(tmp_path / "mz"), "-o", str(tmp_path / "mzout"), *weights)
    assert result.returncode == 0, result.stderr
    meta = (tmp_path / "mzout" / "metadata.yaml").read_text()
    assert "compression_mode: message" in meta.lower() and "compression_format: zstd" in meta, meta
    assert sorted(m for m in read_bag(tmp_path / "zout") if "/deblurred/" not in m[0]) == sorted(
        read_bag(tmp_path / "z")
    )
    assert sorted(m for m in read_bag(tmp_path / "mzout") if "/deblurred/" not in m[0]) == sorted(
        read_bag(tmp_path / "mz")
    )
    # an mcap bag of zstd chunks (ros2 bag record's zstd_fast preset; its metadata.yaml says
    # nothing) came out uncompressed
    write_bag(tmp_path / "cz", StoragePlugin.MCAP, CompressionMode.STORAGE)
    result = deblur(str(tmp_path / "cz"), "-o", str(tmp_path / "czout"), *weights)
    assert result.returncode == 0, result.stderr
    assert chunk_compressions(tmp_path / "cz") == chunk_compressions(tmp_path / "czout") == {"zstd"}
    (lone,) = (tmp_path / "cz").glob("*.mcap")  # its one file, given for it
    result = deblur(str(lone), "-o", str(tmp_path / "czfile"), *weights)
    assert result.returncode == 0, result.stderr
    assert chunk_compressions(tmp_path / "czfile") == {"zstd"}
    assert sorted(m for m in read_bag(tmp_path / "czout") if "/deblurred/" not in m[0]) == sorted(
        read_bag(tmp_path / "cz")
    )
    # its storage file given for it: read alone, every message was "no CDR" (compressed)
    (db3,) = (tmp_path / "mz").glob("*.db3")
    result = deblur(str(db3), "-o", str(tmp_path / "mzfile"), *weights)
    assert result.returncode == 0, result.stderr
    assert sorted(read_bag(tmp_path / "mzfile")) == sorted(read_bag(tmp_path / "mzout"))
    # a file its metadata.yaml does not list is a recording of its own, read alone: here a
    # deblurred bag's, whose outputs are replaced (the bag's own has none)
    (deblurred,) = (tmp_path / "mout").glob("*.mcap")
    shutil.copy(deblurred, tmp_path / "mz" / "stray.mcap")
    result = deblur(str(tmp_path / "mz" / "stray.mcap"), "-o", str(tmp_path / "stray"), *weights)
    assert result.returncode == 0, result.stderr
    replaced = "the bag's own /left/deblurred/image_raw is replaced by the new output"
    assert replaced in result.stderr
    # a part of a split one cannot be read alone
    meta = tmp_path / "mz" / "metadata.yaml"
    listed = f"  - {db3.name}\n"
    assert listed in meta.read_text()
    meta.write_text(meta.read_text().replace(listed, f"{listed}  - mz_1.db3\n"))
    shutil.copy(db3, tmp_path / "mz" / "mz_1.db3")
    result = deblur(str(db3), "-o", str(tmp_path / "mzpart"), *weights)
    said = (
        f"{db3} is one of the 2 files of the bag {tmp_path / 'mz'}, whose messages are compressed"
    )
    assert result.returncode == 2 and said in result.stderr, result.stderr
    (zstd,) = (tmp_path / "z").glob("z.*")  # a file-compressed one's: named, not "unknown type"
    result = deblur(str(zstd), "-o", str(tmp_path / "zfile"), *weights)
    said = f"{zstd} is the compressed storage file of a bag: give its folder"
    assert result.returncode == 2 and said in result.stderr, result.stderr


def test_a_bag_recorded_beside_the_node_gets_new_outputs(tmp_path, tiny_recurrent_checkpoint):
    """`ros2 bag record -a` next to the node records its deblurred topics too: they are not
    taken as cameras, and the new outputs replace them (one connection per topic)."""
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    write_bag(tmp_path / "in", StoragePlugin.SQLITE3)
    assert deblur(str(tmp_path / "in"), "-o", str(tmp_path / "once"), *weights).returncode == 0
    again = deblur(str(tmp_path / "once"), "-o", str(tmp_path / "twice"), *weights)
    assert again.returncode == 0, again.stderr
    assert "/left/deblurred/image_raw not deblurred: deblurred already" in again.stderr
    assert "the bag's own /left/deblurred/image_raw is replaced" in again.stderr
    once, twice = read_bag(tmp_path / "once"), read_bag(tmp_path / "twice")
    assert len(twice) == len(once)  # the same topics and message counts
    assert sorted(m for m in twice if "/deblurred/" not in m[0]) == sorted(
        read_bag(tmp_path / "in")
    )
    # the other transport's old outputs went on beside the new ones: two deblurred versions
    jpeg = deblur(str(tmp_path / "once"), "-o", str(tmp_path / "jpeg"), *weights, "--compressed")
    assert jpeg.returncode == 0, jpeg.stderr
    assert "the bag's own /left/deblurred/image_raw is replaced" in jpeg.stderr
    topics = {topic for topic, *_ in read_bag(tmp_path / "jpeg") if "/deblurred/" in topic}
    assert topics == {
        f"/{cam}/deblurred/{name}"
        for cam in ("left", "right")
        for name in ("image_raw/compressed", "camera_info")
    }


def test_each_frame_gets_its_own_camera_info_and_a_recorded_one_is_kept(
    tmp_path, tiny_recurrent_checkpoint
):
    """Camera "a": its camera_info recorded out of stamp order (as received) still goes with
    the frame of its stamp. Camera "b": no camera_info but the node's recorded
    deblurred/camera_info, which was dropped while stderr said it was replaced."""
    info_type, image_type = "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/Image"
    with Writer(tmp_path / "in", version=9) as w:
        conns = {
            topic: w.add_connection(topic, msgtype, typestore=STORE)
            for topic, msgtype in (
                ("/a/image_raw", image_type),
                ("/a/camera_info", info_type),
                ("/b/image_raw", image_type),
                ("/b/deblurred/camera_info", info_type),
            )
        }
        for t, i in enumerate((2, 0, 3, 1)):  # receive order; frame i's K has focal i + 1
            info = STORE.serialize_cdr(camera_info(header(i, "a"), focal=i + 1.0), info_type)
            w.write(conns["/a/camera_info"], t, info)
        for i, img in enumerate(frames(4)):
            for cam in ("a", "b"):
                msg = STORE.serialize_cdr(bag_image(img, "rgb8", header(i, cam)), image_type)
                w.write(conns[f"/{cam}/image_raw"], 10 + i, msg)
            info = STORE.serialize_cdr(camera_info(header(i, "b"), focal=7.0), info_type)
            w.write(conns["/b/deblurred/camera_info"], 10 + i, info)
    args = ["-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(tmp_path / "in"), *args)
    assert result.returncode == 0, result.stderr
    assert "replaced" not in result.stderr, result.stderr
    out = read_bag(tmp_path / "out")
    infos = messages(out, "/a/deblurred/camera_info", info_type)
    assert [(m.header.stamp.nanosec // 33_333_333, m.k[0]) for m in infos] == [
        (i, i + 1.0) for i in range(4)
    ]
    kept = messages(out, "/b/deblurred/camera_info", info_type)
    assert [m.k[0] for m in kept] == [7.0] * 4


def test_a_file_that_is_no_video_is_refused_before_the_model_loads(tmp_path):
    """It was found only after the model had loaded (seconds on a Jetson): weights that
    cannot load show which check came first."""
    (tmp_path / "fake.mp4").write_text("hi")
    result = deblur(
        str(tmp_path / "fake.mp4"),
        "-o",
        str(tmp_path / "out.mp4"),
        "--weights",
        str(tmp_path / "missing.pth"),
    )
    assert result.returncode == 2 and "cannot open video" in result.stderr, result.stderr
    assert "missing.pth" not in result.stderr and not (tmp_path / "out.mp4").exists()


def test_a_corrupt_frame_inside_a_video_is_skipped_not_the_end(tmp_path, tiny_recurrent_checkpoint):
    src = tmp_path / "in.avi"
    write_video(src, frames(8), fourcc="MJPG")
    corrupt_mjpeg_frames(src, range(4, 5), 8)  # frame 4 unreadable
    result = deblur(
        str(src), "-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)
    )
    assert result.returncode == 0, result.stderr
    assert "7 frames" in result.stdout and "1 unreadable frame skipped" in result.stdout
    assert len(list((tmp_path / "out").iterdir())) == 7


def corrupt_mjpeg_frames(path: Path, bad: range, count: int) -> None:
    """Overwrite the start of these frames' JPEG data in an MJPG AVI: they fail to decode."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    assert len(starts) == count
    for f in bad:
        data[starts[f] + 2 : starts[f] + 300] = b"\x11" * 298
    path.write_bytes(bytes(data))


def test_a_long_corrupt_stretch_and_a_video_cut_short(tmp_path, tiny_recurrent_checkpoint):
    """35 corrupt frames in a row ended the video without a word (the 10 good ones after them
    were lost), and a video whose last frames cannot be read ended as if complete."""
    src = tmp_path / "gap.avi"
    write_video(src, frames(50, seed=7), fps=10.0, fourcc="MJPG")
    corrupt_mjpeg_frames(src, range(5, 40), 50)
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    out = tmp_path / "gap"
    assert cli.main(["deblur", str(src), "-o", str(out), *weights]) == 0
    names = [f"{i:06d}.png" for i in [*range(5), *range(40, 50)]]  # their index in the video
    assert sorted(p.name for p in out.iterdir()) == names

    cut = tmp_path / "cut.avi"
    write_video(cut, frames(10, seed=8), fps=10.0, fourcc="MJPG")
    corrupt_mjpeg_frames(cut, range(4, 10), 10)
    result = run_sarn("deblur", str(cut), "-o", str(tmp_path / "cut.mp4"), *weights)
    assert result.returncode == 0, result.stderr
    assert "4 frames ->" in result.stdout
    assert (
        "6 more frames the video announces could not be read (a file cut short? " in result.stdout
    )
    assert "OPENCV_FFMPEG_LOGLEVEL=24 shows FFmpeg's reason)" in result.stdout  # quiet by default
    # one frame short: an AVI's count is exact (one lost went unsaid as a count's estimate)
    write_video(cut, frames(10, seed=8), fps=10.0, fourcc="MJPG")
    corrupt_mjpeg_frames(cut, range(9, 10), 10)
    result = run_sarn("deblur", str(cut), "-o", str(tmp_path / "one"), *weights)
    assert result.returncode == 0, result.stderr
    assert "9 frames ->" in result.stdout and "1 more frame the video announces" in result.stdout


def test_odd_sized_frames_keep_every_row_and_column_in_a_video(tmp_path, tiny_recurrent_checkpoint):
    src = write_folder(tmp_path / "in", frames(3, h=33, w=47, seed=6))
    args = ["--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(src), "-o", str(tmp_path / "out.mp4"), *args)
    assert result.returncode == 0, result.stderr
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    size = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    assert size == (48, 34)  # padded by one replicated column and row, none cropped
    webm = deblur(str(src), "-o", str(tmp_path / "out.webm"), *args)
    assert webm.returncode == 2  # mp4v cannot go into WebM: refused before any work
    assert "a video file (.avi, .m4v, .mkv, .mov, .mp4)" in webm.stderr
    nothing = tmp_path / "unreadable"
    nothing.mkdir()
    (nothing / "0.png").write_bytes(b"not a png")
    assert cv2.imwrite(str(nothing / "1.tif"), np.zeros((8, 8), np.float32))  # not a camera's
    none = deblur(str(nothing), "-o", str(tmp_path / "none"), *args)
    assert none.returncode == 2 and "Traceback" not in none.stderr
    assert none.stderr.splitlines()[-1].endswith(
        f"no readable image in {nothing} "
        "(2 files that decode to no 8- or 16-bit image, first 0.png)"
    )


@pytest.mark.parametrize(
    ("bf16", "hint"),
    [(True, "--precision bf16 --torch-compile ran"), (False, "without --torch-compile")],
)
def test_a_long_cpu_run_ends_with_the_faster_setting_for_that_cpu(
    tmp_path, tiny_recurrent_checkpoint, capsys, monkeypatch, bf16, hint
):
    """The summary of a run of 30 s or more on a CPU names the faster setting for that CPU
    (engine.faster_cpu_setting decides, see test_engine)."""
    from sarn_ros.tools import deblur as deblur_tool

    monkeypatch.setattr("sarn_ros.engine.native_bf16", lambda: bf16)
    src = write_folder(tmp_path / "in", frames(2))
    args = ["deblur", str(src), "-o", str(tmp_path / "out"), "--device", "cpu"]
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    assert cli.main([*args, *weights]) == 0
    assert "hint" not in capsys.readouterr().err  # a short run: no advice
    monkeypatch.setattr(deblur_tool, "HINT_AFTER_S", 0.0)
    assert cli.main([*args, "-o", str(tmp_path / "out2"), *weights]) == 0
    hints = [line for line in capsys.readouterr().err.splitlines() if "hint:" in line]
    assert len(hints) == 1 and hint in hints[0], hints


def test_a_run_in_the_fastest_setting_says_a_failed_compile_and_gets_no_hint(
    tmp_path, tiny_recurrent_checkpoint, capsys, monkeypatch
):
    """`--precision bf16 --torch-compile` on a CPU with native bf16 is the fastest setting
    (no advice, which ended such a run in a KeyError); a compile that failed is said so."""
    from sarn_ros.tools import deblur as deblur_tool

    def no_compiler(*_args, **_kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr("sarn_ros.engine.native_bf16", lambda: True)
    monkeypatch.setattr(torch, "compile", no_compiler)
    monkeypatch.setattr(deblur_tool, "HINT_AFTER_S", 0.0)
    src = write_folder(tmp_path / "in", frames(2))
    args = ["deblur", str(src), "-o", str(tmp_path / "out"), "--device", "cpu"]
    args += ["--weights", str(tiny_recurrent_checkpoint), "--precision", "bf16"]
    assert cli.main([*args, "--torch-compile"]) == 0
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith(", torch.compile failed"), captured.out
    assert "hint:" not in captured.err, captured.err


def test_the_defaults_shared_with_the_node_are_the_nodes():
    """A bag deblurred offline is cut at gaps and its JPEGs written as the node would."""
    from sarn_ros.ros.params import BY_NAME
    from sarn_ros.tools import cli

    argv = ["deblur", "in", "-o", "out"]
    args = cli.build_parser(argv).parse_args(argv)
    assert BY_NAME["max_gap_s"].default == args.max_gap_s
    assert BY_NAME["jpeg_quality"].default == args.jpeg_quality


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--max-frames", "0"], "argument --max-frames: must be at least 1, got 0"),
        (["--skip-frames", "-1"], "argument --skip-frames: must be at least 0, got -1"),
        (["--fps", "1001"], "argument --fps: must be in [0.01, 1000], got 1001"),
        (["--fps", "0.001"], "argument --fps: must be in [0.01, 1000], got 0.001"),  # no mp4v
    ],
)
def test_out_of_range_numbers_are_usage_errors(tmp_path, option, words):
    result = deblur(str(tmp_path), "-o", str(tmp_path / "out"), *option)
    assert result.returncode == 2 and result.stderr.splitlines()[-1].endswith(words)


def test_the_input_under_another_spelling_is_never_overwritten(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch
):
    """Relative, or through a symbolic link, with --overwrite: still the input folder."""
    src = write_folder(tmp_path / "in", frames(2))
    (tmp_path / "link").symlink_to(src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    monkeypatch.chdir(tmp_path)
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--overwrite"]
    for spelling in ("in", "./in/", "link", str(tmp_path / "link")):
        result = deblur(str(src), "-o", spelling, *weights)
        assert result.returncode == 2 and "is the input" in result.stderr, (spelling, result)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_an_output_that_cannot_be_made_is_one_line(tmp_path, tiny_recurrent_checkpoint):
    src = write_folder(tmp_path / "in", frames(2))
    (tmp_path / "afile.txt").write_text("")
    out = str(tmp_path / "afile.txt" / "out")
    result = deblur(str(src), "-o", out, "--weights", str(tiny_recurrent_checkpoint))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith("sarn deblur: error: "), result.stderr
    assert f"{tmp_path / 'afile.txt'} is a file, not a folder" in result.stderr


def test_the_progress_bar_knows_how_many_frames_will_come_out(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys
):
    """The bar had no total (no ETA on an hour of video): a video's stated count, a folder's
    images and a bag's message counts, within --skip-frames / --max-frames, per camera."""
    import tqdm

    bars: list = []

    class Bar:
        def __init__(self, **_kwargs) -> None:
            self.total, self.n = None, 0
            bars.append(self)

        def update(self, n: int = 1) -> None:
            self.n += n

        def refresh(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    imgs = frames(6, seed=3)
    write_video(tmp_path / "in.mp4", imgs)
    write_folder(tmp_path / "folder", imgs)
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)  # two cameras of 4 frames
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    window = ["--skip-frames", "1", "--max-frames", "3"]
    for src, out, total in (
        ("in.mp4", "v.mp4", 3),
        ("folder", "f", 3),
        ("bag", "b", 6),
    ):
        assert (
            cli.main(["deblur", str(tmp_path / src), "-o", str(tmp_path / out), *weights, *window])
            == 0
        )
        assert (bars[-1].total, bars[-1].n) == (total, total), src
    assert (
        cli.main(["deblur", str(tmp_path / "folder"), "-o", str(tmp_path / "all"), *weights]) == 0
    )
    assert (bars[-1].total, bars[-1].n) == (6, 6)


def test_bag_messages_cut_short_are_skipped_not_the_end(tmp_path, tiny_recurrent_checkpoint):
    """rosbags reports a record that does not deserialise as AnyReaderError, no ValueError: a
    cut-short image is an unreadable frame, a cut-short camera_info lends its frame a
    neighbour's, and neither ends the run (both raised a traceback)."""
    write_bag(tmp_path / "whole", StoragePlugin.SQLITE3)
    with AnyReader([tmp_path / "whole"]) as reader, Writer(tmp_path / "in", version=9) as w:
        conns = {
            c.id: w.add_connection(c.topic, c.msgtype, typestore=STORE) for c in reader.connections
        }
        for c, t, raw in reader.messages():
            # frame i is received at i + 1 s, its camera_info 1 ns later
            cut = (c.topic, t) in {
                ("/left/image_raw", 2 * 10**9),
                ("/left/camera_info", 3 * 10**9 + 1),
            }
            w.write(conns[c.id], t, raw[:40] if cut else raw)
    result = deblur(
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--weights",
        str(tiny_recurrent_checkpoint),
    )
    assert result.returncode == 0, result.stderr
    assert "1 unreadable frame skipped" in result.stdout
    output = read_bag(tmp_path / "out")
    left = messages(output, "/left/deblurred/image_raw", "sensor_msgs/msg/Image")
    assert [o.header.stamp.nanosec for o in left] == [i * 33_333_333 for i in (0, 2, 3)]
    infos = messages(output, "/left/deblurred/camera_info", "sensor_msgs/msg/CameraInfo")
    assert (
        len(infos) == 3
        and len(messages(output, "/right/deblurred/image_raw", "sensor_msgs/msg/Image")) == 4
    )


def test_an_existing_output_bag_is_refused_before_the_model_loads(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys
):
    """The output bag's existence was checked only after the weights were loaded (and CUDA
    started), as every other output setting is checked before."""
    loaded = []
    monkeypatch.setattr("sarn_ros.ensemble.make_engine", lambda *a, **k: loaded.append(a))
    src = tmp_path / "in"
    write_bag(src, StoragePlugin.SQLITE3)
    (tmp_path / "out").mkdir()
    argv = ["deblur", str(src), "-o", str(tmp_path / "out"), "--weights"]
    assert cli.main([*argv, str(tiny_recurrent_checkpoint), "--device", "cpu"]) == 2
    assert f"output bag {tmp_path / 'out'} already exists" in capsys.readouterr().err
    assert loaded == []


def test_an_output_bag_named_like_a_storage_file_is_refused(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys
):
    """``-o out.mcap`` made a folder out.mcap/ holding out.mcap.mcap (and ``-o out.db3`` an
    mcap bag where the input was mcap): a bag is a folder, and the user is told to name it."""
    loaded = []
    monkeypatch.setattr("sarn_ros.ensemble.make_engine", lambda *a, **k: loaded.append(a))
    src = tmp_path / "in"
    write_bag(src, StoragePlugin.MCAP)
    for name in ("out.mcap", "out.DB3"):
        argv = ["deblur", str(src), "-o", str(tmp_path / name), "--weights"]
        assert cli.main([*argv, str(tiny_recurrent_checkpoint), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "a bag is written as a folder" in err and f"(-o {tmp_path / 'out'})" in err
        assert not (tmp_path / name).exists()
    assert loaded == []


def test_a_recorded_camera_infos_size_is_the_one_it_describes():
    """A binned camera's calibration states the sensor's size: its old deblurred/camera_info
    was called stale beside new frames of the binned size, and left out."""
    from types import SimpleNamespace

    from sarn_ros.offline import info_size

    reader = SimpleNamespace(deserialize=STORE.deserialize_cdr)
    binned = camera_info(header(0, "cam"))
    binned.width, binned.height, binned.binning_x, binned.binning_y = 96, 64, 2, 2
    raw = STORE.serialize_cdr(binned, "sensor_msgs/msg/CameraInfo")
    assert info_size(reader, raw) == (48, 32)


def test_camera_info_of_a_frame_is_the_one_nearest_its_stamp_on_either_side():
    """Each deblurred frame takes the camera_info whose stamp is nearest its own: the earlier
    one where that is nearer, the first before and the last after all recorded ones."""
    infos = [(100, 1, "a"), (200, 2, "b"), (300, 3, "c")]
    assert nearest(infos, 200) == "b"
    assert nearest(infos, 140) == "a"
    assert nearest(infos, 160) == "b"
    assert nearest(infos, 5) == "a"
    assert nearest(infos, 10_000) == "c"
    # of several under one stamp (a driver stamping 0, a calibration changed under one
    # stamp), the one received nearest the frame: every frame took the first
    zero = [(0, 10, "x"), (0, 20, "y"), (0, 30, "z"), (100, 40, "w")]
    assert [nearest(zero, 0, r) for r in (9, 19, 21, 29, 99)] == ["x", "y", "y", "z", "z"]


def test_disparity_images_are_left_out_like_depth():
    """README: default topics are every image topic except depth/disparity images."""
    available = {
        "/stereo/left/image_raw": "sensor_msgs/msg/Image",
        "/stereo/disparity/image_raw": "sensor_msgs/msg/Image",
        "/zed/depth/depth_registered": "sensor_msgs/msg/Image",
    }
    chosen, ignored = choose_topics(available, None)
    assert chosen == ["/stereo/left/image_raw"]
    assert set(ignored) == {"/stereo/disparity/image_raw", "/zed/depth/depth_registered"}


def test_a_video_stating_a_rate_no_video_has_plays_at_30_fps(
    tmp_path, tiny_recurrent_checkpoint, caplog
):
    """A broken AVI header stating 2147483647 fps gave neighbouring frames one stamp: side by
    side paired frame 0's output with frame 1's input, then a KeyError traceback; and no
    video could be written at that rate."""
    imgs = frames(4, seed=3)
    write_video(tmp_path / "ok.avi", imgs, fourcc="MJPG")
    data = bytearray((tmp_path / "ok.avi").read_bytes())
    struct.pack_into("<II", data, data.find(b"strh") + 8 + 20, 1, 2**31 + 5)  # scale, rate
    src = tmp_path / "broken.avi"
    src.write_bytes(bytes(data))
    assert cv2.VideoCapture(str(src)).get(cv2.CAP_PROP_FPS) > 1e9
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    report = deblur_video(src, tmp_path / "sbs.mp4", engine, 1.0, True, lambda: None)
    assert report.frames == 4
    assert f"{src} states 2.14748e+09 fps: taken as 30" in caplog.text
    cap = cv2.VideoCapture(str(tmp_path / "sbs.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == 30
    reader = cv2.VideoCapture(str(src))
    inputs = [reader.read()[1].astype(int) for _ in range(4)]
    for i in range(4):  # each output beside its own input (mp4v's loss: a few levels)
        left = cap.read()[1][:, :48]
        off = [np.abs(left - x).mean() for x in inputs]
        assert np.argmin(off) == i and off[i] < 10, off


def test_side_by_side_is_the_input_left_of_its_deblurred_frame(tmp_path, tiny_recurrent_checkpoint):
    """--side-by-side writes "input | deblurred"."""
    imgs = frames(3, seed=7)
    src = write_folder(tmp_path / "in", imgs)
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    report = deblur_folder(src, tmp_path / "sbs", engine, 1.0, True, lambda: None)
    assert report.frames == 3
    again = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    expected = deblur_sequence(again, imgs, "f")
    for i, (img, e) in enumerate(zip(imgs, expected, strict=True)):
        got = cv2.imread(str(tmp_path / "sbs" / f"{i}.png"))[..., ::-1]
        assert got.shape == (32, 96, 3)
        assert np.array_equal(got[:, :48], img)
        assert np.abs(got[:, 48:].astype(int) - e).max() <= 1


@pytest.mark.parametrize(("h", "w", "size"), [(33, 48, (48, 34)), (32, 47, (48, 32))])
def test_a_frame_odd_on_one_side_only_keeps_every_row_and_column_in_a_video(tmp_path, h, w, size):
    """mp4v's 4:2:0 would crop an odd side: one odd side alone is padded too."""
    with FrameSink(tmp_path / "out.mp4", 10.0) as sink:
        for i, f in enumerate(frames(3, h=h, w=w, seed=8)):
            sink.write(f, f"{i}.png")
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == size
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_a_stop_during_the_videos_release_still_gives_it_its_name(tmp_path, monkeypatch):
    """A SIGTERM handled as the writer's release returned skipped the rename: the video stayed
    hidden, said to hold its frames; one as the writer opened left its hidden file."""
    from sarn_ros import offline

    class StoppedAtRelease:
        def __init__(self, writer):
            self.writer = writer

        def write(self, img):
            self.writer.write(img)

        def release(self):
            self.writer.release()
            raise KeyboardInterrupt  # as a handler raises it once the C call returns

    opened = offline.FrameSink.open_writer
    monkeypatch.setattr(offline.FrameSink, "open_writer", lambda s: StoppedAtRelease(opened(s)))
    with pytest.raises(KeyboardInterrupt), FrameSink(tmp_path / "out.mp4", 10.0) as sink:
        for i, f in enumerate(frames(3)):
            sink.write(f, f"{i}.png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert int(cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 3

    def stopped_as_it_opened(sink):
        opened(sink)  # cv2 has made the hidden file
        raise KeyboardInterrupt

    monkeypatch.setattr(offline.FrameSink, "open_writer", stopped_as_it_opened)
    with pytest.raises(KeyboardInterrupt), FrameSink(tmp_path / "two.mp4", 10.0) as sink:
        sink.write(frames(1)[0], "0.png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]

    class FailedAtRelease(StoppedAtRelease):
        def release(self):
            self.writer.release()
            raise cv2.error("disk full")  # an unfinished video: not given the name

    monkeypatch.setattr(offline.FrameSink, "open_writer", lambda s: FailedAtRelease(opened(s)))
    with pytest.raises(cv2.error), FrameSink(tmp_path / "three.mp4", 10.0) as sink:
        sink.write(frames(1)[0], "0.png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_frames_of_two_sizes_in_a_video_are_named_by_their_own_sizes(tmp_path):
    """The error named the first frame's padded size (102x78 for a 101x77 frame)."""
    sizes = pytest.raises(InputError, match="frames of sizes 101x77 and 96x64")
    with sizes, FrameSink(tmp_path / "out.mp4", 10.0) as sink:
        sink.write(frames(1, h=77, w=101)[0], "0.png")
        sink.write(frames(1, h=78, w=102)[0], "1.png")  # the same video size: taken
        sink.write(frames(1, h=64, w=96)[0], "2.png")


def write_topics(path: Path, streams: dict[str, list]) -> None:
    """A sqlite3 bag of ``streams`` (topic: messages, their types by class), message i of
    each topic received at i + 1 s, in the order given."""
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {}
        for topic, msgs in streams.items():
            msgtype = type(msgs[0]).__msgtype__
            conns[topic] = w.add_connection(topic, msgtype, typestore=STORE)
        for i in range(max(len(m) for m in streams.values())):
            for topic, msgs in streams.items():
                if i < len(msgs):
                    raw = STORE.serialize_cdr(msgs[i], conns[topic].msgtype)
                    w.write(conns[topic], (i + 1) * 1_000_000_000, raw)


def deblur_topics(tmp_path: Path, streams: dict[str, list], *args: str):
    """`sarn deblur` of a bag of ``streams`` (:func:`write_topics`) at tmp_path/in into
    tmp_path/out."""
    write_topics(tmp_path / "in", streams)
    return deblur(str(tmp_path / "in"), "-o", str(tmp_path / "out"), *args)


def test_old_outputs_go_only_where_new_ones_come(tmp_path, tiny_recurrent_checkpoint):
    """A bag recorded beside the node: a camera that gave no new frame (float frames) had its
    recorded deblurred topics named replaced and dropped, without a replacement; and a
    camera's old deblurred camera_info (999x999) was kept beside new images it does not
    describe, where the bag has no camera_info to make a new one from (one that fits them is
    kept: test_each_frame_gets_its_own_camera_info_and_a_recorded_one_is_kept)."""
    depth = np.zeros((32, 48), np.float32)
    old_out = [bag_image(f, "rgb8", header(i, "cam")) for i, f in enumerate(frames(2, seed=5))]
    old_info = camera_info(header(0, "cam"))
    old_info.width = old_info.height = 999
    streams = {
        "/cam/image_raw": [bag_image(depth, "32FC1", header(i, "cam")) for i in range(2)],
        "/cam/camera_info": [camera_info(header(i, "cam")) for i in range(2)],
        "/cam/deblurred/image_raw": old_out,
        "/cam/deblurred/camera_info": [old_info, old_info],
        "/b/image_raw": [bag_image(f, "rgb8", header(i, "b")) for i, f in enumerate(frames(2))],
        "/b/deblurred/image_raw": old_out,
        "/b/deblurred/camera_info": [old_info, old_info],  # /b has no camera_info
    }
    result = deblur_topics(tmp_path, streams, "--weights", str(tiny_recurrent_checkpoint))
    assert result.returncode == 0, result.stderr
    out = read_bag(tmp_path / "out")
    original = read_bag(tmp_path / "in")
    for topic in ("/cam/deblurred/image_raw", "/cam/deblurred/camera_info"):
        assert [m for m in out if m[0] == topic] == [m for m in original if m[0] == topic]
        assert f"{topic} is replaced" not in result.stderr
    assert "the bag's own /b/deblurred/image_raw is replaced by the new output" in result.stderr
    assert not [m for m in out if m[0] == "/b/deblurred/camera_info"]
    assert (
        "the bag's own /b/deblurred/camera_info is left out: it describes 999x999 images, the "
        "new ones are 48x32, and the bag has no camera_info of this camera to make a new one from"
    ) in result.stderr
    new = messages(out, "/b/deblurred/image_raw", "sensor_msgs/msg/Image")
    assert [(m.width, m.height) for m in new] == [(48, 32)] * 2


def test_camera_info_beside_an_image_of_any_name_is_found(tmp_path, tiny_recurrent_checkpoint):
    """ZED's left/image_rect_gray beside left/camera_info got no deblurred camera_info
    (image_transport's sibling rule); a String on a camera_info name was a traceback."""
    imgs = frames(2)
    grey = [f[..., 0].copy() for f in imgs]
    streams = {
        "/zed/left/image_rect_gray": [
            bag_image(g, "mono8", header(i, "l")) for i, g in enumerate(grey)
        ],
        "/zed/left/camera_info": [camera_info(header(i, "l"), focal=2.0) for i in range(2)],
        "/odd/image_raw": [bag_image(f, "rgb8", header(i, "o")) for i, f in enumerate(imgs)],
        "/odd/camera_info": [T["std_msgs/msg/String"](data="not a calibration")] * 2,
    }
    result = deblur_topics(tmp_path, streams, "--weights", str(tiny_recurrent_checkpoint))
    assert result.returncode == 0, result.stderr
    out = read_bag(tmp_path / "out")
    infos = messages(
        out, "/zed/left/image_rect_gray/deblurred/camera_info", "sensor_msgs/msg/CameraInfo"
    )
    assert [(i.k[0], i.header.frame_id) for i in infos] == [(2.0, "l")] * 2
    assert not [m for m in out if m[0] == "/odd/deblurred/camera_info"]
    assert len(messages(out, "/odd/deblurred/image_raw", "sensor_msgs/msg/Image")) == 2


def test_a_camera_whose_raw_topic_cannot_be_read_names_its_other_topic(
    tmp_path, tiny_recurrent_checkpoint
):
    """The compressed topic was said to be left out because "the same camera is deblurred
    from" the raw one, which then gave no frame: no word that the camera could be read. The
    --topics offered left the other cameras out, or kept another's unreadable topic; alone,
    the camera's other topic went unnamed."""
    png = cv2.imencode(".png", frames(1)[0])[1]
    streams = {"/a/image_raw": [bag_image(frames(1)[0], "rgb8", header(0, "a"))]}
    for cam in ("b", "c"):
        streams[f"/{cam}/image_raw"] = [
            bag_image(np.zeros((32, 48), np.float32), "32FC1", header(0, cam))
        ]
        streams[f"/{cam}/image_raw/compressed"] = [
            T["sensor_msgs/msg/CompressedImage"](
                header=header(0, cam), format="png", data=png.reshape(-1)
            )
        ]
    result = deblur_topics(tmp_path, streams, "--weights", str(tiny_recurrent_checkpoint))
    assert result.returncode == 0, result.stderr
    assert "the same camera is deblurred from" not in result.stderr
    every = ["/a/image_raw", "/b/image_raw/compressed", "/c/image_raw/compressed"]
    for cam in ("b", "c"):
        hint = f"; this camera's /{cam}/image_raw/compressed may be: --topics "
        assert f"/{cam}/image_raw not deblurred: no readable frame (" in result.stderr
        offered = result.stderr.split(hint)[1].splitlines()[0].split()
        assert sorted(offered) == every, result.stderr
    weights = ("--weights", str(tiny_recurrent_checkpoint))
    taken = deblur(
        str(tmp_path / "in"), "-o", str(tmp_path / "taken"), *weights, "--topics", *offered
    )
    assert taken.returncode == 0, taken.stderr  # as offered, every camera is read
    out = read_bag(tmp_path / "taken")
    for cam in ("a", "b", "c"):
        assert messages(out, f"/{cam}/deblurred/image_raw", "sensor_msgs/msg/Image")
    del streams["/a/image_raw"]  # no camera readable: one hint in the error
    alone = deblur_topics(tmp_path / "alone", streams, *weights)
    assert alone.returncode == 2
    hint = "; these cameras' /b/image_raw/compressed, /c/image_raw/compressed may be: --topics "
    assert hint in alone.stderr, alone.stderr
    assert sorted(alone.stderr.strip().split(hint)[1].split()) == every[1:], alone.stderr
    del streams["/c/image_raw"], streams["/c/image_raw/compressed"]
    one = deblur_topics(tmp_path / "one", streams, *weights)
    hint = "; this camera's /b/image_raw/compressed may be: --topics /b/image_raw/compressed"
    assert one.returncode == 2 and one.stderr.strip().endswith(hint), one.stderr


def test_camera_info_of_one_calibration_is_held_once():
    """Every camera_info of a bag was held (1.8 KB each, 0.8 GB for an hour of four cameras
    at 30 Hz): those of one calibration are one, whatever their headers; any other field
    tells calibrations apart."""
    from sarn_ros.offline import calibration

    a, b = camera_info(header(0, "left")), camera_info(header(5, "other"))
    assert calibration(a) == calibration(b)
    for change in (
        lambda m: setattr(m, "width", 64),
        lambda m: m.k.__setitem__(2, 24.0),
        lambda m: m.d.__setitem__(0, 0.1),
        lambda m: setattr(m, "binning_x", 2),
        lambda m: setattr(m.roi, "x_offset", 4),
        lambda m: setattr(m, "distortion_model", "equidistant"),
    ):
        c = camera_info(header(0, "left"))
        change(c)
        assert calibration(c) != calibration(a)


def test_a_topic_another_cameras_output_would_overwrite_is_refused(tmp_path):
    """--topics /cam/image_raw /cam/deblurred/image_raw wrote /cam's output over the second
    input's messages, which were not copied."""
    streams = {
        t: [bag_image(f, "rgb8", header(i, "c")) for i, f in enumerate(frames(2))]
        for t in ("/cam/image_raw", "/cam/deblurred/image_raw")
    }
    result = deblur_topics(tmp_path, streams, "--topics", *streams)
    assert result.returncode == 2
    assert (
        "topics /cam/deblurred/image_raw and /cam/image_raw: the output of /cam/image_raw would "
        "be written over /cam/deblurred/image_raw; pass one of them to --topics"
    ) in result.stderr
    assert not (tmp_path / "out").exists()


def test_bag_resize_scales_camera_info_by_each_sides_own_factor(
    tmp_path, tiny_recurrent_checkpoint
):
    """--resize 0.3 rounds 48x32 to 14x10: K scales by 14/48 across and 10/32 down, and the
    camera_info describes the published image's size (image_proc's resize)."""
    write_bag(tmp_path / "in", StoragePlugin.SQLITE3)
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu")
    deblur_bag(tmp_path / "in", tmp_path / "out", engine, 0.3, ["/left/image_raw"], lambda: None)
    out = read_bag(tmp_path / "out")
    imgs = messages(out, "/left/deblurred/image_raw", "sensor_msgs/msg/Image")
    infos = messages(out, "/left/deblurred/camera_info", "sensor_msgs/msg/CameraInfo")
    assert len(infos) == len(imgs) == 4
    assert {(m.width, m.height) for m in imgs} == {(14, 10)}
    assert {(i.width, i.height) for i in infos} == {(14, 10)}
    np.testing.assert_allclose(infos[0].k, [14 / 48, 0, 0, 0, 10 / 32, 0, 0, 0, 1])


def test_bag_only_options_and_overwrite_are_refused_where_they_do_nothing(tmp_path, capsys):
    """A --max-gap-s below the default (0: restart only where stamps go back) on a folder was
    as idle as one above it, and --overwrite on a bag (whose output must be new) is as idle as
    --compressed on a video: each is refused before the model loads."""
    (tmp_path / "pngs").mkdir()
    cv2.imwrite(str(tmp_path / "pngs" / "0.png"), frames(1)[0])
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    folder, bag = str(tmp_path / "pngs"), str(tmp_path / "bag")
    missing = ["--weights", str(tmp_path / "missing.pt"), "--device", "cpu"]
    refused = {
        (folder, "--max-gap-s", "0"): "--max-gap-s (bags)",
        (folder, "--max-gap-s", "0.1"): "--max-gap-s (bags)",
        (bag, "--overwrite"): "--overwrite (videos, images and image folders; an output bag must",
    }
    for (src, *options), flag in refused.items():
        argv = ["deblur", src, "-o", str(tmp_path / "out"), *options, *missing]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("sarn deblur: error: not used in this run: ") and flag in err, err
        assert "missing.pt" not in err and not (tmp_path / "out").exists()


def test_a_bag_into_a_video_name_is_refused_before_the_model_loads(tmp_path, capsys):
    """A bag becomes a bag: an output named like a video (or --side-by-side) is one line."""
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    missing = ["--weights", str(tmp_path / "missing.pt"), "--device", "cpu"]
    for out, extra in (("out.mp4", []), ("out.MKV", []), ("out", ["--side-by-side"])):
        argv = ["deblur", str(tmp_path / "bag"), "-o", str(tmp_path / out), *extra, *missing]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "no video output or --side-by-side" in err and "missing.pt" not in err, err
        assert not (tmp_path / out).exists()


def test_ctrl_c_on_a_bag_says_the_half_written_bag_is_removed(
    tmp_path, tiny_recurrent_checkpoint, monkeypatch, capsys
):
    """Ctrl-C in the middle of a bag: the partial output bag goes, and the line says so (not
    "has the first N frames", which is what a folder or video keeps); so do the folders made
    for it (rosbags makes them: they stayed, empty), and `new/../kept` makes no `new`."""
    from sarn_ros import offline

    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    decode, calls = offline.bag_image, []

    def ctrl_c_at_the_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return decode(*args)

    monkeypatch.setattr(offline, "bag_image", ctrl_c_at_the_third)
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    argv = ["deblur", str(tmp_path / "bag"), "-o", str(tmp_path / "made" / "for" / "out")]
    assert cli.main([*argv, *weights]) == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "sarn deblur: interrupted; a half-written bag is removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
    monkeypatch.setattr(offline, "bag_image", decode)
    argv = ["deblur", str(tmp_path / "bag"), "-o", str(tmp_path / "new" / ".." / "kept")]
    assert cli.main([*argv, *weights]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "kept"]


@pytest.mark.slow
def test_a_long_run_on_an_onnx_graph_gets_no_hint_to_export_it(
    tmp_path, tiny_recurrent_onnx, capsys, monkeypatch
):
    """The CPU hint names `sarn export` for a CPU without native bf16: a run that already uses
    the exported graph has nothing faster to be told."""
    from sarn_ros.tools import deblur as deblur_tool

    monkeypatch.setattr("sarn_ros.engine.native_bf16", lambda: False)
    monkeypatch.setattr(deblur_tool, "HINT_AFTER_S", 0.0)
    src = write_folder(tmp_path / "in", frames(2))
    argv = ["deblur", str(src), "-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_onnx)]
    assert cli.main([*argv, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "sarn deblur: 2 frames ->" in captured.out
    assert "hint:" not in captured.err, captured.err


def test_a_camera_without_one_readable_frame_is_named_and_leaves_no_empty_topic(
    tmp_path, tiny_recurrent_checkpoint
):
    """Beside a camera that decodes, one that never did got an empty deblurred topic in the
    output bag and only a share of the skipped count, its reason named only if it came first."""
    with Writer(tmp_path / "bag", version=9) as w:
        cams = {
            cam: w.add_connection(f"/{cam}/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
            for cam in ("cam", "thermal")
        }
        for i, img in enumerate(frames(3)):
            for cam, encoding in (("cam", "rgb8"), ("thermal", "weird42")):
                msg = bag_image(img, encoding, header(i, cam))
                w.write(cams[cam], i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    out = tmp_path / "out"
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    result = deblur(str(tmp_path / "bag"), "-o", str(out), *weights)
    assert result.returncode == 0, result.stderr
    assert "sarn deblur: /thermal/image_raw not deblurred: no readable frame (" in result.stderr
    assert "weird42" in result.stderr.split("/thermal/image_raw not deblurred")[1]
    topics = {topic for topic, _, _ in read_bag(out)}
    assert "/cam/deblurred/image_raw" in topics and "/thermal/deblurred/image_raw" not in topics
    with AnyReader([out]) as reader:
        assert "/thermal/deblurred/image_raw" not in {c.topic for c in reader.connections}
    # the same topic twice is that topic, not two cameras feeding one output
    twice = ["--topics", "/cam/image_raw", "/cam/image_raw"]
    result = deblur(str(tmp_path / "bag"), "-o", str(tmp_path / "twice"), *weights, *twice)
    assert result.returncode == 0, result.stderr


def test_a_file_given_as_the_output_folder_is_refused_before_the_model(tmp_path, capsys):
    write_video(tmp_path / "in.mp4", frames(2))
    (tmp_path / "afile").write_text("mine")
    args = ["deblur", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "afile"), "--weights", "x"]
    assert cli.main(args) == 2  # refused before the weights "x" are looked for
    assert f"output {tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


def test_resize_takes_the_nodes_range():
    """README says the offline tool scales as the node does: the same values are valid."""
    from sarn_ros.ros.params import BY_NAME
    from sarn_ros.tools.cli import build_parser

    low, high = BY_NAME["resize"].float_range
    parser = build_parser(["deblur"])
    for value, ok in ((low, True), (high, True), (low / 2, False), (high * 1.5, False)):
        argv = ["deblur", "in", "-o", "out", "--resize", str(value)]
        if ok:
            assert parser.parse_args(argv).resize == value
        else:
            with pytest.raises(SystemExit):
                parser.parse_args(argv)


def test_names_that_are_not_utf8_are_read_and_written_not_a_crash(
    tmp_path, tiny_recurrent_checkpoint
):
    """OpenCV's path-taking calls crash the process (SIGSEGV) on a name that is not UTF-8 (an
    old FAT drive's or camera's \\xff.png): a folder holding one died mid-run. Images now go
    through OpenCV as bytes; a video, which OpenCV opens only by path, is refused by name.
    Under a UTF-8 terminal's strict output the closing line raised on such a name."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(4)
    names = ["0.png", os.fsdecode(b"1\xff.png"), "2.png"]
    for name in names:
        cv2.imwrite(str(src / "x.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        os.replace(src / "x.png", src / name)
    odd_video = tmp_path / os.fsdecode(b"\xff.mp4")
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    os.replace(tmp_path / "v.mp4", odd_video)
    out = tmp_path / os.fsdecode(b"out\xff")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]

    def sarn_deblur(*argv: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "sarn_ros.tools.cli", "deblur", *map(str, argv), *weights]
        return subprocess.run(cmd, capture_output=True, env=env, timeout=300)

    done = sarn_deblur(src, "-o", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out)) == sorted(names)
    assert os.fsencode(out) in done.stdout
    for argv in ((odd_video, "-o", tmp_path / "frames"), (src, "-o", out.with_suffix(".mp4"))):
        refused = sarn_deblur(*argv)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert refused.stderr.endswith(
            b".mp4': OpenCV cannot open a video whose path is not UTF-8; rename it\n"
        )
    assert not (tmp_path / "frames").exists()


def test_a_signal_while_the_stop_handlers_are_set_is_a_stop_and_restores_them(monkeypatch):
    """A SIGTERM between setting the SIGTERM and the SIGHUP handler met an unbound dict: a
    NameError, and the handler left installed after the block."""
    import signal

    from sarn_ros.tools import options

    getsignal = signal.getsignal

    def term_while_setting(signum):
        if signum == signal.SIGHUP:
            os.kill(os.getpid(), signal.SIGTERM)
        return getsignal(signum)

    monkeypatch.setattr(options.signal, "getsignal", term_while_setting)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(options.Stopped, match="SIGTERM"), options.stops_as_interrupts():
            pass
        assert getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_new_input_size_restarts_the_stream_under_resize_as_the_node_does(
    tmp_path, tiny_recurrent_checkpoint
):
    """96x64 and 97x65 both become 48x32 at --resize 0.5: the node restarts there, `sarn
    deblur` went on, its last frames before the change taking the new scene's as look-ahead."""
    imgs = frames(3, h=64, w=96, seed=5) + [255 - f for f in frames(3, h=65, w=97, seed=6)]
    from sarn_ros.data.datasets import resize_by

    small = [resize_by(f, 0.5) for f in imgs]
    engine = make_engine(tiny_recurrent_checkpoint, device="cpu", max_gap_s=None)
    expected = []
    for i, f in enumerate(small):
        if i == 3:
            engine.reset(reason="resolution")
        expected += engine.push(f, i * 100_000_000)
    expected = [o.image for o in expected + engine.flush()]
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--resize", "0.5"]
    write_folder(tmp_path / "in", imgs)
    assert deblur(str(tmp_path / "in"), "-o", str(tmp_path / "out"), *weights).returncode == 0
    for i, e in enumerate(expected):
        assert np.array_equal(cv2.imread(str(tmp_path / "out" / f"{i}.png"))[..., ::-1], e), i
    msgs = [bag_image(f, "rgb8", header(i, "cam")) for i, f in enumerate(imgs)]
    (tmp_path / "bag").mkdir()
    result = deblur_topics(tmp_path / "bag", {"/cam/image_raw": msgs}, *weights)
    assert result.returncode == 0, result.stderr
    bag = read_bag(tmp_path / "bag" / "out")
    outs = messages(bag, "/cam/deblurred/image_raw", "sensor_msgs/msg/Image")
    got = [np.frombuffer(o.data, np.uint8).reshape(o.height, o.width, 3) for o in outs]
    assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))


def test_overwrite_replaces_links_in_the_output_not_the_originals_they_point_to(
    tmp_path, tiny_recurrent_checkpoint
):
    """An output folder hard-linked to the input (`cp -al`), or of symlinks to it, had every
    input frame written over with its deblurred version by --overwrite; and a dangling link
    named like an image raised after the run was done."""
    src = write_folder(tmp_path / "in", frames(3))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    (tmp_path / "hard").mkdir()
    (tmp_path / "soft").mkdir()
    for p in src.iterdir():
        os.link(p, tmp_path / "hard" / p.name)
        (tmp_path / "soft" / p.name).symlink_to(p)
    (tmp_path / "soft" / "zz.png").symlink_to(tmp_path / "nowhere.png")
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--overwrite"]
    for out in ("hard", "soft"):
        result = deblur(str(src), "-o", str(tmp_path / out), *weights)
        assert result.returncode == 0, result.stderr
        assert {p.name: p.read_bytes() for p in src.iterdir()} == before
        assert not any(p.is_symlink() for p in (tmp_path / out).glob("[0-9].png"))


def test_a_folder_of_images_beside_its_own_metadata_yaml_is_no_bag(
    tmp_path, tiny_recurrent_checkpoint
):
    """A camera tool's metadata.yaml beside the frames made the folder a rosbag2, refused."""
    src = write_folder(tmp_path / "in", frames(2))
    (src / "metadata.yaml").write_text("camera: left\nexposure_us: 8000\n")
    result = deblur(
        str(src), "-o", str(tmp_path / "out"), "--weights", str(tiny_recurrent_checkpoint)
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png"]


def test_grey_with_alpha_reads_as_grey_and_skips_before_the_window_are_not_counted(
    tmp_path, tiny_recurrent_checkpoint
):
    """A grey PNG with alpha came out colour (slightly tinted); and unreadable files before
    --skip-frames' window were counted as skipped, where those after --max-frames' are not."""
    Image = pytest.importorskip("PIL.Image")  # python3-pil: the test writes grey + alpha

    from sarn_ros.data.datasets import read_frame

    src = tmp_path / "in"
    src.mkdir()
    grey = [f[..., 0] for f in frames(6)]
    for i, g in enumerate(grey):
        Image.fromarray(g).convert("LA").save(src / f"{i}.png")
    assert np.array_equal(read_frame(src / "0.png"), grey[0])
    (src / "2.png").write_bytes(b"")
    (src / "3.png").write_bytes(b"not a png")
    args = ["--weights", str(tiny_recurrent_checkpoint), "--skip-frames", "3", "--max-frames", "1"]
    result = deblur(str(src), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 0, result.stderr
    assert "unreadable" not in result.stdout + result.stderr
    assert cv2.imread(str(tmp_path / "out" / "5.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    # ... yet where nothing could be read, the error still says why
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"not a png")
    args[-4:] = ["--skip-frames", "1"]
    result = deblur(str(bad), "-o", str(tmp_path / "none"), *args)
    assert result.returncode == 2
    assert "(3 files that decode to no 8- or 16-bit image, first 0.png)" in result.stderr


def test_a_folders_jpeg_frames_take_jpeg_quality(tmp_path, tiny_recurrent_checkpoint):
    """A folder of JPEGs came out at OpenCV's 95 whatever was wanted: --jpeg-quality was
    refused there."""
    src = tmp_path / "in"
    src.mkdir()
    for i, f in enumerate(frames(2, h=64, w=96)):
        cv2.imwrite(str(src / f"{i}.jpg"), f)
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    sizes = []
    for q in ("95", "20"):
        out = tmp_path / f"q{q}"
        result = deblur(str(src), "-o", str(out), *weights, "--jpeg-quality", q)
        assert result.returncode == 0, result.stderr
        sizes.append((out / "0.jpg").stat().st_size)
    assert sizes[1] < sizes[0] / 2
    default = deblur(str(src), "-o", str(tmp_path / "d"), *weights)
    assert (tmp_path / "d" / "0.jpg").read_bytes() == (tmp_path / "q95" / "0.jpg").read_bytes()
    assert default.returncode == 0


def variable_rate(path: Path) -> None:
    """Give an mp4 OpenCV wrote (an even frame count) a variable frame rate in the same
    duration: its first half twice as fast, its second half three times further apart, as a
    phone slows in the dark."""
    retime(path, lambda count, delta: [(count // 2, delta // 2), (count // 2, delta * 3 // 2)])


def retime(path: Path, entries_of: Callable[[int, int], list[tuple[int, int]]]) -> None:
    """Give an mp4 OpenCV wrote (one stts entry, moov after mdat) the frame times of
    ``entries_of(frame count, frame interval)``: (frames, interval) runs."""
    b = bytearray(path.read_bytes())
    at = b.find(b"stts")
    size = struct.unpack(">I", b[at - 4 : at])[0]
    entries = entries_of(*struct.unpack(">II", b[at + 12 : at + 20]))
    stts = struct.pack(">I4sII", 16 + 8 * len(entries), b"stts", 0, len(entries))
    stts += b"".join(struct.pack(">II", *e) for e in entries)
    for box in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):  # the boxes holding it grow
        j = b.rfind(box, 0, at)
        b[j - 4 : j] = struct.pack(">I", struct.unpack(">I", b[j - 4 : j])[0] + len(stts) - size)
    b[at - 4 : at - 4 + size] = stts
    path.write_bytes(bytes(b))


def test_a_variable_frame_rate_video_is_said_written_at_one_rate(
    tmp_path, tiny_recurrent_checkpoint
):
    """A phone's variable-rate video came out at one rate, its second half played faster than
    it was filmed, without a word."""
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    src = tmp_path / "phone.mp4"
    write_video(src, frames(8), fps=30.0)
    result = deblur(str(src), "-o", str(tmp_path / "steady.mp4"), *weights)
    assert result.returncode == 0 and "variable" not in result.stderr, result.stderr
    variable_rate(src)
    said = (
        f"{src} has a variable frame rate (frames 17 to 50 ms apart): {tmp_path / 'out.mp4'} "
        "has the same frames at a constant 30 fps, not their times"
    )
    result = deblur(str(src), "-o", str(tmp_path / "out.mp4"), *weights)
    assert result.returncode == 0 and said in result.stderr, result.stderr
    assert cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 8
    result = deblur(str(src), "-o", str(tmp_path / "frames"), *weights)  # no times to lose
    assert result.returncode == 0 and "variable" not in result.stderr, result.stderr


def test_a_frame_missing_from_a_steady_videos_timeline_is_said_as_such(
    tmp_path, tiny_recurrent_checkpoint
):
    """A steady 15 fps file whose decoder passed over a frame (cut or damaged), or whose
    camera dropped one, was said to have a variable frame rate, and into a folder nothing was
    said while every later frame took the name of the one before it."""
    src = tmp_path / "dropped.mp4"
    write_video(src, frames(30), fps=30.0)
    retime(src, lambda count, delta: [(10, delta), (1, 3 * delta), (count - 11, delta)])
    weights = ["--weights", str(tiny_recurrent_checkpoint)]
    said = (
        f"{src}: its steady timeline has no frame at 2 frame times, the first after frame 10 "
        "(dropped by the camera, or passed over by the decoder in a damaged file); the frames "
        "after it are numbered and timed as read"
    )
    for out in ("out.mp4", "frames"):
        result = deblur(str(src), "-o", str(tmp_path / out), *weights)
        assert result.returncode == 0 and said in result.stderr, result.stderr
        assert "variable" not in result.stderr
    steady = tmp_path / "steady.mp4"
    write_video(steady, frames(30), fps=30.0)
    result = deblur(str(steady), "-o", str(tmp_path / "steady"), *weights)
    assert result.returncode == 0 and "no frame at" not in result.stderr, result.stderr


def test_an_output_folder_another_run_writes_into_is_refused(
    tmp_path, capsys, monkeypatch, tiny_recurrent_checkpoint
):
    """Two runs into one folder, started together, both passed the check for images there and
    mixed their frames (both said done). The folder is locked while written (here by this
    process, as another run would); a folder made for a run that then fails is removed."""
    from sarn_ros.tools.options import folder_lock

    src = tmp_path / "in.mp4"
    write_video(src, frames(3))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["deblur", str(src), "-o", str(out), "--weights", str(tiny_recurrent_checkpoint)]
    with folder_lock(out):
        assert cli.main([*argv, "--device", "cpu"]) == 2
    assert capsys.readouterr().err.endswith(
        f"another sarn deblur writes into {out}: wait for it to end, or name another -o\n"
    )
    assert cli.main([*argv, "--device", "cpu"]) == 0 and len(list(out.iterdir())) == 3
    (tmp_path / "bad.pth").write_text("no weights")
    new = tmp_path / "new" / "deeper" / "out"  # its parents made with it: removed too
    argv = ["deblur", str(src), "-o", str(new), "--weights", str(tmp_path / "bad.pth")]
    assert cli.main([*argv, "--device", "cpu"]) == 2 and not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()  # a folder there before: never removed, by any name
    argv[3] = str(tmp_path / "made" / ".." / "kept")
    assert cli.main([*argv, "--device", "cpu"]) == 2 and (tmp_path / "kept").is_dir()
    assert not (tmp_path / "made").exists()
    good = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    done = ["deblur", str(src), "-o", str(tmp_path / "made" / ".." / "done"), *good]
    assert cli.main(done) == 0 and len(list((tmp_path / "done").iterdir())) == 3
    assert not (tmp_path / "made").exists()  # written by name: the frames made it back
    done[3] = str(tmp_path / "made" / ".." / "done.mp4")  # a video's folder, likewise
    assert cli.main(done) == 0 and (tmp_path / "done.mp4").is_file()
    assert not (tmp_path / "made").exists()
    written = (tmp_path / "done.mp4").read_bytes()  # checked where written: not replaced unsaid
    assert cli.main(done) == 2 and (tmp_path / "done.mp4").read_bytes() == written
    assert "done.mp4 already exists: pass --overwrite to replace it" in capsys.readouterr().err
    argv[3:] = [".", "--weights", str(tiny_recurrent_checkpoint)]  # `-o .`: a traceback
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert cli.main([*argv, "--device", "cpu"]) == 0 and len(list(Path().iterdir())) == 3


def test_a_word_a_subcommand_does_not_take_is_refused_with_its_usage(capsys):
    """`sarn deblur a b -o x` (two inputs) printed `sarn`'s own usage, which names no input:
    the subcommand's says what it takes."""
    from sarn_ros.tools import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["deblur", "a", "b", "-o", "x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("usage: sarn deblur "), err
    assert err.endswith("\nsarn deblur: error: unrecognized arguments: b\n"), err
    with pytest.raises(SystemExit):
        cli.main(["bench", "model", "--sizes", "8x8", "--bogus"])
    err = capsys.readouterr().err
    assert err.startswith("usage: sarn bench model ") and err.endswith(": --bogus\n"), err
    for before in (["--bogus"], ["--overwrite", "deblur", "a", "-o", "x"]):  # sarn's own
        with pytest.raises(SystemExit):
            cli.main(before)
        err = capsys.readouterr().err
        assert err.startswith("usage: sarn [-h]") and err.endswith(
            f"\nsarn: error: unrecognized arguments: {before[0]}\n"
        ), err
