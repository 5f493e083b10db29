#!/usr/bin/env bash
# Runs every test of maidian against real parts: starts FerretDB (the MongoDB-wire test
# database), then the Rust tests (unit, in-process routes, store tests on FerretDB, the real
# collector binary on real ports).
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/ferretdb.sh

cargo test --workspace --all-targets 2>&1
