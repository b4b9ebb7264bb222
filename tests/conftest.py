"""Fixtures the project generates itself: a tiny int8 model, synthetic faces."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A small int8 .tflite + sidecar, trained for a few steps on synthetic faces.

    Its predictions mean nothing; it exercises the real Keras -> TFLite -> LiteRT path so edge
    tests never depend on a committed binary.
    """
    import keras

    from edge.contracts.crop import CropParams
    from trainer.export import convert_int8, write_model
    from trainer.hparams import HParams
    from trainer.model import make_model

    keras.utils.set_random_seed(0)
    hp = HParams(widths=(8, 16), convs_per_block=(1, 1))
    model = make_model(hp)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    labels = np.arange(64) % 7
    model.fit(faces[..., None].astype("float32"), labels, epochs=1, batch_size=16, verbose=0)
    out = tmp_path_factory.mktemp("model") / "tiny"
    return write_model(out, convert_int8(model, faces, samples=32), CropParams(),
                       data={"note": "synthetic test fixture"}, metrics={})


@pytest.fixture(autouse=True)
def _not_under_systemd(monkeypatch):
    """Tests behave the same when the test run itself is a systemd unit: ``auto`` sources refuse
    the demo fallback under systemd (INVOCATION_ID), which only the tests that want it set."""
    monkeypatch.delenv("INVOCATION_ID", raising=False)
