#!/bin/bash
# iso-manager.sh: adds a MetalK8s archive to this Bootstrap node, or
# removes one. A thin wrapper: metalk8s-installer verifies the archive,
# mounts it read-only at /srv/scality/<name>-<version> (persistently) and
# serves its repositories and registry, or undoes all of it.
# Source: scripts/iso/iso-manager.sh in the buildchain; see docs/installer.md.
set -euo pipefail

PROG=iso-manager.sh

usage() {
    cat <<USAGE
Usage: $PROG (-a|--add PATH | -d|--del PATH) [--verbose] [--dry-run] [--log-file FILE]

Add (verify, mount, persist, serve) or remove the MetalK8s archive PATH,
an ISO file or a directory. A relative PATH is from the current directory.

Options:
  -a, --add PATH    add the archive PATH
  -d, --del PATH    remove the archive PATH
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

action=
path=
set_action() {
    [[ -z $action ]] || bad "give one of -a/--add and -d/--del, once"
    [[ -n $2 ]] || bad "$3 needs a PATH"
    action=$1
    path=$2
}

args=()
while (($# > 0)); do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        -a | --add | -d | --del)
            (($# >= 2)) || bad "$1 needs a PATH"
            case $1 in -a | --add) set_action add "$2" "$1" ;; *) set_action remove "$2" "$1" ;; esac
            shift
            ;;
        --add=*) set_action add "${1#*=}" --add ;;
        --del=*) set_action remove "${1#*=}" --del ;;
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
[[ -n $action ]] || bad "give -a/--add PATH or -d/--del PATH"

if [[ -n ${METALK8S_INSTALLER_ROOT:-} ]]; then
    args+=(--root "$METALK8S_INSTALLER_ROOT")
fi
installer=$(find_installer) || exit 1
# The path stays as given: the installer resolves it from this same
# directory. "--" keeps a path starting with "-" an operand.
exec "$installer" ${args[@]+"${args[@]}"} archive "$action" -- "$path"
