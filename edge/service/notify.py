"""systemd integration: sd_notify messages and journal logging.

With systemd-python installed and ``NOTIFY_SOCKET`` set, the daemon tells systemd READY=1 (camera
and model open), WATCHDOG=1 (frames really processed: a stalled pipeline stops sending it, so
``WatchdogSec=`` restarts the service), STATUS= (fps, faces) and STOPPING=1. Without
systemd-python the same datagrams are sent with a plain socket, so a Pi without python3-systemd
still gets a watchdog. Outside systemd every call is a no-op.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time

log = logging.getLogger("moodcam.notify")


def _send_plain(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):          # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # Never block the frame loop on a busy manager: a full queue drops this one message.
        sock.setblocking(False)
        sock.sendto(message.encode(), address)
    return True


class Notifier:
    """sd_notify with the watchdog paced at a quarter of ``WATCHDOG_USEC`` and STATUS throttled."""

    def __init__(self, enabled: bool = True, status_interval_s: float = 5.0):
        self.enabled = enabled and bool(os.environ.get("NOTIFY_SOCKET"))
        try:
            from systemd import daemon as sd_daemon

            self._notify = sd_daemon.notify
            self.backend = "systemd-python"
        except ImportError:
            self._notify = _send_plain
            self.backend = "socket"
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 1e6 / 4 if usec.isdigit() and int(usec) > 0 and mine else None
        self.status_interval = status_interval_s
        self._last_watchdog = 0.0
        self._last_status = 0.0

    def send(self, message: str) -> None:
        if not self.enabled:
            return
        try:
            self._notify(message)
        except OSError as exc:       # systemd went away; keep running, say so once per message
            log.warning("sd_notify %r failed: %s", message.split("=")[0], exc)

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def frame_processed(self, status: str | None = None, now: float | None = None) -> None:
        """Call after each frame that went through the whole pipeline (never from another thread,
        never on a timer: the watchdog must mean 'frames are being processed')."""
        now = time.monotonic() if now is None else now
        if self.watchdog_interval is not None and now - self._last_watchdog >= self.watchdog_interval:
            self.send("WATCHDOG=1")
            self._last_watchdog = now
        if status is not None and now - self._last_status >= self.status_interval:
            self.send(f"STATUS={status}")
            self._last_status = now

    def status_due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.enabled and now - self._last_status >= self.status_interval


def under_journal() -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM=dev:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str = "info") -> str:
    """Journal logging under systemd (with systemd-python), stderr otherwise; returns which."""
    root = logging.getLogger("moodcam")
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.propagate = False
    where = "stderr"
    handler: logging.Handler
    if under_journal():
        try:
            from systemd import journal

            handler = journal.JournalHandler(SYSLOG_IDENTIFIER="moodcam")
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            where = "journal"
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return where
