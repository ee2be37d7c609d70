#!/usr/bin/env bash
# Benchmark mkiso against xorriso, genisoimage and the `cat` limit on a
# 2 GiB tree: 30 image layers (10 of them identical copies, not hard
# links) plus 20,000 small files. Page cache warm, same tree for all.
#
#   bench/iso/run.sh [WORKDIR]      (default: a directory under /tmp)
#
# Prints a Markdown table; needs /usr/bin/time, xorriso, genisoimage, go.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/mkiso-bench.XXXXXX)}
runs=${RUNS:-3}
tree=$work/tree
out=$work/out
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

(cd "$repo" && go build -o "$work/mkiso" ./cmd/mkiso)

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

measure() { # name command...
	local name=$1
	shift
	local best_wall="" best_rss="" size=0
	for _ in $(seq "$runs"); do
		rm -f "$out"/*
		sync
		/usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || {
			cat "$work/stderr.txt" >&2
			exit 1
		}
		local wall rss
		wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$work/time.txt")
		rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
		if [ -z "$best_wall" ] || awk "BEGIN{exit !($wall < $best_wall)}"; then
			best_wall=$wall best_rss=$rss
		fi
		size=$(stat -c %s "$out/o.iso" 2>/dev/null || stat -c %s "$out/o.cat")
	done
	printf '%s\t%s\t%s\t%s\n' "$name" "$best_wall" "$best_rss" "$size" >>"$work/results.tsv"
}

: >"$work/results.tsv"
measure cat sh -c "find '$tree' -type f -print0 | sort -z | xargs -0 cat >'$out/o.cat'"
measure mkiso "$work/mkiso" -quiet -o "$out/o.iso" -V 'MetalK8s 2.0.0' -R -J -joliet-long -iso-level 3 -uid 0 -gid 0 "$tree"
measure "mkiso -no-sha256sum" "$work/mkiso" -quiet -no-sha256sum -o "$out/o.iso" -V 'MetalK8s 2.0.0' -R -J -joliet-long -iso-level 3 -uid 0 -gid 0 "$tree"
measure "mkiso -implantisomd5" "$work/mkiso" -quiet -implantisomd5 -o "$out/o.iso" -V 'MetalK8s 2.0.0' -R -J -joliet-long -iso-level 3 -uid 0 -gid 0 "$tree"
measure xorriso xorriso -as mkisofs -quiet -R -J -joliet-long -iso-level 3 -V 'MetalK8s 2.0.0' -o "$out/o.iso" "$tree"
measure genisoimage genisoimage -quiet -R -J -joliet-long -l -iso-level 3 -V 'MetalK8s 2.0.0' -o "$out/o.iso" "$tree"

echo "tree: $(du -sb --exclude=.done "$tree" | cut -f1) bytes, $(find "$tree" -type f | wc -l) files; best of $runs runs; $(nproc) CPUs"
echo
echo "| tool | wall (s) | peak RSS (MiB) | output (bytes) |"
echo "|---|---:|---:|---:|"
awk -F'\t' '{printf "| %s | %.2f | %.1f | %s |\n", $1, $2, $3/1024, $4}' "$work/results.tsv"
