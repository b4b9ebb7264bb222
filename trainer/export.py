"""Export a Keras model to a full-integer int8 ``.tflite`` plus its JSON sidecar.

Representative data (faces from the training set) calibrates the quantization. The model takes
raw gray pixels 0..255, so the int8 input is exactly ``pixel - 128`` (scale 1, zero point -128).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.labels import LABELS
from edge.modelfile import ModelMeta, Quantization, sha256_of, write_sidecar
from edge.preprocess import CropParams


def inference_model(model):
    """A copy of ``model`` without its augmentation block (it is a no-op at inference anyway,
    but some of its random ops have no int8 TFLite kernel)."""
    import keras

    inputs = keras.Input(model.input_shape[1:], name="gray")
    x = inputs
    for layer in model.layers[1:]:
        if layer.name == "augment":
            continue
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


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
    from edge.runtime import make_interpreter

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
