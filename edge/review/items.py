"""Plain data passed between a review source and the server: items, filters, changes."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edge.contracts.labels import LABELS


@dataclass(frozen=True)
class ReviewItem:
    """One face as the page shows it; ``label``/``confidence`` are the model's prediction (None
    in folder mode when the folder name names no emotion)."""

    id: int
    ts: float                      # unix seconds (store: when seen; folder: file mtime)
    label: str | None              # predicted label
    confidence: float | None
    review_label: str | None       # the reviewer's label (None if unreviewed or not a face)
    not_face: bool
    reviewed_at: float | None
    track: int | None = None
    frame: int | None = None
    probs: tuple[float, ...] = ()
    model_sha256: str | None = None
    name: str = ""                 # a display name (folder mode: the picture's relative path)
    scene: bool = False            # a thumbnail of the whole frame was kept (logging.scene_width)

    @property
    def reviewed(self) -> bool:
        return self.reviewed_at is not None or self.not_face or self.review_label is not None

    def to_json(self) -> dict:
        d = asdict(self)
        d["probs"] = [_finite(p) for p in self.probs]
        d["confidence"] = _finite(self.confidence)
        d["reviewed"] = self.reviewed
        d["crop_url"] = f"/api/faces/{self.id}/crop"
        d["scene_url"] = f"/api/faces/{self.id}/scene" if self.scene else None
        return d


def _finite(value):
    # JSON has no NaN/inf; a corrupt row must not turn the whole page into a 500.
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Filters:
    labels: tuple[str, ...] = ()   # predicted labels; empty = all
    reviewed: bool | None = None   # None = both
    min_confidence: float | None = None
    max_confidence: float | None = None
    since: float | None = None     # unix seconds, inclusive
    until: float | None = None     # unix seconds, exclusive

    def without_review_state(self) -> "Filters":
        return Filters((), None, self.min_confidence, self.max_confidence, self.since, self.until)


@dataclass(frozen=True)
class ReviewChange:
    """What a reviewer did to one item. ``label``: set ``label``; ``accept``: set the prediction;
    ``not_face``: mark as not a face; ``clear``: back to unreviewed (undo uses it)."""

    id: int
    action: str                    # "label" | "accept" | "not_face" | "clear"
    label: str | None = None

    def __post_init__(self):
        if self.action not in ("label", "accept", "not_face", "clear"):
            raise ValueError(f"unknown review action {self.action!r}; use label, accept, not_face or clear")
        if self.action == "label" and self.label not in LABELS:
            raise ValueError(f"review label {self.label!r} is not one of {', '.join(LABELS)}")


class NotFound(KeyError):
    """No item with this id."""


class CannotApply(ValueError):
    """A change that makes no sense for this item (e.g. accepting an item with no prediction)."""
