"""Detection (real dlib on a real photo), IoU tracking, probability smoothing, logging policy."""
from __future__ import annotations

import numpy as np
import pytest

from edge.config import DetectorConfig, TrackerConfig
from edge.service.logpolicy import LogPolicy
from edge.vision.detect import Detection, Detector, clamp_box, gray_of, iou
from edge.vision.track import Tracker


@pytest.fixture(scope="module")
def astronaut_frame():
    """skimage's public-domain astronaut photo in a 640x480 frame (face about 110 px wide)."""
    from PIL import Image
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((600, 600)))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 20:620] = photo[:480]
    return frame


def test_detector_finds_the_face_and_downscaling_keeps_its_box(astronaut_frame):
    full = Detector(DetectorConfig(detect_width=0, min_face_px=40)).detect(gray_of(astronaut_frame))
    assert len(full) == 1 and full[0].score > 0
    x, y, w, h = full[0].box
    assert 60 <= w <= 160 and 0 <= x and x + w <= 640 and y + h <= 480
    small = Detector(DetectorConfig(detect_width=480, upsample=1, min_face_px=40)).detect(gray_of(astronaut_frame))
    assert len(small) == 1
    assert iou(full[0].box, small[0].box) > 0.6      # boxes come back in full-frame pixels


def test_min_face_size_and_score_threshold_filter(astronaut_frame):
    gray = gray_of(astronaut_frame)
    assert Detector(DetectorConfig(detect_width=0, min_face_px=300)).detect(gray) == []
    assert Detector(DetectorConfig(detect_width=0, score_threshold=4.9)).detect(gray) == []


def test_no_face_in_a_blank_frame():
    assert Detector().detect(np.full((480, 640), 128, np.uint8)) == []


def test_iou_and_clamp():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert clamp_box(-5, -5, 20, 30, 10, 10) == (0, 0, 10, 10)
    assert clamp_box(12, 0, 20, 5, 10, 10) is None


def test_tracker_keeps_ids_for_moving_faces_and_starts_new_ones():
    tr = Tracker(TrackerConfig(iou_threshold=0.3, max_missed=1))
    a = tr.update([Detection((100, 100, 80, 80), 1.0)])
    assert [(f.track_id, f.new) for f in a] == [(1, True)]
    b = tr.update([Detection((110, 104, 80, 80), 1.0), Detection((400, 100, 90, 90), 0.5)])
    assert sorted((f.track_id, f.new) for f in b) == [(1, False), (2, True)]
    assert next(f for f in b if f.track_id == 1).box == (110, 104, 80, 80)
    between = tr.current()          # frames without detection keep the last boxes, never "new" twice
    assert sorted((f.track_id, f.new) for f in between) == [(1, False), (2, False)]


def test_tracker_ends_tracks_after_max_missed_and_hides_missed_ones():
    tr = Tracker(TrackerConfig(max_missed=1))
    tr.update([Detection((100, 100, 80, 80), 1.0)])
    assert tr.update([]) == [] and len(tr) == 1 and tr.ended == []   # missed once: kept, not shown
    again = tr.update([Detection((102, 100, 80, 80), 1.0)])
    assert [f.track_id for f in again] == [1]                         # came back: same id
    tr.update([])
    tr.update([])
    assert tr.ended == [1] and len(tr) == 0
    assert [f.track_id for f in tr.update([Detection((100, 100, 80, 80), 1.0)])] == [2]


def test_smoothing_keeps_the_label_through_one_noisy_frame():
    tr = Tracker(TrackerConfig(ema_alpha=0.3))
    (face,) = tr.update([Detection((0, 0, 50, 50), 1.0)])
    happy = np.array([0.02, 0.02, 0.02, 0.86, 0.02, 0.04, 0.02])
    sad = np.array([0.02, 0.02, 0.02, 0.04, 0.86, 0.02, 0.02])
    for _ in range(5):
        smoothed = tr.smooth(face.track_id, happy)
    smoothed = tr.smooth(face.track_id, sad)
    assert int(np.argmax(smoothed)) == 3 and smoothed.sum() == pytest.approx(1.0)
    for _ in range(5):
        smoothed = tr.smooth(face.track_id, sad)
    assert int(np.argmax(smoothed)) == 4          # a lasting change does come through


def test_log_policy_appear_change_interval_and_every_frame():
    p = LogPolicy(min_interval_s=10)
    assert p.should_log(1, "happy", 100.0)           # appears
    p.logged(1, "happy", 100.0)
    assert not p.should_log(1, "happy", 105.0)
    assert p.should_log(1, "sad", 105.0)             # smoothed label changed
    assert p.should_log(1, "happy", 110.0)           # interval elapsed
    p.forget([1])
    assert p.should_log(1, "happy", 100.5)
    every = LogPolicy(0)
    every.logged(1, "happy", 100.0)
    assert every.should_log(1, "happy", 100.0)
