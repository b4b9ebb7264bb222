"""Frame sources behind one small interface: what ``camera.source`` names, opened as a :class:`Source`.

A source has ``open()``, ``read() -> RGB uint8 array | None`` (None = the stream ended, e.g. the
end of a video file) and ``close()``; it may raise :class:`SourceError` or block.
:class:`edge.capture.camera.Camera` wraps one with timeouts, retries and reopen-with-backoff.

Source specs: ``auto``, ``picamera2``, ``v4l2:N``, ``file:PATH``, ``dir:PATH``, ``demo``, or any
other string OpenCV can open (``rtsp://...``, ``/dev/video2``).
"""
from __future__ import annotations

import difflib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from edge.capture.pictures import NotAPicture, decode_picture

log = logging.getLogger("moodcam.camera")

PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".mpo", ".ppm", ".pgm"}


class SourceSpecError(ValueError):
    """A source string that names no known kind of source."""


class SourceError(RuntimeError):
    """A source failed to open or to deliver a frame (it may recover after a reopen)."""


class SourceUnusable(SourceError):
    """A source that can never work as given (a missing file, a folder without pictures): retrying
    cannot help, so the daemon stops at once (exit 2) and says what to fix."""


class CameraError(RuntimeError):
    """The camera is gone for good: every reopen attempt failed. The daemon exits non-zero."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str   # auto | picamera2 | v4l2 | file | dir | demo | url
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


@dataclass(frozen=True)
class Frame:
    index: int            # 0, 1, 2... in the order the daemon received them
    ts: float             # capture time, seconds since the epoch (UTC)
    image: np.ndarray     # (height, width, 3) uint8 RGB


class Source(Protocol):
    name: str

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


def parse_source(spec: str) -> SourceSpec:
    spec = spec.strip()
    if spec in ("auto", "picamera2", "demo"):
        return SourceSpec(spec)
    kind, sep, arg = spec.partition(":")
    if sep and kind == "v4l2":
        if not arg.isdigit():
            raise SourceSpecError("'v4l2:' needs a device number such as v4l2:0 (for /dev/video0)")
        return SourceSpec("v4l2", arg)
    if sep and kind in ("file", "dir"):
        if not arg:
            raise SourceSpecError(f"'{kind}:' needs a path, e.g. {kind}:/home/pi/{'clip.mp4' if kind == 'file' else 'pictures'}")
        return SourceSpec(kind, arg)
    if "://" in spec or spec.startswith("/dev/"):
        return SourceSpec("url", spec)

    close = difflib.get_close_matches(spec.split(":")[0], ["auto", "picamera2", "v4l2", "file", "dir", "demo"], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise SourceSpecError(f"unknown source {spec!r}{hint} (use auto, picamera2, v4l2:N, file:PATH, dir:PATH, "
                          "demo, or a URL/device path OpenCV can open)")


def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` (RGB) to fit width x height keeping its aspect, centred on black."""
    if image.shape[0] == height and image.shape[1] == width:
        return image

    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = resized
    return out


def load_picture(path: Path) -> np.ndarray:
    """An RGB uint8 array from any picture Pillow reads (first frame of GIF/MPO, EXIF rotation
    applied); raises ValueError naming the file when it is not a readable picture."""
    try:
        return decode_picture(path)
    except NotAPicture as exc:
        raise ValueError(f"{path}: not a readable picture ({exc})") from None


# ----------------------------------------------------------------------------------- sources

class DirSource:
    """The pictures of a folder (recursively), in name order; unreadable files are skipped."""

    def __init__(self, path: str, width: int, height: int):
        self.name = f"dir:{path}"
        self.path, self.width, self.height = Path(path), width, height
        self._files: list[Path] = []
        self._next = 0
        self._delivered = 0
        self.skipped = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceUnusable(f"{self.path} is not a folder (dir: needs a folder of pictures)")
        self._files = sorted(p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
        if not self._files:
            raise SourceUnusable(f"{self.path} holds no pictures ({', '.join(sorted(PICTURE_SUFFIXES))}); "
                                 "give dir: a folder of pictures")
        self._delivered = 0

    def read(self) -> np.ndarray | None:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            try:
                frame = fit_frame(load_picture(path), self.width, self.height)
            except ValueError as exc:
                self.skipped += 1
                log.warning("skipping %s", exc)
                continue
            self._delivered += 1
            return frame
        if not self._delivered:
            raise SourceUnusable(f"none of the {len(self._files)} pictures in {self.path} could be read")
        return None

    def close(self) -> None:
        pass


class OpenCVSource:
    """A V4L2 device, a URL, or (``ends=True``) a video file that ends at its last frame."""

    def __init__(self, target: str | int, width: int, height: int, *, ends: bool, name: str):
        self.name, self.target, self.width, self.height, self.ends = name, target, width, height, ends
        self._cap = None

    def open(self) -> None:
        import cv2

        if self.ends and not Path(str(self.target)).is_file():
            raise SourceUnusable(f"video file {self.target} does not exist; give file: a video file")
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            if self.ends:   # a file that exists but is not a video OpenCV can read: it never will be
                raise SourceUnusable(f"OpenCV cannot read {self.target} as a video; give file: a video file")
            raise SourceError(f"OpenCV cannot open {self.name}; check the device/URL exists and is not in use")
        if not self.ends:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        self._cap = cap

    def read(self) -> np.ndarray | None:
        import cv2

        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self.ends:
                return None
            raise SourceError(f"{self.name} delivered no frame")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if rgb.shape[:2] != (self.height, self.width):
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return rgb

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Source:
    """The Raspberry Pi camera through picamera2 (imported only here, only when chosen)."""

    name = "picamera2"

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("picamera2 is not installed: sudo apt install python3-picamera2 and create the "
                              "venv with --system-site-packages (deploy/install.sh does both)") from None
        if not Picamera2.global_camera_info():
            raise SourceError("no Pi camera found: check the ribbon cable and 'rpicam-hello --list-cameras'")
        cam = Picamera2()
        # "BGR888" is [R, G, B] in memory in libcamera's naming, i.e. what we call RGB.
        cam.configure(cam.create_video_configuration(main={"size": (self.width, self.height), "format": "BGR888"}))
        cam.start()
        self._cam = cam

    def read(self) -> np.ndarray | None:
        return np.ascontiguousarray(self._cam.capture_array("main")[:, :, :3])

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None


class DemoSource:
    """Frames that need no camera and no downloaded data: scikit-image's public-domain astronaut
    photo (Eileen Collins, NASA) panning slowly across the frame, mirrored on every other pass,
    so detection, tracking and logging all have something to do."""

    name = "demo"

    def __init__(self, width: int, height: int, period_frames: int = 300):
        self.width, self.height, self.period = width, height, period_frames
        self._sprite = None
        self._i = 0

    def open(self) -> None:
        from skimage import data

        photo = data.astronaut()[0:300, 90:390]           # head and shoulders, face ~90 px wide
        side = int(self.height * 0.6)
        self._sprite = np.asarray(Image.fromarray(photo).resize((side, side), Image.Resampling.BILINEAR))
        ramp = np.linspace(60, 140, self.width, dtype=np.float32)
        self._background = np.repeat(np.broadcast_to(ramp[None, :, None], (self.height, self.width, 1)), 3, axis=2).astype(np.uint8)

    def read(self) -> np.ndarray | None:
        i, self._i = self._i, self._i + 1
        sprite = self._sprite if (i // self.period) % 2 == 0 else self._sprite[:, ::-1]
        side = sprite.shape[0]
        phase = (i % self.period) / self.period
        x = int((self.width - side) * (0.5 - 0.5 * math.cos(2 * math.pi * phase)))
        y = int((self.height - side) * 0.5 + 0.2 * (self.height - side) * math.sin(2 * math.pi * phase))
        frame = self._background.copy()
        frame[y : y + side, x : x + side] = sprite
        return frame

    def close(self) -> None:
        pass


def _picamera2_available() -> bool:
    try:
        from picamera2 import Picamera2
    except Exception:  # ImportError, or libcamera missing underneath it
        return False
    try:
        return bool(Picamera2.global_camera_info())
    except Exception:
        return False


def under_service_manager() -> bool:
    """True when systemd started us (it sets INVOCATION_ID for every unit it runs)."""
    return bool(os.environ.get("INVOCATION_ID"))


def resolve_auto() -> SourceSpec:
    """auto: the Pi camera if picamera2 imports and sees a camera, else /dev/video0, else demo.

    Under systemd there is no demo fallback: a service that logged synthetic faces while the real
    camera is unplugged would look healthy and fill the log with nonsense, so it fails instead
    (and systemd restarts it until the camera is back).
    """
    if _picamera2_available():
        return SourceSpec("picamera2")
    if Path("/dev/video0").exists():
        return SourceSpec("v4l2", "0")
    if under_service_manager():
        raise CameraError("camera.source = auto found no camera (no Pi camera via picamera2, no /dev/video0); "
                          "connect one and check 'rpicam-hello --list-cameras', or set camera.source = \"demo\" "
                          "in the config to run without a camera")
    return SourceSpec("demo")


def make_source(spec: str | SourceSpec, width: int = 640, height: int = 480) -> Source:
    spec = parse_source(spec) if isinstance(spec, str) else spec
    if spec.kind == "auto":
        spec = resolve_auto()
        log.info("camera.source = auto: using %s", spec)
    if spec.kind == "picamera2":
        return Picamera2Source(width, height)
    if spec.kind == "v4l2":
        return OpenCVSource(int(spec.arg), width, height, ends=False, name=str(spec))
    if spec.kind == "file":
        return OpenCVSource(spec.arg, width, height, ends=True, name=str(spec))
    if spec.kind == "dir":
        return DirSource(spec.arg, width, height)
    if spec.kind == "demo":
        return DemoSource(width, height)
    return OpenCVSource(spec.arg, width, height, ends=False, name=spec.arg)


def source_ends(source: Source) -> bool:
    """Whether a source runs out by itself (a video file, a folder) rather than streaming forever."""
    return isinstance(source, DirSource) or (isinstance(source, OpenCVSource) and source.ends)
