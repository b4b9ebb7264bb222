"""moodcam-train ensemble RUN RUN... --out runs/NAME [--checkpoint last.keras]

Combines trained runs into one model that averages their probabilities (trainer.ensemble), written
as an ensemble folder that ``evaluate`` and ``export`` take like a fit run: one .tflite, one invoke
a face on the edge. The runs must share their training and validation data.
"""
from __future__ import annotations

from pathlib import Path

from edge.cliutil import report_error

HELP = "combine trained runs into one model averaging their probabilities"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by 'moodcam-train fit' (two or more)")
    p.add_argument("--out", type=Path, required=True, help="new folder for the ensemble")
    p.add_argument("--checkpoint", default="last.keras",
                   help="which checkpoint of each run (default last.keras: the end of the learning-rate schedule)")


def run(args) -> int:
    from trainer.ensemble import combine_runs

    try:
        combine_runs(args.runs, args.out, checkpoint=args.checkpoint)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        return report_error("moodcam-train ensemble", exc)
    return 0
