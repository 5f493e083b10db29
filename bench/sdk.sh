#!/usr/bin/env bash
# SDK benchmark: builds the SDK and the release collector, then prints the SDK's gzipped size
# against the budget and its main-thread cost per click in headless Chromium (bench/sdk-bench.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash sdk-wasm/build.sh 2>/dev/null
cargo build --release -q -p maidian-collector
node bench/sdk-bench.mjs
