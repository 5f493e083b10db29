// The wasm's boundary (sdk-wasm/src/abi.rs): numbers, and strings as (pointer, length) of
// UTF-8 in the wasm's memory. Hand-written instead of wasm-bindgen's generated glue
// (BENCHMARKS.md, SDK size); sdk-wasm/build.sh puts it in front of facade.js, which builds the
// imports (module `h`) on these helpers and calls the exports.
//
// `maidianWasm(url, imports)` resolves to the instance's exports; `maidianMemory(exports)`
// gives the string helpers on its memory.
function maidianWasm(url, imports) {
  return fetch(url)
    .then(function (r) { return r.arrayBuffer(); })
    .then(function (b) { return WebAssembly.instantiate(b, { h: imports }); })
    .then(function (m) { return m.instance.exports; });
}

function maidianMemory(w) {
  var view, enc = new TextEncoder(), dec = new TextDecoder();
  // The memory's bytes, viewed again only when it grew (a grown memory detaches old views).
  function bytes() {
    if (!view || view.buffer !== w.memory.buffer) view = new Uint8Array(w.memory.buffer);
    return view;
  }
  // A string copied into memory from the wasm's `alloc` (the callee owns it): [pointer,
  // length]. ASCII, most of what a click carries, is copied code by code (no encoder call).
  function put(s) {
    s = s == null ? '' : String(s);
    var n = s.length, p = w.alloc(n), m = bytes(), i = 0, c;
    for (; i < n; i++) {
      c = s.charCodeAt(i);
      if (c > 127) break;
      m[p + i] = c;
    }
    if (i === n) return [p, n];
    var b = enc.encode(s);
    w.free(p, n);
    p = w.alloc(b.length);
    bytes().set(b, p);
    return [p, b.length];
  }
  return {
    str: function (p, n) { return dec.decode(bytes().subarray(p, p + n)); },
    put: put,
    // A string an import returns: its length stored at `at`, its pointer returned (0: none).
    give: function (s, at) {
      if (s == null) return 0;
      var a = put(s);
      new DataView(w.memory.buffer).setUint32(at, a[1], true);
      return a[0];
    }
  };
}
