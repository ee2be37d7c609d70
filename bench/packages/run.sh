#!/usr/bin/env bash
# Repodata benchmark: repogen against createrepo_c on 1,000 synthetic RPMs
# of varied sizes and file lists, in the same run, plus an incremental
# update after one changed package, plus the dependency closure over a
# synthetic 5,000-package primary.xml. Figures go in bench/RESULTS.md (Packages).
#
#   bash bench/packages/run.sh [WORKDIR]
#
# REPOGEN=BIN times that binary instead of building cmd/repogen;
# REPOGEN_OLD=BIN times a second one in the same hyperfine runs (before and
# after a change). RUNS=N runs per command (default 15). BENCH_LOCK=FILE
# holds flock(1) on FILE during each hyperfine run.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/metalk8s-bench-packages}
mkdir -p "$work"
repo=$work/repo
if [ ! -f "$repo/bench-pkg-0999-1.x86_64.rpm" ]; then
  go run ./bench/packages/gen -n 1000 -o "$repo"
fi
go run ./bench/packages/gen -n 1000 -only 17 -o "$work/changed"
if [ -n "${REPOGEN:-}" ]; then cp "$REPOGEN" "$work/repogen"; else go build -o "$work/repogen" ./cmd/repogen; fi
runs=${RUNS:-15}
lock=()
if [ -n "${BENCH_LOCK:-}" ]; then lock=(flock "$BENCH_LOCK"); fi
full_old=() upd_old=()
if [ -n "${REPOGEN_OLD:-}" ]; then
  cp "$REPOGEN_OLD" "$work/repogen-old"
  full_old=("$work/repogen-old --quiet --workers 2 $repo")
  upd_old=(--prepare "rm -rf $repo/repodata; cp -a $work/md-repogen-old $repo/repodata" "$work/repogen-old --quiet --workers 2 --update $repo")
fi
echo "input: $(ls "$repo"/*.rpm | wc -l) RPMs, $(du -sh --exclude=repodata "$repo" | cut -f1)"

# Full runs: both tools write gzip-compressed XML with default levels;
# createrepo_c also skips its sqlite databases, which repogen never writes.
"${lock[@]}" hyperfine -N -w 3 -r "$runs" --prepare "rm -rf $repo/repodata" \
  "$work/repogen --quiet --workers 2 $repo" \
  "${full_old[@]}" \
  "createrepo_c --workers 2 --no-database $repo" \
  --export-markdown "$work/full.md" --export-json "$work/full.json"

# Incremental: one package replaced by a new release, then --update. Each
# tool starts every run from its own repodata of the old set.
old=$(ls "$repo"/bench-pkg-0017-*.rpm | head -1)
new=$(ls "$work"/changed/*.rpm)
cp "$old" "$work/old-0017.rpm"
rm -rf "$repo/repodata"; "$work/repogen" --quiet "$repo"; rm -rf "$work/md-repogen"; cp -a "$repo/repodata" "$work/md-repogen"
if [ -n "${REPOGEN_OLD:-}" ]; then
  rm -rf "$repo/repodata"; "$work/repogen-old" --quiet "$repo"; rm -rf "$work/md-repogen-old"; cp -a "$repo/repodata" "$work/md-repogen-old"
fi
rm -rf "$repo/repodata"; createrepo_c --workers 2 --no-database "$repo" >/dev/null; rm -rf "$work/md-createrepo"; cp -a "$repo/repodata" "$work/md-createrepo"
rm -f "$old"; cp "$new" "$repo/"
"${lock[@]}" hyperfine -w 3 -r "$runs" \
  --prepare "rm -rf $repo/repodata; cp -a $work/md-repogen $repo/repodata" \
  "$work/repogen --quiet --workers 2 --update $repo" \
  "${upd_old[@]}" \
  --prepare "rm -rf $repo/repodata; cp -a $work/md-createrepo $repo/repodata" \
  "createrepo_c --workers 2 --no-database --update $repo" \
  --export-markdown "$work/incremental.md" --export-json "$work/incremental.json"
rm -f "$repo/$(basename "$new")"; cp "$work/old-0017.rpm" "$old"; rm -rf "$repo/repodata"

go test -run '^TestSynthetic' -v -count=1 ./buildchain/rpm/depsolve/ | grep primary.xml
go test -run xxx -bench Closure5000 -benchtime 10x ./buildchain/rpm/depsolve/ | grep Benchmark
cat "$work/full.md" "$work/incremental.md"
# CPU time (user + sys) per command, which hyperfine's Markdown leaves out.
for f in full incremental; do
  [ -f "$work/$f.json" ] && python3 -c 'import json,sys; [print("%s: user+sys %.0f ms" % (r["command"], 1000*(r["user"]+r["system"]))) for r in json.load(open(sys.argv[1]))["results"]]' "$work/$f.json"
done
