"""Which CPU this is, in the terms that decide how fast a model runs (and trains) on it.

A latency figure means little without the machine: the shipped model takes 0.33 ms a face on the
AVX-512 / AMX Xeon it was exported on and 2.6 ms on an AVX2-only AMD EPYC (both one thread,
XNNPACK), so figures are recorded beside this description.
"""
from __future__ import annotations

import platform
from pathlib import Path

# Instruction-set extensions that change int8 inference or bf16 training speed several times over,
# widest first: x86 (AMX, AVX-512 VNNI / BF16, AVX-VNNI, AVX2) and Arm (dot product, NEON).
SPEED_FLAGS = ("amx_int8", "amx_bf16", "avx512_vnni", "avx512_bf16", "avx512f", "avx_vnni", "avx2",
               "asimddp", "asimd")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The first processor's flags (x86 ``flags``, Arm ``Features``); empty where unknown."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def cpu_description(cpuinfo: str | None = None) -> str:
    """A short name and the speed-relevant extensions, e.g. ``AMD EPYC (avx2)`` or
    ``Raspberry Pi 3 Model B Rev 1.2 (asimd)``."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    name = board = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and not name:
            name = value
        elif key == "model" and not value.isdigit() and not board:  # the Pi's board line; x86's is a number
            board = value
    name = name or board or platform.machine() or "unknown CPU"
    flags = cpu_flags(text)
    fast = [f for f in SPEED_FLAGS if f in flags]
    return f"{name} ({', '.join(fast)})" if fast else name
