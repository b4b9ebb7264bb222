"""``moodcam run``: the daemon (camera -> faces -> expressions -> log)."""
from __future__ import annotations

import sys

HELP = "run the daemon: camera -> faces -> expressions -> log"
DESCRIPTION = (HELP + ". With a file:/dir: source or --max-frames it stops by itself and prints a one-line "
               "JSON summary (frames, faces, logged rows, mean ms per stage, fps). Exit status: 0 done, "
               "2 bad config, 3 bad model, 4 camera gone, 5 store unusable.")


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: /etc/moodcam/config.toml if it "
                        "exists, else built-in defaults; see deploy/config.example.toml)")
    parser.add_argument("--source", help="override camera.source: auto, picamera2, v4l2:N, file:PATH, dir:PATH, "
                        "demo or an OpenCV URL")
    parser.add_argument("--state", metavar="DIR", help="override store.state_dir (the log and crops)")
    parser.add_argument("--model", metavar="TFLITE", help="override classifier.model (its .json beside it)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")


def run(args) -> int:
    from edge.config import ConfigError, load_config, parse_config
    from edge.service.daemon import EXIT_CONFIG, Daemon, summary_line
    from edge.service.notify import setup_logging

    try:
        config = load_config(args.config)
        overrides = {}
        if args.source:
            overrides["camera"] = {"source": args.source}
        if args.state:
            overrides["store"] = {"state_dir": args.state}
        if args.model:
            overrides["classifier"] = {"model": args.model}
        if overrides:   # re-validate, so '--source fiel:x' fails like a typo in the file would
            from dataclasses import asdict

            data = asdict(config)
            for section, values in overrides.items():
                data[section].update(values)
            config = parse_config(data, "command line")
    except ConfigError as exc:
        print(f"moodcam run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.max_frames is not None and args.max_frames < 1:
        print("moodcam run: --max-frames must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.logging.level)
    daemon = Daemon(config, max_frames=args.max_frames)
    status = daemon.run()
    print(summary_line(daemon), flush=True)
    return status
