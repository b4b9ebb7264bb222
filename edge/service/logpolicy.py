"""Which tracked faces get a row in the log.

A track is logged when it appears, when its smoothed label changes, and otherwise at most every
``min_interval_s`` seconds (0 logs every frame). Keeping the log to these moments keeps a Pi's SD
card from filling with thousands of near-identical crops of one person at a desk.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Last:
    ts: float
    label: str


class LogPolicy:
    def __init__(self, min_interval_s: float):
        self.min_interval_s = float(min_interval_s)
        self._last: dict[int, _Last] = {}

    def should_log(self, track_id: int, label: str, ts: float) -> bool:
        if self.min_interval_s <= 0:
            return True
        last = self._last.get(track_id)
        return last is None or label != last.label or ts - last.ts >= self.min_interval_s

    def logged(self, track_id: int, label: str, ts: float) -> None:
        """Record a row actually written (a row dropped on a full disk is not 'logged')."""
        self._last[track_id] = _Last(ts, label)

    def forget(self, track_ids) -> None:
        for track_id in track_ids:
            self._last.pop(track_id, None)
