#!/bin/bash
# Runs the ISO's bootstrap.sh (chapter 3.3.1) from the mount mount-iso.sh made.
set -euo pipefail

ARCHIVES=${ARCHIVES:-/srv/scality}

product=$(cat "$ARCHIVES/.metalk8s-iso" 2>/dev/null) || {
    echo "bootstrap: the ISO is not mounted: run mount-iso.sh first" >&2
    exit 1
}
exec "$product/bootstrap.sh"
