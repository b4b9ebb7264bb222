"""The durable face log: one SQLite database (WAL) plus one PNG crop file per logged face.

Layout under the state directory (dirs 0700, files 0600)::

    moodcam.db (+ -wal, -shm)      rows: time, frame, track, box, label, probs, model, crop file, review
    crops/YYYY-MM-DD/<name>.png    the face crop each row points at (UTC date of the face)
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
keeps a small reserve file. ``log_face`` never touches it and simply fails with StoreFullError;
``delete_faces`` (and opening, since WAL needs room for its -shm) gives it up on a full disk.
Until it is re-created, ``log_face`` refuses to write, and retention makes room for it; so
retention can always make room again.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edge.storefiles import TMP_SUFFIX, file_size, make_private_dir, make_reserve, write_file_atomic
from edge.storefiles import is_disk_full as _is_full
from edge.storeschema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["FaceRecord", "LoggedFace", "Store", "StoreError", "StoreFullError", "default_state_dir", "iso_utc",
           "parse_time", "encode_png", "DB_NAME", "CROPS_DIR", "TMP_SUFFIX", "SCHEMA_VERSION", "MIGRATIONS"]

log = logging.getLogger("moodcam.store")

DB_NAME = "moodcam.db"
CROPS_DIR = "crops"
LOCK_NAME = ".writer.lock"
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 1 << 20
ORDERS = ("time", "time_desc", "confidence", "confidence_desc", "id")



@dataclass(frozen=True)
class FaceRecord:
    """What the daemon logs for one face."""

    ts: float                       # unix seconds (UTC); also stored as ISO-8601 UTC text
    frame: int
    track: int
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    label: str
    confidence: float
    probs: dict[str, float]         # every label -> probability
    model_sha256: str
    source: str = ""                # camera/source name


@dataclass(frozen=True, kw_only=True)
class LoggedFace(FaceRecord):
    """A face as read back from the store: the record plus its id, crop file and review."""

    id: int
    crop_file: str                  # relative to the state directory, e.g. crops/2026-11-24/....png
    review_label: str | None = None
    not_face: bool = False
    reviewed_at: float | None = None
    crop_bytes: int = 0

    @property
    def reviewed(self) -> bool:
        return self.reviewed_at is not None

    @property
    def final_label(self) -> str | None:
        """The reviewed label if there is one, else the model's; None when marked not-a-face."""
        if self.not_face:
            return None
        return self.review_label or self.label


class StoreError(RuntimeError):
    """The store cannot be opened or used (missing, newer schema, bad argument)."""


class StoreFullError(OSError):
    """The file system is full (ENOSPC/EDQUOT): nothing of the failed write stays behind."""

    def __init__(self, what: str):
        super().__init__(errno.ENOSPC, f"disk full while {what}; nothing was written")


def default_state_dir() -> Path:
    """Where the log lives when no ``--state`` / ``store.state_dir`` is given.

    In order: ``$MOODCAM_STATE_DIR``; ``$STATE_DIRECTORY`` (set by systemd's StateDirectory=);
    ``/var/lib/moodcam`` when it exists and is writable; ``$XDG_STATE_HOME/moodcam``;
    ``~/.local/state/moodcam``.
    """
    explicit = os.environ.get("MOODCAM_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    system = Path("/var/lib/moodcam")
    if system.is_dir() and os.access(system, os.W_OK | os.X_OK):
        return system
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "moodcam"


def iso_utc(ts: float | None) -> str | None:
    """``2026-11-24T02:49:51.123456Z`` for a unix time (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | float | int | datetime) -> float:
    """Unix seconds from a unix number, a datetime, or ISO-8601 text (naive text means UTC)."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"'{value}' is neither unix seconds nor an ISO-8601 time "
                         "(examples: 1764000000, 2026-11-24, 2026-11-24T08:00:00Z)") from None
    return parse_time(dt)


def encode_png(crop: np.ndarray) -> bytes:
    """PNG bytes of a uint8 gray crop (H, W); refuses anything else with a clear error."""
    from PIL import Image

    arr = np.asarray(crop)
    if arr.dtype != np.uint8 or arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"a face crop must be a uint8 gray array (H, W); got dtype {arr.dtype}, "
                         f"shape {arr.shape} (use edge.preprocess.crop_face)")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr), mode="L").save(buf, format="PNG")
    return buf.getvalue()


_COLUMNS = ("id, ts, frame, track, box_x, box_y, box_w, box_h, label, confidence, probs, model_sha256, "
            "source, crop_file, crop_bytes, review_label, not_face, reviewed_at")


def _row_to_face(row: tuple) -> LoggedFace:
    (fid, ts, frame, track, bx, by, bw, bh, label, conf, probs, sha, source, crop_file, crop_bytes,
     review_label, not_face, reviewed_at) = row
    return LoggedFace(ts=ts, frame=frame, track=track, box=(bx, by, bw, bh), label=label, confidence=conf,
                      probs=json.loads(probs), model_sha256=sha, source=source, id=fid, crop_file=crop_file,
                      review_label=review_label, not_face=bool(not_face), reviewed_at=reviewed_at,
                      crop_bytes=crop_bytes)


@dataclass(frozen=True)
class _Query:
    where: str
    params: tuple


def _filters(since=None, until=None, labels=None, reviewed=None, min_confidence=None, max_confidence=None,
             review_labels=None, not_face=None, source=None) -> _Query:
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
    return _Query(" WHERE " + " AND ".join(clauses) if clauses else "", tuple(params))


_ORDER_SQL = {
    "time": "ts, id",
    "time_desc": "ts DESC, id DESC",
    "confidence": "confidence, id",
    "confidence_desc": "confidence DESC, id",
    "id": "id",
}


class Store:
    """The face log under one state directory. Thread-safe; several processes may share it.

    ``readonly=True`` opens without creating, migrating or cleaning anything (status, export).
    """

    def __init__(self, state_dir: Path | str, *, readonly: bool = False, busy_timeout_s: float = 10.0,
                 reserve_bytes: int = RESERVE_BYTES):
        self.state_dir = Path(state_dir).expanduser()
        self.readonly = readonly
        self.reserve_bytes = int(reserve_bytes)
        self.reserve_path = self.state_dir / RESERVE_NAME
        self._reserve_ok = False
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
                if full and attempt == 1 and not readonly and self.release_reserve():
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
            self.ensure_reserve()

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
                known = {row[0] for row in self._db.execute("SELECT crop_file FROM faces")}
                today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
                for day in sorted(self.crops_dir.iterdir()) if self.crops_dir.is_dir() else []:
                    if not day.is_dir():
                        if day.name.endswith(TMP_SUFFIX):
                            day.unlink(missing_ok=True)
                            done["temp_files"] += 1
                        continue
                    for entry in os.scandir(day):
                        rel = f"{CROPS_DIR}/{day.name}/{entry.name}"
                        if entry.name.endswith(TMP_SUFFIX):
                            os.unlink(entry.path)
                            done["temp_files"] += 1
                        elif rel not in known and entry.is_file(follow_symlinks=False):
                            os.unlink(entry.path)
                            done["orphan_crops"] += 1
                    if day.name != today and not any(day.iterdir()):
                        with contextlib.suppress(OSError):
                            day.rmdir()
                            done["empty_dirs"] += 1
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

    def log_face(self, record: FaceRecord, crop: np.ndarray) -> int:
        """Write the crop file durably, then the row; returns the row id.

        Raises StoreFullError (and leaves nothing behind) when the disk is full; the caller keeps
        running and simply tries again with the next face.
        """
        if self.readonly:
            raise StoreError(f"store at {self.state_dir} was opened read-only")
        _check_record(record)
        png = encode_png(crop)
        ts = float(record.ts)
        day = datetime.fromtimestamp(ts, tz=timezone.utc)
        name = f"{day:%H%M%S}-f{int(record.frame)}-t{int(record.track)}-{secrets.token_hex(4)}.png"
        rel = f"{CROPS_DIR}/{day:%Y-%m-%d}/{name}"
        final = self.state_dir / rel
        with self._lock:
            self._check_open()
            if self.reserve_missing and not self.ensure_reserve():
                # The reserve went to let retention delete on a full disk (or could not be made):
                # logging waits until there is room for it again, or a full disk could not be undone.
                raise StoreFullError(f"logging a face (first {self.reserve_bytes} bytes must be free again "
                                     "for the full-disk reserve)")
            if not self._writer_locked and self._lock_fd is not None:
                # Held shared for this process's lifetime: tells another process's start-up
                # cleanup that our in-flight files are not leftovers.
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
                self._writer_locked = True
            self._write_file(final, png)
            try:
                with self._write(what="logging a face"):
                    cur = self._db.execute(
                        "INSERT INTO faces (ts, ts_iso, frame, track, box_x, box_y, box_w, box_h, label, confidence, "
                        "probs, model_sha256, source, crop_file, crop_bytes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (ts, iso_utc(ts), int(record.frame), int(record.track), *(int(v) for v in record.box),
                         record.label, float(record.confidence),
                         json.dumps({k: float(v) for k, v in record.probs.items()}),
                         record.model_sha256, record.source, rel, len(png)))
                    face_id = int(cur.lastrowid)
            except BaseException:
                # Remove the crop unless its row made it after all (an interrupt can land between
                # COMMIT and here); when unsure, leave it: the next start-up cleanup decides.
                with contextlib.suppress(OSError, sqlite3.Error):
                    if self._db.execute("SELECT 1 FROM faces WHERE crop_file = ?", (rel,)).fetchone() is None:
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
        if order not in _ORDER_SQL:
            raise ValueError(f"unknown order '{order}'; use one of {', '.join(ORDERS)}")
        q = _filters(since, until, labels, reviewed, min_confidence, max_confidence, review_labels, not_face, source)
        sql = f"SELECT {_COLUMNS} FROM faces{q.where} ORDER BY {_ORDER_SQL[order]}"
        params = q.params
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += (-1 if limit is None else int(limit), int(offset))
        with self._lock:
            self._check_open()
            return [_row_to_face(r) for r in self._db.execute(sql, params).fetchall()]

    def iter_faces(self, *, batch: int = 500, **filters) -> Iterator[LoggedFace]:
        """All matching faces in time order, fetched in batches (keyset paging: constant memory)."""
        q = _filters(**filters)
        last: tuple[float, int] | None = None
        while True:
            where, params = q.where, q.params
            if last is not None:
                where = (where + " AND " if where else " WHERE ") + "(ts > ? OR (ts = ? AND id > ?))"
                params += (last[0], last[0], last[1])
            with self._lock:
                self._check_open()
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM faces{where} ORDER BY ts, id LIMIT ?",
                                        params + (batch,)).fetchall()
            for row in rows:
                yield _row_to_face(row)
            if len(rows) < batch:
                return
            last = (rows[-1][1], rows[-1][0])

    def count(self, **filters) -> int:
        q = _filters(**filters)
        with self._lock:
            self._check_open()
            return int(self._db.execute(f"SELECT COUNT(*) FROM faces{q.where}", q.params).fetchone()[0])

    def get(self, face_id: int) -> LoggedFace | None:
        with self._lock:
            self._check_open()
            row = self._db.execute(f"SELECT {_COLUMNS} FROM faces WHERE id = ?", (int(face_id),)).fetchone()
        return _row_to_face(row) if row else None

    def crop_path(self, face_id: int) -> Path | None:
        """The crop file of a row, from the database only; None for an unknown id.

        A path that would leave the crops directory (a tampered database) is refused.
        """
        face = self.get(face_id)
        if face is None:
            return None
        path = (self.state_dir / face.crop_file).resolve()
        if not path.is_relative_to(self.crops_dir.resolve()):
            raise StoreError(f"row {face_id} points outside {self.crops_dir}: {face.crop_file!r}")
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

    # --- reviews -------------------------------------------------------------------------------

    def set_review(self, face_id: int, *, label: str | None, not_face: bool = False) -> None:
        """Record a person's verdict on a face.

        label=<one of LABELS>: the true expression (a correction, or a confirmation when it equals
        the model's label). not_face=True: the crop is not a face (label must be None).
        label=None and not_face=False: confirms the model's own label.
        """
        from edge.labels import LABELS

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
            files = self._delete_rows(ids)
        except StoreFullError:
            if not self.release_reserve():
                raise
            files = self._delete_rows(ids)
        freed = 0
        for rel, size in files:
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / rel).unlink()
                freed += size
        return len(files), freed

    def _delete_rows(self, ids: list[int]) -> list[tuple[str, int]]:
        files: list[tuple[str, int]] = []
        with self._write(durable=True, what="deleting old faces"):
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                files += self._db.execute(f"SELECT crop_file, crop_bytes FROM faces WHERE id IN ({marks})",
                                          chunk).fetchall()
                self._db.execute(f"DELETE FROM faces WHERE id IN ({marks})", chunk)
        return files

    @property
    def reserve_missing(self) -> bool:
        """True while the reserve is given up (or short) and not yet re-created."""
        return self.reserve_bytes > 0 and not self.readonly and not self._reserve_ok

    def ensure_reserve(self) -> bool:
        """(Re)create the reserve file when missing or short; False when there is no room yet."""
        if self.readonly or self.reserve_bytes <= 0:
            return False
        self._reserve_ok = self._make_reserve()
        return self._reserve_ok

    def _make_reserve(self) -> bool:
        return make_reserve(self.reserve_path, self.reserve_bytes)

    def release_reserve(self) -> bool:
        """Give the reserve's space back to the file system; False when there was none.

        Until it is re-created, log_face refuses to write (StoreFullError): the freed space is
        for deleting, and for nothing else.
        """
        self._reserve_ok = False
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        log.warning("disk full: released the %d-byte reserve in %s to make room for deleting",
                    self.reserve_bytes, self.state_dir)
        return True

    def remove_empty_day_dirs(self) -> int:
        """rmdir crop day folders that are empty (never today's, which log_face is filling)."""
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        removed = 0
        for day in self.crops_dir.iterdir() if self.crops_dir.is_dir() else []:
            if day.is_dir() and day.name != today:
                with contextlib.suppress(OSError):
                    day.rmdir()
                    removed += 1
        return removed

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

    # --- disk ----------------------------------------------------------------------------------

    def disk_usage(self) -> dict:
        """Bytes used by the store and free on its file system.

        {"db_bytes", "wal_bytes", "shm_bytes", "reserve_bytes", "crops_bytes", "total_bytes", "used_db_bytes",
         "free_bytes", "fs_bytes", "rows"}
        crops_bytes is the sum of the crop files' sizes as recorded at write time; used_db_bytes
        counts the database pages in use (deleted rows leave free pages until compact()).
        """
        sizes = {}
        for key, path in (("db_bytes", self.db_path), ("wal_bytes", f"{self.db_path}-wal"),
                          ("shm_bytes", f"{self.db_path}-shm"), ("reserve_bytes", self.reserve_path)):
            try:
                sizes[key] = os.stat(path).st_size
            except FileNotFoundError:
                sizes[key] = 0
        with self._lock:
            self._check_open()
            crops, rows = self._db.execute("SELECT COALESCE(SUM(crop_bytes), 0), COUNT(*) FROM faces").fetchone()
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free_pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        vfs = os.statvfs(self.state_dir)
        total = sum(sizes.values()) + int(crops)
        return {**sizes, "crops_bytes": int(crops), "total_bytes": total,
                "used_db_bytes": (pages - free_pages) * page_size, "rows": int(rows),
                "free_bytes": vfs.f_bavail * vfs.f_frsize, "fs_bytes": vfs.f_blocks * vfs.f_frsize}

    # --- checks --------------------------------------------------------------------------------

    def verify(self, *, decode: bool = True) -> list[str]:
        """Problems found: database integrity, rows whose crop is missing/unreadable, stray files.

        Empty list = healthy. Used by tests and `moodcam status --check`.
        """
        from PIL import Image

        problems = []
        with self._lock:
            self._check_open()
            result = [r[0] for r in self._db.execute("PRAGMA integrity_check")]
            rows = self._db.execute("SELECT id, crop_file FROM faces").fetchall()
        if result != ["ok"]:
            problems.append("integrity_check: " + "; ".join(result))
        known = set()
        for face_id, rel in rows:
            known.add(rel)
            path = self.state_dir / rel
            if not path.is_file():
                problems.append(f"row {face_id}: crop {rel} is missing")
            elif decode:
                try:
                    with Image.open(path) as img:
                        img.load()
                except Exception as exc:  # noqa: BLE001 - any decoder failure is the finding
                    problems.append(f"row {face_id}: crop {rel} does not decode: {exc}")
        if self.crops_dir.is_dir():
            for path in self.crops_dir.rglob("*"):
                if path.is_file() and path.relative_to(self.state_dir).as_posix() not in known:
                    problems.append(f"stray file {path.relative_to(self.state_dir)} (no row)")
        return problems

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


def open_for_reading(state_dir: Path | str, prog: str) -> Store | None:
    """The store at ``state_dir``, read-only, for a command; ``None`` after saying on stderr why it
    cannot be opened (the command then exits 2)."""
    import sys

    try:
        return Store(state_dir, readonly=True)
    except StoreError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def _check_record(record: FaceRecord) -> None:
    """Reject a malformed record before anything touches the disk."""
    if not isinstance(record, FaceRecord):
        raise TypeError(f"log_face needs a FaceRecord, got {type(record).__name__}")
    if len(record.box) != 4:
        raise ValueError(f"face box must be (x, y, w, h), got {record.box!r}")
    if not record.label:
        raise ValueError("face record has an empty label")
    if not math.isfinite(float(record.ts)) or not math.isfinite(float(record.confidence)):
        raise ValueError(f"face record has a non-finite ts or confidence: ts={record.ts}, "
                         f"confidence={record.confidence}")
    if not isinstance(record.probs, dict):
        raise ValueError(f"face record probs must be a dict label -> probability, got {type(record.probs).__name__}")
    bad = {k: v for k, v in record.probs.items() if not math.isfinite(float(v))}
    if bad:
        raise ValueError(f"face record probs must be finite numbers, got {bad}")
