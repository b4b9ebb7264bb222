"""The full-disk reserve: a file of real blocks beside the database, given up only so deleting can work.

SQLite needs free space even to delete rows (the WAL grows first). On a full disk the store gives
this file back to the file system; until it is re-created, logging refuses to write, so the freed
space goes to deleting (retention) and nothing else.
"""
from __future__ import annotations

import logging
from pathlib import Path

from edge.store.files import make_reserve

log = logging.getLogger("moodcam.store")


class Reserve:
    """``size`` bytes at ``path``; ``enabled=False`` (read-only stores, size 0) makes every call a no-op."""

    def __init__(self, path: Path, size: int, *, enabled: bool = True):
        self.path = path
        self.size = int(size)
        self.enabled = enabled and self.size > 0
        self._ok = False

    @property
    def missing(self) -> bool:
        """True while the reserve is given up (or short) and not yet re-created."""
        return self.enabled and not self._ok

    def ensure(self) -> bool:
        """(Re)create the file when missing or short; False when there is no room for it yet."""
        if not self.enabled:
            return False
        self._ok = make_reserve(self.path, self.size)
        return self._ok

    def release(self) -> bool:
        """Give the space back to the file system; False when there was none to give."""
        self._ok = False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("disk full: released the %d-byte reserve in %s to make room for deleting",
                    self.size, self.path.parent)
        return True
