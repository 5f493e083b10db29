#!/usr/bin/env bash
# Analytics benchmark: ~1 000 000 simulated events written straight to a store, then summary,
# a 4-step funnel and 30-day retention, engine (rollups) against naive (raw scan), as ratios.
# Extra arguments go to the benchmark (e.g. --store embedded, --events 200000; --no-naive times
# the engine alone, for sizes whose raw events would not fit in memory; --sites 10 puts
# the large site beside nine small ones and times its figures against the same site alone).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p maidian-bench
source tests/ferretdb.sh
# As the collector is deployed (Dockerfile, deploy/maidian.service): two glibc malloc arenas.
MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" ./target/release/analytics-bench "$@"
