"""``moodcam-train``: the desktop trainer's command line (also ``python -m trainer``)."""
from __future__ import annotations

from edge.cli import package_version
from edge.cliutil import run_cli

COMMANDS = {
    "scrape": ("trainer.commands.scrape", "search the web for pictures per phrase and download them"),
    "ingest": ("trainer.commands.ingest", "cut faces out of pictures with dlib into an .npz data set"),
    "split-pictures": ("trainer.commands.split_pictures", "hold out part of a picture tree for testing (near copies kept together)"),
    "import-fer2013": ("trainer.commands.import_fer2013", "read FER2013 (CSV or image folders) into .npz data sets"),
    "fit": ("trainer.commands.fit", "train the CNN on one or more data sets"),
    "evaluate": ("trainer.commands.evaluate", "measure a Keras run or a .tflite on faces or raw pictures"),
    "export": ("trainer.commands.export", "export a run as int8 .tflite + JSON sidecar"),
    "calibrate": ("trainer.commands.calibrate", "fit a model's confidence temperature on validation faces"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("moodcam-train", "moodcam trainer: data, training, evaluation and export", COMMANDS, argv,
                   version=package_version())


if __name__ == "__main__":
    raise SystemExit(main())
