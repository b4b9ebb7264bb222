"""moodcam dataset: reviewed faces out as <label>/<id>.png + manifest, a data set fit trains on."""
from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from edge.contracts.labels import LABEL_INDEX, LABELS
from edge.review.dataset import MANIFEST, open_source, write_dataset
from tests.review_support import fill_store


@pytest.fixture()
def reviewed_state(tmp_path):
    """28 faces: 20 reviewed (some relabeled, two not faces), 8 left unreviewed."""
    from edge.store.database import Store

    state = tmp_path / "state"
    ids = fill_store(state, 28)
    verdicts = {}
    with Store(state) as store:
        for face_id in ids[:20]:
            if face_id in (3, 9):
                store.set_review(face_id, label=None, not_face=True)
                verdicts[face_id] = None
            else:
                label = LABELS[(face_id * 3) % len(LABELS)]   # a reviewer who disagrees often
                store.set_review(face_id, label=label)
                verdicts[face_id] = label
    return state, verdicts


def test_export_layout_manifest_and_modes(reviewed_state, tmp_path):
    state, verdicts = reviewed_state
    out = tmp_path / "reviewed"
    source = open_source(state)
    try:
        manifest = write_dataset(source, out)
    finally:
        source.close()
    faces = {i: l for i, l in verdicts.items() if l}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == sorted(f"{l}/{i}.png" for i, l in faces.items())
    assert manifest["count"] == len(faces) == 18 and manifest["skipped"]["not_face"] == 2
    on_disk = json.loads((out / MANIFEST).read_text())
    assert on_disk["per_class"] == {l: sum(1 for v in faces.values() if v == l) for l in LABELS}
    row = next(r for r in on_disk["items"] if r["id"] == 1)
    assert row["label"] == faces[1] and row["predicted"] == LABELS[0] and 0 < row["confidence"] <= 1
    # Faces are private: 0600 files, 0700 folders.
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for p in out.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    # The crop went out pixel for pixel.
    from PIL import Image

    from edge.store.database import Store

    with Store(state, readonly=True) as store, Image.open(store.crop_path(1)) as a, Image.open(out / f"{faces[1]}/1.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # A second export refuses to overwrite unless asked; an unrelated folder is never replaced.
    with pytest.raises(FileExistsError, match="--force"):
        write_dataset(open_source(state), out)
    assert write_dataset(open_source(state), out, force=True)["count"] == 18
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not an earlier data set"):
        write_dataset(open_source(state), stranger, force=True)
    assert (stranger / "holiday.jpg").exists()


@pytest.mark.slow  # a Keras fit
def test_exported_set_trains_one_epoch(reviewed_state, tmp_path):
    from trainer.data.datasets import load_dataset
    from trainer.fit import fit
    from trainer.hparams import HParams

    state, verdicts = reviewed_state
    out = tmp_path / "reviewed"
    write_dataset(open_source(state), out)
    data = load_dataset(out)                        # what `moodcam-train fit OUT` reads
    assert len(data) == 18 and data.size == 48
    expected = sorted(LABEL_INDEX[l] for l in verdicts.values() if l)
    assert sorted(data.labels.tolist()) == expected
    hp = HParams(widths=(8, 16), convs_per_block=(1, 1), epochs=1, batch_size=8, warmup_epochs=0)
    best = fit([out], tmp_path / "run", hp, val_data=[out], verbose=0)
    assert best.exists()
    epochs = (tmp_path / "run" / "epochs.csv").read_text().strip().splitlines()
    assert len(epochs) == 2                          # header + one epoch
    summary = json.loads((tmp_path / "run" / "data.json").read_text())
    assert summary["train_count"] == 18


def test_cli_dataset(reviewed_state, tmp_path, capsys):
    from edge.cli import main

    state, _ = reviewed_state
    out = tmp_path / "cli-out"
    assert main(["dataset", "--state", str(state), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 18 faces" in printed and "moodcam-train fit" in printed
    assert main(["dataset", "--state", str(state), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moodcam dataset: error: ") and "--force" in err and err.count("\n") == 1
    assert main(["dataset", "--state", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["dataset", "--state", str(state), "--folder", str(state), "--out", str(out)]) == 2
    assert "not both" in capsys.readouterr().err


def test_old_command_name_and_positional_state_still_work(reviewed_state, tmp_path, capsys):
    from edge.cli import main

    state, _ = reviewed_state
    assert main(["export-reviewed", str(state), "--out", str(tmp_path / "old")]) == 0
    captured = capsys.readouterr()
    assert "wrote 18 faces" in captured.out
    assert "moodcam: note: 'export-reviewed' is now 'dataset'" in captured.err
