#!/usr/bin/env bash
# moodcam.service under a real systemd, on an x86_64 machine that does not boot with systemd:
# a Debian bookworm amd64 root (debootstrap) where install.sh installs moodcam, booted with
# systemd-nspawn. Inside, a probe unit starts moodcam.service with the demo camera and checks,
# with the very unit file install.sh ships (its sandbox included):
#   - Type=notify: `systemctl start` returns once the daemon sent READY=1, and STATUS= is shown;
#   - the daemon logs faces into /var/lib/moodcam with no network and no devices but the camera's;
#   - WatchdogSec=: a frozen daemon (SIGSTOP) is killed by the watchdog and restarted;
#   - `systemctl stop` (SIGTERM) ends it cleanly (Result=success).
#
#   sudo deploy/service-check.sh        # ~3-6 min; needs debootstrap and systemd-container
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR=""
MODEL=""
MIRROR=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift ;;
        --model) MODEL="$2"; shift ;;
        --source) SOURCE="$(cd "$2" && pwd)"; shift ;;
        --mirror) MIRROR="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; echo "Options: --dir DIR (default .amd64) --model PATH --source DIR --mirror URL"; exit 0 ;;
        *) echo "service-check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "service-check.sh: error: $*" >&2; exit 1; }
DIR="$(mkdir -p "${DIR:-$SOURCE/.amd64}" && cd "${DIR:-$SOURCE/.amd64}" && pwd)"
MODEL="${MODEL:-$SOURCE/models/default.tflite}"
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, systemd-nspawn)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn is missing: apt-get install systemd-container"
{ [ -f "$MODEL" ] && [ -f "${MODEL%.tflite}.json" ]; } || die "no model at $MODEL (+ .json sidecar): pass --model PATH"
T0=$SECONDS
phase() { printf '\n=== [%4ds] %s\n' "$((SECONDS - T0))" "$*"; }

# shellcheck source=deploy/chroot-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/chroot-lib.sh"   # unmount_under, cached_base
BASE="$DIR/base"
ROOTFS="$DIR/root"
cached_base "$BASE" "bookworm amd64 (with systemd)" debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,ca-certificates bookworm "$BASE" "$MIRROR"
phase "fresh root from the cached base"
unmount_under "$ROOTFS"
rm -rf --one-file-system "$ROOTFS"
cp -a "$BASE" "$ROOTFS"
echo moodcam-check >"$ROOTFS/etc/hostname"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then   # a TLS-inspecting proxy's CA
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
mkdir -p "$ROOTFS/src/moodcam" "$ROOTFS/src/model"
tar -C "$SOURCE" --exclude=./.git --exclude=./.arm64 --exclude=./.amd64 --exclude='./.venv*' --exclude=./models \
    --exclude='*/__pycache__' --exclude=./build --exclude='*.egg-info' -cf - . | tar -C "$ROOTFS/src/moodcam" -xf -
cp "$MODEL" "$ROOTFS/src/model/default.tflite"
cp "${MODEL%.tflite}.json" "$ROOTFS/src/model/default.json"

phase "install.sh --skip-pi-packages --no-start in the root"
mount -t proc proc "$ROOTFS/proc"
trap 'umount -l "$ROOTFS/proc" 2>/dev/null || true' EXIT
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    bash /src/moodcam/deploy/install.sh --skip-pi-packages --no-start --model /src/model/default.tflite
umount -l "$ROOTFS/proc"
trap - EXIT

# No camera here: the demo source. A shorter watchdog keeps the check quick; everything else
# is the shipped unit.
sed -i 's/^source = .*/source = "demo"/' "$ROOTFS/etc/moodcam/config.toml"
grep -q '^source = "demo"' "$ROOTFS/etc/moodcam/config.toml" || die "could not set camera.source = \"demo\""
mkdir -p "$ROOTFS/etc/systemd/system/moodcam.service.d"
printf '[Service]\nWatchdogSec=15\n' >"$ROOTFS/etc/systemd/system/moodcam.service.d/check.conf"
# moodcam is enabled by install.sh; the probe starts it itself, so it does not race the boot.
rm -f "$ROOTFS/etc/systemd/system/multi-user.target.wants/moodcam.service"

cat >"$ROOTFS/usr/local/bin/moodcam-probe" <<'EOF'
#!/bin/bash
# Runs inside the booted container; every line starting with PROBE is read by service-check.sh.
show() { systemctl show moodcam.service -p "$1" --value; }
say() { echo "PROBE $*"; }
start=$(date +%s%N)
if systemctl start moodcam.service; then
    say "start ok after $(( ($(date +%s%N) - start) / 1000000 )) ms state=$(show ActiveState)/$(show SubState)"
else
    say "start FAILED state=$(show ActiveState) result=$(show Result)"
    journalctl -u moodcam.service -o cat --no-pager | tail -40 | sed 's/^/PROBE journal: /'
    systemctl poweroff; exit 0
fi
sleep 20
say "after 20s state=$(show ActiveState)/$(show SubState) restarts=$(show NRestarts) status=$(show StatusText)"
say "sandbox: $(systemctl show moodcam.service -p PrivateNetwork -p DevicePolicy -p ProtectSystem -p User -p WatchdogUSec | tr '\n' ' ')"
say "state dir: $(ls -la /var/lib/moodcam | tail -n +2 | awk '{print $1, $3, $NF}' | tr '\n' ';')"
runuser -u moodcam -- /opt/moodcam/venv/bin/moodcam status --state /var/lib/moodcam 2>&1 | sed 's/^/PROBE status: /' | head -20
pid=$(show MainPID)
say "freezing pid $pid with SIGSTOP (watchdog 15s)"
kill -STOP "$pid"
for _ in $(seq 60); do
    sleep 1
    [ "$(show NRestarts)" -ge 1 ] && [ "$(show ActiveState)" = active ] && break
done
say "after freeze restarts=$(show NRestarts) state=$(show ActiveState)/$(show SubState) newpid=$(show MainPID)"
journalctl -u moodcam.service -o cat --no-pager | grep -iE 'watchdog' | head -3 | sed 's/^/PROBE journal: /'
systemctl stop moodcam.service
say "stopped result=$(show Result) state=$(show ActiveState) exit=$(show ExecMainCode)/$(show ExecMainStatus)"
journalctl -u moodcam.service -o cat --no-pager | tail -8 | sed 's/^/PROBE tail: /'
systemctl poweroff
EOF
chmod +x "$ROOTFS/usr/local/bin/moodcam-probe"
cat >"$ROOTFS/etc/systemd/system/moodcam-probe.service" <<'EOF'
[Unit]
Description=moodcam service check
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/moodcam-probe
StandardOutput=journal+console
TimeoutStartSec=600
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/moodcam-probe.service "$ROOTFS/etc/systemd/system/multi-user.target.wants/moodcam-probe.service"

phase "booting the root with systemd-nspawn"
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 timeout 900 systemd-nspawn -b -D "$ROOTFS" --register=no --keep-unit -q \
    2>&1 | tee "$DIR/boot.log" | grep --line-buffered -o 'PROBE .*' || true
phase "verdict"
fail=0
check() { if grep -oE 'PROBE .*' "$DIR/boot.log" | grep -qE "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
check "Type=notify start (READY=1)" '^PROBE start ok .* state=active/running'
check "still running after 20 s, STATUS= set" '^PROBE after 20s state=active/running restarts=0 status=.+'
check "watchdog restarts a frozen daemon" '^PROBE after freeze restarts=1 state=active'
check "clean stop on SIGTERM" '^PROBE stopped result=success state=inactive'
printf '  total %ds\n' "$((SECONDS - T0))"
exit "$fail"
