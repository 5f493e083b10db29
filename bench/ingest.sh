#!/usr/bin/env bash
# Ingest benchmark: builds the release collector with the bench-only sink, starts FerretDB,
# and prints events/s for raw insert_many, the collector on FerretDB and the collector on the
# sink, as ratios; then one site against --sites N (default 10) on the sink and the embedded
# store. Extra arguments go to the benchmark (e.g. --events 200000 --concurrency 64).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p maidian-collector --features bench-sink
cargo build --release -q -p maidian-bench
source tests/ferretdb.sh
./target/release/ingest-bench --collector target/release/maidian-collector "$@"
