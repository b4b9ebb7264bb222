"""The durable face log: one SQLite database (WAL) plus one PNG crop file per logged face.

Layout under the state directory (dirs 0700, files 0600)::

    moodcam.db (+ -wal, -shm)      rows: time, frame, track, box, label, probs, model, crop file, review
    crops/YYYY-MM-DD/<name>.png    the face crop each row points at (UTC date of the face)
    crops/YYYY-MM-DD/<name>.jpg    optionally, a small JPEG of the whole frame (its scene), same rules
    .writer.lock                   flock: crop writers hold it shared, start-up cleanup exclusive
    .reserve                       1 MiB of allocated space, given up only to delete on a full disk

The one invariant everything else relies on: **a row exists only if its crop file is complete on
disk**. ``log_face`` writes the PNG to a temp file, fsyncs it, renames it into place and fsyncs the
directory, and only then inserts the row. Deleting goes the other way round: the row first
(durably), then the file. So a crash at any moment leaves at worst a temp file or a crop file with
no row, and opening the store read-write removes both.

``synchronous=NORMAL``: in WAL mode this never corrupts the database; a power cut may only lose the
last few committed rows. Because every crop is fsynced *before* its row is written, a lost row
leaves an orphan file (cleaned on the next open), never a row without its file, and NORMAL saves
one fsync per face on the Pi's SD card. The commits whose loss would hurt (human reviews, and
retention deletes, which are followed by unlinking files) are made with ``synchronous=FULL``.

A full disk: SQLite needs free space even to *delete* rows (the WAL grows first), so the store
keeps a small reserve file (edge.store.reserve). ``log_face`` never touches it and simply fails
with StoreFullError; ``delete_faces`` (and opening, since WAL needs room for its -shm) gives it
up on a full disk. Until it is re-created, ``log_face`` refuses to write, and retention makes
room for it; so retention can always make room again.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edge.contracts.labels import LABELS
from edge.store.files import file_size, make_private_dir, write_file_atomic
from edge.store.files import is_disk_full as _is_full
from edge.store.layout import CROPS_DIR, DB_NAME, LOCK_NAME, RESERVE_BYTES, RESERVE_NAME, default_state_dir
from edge.store.leftovers import remove_leftovers
from edge.store.queries import COLUMNS, ORDER_SQL, ORDERS, filter_sql, row_to_face
from edge.store.records import (
    FaceRecord,
    LoggedFace,
    StoreError,
    StoreFullError,
    check_record,
    encode_jpeg,
    encode_png,
    iso_utc,
)
from edge.store.reserve import Reserve
from edge.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("moodcam.store")


class Store:
    """The face log under one state directory. Thread-safe; several processes may share it.

    ``readonly=True`` opens without creating, migrating or cleaning anything (status, export).
    """

    def __init__(self, state_dir: Path | str, *, readonly: bool = False, busy_timeout_s: float = 10.0,
                 reserve_bytes: int = RESERVE_BYTES):
        self.state_dir = Path(state_dir).expanduser()
        self.readonly = readonly
        self.reserve = Reserve(self.state_dir / RESERVE_NAME, reserve_bytes, enabled=not readonly)
        self.db_path = self.state_dir / DB_NAME
        self.crops_dir = self.state_dir / CROPS_DIR
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._writer_locked = False
        self._closed = False
        if readonly:
            if self.state_dir.is_dir() and not os.access(self.state_dir, os.R_OK | os.X_OK):
                raise StoreError(f"no permission to read {self.state_dir}; run as the user that owns it "
                                 f"(on the Pi: sudo -u moodcam moodcam ...)")
            if not self.db_path.is_file():
                raise StoreError(f"no moodcam store at {self.state_dir} (missing {DB_NAME}); pass the daemon's "
                                 f"state directory with --state (default {default_state_dir()})")
            target, uri = f"file:{self.db_path.as_posix()}?mode=ro", True
        else:
            self._create_files()
            target, uri = str(self.db_path), False
        self._db: sqlite3.Connection | None = None
        for attempt in (1, 2):
            try:
                self._db = sqlite3.connect(target, uri=uri, timeout=busy_timeout_s, isolation_level=None,
                                           check_same_thread=False)
                self._open_db(busy_timeout_s)
                break
            except BaseException as exc:
                if self._db is not None:
                    self._db.close()
                    self._db = None
                if not isinstance(exc, sqlite3.DatabaseError):
                    self._release_lock_fd()
                    raise
                # WAL needs room for its -shm and -wal files even to read: on a full disk the
                # reserve is what lets the daemon come back up (and retention then make room).
                full = _is_full(exc) or self._fs_nearly_full()
                if full and attempt == 1 and not readonly and self.reserve.release():
                    continue
                if full and attempt == 1 and readonly and file_size(f"{self.db_path}-wal") == 0:
                    # An empty or missing WAL: everything committed is in the database file itself,
                    # so reading it as immutable is exact and needs no new -shm file: `moodcam
                    # status` still works on a full disk.
                    target += "&immutable=1"
                    continue
                self._release_lock_fd()
                if full:
                    raise StoreFullError(f"opening {self.db_path} (free some space on its file system)") from exc
                raise StoreError(f"cannot open {self.db_path}: {exc} (is it a moodcam database, readable and "
                                 "writable by this user?)") from exc

    def _fs_nearly_full(self) -> bool:
        """Less free space than SQLite needs to open a WAL database (its -shm and a few pages)."""
        try:
            vfs = os.statvfs(self.state_dir)
        except OSError:
            return False
        return vfs.f_bavail * vfs.f_frsize < 256 * 1024

    def _open_db(self, busy_timeout_s: float) -> None:
        """Pragmas, schema check/migration, then (read-write) crash cleanup and the reserve."""
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if not self.readonly:
            # Only touch what needs changing: these pragmas take the write lock, and a store that
            # another process is writing to must still open without waiting for it.
            if db.execute("PRAGMA page_count").fetchone()[0] == 0:
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # possible only before the first table
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA journal_size_limit = 4194304")  # the WAL shrinks back to 4 MB
        db.execute("PRAGMA synchronous = NORMAL")
        self._check_schema()
        self.startup_cleanup: dict | None = None  # what the start-up cleanup removed (read-write only)
        if not self.readonly:
            self.startup_cleanup = self.cleanup()
            self.reserve.ensure()

    # --- opening -------------------------------------------------------------------------------

    def _create_files(self) -> None:
        try:
            make_private_dir(self.state_dir)
            make_private_dir(self.crops_dir)
            for name in (DB_NAME, LOCK_NAME):
                # SQLite gives -wal and -shm the database file's mode, so creating it 0600 here
                # keeps all three private regardless of the process umask.
                fd = os.open(self.state_dir / name, os.O_RDWR | os.O_CREAT, 0o600)
                if name == LOCK_NAME:
                    self._lock_fd = fd
                else:
                    os.close(fd)
        except PermissionError as exc:
            raise StoreError(f"cannot write the state directory {self.state_dir}: {exc.strerror}; run as the "
                             "user that owns it (the 'moodcam' service user on the Pi) or pass --state DIR") from exc

    def _check_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} has schema version {version}, newer than this moodcam "
                             f"understands ({SCHEMA_VERSION}); upgrade moodcam")
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreError(f"{self.db_path} has schema version {version}, this moodcam needs {SCHEMA_VERSION}; "
                             "open it once read-write (start the daemon, or run `moodcam status` as its user)")
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](self._db)
                version += 1
                self._db.execute(f"PRAGMA user_version = {version}")
        log.info("store %s at schema version %d", self.db_path, SCHEMA_VERSION)

    def _release_lock_fd(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # also drops any flock held through it
            self._lock_fd = None

    # --- crash cleanup -------------------------------------------------------------------------

    def cleanup(self) -> dict:
        """Remove leftovers of interrupted writes: temp files and crop files with no row.

        Runs on every read-write open. It only runs when no other live process is writing crops
        (those hold the writer lock shared while they live), because another writer's temp file or
        just-renamed crop is not a leftover; a killed process's lock is gone with it.
        Returns {"temp_files": n, "orphan_crops": n, "empty_dirs": n, "skipped": bool}.
        """
        done = {"temp_files": 0, "orphan_crops": 0, "empty_dirs": 0, "skipped": False}
        if self.readonly or self._lock_fd is None:
            done["skipped"] = True
            return done
        with self._lock:
            try:
                # (when this process holds it shared, this converts; others holding it block that)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self._writer_locked:  # a failed conversion may drop the shared lock: take it back
                    fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
                log.info("another process is writing to %s; start-up cleanup skipped", self.state_dir)
                done["skipped"] = True
                return done
            try:
                known = {row[0] for row in self._db.execute(
                    "SELECT crop_file FROM faces UNION ALL SELECT scene_file FROM faces WHERE scene_file IS NOT NULL")}
                done |= remove_leftovers(self.crops_dir, known)
            finally:
                if self._writer_locked:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
                else:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if done["temp_files"] or done["orphan_crops"]:
            log.warning("cleaned leftovers of interrupted writes in %s: %d temp file(s), %d crop(s) with no row",
                        self.state_dir, done["temp_files"], done["orphan_crops"])
        return done

    # --- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False, what: str = "writing to the store"):
        """One IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks).

        durable=True commits with synchronous=FULL, for commits that must survive a power cut.
        """
        if self.readonly:
            raise StoreError(f"store at {self.state_dir} was opened read-only")
        with self._lock:
            self._check_open()
            if durable:
                self._db.execute("PRAGMA synchronous = FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                if _is_full(exc):
                    raise StoreFullError(what) from exc
                if getattr(exc, "sqlite_errorcode", None) in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
                    raise StoreError(f"{self.db_path} is busy: another process held its write lock longer than "
                                     f"the busy timeout while {what}; try again") from exc
                raise
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("PRAGMA synchronous = NORMAL")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    # --- writing faces -------------------------------------------------------------------------

    def log_face(self, record: FaceRecord, crop: np.ndarray, scene: np.ndarray | None = None) -> int:
        """Write the crop file (and the scene thumbnail, an RGB array, when given) durably, then the
        row; returns the row id.

        Raises StoreFullError (and leaves nothing behind) when the disk is full; the caller keeps
        running and simply tries again with the next face.
        """
        if self.readonly:
            raise StoreError(f"store at {self.state_dir} was opened read-only")
        check_record(record)
        png = encode_png(crop)
        jpeg = None if scene is None else encode_jpeg(scene)
        ts = float(record.ts)
        day = datetime.fromtimestamp(ts, tz=timezone.utc)
        name = f"{day:%H%M%S}-f{int(record.frame)}-t{int(record.track)}-{secrets.token_hex(4)}.png"
        rel = f"{CROPS_DIR}/{day:%Y-%m-%d}/{name}"
        final = self.state_dir / rel
        scene_rel = None if jpeg is None else rel.removesuffix(".png") + ".jpg"
        with self._lock:
            self._check_open()
            if self.reserve.missing and not self.reserve.ensure():
                # The reserve went to let retention delete on a full disk (or could not be made):
                # logging waits until there is room for it again, or a full disk could not be undone.
                raise StoreFullError(f"logging a face (first {self.reserve.size} bytes must be free again "
                                     "for the full-disk reserve)")
            if not self._writer_locked and self._lock_fd is not None:
                # Held shared for this process's lifetime: tells another process's start-up
                # cleanup that our in-flight files are not leftovers.
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
                self._writer_locked = True
            self._write_file(final, png)
            try:
                if scene_rel is not None:
                    self._write_file(self.state_dir / scene_rel, jpeg)
                with self._write(what="logging a face"):
                    cur = self._db.execute(
                        "INSERT INTO faces (ts, ts_iso, frame, track, box_x, box_y, box_w, box_h, label, confidence, "
                        "probs, model_sha256, source, crop_file, crop_bytes, scene_file, scene_bytes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (ts, iso_utc(ts), int(record.frame), int(record.track), *(int(v) for v in record.box),
                         record.label, float(record.confidence),
                         json.dumps({k: float(v) for k, v in record.probs.items()}),
                         record.model_sha256, record.source, rel, len(png), scene_rel,
                         0 if jpeg is None else len(jpeg)))
                    face_id = int(cur.lastrowid)
            except BaseException:
                # Remove the crop unless its row made it after all (an interrupt can land between
                # COMMIT and here); when unsure, leave it: the next start-up cleanup decides.
                with contextlib.suppress(OSError, sqlite3.Error):
                    if self._db.execute("SELECT 1 FROM faces WHERE crop_file = ?", (rel,)).fetchone() is None:
                        if scene_rel is not None:
                            (self.state_dir / scene_rel).unlink(missing_ok=True)
                        final.unlink()
                raise
        return face_id

    def _write_file(self, final: Path, data: bytes) -> None:
        try:
            write_file_atomic(final, data)
        except OSError as exc:
            if _is_full(exc):
                raise StoreFullError(f"writing crop {final.name}") from exc
            raise

    # --- reading -------------------------------------------------------------------------------

    def faces(self, *, since=None, until=None, labels=None, reviewed: bool | None = None, min_confidence=None,
              max_confidence=None, review_labels=None, not_face: bool | None = None, source: str | None = None,
              order: str = "time", limit: int | None = None, offset: int = 0) -> list[LoggedFace]:
        """Logged faces matching every given filter (since inclusive, until exclusive)."""
        if order not in ORDER_SQL:
            raise ValueError(f"unknown order '{order}'; use one of {', '.join(ORDERS)}")
        q = filter_sql(since, until, labels, reviewed, min_confidence, max_confidence, review_labels, not_face, source)
        sql = f"SELECT {COLUMNS} FROM faces{q.where} ORDER BY {ORDER_SQL[order]}"
        params = q.params
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += (-1 if limit is None else int(limit), int(offset))
        with self._lock:
            self._check_open()
            return [row_to_face(r) for r in self._db.execute(sql, params).fetchall()]

    def iter_faces(self, *, batch: int = 500, **filters) -> Iterator[LoggedFace]:
        """All matching faces in time order, fetched in batches (keyset paging: constant memory)."""
        q = filter_sql(**filters)
        last: tuple[float, int] | None = None
        while True:
            where, params = q.where, q.params
            if last is not None:
                where = (where + " AND " if where else " WHERE ") + "(ts > ? OR (ts = ? AND id > ?))"
                params += (last[0], last[0], last[1])
            with self._lock:
                self._check_open()
                rows = self._db.execute(f"SELECT {COLUMNS} FROM faces{where} ORDER BY ts, id LIMIT ?",
                                        params + (batch,)).fetchall()
            for row in rows:
                yield row_to_face(row)
            if len(rows) < batch:
                return
            last = (rows[-1][1], rows[-1][0])

    def count(self, **filters) -> int:
        q = filter_sql(**filters)
        with self._lock:
            self._check_open()
            return int(self._db.execute(f"SELECT COUNT(*) FROM faces{q.where}", q.params).fetchone()[0])

    def get(self, face_id: int) -> LoggedFace | None:
        with self._lock:
            self._check_open()
            row = self._db.execute(f"SELECT {COLUMNS} FROM faces WHERE id = ?", (int(face_id),)).fetchone()
        return row_to_face(row) if row else None

    def crop_path(self, face_id: int) -> Path | None:
        """The crop file of a row, from the database only; None for an unknown id.

        A path that would leave the crops directory (a tampered database) is refused.
        """
        face = self.get(face_id)
        return None if face is None else self._in_crops(face_id, face.crop_file)

    def scene_path(self, face_id: int) -> Path | None:
        """The scene thumbnail of a row, as crop_path; None also for a row without one."""
        face = self.get(face_id)
        return None if face is None or not face.scene_file else self._in_crops(face_id, face.scene_file)

    def _in_crops(self, face_id: int, rel: str) -> Path:
        path = (self.state_dir / rel).resolve()
        if not path.is_relative_to(self.crops_dir.resolve()):
            raise StoreError(f"row {face_id} points outside {self.crops_dir}: {rel!r}")
        return path

    def summary(self) -> dict:
        """Counts and times for `moodcam status`: rows, reviewed, not_face, first/last ts, per label."""
        with self._lock:
            self._check_open()
            rows, reviewed, not_face, first, last = self._db.execute(
                "SELECT COUNT(*), COUNT(reviewed_at), COALESCE(SUM(not_face), 0), MIN(ts), MAX(ts) FROM faces"
            ).fetchone()
            per_label = dict(self._db.execute("SELECT label, COUNT(*) FROM faces GROUP BY label ORDER BY label"))
        return {"rows": rows, "reviewed": reviewed, "not_face": not_face, "first_ts": first, "last_ts": last,
                "labels": per_label}

    def read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one read-only statement, under the store's lock (for edge.store.health)."""
        with self._lock:
            self._check_open()
            return self._db.execute(sql, params).fetchall()

    # --- reviews -------------------------------------------------------------------------------

    def set_review(self, face_id: int, *, label: str | None, not_face: bool = False) -> None:
        """Record a person's verdict on a face.

        label=<one of LABELS>: the true expression (a correction, or a confirmation when it equals
        the model's label). not_face=True: the crop is not a face (label must be None).
        label=None and not_face=False: confirms the model's own label.
        """
        if not_face and label is not None:
            raise ValueError(f"face {face_id}: give either a label or not_face=True, not both")
        if label is not None and label not in LABELS:
            raise ValueError(f"unknown label '{label}'; use one of {', '.join(LABELS)}")
        with self._write(durable=True, what="saving a review"):
            if label is None and not not_face:
                cur = self._db.execute("UPDATE faces SET review_label = label, not_face = 0, reviewed_at = ? "
                                       "WHERE id = ?", (time.time(), int(face_id)))
            else:
                cur = self._db.execute("UPDATE faces SET review_label = ?, not_face = ?, reviewed_at = ? WHERE id = ?",
                                       (label, 1 if not_face else 0, time.time(), int(face_id)))
            if cur.rowcount == 0:
                raise KeyError(f"no logged face with id {face_id}")

    def clear_review(self, face_id: int) -> None:
        with self._write(durable=True, what="clearing a review"):
            cur = self._db.execute("UPDATE faces SET review_label = NULL, not_face = 0, reviewed_at = NULL "
                                   "WHERE id = ?", (int(face_id),))
            if cur.rowcount == 0:
                raise KeyError(f"no logged face with id {face_id}")

    # --- deleting (retention) ------------------------------------------------------------------

    def delete_faces(self, face_ids: Iterable[int]) -> tuple[int, int]:
        """Delete rows, then their crop files (crash-safe order). Returns (rows, crop bytes freed).

        The row deletion is committed durably before any file goes, so a crash or power cut in
        between leaves only crop files with no row, which the next open removes.
        """
        ids = [int(i) for i in face_ids]
        if not ids:
            return 0, 0
        try:
            rows, files = self._delete_rows(ids)
        except StoreFullError:
            if not self.reserve.release():
                raise
            rows, files = self._delete_rows(ids)
        freed = 0
        for rel, size in files:
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / rel).unlink()
                freed += size
        return rows, freed

    def _delete_rows(self, ids: list[int]) -> tuple[int, list[tuple[str, int]]]:
        """(rows deleted, their files with sizes: each crop, and each scene thumbnail kept)."""
        rows, files = 0, []
        with self._write(durable=True, what="deleting old faces"):
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                files += self._db.execute(f"SELECT crop_file, crop_bytes FROM faces WHERE id IN ({marks}) UNION ALL "
                                          f"SELECT scene_file, scene_bytes FROM faces WHERE id IN ({marks}) "
                                          "AND scene_file IS NOT NULL", chunk + chunk).fetchall()
                rows += self._db.execute(f"DELETE FROM faces WHERE id IN ({marks})", chunk).rowcount
        return rows, files

    def compact(self) -> None:
        """Give free database pages back to the file system and truncate the WAL."""
        with self._lock:
            self._check_open()
            try:
                self._db.execute("PRAGMA incremental_vacuum")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                if _is_full(exc):
                    raise StoreFullError("compacting the database") from exc
                raise

    # --- heartbeat -----------------------------------------------------------------------------

    def write_heartbeat(self, stats: dict) -> None:
        """Save the daemon's latest counters (fps, frames, faces, logged, dropped_full_disk, ...).

        Never raises for a full disk: the daemon must keep running; the heartbeat is just stale.
        """
        payload = json.dumps(stats, default=str, sort_keys=True)
        try:
            with self._write(what="writing the heartbeat"):
                self._db.execute("INSERT INTO heartbeat (id, written_at, stats) VALUES (1, ?, ?) "
                                 "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, "
                                 "stats = excluded.stats", (time.time(), payload))
        except StoreFullError:
            log.warning("disk full: heartbeat not written")

    def read_heartbeat(self) -> dict | None:
        """The daemon's last heartbeat stats plus ``written_at`` (unix seconds), or None."""
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT written_at, stats FROM heartbeat WHERE id = 1").fetchone()
        if row is None:
            return None
        stats = json.loads(row[1])
        stats["written_at"] = row[0]
        return stats

    # --- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                if not self.readonly:
                    self._db.execute("PRAGMA optimize")
            self._db.close()
            self._release_lock_fd()
            self._writer_locked = False

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
