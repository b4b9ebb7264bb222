"""The SQL behind the log's shared filters and orders, and a row turned back into a LoggedFace."""
from __future__ import annotations

import json
from dataclasses import dataclass

from edge.store.records import LoggedFace, parse_time

ORDERS = ("time", "time_desc", "confidence", "confidence_desc", "id")

COLUMNS = ("id, ts, frame, track, box_x, box_y, box_w, box_h, label, confidence, probs, model_sha256, "
            "source, crop_file, crop_bytes, review_label, not_face, reviewed_at, scene_file, scene_bytes")


def row_to_face(row: tuple) -> LoggedFace:
    (fid, ts, frame, track, bx, by, bw, bh, label, conf, probs, sha, source, crop_file, crop_bytes,
     review_label, not_face, reviewed_at, scene_file, scene_bytes) = row
    return LoggedFace(ts=ts, frame=frame, track=track, box=(bx, by, bw, bh), label=label, confidence=conf,
                      probs=json.loads(probs), model_sha256=sha, source=source, id=fid, crop_file=crop_file,
                      review_label=review_label, not_face=bool(not_face), reviewed_at=reviewed_at,
                      crop_bytes=crop_bytes, scene_file=scene_file, scene_bytes=scene_bytes)


@dataclass(frozen=True)
class Query:
    where: str
    params: tuple


def filter_sql(since=None, until=None, labels=None, reviewed=None, min_confidence=None, max_confidence=None,
             review_labels=None, not_face=None, source=None) -> Query:
    """SQL for the shared filters. since is inclusive, until exclusive; labels are predicted labels."""
    clauses, params = [], []
    comparisons = (("ts >= ?", since, parse_time), ("ts < ?", until, parse_time),
                   ("confidence >= ?", min_confidence, float), ("confidence <= ?", max_confidence, float),
                   ("source = ?", source, str))
    for clause, value, convert in comparisons:
        if value is not None:
            clauses.append(clause)
            params.append(convert(value))

    def one_of(column: str, values) -> None:
        values = [values] if isinstance(values, str) else list(values)
        clauses.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")  # none: no rows
        params.extend(values)

    if labels is not None:
        one_of("label", labels)
    if review_labels is not None:
        one_of("review_label", review_labels)
    if reviewed is not None:
        clauses.append("reviewed_at IS NOT NULL" if reviewed else "reviewed_at IS NULL")
    if not_face is not None:
        clauses.append("not_face = ?")
        params.append(1 if not_face else 0)
    return Query(" WHERE " + " AND ".join(clauses) if clauses else "", tuple(params))


ORDER_SQL = {
    "time": "ts, id",
    "time_desc": "ts DESC, id DESC",
    "confidence": "confidence, id",
    "confidence_desc": "confidence DESC, id",
    "id": "id",
}
