"""split-pictures: a held-out part of a labelled picture tree, near copies never on both sides."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main as train_cli


def smooth_picture(seed: int, size: int = 160) -> Image.Image:
    """A smooth random pattern: distinct pHash per seed, stable under resizing and JPEG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


@pytest.fixture
def picture_tree(tmp_path):
    root = tmp_path / "pictures"
    for folder in ("Happy+Human+Faces", "Sad+Human+Faces"):
        (root / folder).mkdir(parents=True)
    pairs = []
    for i in range(40):
        folder = "Happy+Human+Faces" if i % 2 else "Sad+Human+Faces"
        smooth_picture(i).save(root / folder / f"p{i}.png")
    for i in range(0, 40, 4):  # near copies: resized and recompressed, some in the other class folder
        folder = "Happy+Human+Faces" if i % 8 else "Sad+Human+Faces"
        copy = f"{folder}/copy_of_p{i}.jpg"
        smooth_picture(i).resize((120, 120)).save(root / copy, quality=70)
        pairs.append((f"{'Happy+Human+Faces' if i % 2 else 'Sad+Human+Faces'}/p{i}.png", copy))
    (root / "Sad+Human+Faces" / "error.jpg").write_text("<html>404</html>")
    return root, pairs


def read_listing(path):
    with open(path) as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def test_near_copies_share_a_side_and_every_file_lands_once(picture_tree, tmp_path, capsys):
    root, pairs = picture_tree
    out = tmp_path / "split"
    assert train_cli(["split-pictures", str(root), "--out", str(out)]) == 0
    assert "51 pictures in 41 near-duplicate groups (1 unreadable)" in capsys.readouterr().out
    rows = read_listing(out / "split.csv")
    assert len(rows) == 51
    for original, copy in pairs:
        assert rows[original]["side"] == rows[copy]["side"]
        assert rows[original]["group"] == rows[copy]["group"]
    for rel, row in rows.items():
        assert (out / row["side"] / rel).is_file()
        other = "train" if row["side"] == "heldout" else "heldout"
        assert not (out / other / rel).exists()
    heldout = sum(row["side"] == "heldout" for row in rows.values())
    assert 10 <= heldout <= 41  # about half of 41 groups; the point is that both sides get some

    # deterministic: the same tree splits the same way again
    assert train_cli(["split-pictures", str(root), "--out", str(tmp_path / "again")]) == 0
    assert {k: v["side"] for k, v in read_listing(tmp_path / "again" / "split.csv").items()} == \
        {k: v["side"] for k, v in rows.items()}

    # --copy: real files, readable by their owner only (pictures of faces)
    assert train_cli(["split-pictures", str(root), "--out", str(tmp_path / "copied"), "--copy"]) == 0
    copied = [p for p in (tmp_path / "copied").rglob("*.*") if p.name != "split.csv"]
    assert copied and all(not p.is_symlink() and p.stat().st_mode & 0o777 == 0o600 for p in copied)

    # the held-out tree is what evaluate reads: emotion folders of pictures
    from trainer.evaluate import labelled_pictures

    assert len(labelled_pictures(out / "heldout")) == heldout


def test_split_refuses_bad_input(picture_tree, tmp_path, capsys):
    root, _ = picture_tree
    assert train_cli(["split-pictures", str(root), "--out", str(tmp_path / "s"), "--heldout", "1.5"]) == 2
    assert "moodcam-train split-pictures: error: --heldout is 1.5; give a fraction between 0 and 1" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("older split")
    assert train_cli(["split-pictures", str(root), "--out", str(tmp_path / "full")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert train_cli(["split-pictures", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s2")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_salted_split_of_the_training_half_holds_out_part_of_it(picture_tree, tmp_path, capsys):
    """A validation part cut from an earlier split's train/ (what a fine-tune needs to fit its
    temperature on faces it never trained on): unsalted, every group hashes to the side it was on
    before, so nothing would be held out; with --salt the buckets are drawn afresh, near copies
    still share a side, and the first split is unchanged."""
    root, pairs = picture_tree
    first = tmp_path / "split"
    assert train_cli(["split-pictures", str(root), "--out", str(first)]) == 0
    train_files = {k for k, v in read_listing(first / "split.csv").items() if v["side"] == "train"}

    assert train_cli(["split-pictures", str(first / "train"), "--out", str(tmp_path / "plain")]) == 0
    assert {v["side"] for v in read_listing(tmp_path / "plain" / "split.csv").values()} == {"train"}

    nested = tmp_path / "nested"
    assert train_cli(["split-pictures", str(first / "train"), "--out", str(nested), "--salt", "val"]) == 0
    rows = read_listing(nested / "split.csv")
    assert set(rows) == train_files
    assert {v["side"] for v in rows.values()} == {"train", "heldout"}
    for original, copy in pairs:
        if original in rows:
            assert rows[original]["side"] == rows[copy]["side"]
    capsys.readouterr()

    # the salt changes nothing without being asked for: the default split is the one of every earlier run
    assert train_cli(["split-pictures", str(root), "--out", str(tmp_path / "again"), "--salt", ""]) == 0
    assert {k: v["side"] for k, v in read_listing(tmp_path / "again" / "split.csv").items()} == \
        {k: v["side"] for k, v in read_listing(first / "split.csv").items()}
