#!/usr/bin/env bash
# Benchmark mkiso against xorriso, genisoimage and the `cat` limit on a
# 2 GiB tree: 30 image layers (10 of them identical copies, not hard
# links) plus 20,000 small files. Page cache warm, same tree for all.
#
#   bench/iso/run.sh [WORKDIR]      (default: a directory under /tmp)
#
# RUNS=N rounds (default 3). Prints a Markdown table and the ratios;
# needs /usr/bin/time, xorriso, genisoimage, openssl, go.
#
# MKISO=BIN times that binary instead of building cmd/mkiso; MKISO_OLD=BIN
# also times a second binary (rows "old mkiso ...") in every round, for an
# interleaved before/after comparison. BENCH_LOCK=FILE takes flock(1) on
# FILE around each timed run (the wait is not timed), so that benchmarks
# of other sessions do not overlap it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/mkiso-bench.XXXXXX)}
runs=${RUNS:-3}
tree=$work/tree
out=$work/out
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

if [ -n "${MKISO:-}" ]; then
	cp "$MKISO" "$work/mkiso"
else
	(cd "$repo" && go build -o "$work/mkiso" ./cmd/mkiso)
fi
lock=()
if [ -n "${BENCH_LOCK:-}" ]; then lock=(flock "$BENCH_LOCK"); fi

if [ ! -e "$tree/.done" ]; then
	rm -rf "$tree"
	mkdir -p "$tree/images"
	# 20 distinct layers of 68 MiB, and 10 byte-identical copies.
	for i in $(seq -w 1 20); do
		d=$tree/images/app$i/1.0.$i
		mkdir -p "$d"
		head -c $((68 << 20)) /dev/urandom >"$d/layer-$i.tar.gz"
		echo "{\"layers\":[\"layer-$i\"]}" >"$d/manifest.json"
	done
	for i in $(seq -w 1 10); do
		d=$tree/images/copy$i/2.0.$i
		mkdir -p "$d"
		cp "$tree/images/app$i/1.0.$i/layer-$i.tar.gz" "$d/layer-$i.tar.gz"
	done
	# 20,000 small files (1-4 KiB) in 200 directories.
	python3 - "$tree/salt" <<'PY'
import os, sys, random
random.seed(42)
root = sys.argv[1]
for i in range(20000):
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "state-%05d.sls" % i), "wb") as f:
        f.write(random.randbytes(random.randint(1024, 4096)))
PY
	touch "$tree/.done"
fi
rm -f "$tree/.done.tmp"
export SOURCE_DATE_EPOCH=1700000000

# Warm the page cache.
find "$tree" -type f -print0 | xargs -0 cat >/dev/null

# once NAME COMMAND...: one timed run, appended to runs.tsv as
# name, wall seconds, peak RSS (KiB), output size, CPU seconds (user +
# system, which other sessions' load hardly changes).
once() {
	local name=$1
	shift
	rm -f "$out"/*
	sync
	"${lock[@]}" /usr/bin/time -f '%e %M %U %S' -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || {
		cat "$work/stderr.txt" >&2
		exit 1
	}
	local wall rss user sys size
	read -r wall rss user sys <"$work/time.txt"
	size=$(stat -c %s "$out/o.iso" 2>/dev/null || stat -c %s "$out/o.cat")
	printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$rss" "$size" "$(awk "BEGIN {print $user + $sys}")" >>"$work/runs.tsv"
}

# The machine is shared: load from other sessions comes and goes, so the
# tools take turns, round after round, rather than each doing all its runs
# at once; best and median are reported.
mk=("$work/mkiso" -quiet -o "$out/o.iso" -V 'MetalK8s 2.0.0' -R -J -joliet-long -iso-level 3 -uid 0 -gid 0)
gi=(genisoimage -quiet -R -J -joliet-long -l -iso-level 3 -V 'MetalK8s 2.0.0' -o "$out/o.iso" "$tree")
catall="find '$tree' -type f -print0 | sort -z | xargs -0 cat >'$out/o.cat'"
# What mkiso's default mode does on top: the SHA-256 of its output. The
# digest is openssl's, which uses SHA-NI (coreutils sha256sum here runs at
# a fifth of its speed); piping cat through tee into it was slower still
# (pipe buffers of 64 KiB: a system call per 64 KiB).
sha() { printf "cd '%s' && openssl dgst -sha256 -r %s >SHA256SUM" "$out" "$1"; }
: >"$work/runs.tsv"
for _ in $(seq "$runs"); do
	once cat sh -c "$catall"
	once mkiso "${mk[@]}" "$tree"
	once "mkiso -no-sha256sum" "${mk[@]}" -no-sha256sum "$tree"
	once "mkiso -implantisomd5" "${mk[@]}" -implantisomd5 "$tree"
	if [ -n "${MKISO_OLD:-}" ]; then
		once "old mkiso" "$MKISO_OLD" "${mk[@]:1}" "$tree"
		once "old mkiso -no-sha256sum" "$MKISO_OLD" "${mk[@]:1}" -no-sha256sum "$tree"
		once "old mkiso -implantisomd5" "$MKISO_OLD" "${mk[@]:1}" -implantisomd5 "$tree"
	fi
	once xorriso xorriso -as mkisofs -quiet -R -J -joliet-long -iso-level 3 -V 'MetalK8s 2.0.0' -o "$out/o.iso" "$tree"
	once genisoimage "${gi[@]}"
	once "genisoimage + sha256" sh -c "\"\$@\" && $(sha o.iso)" sh "${gi[@]}"
	once "cat + sha256" sh -c "$catall && $(sha o.cat)"
done
sort -t$'\t' -k1,1 -k2,2n "$work/runs.tsv" | awk -F'\t' '
	$1 != name { if (name != "") out(); name = $1; n = 0; rss = 0; cpu = "" }
	{ n++; wall[n] = $2; if ($3 > rss) rss = $3; size = $4; if (cpu == "" || $5 < cpu) cpu = $5 }
	function out() { printf "%s\t%s\t%s\t%s\t%s\t%s\n", name, wall[1], wall[int((n + 1) / 2)], rss, size, cpu }
	END { out() }' >"$work/results.tsv"

echo "tree: $(du -sb --exclude=.done "$tree" | cut -f1) bytes, $(find "$tree" -type f | wc -l) files; $runs runs each, interleaved; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| tool | best wall (s) | median wall (s) | least CPU (s) | peak RSS, max of runs (MiB) | output (bytes) |"
echo "|---|---:|---:|---:|---:|---:|"
awk -F'\t' '{printf "| %s | %.2f | %.2f | %.2f | %.1f | %s |\n", $1, $2, $3, $6, $4/1024, $5}' "$work/results.tsv"
echo
echo "Ratios to cat, xorriso, genisoimage:"
awk -F'\t' '{best[$1]=$2; med[$1]=$3; cpu[$1]=$6} END {
	for (t in best) if (t ~ /mkiso/) printf "- %s: best wall %.2fx, %.2fx, %.2fx; median wall %.2fx, %.2fx, %.2fx; CPU %.2fx, %.2fx, %.2fx\n", t,
		best[t]/best["cat"], best[t]/best["xorriso"], best[t]/best["genisoimage"],
		med[t]/med["cat"], med[t]/med["xorriso"], med[t]/med["genisoimage"],
		cpu[t]/cpu["cat"], cpu[t]/cpu["xorriso"], cpu[t]/cpu["genisoimage"] }' "$work/results.tsv" | sort
echo
echo "Default mode (image + SHA256SUM) against the same work by the peers:"
awk -F'\t' '{best[$1]=$2; med[$1]=$3; cpu[$1]=$6} END {
	g = "genisoimage + sha256"; c = "cat + sha256"
	printf "- mkiso to %s: best wall %.2fx, median wall %.2fx, CPU %.2fx\n", g, best["mkiso"]/best[g], med["mkiso"]/med[g], cpu["mkiso"]/cpu[g]
	printf "- mkiso to %s: best wall %.2fx, median wall %.2fx, CPU %.2fx\n", c, best["mkiso"]/best[c], med["mkiso"]/med[c], cpu["mkiso"]/cpu[c]
	if ("old mkiso" in best) for (t in best) if (t ~ /^mkiso/) {
		o = "old " t
		printf "- %s, new to old: best wall %.2fx, median wall %.2fx, CPU %.2fx\n", t, best[t]/best[o], med[t]/med[o], cpu[t]/cpu[o] } }' "$work/results.tsv"
