"""Crash-safe file primitives the face log (``edge.store``) is built on.

Plain functions over paths: private directories, a write that is either complete or absent
(temp file, fsync, rename, fsync the directory), and a reserve file of real blocks. They raise
OSError; the store turns the disk-full ones into ``StoreFullError``.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

TMP_SUFFIX = ".tmp"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT from the OS, or SQLITE_FULL from SQLite."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc)
    return False


def file_size(path) -> int:
    """Size in bytes; 0 for a file that does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def free_bytes(path) -> int:
    """Bytes an unprivileged writer can still use on the file system holding path."""
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in this directory durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """mkdir -p with mode 0700 on every directory this creates."""
    if path.is_dir():
        return
    make_private_dir(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask; make it exact


def temp_name(final: Path) -> Path:
    """The temp file a write to ``final`` goes through: hidden, beside it, ending in TMP_SUFFIX."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def write_file_atomic(final: Path, data: bytes) -> None:
    """Write ``final`` (mode 0600) so that it is either complete and durable or absent.

    temp file in the target directory, write, fsync, rename, fsync the directory. On any error
    the temp file is removed (and ``final`` too if the rename happened but its fsync failed).
    """
    tmp = temp_name(final)
    try:
        try:
            make_private_dir(final.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the directory was removed (by retention) in between: once more
            make_private_dir(final.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        fsync_dir(final.parent)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        with contextlib.suppress(OSError):
            if final.exists():
                final.unlink()
        raise


def make_reserve(path: Path, nbytes: int) -> bool:
    """Make ``path`` a file of ``nbytes`` really allocated bytes; False (and no file) on a full disk."""
    if file_size(path) >= nbytes:
        return True
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)  # real blocks, not a sparse hole
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            zeros = bytes(65536)  # a file system without fallocate: write the zeros
            for start in range(0, nbytes, len(zeros)):
                os.write(fd, zeros[: min(len(zeros), nbytes - start)])
        os.fsync(fd)
        return True
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        os.close(fd)
        fd = -1
        path.unlink(missing_ok=True)  # a partial reserve would only mislead
        return False
    finally:
        if fd >= 0:
            os.close(fd)
