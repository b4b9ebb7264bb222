"""The live view's cost on the Pi-3 cost model (bench/pi3_cost.py, docs/pi3-cost-model.md).

    sudo nice -n 10 .venv/bin/python bench/live_cost.py [--json] [--faces 3] [--fps 2] [--quality 70] [--fresh]

Counts, in the arm64 root under qemu-aarch64 -cpu cortex-a53, through edge.service.live's own code
on the cost model's 640x480 frame (bench/pi3/stages.py):

- live_frame: what the live thread does for one frame while someone watches: boxes, track ids
  and labels drawn on a BGR copy, JPEG-encoded;
- live_handover: the frame loop's share of a frame that is due (the copy and hand-over);
- live_idle: the daemon's test before LiveView.offer on a frame while nobody watches;
  live_check: LiveView.offer when its once-a-second stat of live.wanted is due;
- scene: a logged face's scene thumbnail (logging.scene_width = 160): shrunk, box drawn, JPEG;
- noop: an empty call, the bench loop's own cost a call, subtracted from the others.

and prints instructions, Pi-3 ms (the calibrated CPI band) and x86 ms for each, and the cost a
second with one viewer at ``--fps``. Only these stages are counted (and MobileNetV2 for the CPI
band, from the cache); it shares pi3_cost's cache and its counting corner is its own.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pi3_cost

pi3_cost.GUEST_DIR = ".pi3-live"       # not the corner a pi3_cost run beside it may be using


def items(faces: int, quality: int) -> list:
    it = pi3_cost.item
    return [it("live_frame", 10, faces=faces, quality=quality), it("live_handover", 50, faces=faces),
            it("live_idle", 2000), it("live_check", 200), it("scene", 20, width=160), it("noop", 2000),
            it("mobilenet_v2", 3)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=3, choices=(0, 1, 2, 3))
    parser.add_argument("--fps", type=float, default=2.0, help="[live] fps (default 2, the config's default)")
    parser.add_argument("--quality", type=int, default=70, help="[live] quality (default 70)")
    parser.add_argument("--frame-fps", type=float, default=22.0,
                        help="the frame loop's rate, for the idle cost a second (default 22: the cost model's)")
    parser.add_argument("--model", type=Path, default=pi3_cost.REPO / "models" / "default.tflite")
    parser.add_argument("--root", type=Path, default=pi3_cost.DEFAULT_ROOT)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from edge.contracts.modelfile import sha256_of

    try:
        plan = items(args.faces, args.quality)
        inputs = pi3_cost.prepare_inputs(args.model, calibrate=True)
        counted, info = pi3_cost.counts(plan, sha256_of(args.model), inputs, args.root.resolve(), args.fresh)
        x86 = pi3_cost.time_on_host(plan[:-1], inputs)
    except pi3_cost.BenchError as exc:
        print(f"live_cost: error: {exc}", file=sys.stderr)
        return 2
    cpi = pi3_cost.cpi_band({"mobilenet_v2": counted[plan[-1].key]}, True, None)
    rows = {}
    noop = counted[pi3_cost.item("noop", 2000).key]["instructions"]     # the bench loop's own call
    for it in plan[:-1]:
        if it.stage == "noop":
            continue
        n = max(0, counted[it.key]["instructions"] - noop)
        rows[it.stage] = {"instructions": n, "pi3_ms": [round(pi3_cost.ms_of(n, c), 4) for c in (cpi["low"], cpi["high"])],
                          "x86_ms": round(x86[it.key], 4), "note": counted[it.key].get("note", "")}
    watched = rows["live_frame"]["instructions"] + rows["live_handover"]["instructions"]
    idle = rows["live_idle"]["instructions"] * args.frame_fps + rows["live_check"]["instructions"]
    result = {"faces": args.faces, "fps": args.fps, "quality": args.quality, "cpi": cpi, "stages": rows,
              "call_overhead_instructions": noop,
              "one_viewer_per_s": {"instructions": round(watched * args.fps),
                                   "pi3_ms": [round(pi3_cost.ms_of(watched * args.fps, c), 2)
                                              for c in (cpi["low"], cpi["high"])],
                                   "frame_loop_ms": [round(pi3_cost.ms_of(rows["live_handover"]["instructions"]
                                                                          * args.fps, c), 3)
                                                     for c in (cpi["low"], cpi["high"])]},
              "nobody_watching_per_s": {"instructions": round(idle), "frame_fps": args.frame_fps,
                                        "pi3_ms": [round(pi3_cost.ms_of(idle, c), 4) for c in (cpi["low"], cpi["high"])]},
              "run": {"counted": info["counted"], "cached": info["cached"], "check": info["check"],
                      "stale": info["stale"]}}
    print(f"CPI {cpi['low']}-{cpi['high']} at 1.2 GHz; {args.faces} faces, quality {args.quality}; "
          f"instructions net of the bench loop's own call ({noop:,})")
    for stage, row in rows.items():
        print(f"  {stage:14s} {row['instructions'] / 1e6:10.3f} M  Pi-3 {row['pi3_ms'][0]:.3f}-{row['pi3_ms'][1]:.3f} ms"
              f"  x86 {row['x86_ms']:.3f} ms  ({row['note']})")
    w = result["one_viewer_per_s"]
    print(f"one viewer at {args.fps:g} fps: {w['instructions'] / 1e6:.1f} M instructions a second, "
          f"{w['pi3_ms'][0]}-{w['pi3_ms'][1]} ms of a Pi-3 core a second (frame loop: "
          f"{w['frame_loop_ms'][0]}-{w['frame_loop_ms'][1]} ms of it)")
    n = result["nobody_watching_per_s"]
    print(f"nobody watching, {args.frame_fps:g} frames a second: {n['instructions']:,} instructions a second, "
          f"{n['pi3_ms'][0]}-{n['pi3_ms'][1]} ms")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
