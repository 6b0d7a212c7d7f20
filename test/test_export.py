"""`sarn export`: ONNX graphs that onnxruntime runs like PyTorch, at more than one size."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sarn_ros import StreamDeblurrer
from sarn_ros.archs import SARN
from sarn_ros.checkpoint import load_model, save_checkpoint
from sarn_ros.resources import script_command
from sarn_ros.tools import cli, export, quantize

SARN_CLI = script_command("sarn")
REPO = Path(__file__).resolve().parent.parent
needs_exporter = pytest.mark.skipif(
    not export.has_dynamo_exporter() or find_spec("onnxscript") is None,
    reason="this PyTorch has no dynamo ONNX exporter (< 2.5), or onnxscript is not installed",
)


@pytest.mark.slow
@needs_exporter
@pytest.mark.parametrize("opset", [None, 18])
def test_recurrent_step_export_matches_pytorch(tmp_path, tiny_recurrent_checkpoint, opset):
    """The default opset (17, TensorRT 8.5/8.6) goes through the exporter's down-conversion and
    the Split repair; 18 is the exporter's own. Both get the oldest IR version that has them."""
    out = tmp_path / "step.onnx"
    result = subprocess.run(
        [
            *SARN_CLI,
            "export",
            "--weights",
            str(tiny_recurrent_checkpoint),
            "-o",
            str(out),
            "--height",
            "48",
            "--width",
            "64",
            *(["--opset", str(opset)] if opset else []),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # the exporter's progress, and the step's inputs sharing H4 and W4 (by design): quiet
    assert "[torch.onnx]" not in result.stderr and "axis name" not in result.stderr
    err = float(re.search(r"max abs error ([\d.e+-]+)", result.stdout).group(1))
    assert err < 1e-4
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[export.META_KEY])
    assert meta == {"weights": str(tiny_recurrent_checkpoint), "note": "untrained test fixture"}
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [
        opset or export.DEFAULT_OPSET
    ]
    assert proto.ir_version == 8  # ONNX 1.12's, for onnxruntime < 1.18 and TensorRT 8.x
    # ceil_mode edge windows averaged over what they hold, said explicitly: onnxruntime 1.16
    # divided them by the whole kernel under count_include_pad=1 (6/255 off at 320x240)
    pools = [n for n in proto.graph.node if n.op_type == "AveragePool"]
    assert pools and all(
        onnx.helper.get_attribute_value(a) == 0
        for n in pools
        for a in n.attribute
        if a.name == "count_include_pad"
    )
    splits = [n for n in proto.graph.node if n.op_type == "Split"]
    assert splits  # the ConvLSTM's gates
    if opset is None:
        assert all(len(n.input) == 2 for n in splits)
        assert not any(a.name == "num_outputs" for n in splits for a in n.attribute)
    # A size the export never saw: one step from zero state equals the model's step().
    model = load_model(tiny_recurrent_checkpoint, deform_impl="grid_sample")
    stack = torch.rand(1, 15, 36, 44)
    h, c = model.init_state(1, 36, 44, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        ref, (ref_h, _) = model.step(stack, (h, c))
    ort = pytest.importorskip("onnxruntime")
    assert [p.name for p in tmp_path.iterdir()] == ["step.onnx"]  # no weights in a side file
    moved = tmp_path / "jetson" / "step.onnx"  # copied on its own, as to another machine
    moved.parent.mkdir()
    out.rename(moved)
    session = ort.InferenceSession(str(moved))
    frame, h_out, _ = session.run(None, {"stack": stack.numpy(), "h": h.numpy(), "c": c.numpy()})
    assert np.abs(frame - ref.numpy()).max() < 1e-4
    assert np.abs(h_out - ref_h.numpy()).max() < 1e-4
    # README's loop around the step gives the engine's frames, at a size that needs padding
    deblur_clip = readme_loop()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (30, 42, 3))
    frames = [np.roll(base, 2 * i, axis=1).astype(np.uint8) for i in range(6)]
    for future in (2, 0):
        engine = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=future)
        want = [o.image for i, f in enumerate(frames) for o in engine.push(f, i * 33_000_000)]
        want += [o.image for o in engine.flush()]
        got = deblur_clip(session, frames, future_frames=future)
        assert len(got) == len(want) == len(frames)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype
            assert np.abs(g.astype(int) - w).max() <= 1  # rounding of equal floats


@pytest.mark.slow
@needs_exporter
def test_single_image_export_and_bad_size(tmp_path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(
        SARN(channels=8, blocks_per_level=1, attention_stride=4), tmp_path / "s.pth"
    )
    ok = subprocess.run(
        [
            *SARN_CLI,
            "export",
            "--weights",
            str(ckpt),
            "-o",
            str(tmp_path / "s.onnx"),
            "--height",
            "32",
            "--width",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0 and "single-image" in ok.stdout, ok.stderr
    # the exporter's own progress and its "Setting ONNX exporter to use operator set version
    # 18" above the line naming opset 17 (the file's): quiet
    assert "[torch.onnx]" not in ok.stderr and "operator set version" not in ok.stderr
    assert "version_converter" not in ok.stderr, ok.stderr
    bad = subprocess.run(
        [
            *SARN_CLI,
            "export",
            "--weights",
            str(ckpt),
            "-o",
            str(tmp_path / "b.onnx"),
            "--height",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "multiples of 4" in bad.stderr
    args = ["export", "--weights", str(ckpt), "-o", str(tmp_path / "t.onnx")]
    with pytest.raises(SystemExit) as usage:  # a size of 4 would be fixed in the graph
        cli.main([*args, "--height", "4", "--width", "8"])
    assert usage.value.code == 2
    assert cli.main([*args, "--opset", "15"]) == 2  # no GridSample before 16
    assert not (tmp_path / "t.onnx").exists()
    with pytest.raises(SystemExit) as usage:  # the exporter failed with pages of its own
        cli.main([*args, "--height", "4104", "--width", "8"])
    assert usage.value.code == 2


def readme_loop():
    """README's ``deblur_clip`` (Deployment), run as written."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (code,) = [b for b in blocks if "def deblur_clip" in b]
    namespace: dict = {}
    exec(code, namespace)
    return namespace["deblur_clip"]


def split_graph(opset: int, channels: int):
    """A one-node graph as the exporter leaves it below opset 18: Split with num_outputs."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None, 2, 3]) for n in "ab"]
    node = helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)
    graph = helper.make_graph([node], "g", [x], outs)
    return onnx, helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_split_sizes_made_explicit_below_opset_18():
    """The exporter's opset-17 file kept Split's opset-18 attribute and would not load; the
    repaired one splits as the network did."""
    ort = pytest.importorskip("onnxruntime")
    onnx, proto = split_graph(17, 4)
    with pytest.raises(onnx.checker.ValidationError, match="num_outputs"):
        onnx.checker.check_model(proto, full_check=True)
    assert export.explicit_split_sizes(proto) == 1
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(24, dtype=np.float32).reshape(1, 4, 2, 3)
    a, b = session.run(None, {"x": x})
    np.testing.assert_array_equal(a, x[:, :2])
    np.testing.assert_array_equal(b, x[:, 2:])
    _, odd = split_graph(17, 5)
    with pytest.raises(export.ExportError, match="--opset 18"):
        export.explicit_split_sizes(odd)


def test_validation_gives_the_largest_error_of_any_output_at_any_size(tmp_path):
    """The figure `sarn export` prints: a frame output off by 1 must show, whichever output and
    size come last."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from sarn_ros.archs import RecurrentSARN

    model = RecurrentSARN(channels=8, blocks_per_level=1, lstm_channels=8, attention_stride=4)
    dims = {"stack": [1, 15, "H", "W"], "h": [1, 8, "h", "w"], "c": [1, 8, "h", "w"]}
    info = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Identity", [n], [f"{n}_out"]) for n in dims],
        "g",
        [info(n, TensorProto.FLOAT, d) for n, d in dims.items()],
        [info(f"{n}_out", TensorProto.FLOAT, d) for n, d in dims.items()],
    )
    path = tmp_path / "identity.onnx"
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, path)

    class OffAtTheFirstSize(torch.nn.Module):  # PyTorch's side: the frame off at 32x32 only
        def forward(self, stack, h, c):
            return (stack + 1 if stack.shape[-1] == 32 else stack), h, c

    sizes = [(32, 32), (16, 16)]
    assert export.validate(OffAtTheFirstSize(), model, path, sizes) == pytest.approx(1, abs=1e-6)
    assert export.oldest_ir_version(16) == 8 and export.oldest_ir_version(17) == 8


def test_pytorch_without_the_exporter_is_one_error_line(monkeypatch, tmp_path, capsys):
    """A robot's older PyTorch runs the node; export says what it needs instead of a traceback
    from deep inside torch.export."""

    def old_export(model, args, f, export_params=True, opset_version=None):  # torch 2.1's shape
        raise AssertionError("must not be reached")

    monkeypatch.setattr(torch.onnx, "export", old_export)
    argv = ["export", "-o", str(tmp_path / "x.onnx")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs PyTorch >= 2.5" in err[0] and torch.__version__ in err[0]
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.skipif(not export.has_dynamo_exporter(), reason="checked after the PyTorch version")
@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "onnxruntime"])
def test_missing_onnx_packages_are_named_before_exporting(monkeypatch, tmp_path, capsys, missing):
    """On a ROS install (package.xml does not declare them) export names the pip packages up front,
    rather than failing inside torch.onnx or after a minute of exporting."""
    monkeypatch.setattr(export, "find_spec", lambda name: None if name == missing else True)
    monkeypatch.setattr(export, "load_model", lambda *a, **k: pytest.fail("must not load"))
    assert cli.main(["export", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"sarn export: error: needs the Python packages {missing}, not among sarn_ros's ROS "
        f"dependencies: python3 -m pip install --user {missing}"
    ]


@pytest.mark.skipif(not export.has_dynamo_exporter(), reason="checked after the PyTorch version")
def test_failed_export_is_one_error_line_and_no_file(monkeypatch, tmp_path, capsys):
    """An exporter or runtime failure (an opset it cannot convert to, ...) must not leave a
    file that looks like an export behind."""
    ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "s.pth")
    out = tmp_path / "x.onnx"

    def half_written(model, path, h, w, opset):
        path.write_bytes(b"not onnx")
        raise RuntimeError("converter gave up\ntraceback details")

    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "export", half_written)
    assert cli.main(["export", "--weights", str(ckpt), "-o", str(out), "--opset", "19"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sarn export: error: opset 19: converter gave up"]
    assert not out.exists()
    out.write_bytes(b"yesterday's graph")  # a re-export that fails keeps the file it replaces
    again = ["export", "--weights", str(ckpt), "-o", str(out), "--opset", "19"]
    assert cli.main([*again, "--overwrite"]) == 2
    assert out.read_bytes() == b"yesterday's graph"
    capsys.readouterr()
    assert cli.main(again) == 2  # without --overwrite: refused before exporting, as deblur does
    assert "exists: pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"yesterday's graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pth", "x.onnx"]  # no scratch left

    def full(model, path, h, w, opset):  # its file, not the opset: said without "opset 19"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export", full)
    capsys.readouterr()
    assert cli.main([*again, "--overwrite"]) == 2
    assert (
        capsys.readouterr().err.strip() == "sarn export: error: [Errno 28] No space left on device"
    )


def test_a_graph_left_at_another_opset_is_an_error_not_named_the_one_asked(
    monkeypatch, tmp_path, capsys
):
    """The exporter builds at 18 and keeps 18 where its conversion fails (its warning, now
    quiet, said so): the line would have named the opset asked for."""
    ckpt = save_checkpoint(
        SARN(channels=8, blocks_per_level=1, attention_stride=4), tmp_path / "s.pth"
    )
    made = torch.onnx.export

    @functools.wraps(made)  # its signature: the check for the dynamo exporter reads it
    def kept_at_18(*args, **kwargs):
        return made(*args, **{**kwargs, "opset_version": 18})

    monkeypatch.setattr(export.torch.onnx, "export", kept_at_18)
    argv = ["export", "--weights", str(ckpt), "-o", str(tmp_path / "s.onnx"), "--opset", "17"]
    assert cli.main([*argv, "--height", "32", "--width", "32"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "sarn export: error: opset 17: the exporter wrote opset 18, not 17; give --opset 18"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pth"]


def test_a_stopped_export_leaves_no_working_folder_nor_folders_it_made(
    monkeypatch, tmp_path, capsys
):
    """SIGTERM (`timeout`, a closed terminal) left the hidden working folder, with its 12 MB
    graph, beside the output; a failed export left the folders made for -o."""
    import signal

    ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "s.pth")

    def killed(model, path, h, w, opset):
        path.write_bytes(b"half a graph")
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "export", killed)
    out = tmp_path / "gone" / ".." / "new" / "deeper" / "x.onnx"  # `gone`: no folder to make
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it
    try:
        assert cli.main(["export", "--weights", str(ckpt), "-o", str(out)]) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.endswith("sarn export: stopped by SIGTERM\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pth"]
    (tmp_path / "kept").mkdir()  # there before: kept, and what the export made in it removed
    out = tmp_path / "kept" / "made" / "x.onnx"
    monkeypatch.setattr(export, "export", lambda *a: (_ for _ in ()).throw(RuntimeError("no")))
    assert cli.main(["export", "--weights", str(ckpt), "-o", str(out)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "s.pth"]
    assert not any((tmp_path / "kept").iterdir())


def test_an_output_named_through_a_missing_folder_is_checked_where_it_is_written(
    monkeypatch, tmp_path, capsys
):
    """`-o new/../keep.onnx` replaced keep.onnx without --overwrite, and a folder there failed
    only after the export: the checks looked at the path as typed."""
    ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "s.pth")
    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "export", lambda *a: pytest.fail("exported"))
    (tmp_path / "keep.onnx").write_bytes(b"yesterday's graph")
    (tmp_path / "d.onnx").mkdir()
    for name, said in (("keep.onnx", "exists: pass --overwrite"), ("d.onnx", "is a folder")):
        out = tmp_path / "new" / ".." / name
        assert cli.main(["export", "--weights", str(ckpt), "-o", str(out)]) == 2
        assert said in capsys.readouterr().err
    assert (tmp_path / "keep.onnx").read_bytes() == b"yesterday's graph"
    assert not (tmp_path / "new").exists()


def test_a_file_replaced_by_a_rename_needs_a_folder_that_takes_a_new_file():
    """`sarn export --overwrite` of a writable graph in a folder closed to the user wrote its
    working folder there and failed with a traceback after the minute of exporting."""
    from sarn_ros.tools.options import check_writable

    comm = Path("/proc/self/comm")  # writable, in a folder no file can be made in
    if not os.access(comm, os.W_OK):
        pytest.skip("no writable /proc/self/comm")
    check_writable(comm, "-o", folder=False)  # written in place: fine
    with pytest.raises(ValueError, match=r"^-o /proc/self/comm: cannot write in /proc/self "):
        check_writable(comm, "-o", folder=False, replaced=True)


def test_a_read_only_file_a_rename_replaces_is_fine_and_a_link_to_nothing_is_named(
    tmp_path, monkeypatch
):
    """`train --export` over a 0444 weights file in the user's folder (a rename replaces it)
    was refused as not writable; `-o dl/x.onnx` under a link to nothing was mkdir's
    FileExistsError traceback."""
    from sarn_ros.tools import options

    old = tmp_path / "w.pth"
    old.write_bytes(b"weights")
    monkeypatch.setattr(options.os, "access", lambda path, mode: False)  # as for a user: 0444
    options.check_writable(old, "--export", folder=False, replaced=True)
    with pytest.raises(ValueError, match="is not writable"):
        options.check_writable(old, "-o", folder=False)  # written in place: refused
    (tmp_path / "dl").symlink_to(tmp_path / "missing")
    with pytest.raises(ValueError, match=f"^-o {tmp_path}/dl/x.onnx: {tmp_path}/dl is a link to "):
        options.check_writable(tmp_path / "dl" / "x.onnx", "-o", folder=False)


def test_int8_frames_equal_to_fp32_read_identical():
    assert export.agreement_text(float("inf")) == "identical to fp32 frames"
    assert export.agreement_text(41.26) == "vs fp32 frames 41.3 dB PSNR"


@pytest.mark.skipif(not export.has_dynamo_exporter(), reason="checked after the PyTorch version")
def test_a_graph_whose_frames_differ_from_pytorchs_is_not_written(monkeypatch, tmp_path, capsys):
    """`--height 8 --width 4096` printed "max abs error 4.86e-02" (12 grey levels at its 4 px
    half size) and wrote the graph, exit 0."""
    ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "s.pth")
    out = tmp_path / "x.onnx"
    out.write_bytes(b"yesterday's graph")

    def written(model, path, h, w, opset):
        path.write_bytes(b"a graph")

    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "export", written)
    monkeypatch.setattr(export, "validate", lambda graph, model, path, sizes: 4.86e-2)
    argv = ["export", "--weights", str(ckpt), "-o", str(out), "--height", "8", "--overwrite"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sarn export: error: onnxruntime's outputs differ from ")  # no opset
    assert err.endswith("over 9.8e-04 (a quarter of a grey level): not written")
    assert out.read_bytes() == b"yesterday's graph"


def test_the_ir_version_is_the_oldest_that_carries_the_opset(tmp_path):
    """The exporter wrote IR 10 under opset 25, which IR 13 first carries: the file was kept
    at min(10, 13) = 10, older than the opset."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    if max(row[2] for row in helper.VERSION_TABLE) < 25:
        pytest.skip("the installed onnx knows no opset 25")
    # onnx's own table: opset 17 came with IR 8 (ONNX 1.12), 21 with 10, 25 with 13
    assert [export.oldest_ir_version(o) for o in (17, 21, 25)] == [8, 10, 13]
    for opset, own in ((25, 10), (17, 10)):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        proto.ir_version = own
        export.save_checked(proto, tmp_path / "g.onnx", opset)
        assert onnx.load(str(tmp_path / "g.onnx")).ir_version == {25: 13, 17: 8}[opset]


def test_an_onnx_graph_given_as_weights_to_export_is_named_so(tmp_path, capsys):
    """The loader's words named load_model and --init, which export has not."""
    graph = tmp_path / "step.onnx"
    graph.write_bytes(b"not even onnx")
    assert cli.main(["export", "--weights", str(graph), "-o", str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"sarn export: error: --weights {graph} is an ONNX graph already; export takes PyTorch "
        "weights (.pth: sarn_recurrent, sarn_single, a sarn train run's)"
    )
    missing = tmp_path / "typo.onnx"  # was said to be an ONNX graph too
    assert cli.main(["export", "--weights", str(missing), "-o", str(tmp_path / "o.onnx")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"sarn export: error: weights file not found: {missing}"
    )


@pytest.mark.skipif(not export.has_dynamo_exporter(), reason="checked after the PyTorch version")
def test_weights_that_give_nan_are_refused_not_exported_with_an_error_of_0(tmp_path, capsys):
    """max(0.0, nan) is 0.0: a NaN in the weights was exported, 'max abs error 0.00e+00'. NaN
    weights are refused as they load; finite ones whose outputs overflow, here."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = SARN(channels=8, blocks_per_level=1, attention_stride=4)
    with torch.no_grad():
        model.decoder.out.weight.fill_(3e38)  # finite, its sums are not
    ckpt = save_checkpoint(model, tmp_path / "huge.pth")
    out = tmp_path / "huge.onnx"
    argv = ["export", "--weights", str(ckpt), "-o", str(out), "--height", "32", "--width", "32"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the exporter's own notes before
    assert err[-1] == (
        f"sarn export: error: {ckpt}: the network's outputs at 32x32 are not finite (NaN or inf)"
    )
    assert not out.exists()


@pytest.mark.skipif(not export.has_dynamo_exporter(), reason="checked after the PyTorch version")
def test_an_output_or_opset_that_cannot_work_is_refused_before_exporting(
    monkeypatch, tmp_path, capsys
):
    """Found after the minute of exporting, and the error handler's unlink then raised on a
    folder; --opset 99 also deleted the file it was to replace."""
    ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "s.pth")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "dir.onnx").mkdir()
    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "export", lambda *a: pytest.fail("exported"))
    cases = {
        str(tmp_path / "dir.onnx"): "is a folder, not a file",
        str(tmp_path / "graph"): "name it .onnx",  # else read as PyTorch weights
        str(tmp_path): f"{tmp_path} is a folder: name the graph's file, ending .onnx ({tmp_path}/",
        str(tmp_path / "a_file" / "x.onnx"): "is a file, not a folder",
    }
    for output, why in cases.items():
        assert cli.main(["export", "--weights", str(ckpt), "-o", output]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], err
    # 26 failed after the whole export, with a traceback and an error naming opset 18
    for opset in ("26", "99"):
        assert cli.main(["export", "--weights", str(ckpt), "-o", str(ckpt), "--opset", opset]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"sarn export: error: --opset {opset}: the exporter converts the network's attention "
            "to opsets up to 25 only"
        ]
    with pytest.raises(export.ExportError, match="knows opsets up to"):  # an older onnx
        export.oldest_ir_version(99)
    assert cli.main(["export", "--weights", str(ckpt), "-o", str(ckpt), "--opset", "15"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sarn export: error: --opset 15: the deformable convolutions need GridSample, opset 16 "
        "or newer"
    ]
    # the oldest opset taken and an .ONNX suffix in capitals reach the export

    def reached(_model, _path, _h, _w, opset):
        raise RuntimeError("the export was reached")

    monkeypatch.setattr(export, "export", reached)
    for output, opset in ((tmp_path / "g.onnx", "16"), (tmp_path / "G.ONNX", "18")):
        argv = ["export", "--weights", str(ckpt), "-o", str(output), "--opset", opset]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"sarn export: error: opset {opset}: the export was reached"], err
    assert ckpt.stat().st_size > 0
    # --topics and --debayer read a --calib bag: with a folder they were dropped unsaid
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    argv = ["export", "--weights", str(ckpt), "-o", str(tmp_path / "q.onnx"), "--int8"]
    assert cli.main([*argv, "--calib", str(tmp_path / "frames"), "--topics", "/cam"]) == 2
    assert "--topics, --debayer and --max-gap-s go with a --calib bag" in capsys.readouterr().err
    # a mistyped bag is not said to be no bag
    assert cli.main([*argv, "--calib", str(tmp_path / "run_bag"), "--topics", "/cam"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sarn export: error: --calib: no such file or folder: {tmp_path / 'run_bag'}"]


@pytest.mark.slow
@needs_exporter
@pytest.mark.parametrize("arch", ["recurrent", "single"])
def test_int8_export_takes_its_ranges_from_the_calibration_frames(
    tmp_path, tiny_recurrent_checkpoint, capsys, arch
):
    """Activation ranges come from what the engine feeds the graph for the frames given,
    convolution weights are stored as int8 (but the full-resolution ones that write the output),
    the file keeps the fp32 graph's opset and IR version, and the engine runs it close to the
    checkpoint."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    calib = tmp_path / "dark"
    calib.mkdir()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 101, (40, 48, 3)).astype(np.uint8) for _ in range(5)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(calib / f"{i:03d}.png"), f[..., ::-1])  # RGB as read back
    ckpt, graph_input = tiny_recurrent_checkpoint, "stack"
    if arch == "single":
        torch.manual_seed(0)
        ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "single.pth")
        graph_input = "frame"
    out = tmp_path / "out" / "int8.onnx"
    argv = ["export", "--weights", str(ckpt), "-o", str(out), "--int8"]
    argv += ["--calib", str(calib), "--calib-frames", "4", "--height", "48", "--width", "64"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "the fp32 graph it was quantised from: onnxruntime vs PyTorch" in printed
    assert "at [(48, 64), (24, 32)]" in printed  # the sizes checked (the frames' were shown)
    found = re.search(r"int8 frames vs fp32 frames ([\d.]+) dB PSNR on 4 frames \(48x40\)", printed)
    assert found, printed
    assert float(found.group(1)) > 35
    assert [p.name for p in out.parent.iterdir()] == ["int8.onnx"]
    proto = onnx.load(str(out))
    assert export.META_KEY in {p.key for p in proto.metadata_props}  # kept through int8
    assert proto.ir_version == 8
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", export.DEFAULT_OPSET)}
    inits = {t.name: t for t in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    kept = [n for n in convs if n.input[1].removeprefix("model.").startswith(quantize.FP32_CONVS)]
    assert len(kept) == 4  # input conv, one full-resolution decoder ResBlock, output conv
    for conv in convs:
        if conv in kept:  # the full-resolution ones that write the output's detail
            assert inits[conv.input[1]].data_type == onnx.TensorProto.FLOAT
            continue
        weight = producers[conv.input[1]]
        assert weight.op_type == "DequantizeLinear"
        assert inits[weight.input[0]].data_type == onnx.TensorProto.INT8
    # the first quantized activation: ReLU(input conv) of what the engine fed the graph
    first = next(n for n in convs if n.input[1].startswith("model.encoder.level1.0.conv1."))
    quant = producers[producers[first.input[0]].input[0]]
    assert quant.op_type == "QuantizeLinear"
    scale = float(numpy_helper.to_array(inits[quant.input[1]]))
    model = load_model(ckpt, deform_impl="grid_sample")
    feeds = quantize.calibration_feeds(model, [frames[:4]])  # blurred frames (+ past outputs)
    assert len(feeds) == 4 and all(graph_input in f for f in feeds)
    with torch.no_grad():
        peak = max(
            float(torch.relu(model.encoder.inp(torch.from_numpy(f[graph_input]))).max())
            for f in feeds
        )
    assert scale == pytest.approx(peak / 255, rel=1e-3)  # uint8 over [0, peak]
    moved = [np.roll(frames[1], 2 * i, axis=1) for i in range(4)]
    ref = StreamDeblurrer(ckpt, device="cpu")
    q8 = StreamDeblurrer(out, device="cpu")
    want = [o.image for i, f in enumerate(moved) for o in ref.push(f, i * 33_000_000)]
    got = [o.image for i, f in enumerate(moved) for o in q8.push(f, i * 33_000_000)]
    want += [o.image for o in ref.flush()]
    got += [o.image for o in q8.flush()]
    assert len(got) == len(want) == 4
    assert np.abs(np.stack(got).astype(int) - np.stack(want)).mean() < 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--calib", "somewhere"], "--calib and --calib-frames go with --int8"),
        (["--calib-frames", "4"], "--calib and --calib-frames go with --int8"),
        (["--debayer", "bilinear"], "--topics, --debayer and --max-gap-s go with a --calib bag"),
        (["--max-gap-s", "2"], "--topics, --debayer and --max-gap-s go with a --calib bag"),
        (["--width", "30"], "--height and --width must be multiples of 4"),
        (["--int8", "--calib", "{tmp}/none.mp4"], "--calib: "),
    ],
)
def test_int8_options_are_checked_before_exporting(
    monkeypatch, tmp_path, capsys, tiny_recurrent_checkpoint, extra, message
):
    """A wrong int8 option or calibration source is one line before the minute of exporting,
    and leaves no file."""
    monkeypatch.setattr(export, "has_dynamo_exporter", lambda: True)
    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "oldest_ir_version", lambda opset: 8)  # onnx may be absent
    monkeypatch.setattr(export, "export", lambda *a: pytest.fail("must not export"))
    out = tmp_path / "x.onnx"
    argv = ["export", "--weights", str(tiny_recurrent_checkpoint), "-o", str(out)]
    assert cli.main(argv + [e.format(tmp=tmp_path) for e in extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sarn export: error: {message}"), err
    assert not out.exists()


def test_a_calibration_bags_topics_are_chosen_with_topics(tmp_path, capsys):
    """A --calib bag's errors said "choose with --topics", an option sarn export lacked."""
    StoragePlugin = pytest.importorskip("rosbags.rosbag2").StoragePlugin
    from test_deblur_offline import write_bag

    sent = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    both = quantize.calibration_frames(tmp_path / "bag", 2, 32, 48)
    assert len(both) == 2
    (right,) = quantize.calibration_frames(tmp_path / "bag", 2, 32, 48, ["/right/image_raw"])
    assert [f.tolist() for f in right] == [f.tolist() for f in sent["right"][:2]]
    # the errors of a camera whose stamps break off name --max-gap-s: export has it too
    cut = quantize.calibration_frames(
        tmp_path / "bag", 2, 32, 48, ["/right/image_raw"], "vng", 0.01
    )
    assert [len(frames) for frames in cut] == [1, 1]
    assert cli.main(["export", "-o", str(tmp_path / "x.onnx"), "--topics", "/left/image_raw"]) == 2
    assert "--topics, --debayer and --max-gap-s go with a --calib bag" in capsys.readouterr().err


def test_calibration_frames_fit_the_export_size_and_a_memory_cap(tmp_path):
    """Calibration memory grows with the frame (a 720p export took 14.3 GB): frames shrink
    to the export size, and to 640x480 pixels whatever that is, keeping their aspect."""
    folder = tmp_path / "cam"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((720, 1280, 3), 40 * i, np.uint8))
    (big,) = quantize.calibration_frames(folder, 2, 720, 1280)
    assert len(big) == 2
    h, w = big[0].shape[:2]
    assert h * w <= 1.01 * quantize.CALIB_MAX_PIXELS and abs(w / h - 16 / 9) < 0.01  # rounding
    assert h * w > 0.95 * quantize.CALIB_MAX_PIXELS
    (small,) = quantize.calibration_frames(folder, 5, 120, 160)
    assert len(small) == 3 and small[0].shape == (90, 160, 3)
    (sample,) = quantize.calibration_frames(None, 16, 480, 640)
    assert len(sample) == 8 and sample[0].shape == (242, 304, 3)  # the bundled sample, as it is


def test_calibration_frames_too_small_for_ranges_are_refused(tmp_path, capsys):
    """Calibrated on 1x1 frames (or 4x2000 ones shrunk to 32x1) the int8 graph was said to be
    "identical to fp32 frames" on its 3 pixels and lost 0.6 dB on the sample: such frames are
    refused before the export, and a strip is not shrunk below 16 px to fit the graph."""
    from sarn_ros.offline import InputError

    sizes = {"dot": (1, 1), "wide": (4, 2000), "strip": (40, 2000), "ok": (16, 20)}
    for name, (h, w) in sizes.items():
        (tmp_path / name).mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((h, w, 3), 60 * i, np.uint8))
    with pytest.raises(InputError, match=r"a frame of 1x1 is too small .* at least 16 px a side"):
        quantize.calibration_frames(tmp_path / "dot", 2, 480, 640)
    with pytest.raises(InputError, match="a frame of 2000x4 is too small"):
        quantize.calibration_frames(tmp_path / "wide", 2, 480, 640)
    (strip,) = quantize.calibration_frames(tmp_path / "strip", 2, 480, 640)
    assert [f.shape for f in strip] == [(16, 800, 3)] * 2  # not 13x640
    (ok,) = quantize.calibration_frames(tmp_path / "ok", 2, 8, 8)  # a graph for 8x8 frames
    assert [f.shape for f in ok] == [(16, 20, 3)] * 2
    out = tmp_path / "x.onnx"
    argv = ["export", "-o", str(out), "--int8", "--calib", str(tmp_path / "dot")]
    assert cli.main(argv) == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "sarn export: error: --calib: " in err and ": a frame of 1x1 is too small" in err


def test_a_too_small_calibration_camera_names_topics_only_where_there_are_cameras_to_pick(
    tmp_path,
):
    """A one-camera bag's too-small frames said "--topics picks a bag's cameras": there was
    nothing to pick."""
    rosbag2 = pytest.importorskip("rosbags.rosbag2")
    from test_deblur_offline import STORE, bag_image, header

    from sarn_ros.offline import InputError

    # one camera in pieces (its stamps paused 5 s) is still one camera
    for cams, pause_s in ((["small"], 0), (["small"], 5), (["small", "big"], 0)):
        bag = tmp_path / f"{'-'.join(cams)}{pause_s}"
        with rosbag2.Writer(bag, version=9) as w:
            for cam in cams:
                conn = w.add_connection(
                    f"/{cam}/image_raw", "sensor_msgs/msg/Image", typestore=STORE
                )
                side = 8 if cam == "small" else 32
                for i in range(2):
                    hdr = header(i, cam)
                    hdr.stamp.sec += i * pause_s
                    msg = bag_image(np.full((side, side, 3), 50 * i, np.uint8), "rgb8", hdr)
                    w.write(conn, i + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
        with pytest.raises(InputError, match="a frame of 8x8 is too small") as err:
            quantize.calibration_frames(bag, 2, 480, 640)
        assert ("--topics" in str(err.value)) == (len(cams) > 1), str(err.value)


def test_calibration_takes_the_samples_blurred_frames_and_fits_the_height(tmp_path):
    """Without --calib the ranges come from the sample's blurred frames (what a camera gives,
    not its sharp ground truth), as many as --calib-frames asks; frames shrink to the export
    height where that binds, not only to its width."""
    from sarn_ros.tools.demo import load_sample

    blurred = load_sample()[0]
    (three,) = quantize.calibration_frames(None, 3, 480, 640)
    assert len(three) == 3
    assert all(np.array_equal(f, b) for f, b in zip(three, blurred[:3], strict=True))
    folder = tmp_path / "cam"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((720, 1280, 3), 90, np.uint8))
    (wide,) = quantize.calibration_frames(folder, 1, 90, 640)  # a strip: the height binds
    assert wide[0].shape == (90, 160, 3)


def test_calibration_records_each_steps_own_state(tiny_recurrent_checkpoint):
    """The ranges of the ConvLSTM's inputs come from the state each step was fed: the first
    step's is zero, and later ones differ (the engine updates its state tensors in place)."""
    model = load_model(tiny_recurrent_checkpoint, deform_impl="grid_sample")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    feeds = quantize.calibration_feeds(model, [frames])
    assert len(feeds) == 4 and not np.any(feeds[0]["h"]) and not np.any(feeds[0]["c"])
    assert np.any(feeds[1]["h"]) and not np.array_equal(feeds[1]["h"], feeds[3]["h"])


def test_int8_agreement_is_in_db_of_the_frames_own_bit_depth(tiny_recurrent_checkpoint, tmp_path):
    """agreement_db compares two graphs' frames with the peak of their depth: the same frames
    as 16-bit give the same dB, not 48 dB less (the 8-bit peak on 16-bit values)."""
    torch.manual_seed(3)
    other = SARN(channels=8, blocks_per_level=1)
    other_path = save_checkpoint(other, tmp_path / "other.pth")
    rng = np.random.default_rng(0)
    eight = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    sixteen = [f.astype(np.uint16) * 257 for f in eight]
    db8 = quantize.agreement_db(tiny_recurrent_checkpoint, other_path, [eight])
    db16 = quantize.agreement_db(tiny_recurrent_checkpoint, other_path, [sixteen])
    assert 5 < db8 < 60 and db16 == pytest.approx(db8, abs=0.5)
    # an 8-bit and a 16-bit camera together: between the two (joined, the 8-bit frames were
    # scored against 65535, and the figure came out 48 dB high)
    both = quantize.agreement_db(tiny_recurrent_checkpoint, other_path, [eight, sixteen])
    assert both == pytest.approx(db8, abs=0.5)


@pytest.mark.slow
@needs_exporter
def test_int8_weights_are_per_output_channel_and_activations_unsigned(
    tmp_path, tiny_recurrent_onnx, tiny_recurrent_checkpoint
):
    """README: the convolution weights are int8 per output channel (one scale per filter, not
    one per tensor, which would crush the small filters beside a large one), the activations
    uint8 (onnxruntime's CPU kernels ran signed ones slower than fp32)."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    model = load_model(tiny_recurrent_checkpoint, deform_impl="grid_sample")
    out = tmp_path / "int8.onnx"
    quantize.quantize(tiny_recurrent_onnx, out, quantize.calibration_feeds(model, [frames]))
    proto = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    checked = 0
    for conv in (n for n in proto.graph.node if n.op_type == "Conv"):
        weight = producers.get(conv.input[1])
        if weight is None or weight.op_type != "DequantizeLinear":
            continue  # a full-resolution one, kept fp32
        filters = inits[weight.input[0]].shape[0]
        assert inits[weight.input[1]].shape == (filters,), conv.name
        checked += 1
    assert checked > 10
    activations = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert len(activations) > 10
    assert all(inits[n.input[2]].dtype == np.uint8 for n in activations)


def test_int8_calibration_reads_a_bag_with_the_debayer_given(tmp_path, monkeypatch):
    """--debayer for a --calib bag: VNG was used whatever it said."""
    from sarn_ros.tools import quantize

    seen = {}

    def read_streams(source, **kwargs):
        seen.update(kwargs)
        return None, [("cam", [np.zeros((16, 16, 3), np.uint8)])]

    monkeypatch.setattr(quantize, "read_streams", read_streams)
    quantize.calibration_frames(tmp_path, 2, 8, 8, ["/cam/image_raw"], "bilinear", 3.0)
    assert seen == {
        "max_frames": 2,
        "topics": ["/cam/image_raw"],
        "debayer": "bilinear",
        "max_gap_s": 3.0,
    }


def test_int8_quantises_convolutions_per_channel_with_min_max_ranges(tmp_path, monkeypatch):
    """Min/max calibration: its memory stays small at any size (docs/measurements.md); the
    documented convolutions stay fp32."""
    pytest.importorskip("onnxruntime")
    import onnxruntime.quantization as ortq

    from sarn_ros.tools import quantize

    seen = {}
    monkeypatch.setattr(ortq, "quantize_static", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(ortq.shape_inference, "quant_pre_process", lambda *a, **kw: None)
    monkeypatch.setattr(quantize, "fp32_convs", lambda path: ["kept"])
    quantize.quantize(tmp_path / "g.onnx", tmp_path / "q.onnx", [])
    assert seen.get("calibrate_method", ortq.CalibrationMethod.MinMax) == (
        ortq.CalibrationMethod.MinMax
    )
    assert seen["per_channel"] is True and seen["nodes_to_exclude"] == ["kept"]
    assert seen["op_types_to_quantize"] == ["Conv", "ConvTranspose"]


@pytest.mark.skipif(not export.has_dynamo_exporter(), reason="checked after the PyTorch version")
def test_a_graph_written_over_keeps_its_mode(monkeypatch, tmp_path, capsys):
    """--overwrite of a 0600 graph left a 0644 one (the umask's), readable by all."""
    ckpt = save_checkpoint(SARN(channels=8, blocks_per_level=1), tmp_path / "s.pth")
    out = tmp_path / "x.onnx"
    out.write_bytes(b"yesterday's graph")
    out.chmod(0o600)
    monkeypatch.setattr(export, "find_spec", lambda name: True)
    monkeypatch.setattr(export, "export", lambda model, path, h, w, opset: path.write_bytes(b"g"))
    monkeypatch.setattr(export, "validate", lambda graph, model, path, sizes: 1e-7)
    monkeypatch.setattr(export, "record_provenance", lambda path, weights, meta, opset: None)
    argv = ["export", "--weights", str(ckpt), "-o", str(out), "--height", "8", "--overwrite"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert out.read_bytes() == b"g" and out.stat().st_mode & 0o777 == 0o600


def test_an_onnx_graph_named_pth_is_refused_as_a_graph(monkeypatch, tmp_path, capsys):
    """An exported graph saved as .pth got load_model's "name it x.onnx to run it", which
    export then refused as "an ONNX graph already"."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    graph = helper.make_graph([], "g", [], [])
    weights = tmp_path / "graph.pth"
    weights.write_bytes(helper.make_model(graph).SerializeToString())
    assert weights.read_bytes()[:1] == b"\x08" and onnx.load(str(weights)) is not None
    monkeypatch.setattr(export, "find_spec", lambda name: True)
    argv = ["export", "--weights", str(weights), "-o", str(tmp_path / "x.onnx")]
    assert cli.main(argv) == 2
    assert f"--weights {weights} is an ONNX graph already; export takes PyTorch weights" in (
        capsys.readouterr().err
    )
