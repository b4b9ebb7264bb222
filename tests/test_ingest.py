"""ingest: real dlib on pictures built here from FER2013 faces, in every format a scrape leaves.

Faces come from the shared FER2013 val split (skipped without it, an error under CI=true),
upscaled and pasted into larger pictures; everything else (formats, EXIF rotation, junk) is
generated here.
"""
from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from edge.capture.pictures import NotAPicture, decode_picture
from edge.contracts.crop import CropParams, crop_face, to_gray
from edge.contracts.labels import LABEL_INDEX
from edge.vision.stills import PictureDetectParams, find_picture_faces
from tests.shared_data import shared_data
from trainer.data.datasets import load_npz, stratified_split
from trainer.data.ingest import IngestOptions, find_pictures, ingest, parse_label_map, write_outputs


@pytest.fixture(scope="module")
def faces():
    """Ten FER2013 faces that dlib finds at 4x in a plain canvas, as (192, 192) uint8."""
    root = shared_data("fer2013", "val")
    found = []
    for path in sorted(root.glob("happy/*.jpg"))[:120]:
        big = Image.open(path).convert("L").resize((192, 192), Image.Resampling.BICUBIC)
        if len(find_picture_faces(to_gray(np.asarray(canvas(big))), PictureDetectParams(upsample=(1,), mirror=False, angles=()))) == 1:
            found.append(big)
        if len(found) == 10:
            return found
    pytest.fail("fewer than 10 FER2013 faces found by dlib")


def canvas(face: Image.Image, size=(360, 300), at=(80, 50), second: Image.Image | None = None) -> Image.Image:
    """A smooth-background RGB picture with the face (and optionally a second one) pasted in."""
    rng = np.random.default_rng(0)
    bg = Image.fromarray(rng.integers(90, 170, (4, 4, 3), dtype=np.uint8), "RGB").resize(size, Image.Resampling.BICUBIC)
    bg.paste(face.convert("RGB"), at)
    if second is not None:
        bg.paste(second.convert("RGB"), (at[0] + 400, at[1]))
    return bg


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def save(im: Image.Image, path, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    write(path, buf.getvalue())


@pytest.fixture(scope="module")
def tree(tmp_path_factory, faces):
    root = tmp_path_factory.mktemp("pictures")
    f = faces
    save(canvas(f[0]), root / "Angry+Human+Faces" / "plain.jpg", "JPEG", quality=92)
    # Stored sideways with EXIF orientation 6 ("rotate 90 clockwise to show"): found only if honoured.
    exif = Image.Exif()
    exif[0x0112] = 6
    save(canvas(f[1]).transpose(Image.Transpose.ROTATE_90), root / "Angry+Human+Faces" / "sideways.jpg", "JPEG", exif=exif)
    rgba = canvas(f[2]).convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[:, :30] = 0  # a transparent strip: composited over white
    rgba.putalpha(Image.fromarray(alpha))
    save(rgba, root / "Happy+Human+Faces" / "alpha.png", "PNG")
    frames = [canvas(f[3]).convert("P", palette=Image.Palette.ADAPTIVE), Image.new("P", (360, 300))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    write(root / "Happy+Human+Faces" / "animated.gif", buf.getvalue())
    save(canvas(f[4]), root / "Sad+Human+Faces" / "bitmap.bmp", "BMP")
    save(canvas(f[5]).convert("CMYK"), root / "Sad+Human+Faces" / "cmyk.jpg", "JPEG")
    save(canvas(f[6], at=(20, 20)).convert("L"), root / "Fearful+Human+Faces" / "gray.webp", "WEBP", quality=90)
    save(canvas(f[7], size=(700, 300), second=f[8]), root / "Surprised+Human+Faces" / "two.png", "PNG")
    # The very same picture under a second query: its face is a near duplicate across the set.
    write(root / "Disgusted+Human+Faces" / "again.jpg", (root / "Angry+Human+Faces" / "plain.jpg").read_bytes())
    # Junk a scraper leaves behind.
    rng = np.random.default_rng(1)
    save(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((300, 300)),
         root / "Neutral+Human+Faces" / "landscape.png", "PNG")
    write(root / "Neutral+Human+Faces" / "page.jpg", b"<!DOCTYPE html><html><body>403</body></html>")
    write(root / "Neutral+Human+Faces" / "ActiOn_325.com", b"")
    write(root / "Neutral+Human+Faces" / "cut.jpg", (root / "Angry+Human+Faces" / "plain.jpg").read_bytes()[:3000])
    save(canvas(f[9]), root / "Misc pictures" / "unlabelled.jpg", "JPEG")
    return root


def test_decode_every_format_upright(tree):
    upright = to_gray(decode_picture(tree / "Angry+Human+Faces" / "sideways.jpg"))
    assert upright.shape == (300, 360)  # EXIF orientation applied
    alpha = decode_picture(tree / "Happy+Human+Faces" / "alpha.png")
    assert alpha.shape == (300, 360, 3) and (alpha[:, :30] == 255).all()  # transparent -> white
    for name in ("Happy+Human+Faces/animated.gif", "Sad+Human+Faces/bitmap.bmp", "Sad+Human+Faces/cmyk.jpg",
                 "Fearful+Human+Faces/gray.webp"):
        arr = decode_picture(tree / name)
        assert arr.dtype == np.uint8 and arr.shape == (300, 360, 3), name
    with pytest.raises(NotAPicture, match="not a picture: an HTML/XML page"):
        decode_picture(tree / "Neutral+Human+Faces" / "page.jpg")
    with pytest.raises(NotAPicture, match="not a picture: an empty file"):
        decode_picture(tree / "Neutral+Human+Faces" / "ActiOn_325.com")
    with pytest.raises(NotAPicture, match="corrupt picture"):
        decode_picture(tree / "Neutral+Human+Faces" / "cut.jpg")


def test_mpo_first_frame(tmp_path, faces):
    path = tmp_path / "camera.mpo"
    canvas(faces[0]).save(path, "MPO", save_all=True, append_images=[canvas(faces[1])])
    with Image.open(path) as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert np.array_equal(decode_picture(path), np.asarray(Image.open(path).convert("RGB")))


def test_ingest_accounts_for_every_picture(tree, tmp_path):
    options = IngestOptions(workers=2)
    report = ingest(tree, options, parse_label_map(None), progress=False)
    paths = write_outputs(report, tmp_path / "seed.npz", options, root=tree)
    files = {str(p) for p in tree.rglob("*") if p.is_file()}
    rejects = {f: reason for f, _, reason in report.rejects}
    kept_sources = set(report.dataset.sources)
    assert kept_sources | set(rejects) == files  # every picture accounted for

    def r(name):
        return rejects.get(str(tree / name), "")

    assert r("Neutral+Human+Faces/landscape.png") == "no face found"
    assert r("Neutral+Human+Faces/page.jpg").startswith("not a picture: an HTML/XML page")
    assert r("Neutral+Human+Faces/ActiOn_325.com").startswith("not a picture: an empty file")
    assert r("Neutral+Human+Faces/cut.jpg").startswith("corrupt picture")
    assert r("Misc pictures/unlabelled.jpg").startswith("no label")
    assert r("Disgusted+Human+Faces/again.jpg").startswith("near-duplicate face")
    assert str(tree / "Angry+Human+Faces/plain.jpg") in r("Disgusted+Human+Faces/again.jpg")
    # Every face picture gave its face, in every format, the sideways one included.
    for name in ("Angry+Human+Faces/plain.jpg", "Angry+Human+Faces/sideways.jpg", "Happy+Human+Faces/alpha.png",
                 "Happy+Human+Faces/animated.gif", "Sad+Human+Faces/bitmap.bmp", "Sad+Human+Faces/cmyk.jpg",
                 "Fearful+Human+Faces/gray.webp", "Surprised+Human+Faces/two.png"):
        assert str(tree / name) in kept_sources, (name, r(name))
    assert len(report.dataset) == 8  # largest face only from two.png

    ds = load_npz(paths["npz"])
    assert ds.faces.dtype == np.uint8 and ds.faces.shape[1:] == (48, 48) and ds.boxes.dtype == np.int32
    assert ds.class_counts() == {"angry": 2, "disgust": 0, "fear": 1, "happy": 2, "sad": 2, "surprise": 1, "neutral": 0}
    # The crops are exactly the edge's crop of the decoded picture at the stored box.
    for face, source, box in zip(ds.faces, ds.sources, ds.boxes):
        expected = crop_face(to_gray(decode_picture(source)), tuple(box), CropParams())
        assert np.array_equal(face, expected), source
        x, y, w, h = box
        assert 100 <= w <= 260 and 100 <= h <= 260, (source, box)  # the 192 px face, not a fragment

    with open(paths["manifest"]) as f:
        rows = list(csv.DictReader(f))
    assert [row["source"] for row in rows] == list(ds.sources)
    with open(paths["rejects"]) as f:
        assert {row["file"] for row in csv.DictReader(f)} == set(rejects)
    summary = paths["summary"].read_text()
    assert "| angry | 2 |" in summary and "| **all** | 14 |" in summary


def test_all_faces_and_label_map(tree):
    options = IngestOptions(all_faces=True, workers=1)
    report = ingest(tree, options, parse_label_map(["Misc pictures=neutral"]), progress=False)
    two = [b for s, b in zip(report.dataset.sources, report.dataset.boxes) if s.endswith("two.png")]
    assert len(two) == 2 and abs(int(two[0][0]) - int(two[1][0])) > 300
    neutral = [s for s, lab in zip(report.dataset.sources, report.dataset.labels) if lab == LABEL_INDEX["neutral"]]
    assert neutral == [str(tree / "Misc pictures" / "unlabelled.jpg")]
    # Splits never separate faces of one picture.
    rest, held = stratified_split(report.dataset, 0.5, seed=0)
    assert not set(rest.sources) & set(held.sources)


def test_label_map_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown label 'joyful'"):
        parse_label_map(["Misc=joyful"])
    bad = tmp_path / "map.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_label_map([str(bad)])
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        find_pictures(tmp_path / "nope")


def test_cli_ingest(tree, tmp_path, capsys):
    from trainer.cli import main

    out = tmp_path / "data" / "seed.npz"
    assert main(["ingest", str(tree), "--out", str(out), "--quiet"]) == 2          # data/ is not created
    assert "does not exist; create it first" in capsys.readouterr().err and not out.parent.exists()
    out.parent.mkdir()
    assert main(["ingest", str(tree), "--out", str(out), "--workers", "1", "--quiet", "--margin", "0.12"]) == 0
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in out.parent.glob("seed.*[cz]"))   # faces: 0600
    text = capsys.readouterr().out
    assert "14 pictures, 8 faces, 6 rejects" in text
    before = out.read_bytes()
    assert main(["ingest", str(tree), "--out", str(out), "--quiet"]) == 2          # never clobbered ...
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    assert (tmp_path / "data" / "seed.rejects.csv").exists() and "0.12" in (tmp_path / "data" / "seed.summary.md").read_text()
    assert main(["ingest", str(tmp_path / "missing"), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"moodcam-train ingest: error: {tmp_path / 'missing'}")
    assert main(["ingest", str(tree), "--out", str(out), "--quiet", "--upsample", "5"]) == 2
    assert "moodcam-train ingest: error: --upsample [5]: levels must be 0..3" in capsys.readouterr().err


def test_cli_ingest_of_one_labelled_folder_and_of_unlabelled_pictures(tree, tmp_path, capsys):
    from trainer.cli import main
    from trainer.data.datasets import load_npz

    out = tmp_path / "fear.npz"
    # Pointed at the labelled folder itself: its name gives the label.
    assert main(["ingest", str(tree / "Fearful+Human+Faces"), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert set(load_npz(out).class_counts().items()) >= {("fear", 1)}
    capsys.readouterr()
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(tree / "Sad+Human+Faces" / "bitmap.bmp", plain / "x.bmp")
    assert main(["ingest", str(plain), "--out", str(tmp_path / "none.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names an emotion" in err and "--label-map" in err
    assert list(tmp_path.glob("none*")) == []                      # failed before writing anything
    # Labelled, but no face in it: the reports are written, never an empty .npz.
    blank = tmp_path / "Happy+Human+Faces"
    blank.mkdir()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank / "blank.png")
    assert main(["ingest", str(blank), "--out", str(tmp_path / "blank.npz"), "--quiet", "--workers", "1"]) == 1
    assert "no face kept" in capsys.readouterr().err
    assert not (tmp_path / "blank.npz").exists() and (tmp_path / "blank.rejects.csv").exists()


def test_the_manifest_names_the_detector_that_found_each_face(tmp_path):
    """A face only dlib's CNN detector finds (a head turned 60 degrees, rotations off) is marked
    ``mmod`` in the manifest, an upright one ``hog``: what a reader of the manifest needs to
    judge the faces the last, slower step added."""
    from skimage import data

    from edge.vision.stills import mmod_available
    from tests.shared_data import unavailable

    if not mmod_available():
        unavailable("face-recognition-models (dlib's MMOD weights) is not installed")
    root = tmp_path / "pictures"
    upright = Image.fromarray(data.astronaut())
    for folder, picture in (("Happy+Human+Faces", upright),
                            ("Sad+Human+Faces", upright.rotate(60, resample=Image.Resampling.BILINEAR,
                                                                fillcolor=(128, 128, 128)))):
        (root / folder).mkdir(parents=True)
        picture.save(root / folder / "astronaut.png")
    options = IngestOptions(detect=PictureDetectParams(min_size=24, angles=(), mmod=True), workers=1)
    report = ingest(root, options, parse_label_map(None), progress=False)
    paths = write_outputs(report, tmp_path / "seed.npz", options, root=root)
    with open(paths["manifest"]) as f:
        rows = {row["label"]: row for row in csv.DictReader(f)}
    assert rows["happy"]["detector"] == "hog"
    assert rows["sad"]["detector"] == "mmod" and rows["sad"]["upsample"] == "0"
