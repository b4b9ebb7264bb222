"""Our model and the `fer` package side by side, on the same data.

    PYTHONPATH=. .venv/bin/python bench/accuracy.py [--model models/default.tflite] [--pictures DIR] [--limit N]

Needs the fer venv (``bash bench/setup_fer.sh``; ``--no-fer`` runs our side alone) and the shared
data, found through tests/shared_data.py (``--val`` / ``--pictures`` point elsewhere).

Ours runs with the shipped defaults of ``moodcam classify`` (edge.commands.options: the views
flip + zoom 0.15, the still cascade from upsample 1 ending with dlib's CNN detector where its
weights are installed, pictures shrunk to 640 px), so the figures are what a user gets; the same
flags as classify change them (``--no-tta --tta-zoom 0`` for one view, ``--no-mmod``).

Two comparisons, each fair in its own way:

1. FER2013 PublicTest faces (48x48, pre-cropped). Both models get the bare crop, no detection:
   ours at 48x48 as trained (and in one view too, the model's own figure); fer's mini-Xception through its own preprocessing (resize to 64x64,
   scale to -1..1) -- how it was trained on FER2013 (``fer_peer.py --mode crop``). Running fer's
   Haar cascade on a 48 px crop finds almost nothing (its minimum face is 50 px), and upscaling
   the crop to let it detect would measure the detector on an artificial picture, not the
   classifier; so detection is left out for both.
2. Scraped pictures (raw web photos in emotion-named folders, junk included) through each full
   pipeline: ours = the edge's still-picture cascade (edge.vision.stills: dlib HOG at upsample 1,
   mirrored, upsample 2, rotations, then MMOD) on the picture shrunk to 640 px + the edge's crop +
   our int8 model; fer = its Haar cascade + its crop + its TFLite model on the picture as stored.
   By default the pictures are the held-out half of the shared scraped seed
   (trainer.data.holdout.split_pictures, the split ``moodcam-train split-pictures`` makes).
   A picture is right when its largest face carries the folder's label; no face = wrong in
   "accuracy (all)", left out of "accuracy (found)". Unreadable files are left out of both.
   Both sides get figures over found faces: macro F1, recall per class, and the expected
   calibration error (15 bins) of the largest face's confidence.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edge.commands.options import add_still_options  # after the path is set


def run_fer(fer_python: Path, paths: list[str], mode: str) -> list[dict]:
    """fer_peer.py over ``paths`` (in order); one dict per picture."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(paths) + "\n")
        listing = f.name
    try:
        proc = subprocess.run([str(fer_python), str(REPO / "bench" / "fer_peer.py"), "--mode", mode, "--list", listing],
                              capture_output=True, text=True, check=False)
    finally:
        os.unlink(listing)
    if proc.returncode:
        sys.exit(f"fer_peer.py failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if len(rows) != len(paths):
        sys.exit(f"fer_peer.py answered {len(rows)} of {len(paths)} pictures")
    return rows


def fer_probs(face: dict) -> list[float]:
    from edge.contracts.labels import LABELS

    return [face["probs"][label] for label in LABELS]


def fer_on_faces(fer_python: Path, val_root: Path) -> dict:
    from edge.contracts.labels import LABEL_INDEX
    from trainer.calibrate import calibration_of
    from trainer.data.datasets import load_face_folder
    from trainer.evaluate import metrics

    ds = load_face_folder(val_root)
    start = time.perf_counter()
    rows = run_fer(fer_python, list(ds.sources), "crop")
    wall = time.perf_counter() - start
    pred = np.array([LABEL_INDEX[r["faces"][0]["label"]] for r in rows])
    result = metrics(ds.labels, pred)
    result["calibration"] = calibration_of(np.array([fer_probs(r["faces"][0]) for r in rows]), ds.labels)
    result["ms_per_face"] = round(float(np.mean([r["ms"] for r in rows])), 3)
    result["wall_s"] = round(wall, 1)
    return result


def fer_on_pictures(fer_python: Path, root: Path, limit: int | None) -> dict:
    from edge.contracts.labels import LABEL_INDEX
    from trainer.calibrate import reliability
    from trainer.evaluate import labelled_pictures, metrics

    items = labelled_pictures(root)
    if limit:
        items = [items[i] for i in np.linspace(0, len(items) - 1, min(limit, len(items))).astype(int)]
    rows = run_fer(fer_python, [str(p) for p, _ in items], "full")
    truth, pred, faces_total, ms, confidence = [], [], 0, [], []
    unreadable = 0
    for (path, label), row in zip(items, rows):
        if "error" in row:
            unreadable += 1
            continue
        faces = sorted(row["faces"], key=lambda f: -f["box"][2] * f["box"][3])
        faces_total += len(faces)
        truth.append(label)
        pred.append(LABEL_INDEX[faces[0]["label"]] if faces else -1)
        if faces:
            confidence.append(max(faces[0]["probs"].values()))
        ms.append(row["ms"])
    truth, pred = np.array(truth), np.array(pred)
    found = pred >= 0
    result = metrics(truth[found], pred[found])
    n = len(truth)
    result |= {"accuracy_found": result["accuracy"], "n_found": int(found.sum()), "n": n,
               "accuracy": round(float(np.sum(truth[found] == pred[found]) / n), 4) if n else 0.0,
               "faces_found_rate": round(float(found.mean()), 4) if n else 0.0, "faces_total": faces_total,
               "unreadable": unreadable, "ms_per_picture": round(float(np.mean(ms)), 2) if ms else 0.0,
               "calibration": reliability(np.array(confidence), truth[found] == pred[found])}
    return result


def table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pct(result: dict | None, key: str) -> str:
    return "-" if result is None else f"{result[key]:.1%}"


def num(result: dict | None, *keys: str) -> str:
    if result is None:
        return "-"
    for key in keys:
        result = result[key]
    return f"{result:.3f}"


def per_class_rows(ours: dict, fer: dict | None) -> list[tuple[str, str, str, str]]:
    return [("", f"recall {label}", f"{ours['per_class'][label]['recall']:.1%}",
             "-" if fer is None else f"{fer['per_class'][label]['recall']:.1%}") for label in ours["per_class"]]


def held_out_pictures() -> Path:
    """The held-out half of the shared scraped seed, split as `moodcam-train split-pictures` does
    (near copies on one side), into a temporary folder of symlinks."""
    from tests.shared_data import shared_data
    from trainer.data.holdout import split_pictures

    out = Path(tempfile.mkdtemp(prefix="moodcam-split-")) / "split"
    split_pictures(shared_data("scraped-seed"), out)
    return out / "heldout"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="our .tflite (default: the shipped models/default.tflite)")
    ap.add_argument("--val", type=Path, help="FER2013 PublicTest <label>/ folders (default: shared data)")
    ap.add_argument("--pictures", type=Path, help="raw pictures in emotion-named folders (default: the held-out half "
                                                  "of the shared scraped seed)")
    ap.add_argument("--limit", type=int, help="only this many raw pictures, spread over the folders")
    add_still_options(ap)   # --upsample, --max-side, --tta, --tta-zoom, --mmod: classify's, with its defaults
    ap.add_argument("--fer-python", type=Path, default=REPO / ".bench" / "fer-venv" / "bin" / "python")
    ap.add_argument("--no-fer", action="store_true", help="our model only")
    ap.add_argument("--skip-pictures", action="store_true", help="FER2013 faces only")
    ap.add_argument("--ours-pictures", type=Path, metavar="METRICS_JSON",
                    help="our side of the pictures from the metrics.json of `moodcam-train evaluate MODEL PICTURES "
                         "--report DIR` (the same pictures and options) instead of running it again: with the CNN "
                         "detector that is most of the bench's time")
    ap.add_argument("--json", type=Path, help="also write all figures here")
    args = ap.parse_args(argv)

    from edge.commands.options import use_mmod
    from edge.contracts.modelfile import default_model_path
    from tests.shared_data import shared_data
    from trainer.data.datasets import load_face_folder
    from trainer.evaluate import evaluate_faces, evaluate_pictures, load_predictor

    model = args.model or default_model_path()
    val_root = args.val or shared_data("fer2013", "val")
    use_fer = not args.no_fer
    if use_fer and not args.fer_python.exists():
        sys.exit(f"{args.fer_python} not found: run 'bash bench/setup_fer.sh' first, or pass --no-fer")
    mmod = use_mmod(args)
    predictor = load_predictor(model, tta=args.tta, tta_zoom=args.tta_zoom, num_threads=1)
    views = f"flip {'on' if args.tta else 'off'}, zoom {args.tta_zoom:g}"
    print(f"ours: {model} ({predictor.kind}; {views}; MMOD {'on' if mmod else 'off'}; temperature "
          f"{predictor.temperature:g}); fer: {'fer package via ' + str(args.fer_python) if use_fer else 'skipped'}",
          flush=True)

    figures: dict = {"model": str(model), "tta": args.tta, "tta_zoom": args.tta_zoom, "mmod": mmod}
    ds = load_face_folder(val_root, predictor.crop.size)
    figures["faces_ours"] = ours_faces = evaluate_faces(predictor, ds.faces, ds.labels)
    one_view = load_predictor(model, num_threads=1)
    figures["faces_ours_one_view"] = ours_one = evaluate_faces(one_view, ds.faces, ds.labels)
    print(f"FER2013 faces, ours: {ours_faces['accuracy']:.2%} ({views}), {ours_one['accuracy']:.2%} one view", flush=True)
    fer_faces = figures["faces_fer"] = fer_on_faces(args.fer_python, val_root) if use_fer else None
    if fer_faces:
        print(f"FER2013 faces, fer:  {fer_faces['accuracy']:.2%}", flush=True)

    ours_pics = fer_pics = None
    if not args.skip_pictures:
        pictures = args.pictures or held_out_pictures()
        if args.ours_pictures:
            ours_pics = json.loads(args.ours_pictures.read_text())
            if ours_pics.get("mode") != "pictures" or len(ours_pics.get("per_picture", ())) != ours_pics["n"]:
                sys.exit(f"{args.ours_pictures} is not the metrics.json of an evaluate run on pictures")
        else:
            ours_pics = evaluate_pictures(predictor, pictures, upsample=args.upsample, max_side=args.max_side,
                                          limit=args.limit, progress=True, mmod=mmod)
        ours_pics.pop("per_picture"); ours_pics.pop("unreadable_files")
        figures["pictures_ours"] = ours_pics
        print(f"pictures, ours: {ours_pics['accuracy']:.2%} of all", flush=True)
        if use_fer:
            fer_pics = figures["pictures_fer"] = fer_on_pictures(args.fer_python, pictures, args.limit)

    rows = [("data", "figure", "moodcam", "fer"),
            (f"FER2013 PublicTest ({ours_faces['n']} faces)", f"accuracy ({views})", pct(ours_faces, "accuracy"), pct(fer_faces, "accuracy")),
            ("", "accuracy, one view", pct(ours_one, "accuracy"), pct(fer_faces, "accuracy")),
            ("", "macro F1", num(ours_faces, "macro_f1"), num(fer_faces, "macro_f1")),
            ("", "ECE (15 bins)", num(ours_faces, "calibration", "ece"), num(fer_faces, "calibration", "ece")),
            ("", "ms per face", f"{ours_faces['ms_per_face']:.2f}", "-" if fer_faces is None else f"{fer_faces['ms_per_face']:.2f}")]
    rows += per_class_rows(ours_faces, fer_faces)
    if ours_pics:
        rows += [(f"scraped pictures ({ours_pics['n']} readable)", "face found", pct(ours_pics, "faces_found_rate"), pct(fer_pics, "faces_found_rate")),
                 ("", "accuracy (all pictures)", pct(ours_pics, "accuracy"), pct(fer_pics, "accuracy")),
                 ("", "accuracy (found faces)", pct(ours_pics, "accuracy_found"), pct(fer_pics, "accuracy_found")),
                 ("", "macro F1 (found faces)", num(ours_pics, "macro_f1"), num(fer_pics, "macro_f1")),
                 ("", "ECE (found faces, 15 bins)", num(ours_pics, "calibration", "ece"), num(fer_pics, "calibration", "ece")),
                 ("", "ms per picture", f"{ours_pics['ms_per_picture']:.0f}", "-" if fer_pics is None else f"{fer_pics['ms_per_picture']:.0f}")]
        rows += per_class_rows(ours_pics, fer_pics)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
