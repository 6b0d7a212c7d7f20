"""`sarn demo` end to end: the bundled sample through the real node over DDS."""

from __future__ import annotations

import re
import subprocess
import time

import cv2
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
    result = demo(
        "--weights",
        str(tiny_recurrent_checkpoint),
        "--device",
        "cuda:99",
        "--out",
        str(tmp_path),
        "--domain-id",
        str(ros_domain),
        timeout=120,
    )
    assert result.returncode != 0
    assert "the node exited" in result.stderr and "Traceback" not in result.stderr


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
    monkeypatch.setattr(demo, "own_ros_domain", lambda _: pytest.fail("the demo ran"))
    for out, why in (("/proc/sarn_demo", "cannot write in /proc"), (tmp_path / "a_file", "file")):
        assert cli.main(["demo", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sarn demo: error: --out") and why in err and "\n" not in err


def test_demo_outputs_that_opencv_cannot_write_are_an_error(tmp_path, monkeypatch):
    from sarn_ros.tools import demo

    blurred, sharp = demo.load_sample()
    monkeypatch.setattr(demo.cv2, "imwrite", lambda *a: False)  # OpenCV's answer on a full disk
    with pytest.raises(OSError, match=r"demo_strip\.png"):
        demo.write_outputs(tmp_path, blurred[:1], blurred[:1], sharp[:1])


def test_the_demo_rate_leaves_out_the_wait_for_the_streams_end():
    """With look-ahead the node sends the last frames only after max_gap_s without a next one:
    that wait counted, so the demo understated the rate (most on a fast device)."""
    from sarn_ros.tools.demo import stream_rate

    arrivals = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.6, 4.6]  # the last two after the 0.5 s gap
    assert stream_rate(arrivals, 0.5, 2) == pytest.approx(6 / 3.0)
    assert stream_rate(arrivals[:6], 0.5, 0) == pytest.approx(6 / 3.0)
    assert stream_rate([2.0], 1.0, 2) == pytest.approx(1.0)  # fewer frames than look-ahead
