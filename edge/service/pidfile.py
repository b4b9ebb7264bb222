"""``<state>/daemon.pid``: how other commands find the running daemon (to send it SIGHUP).

The daemon writes its pid into the file and holds an exclusive flock on it while it runs; the
kernel drops the lock when the process dies, even by ``kill -9``. So a pid read from a file that
is locked is the live daemon's, and a stale file from a crashed daemon is never believed (its
pid may belong to another process by now).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

PID_NAME = "daemon.pid"


class PidFile:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / PID_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Write our pid and lock the file; False if another daemon holds it (it stays its)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)     # an unlocked empty file: nobody mistakes it for a live daemon
        os.close(self._fd)
        self._fd = None


def running_daemon(state_dir: Path) -> int | None:
    """The pid of the daemon running on ``state_dir``, or None when none is (or it cannot be told)."""
    path = Path(state_dir) / PID_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:       # locked: a live daemon holds it
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
