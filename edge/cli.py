"""``moodcam``: the edge command line (also ``python -m edge``)."""
from __future__ import annotations

from edge.cliutil import run_cli

# name -> (module with HELP / add_arguments / run, one-line help)
COMMANDS = {
    "run": ("edge.commands.run", "run the daemon: camera -> faces -> expressions -> log"),
    "classify": ("edge.commands.classify", "classify faces in pictures or folders (--json lines)"),
    "check-config": ("edge.commands.check_config", "validate a config file without starting anything"),
    "export": ("edge.commands.export", "write the log out as JSONL or CSV"),
    "status": ("edge.commands.status", "print fps, faces, logged rows and disk use from the store"),
    "review": ("edge.commands.review", "serve the review page for a state directory or a folder"),
    "export-reviewed": ("edge.commands.export_reviewed", "write reviewed faces as <label>/<id>.png + manifest"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("moodcam", "moodcam: facial expression recognition at the edge", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
