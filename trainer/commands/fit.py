"""moodcam-train fit DATA... --out runs/NAME [--config hparams.toml] [--resume] [--init MODEL]"""
from __future__ import annotations

from pathlib import Path

from edge.argpaths import need_input, need_output
from edge.cliutil import report_error
from trainer.fit import prepare_run
from trainer.hparams import load_hparams

HELP = "train the CNN on one or more data sets"


def add_arguments(p) -> None:
    p.add_argument("data", nargs="+", type=Path, help=".npz data sets or <label>/ folders of face pictures, mixed")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, curves)")
    p.add_argument("--val", type=Path, nargs="*", default=[], help="validation data; default: a stratified part of DATA")
    p.add_argument("--config", type=Path, help="hyper-parameters TOML (keys of trainer.hparams.HParams)")
    p.add_argument("--epochs", type=int, help="override the epoch count")
    p.add_argument("--batch-size", type=int, help="override the batch size")
    p.add_argument("--optimizer", choices=["adamw", "rmsprop", "sgd"], help="override the optimizer")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--init", type=Path, help="start from this .keras model's weights (fine-tune / second cycle)")
    p.add_argument("--learning-rate", type=float, help="override the peak learning rate")


def run(args) -> int:
    try:
        for path in (*args.data, *args.val):
            need_input(path, "data set")
        for option, path in (("--config", args.config), ("--init", args.init)):
            if path is not None:
                need_input(path, option, kind="file")
        out = args.out.expanduser()
        # runs/NAME: the trainer makes its own runs/ folder, one level, as training tools make their log
        # folder (what `moodcam dataset` suggests works on a fresh checkout); a missing folder further
        # up is still a typo to report.
        if not out.parent.exists() and out.parent.parent.is_dir():
            need_output(out.parent, "--out", kind="dir")
            out.parent.mkdir()
        need_output(out, "--out", kind="dir", may_exist=True)   # prepare_run refuses a used one without --resume
        hp = load_hparams(args.config, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                          seed=args.seed, learning_rate=args.learning_rate)
        prepared = prepare_run(args.data, args.out, hp, val_data=args.val, resume=args.resume,
                               init_from=args.init)
    except (OSError, ValueError) as exc:
        return report_error("moodcam-train fit", exc)
    # Outside the catch: an error raised while training is a bug, and keeps its traceback.
    best = prepared.train()
    print(f"best model: {best}")
    return 0
