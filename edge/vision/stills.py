"""Faces in still pictures: dlib's HOG detector run as a cascade that tries harder only when it finds none.

A camera frame is scanned once (edge.detect): the next frame is a few milliseconds away. A still
picture is all there is, so it is worth more time. A web picture of an "angry human face" is
mostly one large frontal face, which dlib's HOG finds at upsample 1 in ~25 ms (640 px). What it
misses are faces turned to one side (the mirrored picture finds some), small faces (upsample 2)
and tilted heads (a few degrees of rotation). Each further try costs several times the first, so
the detector runs a *cascade*: the next try only when all earlier ones found nothing. Its last,
optional step is dlib's CNN face detector (MMOD, weights from the ``face-recognition-models``
package): it finds profiles, strongly tilted and partly hidden faces that HOG's frontal templates
miss, at ~100 times HOG's cost (seconds a picture on a desktop core, far more on a Pi 3), so it
runs only on pictures where every HOG try found nothing, and only where its weights are installed
(the desktop/train extra; not on the Pi).

One cascade serves every still: ``moodcam classify`` and the trainer's evaluate on raw pictures
(both through :func:`faces_in_still`) and the trainer's ingest (:func:`find_picture_faces`), so a
face the model was trained on is found the same way in the pictures it is judged and used on.
The dlib detector is created on first use, never at import time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge.contracts.crop import Box
from edge.vision.detect import box_before_shrink, clamp_box, gray_of, shrunk

# dlib's smallest HOG window is 80 px; upsample 2 (4x the pixels) brings it to ~20 px. Smaller boxes
# are too few pixels to carry an expression in a 48x48 crop.
STILL_MIN_FACE_PX = 20
# The cascade's first dlib upsampling level (1: faces down to ~40 px; the next level is its fallback).
STILL_UPSAMPLE = 1
# Pictures are shrunk to this longest side before detection, as a camera frame: a Pi 3 spends about
# four times as long on 1280 px, and faces in web pictures are large enough at 640.
STILL_MAX_SIDE = 640
# Zoomed views for stills: chosen on validation faces (0.05-0.2 tried). Six model calls a face are
# little next to the detector cascade; the daemon's classifier.tta_zoom is off.
STILL_TTA_ZOOM = 0.15


@dataclass(frozen=True)
class PictureDetectParams:
    """How hard to look for faces in a still picture.

    upsample:  dlib upsampling levels tried in order while no face is found; 1 finds faces down
               to ~40 px, 2 down to ~20 px (4x the pixels, ~4x the time).
    mirror:    also try the mirrored picture (at the first upsample level): dlib's HOG templates
               are not symmetric, so a face turned one way is sometimes found only mirrored.
    angles:    rotations in degrees tried (at the first upsample level) when nothing else found a
               face; dlib's frontal HOG misses heads tilted more than ~15 degrees.
    threshold: dlib's detection threshold adjustment (0 = dlib's default; < 0 finds more, and
               more false faces).
    min_size:  faces whose box side is below this many pixels (of the picture scanned) are ignored.
    mmod:      last, when every HOG try found nothing: dlib's CNN (MMOD) detector at upsample 0
               (see :func:`mmod_available`; off by default here, the commands turn it on where its
               weights are installed).
    """

    upsample: tuple[int, ...] = (1, 2)
    mirror: bool = True
    angles: tuple[float, ...] = (-15.0, 15.0, -30.0, 30.0)
    threshold: float = 0.0
    min_size: int = STILL_MIN_FACE_PX
    mmod: bool = False

    @classmethod
    def starting_at(cls, upsample: int, **kwargs) -> "PictureDetectParams":
        """The cascade with ``upsample`` as its first level and the next one as its fallback: what
        ``--upsample N`` of ``moodcam classify`` and ``moodcam-train evaluate`` means."""
        levels = (upsample, upsample + 1) if upsample < 3 else (upsample,)  # 3 is the most either CLI allows
        return cls(upsample=levels, **kwargs)


@dataclass(frozen=True)
class PictureDetection:
    box: Box          # x, y, w, h in the (upright) picture, clamped to it
    score: float      # dlib's detection score
    upsample: int     # the level that found it
    angle: float      # the rotation under which it was found (0 = upright)
    detector: str = "hog"   # "hog", or "mmod" for the CNN's last step (its score is its confidence)


_detector = None
_mmod = None


def _dlib_detector():
    """dlib's HOG frontal face detector, created once per process on first use."""
    global _detector
    if _detector is None:
        import dlib

        _detector = dlib.get_frontal_face_detector()
    return _detector


class MMODUnavailable(RuntimeError):
    """dlib's CNN face detector was asked for but its weights (face-recognition-models) are not installed."""


def mmod_weights() -> str | None:
    """Path of dlib's MMOD face detector weights, or None when face-recognition-models is not installed."""
    import importlib.util
    from pathlib import Path

    if importlib.util.find_spec("face_recognition_models") is None:
        return None
    import face_recognition_models

    path = face_recognition_models.cnn_face_detector_model_location()
    return path if Path(path).is_file() else None


def mmod_available() -> bool:
    """True where the still cascade may end with dlib's CNN detector: its weights are installed
    (``pip install face-recognition-models``, in the train extra). The Pi does not install them:
    one 640 px picture costs it tens of seconds."""
    return mmod_weights() is not None


def _mmod_detector():
    """dlib's CNN (MMOD) face detector, created once per process on first use."""
    global _mmod
    if _mmod is None:
        path = mmod_weights()
        if path is None:
            raise MMODUnavailable("dlib's CNN face detector needs the face-recognition-models package "
                                  "(pip install face-recognition-models, or the train extra); or pass --no-mmod")
        import dlib

        _mmod = dlib.cnn_face_detection_model_v1(path)
    return _mmod


# MMOD's boxes frame a face differently from HOG's, which the crop contract was measured on
# (edge/contracts/crop.py). Fitted on held-out scraped pictures where both found the same face
# (54 faces of 70 pictures, IoU > 0.3, median 0.74): the HOG box side is a median 1.13 MMOD box
# sides (quartiles 0.95-1.14) and its centre 0.05 box heights lower (quartiles 0.01-0.13); the
# sideways offset (0.025) is left out, as a face has no preferred side.
MMOD_TO_HOG_SCALE = 1.13
MMOD_TO_HOG_SHIFT = (0.0, 0.05)


def mmod_to_hog(box: Box) -> Box:
    """An MMOD box as the HOG box of the same face would be, so the crop frames it as trained."""
    x, y, w, h = box
    cx = x + w / 2.0 + MMOD_TO_HOG_SHIFT[0] * w
    cy = y + h / 2.0 + MMOD_TO_HOG_SHIFT[1] * h
    side_w, side_h = w * MMOD_TO_HOG_SCALE, h * MMOD_TO_HOG_SCALE
    return round(cx - side_w / 2.0), round(cy - side_h / 2.0), round(side_w), round(side_h)


def _run_mmod(gray: np.ndarray) -> list[tuple[Box, float]]:
    found = _mmod_detector()(gray, 0)
    return [(mmod_to_hog((d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height())), float(d.confidence))
            for d in found]


def _run(gray: np.ndarray, upsample: int, threshold: float) -> list[tuple[Box, float]]:
    rects, scores, _ = _dlib_detector().run(gray, upsample, threshold)
    return [((r.left(), r.top(), r.width(), r.height()), float(s)) for r, s in zip(rects, scores)]


def _rotate(gray: np.ndarray, angle: float) -> np.ndarray:
    # expand=True keeps the corners; the fill is the picture's mean so the border is no strong edge.
    return np.asarray(Image.fromarray(gray).rotate(angle, resample=Image.Resampling.BILINEAR, expand=True,
                                                   fillcolor=int(gray.mean())))


def _unrotate(box: Box, angle: float, shape: tuple[int, int], rotated_shape: tuple[int, int]) -> Box:
    """A box found in the picture rotated by ``angle`` (PIL: counter-clockwise) mapped back.

    The face's center is rotated back exactly; the box keeps its size, axis-aligned in the
    upright picture: the crop then holds the tilted face as a camera would see it.
    """
    x, y, w, h = box
    cx, cy = x + w / 2.0 - rotated_shape[1] / 2.0, y + h / 2.0 - rotated_shape[0] / 2.0
    a = np.deg2rad(angle)
    # PIL rotates counter-clockwise on screen (y down); undoing it rotates by -angle.
    ox = cx * np.cos(a) - cy * np.sin(a)
    oy = cx * np.sin(a) + cy * np.cos(a)
    ox, oy = ox + shape[1] / 2.0, oy + shape[0] / 2.0
    return int(round(ox - w / 2.0)), int(round(oy - h / 2.0)), int(w), int(h)


def _clamp(box: Box, shape: tuple[int, int]) -> Box | None:
    x, y, w, h = box
    return clamp_box(x, y, x + w, y + h, shape[1], shape[0])


def find_picture_faces(gray: np.ndarray,
                       params: PictureDetectParams = PictureDetectParams()) -> list[PictureDetection]:
    """Faces in a uint8 grayscale picture, scanned at its size, largest first; [] when none (after every try)."""
    found: list[PictureDetection] = []
    for i, up in enumerate(params.upsample):
        found = [PictureDetection(b, s, up, 0.0) for b, s in _run(gray, up, params.threshold)]
        found = [d for d in found if min(d.box[2:]) >= params.min_size]
        if found:
            break
        if i == 0 and params.mirror:
            # Cheaper than the next upsample level, and finds faces turned to one side.
            width = gray.shape[1]
            mirrored = np.ascontiguousarray(gray[:, ::-1])
            found = [PictureDetection((width - b[0] - b[2], b[1], b[2], b[3]), s, up, 0.0)
                     for b, s in _run(mirrored, up, params.threshold)]
            found = [d for d in found if min(d.box[2:]) >= params.min_size]
            if found:
                break
    if not found and params.upsample:
        up = params.upsample[0]
        for angle in params.angles:
            rotated = _rotate(gray, angle)
            for b, s in _run(rotated, up, params.threshold):
                box = _clamp(_unrotate(b, angle, gray.shape, rotated.shape), gray.shape)
                if box is not None and min(box[2:]) >= params.min_size:
                    found.append(PictureDetection(box, s, up, angle))
            if found:
                break
    if not found and params.mmod:
        found = [PictureDetection(b, s, 0, 0.0, "mmod") for b, s in _run_mmod(gray) if min(b[2:]) >= params.min_size]
    # dlib boxes may reach past the border (a face cut by the frame); clamp them to the picture.
    clamped = []
    for d in found:
        box = _clamp(d.box, gray.shape)
        if box is not None:
            clamped.append(PictureDetection(box, d.score, d.upsample, d.angle, d.detector))
    return sorted(clamped, key=lambda d: d.box[2] * d.box[3], reverse=True)


def faces_in_still(image: np.ndarray, params: PictureDetectParams = PictureDetectParams(),
                   max_side: int | None = None) -> list[PictureDetection]:
    """Faces in an RGB (or gray) picture of any size, largest first, boxes in its own pixels.

    The cascade scans the picture shrunk so its longer side is at most ``max_side`` (HOG time
    grows with the pixels, and a face of a few percent of a phone photo is still large there);
    ``None`` scans it as it is. ``params.min_size`` counts pixels of the picture scanned.
    """
    gray = np.ascontiguousarray(gray_of(image))  # dlib scans contiguous rows only
    height, width = gray.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return find_picture_faces(gray, params)
    scale = max_side / max(height, width)
    out = []
    for d in find_picture_faces(shrunk(gray, scale), params):
        x, y, w, h = d.box
        box = box_before_shrink(x, y, x + w, y + h, scale, width, height)
        if box is not None:
            out.append(PictureDetection(box, d.score, d.upsample, d.angle, d.detector))
    return out
