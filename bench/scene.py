"""Ground-truth scene bench: room-distance faces at known boxes through the daemon's pipeline and `fer`.

    PYTHONPATH=. .venv/bin/python bench/scene.py [--frames 600] [--config FILE.toml] [--pi3-pace COST.json] [--json]

1. Sprites: every labelled picture under --pictures (folders named like scraped-seed's
   "Happy+Human+Faces"; the label is edge.contracts.labels.label_from_name of the folder) in which
   the edge's still-picture detector (edge.vision.stills.faces_in_still, upsample 1, upright, no
   mirror) finds exactly one face at least --sprite-min-face px wide; the face is cut out with a
   generous margin and keeps its picture's label. Cached under .bench/ (npz, no pickle).
2. Scene: a textured room-like background (seeded), three columns; the middle one always holds a
   face, the side ones hold faces that walk in from the frame's edge and out again. Each face's
   width is drawn log-uniform in --min-width..--max-width and the sprite is scaled UNIFORMLY to
   it; it drifts and bobs smoothly. The true box of a face is its own detected box, scaled and
   moved with the sprite. A true face counts on a frame when at least 70 % of its box is visible
   (inside the frame, not covered by a nearer face); a face less visible than that is ignored:
   neither a miss nor, when a box matches it, a false box.
3. Ours: the frames in a child process (so its peak RSS is the pipeline's own) through
   edge.vision.pipeline.Pipeline.from_config(--config or the built-in defaults), exactly as the
   daemon runs it, CPU time of the pipeline thread (time.thread_time) per stage. An x86 core runs
   a detection round about ten times faster than a Pi 3, so by default the bench measures how soon
   an x86 machine finds a face; ``--pi3-pace COST.json`` (the line ``bench/pi3_cost.py --json``
   prints) holds every round for its Pi-3 time, for the recall a Pi 3 gets.
4. Peer: the same frames through the `fer` package (its Haar cascade + model; bench/fer_peer.py in
   .bench/fer-venv, made by bash bench/setup_fer.sh).

Matching rule: on each frame, true and reported boxes are paired one to one, highest IoU first;
a true face is found when its pair has IoU >= 0.3 (also reported at 0.5). right_label: share of
true face-frames whose paired face's smoothed (logged) label is the picture's label (a missed
face counts as wrong); fer has no smoothing, its per-frame label is used.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CACHE = REPO / ".bench"
FER_PYTHON = CACHE / "fer-venv" / "bin" / "python"
BANDS = ("<40", "40-80", ">=80")
IOU_FOUND, IOU_STRICT = 0.3, 0.5
SMALL_FACE_PX = 32         # recall_ge32: faces at least this wide (the default min_face_px; the target)
MIN_VISIBLE = 0.7          # share of a true box that must be visible for the face to count
LIFE, GAP = (40, 160), (10, 80)   # frames a face stays; frames a side column stays empty
SPRITE_FACE_CAP = 160      # sprites are stored with faces at most this wide (bounds the cache)
SPRITE_VERSION = 1         # bump when the sprite cutting changes, so old caches are not reused
# Margins around the detected box, in box widths/heights: hair above, chin and neck below, some
# background at the sides, so a pasted face is framed as a camera sees it.
MARGIN_SIDE, MARGIN_TOP, MARGIN_BOTTOM = 0.5, 0.6, 0.8


class UsageError(Exception):
    """A bad argument or missing input: printed as one line, exit 2."""


@dataclass(frozen=True)
class Sprite:
    image: np.ndarray                  # RGB uint8, the face with its margin
    face: tuple[int, int, int, int]    # the detected face box inside ``image``
    label: str                         # the picture's label (its folder)
    source: str                        # the picture's path relative to --pictures


def band_of(width: float) -> str:
    return "<40" if width < 40 else "40-80" if width < 80 else ">=80"


# ------------------------------------------------------------------------------ sprites
def labelled_pictures(root: Path) -> list[tuple[Path, str]]:
    """(picture, label) for every picture in a folder whose name names an emotion."""
    from edge.capture.sources import PICTURE_SUFFIXES
    from edge.contracts.labels import label_from_name

    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = label_from_name(folder.name)
        if label is None:
            continue
        out += [(p, label) for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES]
    return out


def cut_sprite(rgb: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face with its margin (clipped to the picture), shrunk so the face is at most SPRITE_FACE_CAP wide."""
    import cv2

    x, y, w, h = box
    x0, y0 = max(0, round(x - MARGIN_SIDE * w)), max(0, round(y - MARGIN_TOP * h))
    x1, y1 = min(rgb.shape[1], round(x + w + MARGIN_SIDE * w)), min(rgb.shape[0], round(y + h + MARGIN_BOTTOM * h))
    sprite, face = rgb[y0:y1, x0:x1], (x - x0, y - y0, w, h)
    if w > SPRITE_FACE_CAP:
        s = SPRITE_FACE_CAP / w
        size = (max(1, round(sprite.shape[1] * s)), max(1, round(sprite.shape[0] * s)))
        sprite = cv2.resize(sprite, size, interpolation=cv2.INTER_AREA)
        face = tuple(round(v * s) for v in face)
    return np.ascontiguousarray(sprite), face


def sprite_of_picture(job: tuple[str, int]) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Worker: the picture's sprite when the still detector finds exactly one large enough face."""
    from edge.capture.sources import load_picture
    from edge.vision.stills import PictureDetectParams, faces_in_still

    path, min_face = job
    try:
        rgb = load_picture(Path(path))
    except (ValueError, OSError):
        return None
    # Upright, upsample 1, one pass: a sprite should be a plain frontal face, found without tricks.
    params = PictureDetectParams(upsample=(1,), mirror=False, angles=())
    faces = faces_in_still(rgb, params, max_side=1024)
    if len(faces) != 1 or faces[0].box[2] < min_face or not room_around(rgb, faces[0].box):
        return None
    return cut_sprite(rgb, faces[0].box)


def room_around(rgb: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the picture holds at least half the margin on every side: a face at the picture's
    edge would be cut by the sprite's feathered border and not look like a whole face."""
    x, y, w, h = box
    return (x >= MARGIN_SIDE * w / 2 and rgb.shape[1] - (x + w) >= MARGIN_SIDE * w / 2
            and y >= MARGIN_TOP * h / 2 and rgb.shape[0] - (y + h) >= MARGIN_BOTTOM * h / 2)


def sprite_cache_path(pictures: list[tuple[Path, str]], root: Path, count: int, min_face: int) -> Path:
    digest = hashlib.sha256(f"{SPRITE_VERSION}|{root.resolve()}|{count}|{min_face}".encode())
    for path, label in pictures:
        digest.update(f"{path.relative_to(root)}|{label}|{path.stat().st_size}\n".encode())
    return CACHE / f"scene_sprites_{digest.hexdigest()[:16]}.npz"


def save_sprites(path: Path, sprites: list[Sprite]) -> None:
    CACHE.mkdir(exist_ok=True)
    meta = [{"face": list(s.face), "label": s.label, "source": s.source} for s in sprites]
    arrays = {f"s{i}": s.image for i, s in enumerate(sprites)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def load_sprites(path: Path) -> list[Sprite]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return [Sprite(z[f"s{i}"], tuple(m["face"]), m["label"], m["source"]) for i, m in enumerate(meta)]


def collect_sprites(root: Path, count: int, min_face: int, log) -> list[Sprite]:
    """Up to ``count`` sprites from the pictures under ``root`` (shuffled with a fixed seed, so the
    same folder always gives the same sprites), detected on all cores; cached."""
    from concurrent.futures import ProcessPoolExecutor

    pictures = labelled_pictures(root)
    if not pictures:
        raise UsageError(f"{root} holds no labelled pictures (folders named like 'Happy+Human+Faces')")
    cache = sprite_cache_path(pictures, root, count, min_face)
    if cache.is_file():
        return load_sprites(cache)
    order = np.random.default_rng(0).permutation(len(pictures))
    log(f"cutting sprites from {len(pictures)} pictures under {root} (cached in {cache.name})")
    sprites: list[Sprite] = []
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = [(str(pictures[i][0]), min_face) for i in order]
        for i, found in zip(order, pool.map(sprite_of_picture, jobs, chunksize=8)):
            if found is not None and len(sprites) < count:
                path, label = pictures[i]
                sprites.append(Sprite(found[0], found[1], label, str(path.relative_to(root))))
    if not sprites:
        raise UsageError(f"no picture under {root} has exactly one face of >= {min_face} px")
    save_sprites(cache, sprites)
    return sprites


# ------------------------------------------------------------------------------ the scene
def room_background(width: int, height: int, seed: int) -> np.ndarray:
    """A room-like RGB background: a lit wall (gradient), a floor, blurred furniture and windows,
    and fine texture, so the detector scans something with edges, never a flat colour."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = np.array(rng.integers(90, 200, 3), np.float32)
    light = 0.75 + 0.35 * np.exp(-(((xx - rng.uniform(0, width)) / width) ** 2 + ((yy / height) ** 2)) * 2.0)
    img = light[..., None] * wall
    floor_y = int(height * rng.uniform(0.7, 0.85))
    img[floor_y:] = np.array(rng.integers(40, 140, 3), np.float32) * (0.8 + 0.2 * yy[floor_y:, :, None] / height)
    for _ in range(int(rng.integers(6, 12))):       # furniture, frames, windows
        w, h = int(rng.integers(width // 12, width // 3)), int(rng.integers(height // 12, height // 2))
        x, y = int(rng.integers(-w // 2, width)), int(rng.integers(0, height))
        img[max(0, y):y + h, max(0, x):x + w] = np.array(rng.integers(20, 240, 3), np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    texture = cv2.GaussianBlur(rng.normal(0, 12, (height, width)).astype(np.float32), (0, 0), 1.0)
    return np.clip(img + texture[..., None], 0, 255).astype(np.uint8)


def feather_mask(height: int, width: int) -> np.ndarray:
    """Alpha (H, W, 1) float32: 1 over the middle of the sprite, fading to 0 at its edges, so a
    pasted sprite has no rectangular outline for a detector to latch onto."""
    ys = np.minimum(np.arange(height), np.arange(height)[::-1]) / max(1.0, 0.15 * height)
    xs = np.minimum(np.arange(width), np.arange(width)[::-1]) / max(1.0, 0.15 * width)
    return np.clip(np.minimum(ys[:, None], xs[None, :]), 0.0, 1.0).astype(np.float32)[..., None]


def scale_sprite(sprite: Sprite, face_width: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The sprite scaled uniformly (one factor for both axes) so its face is ``face_width`` wide."""
    import cv2

    s = face_width / sprite.face[2]
    h, w = sprite.image.shape[:2]
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    image = cv2.resize(sprite.image, size, interpolation=interp)
    fx, fy, fw, fh = sprite.face
    return image, (round(fx * s), round(fy * s), round(fw * s), round(fh * s))


def ease(t: float) -> float:
    """0 -> 1 smoothly (cosine), for walking in and out."""
    return 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, t)))


class Scene:
    """Frames and their true faces, computed on demand from a plan drawn once from ``seed``."""

    def __init__(self, sprites: list[Sprite], frames: int, size: tuple[int, int] = (640, 480), seed: int = 0,
                 min_width: float = 28.0, max_width: float = 160.0, noise: float = 2.0):
        self.sprites, self.frames, self.size, self.seed = sprites, frames, size, seed
        self.noise = noise
        self.background = room_background(size[0], size[1], seed)
        self.actors = self._plan(np.random.default_rng(seed + 1), min_width, max_width)
        self._scaled: dict[int, tuple[np.ndarray, tuple, np.ndarray]] = {}

    # -- the plan
    def _plan(self, rng, min_width: float, max_width: float) -> list[dict]:
        """Actors: (column, sprite, face width, first and last frame, path). The middle column is
        never empty; the side columns alternate empty stretches with faces walking in and out."""
        actors = []
        # Sprites in a shuffled order, none again before all were shown: as many faces as the
        # scene has room for, so a few sprites do not decide the label figure.
        self._order, self._next = rng.permutation(len(self.sprites)), 0
        for column in range(3):
            t = 0 if column == 1 else int(rng.integers(0, 60))
            while t < self.frames:
                life = int(rng.integers(LIFE[0], LIFE[1] + 1))
                width = float(np.exp(rng.uniform(np.log(min_width), np.log(max_width))))
                actors.append(self._actor(rng, column, t, min(self.frames, t + life), width))
                t += life + (0 if column == 1 else int(rng.integers(GAP[0], GAP[1] + 1)))
        return actors

    def _actor(self, rng, column: int, first: int, end: int, width: float) -> dict:
        W, H = self.size
        sprite = int(self._order[self._next % len(self._order)])
        self._next += 1
        col_w = W / 3.0
        cx = col_w * (column + 0.5) + rng.uniform(-0.15, 0.15) * col_w
        cy = rng.uniform(0.3, 0.7) * H
        return {"column": column, "sprite": sprite, "width": width, "first": first, "end": end,
                "cx": cx, "cy": cy, "walk": int(rng.integers(15, 41)),
                "drift": (rng.uniform(-0.1, 0.1) * col_w, rng.uniform(-0.06, 0.06) * H),
                "phase": (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)),
                "period": (rng.uniform(60, 200), rng.uniform(40, 120))}

    def _scaled_sprite(self, k: int):
        if k not in self._scaled:
            a = self.actors[k]
            image, face = scale_sprite(self.sprites[a["sprite"]], a["width"])
            self._scaled[k] = (image, face, feather_mask(*image.shape[:2]))
        return self._scaled[k]

    def _face_centre(self, k: int, i: int) -> tuple[float, float]:
        """Where actor ``k``'s face centre is on frame ``i``: a slow drift and bob; side columns walk
        in from their edge of the frame and out again."""
        a = self.actors[k]
        W = self.size[0]
        t = i - a["first"]
        cx = a["cx"] + a["drift"][0] * math.sin(2 * math.pi * t / a["period"][0] + a["phase"][0])
        cy = a["cy"] + a["drift"][1] * math.sin(2 * math.pi * t / a["period"][1] + a["phase"][1])
        if a["column"] != 1:
            outside = -a["width"] * 1.2 if a["column"] == 0 else W + a["width"] * 1.2
            shown = ease(t / a["walk"]) * ease((a["end"] - 1 - i) / a["walk"])
            cx = outside + (cx - outside) * shown
        return cx, cy

    def live(self, i: int) -> list[int]:
        """Actors on frame ``i``, farthest (narrowest face) first: nearer faces are pasted over them."""
        ks = [k for k, a in enumerate(self.actors) if a["first"] <= i < a["end"]]
        return sorted(ks, key=lambda k: self.actors[k]["width"])

    # -- rendering
    def render(self, i: int) -> tuple[np.ndarray, list[dict]]:
        """Frame ``i`` (RGB uint8) and its true faces: {actor, sprite, label, box, visible, counted}."""
        W, H = self.size
        frame = self.background.astype(np.float32)
        owner = np.full((H, W), -1, np.int32)      # which actor's sprite is on top, per pixel
        placed = []
        for k in self.live(i):
            image, face, alpha = self._scaled_sprite(k)
            cx, cy = self._face_centre(k, i)
            x, y = round(cx - face[0] - face[2] / 2), round(cy - face[1] - face[3] / 2)
            self._paste(frame, owner, image, alpha, x, y, k)
            placed.append((k, (x + face[0], y + face[1], face[2], face[3])))
        if self.noise:
            rng = np.random.default_rng((self.seed, i))   # per frame, so any frame renders alone
            frame += rng.normal(0, self.noise, frame.shape).astype(np.float32)
        truths = [self._truth(k, box, owner) for k, box in placed]
        return np.clip(frame, 0, 255).astype(np.uint8), truths

    def _paste(self, frame, owner, image, alpha, x, y, k) -> None:
        W, H = self.size
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        src = image[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32)
        a = alpha[y0 - y:y1 - y, x0 - x:x1 - x]
        region = frame[y0:y1, x0:x1]
        region[:] = region * (1 - a) + src * a
        owner[y0:y1, x0:x1][a[..., 0] >= 0.5] = k

    def _truth(self, k: int, box, owner) -> dict:
        W, H = self.size
        x, y, w, h = box
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        seen = int((owner[y0:y1, x0:x1] == k).sum()) if x1 > x0 and y1 > y0 else 0
        visible = seen / float(w * h)
        a = self.actors[k]
        sprite = self.sprites[a["sprite"]]
        return {"actor": k, "sprite": a["sprite"], "label": sprite.label, "box": [int(v) for v in box],
                "visible": round(visible, 3), "counted": visible >= MIN_VISIBLE}


# ------------------------------------------------------------------------------ scoring
def pair_boxes(truths: list[dict], reported: list[list[int]]) -> list[tuple[int, int, float]]:
    """One-to-one pairs (truth index, reported index, IoU), highest IoU first, IoU > 0 only."""
    from edge.vision.detect import iou

    pairs = sorted(((iou(tuple(t["box"]), tuple(r)), ti, ri) for ti, t in enumerate(truths)
                    for ri, r in enumerate(reported)), reverse=True)
    used_t, used_r, out = set(), set(), []
    for value, ti, ri in pairs:
        if value <= 0 or ti in used_t or ri in used_r:
            continue
        used_t.add(ti)
        used_r.add(ri)
        out.append((ti, ri, value))
    return out


def score(truth_frames: list[list[dict]], reported_frames: list[list[dict]]) -> dict:
    """Recall (IoU >= 0.3 and >= 0.5), by width band, false boxes a frame and right labels.

    ``reported_frames[i]``: [{"box": [x,y,w,h], "label": str}] for frame i."""
    counts = {b: 0 for b in BANDS}
    found = {thr: {b: 0 for b in BANDS} for thr in (IOU_FOUND, IOU_STRICT)}
    right = {b: 0 for b in BANDS}
    false_boxes = 0
    small = {"faces": 0, "found": 0}     # faces >= SMALL_FACE_PX wide: the daemon's min_face_px
    for truths, reported in zip(truth_frames, reported_frames):
        pairs = {ti: (ri, v) for ti, ri, v in pair_boxes(truths, [r["box"] for r in reported])}
        matched = {ri for ri, v in pairs.values() if v >= IOU_FOUND}
        false_boxes += len(reported) - len(matched)
        for ti, t in enumerate(truths):
            if not t["counted"]:
                continue
            band = band_of(t["box"][2])
            counts[band] += 1
            ri, v = pairs.get(ti, (None, 0.0))
            for thr, by_band in found.items():
                by_band[band] += v >= thr
            if t["box"][2] >= SMALL_FACE_PX:
                small["faces"] += 1
                small["found"] += v >= IOU_FOUND
            right[band] += v >= IOU_FOUND and reported[ri]["label"] == t["label"]
    total = sum(counts.values())
    share = lambda n, d: round(n / d, 4) if d else None   # None: no face in the band
    return {
        "true_face_frames": total, "true_face_frames_by_width": counts,
        "recall": share(sum(found[IOU_FOUND].values()), total),
        "recall_by_width": {b: share(found[IOU_FOUND][b], counts[b]) for b in BANDS},
        "recall_ge32": share(small["found"], small["faces"]),
        "recall_iou50": share(sum(found[IOU_STRICT].values()), total),
        "recall_by_width_iou50": {b: share(found[IOU_STRICT][b], counts[b]) for b in BANDS},
        "right_label": share(sum(right.values()), total),
        "right_label_by_width": {b: share(right[b], counts[b]) for b in BANDS},
        "right_label_when_found": share(sum(right.values()), sum(found[IOU_FOUND].values())),
        "false_per_frame": round(false_boxes / max(1, len(truth_frames)), 4),
    }


def spread(scene: Scene, truth_frames: list[list[dict]]) -> dict:
    """How many distinct sprites the counted face-frames came from, and how evenly."""
    per_sprite: dict[int, int] = {}
    for truths in truth_frames:
        for t in truths:
            if t["counted"]:
                per_sprite[t["sprite"]] = per_sprite.get(t["sprite"], 0) + 1
    frames = sorted(per_sprite.values())
    labels: dict[str, int] = {}
    for k in per_sprite:
        labels[scene.sprites[k].label] = labels.get(scene.sprites[k].label, 0) + 1
    top = sum(frames[-10:]) / max(1, sum(frames))
    return {"distinct_faces": len(per_sprite), "sprites_available": len(scene.sprites),
            "distinct_faces_by_label": dict(sorted(labels.items())),
            "face_frames_per_sprite": {"median": float(np.median(frames)) if frames else 0, "max": max(frames, default=0)},
            "share_of_top10_sprites": round(top, 4)}


# ------------------------------------------------------------------------------ ours (child)
def read_frames(path: Path):
    """Frames of an .npy (N, H, W, 3) uint8 file, each read into a fresh array: no memory map, so
    the frames never count towards the child's RSS beyond the one being processed."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(f)
        for _ in range(shape[0]):
            frame = np.empty(shape[1:], np.uint8)
            f.readinto(memoryview(frame).cast("B"))
            yield frame


def build_pipeline(config_path: str | None):
    from edge.config import Config, load_config
    from edge.vision.pipeline import Pipeline

    # None = the built-in defaults, never /etc/moodcam/config.toml that load_config(None) would read.
    config = Config() if config_path is None else load_config(config_path)
    if hasattr(Pipeline, "from_config"):
        return Pipeline.from_config(config, clock=time.thread_time), config
    # A tree from before Pipeline.from_config: build it as `moodcam run` did then.
    from edge.contracts.modelfile import default_model_path
    from edge.vision.classify import Classifier

    c = config.classifier
    classifier = Classifier(c.model or default_model_path(), c.num_threads, c.batch, c.tta, c.tta_zoom,
                            c.zoom_across_frames)
    return Pipeline.build(classifier, config.detector, config.tracker, clock=time.thread_time), config


class Pi3Pace:
    """Detection rounds that last as long as on a Pi 3: each round is held until the Pi-3 cost
    model's estimate of its time has passed (its regions' scanned pixels through the model's fitted
    region cost, or its full-scan count), at the middle of the model's CPI band. On this x86 machine a
    round takes a tenth of that, so without it the scene bench measures how fast an x86 core finds a
    face that just came in, not how fast a Pi does. ``cost``: the object ``bench/pi3_cost.py --json``
    prints for the same config."""

    def __init__(self, cost: dict, config):
        d = config.detector
        key = f"scan_full min_face={d.min_face_px} upsample={d.upsample} width={d.detect_width}"
        # A full scan is the detector on the whole frame; the bare detector's count stands in for a
        # config the cost model did not count a full scan for.
        bare = f"detect upsample={d.upsample} width={d.detect_width}"
        try:
            self.full = cost["items"].get(key, cost["items"].get(bare))["instructions"]
            self.motion = cost["items"]["motion"]["instructions"]
            self.a, self.b = cost["region_fit"]["pi3"]
            self.overhead = cost["round_check"]["pi3"]["overhead"]
            self.cpi = (cost["cpi"]["low"] + cost["cpi"]["high"]) / 2
            self.hz = cost["clock_hz"]
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--pi3-pace: the cost model's object lacks {exc} (no '{key}'?); run "
                             f"bench/pi3_cost.py --json with the same --config") from None
        self.rounds: list[float] = []

    def round_s(self, scan) -> float:
        if scan.full:
            insns = self.full
        else:
            px = sum(max(1, round(r.box[2] * r.scale)) * max(1, round(r.box[3] * r.scale)) for r in scan.regions)
            insns = self.motion + self.overhead + len(scan.regions) * self.a + self.b * px
        return insns * self.cpi / self.hz

    def hold(self, scan_fn):
        def scan(index, gray, boxes):
            t0 = time.perf_counter()
            result = scan_fn(index, gray, boxes)
            seconds = self.round_s(result)
            self.rounds.append(seconds)
            rest = seconds - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
            return result
        return scan

    def summary(self) -> dict:
        ms = np.array(self.rounds or [0.0]) * 1e3
        return {"cpi": round(self.cpi, 3), "rounds": len(self.rounds), "round_ms_mean": round(float(ms.mean()), 1),
                "round_ms_max": round(float(ms.max()), 1)}


def load_pace(path: str | None, config):
    if path is None:
        return None
    try:
        lines = Path(path).read_text().strip().splitlines()
        cost = json.loads(lines[-1])
    except (OSError, IndexError, ValueError) as exc:
        raise UsageError(f"--pi3-pace {path}: not the JSON line of bench/pi3_cost.py --json ({exc})") from None
    return Pi3Pace(cost, config)


def run_child(frames_path: Path, config_path: str | None, fps: float, pace_path: str | None = None) -> dict:
    """Child process: every frame through the pipeline, paced at ``fps`` as a camera delivers them
    (the daemon's detection runs on its own thread and its full scans are due by the clock, so an
    unpaced loop would outrun every detection round); boxes, labels, ms, peak RSS. With
    ``pace_path``, detection rounds take their Pi-3 time (:class:`Pi3Pace`)."""
    from dataclasses import asdict

    from edge.capture.sources import Frame

    pipeline, config = build_pipeline(config_path)
    pace = load_pace(pace_path, config)
    if pace is not None:
        for scanner in getattr(pipeline, "scanners", [pipeline.scanner]):   # two with full scans apart
            scanner.scan = pace.hold(scanner.scan)
    # Only a detection thread's time is beside the loop; an inline round is already in "detect".
    threaded = getattr(pipeline, "worker", None) is not None
    faces, ms, detected, scan_ms = [], [], [], []
    wall = 0.0
    start = time.perf_counter()
    for i, image in enumerate(read_frames(frames_path)):
        pause = start + i / fps - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        t0 = time.perf_counter()
        result = pipeline.process(Frame(i, time.time(), image))
        wall += time.perf_counter() - t0
        faces.append([{"box": [int(v) for v in f.box], "label": f.smoothed.label,
                       "raw": f.raw.label if f.raw is not None else None, "track": f.track_id}
                      for f in result.faces])
        ms.append({k: round(v, 4) for k, v in result.ms.items()})
        detected.append(bool(result.detected))
        # the detection threads' own CPU time of the rounds applied on this frame
        scan_ms.append(round(sum(s.cpu_ms for s in result.scans), 4) if threaded else 0.0)
    close = getattr(pipeline, "close", None)
    if close:
        close()
    own = peak_rss_mb()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sections = {name: asdict(getattr(config, name)) for name in ("detector", "classifier", "performance")
                if hasattr(config, name)}
    return {"faces": faces, "ms": ms, "detected": detected, "scan_ms": scan_ms,
            "wall_ms": wall * 1e3 / max(1, len(ms)), "rss_mb": round(own, 1), "rss_children_mb": round(kids, 1),
            "sections": sections, "pi3_pace": pace.summary() if pace is not None else None}


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM of its address space). Not ru_maxrss: Linux carries the
    parent's high-water mark across fork+exec into it, and the parent holds every sprite."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(frames_path: Path, config_path: str | None, fps: float, pace_path: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(frames_path), "--fps", str(fps)]
    cmd += ["--config", config_path] if config_path else []
    cmd += ["--pi3-pace", pace_path] if pace_path else []
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-5:]
        raise RuntimeError("the pipeline child failed: " + " | ".join(tail))
    return json.loads(out.stdout.strip().splitlines()[-1])


def ms_summary(ms: list[dict]) -> tuple[dict, dict]:
    totals = np.array([sum(m.values()) for m in ms])
    stats = {"mean": round(float(totals.mean()), 3), "p50": round(float(np.percentile(totals, 50)), 3),
             "p95": round(float(np.percentile(totals, 95)), 3), "max": round(float(totals.max()), 3)}
    stages = sorted({k for m in ms for k in m})
    return stats, {s: round(float(np.mean([m.get(s, 0.0) for m in ms])), 3) for s in stages}


# ------------------------------------------------------------------------------ fer
def run_fer(frames_path: Path, indices: list[int], min_face: int) -> dict:
    """fer over the chosen frames: its boxes and labels, wall ms a frame (fer_peer's own timing) and
    CPU ms a frame (all its threads; the run's CPU time minus a one-frame run's, i.e. without
    TensorFlow's start-up)."""
    frames = np.load(frames_path, mmap_mode="r")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        many, one = Path(tmp) / "frames.npz", Path(tmp) / "one.npz"
        np.savez(many, frames=frames[indices])
        np.savez(one, frames=frames[indices[:1]])
        base_cpu, _ = fer_cpu_s(one, min_face)
        cpu, lines = fer_cpu_s(many, min_face)
    lines = [line for line in lines if "index" in line]
    ms = [line.get("ms", 0.0) for line in lines]
    faces = [[{"box": f["box"], "label": f["label"]} for f in line.get("faces", [])] for line in lines]
    return {"faces": faces, "ms": round(float(np.mean(ms)), 3),
            "cpu_ms": round(max(0.0, cpu - base_cpu) * 1e3 / max(1, len(ms) - 1), 3)}


def fer_cpu_s(npz: Path, min_face: int) -> tuple[float, list[dict]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [str(FER_PYTHON), str(REPO / "bench" / "fer_peer.py"), "--npz", str(npz), "--min-face-size", str(min_face)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, check=False)
    if out.returncode != 0:
        raise RuntimeError("fer_peer.py failed: " + " | ".join(out.stderr.strip().splitlines()[-3:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------------------ the run
def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r} is not WxH, e.g. 640x480") from None
    if not (64 <= w <= 4096 and 48 <= h <= 4096):
        raise UsageError(f"--size {text} is out of range (64x48 to 4096x4096)")
    return w, h


class Parser(argparse.ArgumentParser):
    def error(self, message):     # one line, no usage block, exit 2
        print(f"scene: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv) -> argparse.Namespace:
    ap = Parser(prog="scene", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--seed", type=int, default=0, help="the scene: background, faces, paths (default 0)")
    ap.add_argument("--min-width", type=float, default=28.0, help="narrowest true face, px (default 28)")
    ap.add_argument("--max-width", type=float, default=160.0, help="widest true face, px (default 160)")
    ap.add_argument("--pictures", default=None, help="labelled picture folders (default: shared scraped-seed)")
    ap.add_argument("--sprites", type=int, default=600, help="at most this many distinct faces (default 600)")
    ap.add_argument("--sprite-min-face", type=int, default=96,
                    help="a sprite's face must be at least this wide in its picture, px (default 96)")
    ap.add_argument("--config", default=None, help="the daemon's TOML config (default: built-in defaults)")
    ap.add_argument("--fps", type=float, default=10.0,
                    help="frames a second the pipeline is fed at, as a camera would (default 10)")
    ap.add_argument("--pi3-pace", metavar="JSON", default=None,
                    help="hold each detection round for its Pi-3 time, from this file's last line: the object "
                         "bench/pi3_cost.py --json printed for the same config (default: rounds at x86 speed)")
    ap.add_argument("--fer-stride", type=int, default=1, help="fer on every Nth frame (default 1)")
    ap.add_argument("--fer-min-face", type=int, default=50, help="fer's Haar min face size, px (fer's default 50)")
    ap.add_argument("--no-fer", action="store_true", help="skip the fer peer")
    ap.add_argument("--require-fer", action="store_true", help="fail when the fer peer venv is missing")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last stdout line")
    ap.add_argument("--child", metavar="FRAMES_NPY", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.frames < 1:
        raise UsageError(f"--frames {args.frames} must be at least 1")
    if not (8 <= args.min_width < args.max_width):
        raise UsageError(f"--min-width {args.min_width} / --max-width {args.max_width}: need 8 <= min < max")
    if not (0.5 <= args.fps <= 240):
        raise UsageError(f"--fps {args.fps} is out of range 0.5..240")
    if args.sprites < 1 or args.fer_stride < 1:
        raise UsageError("--sprites and --fer-stride must be at least 1")
    args.size = parse_size(args.size)
    if args.max_width * (1 + 2 * MARGIN_SIDE) > args.size[0] / 1.5:
        raise UsageError(f"--max-width {args.max_width} is too wide for a {args.size[0]} px frame")
    return args


def pictures_root(arg: str | None) -> Path:
    if arg is not None:
        root = Path(arg)
    else:
        from tests.shared_data import data_root

        base = data_root()
        root = base / "scraped-seed" if base else Path("../shared/data/scraped-seed")
    if not root.is_dir():
        raise UsageError(f"--pictures {root} is not a folder (give a folder of labelled picture folders)")
    return root


def check_config(path: str | None) -> None:
    from edge.config import ConfigError, load_config

    if path is None:
        return
    try:
        load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def fer_available(args, log) -> bool:
    if args.no_fer:
        return False
    if FER_PYTHON.exists():
        return True
    if args.require_fer:
        raise UsageError(f"the fer peer venv {FER_PYTHON.parent.parent} is missing; make it with bash bench/setup_fer.sh")
    log(f"fer peer: {FER_PYTHON.parent.parent} missing; make it with bash bench/setup_fer.sh (fer columns skipped)")
    return False


def render_all(scene: Scene, path: Path) -> list[list[dict]]:
    """Every frame into an .npy file (ours and fer read the same pixels); the true faces per frame."""
    W, H = scene.size
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(scene.frames, H, W, 3))
    truths = []
    for i in range(scene.frames):
        out[i], t = scene.render(i)
        truths.append(t)
    out.flush()
    del out
    return truths


def measure(args, log) -> dict:
    from edge.machine import cpu_description

    root = pictures_root(args.pictures)
    check_config(args.config)
    if args.pi3_pace:           # a wrong file fails here, before the frames are rendered
        from edge.config import Config, load_config

        load_pace(args.pi3_pace, Config() if args.config is None else load_config(args.config))
    with_fer = fer_available(args, log)
    sprites = collect_sprites(root, args.sprites, args.sprite_min_face, log)
    scene = Scene(sprites, args.frames, args.size, args.seed, args.min_width, args.max_width)
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        frames_path = Path(tmp) / "frames.npy"
        t0 = time.perf_counter()
        truths = render_all(scene, frames_path)
        log(f"rendered {args.frames} frames in {time.perf_counter() - t0:.1f} s; running the pipeline")
        ours = run_ours(frames_path, args.config, args.fps, args.pi3_pace)
        fer = None
        if with_fer:
            log("running fer")
            fer = run_fer(frames_path, list(range(0, args.frames, args.fer_stride)), args.fer_min_face)
    return figures(args, scene, truths, ours, fer, cpu_description())


def figures(args, scene, truths, ours, fer, cpu) -> dict:
    stats, stages = ms_summary(ours["ms"])
    scan = float(np.mean(ours["scan_ms"]))
    out = {"frames": args.frames, "size": f"{args.size[0]}x{args.size[1]}", "seed": args.seed, "fps_fed": args.fps,
           "cpu": cpu, "config": args.config or "defaults", "settings": ours["sections"],
           "faces_per_frame": round(sum(len(t) for t in truths) / max(1, len(truths)), 3),
           "match_rule": f"one-to-one by IoU; found at IoU >= {IOU_FOUND} (also {IOU_STRICT}); "
                         f"a face counts when >= {MIN_VISIBLE:.0%} of its box is visible"}
    out |= spread(scene, truths)
    out |= score(truths, ours["faces"])
    out |= {"ms_per_frame": stats, "ms_by_stage": stages,
            # detection on its own thread: its CPU a frame, and loop + thread (the CPU work a frame costs)
            "scan_thread_ms_per_frame": round(scan, 3), "cpu_ms_per_frame": round(stats["mean"] + scan, 3),
            "wall_ms_per_frame": round(ours["wall_ms"], 3),
            "detection_rounds": sum(ours["detected"]), "peak_rss_mb": ours["rss_mb"],
            "peak_rss_children_mb": ours["rss_children_mb"], "pi3_pace": ours.get("pi3_pace")}
    out["fer_ratio"] = None
    if fer is not None:
        idx = list(range(0, args.frames, args.fer_stride))
        out["fer"] = score([truths[i] for i in idx], fer["faces"])
        out["fer"] |= {"frames": len(idx), "min_face_size": args.fer_min_face,
                       "cpu_ms_per_frame": fer["cpu_ms"], "wall_ms_per_frame": fer["ms"]}
        # CPU to CPU, all of ours (loop + detection thread) against all of fer's threads: a busy
        # shared machine distorts wall time far more than CPU time.
        out["fer_ratio"] = round(fer["cpu_ms"] / max(1e-9, out["cpu_ms_per_frame"]), 2)
        out["fer_ratio_loop"] = round(fer["cpu_ms"] / max(1e-9, stats["mean"]), 2)
    return out


def pct(v) -> str:
    return "  -  " if v is None else f"{100 * v:5.1f}"


def print_table(f: dict) -> None:
    print(f"{f['cpu']}; config {f['config']}; fed at {f['fps_fed']} fps; settings {f['settings']}")
    if f.get("pi3_pace"):
        p = f["pi3_pace"]
        print(f"detection rounds held for their Pi-3 time (CPI {p['cpi']}): {p['rounds']} rounds, "
              f"mean {p['round_ms_mean']} ms, longest {p['round_ms_max']} ms")
    print(f"{f['frames']} frames {f['size']}, {f['faces_per_frame']} faces a frame, "
          f"{f['true_face_frames']} counted face-frames {f['true_face_frames_by_width']}")
    print(f"{f['distinct_faces']} distinct faces (of {f['sprites_available']} sprites) by label "
          f"{f['distinct_faces_by_label']}; face-frames a sprite: median {f['face_frames_per_sprite']['median']}, "
          f"max {f['face_frames_per_sprite']['max']}; top 10 sprites hold {f['share_of_top10_sprites']:.1%}")
    print(f"rule: {f['match_rule']}; recall of faces >= {SMALL_FACE_PX} px: moodcam {pct(f['recall_ge32'])}"
          + (f", fer {pct(f['fer']['recall_ge32'])}" if "fer" in f else ""))
    head = "            recall%  <40  40-80  >=80 | @0.5%  <40  40-80  >=80 | false/fr | label%  <40  40-80  >=80"
    print(head)
    rows = [("moodcam", f)] + ([("fer", f["fer"])] if "fer" in f else [])
    for name, s in rows:
        r, r5, lab = s["recall_by_width"], s["recall_by_width_iou50"], s["right_label_by_width"]
        print(f"{name:10s} {pct(s['recall'])} {pct(r['<40'])} {pct(r['40-80'])} {pct(r['>=80'])} |"
              f" {pct(s['recall_iou50'])} {pct(r5['<40'])} {pct(r5['40-80'])} {pct(r5['>=80'])} |"
              f" {s['false_per_frame']:8.3f} | {pct(s['right_label'])} {pct(lab['<40'])} {pct(lab['40-80'])} {pct(lab['>=80'])}")
    m = f["ms_per_frame"]
    print(f"moodcam CPU ms a frame, frame loop (thread time): mean {m['mean']}, p50 {m['p50']}, p95 {m['p95']}, "
          f"max {m['max']}; by stage {f['ms_by_stage']}; detection thread {f['scan_thread_ms_per_frame']} a frame "
          f"({f['detection_rounds']} rounds applied); loop + thread {f['cpu_ms_per_frame']}; "
          f"wall in process() {f['wall_ms_per_frame']}; peak RSS {f['peak_rss_mb']} MB")
    if "fer" in f:
        print(f"fer: {f['fer']['cpu_ms_per_frame']} CPU ms a frame (all threads), {f['fer']['wall_ms_per_frame']} wall, "
              f"{f['fer']['frames']} frames; fer_ratio {f['fer_ratio']} (fer CPU / our loop + thread CPU; "
              f"against the loop alone {f['fer_ratio_loop']})")


def main(argv=None) -> int:
    log = lambda msg: print(f"scene: {msg}", file=sys.stderr)
    try:
        args = parse_args(argv)
        if args.child:
            print(json.dumps(run_child(Path(args.child), args.config, args.fps, args.pi3_pace)))
            return 0
        result = measure(args, log)
    except UsageError as exc:
        print(f"scene: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"scene: error: {exc}", file=sys.stderr)
        return 1
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
