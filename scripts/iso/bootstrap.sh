#!/bin/bash
# bootstrap.sh (MetalK8s docs, chapter 3.3.1): deploys the Bootstrap node
# from this ISO. A thin wrapper: metalk8s-installer verifies, mounts and
# serves every archive of /etc/metalk8s/bootstrap.yaml (products.metalk8s).
# Source: scripts/iso/bootstrap.sh in the buildchain; see docs/installer.md.
set -euo pipefail

PROG=bootstrap.sh

usage() {
    cat <<USAGE
Usage: $PROG [--verbose] [--dry-run] [--log-file FILE]

Verify, mount and serve the MetalK8s archives listed in
/etc/metalk8s/bootstrap.yaml (products.metalk8s).

Options:
  --verbose         log to stderr too
  --dry-run         report what would change, change nothing
  --log-file FILE   append the log to FILE (default /var/log/metalk8s/installer.log)
  -h, --help        print this help and exit

Environment:
  METALK8S_INSTALLER       the installer to run (default: bin/metalk8s-installer
                           on this ISO, else /usr/bin/metalk8s-installer)
  METALK8S_INSTALLER_ROOT  every node path under this directory instead of /
USAGE
}

bad() {
    echo "$PROG: $*" >&2
    usage >&2
    exit 2
}

# find_installer prints the installer to run: the one given, the static
# binary shipped on this ISO beside the script (found through symlinks to
# the script), or the one of the metalk8s-installer RPM.
find_installer() {
    if [[ -n ${METALK8S_INSTALLER:-} ]]; then
        printf '%s\n' "$METALK8S_INSTALLER"
        return
    fi
    local self dir
    self=$(readlink -f -- "${BASH_SOURCE[0]}" 2>/dev/null) || self=${BASH_SOURCE[0]}
    dir=$(cd -P -- "$(dirname -- "$self")" && pwd -P)
    local candidate
    for candidate in "$dir/bin/metalk8s-installer" /usr/bin/metalk8s-installer; do
        if [[ -x $candidate ]]; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    echo "$PROG: metalk8s-installer not found: neither $dir/bin/metalk8s-installer (on the ISO)" \
        "nor /usr/bin/metalk8s-installer (the metalk8s-installer package)" >&2
    return 1
}

args=()
while (($# > 0)); do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        --verbose) args+=(--verbose) ;;
        --dry-run) args+=(--dry-run) ;;
        --log-file)
            (($# >= 2)) || bad "$1 needs a FILE"
            args+=(--log-file "$2")
            shift
            ;;
        --log-file=*) args+=(--log-file "${1#*=}") ;;
        *) bad "unknown argument: $1" ;;
    esac
    shift
done

if [[ -n ${METALK8S_INSTALLER_ROOT:-} ]]; then
    args+=(--root "$METALK8S_INSTALLER_ROOT")
fi
installer=$(find_installer) || exit 1
# ${args[@]+...}: an empty array is "unbound" to set -u before bash 4.4.
exec "$installer" ${args[@]+"${args[@]}"} bootstrap
