"""``moodcam classify PATH...``: faces and expressions in still pictures (folders recurse)."""
from __future__ import annotations

import json
from pathlib import Path

from edge.argpaths import PathProblem, need_input
from edge.capture.sources import PICTURE_SUFFIXES, load_picture
from edge.cliutil import EXIT_MODEL, EXIT_USAGE, report_error, report_note, write_line
from edge.commands.options import add_still_options, check_still_options, use_mmod
from edge.config import ConfigError, load_config
from edge.contracts.modelfile import ModelFileError, default_model_path
from edge.vision.classify import Classifier
from edge.vision.stills import STILL_MIN_FACE_PX, PictureDetectParams, faces_in_still

HELP = "classify faces in pictures or folders (--json lines)"
DESCRIPTION = (
    "Detect faces in pictures (folders are searched recursively, in name order) with the still-picture "
    "cascade (dlib HOG at --upsample N, then the mirrored picture, N+1, and rotations of +-15/30 degrees, "
    "then dlib's CNN detector where installed (--mmod), each only while nothing is found), crop them as the model "
    "was trained, and classify their expressions. With --json: one JSON object per picture on stdout, "
    '{"path": ..., "faces": [{"box": [x, y, w, h], "label": ..., "confidence": ..., "probs": {label: p}, '
    '"top_label": ...}]}; label is "uncertain" when the confidence is below classifier.min_confidence '
    "(top_label is always the most likely label); "
    'a file named on the command line that is not a readable picture gets an "error" field and the run goes on; '
    "in folders, only picture files (.jpg, .png, ...) are read and the rest (a scrape's manifest.jsonl) is "
    "skipped with a note on stderr. "
    "Exit status: 0 all pictures read, 1 some could not be read, 2 bad arguments/config, a missing path, "
    "or no pictures at all, 3 bad model.")


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="pictures and/or folders")
    parser.add_argument("--json", action="store_true", help="one JSON object per picture (JSON lines)")
    parser.add_argument("--model", metavar="TFLITE", help="model (default: classifier.model, else the shipped one)")
    parser.add_argument("--config", metavar="FILE", help="TOML config for detector/classifier settings")
    add_still_options(parser, tta_default=None)


def iter_pictures(paths: list[str], skipped: list[Path] | None = None):
    """Files in the order given; folders expand to their picture files recursively, in name order
    (other files, such as a scrape's manifest.jsonl, go into ``skipped``)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for p in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if p.suffix.lower() in PICTURE_SUFFIXES:
                    yield p
                elif skipped is not None:
                    skipped.append(p)
        else:
            yield path


def check_paths(args) -> list[Path]:
    """Every path exists; returns the pictures to read. (--config and --model are checked as they
    are read: a missing model is exit 3, as any unusable model.)"""
    for raw in args.paths:
        need_input(raw, "")
    skipped: list[Path] = []
    pictures = list(iter_pictures(args.paths, skipped))
    if skipped:
        names = ", ".join(sorted({p.name for p in skipped})[:3])
        report_note("moodcam classify", f"skipped {len(skipped)} file(s) in the folders that are not pictures ({names}"
                    f"{', ...' if len(skipped) > 3 else ''})")
    if not pictures:
        raise PathProblem(f"no pictures in {' '.join(args.paths)} (looked for {', '.join(sorted(PICTURE_SUFFIXES))}); "
                          "give pictures or folders that hold some")
    return pictures


def run(args) -> int:
    try:
        pictures = check_paths(args)
        config = load_config(args.config) if args.config else load_config(None)
        check_still_options(args)
        mmod = use_mmod(args)
    except (ConfigError, ValueError) as exc:
        return report_error("moodcam classify", exc, EXIT_USAGE)
    tta = config.classifier.tta if args.tta is None else args.tta
    try:
        classifier = Classifier(args.model or config.classifier.model or default_model_path(),
                                config.classifier.num_threads, config.classifier.batch, tta, args.tta_zoom)
    except ModelFileError as exc:
        return report_error("moodcam classify", exc, EXIT_MODEL)
    # A still is all there is: the cascade tries harder than the video loop's single pass, and small
    # faces are allowed. The config's score threshold applies; its min_face_px only where it is smaller.
    params = PictureDetectParams.starting_at(args.upsample, threshold=config.detector.score_threshold,
                                             min_size=min(config.detector.min_face_px, STILL_MIN_FACE_PX), mmod=mmod)
    failed = 0
    for path in pictures:
        result: dict = {"path": str(path), "faces": []}
        try:
            image = load_picture(path)
        except (ValueError, OSError) as exc:
            failed += 1
            result["error"] = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        else:
            boxes = [d.box for d in faces_in_still(image, params, max_side=args.max_side)]
            for box, pred in zip(boxes, classifier.classify(image, boxes)):
                result["faces"].append({"box": [int(v) for v in box],
                                        "label": pred.shown_label(config.classifier.min_confidence),
                                        "confidence": round(pred.confidence, 4), "probs": pred.probs_dict(),
                                        "top_label": pred.label})
        if args.json:
            write_line(json.dumps(result))
        elif "error" in result:
            write_line(f"{path}: error: {result['error']}")
        else:
            faces = ", ".join(f"{f['label']} {f['confidence']:.2f} at {tuple(f['box'])}" for f in result["faces"])
            write_line(f"{path}: {faces or 'no faces'}")
    return 1 if failed else 0
