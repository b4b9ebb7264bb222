"""fit -> export -> evaluate through the CLI, the int8 refusal, the --json contract, tampering.

The data is generated here: seven classes of 48x48 "faces" told apart by brightness and a bar's
position, that a tiny CNN starts to learn in a few epochs. How well it learns, and how much int8
loses against float, depend on the CPU and the precision it trains in, so no test asserts them:
the tests check that every figure is measured and recorded consistently, and the int8 refusal is
tested on a model built to lose (:func:`losing_run`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.contracts.labels import LABELS
from edge.contracts.modelfile import load_sidecar
from edge.machine import cpu_description
from trainer.cli import main as train_cli
from trainer.data.datasets import FaceDataset, save_npz

pytestmark = pytest.mark.slow  # Keras fits

TINY_CONFIG = """
widths = [8, 16]
convs_per_block = [1, 1]
epochs = 2
batch_size = 16
learning_rate = 0.01
warmup_epochs = 0
early_stopping_patience = 5
flip = false
shift = 0.0
rotation_deg = 0.0
zoom = 0.0
brightness = 0.0
contrast = 0.0
erase = 0.0
input_blur = 0.6
"""


def synthetic_faces(n: int, seed: int) -> FaceDataset:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(LABELS)
    faces = rng.normal(60, 12, (n, 48, 48))
    for i, k in enumerate(labels):
        faces[i] += 22 * k                          # brightness grows with the class
        faces[i, 4 + 6 * k : 8 + 6 * k, 8:40] += 90  # and a bright bar moves down
    faces = np.clip(faces, 0, 255).astype(np.uint8)
    return FaceDataset(faces, labels.astype(np.int64), np.array([f"synthetic#{seed}-{i}" for i in range(n)]),
                       np.full((n, 4), -1, np.int32))


def last_json_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@dataclasses.dataclass(frozen=True)
class TinyRun:
    precision: str        # as given in the config: "float32", "mixed_bfloat16" or "auto"
    run: Path             # the fit run folder
    val: Path             # its validation .npz
    tflite: Path          # its export
    train_n: int
    val_n: int
    test_n: int


# Each precision path fit takes: forced float32, forced bfloat16 (emulated, so slow, where the CPU
# has no native bf16: hence its smaller run) and "auto" (bfloat16 on AMX / AVX512-BF16 CPUs).
SIZES = {"float32": (700, 210, 70, 3), "mixed_bfloat16": (140, 70, 35, 1), "auto": (700, 210, 70, 3)}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A fit + export per precision, made when a test first asks for it and shared by the module.

    The export passes ``--max-drop 100``: how much int8 loses on a model trained for a few epochs
    depends on the CPU and the precision (it refused 4.76 points on an AMX Xeon), and the refusal
    rule is tested on a model built to lose (:func:`losing_run`). So no test here depends on how
    well a tiny model happened to train."""
    root = tmp_path_factory.mktemp("trainer_model")
    made: dict[str, TinyRun] = {}

    def make(precision: str) -> TinyRun:
        if precision not in made:
            train_n, val_n, test_n, epochs = SIZES[precision]
            folder = root / precision
            save_npz(synthetic_faces(train_n, 0), folder / "train.npz")
            save_npz(synthetic_faces(val_n, 1), folder / "val.npz")
            save_npz(synthetic_faces(test_n, 2), folder / "test.npz")
            (folder / "tiny.toml").write_text(TINY_CONFIG.replace("epochs = 2", f"epochs = {epochs}")
                                              + f'precision = "{precision}"\n')
            run = folder / "runs" / "tiny"
            run.parent.mkdir()
            (folder / "models").mkdir()                  # outputs go into folders that exist
            assert train_cli(["fit", str(folder / "train.npz"), "--val", str(folder / "val.npz"), "--out", str(run),
                              "--config", str(folder / "tiny.toml")]) == 0
            assert train_cli(["export", str(run), "--out", str(folder / "models" / "tiny"), "--samples", "100",
                              "--max-drop", "100", "--test", str(folder / "test.npz")]) == 0
            made[precision] = TinyRun(precision, run, folder / "val.npz", folder / "models" / "tiny.tflite",
                                      train_n, val_n, test_n)
        return made[precision]

    return make


@pytest.fixture(scope="module", params=list(SIZES))
def trained_run(request, tiny_runs) -> TinyRun:
    """The tiny run of each precision path in turn."""
    return tiny_runs(request.param)


@pytest.fixture(scope="module")
def float_run(tiny_runs) -> TinyRun:
    """The float32 tiny run, for tests the precision does not concern."""
    return tiny_runs("float32")


def test_fit_records_the_precision_it_trained_in(trained_run):
    from trainer.model import resolve_precision

    data = json.loads((trained_run.run / "data.json").read_text())
    assert data["precision"] == resolve_precision(trained_run.precision)
    assert json.loads((trained_run.run / "hparams.json").read_text())["precision"] == trained_run.precision
    rows = (trained_run.run / "epochs.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + SIZES[trained_run.precision][3]  # header + one row an epoch
    assert all(np.isfinite(float(v)) for row in rows[1:] for v in row.split(","))


def test_export_sidecar_records_measurements(trained_run):
    """Every figure in the sidecar is what the files give when measured again here."""
    from trainer.evaluate import keras_predict_fn, tflite_predict_fn
    from trainer.model import load_for_inference

    t = trained_run
    meta = load_sidecar(t.tflite)
    m = meta.metrics
    assert m["val_n"] == t.val_n and m["forced"] is False
    with np.load(t.val) as val:
        faces, labels = val["faces"], val["labels"]
    float_pred = keras_predict_fn(load_for_inference(t.run / "best.keras"))(faces).argmax(1)
    int8_pred = tflite_predict_fn(t.tflite)(faces).argmax(1)
    assert m["val_accuracy_float"] == pytest.approx(np.mean(float_pred == labels), abs=5e-5)
    assert m["val_accuracy_int8"] == pytest.approx(np.mean(int8_pred == labels), abs=5e-5)
    assert m["int8_top1_agreement"] == pytest.approx(np.mean(float_pred == int8_pred), abs=5e-5)
    assert m["int8_accuracy_drop_points"] == pytest.approx((m["val_accuracy_float"] - m["val_accuracy_int8"]) * 100, abs=0.02)
    assert m["latency_ms_per_face_1thread"] > 0 and m["tflite_bytes"] == t.tflite.stat().st_size
    assert m["latency_cpu"] == cpu_description(), "a latency is only comparable with the CPU it was measured on"
    assert meta.tflite_sha256 == hashlib.sha256(t.tflite.read_bytes()).hexdigest()
    assert meta.extra["hparams"]["widths"] == [8, 16] and meta.extra["hparams"]["precision"] == t.precision
    assert meta.extra["checkpoint"] == "best.keras" and meta.extra["run"] == str(t.run)
    assert meta.data["train_count"] == t.train_n and meta.data["val_per_class"]["neutral"] == t.val_n // 7
    assert meta.data["precision"] == json.loads((t.run / "data.json").read_text())["precision"]
    assert meta.crop.size == 48
    assert (meta.input.dtype, meta.input.scale, meta.input.zero_point) == ("int8", 1.0, -128)  # pixel - 128
    (test,) = m["test_int8"].values()
    assert test["n"] == t.test_n and 0.0 <= test["accuracy"] <= 1.0
    cal = meta.extra["calibration"]
    assert 0.25 <= cal["temperature"] <= 8 and meta.temperature == cal["temperature"] and cal["n"] == t.val_n
    assert cal["views"] == {"flip": True, "zoom": 0.15} and cal["val_ece_after"] <= cal["val_ece_before"] + 0.02


def test_evaluate_json_contract_matches_export(trained_run, capsys, tmp_path):
    t = trained_run
    capsys.readouterr()
    assert train_cli(["evaluate", str(t.tflite), str(t.val), "--json", "--no-tta", "--tta-zoom", "0",
                      "--report", str(tmp_path / "rep")]) == 0
    result = last_json_line(capsys.readouterr().out)
    assert {"accuracy", "n", "per_class", "confusion", "labels", "macro_f1", "mode", "model", "data", "tta",
            "tta_zoom"} <= set(result)
    assert result["n"] == t.val_n and result["mode"] == "faces" and result["model_kind"] == "tflite-int8"
    assert set(result["per_class"]) == set(LABELS)
    assert all(set(c) == {"precision", "recall", "f1", "support"} for c in result["per_class"].values())
    assert sum(map(sum, result["confusion"])) == t.val_n
    # the int8 model on the export's own validation data scores what the sidecar says
    assert result["accuracy"] == pytest.approx(load_sidecar(t.tflite).metrics["val_accuracy_int8"], abs=1e-4)
    for name in ("metrics.json", "confusion.json", "confusion.png", "reliability.png", "report.md"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert "| **neutral** |" in (tmp_path / "rep" / "report.md").read_text()
    assert "## Reliability" in (tmp_path / "rep" / "report.md").read_text()
    # the sidecar's temperature is applied, and the ECE is over every face
    assert result["temperature"] == load_sidecar(t.tflite).temperature and result["calibration"]["n"] == t.val_n

    # the Keras run folder is evaluated the same way and matches the float figure
    assert train_cli(["evaluate", str(t.run), str(t.val), "--json", "--no-tta", "--tta-zoom", "0"]) == 0
    keras_result = last_json_line(capsys.readouterr().out)
    assert keras_result["model_kind"] == "keras"
    assert keras_result["accuracy"] == pytest.approx(load_sidecar(t.tflite).metrics["val_accuracy_float"], abs=1e-4)


def test_fit_reports_user_errors_in_one_line(float_run, tmp_path, capsys):
    """No traceback for a mistake the user can fix: the command, the file or key, and what to do."""
    run, val = float_run.run, float_run.val
    capsys.readouterr()
    assert train_cli(["fit", str(val), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moodcam-train fit: error: run folder ") and "is not empty; pass --resume" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "typo.toml").write_text("learning_rat = 0.01\n")
    assert train_cli(["fit", str(val), "--out", str(tmp_path / "r"), "--config", str(tmp_path / "typo.toml")]) == 2
    assert "typo.toml: unknown key 'learning_rat'; did you mean 'learning_rate'?" in capsys.readouterr().err
    assert train_cli(["fit", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "r2")]) == 2
    assert f"moodcam-train fit: error: data set {tmp_path / 'missing.npz'} does not exist" in capsys.readouterr().err
    assert train_cli(["fit", str(val), "--out", str(tmp_path / "r3"), "--init", str(tmp_path / "nope.keras")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"moodcam-train fit: error: --init {tmp_path / 'nope.keras'} does not exist")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


BRIGHTNESS = 30.0 + 10.0 * np.arange(len(LABELS))  # the face brightness of each class in losing_run


def losing_run(root: Path) -> Path:
    """A run folder, as fit leaves one, whose model is exact in float and useless in int8, on any CPU.

    Its faces are flat, class k at brightness 30 + 10 k (one black and one white pixel each, so the
    int8 input is still pixel - 128). The model averages the face to its brightness m and scores
    class k by 2 b_k m - b_k^2 (largest for the b_k nearest m: right on every face in float). Beside
    those seven scores the same layer has an eighth unit, 10,000 m, that nothing reads: int8
    quantizes a layer's outputs with one scale for the whole tensor, set by its largest value, and
    at that scale the seven scores (a few hundred apart) all round to one value. The int8 model
    then gives every face the same class: right on 1 face in 7.
    """
    import keras

    from trainer.hparams import HParams

    def flat_faces(n: int) -> FaceDataset:
        labels = np.arange(n) % len(LABELS)
        faces = np.repeat(BRIGHTNESS[labels], 48 * 48).reshape(n, 48, 48)
        faces[:, 0, 0], faces[:, -1, -1] = 0, 255
        return FaceDataset(faces.astype(np.uint8), labels.astype(np.int64), np.array([f"flat#{i}" for i in range(n)]),
                           np.full((n, 4), -1, np.int32))

    save_npz(flat_faces(140), root / "train.npz")
    save_npz(flat_faces(70), root / "val.npz")
    inputs = keras.Input((48, 48, 1), name="gray")
    mean = keras.layers.GlobalAveragePooling2D(name="mean")(inputs)
    scores = keras.layers.Dense(len(LABELS) + 1, name="scores")(mean)
    probs = keras.layers.Dense(len(LABELS), activation="softmax", name="probs")(scores)
    model = keras.Model(inputs, probs, name="built_to_lose")
    sharpness = 0.05  # float probabilities near 1 for the right class
    kernel = np.r_[2 * sharpness * BRIGHTNESS, 1e4][None, :].astype(np.float32)
    bias = np.r_[-sharpness * BRIGHTNESS**2, 0.0].astype(np.float32)
    model.get_layer("scores").set_weights([kernel, bias])
    model.get_layer("probs").set_weights([np.eye(len(LABELS) + 1, len(LABELS), dtype=np.float32),
                                          np.zeros(len(LABELS), np.float32)])
    run = root / "run"
    run.mkdir()
    model.save(run / "best.keras")
    (run / "hparams.json").write_text(json.dumps(HParams(input_blur=0.0).to_dict()))
    (run / "data.json").write_text(json.dumps({"train_sources": [str(root / "train.npz")],
                                               "val_sources": [str(root / "val.npz")]}))
    return run


def test_export_refuses_when_int8_loses_too_much(tmp_path, capsys):
    run = losing_run(tmp_path)
    out = tmp_path / "refused"
    capsys.readouterr()
    assert train_cli(["export", str(run), "--out", str(out), "--samples", "50"]) == 1
    err = capsys.readouterr().err
    assert "refused: int8 accuracy" in err and "points below float 100.00% on 70 validation faces" in err
    assert "(limit 1.0 points); nothing written" in err and "--force" in err
    assert not out.with_suffix(".tflite").exists() and not out.with_suffix(".json").exists()

    # --force writes it and says so; a limit the loss is within writes it without forcing
    assert train_cli(["export", str(run), "--out", str(out), "--samples", "50", "--force"]) == 0
    forced = load_sidecar(out.with_suffix(".tflite")).metrics
    assert forced["forced"] is True and forced["val_accuracy_float"] == 1.0
    assert forced["int8_accuracy_drop_points"] > 50 and forced["int8_top1_agreement"] < 0.5
    lenient = tmp_path / "lenient"
    assert train_cli(["export", str(run), "--out", str(lenient), "--samples", "50",
                      "--max-drop", str(forced["int8_accuracy_drop_points"] + 0.01)]) == 0
    assert load_sidecar(lenient.with_suffix(".tflite")).metrics["forced"] is False


def test_evaluate_refuses_tampered_model(float_run, tmp_path, capsys):
    val, tflite = float_run.val, float_run.tflite
    bad = tmp_path / "bad.tflite"
    data = bytearray(tflite.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    shutil.copy(tflite.with_suffix(".json"), bad.with_suffix(".json"))
    assert train_cli(["evaluate", str(bad), str(val), "--json"]) == 2
    captured = capsys.readouterr()
    assert "does not match its sidecar" in captured.err and "sha256" in captured.err
    assert captured.out.strip() == ""


def test_evaluate_face_folders_and_tta(tiny_model, tmp_path, capsys):
    """<label>/*.png folders are read as faces; --tta scores a face and its mirror image alike."""
    from PIL import Image

    from trainer.evaluate import load_predictor

    ds = synthetic_faces(14, 3)
    for i, (face, label) in enumerate(zip(ds.faces, ds.labels)):
        (tmp_path / "faces" / LABELS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(tmp_path / "faces" / LABELS[label] / f"{i}.png")
    assert train_cli(["evaluate", str(tiny_model), str(tmp_path / "faces"), "--json", "--tta", "--tta-zoom", "0"]) == 0
    result = last_json_line(capsys.readouterr().out)
    assert result["mode"] == "faces" and result["n"] == 14 and result["tta"] is True
    assert all(c["support"] == 2 for c in result["per_class"].values())

    predictor = load_predictor(tiny_model, tta=True)
    faces = ds.faces[:3]
    np.testing.assert_allclose(predictor.predict(faces), predictor.predict(faces[:, :, ::-1]), atol=1e-6)

    # --tta-zoom: evaluate averages the same views as the edge's Classifier, and says so
    from edge.vision.classify import Classifier

    assert train_cli(["evaluate", str(tiny_model), str(tmp_path / "faces"), "--json", "--tta", "--tta-zoom", "0.15"]) == 0
    result = last_json_line(capsys.readouterr().out)
    assert result["tta"] is True and result["tta_zoom"] == 0.15
    edge_probs = Classifier(tiny_model, tta=True, tta_zoom=0.15).probs(ds.faces)
    assert result["accuracy"] == pytest.approx(float((edge_probs.argmax(1) == ds.labels).mean()), abs=5e-5)  # JSON keeps 4 decimals
    # (the edge renormalises the int8 output to sum to 1, evaluate does not: a difference of ~1e-3)
    np.testing.assert_allclose(load_predictor(tiny_model, tta=True, tta_zoom=0.15).predict(ds.faces), edge_probs, atol=5e-3)
    assert train_cli(["evaluate", str(tiny_model), str(tmp_path / "faces"), "--tta-zoom", "0.5"]) == 2
    assert "--tta-zoom 0.5 is out of range; use 0 (off) to 0.3" in capsys.readouterr().err


def test_metrics_by_hand():
    from trainer.evaluate import metrics

    truth = np.array([0, 0, 0, 3, 3, 6])
    pred = np.array([0, 0, 3, 3, 6, 6])
    m = metrics(truth, pred)
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-4) and m["n"] == 6
    assert m["per_class"]["angry"] == {"precision": 1.0, "recall": pytest.approx(0.6667, abs=1e-4),
                                       "f1": pytest.approx(0.8, abs=1e-4), "support": 3}
    assert m["per_class"]["happy"]["precision"] == 0.5 and m["per_class"]["disgust"]["support"] == 0
    assert m["confusion"][0] == [2, 0, 0, 1, 0, 0, 0]


def test_evaluate_raw_pictures_through_dlib(tiny_model, tmp_path, capsys):
    """A few scraped pictures through dlib + crop_face + the int8 model; the counts add up."""
    from tests.shared_data import shared_data

    seed = shared_data("scraped-seed")
    assert train_cli(["evaluate", str(tiny_model), str(seed), "--limit", "14", "--upsample", "0", "--no-mmod",
                      "--json", "--report", str(tmp_path / "rep")]) == 0
    result = last_json_line(capsys.readouterr().out)
    assert result["mode"] == "pictures" and result["mmod"] is False and result["found_by_mmod"] == 0
    assert result["calibration"]["n"] == result["n_found"] and 0 <= result["calibration"]["ece"] <= 1
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 0
    assert result["n"] + result["unreadable"] == 14
    assert 0 < result["n_found"] <= result["n"], "dlib finds a face in some of the scraped pictures"
    assert result["accuracy"] <= result["accuracy_found"] + 1e-9
    assert sum(map(sum, result["confusion"])) == result["n_found"]
    rows = json.loads((tmp_path / "rep" / "metrics.json").read_text())["per_picture"]
    assert len(rows) == result["n"] and all((r["faces"] > 0) == (r["predicted"] >= 0) for r in rows)


def test_mixed_bfloat16_run_exports_as_float32(tiny_runs):
    """bf16 training (2x faster on AMX/AVX512-BF16 CPUs) leaves a model whose float32 copy
    predicts what it predicts, and the process-wide dtype policy is restored afterwards."""
    import keras

    from trainer.model import as_float32, custom_objects

    best = tiny_runs("mixed_bfloat16").run / "best.keras"
    assert keras.mixed_precision.global_policy().name == "float32"
    trained = keras.models.load_model(best, custom_objects=custom_objects(), compile=False)
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in trained.layers}
    copy = as_float32(trained)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    faces = synthetic_faces(21, 3).faces[..., None].astype(np.float32)
    bf16, f32 = trained.predict(faces, verbose=0), copy.predict(faces, verbose=0)
    assert f32.dtype == np.float32
    # bf16 keeps 8 bits of mantissa: the copies agree to about 1e-2, and on every top-1 pick
    # that is not a near tie
    assert np.abs(bf16 - f32).max() < 0.05
    clear = np.sort(f32, axis=1)[:, -1] - np.sort(f32, axis=1)[:, -2] > 0.05
    assert (bf16.argmax(1) == f32.argmax(1))[clear].all()


def test_precision_key_is_checked(tmp_path):
    from trainer.hparams import load_hparams
    from trainer.model import resolve_precision

    (tmp_path / "bad.toml").write_text('precision = "float16"\n')
    with pytest.raises(ValueError, match=r"bad.toml: key 'precision' is 'float16'; use auto, float32 or mixed_bfloat16"):
        load_hparams(tmp_path / "bad.toml")
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("auto") in ("float32", "mixed_bfloat16")


def test_shipped_model_scores_what_its_card_says(capsys):
    """The committed default model, through the user's own evaluate command, on all of FER2013
    PublicTest: the accuracy its sidecar records (measured at export), to the face."""
    from edge.contracts.modelfile import default_model_path
    from tests.shared_data import shared_data

    public_test = shared_data("fer2013", "val")
    model = default_model_path()
    assert train_cli(["evaluate", str(model), str(public_test), "--json", "--no-tta", "--tta-zoom", "0"]) == 0
    result = last_json_line(capsys.readouterr().out)
    recorded = [t for t in load_sidecar(model).metrics["test_int8"].values() if t["n"] == result["n"]]
    assert result["n"] == 3589 and len(recorded) == 1
    assert result["accuracy"] == pytest.approx(recorded[0]["accuracy"], abs=1e-4)
    assert result["accuracy"] >= 0.6676, "the shipped model fell more than 1 point below its predecessor (67.76 %)"


def test_the_shipped_recipe_is_the_defaults_and_a_fine_tune():
    """The shipped model is two runs of ``moodcam-train fit``: the HParams defaults on FER2013
    (the model the second run starts from), then a fine-tune from it with the two overrides the
    model card's recipe gives on the command line (--epochs 4 --learning-rate 5e-4). Its sidecar
    records exactly that: the defaults but for those two keys, the --init model, and the
    validation faces (apart from the training data) its temperature was fitted on."""
    from edge.contracts.modelfile import default_model_path
    from trainer.hparams import HParams

    shipped = load_sidecar(default_model_path())
    assert shipped.extra["hparams"] == HParams(epochs=4, learning_rate=5e-4).to_dict()
    assert Path(shipped.data["init_from"]).name == "default.keras"
    assert shipped.data["val_sources"] and not set(shipped.data["val_sources"]) & set(shipped.data["train_sources"])
    assert shipped.extra["calibration"]["n"] == shipped.data["val_count"]   # the temperature's faces


def test_input_blur_is_a_gaussian_with_mirrored_borders():
    """The blur put in front of a model for prediction is OpenCV's Gaussian blur (same sigma,
    5x5 at sigma 0.6, borders reflected), so what the model sees can be reproduced outside it."""
    import cv2
    import keras

    from trainer.model import InputBlur

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48)).astype(np.float32)
    blurred = np.asarray(InputBlur(0.6)(keras.ops.convert_to_tensor(images[..., None])))[..., 0]
    expected = np.stack([cv2.GaussianBlur(im, (5, 5), 0.6, borderType=cv2.BORDER_REFLECT) for im in images])
    np.testing.assert_allclose(blurred, expected, atol=1e-3)
    assert np.abs(blurred - images).mean() > 10, "a real blur changes random pixels a lot"


# What InputBlur converts to (the network's own convolutions are CONV_2D with built-in padding).
BLUR_OPS = {"MIRROR_PAD", "DEPTHWISE_CONV_2D"}


def tflite_ops(tflite: Path) -> set[str]:
    from edge.vision.interpreter import make_interpreter

    return {op["op_name"] for op in make_interpreter(model_path=str(tflite))._get_ops_details()}


def test_prediction_models_carry_the_runs_input_blur(trained_run, tmp_path):
    """Evaluate and export load a run through ``load_for_inference``: the training
    model on faces blurred by the run's ``input_blur`` (the default 0.6 here), and on the faces as
    they are once the run says 0. The exported int8 model carries the blur's ops."""
    import cv2
    import keras

    from trainer.model import as_float32, custom_objects, load_for_inference

    run, val, tflite = trained_run.run, trained_run.val, trained_run.tflite
    faces = np.load(val)["faces"][:60]
    raw = as_float32(keras.models.load_model(run / "best.keras", custom_objects=custom_objects(), compile=False))
    as_is = raw.predict(faces[..., None].astype(np.float32), verbose=0)
    softened = np.stack([cv2.GaussianBlur(f.astype(np.float32), (5, 5), 0.6, borderType=cv2.BORDER_REFLECT)
                         for f in faces])
    on_blurred = raw.predict(softened[..., None], verbose=0)
    assert np.abs(on_blurred - as_is).max() > 1e-3, "the blur must change this model's output for the test to mean anything"

    loaded = load_for_inference(run / "best.keras").predict(faces[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(loaded, on_blurred, atol=1e-4)
    assert load_sidecar(tflite).extra["hparams"]["input_blur"] == 0.6
    assert BLUR_OPS <= tflite_ops(tflite)

    unblurred = tmp_path / "run"
    shutil.copytree(run, unblurred)
    saved = json.loads((unblurred / "hparams.json").read_text())
    (unblurred / "hparams.json").write_text(json.dumps(saved | {"input_blur": 0.0}))
    plain = load_for_inference(unblurred / "best.keras").predict(faces[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(plain, as_is, atol=1e-5)
    overridden = load_for_inference(run / "best.keras", input_blur=0.0).predict(faces[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(overridden, as_is, atol=1e-5)


def test_export_input_blur_overrides_the_runs(float_run, tmp_path, capsys):
    """``export --input-blur`` chooses the blur after training (it is never trained with): the
    sidecar records it and the int8 model has the blur's ops only when it is above 0."""
    run = float_run.run
    out = tmp_path / "sharp"
    assert train_cli(["export", str(run), "--out", str(out), "--samples", "100", "--max-drop", "100",
                      "--input-blur", "0"]) == 0
    assert load_sidecar(out.with_suffix(".tflite")).extra["hparams"]["input_blur"] == 0.0
    assert json.loads((run / "hparams.json").read_text())["input_blur"] == 0.6, "the run folder is left as it was"
    assert not BLUR_OPS & tflite_ops(out.with_suffix(".tflite"))
    assert BLUR_OPS <= tflite_ops(float_run.tflite)
    capsys.readouterr()
    assert train_cli(["export", str(run), "--out", str(tmp_path / "bad"), "--input-blur", "-1"]) == 2
    assert "moodcam-train export: error: --input-blur -1: use a sigma from 0 (off) to 2 pixels" in capsys.readouterr().err


def test_input_blur_setting_is_checked(tmp_path):
    from trainer.hparams import load_hparams

    (tmp_path / "bad.toml").write_text("input_blur = -0.5\n")
    with pytest.raises(ValueError, match=r"bad.toml: key 'input_blur' is -0.5; use a sigma from 0 \(off\) to 2 pixels"):
        load_hparams(tmp_path / "bad.toml")


def test_init_starts_from_another_models_weights_and_stays_on_record(tmp_path):
    """``--init`` copies a model's weights into a fresh run (with its own optimizer); with a zero
    learning rate the kernels stay exactly those. ``data.json`` names the source, also after a resume."""
    import keras

    from trainer.fit import fit
    from trainer.hparams import load_hparams
    from trainer.model import custom_objects

    save_npz(synthetic_faces(70, 0), tmp_path / "train.npz")
    (tmp_path / "tiny.toml").write_text(TINY_CONFIG.replace("epochs = 2", "epochs = 1"))
    hp = load_hparams(tmp_path / "tiny.toml")
    source = fit([tmp_path / "train.npz"], tmp_path / "a", hp, verbose=0)
    frozen = load_hparams(tmp_path / "tiny.toml", learning_rate=0.0)
    fit([tmp_path / "train.npz"], tmp_path / "b", frozen, init_from=source, verbose=0)
    kernels = lambda path: [w.numpy() for w in keras.models.load_model(path, custom_objects=custom_objects()).weights  # noqa: E731
                            if "kernel" in w.path]
    for a, b in zip(kernels(source), kernels(tmp_path / "b" / "last.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "b" / "data.json").read_text())["init_from"] == str(source)
    fit([tmp_path / "train.npz"], tmp_path / "b", load_hparams(tmp_path / "tiny.toml", learning_rate=0.0, epochs=2),
        resume=True, verbose=0)
    assert json.loads((tmp_path / "b" / "data.json").read_text())["init_from"] == str(source)


def test_run_with_the_default_augmentation_saves_and_resumes(tmp_path):
    """The augmentation block (custom layers included) survives the per-epoch checkpoint:
    a resumed run loads it and trains on, and the run exports to prediction without it."""
    from trainer.fit import fit
    from trainer.hparams import HParams
    from trainer.model import load_for_inference

    save_npz(synthetic_faces(140, 0), tmp_path / "train.npz")
    hp = HParams(widths=(8, 16), convs_per_block=(1, 1), epochs=1, batch_size=16, warmup_epochs=0)
    fit([tmp_path / "train.npz"], tmp_path / "run", hp, verbose=0)
    fit([tmp_path / "train.npz"], tmp_path / "run", dataclasses.replace(hp, epochs=2), resume=True, verbose=0)
    assert len((tmp_path / "run" / "epochs.csv").read_text().strip().splitlines()) == 3   # header + 2 epochs
    import keras

    from trainer.model import custom_objects

    trained = keras.models.load_model(tmp_path / "run" / "last.keras", custom_objects=custom_objects())
    augment = [layer.__class__.__name__ for layer in trained.get_layer("augment").layers]
    assert augment == ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomBrightness",
                       "RandomContrast", "RandomErase"]
    predictor = load_for_inference(tmp_path / "run" / "last.keras")
    assert "augment" not in [layer.name for layer in predictor.layers]
    probs = predictor.predict(synthetic_faces(14, 1).faces[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # Only the epoch count may change on resume; anything else is refused, naming the keys.
    with pytest.raises(ValueError, match=r"hparams.json differs from the hyper-parameters given in \['dropout', 'input_blur'\]"):
        fit([tmp_path / "train.npz"], tmp_path / "run", dataclasses.replace(hp, epochs=3, dropout=0.2, input_blur=0.0),
            resume=True, verbose=0)
