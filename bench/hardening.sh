#!/usr/bin/env bash
# Hostile clients, side by side: the collector of this tree and, if a git revision is given, the
# collector of that revision (built in a worktree under target/), each on its own store on
# loopback. Prints, per build: peak RSS, CPU and health latency under 3 x 100 parallel gzip
# bombs (4 KB that inflate to 4 MiB), the time to close 300 stalled uploads, the time to exit on
# SIGTERM with an upload stalled, real batch latency while 0, 80 and 500 heads announce 1 MiB
# bodies and send none, health latency while FerretDB is cut off, and the erasure of a 20-link
# chain and of a visitor with 50 000 events (embedded and FerretDB) with ingest latency meanwhile.
# Usage: bash bench/hardening.sh [baseline-rev]; HARDENING_ONLY=erasure runs the erasure scenarios
# only; HARDENING_STORES=embedded (or FerretDB) picks the stores of the erasure scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p maidian-collector
source tests/ferretdb.sh
if [ -n "${1:-}" ]; then
  wt="target/baseline-src"
  [ -d "$wt" ] || git worktree add -f "$wt" "$1" -q
  (cd "$wt" && git checkout -q "$1" && CARGO_TARGET_DIR="$PWD/../baseline" cargo build --release -q -p maidian-collector)
  python3 bench/hardening.py target/baseline/release/maidian-collector "baseline $1"
fi
python3 bench/hardening.py target/release/maidian-collector "this tree"
