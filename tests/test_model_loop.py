"""The whole loop on small data, as the README shows it: reviewed rows in a store -> ``moodcam
dataset`` -> ``moodcam-train fit --init`` -> ``moodcam-train export`` -> ``moodcam model install``
-> the daemon classifies with the new model (it names none in its config)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from edge.cli import main as edge_cli
from edge.contracts.labels import LABELS
from edge.contracts.modelfile import load_sidecar
from edge.store.database import Store
from tests.store_helpers import make_record
from tests.test_trainer_model import TINY_CONFIG, synthetic_faces
from trainer.cli import main as train_cli

pytestmark = pytest.mark.slow  # two Keras fits and an export


def test_review_dataset_fit_init_export_install_and_the_daemon_uses_it(tmp_path, capsys):
    state = tmp_path / "pi-state"
    faces = synthetic_faces(140, 0)
    now = time.time()
    with Store(state) as store:               # what the daemon logged and a person then reviewed
        for i, (crop, k) in enumerate(zip(faces.faces, faces.labels)):
            face_id = store.log_face(make_record(i, ts=now - 1000 + i), crop)   # recent: retention keeps them
            store.set_review(face_id, label=LABELS[int(k)])
    reviewed = tmp_path / "reviewed"
    assert edge_cli(["dataset", "--state", str(state), "--out", str(reviewed)]) == 0

    # On the desktop: a first tiny model stands in for the current one, then --init from it.
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG.replace("epochs = 2", "epochs = 1"))
    assert train_cli(["fit", str(reviewed), "--out", str(tmp_path / "runs" / "first"), "--config", str(config)]) == 0
    assert train_cli(["fit", str(reviewed), "--out", str(tmp_path / "runs" / "next"), "--config", str(config),
                      "--init", str(tmp_path / "runs" / "first" / "best.keras")]) == 0
    (tmp_path / "models").mkdir()          # export writes into a folder that exists
    assert train_cli(["export", str(tmp_path / "runs" / "next"), "--out", str(tmp_path / "models" / "next"),
                      "--samples", "50", "--max-drop", "100"]) == 0
    model = tmp_path / "models" / "next.tflite"
    sha = load_sidecar(model).tflite_sha256

    # Back on the Pi.
    assert edge_cli(["model", "install", str(model), "--state", str(state)]) == 0
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    from skimage import data

    Image.fromarray(data.astronaut()).save(pictures / "astronaut.png")
    daemon_config = tmp_path / "config.toml"
    daemon_config.write_text("[logging]\nmin_interval_s = 0.0\n[systemd]\nnotify = false\n")
    capsys.readouterr()
    assert edge_cli(["run", "--source", f"dir:{pictures}", "--state", str(state), "--config", str(daemon_config)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["logged"] >= 1
    with Store(state, readonly=True) as store:
        new_rows = store.read("SELECT label, probs FROM faces WHERE model_sha256 = ?", (sha,))
        assert new_rows and store.read_heartbeat()["model_name"] == "next"
        assert all(label in LABELS and np.isclose(sum(json.loads(probs).values()), 1.0, atol=1e-3)
                   for label, probs in new_rows)
        assert store.count() == 140 + len(new_rows)        # the reviewed rows are all still there
