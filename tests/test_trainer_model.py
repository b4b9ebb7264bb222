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
from trainer.datasets import FaceDataset, save_npz

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


def test_evaluate_json_contract_matches_export(trained_run, capsys, tmp_path):
    t = trained_run
    capsys.readouterr()
    assert train_cli(["evaluate", str(t.tflite), str(t.val), "--json", "--report", str(tmp_path / "rep")]) == 0
    result = last_json_line(capsys.readouterr().out)
    assert {"accuracy", "n", "per_class", "confusion", "labels", "macro_f1", "mode", "model", "data", "tta",
            "tta_zoom"} <= set(result)
    assert result["n"] == t.val_n and result["mode"] == "faces" and result["model_kind"] == "tflite-int8"
    assert set(result["per_class"]) == set(LABELS)
    assert all(set(c) == {"precision", "recall", "f1", "support"} for c in result["per_class"].values())
    assert sum(map(sum, result["confusion"])) == t.val_n
    # the int8 model on the export's own validation data scores what the sidecar says
    assert result["accuracy"] == pytest.approx(load_sidecar(t.tflite).metrics["val_accuracy_int8"], abs=1e-4)
    for name in ("metrics.json", "confusion.json", "confusion.png", "report.md"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert "| **neutral** |" in (tmp_path / "rep" / "report.md").read_text()

    # the Keras run folder is evaluated the same way and matches the float figure
    assert train_cli(["evaluate", str(t.run), str(t.val), "--json"]) == 0
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
    assert train_cli(["evaluate", str(tiny_model), str(tmp_path / "faces"), "--json", "--tta"]) == 0
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
    assert train_cli(["evaluate", str(tiny_model), str(seed), "--limit", "14", "--upsample", "0",
                      "--json", "--report", str(tmp_path / "rep")]) == 0
    result = last_json_line(capsys.readouterr().out)
    assert result["mode"] == "pictures"
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
    assert train_cli(["evaluate", str(model), str(public_test), "--json"]) == 0
    result = last_json_line(capsys.readouterr().out)
    recorded = [t for t in load_sidecar(model).metrics["test_int8"].values() if t["n"] == result["n"]]
    assert result["n"] == 3589 and len(recorded) == 1
    assert result["accuracy"] == pytest.approx(recorded[0]["accuracy"], abs=1e-4)
    assert result["accuracy"] > 0.67, "the shipped model fell back below its predecessor (67.07 %: 90 % of the faces, with the blur)"


def test_distillation_targets():
    from trainer.distill import soften, training_targets

    probs = np.array([[0.7, 0.2, 0.1], [0.98, 0.01, 0.01]], np.float32)
    np.testing.assert_allclose(soften(probs, 1.0), probs, rtol=1e-5)
    warm = soften(probs, 2.0)
    np.testing.assert_allclose(warm.sum(axis=1), 1.0, rtol=1e-6)
    assert warm[1, 0] < probs[1, 0] and warm[1, 1] > probs[1, 1]   # the second choices come out
    assert (warm.argmax(1) == probs.argmax(1)).all()                # and the first stays first
    labels = np.array([2, 0])
    np.testing.assert_array_equal(training_targets(labels, 3, None, 0.5, 2.0), np.eye(3)[labels])
    mixed = training_targets(labels, 3, probs, 0.25, 1.0)
    np.testing.assert_allclose(mixed, 0.75 * np.eye(3)[labels] + 0.25 * probs, rtol=1e-6)


def test_student_learns_from_teacher_not_from_wrong_labels(float_run, tmp_path):
    """A student whose labels are all shuffled still learns the task from a good teacher, and
    without the teacher it does not: the teacher's predictions really are what it trains on."""
    import keras

    from trainer.distill import cached_teacher_probabilities, teacher_probabilities
    from trainer.model import custom_objects

    teacher_run, val_npz = float_run.run, float_run.val
    good = synthetic_faces(700, 0)
    shuffled = FaceDataset(good.faces, np.random.default_rng(5).permutation(good.labels), good.sources, good.boxes)
    save_npz(shuffled, tmp_path / "shuffled.npz")
    # The 2-epoch teacher is right but unsure (top probability ~0.35): a temperature below 1 sharpens it.
    config = TINY_CONFIG.replace("epochs = 2", "epochs = 3") + "distill_weight = 1.0\ndistill_temperature = 0.25\nlabel_smoothing = 0.0\n"
    (tmp_path / "student.toml").write_text(config)
    (tmp_path / "alone.toml").write_text(config.replace("distill_weight = 1.0", "distill_weight = 0.0"))

    def val_accuracy(config, run, *teacher_args):
        assert train_cli(["fit", str(tmp_path / "shuffled.npz"), "--val", str(val_npz), "--out", str(tmp_path / run),
                          "--config", str(tmp_path / config), *teacher_args]) == 0
        model = keras.models.load_model(tmp_path / run / "best.keras", custom_objects=custom_objects())
        with np.load(val_npz) as val:
            return float((model.predict(val["faces"][..., None].astype(np.float32), verbose=0).argmax(1) == val["labels"]).mean())

    assert val_accuracy("student.toml", "student", "--teacher", str(teacher_run)) > 0.6
    assert val_accuracy("alone.toml", "alone") < 0.3   # chance is 1/7
    data = json.loads((tmp_path / "student" / "data.json").read_text())
    assert data["teachers"] == [str(teacher_run)]

    # The run caches the teacher's flip-averaged predictions; a resumed run reads them back even
    # if the teacher has gone since.
    cached = np.load(tmp_path / "student" / "teacher.npz")["probs"]
    np.testing.assert_allclose(cached, teacher_probabilities([teacher_run], shuffled.faces), atol=1e-5)
    moved = tmp_path / "teacher-copy"
    shutil.copytree(teacher_run, moved)
    first = cached_teacher_probabilities(tmp_path / "student", [moved], shuffled)
    (moved / "best.keras").unlink()
    np.testing.assert_array_equal(cached_teacher_probabilities(tmp_path / "student", [moved], shuffled), first)


def test_distillation_settings_are_checked(tmp_path):
    from trainer.distill import teacher_model_path
    from trainer.hparams import load_hparams

    (tmp_path / "bad.toml").write_text("distill_weight = 1.5\n")
    with pytest.raises(ValueError, match=r"bad.toml: key 'distill_weight' is 1.5; use a value from 0 to 1"):
        load_hparams(tmp_path / "bad.toml")
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"m.tflite: no Keras model there.*a .tflite model cannot teach"):
        teacher_model_path(tmp_path / "m.tflite")


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
    """Evaluate, export and distillation load a run through ``load_for_inference``: the training
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


def test_input_blur_and_resampling_settings_are_checked(tmp_path):
    from trainer.hparams import load_hparams

    (tmp_path / "bad.toml").write_text("input_blur = -0.5\n")
    with pytest.raises(ValueError, match=r"bad.toml: key 'input_blur' is -0.5; use a sigma from 0 \(off\) to 2 pixels"):
        load_hparams(tmp_path / "bad.toml")
    (tmp_path / "bad.toml").write_text('augment_resampling = "twice"\n')
    with pytest.raises(ValueError, match=r"bad.toml: key 'augment_resampling' is 'twice'; use chained or once"):
        load_hparams(tmp_path / "bad.toml")


def test_mixup_blends_face_target_and_weight_with_one_lambda(tmp_path):
    """Each mixed item is lambda * itself + (1 - lambda) * one partner of its batch, with the same
    lambda for the face, the target and the class weight; the same seed and step mix the same way."""
    from trainer.fit import _tf_dataset, mixup
    from trainer.hparams import load_hparams

    n = len(LABELS)
    faces = np.stack([np.full((48, 48), 10 * k, np.uint8) for k in range(n)])
    ds = FaceDataset(faces, np.arange(n), np.array([f"flat#{k}" for k in range(n)]), np.full((n, 4), -1, np.int32))
    hp = load_hparams(None, batch_size=n, mixup_alpha=0.4, seed=7)
    weights = {k: 1.0 + k for k in range(n)}
    batches = _tf_dataset(ds, hp, True, weights).take(20)
    mixed_rows = 0
    for x, y, w in batches:
        x, y, w = x.numpy(), y.numpy(), w.numpy()
        np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-5)
        for row in range(n):
            # the target's share of each class is that class's weight in the blend
            share = y[row]
            np.testing.assert_allclose(x[row].ravel(), share @ (10.0 * np.arange(n)), rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(w[row], share @ (1.0 + np.arange(n)), rtol=1e-5)
            assert (share > 1e-6).sum() <= 2
            mixed_rows += int(0.05 < share.max() < 0.95)
    assert mixed_rows > 10  # alpha 0.4 blends many items visibly, not only by a hair
    one = load_hparams(None, batch_size=n, mixup_alpha=0.0)
    x0, y0 = next(iter(_tf_dataset(ds, one, True, None)))
    assert set(np.unique(y0.numpy())) == {0.0, 1.0}  # off: plain one-hot targets
    batch = (tf_constant(faces[..., None].astype(np.float32)), tf_constant(np.eye(n, dtype=np.float32)))
    for a, b in zip(mixup(batch, 0.4, (3, 5)), mixup(batch, 0.4, (3, 5)), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(mixup(batch, 0.4, (3, 5))[1].numpy(), mixup(batch, 0.4, (3, 6))[1].numpy())
    (tmp_path / "bad.toml").write_text("mixup_alpha = 2\n")
    with pytest.raises(ValueError, match=r"bad.toml: key 'mixup_alpha' is 2; use 0 \(off\) to 1"):
        load_hparams(tmp_path / "bad.toml")


def test_fit_with_mixup_trains_and_records_it(tmp_path):
    from trainer.fit import fit
    from trainer.hparams import load_hparams

    save_npz(synthetic_faces(70, 0), tmp_path / "train.npz")
    (tmp_path / "tiny.toml").write_text(TINY_CONFIG + "mixup_alpha = 0.2\n")
    fit([tmp_path / "train.npz"], tmp_path / "run", load_hparams(tmp_path / "tiny.toml"), verbose=0)
    assert json.loads((tmp_path / "run" / "hparams.json").read_text())["mixup_alpha"] == 0.2
    rows = (tmp_path / "run" / "epochs.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(np.isfinite(float(v)) for r in rows for v in r.split(","))


def tf_constant(a):
    import tensorflow as tf

    return tf.constant(a)


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


def test_resume_accepts_a_run_saved_before_a_key_existed(tmp_path):
    """Runs written by an older moodcam lack newer HParams keys; resuming one must not be refused
    as if its settings had changed. A missing key means what such a run was trained with
    (``BEFORE_THE_KEY``, where the default changed since), else today's default."""
    from trainer.fit import fit
    from trainer.hparams import BEFORE_THE_KEY, load_hparams, load_run_hparams

    assert BEFORE_THE_KEY == {"augment_resampling": "chained", "input_blur": 0.0, "mixup_alpha": 0.0}
    save_npz(synthetic_faces(70, 0), tmp_path / "train.npz")
    old_style = TINY_CONFIG.replace("epochs = 2", "epochs = 1").replace("input_blur = 0.6", 'input_blur = 0.0\naugment_resampling = "chained"')
    (tmp_path / "old.toml").write_text(old_style)
    fit([tmp_path / "train.npz"], tmp_path / "run", load_hparams(tmp_path / "old.toml"), verbose=0)
    saved = json.loads((tmp_path / "run" / "hparams.json").read_text())
    for key in ("augment_resampling", "input_blur", "distill_weight", "mixup_alpha"):  # as a run from before these keys
        del saved[key]
    (tmp_path / "run" / "hparams.json").write_text(json.dumps(saved))
    loaded = load_run_hparams(tmp_path / "run")
    assert (loaded.augment_resampling, loaded.input_blur, loaded.distill_weight, loaded.mixup_alpha) == ("chained", 0.0, 0.5, 0.0)
    fit([tmp_path / "train.npz"], tmp_path / "run", load_hparams(tmp_path / "old.toml", epochs=2), resume=True, verbose=0)
    assert len((tmp_path / "run" / "epochs.csv").read_text().strip().splitlines()) == 3   # header + 2 epochs
    # settings that are not what that run was trained with are refused, naming both keys (the
    # default blur, 0.6, is not the none such a run had)
    (tmp_path / "new.toml").write_text(TINY_CONFIG.replace("input_blur = 0.6\n", 'augment_resampling = "once"\n'))
    with pytest.raises(ValueError, match=r"hparams.json differs from the hyper-parameters given in \['augment_resampling', 'input_blur'\]"):
        fit([tmp_path / "train.npz"], tmp_path / "run", load_hparams(tmp_path / "new.toml", epochs=3), resume=True, verbose=0)


def test_warp_resamples_like_opencv():
    """``warp`` (the one resample of the training augmentation) is OpenCV's bilinear warpAffine
    with the inverse map and replicated borders, for a rotation + zoom + shift."""
    import cv2

    from trainer.model import warp

    rng = np.random.default_rng(0)
    images = cv2.GaussianBlur(rng.integers(0, 256, (2, 48, 48)).astype(np.float32), (0, 0), 1.5)
    angle, scale, tx, ty = np.radians(8.0), 1.07, 3.4, -2.2
    a = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([23.5, 23.5])
    offset = centre - a @ centre + [tx, ty]
    matrix = np.hstack([a, offset[:, None]]).astype(np.float32)
    warped = np.asarray(warp(images[..., None], np.tile(np.r_[matrix.ravel(), 0, 0], (2, 1))))[..., 0]
    expected = np.stack([cv2.warpAffine(im, matrix, (48, 48), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                        borderMode=cv2.BORDER_REPLICATE) for im in images])
    assert np.abs(expected - images).mean() > 5, "the map must move the pixels for the test to mean anything"
    np.testing.assert_allclose(warped, expected, atol=0.05)


def test_random_affine_draws_within_its_limits_and_keeps_faces_sharper():
    """Rotation, zoom and shift drawn within the configured limits, and, resampled once, the
    faces keep more fine detail (Laplacian variance) than after Keras' three chained layers,
    which is the point of the layer (see ``HParams.input_blur``)."""
    import cv2
    import keras
    import tensorflow as tf

    from trainer.model import RandomAffine, random_affine_transforms

    t = np.asarray(random_affine_transforms(tf.constant([4000, 48, 48, 1]), 10.0, 0.1, 0.1))
    angle = np.degrees(np.arctan2(t[:, 3], t[:, 0]))
    scale = np.hypot(t[:, 0], t[:, 3])
    centre = 23.5
    shift = t[:, [2, 5]] - (centre - (t[:, [0, 3]] + t[:, [1, 4]]) * centre)
    assert 9.0 < np.abs(angle).max() <= 10.0 + 1e-4
    assert 0.9 - 1e-6 <= scale.min() < 0.91 and 1.09 < scale.max() <= 1.1 + 1e-6
    assert 4.5 < np.abs(shift).max() <= 4.8 + 1e-4
    assert (t[:, 6:] == 0).all()

    faces = synthetic_faces(70, 0).faces[..., None].astype(np.float32)
    sharpness = lambda batch: np.mean([cv2.Laplacian(np.asarray(im)[..., 0], cv2.CV_32F).var() for im in batch])  # noqa: E731
    keras.utils.set_random_seed(0)
    once = RandomAffine(10.0, 0.1, 0.1)(faces, training=True)
    chained = keras.Sequential([keras.layers.RandomRotation(10 / 360, fill_mode="nearest"),
                                keras.layers.RandomZoom(0.1, fill_mode="nearest"),
                                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest")])(faces, training=True)
    assert sharpness(chained) < sharpness(once) < sharpness(faces)
    assert sharpness(once) > 1.5 * sharpness(chained)
    np.testing.assert_array_equal(np.asarray(RandomAffine(10.0, 0.1, 0.1)(faces, training=False)), faces)


@pytest.mark.parametrize("resampling, geometric", [("chained", ["RandomRotation", "RandomZoom", "RandomTranslation"]),
                                                    ("once", ["RandomAffine"])])
def test_run_with_the_default_augmentation_saves_and_resumes(tmp_path, resampling, geometric):
    """The augmentation block (custom layers included) survives the per-epoch checkpoint:
    a resumed run loads it and trains on, and the run exports to prediction without it."""
    from trainer.fit import fit
    from trainer.hparams import HParams
    from trainer.model import load_for_inference

    save_npz(synthetic_faces(140, 0), tmp_path / "train.npz")
    hp = HParams(widths=(8, 16), convs_per_block=(1, 1), epochs=1, batch_size=16, warmup_epochs=0,
                 augment_resampling=resampling)
    fit([tmp_path / "train.npz"], tmp_path / "run", hp, verbose=0)
    fit([tmp_path / "train.npz"], tmp_path / "run", dataclasses.replace(hp, epochs=2), resume=True, verbose=0)
    assert len((tmp_path / "run" / "epochs.csv").read_text().strip().splitlines()) == 3   # header + 2 epochs
    import keras

    from trainer.model import custom_objects

    trained = keras.models.load_model(tmp_path / "run" / "last.keras", custom_objects=custom_objects())
    augment = [layer.__class__.__name__ for layer in trained.get_layer("augment").layers]
    assert augment == ["RandomFlip", *geometric, "RandomBrightness", "RandomContrast", "RandomErase"]
    predictor = load_for_inference(tmp_path / "run" / "last.keras")
    assert "augment" not in [layer.name for layer in predictor.layers]
    probs = predictor.predict(synthetic_faces(14, 1).faces[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_ensemble_averages_its_members_and_exports_as_one_model(float_run, tmp_path, capsys):
    """``moodcam-train ensemble`` puts two real runs into one graph that returns the mean of their
    probabilities; evaluate and export take its folder like a fit run, and the int8 file is one
    model whose sidecar names the members."""
    from trainer.model import load_for_inference

    run, val, single_tflite = float_run.run, float_run.val, float_run.tflite
    root = val.parent
    other = tmp_path / "runs" / "tiny-seed7"
    assert train_cli(["fit", str(root / "train.npz"), "--val", str(val), "--out", str(other),
                      "--config", str(root / "tiny.toml"), "--seed", "7"]) == 0
    ensemble = tmp_path / "runs" / "pair"
    assert train_cli(["ensemble", str(run), str(other), "--out", str(ensemble), "--checkpoint", "best.keras"]) == 0

    faces = np.load(val)["faces"]
    x = faces[..., None].astype(np.float32)
    members = [load_for_inference(r / "best.keras").predict(x, verbose=0) for r in (run, other)]
    assert np.abs(members[0] - members[1]).max() > 1e-3, "two seeds must differ for the mean to be tested"
    combined = load_for_inference(ensemble / "ensemble.keras").predict(x, verbose=0)  # with the runs' blur 0.6
    np.testing.assert_allclose(combined, (members[0] + members[1]) / 2, atol=1e-5)

    labels = np.load(val)["labels"]
    capsys.readouterr()
    assert train_cli(["evaluate", str(ensemble), str(val), "--json"]) == 0
    # the JSON rounds to 4 decimals, so half a step of that is the tolerance
    assert last_json_line(capsys.readouterr().out)["accuracy"] == pytest.approx(np.mean(combined.argmax(1) == labels), abs=5e-5)

    out = tmp_path / "models" / "pair"
    assert train_cli(["export", str(ensemble), "--out", str(out), "--samples", "100", "--max-drop", "100"]) == 0
    meta = load_sidecar(out.with_suffix(".tflite"))
    assert meta.extra["checkpoint"] == "ensemble.keras"
    assert [m["run"] for m in meta.extra["ensemble"]["members"]] == [str(run), str(other)]
    assert [m["seed"] for m in meta.extra["ensemble"]["members"]] == [1337, 7]
    assert meta.metrics["val_accuracy_float"] == pytest.approx(np.mean(combined.argmax(1) == labels), abs=1e-4)
    # twice the weights of one member, in one file
    assert meta.metrics["tflite_bytes"] > 1.5 * load_sidecar(single_tflite).metrics["tflite_bytes"] - 20_000
    capsys.readouterr()
    assert train_cli(["fit", str(root / "train.npz"), "--out", str(ensemble), "--resume"]) == 2
    assert "is an ensemble folder written by 'moodcam-train ensemble'; it cannot be trained" in capsys.readouterr().err


def test_ensemble_refuses_members_that_do_not_share_their_data(float_run, tmp_path, capsys):
    run = float_run.run
    stranger = tmp_path / "stranger"
    shutil.copytree(run, stranger)
    info = json.loads((stranger / "data.json").read_text())
    (stranger / "data.json").write_text(json.dumps(info | {"val_sources": ["elsewhere/val.npz"]}))
    capsys.readouterr()
    assert train_cli(["ensemble", str(run), str(stranger), "--out", str(tmp_path / "e"), "--checkpoint", "best.keras"]) == 2
    err = capsys.readouterr().err
    assert "stranger/data.json has val_sources ['elsewhere/val.npz']" in err and "must share" in err
    assert not (tmp_path / "e").exists()
    assert train_cli(["ensemble", str(run), "--out", str(tmp_path / "e")]) == 2
    assert "needs at least two runs; got 1" in capsys.readouterr().err
    assert train_cli(["ensemble", str(run), str(tmp_path / "nowhere"), "--out", str(tmp_path / "e")]) == 2
    assert "nowhere/hparams.json is missing" in capsys.readouterr().err
