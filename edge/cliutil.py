"""A command-line front end shared by ``moodcam`` and ``moodcam-train``.

Each sub-command lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``moodcam --help``
and the Pi never import TensorFlow or FastAPI. Unknown commands and options fail with a
close-match suggestion (Ultralytics style).

One error path for both programs: a user error is one line on stderr, ``PROG COMMAND: error:
what, where, how to fix``, and one of the exit codes below; only a bug shows a traceback. Output
into a closed pipe (``moodcam export | head``) ends the command quietly, as Unix tools do.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import sys

# Exit codes, the same in both programs (documented in each command's --help and in docs/).
EXIT_OK = 0
EXIT_PARTIAL = 1     # the command ran, but some inputs could not be used (e.g. unreadable pictures)
EXIT_USAGE = 2       # bad arguments, config, path or data: nothing (more) was done
EXIT_MODEL = 3       # the model is missing, tampered with or does not match its sidecar
EXIT_CAMERA = 4      # moodcam run: the camera worked and stopped, and every reopen failed
EXIT_STORE = 5       # moodcam run: the log cannot be written
EXIT_DETECTOR = 6    # moodcam run: face detection kept failing (its thread was restarted and failed again)
EXIT_CODES_HELP = ("exit status: 0 done; 1 done, but some inputs could not be used; 2 bad arguments, "
                   "config, path or data; 3 bad model")


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


def report_error(command: str, exc: BaseException | str, code: int = EXIT_USAGE) -> int:
    """A user error (bad path, bad value) as one line on stderr, ``<command>: error: ...``,
    without a traceback; returns the exit status (default 2, as argparse uses for bad arguments)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"{command}: error: {text}", file=sys.stderr)
    return code


def report_note(command: str, text: str) -> None:
    """A one-line notice on stderr that is not an error (``<command>: note: ...``)."""
    print(f"{command}: note: {text}", file=sys.stderr)


def write_line(text: str) -> None:
    """One line of a command's output, flushed so a reader sees it as it comes."""
    print(text, flush=True)


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_cli(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None = None,
            *, renamed: dict[str, str] | None = None, version: str | None = None) -> int:
    """``commands`` maps a command name to (module path, one-line help); ``renamed`` maps an old
    command name to its new one (still accepted, with a note on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    renamed = renamed or {}
    parser = SuggestingParser(prog=prog, description=description, epilog=EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SuggestingParser)
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version" and version:
        print(f"{prog} {version}")
        return 0
    name = argv[0]
    if name in renamed:
        report_note(prog, f"'{name}' is now '{renamed[name]}'; the old name still works, for now")
        name = renamed[name]
    if name not in commands:
        close = difflib.get_close_matches(name, commands, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        parser.error(f"unknown command '{name}'{hint} (commands: {', '.join(commands)})")
    module = importlib.import_module(commands[name][0])
    command_parser = SuggestingParser(prog=f"{prog} {name}", description=getattr(module, "DESCRIPTION", module.HELP),
                                      epilog=getattr(module, "EXIT_CODES", EXIT_CODES_HELP))
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader has seen enough (`| head`): stop quietly, as Unix tools do
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
