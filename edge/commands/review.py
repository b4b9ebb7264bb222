"""moodcam review [--state DIR | --folder FACES/] [--host 127.0.0.1] [--port 8080] [--token [TOKEN]]"""
from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from edge.cliutil import report_error, report_note, write_line
from edge.commands.options import add_state_option, state_dir
from edge.review.folder import FolderSource
from edge.review.security import is_loopback, new_token
from edge.review.storesource import StoreSource

HELP = "serve the review page for a state directory or a folder"
DESCRIPTION = """Serve the review page: a grid of logged faces to accept (Enter), relabel (1-7), mark as
not a face (x) or undo (u), with counts, an accuracy estimate and a confusion matrix.
The faces come from the log (--state DIR, the daemon's state directory). With --folder, label a folder of face pictures instead; labels are saved in FOLDER/labels.csv.
Bound to 127.0.0.1 by default. Any other --host requires a token on every request: give one with
--token TOKEN (or $MOODCAM_REVIEW_TOKEN), or one is generated and printed in the link to open."""


def add_arguments(p) -> None:
    p.add_argument("legacy_state", nargs="?", type=Path, help="(old form) the state directory; use --state DIR")
    add_state_option(p)
    p.add_argument("--folder", type=Path, help="label a folder of face pictures instead of the log")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--token", nargs="?", const="", default=None,
                   help="require this token on every request; --token alone generates one "
                        "(default: $MOODCAM_REVIEW_TOKEN; generated when --host is not loopback)")


def resolve_token(host: str, given: str | None) -> tuple[str | None, bool]:
    """(token or None, generated?). A non-loopback host always gets a token."""
    token = given if given is not None else os.environ.get("MOODCAM_REVIEW_TOKEN") or None
    if token == "" or (token is None and not is_loopback(host)):
        return new_token(), True
    if token is not None and len(token) < 16:
        raise ValueError(f"--token is {len(token)} characters; use at least 16 (or --token alone to generate one)")
    return token, False


def run(args) -> int:
    if args.legacy_state is not None:
        if args.state is not None:
            return report_error("moodcam review", "give the state directory once, as --state DIR")
        report_note("moodcam review", "a positional STATE_DIR is the old form; use --state DIR")
        args.state = args.legacy_state
    if args.folder and args.state:
        return report_error("moodcam review", "give --state DIR or --folder FACES/, not both")
    if not 1 <= args.port <= 65535:
        return report_error("moodcam review", f"--port {args.port} is out of range 1..65535")
    try:
        token, generated = resolve_token(args.host, args.token)
        check_port_free(args.host, args.port)
        source = open_review_source(args)
    except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: StoreError
        return report_error("moodcam review", e)
    from edge.review.server import serve  # FastAPI: imported only when a page is served

    link = f"http://{shown_host(args.host)}:{args.port}/" + (f"?token={token}" if token else "")
    write_line(f"moodcam review: {source.mode} {source.description}")
    write_line(f"open {link}" + ("  (token generated for this run)" if generated else ""))
    try:
        serve(source, host=args.host, port=args.port, token=token)
    finally:
        source.close()
    return 0


def check_port_free(host: str, port: int) -> None:
    """Bind HOST:PORT once, as uvicorn will, so a port in use fails before the link is printed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ValueError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn does
        try:
            s.bind(address)
        except OSError as e:
            hint = "choose another --port or stop what serves there" if e.errno == errno.EADDRINUSE else \
                "give an address of this machine, or a port above 1023"
            raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}; {hint}") from None


def open_review_source(args):
    if args.folder:
        return FolderSource(args.folder)
    directory = state_dir(args)
    if not directory.is_dir():
        raise FileNotFoundError(f"state directory {directory} does not exist; give the daemon's --state DIR "
                                "(or --folder FACES/ to label pictures)")
    return StoreSource(directory)


def shown_host(host: str) -> str:
    """The host part of the link to open; every address (0.0.0.0) is named as this machine."""
    if host in ("0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host
