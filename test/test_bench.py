"""`sarn bench model`: the CPU peak estimate behind "% of peak", and the compile mode column."""

import argparse
import inspect
import json
import math
import os
import signal
import subprocess
import time
import types

import pytest
import torch

from sarn_ros.resources import script_command
from sarn_ros.tools import bench_model
from sarn_ros.tools.bench_model import cpu_flops_per_cycle


def cpuinfo(vendor: str, family: int, flags: str) -> str:
    return (
        f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\n"
        f"flags\t\t: fpu sse sse2 {flags}\n\nprocessor\t: 1\nvendor_id\t: {vendor}\n"
    )


@pytest.mark.parametrize(
    ("vendor", "family", "flags", "expected"),
    [
        ("AuthenticAMD", 26, "avx fma avx2 avx512f", 64),  # Zen 5: two 512-bit FMA pipes
        ("AuthenticAMD", 25, "avx fma avx2 avx512f", 32),  # Zen 4: AVX-512 on 256-bit pipes
        ("AuthenticAMD", 23, "avx fma avx2", 32),  # Zen 2
        ("GenuineIntel", 6, "avx fma avx2 avx512f", 64),  # Xeon with AVX-512
        ("GenuineIntel", 6, "avx", 16),  # Sandy Bridge: no FMA
        ("GenuineIntel", 6, "", 8),
    ],
)
def test_cpu_flops_per_cycle_follows_the_isa(
    vendor: str, family: int, flags: str, expected: int
) -> None:
    assert cpu_flops_per_cycle(cpuinfo(vendor, family, flags)) == expected


def test_torch_compile_rows_say_how_the_network_ran(monkeypatch, capsys) -> None:
    import torch

    from sarn_ros.tools.bench_model import main

    def no_compiler(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError("no C++ compiler")

        return compiled

    monkeypatch.setattr(torch, "compile", no_compiler)
    args = ["--variants", "recurrent-0drm", "--sizes", "16x16", "--device", "cpu"]
    assert main([*args, "--torch-compile", "both", "--iters", "1", "--warmup", "0"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "recurrent-0drm" in line]
    modes = [row.split("|")[7].strip() for row in rows]
    assert modes == ["eager", "eager (compile failed)"]


def test_a_setting_that_fails_leaves_the_other_rows_measured(tmp_path, monkeypatch, capsys):
    """Out of memory at the largest size threw away every row measured before it: a traceback,
    no table, no --json. The sweep now goes on; the failures are named, exit code 1."""
    import json

    from sarn_ros.tools import bench_model

    bench_row = bench_model.bench_row

    def out_of_memory_at_32x16(variant, size, *rest):
        if size == (32, 16):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory\n(details)")
        return bench_row(variant, size, *rest)

    monkeypatch.setattr(bench_model, "bench_row", out_of_memory_at_32x16)
    args = ["--variants", "recurrent-0drm", "--sizes", "16x16,32x16,16x8", "--device", "cpu"]
    args += ["--iters", "1", "--warmup", "0", "--json", str(tmp_path / "rows.json")]
    assert bench_model.main(args) == 1
    captured = capsys.readouterr()
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [row["resolution"] for row in rows] == ["16x16", "16x8"]
    settings = {"iters": 1, "warmup": 0, "threads": torch.get_num_threads()}  # as measured
    settings |= {"torch": torch.__version__, "host": bench_model.device_label(torch.device("cpu"))}
    assert rows[0]["settings"] == settings | {"complete": False}  # a setting failed
    assert sum("| recurrent-0drm |" in line for line in captured.out.splitlines()) == 2
    assert captured.err.splitlines()[-1] == (
        "sarn bench model: 1 setting failed, 2 measured; first: recurrent-0drm 32x16 fp32 "
        "auto channels_last eager: RuntimeError: DefaultCPUAllocator: can't allocate memory"
    )


def test_a_run_that_measured_nothing_leaves_an_earlier_json(tmp_path, monkeypatch, capsys):
    """Every setting failed (or a stop before the first row): `[]` was written over an
    earlier run's file, and a table of headings printed with "peak memory: ;"."""
    from sarn_ros.tools import bench_model

    def out_of_memory(*_):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(bench_model, "bench_row", out_of_memory)
    earlier = tmp_path / "rows.json"
    earlier.write_text('[{"resolution": "16x16"}]')
    args = ["--variants", "recurrent-0drm", "--sizes", "16x16", "--device", "cpu"]
    assert bench_model.main([*args, "--iters", "1", "--json", str(earlier)]) == 1
    captured = capsys.readouterr()
    assert earlier.read_text() == '[{"resolution": "16x16"}]'
    assert "| variant |" not in captured.out and "peak memory" not in captured.out
    said = f"sarn bench model: --json {earlier} not written (nothing measured): it is as an"
    assert said in captured.err


def test_flop_count_is_counted_and_grows_with_pixels():
    """GFLOPs/frame in the bench table; torch 2.1's counter saw nothing under inference_mode."""
    from sarn_ros.tools.bench_model import count_flops

    small, large = count_flops("recurrent", 64, 64), count_flops("recurrent", 128, 128)
    assert small > 1e8  # ~3.2 GFLOPs at 64x64 (242 at 640x480)
    assert large / small == pytest.approx(4.0, rel=0.05)


def test_gpu_peaks_are_matched_by_whole_name_not_substring():
    """An L40 took the L4's peaks and an RTX A1000 the A100's."""
    from sarn_ros.tools.bench_model import CUDA_PEAKS_TFLOPS as PEAKS
    from sarn_ros.tools.bench_model import cuda_peaks

    assert cuda_peaks("NVIDIA L4") == PEAKS["L4"]
    assert cuda_peaks("NVIDIA L40S") == PEAKS["L40S"]
    assert cuda_peaks("NVIDIA L40") is None and cuda_peaks("NVIDIA RTX A1000") is None
    assert cuda_peaks("NVIDIA A100-SXM4-80GB") == PEAKS["A100"]
    assert cuda_peaks("NVIDIA H100 PCIe") == PEAKS["H100 PCIe"]
    assert cuda_peaks("NVIDIA H100 80GB HBM3") == PEAKS["H100"]


@pytest.mark.parametrize("option", ["--sizes", "--variants", "--precision", "--deform-impl"])
def test_bench_model_refuses_an_empty_list(option, capsys):
    """`--sizes ''` printed an empty table with exit 0."""
    from sarn_ros.tools import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "model", option, ","])
    assert exit_.value.code == 2 and "an empty list" in capsys.readouterr().err


def test_bench_model_list_options_given_twice_gather(capsys):
    """`--sizes 8x8 --sizes 16x8` measured 16x8 only, as README says every list option
    gathers; a value given twice is measured once."""
    from sarn_ros.tools import cli

    argv = ["bench", "model", "--device", "cpu", "--iters", "1", "--warmup", "0"]
    argv += ["--variants", "recurrent-0drm", "--variants", "single", "--sizes", "8x8"]
    # a value given twice is one (its rows were measured and printed twice)
    assert cli.main([*argv, "--sizes", "16x8,8x8", "--variants", "single"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines()]
    measured = [(r[1].strip(), r[2].strip()) for r in rows if len(r) > 3 and "x" in r[2]]
    assert sorted(measured) == [
        ("recurrent-0drm", "16x8"),
        ("recurrent-0drm", "8x8"),
        ("single", "16x8"),
        ("single", "8x8"),
    ]


def test_bench_model_refuses_fp16_on_a_cpu(capsys):
    """It ran fp32 and printed the rows as fp32, the asked-for fp16 row silently gone, exit 0;
    `sarn bench node` refuses it."""
    from sarn_ros.tools import cli

    argv = ["bench", "model", "--device", "cpu", "--sizes", "8x8", "--precision", "fp32,fp16"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "fp16 runs on CUDA only" in err and "\n" not in err


def test_bench_model_measures_each_deformable_path_once(monkeypatch, capsys):
    """auto is grid_sample on a CPU: `--deform-impl auto,grid_sample` measured it twice, and a
    variant without deformable modules once per name given."""
    from sarn_ros.tools import bench_model

    measured = []

    def bench_row(variant, size, device, precision, deform, *rest):
        measured.append((variant, deform))
        raise RuntimeError("not measured here")

    monkeypatch.setattr(bench_model, "bench_row", bench_row)
    args = ["--variants", "recurrent,recurrent-0drm", "--sizes", "16x16", "--device", "cpu"]
    bench_model.main([*args, "--deform-impl", "auto,grid_sample,torchvision"])
    assert measured == [
        ("recurrent", "auto"),
        ("recurrent", "torchvision"),
        ("recurrent-0drm", "auto"),
    ]


def test_bench_model_checks_its_json_path_before_measuring(tmp_path, capsys):
    from sarn_ros.tools import cli

    (tmp_path / "a_file").write_text("")
    bad = str(tmp_path / "a_file" / "rows.json")
    assert cli.main(["bench", "model", "--sizes", "8x8", "--json", bad]) == 2
    captured = capsys.readouterr()
    assert "is a file, not a folder" in captured.err and "ms/frame" not in captured.out


def test_bench_node_out_fps_is_the_rate_the_outputs_came_at():
    """A model slower than the camera with queue_policy all: the backlog drained after the
    window is frames deblurred, not throughput (6.2 'out fps' was printed for a 3.4 fps model).
    And a model that keeps up read slower by its delay: the outputs of the window's last
    frames, which come after it, were not counted (9.0 out of 10.0 fps, 0 % dropped)."""
    from sarn_ros.tools.bench_node import rates

    sent = {(0, i): 100.0 + 0.1 * i for i in range(40)}  # 10 fps for 4 s
    received = {(0, i): 100.3 + 0.3 * i for i in range(30)}  # one every 0.3 s, 10 never
    r = rates(sent, received, wall=4.0)
    assert r["in_fps"] == 10.0
    assert r["out_fps"] == pytest.approx(1 / 0.3)
    assert r["drop_pct"] == pytest.approx(25.0)
    delayed = {i: t + 0.5 for i, t in sent.items()}  # every frame, 0.5 s later
    r = rates(sent, delayed, wall=4.0)
    assert r["out_fps"] == pytest.approx(10.0) and r["drop_pct"] == 0.0


def test_bench_node_out_fps_leaves_out_the_flushed_frames_and_counts_per_camera():
    """The last future_frames outputs wait for the stream's end (max_gap_s): counted in the
    span, a steady 4 fps read 3.4 at 0 % dropped, as the e2e figures already left them out.
    Two cameras' 2n outputs over one span are not 2n - 1 intervals: 4.18 for a true 4 fps."""
    from sarn_ros.tools.bench_node import flushed_stamps, rates

    sent = {(0, i): 10.0 + 0.25 * i for i in range(12)}
    received = {s: t + 0.1 for s, t in sent.items()}
    received[0, 11] = sent[0, 11] + 0.5  # flushed at max_gap_s
    assert flushed_stamps(sent, 1) == {11} and flushed_stamps(sent, 0) == set()
    assert rates(sent, received, 3.0)["out_fps"] < 3.5  # what it was
    assert rates(sent, received, 3.0, flushed_stamps(sent, 1))["out_fps"] == pytest.approx(4.0)
    pair = {(k, i): t + 0.01 * k for (_, i), t in sent.items() for k in (0, 1)}
    r = rates(pair, {s: t + 0.1 for s, t in pair.items()}, 3.0)
    assert r["out_fps"] == pytest.approx(4.0) and r["in_fps"] == pytest.approx(4.0)
    assert r["drop_pct"] == 0.0


def test_bench_node_node_figures_end_before_the_flushed_frames():
    """The diagnostics periods after the first flushed output held its max_gap_s wait:
    callback -> publish read above the e2e it is part of."""
    from sarn_ros.tools.bench_node import measured_periods

    diags = [{"p": "a"}, {"p": "b"}, {"p": "c"}]
    received = {(0, 1): 10.5, (0, 2): 11.4, (0, 3): 12.2}
    assert measured_periods(diags, [10.0, 11.0, 12.5], received, {3}) == diags[:2]
    assert measured_periods(diags, [10.0, 11.0, 12.5], received, set()) == diags
    assert measured_periods(diags, [13.0, 14.0, 15.0], received, {3}) == diags  # none before


def test_bench_node_a_node_that_dies_mid_run_is_an_error(monkeypatch, ros_domain, capsys):
    """A node killed during the measurement gave a row of 40 % 'drops' and exit 0."""
    import signal

    from sarn_ros.tools import bench_node, cli

    class Killing(bench_node.ProcessMeter):
        calls = 0

        def rss_mib(self) -> float:  # read at the start, then once a second
            Killing.calls += 1
            if Killing.calls == 2:  # a second into the measurement
                os.kill(self.pid, signal.SIGKILL)
            return super().rss_mib()

    monkeypatch.setattr(bench_node, "ProcessMeter", Killing)
    argv = ["bench", "node", "--tiny", "--sizes", "64x48", "--fps", "5", "--duration", "6"]
    assert cli.main([*argv, "--domain-id", str(ros_domain)]) == 1
    assert "error at 64x48: the node exited (-9)" in capsys.readouterr().err


def test_bench_node_waits_for_a_compile_in_the_warm_up(monkeypatch, ros_domain, capsys):
    """A torch_compile that took over 120 s (130 s at 32x32 under load) failed the size with
    "no output within 120 s", the compile unnamed."""
    from sarn_ros.tools import bench_node, cli

    monkeypatch.setattr(bench_node, "WARM_UP_S", 60.0)  # to connect
    monkeypatch.setattr(bench_node, "COMPILE_WARM_UP_S", 0.0)  # then no frame sent
    argv = ["bench", "node", "--tiny", "--sizes", "16x16", "--fps", "5", "--duration", "2"]
    assert cli.main([*argv, "--torch-compile", "--domain-id", str(ros_domain)]) == 1
    err = capsys.readouterr().err
    assert "error at 16x16: the node produced no output within 0 s (the torch_compile of " in err


def test_bench_node_memory_trend_is_a_slope_per_minute():
    from sarn_ros.tools.bench_node import rss_trend

    leak = rss_trend([(t, 900.0 + 0.1 * t + (5 if t % 2 else -5)) for t in range(0, 600, 1)])
    assert leak["rss_mib_per_min"] == pytest.approx(6.0, abs=0.1) and leak["rss_samples"] == 600
    flat = rss_trend([(t, 1000.0 + (80 if t % 7 == 0 else 0)) for t in range(600)])
    assert abs(flat["rss_mib_per_min"]) < 0.5 and flat["rss_mib_max"] == 1080.0


def test_bench_node_counts_sets_that_came_out_on_every_camera():
    from sarn_ros.tools.bench_node import complete_sets

    out = {(0, 1), (1, 1), (0, 2), (1, 3), (0, 4), (1, 4), (2, 4)}
    assert complete_sets(out, 2) == {"sets_out": 4, "sets_complete": 1, "complete_pct": 25.0}
    assert complete_sets(out, 3)["sets_complete"] == 1  # only stamp 4 is on all three
    assert complete_sets(set(), 2)["sets_out"] == 0


def test_bench_node_averages_the_nodes_figures_by_frames():
    """A 0.5 s period with one frame counted as much as one with ten."""
    from sarn_ros.tools.bench_node import frame_weighted_mean

    periods = [
        {"inference ms (mean)": "10", "output fps": "18"},
        {"inference ms (mean)": "100", "output fps": "2"},
        {"inference ms (mean)": "n/a", "output fps": "0"},  # no frame in that period
    ]
    assert frame_weighted_mean(periods, "inference ms (mean)") == pytest.approx(19.0)
    assert math.isnan(frame_weighted_mean(periods[2:], "inference ms (mean)"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--duration", "1e-9"],
            "is under one frame period: give at least 0.033334 s",
        ),  # 0-division
        (["--json", "/proc/x/rows.json"], "--json"),  # found after the whole run
        (["--sizes", "0x0"], "8 to 8192 px a side"),
        (["--sizes", "100000x100000"], "8 to 8192 px a side"),  # an OpenCV traceback
        (["--precision", "fp16"], "fp16 runs on CUDA only"),  # measured fp32 under "fp16"
        (["--weights", "x.pth"], "not allowed with argument --tiny"),  # --weights was ignored
        (["--sizes", "640"], "--sizes must be WxH"),
        (["--sizes", "0x0", "--sizes", "64x48"], "got '0x0 64x48'"),  # the first was dropped
        # one frame sent, held back as look-ahead: a row of nan and "out fps 0", exit 0
        (["--duration", "0.2", "--fps", "5", "--future-frames", "2"], "measures no frame"),
        (["--stagger", "0.5"], "--stagger needs --cameras > 1"),
        (["--cameras", "3", "--stagger", "0.5"], "within its"),
        # out of range as parsed (nan passed `fps <= 0`)
        (["--fps", "0"], "argument --fps: must be in [0.001, 1000], got 0"),
        (["--fps", "nan"], "argument --fps: must be a finite number in [0.001, 1000], got nan"),
        # the node refused the max_gap_s of 2.5 periods (over its 3600 s) and exited
        (["--fps", "0.0005"], "argument --fps: must be in [0.001, 1000], got 0.0005"),
        (["--duration", "0"], "argument --duration: must be above 0, got 0"),
        (["--cameras", "0"], "argument --cameras: must be in [1, 16], got 0"),
        (
            ["--cameras", "2", "--stagger", "-0.1"],
            "argument --stagger: must be in [0, 1), got -0.1",
        ),
    ],
)
def test_bench_node_rejects_bad_arguments_in_one_line(args, message, capsys):
    """Said at once, in one line (a device or precision the node would refuse or change took
    its 15 s start first, or was not said at all)."""
    from sarn_ros.tools import cli

    try:
        code = cli.main(["bench", "node", "--tiny", *args])
    except SystemExit as exc:  # argparse: its usage line, then the error
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("sarn bench node: error:") and message in err


def test_bench_node_keeps_the_sizes_measured_before_one_that_failed(tmp_path, monkeypatch, capsys):
    """A node that gave no output at a later size threw away the rows measured before it:
    no table, no --json."""
    from sarn_ros.tools import bench_node, cli

    measured = {"size": "64x48", "cameras": 1, "rss_mib_per_min": float("nan")}

    def bench_size(weights, size, args, rows):
        if size == (128, 96):
            raise RuntimeError("the node produced no output within 120 s")
        rows.append(dict(measured))

    monkeypatch.setattr(bench_node, "bench_size", bench_size)
    monkeypatch.setattr(bench_node, "print_table", lambda rows: print(f"{len(rows)} rows"))
    rows = tmp_path / "rows.json"
    argv = ["bench", "node", "--tiny", "--sizes", "64x48,128x96,32x24", "--json", str(rows)]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert "1 rows" in captured.out and "error at 128x96: the node produced no" in captured.err
    assert [r["size"] for r in json.loads(rows.read_text())] == ["64x48"]


def bench_node_row(tmp_path, *options: str) -> tuple[str, dict]:
    """`sarn bench node --tiny` at 64x48 (unless ``options`` give --sizes, which gather), 10
    fps for 2 s, as a user runs it: stdout and the one JSON row."""
    rows = tmp_path / "rows.json"
    sizes = [] if "--sizes" in options else ["--sizes", "64x48"]
    done = subprocess.run(
        [
            *script_command("sarn"),
            *("bench", "node", "--tiny", *sizes, "--fps", "10", "--duration", "2"),
            *("--json", str(rows), *options),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(rows.read_text())
    return done.stdout, row


def test_bench_node_serves_a_stereo_rig_end_to_end(tmp_path, ros_domain):
    """Two synchronised cameras through the real node process: rates per camera, and sets
    matched by stamp across the cameras' output topics. Under queue_policy all every set
    comes out whole, also on a machine busy with other work (where `latest` may take one
    camera's frame of a stamp before the other's has arrived)."""
    stdout, row = bench_node_row(tmp_path, "--cameras", "2", "--queue-policy", "all")
    assert "2 synchronised cameras" in stdout and "complete sets" in stdout
    assert row["cameras"] == 2 and row["in_fps"] == pytest.approx(10, rel=0.2)
    assert row["drop_pct"] == 0, row
    assert row["sets_out"] >= 15 and row["sets_complete"] == row["sets_out"], row
    # memory sampled once a second through the run (2 s, plus start and end): a torch process
    assert row["rss_samples"] >= 3 and 100 < row["rss_mib_min"] <= row["rss_mib_max"]
    # e2e holds the inference of each frame: mean minus mean (a median minus a mean of
    # per-period means went negative)
    assert row["e2e_ms_p95"] >= row["e2e_ms_p50"] and row["e2e_minus_inference_ms"] > 0, row


def test_bench_node_waits_for_the_backlog_of_queue_policy_all(tmp_path, ros_domain):
    """A node slower than the camera under queue_policy all owes every frame: its backlog
    (here 20 frames of about 0.5 s each at 640x480 on a 2-core CPU) came out after the
    drain's fixed 3 s and was reported as dropped."""
    stdout, row = bench_node_row(tmp_path, "--queue-policy", "all", "--sizes", "640x480")
    assert "queue_policy all" in stdout
    assert row["drop_pct"] == 0, row


def test_bench_node_feeds_jpeg_to_a_node_that_decodes_it(tmp_path, ros_domain):
    """--input-transport compressed: the frames go out as CompressedImage on
    image_raw/compressed and the node (input_transport compressed) deblurs each one. Under
    queue_policy all, so a machine busy with other work (where `latest` drops frames by
    design) still owes every frame."""
    options = ("--input-transport", "compressed", "--publish-compressed", "--queue-policy", "all")
    stdout, row = bench_node_row(tmp_path, *options)
    assert "input JPEG (image_raw/compressed), publish_compressed, queue_policy all" in stdout
    assert row["drop_pct"] <= 10, row
    assert row["jpeg_out"] == row["raw_out"] >= 15  # every output also came as JPEG


def test_bench_node_drops_count_only_the_measured_frames():
    """Outputs of frames sent before the window (warm-up) are no frames of it: a window whose
    every frame came out dropped none, not a negative share."""
    from sarn_ros.tools.bench_node import rates

    sent = {(0, i): 10.0 + 0.1 * i for i in range(10)}
    received = {(0, i): 10.2 + 0.1 * i for i in range(-5, 10)}
    r = rates(sent, received, wall=1.0)
    assert r["drop_pct"] == 0.0 and r["out_fps"] == pytest.approx(10.0)


def test_bench_node_sizes_cameras_and_a_short_memory_series():
    from sarn_ros.tools.bench_node import MAX_SIDE, camera_names, parse_sizes, rss_trend

    assert parse_sizes("640x480, 8X8") == [(640, 480), (8, 8)]
    assert parse_sizes("160x120,160x120, 8x8") == [(160, 120), (8, 8)]  # measured once
    assert parse_sizes("64x48,") == [(64, 48)]  # as bench model reads it (it was refused)
    for bad in ("7x8", f"{MAX_SIDE + 1}x8", ",", "64x"):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    assert camera_names(1) == [""] and camera_names(2) == ["cam0", "cam1"]
    short = rss_trend([(0.0, 100.0), (10.0, 200.0), (20.0, 300.0)])  # warm-up, not a leak
    assert math.isnan(short["rss_mib_per_min"]) and short["rss_mib_max"] == 300.0


def test_bench_node_figures_of_periods_without_outputs():
    """A figure the node gives while it published nothing: a plain mean, not NaN; periods
    without a figure ("n/a") are left out."""
    from sarn_ros.tools.bench_node import frame_weighted_mean, times_ms

    idle = [{"queue ms": "4", "output fps": "0"}, {"queue ms": "8", "output fps": "0"}]
    assert frame_weighted_mean(idle, "queue ms") == pytest.approx(6.0)
    diags = [{"inference ms (mean)": "12.5"}, {"inference ms (mean)": "n/a"}, {}]
    assert times_ms(diags, "inference ms (mean)") == [12.5]


def test_bench_model_sizes_and_lists_read_as_typed():
    """`640X480`, spaces after commas: as meant; a size with a zero side is a usage error."""
    import argparse

    from sarn_ros.tools import bench_model

    parser = argparse.ArgumentParser()
    bench_model.add_arguments(parser)
    args = parser.parse_args(["--sizes", "640X480, 32x16", "--variants", "single, recurrent"])
    assert args.sizes == [(640, 480), (32, 16)]
    assert args.variants == ["single", "recurrent"]
    # the node's cpu_threads 0, and sarn bench node's --threads 0: PyTorch's default
    assert parser.parse_args(["--threads", "0"]).threads == 0
    for bad in ("640x0", "0x480", "640", "axb", "8193x8", "8x100000"):  # 100000x8: 2.5 GB
        with pytest.raises(argparse.ArgumentTypeError):
            bench_model.parse_size(bad)
    assert bench_model.parse_size("8192x1") == (8192, 1)


def test_peak_flops_follow_the_device_precision_and_threads(monkeypatch):
    """% of peak: on a CPU threads x clock x FLOP/cycle for fp32 and no estimate for bf16; on a
    GPU the datasheet's TF32 figure for fp32 while cuDNN's TF32 is on, else plain fp32, and
    the tensor-core figure for bf16/fp16."""
    from pathlib import Path

    import torch

    from sarn_ros.tools import bench_model

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(bench_model, "cpu_ghz", lambda: 2.5)
    per_cycle = cpu_flops_per_cycle(Path("/proc/cpuinfo").read_text())
    threads = torch.get_num_threads()
    monkeypatch.setattr(bench_model, "usable_cpus", lambda: 2)
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert bench_model.peak_flops(cpu, "fp32") == pytest.approx(n * 2.5e9 * per_cycle)
        torch.set_num_threads(16)  # on 2 CPUs: rated against 16 cores' peak, 8x too high
        assert bench_model.peak_flops(cpu, "fp32") == pytest.approx(2 * 2.5e9 * per_cycle)
    finally:
        torch.set_num_threads(threads)
    assert bench_model.peak_flops(cpu, "bf16") is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    fp32, tf32, half = bench_model.CUDA_PEAKS_TFLOPS["H200"]
    for allow_tf32, expected in ((True, tf32), (False, fp32)):
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
        assert bench_model.peak_flops(gpu, "fp32") == pytest.approx(expected * 1e12)
    for precision in ("bf16", "fp16"):
        assert bench_model.peak_flops(gpu, precision) == pytest.approx(half * 1e12)


def test_bench_table_rows_have_a_cell_under_every_heading():
    """The markdown table: as many cells in the rule and each row as headings, each under its
    own (a missing rule cell makes renderers drop the last column)."""
    from sarn_ros.tools.bench_model import Row, format_table

    row = Row(
        variant="recurrent",
        resolution="64x48",
        device="cpu x2 threads",
        precision="fp32",
        deform="grid_sample",
        layout="NCHW",
        mode="compiled",
        ms=12.5,
        fps=80.0,
        peak_mib=3.0,
        memory_kind="RSS growth",
        params_m=1.25,
        gflops=0.4,
        pct_peak=None,
    )
    lines = format_table([row]).splitlines()
    cells = [line.strip().strip("|").split("|") for line in lines]
    assert len({len(c) for c in cells}) == 1, lines
    got = dict(zip((c.strip() for c in cells[0]), (c.strip() for c in cells[2]), strict=True))
    assert got["layout"] == "NCHW" and got["mode"] == "compiled" and got["% of peak"] == "n/a"
    assert got["peak MiB"] == "3" and got["params M"] == "1.25"


def test_bench_node_stops_the_node_on_a_ctrl_c_during_set_up(
    monkeypatch, ros_domain, ctrl_c_in_rclpy_set_up
):
    """As the demo: a Ctrl-C between starting the node and the rclpy set-up left the node
    running and was reported as an error (exit 1); and a short run's JSON is JSON (NaN,
    a figure it has none of, was written as NaN)."""
    import sys

    from sarn_ros.tools import bench_node, cli

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(bench_node, "node_args", lambda weights, args: sleeper)
    argv = ["bench", "node", "--tiny", "--sizes", "64x48", "--domain-id", str(ros_domain)]
    assert cli.main(argv) == 130
    (node,) = ctrl_c_in_rclpy_set_up
    assert node.poll() is not None


def test_bench_node_takes_the_ctrl_c_itself_not_rclpy(
    monkeypatch, ros_domain, sigint_in_rclpy_set_up
):
    """rclpy's handlers shut the context down under the bench and raced its own stop (a
    SIGTERM's 143 could come out as 130): they are not installed."""
    import sys

    from sarn_ros.tools import bench_node, cli

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(bench_node, "node_args", lambda weights, args: sleeper)
    argv = ["bench", "node", "--tiny", "--sizes", "64x48", "--domain-id", str(ros_domain)]
    started, context_up = sigint_in_rclpy_set_up
    assert cli.main(argv) == 130 and context_up == [True]
    (node,) = started
    assert node.poll() is not None


def test_bench_node_json_has_no_nan(tmp_path, monkeypatch):
    from sarn_ros.tools import bench_node, cli

    def bench_size(weights, size, args, rows):
        rows.append({"size": "64x48", "rss_mib_per_min": math.nan, "p95": [1.0, math.inf]})

    monkeypatch.setattr(bench_node, "bench_size", bench_size)
    monkeypatch.setattr(bench_node, "print_table", lambda rows: None)
    out = tmp_path / "rows.json"
    assert cli.main(["bench", "node", "--tiny", "--sizes", "64x48", "--json", str(out)]) == 0
    strict = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    (row,) = strict
    settings = row.pop("settings")  # what was measured: a bf16 and an fp32 file told apart
    assert row == {"size": "64x48", "rss_mib_per_min": None, "p95": [1.0, None]}
    assert settings["weights"] == "tiny" and settings["precision"] == "fp32"
    assert settings["sizes"] == ["64x48"] and settings["complete"] is True
    assert (settings["fps"], settings["future_frames"], settings["threads"]) == (30.0, 0, 0)
    argv = ["bench", "node", "--tiny", "--sizes", "64x48", "--precision", "bf16"]
    assert cli.main([*argv, "--fps", "5", "--json", str(out)]) == 0  # an earlier file: replaced
    assert json.loads(out.read_text())[0]["settings"]["precision"] == "bf16"


def test_json_output_never_replaces_a_file_that_holds_no_json(tmp_path, capsys):
    """`sarn bench node --weights step.onnx --json step.onnx` replaced the 10 MB graph with
    640 bytes of rows, exit 0; eval's and bench model's --json alike."""
    from sarn_ros.tools import cli

    graph = tmp_path / "step.onnx"
    graph.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(100))
    for argv in (
        ["bench", "node", "--tiny", "--sizes", "64x48"],
        ["bench", "model", "--sizes", "8x8", "--variants", "single"],
        ["eval", "--no-gt", str(tmp_path)],
    ):
        assert cli.main([*argv, "--json", str(graph)]) == 2
        err = capsys.readouterr().err
        assert f"--json {graph} exists and holds no JSON (weights, an image?)" in err, argv
    assert graph.stat().st_size == 111


@pytest.mark.parametrize(
    ("content", "taken"),
    [
        (b"", True),
        (b'\xef\xbb\xbf[{"a": 1}]', True),  # a byte-order mark: JSON still
        (b"null", True),
        (b" " * 100 + b'{"a": 1}', True),
        (b"[section]\nkey = 1\n", False),  # starts as JSON does: an INI file
        (b"{ int main; }", False),
        (b" " * 100 + b"\x89PNG", False),
    ],
)
def test_json_output_is_judged_by_parsing_it(tmp_path, content, taken):
    from sarn_ros.tools.options import check_json_output

    out = tmp_path / "out.json"
    out.write_bytes(content)
    if taken:
        check_json_output(out)
    else:
        with pytest.raises(ValueError, match="holds no JSON"):
            check_json_output(out)
        with pytest.raises(ValueError, match="holds no JSON"):  # named through a missing folder
            check_json_output(tmp_path / "gone" / ".." / "out.json")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "bf16"], "an ONNX graph runs in fp32 (onnxruntime), not 'bf16'"),
        (["--torch-compile"], "torch_compile does not apply to an ONNX graph (onnxruntime)"),
    ],
)
def test_bench_node_refuses_what_an_onnx_graph_cannot_run_before_starting_nodes(
    args, message, capsys
):
    """Each node it started stopped with this error, one size after another."""
    from sarn_ros.tools import cli

    code = cli.main(["bench", "node", "--weights", "step.onnx", "--device", "cpu", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"sarn bench node: error: {message}", err


# sarn bench model: what run() passes on, and each figure it prints (a mutation audit)


def test_cpu_ghz_is_the_fastest_core_in_ghz(monkeypatch):
    """The CPU's peak (the "% of peak" column) takes its fastest core's clock, in GHz."""
    text = "processor\t: 0\ncpu MHz\t\t: 1200.000\nprocessor\t: 1\ncpu MHz\t\t: 3400.500\n"
    monkeypatch.setattr(bench_model.Path, "read_text", lambda self: text)
    assert bench_model.cpu_ghz() == pytest.approx(3.4005)


def test_cpu_peak_is_fp32_only(monkeypatch):
    monkeypatch.setattr(bench_model, "cpu_ghz", lambda: 2.5)
    assert bench_model.peak_flops(torch.device("cpu"), "fp16") is None


def test_bench_row_figures(monkeypatch):
    """Each printed figure from scripted timings: the median ms, fps, MiB, GFLOPs, % of peak."""
    ticks = iter([0.0, 0.010, 1.0, 1.040, 2.0, 2.020])  # 10, 40, 20 ms
    monkeypatch.setattr(
        bench_model,
        "time",
        types.SimpleNamespace(perf_counter=lambda: next(ticks), sleep=time.sleep),
    )

    class Sampler:
        growth = 3 * 2**20

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(bench_model, "RssSampler", Sampler)
    monkeypatch.setattr(bench_model, "peak_flops", lambda device, precision: 1e12)
    row = bench_model.bench_row(
        "recurrent-0drm", (24, 16), torch.device("cpu"), "fp32", "auto", False, False, 3, 0, 3e9
    )
    params = sum(p.numel() for p in bench_model.build("recurrent-0drm", "auto").parameters())
    assert row.resolution == "24x16" and row.layout == "NCHW" and row.mode == "eager"
    assert row.ms == pytest.approx(20.0) and row.fps == pytest.approx(50.0)
    assert row.peak_mib == pytest.approx(3.0) and row.gflops == pytest.approx(3.0)
    assert row.params_m == pytest.approx(params / 1e6)
    assert row.pct_peak == pytest.approx(15.0)  # 3e9 / 0.02 s / 1e12 * 100


def test_rss_sampler_growth_is_resident_bytes_over_the_baseline():
    """ "peak MiB" on a CPU: resident memory (not address space) above the start."""
    with bench_model.RssSampler(period_s=0.5) as s:
        untouched = torch.empty(64 * 2**20 // 4)  # virtual, not resident
    assert s.growth < 16 * 2**20
    with bench_model.RssSampler(period_s=0.5) as s:
        touched = torch.ones(64 * 2**20 // 4)
    assert 60 * 2**20 < s.growth < 128 * 2**20
    del untouched, touched


def test_flops_count_the_deformable_convolutions():
    from torch.utils.flop_counter import FlopCounterMode

    model = bench_model.build("recurrent", "torchvision")
    x = bench_model.make_input(model, 32, 32, torch.device("cpu"))
    with torch.no_grad(), FlopCounterMode(display=False) as c:
        model.step(x)
    assert bench_model.count_flops("recurrent", 32, 32) > 1.05 * c.get_total_flops()


class Calls(list):
    """The rows asked of bench_row (the options as run() passes them on)."""


@pytest.fixture
def rec(monkeypatch):
    calls = Calls()
    calls.flops = []

    signature = inspect.signature(bench_model.bench_row)

    def bench_row(*args):
        calls.append({**signature.bind(*args).arguments, "threads": torch.get_num_threads()})
        raise RuntimeError("not measured")

    monkeypatch.setattr(bench_model, "bench_row", bench_row)
    monkeypatch.setattr(
        bench_model, "count_flops", lambda v, h, w: calls.flops.append((h, w)) or 1.0
    )
    return calls


BASE = ["--variants", "recurrent-0drm", "--sizes", "32x16", "--device", "cpu"]


@pytest.mark.parametrize(
    ("option", "expected"),
    [("auto", [True]), ("on", [True]), ("off", [False]), ("both", [False, True])],
)
def test_channels_last_option(rec, option, expected):
    bench_model.main([*BASE, "--channels-last", option])
    assert [c["channels_last"] for c in rec] == expected


@pytest.mark.parametrize(
    ("option", "expected"),
    [("off", [(False, 2)]), ("on", [(True, 2)]), ("both", [(False, 2), (True, 2)])],
)
def test_torch_compile_option(rec, option, expected):
    bench_model.main([*BASE, "--torch-compile", option])
    assert [(c["compiled"], c["warmup"]) for c in rec] == expected


def test_compile_warms_up_at_least_once(rec):
    bench_model.main([*BASE, "--torch-compile", "on", "--warmup", "0"])
    assert [c["warmup"] for c in rec] == [1]


def test_each_json_row_says_the_warm_up_it_had(monkeypatch, tmp_path):
    """--warmup 0 with --torch-compile both: the compiled row warmed up once (compiling), and
    its settings said 0."""

    def measured(variant, size, device, precision, deform, channels_last, compiled, *_):
        mode = "compiled" if compiled else "eager"
        return bench_model.Row(
            variant, "32x16", "cpu", precision, deform, "nchw", mode, 1.0, 1e3, 0.0, "rss",
            0.1, 1.0, None,
        )  # fmt: skip

    monkeypatch.setattr(bench_model, "bench_row", measured)
    monkeypatch.setattr(bench_model, "count_flops", lambda v, h, w: 1.0)
    out = tmp_path / "rows.json"
    argv = [*BASE, "--torch-compile", "both", "--warmup", "0", "--json", str(out)]
    assert bench_model.main(argv) == 0
    rows = json.loads(out.read_text())
    assert [(r["mode"], r["settings"]["warmup"]) for r in rows] == [("eager", 0), ("compiled", 1)]


def test_flops_counted_at_h_w_and_precisions_once(rec):
    bench_model.main([*BASE, "--precision", "fp32,fp32"])
    assert rec.flops == [(16, 32)] and len(rec) == 1


def test_threads_option(rec):
    n = torch.get_num_threads()
    try:
        bench_model.main([*BASE, "--threads", "1"])
    finally:
        torch.set_num_threads(n)
    assert rec[0]["threads"] == 1


@pytest.mark.parametrize("args", [["--variants", "nope"], ["--deform-impl", "nope"]])
def test_unknown_names_are_usage_errors(rec, args, capsys):
    assert bench_model.main([*BASE, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarn bench model: error: unknown") and rec == []  # as every sarn's


def test_ctrl_c_keeps_rows_and_returns_130(monkeypatch, capsys):
    def bench_row(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_model, "bench_row", bench_row)
    monkeypatch.setattr(bench_model, "count_flops", lambda v, h, w: 1.0)
    assert bench_model.main(BASE) == 130
    captured = capsys.readouterr()
    # no row: no table of headings either
    assert "ms/frame" not in captured.out and "interrupted after 0 rows" in captured.err


def test_sigterm_keeps_the_rows_measured_and_writes_the_json(tmp_path, monkeypatch, capsys):
    """`timeout` (SIGTERM) ended the sweep with no table and no --json, every row lost; the
    signal's exit code is kept (143). Sent to this process, with the default handler set."""
    measured = bench_model.bench_row

    def bench_row(*args):
        if bench_row.rows:
            os.kill(os.getpid(), signal.SIGTERM)
        bench_row.rows += 1
        return measured(*args)

    bench_row.rows = 0
    monkeypatch.setattr(bench_model, "bench_row", bench_row)
    old = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        out = tmp_path / "rows.json"
        sizes = ["--sizes", "32x16,48x32", "--iters", "1", "--warmup", "0"]
        assert bench_model.main([*BASE, *sizes, "--json", str(out)]) == 143
    finally:
        signal.signal(signal.SIGTERM, old)
    captured = capsys.readouterr()
    assert "32x16" in captured.out and "stopped by SIGTERM after 1 row" in captured.err
    (row,) = json.loads(out.read_text())
    assert row["resolution"] == "32x16"
    assert row["settings"]["complete"] is False  # read as a whole run of --sizes 32x16, unsaid


def test_a_sigterm_while_torch_is_imported_gets_its_line():
    """A SIGTERM or SIGHUP in the seconds of torch's import and the parse ended `sarn` with
    no line (Ctrl-C said "interrupted"): the tools' own handlers came only after. In a
    process of its own: without the handler the signal ends the process."""
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import os, signal, sys
        from sarn_ros.tools import cli
        real = cli.build_parser
        def built(argv):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(argv)
        cli.build_parser = built
        sys.exit(cli.main(["bench", "model", "--sizes", "16x16"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 143, result.stderr
    assert result.stderr.endswith("\nsarn bench: stopped by SIGTERM\n")


def test_defaults():
    parser = argparse.ArgumentParser()
    bench_model.add_arguments(parser)
    a = parser.parse_args([])
    assert a.sizes == [(320, 240), (640, 480)] and a.iters == 5 and a.warmup == 2
    assert a.precision == ["fp32"] and a.deform_impl == ["auto"]
    assert a.variants == ["single", "recurrent", "recurrent-no-attention", "recurrent-0drm"]
    assert a.channels_last == "auto" and a.torch_compile == "off"


def test_table_cells():
    row = bench_model.Row(
        "recurrent",
        "64x48",
        "cpu",
        "fp32",
        "grid_sample",
        "NCHW",
        "eager",
        12.5,
        80.0,
        3.0,
        "RSS growth",
        1.25,
        0.4,
        0.0,
    )
    lines = bench_model.format_table([row]).splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    got = dict(zip(cells[0], cells[2], strict=True))
    assert got["ms/frame"] == "12.5" and got["fps"] == "80.00"
    assert got["GFLOPs/frame"] == "0.4" and got["% of peak"] == "0.0"


def test_footer_names_the_memory_kind(capsys):
    args = [*BASE, "--sizes", "16x16", "--iters", "1", "--warmup", "0"]
    assert bench_model.main(args) == 0
    assert "peak memory: RSS growth;" in capsys.readouterr().out


def test_device_label_counts_torch_threads():
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert bench_model.device_label(torch.device("cpu")).endswith(" x1 threads")
    finally:
        torch.set_num_threads(n)


def test_bench_row_runs_warmup_plus_timed_frames(monkeypatch):
    build = bench_model.build
    calls = []

    def counting_build(variant, deform):
        model = build(variant, deform)
        step = model.step
        model.step = lambda *a: calls.append(1) or step(*a)
        return model

    monkeypatch.setattr(bench_model, "build", counting_build)
    bench_model.bench_row(
        "recurrent-0drm", (16, 16), torch.device("cpu"), "fp32", "auto", False, False, 3, 2, 1e9
    )
    assert len(calls) == 5


def test_a_size_beyond_the_machines_memory_is_refused_before_measuring(monkeypatch, capsys):
    """8192x8192 (within the 8192 px a side) started a FLOP count needing some 63 GB on a
    24 GB machine: killed by the kernel, not refused."""
    monkeypatch.setattr(bench_model, "memory_gb", lambda: 4.0)
    monkeypatch.setattr(bench_model, "count_flops", lambda v, h, w: pytest.fail("measured"))
    args = ["--variants", "single", "--device", "cpu", "--sizes", "64x48,2560x1920"]
    assert bench_model.main(args) == 2
    assert capsys.readouterr().err == (
        "sarn bench model: error: --sizes 2560x1920 needs about 5 GB of memory on the CPU (the "
        "FLOP count runs there), more than the 4 GB this process may use\n"
    )
    # the recurrent network's rate, not the single one's: 8192x3000 of it passed on 24 GB
    monkeypatch.setattr(bench_model, "memory_gb", lambda: 25.7)
    args = ["--variants", "single,recurrent", "--device", "cpu", "--sizes", "8192x3000"]
    assert bench_model.main(args) == 2
    assert "--sizes 8192x3000 needs about 27 GB" in capsys.readouterr().err


def test_a_containers_memory_limit_bounds_what_bench_model_may_use(tmp_path, monkeypatch):
    """The machine's memory let through a size a Docker container's limit would kill; a
    systemd slice's limit sits on the process's own group, below the file system's root."""
    root = tmp_path / "cgroup"
    proc = tmp_path / "self_cgroup"
    monkeypatch.setattr(bench_model, "CGROUP_ROOT", root)
    monkeypatch.setattr(bench_model, "PROC_CGROUP", proc)
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    # v2: the limit two groups above the process's own
    (root / "robot.slice" / "deblur.service").mkdir(parents=True)
    (root / "robot.slice" / "memory.max").write_text("3000000000\n")
    (root / "robot.slice" / "deblur.service" / "memory.max").write_text("max\n")  # none
    proc.write_text("0::/robot.slice/deblur.service\n")
    assert bench_model.memory_gb() == 3.0
    proc.write_text("0::/\n")  # a container's own namespace: its limit is at the root
    assert bench_model.memory_gb() == machine
    (root / "memory.max").write_text("2000000000\n")
    assert bench_model.memory_gb() == 2.0
    # v1: the memory controller's own hierarchy, among others
    (root / "memory" / "docker" / "abc").mkdir(parents=True)
    (root / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("1500000000\n")
    proc.write_text("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    assert bench_model.memory_gb() == 1.5
    proc.write_text("4:cpu:/docker/abc\n")  # no memory controller: no limit read
    assert bench_model.memory_gb() == machine
    proc.unlink()  # no /proc (macOS): the machine's
    assert bench_model.memory_gb() == machine


@pytest.mark.parametrize(
    ("sig", "then_fails"),
    [("SIGTERM", False), ("SIGHUP", False), ("SIGINT", False), ("SIGTERM", True)],
)
def test_a_json_written_as_a_stop_comes_is_whole_before_the_stop_ends_the_run(
    tmp_path, sig, then_fails
):
    """bench model and bench node write --json after their own stop handling: a SIGTERM or
    SIGHUP (default action), or a Ctrl-C, in the middle of the write left half a file; it is
    held till the file is whole, then ends the process as it would have. ``then_fails``: the
    block ends in an error after the stop came (a disk full), which lost the stop: a traceback
    and exit 1."""
    import sys

    out = tmp_path / "rows.json"
    ending = "raise OSError(28, 'No space left on device')" if then_fails else "pass"
    code = (
        "import json, os, signal\n"
        "from pathlib import Path\n"
        "from sarn_ros.tools.options import stops_held\n"
        "with stops_held():\n"
        f"    os.kill(os.getpid(), signal.{sig})\n"
        f"    Path({str(out)!r}).write_text(json.dumps(list(range(200000))))\n"
        f"    {ending}\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -getattr(signal, sig), done.stderr
    assert "not reached" not in done.stdout
    assert len(json.loads(out.read_text())) == 200000


@pytest.mark.parametrize("nested", [False, True])
def test_a_stop_as_the_handlers_are_put_back_is_the_only_one(monkeypatch, nested):
    """A SIGHUP met as stops_as_interrupts put the handlers back set SIGTERM, already back,
    to ignored for the rest of the run; a SIGTERM met as a nested stops_held put them back
    left SIGHUP's stop in place for the clean-up, where a closed terminal's second SIGHUP was
    a second stop."""
    from sarn_ros.tools.options import STOP_SIGNALS, Stopped, stops_as_interrupts, stops_held

    real = signal.signal
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    fired = []

    def putting_back(s, handler):
        back = handler is not signal.SIG_DFL if nested else handler is signal.SIG_DFL
        if s == signal.SIGHUP and back and not fired:  # as SIGTERM's is back, SIGHUP's not
            fired.append(s)
            signal.raise_signal(signal.SIGTERM if nested else signal.SIGHUP)
        return real(s, handler)

    for s in STOP_SIGNALS:
        real(s, signal.SIG_DFL)
    try:
        if nested:
            with stops_as_interrupts():
                with pytest.raises(Stopped, match="SIGTERM"), stops_held():
                    monkeypatch.setattr(signal, "signal", putting_back)
                monkeypatch.setattr(signal, "signal", real)
                signal.raise_signal(signal.SIGHUP)  # in the clean-up: not a second stop
        else:
            with pytest.raises(Stopped, match="SIGHUP"), stops_as_interrupts():
                monkeypatch.setattr(signal, "signal", putting_back)
        assert fired and all(signal.getsignal(s) is signal.SIG_DFL for s in STOP_SIGNALS)
    finally:
        for s, handler in before.items():
            real(s, handler)


def test_a_ctrl_c_as_stops_held_puts_the_handlers_back_loses_neither(monkeypatch):
    """A Ctrl-C met Python's own handler, put back first, and left the loop: SIGTERM's and
    SIGHUP's stand-ins stayed (every later SIGTERM swallowed) and the held SIGTERM was lost."""
    from sarn_ros.tools.options import STOP_SIGNALS, stops_held

    got = []

    def recording(signum, frame):
        got.append(signum)

    real = signal.signal
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, *STOP_SIGNALS)}

    def putting_back(s, handler):
        was = real(s, handler)
        if s == signal.SIGINT and handler is signal.default_int_handler and not pressed:
            pressed.append(s)  # one Ctrl-C, just as its handler is back
            os.kill(os.getpid(), signal.SIGINT)
        return was

    pressed = []

    real(signal.SIGINT, signal.default_int_handler)
    for s in STOP_SIGNALS:
        real(s, recording)
    try:
        monkeypatch.setattr(signal, "signal", putting_back)
        with pytest.raises(KeyboardInterrupt), stops_held([signal.SIGINT, *STOP_SIGNALS]):
            os.kill(os.getpid(), signal.SIGTERM)
        assert got == [signal.SIGTERM]
        assert all(signal.getsignal(s) is recording for s in STOP_SIGNALS)
    finally:
        for s, handler in before.items():
            real(s, handler)


@pytest.mark.slow
def test_an_onnx_variant_is_timed_in_onnxruntime_with_its_state(
    tiny_recurrent_onnx, tmp_path, monkeypatch, capsys
):
    """The exported step's model-only figure had no command: a .onnx variant is a row of its
    own, run as the node runs it, next to the PyTorch rows."""
    seen = []
    step = bench_model.OnnxNet.step

    def traced(self, stack, state):
        seen.append((tuple(stack.shape), float(state[0].abs().sum())))
        return step(self, stack, state)

    monkeypatch.setattr(bench_model.OnnxNet, "step", traced)
    out = tmp_path / "rows.json"
    again = tiny_recurrent_onnx.parent / ".." / tiny_recurrent_onnx.parent.name
    graph = str(tiny_recurrent_onnx)  # and the same file by another path: measured once
    argv = ["--variants", f"{graph},{again / tiny_recurrent_onnx.name}", "--sizes", "24x16"]
    argv += ["--device", "cpu", "--iters", "3", "--warmup", "0", "--json", str(out)]
    assert bench_model.main(argv) == 0
    assert [s for s, _ in seen] == [(1, 15, 16, 24)] * 3
    assert seen[0][1] == 0 and seen[2][1] > 0  # the state is carried from frame to frame
    (row,) = json.loads(out.read_text())
    assert row["variant"] == graph and row["resolution"] == "24x16"
    assert row["settings"]["warmup"] == 0 and row["settings"]["host"] == row["device"]
    assert (row["precision"], row["deform"], row["mode"]) == ("fp32", "onnxruntime", "onnxruntime")
    assert row["ms"] > 0 and row["fps"] == pytest.approx(1e3 / row["ms"])
    assert row["params_m"] is None and row["gflops"] is None and row["pct_peak"] is None
    table = capsys.readouterr().out
    assert f"| {graph} | 24x16 |" in table and "| n/a | n/a | n/a |" in table


def test_a_graph_with_quantize_nodes_is_labelled_int8(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def graph(op: str, *inputs: str) -> str:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info(
            "y", TensorProto.UINT8 if inputs[1:] else TensorProto.FLOAT, [1]
        )
        scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
        node = helper.make_node(op, list(inputs), ["y"])
        path = tmp_path / f"{op}.onnx"
        onnx.save(helper.make_model(helper.make_graph([node], op, [x], [y], [scale])), path)
        return str(path)

    assert bench_model.graph_precision(graph("QuantizeLinear", "x", "s")) == "int8"
    assert bench_model.graph_precision(graph("Relu", "x")) == "fp32"


def test_an_onnx_variant_that_is_no_graph_of_sarn_export_is_refused_up_front(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(bench_model, "count_flops", lambda *a: pytest.fail("measured"))
    pytest.importorskip("onnxruntime")
    text = tmp_path / "notes.onnx"
    text.write_text("not a graph")
    for given in (text, tmp_path / "missing.onnx"):
        assert bench_model.main(["--variants", f"recurrent,{given}", "--sizes", "24x16"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("sarn bench model: error: ")
        assert str(given) in err[0]
    assert bench_model.main(["--variants", "step.pth", "--sizes", "24x16"]) == 2
    assert "or give a .onnx graph of `sarn export`" in capsys.readouterr().err
