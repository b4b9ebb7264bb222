"""bench/pi3_cost.py: the instruction-counting QEMU plugin counts, and the schedule arithmetic.

The plugin test builds bench/pi3/insncount.c and runs a tiny static aarch64 program under
qemu-aarch64: N loop iterations between two marker syscalls must count N times the loop body more
than 0 iterations do. It needs gcc, aarch64-linux-gnu-gcc and qemu-aarch64 (Debian: gcc,
gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user) but not the arm64 root; where they are
missing it skips, except under CI=true, where .ci/run installs them.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import unavailable

REPO = Path(__file__).resolve().parent.parent

LOOP_C = r"""
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    volatile long x = 0;
    syscall(0x4d43, 1);
    for (long i = 0; i < n; i++) x += i;
    syscall(0x4d43, 2);
    return 0;
}
"""


def load_bench():
    spec = importlib.util.spec_from_file_location("pi3_cost", REPO / "bench" / "pi3_cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pi3_cost"] = module          # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def need(path_or_tool: str, package: str) -> str:
    found = path_or_tool if os.access(path_or_tool, os.X_OK) else shutil.which(path_or_tool)
    if found:
        return found
    unavailable(f"{path_or_tool} is not installed (apt-get install {package})")


def test_plugin_counts_more_for_more_iterations(tmp_path):
    bench = load_bench()
    need("gcc", "gcc")
    cross = need("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    qemu = need(bench.QEMU, "qemu-user")
    plugin = bench.build_plugin(tmp_path / "insncount.so")
    (tmp_path / "loop.c").write_text(LOOP_C)
    subprocess.run([cross, "-O1", "-static", "-o", str(tmp_path / "loop"), str(tmp_path / "loop.c")], check=True)

    def marked(n: int) -> tuple[int, int]:
        out = tmp_path / f"counts-{n}.txt"
        subprocess.run([qemu, "-cpu", "cortex-a53", "-plugin", f"{plugin},out={out}", str(tmp_path / "loop"), str(n)],
                       check=True, timeout=60)
        marks, total = bench.parse_counts(out)
        return marks[2] - marks[1], total

    (zero, zero_total), (small, _), (large, large_total) = marked(0), marked(1000), marked(100_000)
    assert zero < small < large
    per_small, per_large = (small - zero) / 1000, (large - zero) / 100_000
    assert 3 <= per_large <= 20                                      # a handful of instructions a turn
    assert abs(per_small - per_large) / per_large < 0.01             # the same loop body, counted alike
    # Outside the markers the runs differ only by parsing a longer argv[1]: a few dozen instructions.
    assert abs((large_total - zero_total) - (large - zero)) < 1000


def test_schedules_and_cpi():
    bench = load_bench()
    stages = {"gray": {"detection_frame": 1.0, "other_frame": 0.0},
              "detect": {"detection_frame": 79.0, "other_frame": 0.0},
              "classify": {"detection_frame": 10.0, "other_frame": 10.0}}
    serial = bench.serial(stages, every_n=8)
    assert serial["worst_frame"] == 90.0 and serial["other_frame"] == 10.0
    assert serial["per_frame"] == pytest.approx((90 + 7 * 10) / 8)
    setup = bench.Setup(every_n=2, width=640, upsample=1, min_face=32, views=2, classify_per_frame=1,
                        views_across_frames=True, region_scans=True, full_scan_s=2.0, detection="thread",
                        camera_fps=30.0)
    # Rounds shorter than two frames start every 2nd frame; a full scan every 2 s.
    quick = bench.simulate(frame_ms=50.0, region_ms=40.0, full_ms=80.0, setup=setup, seconds=20.0)
    assert quick["frames_per_round"] == pytest.approx(2.0, abs=0.1)
    assert quick["full_rounds_share"] == pytest.approx(1 / 20, abs=0.01)     # 20 rounds in 2 s, one full
    # A round longer than the frames it may take: the thread is always busy and rounds wait for it.
    slow = bench.simulate(frame_ms=50.0, region_ms=240.0, full_ms=1000.0, setup=setup, seconds=60.0)
    assert slow["busy"] > 0.95 and slow["frames_per_round"] > 5
    # a moving face: the round in flight, then a region round, then one frame
    assert slow["appear_to_classified_ms"] >= 1000.0 + 240.0 + 50.0
    cpi = bench.cpi_band({"mobilenet_v2": {"instructions": 132_000_000}}, True, None)
    assert cpi["calibrated"] == [1.05, 1.241] and (cpi["low"], cpi["high"]) == (1.05, 1.25)
    assert bench.ms_of(1.2e9, 1.0) == 1000.0


def test_parse_counts_needs_a_total(tmp_path):
    bench = load_bench()
    path = tmp_path / "counts.txt"
    path.write_text("mark 0 10 12\nmark 1 30 33\ntotal 40\n")
    assert bench.parse_counts(path) == ({0: 12, 1: 33}, 40)
    path.write_text("mark 0 10 12\n")
    with pytest.raises(bench.BenchError):
        bench.parse_counts(path)
