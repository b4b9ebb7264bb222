"""Retention: keep the face log within its age, size and free-disk limits.

Three rules, applied in this order, each deleting oldest faces first (row, then crop file; see
``Store.delete_faces`` for why that order is crash-safe):

1. **Age**: unreviewed faces older than ``max_age_days``; reviewed faces (confirmed, corrected or
   marked not-a-face) older than ``reviewed_max_age_days``, which is longer: reviews are human work
   and the trainer's next data set.
2. **Size**: while the store (database + crops) is above ``max_total_mb``, unreviewed faces only.
   Reviewed faces count towards the total but this rule never deletes them.
3. **Free space**: while the file system has less than ``min_free_mb`` free, unreviewed faces first,
   and then, only if that is not enough, reviewed faces too: keeping the disk from filling is the
   one reason a reviewed face goes before its time.

A limit of 0 switches its rule off. The daemon builds the policy from its config's
``[retention]`` table, whose keys are this dataclass's field names.
"""
from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass, fields

from edge.store.database import Store
from edge.store.health import disk_usage
from edge.store.leftovers import remove_empty_day_dirs
from edge.store.records import StoreFullError

log = logging.getLogger("moodcam.retention")

_MB = 1024 * 1024
_BATCH = 200  # rows per delete transaction: bounded WAL growth, and progress even on a full disk


@dataclass(frozen=True)
class RetentionPolicy:
    """Limits for the face log. 0 means "no limit" for every field."""

    max_age_days: float = 30.0            # unreviewed faces older than this go
    reviewed_max_age_days: float = 365.0  # reviewed faces older than this go (>= max_age_days)
    max_total_mb: float = 2048.0          # database + crops above this: oldest unreviewed go
    min_free_mb: float = 500.0            # file system below this free: oldest unreviewed, then reviewed, go

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"retention.{f.name} = {value!r}: must be a number >= 0 (0 switches the limit off)")
        if self.max_age_days and self.reviewed_max_age_days and self.reviewed_max_age_days < self.max_age_days:
            raise ValueError(f"retention.reviewed_max_age_days = {self.reviewed_max_age_days} is shorter than "
                             f"retention.max_age_days = {self.max_age_days}; reviewed faces are kept at least as "
                             "long as unreviewed ones (0 keeps them forever)")

    @classmethod
    def from_dict(cls, data: dict) -> "RetentionPolicy":
        """From a ``[retention]`` TOML table; unknown keys fail naming the closest known one."""
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"
                raise ValueError(f"unknown key retention.{key}{hint}")
        return cls(**data)


@dataclass(frozen=True)
class RetentionResult:
    deleted_age: int = 0          # rows deleted by the age rule
    deleted_size: int = 0         # ... by the total-size rule
    deleted_free: int = 0         # ... by the free-space rule
    deleted_reviewed: int = 0     # how many of all those were reviewed
    freed_bytes: int = 0          # crop bytes unlinked (database pages are compacted on top)
    total_bytes: int = 0          # store size afterwards
    free_bytes: int = 0           # file system free space afterwards
    over_size: bool = False       # still above max_total_mb (the rest is reviewed faces)
    short_of_space: bool = False  # still below min_free_mb with nothing left to delete

    @property
    def deleted(self) -> int:
        return self.deleted_age + self.deleted_size + self.deleted_free


def enforce(store: Store, policy: RetentionPolicy, now: float | None = None) -> RetentionResult:
    """Apply the policy once; returns what was deleted and where the store stands now."""
    now = time.time() if now is None else float(now)
    store.reserve.ensure()  # counted as used before the free-space rule measures
    counts = {"age": 0, "size": 0, "free": 0, "reviewed": 0, "bytes": 0}

    def delete(faces, rule):
        rows, freed = store.delete_faces(f.id for f in faces)
        counts[rule] += rows
        counts["reviewed"] += sum(1 for f in faces if f.reviewed)
        counts["bytes"] += freed
        return freed

    # 1. age: by capture time, each kind against its own limit
    for reviewed, days in ((False, policy.max_age_days), (True, policy.reviewed_max_age_days)):
        if days:
            while batch := store.faces(until=now - days * 86400.0, reviewed=reviewed, order="time", limit=_BATCH):
                delete(batch, "age")

    # 2. total size: unreviewed only
    over_size = False
    if policy.max_total_mb:
        limit = policy.max_total_mb * _MB
        while (excess := _store_bytes(store) - limit) > 0:
            batch = _oldest_covering(store, excess, reviewed=False)
            if not batch:
                over_size = True
                break
            delete(batch, "size")
            _compact_quietly(store)

    # 3. free space: unreviewed first, then reviewed
    short = False
    if policy.min_free_mb:

        def missing() -> float:
            # room for the full-disk reserve too when it had to be given up: until it is back,
            # the store does not log (see Store.release_reserve)
            want = policy.min_free_mb * _MB + (store.reserve.size if store.reserve.missing else 0)
            return want - disk_usage(store)["free_bytes"]

        if missing() > 0:
            _compact_quietly(store)  # a checkpointed, truncated WAL may be all the room needed
        for reviewed in (False, True):
            while (need := missing()) > 0:
                batch = _oldest_covering(store, need, reviewed=reviewed)
                if not batch:
                    break
                if reviewed:
                    log.warning("disk nearly full: deleting %d reviewed face(s) before their time", len(batch))
                delete(batch, "free")
                _compact_quietly(store)
        short = missing() > 0

    if counts["age"] + counts["size"] + counts["free"]:
        _compact_quietly(store)
        remove_empty_day_dirs(store.crops_dir)
    store.reserve.ensure()  # given up on a full disk earlier: take it back once there is room
    usage = disk_usage(store)
    result = RetentionResult(deleted_age=counts["age"], deleted_size=counts["size"], deleted_free=counts["free"],
                             deleted_reviewed=counts["reviewed"], freed_bytes=counts["bytes"],
                             total_bytes=usage["total_bytes"], free_bytes=usage["free_bytes"],
                             over_size=over_size, short_of_space=short)
    if result.deleted:
        log.info("retention: deleted %d face(s) (age %d, size %d, free space %d; %d reviewed), freed %.1f MB",
                 result.deleted, result.deleted_age, result.deleted_size, result.deleted_free,
                 result.deleted_reviewed, result.freed_bytes / _MB)
    if short:
        log.warning("retention: only %.1f MB free on %s, below min_free_mb = %s, and nothing left to delete",
                    result.free_bytes / _MB, store.state_dir, policy.min_free_mb)
    return result


def _store_bytes(store: Store) -> int:
    """What the size limit counts: database pages in use + crop files.

    The WAL is left out: it is bounded (checkpoints truncate it to 4 MB) and a reader elsewhere
    can keep it from shrinking, which no amount of deleting would fix.
    """
    u = disk_usage(store)
    return u["used_db_bytes"] + u["crops_bytes"]


def _oldest_covering(store: Store, nbytes: float, *, reviewed: bool) -> list:
    """The oldest faces (at most one batch) whose crops and rows add up to about nbytes."""
    usage = disk_usage(store)
    per_row = usage["used_db_bytes"] / usage["rows"] if usage["rows"] else 0.0
    batch, total = [], 0.0
    for face in store.faces(reviewed=reviewed, order="time", limit=_BATCH):
        batch.append(face)
        total += face.crop_bytes + face.scene_bytes + per_row
        if total >= nbytes:
            break
    return batch


def _compact_quietly(store: Store) -> None:
    try:
        store.compact()
    except StoreFullError:
        log.warning("disk full: database compaction postponed")
