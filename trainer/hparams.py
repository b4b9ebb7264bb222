"""Every training knob in one documented dataclass (MediaPipe Model Maker style).

Load from TOML with :func:`load_hparams`; unknown keys fail with a close-match suggestion. The
defaults are the recipe of the shipped model (``models/default.json`` records the set it trained
with, under ``hparams``).
"""
from __future__ import annotations

import difflib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class HParams:
    # --- model ---
    input_size: int = 48            # side of the square gray input; must match the crop contract
    widths: tuple[int, ...] = (32, 64, 128, 192)  # conv channels per block; a 2x2 max-pool between blocks.
                                    # Narrow at 48x48, where a channel costs the most multiply-adds
    convs_per_block: tuple[int, ...] = (2, 2, 2, 2)  # 3x3 convs in each block
    dropout: float = 0.4            # before the classifier
    precision: str = "auto"         # "float32", "mixed_bfloat16", or "auto": bfloat16 compute where the CPU
                                    # has it in hardware (AMX / AVX512-BF16), else float32 (emulated bfloat16
                                    # is many times slower: bench/train_throughput.py measures it). Weights
                                    # stay float32, and export converts float32 -> int8 either way
    # --- optimisation ---
    optimizer: str = "adamw"        # "adamw", "rmsprop" (the original project's) or "sgd" (Nesterov momentum)
    learning_rate: float = 2e-3     # peak learning rate
    weight_decay: float = 1e-4      # AdamW decoupled weight decay
    label_smoothing: float = 0.1
    batch_size: int = 64
    epochs: int = 85                # one cosine cycle: the schedule's length, not only a cap
    warmup_epochs: int = 2          # linear warm-up, then cosine decay to zero
    early_stopping_patience: int = 30  # epochs without validation-accuracy gain before stopping
    # --- data ---
    class_weighting: str = "sqrt"   # "none", "sqrt" (sqrt inverse frequency) or "balanced"
    val_fraction: float = 0.1       # held out of training data when no validation set is given
    seed: int = 1337
    # --- augmentation (train only; active inside the Keras model, off at inference) ---
    flip: bool = True
    shift: float = 0.1              # fraction of the side
    rotation_deg: float = 10.0
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    erase: float = 0.25             # probability of a random erased rectangle (cutout)
    # --- inference only ---
    input_blur: float = 0.6         # Gaussian sigma (pixels) the exported and evaluated model applies to its
                                    # input; never in training, so `export --input-blur` can re-choose it on
                                    # validation faces. Rotation, zoom and shift each resample bilinearly, so
                                    # every training face is softened and only test faces would arrive crisp.
                                    # 0 = off

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["convs_per_block"] = list(self.convs_per_block)
        return d


def require_run_files(run: Path, *names: str) -> None:
    """FileNotFoundError naming the first of ``names`` that the run folder ``run`` lacks."""
    for name in names:
        if not (Path(run) / name).is_file():
            raise FileNotFoundError(f"{Path(run) / name} is missing; is {run} a run folder written by 'moodcam-train fit'?")


def saved_hparams(run: Path) -> dict:
    """A run folder's ``hparams.json``, as written by fit."""
    return json.loads((Path(run) / "hparams.json").read_text())


def load_run_hparams(run: Path) -> HParams:
    """The hyper-parameters a run folder was trained with, checked as a config file is."""
    return _checked(saved_hparams(run), Path(run) / "hparams.json")


def load_hparams(path: Path | None = None, **overrides) -> HParams:
    """HParams from a TOML file (flat keys, as in the dataclass) plus keyword overrides."""
    data: dict = {}
    if path is not None:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return _checked(data, path)


def _checked(data: dict, source: Path | None) -> HParams:
    where = source or "hparams"
    known = {f.name: f for f in fields(HParams)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
            raise ValueError(f"{where}: unknown key '{key}'{hint}")
    data = dict(data)
    for key in ("widths", "convs_per_block"):
        if key in data:
            data[key] = tuple(int(w) for w in data[key])
    hp = HParams(**data)
    if hp.optimizer not in ("adamw", "rmsprop", "sgd"):
        raise ValueError(f"{where}: key 'optimizer' is {hp.optimizer!r}; use 'adamw', 'rmsprop' or 'sgd'")
    if hp.precision not in ("auto", "float32", "mixed_bfloat16"):
        raise ValueError(f"{where}: key 'precision' is {hp.precision!r}; use auto, float32 or mixed_bfloat16")
    if not 0.0 <= hp.input_blur <= 2.0:
        raise ValueError(f"{where}: key 'input_blur' is {hp.input_blur!r}; use a sigma from 0 (off) to 2 pixels")
    if hp.class_weighting not in ("none", "sqrt", "balanced"):
        raise ValueError(f"{where}: key 'class_weighting' is {hp.class_weighting!r}; use none, sqrt or balanced")
    return hp
