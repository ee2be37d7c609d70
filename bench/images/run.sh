#!/usr/bin/env bash
# Benchmark of the images target against the MetalK8s way (skopeo copy image
# by image into dir:, then hardlink -c), on 12 images of 1.5 GiB with 30% of
# the bytes in shared layers, served by a local docker-registry.
#
# Usage: bench/images/run.sh [WORKDIR]   (needs docker-registry, skopeo,
# hardlink and /usr/bin/time; `go run mage.go test` installs them)
#
# MAGE=BIN times that compiled mage binary instead of compiling mage.go;
# MAGE_OLD=BIN (run in MAGE_OLD_DIR, default the current checkout) times a
# second one, for a before/after comparison. ROUNDS=N repeats ours (new,
# then old) and plain skopeo in turn N times (default 1); the MetalK8s
# skopeo invocation runs in the first round only. BENCH_LOCK=FILE holds
# flock(1) on FILE around each timed run (the wait is not timed).
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
if [ -n "${MAGE:-}" ]; then cp "$MAGE" "$work/mage-bin"; else go run mage.go -compile "$work/mage-bin" >/dev/null; fi
cores=$(nproc)
rounds=${ROUNDS:-1}
lock=()
if [ -n "${BENCH_LOCK:-}" ]; then lock=(flock "$BENCH_LOCK"); fi

measure() { # label, command...
  local label=$1; shift
  sync; "${lock[@]}" /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/$label.log" 2>&1
  read -r secs rss user sys <"$work/time"
  cpu=$(awk "BEGIN {print $user + $sys}")
  printf '%-28s %8.2f s  %7d MiB peak RSS  %6.2f s CPU (user+sys)  load %s\n' "$label" "$secs" $((rss / 1024)) "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
  echo "$secs" >"$work/$label.secs"
  printf '%s\t%s\t%s\n' "$label" "$secs" "$cpu" >>"$work/runs.tsv"
}
: >"$work/runs.tsv"

export IMAGES_FILE=$work/images.yaml IMAGE_MIRRORS=docker.io=$host SOURCE_DATE_EPOCH=1700000000 JOBS=$cores
echo "== $cores cores, images of $work/images.yaml"
ours() { # label suffix, mage binary, directory to run it in
  rm -rf "$work/ours"
  BUILD_ROOT=$work/ours measure "ours$1 (cold)" env -C "$3" "$2" images
  grep 'transferred\|hard links' "$work/ours$1 (cold).log" | sed 's/^/   /'
  BUILD_ROOT=$work/ours measure "ours$1 (warm)" env -C "$3" "$2" images
  grep 'transferred' "$work/ours$1 (warm).log" | sed 's/^/   /'
}

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
for r in $(seq "$rounds"); do
  if [ -n "${MAGE_OLD:-}" ]; then
    ours " old" "$MAGE_OLD" "${MAGE_OLD_DIR:-$PWD}"
  fi
  ours "" "$work/mage-bin" "$PWD"
  measure "skopeo+hardlink" bash -c 'peer'
  if [ "$r" = 1 ]; then measure "skopeo+hardlink (MetalK8s)" bash -c 'peer --format v2s2 --dest-compress'; fi
done
if [ "$rounds" -gt 1 ]; then
  echo "== per label: runs (wall/CPU s), median wall, best wall, median CPU"
  sort -t$'\t' -k1,1 -k2,2n "$work/runs.tsv" | python3 -c '
import sys, collections, statistics as st
d = collections.defaultdict(list)
for l in sys.stdin:
    k, w, c = l.rstrip("\n").split("\t"); d[k].append((float(w), float(c)))
for k, v in d.items():
    print("%-30s %s  median %.2f  best %.2f  median CPU %.2f" % (k, " ".join("%.2f/%.2f" % x for x in v), st.median(w for w, _ in v), min(w for w, _ in v), st.median(c for _, c in v)))'
fi

ours=$(cat "$work/ours (cold).secs")
for p in "skopeo+hardlink" "skopeo+hardlink (MetalK8s)"; do
  awk -v a="$ours" -v b="$(cat "$work/$p.secs")" -v p="$p" 'BEGIN{printf "speed-up vs %-28s %.2fx\n", p, b/a}'
done
du -sh --apparent-size "$work/ours/root/images" "$work/peer" | sed 's/^/apparent /'
du -sh "$work/ours/root/images" "$work/peer" | sed 's/^/on disk  /'
