"""moodcam-train split-pictures PICTURES --out DIR [--heldout 0.5] [--salt S]"""
from __future__ import annotations

from pathlib import Path

from edge.argpaths import need_input, need_output
from edge.cliutil import report_error
from trainer.data.holdout import split_pictures

HELP = "hold out part of a labelled picture tree for testing (near copies kept on one side)"
DESCRIPTION = (
    "Split PICTURES/<label folder>/* into DIR/train/ and DIR/heldout/ (symlinks, or --copy) so "
    "that a test on the held-out part measures pictures the model never saw: near-duplicate "
    "pictures (perceptual hash within --near-bits) always land on the same side. The split is "
    "deterministic. DIR/split.csv lists every file, its group and its side."
)


def add_arguments(p) -> None:
    p.add_argument("pictures", type=Path, help="folder of label folders, e.g. ../shared/data/scraped-seed")
    p.add_argument("--out", type=Path, required=True, help="new folder for train/, heldout/ and split.csv")
    p.add_argument("--heldout", type=float, default=0.5, help="fraction of groups held out (default 0.5)")
    p.add_argument("--near-bits", type=int, default=8,
                   help="pictures whose 64-bit pHash differ in at most this many bits are near copies (default 8)")
    p.add_argument("--copy", action="store_true", help="copy the pictures instead of symlinking them")
    p.add_argument("--salt", default="",
                   help="draw an independent split, e.g. a validation part of an earlier split's train/ "
                        "(without it, that split puts every group on the side it was on before); "
                        "default: none, the same split as ever")


def run(args) -> int:
    try:
        need_input(args.pictures, "", kind="dir")
        need_output(args.out, "--out", kind="dir", may_exist=True)   # split_pictures refuses a non-empty one
        split = split_pictures(args.pictures, args.out, heldout_fraction=args.heldout,
                               near_bits=args.near_bits, copy=args.copy, salt=args.salt)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        return report_error("moodcam-train split-pictures", exc)
    total = sum(split.counts.values())
    print(f"{total} pictures in {split.groups} near-duplicate groups ({split.unreadable} unreadable): "
          f"train {split.counts['train']}, heldout {split.counts['heldout']}; listing {split.listing}")
    return 0
