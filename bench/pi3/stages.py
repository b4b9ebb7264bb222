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
    from edge.vision.track import Tracker

    tracker = Tracker()
    detections = _detections(inputs, params["faces"])
    tracker.update(detections)            # the tracks exist: each round continues them
    return (lambda: tracker.update(detections)), f"{len(tracker)} tracks"


def build_track_current(inputs, params):
    from edge.vision.track import Tracker

    tracker = Tracker()
    tracker.update(_detections(inputs, params["faces"]))
    return tracker.current, f"{len(tracker)} tracks"


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


def build_frame(inputs, params):
    """The whole of Pipeline.process on one frame, to check the sum of the stages against."""
    from edge.capture.sources import Frame
    from edge.config import DetectorConfig
    from edge.vision.pipeline import Pipeline

    every_n = 1 if params["detect"] else 10 ** 9     # detection on every call, or never after the first
    detector = DetectorConfig(detect_width=params["width"], upsample=params["upsample"], every_n_frames=every_n)
    pipeline = Pipeline.build(_classifier(inputs, params["views"]), detector)
    frame = Frame(0, 0.0, inputs["frame"])
    faces = len(pipeline.process(frame).faces)
    return (lambda: pipeline.process(frame)), f"{faces} faces"


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
