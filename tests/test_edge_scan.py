"""Detection rounds: region scans find small faces that a full scan misses, tracks follow a moving
face and are only missed where a round looked, and a failing detection thread is restarted, then
stops the daemon for systemd."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge.capture.sources import DemoSource
from edge.cliutil import EXIT_DETECTOR, EXIT_OK
from edge.config import Config, DetectorConfig, PerformanceConfig
from edge.service.daemon import Daemon
from edge.vision.detect import Detection, Detector, iou
from edge.vision.scan import Scanner, changed_boxes, covers
from edge.vision.track import Tracker

FACE = (175, 76, 91, 91)   # dlib's box of the astronaut's face in skimage's 512x512 picture


def room(seed: int = 0) -> np.ndarray:
    """A 640x480 gray frame with texture, not a flat wall."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, (30, 40), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC))


def paste_face(frame: np.ndarray, width: int, at: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The astronaut's face (and some of her head) scaled so the face is ``width`` px, pasted at ``at``;
    returns the frame and the face's true box."""
    from skimage import data

    gray = np.asarray(Image.fromarray(data.astronaut()).convert("L"))
    x, y, w, h = FACE
    head = gray[y - h // 2:y + h + h // 2, x - w // 2:x + w + w // 2]   # twice the face box, centred
    scale = width / w
    size = round(head.shape[1] * scale)
    sprite = np.asarray(Image.fromarray(head).resize((size, size), Image.Resampling.LANCZOS))
    out = frame.copy()
    out[at[1]:at[1] + size, at[0]:at[0] + size] = sprite
    offset = round(w / 2 * scale)
    return out, (at[0] + offset, at[1] + offset, width, width)


def test_a_36_px_face_is_found_where_the_picture_changed_and_not_by_a_coarse_full_scan():
    detector = Detector(DetectorConfig(min_face_px=32, upsample=0))
    empty = room()
    frame, truth = paste_face(empty, 36, (300, 200))
    assert not [d for d in detector.detect(frame) if iou(d.box, truth) > 0.3]   # dlib's 80-px window at 640 px
    scanner = Scanner(detector, detector.config, PerformanceConfig(full_scan_s=600.0))
    first = scanner.scan(0, empty, [])
    assert first.full and first.detections == ()
    second = scanner.scan(1, frame, [])
    assert not second.full and {r.why for r in second.regions} == {"motion"}
    assert any(covers(r.box, truth) for r in second.regions)
    assert [d for d in second.detections if iou(d.box, truth) > 0.3], second
    # The next round looks around the track, zoomed, and keeps the face.
    third = scanner.scan(2, frame, [d.box for d in second.detections])
    assert "track" in {r.why for r in third.regions}
    assert [d for d in third.detections if iou(d.box, truth) > 0.3]


def test_changed_boxes_see_what_moved_and_nothing_on_a_still_picture():
    empty = room()
    frame, truth = paste_face(empty, 60, (100, 120))
    assert changed_boxes(None, frame) == []
    from edge.vision.detect import shrunk

    previous = shrunk(empty, 0.25)
    boxes = changed_boxes(previous, frame)
    assert boxes and covers(boxes[0], truth)
    assert changed_boxes(shrunk(frame, 0.25), frame) == []


def test_a_track_moves_at_its_speed_and_is_missed_only_where_a_round_looked():
    tracker = Tracker(frame_size=(640, 480))
    tracker.update([Detection((100, 100, 50, 50), 1.0)], frame=0)
    tracker.update([Detection((110, 100, 50, 50), 1.0)], frame=2)        # 5 px a frame to the right
    assert tracker.current(6)[0].box == (130, 100, 50, 50)
    elsewhere = [(400, 300, 100, 100)]
    for _ in range(5):   # rounds that looked elsewhere never end the track
        tracker.update([], scanned=elsewhere, frame=3)
    assert [t.track_id for t in tracker.current(3)] == [1]
    for _ in range(tracker.config.max_missed + 1):   # rounds that looked where it is do
        tracker.update([], scanned=None, frame=4)
    assert tracker.current(4) == [] and tracker.ended == [1]


def daemon_with_failing_detection(tiny_model, tmp_path, **performance) -> Daemon:
    config = Config().with_overrides(classifier={"model": str(tiny_model)}, store={"state_dir": str(tmp_path)},
                                     detector={"every_n_frames": 1}, logging={"min_interval_s": 0.0},
                                     performance={"detection": "thread"} | performance)
    return Daemon(config, source=DemoSource(640, 480), max_frames=120, handle_signals=False)


def failing_scans(monkeypatch, error: BaseException, times: int | None = None, kind: str | None = None) -> dict:
    """Scanner.scan raises ``error`` on its first ``times`` calls (None: always), on scanners of
    ``kind`` only (None: all); returns the count of those calls."""
    real = Scanner.scan
    calls = {"n": 0}

    def scan(self, *args):
        if kind is None or self.kind == kind:
            calls["n"] += 1
            if times is None or calls["n"] <= times:
                raise error
        return real(self, *args)

    monkeypatch.setattr(Scanner, "scan", scan)
    return calls


@pytest.mark.timeout(600)
def test_a_failed_detection_thread_is_restarted(tiny_model, tmp_path, monkeypatch):
    failing_scans(monkeypatch, MemoryError("the detection thread died"), times=1)
    daemon = daemon_with_failing_detection(tiny_model, tmp_path / "s")
    assert daemon.run() == EXIT_OK
    summary = daemon.summary()
    assert summary["detection"]["restarts"] == 1 and summary["detection"]["rounds"] >= 1
    assert summary["faces"] >= 1


@pytest.mark.timeout(600)
def test_a_detection_thread_that_keeps_failing_stops_the_daemon_for_systemd(tiny_model, tmp_path, monkeypatch):
    failing_scans(monkeypatch, RuntimeError("dlib is broken"))
    daemon = daemon_with_failing_detection(tiny_model, tmp_path / "s")
    assert daemon.run() == EXIT_DETECTOR
    assert "dlib is broken" in daemon.exit_reason and daemon.exit_reason.startswith("detector:")


def test_a_late_round_is_matched_where_tracks_were_on_its_frame():
    """A full scan on its own thread lands about a second after its frame: it must not pull a track
    back to where it was, count a miss against a track seen since, or start a second track for it."""
    tracker = Tracker(frame_size=(640, 480))
    tracker.update([Detection((100, 100, 50, 50), 1.0)], frame=0)
    for f in (2, 4, 6, 8, 10, 12):   # region rounds: the face walks 5 px a frame to the right
        tracker.update([Detection((100 + 5 * f, 100, 50, 50), 1.0)], scanned=[(0, 0, 640, 480)], frame=f)
    assert tracker.current(12)[0].box == (160, 100, 50, 50)
    # The full scan of frame 3 sees the face where it was then (115 px), far from its box now.
    faces = tracker.update([Detection((115, 100, 50, 50), 1.0)], scanned=None, frame=3, now=12)
    assert [(f.track_id, f.box) for f in faces] == [(1, (160, 100, 50, 50))] and len(tracker) == 1
    # A late full scan that saw nothing is no miss for a track detected since its frame.
    for _ in range(tracker.config.max_missed + 2):
        tracker.update([], scanned=None, frame=10, now=12)
    assert [f.track_id for f in tracker.current(12)] == [1]
    # A face that only the late scan saw is a new track, at its box of then.
    faces = tracker.update([Detection((400, 300, 60, 60), 1.0)], scanned=None, frame=10, now=12)
    assert sorted(f.track_id for f in faces) == [1, 2] and len(tracker) == 2


def test_a_track_born_after_a_late_rounds_frame_is_not_duplicated():
    tracker = Tracker(frame_size=(640, 480))
    tracker.update([Detection((300, 100, 50, 50), 1.0)], scanned=[(200, 0, 300, 480)], frame=10)
    tracker.update([Detection((320, 100, 50, 50), 1.0)], scanned=[(200, 0, 300, 480)], frame=14)   # 5 px a frame
    # The full scan of frame 6 (before the track began) saw the face 20 px further left.
    tracker.update([Detection((280, 100, 50, 50), 1.0)], scanned=None, frame=6, now=16)
    assert len(tracker) == 1 and tracker.current(16)[0].box == (330, 100, 50, 50)


def test_split_scanners_full_scans_apart_and_the_motion_reference_with_the_regions():
    detector = Detector(DetectorConfig(min_face_px=32))
    performance = PerformanceConfig(detection="split", full_scan_s=600.0)
    full = Scanner(detector, detector.config, performance, kind="full")
    regions = Scanner(Detector(detector.config), detector.config, performance, kind="regions")
    empty = room()
    frame, truth = paste_face(empty, 36, (300, 200))
    assert full.full_due() and full.scan(0, empty, []).full and not full.full_due()
    assert full._previous is None and full.scan(1, frame, []).full        # every round full, when asked
    assert not regions.scan(0, empty, []).full                            # never a full scan
    second = regions.scan(1, frame, [])
    assert not second.full and [d for d in second.detections if iou(d.box, truth) > 0.3]


@pytest.mark.timeout(600)
def test_a_failed_full_scan_thread_is_restarted_and_region_rounds_go_on(tiny_model, tmp_path, monkeypatch):
    calls = failing_scans(monkeypatch, MemoryError("the full-scan thread died"), times=1, kind="full")
    daemon = daemon_with_failing_detection(tiny_model, tmp_path / "s", detection="split", full_scan_s=0.2)
    assert daemon.run() == EXIT_OK
    summary = daemon.summary()
    assert summary["detection"]["restarts"] == 1 and calls["n"] >= 2
    assert summary["detection"]["full_scans"] >= 1 and summary["detection"]["rounds"] > summary["detection"]["full_scans"]
    assert summary["faces"] >= 1


@pytest.mark.timeout(600)
def test_a_full_scan_thread_that_keeps_failing_stops_the_daemon_for_systemd(tiny_model, tmp_path, monkeypatch):
    failing_scans(monkeypatch, RuntimeError("dlib is broken on the full-scan thread"), kind="full")
    daemon = daemon_with_failing_detection(tiny_model, tmp_path / "s", detection="split", full_scan_s=0.2)
    assert daemon.run() == EXIT_DETECTOR
    assert "full-scan thread" in daemon.exit_reason and daemon.exit_reason.startswith("detector:")
