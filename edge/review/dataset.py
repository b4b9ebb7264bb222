"""Reviewed faces out as a training set: ``OUT/<label>/<id>.png`` plus ``OUT/manifest.json``.

``trainer.datasets.load_face_folder`` reads exactly this layout, so ``moodcam-train fit OUT``
trains on it directly. Faces marked "not a face" and unreviewed faces are left out. The data set
is built in a temporary folder beside OUT and renamed into place, so OUT is never half-written.
"""
from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

from edge.contracts.labels import LABELS
from edge.review.files import make_private_dir, write_private
from edge.review.folder import LABELS_FILE, FolderSource
from edge.review.items import Filters
from edge.review.storesource import StoreSource

MANIFEST = "manifest.json"


def open_source(path: Path, readonly: bool = True):
    """A labelled folder (it has a labels.csv) or a state directory (the store)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory; give the daemon's state directory or a labelled folder")
    if (path / LABELS_FILE).exists():
        return FolderSource(path)
    return StoreSource(path, readonly=readonly)


def write_dataset(source, out: Path, *, force: bool = False) -> dict:
    """Write every reviewed face of ``source`` under ``out``; returns the manifest."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).exists():
            raise FileExistsError(f"{out} exists and is not an earlier data set (no {MANIFEST}); choose an empty --out")
        if not force:
            raise FileExistsError(f"{out} holds an earlier data set; pass --force to replace it")
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new parent is private; an existing one is left alone
    tmp = out.with_name(f".{out.name}.export-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    make_private_dir(tmp)
    items, counts, skipped = [], {label: 0 for label in LABELS}, {"not_face": 0, "unreadable": 0}
    for item in source.iter_reviewed(Filters()):
        if item.not_face or item.review_label is None:
            skipped["not_face"] += int(item.not_face)
            continue
        try:
            image = source.crop_image(item.id)
        except (OSError, KeyError):
            skipped["unreadable"] += 1
            continue
        buf = io.BytesIO()
        image.save(buf, "PNG")
        folder = make_private_dir(tmp / item.review_label)
        rel = f"{item.review_label}/{item.id}.png"
        write_private(folder / f"{item.id}.png", buf.getvalue())
        counts[item.review_label] += 1
        items.append({"file": rel, "id": item.id, "label": item.review_label, "predicted": item.label,
                      "confidence": item.confidence, "ts": item.ts, "track": item.track,
                      "model_sha256": item.model_sha256, "reviewed_at": item.reviewed_at,
                      "source": item.name})
    manifest = {"format": "moodcam-reviewed/1", "source": source.description, "mode": source.mode,
                "exported_at": time.time(), "labels": list(LABELS), "count": len(items),
                "per_class": counts, "skipped": skipped, "items": items}
    write_private(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return manifest
