"""The CPU peak estimate behind `sarn bench model`'s "% of peak" column."""

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
