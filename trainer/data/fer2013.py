"""Read FER2013 into face data sets, one per split, keeping the original split.

FER2013 comes in two forms:
- the original CSV ``fer2013.csv`` with columns ``emotion,pixels,Usage``: emotion 0..6 in
  :data:`edge.contracts.labels.LABELS` order, pixels 2,304 space-separated gray values (48x48), Usage
  ``Training`` / ``PublicTest`` / ``PrivateTest``;
- image folders ``<split>/<label>/*.jpg|png`` (``train/``, ``val/``, ``test/``, or the Usage names).

Splits are named ``train`` (Training), ``val`` (PublicTest) and ``test`` (PrivateTest): the shared
data's ``fer2013/val`` is FER2013's PublicTest. :func:`write_splits` writes one ``.npz`` per split,
``fer2013.npz`` -> ``fer2013-train.npz``, ``fer2013-val.npz``, ``fer2013-test.npz``, so a split can
never leak into another by accident and ``fit --val fer2013-val.npz`` reads as it means.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge.contracts.labels import LABELS
from trainer.data.datasets import FaceDataset, load_face_folder, save_npz

USAGE_TO_SPLIT = {"training": "train", "publictest": "val", "privatetest": "test"}
# Folder names accepted for each split in the image-folder form.
FOLDER_TO_SPLIT = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "publictest": "val",
    "test": "test", "privatetest": "test",
}
SIDE = 48


class FerFormatError(ValueError):
    pass


def read_csv(path: Path) -> dict[str, FaceDataset]:
    """The original ``emotion,pixels,Usage`` CSV -> {split: FaceDataset}."""
    path = Path(path)
    faces: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    sources: dict[str, list[str]] = {}
    try:
        return _read_csv(path, faces, labels, sources)
    except (UnicodeDecodeError, csv.Error):
        raise FerFormatError(f"{path}: not a text CSV file; give fer2013.csv or the folder holding train/ and val/") from None


def _read_csv(path: Path, faces, labels, sources) -> dict[str, FaceDataset]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = {"emotion", "pixels"} - set(header)
        if missing:
            raise FerFormatError(f"{path}: missing column(s) {sorted(missing)}; expected a header 'emotion,pixels,Usage' "
                                 f"(got {','.join(header) or 'nothing'})")
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k}
            try:
                label = int(row["emotion"])
            except (TypeError, ValueError):
                raise FerFormatError(f"{path}:{line}: emotion {row['emotion']!r} is not an integer 0..6") from None
            if not 0 <= label < len(LABELS):
                raise FerFormatError(f"{path}:{line}: emotion {label} is out of range 0..{len(LABELS) - 1}")
            try:
                pixels = np.array((row["pixels"] or "").split(), dtype=np.int64)
            except ValueError:
                raise FerFormatError(f"{path}:{line}: pixels must be space-separated integers") from None
            if pixels.size != SIDE * SIDE or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
                raise FerFormatError(f"{path}:{line}: expected {SIDE * SIDE} pixel values 0..255, got {pixels.size}")
            usage = (row.get("Usage") or "Training").strip()
            split = USAGE_TO_SPLIT.get(usage.lower())
            if split is None:
                raise FerFormatError(f"{path}:{line}: Usage {usage!r} is not one of Training, PublicTest, PrivateTest")
            faces.setdefault(split, []).append(pixels.astype(np.uint8).reshape(SIDE, SIDE))
            labels.setdefault(split, []).append(label)
            sources.setdefault(split, []).append(f"{path.name}:{line}")
    if not faces:
        raise FerFormatError(f"{path}: no rows")
    return {
        split: FaceDataset(np.stack(faces[split]), np.array(labels[split], np.int64), np.array(sources[split]),
                           np.full((len(faces[split]), 4), -1, np.int32))
        for split in faces
    }


def read_folders(root: Path) -> dict[str, FaceDataset]:
    """Image folders ``root/<split>/<label>/*`` -> {split: FaceDataset}."""
    root = Path(root)
    splits = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        split = FOLDER_TO_SPLIT.get(folder.name.lower())
        if split is None:
            continue
        if split in splits:
            raise FerFormatError(f"{root}: two folders for the {split} split ({folder.name} and another); keep one")
        splits[split] = load_face_folder(folder, SIDE)
    if not splits:
        names = ", ".join(sorted({k for k in FOLDER_TO_SPLIT}))
        raise FerFormatError(f"{root}: no split folders found; expected sub-folders named one of {names}, "
                             f"each holding <label>/*.jpg")
    return splits


def read_fer2013(path: Path) -> dict[str, FaceDataset]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give fer2013.csv or the folder holding train/ and val/")
    if path.is_dir():
        return read_folders(path)
    return read_csv(path)


def split_paths(out: Path, splits) -> dict[str, Path]:
    out = Path(out)
    stem = out.name[: -len(".npz")] if out.name.endswith(".npz") else out.name
    return {split: out.with_name(f"{stem}-{split}.npz") for split in splits}


def write_splits(datasets: dict[str, FaceDataset], out: Path) -> dict[str, Path]:
    paths = split_paths(out, datasets)
    for split, ds in datasets.items():
        save_npz(ds, paths[split])
    return paths
