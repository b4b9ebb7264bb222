"""The live view's server side: the daemon's annotated frames as an MJPEG stream.

The daemon (edge.service.live) writes ``live.jpg`` into the state directory only while
``live.wanted`` is fresh; each open stream touches that file about once a second, and sends each
new frame as one part of a ``multipart/x-mixed-replace`` response, which browsers show in a
plain ``<img>``. Frames older than FRAME_STALE_S (a stopped daemon) are never sent.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from edge.service.live import FRAME_NAME, WANTED_NAME

BOUNDARY = "frame"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
TOUCH_EVERY_S = 1.0      # well inside edge.service.live.WANTED_FRESH_S
POLL_S = 0.1             # how often a stream looks for a new frame
FRAME_STALE_S = 5.0      # a frame older than this is not live


class LiveFiles:
    """The two live-view files of one state directory, as the server uses them."""

    def __init__(self, state_dir: Path):
        self.wanted = Path(state_dir) / WANTED_NAME
        self.frame = Path(state_dir) / FRAME_NAME

    def want(self) -> None:
        """Tell the daemon a viewer is here (create or touch the wanted file, 0600)."""
        try:
            os.utime(self.wanted)
        except FileNotFoundError:
            fd = os.open(self.wanted, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)

    def latest(self, newer_than: int = -1) -> tuple[int, bytes] | None:
        """(mtime in ns, JPEG bytes) of a fresh frame newer than ``newer_than``, else None."""
        try:
            st = os.stat(self.frame)
            if st.st_mtime_ns <= newer_than or time.time() - st.st_mtime > FRAME_STALE_S:
                return None
            return st.st_mtime_ns, self.frame.read_bytes()
        except FileNotFoundError:      # not written yet, or replaced between stat and read
            return None

    async def wait_frame(self, timeout_s: float) -> bytes | None:
        """The latest fresh frame, waiting up to ``timeout_s`` for the daemon to write one."""
        deadline = time.monotonic() + timeout_s
        self.want()
        while True:
            got = self.latest()
            if got is not None or time.monotonic() > deadline:
                return got[1] if got else None
            await asyncio.sleep(POLL_S)

    async def stream(self):
        """Parts of the MJPEG stream, for as long as the client stays (the server cancels it then)."""
        last, next_touch = -1, 0.0
        while True:
            now = time.monotonic()
            if now >= next_touch:
                next_touch = now + TOUCH_EVERY_S
                await asyncio.to_thread(self.want)
            got = await asyncio.to_thread(self.latest, last)
            if got is not None:
                last, data = got
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                       + data + b"\r\n")
            await asyncio.sleep(POLL_S)
