#!/usr/bin/env bash
# Runs every test of maidian against real parts: checks formatting and lints, builds the
# browser SDK, starts FerretDB (the MongoDB-wire test database), runs the Rust tests (unit,
# in-process routes, store tests on FerretDB and on the embedded store, the real collector and
# CLI binaries on real ports), then the browser tests (Debian's Chromium driven by
# playwright-core against the real collector). Ends with one "total: N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo clippy -p maidian-sdk --target wasm32-unknown-unknown -q -- -D warnings
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
bash sdk-wasm/build.sh

source tests/ferretdb.sh

log="$(mktemp)"
status=0
cargo test --workspace --all-targets 2>&1 | tee "$log" || status=$?
cargo build -q -p maidian-collector
node --test --test-reporter=tap tests/e2e/ 2>&1 | tee -a "$log" || status=$?

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^# pass / { p += $3 } /^# fail / { f += $3 }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
