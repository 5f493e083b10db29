#!/usr/bin/env bash
# Runs every test of maidian against real parts: checks formatting and lints, starts FerretDB
# (the MongoDB-wire test database), then runs the Rust tests (unit, in-process routes, store
# tests on FerretDB and on the embedded store, the real collector and CLI binaries on real
# ports). Ends with one "total: N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

source tests/ferretdb.sh

log="$(mktemp)"
status=0
cargo test --workspace --all-targets 2>&1 | tee "$log" || status=$?

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
