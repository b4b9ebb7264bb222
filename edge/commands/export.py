"""moodcam export [--state DIR] [--format jsonl|csv] [--since T] [--until T] [--out FILE|-]

The log written out (edge.store.export): one JSON object or CSV row per logged face, oldest first.
"""
from __future__ import annotations

import sys
from pathlib import Path

from edge.argpaths import add_force_option, need_output
from edge.cliutil import report_error
from edge.commands.options import add_state_option, state_dir
from edge.store.database import Store
from edge.store.export import write_export, write_export_file
from edge.store.records import StoreError, parse_time

HELP = "write the log out as JSONL or CSV"
DESCRIPTION = ("Write the face log out, oldest first: one JSON object per line (jsonl) or one CSV row per "
               "logged face, with time, frame, track, box, label, confidence, all probabilities, model "
               "hash, crop file and review fields. Reads the store read-only; the daemon may keep running.")
EXIT_CODES = ("exit status: 0 written; 2 bad arguments, no store at --state, or OUT cannot be written "
              "(or exists: use --force)")


def add_arguments(p) -> None:
    add_state_option(p)
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="output format (default jsonl)")
    p.add_argument("--since", metavar="TIME", help="only faces at or after TIME: ISO-8601 (UTC if no zone) or unix seconds")
    p.add_argument("--until", metavar="TIME", help="only faces before TIME")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--reviewed", dest="reviewed", action="store_const", const=True, default=None,
                       help="only reviewed faces")
    group.add_argument("--unreviewed", dest="reviewed", action="store_const", const=False, help="only unreviewed faces")
    p.add_argument("--out", default="-", metavar="FILE", help="output file, '-' for stdout (default); "
                   "a file is written whole or not at all, readable by its owner only; its folder must exist")
    add_force_option(p, "replace an existing --out FILE")


def run(args) -> int:
    state = state_dir(args)
    try:
        filters = {"since": parse_time(args.since) if args.since else None,
                   "until": parse_time(args.until) if args.until else None,
                   "reviewed": args.reviewed}
        out = None if args.out == "-" else Path(args.out).expanduser()
        if out is not None:
            need_output(out, "--out", force=args.force)
        store = Store(state, readonly=True)
    except (ValueError, StoreError) as exc:
        return report_error("moodcam export", exc)
    try:
        n = write_export(store, sys.stdout, args.format, **filters) if out is None else \
            write_export_file(store, out, args.format, filters)
    except OSError as exc:
        return report_error("moodcam export", f"--out {args.out}: {exc.strerror or exc}")
    finally:
        store.close()
    # The count goes to stderr: stdout may be the export itself.
    print(f"exported {n} face(s) from {state}" + ("" if out is None else f" to {out}"), file=sys.stderr)
    return 0
