"""Every training knob in one documented dataclass (MediaPipe Model Maker style).

Load from TOML with :func:`load_hparams`; unknown keys fail with a close-match suggestion.
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
    # The shipped model's shape: 844 K parameters (852 KiB as int8), ~106 M multiply-adds per face;
    # two convs at every scale, narrow at 48x48 where a channel costs most. With 85 epochs it reached
    # 65.8 % on the validation split; the first default (64-64-128-256, convs 1-2-2-1, 595 K) got
    # 63.5 % after 26 + 14 epochs. Shape and length changed together, so neither alone is credited.
    widths: tuple[int, ...] = (32, 64, 128, 192)  # conv channels per block; a 2x2 max-pool between blocks
    convs_per_block: tuple[int, ...] = (2, 2, 2, 2)  # 3x3 convs in each block
    dropout: float = 0.4            # before the classifier
    precision: str = "auto"         # "float32", "mixed_bfloat16", or "auto": bfloat16 compute where the CPU
                                    # has native bf16 (AMX / AVX512-BF16: 2x faster on the AMX Xeon, 376 vs
                                    # 188 faces/s), else float32 (emulated bf16 is 12x slower: 10 vs 122 on
                                    # an AVX2 EPYC); weights stay float32 and export is float32 -> int8 either way
    # --- optimisation ---
    optimizer: str = "adamw"        # "adamw" (default, measured better) or "rmsprop" (the original project's)
    learning_rate: float = 2e-3     # peak learning rate
    weight_decay: float = 1e-4      # AdamW decoupled weight decay
    label_smoothing: float = 0.1
    batch_size: int = 64
    epochs: int = 85                # one cosine cycle. 150 with "once" (runs/v6) gained on the validation
                                    # split (int8 68.84 / 70.30 % plain / flip, against 68.00 / 69.29 % at 85)
                                    # but not on PublicTest (67.48 / 68.57 against 67.40 / 68.49 %)
    warmup_epochs: int = 2          # linear warm-up, then cosine decay to zero
    early_stopping_patience: int = 30  # epochs without validation-accuracy gain before stopping
    # --- knowledge distillation (only with fit --teacher) ---
    distill_weight: float = 0.5     # share of each training target taken from the teachers' averaged predictions
    distill_temperature: float = 2.0  # softens the teachers' probabilities (p ** 1/T): they are confident on
                                    # the faces they were trained on, and their second choices are the point
    # --- data ---
    class_weighting: str = "sqrt"   # "none", "sqrt" (sqrt inverse frequency) or "balanced"
    val_fraction: float = 0.1       # held out of training data when no validation set is given
    seed: int = 1337
    # --- augmentation (train only; active inside the Keras model, off at inference) ---
    flip: bool = True
    augment_resampling: str = "chained"  # how rotation, zoom and shift resample a face: "chained" (Keras'
                                    # three layers, three bilinear resamples; the shipped model's recipe) or
                                    # "once" (one composed affine map, RandomAffine: sharper faces). On the
                                    # v2 split, 85 epochs each: "once" (blur 0.5) 68.00 / 69.29 / 70.65 %
                                    # (int8 plain / flip / flip+zoom) against 67.34 / 69.19 / 70.61 % for
                                    # "chained" (blur 0.6); PublicTest 67.40 / 68.49 / 69.52 against 67.07 /
                                    # 68.82 / 69.52 %: no clear gain. On scraped pictures through the
                                    # pipeline both "once" runs were 0.9-3.9 points below both "chained" ones,
                                    # so the default stays
    shift: float = 0.1              # fraction of the side
    rotation_deg: float = 10.0
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    erase: float = 0.25             # probability of a random erased rectangle (cutout)
    mixup_alpha: float = 0.0        # mixup (Zhang et al. 2018): each training face is blended with another
                                    # of its batch, lambda ~ Beta(alpha, alpha), and so are their targets
                                    # and class weights. A regulariser against the train/validation gap
                                    # (83 % / 66 % at the end of runs/v2). 0 = off, the shipped recipe;
                                    # 0.2 (runs/v8mix) lost 0.4 point on single validation faces
    # --- inference only ---
    input_blur: float = 0.6         # Gaussian sigma (pixels) the exported and evaluated model applies to its
                                    # input (never in training, so `export --input-blur` can re-choose it).
                                    # Rotation, zoom and shift each resample bilinearly, so every training
                                    # face is softened (three resamples ~ sigma 0.7) and only test faces
                                    # arrive crisp. 0.6 was chosen on validation (+1.7 points, int8). With
                                    # augment_resampling = "once" validation chose 0.5 (85 epochs) and 0.4
                                    # (150 epochs). 0 = off

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["convs_per_block"] = list(self.convs_per_block)
        return d


# How a run folder written before these keys existed was trained and exported. A missing key
# means this, which need not be today's default: the input blur came with default 0.6 and runs
# before it had none, and a default may change once a new recipe is shipped.
BEFORE_THE_KEY = {"augment_resampling": "chained", "input_blur": 0.0, "mixup_alpha": 0.0}


def require_run_files(run: Path, *names: str) -> None:
    """FileNotFoundError naming the first of ``names`` that the run folder ``run`` lacks."""
    for name in names:
        if not (Path(run) / name).is_file():
            raise FileNotFoundError(f"{Path(run) / name} is missing; is {run} a run folder written by 'moodcam-train fit'?")


def saved_hparams(run: Path) -> dict:
    """A run folder's ``hparams.json``, with the keys an older run lacks filled in as they were then."""
    return BEFORE_THE_KEY | json.loads((Path(run) / "hparams.json").read_text())


def load_run_hparams(run: Path) -> HParams:
    return load_hparams(None, **saved_hparams(run))


def load_hparams(path: Path | None = None, **overrides) -> HParams:
    """HParams from a TOML file (flat keys, as in the dataclass) plus keyword overrides."""
    data: dict = {}
    if path is not None:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: f for f in fields(HParams)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
            raise ValueError(f"{path or 'hparams'}: unknown key '{key}'{hint}")
    for key in ("widths", "convs_per_block"):
        if key in data:
            data[key] = tuple(int(w) for w in data[key])
    hp = HParams(**data)
    if hp.optimizer not in ("adamw", "rmsprop", "sgd"):
        raise ValueError(f"{path or 'hparams'}: key 'optimizer' is {hp.optimizer!r}; use 'adamw', 'rmsprop' or 'sgd'")
    if hp.precision not in ("auto", "float32", "mixed_bfloat16"):
        raise ValueError(f"{path or 'hparams'}: key 'precision' is {hp.precision!r}; use auto, float32 or mixed_bfloat16")
    if not 0.0 <= hp.distill_weight <= 1.0:
        raise ValueError(f"{path or 'hparams'}: key 'distill_weight' is {hp.distill_weight!r}; use a value from 0 to 1")
    if hp.distill_temperature <= 0:
        raise ValueError(f"{path or 'hparams'}: key 'distill_temperature' is {hp.distill_temperature!r}; use a value above 0")
    if not 0.0 <= hp.input_blur <= 2.0:
        raise ValueError(f"{path or 'hparams'}: key 'input_blur' is {hp.input_blur!r}; use a sigma from 0 (off) to 2 pixels")
    if not 0.0 <= hp.mixup_alpha <= 1.0:
        raise ValueError(f"{path or 'hparams'}: key 'mixup_alpha' is {hp.mixup_alpha!r}; use 0 (off) to 1 (0.2 is usual)")
    if hp.augment_resampling not in ("chained", "once"):
        raise ValueError(f"{path or 'hparams'}: key 'augment_resampling' is {hp.augment_resampling!r}; use chained or once")
    if hp.class_weighting not in ("none", "sqrt", "balanced"):
        raise ValueError(f"{path or 'hparams'}: key 'class_weighting' is {hp.class_weighting!r}; use none, sqrt or balanced")
    return hp
