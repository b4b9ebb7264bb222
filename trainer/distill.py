"""Knowledge distillation: train against what a set of teacher models predicts, not only the labels.

FER2013's labels are noisy (people agree on about 65 % of them) and one-hot targets say nothing
about a face that is half surprised, half afraid. The averaged predictions of several trained models
do, and a network trained towards them generalises better than one trained on the labels alone
(Hinton et al. 2015, "Distilling the knowledge in a neural network"; born-again networks).

The teachers' predictions are computed once per run, on the un-augmented training faces, averaged
over the teachers and over a horizontal flip, and cached in the run folder as ``teacher.npz`` so
that ``--resume`` does not redo them. The training target of a face is then

    (1 - distill_weight) * one_hot(label) + distill_weight * soften(teachers, distill_temperature)

with label smoothing applied on top by the loss, as for plain training.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.datasets import FaceDataset, one_hot


def teacher_model_path(teacher: Path) -> Path:
    """A teacher is a ``.keras`` model or a run folder (its ``best.keras``)."""
    teacher = Path(teacher)
    path = teacher / "best.keras" if teacher.is_dir() else teacher
    if path.suffix != ".keras" or not path.is_file():
        raise FileNotFoundError(f"teacher {teacher}: no Keras model there; give a run folder with best.keras "
                                "or a .keras file (a .tflite model cannot teach)")
    return path


def teacher_probabilities(teachers: list[Path], faces: np.ndarray) -> np.ndarray:
    """Mean class probabilities of the teachers over ``faces`` (uint8, N x S x S), each face also mirrored."""
    from edge.vision.classify import average_over_views
    from trainer.evaluate import keras_predict_fn
    from trainer.model import load_for_inference

    total = 0.0
    for teacher in teachers:
        model = load_for_inference(teacher_model_path(teacher))
        if tuple(model.input_shape[1:3]) != faces.shape[1:3]:
            raise ValueError(f"teacher {teacher} takes {model.input_shape[1]}px faces but the data is {faces.shape[1]}px")
        total = total + average_over_views(keras_predict_fn(model), faces, flip=True).astype(np.float64)
    return (total / total.sum(axis=1, keepdims=True)).astype(np.float32)


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Raise the temperature of a probability distribution: p ** (1/T), renormalised.

    Teachers are confident on faces they were trained on; T > 1 brings out their second choices.
    """
    logp = np.log(np.clip(probs, 1e-8, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def training_targets(labels: np.ndarray, num_classes: int, teacher_probs: np.ndarray | None,
                     weight: float, temperature: float) -> np.ndarray:
    """Float targets (N, C): one-hot labels, mixed with softened teacher probabilities when given."""
    targets = one_hot(labels, num_classes)
    if teacher_probs is None:
        return targets
    return (1.0 - weight) * targets + weight * soften(teacher_probs, temperature)


def cached_teacher_probabilities(run: Path, teachers: list[Path], train: FaceDataset) -> np.ndarray:
    """``teacher_probabilities`` for the run's training faces, cached in ``run/teacher.npz``.

    The cache is used only if it was made by the same teachers for the same faces (count and a
    checksum of the labels), so a changed data mix or teacher list recomputes it.
    """
    # Keyed by the names given, not the files: a resumed run keeps its targets even if a teacher
    # has since been moved away.
    key = {"teachers": [str(Path(t).resolve()) for t in teachers], "count": len(train),
           "labels_sum": int(np.sum(train.labels * (np.arange(len(train)) % 9973)))}
    cache = Path(run) / "teacher.npz"
    if cache.exists():
        with np.load(cache) as saved:
            if json.loads(str(saved["key"])) == key:
                return saved["probs"]
    print(f"teachers: predicting {len(train)} training faces with {len(teachers)} model(s)")
    probs = teacher_probabilities(teachers, train.faces)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, probs=probs, key=np.array(json.dumps(key)))
    tmp.replace(cache)
    return probs
