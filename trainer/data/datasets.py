"""Face data sets as plain arrays: load, save (.npz, no pickle), mix and split.

A data set is uint8 faces (N, S, S), int labels (N,) in :data:`edge.contracts.labels.LABELS` order,
the source picture of each face (N,) and its box in that picture (N, 4; -1 when pre-cropped).
On disk it is an ``.npz`` with exactly those arrays, or a folder tree ``<label>/*.png|jpg`` of
pre-cropped faces (FER2013's image-folder form, and what ``moodcam dataset`` writes).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edge.argpaths import private_file
from edge.contracts.labels import LABEL_INDEX, LABELS, label_from_name

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def one_hot(labels: np.ndarray, num_classes: int = len(LABELS)) -> np.ndarray:
    """Float32 targets (N, num_classes) for integer labels."""
    return np.eye(num_classes, dtype=np.float32)[labels]


@dataclass(frozen=True)
class FaceDataset:
    faces: np.ndarray    # uint8 (N, S, S)
    labels: np.ndarray   # int64 (N,)
    sources: np.ndarray  # str (N,): the picture each face came from
    boxes: np.ndarray    # int32 (N, 4): x, y, w, h in the source picture; -1 if pre-cropped

    def __post_init__(self):
        n = len(self.faces)
        if not (len(self.labels) == len(self.sources) == len(self.boxes) == n):
            raise ValueError("faces, labels, sources and boxes must have the same length")

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def size(self) -> int:
        return int(self.faces.shape[1]) if len(self) else 0

    def subset(self, index) -> "FaceDataset":
        return FaceDataset(self.faces[index], self.labels[index], self.sources[index], self.boxes[index])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(LABELS))
        return {name: int(c) for name, c in zip(LABELS, counts)}


def empty(size: int = 48) -> FaceDataset:
    return FaceDataset(np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64), np.zeros(0, str), np.zeros((0, 4), np.int32))


def concat(parts: list[FaceDataset]) -> FaceDataset:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    sizes = {p.size for p in parts}
    if len(sizes) > 1:
        raise ValueError(f"data sets have different face sizes {sorted(sizes)}; re-ingest them at one size")
    return FaceDataset(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("faces", "labels", "sources", "boxes")))


def save_npz(ds: FaceDataset, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    with private_file(tmp) as f:  # faces: readable by their owner only, as the store keeps its crops
        np.savez_compressed(f, faces=ds.faces, labels=ds.labels, sources=ds.sources.astype(str), boxes=ds.boxes)
    tmp.replace(path)


def load_npz(path: Path) -> FaceDataset:
    try:
        return _load_npz(path)
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path}: not a readable .npz data set ({exc}); give an .npz written by ingest or "
                         "import-fer2013, or a <label>/ folder of faces") from None
    except ValueError as exc:   # numpy's refusal of pickled (object) arrays, or a non-.npz file
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not an .npz data set ({exc})") from None


def _load_npz(path: Path) -> FaceDataset:
    with np.load(path, allow_pickle=False) as z:
        missing = {"faces", "labels"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing array(s) {sorted(missing)}; expected faces, labels, sources, boxes")
        n = len(z["faces"])
        sources = z["sources"] if "sources" in z.files else np.array([f"{path}#{i}" for i in range(n)])
        boxes = z["boxes"] if "boxes" in z.files else np.full((n, 4), -1, np.int32)
        return FaceDataset(z["faces"].astype(np.uint8), z["labels"].astype(np.int64), sources.astype(str), boxes.astype(np.int32))


def load_face_folder(root: Path, size: int = 48) -> FaceDataset:
    """Pre-cropped faces in ``root/<label>/*``; each is made gray and resized to ``size``."""
    root = Path(root)
    faces, labels, sources = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder.name if folder.name in LABEL_INDEX else label_from_name(folder.name)
        if label is None:
            raise ValueError(f"{folder}: folder name names no emotion; expected one of {', '.join(LABELS)}")
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(file) as im:
                im = im.convert("L")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                faces.append(np.asarray(im, dtype=np.uint8))
            labels.append(LABEL_INDEX[label])
            sources.append(str(file))
    if not faces:
        raise ValueError(f"{root}: no face pictures found in <label>/ sub-folders")
    return FaceDataset(np.stack(faces), np.array(labels, np.int64), np.array(sources), np.full((len(faces), 4), -1, np.int32))


def load_dataset(path: Path, size: int = 48) -> FaceDataset:
    """An ``.npz`` data set or a ``<label>/`` folder tree of face pictures."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data set {path} does not exist")
    if path.is_file():
        return load_npz(path)
    return load_face_folder(path, size)


def stratified_split(ds: FaceDataset, fraction: float, seed: int) -> tuple[FaceDataset, FaceDataset]:
    """(rest, held_out): ``fraction`` of each class held out, grouped by source picture.

    Faces from one picture never straddle the split, so near-identical crops can't leak.
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(ds), bool)
    for label in range(len(LABELS)):
        idx = np.flatnonzero(ds.labels == label)
        groups = np.unique(ds.sources[idx])
        rng.shuffle(groups)
        take = set(groups[: int(round(len(groups) * fraction))])
        held[idx] = np.isin(ds.sources[idx], list(take))
    return ds.subset(~held), ds.subset(held)
