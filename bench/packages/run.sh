#!/usr/bin/env bash
# Repodata benchmark: repogen against createrepo_c on 1,000 synthetic RPMs
# of varied sizes and file lists, in the same run, plus an incremental
# update after one changed package, plus the dependency closure over a
# synthetic 5,000-package primary.xml. Figures go in bench/RESULTS.md (Packages).
#
#   bash bench/packages/run.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/metalk8s-bench-packages}
mkdir -p "$work"
repo=$work/repo
if [ ! -f "$repo/bench-pkg-0999-1.x86_64.rpm" ]; then
  go run ./bench/packages/gen -n 1000 -o "$repo"
fi
go run ./bench/packages/gen -n 1000 -only 17 -o "$work/changed"
go build -o "$work/repogen" ./cmd/repogen
echo "input: $(ls "$repo"/*.rpm | wc -l) RPMs, $(du -sh --exclude=repodata "$repo" | cut -f1)"

# Full runs: both tools write gzip-compressed XML with default levels;
# createrepo_c also skips its sqlite databases, which repogen never writes.
hyperfine -N -w 3 -r 15 --prepare "rm -rf $repo/repodata" \
  "$work/repogen --quiet --workers 2 $repo" \
  "createrepo_c --workers 2 --no-database $repo" \
  --export-markdown "$work/full.md"

# Incremental: one package replaced by a new release, then --update. Each
# tool starts every run from its own repodata of the old set.
old=$(ls "$repo"/bench-pkg-0017-*.rpm | head -1)
new=$(ls "$work"/changed/*.rpm)
cp "$old" "$work/old-0017.rpm"
rm -rf "$repo/repodata"; "$work/repogen" --quiet "$repo"; rm -rf "$work/md-repogen"; cp -a "$repo/repodata" "$work/md-repogen"
rm -rf "$repo/repodata"; createrepo_c --workers 2 --no-database "$repo" >/dev/null; rm -rf "$work/md-createrepo"; cp -a "$repo/repodata" "$work/md-createrepo"
rm -f "$old"; cp "$new" "$repo/"
hyperfine -w 3 -r 15 \
  --prepare "rm -rf $repo/repodata; cp -a $work/md-repogen $repo/repodata" \
  "$work/repogen --quiet --workers 2 --update $repo" \
  --prepare "rm -rf $repo/repodata; cp -a $work/md-createrepo $repo/repodata" \
  "createrepo_c --workers 2 --no-database --update $repo" \
  --export-markdown "$work/incremental.md"
rm -f "$repo/$(basename "$new")"; cp "$work/old-0017.rpm" "$old"; rm -rf "$repo/repodata"

go test -run TestSyntheticUnderOneSecond -v -count=1 ./buildchain/rpm/depsolve/ | grep primary.xml
go test -run xxx -bench Closure5000 -benchtime 10x ./buildchain/rpm/depsolve/ | grep Benchmark
cat "$work/full.md" "$work/incremental.md"
