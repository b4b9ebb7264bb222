"""Where the log lives: the state directory and the names of the files in it."""
from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "moodcam.db"
CROPS_DIR = "crops"
LOCK_NAME = ".writer.lock"
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 1 << 20


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
