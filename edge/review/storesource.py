"""The face log (``edge.store.Store``) as a review source.

One Store is opened for the server's life and guarded by a lock: FastAPI runs plain ``def``
endpoints on a thread pool, and one SQLite connection must not be used by two threads at once.
The daemon writes the same database from its own process; SQLite's WAL and the store's busy
timeout let both go on (reads never block the writer, writes wait their turn).
"""
from __future__ import annotations

import threading
from pathlib import Path

from PIL import Image

from edge.contracts.labels import LABELS, UNCERTAIN
from edge.review.items import CannotApply, Filters, NotFound, ReviewChange, ReviewItem
from edge.store.database import Store
from edge.store.layout import DB_NAME
from edge.store.records import StoreError

_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def to_item(row) -> ReviewItem:
    """A store ``LoggedFace`` as a ``ReviewItem``."""
    track = getattr(row, "track", None)
    return ReviewItem(
        id=int(row.id), ts=float(row.ts), label=row.label, confidence=None if row.confidence is None else float(row.confidence),
        review_label=row.review_label, not_face=bool(row.not_face), reviewed_at=row.reviewed_at,
        track=None if track is None else int(track), frame=getattr(row, "frame", None),
        probs=tuple(float((row.probs or {}).get(label, 0.0)) for label in LABELS) if row.probs else (),
        model_sha256=getattr(row, "model_sha256", None), name=str(getattr(row, "crop_file", "") or ""),
        scene=bool(getattr(row, "scene_file", None)))


def _query_args(filters: Filters) -> dict:
    args = {}
    if filters.labels:
        args["labels"] = list(filters.labels)
    if filters.reviewed is not None:
        args["reviewed"] = filters.reviewed
    for key in ("min_confidence", "max_confidence", "since", "until"):
        value = getattr(filters, key)
        if value is not None:
            args[key] = value
    return args


class StoreSource:
    mode = "store"

    def __init__(self, state_dir: Path, busy_timeout_s: float = 10.0, readonly: bool = False):
        self.state_dir = Path(state_dir).resolve()
        self.description = str(self.state_dir)
        if not (self.state_dir / DB_NAME).is_file():
            # Opening read-write would create an empty log; a typo in the path deserves an error.
            raise FileNotFoundError(f"no moodcam store in {self.state_dir} (no {DB_NAME}); give the daemon's "
                                    "state directory (or --folder FACES/ to label pictures)")
        self.store = Store(self.state_dir, readonly=readonly, busy_timeout_s=busy_timeout_s)
        self._lock = threading.Lock()

    def query(self, filters: Filters, order: str, limit: int, offset: int) -> tuple[list[ReviewItem], int]:
        args = _query_args(filters)
        with self._lock:
            rows = self.store.faces(order=order, limit=limit, offset=offset, **args)
            total = self.store.count(**args)
        return [to_item(r) for r in rows], total

    def count(self, filters: Filters) -> int:
        with self._lock:
            return self.store.count(**_query_args(filters))

    def iter_reviewed(self, filters: Filters):
        # Keyset paging in the store: constant memory however many faces were reviewed.
        for row in self.store.iter_faces(batch=1000, **(_query_args(filters) | {"reviewed": True})):
            yield to_item(row)

    def confusion(self, filters: Filters) -> dict[tuple[str | None, str], int]:
        """Prediction x reviewer-label counts with COUNT queries: constant memory and fast on a Pi
        however many faces were reviewed (walking the rows would parse every one)."""
        args = _query_args(filters) | {"reviewed": True}
        cells = {}
        with self._lock:
            for p in (*LABELS, UNCERTAIN):   # "uncertain": what the reviewer said it was still counts
                row = args | {"labels": [p]}
                if not self.store.count(**row):
                    continue
                for c in LABELS:
                    if n := self.store.count(**row, review_labels=[c], not_face=False):
                        cells[(p, c)] = n
                if n := self.store.count(**row, not_face=True):
                    cells[(p, "not_face")] = n
        return cells

    def get(self, item_id: int) -> ReviewItem:
        with self._lock:
            row = self.store.get(item_id)
        if row is None:
            raise NotFound(item_id)
        return to_item(row)

    def crop_file(self, item_id: int) -> Path:
        """The crop file of a row, from the database only; never a path from the request."""
        try:
            with self._lock:
                path = self.store.crop_path(item_id)
        except StoreError:  # the row points outside the crops directory (a tampered database)
            raise NotFound(item_id) from None
        if path is None:
            raise NotFound(item_id)
        path = Path(path).resolve()
        # Belt and braces: a crop file outside the state directory is never served.
        if self.state_dir not in path.parents or not path.is_file():
            raise NotFound(item_id)
        return path

    def scene(self, item_id: int) -> tuple[Path, str]:
        """The frame thumbnail kept with a face (JPEG), by id from the database only."""
        try:
            with self._lock:
                path = self.store.scene_path(item_id)
        except StoreError:
            raise NotFound(item_id) from None
        if path is None or self.state_dir not in Path(path).resolve().parents or not Path(path).is_file():
            raise NotFound(item_id)
        return Path(path), "image/jpeg"

    def crop(self, item_id: int) -> tuple[Path, str]:
        path = self.crop_file(item_id)
        return path, _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")

    def crop_image(self, item_id: int):
        with Image.open(self.crop_file(item_id)) as im:
            return im.convert("L")

    def apply(self, changes: list[ReviewChange]) -> list[tuple[ReviewItem, ReviewItem]]:
        with self._lock:
            befores = []
            for ch in changes:  # check all first: a bulk action is applied whole or not at all
                row = self.store.get(ch.id)
                if row is None:
                    raise NotFound(ch.id)
                if ch.action == "accept" and row.label not in LABELS:  # none, or "uncertain"
                    raise CannotApply(f"face {ch.id} has no prediction to accept")
                befores.append(to_item(row))
            result = []
            for ch, before in zip(changes, befores):
                try:
                    if ch.action == "clear":
                        self.store.clear_review(ch.id)
                    elif ch.action == "not_face":
                        self.store.set_review(ch.id, label=None, not_face=True)
                    else:
                        self.store.set_review(ch.id, label=ch.label if ch.action == "label" else before.label)
                    after = self.store.get(ch.id)
                except KeyError:  # retention deleted it in between
                    raise NotFound(ch.id) from None
                if after is None:
                    raise NotFound(ch.id)
                result.append((before, to_item(after)))
            return result

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close:
            close()
