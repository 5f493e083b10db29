// The wasm's loader: instantiates maidian_sdk_bg.wasm with the functions the tracker imports
// and returns the `Tracker` the facade drives (sdk-wasm/src/abi.rs: numbers, and strings as
// (pointer, length) of UTF-8 in the wasm's memory). Hand-written instead of wasm-bindgen's
// generated glue (BENCHMARKS.md, SDK size); sdk-wasm/build.sh puts it in front of facade.js.
function maidianWasm(url) {
  var w, host, view, last = '', enc = new TextEncoder(), dec = new TextDecoder();
  // The memory's bytes, viewed again only when it grew (a grown memory detaches old views).
  function bytes() {
    if (!view || view.buffer !== w.memory.buffer) view = new Uint8Array(w.memory.buffer);
    return view;
  }
  function str(p, n) { return dec.decode(bytes().subarray(p, p + n)); }
  // A string copied into memory from the wasm's `alloc` (the callee owns it): [pointer,
  // length]. ASCII, most of what a click carries, is copied code by code (no encoder call).
  function put(s) {
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
  // A string an import returns: its length stored at `at`, its pointer returned (0: none).
  function give(s, at) {
    if (s == null) return 0;
    var a = put(String(s));
    new DataView(w.memory.buffer).setUint32(at, a[1], true);
    return a[0];
  }
  var imports = {
    now: function () { return host.now(); },
    rand: function () { return host.rand(); },
    get: function (k, n, at) { return give(host.get(str(k, n)), at); },
    set: function (k, n, v, m, some) { host.set(str(k, n), some ? str(v, m) : null); },
    info: function (k, at) { return give(host.info(k), at); },
    send: function (u, n, b, m) { host.send(str(u, n), str(b, m)); },
    beacon: function (u, n, b, m) { return host.beacon(str(u, n), str(b, m)) ? 1 : 0; },
    later: function (ms) { host.later(ms); },
    log: function (m, n) { host.log(str(m, n)); },
    put: function (p, n) { last = str(p, n); }
  };
  function Tracker(hostObject, debug, batchSize, respectDnt) {
    host = hostObject;
    w.init(debug, batchSize, respectDnt);
  }
  Tracker.prototype = {
    cmd: function (code, flag, data) { var d = put(data); return w.cmd(code, flag, d[0], d[1]); },
    trackEvent: function (type, data) { var t = put(type), d = put(data); w.event(t[0], t[1], d[0], d[1]); },
    getSessionId: function () { w.session(); return last; },
    onSent: function (status, ms) { return w.sent(status, ms == null ? -1 : Math.min(ms, 2147483647)); },
    element: function (form, id, a, b, x, y) {
      var i = put(id), p = put(a), q = put(b);
      w.element(form, i[0], i[1], p[0], p[1], q[0], q[1], x, y);
    },
    scrolled: function (y, viewport, doc) { w.scrolled(y, viewport, doc); }
  };
  return fetch(url)
    .then(function (r) { return r.arrayBuffer(); })
    .then(function (b) { return WebAssembly.instantiate(b, { h: imports }); })
    .then(function (m) { w = m.instance.exports; return { Tracker: Tracker }; });
}
