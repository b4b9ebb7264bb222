"""Retention on a real store: age, size and free-space rules, reviewed faces kept longer."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge.store.database import Store
from edge.store.health import disk_usage, verify
from edge.store.retention import RetentionPolicy, enforce
from tests.store_helpers import T0, make_crop, make_record

DAY = 86400.0
OFF = dict(max_age_days=0, reviewed_max_age_days=0, max_total_mb=0, min_free_mb=0)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state", reserve_bytes=0)
    yield s
    s.close()


def _log_days(store, days, reviewed_days=()):
    """One face per day at T0 + d days; the ones in reviewed_days get a review."""
    ids = {}
    for d in days:
        ids[d] = store.log_face(make_record(d, ts=T0 + d * DAY), make_crop(d))
        if d in reviewed_days:
            store.set_review(ids[d], label="sad")
    return ids


def test_age_rule_keeps_reviewed_faces_longer(store):
    ids = _log_days(store, range(10), reviewed_days={0, 1, 6})
    now = T0 + 10 * DAY
    result = enforce(store, RetentionPolicy(**{**OFF, "max_age_days": 5, "reviewed_max_age_days": 9.5}), now=now)
    # unreviewed older than 5 days: 2, 3, 4 (and 0, 1 were reviewed); reviewed older than 9.5 days: 0
    kept = {f.id for f in store.faces()}
    assert kept == {ids[d] for d in (1, 5, 6, 7, 8, 9)}
    assert (result.deleted_age, result.deleted_reviewed, result.deleted) == (4, 1, 4)
    assert verify(store) == []
    assert len([p for p in store.crops_dir.rglob("*.png")]) == 6
    # the emptied day folders are gone too
    assert sorted(p.name for p in store.crops_dir.iterdir()) == [f"2025-11-{d}" for d in (25, 29, 30)] + \
        ["2025-12-01", "2025-12-02", "2025-12-03"]


def test_zero_keeps_forever(store):
    _log_days(store, range(4), reviewed_days={0})
    result = enforce(store, RetentionPolicy(**OFF), now=T0 + 1000 * DAY)
    assert result.deleted == 0 and store.count() == 4
    enforce(store, RetentionPolicy(**{**OFF, "max_age_days": 1}), now=T0 + 1000 * DAY)
    assert [f.frame for f in store.faces()] == [0]  # reviewed, reviewed_max_age_days = 0: kept forever


def test_size_rule_deletes_oldest_unreviewed_only(store):
    ids = _log_days(store, range(40), reviewed_days={0, 1, 2})
    used = disk_usage(store)
    per_face = (used["used_db_bytes"] + used["crops_bytes"]) / 40
    limit_mb = 30 * per_face / 2**20  # room for about 30 faces
    result = enforce(store, RetentionPolicy(**{**OFF, "max_total_mb": limit_mb}), now=T0)
    left = store.faces()
    after = disk_usage(store)
    assert after["used_db_bytes"] + after["crops_bytes"] <= limit_mb * 2**20
    assert result.deleted_size >= 10 and result.deleted_reviewed == 0 and not result.over_size
    # oldest unreviewed went first: the survivors are the reviewed ones plus a contiguous newest run
    assert [f.id for f in left[:3]] == [ids[0], ids[1], ids[2]]
    first_kept = left[3].frame
    assert [f.frame for f in left[3:]] == list(range(first_kept, 40))
    assert verify(store) == []


def test_size_rule_never_deletes_reviewed_faces(store):
    _log_days(store, range(6), reviewed_days=set(range(6)))
    result = enforce(store, RetentionPolicy(**{**OFF, "max_total_mb": 0.001}), now=T0)
    assert result.deleted == 0 and result.over_size and store.count() == 6


def test_free_space_rule_goes_to_reviewed_faces_last(store):
    """An unreachable free-space target empties the store, unreviewed faces strictly first."""
    ids = _log_days(store, range(12), reviewed_days={0, 3})
    deleted_order = []
    real_delete = store.delete_faces

    def spy(face_ids):
        face_ids = list(face_ids)
        deleted_order.extend(face_ids)
        return real_delete(face_ids)

    store.delete_faces = spy
    huge = disk_usage(store)["fs_bytes"] / 2**20 * 2
    result = enforce(store, RetentionPolicy(**{**OFF, "min_free_mb": huge}), now=T0)
    assert store.count() == 0 and result.short_of_space
    assert result.deleted_free == 12 and result.deleted_reviewed == 2
    assert deleted_order[-2:] == [ids[0], ids[3]]
    assert deleted_order[:10] == [ids[d] for d in range(12) if d not in (0, 3)]
    assert verify(store) == []


def test_delete_is_crash_safe_rows_first_then_files(store, monkeypatch):
    """A crash after the rows are gone but before the files are: the next open removes the files."""
    _log_days(store, range(5))
    calls = {"n": 0}
    real_unlink = Path.unlink

    def crash_on_second(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash while unlinking")
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        store.delete_faces(f.id for f in store.faces())
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert store.count() == 0  # rows committed before any file went
    assert len(list(store.crops_dir.rglob("*.png"))) == 4  # one unlinked, then the "crash"
    assert verify(store) != []  # stray files reported
    store.close()
    reopened = Store(store.state_dir, reserve_bytes=0)
    assert verify(reopened) == [] and list(reopened.crops_dir.rglob("*.png")) == []
    reopened.close()


@pytest.mark.parametrize("bad, message", [
    (dict(max_age_days=-1), r"retention.max_age_days = -1: must be a number >= 0"),
    (dict(min_free_mb="100"), r"retention.min_free_mb = '100'"),
    (dict(max_age_days=30, reviewed_max_age_days=7), r"reviewed_max_age_days = 7 is shorter than"),
])
def test_policy_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**bad)


def test_policy_from_toml_table_suggests_close_key():
    assert RetentionPolicy.from_dict({"max_age_days": 7}).max_age_days == 7
    with pytest.raises(ValueError, match="unknown key retention.max_age_day; did you mean 'max_age_days'"):
        RetentionPolicy.from_dict({"max_age_day": 7})
