#!/usr/bin/env bash
# Development / CI setup on a desktop: a .venv with every extra (edge, trainer, review, tests).
# The Pi uses deploy/install.sh instead (edge extras only, no TensorFlow).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all]'
