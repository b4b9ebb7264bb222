"""A command-line front end shared by ``moodcam`` and ``moodcam-train``.

Each sub-command lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``moodcam --help``
and the Pi never import TensorFlow or FastAPI. Unknown commands and options fail with a
close-match suggestion (Ultralytics style).
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys


class SuggestingParser(argparse.ArgumentParser):
    """An ArgumentParser whose unknown-option errors suggest the closest known option."""

    def error(self, message: str):
        if "unrecognized arguments:" in message:
            known = [s for a in self._actions for s in a.option_strings]
            hints = []
            for bad in message.split(":", 1)[1].split():
                if bad.startswith("-"):
                    close = difflib.get_close_matches(bad.split("=")[0], known, n=1)
                    if close:
                        hints.append(f"'{bad}' is not an option; did you mean '{close[0]}'?")
            if hints:
                message += "\n  " + "\n  ".join(hints)
        super().error(message)


def report_error(command: str, exc: BaseException | str) -> int:
    """A user error (bad path, bad value) as one line on stderr, ``<command>: error: ...``,
    without a traceback; the exit status 2 to return, as argparse uses for bad arguments."""
    print(f"{command}: error: {exc}", file=sys.stderr)
    return 2


def run_cli(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None = None) -> int:
    """``commands`` maps a command name to (module path, one-line help)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = SuggestingParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SuggestingParser)
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    if name not in commands:
        close = difflib.get_close_matches(name, commands, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        parser.error(f"unknown command '{name}'{hint} (commands: {', '.join(commands)})")
    module = importlib.import_module(commands[name][0])
    command_parser = SuggestingParser(prog=f"{prog} {name}", description=getattr(module, "DESCRIPTION", module.HELP))
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
