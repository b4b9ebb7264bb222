"""``moodcam check-config FILE``: validate a config without starting anything."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from edge.cliutil import report_error, write_line
from edge.config import ConfigError, load_config

HELP = "validate a config file without starting anything"
EXIT_CODES = "exit status: 0 the config is valid; 2 it is not (the line says which key and why)"


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="the TOML config to check")
    parser.add_argument("--print", action="store_true", help="print the full effective config as JSON")


def run(args) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        return report_error("moodcam check-config", exc)
    if args.print:
        write_line(json.dumps(asdict(config), indent=2))
    print(f"{args.file}: ok", file=sys.stderr)
    return 0
