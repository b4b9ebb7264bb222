"""The accuracy estimate and the confusion matrix the page shows."""
from __future__ import annotations

import pytest

from edge.contracts.labels import LABELS
from edge.review.items import Filters
from edge.review.queries import confusion_by_iteration, stats, wilson_interval
from edge.review.storesource import StoreSource
from tests.review_support import fill_store


def test_wilson_interval_known_values():
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-3)


def test_stats_match_a_hand_count(tmp_path):
    from edge.store.database import Store

    state = tmp_path / "state"
    ids = fill_store(state, 35)                      # five of each predicted label
    verdicts = {}
    with Store(state) as store:
        for face_id in ids[:20]:
            pred = LABELS[(face_id - 1) % 7]
            if face_id % 5 == 0:
                store.set_review(face_id, label=None, not_face=True)
                verdicts[face_id] = (pred, "not_face")
            elif face_id % 3 == 0:
                store.set_review(face_id, label="neutral")
                verdicts[face_id] = (pred, "neutral")
            else:
                store.set_review(face_id, label=None)    # confirm the prediction
                verdicts[face_id] = (pred, pred)
    source = StoreSource(state)
    try:
        s = stats(source, Filters(labels=("happy",), reviewed=False))   # label/reviewed filters don't narrow stats
        faces = [(p, c) for p, c in verdicts.values() if c != "not_face"]
        assert s["total"] == 35 and s["reviewed"] == 20
        assert s["predicted"] == {l: 5 for l in LABELS}
        assert s["accuracy"]["judged"] == len(faces)
        assert s["accuracy"]["correct"] == sum(p == c for p, c in faces)
        assert s["accuracy"]["not_face"] == sum(c == "not_face" for _, c in verdicts.values())
        m = s["confusion"]["matrix"]
        for i, p in enumerate(LABELS):
            for j, c in enumerate(s["confusion"]["columns"]):
                assert m[i][j] == sum(1 for v in verdicts.values() if v == (p, c)), (p, c)
        # The COUNT-query path and walking the rows agree, also within a time range.
        window = Filters(since=1_795_000_000.0 + 5 * 4, until=1_795_000_000.0 + 5 * 15)
        assert source.confusion(window) == confusion_by_iteration(source, window)
        assert stats(source, window)["total"] == 11
    finally:
        source.close()


def test_uncertain_faces_are_counted_apart_and_cannot_be_accepted(tmp_path):
    """A face logged as "uncertain" (below classifier.min_confidence) is no prediction: counted on
    its own, left out of the accuracy, and a reviewer labels it rather than accepting it."""
    from dataclasses import replace

    from edge.review.items import CannotApply, ReviewChange
    from edge.store.database import Store
    from tests.store_helpers import make_crop, make_record

    state = tmp_path / "state"
    fill_store(state, 7)
    with Store(state) as store:
        face_id = store.log_face(replace(make_record(99, confidence=0.3), label="uncertain"), make_crop(99))
    source = StoreSource(state)
    try:
        s = stats(source, Filters())
        assert s["total"] == 8 and s["uncertain"] == 1 and sum(s["predicted"].values()) == 7
        with pytest.raises(CannotApply):
            source.apply([ReviewChange(face_id, "accept", None)])
        source.apply([ReviewChange(face_id, "label", "sad")])
        s = stats(source, Filters())
        assert s["reviewed"] == 1 and s["accuracy"]["judged"] == 0 and s["reviewer"]["sad"] == 1
    finally:
        source.close()
