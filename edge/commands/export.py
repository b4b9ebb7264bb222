"""moodcam export --state DIR --format jsonl|csv [--since T] [--until T] [--out FILE|-]

Writes the face log out, one JSON object (JSONL) or one row (CSV) per logged face, oldest first.
The fields are a contract, documented in the README ("The log and retention"); FIELDS below is
the CSV column order.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from pathlib import Path

from edge.contracts.labels import LABELS

HELP = "write the log out as JSONL or CSV"
DESCRIPTION = ("Write the face log out, oldest first: one JSON object per line (jsonl) or one CSV row per "
               "logged face, with time, frame, track, box, label, confidence, all probabilities, model "
               "hash, crop file and review fields. Reads the store read-only; the daemon may keep running.")

FIELDS = (["id", "ts", "ts_unix", "frame", "track", "box_x", "box_y", "box_w", "box_h", "label", "confidence"]
          + [f"p_{name}" for name in LABELS]
          + ["model_sha256", "source", "crop_file", "review_label", "not_face", "reviewed_at", "final_label"])


def add_arguments(p) -> None:
    from edge.store.layout import default_state_dir

    p.add_argument("--state", type=Path, default=None, metavar="DIR",
                   help=f"the daemon's state directory (default: {default_state_dir()})")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="output format (default jsonl)")
    p.add_argument("--since", metavar="TIME", help="only faces at or after TIME: ISO-8601 (UTC if no zone) or unix seconds")
    p.add_argument("--until", metavar="TIME", help="only faces before TIME")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--reviewed", dest="reviewed", action="store_const", const=True, default=None,
                       help="only reviewed faces")
    group.add_argument("--unreviewed", dest="reviewed", action="store_const", const=False, help="only unreviewed faces")
    p.add_argument("--out", default="-", metavar="FILE", help="output file, '-' for stdout (default); "
                   "a file is written whole or not at all, readable by its owner only")


def face_to_dict(face) -> dict:
    """The JSONL object of one logged face (the export contract)."""
    from edge.store.records import iso_utc

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


def run(args) -> int:
    from edge.store.database import open_for_reading
    from edge.store.layout import default_state_dir
    from edge.store.records import parse_time

    state = args.state or default_state_dir()
    try:
        filters = {"since": parse_time(args.since) if args.since else None,
                   "until": parse_time(args.until) if args.until else None,
                   "reviewed": args.reviewed}
    except ValueError as exc:
        print(f"moodcam export: {exc}", file=sys.stderr)
        return 2
    store = open_for_reading(state, "moodcam export")
    if store is None:
        return 2
    try:
        if args.out == "-":
            try:
                n = write_export(store, sys.stdout, args.format, **filters)
                sys.stdout.flush()
            except BrokenPipeError:  # `moodcam export | head`: the reader has seen enough
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        else:
            n = _export_to_file(store, Path(args.out), args.format, filters)
    finally:
        store.close()
    print(f"exported {n} face(s) from {state}" + ("" if args.out == "-" else f" to {args.out}"), file=sys.stderr)
    return 0


def _export_to_file(store, path: Path, fmt: str, filters: dict) -> int:
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
