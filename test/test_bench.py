"""`sarn bench model`: the CPU peak estimate behind "% of peak", and the compile mode column."""

import pytest

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


def test_flop_count_is_counted_and_grows_with_pixels():
    """GFLOPs/frame in the bench table; torch 2.1's counter saw nothing under inference_mode."""
    from sarn_ros.tools.bench_model import count_flops

    small, large = count_flops("recurrent", 64, 64), count_flops("recurrent", 128, 128)
    assert small > 1e8  # ~3.2 GFLOPs at 64x64 (242 at 640x480)
    assert large / small == pytest.approx(4.0, rel=0.05)
