"""moodcam-train ingest PICTURES --out data/seed.npz [--label-map F=label ...] [--all-faces]"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edge.cliutil import report_error
from edge.commands.options import add_mmod_option, use_mmod
from edge.contracts.crop import CropParams
from trainer.data.ingest import IngestOptions, ingest, parse_label_map, summary_table, write_outputs

HELP = "cut faces out of pictures with dlib into an .npz data set"
DESCRIPTION = (
    "Walk PICTURES (one folder per search phrase; the label is the emotion word in the folder name), "
    "decode every picture Pillow reads, find faces with the edge's still-picture cascade of dlib's HOG "
    "detector, ending with dlib's CNN detector where installed (--mmod) (edge.vision.stills, as moodcam classify), crop them with the edge's crop (edge.contracts.crop.crop_face) "
    "and write OUT (.npz) beside OUT.manifest.csv, OUT.rejects.csv "
    "and OUT.summary.md."
)


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


def run(args) -> int:
    try:
        crop = CropParams.from_dict({"size": args.size, "margin": args.margin})
        label_map = parse_label_map(args.label_map)
        mmod = use_mmod(args)
    except ValueError as exc:
        return report_error("moodcam-train ingest", exc)
    if any(u < 0 or u > 3 for u in args.upsample):
        return report_error("moodcam-train ingest", f"--upsample {args.upsample}: levels must be 0..3 (each level is 4x the pixels)")
    options = IngestOptions(
        crop=crop,
        detect=replace(IngestOptions().detect, upsample=tuple(args.upsample), mirror=not args.no_mirror,
                       angles=tuple(args.angles), threshold=args.threshold, mmod=mmod),
        all_faces=args.all_faces, dedup_distance=args.dedup_distance, workers=args.workers,
    )
    try:
        report = ingest(args.pictures, options, label_map, progress=not args.quiet)
    except FileNotFoundError as exc:
        return report_error("moodcam-train ingest", exc)
    paths = write_outputs(report, args.out, options, root=args.pictures)
    print(summary_table(report))
    print(f"{len(report.results)} pictures, {len(report.dataset)} faces, {len(report.rejects)} rejects, "
          f"{report.seconds:.0f} s")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0 if len(report.dataset) else 1
