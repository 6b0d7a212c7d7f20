"""An exported graph as the engine's network: the checkpoint's frames, from onnxruntime."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sarn_ros import StreamDeblurrer
from sarn_ros.checkpoint import CheckpointError
from sarn_ros.ensemble import make_engine
from sarn_ros.evaluation import deblur_sequence
from sarn_ros.onnx_net import OnnxNet, is_onnx
from sarn_ros.tools import cli

pytest.importorskip("onnxruntime")


def clip(n: int = 6, h: int = 30, w: int = 42) -> list[np.ndarray]:
    """Moving random texture at a size that needs padding to a multiple of 4."""
    base = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


def assert_same_frames(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert np.abs(g.astype(int) - w).max() <= 1  # rounding of nearly equal floats


@pytest.mark.slow
def test_onnx_engine_gives_the_checkpoints_frames(tiny_recurrent_checkpoint, tiny_recurrent_onnx):
    frames = clip()
    for future in (2, 0):
        ref = StreamDeblurrer(tiny_recurrent_checkpoint, device="cpu", future_frames=future)
        onnx = StreamDeblurrer(tiny_recurrent_onnx, device="auto", future_frames=future)
        assert onnx.deform_path == "onnxruntime" and onnx.device.type == "cpu"
        assert onnx.is_recurrent and not onnx.batch_streams
        assert_same_frames(deblur_sequence(onnx, frames, "a"), deblur_sequence(ref, frames, "a"))
    # several streams (a self-ensemble's members are streams) and grey frames
    grey = [f[..., 0] for f in frames]
    ref = make_engine(tiny_recurrent_checkpoint, self_ensemble=2, device="cpu")
    onnx = make_engine(tiny_recurrent_onnx, self_ensemble=2, device="cpu")
    assert_same_frames(deblur_sequence(onnx, grey, "g"), deblur_sequence(ref, grey, "g"))


@pytest.mark.slow
def test_onnx_engine_refuses_what_onnxruntime_does_not_do(tiny_recurrent_onnx):
    with pytest.raises(ValueError, match="fp32"):
        StreamDeblurrer(tiny_recurrent_onnx, precision="bf16")
    with pytest.raises(ValueError, match="torch_compile"):
        StreamDeblurrer(tiny_recurrent_onnx, torch_compile=True)
    for elsewhere in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match="runs on the CPU"):
            StreamDeblurrer(tiny_recurrent_onnx, device=elsewhere)
    for bogus in ("bogus", "CPU"):  # no device at all: said as for a checkpoint, not "not CPU"
        with pytest.raises(ValueError, match=r"^device must be auto, cpu, cuda or cuda:N, got"):
            StreamDeblurrer(tiny_recurrent_onnx, device=bogus)
    for cpu in ("cpu:0", torch.device("cpu", 0)):  # the CPU too: refused as "not the CPU"
        assert StreamDeblurrer(tiny_recurrent_onnx, device=cpu).device.type == "cpu"
    engine = StreamDeblurrer(tiny_recurrent_onnx)
    with pytest.raises(ValueError, match="fp32"):
        engine.precision = "fp16"  # a live change, as the node would make
    assert engine.precision == "fp32"


@pytest.mark.slow
def test_sarn_deblur_takes_an_onnx_file(tmp_path, tiny_recurrent_onnx, tiny_recurrent_checkpoint):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    for i, f in enumerate(clip(4)):
        cv2.imwrite(str(src / f"{i:02d}.png"), f)
    for name, weights in (("onnx", tiny_recurrent_onnx), ("pth", tiny_recurrent_checkpoint)):
        argv = ["deblur", str(src), "-o", str(tmp_path / name), "--weights", str(weights)]
        assert cli.main([*argv, "--device", "cpu"]) == 0
    for i in range(4):
        a, b = (cv2.imread(str(tmp_path / d / f"{i:02d}.png")) for d in ("onnx", "pth"))
        assert np.abs(a.astype(int) - b).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["deblur", "eval"])
def test_settings_an_onnx_graph_cannot_run_are_one_error_line(
    tmp_path, capsys, tiny_recurrent_onnx, tool
):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    for i, f in enumerate(clip(3)):
        cv2.imwrite(str(src / f"{i:02d}.png"), f)
    io = [str(src), "-o", str(tmp_path / "out")] if tool == "deblur" else ["--no-gt", str(src)]
    for option in (["--precision", "bf16"], ["--torch-compile"]):
        argv = [tool, *io, "--weights", str(tiny_recurrent_onnx), *option]
        assert cli.main(argv) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]  # no bar
        assert len(err) == 1 and "ONNX graph" in err[0], err


def test_a_graph_whose_path_is_not_utf8_loads_and_a_pipe_is_refused_unread(
    tmp_path, tiny_recurrent_onnx
):
    """onnxruntime refused a path that is not UTF-8 (an old FAT drive's name) with "incompatible
    constructor arguments"; a FIFO given as weights was said not to exist."""
    import os
    import shutil

    odd = tmp_path / os.fsdecode(b"\xffstep.onnx")
    shutil.copy(tiny_recurrent_onnx, odd)
    assert OnnxNet(odd).is_recurrent
    os.mkfifo(tmp_path / "pipe.onnx")
    with pytest.raises(CheckpointError, match=r"pipe\.onnx is not a regular file \(a pipe"):
        OnnxNet(tmp_path / "pipe.onnx")


def test_files_that_are_no_export_are_one_line_errors(tmp_path, tiny_recurrent_checkpoint):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    with pytest.raises(CheckpointError, match="not found"):
        OnnxNet(tmp_path / "missing.onnx")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(CheckpointError, match=r"folder\.onnx is a folder, not a weights file"):
        OnnxNet(tmp_path / "folder.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00 not a protobuf")
    with pytest.raises(CheckpointError, match="cannot load") as err:
        OnnxNet(junk)
    assert "\n" not in str(err.value)
    # a checkpoint named .onnx: told its name, as a graph named .pth is
    shutil.copy(tiny_recurrent_checkpoint, tmp_path / "ckpt.onnx")
    with pytest.raises(CheckpointError, match=r"looks like a PyTorch checkpoint \(torch\.save\); "):
        OnnxNet(tmp_path / "ckpt.onnx")
    np.savez(tmp_path / "arrays.npz", a=np.zeros(2))  # a zip, but no checkpoint
    shutil.copy(tmp_path / "arrays.npz", tmp_path / "arrays.onnx")
    with pytest.raises(CheckpointError, match="cannot load") as err:
        OnnxNet(tmp_path / "arrays.onnx")
    assert "PyTorch" not in str(err.value)
    # a deblurrer of another project: its layout would pass, its input name does not
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["y"])], "g", [x], [y])
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), other)
    with pytest.raises(CheckpointError, match=r"not a graph of `sarn export` \(inputs \['image'\]"):
        OnnxNet(other)


def identity_graph(
    path: Path, inputs: dict[str, tuple[int, list]], outputs: list[str] | None = None
) -> Path:
    """A graph of Identity nodes with these inputs (name: (element type, shape)): an output
    per input, or one per name in ``outputs`` (an input's copy each)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    ins = [helper.make_tensor_value_info(n, t, shape) for n, (t, shape) in inputs.items()]
    sources = outputs or list(inputs)
    outs = [helper.make_tensor_value_info(f"{n}_out{k}", *inputs[n]) for k, n in enumerate(sources)]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out{k}"]) for k, n in enumerate(sources)]
    model = helper.make_model(
        helper.make_graph(nodes, "g", ins, outs), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_graphs_with_the_export_names_but_not_its_layout_are_one_line_errors(tmp_path):
    """Checked by input names only, a graph of a fixed size or another type loaded, then
    failed at the first frame with onnxruntime's traceback (sarn deblur, sarn eval)."""
    from onnx import TensorProto

    f32, f16 = TensorProto.FLOAT, TensorProto.FLOAT16
    state = {"h": (f32, [1, 8, "h", "w"]), "c": (f32, [1, 8, "h", "w"])}
    cases = {
        "fixed": ({"frame": (f32, [1, 3, 8, 16])}, "fixed at 8x16"),
        "fixed_height": ({"frame": (f32, [1, 3, 8, "W"])}, "fixed at 8xW"),
        "half": ({"frame": (f16, [1, 3, "H", "W"])}, "tensor(float16)"),
        "rank": ({"frame": (f32, [3, "H", "W"])}, "expected float (N, C, H, W)"),
        "grey": ({"frame": (f32, [1, 1, "H", "W"])}, "has 1 channels, expected 3"),
        "symbolic": (
            {
                "stack": (f32, [1, 15, "H", "W"]),
                "h": (f32, [1, "C", "h", "w"]),
                "c": (f32, [1, "C", "h", "w"]),
            },
            "input h has 'C' channels",
        ),
        "state_channels": (
            {"stack": (f32, [1, 15, "H", "W"]), **state, "c": (f32, [1, 4, "h", "w"])},
            "input c has 4 channels, expected 8",
        ),
    }
    for name, (inputs, why) in cases.items():
        with pytest.raises(CheckpointError, match="not a graph of `sarn export`") as err:
            OnnxNet(identity_graph(tmp_path / f"{name}.onnx", inputs))
        assert why in str(err.value) and "\n" not in str(err.value), (name, err.value)
    # the export's inputs, other outputs: the engine's unpacking failed at the first frame
    frame = {"frame": (f32, [1, 3, "H", "W"])}
    recurrent = {"stack": (f32, [1, 15, "H", "W"]), **state}
    outputs = {
        "two_outputs": (frame, ["frame", "frame"], "2 outputs, expected 1 (the frame)"),
        "no_state_out": (recurrent, ["h"], "1 outputs, expected 3 (the frame, h and c)"),
        "stack_out": (recurrent, ["stack", "h", "c"], "output stack_out0 is a tensor(float) "),
        "h_as_frame": (recurrent, ["h", "h", "c"], "expected float (N, 3, H, W)"),
    }
    for name, (inputs, outs, why) in outputs.items():
        with pytest.raises(CheckpointError, match="not a graph of `sarn export`") as err:
            OnnxNet(identity_graph(tmp_path / f"{name}.onnx", inputs, outs))
        assert why in str(err.value) and "\n" not in str(err.value), (name, err.value)
    OnnxNet(identity_graph(tmp_path / "ok.onnx", {"frame": (f32, [1, 3, "H", "W"])}))  # taken


def test_an_onnxruntime_failure_on_a_frame_is_one_error_line(tmp_path, monkeypatch):
    """onnxruntime's errors are not RuntimeErrors: the tools' handlers missed them."""
    from onnx import TensorProto

    net = OnnxNet(
        identity_graph(tmp_path / "ok.onnx", {"frame": (TensorProto.FLOAT, [1, 3, "H", "W"])})
    )
    assert torch.equal(net(torch.ones(1, 3, 8, 8)), torch.ones(1, 3, 8, 8))

    def fails(*_args):
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        raise InvalidArgument("Got invalid dimensions for input: frame\nmore detail")

    monkeypatch.setattr(net.session, "run", fails)
    with pytest.raises(RuntimeError, match=r"^onnxruntime: .*invalid dimensions for input: frame$"):
        net(torch.ones(1, 3, 8, 8))


@pytest.mark.slow
def test_single_image_graph_gives_the_checkpoints_frames(tmp_path, tiny_recurrent_onnx):
    """(``tiny_recurrent_onnx`` only for its skip: the same exporter is needed.)"""
    import torch

    from sarn_ros.archs import SARN
    from sarn_ros.checkpoint import load_model, save_checkpoint
    from sarn_ros.tools import export

    torch.manual_seed(0)
    ckpt = save_checkpoint(
        SARN(channels=8, blocks_per_level=1, attention_stride=4), tmp_path / "s.pth"
    )
    path = tmp_path / "s.onnx"
    export.export(load_model(ckpt, deform_impl="grid_sample"), path, 32, 32, export.DEFAULT_OPSET)
    onnx = StreamDeblurrer(path, device="cpu")
    assert not onnx.is_recurrent and onnx.future_frames == 0
    ref = StreamDeblurrer(ckpt, device="cpu")
    frames = clip(3)
    assert_same_frames(deblur_sequence(onnx, frames, "s"), deblur_sequence(ref, frames, "s"))


def test_onnxruntime_threads_follow_torch_and_do_not_spin(tiny_recurrent_onnx):
    """cpu_threads reaches onnxruntime, and its idle workers leave the CPU to the robot."""
    before = torch.get_num_threads()
    threads = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            options = OnnxNet(tiny_recurrent_onnx).session.get_session_options()
            threads.append(options.intra_op_num_threads)
    finally:
        torch.set_num_threads(before)
    assert threads == [1, 2]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.slow
def test_a_state_from_frames_of_another_size_is_named(tiny_recurrent_onnx):
    """onnxruntime failed in a Reshape node ("input_shape_size == requested_shape_size was
    false") for a state kept across a change of frame size, as the PyTorch model does."""
    net = OnnxNet(tiny_recurrent_onnx)
    state = net.init_state(1, 20, 28, torch.device("cpu"), torch.float32)
    out, state = net.step(torch.rand(1, 15, 17, 25), state)  # 5x7 at 1/4 resolution, as 20x28
    assert out.shape == (1, 3, 17, 25) and state[0].shape == (1, 8, 5, 7)
    with pytest.raises(ValueError, match=r"does not fit 1 frame\(s\) of 40x40 .* init_state"):
        net.step(torch.rand(1, 15, 40, 40), state)


def test_a_graph_returning_a_state_of_another_shape_fails_that_step(
    tiny_recurrent_onnx, monkeypatch
):
    """A graph with the export's layout whose c came out 1x1 ran on: the engine's copy into
    the state buffer broadcast it, and every frame after was deblurred from a flat state."""
    net = OnnxNet(tiny_recurrent_onnx)
    state = net.init_state(1, 20, 28, torch.device("cpu"), torch.float32)
    real = net.session.run

    def flat_c(names, feed):
        out, hid, cell = real(names, feed)
        return [out, hid, cell[:, :, :1, :1]]

    monkeypatch.setattr(net.session, "run", flat_c)
    with pytest.raises(RuntimeError, match=r"returned c of shape \[1, 8, 1, 1\] for a state of "):
        net.step(torch.rand(1, 15, 20, 28), state)


def test_a_graph_returning_a_frame_of_another_size_fails_that_frame(
    tiny_recurrent_onnx, monkeypatch
):
    """A graph with the export's layout that halves its frame failed every frame with "The
    size of tensor a (97) must match the size of tensor b (50)", from deep in the engine."""
    net = OnnxNet(tiny_recurrent_onnx)
    state = net.init_state(1, 20, 28, torch.device("cpu"), torch.float32)
    real = net.session.run

    def halved(names, feed):
        out, hid, cell = real(names, feed)
        return [out[:, :, ::2, ::2], hid, cell]

    monkeypatch.setattr(net.session, "run", halved)
    with pytest.raises(
        RuntimeError, match=r"returned a frame of shape \[1, 3, 10, 14\] for \[1, 3, 20, 28\]"
    ):
        net.step(torch.rand(1, 15, 20, 28), state)


@pytest.mark.slow
def test_a_step_from_a_state_gives_the_models_frame_and_state(
    tiny_recurrent_checkpoint, tiny_recurrent_onnx
):
    """From a random state, not zeros: h and c fed the wrong way round changed the tiny
    model's frames by less than the comparisons of whole clips see."""
    from sarn_ros.checkpoint import load_model

    net = OnnxNet(tiny_recurrent_onnx)
    model = load_model(tiny_recurrent_checkpoint, deform_impl="grid_sample")
    torch.manual_seed(1)
    stack = torch.rand(1, 15, 32, 32)
    state = (torch.rand(1, 8, 8, 8), torch.rand(1, 8, 8, 8))
    out, (h, c) = net.step(stack, state)
    with torch.no_grad():
        ref, (ref_h, ref_c) = model.step(stack, state)
    for got, want in ((out, ref), (h, ref_h), (c, ref_c)):
        assert (got - want).abs().max() < 1e-4


def test_an_onnx_file_is_known_by_its_suffix_in_any_case(tmp_path):
    """`weights` names a graph of `sarn export` by its .onnx suffix, also written .ONNX (a
    file copied from a FAT stick or named on Windows); anything else is a checkpoint."""
    assert is_onnx(tmp_path / "tiny.onnx") and is_onnx(str(tmp_path / "TINY.ONNX"))
    assert not is_onnx(tmp_path / "tiny.pth") and not is_onnx("sarn_recurrent")
    assert not is_onnx(torch.nn.Identity())
