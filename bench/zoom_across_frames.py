"""Zoom TTA spread over frames (the daemon's ``classifier.zoom_across_frames``) against flip alone
and against all six views on every frame, on simulated tracks.

    PYTHONPATH=. python bench/zoom_across_frames.py [--faces PATH] [--model M] [--frames 9]

A track is one labelled face shown for several frames. ``still``: the same crop every frame (a
person holding still; the worst case for flip alone, which then sees the same two views every
frame). ``jittered``: each frame the crop is re-framed by a random zoom of up to +-5 % and a shift
of up to 1.5 px, as consecutive detections of a live face differ. Each frame is classified as the
daemon does (int8 model, flip TTA) and folded into the track's moving average with the tracker's
default ``ema_alpha``; the figure is the accuracy of that smoothed prediction after k frames, the
one the daemon logs. Faces: FER2013 PublicTest from the shared data unless ``--faces`` (an
``.npz`` or ``<label>/`` folders of 48x48 faces) says otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def reframe(faces: np.ndarray, rng: np.random.Generator, zoom: float = 0.05, shift_px: float = 1.5) -> np.ndarray:
    """Each face re-framed by a random zoom in [1 - zoom, 1 + zoom] and shift in +-shift_px."""
    from edge.vision.classify import zoomed

    out = np.empty_like(faces)
    for i, face in enumerate(faces):
        scale = 1.0 + rng.uniform(-zoom, zoom)
        out[i] = zoomed(face[None], scale, tuple(rng.uniform(-shift_px, shift_px, 2)))[0]
    return out


def track_accuracy(classifiers: dict, faces: np.ndarray, labels: np.ndarray, frames: int, alpha: float,
                   jitter: bool, seed: int = 0) -> dict[str, list[float]]:
    """{mode: [accuracy of the smoothed prediction after 1..frames frames]}."""
    rng = np.random.default_rng(seed)
    smoothed = {mode: None for mode in classifiers}
    curves = {mode: [] for mode in classifiers}
    for k in range(frames):
        frame = reframe(faces, rng) if jitter else faces   # the same re-framing for every mode
        for mode, classifier in classifiers.items():
            probs = classifier.probs(frame, frame=k)
            smoothed[mode] = probs if smoothed[mode] is None else alpha * probs + (1 - alpha) * smoothed[mode]
            curves[mode].append(float(np.mean(smoothed[mode].argmax(1) == labels)))
    return curves


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, default=None, help="default: FER2013 PublicTest from the shared data")
    ap.add_argument("--model", default=None, help="default: the shipped models/default.tflite")
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--tta-zoom", type=float, default=None,
                    help="the zoom to spread (default: moodcam classify's, 0.15; the daemon's tta_zoom is off by default)")
    args = ap.parse_args(argv)

    from edge.vision.stills import STILL_TTA_ZOOM
    from edge.config import TrackerConfig
    from edge.contracts.modelfile import default_model_path
    from edge.vision.classify import Classifier
    from trainer.data.datasets import load_dataset

    if args.faces is None:
        from tests.shared_data import shared_data

        args.faces = shared_data("fer2013", "val")
    data = load_dataset(args.faces)
    model = args.model or str(default_model_path())
    zoom = STILL_TTA_ZOOM if args.tta_zoom is None else args.tta_zoom
    alpha = TrackerConfig().ema_alpha
    classifiers = {
        "flip only": Classifier(model, tta=True),
        "flip + zoom spread over frames": Classifier(model, tta=True, tta_zoom=zoom, zoom_across_frames=True),
        "flip + all zooms every frame": Classifier(model, tta=True, tta_zoom=zoom),
    }
    print(f"{len(data)} faces from {args.faces}; model {model}; tta_zoom {zoom}; ema_alpha {alpha}; "
          "accuracy of the smoothed prediction after k frames")
    for jitter in (False, True):
        curves = track_accuracy(classifiers, data.faces, data.labels, args.frames, alpha, jitter)
        print(f"\n{'jittered' if jitter else 'still'} faces")
        print("| mode | " + " | ".join(f"k={k + 1}" for k in range(args.frames)) + " |")
        print("|---|" + "---|" * args.frames)
        for mode, curve in curves.items():
            print(f"| {mode} | " + " | ".join(f"{a:.2%}" for a in curve) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
