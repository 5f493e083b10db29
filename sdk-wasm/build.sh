#!/usr/bin/env bash
# Builds the browser SDK into sdk-wasm/dist/: Rust → wasm32 (profile wasm-release, the pinned
# nightly of sdk-wasm/toolchain) →
# wasm-bindgen (--target web) → wasm-opt -Oz → the JS entry points (script tag and npm).
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
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name maidian_sdk "$wasm"
# The script tag's glue: the same wasm, its glue as a plain script (no module), put inside
# the loader so that the page fetches the loader and then the wasm, nothing in between.
classic_glue="$(mktemp -d)"
trap 'rm -rf "$classic_glue"' EXIT
wasm-bindgen --target no-modules --no-typescript --out-dir "$classic_glue" --out-name maidian_sdk "$wasm"
# Binaryen from npm (package.json): Debian's wasm-opt 108 cannot parse the table.fill that
# current rustc and wasm-bindgen emit.
wasm_opt=node_modules/.bin/wasm-opt
if [ ! -x "$wasm_opt" ]; then
  echo "wasm-opt not found: run 'npm ci' first" >&2
  exit 1
fi
"$wasm_opt" -Oz --converge --enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-multivalue --enable-mutable-globals --strip-debug --strip-producers \
  "$out/maidian_sdk_bg.wasm" -o "$out/maidian_sdk_bg.wasm"

# The JS entry points: facade.js in front of each, then minified (terser); the script tag's
# with its glue inside, the npm module's importing the module glue.
terser=node_modules/.bin/terser
{
  echo '(function () {'
  echo "'use strict';"
  cat "$classic_glue/maidian_sdk.js" sdk-wasm/js/facade.js sdk-wasm/js/classic.js
  echo '})();'
} | "$terser" -c -m --comments false -o "$out/tracking_sdk.js"
cat sdk-wasm/js/facade.js sdk-wasm/js/esm.js | "$terser" --module -c -m --comments false -o "$out/index.js"
"$terser" "$out/maidian_sdk.js" --module -c -m --comments false -o "$out/maidian_sdk.js"
cp sdk-wasm/js/index.d.ts "$out/index.d.ts"
ls -l "$out" >&2
