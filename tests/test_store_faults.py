"""Faults the store must survive: a full disk, kill -9 mid-write, readers beside a writer."""
from __future__ import annotations

import errno
import os
import random
import select
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from edge.store.database import Store
from edge.store.files import TMP_SUFFIX
from edge.store.health import verify
from edge.store.layout import DB_NAME
from edge.store.records import StoreError, StoreFullError, encode_png
from edge.store.retention import RetentionPolicy, enforce
from tests.store_helpers import make_crop, make_record

# --- a real small file system ------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs mounted for this test; skipped (with the reason) where mounting is not allowed.

    The injected-ENOSPC tests below cover the same code paths where this one cannot run.
    """
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'not root'}); "
                    "the injected-ENOSPC tests cover the full-disk paths")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> int:
    """Write a file until the file system is full; returns its size."""
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            size += os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return size


def _leftovers(store: Store) -> list[Path]:
    return [p for p in store.crops_dir.rglob("*") if p.name.endswith(TMP_SUFFIX)]


def test_disk_full_on_a_real_small_filesystem(small_fs):
    """Log until the disk is full, keep trying (the daemon does), resume when space returns;
    retention makes room on a full disk; the store reopens on a full disk."""
    big = 256  # 256 px noise crops (~65 KB each) fill megabytes in a few dozen faces
    policy = RetentionPolicy(max_age_days=0, reviewed_max_age_days=0, max_total_mb=0, min_free_mb=0.5)
    store = Store(small_fs / "state")
    try:
        assert store.reserve.path.stat().st_size == store.reserve.size == 2**20
        logged = [store.log_face(make_record(i), make_crop(i, big)) for i in range(40)]
        _fill(small_fs / "filler")
        full = 0
        for i in range(40, 60):
            try:
                logged.append(store.log_face(make_record(i), make_crop(i, big)))
            except StoreFullError as exc:
                full += 1
                assert exc.errno == errno.ENOSPC and "nothing was written" in str(exc)
        assert full >= 15  # almost every attempt after filling hit the full disk
        assert store.count() == len(logged)
        assert verify(store) == [] and _leftovers(store) == []  # nothing half-written
        store.write_heartbeat({"logged": len(logged), "dropped_full_disk": full})  # must not raise

        # Space returns: logging resumes with the very next face.
        (small_fs / "filler").unlink()
        new_id = store.log_face(make_record(100), make_crop(100, big))
        assert store.get(new_id).frame == 100 and verify(store) == []

        # Full again; this time retention makes the room. Deleting needs WAL space, which the
        # reserve provides; retention then frees enough to take the reserve back.
        _fill(small_fs / "filler2")
        with pytest.raises(StoreFullError):
            store.log_face(make_record(101), make_crop(101, big))
        result = enforce(store, policy)
        assert result.deleted_free >= 1 and not result.short_of_space
        assert result.free_bytes >= 0.5 * 2**20 and not store.reserve.missing
        store.log_face(make_record(102), make_crop(102, big))
        assert verify(store) == [] and _leftovers(store) == []
    finally:
        store.close()

    # The daemon restarting on a completely full disk: the store opens by giving up its reserve
    # (WAL needs room for its -shm even to read); logging waits until retention has made room.
    _fill(small_fs / "filler3")
    with Store(small_fs / "state") as again:
        assert again.reserve.missing and not again.reserve.path.exists()
        assert verify(again) == [] and again.count() >= 1
        with pytest.raises(StoreFullError, match="full-disk reserve"):
            again.log_face(make_record(103), make_crop(103, big))
        result = enforce(again, policy)
        assert result.deleted_free >= 1 and not again.reserve.missing
        again.log_face(make_record(104), make_crop(104, big))
        assert verify(again) == [] and _leftovers(again) == []

    # With neither room nor a reserve: a clear StoreFullError, not a crash.
    (small_fs / "state" / ".reserve").unlink()
    _fill(small_fs / "filler4")
    with pytest.raises(StoreFullError, match="opening .*free some space"):
        Store(small_fs / "state")
    with Store(small_fs / "state", readonly=True) as reader:  # `moodcam status` still works
        assert reader.count() >= 1 and verify(reader) == []


def test_injected_enospc_while_writing_the_crop(tmp_path, monkeypatch):
    store = Store(tmp_path / "state", reserve_bytes=0)
    store.log_face(make_record(0), make_crop(0))
    real_write = os.write

    def full_write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_write)
    with pytest.raises(StoreFullError, match="writing crop"):
        store.log_face(make_record(1), make_crop(1))
    monkeypatch.setattr(os, "write", real_write)
    assert store.count() == 1 and verify(store) == [] and _leftovers(store) == []
    store.log_face(make_record(2), make_crop(2))  # resumes
    assert store.count() == 2
    store.close()


def test_injected_full_database_removes_the_new_crop(tmp_path):
    """SQLITE_FULL on the row insert (max_page_count caps the database): the crop goes too."""
    store = Store(tmp_path / "state", reserve_bytes=0)
    store.log_face(make_record(0), make_crop(0))
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    failed = 0
    for i in range(1, 200):  # until the pages in hand are used up
        try:
            store.log_face(make_record(i), make_crop(i))
        except StoreFullError as exc:
            assert "logging a face" in str(exc)
            failed += 1
            break
    assert failed == 1
    rows = store.count()
    assert verify(store) == [] and len(list(store.crops_dir.rglob("*.png"))) == rows
    store.close()


# --- kill -9 ------------------------------------------------------------------------------------


def _logging_child(state: Path, ready_fd: int, seed: int) -> None:
    """Child: open the store (start-up cleanup included) and log faces until killed.

    Reviews and retention-style deletes are mixed in so the kills land in every write path.
    """
    try:
        store = Store(state, reserve_bytes=64 * 1024)
        encode_png(make_crop(0))  # warm up (imports) so the kill window covers real writes
        os.write(ready_fd, b"r")
        rng = random.Random(seed)
        i = seed * 10_000
        while True:
            face_id = store.log_face(make_record(i), make_crop(i % 50))
            i += 1
            r = rng.random()
            if r < 0.15:
                store.set_review(face_id, label="sad")
            elif r < 0.25:
                store.delete_faces(f.id for f in store.faces(limit=3))
            elif r < 0.30:
                store.write_heartbeat({"logged": i})
            elif r < 0.33:
                store.compact()  # incremental_vacuum + WAL checkpoint, as retention does
    finally:
        os._exit(0)


@pytest.mark.slow  # kill -9, many times
def test_kill_9_at_random_moments_leaves_a_consistent_store(tmp_path):
    state = tmp_path / "state"
    rng = random.Random(1234)
    cleaned = {"temp_files": 0, "orphan_crops": 0}
    kills = 0
    for round_no in range(60):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            _logging_child(state, w, round_no + 1)
        os.close(w)
        if round_no % 10 == 3:
            time.sleep(rng.uniform(0, 0.005))  # sometimes during open, migration and cleanup
        else:
            ready, _, _ = select.select([r], [], [], 60)
            assert ready, "logging child did not start"
            time.sleep(rng.uniform(0.0, 0.12))  # from the first face to dozens of faces into the run
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(r)
        kills += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        with Store(state) as store:  # reopening cleans leftovers...
            for key in cleaned:
                cleaned[key] += store.startup_cleanup[key]
            done = store.cleanup()  # (nothing left for a second pass)
            assert done["temp_files"] == done["orphan_crops"] == 0
            problems = verify(store)  # integrity_check ok, every crop there and decodes, no stray file
            assert problems == [], f"round {round_no}: {problems}"
            assert _leftovers(store) == []
        db = sqlite3.connect(state / DB_NAME)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    assert kills == 60
    db = sqlite3.connect(state / DB_NAME)
    ever_logged = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'faces'").fetchone()[0]
    db.close()
    assert ever_logged > 60  # the children really were logging between kills
    print(f"60 kills, {ever_logged} faces logged, leftovers cleaned on reopen: {cleaned}")


def test_start_up_cleanup_spares_a_live_writers_files(tmp_path):
    """A second process opening the store must not delete the writer's in-flight files."""
    writer = Store(tmp_path / "state", reserve_bytes=0)
    writer.log_face(make_record(0), make_crop(0))  # now holds the writer lock shared
    day = next(writer.crops_dir.iterdir())
    inflight = day / f".{uuid.uuid4().hex}.png{TMP_SUFFIX}"
    inflight.write_bytes(b"half")
    renamed_not_yet_committed = day / "just-renamed.png"
    renamed_not_yet_committed.write_bytes(b"png")
    other = Store(tmp_path / "state", reserve_bytes=0)  # e.g. a second daemon by mistake
    assert other.startup_cleanup["skipped"] and inflight.exists() and renamed_not_yet_committed.exists()
    other.log_face(make_record(1), make_crop(1))  # both hold the lock shared now
    assert writer.cleanup()["skipped"] and other.cleanup()["skipped"]  # neither cleans the other's files
    assert inflight.exists() and renamed_not_yet_committed.exists()
    other.close()
    writer.close()  # the writer dies: now they are leftovers
    with Store(tmp_path / "state", reserve_bytes=0) as after:
        assert not inflight.exists() and not renamed_not_yet_committed.exists()
        assert after.count() == 2 and verify(after) == []


# --- a reader beside a writer -------------------------------------------------------------------


def test_reader_and_second_writer_beside_an_open_write_transaction(tmp_path):
    """WAL: readers never wait for the writer; a second writer waits (busy timeout), not fails."""
    state = tmp_path / "state"
    with Store(state) as s:
        first = s.log_face(make_record(0), make_crop(0))
    go, hold = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: a writer that keeps its transaction open
        try:
            store = Store(state)
            with store._write():
                store._db.execute("UPDATE faces SET source = 'held' WHERE id = ?", (first,))
                os.write(go[1], b"g")
                select.select([hold[0]], [], [], 30)  # until the parent has read
        finally:
            os._exit(0)
    assert select.select([go[0]], [], [], 60)[0], "writer child did not start"
    with Store(state, readonly=True, busy_timeout_s=30) as reader:
        assert reader.count() == 1  # does not block on the open write transaction
        assert reader.get(first).source == "test"  # and sees the last committed state
    os.write(hold[1], b"h")  # let the writer commit ...
    with Store(state, busy_timeout_s=30) as second:
        second.set_review(first, label="happy")  # ... while this waits for the lock instead of failing
        assert second.get(first).source == "held" and second.get(first).review_label == "happy"
    os.waitpid(pid, 0)


def test_reader_process_while_a_writer_logs(tmp_path):
    state = tmp_path / "state"
    Store(state).close()
    total = 150
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: the daemon's role
        try:
            store = Store(state)
            for i in range(total):
                store.log_face(make_record(i), make_crop(i))
                if i % 25 == 0:
                    store.write_heartbeat({"logged": i + 1})
            store.close()
        finally:
            os._exit(0)
    seen = []
    with Store(state, readonly=True) as reader:
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            n = reader.count()
            assert len(reader.faces(order="time_desc", limit=1)) >= min(n, 1)
            seen.append(n)
            if done:
                break
        hb = reader.read_heartbeat()
    assert seen == sorted(seen) and seen[-1] == total  # never went backwards, ended complete
    assert hb["logged"] == 126


def test_a_writer_that_holds_the_lock_too_long_gives_a_clear_error(tmp_path):
    state = tmp_path / "state"
    with Store(state) as s:
        face_id = s.log_face(make_record(0), make_crop(0))
    holder = sqlite3.connect(state / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        with Store(state, busy_timeout_s=0.2) as s:
            with pytest.raises(StoreError, match="is busy: another process held its write lock"):
                s.set_review(face_id, label="sad")
            assert s.get(face_id).review_label is None  # reads still work meanwhile
    finally:
        holder.execute("ROLLBACK")
        holder.close()
