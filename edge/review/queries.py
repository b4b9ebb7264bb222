"""What the page reports beyond the rows themselves: counts, an accuracy estimate and the
confusion matrix of prediction vs reviewer label.

Built on a review source's public methods (``count``, ``iter_reviewed``) so it works the same for
the store and for a labelled folder, and needs nothing added to the store itself.
"""
from __future__ import annotations

import math
from dataclasses import replace

from edge.labels import LABELS
from edge.review.items import Filters

NOT_FACE = "not_face"


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval for a proportion; honest for small n, unlike p +- 1.96 se."""
    if n <= 0:
        return None
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def stats(source, filters: Filters) -> dict:
    """Counts and the accuracy estimate over the time/confidence range of ``filters``.

    The label and reviewed/unreviewed filters are ignored here on purpose: the counts say how far
    the whole range is reviewed, and the confusion matrix needs every predicted class.
    """
    base = filters.without_review_state()
    total = source.count(base)
    reviewed = source.count(replace(base, reviewed=True))
    predicted = {label: source.count(replace(base, labels=(label,))) for label in LABELS}
    columns = list(LABELS) + [NOT_FACE]
    matrix = {p: {c: 0 for c in columns} for p in LABELS}
    unpredicted = {c: 0 for c in columns}       # folder mode: pictures with no prediction
    by_reviewer = {c: 0 for c in columns}
    models: dict[str, list[int]] = {}           # sha256 prefix -> [faces reviewed, correct]
    for item in source.iter_reviewed(base):
        column = NOT_FACE if item.not_face else item.review_label
        if column is None:
            continue
        by_reviewer[column] += 1
        row = matrix.get(item.label) if item.label else None
        (row if row is not None else unpredicted)[column] += 1
        if row is not None and column != NOT_FACE and item.model_sha256:
            m = models.setdefault(item.model_sha256[:12], [0, 0])
            m[0] += 1
            m[1] += int(column == item.label)
    judged = sum(matrix[p][c] for p in LABELS for c in LABELS)
    correct = sum(matrix[p][p] for p in LABELS)
    false_detections = sum(matrix[p][NOT_FACE] for p in LABELS)
    interval = wilson_interval(correct, judged)
    return {
        "total": total,
        "reviewed": reviewed,
        "predicted": predicted,
        "reviewer": by_reviewer,
        "accuracy": {
            "judged": judged,           # reviewed faces that had a prediction
            "correct": correct,
            "value": correct / judged if judged else None,
            "interval95": list(interval) if interval else None,
            "not_face": false_detections,
            "per_class_recall": {l: (matrix[l][l] / s if (s := sum(matrix[p][l] for p in LABELS)) else None)
                                  for l in LABELS},
        },
        "confusion": {"rows": list(LABELS), "columns": columns,
                      "matrix": [[matrix[p][c] for c in columns] for p in LABELS]},
        "unpredicted": unpredicted,
        "models": {k: {"judged": v[0], "correct": v[1], "value": v[1] / v[0]} for k, v in models.items()},
    }
