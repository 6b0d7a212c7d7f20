"""`sarn demo` end to end: the bundled sample through the real node over DDS."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import time

import cv2
import numpy as np
import pytest

from sarn_ros.resources import script_command

SARN = script_command("sarn")


def demo(*args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([*SARN, "demo", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_through_the_node_and_reports(tmp_path, ros_domain, tiny_recurrent_checkpoint):
    psnrs = {}
    for members in (1, 2):
        out = tmp_path / f"demo{members}"
        result = demo(
            "--weights",
            str(tiny_recurrent_checkpoint),
            "--device",
            "cpu",
            "--out",
            str(out),
            "--self-ensemble",
            str(members),
            "--domain-id",
            str(ros_domain),
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"self-ensemble x{members})" in result.stdout
        m = re.search(r"PSNR input ([\d.]+) dB -> deblurred ([\d.]+) dB", result.stdout)
        assert m, result.stdout
        assert 10 < float(m.group(1)) < 40 and 5 < float(m.group(2)) < 60
        psnrs[members] = (m.group(1), m.group(2))
        strip = cv2.imread(str(out / "demo_strip.png"))
        assert strip.shape[1] == 3 * 304  # input | deblurred | sharp
        video = cv2.VideoCapture(str(out / "demo.mp4"))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    # same input; the node really averaged two passes (an untrained model is not flip-symmetric)
    assert psnrs[1][0] == psnrs[2][0] and psnrs[1][1] != psnrs[2][1], psnrs


def test_demo_reports_a_node_that_cannot_start(tmp_path, ros_domain, tiny_recurrent_checkpoint):
    """Weights whose header reads well but that the node cannot load (a missing tensor) are
    refused before it starts, as they are built now; a node that exits at its start for
    any other reason (here made to, through a sitecustomize only its process acts on) is
    said as such, without a traceback."""
    import torch

    broken = torch.load(tiny_recurrent_checkpoint, weights_only=True)
    del broken["state_dict"][next(iter(broken["state_dict"]))]
    torch.save(broken, tmp_path / "broken.pth")
    args = ["--device", "cpu", "--out", str(tmp_path), "--domain-id", str(ros_domain)]
    result = demo("--weights", str(tmp_path / "broken.pth"), *args, timeout=120)
    assert result.returncode == 2 and "node exited" not in result.stderr
    assert "weights do not fit RecurrentSARN: 1 missing" in result.stderr
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if any(a.endswith('sarn_deblur_node') for a in sys.orig_argv):\n"
        "    os._exit(3)\n"
    )
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [*SARN, "demo", "--weights", str(tiny_recurrent_checkpoint), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert result.returncode != 0
    assert "the node exited (3):" in result.stderr and "Traceback" not in result.stderr


FAKE_NODE = """
import os, sys
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init(args=sys.argv)
node = rclpy.create_node("fake_sarn_deblur")
qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
pub = node.create_publisher(Image, "deblurred/image_raw", qos)
seen = []
node.create_subscription(
    Image, "image_raw", lambda m: (seen.append(m), len(seen) <= 2 and pub.publish(m)), qos
)
while len(seen) < 2:
    rclpy.spin_once(node, timeout_sec=0.1)
for _ in range(10):  # the two replies out
    rclpy.spin_once(node, timeout_sec=0.05)
print("fake node: gone after 2 frames", flush=True)
os._exit(5)
"""


@pytest.mark.ros
def test_a_node_that_dies_mid_stream_is_said_with_its_status(
    tmp_path, monkeypatch, capsys, ros_domain, tiny_recurrent_checkpoint
):
    """A node gone after 2 frames read as frames late ('2 of 8 frames came back in time'),
    with no word that it had exited, nor how."""
    import sys

    from sarn_ros import resources
    from sarn_ros.tools import cli

    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE)
    monkeypatch.setattr(resources, "node_command", lambda: [sys.executable, str(script)])
    argv = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--out", str(tmp_path / "o")]
    assert cli.main([*argv, "--domain-id", str(ros_domain), "--timeout", "60"]) == 1
    err = capsys.readouterr().err
    assert "sarn demo: error: 2 of 8 frames came back in time (the node exited (5)); " in err
    assert err.rstrip().endswith("the node's log:\nfake node: gone after 2 frames")
    assert not (tmp_path / "o").exists()


def test_demo_gives_up_on_a_node_still_starting_after_timeout(
    tmp_path, ros_domain, tiny_recurrent_checkpoint
):
    """--timeout holds while the node lives on: it is stopped, not waited for forever."""
    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu", "--out", str(tmp_path)]
    args += ["--domain-id", str(ros_domain)]
    start = time.monotonic()
    result = demo(*args, "--timeout", "0.5", timeout=90)  # the node needs seconds for torch
    assert result.returncode == 1
    assert "the node was not up after --timeout 0.5 s" in result.stderr
    assert "Traceback" not in result.stderr  # the node's, stopped while it imported torch
    assert time.monotonic() - start < 60


def test_demo_reports_missing_weights_in_one_line(tmp_path):
    result = demo("--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path), timeout=60)
    err = result.stderr.strip()
    assert result.returncode == 2
    assert err.startswith("sarn demo: error:") and "missing.pth" in err and "\n" not in err


def test_demo_refuses_an_output_it_cannot_write_before_running(tmp_path, monkeypatch, capsys):
    """`--out /sys` ran the whole demo and said "wrote ..." over OpenCV's warning."""
    from sarn_ros.tools import cli, demo

    (tmp_path / "a_file").write_text("")
    (tmp_path / "taken" / "demo_strip.png").mkdir(parents=True)  # failed after the demo ran
    monkeypatch.setattr(demo, "own_ros_domain", lambda _: pytest.fail("the demo ran"))
    for out, why in (
        ("/proc/sarn_demo", "cannot write in /proc"),
        (tmp_path / "a_file", "file"),
        (tmp_path / "taken", "demo_strip.png is a folder, not a file"),
        (tmp_path / ("a" * 300), "File name too long"),  # was a traceback
        (pathlib.Path(str(demo.SAMPLE)) / "blur", "inside the bundled sample"),  # read back
    ):
        assert cli.main(["demo", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sarn demo: error: --out") and why in err and "\n" not in err
    # a device this machine lacks: said at once, not from the node's log once it exited
    assert cli.main(["demo", "--out", str(tmp_path), "--device", "cuda:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sarn demo: error:") and "cuda:9" in err and "\n" not in err


def test_an_onnx_graph_on_cuda_is_refused_before_the_node_starts(
    tmp_path, monkeypatch, capsys, tiny_recurrent_onnx
):
    """On a CUDA machine the node started, then stopped on it (sarn deblur and bench node
    refuse it up front); here it was said to be CUDA missing."""
    from sarn_ros.tools import cli, demo

    monkeypatch.setattr(demo, "own_ros_domain", lambda _: pytest.fail("the demo ran"))
    argv = ["demo", "--weights", str(tiny_recurrent_onnx), "--out", str(tmp_path)]
    assert cli.main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "sarn demo: error: an ONNX graph runs on the CPU (onnxruntime), not 'cuda'"


def test_the_sample_is_read_as_pairs_whatever_else_is_beside_them(tmp_path, monkeypatch):
    """A demo_strip.png written into sample/blur made every later demo a traceback (9 blurred
    frames against 8 sharp ones) after the node had run."""
    import shutil

    from sarn_ros.tools import demo

    blurred, _ = demo.load_sample()
    sample = tmp_path / "sample"
    shutil.copytree(pathlib.Path(str(demo.SAMPLE)), sample)
    cv2.imwrite(str(sample / "blur" / "demo_strip.png"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(demo, "SAMPLE", sample)
    again = demo.load_sample()
    assert len(again[0]) == len(again[1]) == len(blurred) == 8
    assert all(np.array_equal(a, b) for a, b in zip(again[0], blurred, strict=True))


@pytest.mark.ros
@pytest.mark.slow
def test_two_demos_on_one_domain_keep_to_their_own_node(tmp_path, ros_domain):
    """Each demo's camera fed both nodes and took both nodes' outputs: a single-image and a
    recurrent demo on one --domain-id both printed a mix of the two."""
    import torch

    from sarn_ros.archs import SARN as Net
    from sarn_ros.checkpoint import save_checkpoint

    weights = []
    for seed in (0, 1):  # two untrained networks: each deblurs the sample its own way
        torch.manual_seed(seed)
        model = Net(channels=8, blocks_per_level=1)
        weights.append(str(save_checkpoint(model, tmp_path / f"single{seed}.pth")))
    args = ["--device", "cpu", "--domain-id", str(ros_domain)]
    alone = demo("--weights", weights[0], "--out", str(tmp_path / "alone"), *args, timeout=180)
    assert alone.returncode == 0, alone.stderr
    assert f"ROS domain {ros_domain}, topics under /sarn_demo_" in alone.stdout
    both = [
        subprocess.Popen(
            [*SARN, "demo", "--weights", w, "--out", str(tmp_path / f"out{k}"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k, w in enumerate(weights)
    ]
    outs = [p.communicate(timeout=300) for p in both]
    assert [p.returncode for p in both] == [0, 0], outs

    def psnr(text: str) -> str:
        return re.search(r"deblurred ([\d.]+) dB", text).group(1)

    assert psnr(outs[0][0]) == psnr(alone.stdout)
    assert psnr(outs[1][0]) != psnr(alone.stdout)  # so a mix would have shown


@pytest.mark.ros
def test_a_demo_killed_outright_takes_its_node_with_it(
    tmp_path, ros_domain, tiny_recurrent_checkpoint
):
    """SIGKILL leaves a process no time to stop its children: the node ran on, orphaned."""
    import signal

    args = ["--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    args += ["--out", str(tmp_path), "--domain-id", str(ros_domain)]
    proc = subprocess.Popen([*SARN, "demo", *args], stdout=subprocess.PIPE, text=True)
    assert "topics under" in proc.stdout.readline()  # printed just before the node starts
    children = pathlib.Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 30
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    (node,) = children.read_text().split()
    proc.kill()
    proc.wait()

    def running() -> bool:  # a zombie waits for a parent to reap it: it runs no more
        try:
            stat = pathlib.Path(f"/proc/{node}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    deadline = time.monotonic() + 30
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if running():
        os.kill(int(node), signal.SIGKILL)
        pytest.fail("the node outlived the demo")


def test_demo_outputs_that_opencv_cannot_write_are_an_error(tmp_path):
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    (tmp_path / "demo_strip.png").mkdir()  # cv2.imwrite only returned False: no reason said
    with pytest.raises(OSError, match=r"demo_strip\.png: Is a directory$"):
        demo.write_outputs(tmp_path, blurred[:1], blurred[:1], sharp[:1])


def test_the_demo_rate_leaves_out_the_wait_for_the_streams_end():
    """With look-ahead the node sends the last frames only after max_gap_s without a next one:
    that wait counted, so the demo understated the rate (most on a fast device)."""
    from sarn_ros.tools.demo import stream_rate

    arrivals = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.6, 4.6]  # the last two after the 0.5 s gap
    assert stream_rate(arrivals, 0.5, 2) == pytest.approx(6 / 3.0)
    assert stream_rate(arrivals[:6], 0.5, 0) == pytest.approx(6 / 3.0)
    assert stream_rate([2.0], 1.0, 2) == pytest.approx(1.0)  # fewer frames than look-ahead


def test_the_demo_psnr_is_the_metrics_psnr():
    """The gain the demo prints is PSNR on 8-bit frames (peak 255): wrap-around uint8
    differences or a peak of 1 would print another figure than `sarn eval` gives."""
    from sarn_ros.metrics import psnr
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    for b, s in zip(blurred, sharp, strict=True):
        assert demo.psnr(b, s) == pytest.approx(psnr(b, s))
        assert demo.psnr(s, b) == pytest.approx(psnr(b, s))
    assert 100 < demo.psnr(sharp[0], sharp[0]) < float("inf")  # equal frames: no division by 0


def test_the_demo_strip_shows_the_first_four_frames_in_their_colours(tmp_path):
    """demo_strip.png: input | deblurred | sharp, one row per frame for the first four, in true
    colours (frames are RGB, OpenCV writes BGR); demo.mp4 holds every frame."""
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    red = [np.zeros_like(f) for f in blurred]
    for f in red:
        f[..., 0] = 255
    demo.write_outputs(tmp_path, blurred, red, sharp)
    strip = cv2.imread(str(tmp_path / "demo_strip.png"))[..., ::-1]
    rows = [np.hstack(r) for r in zip(blurred[:4], red[:4], sharp[:4], strict=True)]
    assert np.array_equal(strip, np.vstack(rows))
    video = cv2.VideoCapture(str(tmp_path / "demo.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(blurred)
    ok, first = video.read()
    h, w = blurred[0].shape[:2]
    middle = first[h // 4 : 3 * h // 4, w + w // 4 : w + 3 * w // 4].reshape(-1, 3).mean(0)
    assert ok and middle[2] > 200 and middle[:2].max() < 50  # red (BGR) in the middle column


def test_the_demo_plays_on_the_domain_it_is_given_and_stays_local(
    tmp_path, monkeypatch, tiny_recurrent_checkpoint
):
    """--domain-id is the domain the demo's camera and node use (to watch it in rviz); without
    it a domain of its own, never the environment's; discovery on this machine only. Stopped
    before the node starts."""
    from sarn_ros import resources
    from sarn_ros.tools import cli

    class Stop(Exception):
        pass

    def no_node():
        raise Stop

    monkeypatch.setattr(resources, "node_command", no_node)
    seen = []
    for given in ("97", None):
        monkeypatch.setenv("ROS_DOMAIN_ID", "0")
        monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE")
        argv = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--out", str(tmp_path)]
        with pytest.raises(Stop):
            cli.main([*argv, *(["--domain-id", given] if given else [])])
        seen.append(os.environ["ROS_DOMAIN_ID"])
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert seen[0] == "97" and 1 <= int(seen[1]) <= 101


@pytest.mark.ros
@pytest.mark.slow
def test_the_demo_of_single_image_weights_reports_no_look_ahead(tmp_path, ros_domain):
    """A single-image model ignores future_frames: the demo said "look-ahead 2 frames" and
    left the last two frames out of the rate, as if the node had held them back."""
    import torch

    from sarn_ros.archs import SARN
    from sarn_ros.checkpoint import save_checkpoint

    torch.manual_seed(0)
    single = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "single.pth")
    args = ["--weights", str(single), "--device", "cpu", "--out", str(tmp_path / "out")]
    result = demo(*args, "--future-frames", "2", "--domain-id", str(ros_domain), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "look-ahead 0 frames" in result.stdout and "includes 0 frames" in result.stdout


def test_a_ctrl_c_while_the_demo_sets_up_its_camera_stops_the_node(
    tmp_path, monkeypatch, capsys, ros_domain, tiny_recurrent_checkpoint, ctrl_c_in_rclpy_set_up
):
    """The node was started before the camera's rclpy set-up and stopped only after it: a
    Ctrl-C in between (rclpy's handler makes create_node raise) left it running, orphaned."""
    import sys

    from sarn_ros import resources
    from sarn_ros.tools import cli

    monkeypatch.setattr(
        resources, "node_command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    argv = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--out", str(tmp_path)]
    assert cli.main([*argv, "--domain-id", str(ros_domain)]) == 130
    assert "interrupted" in capsys.readouterr().err
    (node,) = ctrl_c_in_rclpy_set_up
    assert node.poll() is not None  # stopped, not left running


def test_a_ctrl_c_is_the_demos_own_not_rclpys(
    tmp_path, monkeypatch, capsys, ros_domain, tiny_recurrent_checkpoint, sigint_in_rclpy_set_up
):
    """rclpy's signal handlers shut the context down under the demo (a node being made raised
    RCLError) and raced its own stop (SIGTERM's 143 could come out as 130): not installed."""
    import sys

    from sarn_ros import resources
    from sarn_ros.tools import cli

    monkeypatch.setattr(
        resources, "node_command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    argv = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--out", str(tmp_path)]
    started, context_up = sigint_in_rclpy_set_up
    assert cli.main([*argv, "--domain-id", str(ros_domain)]) == 130
    assert context_up == [True] and "sarn demo: interrupted" in capsys.readouterr().err
    (node,) = started
    assert node.poll() is not None


def test_a_sigterm_while_the_demo_runs_stops_the_node_and_says_so(
    tmp_path, monkeypatch, capsys, ros_domain, tiny_recurrent_checkpoint, ctrl_c_in_rclpy_set_up
):
    """`timeout` or docker stop: the demo said 'interrupted' and exited 130, as for Ctrl-C."""
    import os
    import signal
    import sys

    import rclpy

    from sarn_ros import resources
    from sarn_ros.tools import cli

    monkeypatch.setattr(
        resources, "node_command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    monkeypatch.setattr(rclpy, "create_node", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
    argv = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--out", str(tmp_path)]
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        assert cli.main([*argv, "--domain-id", str(ros_domain)]) == 143
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # not left the demo's
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "sarn demo: stopped by SIGTERM; stopping the node" in capsys.readouterr().err
    (node,) = ctrl_c_in_rclpy_set_up
    assert node.poll() is not None  # stopped, not left running


def test_the_sample_is_read_in_file_order_as_rgb():
    """The frames are played in their files' order (an unsorted folder listing scrambled the
    stream the recurrent model relies on), in RGB as the rgb8 messages say."""
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    for kind, got in (("blur", blurred), ("sharp", sharp)):
        paths = sorted((demo.SAMPLE / kind).iterdir(), key=lambda p: p.name)
        paths = [p for p in paths if p.name.endswith(".png")]
        assert len(got) == len(paths) == 8
        for path, frame in zip(paths, got, strict=True):
            assert np.array_equal(frame, cv2.imread(str(path))[..., ::-1])


def test_the_outputs_go_into_a_new_nested_folder_as_a_10_fps_video(tmp_path, monkeypatch):
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    demo.write_outputs(tmp_path / "a" / "b", blurred[:2], blurred[:2], sharp[:2])
    video = cv2.VideoCapture(str(tmp_path / "a" / "b" / "demo.mp4"))
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(10)

    class Unopened:  # OpenCV only warns where it cannot write a video
        def __init__(self, *args) -> None:
            pass

        def isOpened(self) -> bool:
            return False

    monkeypatch.setattr(demo.cv2, "VideoWriter", Unopened)
    with pytest.raises(OSError, match=r"demo\.mp4"):
        demo.write_outputs(tmp_path / "c", blurred[:1], blurred[:1], sharp[:1])


def test_the_video_takes_its_name_only_once_whole(tmp_path, monkeypatch):
    """demo.mp4 was written under its own name: a stop mid-video (SIGTERM, Ctrl-C) left one
    that did not play. Now written beside it, released and moved there, as sarn deblur's;
    a stop keeps the earlier one (deblur's keep what was written: 2 of 8 frames replaced
    the whole demo)."""
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    video, opened, stop_at = tmp_path / "demo.mp4", cv2.VideoWriter, []

    class Watched:
        def __init__(self, *args) -> None:
            self.writer, self.frames = opened(*args), 0

        def isOpened(self) -> bool:
            return self.writer.isOpened()

        def write(self, img: np.ndarray) -> None:
            assert not video.exists() or stop_at  # what a stop here leaves under the name
            self.frames += 1
            if self.frames in stop_at:
                raise KeyboardInterrupt
            self.writer.write(img)

        def release(self) -> None:
            self.writer.release()

    monkeypatch.setattr(demo.cv2, "VideoWriter", Watched)
    demo.write_outputs(tmp_path, blurred[:3], blurred[:3], sharp[:3])
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    strip = (tmp_path / "demo_strip.png").read_bytes()
    stop_at.append(2)
    with pytest.raises(KeyboardInterrupt):
        demo.write_outputs(tmp_path, blurred, blurred, sharp)
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4", "demo_strip.png"]
    # the strip is the earlier run's too: a new one stood beside the old video
    assert (tmp_path / "demo_strip.png").read_bytes() == strip


@pytest.mark.ros
@pytest.mark.slow
def test_a_stop_while_the_outputs_are_written_keeps_the_figures_and_says_one_line(
    tmp_path, monkeypatch, capsys, ros_domain, tiny_recurrent_checkpoint
):
    """A SIGTERM while demo.mp4 was written lost the measured figures and was told by the
    cli's catch-all with a blank line above, not by the demo."""
    import os
    import signal

    from sarn_ros.tools import cli, demo

    def stopped(out, *frames) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(demo, "write_outputs", stopped)
    out = tmp_path / "out"
    argv = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--device", "cpu"]
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        code = cli.main([*argv, "--out", str(out), "--domain-id", str(ros_domain)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    printed = capsys.readouterr()
    assert code == 143, printed.err
    assert "PSNR input " in printed.out and "wrote" not in printed.out
    assert (
        printed.err.strip().splitlines()[-1] == f"sarn demo: stopped by SIGTERM; {out} not written"
    )


def test_the_demos_options_reach_the_node(tmp_path, monkeypatch, tiny_recurrent_checkpoint):
    """--future-frames 2 and --device auto are the node's defaults too: options dropped on the
    way were not seen by the end-to-end test."""
    from sarn_ros.tools import cli, demo

    class Started(Exception):
        pass

    def popen(cmd, **_kw):
        raise Started(cmd)

    monkeypatch.setattr(demo, "own_ros_domain", lambda _domain: None)
    monkeypatch.setattr(demo.subprocess, "Popen", popen)
    args = ["demo", "--weights", str(tiny_recurrent_checkpoint), "--out", str(tmp_path)]
    with pytest.raises(Started) as started:
        cli.main([*args, "--future-frames", "0", "--device", "cpu", "--self-ensemble", "2"])
    (cmd,) = started.value.args
    given = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]
    for param in (
        f"weights:='{tiny_recurrent_checkpoint}'",  # quoted: a name like 123 stays text
        "device:='cpu'",
        "future_frames:=0",
        "self_ensemble:=2",
        "queue_policy:=all",  # every frame of the sample, none dropped as stale
    ):
        assert param in given


def test_the_demos_figures_come_from_each_frames_own_timing():
    """Latency from each frame's own publishing (not from the first's), its median; the gain's
    sign; the size as width x height."""
    from argparse import Namespace

    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    sent = {k: 10.0 + k for k in range(3)}
    late = (0.1, 0.5, 0.2)  # arrivals 10.1, 11.5, 12.2: median 200 ms, mean 267
    outputs = {k: (sharp[k], sent[k] + late[k]) for k in range(3)}
    deblurred, latency, rate = demo.stream_figures(outputs, sent, 10.0, 1)
    assert latency == pytest.approx(list(late))
    assert rate == pytest.approx(2 / 1.5)  # the last frame waited on the stream's end
    assert all(d is s for d, s in zip(deblurred, sharp[:3], strict=True))
    args = Namespace(weights="w.pth", self_ensemble=2, out=pathlib.Path("o"))
    text = demo.report(args, 1, blurred[:3], sharp[:3], blurred[:3], latency, rate)
    h, w = blurred[0].shape[:2]
    assert f"3 frames {w}x{h} through sarn_deblur_node (w.pth, look-ahead 1 frame, " in text
    assert "(gain +0.00 dB)" in text and "median 200 ms" in text and "throughput 1.33 fps" in text
    worse = [cv2.GaussianBlur(b, (0, 0), 3) for b in blurred[:3]]
    text = demo.report(args, 1, blurred[:3], sharp[:3], worse, latency, rate)
    gain = float(re.search(r"gain ([+-][\d.]+) dB", text).group(1))
    p_in = np.mean([demo.psnr(b, s) for b, s in zip(blurred[:3], sharp[:3], strict=True)])
    p_out = np.mean([demo.psnr(d, s) for d, s in zip(worse, sharp[:3], strict=True)])
    assert gain < 0 and gain == pytest.approx(p_out - p_in, abs=0.006)


def test_the_node_is_stopped_with_sigterm_and_its_log_returned():
    """SIGTERM: a node still importing torch ends without a KeyboardInterrupt traceback."""

    from sarn_ros.tools import demo

    proc = subprocess.Popen(
        [
            "python3",
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: (print('sigint'), sys.exit(3)))\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('sigterm'), sys.exit(0)))\n"
            "print('up', flush=True)\n"
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout.readline().strip() == "up"
    assert demo.stop_node(proc) == "sigterm" and proc.returncode == 0
    assert demo.stop_node(proc) == ""  # read already


def test_the_demos_defaults():
    from sarn_ros.tools import cli

    args = cli.build_parser(["demo"]).parse_args(["demo"])
    assert (args.out, args.timeout, args.future_frames, args.device) == (
        pathlib.Path("sarn_demo_out"),
        110.0,
        2,
        "auto",
    )
