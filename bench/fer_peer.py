"""The `fer` package as a benchmark peer: one JSON line per picture on stdout.

Run it with the fer venv's python (made by ``bash bench/setup_fer.sh``), never the project's:

    .bench/fer-venv/bin/python bench/fer_peer.py PICTURE...
    .bench/fer-venv/bin/python bench/fer_peer.py --list paths.txt        # one path a line, '-' = stdin
    .bench/fer-venv/bin/python bench/fer_peer.py --npz frames.npz        # array 'frames' (N,H,W,3) uint8 RGB
    .bench/fer-venv/bin/python bench/fer_peer.py --mode crop FACE.jpg... # pre-cropped faces, no detection

Each line: ``{"path"|"index", "faces": [{"box": [x,y,w,h], "label", "probs": {label: p}}], "ms"}``
or ``{"path"|"index", "error": "..."}`` for a picture that cannot be read. Labels are moodcam's
(``edge/labels.py``); fer uses the same seven FER2013 classes.

Modes:
- ``full`` (default): fer's own pipeline, ``FER.detect_emotions`` = OpenCV Haar cascade (fer's
  bundled ``haarcascade_frontalface_default.xml``, passed explicitly because OpenCV 5 wheels ship
  no cascades) + its 10 px offsets + its int8-weight mini-Xception TFLite model (64x64 input).
  ``ms`` is the time in ``detect_emotions`` (detection + classification), not the file decode.
- ``crop``: the picture IS the face (FER2013's 48x48 crops). fer's classifier is run without
  detection, with fer's own preprocessing (cv2.resize to 64x64, x/255, (x-0.5)*2), i.e. the way its
  mini-Xception was trained on FER2013. Running the Haar cascade on a 48x48 crop finds nothing
  (min face 50 px) and fer's box path would pad the crop with a 10 px mean border, so this is the
  fair comparison with our model, which also gets the bare crop. ``ms`` is classification only.

Pictures are decoded with Pillow (first frame, EXIF orientation applied, RGB), as moodcam's own
pipeline does, so both see the same pixels even for GIF/MPO/WebP files that cv2.imread rejects.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

# fer's class order (FER._get_labels) mapped to moodcam's names; identical today, mapped anyway so
# a future fer release that renames a class fails loudly instead of scoring silently wrong.
FER_TO_MOODCAM = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                  "sad": "sad", "surprise": "surprise", "neutral": "neutral"}


def load_rgb(path: str) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.seek(0)
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def make_fer(args):
    import fer.fer as fer_module
    from fer.fer import FER

    cascade = Path(fer_module.__file__).parent / "data" / "haarcascade_frontalface_default.xml"
    if not cascade.is_file():
        sys.exit(f"fer's bundled Haar cascade is missing at {cascade}; reinstall with bash bench/setup_fer.sh")
    return FER(cascade_file=str(cascade), min_face_size=args.min_face_size)


def probs_dict(scores) -> dict[str, float]:
    from fer.fer import FER

    names = FER._get_labels()
    return {FER_TO_MOODCAM[names[i]]: round(float(s), 4) for i, s in enumerate(scores)}


def classify_full(detector, rgb: np.ndarray) -> list[dict]:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    found = detector.detect_emotions(bgr)
    faces = []
    for face in found:
        probs = {FER_TO_MOODCAM[k]: float(v) for k, v in face["emotions"].items()}
        faces.append({"box": [int(v) for v in face["box"]], "label": max(probs, key=probs.get), "probs": probs})
    return faces


def classify_crop(detector, rgb_or_gray: np.ndarray) -> list[dict]:
    import cv2

    gray = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2GRAY)
    face = cv2.resize(gray, (64, 64)).astype(np.float32)  # fer's emotion target size for its TFLite model
    face = (face / 255.0 - 0.5) * 2.0
    scores = np.asarray(detector._classify_emotions(face[None]))[0]
    probs = probs_dict(scores)
    h, w = gray.shape[:2]
    return [{"box": [0, 0, int(w), int(h)], "label": max(probs, key=probs.get), "probs": probs}]


def items(args):
    """(key, value, loader) for every picture asked for, in order."""
    if args.npz:
        with np.load(args.npz, allow_pickle=False) as z:
            key = "frames" if "frames" in z.files else "faces" if "faces" in z.files else None
            if key is None:
                sys.exit(f"{args.npz}: expected an array 'frames' (N,H,W,3) or 'faces' (N,S,S) uint8; has {z.files}")
            frames = z[key]
        for i, frame in enumerate(frames):
            frame = frame[:, :, ::-1] if args.bgr and frame.ndim == 3 else frame
            yield "index", i, lambda f=frame: np.ascontiguousarray(f, dtype=np.uint8)
        return
    paths = list(args.pictures)
    if args.list:
        stream = sys.stdin if args.list == "-" else open(args.list)
        with stream:
            paths += [line.strip() for line in stream if line.strip()]
    for p in paths:
        yield "path", p, lambda p=p: load_rgb(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pictures", nargs="*", help="picture files")
    ap.add_argument("--list", help="file with one picture path a line ('-' reads stdin)")
    ap.add_argument("--npz", help=".npz with 'frames' (N,H,W,3) uint8 RGB, or 'faces' (N,S,S) for --mode crop")
    ap.add_argument("--bgr", action="store_true", help="the --npz frames are BGR, not RGB")
    ap.add_argument("--mode", choices=["full", "crop"], default="full",
                    help="full: fer's detection + classification; crop: each picture is a face, classify only")
    ap.add_argument("--min-face-size", type=int, default=50, help="fer's Haar min face size in px (fer default 50)")
    args = ap.parse_args(argv)
    if not (args.pictures or args.list or args.npz):
        ap.error("give picture paths, --list FILE or --npz FILE")

    detector = make_fer(args)
    classify = classify_full if args.mode == "full" else classify_crop
    for key, value, load in items(args):
        try:
            image = load()
        except Exception as exc:  # noqa: BLE001 - a benchmark reports unreadable pictures and goes on
            print(json.dumps({key: value, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        start = time.perf_counter()
        faces = classify(detector, image)
        ms = (time.perf_counter() - start) * 1000.0
        print(json.dumps({key: value, "faces": faces, "ms": round(ms, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
