#!/usr/bin/env bash
# Build .bench/fer-venv: the `fer` package (PyPI "fer", latest) as a peer for bench/accuracy.py
# and bench/scene.py, kept out of the project's own environment.
#
# What fer runs: `FER()` defaults to use_tflite=True, i.e. its bundled
# fer/data/emotion_model_quantized.tflite (mini-Xception, 64x64 gray input, float I/O,
# dynamic-range weights) through TensorFlow's tf.lite.Interpreter, with an OpenCV Haar cascade
# for detection. So the venv needs TensorFlow (tensorflow-cpu here) and OpenCV.
#
# fer's declared dependencies also pull facenet-pytorch (MTCNN -> torch, ~1 GB), moviepy and
# ffmpeg-python (video), pandas and matplotlib; none is used by `from fer.fer import FER` with the
# Haar detector, so fer is installed with --no-deps and only what that import needs is added.
# setuptools<82: fer imports pkg_resources, which setuptools 82 removed.
# opencv-contrib-python-headless (fer asks for opencv-contrib-python): OpenCV 5 moved the Haar
# CascadeClassifier out of the main wheels into contrib, and no OpenCV 5 wheel ships cascade files,
# so fer_peer.py passes fer's own fer/data/haarcascade_frontalface_default.xml.
#
# Usage: bash bench/setup_fer.sh            (idempotent; re-run to rebuild after deleting the venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.bench/fer-venv
PY=${PYTHON:-python3.11}

if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p .bench
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q --no-deps fer
"$VENV/bin/python" -m pip install -q "setuptools<82" tensorflow-cpu opencv-contrib-python-headless pillow requests numpy

# Smoke check: the import the peer uses, the cascade it is given, the backend it runs.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from pathlib import Path
import fer.fer
from fer.fer import FER
cascade = Path(fer.fer.__file__).parent / "data" / "haarcascade_frontalface_default.xml"
assert cascade.is_file(), f"fer's bundled cascade is missing at {cascade}"
detector = FER(cascade_file=str(cascade))
print(f"fer {md.version('fer')} ready: tensorflow-cpu {md.version('tensorflow-cpu')}, "
      f"opencv {md.version('opencv-contrib-python-headless')}, backend tflite (use_tflite={detector.use_tflite})")
PY
