"""Tracking and smoothing: a track id per face across frames, and per-track smoothed probabilities.

A detection round (edge.vision.scan) comes every few frames; :meth:`Tracker.update` associates
its boxes with the live tracks by greedy IoU (largest overlap first). A round may have scanned
only parts of the frame: a track whose face was not looked for is not counted as missed. Between
rounds a track moves on at the speed its last two detections showed (a walking face stays inside
its box), for at most ``MAX_COAST_FRAMES``. Each track keeps an exponential moving average of its
class probabilities so one noisy frame does not flip the label.

A round may land long after its frame (a full scan on its own thread, about a second on a Pi 3)
and after newer rounds. Its boxes are matched against where each track was at the round's frame
(from a short history of the track's detections), it never moves a track detected since that
frame, never counts a miss against one, and a box that matches a track as it was then is not a
new face.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import TrackerConfig
from edge.contracts.crop import Box
from edge.vision.detect import Detection, iou
from edge.vision.scan import covers

MAX_COAST_FRAMES = 15    # frames a track may move on its own speed after its last detection
HISTORY = 12             # detections a track remembers (frame, box): where it was when a late round scanned


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
    history: list[tuple[int, Box]] = field(default_factory=list, repr=False)   # (frame, box), oldest first

    def __post_init__(self):
        if not self.history:
            self.history.append((self.seen_frame, self.box))

    def box_at(self, frame: int | None, width: int, height: int) -> Box:
        """Where the track's face is on ``frame``: moved on from its last detection at its speed
        or, for a frame before that detection, between the detections around it."""
        if frame is not None and frame < self.seen_frame:
            return self._box_before(frame, width, height)
        if frame is None or self.velocity == (0.0, 0.0):
            return self.box
        steps = min(max(0, frame - self.seen_frame), MAX_COAST_FRAMES)
        return _moved(self.box, self.velocity, steps, width, height)

    def _box_before(self, frame: int, width: int, height: int) -> Box:
        later = next((i for i, (f, _) in enumerate(self.history) if f > frame), len(self.history) - 1)
        f1, b1 = self.history[later]
        if later == 0:   # the track began after ``frame``: back from its first box at its speed
            steps = min(f1 - frame, MAX_COAST_FRAMES)
            return _moved(b1, (-self.velocity[0], -self.velocity[1]), steps, width, height)
        f0, b0 = self.history[later - 1]
        t = (frame - f0) / max(1, f1 - f0)
        return tuple(round(a + (b - a) * t) for a, b in zip(b0, b1))

    def moved_to(self, det: Detection, frame: int | None) -> None:
        if frame is not None and frame > self.seen_frame:
            steps = frame - self.seen_frame
            self.velocity = ((det.box[0] + det.box[2] / 2 - self.box[0] - self.box[2] / 2) / steps,
                             (det.box[1] + det.box[3] / 2 - self.box[1] - self.box[3] / 2) / steps)
        self.box, self.score, self.missed, self.new = det.box, det.score, 0, False
        self.seen_frame = frame if frame is not None else self.seen_frame
        self.history = (self.history + [(self.seen_frame, self.box)])[-HISTORY:]

    def seen_since(self, frame: int | None) -> bool:
        """Whether the track was detected after ``frame``: a round of ``frame`` is older news."""
        return frame is not None and self.seen_frame > frame


def _moved(box: Box, velocity: tuple[float, float], steps: int, width: int, height: int) -> Box:
    x, y, w, h = box
    nx = min(max(0, round(x + velocity[0] * steps)), max(0, width - w))
    ny = min(max(0, round(y + velocity[1] * steps)), max(0, height - h))
    return nx, ny, w, h


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
        then = [t.box_at(frame, width, height) for t in self._tracks]    # where each track was on ``frame``
        pairs = sorted(((iou(then[ti], d.box), ti, di) for ti in range(len(self._tracks))
                        for di, d in enumerate(detections)), reverse=True)
        used_t, used_d = set(), set()
        for overlap, ti, di in pairs:
            if overlap < self.config.iou_threshold:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            if not self._tracks[ti].seen_since(frame):   # a newer round already placed it
                self._tracks[ti].moved_to(detections[di], frame)
        # A late round's box that overlaps a track as it was then is that face, not a new one.
        late = {ti for ti, t in enumerate(self._tracks) if t.seen_since(frame)}
        used_d |= {di for di, d in enumerate(detections) if di not in used_d
                   and any(iou(then[ti], d.box) >= self.config.iou_threshold for ti in late)}
        self.ended = []
        alive = []
        for ti, track in enumerate(self._tracks):
            # Detected on this round's frame or since (by another round): this round says nothing new.
            fresh = frame is not None and track.seen_frame >= frame
            looked = not fresh and (scanned is None or any(covers(area, then[ti]) for area in scanned))
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
