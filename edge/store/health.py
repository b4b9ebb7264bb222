"""What `moodcam status` and retention read about a store: its disk use, and whether it is healthy."""
from __future__ import annotations

import os

from PIL import Image

from edge.store.database import Store


def disk_usage(store: Store) -> dict:
    """Bytes used by the store and free on its file system.

    {"db_bytes", "wal_bytes", "shm_bytes", "reserve_bytes", "crops_bytes", "total_bytes", "used_db_bytes",
     "free_bytes", "fs_bytes", "rows"}
    crops_bytes is the sum of the crop files' sizes (with the scene thumbnails') as recorded at write time; used_db_bytes
    counts the database pages in use (deleted rows leave free pages until compact()).
    """
    sizes = {}
    for key, path in (("db_bytes", store.db_path), ("wal_bytes", f"{store.db_path}-wal"),
                      ("shm_bytes", f"{store.db_path}-shm"), ("reserve_bytes", store.reserve.path)):
        try:
            sizes[key] = os.stat(path).st_size
        except FileNotFoundError:
            sizes[key] = 0
    (crops, rows), = store.read("SELECT COALESCE(SUM(crop_bytes + scene_bytes), 0), COUNT(*) FROM faces")
    (page_size,), = store.read("PRAGMA page_size")
    (pages,), = store.read("PRAGMA page_count")
    (free_pages,), = store.read("PRAGMA freelist_count")
    vfs = os.statvfs(store.state_dir)
    total = sum(sizes.values()) + int(crops)
    return {**sizes, "crops_bytes": int(crops), "total_bytes": total,
            "used_db_bytes": (pages - free_pages) * page_size, "rows": int(rows),
            "free_bytes": vfs.f_bavail * vfs.f_frsize, "fs_bytes": vfs.f_blocks * vfs.f_frsize}


def verify(store: Store, *, decode: bool = True) -> list[str]:
    """Problems found: database integrity, rows whose crop is missing/unreadable, stray files.

    Empty list = healthy. Used by tests and `moodcam status --check`.
    """
    problems = []
    result = [r[0] for r in store.read("PRAGMA integrity_check")]
    rows = store.read("SELECT id, crop_file FROM faces UNION ALL "
                      "SELECT id, scene_file FROM faces WHERE scene_file IS NOT NULL")
    if result != ["ok"]:
        problems.append("integrity_check: " + "; ".join(result))
    known = set()
    for face_id, rel in rows:
        known.add(rel)
        path = store.state_dir / rel
        if not path.is_file():
            problems.append(f"row {face_id}: crop {rel} is missing")
        elif decode:
            try:
                with Image.open(path) as img:
                    img.load()
            except Exception as exc:  # noqa: BLE001 - any decoder failure is the finding
                problems.append(f"row {face_id}: crop {rel} does not decode: {exc}")
    if store.crops_dir.is_dir():
        for path in store.crops_dir.rglob("*"):
            if path.is_file() and path.relative_to(store.state_dir).as_posix() not in known:
                problems.append(f"stray file {path.relative_to(store.state_dir)} (no row)")
    return problems
