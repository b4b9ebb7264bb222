"""Cut faces out of a folder tree of raw pictures into a face data set (.npz + reports).

    pictures/<...Angry...>/*  ->  seed.npz  (faces, labels, sources, boxes; see trainer.data.datasets)
                                seed.manifest.csv  one row per kept face
                                seed.rejects.csv   one row per picture (or face) not kept, with the reason
                                seed.summary.md    per-class table + the parameters used

Stages, one function each: :func:`find_pictures` (walk + label from the folder name),
:func:`process_picture` (decode, detect, crop with ``edge.contracts.crop.crop_face``: the edge's own
crop), :func:`drop_near_duplicates` (same face twice, e.g. one photo under two queries), then
:func:`write_outputs`. Every picture ends up in the manifest or in the rejects report.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edge.argpaths import private_file
from edge.capture.pictures import NotAPicture, decode_picture
from edge.contracts.crop import CropParams, crop_face, to_gray
from edge.contracts.labels import LABEL_INDEX, LABELS, label_from_name
from edge.vision.stills import PictureDetectParams, find_picture_faces
from trainer.data.datasets import FaceDataset, empty, save_npz

# Files that are certainly not pictures and not worth opening (the scraper's own manifest, notes).
SKIP_NAMES = {"manifest.jsonl", ".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class IngestOptions:
    crop: CropParams = CropParams()
    # The cascade `moodcam classify` uses, with a larger minimum face: a face the model learns
    # from must carry its expression, where classify may as well try a small one.
    detect: PictureDetectParams = PictureDetectParams(min_size=24)
    all_faces: bool = False        # keep every face of a picture, not only the largest
    dedup_distance: int = 4        # perceptual-hash bits within which two faces are the same face (-1: off)
    workers: int = 0               # processes; 0 = all cores


@dataclass(frozen=True)
class Picture:
    path: Path
    label: str | None  # None: no folder on its path names an emotion


@dataclass(frozen=True)
class FaceCrop:
    face: np.ndarray               # uint8 (S, S)
    box: tuple[int, int, int, int]
    score: float
    upsample: int
    angle: float
    detector: str = "hog"          # the cascade's detector that found it: "hog", or "mmod" (its last step)


@dataclass(frozen=True)
class PictureResult:
    path: str
    label: str | None
    faces: tuple[FaceCrop, ...] = ()
    detected: int = 0              # faces dlib found (before --all-faces / largest selection)
    reject: str | None = None      # reason when no face is kept
    size: tuple[int, int] = (0, 0)


@dataclass
class IngestReport:
    dataset: FaceDataset
    results: list[PictureResult]
    rejects: list[tuple[str, str | None, str]] = field(default_factory=list)  # file, label, reason
    kept: list[tuple[PictureResult, FaceCrop]] = field(default_factory=list)  # the manifest rows, data set order
    seconds: float = 0.0


# ---------------------------------------------------------------- walk + labels

def parse_label_map(items: list[str] | None) -> dict[str, str]:
    """``--label-map`` values: ``FOLDER=label`` pairs, or the path of a JSON object of such pairs."""
    mapping: dict[str, str] = {}
    for item in items or []:
        if "=" not in item and Path(item).is_file():
            try:
                data = json.loads(Path(item).read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"--label-map {item}: not valid JSON ({exc}); expected {{\"folder\": \"label\"}}") from None
            if not isinstance(data, dict):
                raise ValueError(f"--label-map {item}: expected a JSON object {{\"folder\": \"label\"}}")
            pairs = list(data.items())
        elif "=" in item:
            pairs = [tuple(item.split("=", 1))]
        else:
            raise ValueError(f"--label-map {item!r}: expected FOLDER=label or a JSON file")
        for folder, label in pairs:
            label = str(label).strip().lower()
            if label not in LABEL_INDEX:
                raise ValueError(f"--label-map {folder}={label}: unknown label {label!r}; expected one of {', '.join(LABELS)}")
            mapping[str(folder)] = label
    return mapping


def label_for(relative: Path, label_map: dict[str, str], root_label: str | None = None) -> str | None:
    """The label of a picture from its folders, innermost first: --label-map, then an emotion word;
    ``root_label`` (the label of the folder given itself) when none of them names one."""
    for folder in reversed(relative.parent.parts):
        if folder in label_map:
            return label_map[folder]
        label = label_from_name(folder)
        if label is not None:
            return label
    return root_label


def find_pictures(root: Path, label_map: dict[str, str] | None = None) -> list[Picture]:
    """Every file under ``root`` (sorted, hidden files skipped), each with its folder's label."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; expected a tree like pictures/<Angry Human Face>/*.jpg")
    label_map = label_map or {}
    # Pointed at one labelled folder itself (.../Fearful+Human+Faces): its name gives the label.
    name = root.resolve().name
    root_label = label_map.get(name) or label_from_name(name)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name in SKIP_NAMES:
                continue
            path = Path(dirpath) / name
            found.append(Picture(path, label_for(path.relative_to(root), label_map, root_label)))
    return found


# ---------------------------------------------------------------- one picture

def process_picture(picture: Picture, options: IngestOptions) -> PictureResult:
    """Decode, find faces, crop them with the edge's crop. Never raises for a bad file."""
    path = str(picture.path)
    if picture.label is None:
        return PictureResult(path, None, reject="no label: no folder on its path names an emotion (use --label-map)")
    try:
        rgb = decode_picture(picture.path)
    except NotAPicture as exc:
        return PictureResult(path, picture.label, reject=str(exc))
    except OSError as exc:  # unreadable file (permissions, I/O)
        return PictureResult(path, picture.label, reject=f"unreadable: {exc}")
    gray = to_gray(rgb)
    size = (gray.shape[1], gray.shape[0])
    detections = find_picture_faces(gray, options.detect)
    if not detections:
        return PictureResult(path, picture.label, reject="no face found", size=size)
    keep = detections if options.all_faces else detections[:1]
    # Crop from the gray picture: crop_face would convert to the same gray (to_gray) anyway.
    faces = tuple(FaceCrop(crop_face(gray, d.box, options.crop), d.box, d.score, d.upsample, d.angle, d.detector)
                  for d in keep)
    return PictureResult(path, picture.label, faces, detected=len(detections), size=size)


# ---------------------------------------------------------------- near duplicates

def face_hashes(faces: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes (imagehash.phash) of (N, S, S) faces as (N, 8) uint8."""
    import imagehash

    out = np.zeros((len(faces), 8), np.uint8)
    for i, face in enumerate(faces):
        bits = imagehash.phash(Image.fromarray(face)).hash.reshape(-1)
        out[i] = np.packbits(bits)
    return out


def drop_near_duplicates(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, twin index): a face within ``max_distance`` bits of an earlier kept face is dropped,
    and ``twin`` names that kept face (-1 for kept faces). ``max_distance < 0`` keeps everything."""
    n = len(hashes)
    keep = np.ones(n, bool)
    twin = np.full(n, -1)
    if max_distance < 0 or n < 2:
        return keep, twin
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)
    for i in range(1, n):
        # Compare with the kept faces before i only (the first of a group survives).
        prev = np.flatnonzero(keep[:i])
        if not len(prev):
            continue
        dist = popcount[np.bitwise_xor(hashes[prev], hashes[i])].sum(1)
        j = int(np.argmin(dist))
        if dist[j] <= max_distance:
            keep[i] = False
            twin[i] = prev[j]
    return keep, twin


# ---------------------------------------------------------------- the whole tree

def _init_worker():
    # Each worker builds its own detector on first use; keep numpy/BLAS single-threaded per worker.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _work(args):
    picture, options = args
    return process_picture(picture, options)


def ingest(root: Path, options: IngestOptions = IngestOptions(), label_map: dict[str, str] | None = None,
           progress: bool = True) -> IngestReport:
    """Run every stage over ``root``; the caller writes the outputs (:func:`write_outputs`)."""
    t0 = time.perf_counter()
    pictures = find_pictures(root, label_map)
    workers = options.workers or os.cpu_count() or 1
    tasks = [(p, options) for p in pictures]
    results: list[PictureResult] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="pic", desc="ingest", dynamic_ncols=True)
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        # spawn: no fork of a parent that may hold threads (tqdm, TensorFlow in the same process).
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap(_work, tasks, chunksize=4):
                results.append(result)
                if bar:
                    bar.update()
    else:
        for task in tasks:
            results.append(_work(task))
            if bar:
                bar.update()
    if bar:
        bar.close()
    report = assemble(results, options)
    report.seconds = time.perf_counter() - t0
    return report


def assemble(results: list[PictureResult], options: IngestOptions) -> IngestReport:
    """Pool the faces of all pictures, drop near duplicates, list every reject."""
    rejects = [(r.path, r.label, r.reject) for r in results if r.reject]
    rows = [(r, f) for r in results if not r.reject for f in r.faces]
    if not rows:
        return IngestReport(empty(options.crop.size), results, rejects)
    faces = np.stack([f.face for _, f in rows])
    keep, twin = drop_near_duplicates(face_hashes(faces), options.dedup_distance)
    for i in np.flatnonzero(~keep):
        r, f = rows[i]
        other = rows[twin[i]][0]
        rejects.append((r.path, r.label, f"near-duplicate face (box {list(f.box)}) of {other.path} ({other.label})"))
    kept = [rows[i] for i in np.flatnonzero(keep)]
    ds = FaceDataset(
        faces=faces[keep],
        labels=np.array([LABEL_INDEX[r.label] for r, _ in kept], np.int64),
        sources=np.array([r.path for r, _ in kept]),
        boxes=np.array([f.box for _, f in kept], np.int32).reshape(-1, 4),
    )
    return IngestReport(ds, results, rejects, kept)


# ---------------------------------------------------------------- outputs

def reason_kind(reason: str) -> str:
    """The short category of a reject reason, for the summary table."""
    for kind in ("no label", "no face found", "near-duplicate", "not a picture", "corrupt", "too large", "too small", "unreadable"):
        if reason.startswith(kind):
            return kind
    return reason.split(":")[0]


def summary_table(report: IngestReport) -> str:
    """A Markdown table: per class, pictures read, rejects by kind, faces kept, and the face rate."""
    kinds = ["not a picture", "corrupt", "too small", "too large", "no face found", "near-duplicate"]
    per = {name: {"pictures": 0, "faces": 0, **{k: 0 for k in kinds}} for name in (*LABELS, "(no label)")}
    for r in report.results:
        per[r.label or "(no label)"]["pictures"] += 1
    for _, label, reason in report.rejects:
        kind = reason_kind(reason)
        row = per[label or "(no label)"]
        if kind in row:
            row[kind] += 1
    for name, count in report.dataset.class_counts().items():
        per[name]["faces"] = count
    found = {name: 0 for name in per}
    for r in report.results:
        if r.faces:
            found[r.label] += 1
    head = ["class", "pictures", *kinds, "with a face", "faces kept"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = {k: 0 for k in head[1:]}
    for name, row in per.items():
        if name == "(no label)" and not row["pictures"]:
            continue
        decoded = row["pictures"] - row["not a picture"] - row["corrupt"] - row["too small"] - row["too large"]
        values = [row["pictures"], *(row[k] for k in kinds), found[name], row["faces"]]
        for k, v in zip(head[1:], values):
            total[k] += v
        rate = f" ({found[name] / decoded:.0%})" if decoded else ""
        lines.append(f"| {name} | " + " | ".join(str(v) for v in values[:-2]) + f" | {found[name]}{rate} | {row['faces']} |")
    lines.append("| **all** | " + " | ".join(str(total[k]) for k in head[1:]) + " |")
    return "\n".join(lines)


def output_paths(out: Path) -> dict[str, Path]:
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".npz" else out
    return {
        "npz": stem.with_name(stem.name + ".npz"),
        "manifest": stem.with_name(stem.name + ".manifest.csv"),
        "rejects": stem.with_name(stem.name + ".rejects.csv"),
        "summary": stem.with_name(stem.name + ".summary.md"),
    }


def write_outputs(report: IngestReport, out: Path, options: IngestOptions, root: Path | None = None) -> dict[str, Path]:
    paths = output_paths(out)
    if len(report.dataset):
        save_npz(report.dataset, paths["npz"])
    else:   # never an empty data set that a later `fit` would take for a real one
        del paths["npz"]
    with private_file(paths["manifest"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "source", "label", "x", "y", "w", "h", "score", "upsample", "angle", "faces_in_picture",
                    "detector"])
        for i, (r, face) in enumerate(report.kept):
            w.writerow([i, r.path, r.label, *face.box, f"{face.score:.3f}", face.upsample, face.angle, r.detected,
                        face.detector])
    with private_file(paths["rejects"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "reason"])
        w.writerows(sorted(report.rejects))
    n_pictures = len(report.results)
    text = [
        f"# Ingest of {root or '?'}",
        "",
        f"{n_pictures} pictures read, {len(report.dataset)} faces kept, {len(report.rejects)} rejects "
        f"in {report.seconds:.0f} s.",
        "",
        summary_table(report),
        "",
        f"crop: `{json.dumps(options.crop.to_dict())}` (edge.contracts.crop.crop_face)",
        f"detect: `{json.dumps(asdict(options.detect))}`, all_faces={options.all_faces}, "
        f"dedup_distance={options.dedup_distance}",
    ]
    paths["summary"].write_text("\n".join(text) + "\n")
    return paths
