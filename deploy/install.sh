#!/usr/bin/env bash
# Install (or upgrade) moodcam as a hardened systemd service on Raspberry Pi OS Bookworm 64-bit.
#
#   sudo deploy/install.sh               # install, or upgrade in place (config and data are kept)
#   deploy/install.sh --dry-run          # print every step, change nothing
#   deploy/install.sh --help
#
# What it does, in order: checks the system (root, Debian 12 / Raspberry Pi OS 64-bit, a camera),
# installs the apt packages, creates the system user `moodcam` (group video) with systemd-sysusers,
# makes a venv with --system-site-packages (so apt's picamera2 and systemd bindings are importable)
# and installs moodcam with its edge extras (no TensorFlow) keeping numpy < 2, installs the config
# (never overwriting yours), the model and the unit files, then enables and (re)starts moodcam.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo deploy/install.sh [OPTIONS]

Install or upgrade moodcam as a systemd service (Raspberry Pi OS Bookworm 64-bit / Debian 12).
Running it again upgrades moodcam and keeps /etc/moodcam/config.toml and /var/lib/moodcam.

Options:
  --dry-run             print every step and change nothing (needs no root)
  --skip-pi-packages    do not install Raspberry Pi-only apt packages (python3-picamera2); for
                        plain Debian arm64/amd64, where only USB webcams (V4L2) will work
  --model PATH          the .tflite model to install, its .json sidecar beside it
                        (default: models/default.tflite of this checkout)
  --source DIR          the moodcam source tree to install (default: this checkout)
  --prefix DIR          where the venv goes (default: /opt/moodcam)
  --root DIR            install every file under DIR instead of / (tests, trial runs); skips
                        apt, the config check and starting the service, and needs no root
  --no-start            install and enable, but do not check the config or (re)start now
  --pip-args "ARGS"     extra arguments for pip install (e.g. "--no-index --find-links WHEELS")
  -h, --help            show this help

For tests, the system checks read MOODCAM_OS_RELEASE (default /etc/os-release),
MOODCAM_DPKG_ARCH (default: dpkg --print-architecture), MOODCAM_UNAME_M (default: uname -m),
MOODCAM_EUID (default: id -u) and MOODCAM_SYSFS (default /sys, for camera detection).
EOF
}

# ---------------------------------------------------------------- options and paths
DRY_RUN=0
SKIP_PI=0
NO_START=0
ROOT=""
PREFIX=/opt/moodcam
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL=""
PIP_EXTRA=""

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=deploy/script-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/script-lib.sh"   # note, run, need_value, check_prefix_and_root
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --skip-pi-packages) SKIP_PI=1 ;;
        --no-start) NO_START=1 ;;
        --model) need_value "$@"; MODEL="$2"; shift ;;
        --source) need_value "$@"; SOURCE="$2"; shift ;;
        --prefix) need_value "$@"; PREFIX="$2"; shift ;;
        --root) need_value "$@"; ROOT="$2"; shift ;;
        --pip-args) need_value "$@"; PIP_EXTRA="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done

check_prefix_and_root
if [ -n "$ROOT" ]; then NO_START=1; fi
{ [ -f "$SOURCE/pyproject.toml" ] && [ -d "$SOURCE/edge" ]; } \
    || die "--source $SOURCE is not a moodcam checkout (no pyproject.toml and edge/ there)"
MODEL="${MODEL:-$SOURCE/models/default.tflite}"
read -r -a PIP_ARGS <<<"$PIP_EXTRA"

# Paths on the target system; $ROOT prefixes every one of them on disk.
VENV="$PREFIX/venv"
CONF_DIR=/etc/moodcam
CONF="$CONF_DIR/config.toml"
STATE_DIR=/var/lib/moodcam
MODEL_DIR="$STATE_DIR/models"
UNIT_DIR=/etc/systemd/system
SYSUSERS_CONF=/etc/sysusers.d/moodcam.conf
SERVICE_USER=moodcam
APT_PACKAGES=(python3 python3-venv python3-systemd systemd ca-certificates)
PI_PACKAGES=(python3-picamera2)

OS_RELEASE="${MOODCAM_OS_RELEASE:-$ROOT/etc/os-release}"
SYSFS="${MOODCAM_SYSFS:-/sys}"
EUID_NOW="${MOODCAM_EUID:-$(id -u)}"

# ---------------------------------------------------------------- checks
step "Checking the system"

if [ "$EUID_NOW" != 0 ] && [ "$DRY_RUN" = 0 ] && [ -z "$ROOT" ]; then
    die "must run as root: sudo $0 $*  (or --dry-run to see the steps first)"
fi

[ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE: moodcam installs on Raspberry Pi OS Bookworm 64-bit or Debian 12 (bookworm)"
os_field() { sed -n "s/^$1=//p" "$OS_RELEASE" | tr -d '"' | head -n 1; }
OS_ID="$(os_field ID)"
OS_LIKE="$(os_field ID_LIKE)"
OS_VERSION="$(os_field VERSION_ID)"
OS_NAME="$(os_field PRETTY_NAME)"
case " $OS_ID $OS_LIKE " in
    *" debian "*|*" raspbian "*) ;;
    *) die "this is ${OS_NAME:-an unknown system} (ID=${OS_ID:-?}), not Debian: moodcam installs with apt on Raspberry Pi OS Bookworm 64-bit or Debian 12 (bookworm)" ;;
esac
if [ "$OS_ID" = debian ] || [ "$OS_ID" = raspbian ]; then
    case "$OS_VERSION" in
        ''|*[!0-9]*) die "$OS_RELEASE has VERSION_ID='$OS_VERSION'; moodcam needs Debian 12 (bookworm) or later (Python >= 3.11)" ;;
    esac
    [ "$OS_VERSION" -ge 12 ] || die "${OS_NAME:-this system} is Debian $OS_VERSION; moodcam needs Raspberry Pi OS Bookworm (Debian 12) or later for Python >= 3.11; reinstall with Raspberry Pi OS (64-bit) Bookworm"
    [ "$OS_VERSION" = 12 ] || warn "tested on Debian 12 (bookworm); this is ${OS_NAME:-Debian $OS_VERSION}"
else
    warn "${OS_NAME:-this system} is Debian-like but not Debian; tested on Raspberry Pi OS Bookworm 64-bit and Debian 12"
fi

DPKG_ARCH="${MOODCAM_DPKG_ARCH:-$(dpkg --print-architecture 2>/dev/null || echo unknown)}"
UNAME_M="${MOODCAM_UNAME_M:-$(uname -m)}"
case "$DPKG_ARCH" in
    arm64|amd64) ;;
    armhf|armel|i386)
        hint=""
        case "$UNAME_M" in aarch64|arm64|x86_64) hint=" (the kernel is 64-bit, $UNAME_M, but the OS is 32-bit)" ;; esac
        die "this is a 32-bit OS ($DPKG_ARCH)$hint: moodcam needs Raspberry Pi OS (64-bit) Bookworm, because dlib-bin and LiteRT (ai-edge-litert) publish no 32-bit ARM wheels; flash 'Raspberry Pi OS (64-bit)' with Raspberry Pi Imager (a Pi 3 runs it)" ;;
    *) die "unsupported architecture '$DPKG_ARCH' (uname -m: $UNAME_M): moodcam runs on arm64 (Raspberry Pi OS 64-bit) or amd64" ;;
esac
note "system: ${OS_NAME:-$OS_ID $OS_VERSION}, $DPKG_ARCH ($UNAME_M)"

IS_PI_OS=0
if grep -Rqs 'archive\.raspberrypi\.\(com\|org\)' "$ROOT/etc/apt/sources.list" "$ROOT/etc/apt/sources.list.d" 2>/dev/null; then
    IS_PI_OS=1
fi
if [ "$SKIP_PI" = 1 ]; then
    note "skipping Raspberry Pi-only packages (${PI_PACKAGES[*]}): the Pi camera will not work, USB webcams (V4L2) will"
elif [ "$IS_PI_OS" = 1 ]; then
    APT_PACKAGES+=("${PI_PACKAGES[@]}")
    note "Raspberry Pi OS: will install ${PI_PACKAGES[*]} from archive.raspberrypi.com"
else
    die "${PI_PACKAGES[*]} (the Pi camera) comes only from Raspberry Pi's apt archive, which this system does not use: on Raspberry Pi OS it is configured already; on plain Debian pass --skip-pi-packages (USB webcams still work)"
fi

# A camera: a video4linux node that is not one of the Pi's codec/ISP nodes (those exist without one).
cameras=()
for node in "$SYSFS"/class/video4linux/video*; do
    [ -r "$node/name" ] || continue
    name="$(head -n 1 "$node/name")"
    case "$name" in bcm2835-codec*|bcm2835-isp*|rpivid*|rpi-hevc*|pispbe*) continue ;; esac
    cameras+=("$(basename "$node") ($name)")
done
if [ "${#cameras[@]}" -eq 0 ]; then
    warn "no camera detected (no video4linux capture device under $SYSFS/class/video4linux): installing anyway; connect the Pi camera (ribbon cable, camera_auto_detect=1 in /boot/firmware/config.txt) or a USB webcam and reboot, or set camera.source in $CONF"
else
    note "camera: ${cameras[*]}"
fi

[ -f "$MODEL" ] || die "no model at $MODEL: pass --model PATH to a .tflite exported by 'moodcam-train export' (its .json sidecar beside it)"
MODEL_JSON="${MODEL%.tflite}.json"
[ -f "$MODEL_JSON" ] || die "$MODEL_JSON is missing: the model's .json sidecar must sit beside $MODEL"
# The daemon refuses a model that does not match its sidecar; say so now, not at first start.
want_sha="$(sed -n 's/.*"tflite_sha256"[[:space:]]*:[[:space:]]*"\([0-9a-f]*\)".*/\1/p' "$MODEL_JSON" | head -n 1)"
have_sha="$(sha256sum "$MODEL" | cut -d' ' -f1)"
[ "$want_sha" = "$have_sha" ] || die "$MODEL does not match its sidecar $MODEL_JSON (sha256 ${have_sha:0:16}..., the sidecar says ${want_sha:0:16}...): copy both files again, or re-export the model"
note "model: $MODEL (sha256 ${have_sha:0:16}... matches its sidecar)"
[ -f "$SOURCE/deploy/config.example.toml" ] || die "$SOURCE/deploy/config.example.toml is missing: is $SOURCE a complete moodcam checkout?"

if [ "$DRY_RUN" = 1 ]; then note "dry run: nothing below is executed"; fi

# ---------------------------------------------------------------- apt
step "Installing apt packages"
if [ -n "$ROOT" ]; then
    note "--root: skipped (install these in the target system: ${APT_PACKAGES[*]})"
else
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -q
    run apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
fi

# ---------------------------------------------------------------- user
step "Creating the system user $SERVICE_USER (group video)"
# systemd-sysusers is idempotent and also works on an offline root (--root); the same file
# recreates the user at boot if an image is built with --root.
SYSUSERS_TMP="$(mktemp)"
trap 'rm -f "$SYSUSERS_TMP"' EXIT
cat >"$SYSUSERS_TMP" <<EOF
# moodcam: the camera daemon's user; in group video for /dev/video*, /dev/media*, /dev/dma_heap/*
u $SERVICE_USER - "moodcam camera daemon" $STATE_DIR /usr/sbin/nologin
m $SERVICE_USER video
EOF
sed 's/^/    | /' "$SYSUSERS_TMP"
run install -D -m 0644 "$SYSUSERS_TMP" "$ROOT$SYSUSERS_CONF"
if [ -n "$ROOT" ]; then
    run systemd-sysusers --root="$ROOT" moodcam.conf
else
    run systemd-sysusers moodcam.conf
fi
# chown needs numeric ids under --root (the user exists in $ROOT/etc/passwd, not on this host).
owner() {
    local uid gid
    uid="$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$ROOT/etc/passwd" 2>/dev/null || true)"
    gid="$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $4 }' "$ROOT/etc/passwd" 2>/dev/null || true)"
    if [ -n "$uid" ]; then echo "$uid:$gid"; else echo "$SERVICE_USER:$SERVICE_USER"; fi
}
chown_service() {   # chown_service PATH: hand PATH (recursively) to the service user, when we are root
    if [ "$EUID_NOW" = 0 ] || [ "$DRY_RUN" = 1 ]; then
        run chown -R "$(owner)" "$1"
    else
        note "not root: leaving $1 owned by $(id -un)"
    fi
}

# ---------------------------------------------------------------- venv + moodcam
step "Installing moodcam into $VENV (edge extras, numpy < 2)"
if [ -f "$ROOT$VENV/pyvenv.cfg" ] && grep -q '^include-system-site-packages = true' "$ROOT$VENV/pyvenv.cfg"; then
    note "$VENV exists: upgrading it in place"
else
    run python3 -m venv --system-site-packages "$ROOT$VENV"
fi
# pip builds in the source tree (build/, *.egg-info); a clean copy keeps stale build output of
# an older checkout out of the wheel and leaves the checkout as it was.
BUILD_TMP="$(mktemp -d)"
trap 'rm -f "$SYSUSERS_TMP"; rm -rf "$BUILD_TMP"' EXIT
printf '+ (copy %s without .git, venvs, build output and models to %s)\n' "$SOURCE" "$BUILD_TMP/moodcam"
if [ "$DRY_RUN" = 0 ]; then
    mkdir "$BUILD_TMP/moodcam"
    tar -C "$SOURCE" --exclude=./.git --exclude='./.venv*' --exclude=./.arm64 --exclude=./.amd64 --exclude=./models \
        --exclude=./build --exclude='*.egg-info' --exclude='*/__pycache__' -cf - . | tar -C "$BUILD_TMP/moodcam" -xf -
fi
# edge: the daemon (dlib-bin, LiteRT, OpenCV); review: the review page; mqtt and metrics: two small
# pure-Python packages, imported only when the config turns them on. Never TensorFlow.
run "$ROOT$VENV/bin/python" -m pip install --upgrade --prefer-binary --disable-pip-version-check \
    --constraint "$SOURCE/deploy/constraints-pi.txt" "${PIP_ARGS[@]}" "$BUILD_TMP/moodcam[edge,review,mqtt,metrics]"

# ---------------------------------------------------------------- config
step "Installing the config ($CONF)"
run install -d -m 0755 "$ROOT$CONF_DIR"
# The annotated example is always refreshed; config.toml is yours once it exists.
run install -m 0644 "$SOURCE/deploy/config.example.toml" "$ROOT$CONF_DIR/config.example.toml"
if [ -e "$ROOT$CONF" ]; then
    note "keeping your $CONF (every key, with its default, is in $CONF_DIR/config.example.toml)"
else
    run install -m 0640 "$SOURCE/deploy/config.example.toml" "$ROOT$CONF"
    if [ "$EUID_NOW" = 0 ] || [ "$DRY_RUN" = 1 ]; then run chown "root:$(owner | cut -d: -f2)" "$ROOT$CONF"; fi
fi

# ---------------------------------------------------------------- state + model
step "Installing the model and the state directory ($STATE_DIR)"
run install -d -m 0700 "$ROOT$STATE_DIR"
run install -d -m 0700 "$ROOT$MODEL_DIR"
# The shipped model is replaced on upgrade; a model of your own goes elsewhere (classifier.model).
run install -m 0644 "$MODEL" "$ROOT$MODEL_DIR/default.tflite"
run install -m 0644 "$MODEL_JSON" "$ROOT$MODEL_DIR/default.json"
chown_service "$ROOT$STATE_DIR"

# ---------------------------------------------------------------- units
step "Installing the systemd units"
install_unit() {   # the units name /opt/moodcam; --prefix rewrites it
    local name="$1"
    if [ "$PREFIX" = /opt/moodcam ]; then
        run install -m 0644 "$SOURCE/deploy/$name" "$ROOT$UNIT_DIR/$name"
    else
        printf '+ sed %q %q > %q\n' "s#/opt/moodcam/#$PREFIX/#g" "$SOURCE/deploy/$name" "$ROOT$UNIT_DIR/$name"
        if [ "$DRY_RUN" = 0 ]; then sed "s#/opt/moodcam/#$PREFIX/#g" "$SOURCE/deploy/$name" >"$ROOT$UNIT_DIR/$name"; fi
    fi
}
run install -d -m 0755 "$ROOT$UNIT_DIR"
install_unit moodcam.service
install_unit moodcam-review.service
if [ -n "$ROOT" ]; then
    run systemctl --root="$ROOT" enable moodcam.service
else
    # Only a running systemd can reload; in a chroot, enabling (symlinks) is all there is to do.
    if [ -d /run/systemd/system ]; then run systemctl daemon-reload; fi
    run systemctl enable moodcam.service
fi
note "moodcam-review.service is installed but not enabled: it runs only when you start it"

# ---------------------------------------------------------------- check + start
step "Starting moodcam"
if [ "$NO_START" = 1 ]; then
    note "not started (--no-start or --root): it starts at the next boot, or: sudo systemctl start moodcam"
else
    # A broken config must not take down a running daemon on upgrade: check it first.
    run "$VENV/bin/moodcam" check-config "$CONF" \
        || die "$CONF is invalid (see above): fix it and run install.sh again; the running service was left alone"
    if [ -d /run/systemd/system ]; then
        run systemctl restart moodcam.service
        if [ "$DRY_RUN" = 0 ] && ! systemctl is-active --quiet moodcam.service; then
            journalctl -u moodcam.service -n 30 --no-pager >&2 || true
            die "moodcam.service did not start (journal above): sudo systemctl status moodcam"
        fi
    else
        note "systemd is not running here (chroot or container): moodcam is enabled and starts at the next boot"
    fi
fi

# ---------------------------------------------------------------- done
cat <<EOF

moodcam is installed$([ "$DRY_RUN" = 1 ] && echo " (dry run: nothing was changed)").
  Follow the daemon (a status line per minute: fps, faces, logged rows, disk use):
      journalctl -u moodcam -f
  The same figures from the store:
      sudo -u $SERVICE_USER $VENV/bin/moodcam status --state $STATE_DIR
  Settings: $CONF  (then: sudo systemctl restart moodcam)
  Review the log: sudo systemctl start moodcam-review   (127.0.0.1:8080 on the Pi), then on your desktop:
      ssh -L 8080:127.0.0.1:8080 ${SUDO_USER:-pi}@$(hostname 2>/dev/null || echo raspberrypi).local
  and open http://127.0.0.1:8080/ ; stop it afterwards: sudo systemctl stop moodcam-review
EOF
