"""Small builders shared by the store tests: records and crops generated on the spot."""
from __future__ import annotations

import numpy as np

from edge.contracts.labels import LABELS
from edge.store.records import FaceRecord

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z: a fixed clock so tests never depend on the real one


def make_record(i: int = 0, *, ts: float | None = None, label: str | None = None, confidence: float | None = None,
                source: str = "test") -> FaceRecord:
    rng = np.random.default_rng(i)
    p = rng.dirichlet(np.ones(len(LABELS)))
    if label is not None:  # make the named label the most likely one
        j = LABELS.index(label)
        p[j] += 1.0
        p /= p.sum()
    k = int(np.argmax(p))
    return FaceRecord(ts=T0 + i if ts is None else ts, frame=i, track=i % 3, box=(10 + i, 20, 64, 64),
                      label=LABELS[k], confidence=float(p[k]) if confidence is None else confidence,
                      probs={name: float(v) for name, v in zip(LABELS, p)}, model_sha256="ab" * 32, source=source)


def make_crop(i: int = 0, size: int = 48) -> np.ndarray:
    """A noisy gray crop: noise keeps PNG from compressing it to nothing, so sizes are realistic."""
    return np.random.default_rng(1000 + i).integers(0, 256, (size, size), dtype=np.uint8)
