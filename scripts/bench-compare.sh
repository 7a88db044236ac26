#!/usr/bin/env bash
# Runs both sides of docs/BENCHMARKS.md back to back on this machine:
# copycat-bench (3 copycatd processes, fsync on, 256 B values, closed-loop
# clients 1/16/64/100, 100 again with etcd's snapshot interval, then reads)
# and scripts/bench-etcd.sh (etcd 3.4.23, 3 members on 127.0.0.1, the same
# clients and payloads), then failover,
# recovery, snapshot (in-process servers, then a new copycatd process) and
# the machine's physical figures.
#   scripts/bench-compare.sh [OUT_DIR]     (default bench-results/compare)
# Builds copycat-bench and copycatd first (make build). Takes about 7 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-bench-results/compare}"
seconds="${BENCH_SECONDS:-10}"
mkdir -p "$out"
make build >/dev/null
bench=build/bench/copycat-bench
echo "load before: $(uptime)"
"$bench" physical --json "$out/physical.jsonl"
"$bench" throughput --launcher processes --duration "$seconds" --json "$out/throughput.jsonl"
# Copycat snapshots every 10,000 applied entries by default, etcd every 100,000
# (--snapshot-count): the 100-client point again with etcd's interval.
"$bench" throughput --launcher processes --clients 100 --snapshot-entries 100000 \
  --duration "$seconds" --json "$out/throughput-snapshot-100k.jsonl" --charts "$out/snapshot-100k"
BENCH_SECONDS="$seconds" scripts/bench-etcd.sh "$out/etcd.jsonl"
# Both systems in one chart each: throughput, and p50/p99 latency.
"$bench" charts --from "$out/throughput.jsonl" --from "$out/etcd.jsonl" --charts "$out"
"$bench" reads --launcher processes --duration "$seconds" --json "$out/reads.jsonl"
"$bench" failover --launcher processes --kills 10 --json "$out/failover.jsonl"
"$bench" recovery --json "$out/recovery.jsonl"
"$bench" snapshot --json "$out/snapshot.jsonl"
"$bench" snapshot --launcher processes --json "$out/snapshot-processes.jsonl"
echo "load after: $(uptime)"
echo "results and charts in $out"
