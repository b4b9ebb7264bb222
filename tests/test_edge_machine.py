"""edge.machine: the CPU description recorded beside latency figures, and fit's precision choice."""
from __future__ import annotations

import platform

import pytest

from edge import machine
from edge.machine import cpu_description, cpu_flags
from trainer.model import resolve_precision

# Trimmed /proc/cpuinfo of three kinds of machine: an AMX Xeon like the one the shipped model was
# trained on (its model name is an example), an AVX2-only EPYC (as read on one) and a Raspberry Pi 3
# under a 64-bit OS (the layout its kernel prints: Features, and the board in a Model line).
XEON_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx f16c bmi1 avx2 fma bmi2
"""
PI3 = """processor\t: 0
BogoMIPS\t: 38.40
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd03

Hardware\t: BCM2835
Revision\t: a02082
Model\t\t: Raspberry Pi 3 Model B Rev 1.2
"""


@pytest.mark.parametrize("cpuinfo, expected", [
    (XEON_AMX, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (amx_int8, amx_bf16, avx512_vnni, avx512_bf16, avx512f, avx2)"),
    (EPYC_AVX2, "AMD EPYC (avx2)"),  # its numeric "model" line is not taken for a name
    (PI3, "Raspberry Pi 3 Model B Rev 1.2 (asimd)"),  # Arm: Features, and the board's Model line
])
def test_cpu_description_names_the_cpu_and_its_fast_extensions(cpuinfo, expected):
    assert cpu_description(cpuinfo) == expected


def test_cpu_description_without_cpuinfo_falls_back_to_the_architecture():
    assert cpu_description("") == (platform.machine() or "unknown CPU")
    assert cpu_flags("") == set()


@pytest.mark.parametrize("cpuinfo, policy", [(XEON_AMX, "mixed_bfloat16"), (EPYC_AVX2, "float32"), (PI3, "float32")])
def test_auto_precision_uses_bfloat16_only_where_the_cpu_has_it(monkeypatch, cpuinfo, policy):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: cpuinfo)
    assert resolve_precision("auto") == policy
    assert resolve_precision("float32") == "float32"  # an explicit choice is kept whatever the CPU


def test_without_an_argument_this_machines_cpuinfo_is_read(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: EPYC_AVX2)
    assert cpu_description() == "AMD EPYC (avx2)" and "avx2" in cpu_flags()
