#!/usr/bin/env bash
# Focused before/after check of two mkiso binaries on the tree bench/iso/run.sh
# made: ROUNDS rounds (default 6) of `cat` (the load reference), then OLD and
# NEW with -no-sha256sum, then in the default mode, the order of OLD and NEW
# swapped every round. Each run under flock(1) on BENCH_LOCK (default
# /tmp/bench.lock); prints median and best wall, median and least CPU.
#
#   bench/iso/ab.sh WORKDIR OLD_MKISO NEW_MKISO
set -euo pipefail
work=$1 old=$2 new=$3
t=$work/tree o=$work/ab-out
[ -e "$t/.done" ] || { echo "no tree in $work: run bench/iso/run.sh $work first" >&2; exit 2; }
mkdir -p "$o"
trap 'rm -rf "$o"' EXIT
export SOURCE_DATE_EPOCH=1700000000
lock=${BENCH_LOCK:-/tmp/bench.lock}
: >"$work/ab.tsv"
one() { # label, command...
	rm -f "$o"/*
	sync
	flock "$lock" /usr/bin/time -f '%e %U %S' -o "$work/ab-time.txt" "${@:2}" >/dev/null 2>"$work/ab-stderr.txt" || { cat "$work/ab-stderr.txt" >&2; exit 1; }
	read -r w u s <"$work/ab-time.txt"
	printf '%s\t%s\t%s\t%s\n' "$1" "$w" "$(awk "BEGIN {print $u + $s}")" "$(cut -d' ' -f1 /proc/loadavg)" >>"$work/ab.tsv"
}
mk=(-quiet -o "$o/o.iso" -V 'MetalK8s 2.0.0' -R -J -joliet-long -iso-level 3 -uid 0 -gid 0)
for r in $(seq "${ROUNDS:-6}"); do
	order=(old new)
	if [ $((r % 2)) = 0 ]; then order=(new old); fi
	one cat sh -c "find '$t' -type f -print0 | sort -z | xargs -0 cat >'$o/o.cat'"
	for v in "${order[@]}"; do one "$v -no-sha256sum" "${!v}" "${mk[@]}" -no-sha256sum "$t"; done
	for v in "${order[@]}"; do one "$v default" "${!v}" "${mk[@]}" "$t"; done
done
echo "| run | n | median wall (s) | best wall (s) | median CPU (s) | least CPU (s) | load |"
echo "|---|---:|---:|---:|---:|---:|---:|"
python3 - "$work/ab.tsv" <<'PY'
import collections, statistics as st, sys
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    k, w, c, ld = l.rstrip("\n").split("\t"); d[k].append((float(w), float(c), float(ld)))
for k in sorted(d):
    v = d[k]; w = [x[0] for x in v]; c = [x[1] for x in v]; ld = [x[2] for x in v]
    print("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.1f–%.1f |" % (k, len(v), st.median(w), min(w), st.median(c), min(c), min(ld), max(ld)))
PY
