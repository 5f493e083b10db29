#!/usr/bin/env bash
# Installs what building and testing maidian needs beyond Rust, Go and Node.js (idempotent):
# the wasm32 target, the SDK's pinned nightly (sdk-wasm/toolchain), the npm dev
# dependencies (binaryen's wasm-opt, playwright-core, the MongoDB driver); with --tests also
# Debian's Chromium and the Go modules of the FerretDB test server.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
export CARGO_TERM_COLOR=never

rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown
# The SDK's wasm is built with a pinned nightly that rebuilds core and alloc with
# panic=immediate-abort (sdk-wasm/build.sh; BENCHMARKS.md, SDK size).
rustup toolchain install "$(cat sdk-wasm/toolchain)" --profile minimal --component rust-src >/dev/null

tests=false
[ "${1:-}" = "--tests" ] && tests=true

if $tests && [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

[ -x node_modules/.bin/wasm-opt ] || npm ci --no-audit --no-fund
if $tests; then
  npm ci --no-audit --no-fund
  cargo fetch --locked
  (cd tests/ferretdb && go mod download)
fi
