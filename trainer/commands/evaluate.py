"""moodcam-train evaluate MODEL DATA [--json] [--report DIR] [--tta/--no-tta] [--tta-zoom Z]

MODEL: a run folder (its best.keras), a .keras file, or an exported .tflite (with its sidecar).
DATA:  pre-cropped faces (an .npz data set, or ``<label>/*`` picture folders as FER2013's), or raw
       pictures in folders named after an emotion (``Happy+Human+Faces/*``), which go through the
       edge pipeline: the still-picture dlib HOG cascade of ``moodcam classify`` (edge.vision.stills) +
       edge.contracts.crop.crop_face + the model.

The views and the cascade settings are ``moodcam classify``'s, with the same defaults (mirrored and
zoomed views, pictures shrunk to 640 px): a figure from evaluate is what classify does. For the
single-view accuracy of a model on faces, pass ``--no-tta --tta-zoom 0``.

``--json`` contract: the LAST line on stdout is one JSON object with at least
``accuracy`` (0..1; for pictures: right pictures / all readable pictures, no face = wrong),
``n`` (faces, or readable pictures), ``per_class`` ({label: {precision, recall, f1, support}}),
``macro_f1``, ``labels``, ``confusion`` (rows truth, columns predicted), ``mode`` ("faces" or
"pictures"), ``model``, ``data``, ``tta``, ``tta_zoom``; pictures add ``accuracy_found``, ``n_found``,
``faces_found_rate``, ``faces_total``, ``unreadable``, ``upsample``, ``cascade`` (the detector's
parameters), ``max_side``, ``ms_per_picture``, ``mmod`` (the cascade ended with dlib's CNN
detector), ``found_by_mmod`` (pictures whose face only it found). Both modes add ``temperature``
(the sidecar's calibration) and ``calibration`` ({ece, bins, n, table}: expected calibration error
over 15 confidence bins, of the largest face for pictures). Per-picture rows are left out of the
line (they are in ``--report DIR``/metrics.json, with each face's ``confidence``, ``probs`` and
``detector``); the report also draws ``reliability.png``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from edge.argpaths import add_force_option, need_input, need_output
from edge.cliutil import report_error
from edge.commands.options import add_still_options, check_still_options, use_mmod
from edge.contracts.modelfile import ModelFileError
from trainer.data.datasets import IMAGE_SUFFIXES, load_dataset
from trainer.evaluate import (
    evaluate_faces,
    evaluate_pictures,
    load_predictor,
    per_class_markdown,
    summary_lines,
    write_report,
)

REPORT_FILES = ("metrics.json", "confusion.json", "confusion.png", "report.md")
HELP = "measure a Keras run or a .tflite on faces or raw pictures"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the contract's line breaks
    p.add_argument("model", type=Path, help="run folder, .keras file or .tflite (with its .json sidecar)")
    p.add_argument("data", type=Path, help=".npz faces, <label>/ face folders, or emotion-named folders of raw pictures")
    p.add_argument("--mode", choices=["auto", "faces", "pictures"], default="auto",
                   help="auto: .npz and folders of small square pictures are faces, anything else raw pictures")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last stdout line")
    p.add_argument("--report", type=Path, metavar="DIR", help="write metrics.json, confusion.{json,png}, report.md here")
    add_still_options(p)
    p.add_argument("--limit", type=int, help="evaluate only this many raw pictures, spread over the folders")
    p.add_argument("--threads", type=int, help="TFLite interpreter threads (default: the runtime's)")
    add_force_option(p, "replace the files of an earlier --report DIR")


def guess_mode(data: Path, size: int) -> str:
    """faces for .npz files and folders whose first pictures are small squares; else pictures."""
    if data.is_file():
        return "faces"
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        for f in sorted(folder.iterdir())[:5]:
            if f.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    with Image.open(f) as im:
                        w, h = im.size
                except OSError:
                    continue
                return "faces" if w == h and w <= 2 * size else "pictures"
    return "pictures"


def run(args) -> int:
    try:
        return _run(args)
    except (ModelFileError, FileNotFoundError, ValueError) as exc:
        return report_error("moodcam-train evaluate", exc)


def _run(args) -> int:
    need_input(args.model, "")
    need_input(args.data, "")
    if args.report is not None:
        need_output(args.report, "--report", kind="dir", may_exist=True, force=args.force,
                    also=[args.report / name for name in REPORT_FILES])
    check_still_options(args)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give at least 1")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads}: give at least 1")
    predictor = load_predictor(args.model, tta=args.tta, tta_zoom=args.tta_zoom, num_threads=args.threads)
    mode = guess_mode(args.data, predictor.crop.size) if args.mode == "auto" else args.mode
    if mode == "faces":
        ds = load_dataset(args.data, predictor.crop.size)
        result = evaluate_faces(predictor, ds.faces, ds.labels)
    else:
        result = evaluate_pictures(predictor, args.data, upsample=args.upsample, max_side=args.max_side,
                                   limit=args.limit, progress=not args.json, mmod=use_mmod(args))
    result |= {"model": str(args.model), "model_kind": predictor.kind, "data": str(args.data), "tta": args.tta,
               "tta_zoom": args.tta_zoom}
    if args.report:
        for path in write_report(result, args.report):
            if not args.json:
                print(f"wrote {path}")
    if args.json:
        line = {k: v for k, v in result.items() if k not in ("per_picture", "unreadable_files")}
        print(json.dumps(line))
    else:
        print("\n".join(summary_lines(result)))
        print(per_class_markdown(result))
    return 0
