"""How are FER2013's 48x48 faces framed relative to a dlib HOG box? -> the crop margin.

The model is trained on FER2013; at run time the edge crops dlib boxes with
``edge.preprocess.crop_face`` (box widened by ``margin`` on every side, squared). For the two to
agree, a dlib box found on a FER2013 face, widened by the margin, should span the 48x48 frame.
This script runs dlib's HOG detector on FER2013 faces upscaled by ``--scale`` factors (dlib finds
nothing at 48 px), maps the largest box back into the 48x48 frame and reports the detection
rate, the median box, the square/center offset and the margin that maps a dlib box onto FER's
framing:  side * (1 + 2 * margin) = 48  ->  margin = (48 / side - 1) / 2,  side = max(w, h).

    PYTHONPATH=. python bench/fer_framing.py [--split val] [--limit 0] [--scale 4] [--upsample 0 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fer_faces(split: str, limit: int) -> np.ndarray:
    from tests.shared_data import data_root

    root = data_root()
    if root is None or not (root / "fer2013" / split).is_dir():
        raise SystemExit("FER2013 not found under ../shared/data/fer2013 (set MOODCAM_SHARED_DATA)")
    files = sorted((root / "fer2013" / split).glob("*/*.jpg"))
    if limit:
        # An even spread over the (label-sorted) list so every class is represented.
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).astype(int)]
    return np.stack([np.asarray(Image.open(f).convert("L"), np.uint8) for f in files])


def measure(faces: np.ndarray, scales: list[float], upsample: int) -> dict:
    import dlib

    detector = dlib.get_frontal_face_detector()
    size = faces.shape[1]
    boxes = []
    t0 = time.perf_counter()
    for i, face in enumerate(faces):
        # dlib's pyramid quantizes box sizes (steps of 6/5); cycling over a few upscale factors
        # dithers that quantization so the median is not pinned to one pyramid level.
        scale = scales[i % len(scales)]
        big = np.asarray(Image.fromarray(face).resize((round(size * scale),) * 2, Image.Resampling.BICUBIC))
        rects = detector(big, upsample)
        if not len(rects):
            continue
        r = max(rects, key=lambda r: r.width() * r.height())
        boxes.append((r.left() / scale, r.top() / scale, r.width() / scale, r.height() / scale))
    seconds = time.perf_counter() - t0
    b = np.array(boxes, float).reshape(-1, 4)
    side = np.maximum(b[:, 2], b[:, 3])
    margin = (size / side - 1.0) / 2.0
    # Offset of the FER frame's center from the dlib box's center, in box sides (+ = right/down).
    dx = (size / 2 - (b[:, 0] + b[:, 2] / 2)) / side
    dy = (size / 2 - (b[:, 1] + b[:, 3] / 2)) / side
    return {
        "upsample": upsample, "faces": len(faces), "detected": len(b), "rate": len(b) / max(1, len(faces)),
        "median_box": np.median(b, axis=0) if len(b) else None,
        "aspect_w_over_h": float(np.median(b[:, 2] / b[:, 3])) if len(b) else None,
        "margin_median": float(np.median(margin)) if len(b) else None,
        "margin_mean": float(np.mean(margin)) if len(b) else None,
        "margin_iqr": tuple(np.percentile(margin, [25, 75])) if len(b) else None,
        "center_dx": float(np.median(dx)) if len(b) else None,
        "center_dy": float(np.median(dy)) if len(b) else None,
        "seconds": seconds,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=0, help="faces to use (0 = all)")
    ap.add_argument("--scale", type=float, nargs="+", default=[4.0, 4.4, 4.8, 5.2, 5.6],
                    help="upscale factors, cycled over the faces (default 4..5.6: 192..269 px)")
    ap.add_argument("--upsample", type=int, nargs="+", default=[0, 1])
    a = ap.parse_args()
    faces = fer_faces(a.split, a.limit)
    print(f"FER2013 {a.split}: {len(faces)} faces, upscaled {a.scale}x (bicubic)")
    for up in a.upsample:
        m = measure(faces, a.scale, up)
        if not m["detected"]:
            print(f"upsample {up}: no face detected")
            continue
        x, y, w, h = m["median_box"]
        print(f"upsample {up}: detected {m['detected']}/{m['faces']} ({m['rate']:.1%}) in {m['seconds']:.0f}s; "
              f"median box in the 48 frame x={x:.1f} y={y:.1f} w={w:.1f} h={h:.1f} (w/h {m['aspect_w_over_h']:.2f}); "
              f"FER center - box center = ({m['center_dx']:+.3f}, {m['center_dy']:+.3f}) box sides; "
              f"margin median {m['margin_median']:.3f}, mean {m['margin_mean']:.3f} (IQR {m['margin_iqr'][0]:.3f}..{m['margin_iqr'][1]:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
