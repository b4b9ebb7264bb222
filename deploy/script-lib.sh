# shellcheck shell=bash
# Shared by install.sh and uninstall.sh (sourced, not run): printing and running steps, and the
# option checks both make. Each script defines its own die() and DRY_RUN, so errors carry the
# script's name.

note() { printf '    %s\n' "$*"; }

# Every action goes through run: printed first (shell-quoted, ready to copy), executed unless --dry-run.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

# need_value OPTION [VALUE ...]: an option that takes a value got a non-empty one.
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

# --prefix must be absolute (it ends up in unit files); a relative --root (a test root) is made
# absolute and loses its trailing slash so "$ROOT$PREFIX" joins cleanly.
check_prefix_and_root() {
    case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
    if [ -n "$ROOT" ]; then
        case "$ROOT" in /*) ;; *) ROOT="$(pwd)/$ROOT" ;; esac
        ROOT="${ROOT%/}"
    fi
}
