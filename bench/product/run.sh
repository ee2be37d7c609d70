#!/usr/bin/env bash
# Issue 11 benchmark: the full MetalK8s ISO build at scale (>= 1 GiB of
# layers, 300 RPMs) over the demo's local upstreams: cold build, full
# build from warm caches, no-op re-run, the copy limit (cp of the ISO),
# the ISO's size against its inputs. See bench/product/bench_test.go.
#
#   bash bench/product/run.sh
#
# BENCH_ROUNDS (3), BENCH_LAYER_MIB (30), BENCH_RPMS (315), BENCH_RPM_KIB
# (16), BENCH_WORK (temporary, removed unless BENCH_KEEP=1), BENCH_JSON
# (raw figures), BENCH_CPUPROFILE (a pprof CPU profile of the whole run),
# BENCH_WARM_CPUPROFILE (one CPU profile per warm build, this process only).
set -euo pipefail
cd "$(dirname "$0")/../.."
prof=()
if [ -n "${BENCH_CPUPROFILE:-}" ]; then prof=(-cpuprofile "$BENCH_CPUPROFILE"); fi
echo "start $(date -u +%FT%TZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
go test -tags productbench -run TestProductBench -v -count=1 -timeout 90m "${prof[@]}" ./bench/product
echo "end $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg); disk: $(df -h /work | tail -1)"
