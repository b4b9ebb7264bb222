"""The store's API on a real SQLite database and real files."""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.store.database import Store
from edge.store.health import disk_usage, verify
from edge.store.layout import DB_NAME, default_state_dir
from edge.store.records import FaceRecord, LoggedFace, StoreError, iso_utc, parse_time
from edge.store.schema import SCHEMA_VERSION
from tests.store_helpers import T0, make_crop, make_record


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state")
    yield s
    s.close()


def test_log_face_round_trips_record_and_crop(store):
    rec = make_record(1)
    crop = make_crop(1)
    face_id = store.log_face(rec, crop)
    got = store.get(face_id)
    assert isinstance(got, LoggedFace)
    assert (got.ts, got.frame, got.track, got.box, got.label, got.source) == (rec.ts, 1, 1, rec.box, rec.label, "test")
    assert got.probs == pytest.approx(rec.probs)
    assert got.confidence == pytest.approx(rec.confidence)
    assert got.model_sha256 == rec.model_sha256
    assert (got.review_label, got.not_face, got.reviewed_at, got.reviewed) == (None, False, None, False)
    assert got.crop_file.startswith("crops/2025-11-24/") and got.crop_file.endswith(".png")
    path = store.crop_path(face_id)
    assert path == (store.state_dir / got.crop_file).resolve()
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img), crop)
    row = sqlite3.connect(store.db_path).execute("SELECT ts_iso FROM faces WHERE id=?", (face_id,)).fetchone()
    assert row[0] == "2025-11-24T16:00:01.000000Z" == iso_utc(rec.ts)
    assert store.get(face_id + 100) is None and store.crop_path(face_id + 100) is None


def test_files_and_dirs_are_private_and_db_is_wal(tmp_path):
    old = os.umask(0o022)
    try:
        with Store(tmp_path / "state") as s:
            s.log_face(make_record(0), make_crop(0))
            mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
            assert mode(s.state_dir) == 0o700
            assert mode(s.crops_dir) == 0o700
            day = next(s.crops_dir.iterdir())
            assert mode(day) == 0o700
            assert mode(next(day.iterdir())) == 0o600
            for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
                assert mode(s.state_dir / name) == 0o600, name
            db = sqlite3.connect(s.db_path)
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    finally:
        os.umask(old)


def test_filters_orders_and_count(store):
    ids = [store.log_face(make_record(i, label=("happy" if i % 2 else "sad"), confidence=0.1 * (i + 1)), make_crop(i))
           for i in range(8)]
    assert [f.id for f in store.faces()] == ids
    assert [f.id for f in store.faces(order="time_desc")] == ids[::-1]
    assert [f.id for f in store.faces(order="confidence")] == ids
    assert [f.id for f in store.faces(order="confidence_desc", limit=2)] == [ids[7], ids[6]]
    assert [f.id for f in store.faces(limit=3, offset=2)] == ids[2:5]
    assert [f.id for f in store.faces(since=T0 + 2, until=T0 + 5)] == ids[2:5]
    assert [f.id for f in store.faces(since=iso_utc(T0 + 6))] == ids[6:]
    assert store.count(labels=["happy"]) == 4 and store.count(labels="sad") == 4 and store.count(labels=[]) == 0
    assert store.count(min_confidence=0.45, max_confidence=0.65) == 2
    store.set_review(ids[0], label="angry")
    store.set_review(ids[1], label=None, not_face=True)
    assert store.count(reviewed=True) == 2 and store.count(reviewed=False) == 6
    assert [f.id for f in store.faces(reviewed=True)] == ids[:2]
    assert store.count(review_labels=["angry"]) == 1 and store.count(not_face=True) == 1
    assert [f.id for f in store.iter_faces(batch=3)] == ids
    assert [f.id for f in store.iter_faces(batch=3, since=T0 + 4)] == ids[4:]
    with pytest.raises(ValueError, match="unknown order 'newest'.*time_desc"):
        store.faces(order="newest")


def test_reviews_set_confirm_and_clear(store):
    face_id = store.log_face(make_record(3, label="happy"), make_crop(3))
    store.set_review(face_id, label="sad")
    f = store.get(face_id)
    assert (f.review_label, f.not_face, f.final_label, f.reviewed) == ("sad", False, "sad", True)
    store.set_review(face_id, label=None)  # confirm the model's label
    f = store.get(face_id)
    assert (f.review_label, f.final_label) == ("happy", "happy")
    store.set_review(face_id, label=None, not_face=True)
    f = store.get(face_id)
    assert (f.review_label, f.not_face, f.final_label) == (None, True, None)
    store.clear_review(face_id)
    f = store.get(face_id)
    assert (f.review_label, f.not_face, f.reviewed_at) == (None, False, None)
    with pytest.raises(ValueError, match="unknown label 'happi'"):
        store.set_review(face_id, label="happi")
    with pytest.raises(ValueError, match="not both"):
        store.set_review(face_id, label="sad", not_face=True)
    with pytest.raises(KeyError, match="no logged face with id 999"):
        store.set_review(999, label="sad")


def test_bad_crop_and_record_are_refused_before_touching_disk(store):
    with pytest.raises(ValueError, match="uint8 gray array"):
        store.log_face(make_record(0), np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 gray array"):
        store.log_face(make_record(0), np.zeros((48, 48), np.float32))
    bad = FaceRecord(ts=float("nan"), frame=0, track=0, box=(0, 0, 1, 1), label="happy", confidence=1.0,
                     probs={"happy": 1.0}, model_sha256="x")
    with pytest.raises(ValueError, match="non-finite"):
        store.log_face(bad, make_crop(0))
    assert store.count() == 0
    assert [p for p in store.crops_dir.rglob("*") if p.is_file()] == []


def test_heartbeat_and_disk_usage(store):
    assert store.read_heartbeat() is None
    store.write_heartbeat({"fps": 9.5, "frames": 100, "faces": 40, "logged": 12, "dropped_full_disk": 0})
    store.write_heartbeat({"fps": 10.0, "frames": 160, "faces": 50, "logged": 13, "dropped_full_disk": 1})
    hb = store.read_heartbeat()
    assert hb["fps"] == 10.0 and hb["logged"] == 13 and hb["dropped_full_disk"] == 1
    assert abs(hb["written_at"] - __import__("time").time()) < 3600
    before = disk_usage(store)
    sizes = [len(open(store.crop_path(store.log_face(make_record(i), make_crop(i))), "rb").read()) for i in range(3)]
    after = disk_usage(store)
    assert after["rows"] == 3 and after["crops_bytes"] == sum(sizes) > 0
    assert after["total_bytes"] >= after["db_bytes"] + after["crops_bytes"] and after["free_bytes"] > 0
    assert before["crops_bytes"] == 0


def test_readonly_reads_and_refuses_writes(tmp_path):
    with pytest.raises(StoreError, match="no moodcam store at .*--state"):
        Store(tmp_path / "nothing", readonly=True)
    with Store(tmp_path / "s") as w:
        face_id = w.log_face(make_record(0), make_crop(0))
    with Store(tmp_path / "s", readonly=True) as r:
        assert r.get(face_id).frame == 0 and r.count() == 1
        with pytest.raises(StoreError, match="read-only"):
            r.log_face(make_record(1), make_crop(1))
        with pytest.raises(StoreError, match="read-only"):
            r.set_review(face_id, label="sad")


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path / "s").close()
    db = sqlite3.connect(tmp_path / "s" / DB_NAME)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this moodcam"):
        Store(tmp_path / "s")


def test_crop_path_never_leaves_the_crops_dir(store):
    face_id = store.log_face(make_record(0), make_crop(0))
    db = sqlite3.connect(store.db_path)
    db.execute("UPDATE faces SET crop_file = '../../etc/passwd' WHERE id = ?", (face_id,))
    db.commit()
    with pytest.raises(StoreError, match="points outside"):
        store.crop_path(face_id)


def test_default_state_dir_order(monkeypatch, tmp_path):
    monkeypatch.delenv("MOODCAM_STATE_DIR", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    system = Path("/var/lib/moodcam")
    system_ok = system.is_dir() and os.access(system, os.W_OK)
    assert default_state_dir() == (system if system_ok else tmp_path / "xdg" / "moodcam")
    if not system_ok:
        monkeypatch.delenv("XDG_STATE_HOME")
        assert default_state_dir() == Path.home() / ".local/state/moodcam"
    monkeypatch.setenv("STATE_DIRECTORY", "/run/sd/state:/other")
    assert default_state_dir() == Path("/run/sd/state")
    monkeypatch.setenv("MOODCAM_STATE_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


def test_parse_time_accepts_unix_and_iso():
    assert parse_time("1764000000") == T0
    assert parse_time("2025-11-24T16:00:00Z") == T0
    assert parse_time("2025-11-24T17:00:00+01:00") == T0
    assert parse_time("2025-11-24T16:00:00") == T0  # naive = UTC
    with pytest.raises(ValueError, match="neither unix seconds nor an ISO-8601"):
        parse_time("yesterday")


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / DB_NAME).write_bytes(b"this is a text file, not SQLite " * 8)
    for readonly in (True, False):
        with pytest.raises(StoreError, match=r"cannot open .*moodcam.db: file is not a database"):
            Store(tmp_path / "s", readonly=readonly)


def test_reopening_keeps_data_and_schema(tmp_path):
    with Store(tmp_path / "s") as s:
        face_id = s.log_face(make_record(7), make_crop(7))
        s.set_review(face_id, label="neutral")
    with Store(tmp_path / "s") as s:
        assert s.get(face_id).review_label == "neutral" and verify(s) == []
        assert s.startup_cleanup == {"temp_files": 0, "orphan_crops": 0, "empty_dirs": 0, "skipped": False}


def test_migration_hook_upgrades_an_older_store(tmp_path, monkeypatch):
    import edge.store.database as database
    from edge.store.schema import MIGRATIONS

    with Store(tmp_path / "s") as s:
        face_id = s.log_face(make_record(0), make_crop(0))

    def add_note(db):  # what a future schema change looks like
        db.execute("ALTER TABLE faces ADD COLUMN note TEXT")

    monkeypatch.setitem(MIGRATIONS, SCHEMA_VERSION, add_note)
    monkeypatch.setattr(database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION}, this moodcam needs {SCHEMA_VERSION + 1}"):
        Store(tmp_path / "s", readonly=True)
    with Store(tmp_path / "s") as s:
        assert s.get(face_id).frame == 0
    db = sqlite3.connect(tmp_path / "s" / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert "note" in [row[1] for row in db.execute("PRAGMA table_info(faces)")]
