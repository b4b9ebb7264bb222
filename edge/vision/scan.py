"""What the detector looks at in a video frame: the whole frame now and then, else only where faces can be.

dlib's HOG costs time in proportion to the pixels it scans, and it finds faces down to its 80-px
window (40 px at upsample 1). A room camera's faces are 30-80 px, so scanning every frame finely
is far beyond a Pi 3 (about 1 s a 640x480 frame at upsample 1). Instead each detection round
scans one of:

- the **whole frame** (at the config's ``detect_width`` and ``upsample``) every ``full_scan_s``
  seconds, which finds faces that sit still;
- otherwise **regions**: around each live track, zoomed so its face is about 90 px (it follows a
  moving face and keeps its box fresh), and where the picture **changed** since the last round
  (frame differencing at 1/4 resolution costs little), zoomed so a ``min_face_px`` face reaches
  dlib's window. A changed region is where a face that just came in is.

A :class:`ScanResult` says which regions were scanned, so the tracker only counts a miss for a
track whose region was looked at.

With ``performance.detection = "split"`` the two kinds run on two threads (two of a Pi's cores): a
``kind="full"`` scanner does only full scans and a ``kind="regions"`` one only region rounds, back
to back, so a 1-s full scan never holds up the region round that finds a face just come in. The
changed-picture reference stays with the region rounds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from edge.config import DetectorConfig, PerformanceConfig
from edge.contracts.crop import Box
from edge.vision.detect import Detection, Detector, clamp_box, iou, shrunk

DLIB_WINDOW_PX = 80          # the smallest face dlib's frontal HOG finds at upsample 0
TRACK_FACE_PX = 90           # a track's region is zoomed so its face is about this wide
TRACK_MARGIN = 0.75          # a track's region: its box widened by this many face widths each side
MOTION_DOWNSCALE = 4         # frame differencing at 1/4 of the frame's width and height
MOTION_THRESHOLD = 18        # gray levels of change that count (sensor noise is a few levels)
MOTION_MIN_PIXELS = 4        # changed pixels (at 1/4 resolution) a region needs
MAX_MOTION_REGIONS = 3       # the largest changed regions scanned in one round
MAX_REGION_PIXELS = 90_000   # a motion region's zoom is capped so it scans at most this many pixels (0.3 of 640x480)


@dataclass(frozen=True)
class Region:
    box: Box          # x, y, w, h in frame pixels
    scale: float      # scanned pixels per frame pixel (> 1: zoomed in)
    why: str          # "full", "track" or "motion"


@dataclass(frozen=True)
class ScanResult:
    frame_index: int
    detections: tuple[Detection, ...]
    regions: tuple[Region, ...]
    full: bool
    cpu_ms: float     # CPU time of this round, on the thread that scanned


def covers(region: Box, box: Box) -> bool:
    """Whether the centre of ``box`` lies inside ``region``: the track was looked for there."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return region[0] <= cx < region[0] + region[2] and region[1] <= cy < region[1] + region[3]


def suppress_overlaps(detections: list[Detection], threshold: float = 0.4) -> list[Detection]:
    """One detection per face where regions overlapped: the highest score wins."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(iou(det.box, k.box) < threshold for k in kept):
            kept.append(det)
    return kept


def changed_boxes(previous: np.ndarray | None, gray: np.ndarray) -> list[Box]:
    """Boxes (frame pixels) around what changed between two gray frames, largest first."""
    import cv2

    small = shrunk(gray, 1.0 / MOTION_DOWNSCALE)
    if previous is None or previous.shape != small.shape:
        return []
    diff = cv2.absdiff(small, previous)
    mask = (diff > MOTION_THRESHOLD).astype(np.uint8)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = []
    for x, y, w, h, area in stats[1:count]:
        if area >= MOTION_MIN_PIXELS:
            boxes.append((int(area), (int(x) * MOTION_DOWNSCALE, int(y) * MOTION_DOWNSCALE,
                                      int(w) * MOTION_DOWNSCALE, int(h) * MOTION_DOWNSCALE)))
    return [box for _, box in sorted(boxes, reverse=True)]


class Scanner:
    """``scan(index, gray, track_boxes) -> ScanResult``: one detection round, chosen as above.

    ``kind``: "any" (a full scan when one is due, else regions: one thread does both), "full" (every
    round a full scan; :meth:`full_due` says when the next is due) or "regions" (never a full scan)."""

    KINDS = ("any", "full", "regions")

    def __init__(self, detector: Detector, config: DetectorConfig, performance: PerformanceConfig,
                 clock=time.monotonic, kind: str = "any"):
        if kind not in self.KINDS:
            raise ValueError(f"scanner kind {kind!r} is not one of {self.KINDS}")
        self.detector, self.config, self.performance = detector, config, performance
        self.clock, self.kind = clock, kind
        self._next_full = 0.0          # the first round scans the whole frame
        self._previous: np.ndarray | None = None

    def full_due(self) -> bool:
        """Whether a full scan is due by the clock (``full_scan_s`` after the last one started)."""
        return not self.performance.region_scans or self.clock() >= self._next_full

    def scan(self, index: int, gray: np.ndarray, track_boxes: list[Box]) -> ScanResult:
        t0 = time.thread_time()
        full = self.kind == "full" or (self.kind == "any" and self.full_due())
        if full:
            self._next_full = self.clock() + self.performance.full_scan_s
            regions = (Region((0, 0, gray.shape[1], gray.shape[0]), 1.0, "full"),)
            detections = self.detector.detect(gray)
        else:
            regions = tuple(self.plan(gray, track_boxes))
            detections = [d for r in regions for d in self.scan_region(gray, r)]
        # The changed-picture reference is the frame of the latest round that keeps one: with full
        # scans on their own thread, only the region rounds' (a full scan's frame is a second old).
        if self.kind != "full":
            self._previous = shrunk(gray, 1.0 / MOTION_DOWNSCALE)
        detections = suppress_overlaps([d for d in detections if d.box[2] >= self.config.min_face_px])
        return ScanResult(index, tuple(detections), regions, full, (time.thread_time() - t0) * 1e3)

    def plan(self, gray: np.ndarray, track_boxes: list[Box]) -> list[Region]:
        height, width = gray.shape[:2]
        regions = []
        for box in track_boxes:
            margin = TRACK_MARGIN * box[2]
            area = clamp_box(box[0] - margin, box[1] - margin, box[0] + box[2] + margin, box[1] + box[3] + margin,
                             width, height)
            if area is not None:
                # In or out, so the face is ~TRACK_FACE_PX: every track region costs the same.
                regions.append(Region(area, TRACK_FACE_PX / max(1, box[2]), "track"))
        motion_zoom = max(1.0, DLIB_WINDOW_PX / self.config.min_face_px)
        pad = self.config.min_face_px
        for box in changed_boxes(self._previous, gray)[:MAX_MOTION_REGIONS]:
            area = clamp_box(box[0] - pad, box[1] - pad, box[0] + box[2] + pad, box[1] + box[3] + pad, width, height)
            # A tracked face that moves changes the picture around itself: a track region as wide
            # covers that; a wider change may hold a face that just came in beside it.
            if area is not None and not any(covers(r.box, area) and r.box[2] >= area[2] for r in regions):
                regions.append(self._motion_region(area, motion_zoom))
        return regions

    @staticmethod
    def _motion_region(box: Box, zoom: float) -> Region:
        # A big changed area at a big zoom would cost more than a full scan: it is a person close
        # by, whose face is large too, so less zoom finds it. Never below 1x: shrinking it would
        # lose the large faces dlib's window finds as they are.
        cap = math.sqrt(MAX_REGION_PIXELS / max(1, box[2] * box[3]))
        return Region(box, max(1.0, min(zoom, cap)), "motion")

    def scan_region(self, gray: np.ndarray, region: Region) -> list[Detection]:
        import cv2

        x, y, w, h = region.box
        patch = gray[y:y + h, x:x + w]
        size = (max(1, round(w * region.scale)), max(1, round(h * region.scale)))
        if region.scale != 1.0:
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR if region.scale > 1 else cv2.INTER_AREA)
        found = self.detector.detect(np.ascontiguousarray(patch), detect_width=0, upsample=0, min_face_px=0)
        out = []
        for det in found:
            bx, by, bw, bh = det.box
            box = clamp_box(x + bx / region.scale, y + by / region.scale, x + (bx + bw) / region.scale,
                            y + (by + bh) / region.scale, gray.shape[1], gray.shape[0])
            if box is not None:
                out.append(Detection(box, det.score))
        return out
