"""Face detection: dlib's HOG frontal face detector on a downscaled gray frame.

HOG costs time in proportion to the pixels scanned, so the frame is shrunk to
``detect_width`` first; boxes come back in full-frame pixels, clamped to the frame.
dlib's ``run`` gives a score per box, so a threshold can trade recall for precision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import DetectorConfig
from edge.contracts.crop import Box


@dataclass(frozen=True)
class Detection:
    box: Box        # x, y, w, h in frame pixels
    score: float    # dlib's HOG score (higher = more face-like)


def gray_of(image: np.ndarray) -> np.ndarray:
    """A uint8 gray frame for the detector (OpenCV: ~10x faster than numpy on a Pi)."""
    import cv2

    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def clamp_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box | None:
    """(x, y, w, h) of a corner box clamped to the image, or None when nothing is left."""
    x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
    x1, y1 = min(width, int(round(x1))), min(height, int(round(y1)))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def shrunk(gray: np.ndarray, scale: float) -> np.ndarray:
    """``gray`` resized by ``scale`` (< 1) with area averaging: HOG time grows with the pixels, and
    a face that fills a good part of a frame is still large enough after shrinking."""
    import cv2

    height, width = gray.shape[:2]
    return cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def box_before_shrink(x0: float, y0: float, x1: float, y1: float, scale: float, width: int, height: int) -> Box | None:
    """A box found in a picture shrunk by ``scale``, in the (width x height) original's pixels, clamped."""
    return clamp_box(x0 / scale, y0 / scale, x1 / scale, y1 / scale, width, height)


class Detector:
    """``detect(gray) -> [Detection]``; holds dlib's detector (loaded on construction, not import)."""

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        import dlib

        self.config = config
        self._dlib = dlib.get_frontal_face_detector()

    def detect(self, gray: np.ndarray, detect_width: int | None = None, upsample: int | None = None,
               min_face_px: int | None = None) -> list[Detection]:
        """Faces in ``gray``; the arguments override the config's (still pictures, zoomed regions)."""
        cfg = self.config
        target = cfg.detect_width if detect_width is None else detect_width
        upsample = cfg.upsample if upsample is None else upsample
        min_face = cfg.min_face_px if min_face_px is None else min_face_px
        height, width = gray.shape[:2]
        scale = target / width if target and width > target else 1.0
        small = shrunk(gray, scale) if scale < 1.0 else gray
        rects, scores, _ = self._dlib.run(small, upsample, cfg.score_threshold)
        out = []
        for rect, score in zip(rects, scores):
            box = box_before_shrink(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1, scale, width, height)
            if box is not None and box[2] >= min_face:
                out.append(Detection(box, float(score)))
        return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)
