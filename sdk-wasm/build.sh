#!/usr/bin/env bash
# Builds the browser SDK into sdk-wasm/dist/: Rust → wasm32 (profile wasm-release, the pinned
# nightly of sdk-wasm/toolchain) → wasm-opt -Oz → the JS entry points (script tag and npm),
# each with the hand-written loader (js/wasm.js).
set -euo pipefail
cd "$(dirname "$0")/.."
out=sdk-wasm/dist
mkdir -p "$out"

# A pinned nightly (installed by scripts/setup.sh) rebuilds core and alloc for the wasm with
# panic=immediate-abort: no panic location or message code is linked at all. Its own target
# directory keeps the stable builds' cache.
toolchain="$(cat sdk-wasm/toolchain)"
RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" CARGO_TARGET_DIR=target/sdk \
  cargo "+$toolchain" build -q -p maidian-sdk --target wasm32-unknown-unknown --profile wasm-release \
  -Zbuild-std=core,alloc
wasm=target/sdk/wasm32-unknown-unknown/wasm-release/maidian_sdk.wasm
# Binaryen from npm (package.json): Debian's wasm-opt 108 cannot parse what current rustc
# emits.
wasm_opt=node_modules/.bin/wasm-opt
if [ ! -x "$wasm_opt" ]; then
  echo "wasm-opt not found: run 'npm ci' first" >&2
  exit 1
fi
"$wasm_opt" -Oz --converge --enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-multivalue --enable-mutable-globals --strip-debug --strip-producers --strip-target-features \
  "$wasm" -o "$out/maidian_sdk_bg.wasm"

# The JS entry points: the loader (wasm.js) and facade.js in front of each, then minified
# (terser): the script tag's as one plain script, the npm module's as a module.
terser=node_modules/.bin/terser
rm -f "$out/maidian_sdk.js"
{
  echo '(function () {'
  echo "'use strict';"
  cat sdk-wasm/js/wasm.js sdk-wasm/js/facade.js sdk-wasm/js/classic.js
  echo '})();'
} | "$terser" -c -m --comments false -o "$out/tracking_sdk.js"
cat sdk-wasm/js/wasm.js sdk-wasm/js/facade.js sdk-wasm/js/esm.js | "$terser" --module -c -m --comments false -o "$out/index.js"
cp sdk-wasm/js/index.d.ts "$out/index.d.ts"
ls -l "$out" >&2
