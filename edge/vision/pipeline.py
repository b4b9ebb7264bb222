"""One frame through the stages: gray -> detect (every N frames) -> track -> crop -> classify -> smooth.

Single-threaded and free of I/O, so the daemon, ``moodcam run`` and bench/edge_throughput.py all
time exactly the same code. Per-stage times are kept in milliseconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.capture.sources import Frame
from edge.config import DetectorConfig, TrackerConfig
from edge.contracts.crop import Box
from edge.vision.classify import Classifier, Prediction
from edge.vision.detect import Detector, gray_of
from edge.vision.track import Tracker

STAGES = ("detect", "track", "crop", "classify")


@dataclass(frozen=True)
class FaceResult:
    track_id: int
    box: Box
    score: float              # the detector's score when the box was last detected
    new: bool                 # first frame of this track
    crop: np.ndarray = field(repr=False)   # the model input (S, S) uint8
    raw: Prediction = field(repr=False)    # this frame's prediction
    smoothed: Prediction      # the track's moving average: what gets logged


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    faces: tuple[FaceResult, ...]
    detected: bool            # whether the detector ran on this frame
    ms: dict[str, float]      # stage -> milliseconds


class StageTimes:
    """Running totals of milliseconds per stage."""

    def __init__(self):
        self.total = {s: 0.0 for s in STAGES}
        self.frames = 0

    def add(self, ms: dict[str, float]) -> None:
        self.frames += 1
        for stage, value in ms.items():
            self.total[stage] = self.total.get(stage, 0.0) + value

    def mean(self) -> dict[str, float]:
        n = max(1, self.frames)
        out = {stage: round(total / n, 3) for stage, total in self.total.items()}
        out["total"] = round(sum(self.total.values()) / n, 3)
        return out


class Pipeline:
    def __init__(self, detector: Detector, tracker: Tracker, classifier: Classifier, every_n_frames: int = 1,
                 clock=time.perf_counter):
        """``clock``: perf_counter (wall time) in the daemon; the benchmark passes thread_time
        (CPU time of this thread), which a busy shared machine distorts far less."""
        self.detector, self.tracker, self.classifier = detector, tracker, classifier
        self.clock = clock
        self.every_n = max(1, every_n_frames)
        self._count = 0

    @classmethod
    def build(cls, classifier: Classifier, detector: DetectorConfig = DetectorConfig(),
              tracker: TrackerConfig = TrackerConfig(), clock=time.perf_counter) -> "Pipeline":
        return cls(Detector(detector), Tracker(tracker), classifier, detector.every_n_frames, clock)

    def process(self, frame: Frame) -> FrameResult:
        t0 = self.clock()
        detect = self._count % self.every_n == 0
        self._count += 1
        detections = self.detector.detect(gray_of(frame.image)) if detect else None
        t1 = self.clock()
        tracked = self.tracker.update(detections) if detect else self.tracker.current()
        t2 = self.clock()
        boxes = [t.box for t in tracked]
        crops = self.classifier.crops(frame.image, boxes)
        t3 = self.clock()
        probs = self.classifier.probs(crops, frame=self._count - 1)   # this frame's number
        faces = []
        for t, crop, p in zip(tracked, crops, probs):
            smoothed = self.tracker.smooth(t.track_id, p)
            faces.append(FaceResult(t.track_id, t.box, t.score, t.new, crop,
                                    Prediction.from_probs(p), Prediction.from_probs(smoothed)))
        t4 = self.clock()
        ms = {"detect": (t1 - t0) * 1e3, "track": (t2 - t1) * 1e3, "crop": (t3 - t2) * 1e3, "classify": (t4 - t3) * 1e3}
        return FrameResult(frame, tuple(faces), detect, ms)
