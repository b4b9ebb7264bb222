#!/usr/bin/env bash
# Check once that an exported int8 model loads in tflite-runtime 2.14 (what users without
# ai-edge-litert have; it needs numpy<2) and gives the same outputs as ai-edge-litert.
#
# Usage: bash bench/check_tflite_runtime.sh [MODEL.tflite]     (default: models/default.tflite)
# Builds .bench/tflrt-venv (gitignored) on first use: python3.11 + tflite-runtime==2.14.0 + numpy<2
# (tflite-runtime 2.14 publishes cp311 manylinux x86_64 wheels and is built against numpy 1.x).
# The project's side runs with $PYTHON (default: .venv/bin/python, else /work/venv/bin/python).
#
# Inputs: FER2013 PublicTest faces when the shared data is here (tests/shared_data.py finds it;
# then accuracies are printed too), else 200 seeded noise pictures. Three runs, one thread each:
#   tflite-runtime 2.14 | ai-edge-litert with TFLite's built-in int8 kernels | ai-edge-litert as
#   the edge runs it (default XNNPACK delegate, which requantizes int8 with its own rounding).
# Pass (exit 0): tflite-runtime matches LiteRT's built-in kernels bit for bit (the same reference
# kernels: the compatibility question), and, on labelled faces, its accuracy is within 0.5 point of
# LiteRT as the edge runs it. Top-1 agreement with XNNPACK is printed but not judged: it measures
# XNNPACK's own requantization rounding (98.6% on the shipped model, 99.2% on an early one), which
# is a LiteRT-vs-LiteRT difference, not a tflite-runtime one. Anything else: exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/default.tflite}
[ -f "$MODEL" ] || { echo "no model at $MODEL; pass the path of an exported .tflite" >&2; exit 2; }
VENV=.bench/tflrt-venv
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p .bench
    "${VENV_PYTHON:-python3.11}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q "tflite-runtime==2.14.0" "numpy<2"
fi
PROJECT_PY=${PYTHON:-}
if [ -z "$PROJECT_PY" ]; then
    if [ -x .venv/bin/python ]; then PROJECT_PY=.venv/bin/python; else PROJECT_PY=/work/venv/bin/python; fi
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FACES=()
if PYTHONPATH=. "$PROJECT_PY" - "$TMP/faces.npz" <<'PY'
import sys
import numpy as np
from tests.shared_data import data_root
root = data_root()
if root is None or not (root / "fer2013" / "val").is_dir():
    sys.exit(1)
from trainer.data.datasets import load_face_folder
ds = load_face_folder(root / "fer2013" / "val")
np.savez(sys.argv[1], faces=ds.faces, labels=ds.labels)
PY
then FACES=(--faces "$TMP/faces.npz" --n 100000); fi
"$VENV/bin/python" bench/tflite_outputs.py "$MODEL" --runtime tflite-runtime --out "$TMP/tflrt.npz" "${FACES[@]}"
"$PROJECT_PY" bench/tflite_outputs.py "$MODEL" --runtime ai-edge-litert --builtin-kernels --out "$TMP/builtin.npz" "${FACES[@]}"
"$PROJECT_PY" bench/tflite_outputs.py "$MODEL" --runtime ai-edge-litert --out "$TMP/litert.npz" "${FACES[@]}"
"$PROJECT_PY" - "$TMP" <<'PY'
import sys
from pathlib import Path
import numpy as np
tmp = Path(sys.argv[1])
out = {name: np.load(tmp / f"{name}.npz")["outputs"].astype(int) for name in ("tflrt", "builtin", "litert")}
scale = float(np.load(tmp / "litert.npz")["scale"])
labels = np.load(tmp / "faces.npz")["labels"] if (tmp / "faces.npz").exists() else None

def compare(a, b):
    delta = np.abs(out[a] - out[b])
    top1 = float(np.mean(out[a].argmax(1) == out[b].argmax(1)))
    return delta, top1

same_builtin = not compare("tflrt", "builtin")[0].any()
delta, top1 = compare("tflrt", "litert")
print(f"tflite-runtime 2.14 vs ai-edge-litert built-in kernels: {'bit-identical' if same_builtin else 'DIFFERENT'} "
      f"on {len(out['tflrt'])} inputs")
print(f"tflite-runtime 2.14 vs ai-edge-litert default (XNNPACK): {int((delta > 0).sum())} of {delta.size} int8 outputs "
      f"differ (max {int(delta.max())} steps = {delta.max() * scale:.4f} probability), top-1 agreement {top1:.2%}")
if labels is not None:
    accs = {name: float(np.mean(o.argmax(1) == labels)) for name, o in out.items()}
    print("FER2013 PublicTest accuracy: " + ", ".join(f"{n} {a:.2%}" for n, a in
          zip(("tflite-runtime", "litert built-in", "litert XNNPACK"), accs.values())))
ok = same_builtin and (labels is None or abs(accs["tflrt"] - accs["litert"]) <= 0.005)
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
