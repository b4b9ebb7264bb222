"""Confidence calibration: ECE by hand, and a temperature fit that finds a known temperature."""
from __future__ import annotations

import numpy as np
import pytest

from trainer.calibrate import fit_temperature, reliability, temperature_for_scores


def test_ece_by_hand():
    # two bins used: 0.9 confident, 3 of 4 right (gap 0.15); 0.5 confident, 1 of 2 right (gap 0)
    conf = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.5])
    right = np.array([1, 1, 1, 0, 1, 0], bool)
    cal = reliability(conf, right)
    assert cal["ece"] == pytest.approx(4 / 6 * 0.15, abs=1e-4) and cal["bins"] == 15 and cal["n"] == 6
    assert sum(row["n"] for row in cal["table"]) == 6


def test_temperature_fit_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    true_t = 2.0
    p_true = np.exp(logits / true_t)
    p_true /= p_true.sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in p_true])
    scores = np.exp(logits)
    scores /= scores.sum(1, keepdims=True)          # the overconfident model's softmax (T = 1)
    t = temperature_for_scores([scores], labels, floor=1e-9)
    assert t == pytest.approx(true_t, rel=0.1)
    assert fit_temperature(lambda _t: p_true, labels) > 0  # a flat objective still answers within range


def test_calibrate_writes_the_temperature_into_the_sidecar_and_leaves_the_model(tiny_model, tmp_path, capsys):
    import json
    import shutil

    from edge.contracts.modelfile import load_sidecar, sha256_of, sidecar_path
    from trainer.cli import main as train_cli
    from trainer.data.datasets import FaceDataset, save_npz

    model = tmp_path / "m.tflite"
    shutil.copy(tiny_model, model)
    shutil.copy(sidecar_path(tiny_model), sidecar_path(model))
    rng = np.random.default_rng(5)
    n = 70
    save_npz(FaceDataset(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n) % 7,
                         np.array([f"f{i}" for i in range(n)]), np.full((n, 4), -1, np.int32)), tmp_path / "val.npz")
    before = sha256_of(model)
    assert train_cli(["calibrate", str(model), str(tmp_path / "val.npz"), "--no-tta", "--tta-zoom", "0", "--write"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    meta = load_sidecar(model)
    assert meta.temperature == printed["temperature"] and 0.25 <= meta.temperature <= 8
    assert meta.extra["calibration"]["views"] == {"flip": False, "zoom": 0.0} and meta.extra["calibration"]["n"] == n
    assert sha256_of(model) == before == meta.tflite_sha256
    assert train_cli(["calibrate", str(model), str(tmp_path / "nothing.npz")]) == 2
    assert "moodcam-train calibrate: error: data" in capsys.readouterr().err
