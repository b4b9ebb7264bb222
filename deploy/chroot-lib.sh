#!/usr/bin/env bash
# Shared by arm64-check.sh and service-check.sh (sourced, not run): their debootstrapped roots.

# A run killed half-way can leave /proc, /sys or /dev mounted in the root: unmount them before
# deleting it, and never let rm cross into another file system (the host's /dev!).
unmount_under() {
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done \
        < <(awk -v r="$1" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
}

# cached_base BASE WHAT CMD...: debootstrap into BASE with CMD (a debootstrap command line, maybe
# wrapped, e.g. in `timed`) unless an earlier run finished it; WHAT names it in the progress line.
# The .debootstrap-done marker is written last, so a half-made base is started over.
cached_base() {
    local base="$1" what="$2"
    shift 2
    [ -f "$base/.debootstrap-done" ] && return 0
    phase "debootstrap $what into $base"
    unmount_under "$base"
    rm -rf --one-file-system "$base"
    "$@" || return   # no marker for a failed debootstrap, even where set -e is off
    touch "$base/.debootstrap-done"
}
