#!/usr/bin/env bash
# Check once that an exported int8 model loads in tflite-runtime 2.14 (what users without
# ai-edge-litert have; it needs numpy<2) and gives the same outputs as ai-edge-litert.
#
# Usage: bash bench/check_tflite_runtime.sh [MODEL.tflite]     (default: models/default.tflite)
# Builds .bench/tflrt-venv (gitignored) on first use: python3.11 + tflite-runtime==2.14.0 + numpy<2
# (tflite-runtime 2.14 publishes cp311 manylinux x86_64 wheels and is built against numpy 1.x).
# The project's side runs with $PYTHON (default: .venv/bin/python, else /work/venv/bin/python).
# Exit status 0 when every int8 output is within one quantization step of LiteRT's (kernels may
# round an intermediate differently: XNNPACK vs the reference ops), 1 otherwise.
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
"$VENV/bin/python" bench/tflite_outputs.py "$MODEL" --runtime tflite-runtime --out "$TMP/tflrt.npz"
"$PROJECT_PY" bench/tflite_outputs.py "$MODEL" --runtime ai-edge-litert --out "$TMP/litert.npz"
"$PROJECT_PY" - "$TMP/tflrt.npz" "$TMP/litert.npz" <<'PY'
import sys
import numpy as np
a, b = (np.load(p)["outputs"] for p in sys.argv[1:3])
delta = np.abs(a.astype(int) - b.astype(int))
top1 = float(np.mean(a.argmax(1) == b.argmax(1)))
verdict = "IDENTICAL" if not delta.any() else "EQUIVALENT (within 1 int8 step)" if delta.max() <= 1 else "DIFFERENT"
print(f"{verdict}: {len(a)} inputs x {a.shape[1]} outputs, {int((delta > 0).sum())} values differ, "
      f"max |int8 difference| {int(delta.max())}, top-1 agreement {top1:.1%}")
sys.exit(0 if delta.max() <= 1 else 1)
PY
