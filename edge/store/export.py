"""The log written out: one JSON object (JSONL) or one CSV row per logged face, oldest first.

The fields are a contract (docs/log.md, "moodcam export"); FIELDS is the CSV column order. A file
is written whole or not at all (temp file, fsync, rename) and readable by its owner only: the
crops it points at are faces, personal data.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path

from edge.contracts.labels import LABELS
from edge.store.records import iso_utc

FIELDS = (["id", "ts", "ts_unix", "frame", "track", "box_x", "box_y", "box_w", "box_h", "label", "confidence"]
          + [f"p_{name}" for name in LABELS]
          + ["model_sha256", "source", "crop_file", "review_label", "not_face", "reviewed_at", "final_label"])


def face_to_dict(face) -> dict:
    """The JSONL object of one logged face (the export contract)."""
    return {
        "id": face.id,
        "ts": iso_utc(face.ts),
        "ts_unix": face.ts,
        "frame": face.frame,
        "track": face.track,
        "box": list(face.box),
        "label": face.label,
        "confidence": face.confidence,
        "probs": face.probs,
        "model_sha256": face.model_sha256,
        "source": face.source,
        "crop_file": face.crop_file,
        "review_label": face.review_label,
        "not_face": face.not_face,
        "reviewed_at": iso_utc(face.reviewed_at),
        "final_label": face.final_label,
    }


def face_to_row(face) -> dict:
    """The CSV row of one logged face: box and probs spread over columns, booleans as 0/1."""
    d = face_to_dict(face)
    x, y, w, h = d.pop("box")
    probs = d.pop("probs")
    row = {**d, "box_x": x, "box_y": y, "box_w": w, "box_h": h, "not_face": int(d["not_face"])}
    row.update({f"p_{name}": probs.get(name, "") for name in LABELS})
    return {k: ("" if row[k] is None else row[k]) for k in FIELDS}


def write_export(store, out, fmt: str, **filters) -> int:
    """Write every matching face to the text stream ``out``; returns how many."""
    n = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for face in store.iter_faces(**filters):
            writer.writerow(face_to_row(face))
            n += 1
    else:
        for face in store.iter_faces(**filters):
            out.write(json.dumps(face_to_dict(face), ensure_ascii=False) + "\n")
            n += 1
    return n


def write_export_file(store, path: Path, fmt: str, filters: dict) -> int:
    """Temp file beside the target, then rename: an interrupted export never looks complete."""
    path = path.expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # faces are personal data
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            n = write_export(store, out, fmt, **filters)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n
