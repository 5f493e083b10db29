#!/usr/bin/env bash
# Data lifecycle benchmark: simulated events in the embedded store and in FerretDB, rolled up;
# then one visitor's access request and erasure (against a rebuild of every rollup, what an
# erasure would need without taking rollups back) and retention's delete rate (against the
# write rate). Extra arguments go to the benchmark (--events, --ferret-events, --visitors).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p maidian-bench
source tests/ferretdb.sh
./target/release/lifecycle-bench "$@"
