"""``moodcam run``: the daemon (camera -> faces -> expressions -> log)."""
from __future__ import annotations

from dataclasses import asdict

from edge.cliutil import EXIT_USAGE, report_error, write_line
from edge.config import ConfigError, load_config, parse_config
from edge.service.daemon import Daemon, summary_line
from edge.service.notify import setup_logging

HELP = "run the daemon: camera -> faces -> expressions -> log"
DESCRIPTION = (HELP + ". With a file:/dir: source or --max-frames it stops by itself and prints a one-line "
               "JSON summary (frames, faces, logged rows, mean ms per stage, fps).")
EXIT_CODES = ("exit status: 0 done; 2 bad config or arguments; 3 bad model; 4 camera gone; 5 store unusable; "
              "6 face detection kept failing")


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: /etc/moodcam/config.toml if it "
                        "exists, else built-in defaults; see deploy/config.example.toml)")
    parser.add_argument("--source", help="override camera.source: auto, picamera2, v4l2:N, file:PATH, dir:PATH, "
                        "demo or an OpenCV URL")
    parser.add_argument("--state", metavar="DIR", help="override store.state_dir (the log and crops)")
    parser.add_argument("--model", metavar="TFLITE", help="override classifier.model (its .json beside it)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")


def run(args) -> int:
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
            data = asdict(config)
            for section, values in overrides.items():
                data[section].update(values)
            config = parse_config(data, "command line")
    except ConfigError as exc:
        return report_error("moodcam run", exc, EXIT_USAGE)
    if args.max_frames is not None and args.max_frames < 1:
        return report_error("moodcam run", f"--max-frames {args.max_frames} must be at least 1", EXIT_USAGE)
    setup_logging(config.logging.level)
    daemon = Daemon(config, max_frames=args.max_frames)
    status = daemon.run()
    write_line(summary_line(daemon))
    if status == EXIT_USAGE:   # a source that can never work: the one line that says what to fix
        report_error("moodcam run", daemon.exit_reason.removeprefix("source: ").removeprefix("config: "), status)
    return status
