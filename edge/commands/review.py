"""moodcam review [STATE_DIR] [--host 127.0.0.1] [--port 8080] [--token [TOKEN]] | --folder FACES/"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HELP = "serve the review page for a state directory or a folder"
DESCRIPTION = """Serve the review page: a grid of logged faces to accept (Enter), relabel (1-7), mark as
not a face (x) or undo (u), with counts, an accuracy estimate and a confusion matrix.
With --folder, label a folder of face pictures instead; labels are saved in FOLDER/labels.csv.
Bound to 127.0.0.1 by default. Any other --host requires a token on every request: give one with
--token TOKEN (or $MOODCAM_REVIEW_TOKEN), or one is generated and printed in the link to open."""


def add_arguments(p) -> None:
    p.add_argument("state_dir", nargs="?", type=Path,
                   help="the daemon's state directory (default: $MOODCAM_STATE_DIR, else /var/lib/moodcam "
                        "or ~/.local/state/moodcam, as the daemon chooses)")
    p.add_argument("--folder", type=Path, help="label a folder of face pictures instead of the log")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--token", nargs="?", const="", default=None,
                   help="require this token on every request; --token alone generates one "
                        "(default: $MOODCAM_REVIEW_TOKEN; generated when --host is not loopback)")


def resolve_token(host: str, given: str | None) -> tuple[str | None, bool]:
    """(token or None, generated?). A non-loopback host always gets a token."""
    from edge.review.security import is_loopback, new_token

    token = given if given is not None else os.environ.get("MOODCAM_REVIEW_TOKEN") or None
    if token == "" or (token is None and not is_loopback(host)):
        return new_token(), True
    if token is not None and len(token) < 16:
        raise SystemExit(f"moodcam review: --token is {len(token)} characters; use at least 16 (or --token alone to generate one)")
    return token, False


def run(args) -> int:
    if args.folder and args.state_dir:
        print("moodcam review: give a STATE_DIR or --folder, not both", file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"moodcam review: --port {args.port} is out of range 1..65535", file=sys.stderr)
        return 2
    token, generated = resolve_token(args.host, args.token)
    try:
        if args.folder:
            from edge.review.folder import FolderSource

            source = FolderSource(args.folder)
        else:
            from edge.review.storesource import StoreSource
            from edge.store.layout import default_state_dir

            state_dir = args.state_dir or Path(os.environ.get("MOODCAM_STATE_DIR") or default_state_dir())
            if not state_dir.is_dir():
                print(f"moodcam review: state directory {state_dir} does not exist; give the daemon's "
                      "STATE_DIR (or --folder FACES/ to label pictures)", file=sys.stderr)
                return 2
            source = StoreSource(state_dir)
    except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: edge.store.StoreError
        print(f"moodcam review: {e}", file=sys.stderr)
        return 2
    from edge.review.server import serve

    if args.host in ("0.0.0.0", "::"):  # every address: name this machine, as seen from others
        import socket

        shown = socket.gethostname()
    else:
        shown = f"[{args.host}]" if ":" in args.host else args.host
    link = f"http://{shown}:{args.port}/"
    if token:
        link += f"?token={token}"
    print(f"moodcam review: {source.mode} {source.description}", flush=True)
    print(f"open {link}" + ("  (token generated for this run)" if generated else ""), flush=True)
    try:
        serve(source, host=args.host, port=args.port, token=token)
    finally:
        source.close()
    return 0
