"""The live view: the daemon writes annotated frames only while the review server asks for them,
and the server streams them as MJPEG under the review page's security rules.

The end-to-end test runs the real daemon (`moodcam run --source demo`) and the real review
server (`moodcam review`) as separate processes sharing one state directory, as on the Pi.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge.service.live import FRAME_NAME, WANTED_NAME, LiveView
from tests.review_support import REPO, review_server

TOKEN = "live-view-token-0123456789"


@dataclass(frozen=True)
class _Prediction:
    label: str
    confidence: float


@dataclass(frozen=True)
class _Face:            # the fields of edge.vision.pipeline.FaceResult that the live view reads
    track_id: int
    box: tuple
    smoothed: _Prediction


def _offer(live, ts, frame, faces) -> bool:
    if ts >= live.due:                          # as Daemon.loop calls it
        live.offer(ts, frame, faces)
        return True
    return False


def _frame():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)


def _wait(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_nobody_watching_draws_nothing_and_a_viewer_gets_annotated_frames(tmp_path):
    import cv2

    live = LiveView(tmp_path, fps=2.0, quality=70)
    frame, faces = _frame(), [_Face(7, (100, 120, 90, 90), _Prediction("happy", 0.8))]
    t = time.time()
    try:
        calls = sum(_offer(live, t + i * 0.1, frame, faces) for i in range(60))   # 6 s, nobody watching
        assert calls == 6                       # once a second: a look at the wanted file, nothing else
        assert not live.watched and live._thread is None and live.frames_written == 0
        assert not (tmp_path / FRAME_NAME).exists()

        (tmp_path / WANTED_NAME).touch()        # what the review server does while a viewer is connected
        for i in range(31):                     # 3 s of frame time at 10 fps: frames due at 2 fps
            _offer(live, t + 10 + i * 0.1, frame, faces)
            time.sleep(0.02)
        _wait(lambda: live.frames_written >= 1, what="a live frame")
        assert live.watched and live.frames_written <= 7
        path = tmp_path / FRAME_NAME
        assert path.stat().st_mode & 0o777 == 0o600
        image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)
        # The box is drawn in happy's colour (BGR 40, 200, 240) on its outline.
        assert np.abs(image[120:210, 100].astype(int) - (40, 200, 240)).max(axis=1).min() < 40

        os.utime(tmp_path / WANTED_NAME, (t - 60, t - 60))   # the viewer went away
        written = live.frames_written
        _offer(live, t + 20, frame, faces)
        assert not live.watched and not path.exists()
        for i in range(20):
            _offer(live, t + 21 + i * 0.1, frame, faces)
        time.sleep(0.3)
        assert live.frames_written == written and not path.exists()
    finally:
        live.close()


def _read_parts(response, count: int) -> list[bytes]:
    """The first ``count`` JPEG parts of a multipart/x-mixed-replace stream."""
    buffer, parts = b"", []
    for chunk in response.iter_bytes():
        buffer += chunk
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buffer[:head_end].decode("latin-1")
            assert head.startswith("--frame\r\n") and "Content-Type: image/jpeg" in head, head
            length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
            end = head_end + 4 + length
            if len(buffer) < end + 2:
                break
            parts.append(buffer[head_end + 4:end])
            buffer = buffer[end + 2:]
            if len(parts) == count:
                return parts
    return parts


@pytest.mark.slow   # the real daemon and two review servers
@pytest.mark.timeout(600)
def test_live_view_end_to_end_with_the_real_daemon_and_server(tiny_model, tmp_path):
    import cv2
    import httpx

    from edge.store.database import Store
    from edge.store.records import StoreError

    state = tmp_path / "state"
    config = tmp_path / "c.toml"
    config.write_text("[live]\nfps = 4\n[logging]\nmin_interval_s = 0\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    daemon = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config), "--source", "demo",
                               "--state", str(state), "--model", str(tiny_model)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def logged():
            try:
                with Store(state, readonly=True) as store:
                    return store.count()
            except StoreError:        # not created or not migrated yet
                return 0
        _wait(lambda: logged() >= 3 or daemon.poll() is not None, timeout=240, what="the daemon logging faces")
        assert daemon.poll() is None
        # Nobody watches: the daemon runs and logs, and writes no live frame.
        for _ in range(20):
            assert not (state / FRAME_NAME).exists()
            time.sleep(0.1)

        with review_server("--state", str(state)) as (base, _out):
            assert httpx.get(base + "/api/info").json()["live"] is True
            started = time.monotonic()
            with httpx.stream("GET", base + "/api/live", timeout=30) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=frame")
                parts = _read_parts(response, 3)
            assert len(parts) == 3 and len(set(parts)) == 3, "three different frames"
            assert time.monotonic() - started < 30
            for part in parts:
                image = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
                assert image is not None and image.shape == (480, 640, 3)
            one = httpx.get(base + "/api/live/frame", timeout=10)
            assert one.status_code == 200 and one.headers["content-type"] == "image/jpeg"
            # Loopback: another Host name is refused (DNS rebinding), for the stream as for the page.
            assert httpx.get(base + "/api/live", headers={"Host": "evil.example:80"}).status_code == 421

        # The viewer has gone: within a few seconds the daemon stops and removes the frame.
        _wait(lambda: not (state / FRAME_NAME).exists(), timeout=15, what="the live frame to go")
        time.sleep(2.0)
        assert not (state / FRAME_NAME).exists()

        with review_server("--state", str(state), "--token", TOKEN) as (base, _out):
            assert httpx.get(base + "/api/live").status_code == 401
            assert httpx.get(base + "/api/live/frame").status_code == 401
            assert httpx.get(base + "/api/live/frame", headers={"x-moodcam-token": "x" * 26}).status_code == 401
            with httpx.stream("GET", base + f"/api/live?token={TOKEN}", timeout=30) as response:
                assert response.status_code == 200
                assert len(_read_parts(response, 1)) == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, daemon.stdout.read()
    assert not (state / FRAME_NAME).exists()


def test_folder_mode_has_no_live_view(tmp_path):
    from fastapi.testclient import TestClient

    from edge.review.folder import FolderSource
    from edge.review.server import create_app

    (tmp_path / "happy").mkdir()
    from PIL import Image

    Image.new("L", (48, 48), 128).save(tmp_path / "happy" / "a.png")
    client = TestClient(create_app(FolderSource(tmp_path)), base_url="http://127.0.0.1")
    assert client.get("/api/info").json()["live"] is False
    assert client.get("/api/live").status_code == 404
    assert not Path(tmp_path / WANTED_NAME).exists()
