"""A :class:`Camera` that never hangs: every open/read of a source runs on a worker thread with a timeout.

It retries failed reads, reopens the source with backoff, and finally raises :class:`CameraError`
so the daemon exits non-zero and systemd restarts it: a camera ribbon that works loose must not
leave a silent, hung daemon behind.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edge.capture.sources import CameraError, Frame, Source, SourceError, SourceUnusable
from edge.config import CameraConfig

log = logging.getLogger("moodcam.camera")

class _Worker:
    """One daemon thread that runs source calls, so the caller can give up on a hung one.

    A hung call cannot be interrupted in Python; the Camera abandons the worker (it is a daemon
    thread and dies with the process) and starts a fresh one for the reopened source.
    """

    def __init__(self):
        self._lock = threading.Condition()
        self._job = None
        self._thread = threading.Thread(target=self._loop, name="camera-io", daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            with self._lock:
                while self._job is None:
                    self._lock.wait()
                fn, box = self._job
                self._job = None
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            box["done"].set()

    def call(self, fn: Callable, timeout: float):
        box = {"done": threading.Event()}
        with self._lock:
            self._job = (fn, box)
            self._lock.notify()
        if not box["done"].wait(timeout):
            raise TimeoutError(f"no answer within {timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]


class Camera:
    """Frames from a source with timeouts, retries and reopen-with-backoff; never hangs."""

    def __init__(self, source: Source, config: CameraConfig, stop: threading.Event | None = None):
        self.source, self.config = source, config
        self.stop_event = stop or threading.Event()
        self._worker = _Worker()
        self._index = 0
        self.failed_reads = 0
        self.reopens = 0

    @property
    def name(self) -> str:
        return self.source.name

    def open(self) -> None:
        """Open the source, retrying with backoff; raises CameraError when every attempt fails."""
        self._open_with_backoff(first=True)

    def _open_once(self) -> None:
        # Opening can be slow (picamera2 starts the sensor), allow a generous multiple of a read.
        self._worker.call(self.source.open, max(10.0, 5 * self.config.read_timeout_s))

    def _open_with_backoff(self, first: bool) -> None:
        cfg = self.config
        last = None
        for attempt in range(cfg.reopen_attempts):
            if attempt or not first:
                delay = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** attempt)
                if self.stop_event.wait(delay):
                    raise CameraError(f"stopped while reopening {self.name}")
            try:
                self._open_once()
                return
            except SourceUnusable:
                raise                        # retrying cannot help: say what to fix, now
            except TimeoutError as exc:
                last = f"open timed out ({exc})"
                self._worker = _Worker()     # the old one is stuck in open(); abandon it
            except (SourceError, OSError, RuntimeError, ValueError) as exc:
                last = str(exc)
            log.warning("camera %s: open attempt %d/%d failed: %s", self.name, attempt + 1, cfg.reopen_attempts, last)
        raise CameraError(f"camera {self.name} could not be opened after {cfg.reopen_attempts} attempts; "
                          f"last error: {last}")

    def _reopen(self, hung: bool) -> None:
        self.reopens += 1
        if hung:
            # The stuck call still owns the source; closing it under that call can crash native
            # code, so leave it to the abandoned worker and start a fresh one.
            self._worker = _Worker()
        else:
            try:
                self._worker.call(self.source.close, self.config.read_timeout_s)
            except Exception as exc:
                log.warning("camera %s: close failed: %s", self.name, exc)
                self._worker = _Worker()
        log.warning("camera %s: reopening (reopen #%d)", self.name, self.reopens)
        self._open_with_backoff(first=False)

    def read(self) -> Frame | None:
        """The next frame; None at the end of a file/folder or when stopped.

        Raises CameraError when the source keeps failing through every reopen attempt.
        """
        failures = 0
        while not self.stop_event.is_set():
            hung = False
            try:
                image = self._worker.call(self.source.read, self.config.read_timeout_s)
            except SourceUnusable:
                raise
            except TimeoutError as exc:
                error, hung = f"read timed out ({exc})", True
            except (SourceError, OSError, RuntimeError, ValueError) as exc:
                error = str(exc)
            else:
                if image is None:
                    return None
                frame = Frame(self._index, time.time(), image)
                self._index += 1
                return frame
            failures += 1
            self.failed_reads += 1
            log.warning("camera %s: failed read %d/%d: %s", self.name, failures, self.config.retries, error)
            if failures >= self.config.retries or hung:
                try:
                    self._reopen(hung)
                except CameraError:
                    if self.stop_event.is_set():   # asked to stop while waiting to reopen: a clean end
                        return None
                    raise
                failures = 0
        return None

    def close(self) -> None:
        try:
            self._worker.call(self.source.close, self.config.read_timeout_s)
        except Exception as exc:
            log.warning("camera %s: close failed: %s", self.name, exc)
