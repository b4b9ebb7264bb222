"""moodcam-train ingest PICTURES --out data/seed.npz [--label-map F=label ...] [--all-faces]"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from edge.argpaths import add_force_option, need_input, need_output
from edge.cliutil import EXIT_PARTIAL, report_error
from edge.commands.options import add_mmod_option, use_mmod
from edge.contracts.crop import CropParams
from edge.contracts.labels import LABELS
from trainer.data.ingest import (
    IngestOptions,
    find_pictures,
    ingest,
    output_paths,
    parse_label_map,
    summary_table,
    write_outputs,
)

HELP = "cut faces out of pictures with dlib into an .npz data set"
DESCRIPTION = (
    "Walk PICTURES (one folder per search phrase; the label is the emotion word in the folder name), "
    "decode every picture Pillow reads, find faces with the edge's still-picture cascade of dlib's HOG "
    "detector, ending with dlib's CNN detector where installed (--mmod) (edge.vision.stills, as moodcam classify), crop them with the edge's crop (edge.contracts.crop.crop_face) "
    "and write OUT (.npz) beside OUT.manifest.csv, OUT.rejects.csv "
    "and OUT.summary.md (all readable by their owner only: they hold faces). PICTURES may also be one "
    "labelled folder itself (.../Fearful+Human+Faces): its name gives the label. OUT's folder must exist; "
    "an existing OUT is replaced only with --force. When no face is kept, no .npz is written (exit 1)."
)
EXIT_CODES = ("exit status: 0 written; 1 no face was kept (the reports say why; no .npz written); "
              "2 bad arguments, PICTURES missing or unlabelled, or OUT exists (use --force)")


def add_arguments(p) -> None:
    crop, det = CropParams(), IngestOptions().detect
    p.add_argument("pictures", type=Path, help="folder tree of pictures, e.g. pictures/<Angry Human Face>/*")
    p.add_argument("--out", type=Path, required=True, help="data set to write (.npz); reports are written beside it")
    p.add_argument("--label-map", nargs="+", metavar="FOLDER=LABEL|JSON",
                   help="labels for folders whose name names no emotion (pairs, or a JSON file of them)")
    p.add_argument("--all-faces", action="store_true", help="keep every face of a picture, not only the largest")
    p.add_argument("--size", type=int, default=crop.size, help=f"face side in pixels (default {crop.size})")
    p.add_argument("--margin", type=float, default=crop.margin, help=f"crop margin around the dlib box (default {crop.margin})")
    p.add_argument("--upsample", type=int, nargs="+", default=list(det.upsample),
                   help=f"dlib upsampling levels tried in turn while no face is found (default {' '.join(map(str, det.upsample))})")
    p.add_argument("--angles", type=float, nargs="*", default=list(det.angles),
                   help="rotations (degrees) tried when nothing else found a face (default %(default)s; none: off)")
    p.add_argument("--no-mirror", action="store_true", help="do not retry on the mirrored picture")
    add_mmod_option(p)
    p.add_argument("--threshold", type=float, default=det.threshold, help="dlib threshold adjustment (<0: more faces, more false ones)")
    p.add_argument("--dedup-distance", type=int, default=4,
                   help="faces whose perceptual hashes differ in at most this many bits count as one (-1: keep all)")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_force_option(p, "replace an existing OUT (and its reports)")


def run(args) -> int:
    try:
        crop = CropParams.from_dict({"size": args.size, "margin": args.margin})
        label_map = parse_label_map(args.label_map)
        options = check_options(args, crop, use_mmod(args))
        need_input(args.pictures, "", kind="dir")
        paths = output_paths(args.out)
        need_output(paths["npz"], "--out", force=args.force, also=[p for k, p in paths.items() if k != "npz"])
        pictures = find_pictures(args.pictures, label_map)
        if not pictures:
            raise ValueError(f"{args.pictures}: no files to read; give a folder tree like pictures/<Angry Human Face>/*.jpg")
        if all(p.label is None for p in pictures):
            raise ValueError(f"{args.pictures}: no folder on the path of any picture names an emotion ({', '.join(LABELS)}); "
                             "name the folders after one, or give --label-map FOLDER=LABEL")
    except ValueError as exc:   # PathProblem included
        return report_error("moodcam-train ingest", exc)
    report = ingest(args.pictures, options, label_map, progress=not args.quiet)
    written = write_outputs(report, args.out, options, root=args.pictures)
    print(summary_table(report))
    print(f"{len(report.results)} pictures, {len(report.dataset)} faces, {len(report.rejects)} rejects, "
          f"{report.seconds:.0f} s")
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if not len(report.dataset):
        return report_error("moodcam-train ingest", f"no face kept from {len(report.results)} pictures, so no "
                            f"{paths['npz'].name} was written; the reasons are in {written['rejects']}", EXIT_PARTIAL)
    return 0


def check_options(args, crop: CropParams, mmod: bool) -> IngestOptions:
    """The detection options, each in its range (ValueError naming the option)."""
    if any(u < 0 or u > 3 for u in args.upsample):
        raise ValueError(f"--upsample {args.upsample}: levels must be 0..3 (each level is 4x the pixels)")
    if args.workers < 0:
        raise ValueError(f"--workers {args.workers}: give 0 (all cores) or more")
    if args.dedup_distance < -1 or args.dedup_distance > 64:
        raise ValueError(f"--dedup-distance {args.dedup_distance}: give -1 (keep all) to 64 bits")
    if not all(math.isfinite(v) for v in (args.threshold, *args.angles)):
        raise ValueError("--threshold and --angles must be finite numbers")
    return IngestOptions(
        crop=crop,
        detect=replace(IngestOptions().detect, upsample=tuple(args.upsample), mirror=not args.no_mirror,
                       angles=tuple(args.angles), threshold=args.threshold, mmod=mmod),
        all_faces=args.all_faces, dedup_distance=args.dedup_distance, workers=args.workers,
    )
