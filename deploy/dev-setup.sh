#!/usr/bin/env bash
# Development / CI setup on a desktop: a .venv with every extra (edge, trainer, review, tests).
# The Pi uses deploy/install.sh instead (edge extras only, no TensorFlow).
set -euo pipefail
cd "$(dirname "$0")/.."

# systemd-python (sd_notify and the journal) has no wheel: pip builds it against libsystemd, so a
# fresh Debian machine needs libsystemd-dev and pkg-config first, or pip stops with a long
# "Failed to build 'systemd-python'". Install them when apt and root (or sudo) are at hand.
if ! pkg-config --exists libsystemd 2>/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || command -v sudo >/dev/null; }; then
        echo "dev-setup: installing libsystemd-dev and pkg-config with apt (systemd-python builds against them)" >&2
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends libsystemd-dev pkg-config gcc
    else
        echo "dev-setup: error: systemd-python builds against libsystemd, which pkg-config does not find;" \
             "install libsystemd-dev and pkg-config (Debian names) as root and run this again" >&2
        exit 1
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all]'
