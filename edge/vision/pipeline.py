"""One frame through the stages: gray -> detection round (beside the loop) -> track -> crop -> classify -> smooth.

Built for a Pi 3's four slow cores (docs/pi3-cost-model.md): the frame loop never waits for the
detector, which scans on its own thread (edge.vision.scanworker) and only where faces can be
(edge.vision.scan); tracks carry the faces in between; and the classifier, the loop's largest
cost, runs a bounded number of faces a frame, one view at a time, while each track's moving
average mixes the views. A face first seen is classified before it is reported.

:class:`StillPipeline` is for sources of unrelated pictures (``dir:``): every picture gets the
still-picture cascade and all views, and no track runs from one picture into the next.

Free of I/O, so the daemon and the benchmarks time exactly the same code. Per-stage times are the
frame loop's own, in milliseconds; a detection thread's CPU time is in ``FrameResult.scans``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.capture.sources import Frame
from edge.config import Config, DetectorConfig, PerformanceConfig, TrackerConfig
from edge.contracts.crop import Box
from edge.contracts.modelfile import default_model_path
from edge.vision.classify import Classifier, Prediction
from edge.vision.detect import Detector, gray_of
from edge.vision.scan import Scanner, ScanResult
from edge.vision.scanworker import ScanFailed, ScanWorker
from edge.vision.stills import STILL_MAX_SIDE, STILL_MIN_FACE_PX, STILL_UPSAMPLE, PictureDetectParams, faces_in_still
from edge.vision.track import Tracker

log = logging.getLogger("moodcam.pipeline")

STAGES = ("detect", "track", "crop", "classify")
MAX_SCAN_RESTARTS = 3      # detection threads restarted after failures before the daemon gives up


class DetectionFailed(RuntimeError):
    """The detection thread kept failing: the daemon exits so systemd restarts it."""


@dataclass(frozen=True)
class FaceResult:
    track_id: int
    box: Box
    score: float              # the detector's score when the box was last detected
    new: bool                 # first frame of this track
    smoothed: Prediction      # the track's moving average: what gets logged
    raw: Prediction | None = field(default=None, repr=False)   # this frame's prediction (None: not classified now)


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    faces: tuple[FaceResult, ...]
    detected: bool            # whether a detection round's result was applied on this frame
    ms: dict[str, float]      # stage -> milliseconds of the frame loop
    scans: tuple[ScanResult, ...] = ()   # the rounds applied on this frame, each with its own CPU time
                                         # (two detection threads: up to two)
    ended: tuple[int, ...] = ()      # track ids that ended on this frame


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


def classifier_from_config(config: Config, model_path: str | Path | None = None) -> Classifier:
    """The classifier the config asks for; ``model_path`` (the daemon resolves it with
    edge.store.models.resolve_model) overrides classifier.model."""
    c = config.classifier
    return Classifier(model_path or c.model or default_model_path(), c.num_threads, c.batch, c.tta, c.tta_zoom,
                      c.zoom_across_frames)


class Pipeline:
    def __init__(self, detector: Detector, tracker: Tracker, classifier: Classifier, every_n_frames: int = 1,
                 clock=time.perf_counter, performance: PerformanceConfig = PerformanceConfig()):
        """``clock``: perf_counter (wall time) in the daemon; the benchmark passes thread_time
        (CPU time of this thread), which a busy shared machine distorts far less."""
        self.detector, self.tracker, self.classifier = detector, tracker, classifier
        self.clock = clock
        self.every_n = max(1, every_n_frames)
        self.performance = performance
        split = performance.detection == "split" and performance.region_scans
        self.scanner = Scanner(detector, detector.config, performance, kind="regions" if split else "any")
        # Split: full scans on a thread of their own, with their own dlib detector (one detector
        # object is not for two threads at once).
        self.full_scanner = Scanner(Detector(detector.config), detector.config, performance, kind="full") \
            if split else None
        self.worker: ScanWorker | None = ScanWorker(self.scanner) if performance.detection != "inline" else None
        self.full_worker: ScanWorker | None = ScanWorker(self.full_scanner) if split else None
        self.restarts = 0
        self._count = 0
        self._last_submit = -(10 ** 9)

    @property
    def scanners(self) -> list[Scanner]:
        """The scanners of this pipeline's detection rounds (two with full scans on their own thread)."""
        return [self.scanner] + ([self.full_scanner] if self.full_scanner is not None else [])

    @classmethod
    def build(cls, classifier: Classifier, detector: DetectorConfig = DetectorConfig(),
              tracker: TrackerConfig = TrackerConfig(), clock=time.perf_counter,
              performance: PerformanceConfig = PerformanceConfig()) -> "Pipeline":
        return cls(Detector(detector), Tracker(tracker), classifier, detector.every_n_frames, clock, performance)

    @classmethod
    def from_config(cls, config: Config, clock=time.perf_counter, classifier: Classifier | None = None) -> "Pipeline":
        """The daemon's own pipeline for ``config`` (what ``moodcam run`` builds; benches use it too)."""
        return cls.build(classifier or classifier_from_config(config), config.detector, config.tracker, clock,
                         config.performance)

    def close(self) -> None:
        for worker in (self.worker, self.full_worker):
            if worker is not None:
                worker.stop()
        self.worker = self.full_worker = None

    def process(self, frame: Frame) -> FrameResult:
        index = self._count
        self._count += 1
        height, width = frame.image.shape[:2]
        self.tracker.frame_size = (width, height)
        t0 = self.clock()
        gray = gray_of(frame.image)
        scans = self._detection_rounds(index, gray)
        t1 = self.clock()
        ended: list[int] = []
        started: set[int] = set()     # tracks begun by any of this frame's rounds are new on this frame
        tracked = None
        for scan in scans:
            scanned = None if scan.full else [r.box for r in scan.regions]
            tracked = self.tracker.update(list(scan.detections), scanned, frame=scan.frame_index, now=index)
            started |= {t.track_id for t in tracked if t.new}
            ended += self.tracker.ended
        if tracked is None:
            tracked = self.tracker.current(index)
        elif len(scans) > 1:
            tracked = [replace(t, new=t.track_id in started) for t in tracked]
        t2 = self.clock()
        due = self._due([t.track_id for t in tracked])
        chosen = [t for t in tracked if t.track_id in due]
        crops = self.classifier.crops(frame.image, [t.box for t in chosen])
        t3 = self.clock()
        raw = {}
        for t, crop in zip(chosen, crops):
            probs = self._probs(t.track_id, crop[None], index)
            raw[t.track_id] = Prediction.from_probs(probs)
            self.tracker.smooth(t.track_id, probs)
        faces = []
        for t in tracked:
            smoothed = self.tracker.smoothed(t.track_id)
            if smoothed is not None:   # a face is reported once it has been classified
                faces.append(FaceResult(t.track_id, t.box, t.score, t.new, Prediction.from_probs(smoothed),
                                        raw.get(t.track_id)))
        t4 = self.clock()
        ms = {"detect": (t1 - t0) * 1e3, "track": (t2 - t1) * 1e3, "crop": (t3 - t2) * 1e3, "classify": (t4 - t3) * 1e3}
        return FrameResult(frame, tuple(faces), bool(scans), ms, tuple(scans), tuple(ended))

    def _detection_rounds(self, index: int, gray: np.ndarray) -> list[ScanResult]:
        """The rounds whose results are applied on this frame, oldest frame first.

        Inline: scan now, every Nth frame. Thread: collect a finished round, start the next one.
        Split: the same for region rounds; the full-scan thread is handed a frame whenever a full
        scan is due and it is free."""
        due = index - self._last_submit >= self.every_n
        if self.worker is None:
            if not due:
                return []
            self._last_submit = index
            return [self.scanner.scan(index, gray, self.tracker.boxes())]
        done = [d for d in (self._take("worker"), self._take("full_worker")) if d is not None]
        if due and self.worker.submit(index, gray, self.tracker.boxes()):
            self._last_submit = index
        if self.full_worker is not None and self.full_worker.idle and self.full_scanner.full_due():
            self.full_worker.submit(index, gray, [])
        return sorted(done, key=lambda d: d.frame_index)

    def _take(self, name: str) -> ScanResult | None:
        worker = getattr(self, name)
        if worker is None:
            return None
        try:
            return worker.take()
        except ScanFailed as exc:
            self._restart_worker(name, exc)
            return None

    def _restart_worker(self, name: str, exc: ScanFailed) -> None:
        """Restart the detection thread ``name`` ("worker" or "full_worker"); the restarts of both
        threads count together against MAX_SCAN_RESTARTS."""
        self.restarts += 1
        if self.restarts > MAX_SCAN_RESTARTS:
            raise DetectionFailed(f"face detection failed {self.restarts} times, last: {exc}") from None
        log.warning("face detection failed (%s); restarting its thread (%d of %d)", exc, self.restarts,
                    MAX_SCAN_RESTARTS)
        worker = getattr(self, name)
        worker.stop()
        setattr(self, name, ScanWorker(worker.scanner))

    def _due(self, track_ids: list[int]) -> set[int]:
        limit = self.performance.classify_per_frame
        order = self.tracker.classification_order(track_ids)
        return set(order if limit == 0 else order[:limit])

    def _probs(self, track_id: int, crop: np.ndarray, index: int) -> np.ndarray:
        view = self.tracker.next_view(track_id, index)
        if self.performance.views_across_frames:
            return self.classifier.view_probs(crop, view)[0]
        return self.classifier.probs(crop, frame=index)[0]


class StillPipeline:
    """Frames that are unrelated still pictures: the still-picture cascade on each, every face
    classified in all its views, each face its own track, nothing carried to the next picture."""

    def __init__(self, classifier: Classifier, detector: DetectorConfig = DetectorConfig(), clock=time.perf_counter):
        self.classifier, self.clock = classifier, clock
        self.params = PictureDetectParams.starting_at(STILL_UPSAMPLE, threshold=detector.score_threshold,
                                                      min_size=min(detector.min_face_px, STILL_MIN_FACE_PX))
        self._next_id = 1
        self._previous: tuple[int, ...] = ()

    def close(self) -> None:
        pass

    def process(self, frame: Frame) -> FrameResult:
        t0 = self.clock()
        boxes = [d.box for d in faces_in_still(frame.image, self.params, max_side=STILL_MAX_SIDE)]
        t1 = self.clock()
        crops = self.classifier.crops(frame.image, boxes)
        t2 = self.clock()
        probs = self.classifier.probs(crops)
        faces = []
        for box, p in zip(boxes, probs):
            prediction = Prediction.from_probs(p)
            faces.append(FaceResult(self._next_id, box, 0.0, True, prediction, prediction))
            self._next_id += 1
        t3 = self.clock()
        ended, self._previous = self._previous, tuple(f.track_id for f in faces)
        ms = {"detect": (t1 - t0) * 1e3, "track": 0.0, "crop": (t2 - t1) * 1e3, "classify": (t3 - t2) * 1e3}
        return FrameResult(frame, tuple(faces), True, ms, ended=ended)
