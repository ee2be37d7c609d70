#!/bin/bash
# solution-manager.sh (MetalK8s docs, chapter 12.4): installs a Solution
# archive on this cluster, or removes one. A thin wrapper:
# metalk8s-installer validates the Solution before it is mounted, mounts
# and serves it, records it in /etc/metalk8s/solutions.yaml and deploys its
# CRDs and UI, or undoes all of it.
# Source: scripts/iso/solution-manager.sh in the buildchain; see docs/installer.md.
set -euo pipefail

PROG=solution-manager.sh

usage() {
    cat <<USAGE
Usage: $PROG (-a|--add ISO | -d|--del ISO) [--kubeconfig FILE] [--verbose] [--dry-run] [--log-file FILE]

Add (validate, mount, serve, deploy) or remove the Solution archive ISO.
A relative ISO is from the current directory.

Options:
  -a, --add ISO       add the Solution ISO
  -d, --del ISO       remove the Solution ISO
  --kubeconfig FILE   deploy its CRDs and UI through this API (default:
                      \$KUBECONFIG, else /etc/kubernetes/admin.conf when it
                      exists; with neither, the manifests are written to a
                      directory the installer names)
  --verbose           log to stderr too
  --dry-run           report what would change, change nothing
  --log-file FILE     append the log to FILE (default /var/log/metalk8s/installer.log)
  -h, --help          print this help and exit

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
iso=
set_action() {
    [[ -z $action ]] || bad "give one of -a/--add and -d/--del, once"
    [[ -n $2 ]] || bad "$3 needs an ISO"
    action=$1
    iso=$2
}

kubeconfig=${KUBECONFIG:-}
args=()
while (($# > 0)); do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        -a | --add | -d | --del)
            (($# >= 2)) || bad "$1 needs an ISO"
            case $1 in -a | --add) set_action add "$2" "$1" ;; *) set_action remove "$2" "$1" ;; esac
            shift
            ;;
        --add=*) set_action add "${1#*=}" --add ;;
        --del=*) set_action remove "${1#*=}" --del ;;
        --kubeconfig)
            (($# >= 2)) || bad "$1 needs a FILE"
            kubeconfig=$2
            shift
            ;;
        --kubeconfig=*) kubeconfig=${1#*=} ;;
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
[[ -n $action ]] || bad "give -a/--add ISO or -d/--del ISO"

admin_conf=${METALK8S_INSTALLER_ROOT:-}/etc/kubernetes/admin.conf
if [[ -z $kubeconfig && -f $admin_conf ]]; then
    kubeconfig=$admin_conf
fi
if [[ -n $kubeconfig ]]; then
    args+=(--kubeconfig "$kubeconfig")
fi
if [[ -n ${METALK8S_INSTALLER_ROOT:-} ]]; then
    args+=(--root "$METALK8S_INSTALLER_ROOT")
fi
installer=$(find_installer) || exit 1
exec "$installer" ${args[@]+"${args[@]}"} solution "$action" -- "$iso"
