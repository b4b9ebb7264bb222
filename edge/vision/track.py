"""Tracking and smoothing: a track id per face across frames, and per-track smoothed probabilities.

Detection runs every N frames; :meth:`Tracker.update` associates its boxes with the live tracks by
greedy IoU (largest overlap first), and between detections the tracks keep their last box. Each
track keeps an exponential moving average of its class probabilities so one noisy frame does not
flip the label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import TrackerConfig
from edge.contracts.crop import Box
from edge.vision.detect import Detection, iou


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


class Tracker:
    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.ended: list[int] = []           # ids of tracks ended by the last update()

    def update(self, detections: list[Detection]) -> list[TrackedFace]:
        """Associate a detection round with the tracks; returns the faces seen in this round."""
        pairs = sorted(((iou(t.box, d.box), ti, di) for ti, t in enumerate(self._tracks)
                        for di, d in enumerate(detections)), reverse=True)
        used_t, used_d = set(), set()
        for overlap, ti, di in pairs:
            if overlap < self.config.iou_threshold:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track = self._tracks[ti]
            track.box, track.score, track.missed, track.new = detections[di].box, detections[di].score, 0, False
        self.ended = []
        alive = []
        for ti, track in enumerate(self._tracks):
            if ti not in used_t:
                track.missed += 1
                if track.missed > self.config.max_missed:
                    self.ended.append(track.id)
                    continue
            alive.append(track)
        for di, det in enumerate(detections):
            if di not in used_d:
                alive.append(_Track(self._next_id, det.box, det.score))
                self._next_id += 1
        self._tracks = alive
        return self.current()

    def current(self) -> list[TrackedFace]:
        """The faces seen in the latest detection round, with their last boxes.

        Tracks that missed the latest round stay alive (to keep their id if the face comes back)
        but are not reported: their face is most likely gone. A track is reported ``new`` once.
        """
        out = [TrackedFace(t.id, t.box, t.score, t.new) for t in self._tracks if t.missed == 0]
        for t in self._tracks:
            t.new = False
        return out

    def smooth(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        """Fold this frame's probabilities into the track's moving average and return it."""
        track = next((t for t in self._tracks if t.id == track_id), None)
        probs = np.asarray(probs, dtype=np.float32)
        if track is None:
            return probs
        a = self.config.ema_alpha
        track.ema = probs.copy() if track.ema is None else (a * probs + (1.0 - a) * track.ema)
        return track.ema

    def __len__(self) -> int:
        return len(self._tracks)
