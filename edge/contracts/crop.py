"""THE face-crop contract, shared by the trainer and the edge.

One function, :func:`crop_face`, turns (image, face box) into the model input. The trainer crops
scraped pictures with it and the edge crops camera frames with it, so both see the same framing.
Its parameters live in :class:`CropParams`, which is stored in each model's JSON sidecar and read
back by the edge: nothing here is hard-coded twice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the source image


@dataclass(frozen=True)
class CropParams:
    """How a face box becomes a model input.

    size:   side of the square model input in pixels.
    margin: the box is widened by this fraction of its width/height on every side before
            cropping; dlib's HOG boxes are tight (brows to chin), FER2013's faces carry some
            forehead and cheek, so a margin brings the two framings together.
    square: grow the shorter side so the crop is square (keeps the face's aspect ratio).
    shift_y: move the crop centre down by this fraction of the box height (negative: up).
            dlib's boxes reach the chin while FER2013 keeps the forehead.

    The defaults were measured (bench/fer_framing.py): dlib HOG on FER2013 validation faces
    finds a square box whose median margin to FER's 48x48 frame is 0.12 per side, with FER's
    centre 0.07 box heights above dlib's.
    """

    size: int = 48
    margin: float = 0.12
    square: bool = True
    shift_y: float = -0.07

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CropParams":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown crop parameter(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        params = cls(**data)
        if not (8 <= int(params.size) <= 512):
            raise ValueError(f"crop size {params.size} is out of range 8..512")
        if not (0.0 <= float(params.margin) <= 2.0):
            raise ValueError(f"crop margin {params.margin} is out of range 0..2")
        if not (-1.0 <= float(params.shift_y) <= 1.0):
            raise ValueError(f"crop shift_y {params.shift_y} is out of range -1..1")
        return params


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale (H, W) from gray (H, W), (H, W, 1), RGB or RGBA (H, W, 3|4) arrays.

    Uses ITU-R 601 luma, the same weights as Pillow's "L" conversion, in integer arithmetic so
    the trainer and the edge get bit-identical pixels.
    """
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3].astype(np.uint32)
        gray = (rgb[:, :, 0] * 19595 + rgb[:, :, 1] * 38470 + rgb[:, :, 2] * 7471 + 0x8000) >> 16
    else:
        raise ValueError(f"expected a gray, RGB or RGBA image array, got shape {image.shape}")
    return np.ascontiguousarray(gray, dtype=np.uint8)


def expand_box(box: Box, image_shape: tuple[int, ...], params: CropParams) -> Box:
    """The crop region for a face box: widened by the margin, made square, clamped to the image."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box {tuple(box)} has no area")
    cx, cy = x + w / 2.0, y + h / 2.0 + params.shift_y * h
    w, h = w * (1.0 + 2.0 * params.margin), h * (1.0 + 2.0 * params.margin)
    if params.square:
        w = h = max(w, h)
    img_h, img_w = image_shape[:2]
    x0 = int(round(max(0.0, cx - w / 2.0)))
    y0 = int(round(max(0.0, cy - h / 2.0)))
    x1 = int(round(min(float(img_w), cx + w / 2.0)))
    y1 = int(round(min(float(img_h), cy + h / 2.0)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {tuple(box)} lies outside the {img_w}x{img_h} image")
    return x0, y0, x1 - x0, y1 - y0


def crop_face(image: np.ndarray, box: Box, params: CropParams = CropParams()) -> np.ndarray:
    """The model input for one face: a (size, size) uint8 grayscale crop.

    ``image`` is a gray/RGB/RGBA uint8 array, ``box`` is (x, y, w, h) in its pixels.
    Near the image border the crop is clamped rather than padded, and then stretched to the
    square output, as a face cut at the border of a photo is in the training data.
    """
    x, y, w, h = expand_box(box, image.shape, params)
    # Convert only the crop to gray: far cheaper than the whole frame on a Pi.
    region = to_gray(image[y : y + h, x : x + w])
    resized = Image.fromarray(region).resize((params.size, params.size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(resized, dtype=np.uint8)
