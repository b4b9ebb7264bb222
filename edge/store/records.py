"""What the log holds: a face record as the daemon writes it and as it is read back, the store's errors,
and the checks and encodings a record passes before it touches the disk."""
from __future__ import annotations

import errno
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class FaceRecord:
    """What the daemon logs for one face."""

    ts: float                       # unix seconds (UTC); also stored as ISO-8601 UTC text
    frame: int
    track: int
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    label: str
    confidence: float
    probs: dict[str, float]         # every label -> probability
    model_sha256: str
    source: str = ""                # camera/source name


@dataclass(frozen=True, kw_only=True)
class LoggedFace(FaceRecord):
    """A face as read back from the store: the record plus its id, crop file and review."""

    id: int
    crop_file: str                  # relative to the state directory, e.g. crops/2026-11-24/....png
    review_label: str | None = None
    not_face: bool = False
    reviewed_at: float | None = None
    crop_bytes: int = 0
    scene_file: str | None = None   # the frame's thumbnail beside the crop (logging.scene_width), if kept
    scene_bytes: int = 0

    @property
    def reviewed(self) -> bool:
        return self.reviewed_at is not None

    @property
    def final_label(self) -> str | None:
        """The reviewed label if there is one, else the model's; None when marked not-a-face."""
        if self.not_face:
            return None
        return self.review_label or self.label


class StoreError(RuntimeError):
    """The store cannot be opened or used (missing, newer schema, bad argument)."""


class StoreFullError(OSError):
    """The file system is full (ENOSPC/EDQUOT): nothing of the failed write stays behind."""

    def __init__(self, what: str):
        super().__init__(errno.ENOSPC, f"disk full while {what}; nothing was written")


def iso_utc(ts: float | None) -> str | None:
    """``2026-11-24T02:49:51.123456Z`` for a unix time (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | float | int | datetime) -> float:
    """Unix seconds from a unix number, a datetime, or ISO-8601 text (naive text means UTC)."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"'{value}' is neither unix seconds nor an ISO-8601 time "
                         "(examples: 1764000000, 2026-11-24, 2026-11-24T08:00:00Z)") from None
    return parse_time(dt)


def encode_png(crop: np.ndarray) -> bytes:
    """PNG bytes of a uint8 gray crop (H, W); refuses anything else with a clear error."""
    arr = np.asarray(crop)
    if arr.dtype != np.uint8 or arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"a face crop must be a uint8 gray array (H, W); got dtype {arr.dtype}, "
                         f"shape {arr.shape} (use edge.preprocess.crop_face)")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def scene_thumbnail(image: np.ndarray, width: int, box: tuple | None = None) -> np.ndarray:
    """The whole RGB frame shrunk to ``width`` pixels wide (area average), with the face's box
    (x, y, w, h in frame pixels) outlined, for the scene of a face. OpenCV's INTER_AREA takes a
    third of PIL's BOX filter's time on the same frame."""
    import cv2

    arr = np.asarray(image)
    width = min(int(width), arr.shape[1])
    scale = width / arr.shape[1]
    small = cv2.resize(arr, (width, max(1, round(arr.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    if box is not None:
        x, y, w, h = (round(v * scale) for v in box)
        cv2.rectangle(small, (x, y), (x + w, y + h), (255, 214, 0), 1)
    return small


def encode_jpeg(image: np.ndarray, quality: int = 75) -> bytes:
    """JPEG bytes of a uint8 RGB picture (H, W, 3): a scene thumbnail."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ValueError(f"a scene thumbnail must be a uint8 RGB array (H, W, 3); got dtype {arr.dtype}, "
                         f"shape {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr), mode="RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def check_record(record: FaceRecord) -> None:
    """Reject a malformed record before anything touches the disk."""
    if not isinstance(record, FaceRecord):
        raise TypeError(f"log_face needs a FaceRecord, got {type(record).__name__}")
    if len(record.box) != 4:
        raise ValueError(f"face box must be (x, y, w, h), got {record.box!r}")
    if not record.label:
        raise ValueError("face record has an empty label")
    if not math.isfinite(float(record.ts)) or not math.isfinite(float(record.confidence)):
        raise ValueError(f"face record has a non-finite ts or confidence: ts={record.ts}, "
                         f"confidence={record.confidence}")
    if not isinstance(record.probs, dict):
        raise ValueError(f"face record probs must be a dict label -> probability, got {type(record.probs).__name__}")
    bad = {k: v for k, v in record.probs.items() if not math.isfinite(float(v))}
    if bad:
        raise ValueError(f"face record probs must be finite numbers, got {bad}")
