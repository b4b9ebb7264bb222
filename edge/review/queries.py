"""What the page reports beyond the rows themselves: counts, an accuracy estimate and the
confusion matrix of prediction vs reviewer label.

Built on a review source's public methods (``count``, ``iter_reviewed``) so it works the same for
the store and for a labelled folder, and needs nothing added to the store itself.
"""
from __future__ import annotations

import math
from dataclasses import replace

from edge.contracts.labels import LABELS, UNCERTAIN
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


def confusion_by_iteration(source, filters: Filters) -> dict[tuple[str | None, str], int]:
    """{(predicted label or None, reviewer label or "not_face"): count} by walking reviewed items."""
    cells: dict[tuple[str | None, str], int] = {}
    for item in source.iter_reviewed(filters):
        column = NOT_FACE if item.not_face else item.review_label
        if column is not None:
            key = (item.label, column)
            cells[key] = cells.get(key, 0) + 1
    return cells


def stats(source, filters: Filters) -> dict:
    """Counts and the accuracy estimate over the time/confidence range of ``filters``.

    The label and reviewed/unreviewed filters are ignored here on purpose: the counts say how far
    the whole range is reviewed, and the confusion matrix needs every predicted class.
    """
    base = filters.without_review_state()
    total = source.count(base)
    reviewed = source.count(replace(base, reviewed=True))
    predicted = {label: source.count(replace(base, labels=(label,))) for label in LABELS}
    uncertain = source.count(replace(base, labels=(UNCERTAIN,)))   # below classifier.min_confidence
    cells = source.confusion(base) if hasattr(source, "confusion") else confusion_by_iteration(source, base)
    columns = list(LABELS) + [NOT_FACE]
    matrix = [[cells.get((p, c), 0) for c in columns] for p in LABELS]
    unpredicted = {c: cells.get((None, c), 0) for c in columns}     # folder mode: no prediction
    by_reviewer = {c: sum(n for (_, col), n in cells.items() if col == c) for c in columns}
    judged = sum(matrix[i][j] for i in range(len(LABELS)) for j in range(len(LABELS)))
    correct = sum(matrix[i][i] for i in range(len(LABELS)))
    interval = wilson_interval(correct, judged)
    recall = {}
    for j, label in enumerate(LABELS):
        said = sum(matrix[i][j] for i in range(len(LABELS)))
        recall[label] = matrix[j][j] / said if said else None
    return {
        "total": total,
        "reviewed": reviewed,
        "predicted": predicted,
        "uncertain": uncertain,
        "reviewer": by_reviewer,
        "accuracy": {
            "judged": judged,           # reviewed faces that had a prediction
            "correct": correct,
            "value": correct / judged if judged else None,
            "interval95": list(interval) if interval else None,
            "not_face": sum(row[-1] for row in matrix),  # detections a reviewer said were no face
            "per_class_recall": recall,
        },
        "confusion": {"rows": list(LABELS), "columns": columns, "matrix": matrix},
        "unpredicted": unpredicted,
    }
