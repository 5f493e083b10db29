// The wasm's boundary (sdk-wasm/src/abi.rs): numbers, and strings as (pointer, length) of
// UTF-8 in the wasm's memory. Hand-written instead of wasm-bindgen's generated glue
// (BENCHMARKS.md, SDK size); sdk-wasm/build.sh puts it in front of facade.js, which builds the
// imports (module `h`) on these helpers and calls the exports.
//
// `maidianWasm(url, imports)` resolves to the instance's exports.
function maidianWasm(url, imports) {
  return fetch(url)
    .then(function (r) { return r.arrayBuffer(); })
    .then(function (b) { return WebAssembly.instantiate(b, { h: imports }); })
    .then(function (m) { return m.instance.exports; });
}
