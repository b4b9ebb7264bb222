"""Path arguments checked before a command does any work, the same way in every command.

A command calls :func:`need_input` for what it reads and :func:`need_output` for what it
writes, before it loads a model or opens a store; each raises :class:`PathProblem` (a
ValueError) with one line that names the option, the path and the fix, which the command
reports with ``report_error`` (exit 2). Outputs are never clobbered without ``--force``
(:func:`add_force_option`, one flag name everywhere) and their folders are never created: a
typo in ``--out`` is an error, not a new directory tree somewhere. Files that hold faces are
written readable by their owner only (:func:`private_file`), as the store keeps its crops.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path


class PathProblem(ValueError):
    """A path argument that cannot be used; the message is the one line to show."""


def add_force_option(p: argparse.ArgumentParser, what: str = "replace an existing output") -> None:
    p.add_argument("--force", action="store_true", help=what)


def need_input(path, option: str, *, kind: str = "any") -> Path:
    """``path`` exists, is readable and is a file (``kind="file"``), a folder (``"dir"``) or either."""
    path = Path(path).expanduser()
    label = f"{option} {path}" if option else str(path)
    if not path.exists():
        hint = " (a broken link)" if path.is_symlink() else ""
        raise PathProblem(f"{label} does not exist{hint}; check the path")
    if kind == "file" and not path.is_file():
        raise PathProblem(f"{label}: is a folder, not a file; give a file")
    if kind == "dir" and not path.is_dir():
        raise PathProblem(f"{label}: is not a folder; give a folder")
    mode = os.R_OK | (os.X_OK if path.is_dir() else 0)
    if not os.access(path, mode):
        raise PathProblem(f"{label}: not readable by this user; fix its permissions")
    return path


def need_output(path, option: str, *, force: bool = False, kind: str = "file", also=(),
                may_exist: bool = False) -> Path:
    """``path`` can be written: its folder exists and is writable, and neither it nor any of
    ``also`` (files written beside it) exists unless ``force`` (or ``may_exist``: a folder that
    is resumed into). ``kind`` is what ``path`` must be if it exists: "file" or "dir"."""
    path = Path(path).expanduser()
    parent = path.parent
    if not parent.is_dir():
        raise PathProblem(f"{option} {path}: the folder {parent} does not exist; create it first (nothing is "
                          "created for you)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathProblem(f"{option} {path}: the folder {parent} is not writable by this user")
    for target in (path, *map(Path, also)):
        if not (target.exists() or target.is_symlink()):
            continue
        if target.is_symlink() and not target.exists():
            raise PathProblem(f"{option} {path}: {target} is a broken link; remove it or give another path")
        if target == path and kind == "file" and target.is_dir():
            raise PathProblem(f"{option} {path}: is a folder; give a file name")
        if target == path and kind == "dir" and not target.is_dir():
            raise PathProblem(f"{option} {path}: is a file; give a folder")
        if may_exist and target == path:
            if not os.access(target, os.W_OK | os.X_OK):
                raise PathProblem(f"{option} {path}: not writable by this user")
            continue
        if not force:
            raise PathProblem(f"{option} {path}: {target} exists; pass --force to replace it")
    return path


@contextlib.contextmanager
def private_file(path, mode: str = "wb", **open_args):
    """Open ``path`` for writing with mode 0600 from the first byte (also when it existed with
    wider permissions): for files that hold faces."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, mode, **open_args) as f:
        yield f
