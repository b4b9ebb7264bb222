"""import-fer2013: the original CSV and the image-folder form, each keeping its split."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainer.data.datasets import load_npz
from trainer.data.fer2013 import FerFormatError, read_csv, read_fer2013


def face(value: int) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (48, 48), dtype=np.uint8)


def write_csv(path, rows):
    lines = ["emotion,pixels,Usage"] + [f"{e},{' '.join(map(str, face(i).ravel()))},{u}" for i, (e, u) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_csv_keeps_the_split_and_the_pixels(tmp_path):
    path = tmp_path / "fer2013.csv"
    write_csv(path, [(3, "Training"), (0, "Training"), (6, "PublicTest"), (4, "PrivateTest"), (5, "Training")])
    splits = read_csv(path)
    assert sorted(splits) == ["test", "train", "val"]
    assert list(splits["train"].labels) == [3, 0, 5] and list(splits["val"].labels) == [6]
    assert np.array_equal(splits["train"].faces[1], face(1)) and np.array_equal(splits["test"].faces[0], face(3))
    assert list(splits["val"].sources) == ["fer2013.csv:4"]
    assert (splits["train"].boxes == -1).all()


@pytest.mark.parametrize("row, message", [
    ("9,{px},Training", "emotion 9 is out of range"),
    ("x,{px},Training", "emotion 'x' is not an integer"),
    ("1,1 2 3,Training", "expected 2304 pixel values"),
    ("1,{px},Holdout", "Usage 'Holdout' is not one of"),
])
def test_csv_errors_name_line_and_value(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    px = " ".join(["7"] * 2304)
    path.write_text("emotion,pixels,Usage\n" + f"3,{px},Training\n" + row.format(px=px) + "\n")
    with pytest.raises(FerFormatError, match=f"bad.csv:3: {message}"):
        read_csv(path)
    path.write_text("label,image\n1,2\n")
    with pytest.raises(FerFormatError, match="missing column"):
        read_csv(path)


def test_folders_and_cli_write_one_npz_per_split(tmp_path, capsys):
    from trainer.cli import main

    root = tmp_path / "fer"
    for split, label, n in (("train", "happy", 3), ("train", "sad", 2), ("val", "angry", 2), ("test", "neutral", 1)):
        (root / split / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(face(i + 10 * n)).save(root / split / label / f"{i}.png")
    splits = read_fer2013(root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 5, "val": 2, "test": 1}
    assert main(["import-fer2013", str(root), "--out", str(tmp_path / "data" / "fer2013.npz")]) == 2  # no data/
    (tmp_path / "data").mkdir()
    assert main(["import-fer2013", str(root), "--out", str(tmp_path / "data" / "fer2013.npz")]) == 0
    assert oct((tmp_path / "data" / "fer2013-val.npz").stat().st_mode & 0o777) == "0o600"   # faces
    assert main(["import-fer2013", str(root), "--out", str(tmp_path / "data" / "fer2013.npz")]) == 2  # exists
    assert main(["import-fer2013", str(root), "--out", str(tmp_path / "data" / "fer2013.npz"), "--force"]) == 0
    train = load_npz(tmp_path / "data" / "fer2013-train.npz")
    assert train.class_counts()["happy"] == 3 and train.class_counts()["sad"] == 2
    assert load_npz(tmp_path / "data" / "fer2013-val.npz").class_counts()["angry"] == 2
    assert np.array_equal(train.faces[0], np.asarray(Image.open(root / "train" / "happy" / "0.png")))
    capsys.readouterr()
    assert main(["import-fer2013", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz")]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("moodcam-train import-fer2013: error:") and "nothing" in out.err and out.out == ""
    (tmp_path / "empty").mkdir()
    with pytest.raises(FerFormatError, match="no split folders found"):
        read_fer2013(tmp_path / "empty")
