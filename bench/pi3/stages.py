"""The pipeline's stages, one callable each, for bench/pi3_cost.py: counted on arm64, timed on x86.

    python stages.py --inputs DIR --plan PLAN.json --mode count|time --out RESULT.json

Runs in two places from the same file: inside the arm64 root under qemu-aarch64 with the
instruction-counting plugin (``count``: a marker syscall before and after each stage's loop), and
natively in the checkout's venv (``time``: milliseconds per call). Each stage is built and called
once before its loop, so one-time costs (XNNPACK's weight packing, dlib's first allocations, lazy
imports) stay out of the per-call figure; the bench subtracts a run with 0 iterations as well.

Only the standard library, numpy and the edge package (from PYTHONPATH) are imported here, so it
runs in the Pi venv that deploy/install.sh makes.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import time
from pathlib import Path

import numpy as np

MARK_SYSCALL = 0x4d43        # bench/pi3/insncount.c: the plugin records the count at this syscall

_libc = None


def mark(marker_id: int) -> None:
    """Tell the counting plugin where we are (ENOSYS outside the plugin: harmless)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.argtypes = [ctypes.c_long, ctypes.c_long]
    _libc.syscall(MARK_SYSCALL, marker_id)


# ------------------------------------------------------------------------------ the stages
# Each builder takes (inputs, params) and returns (a callable, a short note on what it did).

def _classifier(inputs: dict, views: int = 1):
    from edge.vision.classify import Classifier

    return Classifier(inputs["model"], num_threads=1, tta=views == 2)


def _detections(inputs: dict, faces: int):
    from edge.vision.detect import Detection

    return [Detection(tuple(box), 1.0) for box in inputs["boxes"][:faces]]


def build_gray(inputs, params):
    from edge.vision.detect import gray_of

    frame = inputs["frame"]
    return (lambda: gray_of(frame)), f"{frame.shape[1]}x{frame.shape[0]} RGB -> gray"


def build_detect(inputs, params):
    from edge.config import DetectorConfig
    from edge.vision.detect import Detector, gray_of

    detector = Detector(DetectorConfig(detect_width=params["width"], upsample=params["upsample"]))
    gray = gray_of(inputs["frame"])
    return (lambda: detector.detect(gray)), f"{len(detector.detect(gray))} faces found"


def build_crop(inputs, params):
    classifier = _classifier(inputs)
    boxes = [tuple(inputs["boxes"][0])]
    frame = inputs["frame"]
    return (lambda: classifier.crops(frame, boxes)), f"box {boxes[0]}"


def build_classify(inputs, params):
    classifier = _classifier(inputs, params["views"])
    crops = classifier.crops(inputs["frame"], [tuple(inputs["boxes"][0])])
    label = classifier.classify(inputs["frame"], [tuple(inputs["boxes"][0])])[0].label
    return (lambda: classifier.probs(crops)), f"label {label}"


def build_invoke(inputs, params):
    """The interpreter's invoke alone: what the classify stage spends outside the model."""
    interpreter = _classifier(inputs).interpreter
    return interpreter.invoke, "invoke only"


def build_track_update(inputs, params):
    """A detection round's boxes applied to the tracks (the frame loop, when a round arrives)."""
    from edge.vision.track import Tracker

    tracker = Tracker(frame_size=(640, 480))
    detections = _detections(inputs, params["faces"])
    scanned = [(max(0, x - w), max(0, y - h), 3 * w, 3 * h) for x, y, w, h in inputs["boxes"]]   # region rounds
    frame = [0]
    tracker.update(detections, scanned, frame=0, now=0)   # the tracks exist: each round continues them

    def update():
        frame[0] += 2
        return tracker.update(detections, scanned, frame=frame[0], now=frame[0] + 1)
    return update, f"{len(tracker)} tracks"


def build_track_current(inputs, params):
    from edge.vision.track import Tracker

    tracker = Tracker(frame_size=(640, 480))
    tracker.update(_detections(inputs, params["faces"]), frame=0)
    frame = [0]

    def current():
        frame[0] += 1
        return tracker.current(frame[0])
    return current, f"{len(tracker)} tracks"


def build_smooth(inputs, params):
    """One face's smoothing and its two Predictions, as Pipeline.process does per face."""
    from edge.vision.classify import Prediction
    from edge.vision.track import Tracker

    tracker = Tracker()
    track_id = tracker.update(_detections(inputs, 1))[0].track_id
    probs = np.full(7, 1 / 7, np.float32)

    def smooth():
        smoothed = tracker.smooth(track_id, probs)
        return Prediction.from_probs(probs), Prediction.from_probs(smoothed)
    return smooth, "1 face"


# ---- today's daemon: detection rounds (edge.vision.scan) and one classifier view a frame
def _scanner(params, clock=None):
    from edge.config import DetectorConfig, PerformanceConfig
    from edge.vision.detect import Detector
    from edge.vision.scan import Scanner

    config = DetectorConfig(detect_width=params.get("width", 640), upsample=params.get("upsample", 1),
                            min_face_px=params.get("min_face", 32))
    if clock is None:
        return Scanner(Detector(config), config, PerformanceConfig())
    return Scanner(Detector(config), config, PerformanceConfig(), clock=clock)


def _gray(inputs):
    from edge.vision.detect import gray_of

    return gray_of(inputs["frame"])


def _moved_reference(inputs):
    """The previous round's reference (1/4 resolution) of a frame 8 px to the left: the faces moved."""
    from edge.vision.detect import gray_of, shrunk
    from edge.vision.scan import MOTION_DOWNSCALE

    return shrunk(gray_of(np.roll(inputs["frame"], -8, axis=1)), 1.0 / MOTION_DOWNSCALE)


def _scanned_px(region) -> int:
    return max(1, round(region.box[2] * region.scale)) * max(1, round(region.box[3] * region.scale))


def _region_note(region) -> str:
    return f"{region.why} region {region.box} x{region.scale:.2f} = {_scanned_px(region)} px scanned"


def build_motion(inputs, params):
    """Frame differencing at 1/4 resolution (scan.changed_boxes) against a reference where the faces moved."""
    from edge.vision.scan import changed_boxes

    gray, previous = _gray(inputs), _moved_reference(inputs)
    return (lambda: changed_boxes(previous, gray)), f"{len(changed_boxes(previous, gray))} changed boxes"


def build_region_track(inputs, params):
    """Scanner.scan_region of the region Scanner.plan puts around a track whose face is ``face`` px wide
    (centred on a real face of the bench frame)."""
    gray = _gray(inputs)
    scanner = _scanner(params)
    x, y, w, h = inputs["boxes"][1]
    face = params["face"]
    box = (round(x + w / 2 - face / 2), round(y + h / 2 - face / 2), face, face)
    region = [r for r in scanner.plan(gray, [box]) if r.why == "track"][0]   # no reference yet: no motion regions
    return (lambda: scanner.scan_region(gray, region)), _region_note(region)


def build_region_motion(inputs, params):
    """Scanner.scan_region of the motion region Scanner.plan makes of a ``side`` x ``side`` changed area
    (padded by min_face_px and zoomed so a min_face_px face reaches dlib's window)."""
    from edge.vision.detect import shrunk
    from edge.vision.scan import MOTION_DOWNSCALE

    gray = _gray(inputs)
    scanner = _scanner(params)
    side = params["side"]
    x, y, w, h = inputs["boxes"][0]
    x0, y0 = max(0, round(x + w / 2 - side / 2)), max(0, round(y + h / 2 - side / 2))
    previous = gray.copy()
    previous[y0:y0 + side, x0:x0 + side] = 255 - previous[y0:y0 + side, x0:x0 + side]
    scanner._previous = shrunk(previous, 1.0 / MOTION_DOWNSCALE)
    region = [r for r in scanner.plan(gray, []) if r.why == "motion"][0]
    return (lambda: scanner.scan_region(gray, region)), _region_note(region)


def build_scan_full(inputs, params):
    """Scanner.scan when a full scan is due: the whole frame at detect_width and upsample."""
    import itertools

    gray = _gray(inputs)
    scanner = _scanner(params, clock=itertools.count(0.0, 1e6).__next__)     # a full scan is always due
    boxes = [tuple(b) for b in inputs["boxes"]]
    result = scanner.scan(0, gray, boxes)
    assert result.full
    return (lambda: scanner.scan(0, gray, boxes)), f"{len(result.detections)} faces found"


def build_scan_round(inputs, params):
    """A whole region round (Scanner.scan, no full scan due): tracks of the bench frame's faces, and the
    faces moved 8 px since the reference. The check of the round model (motion + regions)."""
    gray, previous = _gray(inputs), _moved_reference(inputs)
    scanner = _scanner(params)
    scanner._next_full = float("inf")
    boxes = [tuple(b) for b in inputs["boxes"][:params["faces"]]]

    def round_():
        scanner._previous = previous
        return scanner.scan(0, gray, boxes)
    result = round_()
    assert not result.full
    return round_, "; ".join(_region_note(r) for r in result.regions) + f"; {len(result.detections)} faces"


def build_view(inputs, params):
    """Classifier.view_probs: one face in one view (plain and mirrored in turn), one model invoke."""
    classifier = _classifier(inputs, params.get("views", 2))
    crops = classifier.crops(inputs["frame"], [tuple(inputs["boxes"][0])])
    k = [0]

    def view():
        k[0] += 1
        return classifier.view_probs(crops, k[0])
    return view, "one view a call, in turn"


class _InstantScanner:
    """A Scanner stand-in that returns at once: what submitting a round and taking its result costs."""

    def __init__(self):
        from edge.vision.scan import ScanResult

        self.result = ScanResult(0, (), (), False, 0.0)

    def scan(self, index, gray, boxes):
        return self.result


def build_submit(inputs, params):
    """ScanWorker.submit + take (the frame loop's side of a round) and the thread hand-over."""
    from edge.vision.scanworker import ScanWorker

    worker = ScanWorker(_InstantScanner())
    gray = _gray(inputs)
    boxes = [tuple(b) for b in inputs["boxes"]]

    def submit():
        worker.submit(0, gray, boxes)
        worker.wait(5.0)
        return worker.take()
    return submit, "submit, wait, take"


def build_frame_main(inputs, params):
    """Pipeline.process of today's daemon on a frame where no round starts or arrives: gray, the tracks'
    boxes, and ``classify_per_frame`` faces classified in one view each (the main core's share)."""
    from edge.capture.sources import Frame
    from edge.config import DetectorConfig, PerformanceConfig
    from edge.vision.pipeline import Pipeline

    performance = PerformanceConfig(detection="inline", classify_per_frame=params["per_frame"],
                                    views_across_frames=True)
    pipeline = Pipeline.build(_classifier(inputs, params["views"]), DetectorConfig(every_n_frames=10 ** 9),
                              performance=performance)
    pipeline.tracker.frame_size = (640, 480)
    pipeline.tracker.update(_detections(inputs, params["faces"]), frame=0)
    pipeline._last_submit, pipeline._count = 0, 1          # the round of frame 0 happened: none is due
    frame = Frame(0, 0.0, inputs["frame"])
    result = pipeline.process(frame)
    return (lambda: pipeline.process(frame)), f"{len(result.faces)} faces reported, {params['per_frame']} classified"


def build_frame(inputs, params):
    """The old serial design's Pipeline.process on one frame (detection inline, full frame, every face in
    all views), to check the serial schedule's sum of the stages against."""
    from edge.capture.sources import Frame
    from edge.config import DetectorConfig, PerformanceConfig
    from edge.vision.pipeline import Pipeline

    every_n = 1 if params["detect"] else 10 ** 9     # detection on every call, or never after the first
    detector = DetectorConfig(detect_width=params["width"], upsample=params["upsample"], every_n_frames=every_n,
                              min_face_px=params.get("min_face", 32))
    performance = PerformanceConfig(detection="inline", region_scans=False, classify_per_frame=0,
                                    views_across_frames=False)
    pipeline = Pipeline.build(_classifier(inputs, params["views"]), detector, performance=performance)
    frame = Frame(0, 0.0, inputs["frame"])
    faces = len(pipeline.process(frame).faces)
    return (lambda: pipeline.process(frame)), f"{faces} faces"


def _live_faces(inputs, faces: int):
    from edge.service.live import Annotation

    labels = ("happy", "neutral", "surprise")
    return [Annotation(tuple(box), k + 1, labels[k % 3], 0.87) for k, box in enumerate(inputs["boxes"][:faces])]


def build_live_frame(inputs, params):
    """One live-view frame as the daemon's live thread makes it while someone watches: the faces'
    boxes, track ids and labels drawn on a BGR copy of the frame, and the copy JPEG-encoded."""
    from edge.service.live import live_frame

    frame, faces = inputs["frame"], _live_faces(inputs, params["faces"])
    size = len(live_frame(frame, faces, params["quality"]))
    return (lambda: live_frame(frame, faces, params["quality"])), f"{params['faces']} faces, {size} bytes"


def build_live_handover(inputs, params):
    """LiveView.offer on a frame that is due while someone watches: the frame loop's share (a copy of
    the frame and the faces' annotations handed to the live thread, which is kept from taking it)."""
    import tempfile
    from types import SimpleNamespace

    from edge.service.live import LiveView

    folder = tempfile.mkdtemp()
    live = LiveView(Path(folder), fps=2.0, quality=70)
    live.watched, live._next_check, live._thread = True, float("inf"), object()   # watched, no encoder
    faces = [SimpleNamespace(track_id=a.track, box=a.box, smoothed=SimpleNamespace(label=a.label, confidence=0.87))
             for a in _live_faces(inputs, params["faces"])]
    frame = inputs["frame"]

    def handover():
        live._slot, live._next_frame = None, 0.0
        live.offer(1.0, frame, faces)
    return handover, f"{params['faces']} faces"


def build_live_idle(inputs, params):
    """The daemon's test before LiveView.offer on a frame while nobody watches and no look at the
    wanted file is due: what the live view costs the frame loop then (the stat a second: live_check)."""
    import tempfile
    from types import SimpleNamespace

    from edge.service.live import LiveView

    daemon = SimpleNamespace(live=LiveView(Path(tempfile.mkdtemp()), fps=2.0, quality=70))
    daemon.live.due = float("inf")
    frame = SimpleNamespace(ts=1.0, image=inputs["frame"])

    def idle():
        if daemon.live is not None and frame.ts >= daemon.live.due:     # as Daemon.loop tests it
            daemon.live.offer(frame.ts, frame.image, ())
    return idle, "nobody watching: the daemon's test before offer"


def build_live_check(inputs, params):
    """LiveView.offer when its once-a-second look at the wanted file is due and nobody watches."""
    import tempfile

    from edge.service.live import LiveView

    live = LiveView(Path(tempfile.mkdtemp()), fps=2.0, quality=70)
    frame, faces = inputs["frame"], []

    def check():
        live._next_check = 0.0
        live.offer(1.0, frame, faces)
    return check, "stat of a missing live.wanted"


def build_noop(inputs, params):
    """An empty call: the loop's own cost a call, which the live-view stages are read net of."""
    return (lambda: None), "nothing"


def build_scene(inputs, params):
    """A logged face's scene thumbnail (logging.scene_width): the frame shrunk and JPEG-encoded."""
    from edge.store.records import encode_jpeg, scene_thumbnail

    frame, width, box = inputs["frame"], params["width"], tuple(inputs["boxes"][0])
    size = len(encode_jpeg(scene_thumbnail(frame, width, box)))
    return (lambda: encode_jpeg(scene_thumbnail(frame, width, box))), f"{width} px wide, {size} bytes"


def build_mobilenet_v2(inputs, params):
    """The calibration model: MobileNetV2 int8 224x224, one thread, as XNNPACK's published figure."""
    from edge.vision.interpreter import make_interpreter

    interpreter = make_interpreter(model_path=str(inputs["mobilenet_v2"]), num_threads=1)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return interpreter.invoke, "MobileNetV2 int8 224x224"


BUILDERS = {name[len("build_"):]: fn for name, fn in globals().items() if name.startswith("build_")}


# ------------------------------------------------------------------------------ running a plan
def load_inputs(folder: Path) -> dict:
    meta = json.loads((folder / "inputs.json").read_text())
    inputs = {"frame": np.load(folder / "frame.npy"), "boxes": meta["boxes"], "model": str(folder / "model.tflite")}
    if (folder / "mobilenet_v2.tflite").exists():
        inputs["mobilenet_v2"] = str(folder / "mobilenet_v2.tflite")
    return inputs


def count(plan: list[dict], inputs: dict) -> list[dict]:
    """Markers 2i and 2i+1 around item i's loop of ``iterations`` calls (after one call outside)."""
    out = []
    for i, item in enumerate(plan):
        fn, note = BUILDERS[item["stage"]](inputs, item["params"])
        fn()
        mark(2 * i)
        for _ in range(item["iterations"]):
            fn()
        mark(2 * i + 1)
        out.append({"key": item["key"], "note": note})
    return out


def timed(plan: list[dict], inputs: dict, budget_s: float = 1.0) -> list[dict]:
    """Median ms per call in this thread's CPU time (a busy shared machine distorts it far less than
    wall time; every stage runs on the calling thread): at least 5 calls, more up to ``budget_s``."""
    out = []
    for item in plan:
        fn, note = BUILDERS[item["stage"]](inputs, item["params"])
        fn()
        samples, start = [], time.perf_counter()
        while len(samples) < 5 or (time.perf_counter() - start < budget_s and len(samples) < 2000):
            t0 = time.thread_time()
            fn()
            samples.append((time.thread_time() - t0) * 1e3)
        out.append({"key": item["key"], "note": note, "ms": float(np.median(samples)), "calls": len(samples)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--mode", choices=("count", "time"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())
    inputs = load_inputs(args.inputs)
    result = count(plan, inputs) if args.mode == "count" else timed(plan, inputs)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
