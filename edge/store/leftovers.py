"""Leftovers of interrupted writes: temp files, and crop files whose row never made it.

Both are what a crash or kill -9 can leave (see edge.store.database for the write order); the
store removes them on a read-write open, while it holds the writer lock exclusively.
"""
from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from pathlib import Path

from edge.store.files import TMP_SUFFIX
from edge.store.layout import CROPS_DIR


def remove_leftovers(crops_dir: Path, known: set[str]) -> dict:
    """Delete temp files and crops not in ``known`` (paths relative to the state directory), and
    empty day folders other than today's. Returns {"temp_files", "orphan_crops", "empty_dirs"}."""
    done = {"temp_files": 0, "orphan_crops": 0, "empty_dirs": 0}
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    for day in sorted(crops_dir.iterdir()) if crops_dir.is_dir() else []:
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
    return done


def remove_empty_day_dirs(crops_dir: Path) -> int:
    """rmdir crop day folders that are empty (never today's, which logging is filling)."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    removed = 0
    for day in crops_dir.iterdir() if crops_dir.is_dir() else []:
        if day.is_dir() and day.name != today:
            with contextlib.suppress(OSError):
                day.rmdir()
                removed += 1
    return removed
