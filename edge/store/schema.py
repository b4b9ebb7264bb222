"""The face log's SQLite schema and its migrations (``PRAGMA user_version`` is the version).

To change the schema: add ``_migrate_N_to_N1`` below (never edit an old one), register it in
MIGRATIONS and bump SCHEMA_VERSION. ``Store`` runs the missing steps in one transaction on its
first read-write open; a read-only open of an older store asks for that first, and any open of a
newer store refuses, naming both versions.
"""
from __future__ import annotations

import sqlite3
from typing import Callable

SCHEMA_VERSION = 2


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE faces (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            ts            REAL    NOT NULL,
            ts_iso        TEXT    NOT NULL,
            frame         INTEGER NOT NULL,
            track         INTEGER NOT NULL,
            box_x         INTEGER NOT NULL,
            box_y         INTEGER NOT NULL,
            box_w         INTEGER NOT NULL,
            box_h         INTEGER NOT NULL,
            label         TEXT    NOT NULL,
            confidence    REAL    NOT NULL,
            probs         TEXT    NOT NULL,   -- JSON object label -> probability
            model_sha256  TEXT    NOT NULL,
            source        TEXT    NOT NULL DEFAULT '',
            crop_file     TEXT    NOT NULL UNIQUE,
            crop_bytes    INTEGER NOT NULL,
            review_label  TEXT,
            not_face      INTEGER NOT NULL DEFAULT 0,
            reviewed_at   REAL
        )""")
    db.execute("CREATE INDEX faces_ts ON faces (ts, id)")
    # partial indexes: retention and the review page walk "oldest unreviewed" / "oldest reviewed"
    db.execute("CREATE INDEX faces_unreviewed_ts ON faces (ts, id) WHERE reviewed_at IS NULL")
    db.execute("CREATE INDEX faces_reviewed_ts ON faces (ts, id) WHERE reviewed_at IS NOT NULL")
    db.execute("CREATE INDEX faces_label ON faces (label)")
    db.execute("""
        CREATE TABLE heartbeat (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            written_at  REAL NOT NULL,
            stats       TEXT NOT NULL         -- JSON object from the daemon
        )""")


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    # A small JPEG of the whole frame beside the crop (logging.scene_width); NULL = none kept.
    db.execute("ALTER TABLE faces ADD COLUMN scene_file TEXT")
    db.execute("ALTER TABLE faces ADD COLUMN scene_bytes INTEGER NOT NULL DEFAULT 0")


# MIGRATIONS[n] takes a database at schema n to n + 1, inside one transaction. Add a function
# here (never edit an old one) and bump SCHEMA_VERSION when the schema changes.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_0_to_1, 1: _migrate_1_to_2}
