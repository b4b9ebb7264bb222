"""moodcam-train import-fer2013 PATH --out data/fer2013.npz"""
from __future__ import annotations

from pathlib import Path

from edge.argpaths import add_force_option, need_input, need_output
from edge.cliutil import report_error
from trainer.data.fer2013 import FerFormatError, read_fer2013, split_paths, write_splits

HELP = "read FER2013 (CSV or image folders) into .npz data sets"
DESCRIPTION = (
    "Read FER2013 from the original CSV (emotion,pixels,Usage) or from image folders "
    "(train/<label>/*.jpg, val/..., test/...) and write one .npz per split: OUT=data/fer2013.npz writes "
    "data/fer2013-train.npz (Training), data/fer2013-val.npz (PublicTest), data/fer2013-test.npz (PrivateTest)."
)


def add_arguments(p) -> None:
    p.add_argument("path", type=Path, help="fer2013.csv, or the folder holding train/ val/ test/")
    p.add_argument("--out", type=Path, required=True, help="base name; one file per split is written beside it "
                   "(its folder must exist; the files are readable by their owner only)")
    add_force_option(p, "replace existing split files")


def run(args) -> int:
    try:
        need_input(args.path, "")
        outputs = list(split_paths(args.out, ("train", "val", "test")).values())
        need_output(outputs[0], "--out", force=args.force, also=outputs[1:])
        datasets = read_fer2013(args.path)
    except (FileNotFoundError, FerFormatError, ValueError) as exc:
        return report_error("moodcam-train import-fer2013", exc)
    paths = write_splits(datasets, args.out)
    for split, ds in datasets.items():
        counts = " ".join(f"{k}={v}" for k, v in ds.class_counts().items())
        print(f"{split}: {len(ds)} faces ({counts}) -> {paths[split]}")
    return 0
