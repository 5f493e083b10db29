#!/usr/bin/env bash
# Runs the product: builds the browser SDK, then the collector on http://127.0.0.1:5000 with
# maidian.toml (embedded store in ./maidian-data unless [mongodb] is set), serving the SDK,
# the demo page (/demo/index.html) and the API. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
bash sdk-wasm/build.sh
echo "demo page: http://127.0.0.1:5000/demo/index.html" >&2
# glibc keeps what each thread's malloc arena frees; two arenas bound the RSS (README, "Memory").
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec cargo run --release -q -p maidian-collector -- --config maidian.toml "$@"
