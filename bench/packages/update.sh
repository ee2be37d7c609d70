#!/usr/bin/env bash
# The incremental-update target alone: repogen's full run against its
# --update after one package is replaced by a new release, both on the
# 1,000 RPMs of run.sh, in the same hyperfine run. Prints the ratio of
# mean wall times and of mean CPU times (user + system).
#
#   bash bench/packages/update.sh [WORKDIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/metalk8s-bench-packages}
runs=${2:-15}
mkdir -p "$work"
repo=$work/update-repo
if [ ! -f "$work/repo/bench-pkg-0999-1.x86_64.rpm" ]; then
  go run ./bench/packages/gen -n 1000 -o "$work/repo"
fi
[ -f "$work/changed/bench-pkg-0017-2.x86_64.rpm" ] || go run ./bench/packages/gen -n 1000 -only 17 -o "$work/changed"
go build -o "$work/repogen" ./cmd/repogen
# A private copy (hard links) of the input, so run.sh's directory is left alone.
rm -rf "$repo" "$work/md-update"; mkdir -p "$repo"
ln "$work"/repo/*.rpm "$repo/"
"$work/repogen" --quiet --workers 2 "$repo"; cp -a "$repo/repodata" "$work/md-update"
rm -f "$repo"/bench-pkg-0017-*.rpm; cp "$work/changed/bench-pkg-0017-2.x86_64.rpm" "$repo/"
hyperfine -N -w 3 -r "$runs" \
  --prepare "rm -rf $repo/repodata" \
  "$work/repogen --quiet --workers 2 $repo" \
  --prepare "bash -c 'rm -rf $repo/repodata; cp -a $work/md-update $repo/repodata'" \
  "$work/repogen --quiet --workers 2 --update $repo" \
  --export-json "$work/update.json"
python3 - "$work/update.json" <<'PY'
import json, sys
full, upd = json.load(open(sys.argv[1]))["results"]
cpu = lambda r: r["user"] + r["system"]
print(f"full:   wall {full['mean']*1e3:.0f} ms (min {full['min']*1e3:.0f}), CPU {cpu(full)*1e3:.0f} ms")
print(f"update: wall {upd['mean']*1e3:.0f} ms (min {upd['min']*1e3:.0f}), CPU {cpu(upd)*1e3:.0f} ms")
print(f"ratio:  wall {upd['mean']/full['mean']:.1%}, min wall {upd['min']/full['min']:.1%}, CPU {cpu(upd)/cpu(full):.1%}")
PY
