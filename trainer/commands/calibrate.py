"""moodcam-train calibrate MODEL.tflite DATA [--write]

Fits the calibration temperature of an exported int8 model on validation faces DATA (an .npz or
``<label>/`` face folders the model was not tested on), with the views ``moodcam classify``
averages (--tta/--tta-zoom), and prints it with the expected calibration error before and after.
With --write the sidecar's ``calibration`` key is set (the .tflite and its sha256 are untouched, so
the model is the same; only its confidences change). ``export`` does the same on the run's own
validation faces.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cliutil import report_error
from edge.contracts.modelfile import ModelFileError, load_sidecar, sidecar_path
from edge.vision.stills import STILL_TTA_ZOOM
from trainer.calibrate import fit_calibration
from trainer.data.datasets import load_dataset
from trainer.evaluate import tflite_predict_fn

HELP = "fit a model's confidence temperature on validation faces (and store it in its sidecar)"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("model", type=Path, help="an exported .tflite with its .json sidecar")
    p.add_argument("data", type=Path, help="validation faces: .npz or <label>/ folders (never the test set)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                   help="fit on the mirrored view too (default on, as moodcam classify)")
    p.add_argument("--tta-zoom", type=float, default=STILL_TTA_ZOOM, metavar="Z",
                   help=f"and the zoomed views (default {STILL_TTA_ZOOM}, as moodcam classify; 0 = off)")
    p.add_argument("--write", action="store_true", help="store the temperature in the model's sidecar")


def run(args) -> int:
    try:
        meta = load_sidecar(args.model)
        if not args.data.exists():
            raise FileNotFoundError(f"data {args.data} does not exist")
        ds = load_dataset(args.data, meta.crop.size)
    except (ModelFileError, FileNotFoundError, ValueError) as exc:
        return report_error("moodcam-train calibrate", exc)
    calibration = fit_calibration(tflite_predict_fn(args.model), ds.faces, ds.labels, meta.output.scale / 2.0,
                                  flip=args.tta, zoom=args.tta_zoom, source=str(args.data))
    print(json.dumps(calibration))
    if args.write:
        path = sidecar_path(args.model)
        raw = json.loads(path.read_text())
        raw["calibration"] = calibration
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(raw, indent=2) + "\n")
        tmp.replace(path)
        load_sidecar(args.model)  # the result must still load
        print(f"wrote calibration (temperature {calibration['temperature']:g}) into {path}")
    return 0
