#!/usr/bin/env bash
# Shared by arm64-check.sh and service-check.sh (sourced, not run): their debootstrapped roots.

# A run killed half-way can leave /proc, /sys or /dev mounted in the root: unmount them before
# deleting it, and never let rm cross into another file system (the host's /dev!).
unmount_under() {
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done \
        < <(awk -v r="$1" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
}
