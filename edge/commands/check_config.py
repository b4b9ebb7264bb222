"""``moodcam check-config FILE``: validate a config without starting anything."""
from __future__ import annotations

import sys

HELP = "validate a config file without starting anything"


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="the TOML config to check")
    parser.add_argument("--print", action="store_true", help="print the full effective config as JSON")


def run(args) -> int:
    import json
    from dataclasses import asdict

    from edge.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"moodcam check-config: {exc}", file=sys.stderr)
        return 2
    if args.print:
        print(json.dumps(asdict(config), indent=2))
    print(f"{args.file}: ok", file=sys.stderr)
    return 0
