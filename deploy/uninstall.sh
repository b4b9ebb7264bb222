#!/usr/bin/env bash
# Remove moodcam's service, venv and units. The config (/etc/moodcam), the log and face crops
# (/var/lib/moodcam) and the user stay unless --purge.
#
#   sudo deploy/uninstall.sh             # keep config and data
#   sudo deploy/uninstall.sh --purge     # also delete config, data (all logged faces!) and user
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo deploy/uninstall.sh [OPTIONS]
  --purge        also delete /etc/moodcam, /var/lib/moodcam (every logged face) and the user moodcam
  --dry-run      print every step, change nothing
  --prefix DIR   where install.sh put the venv (default: /opt/moodcam)
  --root DIR     uninstall from a root made with install.sh --root DIR (tests)
EOF
}

DRY_RUN=0
PURGE=0
ROOT=""
PREFIX=/opt/moodcam
die() { printf 'uninstall.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/script-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/script-lib.sh"   # note, run, need_value, check_prefix_and_root
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) PURGE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --prefix) need_value "$@"; PREFIX="$2"; shift ;;
        --root) need_value "$@"; ROOT="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
check_prefix_and_root
if [ "${MOODCAM_EUID:-$(id -u)}" != 0 ] && [ "$DRY_RUN" = 0 ] && [ -z "$ROOT" ]; then
    die "must run as root: sudo $0 $*"
fi

UNITS=(moodcam.service moodcam-review.service)
if [ -n "$ROOT" ]; then
    run systemctl --root="$ROOT" disable "${UNITS[@]}"
elif [ -d /run/systemd/system ]; then
    run systemctl disable --now "${UNITS[@]}"
else
    run systemctl disable "${UNITS[@]}"
fi
for unit in "${UNITS[@]}"; do
    run rm -f "$ROOT/etc/systemd/system/$unit"
done
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
    run systemctl reset-failed "${UNITS[@]}" || true
fi
run rm -rf "$ROOT$PREFIX/venv"
if [ -d "$ROOT$PREFIX" ]; then run rmdir --ignore-fail-on-non-empty "$ROOT$PREFIX"; fi

if [ "$PURGE" = 1 ]; then
    run rm -rf "$ROOT/etc/moodcam" "$ROOT/var/lib/moodcam"
    run rm -f "$ROOT/etc/sysusers.d/moodcam.conf"
    if grep -q '^moodcam:' "$ROOT/etc/passwd" 2>/dev/null; then
        if [ -n "$ROOT" ]; then run userdel --prefix "$ROOT" moodcam; else run userdel moodcam; fi
    fi
    note "purged: config, data (every logged face) and the user moodcam are gone"
else
    note "kept: $ROOT/etc/moodcam (config), $ROOT/var/lib/moodcam (log, face crops, model) and the user moodcam;"
    note "delete them too with: sudo $0 --purge"
fi
