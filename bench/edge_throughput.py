"""Edge throughput: the daemon's pipeline on a 640x480 stream with 1-3 faces per frame.

    PYTHONPATH=. python bench/edge_throughput.py [--frames 600] [--every-n 6] [--detect-width 640]

1. Sprites: faces from the shared scraped pictures (tests/shared_data.py), each a picture in which
   dlib finds exactly one face, cut out with some context around it.
2. Stream: segments of --segment frames; in each, 1-3 sprites (face width 90-160 px) drift slowly
   over a smooth background, like people in front of a camera. Frames are rendered on the fly so
   the stream never sits in memory.
3. Pipeline (a child process, so its peak RSS is the pipeline's own): edge.pipeline.Pipeline
   single-threaded, exactly as the daemon runs it: mean ms per frame per stage, fps, peak RSS.
4. Recall: dlib at full resolution (no downscale, upsample 0) on every frame is the reference; a
   reference face counts as found when the pipeline reports a box with IoU >= 0.5 on that frame.
5. Peer: the same frames (every --fer-stride-th) through the `fer` package (Haar + its TFLite
   model) in its own venv (bash bench/setup_fer.sh), for a throughput ratio.

Targets on the dev machine: <= 5 ms per frame with recall >= 95 %, >= 5x fer, peak RSS <= 150 MB.
The machine may be busy (a training run); the figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

W, H = 640, 480
CACHE = REPO / ".bench"


# ------------------------------------------------------------------------------ the stream
def collect_sprites(count: int, seed: int = 0) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(RGB sprite, face box in sprite) from scraped pictures with exactly one dlib face."""
    import dlib
    from PIL import Image

    from edge.capture.sources import PICTURE_SUFFIXES, load_picture
    from edge.vision.detect import gray_of
    from tests.shared_data import shared_data

    root = shared_data("scraped-seed")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in PICTURE_SUFFIXES)
    rng = np.random.default_rng(seed)
    rng.shuffle(files)
    det = dlib.get_frontal_face_detector()
    sprites = []
    for path in files:
        if len(sprites) >= count:
            break
        try:
            rgb = load_picture(path)
        except ValueError:
            continue
        scale = min(1.0, 640 / max(rgb.shape[:2]))
        if scale < 1.0:
            rgb = np.asarray(Image.fromarray(rgb).resize((round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))))
        rects, scores, _ = det.run(gray_of(rgb), 0, 0.5)
        if len(rects) != 1 or rects[0].width() < 90:
            continue
        r = rects[0]
        x, y, w, h = r.left(), r.top(), r.width(), r.height()
        # Context: half a face on each side, a bit more below (chin, neck) - as a camera sees it.
        x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
        x1, y1 = min(rgb.shape[1], x + w + w // 2), min(rgb.shape[0], y + h + (3 * h) // 4)
        sprites.append((np.ascontiguousarray(rgb[y0:y1, x0:x1]), (x - x0, y - y0, w, h)))
    if len(sprites) < count:
        raise SystemExit(f"only {len(sprites)} usable face pictures found under {root}")
    return sprites


def plan_stream(sprites, frames: int, segment: int, seed: int = 1) -> list[dict]:
    """Per segment: which sprites, their scale, start position and velocity."""
    rng = np.random.default_rng(seed)
    plan = []
    # Segment lengths vary around --segment so faces do not always appear on a detection frame.
    starts, start = [], 0
    while start < frames:
        starts.append(start)
        start += int(rng.integers(segment // 2, segment * 3 // 2 + 1))
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else frames
        k = int(rng.integers(1, 4))
        slots = rng.permutation(3)[:k]          # three vertical bands keep faces from overlapping
        actors = []
        for slot in slots:
            idx = int(rng.integers(len(sprites)))
            sprite, (fx, fy, fw, fh) = sprites[idx]
            face_w = float(rng.uniform(90, 160))
            s = face_w / fw
            sw, sh = int(sprite.shape[1] * s), int(sprite.shape[0] * s)
            sw, sh = min(sw, 213), min(sh, H)
            x = int(slot * 213 + rng.integers(0, max(1, 213 - sw + 1)))
            y = int(rng.integers(0, max(1, H - sh + 1)))
            actors.append({"sprite": idx, "scale": s, "x": x, "y": y, "w": sw, "h": sh,
                           "vx": float(rng.uniform(-0.6, 0.6)), "vy": float(rng.uniform(-0.6, 0.6))})
        plan.append({"start": start, "length": end - start, "actors": actors,
                     "bg": [int(v) for v in rng.integers(40, 200, 3)]})
    return plan


class Renderer:
    def __init__(self, sprites, plan):
        from PIL import Image

        self.plan = plan
        self._scaled = {}
        self.sprites = sprites
        self.Image = Image
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        self._shade = (0.75 + 0.25 * np.sin(xx / 97.0) * np.cos(yy / 71.0))[..., None]

    def _sprite(self, idx, w, h):
        key = (idx, w, h)
        if key not in self._scaled:
            img = self.sprites[idx][0]
            self._scaled[key] = np.asarray(self.Image.fromarray(img).resize((w, h), self.Image.Resampling.BILINEAR))
        return self._scaled[key]

    def __len__(self):
        return sum(seg["length"] for seg in self.plan)

    def frame(self, i: int) -> np.ndarray:
        seg = next(s for s in self.plan if s["start"] <= i < s["start"] + s["length"])
        t = i - seg["start"]
        frame = (self._shade * np.array(seg["bg"], np.float32)).astype(np.uint8)
        for a in seg["actors"]:
            sprite = self._sprite(a["sprite"], a["w"], a["h"])
            x = int(np.clip(a["x"] + a["vx"] * t, 0, W - a["w"]))
            y = int(np.clip(a["y"] + a["vy"] * t, 0, H - a["h"]))
            frame[y : y + a["h"], x : x + a["w"]] = sprite
        return frame


def build(args):
    """Sprites + plan, cached in .bench/ as npz/JSON (no pickle)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"edge_stream_{args.sprites}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            sprites = [(z[f"s{i}"], tuple(int(v) for v in z[f"b{i}"])) for i in range(args.sprites)]
    else:
        sprites = collect_sprites(args.sprites)
        np.savez(path, **{f"s{i}": s for i, (s, _) in enumerate(sprites)},
                 **{f"b{i}": np.array(b) for i, (_, b) in enumerate(sprites)})
    return sprites, path


# ------------------------------------------------------------------------------ the pipeline
def run_pipeline(args) -> dict:
    """Child process: render frames, run the pipeline, report times, boxes and peak RSS."""
    from edge.capture.sources import Frame
    from edge.config import ClassifierConfig, DetectorConfig, TrackerConfig
    from edge.vision.classify import Classifier
    from edge.vision.pipeline import Pipeline, StageTimes

    with np.load(args.sprite_file, allow_pickle=False) as z:
        n = len([k for k in z.files if k.startswith("s")])
        sprites = [(z[f"s{i}"], tuple(int(v) for v in z[f"b{i}"])) for i in range(n)]
    plan = json.loads(Path(args.plan_file).read_text())
    render = Renderer(sprites, plan)
    tta = ClassifierConfig().tta if args.tta == "config" else args.tta == "on"
    zoom = ClassifierConfig().tta_zoom if args.tta_zoom is None else args.tta_zoom
    spread = ClassifierConfig().zoom_across_frames if args.zoom_across_frames == "config" else args.zoom_across_frames == "on"
    classifier = Classifier(args.model, 1, args.batch, tta, zoom, spread)
    det_cfg = DetectorConfig(detect_width=args.detect_width, upsample=args.upsample, every_n_frames=args.every_n,
                             min_face_px=args.min_face_px)
    pipeline = Pipeline.build(classifier, det_cfg, TrackerConfig(), clock=time.thread_time)
    times = StageTimes()
    boxes = []
    wall = 0.0
    for i in range(len(render)):
        frame = Frame(i, time.time(), render.frame(i))
        t0 = time.perf_counter()
        result = pipeline.process(frame)
        wall += time.perf_counter() - t0
        times.add(result.ms)
        boxes.append([list(f.box) for f in result.faces])
    mean = times.mean()
    return {"ms": mean, "fps": round(1000.0 / max(1e-9, mean["total"]), 1), "boxes": boxes,
            "wall_ms": round(wall * 1000.0 / max(1, len(render)), 3),
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "runtime": classifier.runtime, "tta": tta, "tta_zoom": zoom, "zoom_across_frames": spread}


def reference_boxes(render) -> list[list[tuple]]:
    import dlib

    from edge.vision.detect import gray_of

    det = dlib.get_frontal_face_detector()
    out = []
    for i in range(len(render)):
        rects = det(gray_of(render.frame(i)), 0)
        out.append([(r.left(), r.top(), r.width(), r.height()) for r in rects])
    return out


def recall(reference, predicted) -> float:
    from edge.vision.detect import iou

    total = found = 0
    for ref, pred in zip(reference, predicted):
        for box in ref:
            total += 1
            found += any(iou(box, tuple(p)) >= 0.5 for p in pred)
    return found / max(1, total)


def _fer_cpu_s(python: Path, npz: Path) -> tuple[float, list[dict]]:
    """CPU seconds (all threads) of one fer_peer.py run over ``npz``, and its JSON lines."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([str(python), str(REPO / "bench" / "fer_peer.py"), "--npz", str(npz)],
                         capture_output=True, text=True, check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run_fer(render, stride: int) -> dict | None:
    """fer on every ``stride``-th frame: its wall ms per frame (fer_peer's own timing) and its CPU
    ms per frame (the run's CPU time minus a 1-frame run's, i.e. without TensorFlow's start-up),
    which, like ours, a busy machine distorts far less than wall time."""
    python = CACHE / "fer-venv" / "bin" / "python"
    if not python.exists():
        print("fer peer: .bench/fer-venv missing; run bash bench/setup_fer.sh", file=sys.stderr)
        return None
    idx = list(range(0, len(render), stride))
    npz, one = CACHE / "fer_frames.npz", CACHE / "fer_frame1.npz"
    np.savez(npz, frames=np.stack([render.frame(i) for i in idx]))
    np.savez(one, frames=render.frame(0)[None])
    try:
        base_cpu, _ = _fer_cpu_s(python, one)
        cpu, lines = _fer_cpu_s(python, npz)
    finally:
        npz.unlink(missing_ok=True)
        one.unlink(missing_ok=True)
    ms = [line["ms"] for line in lines if "ms" in line]
    faces = sum(len(line.get("faces", [])) for line in lines)
    return {"frames": len(ms), "ms": round(float(np.mean(ms)), 2), "fps": round(1000.0 / float(np.mean(ms)), 1),
            "cpu_ms": round(max(0.0, cpu - base_cpu) * 1000.0 / max(1, len(ms) - 1), 2), "faces": faces}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--segment", type=int, default=90, help="mean frames per group of faces (default 90: 3 s at 30 fps; lengths vary by +-50%%)")
    ap.add_argument("--sprites", type=int, default=40)
    ap.add_argument("--model", default=None, help="default: the shipped models/default.tflite")
    ap.add_argument("--detect-width", type=int, default=None, help="default: the config default")
    ap.add_argument("--upsample", type=int, default=None)
    ap.add_argument("--every-n", type=int, default=None)
    ap.add_argument("--min-face-px", type=int, default=None)
    ap.add_argument("--batch", default="auto", choices=("auto", "loop", "resize"))
    ap.add_argument("--tta", default="config", choices=("config", "on", "off"),
                    help="mirror test-time augmentation in the classifier (default: the config default)")
    ap.add_argument("--tta-zoom", type=float, default=None,
                    help="zoom test-time augmentation, as classifier.tta_zoom (default: the config default)")
    ap.add_argument("--zoom-across-frames", default="config", choices=("config", "on", "off"),
                    help="one zoom a frame in turn (on) or every zoom on every frame (off), as "
                         "classifier.zoom_across_frames (default: the config default)")
    ap.add_argument("--fer-stride", type=int, default=3, help="run fer on every Nth frame (0 = skip fer)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sprite-file", help=argparse.SUPPRESS)
    ap.add_argument("--plan-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    from edge.config import DetectorConfig
    from edge.contracts.modelfile import default_model_path

    d = DetectorConfig()
    args.model = args.model or str(default_model_path())
    args.detect_width = d.detect_width if args.detect_width is None else args.detect_width
    args.upsample = d.upsample if args.upsample is None else args.upsample
    args.every_n = d.every_n_frames if args.every_n is None else args.every_n
    args.min_face_px = d.min_face_px if args.min_face_px is None else args.min_face_px
    if args.child:
        print(json.dumps(run_pipeline(args)))
        return 0

    sprites, sprite_file = build(args)
    plan = plan_stream(sprites, args.frames, args.segment)
    plan_file = CACHE / "edge_stream_plan.json"
    plan_file.write_text(json.dumps(plan))
    render = Renderer(sprites, plan)
    child = [sys.executable, __file__, "--child", "--sprite-file", str(sprite_file), "--plan-file", str(plan_file),
             "--model", args.model, "--detect-width", str(args.detect_width), "--upsample", str(args.upsample),
             "--every-n", str(args.every_n), "--min-face-px", str(args.min_face_px), "--batch", args.batch, "--tta", args.tta,
             "--zoom-across-frames", args.zoom_across_frames]
    child += [] if args.tta_zoom is None else ["--tta-zoom", str(args.tta_zoom)]
    out = subprocess.run(child, capture_output=True, text=True, check=True)
    ours = json.loads(out.stdout.strip().splitlines()[-1])
    ref = reference_boxes(render)
    from edge.machine import cpu_description

    figures = {
        "cpu": cpu_description(),  # the classifier's int8 speed differs several times between CPUs
        "frames": len(render), "faces_in_reference": sum(map(len, ref)),
        "settings": {"detect_width": args.detect_width, "upsample": args.upsample, "every_n_frames": args.every_n,
                     "min_face_px": args.min_face_px, "batch": args.batch, "runtime": ours["runtime"],
                     "tta": ours["tta"], "tta_zoom": ours["tta_zoom"], "zoom_across_frames": ours["zoom_across_frames"]},
        "cpu_ms_per_frame": ours["ms"], "fps": ours["fps"], "wall_ms_per_frame": ours["wall_ms"],
        "peak_rss_mb": ours["rss_mb"],
        "recall_vs_full_res": round(recall(ref, ours["boxes"]), 4),
    }
    fer = run_fer(render, args.fer_stride) if args.fer_stride else None
    if fer:
        figures["fer"] = fer
        figures["speedup_vs_fer_cpu"] = round(fer["cpu_ms"] / ours["ms"]["total"], 1)
        figures["speedup_vs_fer_wall"] = round(fer["ms"] / ours["wall_ms"], 1)   # measured at different moments
    if args.json:
        print(json.dumps(figures))
    else:
        ms = figures["cpu_ms_per_frame"]
        print(f"{figures['cpu']}: frames {figures['frames']}, reference faces {figures['faces_in_reference']}, settings {figures['settings']}")
        print("mean CPU ms per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in ms.items())
              + f" (wall {figures['wall_ms_per_frame']:.2f} ms on this machine as busy as it is)")
        print(f"fps {figures['fps']} (1000 / CPU ms), peak RSS {figures['peak_rss_mb']} MB, "
              f"recall vs full-resolution detection {figures['recall_vs_full_res']:.1%}")
        if fer:
            print(f"fer: {fer['cpu_ms']} CPU ms per frame, {fer['ms']} wall ms ({fer['frames']} frames, "
                  f"{fer['faces']} faces); moodcam is {figures['speedup_vs_fer_cpu']}x faster in CPU time "
                  f"({figures['speedup_vs_fer_wall']}x wall to wall, measured at different moments of a busy machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
