#!/usr/bin/env bash
# Soak: the release collector on FerretDB under a steady load for a while (default 240 s, 16
# Python client threads, batches of 20, 5 000 visitors); prints the collector's RSS and rollup
# lag every 15 s, to show that memory stays flat while the rollup backlog waits in the
# database. Arguments: [seconds] [threads] [store: mongo | embedded] [visitors].
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p maidian-collector
out="$(mktemp)"
if [ "${3:-mongo}" = embedded ]; then
  data="$(mktemp -d)"
  MAIDIAN_DATA_DIR="$data" MAIDIAN_API_KEY=bench-write \
    MAIDIAN_READ_KEY=bench-read RUST_LOG=warn ./target/release/maidian-collector --listen 127.0.0.1:0 >"$out" &
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
else
  source tests/ferretdb.sh
  MAIDIAN_MONGODB_URI="$MAIDIAN_TEST_MONGODB_URI" MAIDIAN_DATABASE="soak_$$" MAIDIAN_API_KEY=bench-write \
    MAIDIAN_READ_KEY=bench-read RUST_LOG=warn ./target/release/maidian-collector --listen 127.0.0.1:0 >"$out" &
  pid=$!
  trap 'kill $pid 2>/dev/null; ferretdb_stop' EXIT
fi
for _ in $(seq 1 100); do grep -q listening "$out" && break; sleep 0.1; done
addr="$(sed -n 's|.*http://||p' "$out" | head -n1)"
python3 bench/soak.py "$addr" "$pid" "${1:-240}" "${2:-16}" "${4:-5000}"
