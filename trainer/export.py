"""Export a Keras model to a full-integer int8 ``.tflite`` plus its JSON sidecar.

Representative data (faces from the training set) calibrates the quantization. The model takes
raw gray pixels 0..255, so the int8 input is exactly ``pixel - 128`` (scale 1, zero point -128).
The confidences are calibrated too: a temperature fitted on the validation faces on the int8
model's dequantized scores, with ``moodcam classify``'s views (trainer.calibrate), goes into the
sidecar's ``calibration`` key, and the edge applies it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import json
import time
from pathlib import Path

import numpy as np

from edge.contracts.crop import CropParams
from edge.contracts.labels import LABELS
from edge.contracts.modelfile import ModelMeta, Quantization, sha256_of, write_sidecar
from edge.machine import cpu_description
from edge.vision.interpreter import interpreter_class, make_interpreter
from edge.vision.stills import STILL_TTA_ZOOM
from trainer.calibrate import fit_calibration
from trainer.data.datasets import load_dataset
from trainer.evaluate import keras_predict_fn, run_crop_params, tflite_predict_fn
from trainer.evaluate import metrics as score
from trainer.fit import load_training_data
from trainer.hparams import load_hparams, load_run_hparams, require_run_files
from trainer.model import inference_model, load_for_inference


def convert_int8(model, representative_faces: np.ndarray, *, samples: int = 500, seed: int = 0) -> bytes:
    """Full-integer int8 TFLite bytes; ``representative_faces`` is uint8 (N, S, S)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(representative_faces), size=min(samples, len(representative_faces)), replace=False)
    calibration = representative_faces[np.sort(pick)].astype(np.float32)[..., None]

    def representative_dataset():
        for face in calibration:
            yield [face[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(inference_model(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def io_quantization(tflite_bytes: bytes) -> tuple[Quantization, Quantization]:
    """(input, output) quantization parameters read back from the converted model."""
    interpreter = make_interpreter(model_content=tflite_bytes)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    as_quant = lambda d: Quantization(scale=float(d["quantization"][0]), zero_point=int(d["quantization"][1]), dtype=np.dtype(d["dtype"]).name)  # noqa: E731
    return as_quant(inp), as_quant(out)


def write_model(out: Path, tflite_bytes: bytes, crop: CropParams, *, data: dict | None = None,
                metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``out.tflite`` and ``out.json`` atomically; returns the .tflite path."""
    out = Path(out)
    tflite_path = out if out.suffix == ".tflite" else out.with_name(out.name + ".tflite")
    tflite_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tflite_path.with_name(tflite_path.name + ".tmp")
    tmp.write_bytes(tflite_bytes)
    tmp.replace(tflite_path)
    inp, outp = io_quantization(tflite_bytes)
    meta = ModelMeta(labels=LABELS, crop=crop, input=inp, output=outp, tflite_sha256=sha256_of(tflite_path),
                     name=tflite_path.stem, data=data or {}, metrics=metrics or {}, extra=extra or {})
    write_sidecar(tflite_path, meta)
    return tflite_path


# --------------------------------------------------------------------------- a whole run

class ExportRefused(RuntimeError):
    """The int8 model loses too much accuracy against the float one; nothing was written."""


def latency_ms(tflite_bytes: bytes, size: int, *, runs: int = 200, seed: int = 0) -> float:
    """Median single-threaded milliseconds per face (one invoke), as on the Pi's one core per face."""
    interpreter = make_interpreter(model_content=tflite_bytes, num_threads=1)
    (inp,) = interpreter.get_input_details()
    x = np.random.default_rng(seed).integers(-128, 128, (1, size, size, 1)).astype(inp["dtype"])
    times = []
    for i in range(runs + 20):
        interpreter.set_tensor(inp["index"], x)
        start = time.perf_counter()
        interpreter.invoke()
        if i >= 20:  # the first invokes warm caches and allocate
            times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000.0, 3)


def export_run(run: Path, out: Path, *, force: bool = False, max_drop_points: float = 1.0,
               checkpoint: str = "best.keras", margin: float | None = None, input_blur: float | None = None,
               samples: int = 500, test_data: list[Path] = (), log=print) -> Path:
    """Export a fit run folder to ``out.tflite`` + ``out.json``; returns the .tflite path.

    Rebuilds the run's training and validation data from its ``data.json`` (the same sources and,
    when validation was split off, the same seed), calibrates int8 on training faces, then
    measures float vs int8 on the validation faces. Refuses (ExportRefused, nothing written) when
    int8 accuracy is more than ``max_drop_points`` below float, unless ``force``. Each of
    ``test_data`` (faces: .npz or <label>/ folders) is scored with the int8 model and recorded.
    ``input_blur`` replaces the run's ``HParams.input_blur`` (sigma in pixels; 0 = none) and is
    recorded in the sidecar's ``hparams`` as the blur the model applies. ``checkpoint`` is the
    run's ``best.keras`` (best validation epoch) unless given, e.g. ``last.keras``.
    """
    run = Path(run)
    require_run_files(run, "hparams.json", "data.json", checkpoint)
    hp = load_run_hparams(run)
    if input_blur is not None:
        hp = load_hparams(None, **(hp.to_dict() | {"input_blur": input_blur}))  # validated like a config key
    data_info = json.loads((run / "data.json").read_text())
    train_paths = [Path(p) for p in data_info.get("train_sources", [])]
    val_paths = data_info.get("val_sources")
    val_paths = [Path(p) for p in val_paths] if isinstance(val_paths, list) else []
    missing = [str(p) for p in train_paths + val_paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{run}/data.json names data that is not here: {missing}; export needs the run's "
                                "training data (representative faces) and validation data (the int8 check)")
    train, val, _ = load_training_data(train_paths, val_paths, hp)
    crop = run_crop_params(run)
    if margin is not None:
        crop = dataclasses.replace(crop, margin=margin)

    model = load_for_inference(run / checkpoint, hp.input_blur)
    blur = f", input blur sigma {hp.input_blur:g}" if hp.input_blur > 0 else ""
    log(f"converting {run / checkpoint} to int8 ({min(samples, len(train))} representative training faces{blur})")
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints every captured tensor
        tflite_bytes = convert_int8(model, train.faces, samples=samples, seed=hp.seed)
    float_pred = keras_predict_fn(model)(val.faces).argmax(1)
    int8_pred = tflite_predict_fn(tflite_bytes)(val.faces).argmax(1)
    float_acc = float(np.mean(float_pred == val.labels))
    int8_acc = float(np.mean(int8_pred == val.labels))
    agreement = float(np.mean(float_pred == int8_pred))
    drop = (float_acc - int8_acc) * 100.0
    log(f"validation ({len(val)} faces): float {float_acc:.2%}, int8 {int8_acc:.2%} "
        f"({drop:+.2f} points lost), top-1 agreement {agreement:.2%}")
    if drop > max_drop_points and not force:
        raise ExportRefused(f"int8 accuracy {int8_acc:.2%} is {drop:.2f} points below float {float_acc:.2%} on "
                            f"{len(val)} validation faces (limit {max_drop_points} points); nothing written. Try more "
                            "representative faces (--samples), or pass --force to export anyway")
    calibration = fit_calibration(tflite_predict_fn(tflite_bytes), val.faces, val.labels,
                                  io_quantization(tflite_bytes)[1].scale / 2.0, flip=True, zoom=STILL_TTA_ZOOM,
                                  source=f"the run's validation faces ({len(val)})")
    log(f"calibration: temperature {calibration['temperature']:g}, validation ECE {calibration['val_ece_before']:.4f} "
        f"-> {calibration['val_ece_after']:.4f} (flip + zoom {STILL_TTA_ZOOM:g} views)")
    tests = {}
    for path in test_data:  # e.g. FER2013 PublicTest: its int8 accuracy travels in the sidecar
        ds = load_dataset(Path(path), crop.size)
        result = score(ds.labels, tflite_predict_fn(tflite_bytes)(ds.faces).argmax(1))
        tests[str(path)] = {k: result[k] for k in ("accuracy", "n", "macro_f1")}
        log(f"test {path}: int8 {result['accuracy']:.2%} on {result['n']} faces (macro F1 {result['macro_f1']:.3f})")
    ms = latency_ms(tflite_bytes, crop.size)
    _, runtime = interpreter_class()
    cpu = cpu_description()
    log(f"single-threaded latency: {ms} ms per face ({runtime} on {cpu}); file {len(tflite_bytes) / 1024:.0f} KiB")
    metrics = {
        "val_n": len(val),
        "val_accuracy_float": round(float_acc, 4),
        "val_accuracy_int8": round(int8_acc, 4),
        "int8_top1_agreement": round(agreement, 4),
        "int8_accuracy_drop_points": round(drop, 2),
        "latency_ms_per_face_1thread": ms,
        "latency_runtime": runtime,
        "latency_cpu": cpu,  # the figure depends on it several times over (edge.machine)
        "tflite_bytes": len(tflite_bytes),
        "forced": bool(force and drop > max_drop_points),
    }
    if tests:
        metrics["test_int8"] = tests
    extra = {"hparams": hp.to_dict(), "run": str(run), "checkpoint": checkpoint,
             "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "representative_samples": min(samples, len(train)), "calibration": calibration}
    return write_model(out, tflite_bytes, crop, data=data_info, metrics=metrics, extra=extra)
