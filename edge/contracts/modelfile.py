"""The model file contract: ``NAME.tflite`` (full-integer int8) beside ``NAME.json``.

The trainer's exporter writes the sidecar with :func:`write_sidecar`; the edge reads it with
:func:`load_sidecar`, which refuses a model whose file hash or metadata does not match and says
which, so a truncated copy or a model from another project never classifies a face.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.contracts.crop import CropParams
from edge.contracts.labels import LABELS

FORMAT = "moodcam-model/1"


class ModelFileError(ValueError):
    """A model file or its sidecar is missing, damaged or does not fit this moodcam."""


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int
    dtype: str = "int8"


@dataclass(frozen=True)
class ModelMeta:
    labels: tuple[str, ...]
    crop: CropParams
    input: Quantization
    output: Quantization
    tflite_sha256: str
    name: str = "model"
    data: dict = field(default_factory=dict)       # training data summary
    metrics: dict = field(default_factory=dict)    # measured accuracy and friends
    extra: dict = field(default_factory=dict)      # anything else the exporter records

    @property
    def temperature(self) -> float:
        """The calibration temperature the edge divides the logits by (sidecar key
        ``calibration.temperature``; 1 = none, for sidecars written before it existed)."""
        return float((self.extra.get("calibration") or {}).get("temperature", 1.0))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "name": self.name,
            "labels": list(self.labels),
            "crop": self.crop.to_dict(),
            "input": vars(self.input).copy() | {"shape": [1, self.crop.size, self.crop.size, 1]},
            "output": vars(self.output).copy() | {"shape": [1, len(self.labels)]},
            "tflite_sha256": self.tflite_sha256,
            "data": self.data,
            "metrics": self.metrics,
            **self.extra,
        }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(tflite_path: Path) -> Path:
    return Path(tflite_path).with_suffix(".json")


def write_sidecar(tflite_path: Path, meta: ModelMeta) -> Path:
    path = sidecar_path(tflite_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _quant(d: dict, where: str, path: Path) -> Quantization:
    try:
        return Quantization(scale=float(d["scale"]), zero_point=int(d["zero_point"]), dtype=str(d.get("dtype", "int8")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: key '{where}' needs 'scale' and 'zero_point' numbers ({exc})") from None


def load_sidecar(tflite_path: Path, *, verify_hash: bool = True) -> ModelMeta:
    """Read and check ``NAME.json`` for ``NAME.tflite``; raise ModelFileError saying what is wrong."""
    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise ModelFileError(f"model file {tflite_path} does not exist; pass --model PATH to a .tflite "
                             "exported by 'moodcam-train export', or leave it out to use the shipped default")
    path = sidecar_path(tflite_path)
    if not path.is_file():
        raise ModelFileError(f"{path} is missing: every model needs its JSON sidecar beside it "
                             "(labels, crop parameters, sha256); copy it along with the .tflite")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); re-export the model") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelFileError(f"{path}: key 'format' is {raw.get('format') if isinstance(raw, dict) else raw!r}, "
                             f"expected {FORMAT!r}; is this a moodcam model sidecar?")
    labels = tuple(raw.get("labels") or ())
    if labels != LABELS:
        raise ModelFileError(f"{path}: key 'labels' is {list(labels)}, expected {list(LABELS)} in that order")
    try:
        crop = CropParams.from_dict(raw.get("crop") or {})
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: key 'crop' is invalid: {exc}") from None
    expected = str(raw.get("tflite_sha256", ""))
    if verify_hash:
        actual = sha256_of(tflite_path)
        if actual != expected:
            raise ModelFileError(f"{tflite_path} does not match its sidecar: sha256 is {actual[:16]}..., "
                                 f"{path.name} says {expected[:16] or '(nothing)'}...; the file was changed or "
                                 "truncated since export; copy both files again")
    known = {"format", "name", "labels", "crop", "input", "output", "tflite_sha256", "data", "metrics"}
    calibration = raw.get("calibration", {})
    temperature = calibration.get("temperature", 1.0) if isinstance(calibration, dict) else None
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0.05 <= temperature <= 20:
        raise ModelFileError(f"{path}: key 'calibration' needs a 'temperature' number between 0.05 and 20, "
                             f"it has {calibration!r}; re-export the model, or delete the key (temperature 1)")
    return ModelMeta(
        labels=labels,
        crop=crop,
        input=_quant(raw.get("input") or {}, "input", path),
        output=_quant(raw.get("output") or {}, "output", path),
        tflite_sha256=expected,
        name=str(raw.get("name", tflite_path.stem)),
        data=raw.get("data") or {},
        metrics=raw.get("metrics") or {},
        extra={k: v for k, v in raw.items() if k not in known},
    )


def default_model_path() -> Path:
    """The shipped default model: ``models/default.tflite`` in a checkout, or $MOODCAM_MODEL."""
    env = os.environ.get("MOODCAM_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models" / "default.tflite"   # edge/contracts/ -> the checkout
