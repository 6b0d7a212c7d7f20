"""`sarn bench node`: the figures it reports, checked against what its docstring, option help
and table headings say they mean, with scripted inputs (no node is started)."""

import argparse
import json
import math
import os
import re
import time
from pathlib import Path

import pytest

from sarn_ros.tools import bench_node


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_node.add_arguments(parser)
    return parser.parse_args(["--tiny", *argv])


def test_out_fps_of_a_short_burst_and_of_a_single_output():
    """out fps is the rate the outputs came at, first to last: six outputs 0.1 s apart are
    10 fps even when they span under a second; one lone output has no span, so it is counted
    over the window (1 in 2 s), not as 0 fps."""
    sent = {(0, i): 100.0 + 0.1 * i for i in range(20)}  # 10 fps for 2 s
    burst = {(0, i): 100.05 + 0.1 * i for i in range(6)}  # spans 0.5 s
    r = bench_node.rates(sent, burst, wall=2.0)
    assert r["out_fps"] == pytest.approx(10.0) and r["drop_pct"] == pytest.approx(70.0)
    lone = bench_node.rates(sent, {(0, 3): 100.4}, wall=2.0)
    assert lone["out_fps"] == pytest.approx(0.5) and lone["drop_pct"] == pytest.approx(95.0)
    # 3 frames at 2 fps whose latency fell by 0.1 s a frame: 2.5 fps out, of 2 in
    sent = {(0, i): 100.0 + 0.5 * i for i in range(3)}
    falling = {(0, i): t + 0.3 - 0.1 * i for (_, i), t in sent.items()}
    r = bench_node.rates(sent, falling, wall=1.5)
    assert r["in_fps"] == pytest.approx(2.0) and r["out_fps"] == pytest.approx(2.0)


def test_memory_trend_needs_a_minute_not_more_samples():
    """'runs under a minute print none': a run of exactly a minute, even sampled three times,
    has a trend (MiB per minute); 40 s has none. The range is the samples' min and max."""
    minute = bench_node.rss_trend([(0.0, 500.0), (30.0, 490.0), (60.0, 520.0)])
    assert minute["rss_mib_per_min"] == pytest.approx(20.0)  # least squares: 20 MiB in 60 s
    assert minute["rss_mib_min"] == 490.0 and minute["rss_mib_max"] == 520.0
    short = bench_node.rss_trend([(float(t), 500.0 + t) for t in range(41)])
    assert math.isnan(short["rss_mib_per_min"])


def test_the_warm_up_backlog_is_out_when_a_period_says_nothing_is_pending():
    """The warm-up's wait ends on the node's word, not on twice the longest inference (a
    torch_compile warm-up's minute idled two); frames held for look-ahead are pending."""
    assert not bench_node.nothing_pending([])
    assert not bench_node.nothing_pending([{"frames pending": "2"}, {"inference ms": "9"}])
    assert bench_node.nothing_pending([{"frames pending": "1"}, {"frames pending": "0"}])


def test_sizes_accept_the_largest_side_the_error_names():
    """The error says '8 to MAX_SIDE px a side' and MAX_SIDE is 'a frame this side builds and
    sends (8K)': 8192 is accepted at both ends of the range."""
    assert bench_node.parse_sizes(f"{bench_node.MAX_SIDE}x8") == [(bench_node.MAX_SIDE, 8)]


def test_process_meter_reads_mib_and_user_plus_system_time():
    """RSS in MiB (kB / 1024, as the kernel's resident pages times the page size), CPU time
    user + system (as os.times says of this very process)."""
    meter = bench_node.ProcessMeter(os.getpid())
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    expected_mib = resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert meter.rss_mib() == pytest.approx(expected_mib, rel=0.005)
    end = time.process_time() + 0.2
    while time.process_time() < end:  # some system time too: each call is a syscall
        os.stat("/proc/self/stat")
    t = os.times()
    assert t.system > 0.05  # the check below tells user + system from user alone
    assert meter.cpu_s() == pytest.approx(t.user + t.system, abs=0.05)


def test_node_gets_the_options_the_user_gave():
    """Each node option is passed as the node parameter its help names (a bf16 run measured
    at fp32 would be mislabelled)."""
    args = parse(
        *("--precision", "bf16", "--threads", "3", "--queue-policy", "all"),
        *("--self-ensemble", "4", "--future-frames", "2", "--publish-compressed"),
        *("--torch-compile", "--input-transport", "compressed", "--cameras", "2"),
    )
    cmd = bench_node.node_args("w.pth", args)
    params = dict(cmd[i + 1].split(":=", 1) for i, a in enumerate(cmd) if a == "-p")
    assert params["weights"] == "'w.pth'" and params["precision"] == "bf16"
    assert params["cpu_threads"] == "3" and params["queue_policy"] == "all"
    assert params["self_ensemble"] == "4" and params["future_frames"] == "2"
    assert params["publish_compressed"] == "true" and params["torch_compile"] == "true"
    assert params["input_transport"] == "compressed" and params["cameras"] == "[cam0, cam1]"
    # a camera under 2 fps restarted the stream at every frame at the packaged max_gap_s 0.5
    assert params["max_gap_s"] == "0.5"  # the default --fps 10, as the node runs it
    slow = bench_node.node_args("w.pth", parse("--fps", "1"))
    assert f"max_gap_s:={2.5}" in slow
    # a namespace of its own: two benches on one domain fed and measured each other's nodes
    assert cmd[cmd.index("-r") + 1] == f"__ns:=/sarn_bench_{os.getpid()}"


def diag(**overrides: str) -> dict[str, str]:
    period = {
        "output fps": "10",
        "inference ms (mean)": "20",
        "node overhead ms per frame (mean)": "1.5",
        "latency ms (receive to publish, median)": "30",
        "intake wait ms (receive to worker, median)": "3",
    }
    return {**period, **overrides}


def test_row_latency_figures_in_ms_without_the_stream_end_frames():
    """e2e ms: publish -> receive in milliseconds, median and 95th percentile interpolated
    linearly; the last --future-frames frames are left out; 'e2e - inference' is mean e2e
    minus mean inference; callback -> publish is the node's latency figure; CPU % is CPU time
    over wall time, 100 % a core."""
    latency_ms = [10, 20, 30, 40, 50, 60, 70, 80, 90, 190, 5000]  # the last: the stream's end
    sent = {(0, s): 50.0 + 0.1 * s for s in range(11)}
    received = {(0, s): sent[0, s] + ms / 1e3 for s, ms in enumerate(latency_ms)}
    args = parse("--future-frames", "1")
    r = bench_node.row((64, 48), args, 1, sent, received, set(), [diag()], cpu_s=0.55, wall=1.1)
    # the ten kept: 10..90 and 190; p50 between 50 and 60; p95 at 8.55 of 9 steps: 90 + .55*100
    assert r["e2e_ms_p50"] == pytest.approx(55.0)
    assert r["e2e_ms_p95"] == pytest.approx(145.0)
    assert r["e2e_ms_mean"] == pytest.approx(64.0)
    assert r["inference_ms"] == pytest.approx(20.0)
    assert r["e2e_minus_inference_ms"] == pytest.approx(44.0)
    assert r["node_latency_ms"] == pytest.approx(30.0) and r["node_ms"] == pytest.approx(1.5)
    assert r["cpu_pct"] == pytest.approx(50.0)
    assert r["in_fps"] == pytest.approx(10.0)


def test_row_of_a_stereo_rig_counts_only_the_measured_frames_per_camera():
    """Two cameras at 10 fps for 1 s, camera 1 missing the last frame, plus outputs of
    warm-up frames: in/out fps are per camera, the sets and the JPEG/raw counts are of the
    measured frames only (the warm-up's are no frames of the window)."""
    sent = {(k, s): 10.0 + 0.1 * s for k in (0, 1) for s in range(10)}
    received = {(k, s): t + 0.05 for (k, s), t in sent.items() if (k, s) != (1, 9)}
    warm_up = {(0, -2): 9.7, (1, -2): 9.7, (0, -1): 9.8}
    received.update(warm_up)
    jpegs = set(received)
    args = parse("--cameras", "2", "--publish-compressed")
    r = bench_node.row((64, 48), args, 2, sent, received, jpegs, [diag()], cpu_s=1.0, wall=1.0)
    assert r["in_fps"] == pytest.approx(10.0) and r["out_fps"] == pytest.approx(10.0)
    assert r["drop_pct"] == pytest.approx(5.0)
    assert (r["sets_out"], r["sets_complete"], r["complete_pct"]) == (10, 9, 90.0)
    assert r["jpeg_out"] == r["raw_out"] == 19


def test_no_set_out_is_no_share_of_complete_sets():
    """With nothing out, the share of complete sets is undefined (null in JSON), not 0 %."""
    assert math.isnan(bench_node.complete_sets(set(), 2)["complete_pct"])


def table_row(**overrides) -> dict:
    r = {
        "size": "64x48",
        "cameras": 1,
        "in_fps": 10.0,
        "out_fps": 9.0,
        "drop_pct": 10.0,
        "e2e_ms_p50": 55.0,
        "e2e_ms_p95": 145.0,
        "inference_ms": 20.0,
        "node_ms": 1.25,
        "e2e_minus_inference_ms": 44.0,
        "node_latency_ms": 30.0,
        "cpu_pct": 50.0,
        "rss_mib_start": 500.0,
        "rss_mib_end": 520.0,
        "rss_mib_min": 490.0,
        "rss_mib_max": 530.0,
        "rss_mib_per_min": 6.0,
    }
    return {**r, **overrides}


def printed_table(capsys, rows: list[dict]) -> list[dict[str, str]]:
    bench_node.print_table(rows)
    lines = capsys.readouterr().out.splitlines()
    split = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return [dict(zip(split[0], cells, strict=True)) for cells in split[2:]]


def test_table_cells_sit_under_their_headings(capsys):
    """Each figure under its own heading: p95 is not p50, 'e2e - inference' is not node ms."""
    (cells,) = printed_table(capsys, [table_row()])
    assert cells["e2e ms p50"] == "55.0" and cells["e2e ms p95"] == "145.0"
    assert cells["e2e - inference ms"] == "44.0" and cells["node ms"] == "1.25"
    assert cells["callback -> publish ms"] == "30.0" and cells["node CPU %"] == "50"
    assert re.fullmatch(
        r"500 -> 520 \(490-530, \+6\.0/min\)",
        cells[next(h for h in cells if h.startswith("node RSS MiB"))],
    )


def test_table_of_mono_and_stereo_rows_shows_the_sets(capsys):
    """A stereo row among mono rows: its complete sets are printed (k of n), the mono row
    shows '-', and the rates are labelled per camera."""
    stereo = table_row(cameras=2, sets_out=10, sets_complete=9, complete_pct=90.0)
    mono, two = printed_table(capsys, [table_row(), stereo])
    assert "in fps per camera" in two and "out fps per camera" in two
    assert two["complete sets (of those out)"] == "9 of 10 (90 %)"
    assert mono["complete sets (of those out)"] == "-"


def test_one_frame_is_enough_to_run_and_threads_0_reads_default(monkeypatch, capsys):
    """--duration 1 at --fps 1 sends one frame (only under one frame is refused); --threads 0
    is 'PyTorch's default', and the header says so rather than 0 threads."""
    calls = []
    monkeypatch.setattr(bench_node, "bench_size", lambda w, size, args, rows: calls.append(size))
    monkeypatch.setattr(bench_node, "print_table", lambda rows: None)
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda domain: None)
    args = parse("--sizes", "64x48", "--duration", "1", "--fps", "1", "--threads", "0")
    assert bench_node.run(args) == 0 and calls == [(64, 48)]
    assert "cpu_threads default," in capsys.readouterr().out


def test_device_auto_is_reported_with_the_device_it_ran_on(monkeypatch, capsys, tmp_path):
    """The header and the JSON said "device auto", leaving a CPU and a GPU run alike."""
    from sarn_ros.engine import resolve_device

    monkeypatch.setattr(bench_node, "bench_size", lambda w, size, args, rows: rows.append({}))
    monkeypatch.setattr(bench_node, "print_table", lambda rows: None)
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda domain: None)
    out = tmp_path / "rows.json"
    args = parse("--sizes", "64x48", "--duration", "1", "--fps", "1", "--device", "auto")
    args.json = out
    assert bench_node.run(args) == 0
    used = str(resolve_device("auto"))
    assert f"device auto ({used})," in capsys.readouterr().out
    (row,) = json.loads(out.read_text())
    assert (row["settings"]["device"], row["settings"]["device_used"]) == ("auto", used)


def test_a_compile_that_failed_in_the_node_is_reported_as_it_ran(monkeypatch, capsys, tmp_path):
    """The header and the JSON said "torch_compile true" where the node's compile failed and
    it ran eagerly (its /diagnostics said so)."""
    window = [diag(), diag(torch_compile="failed, eager")]
    sent = {(0, s): 50.0 + 0.1 * s for s in range(4)}
    received = {k: t + 0.05 for k, t in sent.items()}
    r = bench_node.row((64, 48), parse(), 1, sent, received, set(), window, cpu_s=0.1, wall=1.0)
    assert r["torch_compile"] == "failed, eager"
    ran = iter(["on", "failed, eager"])
    monkeypatch.setattr(
        bench_node,
        "bench_size",
        lambda w, size, args, rows: rows.append(
            {"size": f"{size[0]}x{size[1]}", "torch_compile": next(ran)}
        ),
    )
    monkeypatch.setattr(bench_node, "print_table", lambda rows: None)
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda domain: None)
    args = parse("--sizes", "64x48,96x64", "--duration", "1", "--fps", "1", "--torch-compile")
    args.json = tmp_path / "rows.json"
    assert bench_node.run(args) == 0
    assert "torch_compile true (failed, eager at 96x64)," in capsys.readouterr().out
    rows = json.loads(args.json.read_text())
    assert [r["torch_compile"] for r in rows] == ["on", "failed, eager"]


def test_sigterm_between_sizes_keeps_the_rows_measured(monkeypatch, capsys, tmp_path):
    """`timeout`'s SIGTERM or a closed terminal's SIGHUP while a size's node stopped ended the
    process: no table, no --json, every row measured lost; within a size it exited 130."""
    import os
    import signal

    def measured_then_killed(w, size, args, rows):
        if rows:  # the second size: its node stopping
            os.kill(os.getpid(), signal.SIGTERM)
        rows.append({"size": f"{size[0]}x{size[1]}"})

    monkeypatch.setattr(bench_node, "bench_size", measured_then_killed)
    monkeypatch.setattr(bench_node, "print_table", lambda rows: print(f"{len(rows)} rows"))
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda domain: None)
    args = parse("--sizes", "64x48,96x64,128x96", "--duration", "1", "--fps", "1")
    args.json = tmp_path / "gone" / ".." / "rows.json"  # where the kernel finds it: no `gone`
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        assert bench_node.run(args) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    out, err = capsys.readouterr()
    assert "1 rows" in out
    assert err == "sarn bench node: stopped by SIGTERM after 1 size (the node was stopped)\n"
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["size"] for r in rows] == ["64x48"]
    # it read as a whole run of --sizes 64x48
    assert rows[0]["settings"]["sizes"] == ["64x48", "96x64", "128x96"]
    assert rows[0]["settings"]["complete"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]


@pytest.mark.parametrize(
    ("first", "second", "said", "code"),
    [("SIGINT", "SIGTERM", "interrupted", 130), ("SIGTERM", "SIGINT", "stopped by SIGTERM", 143)],
)
def test_a_second_stop_in_the_clean_up_keeps_the_first_and_no_empty_table(
    monkeypatch, capsys, first, second, said, code
):
    """A Ctrl-C, then a SIGTERM while the node stopped, said "stopped by SIGTERM" (143), and
    the other way round "interrupted" (130): the exit code depended on the timing. A stop in
    the first size printed a table of headings alone."""
    import os
    import signal

    fired = []

    def stopped_twice(w, size, args, rows):
        try:
            fired.append(first)
            os.kill(os.getpid(), getattr(signal, first))
        finally:  # the node stopping: the second comes
            fired.append(second)
            os.kill(os.getpid(), getattr(signal, second))

    monkeypatch.setattr(bench_node, "bench_size", stopped_twice)
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda domain: None)
    args = parse("--sizes", "64x48", "--duration", "1", "--fps", "1")
    previous = {
        s: signal.signal(s, h)
        for s, h in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler))
    }
    try:
        assert bench_node.run(args) == code
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    assert fired == [first, second]
    out, err = capsys.readouterr()
    assert err == f"sarn bench node: {said} after 0 sizes (the node was stopped)\n"
    assert "| size |" not in out


def test_a_second_stop_raised_out_of_a_tool_keeps_the_first(monkeypatch, capsys):
    """`sarn`'s own line for a stop a tool did not catch: a SIGTERM raised in the clean-up of
    a Ctrl-C said "stopped by SIGTERM" (143)."""
    from sarn_ros.tools import cli
    from sarn_ros.tools.options import Stopped

    def stopped_in_clean_up(args):
        try:
            raise KeyboardInterrupt
        finally:
            raise Stopped(15)

    monkeypatch.setattr(bench_node, "run", stopped_in_clean_up)
    assert cli.main(["bench", "node", "--tiny"]) == 130
    assert capsys.readouterr().err == "\nsarn bench: interrupted\n"


def test_the_duration_a_refusal_asks_for_is_taken(monkeypatch, capsys):
    """'give at least 0.0333333 s' at 30 fps was itself refused: rounded down."""
    monkeypatch.setattr(bench_node, "bench_size", lambda w, size, args, rows: None)
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda domain: None)
    for fps in ("30", "3", "7"):
        assert bench_node.run(parse("--fps", fps, "--duration", "0.01")) == 2
        least = capsys.readouterr().err.split("give at least ")[1].split()[0]
        assert bench_node.run(parse("--fps", fps, "--duration", least)) == 0, least


def test_threads_past_the_nodes_range_are_a_usage_error(capsys):
    """`sarn bench model --threads 999999999999` was torch's "Overflow when unpacking long"
    traceback; both benchmarks take the node's cpu_threads range."""
    from sarn_ros.tools.cli import main as sarn

    for argv in (["bench", "model"], ["bench", "node"]):
        with pytest.raises(SystemExit) as exc:
            sarn([*argv, "--threads", "999999999999"])
        assert exc.value.code == 2
        assert "argument --threads: must be in [0, 256]" in capsys.readouterr().err


def test_weights_the_node_cannot_load_are_said_before_it_starts_and_leave_no_json(
    tmp_path, monkeypatch, capsys
):
    """Missing or broken weights were the node's exit at the first size, 7-10 s in and said
    as an error at that size (weights of another shape still were); a run that measured
    nothing wrote a JSON of []."""
    import torch

    from sarn_ros.checkpoint import read_checkpoint
    from sarn_ros.tools.cli import main as sarn
    from sarn_ros.weights_path import resolve_weights

    monkeypatch.setattr(bench_node, "own_ros_domain", lambda _: pytest.fail("the bench ran"))
    (tmp_path / "text.pth").write_text("not weights")
    shaped = read_checkpoint(resolve_weights("sarn_single"))  # read fine, cannot be built
    first = next(iter(shaped["state_dict"]))
    shaped["state_dict"][first] = torch.zeros(1)
    torch.save(shaped, tmp_path / "shape.pth")
    json_out = tmp_path / "new" / "rows.json"
    cases = (
        ("missing.pth", "weights file not found"),
        ("text.pth", "text.pth"),
        ("shape.pth", "shape"),
    )
    for weights, why in cases:
        argv = ["bench", "node", "--weights", str(tmp_path / weights), "--json", str(json_out)]
        assert sarn(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sarn bench node: error:") and why in err and "\n" not in err
    monkeypatch.setattr(bench_node, "own_ros_domain", lambda _: None)

    def fails(weights, size, args, rows):
        raise RuntimeError("the node exited (1)")

    monkeypatch.setattr(bench_node, "bench_size", fails)
    assert sarn(["bench", "node", "--tiny", "--sizes", "64x48", "--json", str(json_out)]) == 1
    assert not json_out.exists() and not json_out.parent.exists()
    # an earlier run's file there: kept, but not taken for this run's without a word
    json_out.parent.mkdir()
    json_out.write_text("[]")
    assert sarn(["bench", "node", "--tiny", "--sizes", "64x48", "--json", str(json_out)]) == 1
    assert json_out.read_text() == "[]"
    assert (
        f"sarn bench node: --json {json_out} not written (nothing measured): it is as an "
        "earlier run left it"
    ) in capsys.readouterr().err


def test_cameras_past_a_rigs_are_a_usage_error(capsys):
    """--cameras 1000 warmed up for minutes, past any wait; 16 still starts."""
    assert parse("--cameras", "16").cameras == 16
    with pytest.raises(SystemExit):
        parse("--cameras", "17")
    assert "argument --cameras: must be in [1, 16], got 17" in capsys.readouterr().err
