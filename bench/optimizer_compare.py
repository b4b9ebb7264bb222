"""A small, honest optimizer comparison: the same subset, hyper-parameters and seed, only the
optimizer differs (RMSProp, as the original project used, vs AdamW, our default).

    PYTHONPATH=. /work/venv/bin/python bench/optimizer_compare.py [--train DATA] [--n 6000] [--epochs 4]

DATA is FER2013's training split (an .npz or the <label>/ folder tree; default: shared data found
by tests/shared_data.py). ``--n`` faces are drawn per run for training and ``--val-n`` other faces
of the same split for validation (stratified, fixed seed), so FER2013 PublicTest stays untouched
for the final evaluation. A few epochs on a subset says which optimizer learns faster from the
same start, not which reaches the higher final accuracy after a full run; say so when quoting it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, help="FER2013 training data (.npz or folders)")
    ap.add_argument("--n", type=int, default=6000, help="training faces per run")
    ap.add_argument("--val-n", type=int, default=2000, help="validation faces (from the same split, disjoint)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--optimizers", nargs="+", default=["rmsprop", "adamw"])
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    from tests.shared_data import shared_data
    from trainer.datasets import load_dataset, save_npz, stratified_split
    from trainer.fit import fit
    from trainer.hparams import HParams

    data = load_dataset(args.train or shared_data("fer2013", "train"))
    rest, train = stratified_split(data, args.n / len(data), args.seed)
    _, val = stratified_split(rest, args.val_n / len(rest), args.seed + 1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_npz(train, tmp / "train.npz")
        save_npz(val, tmp / "val.npz")
        for name in args.optimizers:
            hp = HParams(optimizer=name, epochs=args.epochs, seed=args.seed)
            start = time.time()
            fit([tmp / "train.npz"], tmp / f"run-{name}", hp, val_data=[tmp / "val.npz"], verbose=2)
            rows = (tmp / f"run-{name}" / "epochs.csv").read_text().strip().splitlines()
            header = rows[0].split(",")
            curve = [dict(zip(header, map(float, r.split(",")))) for r in rows[1:]]
            results.append({"optimizer": name, "learning_rate": hp.learning_rate,
                            "val_accuracy_per_epoch": [round(r["val_accuracy"], 4) for r in curve],
                            "best_val_accuracy": round(max(r["val_accuracy"] for r in curve), 4),
                            "final_train_accuracy": round(curve[-1]["accuracy"], 4),
                            "minutes": round((time.time() - start) / 60, 1)})
    print(f"\n{len(train)} training / {len(val)} validation faces, {args.epochs} epochs, HParams defaults otherwise")
    print(f"{'optimizer':10} {'best val acc':>12} {'val acc per epoch':>32} {'train acc':>10} {'min':>5}")
    for r in results:
        per_epoch = " ".join(f"{v:.3f}" for v in r["val_accuracy_per_epoch"])
        print(f"{r['optimizer']:10} {r['best_val_accuracy']:12.4f} {per_epoch:>32} {r['final_train_accuracy']:10.4f} {r['minutes']:5.1f}")
    if args.json:
        args.json.write_text(json.dumps({"n_train": len(train), "n_val": len(val), "epochs": args.epochs, "runs": results}, indent=2))
    print(json.dumps({"n_train": len(train), "n_val": len(val), "epochs": args.epochs, "runs": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
