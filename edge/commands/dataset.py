"""moodcam dataset --state DIR | --folder FACES --out reviewed/ [--force]"""
from __future__ import annotations

from pathlib import Path

from edge.argpaths import add_force_option, need_output
from edge.cliutil import EXIT_USAGE, report_error, write_line
from edge.commands.options import add_state_option, state_dir
from edge.review.dataset import open_source, write_dataset

HELP = "write reviewed faces as a training set: <label>/<id>.png + manifest"
DESCRIPTION = """Write every reviewed face (not those marked "not a face") as OUT/<label>/<id>.png, gray, plus
OUT/manifest.json (id, reviewer label, prediction, confidence, time, model). OUT is a data set
that `moodcam-train fit OUT` accepts directly. The faces come from the log (--state DIR, the
daemon's state directory) or from a folder labelled with `moodcam review --folder` (--folder)."""
EXIT_CODES = "exit status: 0 written; 2 bad arguments, a missing source, or OUT exists (use --force)"


def add_arguments(p) -> None:
    p.add_argument("legacy_state", nargs="?", type=Path, help="(old form) the state directory; use --state DIR")
    add_state_option(p)
    p.add_argument("--folder", type=Path, help="a folder labelled with `moodcam review --folder` instead of the log")
    p.add_argument("--out", type=Path, required=True, help="where to write <label>/<id>.png + manifest.json")
    add_force_option(p, "replace an earlier data set in OUT")


def run(args) -> int:
    given = [x for x in (args.legacy_state, args.state, args.folder) if x is not None]
    if len(given) > 1:
        return report_error("moodcam dataset", "give one of --state DIR or --folder FACES, not both")
    try:
        need_output(args.out, "--out", kind="dir", may_exist=True)   # write_dataset decides on an existing OUT
        source = open_source(args.folder or args.legacy_state or state_dir(args))
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # RuntimeError: StoreError
        return report_error("moodcam dataset", e)
    try:
        manifest = write_dataset(source, args.out, force=args.force)
    except FileExistsError as e:
        return report_error("moodcam dataset", e, EXIT_USAGE)
    finally:
        source.close()
    per_class = ", ".join(f"{k} {v}" for k, v in manifest["per_class"].items() if v)
    write_line(f"wrote {manifest['count']} faces to {args.out} ({per_class or 'none reviewed yet'}); "
               f"left out {manifest['skipped']['not_face']} not-a-face")
    if manifest["count"]:
        write_line(f"train on it: moodcam-train fit {args.out} --out runs/NAME")
    return 0
