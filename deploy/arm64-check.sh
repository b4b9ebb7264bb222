#!/usr/bin/env bash
# The edge install on arm64, for real, on an x86_64 machine: a Debian bookworm arm64 root made
# with debootstrap and run through qemu-user-static, where deploy/install.sh (Raspberry Pi-only
# packages skipped) installs moodcam from PyPI's aarch64 wheels; then `moodcam classify` on a
# test picture (skimage's astronaut, one face) must give the same labels as on this machine.
#
#   sudo deploy/arm64-check.sh                 # ~15-40 min under qemu; prints timings
#   MOODCAM_ARM64_CHECK=1 pytest -m arm64      # the same, from the test suite
#
# Needs (Debian): apt-get install debootstrap qemu-user-static binfmt-support
# The debootstrapped base is cached in $DIR/base and copied for every run; --reuse keeps the
# previous run's root instead, so install.sh runs a second time over it (the upgrade path).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo deploy/arm64-check.sh [OPTIONS]
  --dir DIR        work folder (default: .arm64 in the checkout; gitignored), ~1.5 GB
  --model PATH     the .tflite to install and compare (default: models/default.tflite)
  --source DIR     the moodcam checkout to install (default: this one)
  --host-python P  the Python that classifies on this machine (default: .venv/bin/python, else python3)
  --picture PATH   the test picture (default: skimage.data.astronaut(), written as PNG)
  --mirror URL     Debian mirror (default: http://deb.debian.org/debian)
  --reuse          keep the previous arm64 root: install.sh runs again over it (upgrade)
EOF
}

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR=""
MODEL=""
HOST_PY=""
PICTURE=""
MIRROR=http://deb.debian.org/debian
REUSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift ;;
        --model) MODEL="$2"; shift ;;
        --source) SOURCE="$(cd "$2" && pwd)"; shift ;;
        --host-python) HOST_PY="$2"; shift ;;
        --picture) PICTURE="$2"; shift ;;
        --mirror) MIRROR="$2"; shift ;;
        --reuse) REUSE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "arm64-check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
DIR="$(mkdir -p "${DIR:-$SOURCE/.arm64}" && cd "${DIR:-$SOURCE/.arm64}" && pwd)"
MODEL="${MODEL:-$SOURCE/models/default.tflite}"
if [ -z "$HOST_PY" ]; then
    if [ -x "$SOURCE/.venv/bin/python" ]; then HOST_PY="$SOURCE/.venv/bin/python"; else HOST_PY=python3; fi
fi

die() { echo "arm64-check.sh: error: $*" >&2; exit 1; }
T0=$SECONDS
phase() { printf '\n=== [%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
declare -A TIMES
timed() {   # timed NAME CMD...: run and record how long it took
    local name="$1" start=$SECONDS
    shift
    "$@"
    TIMES[$name]=$((SECONDS - start))
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts): sudo $0"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap qemu-user-static binfmt-support"
[ -x /usr/bin/qemu-aarch64-static ] || [ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] \
    || die "qemu-user-static is missing: apt-get install qemu-user-static binfmt-support"
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi
grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "binfmt_misc has no enabled qemu-aarch64 entry: apt-get install binfmt-support qemu-user-static; update-binfmts --enable qemu-aarch64"
{ [ -f "$MODEL" ] && [ -f "${MODEL%.tflite}.json" ]; } || die "no model at $MODEL (+ .json sidecar): pass --model PATH"

# shellcheck source=deploy/chroot-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/chroot-lib.sh"   # unmount_under, cached_base
BASE="$DIR/base"
ROOTFS="$DIR/root"

# ---------------------------------------------------------------- the arm64 root
cached_base "$BASE" "bookworm arm64" timed debootstrap debootstrap --arch=arm64 --variant=minbase \
    --include=ca-certificates bookworm "$BASE" "$MIRROR"

MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { mkdir -p "$2"; mount --bind "$1" "$2"; MOUNTS+=("$2"); }

if [ "$REUSE" = 1 ] && [ -d "$ROOTFS/opt/moodcam" ]; then
    phase "reusing $ROOTFS (install.sh runs again: the upgrade path)"
else
    phase "fresh root: $ROOTFS from the cached base"
    unmount_under "$ROOTFS"
    rm -rf --one-file-system "$ROOTFS"
    # debootstrap can leave the base's /proc mounted: copied, it would be the host's whole /proc.
    unmount_under "$BASE"
    cp -a --one-file-system "$BASE" "$ROOTFS"
fi
mkdir -p "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"
mount -t proc proc "$ROOTFS/proc"; MOUNTS+=("$ROOTFS/proc")
bind /sys "$ROOTFS/sys"
bind /dev "$ROOTFS/dev"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# Trust what this machine trusts (a TLS-inspecting proxy's CA, say), or pip cannot reach PyPI.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    # Appended directly: update-ca-certificates takes minutes under qemu (a process per cert);
    # the copies above keep them in the bundle when a package later regenerates it.
    cat /usr/local/share/ca-certificates/*.crt >>"$ROOTFS/etc/ssl/certs/ca-certificates.crt"
fi
# No init runs in a chroot: keep package scripts from trying to start services.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"

phase "copying the source, the model and the test picture into the root"
rm -rf "$ROOTFS/src"
mkdir -p "$ROOTFS/src/moodcam" "$ROOTFS/src/model" "$ROOTFS/src/pictures"
tar -C "$SOURCE" --exclude=./.git --exclude=./.arm64 --exclude=./.amd64 --exclude='./.venv*' --exclude=./models \
    --exclude='*/__pycache__' --exclude=./build --exclude='*.egg-info' -cf - . | tar -C "$ROOTFS/src/moodcam" -xf -
cp "$MODEL" "$ROOTFS/src/model/default.tflite"
cp "${MODEL%.tflite}.json" "$ROOTFS/src/model/default.json"
if [ -n "$PICTURE" ]; then
    cp "$PICTURE" "$ROOTFS/src/pictures/"
else
    "$HOST_PY" -c 'import sys, skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save(sys.argv[1])' \
        "$ROOTFS/src/pictures/astronaut.png"
fi
PIC_NAME="$(ls "$ROOTFS/src/pictures")"

phase "install.sh --skip-pi-packages inside the arm64 root (qemu-aarch64)"
echo "uname -m in the root: $(chroot "$ROOTFS" uname -m), dpkg: $(chroot "$ROOTFS" dpkg --print-architecture)"
timed install chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt bash /src/moodcam/deploy/install.sh --skip-pi-packages --model /src/model/default.tflite

phase "what got installed (no TensorFlow, numpy < 2)"
chroot "$ROOTFS" /opt/moodcam/venv/bin/python -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(numpy|opencv-python-headless|dlib-bin|ai-edge-litert|scikit-image|fastapi|uvicorn|moodcam|tensorflow) ' || true
chroot "$ROOTFS" /opt/moodcam/venv/bin/python -c 'import numpy, systemd.daemon; print("numpy", numpy.__version__, "| systemd-python from", systemd.daemon.__file__)'
if chroot "$ROOTFS" /opt/moodcam/venv/bin/python -c 'import tensorflow' 2>/dev/null; then die "TensorFlow is importable in the Pi venv"; fi
ls -l "$ROOTFS/etc/systemd/system/multi-user.target.wants/moodcam.service"
chroot "$ROOTFS" id moodcam

phase "moodcam classify on arm64 (qemu) and on $(uname -m)"
# Unbind the host's /sys first: with it, LiteRT's cpuinfo reads the x86_64 host's CPU topology
# while qemu emulates arm64, picks kernels the emulation cannot run, and the process segfaults
# (seen here every time; without /sys it falls back cleanly, as on a real Pi, which has its own).
umount -l "$ROOTFS/sys" 2>/dev/null || true
timed classify_arm64 chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
    /opt/moodcam/venv/bin/moodcam classify --json --model /var/lib/moodcam/models/default.tflite \
    "/src/pictures/$PIC_NAME" >"$DIR/classify-arm64.jsonl"
timed classify_host env PYTHONPATH="$SOURCE" "$HOST_PY" -m edge classify --json --model "$MODEL" \
    "$ROOTFS/src/pictures/$PIC_NAME" >"$DIR/classify-x86_64.jsonl"

"$HOST_PY" - "$DIR/classify-arm64.jsonl" "$DIR/classify-x86_64.jsonl" <<'EOF'
import json, sys

def faces(path):
    out = []
    for line in open(path):
        if line.strip():
            out += json.loads(line).get("faces", [])
    return out

arm, x86 = faces(sys.argv[1]), faces(sys.argv[2])
print("arm64 :", [(f["label"], f["confidence"], f["box"]) for f in arm])
print("x86_64:", [(f["label"], f["confidence"], f["box"]) for f in x86])
if not arm:
    sys.exit("no face found on arm64: the check needs a picture with a face")
diff = max(abs(a["probs"][k] - b["probs"][k]) for a, b in zip(arm, x86) for k in a["probs"]) if len(arm) == len(x86) else None
if [f["label"] for f in arm] != [f["label"] for f in x86] or [f["box"] for f in arm] != [f["box"] for f in x86]:
    sys.exit("DIFFERENT labels or boxes on arm64 and x86_64")
print(f"same labels and boxes on arm64 and x86_64 (largest probability difference {diff:.4f})")
EOF

phase "done"
for name in debootstrap install classify_arm64 classify_host; do
    if [ -n "${TIMES[$name]:-}" ]; then printf '  %-15s %5ds\n' "$name" "${TIMES[$name]}"; fi
done
printf '  %-15s %5ds\n' total "$((SECONDS - T0))"
