"""moodcam-train export runs/NAME --out models/NAME [--force]

Writes models/NAME.tflite (full-integer int8) + models/NAME.json (labels, crop parameters,
quantization, sha256, the run's data summary and hyper-parameters, float vs int8 validation
accuracy and agreement, single-threaded latency). Refuses, writing nothing, when int8 loses more
than --max-drop points of validation accuracy against float, unless --force.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.argpaths import need_input, need_output
from edge.cliutil import report_error
from trainer.export import ExportRefused, export_run

HELP = "export a run as int8 .tflite + JSON sidecar"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the contract's line breaks
    p.add_argument("run", type=Path, help="run folder written by 'moodcam-train fit'")
    p.add_argument("--out", type=Path, required=True, help="output path without suffix (writes OUT.tflite + OUT.json)")
    p.add_argument("--force", action="store_true", help="write the model even when int8 loses more than --max-drop")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="largest int8-vs-float validation accuracy loss accepted, in percentage points (default 1.0)")
    p.add_argument("--checkpoint", default="best.keras",
                   help="which checkpoint of the run: best.keras (best validation epoch, the default) or last.keras")
    p.add_argument("--samples", type=int, default=500, help="representative training faces for int8 calibration")
    p.add_argument("--margin", type=float, help="override the crop margin recorded in the sidecar")
    p.add_argument("--input-blur", type=float, metavar="SIGMA",
                   help="override the run's input_blur: the Gaussian sigma (pixels, 0 = none) the exported model "
                        "applies to its input; choose it on validation faces")
    p.add_argument("--test", type=Path, nargs="*", default=[], metavar="DATA",
                   help="face data sets (e.g. FER2013 PublicTest) scored with the int8 model and recorded in the sidecar")


def run(args) -> int:
    tflite = Path(str(args.out) if str(args.out).endswith(".tflite") else str(args.out) + ".tflite")
    try:
        need_input(args.run, "", kind="dir")
        need_output(tflite, "--out", force=args.force, also=[tflite.with_suffix(".json")])
        for path in args.test:
            need_input(path, "--test")
    except ValueError as exc:
        return report_error("moodcam-train export", exc)
    if args.input_blur is not None and not 0.0 <= args.input_blur <= 2.0:
        return report_error("moodcam-train export", f"--input-blur {args.input_blur:g}: use a sigma from 0 (off) to 2 pixels")
    try:
        path = export_run(args.run, args.out, force=args.force, max_drop_points=args.max_drop,
                          checkpoint=args.checkpoint, margin=args.margin, input_blur=args.input_blur, samples=args.samples,
                          test_data=args.test)
    except ExportRefused as exc:
        print(f"moodcam-train export: refused: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        return report_error("moodcam-train export", exc)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0
