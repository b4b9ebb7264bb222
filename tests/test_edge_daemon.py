"""The daemon end to end: run summaries, sd_notify on a real datagram socket, the watchdog on a
stalled camera, SIGTERM, bad config/model exits, and a full disk (injected ENOSPC)."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.capture.sources import DemoSource, SourceError
from edge.config import Config
from edge.service.daemon import EXIT_CAMERA, EXIT_OK, Daemon
from edge.store.database import Store
from edge.store.health import verify

REPO = Path(__file__).resolve().parent.parent


class NotifyListener:
    """A real Unix datagram socket set as NOTIFY_SOCKET, read by a thread as systemd would (the
    kernel queues only ~10 datagrams; a reader that does not keep up would block the sender)."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="mc-", dir="/tmp")   # sun_path is 108 bytes at most
        self.path = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append(data.decode())
                self._cond.notify_all()

    def wait_for(self, message: str, timeout: float = 240.0) -> list[str]:
        with self._cond:
            assert self._cond.wait_for(lambda: message in self.messages, timeout), f"no {message!r}: {self.messages}"
            return list(self.messages)

    def settle(self) -> list[str]:
        """Everything received once the sender is gone (reads what is still queued)."""
        self._stop = True
        self._thread.join()
        self.sock.setblocking(False)
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return list(self.messages)

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.folder)


@pytest.fixture
def notify_socket(monkeypatch):
    listener = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
    yield listener
    listener.close()


def demo_frames(n: int) -> list[np.ndarray]:
    src = DemoSource(640, 480, period_frames=300)   # slow enough that tracks keep their id
    src.open()
    return [src.read() for _ in range(n)]


class StallingCamera:
    """A camera (fake at the hardware edge) that delivers frames, then stops delivering and is
    gone on reopen. When it stalls it drops a marker into NOTIFY_SOCKET, so the test knows which
    messages were sent after the stall, in socket order, without looking at any clock."""

    name = "stalling"

    def __init__(self, frames):
        self.frames = frames
        self.i = 0
        self.opens = 0
        self.release = threading.Event()

    def open(self):
        self.opens += 1
        if self.opens > 1:
            raise SourceError("camera vanished")

    def read(self):
        if self.i < len(self.frames):
            self.i += 1
            return self.frames[self.i - 1]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"TEST-STALL", os.environ["NOTIFY_SOCKET"])
        self.release.wait()
        return None

    def close(self):
        pass


def config_for(tiny_model, state, **overrides) -> Config:
    base = {"classifier": {"model": str(tiny_model)}, "store": {"state_dir": str(state)},
            "detector": {"every_n_frames": 2}, "logging": {"min_interval_s": 0.0}}
    for k, v in overrides.items():
        base.setdefault(k, {}).update(v)
    return Config().with_overrides(**base)


@pytest.mark.timeout(900)
def test_sd_notify_ready_watchdog_status_and_a_stall_stops_the_watchdog(tiny_model, tmp_path, notify_socket,
                                                                         monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4")           # a WATCHDOG=1 after every processed frame
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    camera = StallingCamera(demo_frames(12))
    config = config_for(tiny_model, tmp_path / "state",
                        camera={"read_timeout_s": 0.3, "retries": 1, "reopen_attempts": 2, "backoff_s": 0.01},
                        performance={"detection": "inline"},   # 12 frames go by faster than a thread's round
                        systemd={"status_interval_s": 0.5})
    daemon = Daemon(config, source=camera, handle_signals=False)
    try:
        status = daemon.run()
    finally:
        camera.release.set()
    assert status == EXIT_CAMERA                        # non-zero: systemd restarts the service
    assert daemon.notifier.backend == ("systemd-python" if _has_systemd_python() else "socket")
    messages = notify_socket.settle()
    assert messages[0].startswith("READY=1")
    stall = messages.index("TEST-STALL")
    before, after = messages[:stall], messages[stall + 1:]
    assert before.count("WATCHDOG=1") == 12             # one per processed frame, none before READY
    assert any(m.startswith("STATUS=") and "fps" in m for m in before)
    assert "WATCHDOG=1" not in after                    # the stalled pipeline trips the watchdog
    assert after[-1] == "STOPPING=1"
    with Store(tmp_path / "state") as store:
        assert store.count() == daemon.stats.logged > 0
        assert verify(store) == []


def _has_systemd_python() -> bool:
    try:
        import systemd.daemon  # noqa: F401
        return True
    except ImportError:
        return False


def test_no_notify_socket_means_no_messages(tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    folder = tmp_path / "pics"
    folder.mkdir()
    for i, frame in enumerate(demo_frames(3)):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    daemon = Daemon(config_for(tiny_model, tmp_path / "state", camera={"source": f"dir:{folder}"}),
                    handle_signals=False)
    assert daemon.run() == EXIT_OK and daemon.notifier.enabled is False
    assert daemon.stats.frames == 3 and daemon.exit_reason == "end of source"


def test_a_journal_line_each_heartbeat(tiny_model, tmp_path):
    """The line a minute (each systemd.heartbeat_interval_s): fps, faces, rows and free disk."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("moodcam.daemon")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        daemon = Daemon(config_for(tiny_model, tmp_path / "state", camera={"source": "demo"},
                                   systemd={"notify": False, "heartbeat_interval_s": 1.0}),
                        max_frames=40, handle_signals=False)
        assert daemon.run() == EXIT_OK
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    minute = [line for line in lines if " fps, " in line]
    assert minute and all(" logged" in line and " MB free" in line for line in minute), lines


def run_cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, **kw)


@pytest.mark.timeout(900)
def test_run_dir_source_prints_summary_and_logs_every_face(tiny_model, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    frames = demo_frames(10)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    (folder / "005b_corrupt.jpg").write_bytes(b"\xff\xd8 broken")
    config = tmp_path / "c.toml"
    config.write_text("[logging]\nmin_interval_s = 0\n[detector]\nevery_n_frames = 3\n")
    state = tmp_path / "state"
    out = run_cli("run", "--config", config, "--source", f"dir:{folder}", "--state", state, "--model", tiny_model)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 10                       # the corrupt picture was skipped
    assert summary["faces"] == 10 and summary["logged"] == 10 and summary["dropped"] == 0
    assert set(summary["ms_per_stage"]) >= {"detect", "track", "crop", "classify", "log", "total"}
    assert summary["fps"] > 0 and summary["stopped"] == "end of source"
    with Store(state) as store:
        faces = store.faces()
        assert len(faces) == 10 and verify(store) == []
        # Each picture is a still of its own: detected on its own, never a track carried over.
        assert {f.frame for f in faces} == set(range(10)) and len({f.track for f in faces}) == 10
        assert faces[0].source.startswith("dir:")
        heartbeat = store.read_heartbeat()
        assert heartbeat["frames"] == 10 and heartbeat["logged"] == 10


@pytest.mark.timeout(900)
def test_run_max_frames_with_the_demo_source_and_default_logging_policy(tiny_model, tmp_path):
    out = run_cli("run", "--source", "demo", "--state", tmp_path / "s", "--model", tiny_model, "--max-frames", "20")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    # Detection runs on its own thread: the face is reported from the frame its first round
    # finished, and then on every frame.
    assert summary["frames"] == 20 and 1 <= summary["faces"] <= 20
    # One track, min_interval_s = 10: logged when it appeared plus on each smoothed label change.
    assert 1 <= summary["logged"] < summary["faces"] or summary["logged"] == summary["faces"] == 1


def test_run_config_typo_exits_2(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[camera]\nsorce = 'demo'\n")
    out = run_cli("run", "--config", config, "--state", tmp_path / "s")
    assert out.returncode == 2 and "camera.sorce" in out.stderr and "did you mean 'camera.source'" in out.stderr
    out = run_cli("run", "--source", "dri:/x", "--state", tmp_path / "s")
    assert out.returncode == 2 and "did you mean 'dir'" in out.stderr


@pytest.mark.timeout(900)
def test_run_bad_model_exits_3_without_ready(tiny_model, tmp_path, notify_socket):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(Path(tiny_model).read_bytes()[:1000])
    Path(tiny_model).with_suffix(".json").read_text()
    bad.with_suffix(".json").write_text(Path(tiny_model).with_suffix(".json").read_text())
    out = run_cli("run", "--source", "demo", "--state", tmp_path / "s", "--model", bad, "--max-frames", "5")
    assert out.returncode == 3
    assert "does not match its sidecar" in out.stderr
    assert not any(m.startswith("READY=1") for m in notify_socket.settle())
    out = run_cli("run", "--source", "demo", "--state", tmp_path / "s", "--model", tmp_path / "nope.tflite")
    assert out.returncode == 3 and "nope.tflite does not exist" in out.stderr


@pytest.mark.timeout(900)
def test_sigterm_finishes_the_frame_and_closes_the_store(tiny_model, tmp_path, notify_socket):
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--source", "demo", "--state", str(tmp_path / "s"),
                             "--model", str(tiny_model)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO), "WATCHDOG_USEC": "4"})
    try:
        seen = notify_socket.wait_for("WATCHDOG=1")       # ready, and frames are going through
        assert seen[0].startswith("READY=1")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert notify_socket.settle()[-1] == "STOPPING=1"
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped"] == "SIGTERM" and summary["frames"] >= 1
    with Store(tmp_path / "s") as store:
        assert verify(store) == [] and store.count() == summary["logged"]


def test_full_disk_keeps_running_counts_and_resumes(tiny_model, tmp_path, monkeypatch):
    """A full disk as the store reports it (StoreFullError, i.e. ENOSPC; the store's own tests
    fill a real small filesystem): the daemon keeps processing, counts the dropped rows, and
    logs again once space returns."""
    import edge.store.database as store_module

    real = store_module.Store.log_face
    calls = {"n": 0}

    def full_for_a_while(self, record, crop, scene=None):
        calls["n"] += 1
        if 3 <= calls["n"] <= 6:
            raise store_module.StoreFullError("writing a crop")
        return real(self, record, crop, scene)

    monkeypatch.setattr(store_module.Store, "log_face", full_for_a_while)
    folder = tmp_path / "pics"
    folder.mkdir()
    for i, frame in enumerate(demo_frames(10)):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    config = config_for(tiny_model, tmp_path / "state", camera={"source": f"dir:{folder}"},
                        store={"retry_full_s": 0.0})
    daemon = Daemon(config, handle_signals=False)
    assert daemon.run() == EXIT_OK
    assert daemon.stats.frames == 10 and daemon.stats.faces == 10
    assert daemon.stats.dropped == 4 and daemon.stats.logged == 6
    with Store(tmp_path / "state") as store:
        assert store.count() == 6 and verify(store) == []
        assert store.read_heartbeat()["dropped_full_disk"] == 4


@pytest.mark.timeout(900)
def test_unusable_state_dir_exits_5(tiny_model, tmp_path):
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the state directory should be")
    out = run_cli("run", "--source", "demo", "--state", not_a_dir, "--model", tiny_model, "--max-frames", "3")
    assert out.returncode == 5, out.stderr
    assert "store is unusable" in out.stderr and str(not_a_dir) in out.stderr


@pytest.mark.timeout(300)
def test_a_source_that_can_never_work_fails_at_once_with_exit_2(tiny_model, tmp_path):
    """A missing video, an empty folder, a folder of non-pictures: no retries (those are for a
    camera that worked and stopped), exit 2 and one line that says what to fix."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"not a picture")
    for source, says in ((f"file:{tmp_path / 'nope.mp4'}", "does not exist"),
                         (f"dir:{tmp_path / 'empty'}", "holds no pictures"),
                         (f"dir:{tmp_path / 'junk'}", "none of the 1 pictures")):
        out = run_cli("run", "--source", source, "--state", tmp_path / "s", "--model", tiny_model)
        assert out.returncode == 2, (source, out.stderr)
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("moodcam run: error: ") and says in last, out.stderr
        assert "attempt" not in out.stderr and "Traceback" not in out.stderr
