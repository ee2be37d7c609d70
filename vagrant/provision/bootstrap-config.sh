#!/bin/bash
# Writes /etc/metalk8s/bootstrap.yaml (chapter 3.2) for this VM: its private
# network as control and workload planes, its hostname as the Salt minion of
# the CA, its private address as the API server, and the ISO mount-iso.sh
# mounted as the MetalK8s product.
# Usage: bootstrap-config.sh BOOTSTRAP_IP
set -euo pipefail

ARCHIVES=${ARCHIVES:-/srv/scality}
CONFIG_DIR=${CONFIG_DIR:-/etc/metalk8s}

die() { echo "bootstrap-config: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 BOOTSTRAP_IP"
ip=$1

# The kernel's link route for the interface holding the address is the
# network in CIDR form, as bootstrap.yaml wants it.
cidr=$(ip -o -4 route show proto kernel scope link | awk -v ip="$ip" '
    { for (i = 1; i < NF; i++) if ($i == "src" && $(i + 1) == ip) { print $1; exit } }')
[ -n "$cidr" ] || die "no interface holds $ip: is the private network up?"

product=$(cat "$ARCHIVES/.metalk8s-iso" 2>/dev/null) || die "the ISO is not mounted: run mount-iso.sh first"
minion=$(hostname)

mkdir -p "$CONFIG_DIR"
tmp=$(mktemp "$CONFIG_DIR/bootstrap.yaml.XXXXXX")
cat > "$tmp" <<YAML
apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks:
  controlPlane: $cidr
  workloadPlane: $cidr
ca:
  minion: $minion
apiServer:
  host: $ip
products:
  metalk8s:
    - $product
YAML
chmod 0644 "$tmp"
mv "$tmp" "$CONFIG_DIR/bootstrap.yaml"
echo "bootstrap-config: wrote $CONFIG_DIR/bootstrap.yaml (network $cidr, API server $ip)"
