"""Frame sources and the Camera's retry / reopen / give-up behaviour (never hangs)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.capture.camera import Camera
from edge.capture.sources import (
    CameraError,
    DemoSource,
    DirSource,
    SourceError,
    SourceSpec,
    SourceUnusable,
    make_source,
    parse_source,
    resolve_auto,
)
from edge.config import CameraConfig

# Stalls are detected by short timeouts; sources that must work get a generous one (busy machines).
PATIENT = CameraConfig(read_timeout_s=20.0, retries=2, reopen_attempts=3, backoff_s=0.01, backoff_max_s=0.05)
FAST = CameraConfig(read_timeout_s=0.2, retries=2, reopen_attempts=3, backoff_s=0.01, backoff_max_s=0.05)


class ScriptedSource:
    """A fake camera at the true hardware edge: delivers ``good`` frames, then misbehaves."""

    name = "scripted"

    def __init__(self, good: int, then: str, recover_after_reopen: bool = False):
        self.good, self.then, self.recover = good, then, recover_after_reopen
        self.opens = 0
        self.reads = 0
        self.release = threading.Event()

    def open(self):
        self.opens += 1
        if self.opens > 1 and not self.recover:
            raise SourceError("camera unplugged")
        if self.opens > 1:
            self.good = self.reads + 3         # works again for 3 more frames

    def read(self):
        self.reads += 1
        if self.reads <= self.good:
            return np.full((480, 640, 3), self.reads % 256, np.uint8)
        if self.then == "hang":
            self.release.wait()                 # a capture that never returns
            return None
        if self.then == "fail":
            raise SourceError("no frame")
        return None

    def close(self):
        pass


def test_parse_source_specs():
    assert parse_source("demo") == SourceSpec("demo")
    assert parse_source("v4l2:2") == SourceSpec("v4l2", "2")
    assert parse_source("file:/a b/c.mp4") == SourceSpec("file", "/a b/c.mp4")
    assert parse_source("rtsp://cam/1") == SourceSpec("url", "rtsp://cam/1")
    with pytest.raises(ValueError, match="did you mean 'demo'"):
        parse_source("demmo")


def test_auto_falls_back_to_demo_without_a_camera(monkeypatch):
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    spec = resolve_auto()
    if Path("/dev/video0").exists():
        assert spec.kind in ("v4l2", "picamera2")
    else:
        assert spec.kind in ("demo", "picamera2")


def test_auto_under_systemd_fails_instead_of_faking_a_camera(monkeypatch):
    from edge.capture.sources import CameraError

    if Path("/dev/video0").exists() or resolve_auto().kind == "picamera2":
        pytest.skip("this machine has a camera")
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    with pytest.raises(CameraError, match="no camera.*demo"):
        resolve_auto()


def test_demo_source_moves_a_real_face():
    import dlib

    src = DemoSource(640, 480)
    src.open()
    frames = [src.read() for _ in range(20)]
    a, b = frames[0], frames[-1]
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    gray = np.asarray(Image.fromarray(a).convert("L"))
    assert len(dlib.get_frontal_face_detector()(gray, 0)) == 1


def test_dir_source_name_order_skips_corrupt_and_ends(tmp_path):
    (tmp_path / "sub").mkdir()
    for name, value in (("b.png", 20), ("a.png", 10), ("sub/c.jpg", 30)):
        Image.fromarray(np.full((100, 200, 3), value, np.uint8)).save(tmp_path / name)
    (tmp_path / "a2.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "notes.txt").write_text("not a picture")
    src = DirSource(str(tmp_path), 64, 48)
    cam = Camera(src, PATIENT)
    cam.open()
    frames = [cam.read() for _ in range(4)]
    assert frames[3] is None
    assert [f.index for f in frames[:3]] == [0, 1, 2]
    # a.png, (a2.jpg corrupt, skipped), b.png, sub/c.jpg; letterboxed to 64x48
    assert [int(f.image[24, 32, 0]) for f in frames[:3]] == [10, 20, 30]
    assert frames[0].image.shape == (48, 64, 3) and src.skipped == 1


def test_file_source_reads_a_video_to_its_end(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    assert writer.isOpened()
    for i in range(7):
        writer.write(np.full((240, 320, 3), 30 * i, np.uint8))
    writer.release()
    cam = Camera(make_source(f"file:{path}", 320, 240), PATIENT)
    cam.open()
    frames = []
    while (frame := cam.read()) is not None:
        frames.append(frame)
    assert len(frames) == 7 and frames[0].image.shape == (240, 320, 3)
    cam.close()


def test_missing_video_file_fails_at_the_first_attempt(tmp_path):
    """Retrying cannot bring a missing file back: the first open says so (SourceUnusable)."""
    source = make_source(f"file:{tmp_path}/nope.mp4")
    opens = []
    real_open = source.open
    source.open = lambda: (opens.append(1), real_open())
    cam = Camera(source, PATIENT)
    with pytest.raises(SourceUnusable, match=r"nope.mp4 does not exist; give file: a video file"):
        cam.open()
    assert len(opens) == 1


@pytest.mark.timeout(60)
def test_camera_that_hangs_is_reopened_then_given_up():
    src = ScriptedSource(good=2, then="hang")
    cam = Camera(src, FAST)
    cam.open()
    assert cam.read() is not None and cam.read() is not None
    try:
        with pytest.raises(CameraError, match="camera unplugged"):
            cam.read()
    finally:
        src.release.set()
    assert src.opens == 1 + FAST.reopen_attempts and cam.reopens == 1


@pytest.mark.timeout(60)
def test_camera_that_fails_recovers_after_reopen():
    src = ScriptedSource(good=2, then="fail", recover_after_reopen=True)
    cam = Camera(src, PATIENT)
    cam.open()
    frames = [cam.read() for _ in range(4)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert cam.failed_reads == PATIENT.retries and src.opens == 2


@pytest.mark.timeout(60)
def test_stop_event_ends_a_read_during_a_stall():
    stop = threading.Event()
    src = ScriptedSource(good=0, then="hang")
    cam = Camera(src, CameraConfig(read_timeout_s=0.1, retries=1, reopen_attempts=50, backoff_s=0.05), stop)
    cam.open()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        assert cam.read() is None      # not a CameraError: a stop is a clean end
    finally:
        src.release.set()
        timer.cancel()
    assert stop.is_set()
