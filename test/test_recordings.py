"""Bags and videos of one's own camera as `sarn eval` streams and `sarn train` material."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the bag tests need rosbags (README: colcon test)")
from rosbags.rosbag2 import StoragePlugin, Writer
from test_deblur_offline import STORE, T, bag_image, corrupt_mjpeg_frames, header, write_video
from test_eval import sarn_eval

from sarn_ros.data.blur_synth import BlurParams
from sarn_ros.data.datasets import load_sequences, resize_by
from sarn_ros.offline import InputError
from sarn_ros.recordings import (
    Recording,
    iter_clips,
    read_streams,
    sharpest_clips,
    synthetic_sequences,
    unbroken_pieces,
)
from sarn_ros.tools import cli
from sarn_ros.tools.eval import read_once
from sarn_ros.tools.train import build_trainset, describe_sources, gather, trainset_conflicts


def grey_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Textured grey frames (ORB finds features in them) drifting right by 2 px per frame."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (40, 56), dtype=np.uint8), (224, 160))
    return [np.ascontiguousarray(np.roll(base, 2 * i, axis=1)[8:136, 8:200]) for i in range(n)]


def write_camera_bag(
    path: Path,
    imgs: list[np.ndarray],
    corrupt: int | None = None,
    plugin: StoragePlugin = StoragePlugin.SQLITE3,
) -> None:
    """A camera as a robot records it: mono8 image_raw, its JPEG twin and a depth topic."""
    with Writer(path, version=9, storage_plugin=plugin) as w:
        raw = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        jpg = w.add_connection(
            "/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=STORE
        )
        depth = w.add_connection("/cam/depth/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(imgs):
            msg = bag_image(img, "mono8", header(i, "cam"))
            if i == corrupt:
                msg.data = msg.data[:-5]  # shorter than step * height
            w.write(raw, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            data = cv2.imencode(".jpg", img)[1].reshape(-1)
            msg = T["sensor_msgs/msg/CompressedImage"](
                header=header(i, "cam"), format="mono8; jpeg compressed mono8", data=data
            )
            w.write(jpg, 10 * i + 2, STORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
            d = np.full(img.shape, 1000 + i, np.uint16)
            msg = bag_image(d, "16UC1", header(i, "cam"))
            w.write(depth, 10 * i + 3, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def test_bag_streams_are_its_camera_frames_decoded_as_the_node_does(tmp_path, caplog) -> None:
    imgs = grey_frames(6)
    write_camera_bag(tmp_path / "run", imgs, corrupt=1)
    with caplog.at_level(logging.WARNING):
        rec, streams = read_streams(tmp_path / "run", max_frames=3, skip=1)
    assert set(rec.ignored) == {"/cam/depth/image_raw", "/cam/image_raw/compressed"}
    assert "depth/image_raw left out" in caplog.text and "1 unreadable" in caplog.text
    ((name, frames),) = streams
    assert name == "run/cam/image_raw"
    # frame 1 is corrupt: skipped and counted; skipping counts readable frames (frame 0 here)
    assert rec.skipped == 1
    assert all(np.array_equal(f, e) for f, e in zip(frames, imgs[2:5], strict=True))
    assert len(frames) == 3
    _, ((_, jpegs),) = read_streams(tmp_path / "run", topics=["/cam/image_raw/compressed"])
    assert len(jpegs) == 6 and np.abs(jpegs[0].astype(int) - imgs[0]).mean() < 3
    with pytest.raises(InputError, match=r"it has 5, --skip-frames is 5"):
        read_streams(tmp_path / "run", skip=5)


def test_eval_of_a_bag_equals_eval_of_the_same_frames_as_a_folder(
    tmp_path, tiny_recurrent_checkpoint
) -> None:
    imgs = grey_frames(5)
    write_camera_bag(tmp_path / "run", imgs)
    (tmp_path / "folder").mkdir()
    for i, img in enumerate(imgs):
        cv2.imwrite(str(tmp_path / "folder" / f"{i}.png"), img)
    write_video(tmp_path / "clip.mp4", imgs)
    out = tmp_path / "eval.json"
    inputs = [str(tmp_path / x) for x in ("folder", "run", "clip.mp4")]
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    result = sarn_eval("--no-gt", *inputs, *weights, "--future-frames", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "/cam/image_raw/compressed left out" in result.stderr
    folder, bag, video = json.loads(out.read_text())["no_gt"]
    assert (folder["sequence"], bag["sequence"], video["sequence"]) == (
        "folder",
        "run/cam/image_raw",
        "clip",
    )
    assert bag["frames"] == video["frames"] == 5
    same = ("orb_inliers_input", "orb_inliers", "orb_matches", "sharpness_input", "sharpness")
    assert {k: bag[k] for k in same} == {k: folder[k] for k in same}
    assert min(folder["orb_inliers_input"]) > 20  # the proxy has features to count
    bad = sarn_eval("--no-gt", str(tmp_path / "run"), "--topics", "/nope", *weights)
    assert bad.returncode == 2 and "not in the bag" in bad.stderr
    assert "Traceback" not in bad.stderr
    # a bag and its only storage file are one recording: one row (it gave a second, `_2`)
    (db3,) = (tmp_path / "run").glob("*.db3")
    result = sarn_eval(
        "--no-gt", inputs[1], str(db3), *weights, "--future-frames", "1", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert [r["sequence"] for r in json.loads(out.read_text())["no_gt"]] == ["run/cam/image_raw"]


def test_a_camera_that_changes_size_and_topics_without_frames(tmp_path, caplog) -> None:
    """A camera reconfigured mid-recording made `sarn eval --synthetic` and `sarn train` fail
    on a broadcast of two shapes, and a topic the bag declares but never published (or one of
    32FC1 frames) ended all of `sarn eval --no-gt`: each now keeps what can be used."""
    small, big = grey_frames(4), [cv2.resize(f, (96, 64)) for f in grey_frames(4, seed=1)]
    with Writer(tmp_path / "run", version=9) as w:
        cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        w.add_connection("/silent/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        flt = w.add_connection("/thermal/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(small + big):
            msg = bag_image(img, "mono8", header(i, "cam"))
            w.write(cam, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            msg = bag_image(img.astype(np.float32), "32FC1", header(i, "thermal"))
            w.write(flt, 10 * i + 2, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    with caplog.at_level(logging.WARNING):
        _, streams = read_streams(tmp_path / "run")
    assert [(name, len(frames)) for name, frames in streams] == [
        ("run/cam/image_raw#1", 4),
        ("run/cam/image_raw#2", 4),
    ]
    assert "image_raw: taken apart in 2 pieces (#1 to #2)" in caplog.text
    assert "restarts there: once where the frame size or format changed" in caplog.text
    assert all(np.array_equal(f, e) for f, e in zip(streams[1][1], big, strict=True))
    assert "left out (no readable frames in run/silent/image_raw)" in caplog.text
    # frames after --skip-frames keep their piece's name, as `sarn eval --no-gt` rows do
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, streams = read_streams(tmp_path / "run", skip=5)
    assert [(name, len(frames)) for name, frames in streams] == [("run/cam/image_raw#2", 3)]
    assert "are piece #2: the node restarted once before them" in caplog.text
    _, streams = read_streams(tmp_path / "run", skip=2, max_frames=4)
    assert [name for name, _ in streams] == ["run/cam/image_raw#1", "run/cam/image_raw#2"]
    _, ((name, _),) = read_streams(tmp_path / "run", max_frames=4)
    assert name == "run/cam/image_raw"  # not cut in what was read
    assert "run/thermal/image_raw: '32FC1' holds no colour" in caplog.text
    params = BlurParams(blur_px=3.0)
    seqs = synthetic_sequences(tmp_path / "run", 0, params, topics=["/cam/image_raw"])
    assert [len(s.sharp) for s in seqs] == [4, 4]  # each size apart (the generator crops)
    assert seqs[0].sharp[0].shape[0] > seqs[1].sharp[0].shape[0]
    clips = list(iter_clips(tmp_path / "run", 8, topics=["/cam/image_raw"]))
    assert [(n, len(c), c[0].shape) for n, c in clips] == [
        ("run/cam/image_raw_1", 4, (128, 192, 3)),
        ("run/cam/image_raw_2", 4, (64, 96, 3)),
    ]
    with pytest.raises(InputError, match=r"no readable frames in run/silent/image_raw$"):
        read_streams(tmp_path / "run", topics=["/silent/image_raw", "/thermal/image_raw"])


def test_videos_and_bags_are_cut_into_training_clips(tmp_path: Path) -> None:
    imgs = grey_frames(11)
    write_video(tmp_path / "drive.mp4", imgs)
    write_camera_bag(tmp_path / "bags" / "run", imgs[:7])
    clips = list(iter_clips(tmp_path / "drive.mp4", clip_frames=4))
    assert [(n, len(c)) for n, c in clips] == [("drive_1", 4), ("drive_2", 4), ("drive_3", 3)]
    assert all(f.shape == (128, 192, 3) and f.dtype == np.uint8 for _, c in clips for f in c)
    params, rec = BlurParams(blur_px=3.0), {"clip_frames": 4}
    sources = ([tmp_path / "drive.mp4", tmp_path / "bags"], params, [1.0], 2, 4)
    seqs = gather(*sources, **rec)
    # video: 3 clips, bag (one camera, 7 frames): 2 clips; 2 blur draws of each
    assert len(seqs) == 10 and sum(len(s.blurred) for s in seqs) == 2 * (11 + 7)
    assert {s.blurred[0].shape for s in seqs} == {seqs[0].sharp[0].shape}
    built = build_trainset(*sources, tmp_path / "ts", **rec)
    assert sorted(s.name for s in built) == sorted(s.name.replace("/", "_") for s in seqs)
    assert len(load_sequences(tmp_path / "ts")) == 10
    (val,) = synthetic_sequences(tmp_path / "bags" / "run", 1234, params, max_frames=5)
    assert val.name == "run/cam/image_raw" and len(val.sharp) == 5
    # a bare .mcap file given to --data
    write_camera_bag(tmp_path / "m", imgs[:7], plugin=StoragePlugin.MCAP)
    (bare,) = (tmp_path / "m").glob("*.mcap")
    assert len(gather([bare], params, [1.0], 1, 4, **rec)) == 2


def test_the_sharpest_clips_of_an_ordinary_recording_are_the_training_material(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A robot's recording: two sharp stretches around a blurred one (the robot turning);
    --sharpest 0.67 trains on the two sharp clips only, and the set says so."""
    imgs = grey_frames(12)
    imgs[4:8] = [cv2.GaussianBlur(f, (0, 0), 2.5) for f in imgs[4:8]]
    write_video(tmp_path / "drive.mp4", imgs)
    kept, total, _ = sharpest_clips(tmp_path / "drive.mp4", 4, 0.67)
    assert (kept, total) == ({"drive_1", "drive_3"}, 3)
    kept, _, _ = sharpest_clips(tmp_path / "drive.mp4", 4, 0.01)
    assert len(kept) == 1 and kept <= {"drive_1", "drive_3"}  # at least one clip
    params = BlurParams(blur_px=3.0)
    sources = ([tmp_path / "drive.mp4"], params, [1.0, 0.5], 1, 4)
    seqs = gather(*sources, clip_frames=4, sharpest=0.67)
    assert sorted(s.name for s in seqs) == [
        "drive_1_x0.5_v0",
        "drive_1_x1_v0",
        "drive_3_x0.5_v0",
        "drive_3_x1_v0",
    ]
    assert capsys.readouterr().out.count("the 2 sharpest of 3 clips") == 1  # for both scales
    build_trainset(*sources, tmp_path / "ts", clip_frames=4, sharpest=0.67)
    assert json.loads((tmp_path / "ts" / "trainset.json").read_text())["sharpest"] == 0.67
    assert len(gather(*sources, clip_frames=4)) == 6  # every clip by default
    for bad in ("0", "1.5"):
        args = ["train", "--run-dir", str(tmp_path / "run"), "--sharpest", bad]
        with pytest.raises(SystemExit) as usage:
            cli.main([*args, "--data", str(tmp_path / "drive.mp4")])
        assert usage.value.code == 2
        assert f"argument --sharpest: must be in (0, 1], got {bad}" in capsys.readouterr().err


def test_a_trainset_cut_at_one_max_gap_s_is_reused_with_it_and_named_with_another(tmp_path):
    """The set's description as read back lacked max_gap_s: every reuse, at the very value the
    set was built with, was refused as a set of uncut clips."""
    from sarn_ros.tools.train import read_description

    write_paused_bag(tmp_path / "run", grey_frames(12), PAUSED_MS)
    sources = ([tmp_path / "run"], BlurParams(), [1.0], 1, 6)
    build_trainset(*sources, tmp_path / "ts", clip_frames=8, max_gap_s=3.0)
    desc = read_description(tmp_path / "ts")
    base = ["train", "--run-dir", "r", "--trainset", str(tmp_path / "ts"), "--clip-frames", "8"]
    for given, found in (
        (["--max-gap-s", "3"], []),
        (["--max-gap-s", "1"], ["--max-gap-s 1 (the set: 3)"]),
    ):
        args = cli.build_parser(base).parse_args([*base, *given])
        assert trainset_conflicts(args, desc) == found


def test_a_bag_whose_every_frame_breaks_off_says_why_nothing_trains(tmp_path, capsys):
    """A camera at 1 fps: every frame its own piece under --max-gap-s 0.5, and the error was
    "no training images found", naming neither the stamps nor the option."""
    write_paused_bag(tmp_path / "slow", grey_frames(6), [1000 * i for i in range(6)])
    argv = ["train", "--data", str(tmp_path / "slow"), "--run-dir", str(tmp_path / "r")]
    assert cli.main([*argv, "--steps", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no training images found in" in err
    assert "stamps go back or pause over --max-gap-s 0.5 s (raise it for a camera" in err
    from sarn_ros.recordings import gap_hint

    assert gap_hint([tmp_path / "slow"], 2.0).endswith(
        "(raise it for a camera slower than 0.5 fps)"
    )
    assert (
        gap_hint([tmp_path / "slow"], None) == "; a bag's clips end where a camera's stamps go back"
    )
    assert gap_hint([tmp_path / "none"], 0.5) == ""  # no bag among them (nor any path)
    write_video(tmp_path / "two.mp4", grey_frames(2))  # a readable video, too short for a clip
    argv[2], argv[4] = str(tmp_path / "two.mp4"), str(tmp_path / "r2")
    assert cli.main([*argv, "--steps", "1", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.endswith(
        f"no training images found in {tmp_path / 'two.mp4'}; a video clip needs 3 frames at "
        "least\n"
    )


def test_a_topic_left_out_is_named_once_however_often_the_bag_is_read(tmp_path, caplog):
    """Training reads a bag once per scale, and once more for --sharpest: its depth topic
    was named left out three times."""
    write_camera_bag(tmp_path / "run", grey_frames(8))
    with caplog.at_level(logging.WARNING):
        seqs = gather(
            [tmp_path / "run"], BlurParams(), [1.0, 0.5], 1, 4, clip_frames=4, sharpest=0.5
        )
    assert len(seqs) == 2
    assert caplog.text.count("depth/image_raw left out") == 1


def test_a_message_that_does_not_deserialise_is_skipped_and_counted(tmp_path: Path) -> None:
    """A record cut short is an unreadable frame like any other, not the end of the read:
    rosbags reports it as AnyReaderError, which is no ValueError."""
    imgs = grey_frames(4)
    with Writer(tmp_path / "run", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(imgs):
            msg = bag_image(img, "mono8", header(i, "cam"))
            raw = STORE.serialize_cdr(msg, "sensor_msgs/msg/Image")
            w.write(conn, 10 * i + 1, raw[:40] if i == 1 else raw)
    rec, ((_, frames),) = read_streams(tmp_path / "run")
    assert rec.skipped == 1
    assert len(frames) == 3
    assert all(np.array_equal(f, e) for f, e in zip(frames, imgs[:1] + imgs[2:], strict=True))


@pytest.mark.parametrize("given", [".", "..", "sub/.."])
def test_a_folder_given_as_dot_is_named_after_itself(tmp_path, monkeypatch, given) -> None:
    """'.' (or '..') has an empty name (or '..'): the stream, its row and its images were
    named '' or '..' instead of the folder's name."""
    folder = tmp_path / "drive"
    (folder / "sub").mkdir(parents=True)
    for i, img in enumerate(grey_frames(2)):
        cv2.imwrite(str(folder / f"{i}.png"), img)
    monkeypatch.chdir(folder if given != ".." else folder / "sub")
    _, ((name, frames),) = read_streams(Path(given))
    assert name == "drive" and len(frames) == 2


def test_each_camera_of_a_bag_draws_its_own_synthetic_blur(tmp_path: Path) -> None:
    """Two cameras seeing the same frames were blurred alike (one seed for every stream), so a
    stereo bag scored one blur twice; the first keeps the seed a one-camera bag had."""
    imgs = grey_frames(4)
    with Writer(tmp_path / "stereo", version=9) as w:
        for topic in ("/left/image_raw", "/right/image_raw"):
            conn = w.add_connection(topic, "sensor_msgs/msg/Image", typestore=STORE)
            for i, img in enumerate(imgs):
                msg = bag_image(img, "mono8", header(i, "cam"))
                w.write(conn, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    left, right = synthetic_sequences(tmp_path / "stereo", 7, BlurParams(blur_px=6))
    assert (left.name, right.name) == ("stereo/left/image_raw", "stereo/right/image_raw")
    assert all(np.array_equal(a, b) for a, b in zip(left.sharp, right.sharp, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(left.blurred, right.blurred, strict=True))
    write_camera_bag(tmp_path / "mono", imgs)
    (alone,) = synthetic_sequences(tmp_path / "mono", 7, BlurParams(blur_px=6))
    assert all(np.array_equal(a, b) for a, b in zip(alone.blurred, left.blurred, strict=True))


def test_a_folder_of_recordings_is_a_held_out_set(tmp_path: Path) -> None:
    """README: --val-sharp takes bags and videos "or folders of them"; a folder holding a bag
    was refused ("no images or rosbag2"), as by `sarn eval --synthetic`."""
    held = tmp_path / "heldout"
    held.mkdir()
    imgs = grey_frames(5)
    write_camera_bag(held / "run", imgs)
    write_video(held / "clip.mp4", imgs)
    (held / "notes.txt").write_text("not a recording")
    stills = held / "stills"
    stills.mkdir()
    cv2.imwrite(str(stills / "a.png"), np.full((64, 80, 3), 90, np.uint8))
    # a still named like its folder (`s/s0.png`) kept no folder prefix: `s0`, as a video s0.mp4
    (held / "s").mkdir()
    cv2.imwrite(str(held / "s" / "s0.png"), np.full((64, 80, 3), 60, np.uint8))
    cv2.imwrite(str(held / "s" / "s1.png"), np.full((64, 80, 3), 200, np.uint8))
    seqs = synthetic_sequences(held, 1234, BlurParams(blur_px=6), max_frames=4)
    names = ["clip", "run/cam/image_raw", "s/s0", "s/s1", "stills/a"]
    assert [s.name for s in seqs] == names
    assert [len(s.blurred) for s in seqs] == [4, 4, 6, 6, 6]
    alone = synthetic_sequences(held / "run", 1234, BlurParams(blur_px=6), max_frames=4)
    assert all(np.array_equal(a, b) for a, b in zip(alone[0].blurred, seqs[1].blurred, strict=True))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a recording")
    with pytest.raises(InputError, match="no images or rosbag2"):
        synthetic_sequences(empty, 1, BlurParams())
    # `sarn eval --synthetic`: a recording given again inside its folder (the bag as its .db3,
    # in either order) is read once, under the folder, as is a folder's only recording
    (db3,) = (held / "run").glob("*.db3")
    assert read_once([db3, held]) == (
        [held],
        [f"note: --synthetic {db3} is read within --synthetic {held}: scored there, once"],
    )
    (tmp_path / "solo").mkdir()
    write_video(tmp_path / "solo" / "clip.mp4", imgs)
    clip = tmp_path / "solo" / "clip.mp4"
    assert read_once([clip, tmp_path / "solo"])[0] == [tmp_path / "solo"]
    assert read_once([held / "s", held / "stills"]) == ([held / "s", held / "stills"], [])


def test_sharpest_is_recorded_as_applied_only_where_recordings_were_cut(tmp_path: Path) -> None:
    """--sharpest on a folder of frames filtered nothing, yet trainset.json and the weights'
    metadata said "recordings: the sharpest 0.5 of their clips"."""
    frames_dir, videos = tmp_path / "frames", tmp_path / "videos"
    frames_dir.mkdir()
    videos.mkdir()
    for i, img in enumerate(grey_frames(4)):
        cv2.imwrite(str(frames_dir / f"{i:03d}.png"), img)
    write_video(videos / "drive.mp4", grey_frames(4))
    sources = (BlurParams(blur_px=4), [1.0], 1, 6)
    assert not describe_sources([frames_dir], *sources, sharpest=0.5)["sharpest_applied"]
    assert describe_sources([videos], *sources, sharpest=0.5)["sharpest_applied"]
    assert describe_sources([videos / "drive.mp4"], *sources, sharpest=0.5)["sharpest_applied"]


def test_each_camera_of_a_bag_gets_max_frames_also_where_one_camera_comes_first(tmp_path):
    """read_streams takes each stream's first ``max_frames`` frames, also from a bag whose
    messages of one camera all come before the other's."""
    imgs = grey_frames(4)
    with Writer(tmp_path / "run", version=9) as w:
        for k, cam in enumerate(("left", "right")):
            conn = w.add_connection(f"/{cam}/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
            for i, img in enumerate(imgs):
                msg = bag_image(img, "mono8", header(i, cam))
                w.write(conn, 100 * k + i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    _, streams = read_streams(tmp_path / "run", max_frames=2)
    assert [(name, len(frames)) for name, frames in streams] == [
        ("run/left/image_raw", 2),
        ("run/right/image_raw", 2),
    ]
    assert all(np.array_equal(f, e) for f, e in zip(streams[1][1], imgs[:2], strict=True))


def test_a_stream_is_cut_where_its_bit_depth_changes_at_the_same_size() -> None:
    """A camera switched from mono8 to mono16 keeps its size but not its format: one piece
    per format, as per size."""
    a8, a16 = np.zeros((4, 6), np.uint8), np.zeros((4, 6), np.uint16)
    pieces = unbroken_pieces([a8, a8, a16, a16, a8], [0] * 5)
    assert [[f.dtype for f in p] for p in pieces] == [
        [np.uint8, np.uint8],
        [np.uint16, np.uint16],
        [np.uint8],
    ]


def test_training_clips_end_where_the_frame_size_changes(tmp_path: Path) -> None:
    """iter_clips: 3 frames before a size change are a clip of their own, 2 are dropped, and
    no clip mixes two sizes."""
    small = grey_frames(7)
    big = [cv2.resize(f, (96, 64)) for f in grey_frames(2, seed=1)]
    with Writer(tmp_path / "run", version=9) as w:
        cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(small[:3] + big + small[3:]):
            msg = bag_image(img, "mono8", header(i, "cam"))
            w.write(cam, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    clips = list(iter_clips(tmp_path / "run", 4))
    assert [(n, len(c)) for n, c in clips] == [
        ("run/cam/image_raw_1", 3),
        ("run/cam/image_raw_2", 4),
    ]
    assert all({f.shape for f in c} == {(128, 192, 3)} for _, c in clips)


def test_training_clips_end_where_a_run_of_recorded_frames_breaks(tmp_path: Path) -> None:
    """A clip spanned an unreadable frame (frames 0, 1, 3, 4 as "consecutive"), mixed mono8
    with rgb8 frames of one size (eval took them apart), and at x0.5 joined a 192 px wide
    run with a 193 px one, which x0.5 rounds alike: --sharpest's names (scored at x0.5) then
    named other frames than those trained at x1."""
    grey = grey_frames(12)
    wide = [cv2.copyMakeBorder(f, 0, 0, 0, 1, cv2.BORDER_REPLICATE) for f in grey[8:]]
    with Writer(tmp_path / "run", version=9) as w:
        cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        frames = [(g, "mono8") for g in grey[:4]]  # frame 2 unreadable
        frames += [(cv2.cvtColor(g, cv2.COLOR_GRAY2RGB), "rgb8") for g in grey[4:8]]
        frames += [(f, "mono8") for f in wide]
        for i, (img, encoding) in enumerate(frames):
            msg = bag_image(img, encoding, header(i, "cam"))
            if i == 2:
                msg.data = msg.data[:-5]
            w.write(cam, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    for scale in (1.0, 0.5):
        clips = list(iter_clips(tmp_path / "run", 8, scale))
        # 0-1 (2 frames: dropped), 3 (1: dropped), 4-7 rgb8, 8-11 one pixel wider
        assert [(n, len(c)) for n, c in clips] == [
            ("run/cam/image_raw_1", 4),
            ("run/cam/image_raw_2", 4),
        ], scale
        start = resize_by(cv2.cvtColor(grey[4], cv2.COLOR_GRAY2RGB), scale)
        assert np.array_equal(clips[0][1][0], start)  # the rgb8 run's first frame


def write_paused_bag(path: Path, imgs: list[np.ndarray], stamps_ms: list[int]) -> None:
    """One mono8 camera whose header stamps are ``stamps_ms`` (a pause, a clock jump)."""
    with Writer(path, version=9) as w:
        cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, (img, ms) in enumerate(zip(imgs, stamps_ms, strict=True)):
            hdr = header(0, "cam")
            hdr.stamp.sec, hdr.stamp.nanosec = 10 + ms // 1000, (ms % 1000) * 1_000_000
            msg = bag_image(img, "mono8", hdr)
            w.write(cam, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))


# 0-3 at 30 fps, a 2 s pause, 4-7, the clock set back 1 s, 8-11
PAUSED_MS = [33 * i for i in range(4)] + [2100 + 33 * i for i in range(4)]
PAUSED_MS += [1200 + 33 * i for i in range(4)]


def test_training_says_which_frames_its_clips_leave_out(tmp_path) -> None:
    """A bag's pieces under 3 frames were dropped from training unsaid, and where its stamps
    broke off with them (`sarn eval` and --val-sharp said so)."""
    grey = grey_frames(10)
    stamps = [33 * i for i in range(4)] + [2100, 2133] + [1200 + 33 * i for i in range(4)]
    write_paused_bag(tmp_path / "run", grey, stamps)
    notes: list[str] = []
    clips = list(iter_clips(tmp_path / "run", 8, note=notes.append))
    assert [len(c) for _, c in clips] == [4, 4]
    assert notes == [
        "run/cam/image_raw: 2 frames left out, in pieces of fewer than 3 frames; the stream was "
        "cut once where the stamps went back; once where the stamps paused over --max-gap-s "
        "0.5 s (raise it for a camera slower than 2 fps)"
    ]
    write_paused_bag(tmp_path / "two", grey[:2], [0, 33])  # too short, not cut
    assert list(iter_clips(tmp_path / "two", 8, note=notes.append)) == []
    assert notes[1:] == ["two/cam/image_raw: 2 frames left out, in pieces of fewer than 3 frames"]
    whole = tmp_path / "whole"
    write_paused_bag(whole, grey[:6], [33 * i for i in range(6)])
    assert [len(c) for _, c in iter_clips(whole, 4, note=notes.append)] == [4]  # a tail of 2
    assert notes[2:] == ["whole/cam/image_raw: 2 frames left out, in pieces of fewer than 3 frames"]
    # a camera the bag declares and never published, or whose every frame is unreadable, went
    # unsaid (--val-sharp and sarn eval name it)
    with Writer(tmp_path / "silent", version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {
            cam: w.add_connection(f"/{cam}/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
            for cam in ("cam", "quiet", "side")
        }
        for i, img in enumerate(grey[:4]):
            for cam, msg in (
                ("cam", bag_image(img, "mono8", header(i, "cam"))),
                ("side", bag_image(np.zeros((8, 8), np.float32), "32FC1", header(i, "s"))),
            ):
                w.write(conns[cam], 10 * i + 1, STORE.serialize_cdr(msg, msg.__msgtype__))
    notes.clear()
    assert [len(c) for _, c in iter_clips(tmp_path / "silent", 8, note=notes.append)] == [4]
    assert notes[0] == "left out (no readable frames in silent/quiet/image_raw)"
    assert notes[1].startswith("left out (no readable frames in silent/side/image_raw: ")
    assert len(notes) == 2


def test_sarn_train_says_a_recordings_frames_left_out_once(tmp_path, capsys) -> None:
    """Said once per recording, not per scale, nor twice for a scale given twice."""
    grey = [cv2.resize(f, (48, 32)) for f in grey_frames(6)]
    write_paused_bag(tmp_path / "run", grey, [33 * i for i in range(6)])
    params = BlurParams(blur_px=2, jpeg_quality=None)
    seqs = gather([tmp_path / "run"], params, [1.0, 0.5, 1.0], 1, 2, clip_frames=4)
    assert len(seqs) == 3  # a clip of 4 at each scale
    out = capsys.readouterr().out
    assert out.count("note: run/cam/image_raw: 2 frames left out") == 1, out


def test_training_clips_and_eval_streams_end_where_a_bags_stamps_break_off(
    tmp_path, caplog
) -> None:
    """A recording paused for 2 s (or a clock set back) joined two scenes in one clip, where
    the node restarts the recurrent state: the recurrent network trained across the cut,
    and `sarn eval` played it as one stream. Cut as the node's max_gap_s; 0 cuts only back."""
    grey = grey_frames(12)
    write_paused_bag(tmp_path / "run", grey, PAUSED_MS)
    clips = list(iter_clips(tmp_path / "run", 8))
    assert [(n, len(c)) for n, c in clips] == [(f"run/cam/image_raw_{k}", 4) for k in (1, 2, 3)]
    assert np.array_equal(clips[1][1][0][..., 0], grey[4])
    assert [len(c) for _, c in iter_clips(tmp_path / "run", 8, max_gap_s=3)] == [8, 4]
    assert [len(c) for _, c in iter_clips(tmp_path / "run", 8, max_gap_s=None)] == [8, 4]
    with caplog.at_level(logging.WARNING):
        _, streams = read_streams(tmp_path / "run")
    assert [(n, len(f)) for n, f in streams] == [(f"run/cam/image_raw#{k}", 4) for k in (1, 2, 3)]
    # which break, and the option that sets it: a 1 fps camera restarted at every frame
    assert (
        "once where the stamps went back; once where the stamps paused over --max-gap-s 0.5 s "
        "(raise it for a camera slower than 2 fps)"
    ) in caplog.text
    _, streams = read_streams(tmp_path / "run", max_gap_s=0)
    assert [len(f) for _, f in streams] == [8, 4]


def test_train_and_eval_take_max_gap_s_for_bags_only(tmp_path, tiny_recurrent_checkpoint) -> None:
    """--max-gap-s reaches the clips `sarn train` makes and is refused where no bag reads it."""
    grey = grey_frames(12)
    write_paused_bag(tmp_path / "run", grey, PAUSED_MS)
    argv = ["train", "--data", str(tmp_path / "run"), "--run-dir", "r", "--max-gap-s", "5"]
    assert cli.build_parser(argv).parse_args(argv).max_gap_s == 5
    seqs = gather([tmp_path / "run"], BlurParams(), [1.0], 1, 6, clip_frames=8, max_gap_s=5)
    assert [len(s.blurred) for s in seqs] == [8, 4]
    desc = describe_sources([tmp_path / "run"], BlurParams(), [1.0], 1, 6, max_gap_s=5)
    assert desc["max_gap_s"] == 5
    # a set built before --max-gap-s never cut its bags' clips: reused, it is named, not
    # taken as asked
    del desc["max_gap_s"]
    args = cli.build_parser(argv).parse_args([*argv, "--trainset", "ts"])
    found = trainset_conflicts(args, desc)
    assert "--max-gap-s 5 (the set: clips not cut at stamp breaks)" in found
    write_video(tmp_path / "v.avi", [np.dstack([g] * 3) for g in grey[:4]])
    r = sarn_eval("--no-gt", str(tmp_path / "v.avi"), "--max-gap-s", "2")
    assert r.returncode == 2 and "--max-gap-s (bags of --synthetic or --no-gt)" in r.stderr
    # a 0.1 fps camera: every frame its own stream, no pair for the ORB proxy anywhere
    write_paused_bag(tmp_path / "slow", grey[:3], [0, 10_000, 20_000])
    r = sarn_eval("--no-gt", str(tmp_path / "slow"))
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "no --no-gt stream has two frames in a row for the ORB proxy to compare; a bag's "
        "streams end where a camera's stamps go back or pause over --max-gap-s 0.5 s (raise it "
        "for a camera slower than 2 fps)"
    ), r.stderr
    # a bag of one frame was not cut at a stamp break: no --max-gap-s to raise
    write_paused_bag(tmp_path / "one", grey[:1], [0])
    r = sarn_eval("--no-gt", str(tmp_path / "one"))
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "no --no-gt stream has two frames in a row for the ORB proxy to compare"
    ), r.stderr
    weights = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    r = sarn_eval("--no-gt", str(tmp_path / "slow"), "--max-gap-s", "11", *weights)
    assert r.returncode == 0, r.stderr


def test_a_set_of_parts_takes_the_max_gap_s_of_its_parts_with_bags(tmp_path) -> None:
    """A set built in parts, a bag's at --max-gap-s 5 and a frame folder's at the default:
    the folder's part has no stamps, so the set is cut at 5 s, not "at other stamp breaks"
    (refused whatever --max-gap-s was given). Bags cut at two values still conflict."""
    from sarn_ros.tools.train import read_description

    grey = grey_frames(12)
    write_paused_bag(tmp_path / "run", grey, PAUSED_MS)
    stills = tmp_path / "stills"
    stills.mkdir()
    for i, g in enumerate(grey[:4]):
        cv2.imwrite(str(stills / f"{i}.png"), g)
    ts, params = tmp_path / "ts", BlurParams(blur_px=2.0)
    build_trainset([tmp_path / "run"], params, [1.0], 1, 6, ts / "a", clip_frames=8, max_gap_s=5)
    build_trainset([stills], params, [1.0], 1, 6, ts / "b")
    assert read_description(ts)["max_gap_s"] == 5
    argv = ["train", "--run-dir", "r", "--trainset", str(ts), "--max-gap-s", "5"]
    assert trainset_conflicts(cli.build_parser(argv).parse_args(argv), read_description(ts)) == []
    build_trainset([tmp_path / "run"], params, [1.0], 1, 6, ts / "c", clip_frames=8)
    assert read_description(ts)["max_gap_s"] == "parts cut at other stamp breaks"


def test_video_frames_come_out_rgb_and_16_bit_frames_scale_for_the_generator(tmp_path):
    """OpenCV reads BGR: red and blue swapped would train and evaluate on false colours; a
    mono16 camera's frames cast to 8 bit (not shifted) wrap around to noise."""
    red = np.zeros((32, 48, 3), np.uint8)
    red[..., 0] = 255
    write_video(tmp_path / "red.avi", [red] * 3, fourcc="MJPG")
    _, first = next(Recording(tmp_path / "red.avi").frames())
    assert first[..., 0].mean() > 200 and first[..., 2].mean() < 50
    from sarn_ros.recordings import _rgb8

    out = _rgb8(np.full((2, 2), 0x8000, np.uint16))
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8 and (out == 128).all()


def test_unreadable_images_of_a_folder_are_counted_and_warned_about(tmp_path, caplog) -> None:
    folder = tmp_path / "drive"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), grey_frames(1)[0])
    (folder / "b.png").write_bytes(b"not a png")
    rec = Recording(folder)
    with caplog.at_level(logging.WARNING):
        frames = list(rec.frames())
    assert len(frames) == 1 and rec.skipped == 1
    assert f"{folder}: 1 unreadable frame skipped" in caplog.text


def test_a_stream_without_a_readable_frame_is_named_with_its_first_fault(tmp_path) -> None:
    """The first fault is the one to mend first (the later ones often follow from it)."""
    img = grey_frames(1)[0]
    with Writer(tmp_path / "run", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        short = bag_image(img, "mono8", header(0, "cam"))
        short.data = short.data[:-5]
        odd = bag_image(img, "weird8", header(1, "cam"))
        for i, msg in enumerate((short, odd)):
            w.write(conn, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    rec = Recording(tmp_path / "run")
    assert list(rec.frames()) == [] and rec.skipped == 2
    (why,) = rec.why_skipped.values()
    assert "weird8" not in why and why


def test_a_folder_of_images_beside_a_video_holds_no_recording(tmp_path) -> None:
    """Such a folder is read for its images alone: --sharpest and the other recording options
    do nothing to it, so they are named unused rather than recorded as applied."""
    from sarn_ros.recordings import holds_recordings

    folder = tmp_path / "stills"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), grey_frames(1)[0])
    write_video(folder / "clip.mp4", grey_frames(4))
    assert not holds_recordings(folder)
    assert holds_recordings(folder / "clip.mp4")


def test_a_recordings_tail_shorter_than_3_frames_is_no_clip(tmp_path) -> None:
    write_video(tmp_path / "drive.mp4", grey_frames(8))
    clips = list(iter_clips(tmp_path / "drive.mp4", clip_frames=3))
    assert [(n, len(c)) for n, c in clips] == [("drive_1", 3), ("drive_2", 3)]  # 2 left over
    write_video(tmp_path / "short.mp4", grey_frames(2))
    assert list(iter_clips(tmp_path / "short.mp4", clip_frames=3)) == []


def test_the_sharpest_clips_are_ranked_at_half_size_where_noise_counts_less(tmp_path) -> None:
    """Sensor noise is detail at full size; a half-size frame keeps the scene's edges."""
    rng = np.random.default_rng(0)
    noise = [np.clip(128 + rng.normal(0, 40, (128, 192)), 0, 255).astype(np.uint8)]
    yy, xx = np.mgrid[:128, :192]
    board = cv2.GaussianBlur((((yy // 4 + xx // 4) % 2) * 255).astype(np.uint8), (0, 0), 1.0)
    with Writer(tmp_path / "run", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(noise * 3 + [board] * 3):
            msg = bag_image(img, "mono8", header(i, "cam"))
            w.write(conn, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    kept, total, _ = sharpest_clips(tmp_path / "run", 3, 0.5)
    assert total == 2 and kept == {"run/cam/image_raw_2"}


def test_the_sharpest_share_is_rounded_to_the_nearest_clip(tmp_path) -> None:
    imgs = grey_frames(9)
    imgs[3:6] = [cv2.GaussianBlur(f, (0, 0), 2.5) for f in imgs[3:6]]
    write_video(tmp_path / "drive.mp4", imgs)
    every = {"drive_1", "drive_2", "drive_3"}
    assert sharpest_clips(tmp_path / "drive.mp4", 3, 0.9) == (every, 3, 1)
    assert sharpest_clips(tmp_path / "drive.mp4", 3, 0.6) == ({"drive_1", "drive_3"}, 3, 1)


def test_the_sharpest_share_leaves_out_tails_too_short_to_train_on(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A sharp 3-frame tail took one of the share's places and then trained nothing: a
    recurrent clip needs --clip-len + 2 frames."""
    imgs = grey_frames(11)
    imgs[:4] = [cv2.GaussianBlur(f, (0, 0), 1.0) for f in imgs[:4]]
    imgs[4:8] = [cv2.GaussianBlur(f, (0, 0), 2.5) for f in imgs[4:8]]
    write_video(tmp_path / "drive.mp4", imgs)  # drive_1 sharper than drive_2, drive_3 sharpest
    assert sharpest_clips(tmp_path / "drive.mp4", 4, 0.5) == ({"drive_1", "drive_3"}, 3, 1)
    assert sharpest_clips(tmp_path / "drive.mp4", 4, 0.5, min_frames=4) == ({"drive_1"}, 2, 4)
    # none long enough: all ranked, and training says the clips are short (not "no images")
    assert sharpest_clips(tmp_path / "drive.mp4", 4, 0.5, min_frames=9) == (
        {"drive_1", "drive_3"},
        3,
        1,
    )
    run = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    run += ["--data", str(tmp_path / "drive.mp4"), "--clip-frames", "4", "--sharpest", "0.5"]
    assert cli.main([*run, "--clip-len", "2", "--crop", "32", "--steps", "0"]) == 0
    assert "the 1 sharpest of 2 clips of 4 frames or more" in capsys.readouterr().out
    assert [s.name for s in load_sequences(tmp_path / "ts")] == ["drive_1_x1_v0"]
    # the set reused by a run that needs longer clips: said, as the share was ranked for 4
    reuse = ["train", "--run-dir", str(tmp_path / "run"), "--trainset", str(tmp_path / "ts")]
    assert cli.main([*reuse, "--clip-len", "3", "--crop", "32", "--steps", "0"]) == 0
    assert (
        "took the sharpest 0.5 of its recordings' clips of 4 frames or more; this --clip-len "
        "needs 5"
    ) in capsys.readouterr().out
    # no clip long enough: the error names --clip-frames, not "no training images"
    run[2], run[4] = str(tmp_path / "run2"), str(tmp_path / "ts2")
    assert cli.main([*run, "--clip-len", "8", "--crop", "32", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "no sequence has 10 frames" in err and "--clip-frames 4 cuts videos and bags" in err


def test_a_folder_video_cut_at_a_size_change_keeps_its_pieces_names(tmp_path) -> None:
    """In a folder of recordings, a frame folder's pieces are `s#1`, `s#2`, as given alone,
    not `s/s#1`, which reads as a still of s."""
    frames = [cv2.GaussianBlur(f, (0, 0), 4) for f in grey_frames(6)]  # alike: a video
    small = [cv2.resize(f, (96, 64)) for f in frames[3:]]
    folder = tmp_path / "parent" / "s"
    folder.mkdir(parents=True)
    for i, f in enumerate(frames[:3] + small):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    seqs = synthetic_sequences(tmp_path / "parent", 0, BlurParams(blur_px=3.0))
    assert [s.name for s in seqs] == ["s#1", "s#2"]


def test_debayer_reaches_a_bag_read_for_synthetic_blur(tmp_path) -> None:
    """`--debayer` for `sarn eval --synthetic` and training bags: VNG was used whatever it said."""
    rng = np.random.default_rng(3)
    raw = cv2.resize(rng.integers(0, 256, (16, 24), dtype=np.uint8), (96, 64))
    with Writer(tmp_path / "run", version=9) as w:
        conn = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i in range(3):
            msg = bag_image(np.roll(raw, 2 * i, axis=1), "bayer_rggb8", header(i, "cam"))
            w.write(conn, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    params = BlurParams(blur_px=0.0, noise_std=0.0, jpeg_quality=None)
    for debayer in ("bilinear", "vng"):
        (seq,) = synthetic_sequences(tmp_path / "run", 0, params, debayer=debayer)
        _, ((_, frames),) = read_streams(tmp_path / "run", debayer=debayer)
        h, w = seq.sharp[0].shape[:2]
        my, mx = (frames[0].shape[0] - h) // 2, (frames[0].shape[1] - w) // 2
        assert np.array_equal(seq.sharp[0], frames[0][my : my + h, mx : mx + w]), debayer


def test_a_size_change_that_downscales_to_one_size_is_said(tmp_path, caplog) -> None:
    """96x64 and 97x65 frames are both 48x32 at x0.5: the stream was cut, and the warning
    gave no reason (changes were counted on the downscaled frames)."""
    imgs = [cv2.resize(f, (96, 64)) for f in grey_frames(3)]
    imgs += [cv2.resize(f, (97, 65)) for f in grey_frames(3, seed=1)]
    with Writer(tmp_path / "run", version=9) as w:
        cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(imgs):
            msg = bag_image(img, "mono8", header(i, "cam"))
            w.write(cam, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    with caplog.at_level(logging.WARNING):
        _, streams = read_streams(tmp_path / "run", scale=0.5)
    assert [len(frames) for _, frames in streams] == [3, 3]
    assert "restarts there: once where the frame size or format changed" in caplog.text


def test_a_folder_of_bare_mcap_recordings_is_a_folder_of_recordings(tmp_path, monkeypatch):
    """Any .mcap made a folder a bag: two separate recordings were refused as one bag cut
    short, with advice (`ros2 bag reindex`) that would merge them."""
    from sarn_ros.offline import kind_of
    from sarn_ros.recordings import synthetic_sequences

    (tmp_path / "solo").mkdir()
    for k in (1, 2):
        write_camera_bag(tmp_path / f"b{k}", grey_frames(4, seed=k), plugin=StoragePlugin.MCAP)
        (mcap,) = (tmp_path / f"b{k}").glob("*.mcap")
        mcap.rename(tmp_path / "solo" / f"run{k}.mcap")
    with pytest.raises(
        InputError, match=r"it holds the recordings run1\.mcap, run2\.mcap \(give one\)"
    ):
        kind_of(tmp_path / "solo")
    seqs = synthetic_sequences(tmp_path / "solo", seed=1, params=BlurParams(blur_px=2.0))
    assert [(s.name, len(s.sharp)) for s in seqs] == [
        ("run1/cam/image_raw", 4),
        ("run2/cam/image_raw", 4),
    ]
    (tmp_path / "solo" / "run2.mcap").unlink()  # one bare file: a bag cut short, as before
    assert kind_of(tmp_path / "solo") == "bag"
    # ... as are a split recording's parts, named so by rosbag2: reindexed, not read apart
    (tmp_path / "solo" / "run1.mcap").rename(tmp_path / "solo" / "solo_0.mcap")
    (tmp_path / "solo" / "solo_1.mcap").write_bytes(
        (tmp_path / "solo" / "solo_0.mcap").read_bytes()
    )
    assert kind_of(tmp_path / "solo") == "bag"
    monkeypatch.chdir(tmp_path / "solo")  # given as '.', whose name is ''
    assert kind_of(Path(".")) == "bag"


def test_a_bag_of_frames_nothing_can_deblur_says_why(tmp_path, caplog) -> None:
    """Training on a thermal camera's 32FC1 bag ended in an error about clip lengths and stamp
    gaps; the frames' own reason was never given."""
    with Writer(tmp_path / "thermal", version=9) as w:
        cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i, img in enumerate(grey_frames(4)):
            msg = bag_image(img.astype(np.float32), "32FC1", header(i, "cam"))
            w.write(cam, 10 * i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="no training images"):
        gather([tmp_path / "thermal"], BlurParams(blur_px=2.0), [1.0], 1, 2)
    assert "4 unreadable frames skipped (first: '32FC1' holds no colour" in caplog.text


def test_a_split_bags_part_beside_the_bag_is_scored_once_and_warned_of_once(
    tmp_path, caplog
) -> None:
    """`sarn eval --no-gt bag bag/bag_1.db3` scored the part's frames twice, as two rows, and
    the "one of the 2 files" warning came once per look at the path."""
    from sarn_ros.offline import kind_of

    write_camera_bag(tmp_path / "bag", grey_frames(4))
    (db3,) = (tmp_path / "bag").glob("*.db3")
    part = db3.with_name("bag_1.db3")
    part.write_bytes(db3.read_bytes())  # a second file, as a bag split by size has
    with caplog.at_level(logging.WARNING):
        assert read_once([part, tmp_path / "bag"], "--no-gt") == (
            [tmp_path / "bag"],
            [f"note: --no-gt {part} is read within --no-gt {tmp_path / 'bag'}: scored there, once"],
        )
        kind_of(part)
    assert caplog.text.count("is one of the 2 files of the bag") == 1


def test_what_a_folder_of_images_holds_beside_them_is_named_not_read(tmp_path) -> None:
    """`sarn eval --synthetic` of a folder of images with a video and a sub-folder scored the
    images alone, its pooled row "all 3 of" the folder, without a word."""
    from sarn_ros.recordings import sharp_source_note

    imgs = grey_frames(3)
    for i, img in enumerate(imgs):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    write_video(tmp_path / "clip.mp4", imgs)
    for sub in ("more", "blur"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "0.png"), imgs[0])
    assert sharp_source_note("--synthetic", tmp_path, "--pairs") == (
        f"note: --synthetic {tmp_path}: not read: clip.mp4, more (only the images directly in a "
        f"folder of images are read)\nnote: --synthetic {tmp_path}: not read: blur (one side of "
        "a blurred/sharp pair layout)"
    )


def test_no_gt_keeps_a_video_given_beside_the_folder_of_videos_it_is_in(tmp_path) -> None:
    """`--no-gt clips clips/a.mp4`: the video was left out as read within clips/, which
    --no-gt does not read (a folder of videos is refused there, naming them)."""
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "a.mp4", grey_frames(3))
    video = tmp_path / "clips" / "a.mp4"
    assert read_once([tmp_path / "clips", video], "--no-gt", into_folders=False) == (
        [tmp_path / "clips", video],
        [],
    )
    assert read_once([tmp_path / "clips", video])[0] == [tmp_path / "clips"]  # --synthetic


def test_a_video_cut_short_is_said_by_eval_and_train_as_by_deblur(tmp_path, caplog) -> None:
    """`sarn deblur` said a video's last frames could not be read; `sarn eval` scored and
    `sarn train` learnt the frames before them as the whole video, unsaid. A read stopped
    early (--max-frames) says nothing."""
    rng = np.random.default_rng(3)
    write_video(
        tmp_path / "cut.avi", [rng.integers(0, 256, (32, 48, 3), np.uint8)] * 10, fourcc="MJPG"
    )
    corrupt_mjpeg_frames(tmp_path / "cut.avi", range(7, 10), 10)
    with caplog.at_level(logging.WARNING):
        assert len(list(Recording(tmp_path / "cut.avi").frames())) == 7
    said = f"{tmp_path / 'cut.avi'}: 3 more frames the video announces could not be read"
    assert said in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(list(Recording(tmp_path / "cut.avi").frames())) == 7
    assert "could not be read" not in caplog.text  # said once a run: train reads it per scale
    write_video(
        tmp_path / "cut2.avi", [rng.integers(0, 256, (32, 48, 3), np.uint8)] * 10, fourcc="MJPG"
    )
    corrupt_mjpeg_frames(tmp_path / "cut2.avi", range(7, 10), 10)
    with caplog.at_level(logging.WARNING):
        frames = Recording(tmp_path / "cut2.avi").frames()
        next(frames)
        frames.close()
    assert "could not be read" not in caplog.text
