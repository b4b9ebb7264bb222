"""Measure a model honestly: on pre-cropped faces, or on raw pictures through the edge pipeline.

A model is a Keras run folder (its ``best.keras``), a ``.keras`` file, or an exported ``.tflite``
(int8: its input is quantized and its output dequantized with the sidecar's parameters, exactly
as the edge does). Every path ends in :func:`metrics`: accuracy, per-class precision / recall /
F1 and the confusion matrix, as plain JSON-able data; :func:`write_report` turns that into
``metrics.json``, ``confusion.png`` and ``report.md``.

Raw pictures (``<folder naming an emotion>/*``, e.g. the scraped seed) go through
:func:`faces_in_picture`: the edge's still-picture detector (:func:`edge.vision.stills.faces_in_still`,
the dlib HOG cascade ``moodcam classify`` and ingest use) + :func:`edge.contracts.crop.crop_face`
with the model's own crop parameters. A picture counts as right when the largest face found
carries the folder's label; a picture with no face found counts as wrong in ``accuracy`` and is
left out of ``accuracy_found``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from edge.capture.pictures import open_picture
from edge.contracts.crop import Box, CropParams, crop_face
from edge.contracts.labels import LABELS, label_from_name
from edge.contracts.modelfile import load_sidecar
from edge.vision.classify import average_over_views, tempered
from edge.vision.interpreter import make_interpreter
from edge.vision.stills import PictureDetectParams, faces_in_still
from trainer.calibrate import calibration_of, plot_reliability
from trainer.model import load_for_inference

# --------------------------------------------------------------------------- models

@dataclass(frozen=True)
class Predictor:
    """Faces (N, S, S) uint8 -> class probabilities (N, 7) float32."""

    name: str
    kind: str                                  # "keras" or "tflite-int8"
    crop: CropParams
    predict_fn: Callable[[np.ndarray], np.ndarray]
    tta: bool = False                          # average with the horizontally flipped face
    tta_zoom: float = 0.0                      # and with faces zoomed by 1 -/+ this (edge.vision.classify.tta_views)
    temperature: float = 1.0                   # the sidecar's calibration temperature, applied in predict_fn

    def predict(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces, dtype=np.uint8)
        if faces.ndim != 3 or faces.shape[1:] != (self.crop.size, self.crop.size):
            raise ValueError(f"faces have shape {faces.shape}; {self.name} takes (N, {self.crop.size}, {self.crop.size})")
        if not len(faces):
            return np.zeros((0, len(LABELS)), np.float32)
        # The edge's own view averaging, so an evaluated figure is what the Classifier does.
        return average_over_views(self.predict_fn, faces, self.tta, self.tta_zoom).astype(np.float32)


def keras_predict_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    def predict(faces: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(faces[..., None].astype(np.float32), batch_size=256, verbose=0))
    return predict


def tflite_predict_fn(tflite: bytes | Path, num_threads: int | None = None,
                      temperature: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Run an int8 (or float) .tflite one face at a time, quantizing as the edge does; scores are
    tempered by ``temperature`` (the sidecar's calibration) as the edge's Classifier does."""
    if isinstance(tflite, (bytes, bytearray)):
        interpreter = make_interpreter(model_content=bytes(tflite), num_threads=num_threads)
    else:
        interpreter = make_interpreter(model_path=str(tflite), num_threads=num_threads)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    in_dtype = np.dtype(inp["dtype"])

    def predict(faces: np.ndarray) -> np.ndarray:
        x = faces[..., None].astype(np.float32)
        if in_dtype.kind == "i":  # int8 model: q = x / scale + zero_point (exactly pixel - 128 for ours)
            info = np.iinfo(in_dtype)
            x = np.clip(np.round(x / in_scale + in_zero), info.min, info.max).astype(in_dtype)
        results = np.empty((len(faces), out["shape"][-1]), np.float32)
        for i in range(len(faces)):
            interpreter.set_tensor(inp["index"], x[i : i + 1])
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])[0]
            results[i] = (y.astype(np.float32) - out_zero) * out_scale if out_scale else y
        if temperature != 1.0:
            results = tempered(np.clip(results, 0.0, None), temperature, (out_scale or 1e-6) / 2.0)
        return results

    return predict


def load_predictor(model: Path, *, tta: bool = False, tta_zoom: float = 0.0, num_threads: int | None = None) -> Predictor:
    """A run folder, a ``.keras`` file or a ``.tflite`` (with its sidecar, hash checked)."""
    model = Path(model)
    if model.suffix == ".tflite":
        meta = load_sidecar(model)  # ModelFileError for a tampered file or a broken sidecar
        return Predictor(model.name, "tflite-int8", meta.crop, tflite_predict_fn(model, num_threads, meta.temperature),
                         tta, tta_zoom, meta.temperature)
    keras_file, crop = resolve_keras(model)
    loaded = load_for_inference(keras_file)
    crop = dataclasses.replace(crop, size=int(loaded.input_shape[1]))  # a bare .keras file: its own size
    return Predictor(str(model), "keras", crop, keras_predict_fn(loaded), tta, tta_zoom)


def resolve_keras(model: Path) -> tuple[Path, CropParams]:
    """(the .keras file, its crop parameters) for a run folder or a .keras file."""
    if model.is_dir():
        keras_file = model / "best.keras"
        if not keras_file.exists():
            raise FileNotFoundError(f"{model} has no best.keras; is it a run folder written by 'moodcam-train fit'?")
        return keras_file, run_crop_params(model)
    if model.suffix == ".keras" and model.is_file():
        return model, run_crop_params(model.parent)
    raise FileNotFoundError(f"model {model} is not a run folder, a .keras file or a .tflite file")


def run_crop_params(run: Path) -> CropParams:
    """The contract's crop at the input size of the run folder ``run`` (its hparams.json), or
    the contract's default size where there is none."""
    hparams = run / "hparams.json"
    if hparams.is_file():
        return CropParams(size=int(json.loads(hparams.read_text())["input_size"]))
    return CropParams()


# --------------------------------------------------------------------------- metrics

def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """accuracy, n, per_class {label: precision, recall, f1, support}, macro_f1, confusion (rows = truth)."""
    k = len(LABELS)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(LABELS):
        tp = int(confusion[i, i])
        predicted, support = int(confusion[:, i].sum()), int(confusion[i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": support}
    present = [c for c in per_class.values() if c["support"]]
    n = int(len(y_true))
    return {
        "accuracy": round(float(np.mean(y_true == y_pred)), 4) if n else 0.0,
        "n": n,
        "macro_f1": round(float(np.mean([c["f1"] for c in present])), 4) if present else 0.0,
        "per_class": per_class,
        "labels": list(LABELS),
        "confusion": confusion.tolist(),
    }


# --------------------------------------------------------------------------- pre-cropped faces

def evaluate_faces(predictor: Predictor, faces: np.ndarray, labels: np.ndarray) -> dict:
    start = time.perf_counter()
    probs = predictor.predict(faces)
    seconds = time.perf_counter() - start
    result = metrics(labels, probs.argmax(1))
    result |= {"mode": "faces", "ms_per_face": round(1000 * seconds / max(1, len(faces)), 3),
               "temperature": predictor.temperature, "calibration": calibration_of(probs, labels)}
    return result


# --------------------------------------------------------------------------- raw pictures

def load_picture(path: Path, max_side: int) -> np.ndarray:
    """First frame, EXIF-upright, RGB, shrunk so its longer side is at most ``max_side`` (a camera
    frame's size: what the edge detects on). Raises ValueError/OSError for a non-picture."""
    im = open_picture(path)  # the same decoding as ingest and the edge (NotAPicture is a ValueError)
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


@dataclass(frozen=True)
class PictureFace:
    box: Box
    crop: np.ndarray = field(repr=False)
    detector: str = "hog"


def faces_in_picture(rgb: np.ndarray, crop: CropParams, params: PictureDetectParams) -> list[PictureFace]:
    """The edge's detect + crop stages on one still picture, largest face first.

    Faces are found by :func:`edge.vision.stills.faces_in_still`, the very call ``moodcam classify``
    makes, so a picture is read here exactly as the edge reads a still. The picture is already
    shrunk by :func:`load_picture`, so the cascade scans it at its size.
    """
    return [PictureFace(d.box, crop_face(rgb, d.box, crop), d.detector) for d in faces_in_still(rgb, params)]


def labelled_pictures(root: Path) -> list[tuple[Path, int]]:
    """Every file under ``root/<folder naming an emotion>/`` with its label index."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"picture folder {root} does not exist")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = label_from_name(folder.name)
        if label is None:
            raise ValueError(f"{folder}: folder name names no emotion; name it after one of {', '.join(LABELS)} "
                             "(e.g. 'Happy+Human+Faces')")
        items += [(f, LABELS.index(label)) for f in sorted(folder.iterdir()) if f.is_file()]
    if not items:
        raise ValueError(f"{root}: no pictures in emotion-named sub-folders")
    return items


def evaluate_pictures(predictor: Predictor, root: Path, *, upsample: int = 1, max_side: int = 640,
                      limit: int | None = None, progress: bool = False, mmod: bool = False) -> dict:
    """Pictures through detect + crop + model. See the module docstring for how they count.
    ``mmod``: the cascade ends with dlib's CNN detector (``moodcam classify --mmod``)."""
    params = PictureDetectParams.starting_at(upsample, mmod=mmod)  # the cascade of `moodcam classify --upsample N`
    items = labelled_pictures(root)
    if limit:
        # An even spread over the folders, not the first folder only.
        items = [items[i] for i in np.linspace(0, len(items) - 1, min(limit, len(items))).astype(int)]
    rows, unreadable = [], []
    iterator = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="pictures", unit="pic")
    seconds = 0.0
    for path, label in iterator:
        try:
            rgb = load_picture(path, max_side)
        except Exception as exc:  # noqa: BLE001 - junk files are expected among scraped pictures
            unreadable.append({"path": str(path), "error": f"{type(exc).__name__}: {exc}"})
            continue
        start = time.perf_counter()
        faces = faces_in_picture(rgb, predictor.crop, params)
        probs = predictor.predict(np.stack([f.crop for f in faces])) if faces else np.zeros((0, len(LABELS)))
        took = time.perf_counter() - start
        seconds += took
        rows.append({"path": str(path), "label": label, "faces": len(faces),
                     "boxes": [list(map(int, f.box)) for f in faces],
                     "detector": faces[0].detector if faces else None,
                     "predicted": int(probs[0].argmax()) if faces else -1,
                     "confidence": round(float(probs[0].max()), 4) if faces else None,
                     "probs": [round(float(p), 4) for p in probs[0]] if faces else None,
                     "ms": round(1000 * took, 1)})
    truth = np.array([r["label"] for r in rows], np.int64)
    pred = np.array([r["predicted"] for r in rows], np.int64)
    found = pred >= 0
    # "All pictures": a picture without a face is wrong; the confusion matrix covers found faces.
    result = metrics(truth[found], pred[found])
    accuracy_found = result["accuracy"]
    confidence = np.array([r["confidence"] for r in rows if r["predicted"] >= 0], np.float64)
    n = len(rows)
    result |= {
        "mode": "pictures",
        "confusion_over": "pictures with a face (largest face)",
        "accuracy": round(float(np.sum(truth[found] == pred[found]) / n), 4) if n else 0.0,
        "n": n,
        "accuracy_found": accuracy_found,
        "n_found": int(found.sum()),
        "faces_found_rate": round(float(found.mean()), 4) if n else 0.0,
        "faces_total": int(sum(r["faces"] for r in rows)),
        "unreadable": len(unreadable),
        "upsample": upsample,
        "cascade": asdict(params),
        "max_side": max_side,
        "ms_per_picture": round(1000 * seconds / max(1, n), 2),
        "mmod": mmod,
        "found_by_mmod": int(sum(r["detector"] == "mmod" for r in rows)),
        "temperature": predictor.temperature,
        "calibration": calibration_of_found(confidence, truth[found] == pred[found]),
        "per_picture": rows,
        "unreadable_files": unreadable,
    }
    return result


def calibration_of_found(confidence: np.ndarray, correct: np.ndarray) -> dict:
    """ECE over the pictures with a face (the largest face's confidence and whether it was right)."""
    from trainer.calibrate import reliability

    return reliability(confidence, correct)


# --------------------------------------------------------------------------- report

def confusion_markdown(result: dict) -> str:
    labels = result["labels"]
    lines = ["| truth \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, row in zip(labels, result["confusion"]):
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def per_class_markdown(result: dict) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, c in result["per_class"].items():
        lines.append(f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    return "\n".join(lines)


def summary_lines(result: dict) -> list[str]:
    lines = [f"model: {result.get('model')}  data: {result.get('data')}  mode: {result['mode']}"
             + ("  (flip TTA)" if result.get("tta") else "")
             + (f"  (zoom TTA +/-{result['tta_zoom']:g})" if result.get("tta_zoom") else "")]
    if result["mode"] == "pictures":
        lines.append(f"pictures: {result['n']} readable ({result['unreadable']} unreadable), face found in "
                     f"{result['n_found']} ({result['faces_found_rate']:.1%}), {result['faces_total']} faces")
        lines.append(f"accuracy over all pictures: {result['accuracy']:.2%}   over pictures with a face: "
                     f"{result['accuracy_found']:.2%}   ({result['ms_per_picture']} ms/picture)")
        if result.get("mmod"):
            lines.append(f"faces found by the CNN detector (MMOD, the cascade's last step): {result['found_by_mmod']}")
    else:
        lines.append(f"accuracy: {result['accuracy']:.2%} on {result['n']} faces   macro F1: {result['macro_f1']:.3f}"
                     f"   ({result['ms_per_face']} ms/face)")
    if "calibration" in result:
        cal = result["calibration"]
        lines.append(f"expected calibration error: {cal['ece']:.4f} ({cal['bins']} bins, {cal['n']} faces; "
                     f"temperature {result.get('temperature', 1.0):g})")
    return lines


def write_report(result: dict, out: Path) -> list[Path]:
    """metrics.json, confusion.json, confusion.png and report.md under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json", out / "confusion.json", out / "confusion.png", out / "report.md"]
    if "calibration" in result:
        plot_reliability(result, out / "reliability.png")
        written.insert(3, out / "reliability.png")
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "confusion.json").write_text(json.dumps({"labels": result["labels"], "rows": "truth", "columns": "predicted",
                                                    "confusion": result["confusion"]}, indent=2) + "\n")
    plot_confusion(result, out / "confusion.png")
    md = ["# Evaluation", "", *(f"- {line}" for line in summary_lines(result)), "", "## Per class", "",
          per_class_markdown(result), "", "## Confusion matrix (rows: truth, columns: predicted)", "",
          confusion_markdown(result), ""]
    if "calibration" in result:
        md += ["## Reliability (confidence bins)", "", "![reliability](reliability.png)", "",
               reliability_markdown(result["calibration"]), ""]
    (out / "report.md").write_text("\n".join(md))
    return written


def reliability_markdown(cal: dict) -> str:
    lines = [f"ECE {cal['ece']:.4f} over {cal['n']} faces ({cal['bins']} equal-width bins).", "",
             "| confidence | faces | mean confidence | accuracy |", "|---|---|---|---|"]
    for row in cal["table"]:
        if row["n"]:
            lines.append(f"| {row['lo']:.2f}-{row['hi']:.2f} | {row['n']} | {row['confidence']:.3f} | {row['accuracy']:.3f} |")
    return "\n".join(lines)


def plot_confusion(result: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(result["confusion"], dtype=float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    labels = result["labels"]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted"); ax.set_ylabel("truth")
    ax.set_title(f"{result['mode']}: accuracy {result['accuracy']:.1%} (n={result['n']}); colour = row share")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
