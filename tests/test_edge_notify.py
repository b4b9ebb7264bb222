"""sd_notify details: both senders on a real datagram socket, watchdog pacing, journal selection."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edge.service import notify
from edge.service.notify import Notifier

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sock(monkeypatch):
    folder = tempfile.mkdtemp(prefix="mc-", dir="/tmp")
    path = os.path.join(folder, "n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")     # 2 s: a WATCHDOG=1 at most every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield s
    s.close()
    os.unlink(path)
    os.rmdir(folder)


@pytest.mark.parametrize("backend", ["systemd-python", "socket"])
def test_messages_and_watchdog_pacing(sock, backend, monkeypatch):
    n = Notifier(status_interval_s=10)
    if backend == "socket":
        n._notify, n.backend = notify._send_plain, "socket"
    elif n.backend != "systemd-python":
        pytest.skip("systemd-python is not installed (pip install systemd-python)")
    assert n.enabled and n.watchdog_interval == 0.5
    n.ready("camera demo")
    n.frame_processed("1 fps", now=100.0)
    n.frame_processed("2 fps", now=100.2)     # too soon for either
    n.frame_processed("3 fps", now=100.6)     # watchdog due again, status not yet
    n.stopping()
    got = [sock.recv(4096).decode() for _ in range(5)]
    assert got == ["READY=1\nSTATUS=camera demo", "WATCHDOG=1", "STATUS=1 fps", "WATCHDOG=1", "STOPPING=1"]


def test_watchdog_for_another_pid_is_not_ours(sock, monkeypatch):
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier().watchdog_interval is None


def test_disabled_without_socket_or_by_config(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().enabled is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/socket")
    assert Notifier(enabled=False).enabled is False


@pytest.mark.parametrize("journal", [False, True])
def test_logs_go_to_the_journal_only_when_stderr_is_the_journal(journal):
    code = ("import os, sys; st = os.fstat(2); "
            + ("os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'; " if journal else
               "os.environ.pop('JOURNAL_STREAM', None); ")
            + "from edge.service.notify import setup_logging; print(setup_logging('info'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        import systemd.journal  # noqa: F401
        has_journal = True
    except ImportError:
        has_journal = False
    assert out.stdout.strip() == ("journal" if journal and has_journal else "stderr")
