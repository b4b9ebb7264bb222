"""``moodcam``: the edge command line (also ``python -m edge``)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from edge.cliutil import run_cli

# name -> (module with HELP / add_arguments / run, one-line help)
COMMANDS = {
    "run": ("edge.commands.run", "run the daemon: camera -> faces -> expressions -> log"),
    "classify": ("edge.commands.classify", "classify faces in pictures or folders (--json lines)"),
    "check-config": ("edge.commands.check_config", "validate a config file without starting anything"),
    "export": ("edge.commands.export", "write the log out as JSONL or CSV"),
    "status": ("edge.commands.status", "print fps, faces, logged rows and disk use from the store"),
    "review": ("edge.commands.review", "serve the review page for the log or a folder of faces"),
    "dataset": ("edge.commands.dataset", "write reviewed faces as a training set: <label>/<id>.png + manifest"),
    "model": ("edge.commands.model", "install a new model on the device (checked, atomic), roll back, list, show"),
}
# Old names that still work (with a note): "export" means the log export only.
RENAMED = {"export-reviewed": "dataset"}


def package_version() -> str:
    try:
        return version("moodcam")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    return run_cli("moodcam", "moodcam: facial expression recognition at the edge", COMMANDS, argv,
                   renamed=RENAMED, version=package_version())


if __name__ == "__main__":
    raise SystemExit(main())
