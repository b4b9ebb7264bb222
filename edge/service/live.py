"""The live view's daemon side: annotated JPEG frames into the state directory, only while watched.

The review server is another process. While a page shows the live view it touches
``live.wanted`` in the state directory about once a second (edge.review.live); the daemon looks
at that file's mtime at most once a second, and only while it is fresh writes ``live.jpg``
(temp file + rename, so a reader never sees half a frame) at ``[live] fps``. Nobody watching:
the frame loop pays one comparison a frame and one ``stat`` a second, and nothing is drawn,
encoded or written (``LiveView.offer`` returns before touching the frame).

Drawing and encoding run on a thread of their own, handed one frame at a time: when it is still
busy with the last one, the new one is skipped, so the frame loop never waits for it. OpenCV
releases Python's lock while it draws and encodes, so on a Pi it runs on another core.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("moodcam.live")

WANTED_NAME = "live.wanted"   # touched by the review server while a viewer is connected
FRAME_NAME = "live.jpg"       # the latest annotated frame, replaced atomically
WANTED_FRESH_S = 3.0          # a wanted file older than this: the viewer has gone
CHECK_EVERY_S = 1.0           # how often the daemon looks at the wanted file


@dataclass(frozen=True)
class Annotation:
    """What is drawn for one face: its box, track id and smoothed label."""

    box: tuple[int, int, int, int]
    track: int
    label: str
    confidence: float


# One BGR colour per label (OpenCV draws BGR), in edge.contracts.labels order.
COLOURS = {"angry": (60, 60, 230), "disgust": (60, 160, 60), "fear": (160, 60, 160), "happy": (40, 200, 240),
           "sad": (200, 120, 40), "surprise": (40, 140, 255), "neutral": (200, 200, 200)}


def annotate(image_rgb: np.ndarray, faces: list[Annotation]) -> np.ndarray:
    """A BGR copy of an RGB frame with each face's box and 'track label confidence' drawn on it."""
    import cv2

    out = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)   # the copy that is drawn on, in OpenCV's order
    for face in faces:
        x, y, w, h = (int(v) for v in face.box)
        colour = COLOURS.get(face.label, (255, 255, 255))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
        text = f"#{face.track} {face.label} {round(100 * face.confidence)}%"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y - th - base - 4)
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + base + 4), colour, cv2.FILLED)
        cv2.putText(out, text, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def encode_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def live_frame(image_rgb: np.ndarray, faces: list[Annotation], quality: int) -> bytes:
    """One live-view frame: drawn and encoded (what the cost model counts, bench/pi3/stages.py)."""
    return encode_jpeg(annotate(image_rgb, faces), quality)


def write_replace(path: Path, data: bytes) -> None:
    """Write path through a temp file and a rename: readers see the old frame or the new one.
    No fsync: a live frame is worth nothing after a power cut, and fsyncs wear the SD card."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, path)


class LiveView:
    """The daemon's live-view writer for one state directory. ``offer`` is called once a frame."""

    def __init__(self, state_dir: Path, fps: float, quality: int):
        self.wanted_path = Path(state_dir) / WANTED_NAME
        self.frame_path = Path(state_dir) / FRAME_NAME
        self.interval = 1.0 / fps
        self.quality = quality
        self.watched = False
        self.frames_written = 0
        self._next_check = 0.0        # frame time (unix seconds) of the next look at the wanted file
        self._next_frame = 0.0
        # The frame time before which offer() has nothing to do: the frame loop compares its frame's
        # time with it and calls offer() only then (nobody watching: once a second).
        self.due = 0.0
        self._slot: tuple | None = None
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._remove_frame()          # a frame left by an earlier run is not live

    def offer(self, ts: float, image: np.ndarray, faces) -> None:
        """Hand this frame over if someone watches and one is due; never blocks.

        ``ts`` is the frame's capture time; ``faces`` are the pipeline's FaceResults. The caller
        may skip the call while ``ts < self.due`` (the daemon does), which is what makes nobody
        watching cost one comparison a frame and a stat of the wanted file a second.
        """
        if ts >= self._next_check:
            self._next_check = ts + CHECK_EVERY_S
            self._check_wanted()
        if not self.watched:
            self.due = self._next_check
            return
        if ts < self._next_frame:
            self.due = min(self._next_check, self._next_frame)
            return
        self._next_frame = ts + self.interval
        self.due = min(self._next_check, self._next_frame)
        with self._wake:
            if self._slot is not None:      # still encoding the last one: skip this frame
                return
            notes = [Annotation(tuple(int(v) for v in f.box), int(f.track_id), f.smoothed.label,
                                float(f.smoothed.confidence)) for f in faces]
            self._slot = (image.copy(), notes)   # the source may reuse its buffer
            self._wake.notify()

    def _check_wanted(self) -> None:
        try:
            fresh = time.time() - os.stat(self.wanted_path).st_mtime < WANTED_FRESH_S
        except FileNotFoundError:
            fresh = False
        except OSError as exc:
            log.debug("live view: %s", exc)
            fresh = False
        if fresh and not self.watched:
            log.info("live view: a viewer is connected, writing %s at %.1f fps", self.frame_path, 1 / self.interval)
            self._start_thread()
        elif self.watched and not fresh:
            log.info("live view: no viewer any more")
            self._remove_frame()
        self.watched = fresh

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._slot is not None or self._stopped)
                if self._stopped:
                    return
                image, notes = self._slot
            try:
                data = live_frame(image, notes, self.quality)
                if self.watched:        # the viewer may have gone while it was drawn
                    write_replace(self.frame_path, data)
                    self.frames_written += 1
            except Exception as exc:  # noqa: BLE001 - the live view must never stop the camera
                log.warning("live view frame not written: %s", exc)
            with self._wake:
                self._slot = None

    def _remove_frame(self) -> None:
        with contextlib.suppress(OSError):
            self.frame_path.unlink()

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._remove_frame()
