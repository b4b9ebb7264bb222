"""Detection rounds on their own thread, so the frame loop never waits for dlib.

dlib's HOG releases Python's lock while it scans (two threads scanning at once ran 1.8x as fast as
one on a 2-core x86 machine), so a thread, which shares the frames without copying them between
processes, is enough to put detection on a Pi's second core.

The frame loop hands over a frame with :meth:`ScanWorker.submit` when the worker is idle (a busy
worker makes it skip that frame, never wait) and collects finished rounds with :meth:`take`. A
round that raised is reported by :meth:`take` as :class:`ScanFailed`; the pipeline restarts the
worker and, when it keeps failing, stops the daemon so systemd restarts it.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from edge.contracts.crop import Box
from edge.vision.scan import Scanner, ScanResult

log = logging.getLogger("moodcam.detect")


class ScanFailed(RuntimeError):
    """A detection round raised; the message says what."""


class ScanWorker:
    def __init__(self, scanner: Scanner):
        self.scanner = scanner
        self._cond = threading.Condition()
        self._job: tuple[int, np.ndarray, list[Box]] | None = None
        self._done: ScanResult | None = None
        self._error: BaseException | None = None
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="moodcam-detect", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        return not self._busy and self._job is None

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, index: int, gray: np.ndarray, track_boxes: list[Box]) -> bool:
        """Start a round on this frame if the worker is free; False when it is still busy."""
        with self._cond:
            if self._busy or self._job is not None or self._stopping:
                return False
            self._job = (index, gray, track_boxes)
            self._busy = True
            self._cond.notify()
            return True

    def take(self) -> ScanResult | None:
        """The round finished since the last call, if any; raises ScanFailed for a round that raised."""
        with self._cond:
            if self._error is not None:
                error, self._error = self._error, None
                raise ScanFailed(f"{type(error).__name__}: {error}")
            done, self._done = self._done, None
            return done

    def wait(self, timeout: float | None = None) -> None:
        """Block until the worker is idle (tests and the benchmark's inline schedule)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._busy or self._stopping, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._stopping)
                if self._stopping:
                    return
                index, gray, boxes = self._job
                self._job = None
            try:
                result = self.scanner.scan(index, gray, boxes)
            except BaseException as exc:   # handed to the frame loop; this thread ends
                with self._cond:
                    self._error, self._busy = exc, False
                    self._cond.notify_all()
                log.error("detection round on frame %d failed: %s", index, exc)
                return
            with self._cond:
                self._done, self._busy = result, False
                self._cond.notify_all()
