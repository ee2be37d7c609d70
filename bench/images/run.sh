#!/usr/bin/env bash
# Benchmark of the images target against the MetalK8s way (skopeo copy image
# by image into dir:, then hardlink -c), on 12 images of 1.5 GiB with 30% of
# the bytes in shared layers, served by a local docker-registry.
#
# Usage: bench/images/run.sh [WORKDIR]   (needs docker-registry, skopeo,
# hardlink and /usr/bin/time; `go run mage.go test` installs them)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-$(mktemp -d /tmp/bench-images.XXXXXX)}
mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $host}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg=$!
trap 'kill $reg 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$host/v2/" >/dev/null && break; sleep 0.1; done

go run ./bench/images/seed -registry "$host" -o "$work/images.yaml"
go run mage.go -compile "$work/mage-bin" >/dev/null
cores=$(nproc)

measure() { # label, command...
  local label=$1; shift
  sync; /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/$label.log" 2>&1
  read -r secs rss <"$work/time"
  printf '%-28s %8.2f s  %7d MiB peak RSS\n' "$label" "$secs" $((rss / 1024))
  echo "$secs" >"$work/$label.secs"
}

export IMAGES_FILE=$work/images.yaml IMAGE_MIRRORS=docker.io=$host SOURCE_DATE_EPOCH=1700000000 JOBS=$cores
echo "== $cores cores, images of $work/images.yaml"
rm -rf "$work/ours"
BUILD_ROOT=$work/ours measure "ours (cold)" "$work/mage-bin" images
grep 'transferred\|hard links' "$work/ours (cold).log" | sed 's/^/   /'
BUILD_ROOT=$work/ours measure "ours (warm)" "$work/mage-bin" images
grep 'transferred' "$work/ours (warm).log" | sed 's/^/   /'

peer() { # MetalK8s 2.x: one skopeo copy per image, then hardlink -c
  local flags=("$@")
  rm -rf "$work/peer"; mkdir -p "$work/peer"
  set -e
  while read -r n v s d; do
    mkdir -p "$work/peer/$n"
    skopeo copy --quiet --src-tls-verify=false "${flags[@]}" \
      "docker://$host/${s#docker.io/}@$d" "dir:$work/peer/$n/$v"
  done < <(awk '/name:/{n=$3} /version:/{v=$2; gsub(/"/,"",v)} /source:/{s=$2} /digest:/{print n, v, s, $2}' "$work/images.yaml")
  hardlink -c "$work/peer" >/dev/null
}
export -f peer; export work host
measure "skopeo+hardlink" bash -c 'peer'
measure "skopeo+hardlink (MetalK8s)" bash -c 'peer --format v2s2 --dest-compress'

ours=$(cat "$work/ours (cold).secs")
for p in "skopeo+hardlink" "skopeo+hardlink (MetalK8s)"; do
  awk -v a="$ours" -v b="$(cat "$work/$p.secs")" -v p="$p" 'BEGIN{printf "speed-up vs %-28s %.2fx\n", p, b/a}'
done
du -sh --apparent-size "$work/ours/root/images" "$work/peer" | sed 's/^/apparent /'
du -sh "$work/ours/root/images" "$work/peer" | sed 's/^/on disk  /'
