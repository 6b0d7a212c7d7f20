"""The helper scripts in scripts/: a bad number or path must be refused as the sarn tools
refuse it (exit 2, one line, no traceback) before any work: no timings printed, no ROS node
started, no input read, no half-made output."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

# (arguments, what the error line says, whether argparse's usage comes before it)
Case = tuple[list[object], str, bool]


def runs(script: str, cases: list[Case]) -> list[subprocess.CompletedProcess]:
    """``script`` once per case, all at once: each run spends seconds importing torch."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPTS / script), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args, _, _ in cases
    ]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def assert_refused(script: str, cases: list[Case]) -> None:
    for (args, message, usage), result in zip(cases, runs(script, cases), strict=True):
        case = f"{script} {' '.join(map(str, args))}:\n{result.stderr}"
        assert result.returncode == 2, case
        assert "Traceback" not in result.stderr, case
        assert result.stdout == "", case  # nothing measured or reported first
        *before, line = result.stderr.strip().splitlines() or [""]
        assert line.startswith(f"{script}: error: ") and message in line, case
        assert bool(before) == usage, case  # path errors: the one line alone
        assert all(u.startswith(("usage:", " ")) for u in before), case


def frames(folder: Path, n: int) -> Path:
    """``n`` textured 64x64 PNGs."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 256, (64, 64, 3), np.uint8))
    return folder


def test_bench_decode_refuses_bad_sizes_and_images_before_timing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((4, 8200, 3), np.uint8))
    assert_refused(
        "bench_decode.py",
        [
            (["--repeat", "0"], "argument --repeat: must be at least 1, got 0", True),
            (["--width", "0"], "argument --width: must be in [2, 8192], got 0", True),
            (["--height", "3"], "must be even, got 1280x3", True),
            (["--width", "40000"], "argument --width: must be in [2, 8192], got 40000", True),
            (["--image", missing], f"no such file: {missing}", False),
            (["--image", wide], "over 8192 px a side", False),  # a traceback after the timings
        ],
    )


def test_bench_lazy_refuses_a_zero_rate_before_starting_the_node() -> None:
    assert_refused(
        "bench_lazy.py",
        [
            (["--fps", "0"], "argument --fps: must be in [1, 1000], got 0", True),
            (["--fps", "0.01"], "argument --fps: must be in [1, 1000], got 0.01", True),
        ],
    )


def test_bench_streams_refuses_bad_numbers_weights_and_devices(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pth"
    assert_refused(
        "bench_streams.py",
        [
            (["--streams", "1"], "argument --streams: must be in [2, 16], got 1", True),
            (["--sizes", "8x8"], "argument --sizes: '8x8': WIDTHxHEIGHT, 16 to 4096 a side", True),
            (["--weights", missing, "--sizes", "16x16"], f"{missing}", False),
            (["--device", "cuda:7", "--sizes", "16x16"], "cuda", False),
        ],
    )


def test_bench_transport_refuses_bad_sizes_before_starting_ros() -> None:
    assert_refused(
        "bench_transport.py",
        [
            (["--size", "1280"], "argument --size: '1280': WIDTHxHEIGHT, 1 to 8192 a side", True),
            (["--size", "0x720"], "argument --size: '0x720': WIDTHxHEIGHT", True),
            (["--size", "9000x720"], "argument --size: '9000x720': WIDTHxHEIGHT", True),
            (["--size", "²x2"], "argument --size: '²x2': WIDTHxHEIGHT", True),
            (["--count", "0"], "argument --count: must be in [1, 10000], got 0", True),
        ],
    )


def test_state_drift_refuses_bad_numbers_folders_and_weights_before_blurring(
    tmp_path: Path,
) -> None:
    video = frames(tmp_path / "video", 1)
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.pth"
    assert_refused(
        "state_drift.py",
        [
            ([video, "--segment", "0"], "argument --segment: must be at least 1, got 0", True),
            ([video, "--frames", "0"], "argument --frames: must be at least 1, got 0", True),
            ([empty], f"no images in {empty}", False),
            ([video, "--weights", missing], f"weights file not found: {missing}", False),
            # a traceback after the blurring
            ([video, "--weights", video / "0000.png"], "not a PyTorch weights file", False),
            ([video, "--scale", "0.1"], "6x6 after --scale: at least 16 px a side", False),
            # its "carried" and "reset" columns were equal, unsaid
            ([video, "--weights", "sarn_single"], "a single-image model: it carries no", False),
        ],
    )


def test_state_cuts_refuses_bad_numbers_folders_and_weights_before_blurring(
    tmp_path: Path,
) -> None:
    video = frames(tmp_path / "video", 4)
    short = frames(tmp_path / "short", 2)
    assert_refused(
        "state_cuts.py",
        [
            (
                [video, video, "--strides", "1"],
                "argument --strides: must be at least 2, got 1",
                True,
            ),
            ([video, short], f"{short}: a folder of 3 or more sharp frames expected", False),
            ([video, video, "--frames", "9"], "--frames 9: a video is shorter", False),
            ([video, video, "--scale", "0.2"], "after --scale: at least 16 px a side", False),
            ([video, video, "--weights", "sarn_single"], "a single-image model", False),
        ],
    )


def test_bayer_pairs_checks_every_pair_before_writing(tmp_path: Path) -> None:
    good = tmp_path / "good"
    frames(good / "blur", 1)
    frames(good / "sharp", 1)
    bad = tmp_path / "bad"
    frames(bad / "blur", 1)
    out = tmp_path / "out"
    assert_refused("bayer_pairs.py", [([out, good, bad], f"no sharp/ folder in {bad}", False)])
    assert not out.exists()  # not even the good pair's blur/


def test_analyse_orb_proxy_finds_missing_weights_before_reading_the_stream(
    tmp_path: Path,
) -> None:
    stream = frames(tmp_path / "stream", 2)
    missing = tmp_path / "missing.pth"
    assert_refused(
        "analyse_orb_proxy.py",
        [
            ([stream, "sarn_recurrent", missing], f"weights file not found: {missing}", False),
            # a traceback after the input's figures were printed
            ([stream, stream / "0000.png"], "not a PyTorch weights file", False),
        ],
    )


def test_bayer_pairs_refuses_merged_names_and_bad_blur_frames_before_writing(
    tmp_path: Path,
) -> None:
    """Two pairs of one name, or an earlier run's OUT/NAME, were merged into; an odd-sized,
    unreadable or missing blur frame was found after earlier pairs were written."""
    pairs = {}
    for name in ("a/f8", "b/f8", "good", "odd", "broken", "empty", "wide"):
        pairs[name] = tmp_path / name
        frames(pairs[name] / "sharp", 1)
        if name != "empty":
            frames(pairs[name] / "blur", 1)
    (pairs["empty"] / "blur").mkdir()
    cv2.imwrite(str(pairs["odd"] / "blur" / "0000.png"), np.zeros((63, 64, 3), np.uint8))
    (pairs["broken"] / "blur" / "0000.png").write_bytes(b"not a png")
    cv2.imwrite(str(pairs["wide"] / "blur" / "0000.png"), np.zeros((4, 8194, 3), np.uint8))
    earlier = tmp_path / "earlier"
    (earlier / "good").mkdir(parents=True)
    good = pairs["good"]
    assert_refused(
        "bayer_pairs.py",
        [
            ([tmp_path / "o1", pairs["a/f8"], pairs["b/f8"]], "named twice", False),
            ([earlier, good], f"{earlier / 'good'} exists", False),
            ([tmp_path, good], f"{good} exists", False),  # OUT/NAME is the pair itself
            ([tmp_path / "o2", good, pairs["odd"]], "needs an even width and height", False),
            ([tmp_path / "o3", good, pairs["broken"]], "not an image OpenCV can read", False),
            ([tmp_path / "o4", good, pairs["empty"]], "no images in", False),
            # TooLarge's traceback, the good pair written
            ([tmp_path / "o6", good, pairs["wide"]], "sides up to 8192 px are deblurred", False),
        ],
    )
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3, 4, 6))
    assert list((earlier / "good").iterdir()) == []
    # links keep the names given: two to one pair were refused as one name, one renamed
    for link in ("left", "right"):
        (tmp_path / link).symlink_to(good)
    [linked] = runs(
        "bayer_pairs.py", [([tmp_path / "o5", tmp_path / "left", tmp_path / "right"], "", False)]
    )
    assert linked.returncode == 0, linked.stderr
    assert sorted(p.name for p in (tmp_path / "o5").iterdir()) == ["left", "right"]


def test_bayer_pairs_writes_the_demosaiced_frames_losslessly(tmp_path: Path) -> None:
    """JPEG blurred frames were written as JPEG again (quality 95): 40.5 dB off the demosaiced
    frame, as much as the demosaicing loss the pairs measure."""
    import importlib.util

    pair = tmp_path / "jp"
    frames(pair / "sharp", 1)
    (pair / "blur").mkdir()
    rng = np.random.default_rng(1)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), np.uint8), (0, 0), 2)
    cv2.imwrite(str(pair / "blur" / "0000.jpg"), smooth, [cv2.IMWRITE_JPEG_QUALITY, 100])
    (pair / "sharp").chmod(0o555)  # a shared, read-only data set: its mode was copied
    try:
        [done] = runs("bayer_pairs.py", [([tmp_path / "out", pair], "", False)])
    finally:
        (pair / "sharp").chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "jp" / "sharp").stat().st_mode & 0o700 == 0o700
    spec = importlib.util.spec_from_file_location("bayer_pairs", SCRIPTS / "bayer_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rgb = cv2.imread(str(pair / "blur" / "0000.jpg"))[..., ::-1]
    expected = module.through_bayer(np.ascontiguousarray(rgb), "vng")
    written = cv2.imread(str(tmp_path / "out" / "jp" / "blur" / "0000.png"))[..., ::-1]
    assert np.array_equal(written, expected)


def test_bayer_pairs_writes_nothing_into_a_pair_and_only_pairs_that_pair(tmp_path: Path) -> None:
    """OUT in a pair's sharp/ copied that folder into itself ~750 levels deep until a
    RecursionError; OUT the pair itself had OUT/NAME written into it; a pair with an empty
    sharp/ was written, for `sarn eval` to refuse; an OUT that could not be made gave a
    traceback."""
    good = tmp_path / "good"
    frames(good / "blur", 1)
    frames(good / "sharp", 1)
    lone = tmp_path / "lone"
    frames(lone / "blur", 1)
    (lone / "sharp").mkdir()
    assert_refused(
        "bayer_pairs.py",
        [
            ([good / "sharp", good], f"{good / 'sharp'} is in the pair {good}", False),
            ([good, good], f"{good} is in the pair {good}", False),
            ([tmp_path / "o", lone], "1 blurred vs 0 sharp", False),
        ],
    )
    made = sorted(p.relative_to(good).as_posix() for p in good.rglob("*"))
    assert made == ["blur", "blur/0000.png", "sharp", "sharp/0000.png"]
    assert not (tmp_path / "o").exists()
    unmakable = Path("/proc/sarn_no_such_folder")
    [failed] = runs("bayer_pairs.py", [([unmakable, good], "", False)])
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stderr.startswith("bayer_pairs.py: error: [Errno 2] No such file"), failed
    assert not unmakable.exists()


def test_make_sample_refuses_anything_but_one_eight_frame_video(tmp_path: Path) -> None:
    """Four frames rewrote 000-003 and left the old sample's 004-007; a missing or empty
    folder, or one of stills, gave a traceback; one frame was said to give 6."""
    short = tmp_path / "short"
    short.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    still = cv2.GaussianBlur(noise, (0, 0), 3)
    for i in range(4):  # smooth, alike frames: one video of four
        cv2.imwrite(str(short / f"{i:04d}.png"), np.roll(still, i, axis=1))
    empty = tmp_path / "empty"
    empty.mkdir()
    out = ["--out", tmp_path / "sample"]  # not the repository's, were a refusal to fail
    assert_refused(
        "make_sample.py",
        [
            ([short, *out], f"{short} has 4 frames; the sample takes 8", False),
            ([empty, *out], f"{empty} has 0 frames", False),
            # a still's synthetic sequence was named: "gave [6]"
            ([frames(tmp_path / "one", 1), *out], "has 1 frame;", False),
            ([frames(tmp_path / "stills", 8), *out], "must give one video of 8 frames", False),
            ([tmp_path / "missing", *out], f"not a folder: {tmp_path / 'missing'}", False),
        ],
    )
    assert not (tmp_path / "sample").exists()
    # its input in OUT/sharp was deleted and replaced by the sample
    inside = tmp_path / "sample" / "sharp"
    shutil.copytree(short, inside)
    assert_refused(
        "make_sample.py", [([inside, *out], f"{inside} is in {inside}, which the sample", False)]
    )
    assert len(list(inside.iterdir())) == 4


def test_make_sample_keeps_the_old_sample_where_a_new_frame_cannot_go(
    tmp_path: Path, shared_data: Path
) -> None:
    """A folder in the place of one sharp frame: blur/ was replaced, sharp/ had lost the old
    frames before it and the new ones were gone (neither sample's)."""
    out = tmp_path / "sample"
    for kind in ("blur", "sharp"):
        frames(out / kind, 8)
    (out / "sharp" / "0003.png").unlink()
    (out / "sharp" / "003.png").mkdir()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png") if p.is_file()}
    calendar = shared_data / "sharp" / "Vid4" / "calendar"
    assert_refused(
        "make_sample.py",
        [([calendar, "--out", out], f"{out / 'sharp' / '003.png'} is a folder where", False)],
    )
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png") if p.is_file()}
    assert after == before and not (out / ".sample.partial").exists()
    # a folder of no frame's name that reads as an image: the old frames' delete failed on it
    (out / "sharp" / "003.png").rmdir()
    (out / "sharp" / "999.PNG").mkdir()
    assert_refused(
        "make_sample.py",
        [([calendar, "--out", out], f"{out / 'sharp' / '999.PNG'} is a folder where", False)],
    )
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png") if p.is_file()}
    assert after == before


def test_analyse_orb_proxy_measures_every_piece_and_no_pair_as_refused(tmp_path: Path) -> None:
    """One frame printed nan rows; a featureless stream printed ( nan%); a stream cut in
    pieces by a size change was measured on its first piece alone."""
    assert_refused(
        "analyse_orb_proxy.py",
        [
            (
                [frames(tmp_path / "one", 1), "sarn_recurrent"],
                "ORB matches need at least 2 consecutive frames",
                False,
            )
        ],
    )
    flat = tmp_path / "flat"
    flat.mkdir()
    cut = tmp_path / "cut"
    cut.mkdir()
    scene = np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)
    for i in range(2):
        cv2.imwrite(str(flat / f"{i}.png"), np.full((64, 64, 3), 128, np.uint8))
        cv2.imwrite(str(cut / f"{i}.png"), np.full((48, 48, 3), 128, np.uint8))
        cv2.imwrite(str(cut / f"{i + 2}.png"), np.roll(scene, i, axis=1))  # matchable
    # two runs' weights of one file name were both labelled x.pth
    for run in ("rec", "single"):
        (tmp_path / run).mkdir()
        shutil.copy(SCRIPTS.parent / "weights" / "sarn_single.pth", tmp_path / run / "x.pth")
    both = [tmp_path / run / "x.pth" for run in ("rec", "single")]
    flat_run, cut_run = runs(
        "analyse_orb_proxy.py", [([flat, *both], "", False), ([cut, "sarn_single"], "", False)]
    )
    assert flat_run.returncode == 0 and "nan" not in flat_run.stdout
    assert "inliers    0.0 (  n/a)" in flat_run.stdout.splitlines()[0]
    labels = [line.split("  matches")[0].strip() for line in flat_run.stdout.splitlines()]
    assert labels[2:4] == ["rec/x.pth", "rec/x.pth + input finest band"], labels
    assert labels[4:] == ["single/x.pth", "single/x.pth + input finest band"], labels
    assert cut_run.returncode == 0, cut_run.stderr
    assert "matches    0.0" not in cut_run.stdout.splitlines()[0]  # the textured piece counts


def test_state_drift_refuses_a_bad_device_and_mixed_sizes_and_says_when_it_never_resets(
    tmp_path: Path,
) -> None:
    """A bad --device, or frames of two sizes, failed with a traceback after the blurring;
    --segment >= --frames printed "reset every N" though no reset happened."""
    video = frames(tmp_path / "video", 2)
    mixed = frames(tmp_path / "mixed", 2)
    cv2.imwrite(str(mixed / "0001.png"), np.zeros((32, 64, 3), np.uint8))
    assert_refused(
        "state_drift.py",
        [
            ([video, "--device", "bogus"], "device must be auto, cpu, cuda or cuda:N", False),
            ([mixed], f"{mixed / '0001.png'} is 32x16 after --scale, 0000.png 32x32", False),
        ],
    )
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "0000.png"), np.full((32, 32, 3), 128, np.uint8))
    [grey] = runs("state_drift.py", [([flat, "--frames", 2, "--scale", 1], "", False)])
    assert grey.returncode == 2 and "-inf" not in grey.stdout  # every gain was -inf dB
    assert re.fullmatch(
        r"state_drift.py: error: frame \d blurred equals its sharp frame \(flat content\): no "
        r"gain to measure; give textured frames\n",
        grey.stderr,
    )
    [whole] = runs("state_drift.py", [([video, "--frames", 2, "--segment", 5], "", False)])
    assert whole.returncode == 0, whole.stderr
    assert "never reset" in whole.stdout and "reset every" not in whole.stdout
    assert ", reset " not in whole.stdout  # the closing line too


def test_highspeed_pairs_refuses_a_file_as_out(tmp_path: Path) -> None:
    """OUT being a file gave a NotADirectoryError traceback."""
    out = tmp_path / "out"
    out.write_text("")
    assert_refused(
        "highspeed_pairs.py", [([frames(tmp_path / "fast", 9), out], f"not a folder: {out}", False)]
    )


def test_analyse_orb_proxy_measures_the_bag_camera_topic_names(tmp_path: Path) -> None:
    """Only a bag's first camera could be measured; a --topic beside a folder was ignored."""
    pytest.importorskip("rosbags", reason="the bag tests need rosbags (README: colcon test)")
    from rosbags.rosbag2 import StoragePlugin, Writer
    from test_deblur_offline import STORE, bag_image, header

    bag = tmp_path / "bag"
    scene = np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)
    with Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {
            cam: w.add_connection(f"/{cam}/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
            for cam in ("flat", "textured")
        }
        for i in range(3):
            for cam, img in (
                ("flat", np.full_like(scene, 128)),
                ("textured", np.roll(scene, i, 1)),
            ):
                msg = bag_image(img, "rgb8", header(i, cam))
                w.write(conns[cam], (i + 1) * 10**8, STORE.serialize_cdr(msg, msg.__msgtype__))
    folder = frames(tmp_path / "stream", 2)
    assert_refused(
        "analyse_orb_proxy.py",
        [
            (
                [folder, "sarn_single", "--topic", "/textured/image_raw"],
                "goes with a rosbag2",
                False,
            ),
            ([bag, "sarn_single", "--topic", "/other/image_raw"], "/other/image_raw", False),
        ],
    )
    first, textured = runs(
        "analyse_orb_proxy.py",
        [
            ([bag, "sarn_single"], "", False),
            ([bag, "sarn_single", "--topic", "textured/image_raw"], "", False),
        ],
    )
    assert first.returncode == 0 and textured.returncode == 0, first.stderr + textured.stderr
    assert "matches    0.0" in first.stdout.splitlines()[0]  # the flat camera
    assert "matches    0.0" not in textured.stdout.splitlines()[0]


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (as test_demo finds the node)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize(
    ("sig", "ignored"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-ignored"],
)
def test_bench_transport_stopped_says_one_line_for_its_peers_too(
    ros_domain: int, sig: signal.Signals, ignored: bool
) -> None:
    """Ctrl-C and `timeout` signal the whole process group: each peer process printed a
    traceback above the one line (rclpy's handlers shut its context down under its loop). A
    SIGINT the run ignores (`bench_transport.py &` in a script) ended its peers alone."""
    args = ["--count", "10000", "--size", "64x48", "--domain-id", str(ros_domain)]
    before = signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.SIG_DFL)
    try:  # the disposition the run inherits
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "bench_transport.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        end = time.monotonic() + 120
        while len(children(proc.pid)) < 2 and time.monotonic() < end:
            time.sleep(0.2)
        assert len(children(proc.pid)) == 2, "the two peers never started"
        time.sleep(15)  # each imports and joins ROS, and the frames flow
        peers = children(proc.pid)
        if ignored:
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(3)
            assert proc.poll() is None and children(proc.pid) == peers, "a SIGINT stopped it"
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        end = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in peers) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in peers), "a peer is left running"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    how = "interrupted" if sig == signal.SIGINT else "stopped by SIGTERM"
    assert err.splitlines() == [f"bench_transport.py: {how}"], err
    assert proc.returncode == (130 if sig == signal.SIGINT else 143)


def test_bench_transport_prints_the_rate_the_frames_were_sent_at(ros_domain: int) -> None:
    """A rate no machine builds 4096x4096 frames at was printed as the one delivered at."""
    args = ["--count", "5", "--fps", "1000", "--size", "4096x4096", "--domain-id", str(ros_domain)]
    (run,) = runs("bench_transport.py", [(args, "", False)])
    assert run.returncode == 0, run.stderr
    rows = run.stdout.splitlines()[1:]
    assert len(rows) == 2, run.stdout
    for row in rows:
        rate = re.search(r" at ([\d.]+) \(of 1000 asked\) fps delivered", row)
        assert rate and 0 < float(rate[1]) < 950, row
