"""Training speed on this machine: faces a second through one `moodcam-train fit` step, and what
that makes of an epoch and of a whole run, before you start one that takes hours.

    PYTHONPATH=. .venv/bin/python bench/train_throughput.py [--config hparams.toml] [--steps 30]
        [--precision auto float32 mixed_bfloat16] [--faces 25837] [--json]

For each precision it times the step a fresh run trains (``trainer.fit.compiled_model`` fed by
``fit``'s own tf.data pipeline, class weights included) twice: with the recipe's augmentation, and
with the augmentation off (flip, rotation, zoom, shift, brightness, contrast and cutout at 0), so
the share the augmentation layers take is visible. The faces are random pixels: a step costs the
same whatever the faces show, so no data set is needed. ``--faces`` (default 25,837: FER2013
Training less the 10 % held out for validation) and the config's ``epochs`` turn faces a second
into the length of an epoch and of the run; validation passes are not counted.

The first ``--warmup`` steps (graph tracing, allocation) are left out of the mean. The machine may
be busy; the figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FER2013_TRAIN_LESS_VAL = 25_837  # FER2013 Training (28,709) less the 10 % fit holds out


def without_augmentation(hp):
    return dataclasses.replace(hp, flip=False, rotation_deg=0.0, zoom=0.0, shift=0.0, brightness=0.0,
                               contrast=0.0, erase=0.0)


def seconds_per_step(hp, policy: str, steps: int, warmup: int) -> float:
    """Mean wall time of one training step (batch ``hp.batch_size``) after ``warmup`` steps."""
    import keras

    from edge.contracts.labels import LABELS
    from trainer.data.datasets import FaceDataset
    from trainer.fit import _precision, _tf_dataset, class_weights, compiled_model

    n = hp.batch_size * 8
    rng = np.random.default_rng(hp.seed)
    faces = FaceDataset(rng.integers(0, 256, (n, hp.input_size, hp.input_size), dtype=np.uint8),
                        np.arange(n) % len(LABELS), np.array([""] * n), np.full((n, 4), -1, np.int32))
    ends: list[float] = []

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    with _precision(policy):
        keras.utils.set_random_seed(hp.seed)
        model = compiled_model(hp)
        data = _tf_dataset(faces, hp, True, class_weights(faces.labels, hp.class_weighting))
        model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[StepClock()])
    keras.backend.clear_session()
    return (ends[-1] - ends[warmup - 1]) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, help="hyper-parameters TOML, as for fit (default: the HParams defaults)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per row (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--precision", nargs="+", default=["auto"], choices=("auto", "float32", "mixed_bfloat16"),
                    help="one row pair per precision; auto = what fit would use here")
    ap.add_argument("--faces", type=int, default=FER2013_TRAIN_LESS_VAL, help="training faces an epoch")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of all figures")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        ap.error("--steps and --warmup must be at least 1")

    import tensorflow as tf

    from edge.machine import cpu_description
    from trainer.hparams import load_hparams
    from trainer.model import resolve_precision

    try:
        hp = load_hparams(args.config)
    except (OSError, ValueError) as e:
        ap.error(str(e))
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    cpu = cpu_description()
    print(f"{cpu}, {os.cpu_count()} cores (TensorFlow {tf.__version__}, intra-op threads {threads}); "
          f"fit's precision 'auto' here: {resolve_precision('auto')}")
    print(f"model widths {list(hp.widths)}, batch {hp.batch_size}, {hp.epochs} epochs of {args.faces:,} faces; "
          f"{args.steps} steps timed after {args.warmup}\n")
    print(f"{'precision':<15} {'augmentation':<13} {'ms/step':>8} {'faces/s':>8} {'epoch':>9} {'whole run':>10}")
    rows = []
    for precision in args.precision:
        policy = resolve_precision(precision)
        for augmentation, settings in (("recipe", hp), ("off", without_augmentation(hp))):
            step = seconds_per_step(settings, policy, args.steps, args.warmup)
            faces_per_s = settings.batch_size / step
            epoch_s = args.faces / faces_per_s
            rows.append({"precision": policy, "augmentation": augmentation, "ms_per_step": round(step * 1000, 1),
                         "faces_per_s": round(faces_per_s, 1), "epoch_s": round(epoch_s),
                         "run_h": round(epoch_s * hp.epochs / 3600, 2)})
            print(f"{policy:<15} {augmentation:<13} {step * 1000:8.0f} {faces_per_s:8.0f} "
                  f"{epoch_s / 60:7.1f} m {epoch_s * hp.epochs / 3600:8.1f} h", flush=True)
    if args.json:
        print(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "batch_size": hp.batch_size,
                          "epochs": hp.epochs, "faces": args.faces, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
