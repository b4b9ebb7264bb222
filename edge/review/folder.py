"""Label mode: review a folder of face pictures; labels are saved beside them in ``labels.csv``.

This is the original project's labelling notebook (one face at a time, type a number) as the same
keyboard page. A picture inside a sub-folder whose name names an emotion (``happy/``,
``Angry+Human+Faces/``) gets that emotion as its "prediction", so a scraped folder can be
checked with Enter and fixed with 1-7; other pictures start unlabeled.

``labels.csv`` (columns ``file,label,not_face,reviewed_at``; ``file`` relative to the folder) is
rewritten atomically after every action, so nothing typed is lost if the page or the server dies.
"""
from __future__ import annotations

import csv
import io
import os
import threading
import time
from dataclasses import replace
from pathlib import Path, PurePosixPath

from PIL import Image, ImageOps

from edge.contracts.labels import LABELS, label_from_name
from edge.review.files import write_private
from edge.review.items import CannotApply, Filters, NotFound, ReviewChange, ReviewItem

LABELS_FILE = "labels.csv"
PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
FIELDS = ["file", "label", "not_face", "reviewed_at"]


class FolderLabelsError(ValueError):
    """labels.csv cannot be read; the message names the file, the line and how to fix it."""


class FolderSource:
    mode = "folder"

    def __init__(self, folder: Path, clock=None):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder; give a folder of face pictures to label")
        self.labels_path = self.folder / LABELS_FILE
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.folder}: cannot write {LABELS_FILE} here; labels are saved beside the "
                                  "pictures, so run as a user who may write the folder (or copy it somewhere writable)")
        self.description = str(self.folder)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._files: list[str] = []        # relative posix paths; id = index + 1
        self._mtimes: list[float] = []
        self._labels: dict[str, tuple[str | None, bool, float]] = self._read_labels()
        self.rescan()
        if not self._files:
            raise FileNotFoundError(f"{self.folder}: no pictures ({', '.join(sorted(PICTURE_SUFFIXES))}) found to label")

    # --- the folder and labels.csv ---

    def rescan(self) -> None:
        """Pick up pictures added since start; ids of known pictures never change."""
        with self._lock:
            known = set(self._files)
            found = []
            for path in sorted(self.folder.rglob("*")):
                rel = path.relative_to(self.folder)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if path.is_file() and path.suffix.lower() in PICTURE_SUFFIXES:
                    found.append(rel.as_posix())
            for rel in found:
                if rel not in known:
                    self._files.append(rel)
                    self._mtimes.append((self.folder / rel).stat().st_mtime)

    def _read_labels(self) -> dict[str, tuple[str | None, bool, float]]:
        if not self.labels_path.exists():
            return {}
        out = {}
        with open(self.labels_path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "file" not in reader.fieldnames or "label" not in reader.fieldnames:
                raise FolderLabelsError(f"{self.labels_path}: expected a header line '{','.join(FIELDS)}'; "
                                        "fix the header or move the file away to start over")
            for row in reader:
                where = f"{self.labels_path}, line {reader.line_num}"
                rel = (row.get("file") or "").strip()
                pure = PurePosixPath(rel)
                if not rel or pure.is_absolute() or ".." in pure.parts:
                    raise FolderLabelsError(f"{where}: file {rel!r} must be a path inside the folder; fix or delete the line")
                label = (row.get("label") or "").strip() or None
                if label is not None and label not in LABELS:
                    raise FolderLabelsError(f"{where}: label {label!r} is not one of {', '.join(LABELS)}; fix or delete the line")
                not_face = (row.get("not_face") or "0").strip().lower() in ("1", "true", "yes")
                try:
                    reviewed_at = float(row.get("reviewed_at") or 0.0)
                except ValueError:
                    raise FolderLabelsError(f"{where}: reviewed_at {row.get('reviewed_at')!r} is not a number (unix seconds)") from None
                if label is None and not not_face:
                    continue
                out[rel] = (label, not_face, reviewed_at)
        return out

    def _write_labels(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(FIELDS)
        for rel in sorted(self._labels):
            label, not_face, at = self._labels[rel]
            writer.writerow([rel, label or "", int(not_face), f"{at:.3f}"])
        write_private(self.labels_path, buf.getvalue().encode())

    # --- the review-source interface ---

    def _item(self, index: int) -> ReviewItem:
        rel = self._files[index]
        folder_label = label_from_name(PurePosixPath(rel).parts[0]) if "/" in rel else None
        label, not_face, at = self._labels.get(rel, (None, False, None))
        return ReviewItem(id=index + 1, ts=self._mtimes[index], label=folder_label, confidence=None,
                          review_label=label, not_face=not_face, reviewed_at=at, name=rel)

    def _matching(self, filters: Filters) -> list[ReviewItem]:
        items = [self._item(i) for i in range(len(self._files))]
        if filters.labels:
            items = [it for it in items if it.label in filters.labels]
        if filters.reviewed is not None:
            items = [it for it in items if it.reviewed == filters.reviewed]
        if filters.since is not None:
            items = [it for it in items if it.ts >= filters.since]
        if filters.until is not None:
            items = [it for it in items if it.ts < filters.until]
        return items  # no confidences here: the confidence filter does not apply

    def query(self, filters: Filters, order: str, limit: int, offset: int) -> tuple[list[ReviewItem], int]:
        if offset == 0:  # a fresh list (page load, new filter, "r"): pick up pictures added meanwhile
            self.rescan()
        with self._lock:
            items = self._matching(filters)
        if order == "time":
            items.sort(key=lambda it: (it.ts, it.id))
        elif order == "time_desc":
            items.sort(key=lambda it: (-it.ts, -it.id))
        # "confidence": there is none; keep the folder's (name) order
        return items[offset: offset + limit], len(items)

    def count(self, filters: Filters) -> int:
        with self._lock:
            return len(self._matching(filters))

    def iter_reviewed(self, filters: Filters):
        with self._lock:
            return iter(self._matching(replace(filters, reviewed=True)))

    def get(self, item_id: int) -> ReviewItem:
        with self._lock:
            if not 1 <= item_id <= len(self._files):
                raise NotFound(item_id)
            return self._item(item_id - 1)

    def picture_path(self, item_id: int) -> Path:
        """The picture for an id; resolved from the scan, never from anything a request sends."""
        rel = self.get(item_id).name
        path = (self.folder / rel).resolve()
        if self.folder not in path.parents:  # a symlink pointing out of the folder
            raise NotFound(item_id)
        return path

    def crop(self, item_id: int) -> tuple[bytes, str]:
        """The picture re-encoded as PNG (at most 320 px): browsers can't show TIFF, and a
        re-encoded image never carries a file's other content to the page."""
        with Image.open(self.picture_path(item_id)) as im:
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB" if im.mode not in ("L", "LA", "I", "I;16", "1") else "L")
            im.thumbnail((320, 320))
            buf = io.BytesIO()
            im.save(buf, "PNG")
        return buf.getvalue(), "image/png"

    def crop_image(self, item_id: int):
        with Image.open(self.picture_path(item_id)) as im:
            return ImageOps.exif_transpose(im).convert("L")

    def apply(self, changes: list[ReviewChange]) -> list[tuple[ReviewItem, ReviewItem]]:
        with self._lock:
            for ch in changes:
                if not 1 <= ch.id <= len(self._files):
                    raise NotFound(ch.id)
                if ch.action == "accept" and self._item(ch.id - 1).label is None:
                    raise CannotApply(f"picture {ch.id} ({self._files[ch.id - 1]}) has no prediction to accept; press 1-7 to label it")
            befores = [self._item(ch.id - 1) for ch in changes]
            saved = dict(self._labels)
            now = self._clock()
            for ch in changes:
                before = self._item(ch.id - 1)
                if ch.action == "clear":
                    self._labels.pop(before.name, None)
                elif ch.action == "not_face":
                    self._labels[before.name] = (None, True, now)
                else:
                    self._labels[before.name] = (ch.label if ch.action == "label" else before.label, False, now)
            try:
                self._write_labels()
            except BaseException:
                self._labels = saved  # what the page sees must be what is on disk
                raise
            return [(b, self._item(ch.id - 1)) for b, ch in zip(befores, changes)]

    def close(self) -> None:
        pass
