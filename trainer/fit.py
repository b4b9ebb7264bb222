"""Train the CNN: mixed data sets, class weights, warm-up + cosine schedule, a checkpoint every
epoch and ``--resume`` from the last one (training on 2 CPU cores takes hours and gets cut off).

A run folder holds: ``hparams.json``, ``data.json`` (what was trained on), ``last.keras`` (every
epoch, with optimizer state), ``best.keras`` (best validation accuracy), ``state.json``,
``epochs.csv`` and ``curves.png``.
"""
from __future__ import annotations

import csv
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contracts.labels import LABELS
from trainer.data.datasets import FaceDataset, concat, load_dataset, one_hot, stratified_split
from trainer.hparams import HParams, saved_hparams
from trainer.model import custom_objects, make_model, resolve_precision


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """Per-class loss weights; disgust is ~1.5% of FER2013 and would otherwise be ignored."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    freq = np.where(counts > 0, counts / counts.sum(), 1.0)
    weights = 1.0 / freq if mode == "balanced" else 1.0 / np.sqrt(freq)
    weights = weights / np.sum(weights * np.where(counts > 0, freq, 0.0))  # mean weight per sample = 1
    return {i: float(w) for i, w in enumerate(weights)}


def learning_rate_at(epoch: int, hp: HParams) -> float:
    """Linear warm-up for ``warmup_epochs``, then cosine decay to 0 over the remaining epochs."""
    if epoch < hp.warmup_epochs:
        return hp.learning_rate * (epoch + 1) / (hp.warmup_epochs + 1)
    span = max(1, hp.epochs - hp.warmup_epochs)
    progress = (epoch - hp.warmup_epochs) / span
    return hp.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(hp: HParams):
    import keras

    if hp.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(hp.learning_rate)
    if hp.optimizer == "sgd":
        return keras.optimizers.SGD(hp.learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.AdamW(hp.learning_rate, weight_decay=hp.weight_decay)


def load_training_data(paths: list[Path], val_paths: list[Path], hp: HParams) -> tuple[FaceDataset, FaceDataset, dict]:
    train = concat([load_dataset(p, hp.input_size) for p in paths])
    summary = {"train_sources": [str(p) for p in paths]}
    if val_paths:
        val = concat([load_dataset(p, hp.input_size) for p in val_paths])
        summary["val_sources"] = [str(p) for p in val_paths]
    else:
        train, val = stratified_split(train, hp.val_fraction, hp.seed)
        summary["val_sources"] = f"{hp.val_fraction:.0%} of the training data, stratified, seed {hp.seed}"
    if train.size != hp.input_size:
        raise ValueError(f"faces are {train.size}px but input_size is {hp.input_size}; re-ingest or change input_size")
    summary |= {"train_count": len(train), "val_count": len(val),
                "train_per_class": train.class_counts(), "val_per_class": val.class_counts()}
    return train, val, summary


def _tf_dataset(ds: FaceDataset, hp: HParams, training: bool, weights: dict | None):
    """Batches of (face, one-hot target[, sample weight])."""
    import tensorflow as tf

    x = ds.faces[..., None].astype(np.float32)
    y = one_hot(ds.labels)
    items = (x, y) if weights is None or not training else (x, y, np.array([weights[int(v)] for v in ds.labels], np.float32))
    data = tf.data.Dataset.from_tensor_slices(items)
    if training:
        data = data.shuffle(len(ds), seed=hp.seed, reshuffle_each_iteration=True)
    # No background threads in the pipeline (no prefetch, none injected, no autotune): with them,
    # destroying an iterator between epochs deadlocked in tf.data's thread pool under CPU
    # contention (seen here, TF 2.21). The arrays are in memory, so prefetching gains little.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.inject_prefetch = False
    data = data.batch(hp.batch_size).repeat()
    return data.with_options(options)


class _RunState:
    """``state.json``: last finished epoch, best validation accuracy and its epoch."""

    def __init__(self, run: Path):
        self.path = run / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"epoch": -1, "best_val_accuracy": -1.0, "best_epoch": -1}

    def save(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)


def _callbacks(run: Path, hp: HParams, state: _RunState):
    import keras

    class EpochBookkeeping(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(learning_rate_at(epoch, hp))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            val_acc = float(logs.get("val_accuracy", -1))
            # Save "last" first and atomically: a kill mid-save must leave the previous one usable.
            tmp = run / "last.tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, run / "last.keras")
            if val_acc > state.data["best_val_accuracy"]:
                state.data |= {"best_val_accuracy": val_acc, "best_epoch": epoch}
                tmp = run / "best.tmp.keras"
                self.model.save(tmp)
                os.replace(tmp, run / "best.keras")
            state.data["epoch"] = epoch
            state.save()
            plot_curves(run / "epochs.csv", run / "curves.png")
            if epoch - state.data["best_epoch"] >= hp.early_stopping_patience:
                print(f"early stopping: no validation gain since epoch {state.data['best_epoch'] + 1}")
                self.model.stop_training = True

    return [keras.callbacks.CSVLogger(str(run / "epochs.csv"), append=True), EpochBookkeeping()]


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Loss and accuracy per epoch, train vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        if f"val_{key}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="validation")
        ax.set_xlabel("epoch"); ax.set_title(key); ax.grid(alpha=0.3); ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def fit(data: list[Path], run: Path, hp: HParams, *, val_data: list[Path] = (), resume: bool = False,
        init_from: Path | None = None, verbose: int = 1) -> Path:
    """Train into ``run`` and return the path of the best model (``best.keras``).

    ``init_from`` starts from another run's weights (fine-tuning, or a second cosine cycle)
    with a fresh optimizer and this run's schedule.
    """
    return prepare_run(data, run, hp, val_data=val_data, resume=resume, init_from=init_from).train(verbose)


@dataclass
class PreparedRun:
    """A run folder with its data loaded and its model built or resumed, ready to train.

    Preparing is where every mistake a user can make shows up (a run folder that is not
    empty, a missing data set, settings that differ from the run being resumed), so the CLI
    reports those in one line and lets anything raised during training keep its traceback.
    """
    run: Path
    hp: HParams
    policy: str
    model: object
    train_data: FaceDataset
    val_data: FaceDataset
    state: _RunState

    def train(self, verbose: int = 1) -> Path:
        """Train from the epoch after the last checkpoint to ``hp.epochs``; return ``best.keras``."""
        hp = self.hp
        weights = class_weights(self.train_data.labels, hp.class_weighting)
        steps = lambda ds: math.ceil(len(ds) / hp.batch_size)  # noqa: E731
        with _precision(self.policy):
            self.model.fit(_tf_dataset(self.train_data, hp, True, weights),
                           validation_data=_tf_dataset(self.val_data, hp, False, None),
                           steps_per_epoch=steps(self.train_data), validation_steps=steps(self.val_data),
                           epochs=hp.epochs, initial_epoch=self.state.data["epoch"] + 1,
                           callbacks=_callbacks(self.run, hp, self.state), verbose=verbose)
        return self.run / "best.keras"


@contextmanager
def _precision(policy: str):
    # The policy is process-wide; leave it as found (tests fit several models in one process).
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def prepare_run(data: list[Path], run: Path, hp: HParams, *, val_data: list[Path] = (), resume: bool = False,
                init_from: Path | None = None) -> PreparedRun:
    """Check the run folder and settings, load the data and build (or resume) the model; see :func:`fit`."""
    policy = resolve_precision(hp.precision)
    with _precision(policy):
        return _prepare(data, Path(run), hp, policy, val_data=val_data, resume=resume, init_from=init_from)


def _check_resumable(run: Path, hp: HParams) -> None:
    saved = saved_hparams(run)
    # Only the epoch count may change on resume (to extend a run); anything else would make
    # the checkpoint and the new settings disagree silently.
    changed = sorted(k for k, v in hp.to_dict().items() if k != "epochs" and saved.get(k) != v)
    if changed:
        raise ValueError(f"{run}/hparams.json differs from the hyper-parameters given in {changed}; "
                         "resume with the same --config")


def _prepare(data, run: Path, hp: HParams, policy: str, *, val_data, resume, init_from) -> PreparedRun:
    import keras

    if run.exists() and any(run.iterdir()) and not resume:
        raise FileExistsError(f"run folder {run} is not empty; pass --resume to continue it or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(hp.seed)
    train, val, summary = load_training_data([Path(p) for p in data], [Path(p) for p in val_data], hp)
    state = _RunState(run)
    if resume and (run / "hparams.json").exists():
        _check_resumable(run, hp)
    (run / "hparams.json").write_text(json.dumps(hp.to_dict(), indent=2))
    summary["precision"] = policy
    if resume and (run / "last.keras").exists() and (run / "data.json").exists():
        # A resumed run continues its own weights; what they first came from stays on record.
        previous = json.loads((run / "data.json").read_text())
        if "init_from" in previous:
            summary["init_from"] = previous["init_from"]
    elif init_from is not None:
        summary["init_from"] = str(init_from)
    (run / "data.json").write_text(json.dumps(summary, indent=2))
    return PreparedRun(run, hp, policy, _build_or_resume(run, hp, state, init_from), train, val, state)


def compiled_model(hp: HParams):
    """A new model for ``hp``, compiled as a fresh run trains it (``bench/train_throughput.py``
    times this very step). Call under the run's precision policy (:func:`_precision`)."""
    import keras

    model = make_model(hp, len(LABELS))
    model.compile(optimizer=make_optimizer(hp),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing),
                  metrics=["accuracy"])
    return model


def _build_or_resume(run: Path, hp: HParams, state: _RunState, init_from: Path | None):
    import keras

    if (run / "last.keras").exists():
        # Only reached with resume=True: without it a non-empty run folder was refused above.
        print(f"resuming {run} after epoch {state.data['epoch'] + 1}")
        return keras.models.load_model(run / "last.keras", custom_objects=custom_objects())
    if init_from is not None and not Path(init_from).exists():
        raise FileNotFoundError(f"--init {init_from} does not exist; give a .keras model (a run's last.keras or best.keras)")
    model = compiled_model(hp)
    if init_from is not None:
        source = keras.models.load_model(init_from, custom_objects=custom_objects())
        model.set_weights(source.get_weights())  # the optimizer's slots are made at the first step, after this
    return model
