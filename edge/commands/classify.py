"""``moodcam classify PATH...``: faces and expressions in still pictures (folders recurse)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = "classify faces in pictures or folders (--json lines)"
# Zoomed views for stills: chosen on the validation faces (0.05-0.2 tried; flip + 0.15 took the
# shipped model from 67.7 % to 69.6 %). Six model calls a face are little next to the detector cascade.
STILL_TTA_ZOOM = 0.15
DESCRIPTION = (
    "Detect faces in pictures (folders are searched recursively, in name order) with the still-picture "
    "cascade (dlib HOG at --upsample N, then the mirrored picture, N+1, and rotations of +-15/30 degrees, "
    "each only while nothing is found), crop them as the model "
    "was trained, and classify their expressions. With --json: one JSON object per picture on stdout, "
    '{"path": ..., "faces": [{"box": [x, y, w, h], "label": ..., "confidence": ..., "probs": {label: p}}]}; '
    'a file that is not a readable picture gets an "error" field and the run goes on. '
    "Exit status: 0 all pictures read, 1 some could not be read, 2 bad arguments/config, 3 bad model.")


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="pictures and/or folders")
    parser.add_argument("--json", action="store_true", help="one JSON object per picture (JSON lines)")
    parser.add_argument("--model", metavar="TFLITE", help="model (default: classifier.model, else the shipped one)")
    parser.add_argument("--config", metavar="FILE", help="TOML config for detector/classifier settings")
    parser.add_argument("--upsample", type=int, default=1, metavar="N",
                        help="first dlib upsampling level of the cascade (default 1: faces down to ~40 px; "
                             "N+1 is tried when nothing is found)")
    parser.add_argument("--max-side", type=int, default=1280, metavar="PX",
                        help="pictures are shrunk to this longest side for detection (default 1280)")
    parser.add_argument("--tta-zoom", type=float, default=STILL_TTA_ZOOM, metavar="Z",
                        help=f"also classify each face zoomed to 1-Z and 1+Z and average (default {STILL_TTA_ZOOM}; "
                             "0 = off). A still has time for it, unlike the daemon (classifier.tta_zoom, default 0)")


def iter_pictures(paths: list[str]):
    """Files in the order given; folders expand to their files recursively, in name order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path


def run(args) -> int:
    from edge.capture.sources import load_picture
    from edge.config import ConfigError, load_config
    from edge.contracts.modelfile import ModelFileError, default_model_path
    from edge.vision.classify import Classifier
    from edge.vision.stills import STILL_MIN_FACE_PX, PictureDetectParams, faces_in_still

    try:
        config = load_config(args.config) if args.config else load_config(None)
    except ConfigError as exc:
        print(f"moodcam classify: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.upsample <= 3 or args.max_side < 64 or not 0.0 <= args.tta_zoom <= 0.3:
        print("moodcam classify: --upsample must be 0..3, --max-side at least 64 and --tta-zoom 0..0.3", file=sys.stderr)
        return 2
    try:
        classifier = Classifier(args.model or config.classifier.model or default_model_path(),
                                config.classifier.num_threads, config.classifier.batch, config.classifier.tta,
                                args.tta_zoom)
    except ModelFileError as exc:
        print(f"moodcam classify: {exc}", file=sys.stderr)
        return 3
    # A still is all there is: the cascade tries harder than the video loop's single pass, and small
    # faces are allowed. The config's score threshold applies; its min_face_px only where it is smaller.
    params = PictureDetectParams.starting_at(args.upsample, threshold=config.detector.score_threshold,
                                             min_size=min(config.detector.min_face_px, STILL_MIN_FACE_PX))
    failed = 0
    for path in iter_pictures(args.paths):
        result: dict = {"path": str(path), "faces": []}
        try:
            image = load_picture(path)
        except (ValueError, OSError) as exc:
            failed += 1
            result["error"] = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        else:
            boxes = [d.box for d in faces_in_still(image, params, max_side=args.max_side)]
            for box, pred in zip(boxes, classifier.classify(image, boxes)):
                result["faces"].append({"box": [int(v) for v in box], "label": pred.label,
                                        "confidence": round(pred.confidence, 4), "probs": pred.probs_dict()})
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{path}: error: {result['error']}", flush=True)
        else:
            faces = ", ".join(f"{f['label']} {f['confidence']:.2f} at {tuple(f['box'])}" for f in result["faces"])
            print(f"{path}: {faces or 'no faces'}", flush=True)
    return 1 if failed else 0
