"""The contracts trainer and edge share: labels, face crop, model file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.contracts.crop import CropParams, crop_face, expand_box, to_gray
from edge.contracts.labels import LABELS, label_from_name
from edge.contracts.modelfile import ModelFileError, load_sidecar


def test_labels_are_fer2013_order():
    assert LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("name,label", [("Disgusted+Human+Faces", "disgust"), ("Fearful", "fear"),
                                        ("Surprised+Human+Faces", "surprise"), ("Happy Human Face", "happy"),
                                        ("holiday-photos", None)])
def test_label_from_folder_name(name, label):
    assert label_from_name(name) == label


def test_gray_matches_pillow_luma():
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ours = to_gray(rgb)
    pillow = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.abs(ours.astype(int) - pillow.astype(int)).max() <= 1


def test_box_is_widened_squared_and_clamped():
    params = CropParams(size=48, margin=0.25, shift_y=0.0)
    assert expand_box((40, 40, 20, 20), (100, 100), params) == (35, 35, 30, 30)
    # shift_y moves the centre by a fraction of the box height (negative: up)
    assert expand_box((40, 40, 20, 20), (100, 100), CropParams(margin=0.25, shift_y=-0.1)) == (35, 33, 30, 30)
    # near the corner the region is clamped to the image
    x, y, w, h = expand_box((0, 0, 20, 40), (100, 100), params)
    assert (x, y) == (0, 0) and w <= 100 and h <= 100
    with pytest.raises(ValueError, match="outside"):
        expand_box((200, 200, 10, 10), (100, 100), params)


def test_crop_face_shape_and_content():
    image = np.zeros((100, 120, 3), np.uint8)
    image[30:70, 40:80] = 255  # a white "face" on black
    crop = crop_face(image, (40, 30, 40, 40), CropParams(size=48, margin=0.0, shift_y=0.0))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop[24, 24] == 255
    wide = crop_face(image, (40, 30, 40, 40), CropParams(size=48, margin=0.25, shift_y=0.0))
    assert wide[0, 0] == 0 and wide[24, 24] == 255


def test_model_sidecar_round_trip_and_refusals(tiny_model, tmp_path):
    meta = load_sidecar(tiny_model)
    assert meta.labels == LABELS and meta.crop == CropParams()
    assert meta.input.zero_point == -128 and meta.input.scale == pytest.approx(1.0)
    # tampered: one byte changed
    bad = tmp_path / "bad.tflite"
    data = bytearray(tiny_model.read_bytes()); data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    bad.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    with pytest.raises(ModelFileError, match="sha256"):
        load_sidecar(bad)
    # wrong labels
    sidecar = json.loads(tiny_model.with_suffix(".json").read_text())
    sidecar["labels"] = list(reversed(LABELS))
    good = tmp_path / "relabelled.tflite"
    good.write_bytes(tiny_model.read_bytes())
    good.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelFileError, match="labels"):
        load_sidecar(good)
    # missing sidecar
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelFileError, match="sidecar"):
        load_sidecar(lonely)


def test_cli_suggests_close_matches(capsys):
    from edge.cli import main

    with pytest.raises(SystemExit):
        main(["clasify"])
    assert "did you mean 'classify'" in capsys.readouterr().err


def test_the_shipped_model_is_the_default(monkeypatch):
    """Without $MOODCAM_MODEL, the edge finds models/default.tflite of the checkout it runs from."""
    from edge.contracts.modelfile import default_model_path

    monkeypatch.delenv("MOODCAM_MODEL", raising=False)
    path = default_model_path()
    assert path == Path(__file__).resolve().parent.parent / "models" / "default.tflite"
    assert path.is_file() and load_sidecar(path).tflite_sha256
