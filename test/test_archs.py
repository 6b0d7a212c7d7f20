"""Networks: DRM, deformable-conv fast path, attention, recurrence, sizes, checkpoints."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import sarn_ros
from sarn_ros.archs import SARN, RecurrentSARN, fusion_inputs, modules
from sarn_ros.archs.modules import (
    ConvLSTMCell,
    DeformableResidualModule,
    PooledSelfAttention,
    ResBlock,
    deform_conv3x3_grid_sample,
)
from sarn_ros.archs.sarn_arch import pad_to_multiple
from sarn_ros.checkpoint import CheckpointError, load_model, save_checkpoint
from sarn_ros.training.trainer import export_weights
from sarn_ros.weights_path import resolve_weights

TINY = {"channels": 8, "blocks_per_level": 1, "attention_stride": 4}
TINY_REC = {**TINY, "lstm_channels": 8}

deform_conv2d = modules.deform_conv2d  # None where torchvision (optional) is missing
needs_torchvision = pytest.mark.skipif(
    deform_conv2d is None, reason="torchvision is optional (README, PyTorch)"
)


def drm_as_resblock(drm: DeformableResidualModule) -> ResBlock:
    """A ResBlock with the DRM's regular conv and its deformable weights as a plain conv."""
    block = ResBlock(drm.weight.shape[0])
    with torch.no_grad():
        block.conv1.load_state_dict(drm.conv1.state_dict())
        block.conv2.weight.copy_(drm.weight)
        block.conv2.bias.copy_(drm.bias)
    return block


@pytest.mark.parametrize(
    "impl", [pytest.param("torchvision", marks=needs_torchvision), "grid_sample"]
)
@pytest.mark.parametrize("size", [(12, 17), (1, 7), (7, 1), (1, 1)])
def test_drm_with_zero_offsets_equals_resblock_and_offsets_move_output(
    impl: str, size: tuple[int, int]
) -> None:
    """Also on maps 1 px high or wide (frames up to 4 px): grid_sample with align_corners=True
    read pixel 0 for every tap off such a map, instead of zero padding."""
    torch.manual_seed(0)
    drm = DeformableResidualModule(16, impl=impl).eval()
    x = torch.randn(2, 16, *size)
    with torch.no_grad():
        ref = drm_as_resblock(drm)(x)
        torch.testing.assert_close(drm(x), ref, atol=1e-5, rtol=1e-5)
        drm.offset.bias.fill_(0.5)  # every tap shifted by half a pixel
        moved = drm(x)
    assert (moved - ref).abs().max() > 1e-2


@pytest.mark.parametrize(
    "impl", [pytest.param("torchvision", marks=needs_torchvision), "grid_sample"]
)
def test_drm_with_a_5x5_kernel_keeps_the_size_on_both_paths(impl: str) -> None:
    """torchvision's kernel was called with padding 1 whatever ``kernel_size``: a 5x5 DRM
    failed there ("offset output dims: (9, 11) - computed output dims: (7, 9)")."""
    torch.manual_seed(0)
    drm = DeformableResidualModule(4, kernel_size=5, impl=impl).eval()
    x = torch.randn(1, 4, 9, 11)
    with torch.no_grad():
        feat = torch.relu(drm.conv1(x))
        ref = x + torch.nn.functional.conv2d(feat, drm.weight, drm.bias, padding=2)
        torch.testing.assert_close(drm(x), ref, atol=1e-5, rtol=1e-5)


def test_without_torchvision_everything_runs_on_the_grid_sample_path() -> None:
    """A Jetson's torchvision is often missing or built for another torch: not needed."""
    code = (
        "import sys; sys.modules['torchvision'] = None\n"  # import torchvision now fails
        "import numpy as np, torch\n"
        "from sarn_ros import StreamDeblurrer\n"
        "from sarn_ros.archs import modules as m\n"
        "assert m.deform_conv2d is None and 'torchvision' in m.TORCHVISION_ERROR\n"
        "assert m.resolve_deform_impl('auto', torch.device('cuda')) == 'grid_sample'\n"
        "try:\n"
        "    m.resolve_deform_impl('torchvision', torch.device('cpu'))\n"
        "except RuntimeError as exc:\n"
        "    assert 'needs torchvision' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('torchvision asked for and missing must fail')\n"
        "e = StreamDeblurrer('sarn_recurrent', device='cpu', future_frames=0)\n"
        "out = e.push(np.full((24, 32, 3), 128, np.uint8), 0)\n"
        "print(out[0].image.shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(24, 32, 3)"


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.8.1", False),
        ("2.0.1+cu118", False),
        ("2.1.0a0+41361538.nv23.06", True),
        ("2.14.1", True),
    ],
)
def test_too_old_pytorch_is_named(version: str, ok: bool) -> None:
    """Ubuntu 22.04's python3-torch (1.8) would fail deep inside the network: say why at once.
    2.1 (the oldest the suite passed with) and JetPack-style version strings pass."""
    if ok:
        sarn_ros.require_torch(version)
    else:
        with pytest.raises(
            ImportError, match=rf"needs PyTorch >= 2\.1, found {re.escape(version)}"
        ):
            sarn_ros.require_torch(version)


def test_import_checks_the_pytorch_version() -> None:
    code = (
        "import sys, types; torch = types.ModuleType('torch'); torch.__version__ = '1.8.1'\n"
        "sys.modules['torch'] = torch\n"
        "from sarn_ros import SARN\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("ImportError: sarn_ros needs PyTorch >= 2.1, found 1.8.1")
    )


def test_auto_falls_back_where_torchvision_kernel_cannot_run(monkeypatch, caplog) -> None:
    """A torchvision built without CUDA imports fine but fails on the GPU: found once,
    eagerly, and 'auto' then takes the grid_sample path there ('meta' stands in for cuda)."""
    calls = []

    def no_kernel(*args, **kwargs):
        calls.append(args[0].device.type)
        raise NotImplementedError("Could not run 'torchvision::deform_conv2d' with arguments")

    monkeypatch.setattr(modules, "_KERNEL_RUNS", {})
    monkeypatch.setattr(modules, "deform_conv2d", no_kernel)
    meta = torch.device("meta")
    assert modules.resolve_deform_impl("auto", meta) == "torchvision"  # not known yet
    with caplog.at_level("WARNING"):
        assert modules.check_deform_kernel(meta) == "grid_sample"
        assert modules.check_deform_kernel(meta) == "grid_sample"  # tried once only
    assert calls == ["meta"] and "does not run on meta" in caplog.text
    assert modules.resolve_deform_impl("auto", meta) == "grid_sample"
    assert modules.check_deform_kernel(torch.device("cpu")) == "grid_sample"  # CPU: no trial
    assert calls == ["meta"]
    monkeypatch.setattr(modules, "_KERNEL_RUNS", {})
    monkeypatch.setattr(modules, "deform_conv2d", lambda *a, **k: None)
    assert modules.check_deform_kernel(meta) == "torchvision"


@pytest.fixture(params=[False, True], ids=["grid_sample", "compiled_gathers"])
def sampler(request, monkeypatch) -> None:
    """Both samplers of the grid_sample path: grid_sample (eager) and the corner gathers that
    torch.compile runs."""
    monkeypatch.setattr(modules, "_dynamo_tracing", lambda: request.param)


@pytest.mark.usefixtures("sampler")
def test_drm_under_bf16_autocast_is_still_a_plain_conv_at_zero_offsets() -> None:
    """720p is 320 px wide at 1/4 resolution: bf16 positions would collide past 256."""
    torch.manual_seed(0)
    drm = DeformableResidualModule(8, impl="grid_sample").eval()
    x = torch.randn(1, 8, 6, 320)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = drm_as_resblock(drm)(x).float() - x
        err = (drm(x).float() - x - ref).norm() / ref.norm()
    assert err < 0.02  # bf16 rounding of the GEMMs; sampling in bf16 gave 0.45


@needs_torchvision
@pytest.mark.usefixtures("sampler")
def test_grid_sample_deform_conv_matches_torchvision_forward_and_backward() -> None:
    torch.manual_seed(0)
    n, c, cout, h, w = 2, 12, 10, 9, 14
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    # Offsets up to +-3 px: many taps fall between pixels and some outside the map (zeros).
    offset = (torch.rand(n, 18, h, w, dtype=torch.float64) - 0.5) * 6
    weight = torch.randn(cout, c, 3, 3, dtype=torch.float64) * 0.2
    bias = torch.randn(cout, dtype=torch.float64)
    grads = []
    outs = []
    for fn in (
        lambda *a: deform_conv2d(*a, padding=1),
        deform_conv3x3_grid_sample,
    ):
        args = [t.clone().float().requires_grad_() for t in (x, offset, weight, bias)]
        y = fn(*args)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append([a.grad for a in args])
    scale = outs[0].abs().max()
    assert (outs[1] - outs[0]).abs().max() <= 1e-4 * scale
    for name, g_ref, g in zip(("input", "offset", "weight", "bias"), *grads, strict=True):
        assert (g - g_ref).abs().max() <= 1e-4 * g_ref.abs().max(), name


def test_untrained_attention_is_identity() -> None:
    torch.manual_seed(0)
    att = PooledSelfAttention(32, stride=4).eval()
    x = torch.randn(1, 32, 13, 19)
    with torch.no_grad():
        assert torch.equal(att(x), x)
        att.gamma.fill_(1.0)  # the module does contribute once trained
        assert not torch.allclose(att(x), x)


def attention_peak_growth(channels: int, h: int, w: int) -> int:
    """Bytes a PooledSelfAttention (stride 8) forward on (1, channels, h, w) features adds to
    a fresh process's peak RSS (ru_maxrss), kernels loaded before the baseline."""
    code = textwrap.dedent(
        f"""
        import resource, torch
        from sarn_ros.archs.modules import PooledSelfAttention
        torch.set_num_threads(1)
        att = PooledSelfAttention({channels}, stride=8).eval()
        with torch.no_grad():
            att.gamma.fill_(1.0)
            x = torch.randn(1, {channels}, {h}, {w})
            att(torch.randn(1, {channels}, 16, 16))
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            y = att(x)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert torch.isfinite(y).all()
        print((peak - base) * 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_attention_peak_memory_at_720p_is_far_below_quadratic() -> None:
    """1280x720 frame -> 180x320 features with 128 channels: full attention would need a
    57,600^2 fp32 score matrix (13.3 GB); the forward's peak RSS growth stays below 1/10."""
    peak_growth = attention_peak_growth(128, 180, 320)
    quadratic = (180 * 320) ** 2 * 4
    assert peak_growth < quadratic / 10, (peak_growth, quadratic)


def test_attention_past_the_score_budget_runs_in_query_blocks_with_the_same_result(
    monkeypatch,
) -> None:
    """On a CPU scaled_dot_product_attention holds every score (its flash kernel wants q, k
    and v of one width): a 12 MP frame asked for 35 GB. Blocks of queries give the same
    output; a 1280x720 frame still runs in one call."""
    from sarn_ros.archs import modules

    assert modules.SCORE_BUDGET >= 180 * 320 * (23 * 40)  # 720p: 1/4 features, pooled keys
    torch.manual_seed(0)
    att = PooledSelfAttention(16, stride=4).eval()
    x = torch.randn(2, 16, 23, 37)
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a: calls.append(1) or sdpa(*a))
    with torch.no_grad():
        att.gamma.fill_(1.0)
        whole = att(x)
        assert len(calls) == 1
        monkeypatch.setattr(modules, "SCORE_BUDGET", 2 * 60 * 100)  # 100 queries a block
        blocked = att(x)
    assert len(calls) == 1 + 9  # 23 * 37 = 851 queries
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-6)


def test_an_exported_attention_takes_any_size_without_a_budget_check() -> None:
    """Its size test ran on the export's symbolic sizes and became an assertion in the graph
    (frames past the budget refused by a torch.export consumer)."""
    from sarn_ros.archs import modules

    att = PooledSelfAttention(8, stride=8).eval()
    h, w = torch.export.Dim("h", min=1, max=128), torch.export.Dim("w", min=1, max=128)
    program = torch.export.export(
        att,
        (torch.randn(1, 8, 64, 64),),
        dynamic_shapes=({2: 8 * h, 3: 8 * w},),
        strict=False,
        prefer_deferred_runtime_asserts_over_guards=True,
    )
    assert str(modules.SCORE_BUDGET) not in program.graph_module.code


def test_an_exported_attention_gives_pytorchs_result_on_1_px_rows_and_columns(tmp_path) -> None:
    """A frame 4 px high has 1-px rows at 1/4 resolution: PyTorch left its keys unpooled there
    while the exported graph pools them, and `sarn deblur --weights step.onnx` gave frames up
    to 8 levels off PyTorch's."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    att = PooledSelfAttention(16, stride=8).eval()
    with torch.no_grad():
        att.gamma.fill_(1.0)  # trained: the attention counts (untrained it is the identity)
    h, w = torch.export.Dim("h", min=1, max=512), torch.export.Dim("w", min=1, max=512)
    program = torch.onnx.export(
        att, (torch.randn(1, 16, 8, 16),), dynamo=True, dynamic_shapes=({2: h, 3: w},)
    )
    program.save(str(tmp_path / "att.onnx"))
    session = ort.InferenceSession(str(tmp_path / "att.onnx"), providers=["CPUExecutionProvider"])
    for size in ((8, 16), (1, 16), (16, 1), (1, 1), (2, 9)):
        x = torch.randn(1, 16, *size)
        with torch.no_grad():
            want = att(x)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        assert abs(torch.from_numpy(got) - want).max() < 1e-5, size


def test_attention_memory_grows_linearly_past_720p() -> None:
    """A 3 MP frame's 1/4-resolution features (375x500) against 2,961 pooled keys: 2.2 GB of
    scores held at once (twice over: softmax); in blocks, a quarter of that."""
    scores = 375 * 500 * (47 * 63) * 4
    assert attention_peak_growth(16, 375, 500) < scores / 2


def test_recurrent_state_is_carried_and_restart_is_identical() -> None:
    torch.manual_seed(0)
    model = RecurrentSARN(**TINY_REC).eval()
    g = torch.Generator().manual_seed(1)
    clip = torch.rand(1, 4, 3, 20, 28, generator=g)
    other = clip.clone()
    other[:, 0] = torch.rand(1, 3, 20, 28, generator=g)
    with torch.no_grad():
        out_a, state_a = model(clip, future_frames=0)
        out_b, _ = model(other, future_frames=0)
        again, _ = model(clip, future_frames=0)
        # Same fusion stack, different carried state: the ConvLSTM state changes the output.
        stack = fusion_inputs([clip[:, 1], clip[:, 2]], clip[:, 3], [])
        fresh, _ = model.step(stack, None)
        carried, _ = model.step(stack, state_a)
    assert not torch.allclose(out_a[:, 3], out_b[:, 3], atol=1e-6)  # frame 0 still matters
    assert torch.equal(out_a, again)
    assert (fresh - carried).abs().max() > 1e-4


def test_a_clip_s_look_ahead_out_of_range_or_a_state_in_its_place_is_named() -> None:
    """``model(clip, state)`` failed deep in fusion_inputs ("unsupported operand type(s) for
    +: 'int' and 'tuple'"); future_frames 5 ran as 2 and -1 as 0."""
    model = RecurrentSARN(**TINY_REC).eval()
    clip = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        _, state = model(clip, future_frames=1)
        for wrong, said in ((state, "got tuple"), (5, "got 5"), (-1, "got -1"), (True, "got bool")):
            with pytest.raises(ValueError, match=rf"must be 0, 1 or 2 .*state=.*{said}"):
                model(clip, wrong)


def test_a_state_from_frames_of_another_size_is_named() -> None:
    """A state kept across a change of frame size failed in the ConvLSTM's torch.cat ("Sizes of
    tensors must match except in dimension 1"); frames that pad to the same size share it."""
    torch.manual_seed(0)
    model = RecurrentSARN(**TINY_REC).eval()
    with torch.no_grad():
        _, state = model.step(torch.rand(1, 15, 20, 28))
        model.step(torch.rand(1, 15, 17, 25), state)  # also 5x7 at 1/4 resolution
        for stack in (torch.rand(1, 15, 40, 40), torch.rand(2, 15, 20, 28)):
            with pytest.raises(ValueError, match=r"does not fit .* start from init_state"):
                model.step(stack, state)


def test_default_parameter_counts_match_paper_sizes() -> None:
    single = sum(p.numel() for p in SARN().parameters())
    recurrent = sum(p.numel() for p in RecurrentSARN().parameters())
    assert abs(single - 2.8e6) <= 0.2 * 2.8e6, single
    assert abs(recurrent - 3.1e6) <= 0.2 * 3.1e6, recurrent
    assert recurrent > single


@pytest.mark.parametrize("num_drm", [0, 3, 6])
@pytest.mark.parametrize("attention", [True, False])
def test_variants_build_and_run(num_drm: int, attention: bool) -> None:
    torch.manual_seed(0)
    model = RecurrentSARN(**TINY_REC, num_drm=num_drm, attention=attention).eval()
    drms = [m for m in model.modules() if isinstance(m, DeformableResidualModule)]
    atts = [m for m in model.modules() if isinstance(m, PooledSelfAttention)]
    assert len(drms) == num_drm
    assert len(atts) == int(attention)
    with torch.no_grad():
        out, _ = model(torch.rand(1, 2, 3, 19, 23), future_frames=1)
        single = SARN(**TINY, num_drm=num_drm, attention=attention).eval()(torch.rand(1, 3, 19, 23))
    assert out.shape == (1, 2, 3, 19, 23)
    assert single.shape == (1, 3, 19, 23)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(1, 1), (321, 481), (5, 3)])
def test_any_size_round_trips(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert SARN(**TINY).eval()(x).shape == x.shape


def test_bf16_autocast_close_to_fp32() -> None:
    torch.manual_seed(0)
    model = SARN(**TINY).eval()
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert (low.float() - ref).abs().max() < 0.1


def test_checkpoint_round_trip(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = RecurrentSARN(**TINY_REC, num_drm=3).eval()
    path = save_checkpoint(model, tmp_path / "m.pth", meta={"steps": 7})
    loaded = load_model(path)
    assert type(loaded) is RecurrentSARN
    assert loaded.cfg == model.cfg
    assert loaded.meta == {"steps": 7}
    assert not loaded.training
    clip = torch.rand(1, 2, 3, 16, 20)
    with torch.no_grad():
        assert torch.equal(model(clip)[0], loaded(clip)[0])
    # fp32 whatever the model runs in, found under ~, and never half written
    save_checkpoint(model.half(), tmp_path / "half.pth")
    stored = torch.load(tmp_path / "half.pth", weights_only=True)["state_dict"].values()
    assert {t.dtype for t in stored if t.is_floating_point()} == {torch.float32}
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_model("~/m.pth").cfg == model.cfg

    def cut_short(obj, target):
        Path(target).write_bytes(b"PK")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path)
    assert load_model(path).meta == {"steps": 7}  # the earlier file, whole


def flip_a_tensor_byte(path: Path) -> bytes:
    """The bytes of the torch zip ``path`` with one byte of its largest tensor inverted."""
    with zipfile.ZipFile(path) as archive:
        name = max(archive.infolist(), key=lambda i: i.file_size).filename
        tensor = archive.read(name)
    data = bytearray(path.read_bytes())
    data[data.find(tensor) + len(tensor) // 2] ^= 0xFF
    return bytes(data)


def test_checkpoint_errors_are_clear(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    good = save_checkpoint(SARN(**TINY), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": torch.zeros(3)}, foreign)
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint\n")
    pickled = tmp_path / "pickled.pth"  # torch's own text advised weights_only=False
    torch.save({"args": argparse.Namespace(lr=1)}, pickled)
    flipped = tmp_path / "flipped.pth"  # a bad copy: torch.load checks no CRC and loaded it
    flipped.write_bytes(flip_a_tensor_byte(good))
    empty = tmp_path / "empty.pth"  # an interrupted copy: torch says "EOFError: " and no more
    empty.touch()
    resume = tmp_path / "last.pt"  # what `sarn train` writes to resume, beside best.pth
    torch.save({"model": {}, "opt": {}, "step": 3}, resume)
    ckpt = torch.load(good, weights_only=True)
    newer, no_config = tmp_path / "newer.pth", tmp_path / "no_config.pth"
    torch.save({**ckpt, "config": {**ckpt["config"], "new_option": 1}}, newer)
    torch.save({k: v for k, v in ckpt.items() if k != "config"}, no_config)
    future, unet = tmp_path / "future.pth", tmp_path / "unet.pth"  # another format or network
    torch.save({**ckpt, "format": "sarn_ros.checkpoint/2"}, future)
    torch.save({**ckpt, "arch": "UNet"}, unet)
    graph = tmp_path / "step.onnx"  # `sarn export`'s: torch said "Unsupported operand 8"
    graph.write_bytes(b"\x08\x08\x12\x07pytorch")
    unnamed = tmp_path / "step"  # the same graph named otherwise, by an older sarn export
    unnamed.write_bytes(graph.read_bytes())
    shouted = tmp_path / "STEP.ONNX"  # copied from a FAT drive: the suffix is the same
    shouted.write_bytes(graph.read_bytes())
    cases = {
        graph: r"step.onnx is an ONNX graph \(sarn export\): it runs as the weights of the node",
        unnamed: r"it looks like an ONNX graph \(sarn export\); name it step.onnx to run it in "
        r"the node, the sarn tools and StreamDeblurrer \(not as PyTorch weights: load_model, "
        r"--init\)$",
        shouted: r"STEP.ONNX is an ONNX graph \(sarn export\)",
        tmp_path / "missing.pth": "not found",
        tmp_path: "is a folder, not a weights file",  # it said "not found"
        # torch said "[Errno 22] Invalid argument" (2.14) or "failed finding central directory"
        truncated: r"cannot read .*: it is cut short: its zip has no end \(a copy or download ",
        foreign: "not a sarn_ros checkpoint",
        future: r"not a sarn_ros checkpoint \(expected format sarn_ros.checkpoint/1\): written "
        r"by another sarn_ros \(format sarn_ros.checkpoint/2, network SARN; this one reads SARN, "
        r"RecurrentSARN\)$",
        unet: r"not a sarn_ros checkpoint .*: written by another sarn_ros \(format "
        r"sarn_ros.checkpoint/1, network UNet;",
        text: r"cannot read .*: not a PyTorch weights file \(neither a zip nor a pickle of ",
        empty: r"not a readable PyTorch weights file \(EOFError: the file ends early\)",
        flipped: r"it is damaged \(.*/data/\d+ does not match its checksum\): copy or download",
        pickled: "holds objects other than tensors and plain values .*argparse.Namespace",
        resume: "resume state, not weights: use best.pth",
        newer: "config does not fit SARN: .*new_option",
        no_config: "no model config",
    }
    for path, reason in cases.items():
        with pytest.raises(CheckpointError, match=reason) as info:
            load_model(path)
        assert "\n" not in str(info.value) and "miniz" not in str(info.value)
    with pytest.raises(CheckpointError, match="no weights file or packaged weights named"):
        load_model("no_such_packaged_weights")
    for empty in ("", " "):  # Path("") is ".": "weights . is a folder"
        with pytest.raises(CheckpointError, match=r"^weights: an empty path \(a weights file or"):
            load_model(empty)
    # a plain pickle: torch's "Detected pickle protocol 4" lines came ahead of the refusal
    import pickle
    import warnings

    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a readable PyTorch weights file"):
            load_model(plain)
    assert [str(w.message) for w in seen] == []
    # a file name with a suffix is a path, never a packaged name, even without a folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"^weights file not found: missing\.pth$"):
        load_model("missing.pth")
    (tmp_path / "runs").mkdir()  # a bare folder name is no packaged name: it is the folder
    with pytest.raises(CheckpointError, match=r"^weights runs is a folder, not a weights file$"):
        load_model("runs")
    with pytest.raises(ValueError, match="deform impl must be one of"):  # not at the first frame
        load_model(good, deform_impl="bogus")
    bare = tmp_path / "bare.pth"  # metadata is optional
    torch.save({k: v for k, v in ckpt.items() if k != "meta"}, bare)
    assert load_model(bare).meta == {}
    # and `sarn train --export` ships it (it raised KeyError: 'meta')
    assert export_weights(bare, tmp_path / "shipped.pth") == {"storage": "fp16"}
    (tmp_path / "shipped.pth").chmod(0o600)  # written over, it stays the user's alone
    export_weights(bare, tmp_path / "shipped.pth")
    assert (tmp_path / "shipped.pth").stat().st_mode & 0o777 == 0o600


def test_a_folder_named_like_packaged_weights_does_not_hide_them(tmp_path, monkeypatch) -> None:
    (tmp_path / "sarn_single").mkdir()  # e.g. a training run directory
    monkeypatch.chdir(tmp_path)
    assert isinstance(load_model("sarn_single"), SARN)
    # nor a file: the node's default weights were a copy of the single-image file left in
    # its working folder, run unsaid, or a text file there that failed it
    shutil.copy(resolve_weights("sarn_single"), tmp_path / "sarn_recurrent")
    assert isinstance(load_model("sarn_recurrent"), RecurrentSARN)
    assert resolve_weights("sarn_recurrent") != tmp_path / "sarn_recurrent"
    assert isinstance(load_model("./sarn_recurrent"), SARN)  # that file, named as a path
    (tmp_path / "sarn_recurrent").unlink()  # named as a path, it is that path or nothing
    with pytest.raises(CheckpointError, match=r"^weights file not found: sarn_recurrent$"):
        resolve_weights("./sarn_recurrent")
    with pytest.raises(CheckpointError, match=r"^weights sarn_single is a folder"):
        resolve_weights("sarn_single/")


def refused_naming_the_file(tmp_path: Path, cases: dict[str, tuple[dict, str]]) -> None:
    """Each checkpoint of ``cases`` (file name: (dict, reason regex)) saved and refused by
    load_model in one line that starts with its path."""
    for name, (ckpt, reason) in cases.items():
        torch.save(ckpt, tmp_path / name)
        with pytest.raises(CheckpointError) as info:
            load_model(tmp_path / name)
        assert "\n" not in str(info.value)
        assert re.match(re.escape(str(tmp_path / name)) + ": " + reason, str(info.value)), name


def test_weights_that_do_not_fit_are_one_line_naming_the_file_and_the_misfit(tmp_path) -> None:
    """torch's load_state_dict message has a line per key, and its first line (all the node
    prints) only said loading failed: a file from the other architecture, or a config whose
    sizes are not those of the weights, must say which file and what does not fit."""
    torch.manual_seed(0)
    single = torch.load(save_checkpoint(SARN(**TINY), tmp_path / "s.pth"), weights_only=True)
    rec = torch.load(
        save_checkpoint(RecurrentSARN(**TINY_REC), tmp_path / "r.pth"), weights_only=True
    )
    cases = {
        "recurrent_weights.pth": (
            {**single, "state_dict": rec["state_dict"]},
            # three of the four named, the rest marked
            r"weights do not fit SARN: 4 unexpected \(lstm\.gates\.weight, [\w.]+, [\w.]+, "
            r"\.\.\.\); 1 of another "
            r"shape \(encoder\.inp\.weight: \[8, 15, 3, 3\] in the file, \[8, 3, 3, 3\] in the "
            r"model\)",
        ),
        "labelled_recurrent.pth": (
            {**single, "arch": "RecurrentSARN", "config": rec["config"]},
            r"weights do not fit RecurrentSARN: 4 missing \(lstm\.gates\.weight, ",
        ),
        "one_missing.pth": (  # loading is strict even where every shape fits
            {
                **single,
                "state_dict": {
                    k: v for k, v in single["state_dict"].items() if k != "decoder.out.bias"
                },
            },
            r"weights do not fit SARN: 1 missing \(decoder\.out\.bias\)$",
        ),
        "one_extra.pth": (
            {**single, "state_dict": {**single["state_dict"], "extra.weight": torch.zeros(1)}},
            r"weights do not fit SARN: 1 unexpected \(extra\.weight\)$",
        ),
        "wider_config.pth": (
            {**single, "config": {**single["config"], "channels": 16}},
            r"weights do not fit SARN: \d+ of another shape \(encoder\.inp\.weight: ",
        ),
    }
    refused_naming_the_file(tmp_path, cases)


class RunsCode:
    """A pickle that runs a command when loaded without weights_only."""

    def __reduce__(self):
        return (os.system, ("true",))


def test_weights_that_load_but_would_deblur_wrongly_are_refused(tmp_path, monkeypatch) -> None:
    """NaN weights gave black frames and an int tensor was rounded into the model, both with
    exit 0; a config value of the wrong type gave a traceback; a pickle that runs code was
    refused with torch's advice to load it with weights_only=False."""
    torch.manual_seed(0)
    ckpt = torch.load(save_checkpoint(SARN(**TINY), tmp_path / "s.pth"), weights_only=True)
    sd = ckpt["state_dict"]
    key = "decoder.out.weight"
    cases = {
        "nan.pth": (
            {**ckpt, "state_dict": {**sd, key: torch.full_like(sd[key], float("nan"))}},
            rf"weights of SARN hold NaN or inf in 1 tensor \({key}\): the training",
        ),
        "inf.pth": (
            {**ckpt, "state_dict": {**sd, key: sd[key] / 0}},
            r"weights of SARN hold NaN or inf in 1 tensor",
        ),
        "int.pth": (
            {**ckpt, "state_dict": {**sd, key: (sd[key] * 10).int()}},
            rf"weights of SARN hold 1 tensor not of floats \({key}: torch.int32\)",
        ),
        "complex.pth": (
            {**ckpt, "state_dict": {**sd, key: sd[key].to(torch.complex64)}},
            r"weights of SARN hold 1 tensor not of floats",
        ),
        "typed.pth": (
            {**ckpt, "config": {**ckpt["config"], "channels": "8"}},
            r"config does not fit SARN: ",
        ),
        "negative.pth": (
            {**ckpt, "config": {**ckpt["config"], "channels": -8}},
            r"config does not fit SARN: ",
        ),
        "ddp.pth": (
            {**ckpt, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
            r"weights do not fit SARN: .*the file's keys start with 'module.', as a "
            r"DataParallel or DDP wrapper's state_dict does",
        ),
    }
    refused_naming_the_file(tmp_path, cases)
    torch.save({"x": RunsCode()}, tmp_path / "code.pth")
    with pytest.raises(
        CheckpointError, match=r"holds objects other than tensors .*\(posix\.system\)"
    ):
        load_model(tmp_path / "code.pth")
    for foreign in ({"params_ema": sd}, {"state_dict": sd}, sd):  # BasicSR, Lightning, bare
        torch.save(foreign, tmp_path / "foreign.pth")
        with pytest.raises(CheckpointError, match=r"it looks like a bare state_dict; load it"):
            load_model(tmp_path / "foreign.pth")
    torch.save({f"_orig_mod.{k}": v for k, v in sd.items()}, tmp_path / "compiled.pth")
    with pytest.raises(
        CheckpointError,
        match=r"bare state_dict \(its keys start with '_orig_mod\.', a torch\.compile wrapper's: "
        r"strip that first\); load it",
    ):
        load_model(tmp_path / "compiled.pth")


def test_a_packaged_name_misspelt_or_with_pth_is_named(tmp_path, monkeypatch) -> None:
    from sarn_ros.checkpoint import PACKAGED

    shipped = Path(sarn_ros.__file__).resolve().parent.parent / "weights"
    assert sorted(PACKAGED) == sorted(p.stem for p in shipped.glob("*.pth"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"named 'SARN_recurent' \(did you mean sarn_recur"):
        load_model("SARN_recurent")
    with pytest.raises(CheckpointError, match=r"packaged: sarn_recurrent, sarn_single: "):
        load_model("my_weights")
    with pytest.raises(CheckpointError, match=r"named without \.pth: sarn_single\)$"):
        load_model("sarn_single.pth")


def test_convlstm_remembers_by_default_and_outputs_o_times_tanh_c() -> None:
    """With no input the untrained cell keeps sigmoid(1) of its memory (forget-gate bias 1:
    remember by default early in training) and outputs o * tanh(c) (Shi et al. 2015), which
    an input gate of sigmoid(0) adds nothing to here (tanh(0) = 0)."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3)
    c0 = torch.full((1, 3, 4, 5), 4.0)
    with torch.no_grad():
        h, c = cell(torch.zeros(1, 2, 4, 5), (torch.zeros(1, 3, 4, 5), c0))
    torch.testing.assert_close(c, torch.sigmoid(torch.tensor(1.0)) * c0)
    torch.testing.assert_close(h, torch.sigmoid(torch.tensor(0.0)) * torch.tanh(c))


def test_fusion_stack_order_and_substitutes_for_missing_neighbours() -> None:
    """[out_{t-2}, out_{t-1}, blur_t, blur_{t+1}, blur_{t+2}]: the two latest previous
    outputs (oldest first) clamped to [0, 1], the two nearest future frames; a missing output
    is the oldest one there is (or the current frame), a missing future frame the latest one
    there is (or the current frame)."""

    def f(v: float) -> torch.Tensor:
        return torch.full((1, 3, 2, 2), v)

    def parts(stack: torch.Tensor) -> list[float]:
        assert stack.shape == (1, 15, 2, 2)
        return [round(float(stack[:, 3 * k : 3 * k + 3].mean()), 3) for k in range(5)]

    full = fusion_inputs([f(0.1), f(0.2), f(0.3)], f(0.5), [f(0.6), f(0.7), f(0.8)])
    assert parts(full) == [0.2, 0.3, 0.5, 0.6, 0.7]
    assert parts(fusion_inputs([f(0.3)], f(0.5), [f(0.6)])) == [0.3, 0.3, 0.5, 0.6, 0.6]
    assert parts(fusion_inputs([], f(0.5), [])) == [0.5] * 5
    assert parts(fusion_inputs([f(-0.5), f(1.5)], f(0.5), [])) == [0.0, 1.0, 0.5, 0.5, 0.5]


def test_outputs_are_the_blurred_frame_plus_the_predicted_residual() -> None:
    """Both networks add their residual to the (current) blurred frame: with the last conv
    zeroed the output is that frame, also at a size that is padded inside."""
    torch.manual_seed(0)
    single, rec = SARN(**TINY).eval(), RecurrentSARN(**TINY_REC).eval()
    g = torch.Generator().manual_seed(3)
    prev, cur, nxt = (torch.rand(1, 3, 9, 13, generator=g) for _ in range(3))
    with torch.no_grad():
        for model in (single, rec):
            model.decoder.out.weight.zero_()
            model.decoder.out.bias.zero_()
        torch.testing.assert_close(single(cur), cur)
        out, _ = rec.step(fusion_inputs([prev], cur, [nxt]))
    torch.testing.assert_close(out, cur)


def test_padding_replicates_the_last_row_and_column() -> None:
    x = torch.rand(1, 3, 5, 7)
    padded, h, w = pad_to_multiple(x)
    assert (h, w) == (5, 7) and padded.shape == (1, 3, 8, 8)
    assert torch.equal(padded[..., :5, :7], x)
    assert torch.equal(padded[..., 5:, :7], x[..., 4:5, :].expand(1, 3, 3, 7))
    assert torch.equal(padded[..., :, 7:], padded[..., :, 6:7])


def test_a_clip_looks_ahead_exactly_future_frames() -> None:
    """forward(clip, future_frames=2) deblurs each frame with the two frames after it, as the
    streaming engine does: frame 0 depends on frame 2, not on frame 3."""
    torch.manual_seed(0)
    model = RecurrentSARN(**TINY_REC).eval()
    g = torch.Generator().manual_seed(2)
    clip = torch.rand(1, 4, 3, 12, 16, generator=g)
    with torch.no_grad():
        first = model(clip, future_frames=2)[0][:, 0]
        changed = []
        for k in (2, 3):
            other = clip.clone()
            other[:, k] = torch.rand(1, 3, 12, 16, generator=g)
            changed.append(model(other, future_frames=2)[0][:, 0])
    assert (changed[0] - first).abs().max() > 1e-4
    assert torch.equal(changed[1], first)


def test_the_decoder_keeps_full_resolution_detail_through_its_skip() -> None:
    """Additive skips: with the upsampling path from 1/2 resolution zeroed, the full-resolution
    encoder features still shape the residual, so two frames get two residuals."""
    torch.manual_seed(0)
    model = SARN(**TINY).eval()
    g = torch.Generator().manual_seed(4)
    a, b = (torch.rand(1, 3, 12, 16, generator=g) for _ in range(2))
    with torch.no_grad():
        model.decoder.up1.weight.zero_()
        model.decoder.up1.bias.zero_()
        residuals = [model(x) - x for x in (a, b)]
    assert (residuals[0] - residuals[1]).abs().max() > 1e-4
