"""moodcam export-reviewed STATE_DIR --out reviewed/ [--force]"""
from __future__ import annotations

import sys
from pathlib import Path

HELP = "write reviewed faces as <label>/<id>.png + manifest"
DESCRIPTION = """Write every reviewed face (not those marked "not a face") as OUT/<label>/<id>.png, gray, plus
OUT/manifest.json (id, reviewer label, prediction, confidence, time, model). OUT is a data set
that `moodcam-train fit OUT` accepts directly. STATE_DIR is the daemon's state directory, or a
folder labelled with `moodcam review --folder` (it has a labels.csv)."""


def add_arguments(p) -> None:
    p.add_argument("state_dir", type=Path, help="the daemon's state directory, or a labelled folder")
    p.add_argument("--out", type=Path, required=True, help="where to write <label>/<id>.png + manifest.json")
    p.add_argument("--force", action="store_true", help="replace an earlier export in OUT")


def run(args) -> int:
    from edge.review.export import export_reviewed, open_source

    try:
        source = open_source(args.state_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # RuntimeError: edge.store.StoreError
        print(f"moodcam export-reviewed: {e}", file=sys.stderr)
        return 2
    try:
        manifest = export_reviewed(source, args.out, force=args.force)
    except FileExistsError as e:
        print(f"moodcam export-reviewed: {e}", file=sys.stderr)
        return 2
    finally:
        source.close()
    per_class = ", ".join(f"{k} {v}" for k, v in manifest["per_class"].items() if v)
    print(f"wrote {manifest['count']} faces to {args.out} ({per_class or 'none reviewed yet'}); "
          f"left out {manifest['skipped']['not_face']} not-a-face")
    if manifest["count"]:
        print(f"train on it: moodcam-train fit {args.out} --out runs/NAME")
    return 0
