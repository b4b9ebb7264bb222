"""Classification: face crops -> class probabilities with the int8 .tflite model.

The model is checked against its JSON sidecar (edge.modelfile.load_sidecar: sha256, labels, crop
parameters) and against itself (input shape and quantization must be what the sidecar says), so a
truncated, tampered or foreign model is refused with a message that says which check failed.
Crops come from edge.preprocess.crop_face with the sidecar's CropParams: the same framing the
trainer used. The scores of each view are tempered by the sidecar's calibration temperature
(:func:`tempered`; 1 for a sidecar without one) before views are averaged, so a confidence of 0.8
means right about 8 times in 10.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contracts.crop import Box, crop_face
from edge.contracts.labels import LABELS, UNCERTAIN
from edge.contracts.modelfile import ModelFileError, ModelMeta, load_sidecar
from edge.vision.interpreter import interpreter_class


def zoomed(crops: np.ndarray, scale: float, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(N, S, S) uint8 crops magnified by ``scale`` about their centre (> 1 closer, < 1 farther,
    the border pixels repeated), then moved by ``shift`` (x, y) pixels: the framing a slightly
    smaller, larger or offset face box would have given."""
    import cv2

    size = crops.shape[1]
    centre = (size - 1) / 2.0
    matrix = cv2.getRotationMatrix2D((centre, centre), 0.0, scale)
    matrix[:, 2] += shift
    out = np.empty_like(crops)
    for i, crop in enumerate(crops):
        out[i] = cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def zoom_scales(zoom: float) -> tuple[float, ...]:
    """The magnifications zoom TTA classifies a face at: as framed, 1 - zoom and 1 + zoom."""
    return (1.0, 1.0 - zoom, 1.0 + zoom) if zoom > 0 else (1.0,)


def tta_views(crops: np.ndarray, flip: bool, zoom: float = 0.0, phase: int | None = None) -> list[np.ndarray]:
    """The views of the faces that test-time augmentation averages over.

    ``flip`` adds each face mirrored (an expression means the same either way round); ``zoom`` > 0
    adds each face magnified by 1 - zoom and 1 + zoom, because a face box is never framed exactly
    as in training. One view costs one model call per face. With ``phase`` (a frame number) only
    one of the zoom scales is used, in turn, so a video spreads them over consecutive frames.
    """
    scales = zoom_scales(zoom)
    views = []
    for scale in scales if phase is None else (scales[phase % len(scales)],):
        view = one_view(crops, scale, False)       # zoomed once, mirrored from that
        views += [view, one_view(view, 1.0, True)] if flip else [view]
    return views


def view_specs(flip: bool, zoom: float = 0.0) -> list[tuple[float, bool]]:
    """(magnification, mirrored) of each view :func:`tta_views` makes, in the same order."""
    return [(scale, mirrored) for scale in zoom_scales(zoom) for mirrored in ((False, True) if flip else (False,))]


def one_view(crops: np.ndarray, scale: float, mirrored: bool) -> np.ndarray:
    """One view of ``crops``: magnified by ``scale``, then mirrored if asked."""
    view = crops if scale == 1.0 else zoomed(crops, scale)
    return np.ascontiguousarray(view[:, :, ::-1]) if mirrored else view


def average_over_views(predict, crops: np.ndarray, flip: bool, zoom: float = 0.0,
                       phase: int | None = None) -> np.ndarray:
    """Mean of ``predict`` (crops -> probabilities) over :func:`tta_views` of ``crops``."""
    views = tta_views(crops, flip, zoom, phase)
    return sum(predict(view) for view in views) / len(views)


def tempered(probs: np.ndarray, temperature: float, floor: float) -> np.ndarray:
    """Softmax scores re-soft-maxed at ``temperature``: softmax(log(p) / T), the same as dividing the
    logits by T. An int8 score of 0 stands for anything below one quantization step, so scores are
    read as at least ``floor`` (half a step). T = 1 returns ``probs`` unchanged."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.maximum(probs, floor)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probs: tuple[float, ...]     # one per label, in LABELS order

    @classmethod
    def from_probs(cls, probs: np.ndarray) -> "Prediction":
        i = int(np.argmax(probs))
        return cls(LABELS[i], float(probs[i]), tuple(float(p) for p in probs))

    def shown_label(self, min_confidence: float) -> str:
        """The label, or ``"uncertain"`` when the confidence is below ``min_confidence`` (0 = never)."""
        return UNCERTAIN if self.confidence < min_confidence else self.label

    def probs_dict(self) -> dict[str, float]:
        return {label: round(p, 4) for label, p in zip(LABELS, self.probs)}


class Classifier:
    """``classify(image, boxes) -> [Prediction]`` for all faces of a frame in one go.

    ``batch='resize'`` resizes the interpreter's input to N faces and invokes once; ``'loop'``
    invokes once per face on a preallocated 1-face tensor. ``'auto'`` is 'loop': on this model
    (tiny, 48x48) re-allocating tensors whenever the face count changes costs more than the extra
    invocations save (measured with a --batch-compare mode of a throughput bench since replaced by bench/scene.py).
    """

    def __init__(self, model_path: str | Path, num_threads: int = 1, batch: str = "auto", tta: bool = False,
                 tta_zoom: float = 0.0, zoom_across_frames: bool = False):
        self.path = Path(model_path)
        self.meta: ModelMeta = load_sidecar(self.path)          # raises ModelFileError saying why
        cls, self.runtime = interpreter_class()
        try:
            interpreter = cls(model_path=str(self.path), num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{self.path} is not a usable TFLite model ({exc}); re-export it") from None
        self._check(interpreter)
        self.interpreter = interpreter
        self.batch = "loop" if batch == "auto" else batch
        self.tta, self.tta_zoom, self.zoom_across_frames = tta, tta_zoom, zoom_across_frames
        self._batch_n = 1
        size = self.meta.crop.size
        self._one = np.zeros((1, size, size, 1), dtype=self._in_dtype)

    def _check(self, interpreter) -> None:
        ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
        size = self.meta.crop.size
        if len(ins) != 1 or len(outs) != 1:
            raise ModelFileError(f"{self.path}: expected 1 input and 1 output, the model has {len(ins)} and {len(outs)}")
        inp, out = ins[0], outs[0]
        if tuple(inp["shape"][1:]) != (size, size, 1):
            raise ModelFileError(f"{self.path}: input shape {[int(v) for v in inp['shape']]} does not match the sidecar's "
                                 f"crop size {size} (expected [1, {size}, {size}, 1])")
        if int(out["shape"][-1]) != len(LABELS):
            raise ModelFileError(f"{self.path}: {out['shape'][-1]} outputs, the sidecar lists {len(LABELS)} labels")
        self._in_dtype = np.dtype(inp["dtype"])
        self._out_dtype = np.dtype(out["dtype"])
        if self._in_dtype not in (np.int8, np.uint8):
            raise ModelFileError(f"{self.path}: input type {self._in_dtype} is not int8/uint8; export a "
                                 "full-integer model")
        for name, detail, q in (("input", inp, self.meta.input), ("output", out, self.meta.output)):
            scale, zero = detail["quantization"]
            if not np.isclose(scale, q.scale, rtol=1e-5) or int(zero) != q.zero_point:
                raise ModelFileError(f"{self.path}: {name} quantization (scale {scale:g}, zero point {zero}) does not "
                                     f"match the sidecar's (scale {q.scale:g}, zero point {q.zero_point})")
        self._in_index, self._out_index = inp["index"], out["index"]

    # ------------------------------------------------------------------ quantization
    def quantize(self, crops: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, S, S) -> the model's integer input (N, S, S, 1)."""
        q = self.meta.input
        if q.scale == 1.0:   # the trainer's export: int8 = pixel - 128, exact in int16
            values = crops.astype(np.int16) + q.zero_point
        else:
            values = np.round(crops.astype(np.float32) / q.scale + q.zero_point)
        info = np.iinfo(self._in_dtype)
        return np.clip(values, info.min, info.max).astype(self._in_dtype)[..., None]

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        q = self.meta.output
        probs = (raw.astype(np.float32) - q.zero_point) * q.scale
        probs = np.clip(probs, 0.0, None)
        total = probs.sum(axis=-1, keepdims=True)
        probs = np.where(total > 0, probs / np.maximum(total, 1e-12), 1.0 / probs.shape[-1])
        return tempered(probs, self.meta.temperature, q.scale / 2.0)

    # ------------------------------------------------------------------ inference
    def crops(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """(N, S, S) uint8 model-input crops of ``boxes`` in ``image`` (the shared crop contract)."""
        size = self.meta.crop.size
        out = np.empty((len(boxes), size, size), np.uint8)
        for i, box in enumerate(boxes):
            out[i] = crop_face(image, box, self.meta.crop)
        return out

    def probs(self, crops: np.ndarray, frame: int | None = None) -> np.ndarray:
        """(N, S, S) uint8 crops -> (N, labels) float32 probabilities.

        With ``tta`` each face is also classified mirrored, and with ``tta_zoom`` also zoomed in and
        out, and the views averaged (:func:`tta_views`): the average is steadier than any one view.
        With ``zoom_across_frames`` and a ``frame`` number, each call uses one zoom scale in turn
        (frame 0 as framed, 1 zoomed out, 2 zoomed in, ...): a track's moving average then mixes
        the zooms for the cost of one.
        """
        phase = frame if self.zoom_across_frames else None
        return average_over_views(self._probs_once, crops, self.tta, self.tta_zoom, phase)

    def view_probs(self, crops: np.ndarray, k: int) -> np.ndarray:
        """Probabilities of the ``k``-th view (in turn: as framed, mirrored, the zooms) of ``crops``:
        one model call a face, for a track whose moving average mixes the views over frames."""
        specs = view_specs(self.tta, self.tta_zoom)
        return self._probs_once(one_view(crops, *specs[k % len(specs)]))

    def _probs_once(self, crops: np.ndarray) -> np.ndarray:
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        x = self.quantize(crops)
        it = self.interpreter
        if self.batch == "resize":
            if n != self._batch_n:
                it.resize_tensor_input(self._in_index, [n, *x.shape[1:]])
                it.allocate_tensors()
                self._batch_n = n
            it.set_tensor(self._in_index, x)
            it.invoke()
            raw = it.get_tensor(self._out_index)
        else:
            raw = np.empty((n, len(LABELS)), self._out_dtype)
            for i in range(n):
                self._one[0] = x[i]
                it.set_tensor(self._in_index, self._one)
                it.invoke()
                raw[i] = it.get_tensor(self._out_index)[0]
        return self.dequantize(raw)

    def classify(self, image: np.ndarray, boxes: list[Box]) -> list[Prediction]:
        return [Prediction.from_probs(p) for p in self.probs(self.crops(image, boxes))]
