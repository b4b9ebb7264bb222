"""Classification through the real int8 LiteRT path, model checks, and ``moodcam classify``."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.contracts.labels import LABELS
from edge.contracts.modelfile import ModelFileError, sha256_of, sidecar_path
from edge.vision.classify import Classifier

REPO = Path(__file__).resolve().parent.parent


def copy_model(model: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, where / "m.tflite")
    shutil.copy(sidecar_path(model), where / "m.json")
    return where / "m.tflite"


@pytest.fixture(scope="module")
def astronaut_picture(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("pics") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_probabilities_for_all_faces_in_one_go(tiny_model):
    clf = Classifier(tiny_model)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    preds = clf.classify(image, [(10, 10, 60, 60), (200, 100, 80, 80), (0, 0, 30, 30)])
    assert len(preds) == 3
    for p in preds:
        assert p.label in LABELS and len(p.probs) == len(LABELS)
        assert sum(p.probs) == pytest.approx(1.0, abs=1e-5)
        assert p.confidence == max(p.probs) and LABELS[int(np.argmax(p.probs))] == p.label
    assert clf.classify(image, []) == []


def test_batched_and_looped_inference_agree(tiny_model):
    crops = np.random.default_rng(2).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    loop = Classifier(tiny_model, batch="loop")
    resize = Classifier(tiny_model, batch="resize")
    a = loop.probs(crops)
    np.testing.assert_array_equal(a, resize.probs(crops))
    np.testing.assert_array_equal(a[:2], resize.probs(crops[:2]))    # batch size changes between frames
    np.testing.assert_array_equal(a[1:2], loop.probs(crops[1:2]))


def test_input_is_quantized_with_the_sidecar_parameters(tiny_model):
    clf = Classifier(tiny_model)
    q = clf.meta.input
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    expected = np.clip(np.round(pixels / q.scale + q.zero_point), -128, 127)
    np.testing.assert_array_equal(clf.quantize(pixels)[..., 0], expected)


def test_missing_model(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.tflite does not exist"):
        Classifier(tmp_path / "nope.tflite")


def test_missing_sidecar(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    sidecar_path(model).unlink()
    with pytest.raises(ModelFileError, match=r"m\.json is missing"):
        Classifier(model)


def test_truncated_model_is_refused_by_hash(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="does not match its sidecar: sha256"):
        Classifier(model)


def test_tampered_sidecar_labels_are_refused(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    meta = json.loads(sidecar_path(model).read_text())
    meta["labels"] = list(reversed(meta["labels"]))
    sidecar_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="key 'labels'"):
        Classifier(model)


def test_garbage_model_with_matching_hash_is_refused(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    model.write_bytes(b"TFL3" + bytes(1000))
    meta = json.loads(sidecar_path(model).read_text())
    meta["tflite_sha256"] = sha256_of(model)
    sidecar_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="not a usable TFLite model"):
        Classifier(model)


def test_quantization_mismatch_is_refused(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path)
    meta = json.loads(sidecar_path(model).read_text())
    meta["input"]["zero_point"] = 0
    sidecar_path(model).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="input quantization .* does not match the sidecar"):
        Classifier(model)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


def test_classify_json_lines_with_a_corrupt_picture_in_a_folder(tiny_model, astronaut_picture, tmp_path):
    folder = tmp_path / "pics"
    (folder / "deeper").mkdir(parents=True)
    shutil.copy(astronaut_picture, folder / "deeper" / "b_astronaut.png")
    (folder / "a_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (folder / "c_notes.txt").write_text("not a picture at all")
    blank = folder / "d_blank.png"
    Image.fromarray(np.full((100, 100), 200, np.uint8)).save(blank)
    out = run_cli("classify", "--json", "--model", tiny_model, folder)
    assert out.returncode == 1, out.stderr          # some files were unreadable; the run went on
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    # folders recurse, in path order; files in them that are not pictures are skipped with a note
    assert [Path(d["path"]).name for d in lines] == ["a_broken.jpg", "d_blank.png", "b_astronaut.png"]
    assert "note: skipped 1 file(s) in the folders that are not pictures (c_notes.txt)" in out.stderr
    by_name = {Path(d["path"]).name: d for d in lines}
    for bad in ("a_broken.jpg",):
        assert set(by_name[bad]) == {"path", "faces", "error"} and by_name[bad]["faces"] == []
        assert "not a readable picture" in by_name[bad]["error"]
    assert by_name["d_blank.png"] == {"path": str(blank), "faces": []}
    astro = by_name["b_astronaut.png"]
    assert set(astro) == {"path", "faces"} and len(astro["faces"]) == 1
    face = astro["faces"][0]
    assert set(face) == {"box", "label", "confidence", "probs", "top_label"}
    assert face["top_label"] == face["label"]                    # classifier.min_confidence is off
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert face["label"] in LABELS and list(face["probs"]) == list(LABELS)
    assert face["confidence"] == pytest.approx(max(face["probs"].values()), abs=1e-4)
    x, y, w, h = face["box"]
    assert 150 <= x + w / 2 <= 300 and 50 <= y + h / 2 <= 200    # the astronaut's face, not elsewhere


def test_classify_finds_a_tilted_head_with_the_still_cascade(tiny_model, tmp_path):
    """A head tilted 60 degrees: one upright dlib pass finds nothing (what classify ran before);
    classify's still-picture cascade turns the picture, finds it, and reports it where it is."""
    from skimage import data

    from edge.config import DetectorConfig
    from edge.vision.detect import Detector, gray_of
    from tests.test_edge_stills import tilted, turned_point

    one_pass = Detector(DetectorConfig(detect_width=0, upsample=1, min_face_px=20))
    (upright,) = one_pass.detect(gray_of(data.astronaut()))
    picture = tilted(data.astronaut(), 60)
    assert one_pass.detect(gray_of(picture)) == []
    path = tmp_path / "tilted.png"
    Image.fromarray(picture).save(path)
    out = run_cli("classify", "--json", "--model", tiny_model, path)
    assert out.returncode == 0, out.stderr
    (line,) = [json.loads(text) for text in out.stdout.splitlines()]
    assert set(line) == {"path", "faces"} and len(line["faces"]) == 1
    x, y, w, h = line["faces"][0]["box"]
    ux, uy, uw, uh = upright.box
    ex, ey = turned_point(ux + uw / 2, uy + uh / 2, 60, picture.shape)
    assert abs(x + w / 2 - ex) < 20 and abs(y + h / 2 - ey) < 20 and abs(w - uw) < 10


def test_classify_bad_model_exits_3(tmp_path, astronaut_picture):
    out = run_cli("classify", "--json", "--model", tmp_path / "missing.tflite", astronaut_picture)
    assert out.returncode == 3 and "missing.tflite does not exist" in out.stderr and out.stdout == ""


def test_flip_tta_averages_a_face_and_its_mirror(tiny_model):
    rng = np.random.default_rng(7)
    crops = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    plain = Classifier(tiny_model)
    tta = Classifier(tiny_model, tta=True)
    expected = (plain.probs(crops) + plain.probs(np.ascontiguousarray(crops[:, :, ::-1]))) / 2
    np.testing.assert_allclose(tta.probs(crops), expected, rtol=1e-6)
    # a face that is its own mirror image gets exactly the plain prediction
    symmetric = np.concatenate([crops[:, :, :24], crops[:, :, :24][:, :, ::-1]], axis=2)
    np.testing.assert_allclose(tta.probs(symmetric), plain.probs(symmetric), rtol=1e-6)
    assert tta.probs(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_zoomed_magnifies_about_the_centre():
    from edge.vision.classify import tta_views, zoomed

    square = np.zeros((1, 48, 48), np.uint8)
    square[0, 16:32, 16:32] = 255                       # 16 px wide, centred
    assert (zoomed(square, 1.0) == square).all()
    bright = lambda crops: int((crops[0] > 127).sum())  # noqa: E731
    assert abs(bright(zoomed(square, 1.5)) - 24 * 24) <= 2 * 24   # 16 px -> 24 px
    assert abs(bright(zoomed(square, 0.5)) - 8 * 8) <= 2 * 8      # 16 px -> 8 px
    centre = np.argwhere(zoomed(square, 1.25)[0] > 127).mean(axis=0)
    np.testing.assert_allclose(centre, (23.5, 23.5), atol=0.5)    # it stays where it was
    moved = np.argwhere(zoomed(square, 1.0, shift=(3.0, -2.0))[0] > 127).mean(axis=0)
    np.testing.assert_allclose(moved, (23.5 - 2.0, 23.5 + 3.0), atol=0.5)  # (row, col): +x moves right, -y up
    # farther away, the border pixels are repeated rather than black
    edge = np.full((1, 48, 48), 200, np.uint8)
    assert (zoomed(edge, 0.8) == 200).all()
    assert [len(tta_views(square, flip, zoom)) for flip, zoom in ((False, 0), (True, 0), (False, 0.1), (True, 0.1))] == [1, 2, 3, 6]


def test_zoom_tta_averages_the_six_views(tiny_model):
    from edge.vision.classify import zoomed

    rng = np.random.default_rng(8)
    crops = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    plain = Classifier(tiny_model)
    both = Classifier(tiny_model, tta=True, tta_zoom=0.15)
    views = [crops, zoomed(crops, 0.85), zoomed(crops, 1.15)]
    views += [np.ascontiguousarray(v[:, :, ::-1]) for v in views]
    expected = sum(plain.probs(v) for v in views) / 6
    np.testing.assert_allclose(both.probs(crops), expected, rtol=1e-5)
    assert not np.allclose(both.probs(crops), Classifier(tiny_model, tta=True).probs(crops), rtol=1e-3)


def test_zoom_across_frames_uses_one_zoom_a_frame_in_turn(tiny_model):
    """With zoom_across_frames, frame k classifies each face (and its mirror) at the k-th zoom
    scale in turn: the cost of flip TTA, and over three frames the same views as all six."""
    from edge.vision.classify import zoom_scales, zoomed

    rng = np.random.default_rng(9)
    crops = rng.integers(0, 256, (2, 48, 48), dtype=np.uint8)
    flip = Classifier(tiny_model, tta=True)
    spread = Classifier(tiny_model, tta=True, tta_zoom=0.15, zoom_across_frames=True)
    assert zoom_scales(0.15) == (1.0, 0.85, 1.15)
    per_frame = [spread.probs(crops, frame=k) for k in range(6)]
    np.testing.assert_allclose(per_frame[0], flip.probs(crops), rtol=1e-6)
    np.testing.assert_allclose(per_frame[1], flip.probs(zoomed(crops, 0.85)), rtol=1e-6)
    np.testing.assert_allclose(per_frame[2], flip.probs(zoomed(crops, 1.15)), rtol=1e-6)
    np.testing.assert_allclose(per_frame[3], per_frame[0], rtol=1e-6)
    all_six = Classifier(tiny_model, tta=True, tta_zoom=0.15).probs(crops)
    np.testing.assert_allclose(sum(per_frame[:3]) / 3, all_six, rtol=1e-5)
    np.testing.assert_allclose(spread.probs(crops), all_six, rtol=1e-6)   # no frame number: a still


def test_pipeline_classifies_one_view_a_frame_and_smooths_them(tiny_model, astronaut_picture):
    """In the daemon's pipeline a track's k-th classification is its k-th view (as framed,
    mirrored, zoomed out, mirrored, ...), one model call a face, and the track's smoothed
    prediction folds them together (tracker.ema_alpha)."""
    from edge.capture.sources import Frame
    from edge.config import DetectorConfig, PerformanceConfig, TrackerConfig
    from edge.vision.classify import one_view, view_specs
    from edge.vision.pipeline import Pipeline

    image = np.asarray(Image.open(astronaut_picture).convert("RGB"))
    classifier = Classifier(tiny_model, tta=True, tta_zoom=0.15)
    single = Classifier(tiny_model)
    inline = PerformanceConfig(detection="inline", classify_per_frame=0, views_across_frames=True)
    pipeline = Pipeline.build(classifier, DetectorConfig(detect_width=0, every_n_frames=1),
                              TrackerConfig(ema_alpha=0.5), performance=inline)
    results = [pipeline.process(Frame(k, 0.0, image)) for k in range(3)]
    faces = [r.faces[0] for r in results]
    assert len({f.track_id for f in faces}) == 1 and faces[0].new and not faces[1].new
    specs = view_specs(flip=True, zoom=0.15)
    assert specs[:3] == [(1.0, False), (1.0, True), (0.85, False)]
    for face, (scale, mirrored) in zip(faces, specs):
        crop = single.crops(image, [face.box])
        np.testing.assert_allclose(face.raw.probs, single.probs(one_view(crop, scale, mirrored))[0], atol=1e-6)
    raw = [np.array(f.raw.probs) for f in faces]
    expected = 0.5 * raw[2] + 0.5 * (0.5 * raw[1] + 0.5 * raw[0])
    np.testing.assert_allclose(faces[2].smoothed.probs, expected, atol=1e-6)


def test_pipeline_classifies_a_bounded_number_of_faces_a_frame(tiny_model):
    """With classify_per_frame = 1 and three faces, each frame classifies one face, new tracks
    first, then the one classified longest ago: every face keeps a smoothed label."""
    from edge.capture.sources import Frame
    from edge.config import DetectorConfig, PerformanceConfig
    from edge.vision.detect import Detection
    from edge.vision.pipeline import Pipeline

    class ThreeFaces:   # a detector stub at the hardware edge: the boxes are what is tested here
        config = DetectorConfig(every_n_frames=100)

        def detect(self, gray, **_):
            return [Detection((40 + 150 * i, 100, 90, 90), 1.0) for i in range(3)]

    from edge.vision.track import Tracker

    pipeline = Pipeline(ThreeFaces(), Tracker(), Classifier(tiny_model), 100,
                        performance=PerformanceConfig(detection="inline", classify_per_frame=1))
    image = np.full((480, 640, 3), 128, np.uint8)
    results = [pipeline.process(Frame(k, 0.0, image)) for k in range(7)]
    classified = [[f.track_id for f in r.faces if f.raw is not None] for r in results]
    assert classified[:4] == [[1], [2], [3], [1]]          # new tracks first, then round robin
    assert [len(r.faces) for r in results] == [1, 2, 3, 3, 3, 3, 3]   # a face shows once classified


def test_classify_averages_zoomed_views_of_a_still(tiny_model, astronaut_picture):
    """moodcam classify uses the six flip + zoom views by default; --tta-zoom 0 leaves two."""
    from edge.capture.sources import load_picture
    from edge.vision.stills import STILL_TTA_ZOOM

    def face_probs(*extra):
        out = run_cli("classify", "--json", "--model", tiny_model, *extra, astronaut_picture)
        assert out.returncode == 0, out.stderr
        face = json.loads(out.stdout)["faces"][0]
        return face["box"], np.array(list(face["probs"].values()))

    box, default = face_probs()
    same_box, flip_only = face_probs("--tta-zoom", "0")
    assert box == same_box
    image = load_picture(astronaut_picture)
    crops = Classifier(tiny_model).crops(image, [tuple(box)])
    np.testing.assert_allclose(default, Classifier(tiny_model, tta=True, tta_zoom=STILL_TTA_ZOOM).probs(crops)[0], atol=1e-4)
    np.testing.assert_allclose(flip_only, Classifier(tiny_model, tta=True).probs(crops)[0], atol=1e-4)
    assert run_cli("classify", "--tta-zoom", "0.5", astronaut_picture).returncode == 2


def test_classify_empty_folder_and_scrape_folder(tiny_model, astronaut_picture, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run_cli("classify", "--model", tiny_model, empty)
    assert out.returncode == 2 and out.stdout == "" and "no pictures in" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    out = run_cli("classify", "--model", tiny_model, tmp_path / "missing")
    assert out.returncode == 2 and "missing does not exist" in out.stderr
    scraped = tmp_path / "pictures" / "Happy+Human+Faces"          # as `moodcam-train scrape` writes it
    scraped.mkdir(parents=True)
    shutil.copy(astronaut_picture, scraped / "0a1b.png")
    (scraped / "manifest.jsonl").write_text('{"url": "http://example.com/a.png", "status": "ok"}\n')
    out = run_cli("classify", "--json", "--model", tiny_model, tmp_path / "pictures")
    assert out.returncode == 0, out.stderr
    assert [Path(json.loads(line)["path"]).name for line in out.stdout.splitlines()] == ["0a1b.png"]
    assert "skipped 1 file(s)" in out.stderr and "manifest.jsonl" in out.stderr


def test_tempered_keeps_the_label_and_spreads_or_sharpens():
    from edge.vision.classify import tempered

    probs = np.array([[0.7, 0.2, 0.1, 0, 0, 0, 0]], np.float32)
    assert tempered(probs, 1.0, 0.002) is probs
    soft, sharp = tempered(probs, 2.0, 0.002), tempered(probs, 0.5, 0.002)
    assert soft.argmax() == sharp.argmax() == 0
    assert soft.max() < 0.7 < sharp.max() and soft.sum() == pytest.approx(1) and sharp.sum() == pytest.approx(1)
    # dividing the logits by T: a ratio of two scores becomes its T-th root
    assert soft[0, 0] / soft[0, 1] == pytest.approx((0.7 / 0.2) ** 0.5, rel=1e-4)


def test_classifier_applies_the_sidecar_temperature(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path / "t")
    crops = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain = Classifier(model).probs(crops)
    sidecar = json.loads(sidecar_path(model).read_text())
    sidecar["calibration"] = {"temperature": 2.5, "fitted_on": "a test"}
    sidecar_path(model).write_text(json.dumps(sidecar))
    classifier = Classifier(model)
    assert classifier.meta.temperature == 2.5
    warm = classifier.probs(crops)
    assert (warm.argmax(1) == plain.argmax(1)).all() and (warm.max(1) <= plain.max(1) + 1e-6).all()
    from edge.vision.classify import tempered

    np.testing.assert_allclose(warm, tempered(plain, 2.5, classifier.meta.output.scale / 2), atol=1e-5)
    for bad in ({"temperature": 0}, {"temperature": "2"}, "hot"):
        sidecar["calibration"] = bad
        sidecar_path(model).write_text(json.dumps(sidecar))
        with pytest.raises(ModelFileError, match="'calibration' needs a 'temperature'"):
            Classifier(model)


def test_classify_prints_uncertain_below_min_confidence(tiny_model, astronaut_picture, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[classifier]\nmin_confidence = 0.99\n")    # the tiny model is never that sure
    out = run_cli("classify", "--json", "--no-mmod", "--model", tiny_model, "--config", config, astronaut_picture)
    assert out.returncode == 0, out.stderr
    (face,) = json.loads(out.stdout)["faces"]
    assert face["label"] == "uncertain" and face["top_label"] in LABELS
    assert face["top_label"] == max(face["probs"], key=face["probs"].get) and face["confidence"] < 0.99
    text = run_cli("classify", "--no-mmod", "--model", tiny_model, "--config", config, astronaut_picture)
    assert ": uncertain 0." in text.stdout
