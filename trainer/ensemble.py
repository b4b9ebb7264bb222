"""Several trained runs as one model: the mean of their probabilities, in one graph.

Why: the 1 MB file budget caps parameters, not compute (the shipped network uses a sixth of the
2 ms a face), and on ``runs/v2``'s validation faces three differing runs averaged scored 71.52 %
with flip against 69.19-70.30 % alone, a gain that distilling them into one network of the same
size lost (model card). Two networks of half the parameters each fit the budget of one, run in
one ``invoke``, and need nothing new on the edge: the ``.tflite`` still maps a face to 7 scores.
They do cost the time of both: measured, the pair is not the default model (model card).

An ensemble folder looks like a fit run to ``evaluate`` and ``export``: ``ensemble.keras`` (the
combined float32 model, without augmentation or input blur), ``hparams.json`` (the first
member's; its ``input_blur`` is the blur put in front of the whole ensemble), ``data.json`` (the
members' shared data) and ``ensemble.json`` (who the members are).
"""
from __future__ import annotations

import json
from pathlib import Path

ENSEMBLE_FILE = "ensemble.keras"
MEAN_LAYER = "mean_probs"  # marks a combined model for trainer.model.inference_model


def combine_runs(runs: list[Path], out: Path, *, checkpoint: str = "last.keras", log=print) -> Path:
    """Write an ensemble folder ``out`` averaging the ``checkpoint`` of each run; returns ``out``.

    The members must have trained on the same data and been watched by the same validation data
    (their ``data.json`` sources agree): otherwise one member may have trained on faces the
    ensemble is validated on, and its validation figures would mean nothing.
    """
    import keras

    from trainer.hparams import require_run_files, saved_hparams
    from trainer.model import load_for_inference

    runs, out = [Path(r) for r in runs], Path(out)
    if len(runs) < 2:
        raise ValueError(f"an ensemble needs at least two runs; got {len(runs)}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose another --out")
    for run in runs:
        require_run_files(run, "hparams.json", "data.json", checkpoint)
    data = [json.loads((run / "data.json").read_text()) for run in runs]
    for run, info in zip(runs[1:], data[1:]):
        for key in ("train_sources", "val_sources"):
            if info.get(key) != data[0].get(key):
                raise ValueError(f"{run}/data.json has {key} {info.get(key)!r} but {runs[0]}/data.json has "
                                 f"{data[0].get(key)!r}; ensemble members must share their training and validation data")
    hparams = [saved_hparams(run) for run in runs]
    sizes = {hp["input_size"] for hp in hparams}
    if len(sizes) != 1:
        raise ValueError(f"the runs take inputs of different sizes {sorted(sizes)}; members must share input_size")

    size = sizes.pop()
    inputs = keras.Input((size, size, 1), name="gray")
    outputs, parameters = [], []
    for i, run in enumerate(runs):
        # Without blur: the ensemble's one blur goes in front at export / evaluation, chosen afterwards.
        member = load_for_inference(run / checkpoint, input_blur=0.0)
        member = keras.Model(member.input, member.output, name=f"member{i}")  # unique names in the graph
        outputs.append(member(inputs))
        parameters.append(int(member.count_params()))
    model = keras.Model(inputs, keras.layers.Average(name=MEAN_LAYER)(outputs), name="moodcam_ensemble")

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / ENSEMBLE_FILE)
    (out / "hparams.json").write_text(json.dumps(hparams[0], indent=2))
    (out / "data.json").write_text(json.dumps(data[0], indent=2))
    members = []
    for run, hp, count in zip(runs, hparams, parameters):
        state = run / "state.json"  # a member still training is allowed; the record says how far it got
        epochs_done = json.loads(state.read_text())["epoch"] + 1 if state.is_file() else None
        members.append({"run": str(run), "checkpoint": checkpoint, "seed": hp["seed"], "widths": hp["widths"],
                        "epochs": hp["epochs"], "epochs_done": epochs_done, "parameters": count})
    record = {"combine": "mean of the members' softmax probabilities", "members": members,
              "parameters": int(model.count_params())}
    (out / "ensemble.json").write_text(json.dumps(record, indent=2))
    log(f"wrote {out / ENSEMBLE_FILE}: {len(runs)} members, {record['parameters']:,} parameters")
    return out


def ensemble_record(run: Path) -> dict | None:
    """The ``ensemble.json`` of an ensemble folder, or None for a plain run."""
    path = Path(run) / "ensemble.json"
    return json.loads(path.read_text()) if path.is_file() else None
