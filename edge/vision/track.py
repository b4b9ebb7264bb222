"""Tracking and smoothing: a track id per face across frames, and per-track smoothed probabilities.

A detection round (edge.vision.scan) comes every few frames; :meth:`Tracker.update` associates
its boxes with the live tracks by greedy IoU (largest overlap first). A round may have scanned
only parts of the frame: a track whose face was not looked for is not counted as missed. Between
rounds a track moves on at the speed its last two detections showed (a walking face stays inside
its box), for at most ``MAX_COAST_FRAMES``. Each track keeps an exponential moving average of its
class probabilities so one noisy frame does not flip the label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import TrackerConfig
from edge.contracts.crop import Box
from edge.vision.detect import Detection, iou
from edge.vision.scan import covers

MAX_COAST_FRAMES = 15    # frames a track may move on its own speed after its last detection


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    box: Box
    score: float
    new: bool          # True on the frame the track starts


@dataclass
class _Track:
    id: int
    box: Box
    score: float
    missed: int = 0                      # detection rounds without a matching box
    new: bool = True
    ema: np.ndarray | None = field(default=None, repr=False)
    seen_frame: int = 0                  # frame of the detection that gave ``box``
    velocity: tuple[float, float] = (0.0, 0.0)   # pixels a frame, from the last two detections
    classified: int = 0                  # classifications so far (which view comes next)
    classified_frame: int = -1           # frame of the latest classification

    def box_at(self, frame: int | None, width: int, height: int) -> Box:
        if frame is None or self.velocity == (0.0, 0.0):
            return self.box
        steps = min(max(0, frame - self.seen_frame), MAX_COAST_FRAMES)
        x, y, w, h = self.box
        nx = min(max(0, round(x + self.velocity[0] * steps)), max(0, width - w))
        ny = min(max(0, round(y + self.velocity[1] * steps)), max(0, height - h))
        return nx, ny, w, h

    def moved_to(self, det: Detection, frame: int | None) -> None:
        if frame is not None and frame > self.seen_frame:
            steps = frame - self.seen_frame
            self.velocity = ((det.box[0] + det.box[2] / 2 - self.box[0] - self.box[2] / 2) / steps,
                             (det.box[1] + det.box[3] / 2 - self.box[1] - self.box[3] / 2) / steps)
        self.box, self.score, self.missed, self.new = det.box, det.score, 0, False
        self.seen_frame = frame if frame is not None else self.seen_frame


class Tracker:
    def __init__(self, config: TrackerConfig = TrackerConfig(), frame_size: tuple[int, int] = (1 << 16, 1 << 16)):
        self.config = config
        self.frame_size = frame_size         # (width, height): moving boxes stay inside the frame
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.ended: list[int] = []           # ids of tracks ended by the last update()

    def update(self, detections: list[Detection], scanned: list[Box] | None = None,
               frame: int | None = None, now: int | None = None) -> list[TrackedFace]:
        """Associate a detection round with the tracks; returns the faces tracked after it.

        ``scanned``: the frame areas the round looked at (None = the whole frame); ``frame``: the
        frame number the round scanned, from which a track's speed is measured; ``now``: the frame
        the returned boxes are for (a round on its own thread finishes a few frames later).
        """
        width, height = self.frame_size
        pairs = sorted(((iou(t.box_at(frame, width, height), d.box), ti, di) for ti, t in enumerate(self._tracks)
                        for di, d in enumerate(detections)), reverse=True)
        used_t, used_d = set(), set()
        for overlap, ti, di in pairs:
            if overlap < self.config.iou_threshold:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            self._tracks[ti].moved_to(detections[di], frame)
        self.ended = []
        alive = []
        for ti, track in enumerate(self._tracks):
            looked = scanned is None or any(covers(area, track.box_at(frame, width, height)) for area in scanned)
            if ti not in used_t and looked:
                track.missed += 1
                if track.missed > self.config.max_missed:
                    self.ended.append(track.id)
                    continue
            alive.append(track)
        for di, det in enumerate(detections):
            if di not in used_d:
                alive.append(_Track(self._next_id, det.box, det.score, seen_frame=frame or 0))
                self._next_id += 1
        self._tracks = alive
        return self.current(frame if now is None else now)

    def current(self, frame: int | None = None) -> list[TrackedFace]:
        """The faces tracked now: their boxes moved on to ``frame`` at their speed.

        Tracks that missed the latest round that looked for them stay alive (to keep their id if
        the face comes back) but are not reported: their face is most likely gone. A track is
        reported ``new`` once.
        """
        width, height = self.frame_size
        out = [TrackedFace(t.id, t.box_at(frame, width, height), t.score, t.new) for t in self._tracks if t.missed == 0]
        for t in self._tracks:
            t.new = False
        return out

    def boxes(self) -> list[Box]:
        """The last detected box of every live track (what a region scan looks around)."""
        return [t.box for t in self._tracks]

    def classification_order(self, track_ids: list[int]) -> list[int]:
        """``track_ids`` in the order they are due: never classified first, then the longest ago."""
        by_id = {t.id: t for t in self._tracks}
        return sorted(track_ids, key=lambda i: (by_id[i].classified_frame if i in by_id else -1, i))

    def next_view(self, track_id: int, frame: int) -> int:
        """Count a classification of the track at ``frame``; returns its number (0, 1, ...)."""
        track = self._track(track_id)
        if track is None:
            return 0
        track.classified_frame = frame
        track.classified += 1
        return track.classified - 1

    def smoothed(self, track_id: int) -> np.ndarray | None:
        """The track's moving average, or None before its first classification."""
        track = self._track(track_id)
        return None if track is None or track.ema is None else track.ema

    def smooth(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        """Fold this frame's probabilities into the track's moving average and return it."""
        track = self._track(track_id)
        probs = np.asarray(probs, dtype=np.float32)
        if track is None:
            return probs
        a = self.config.ema_alpha
        track.ema = probs.copy() if track.ema is None else (a * probs + (1.0 - a) * track.ema)
        return track.ema

    def _track(self, track_id: int) -> _Track | None:
        return next((t for t in self._tracks if t.id == track_id), None)

    def __len__(self) -> int:
        return len(self._tracks)
