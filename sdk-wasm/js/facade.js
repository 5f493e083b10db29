// The SDK's public face, shared by the script-tag loader and the npm module (sdk-wasm/build.sh
// puts this file in front of each). It defines initTracking/getTracking synchronously, queues
// calls until the wasm tracker is ready and replays them in order, forwards DOM events to it
// as plain values, and provides the browser functions it imports (`sdk-wasm/src/host.rs`).
// Nothing here may throw into the host page: when wasm cannot load (CSP, old browser),
// tracking quietly turns off and debug mode says why, once.
function makeMaidian(loadModule, defaultApiUrl) {
  var RESERVED = ['event_id', 'event_type', 'timestamp', 'session_id', 'anonymous_id', 'api_key', 'sent_at'];
  var INTERESTING = 'a,button,input,select,textarea,label,summary,[role=button],[data-maidian]';
  var IGNORE = '[data-maidian-ignore]';
  var facade = null;
  // The wasm's exports, once loaded, by one-letter names (`sdk-wasm/src/abi.rs`): a alloc,
  // f free, i init, c cmd, e event, s session, r sent, k element, y scrolled.
  var w = null;
  // The memory's view and the UTF-8 coders, made once the wasm loaded (old browsers lack them).
  var view, enc, dec;
  var failed = false;
  var calls = [];
  var debug = false;
  var inFlight = false;
  var waiters = [];
  var retryTimer = 0;
  var viewPending = true;
  var session = '';
  var resolveReady;
  var ready = new Promise(function (r) { resolveReady = r; });

  // Strings cross the wasm's boundary as (pointer, length) of UTF-8 in its memory
  // (`sdk-wasm/src/abi.rs`). The memory's bytes, viewed again only when it grew (a grown
  // memory detaches old views):
  function bytes() {
    if (!view || view.buffer !== w.memory.buffer) view = new Uint8Array(w.memory.buffer);
    return view;
  }
  function str(p, n) { return dec.decode(bytes().subarray(p, p + n)); }
  // A string copied into memory from the wasm's `alloc` (the callee owns it): [pointer,
  // length]. ASCII, most of what a click carries, is copied code by code (no encoder call).
  function put(s) {
    s = s == null ? '' : String(s);
    var n = s.length, p = w.a(n), m = bytes(), i = 0, c;
    for (; i < n; i++) {
      c = s.charCodeAt(i);
      if (c > 127) break;
      m[p + i] = c;
    }
    if (i === n) return [p, n];
    var b = enc.encode(s);
    w.f(p, n);
    p = w.a(b.length);
    bytes().set(b, p);
    return [p, b.length];
  }
  // A string an import returns: its length stored at `at`, its pointer returned (0: none).
  function give(s, at) {
    if (s == null) return 0;
    var a = put(s);
    new DataView(w.memory.buffer).setUint32(at, a[1], true);
    return a[0];
  }

  function warn(message, error) {
    if (debug) console.warn('[maidian] ' + message, error || '');
  }

  // Runs `f` on the wasm now, or once it is ready (in call order); its result when run now.
  function run(f) {
    if (w) {
      try { return f(); } catch (e) { warn('call failed', e); return undefined; }
    }
    if (!failed) calls.push(f);
    return undefined;
  }

  // One of the wasm's commands with at most a flag and one string (`maidian_sdk::command`):
  // 0 first page view, 1 flush, 2 retry, 3 queue length, 4 opt out, 5 opt in, 6 navigated,
  // 7 restored, 8 shown, 9 hidden, 10 trackPageView, 11 setUserId.
  function cmd(code, flag, data) {
    return run(function () { var d = put(data); return w.c(code, flag ? 1 : 0, d[0], d[1]); });
  }

  function guard(fn) {
    return function (e) {
      try { fn(e); } catch (err) { warn('listener failed', err); }
    };
  }

  function fields(data) {
    var out = {};
    if (data && typeof data === 'object') {
      Object.keys(data).forEach(function (k) { if (RESERVED.indexOf(k) < 0) out[k] = data[k]; });
    }
    try { return JSON.stringify(out); } catch (e) { warn('data is not JSON', e); return '{}'; }
  }

  function answered(status, retryAfterMs) {
    inFlight = false;
    var stored = run(function () { return w.r(status, retryAfterMs >= 0 ? Math.min(retryAfterMs, 2147483647) : -1); }) || 0;
    var list = waiters;
    waiters = [];
    list.forEach(function (f) { f(stored); });
  }

  // initTracking's text options, as the tracker asks for them (`host.info` 0 to 3): the
  // endpoint, user and session ids, the redaction list.
  var init = [];
  var storage = null;
  try { storage = window.localStorage; } catch (e) { /* blocked: run without persistence */ }

  // What the tracker asks, by number (`maidian_sdk::host::info`).
  function info(k) {
    switch (k) {
      case 4: return location.href;
      case 5: return document.title;
      case 6: return document.referrer;
      case 7: return navigator.userAgent;
      case 8: return screen.width + 'x' + screen.height;
      case 9: return innerWidth + 'x' + innerHeight;
      case 10:
        var nav = performance.getEntriesByType ? performance.getEntriesByType('navigation')[0] : null;
        return nav && nav.loadEventEnd > 0 ? String(Math.round(nav.loadEventEnd - nav.startTime)) : '';
      case 11: return document.visibilityState === 'hidden' ? '1' : '';
      case 12: return navigator.doNotTrack === '1' ? '1' : '';
      case 13: return navigator.webdriver ? '1' : '';
    }
    return init[k];
  }

  // The browser functions the wasm imports (module `h`; `sdk-wasm/src/abi.rs`), by one-letter
  // names: now, rand, get, set, info, send (fetch), beacon, later, log, put. Storage keys get
  // the `maidian:` prefix here; without storage (blocked) `get` finds nothing.
  var imports = {
    n: function () { return Date.now(); },
    r: function () {
      try { return crypto.getRandomValues(new Uint32Array(1))[0] / 4294967296; } catch (e) { return Math.random(); }
    },
    g: function (k, n, at) {
      try { return give(storage.getItem('maidian:' + str(k, n)), at); } catch (e) { return 0; }
    },
    s: function (k, n, v, m, some) {
      try {
        k = 'maidian:' + str(k, n);
        if (some) storage.setItem(k, str(v, m)); else storage.removeItem(k);
      } catch (e) { /* full or blocked */ }
    },
    i: function (k, at) { return give(info(k), at); },
    f: function (u, n, b, m) {
      inFlight = true;
      fetch(str(u, n), { method: 'POST', body: str(b, m), keepalive: true, credentials: 'omit' }).then(function (r) {
        answered(r.status, parseInt(r.headers.get('retry-after'), 10) * 1000);
      }, function () { answered(0); });
    },
    b: function (u, n, b, m) {
      try { return navigator.sendBeacon(str(u, n), str(b, m)) ? 1 : 0; } catch (e) { return 0; }
    },
    l: function (ms) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(function () { cmd(2); }, ms);
    },
    o: function (m, n) { console.log('[maidian] ' + str(m, n)); },
    p: function (p, n) { session = str(p, n); }
  };

  // Core Web Vitals of the current page view, as Google's web-vitals library defines them
  // (README, "Core Web Vitals"): LCP and FCP from paint entries before the page was first
  // hidden, LCP final at the first input; TTFB from the navigation entry; CLS as the largest
  // session window (shifts under 1 s apart, at most 5 s long); INP as the worst interaction,
  // or one of the worst per 50 interactions. Reset for each new page view.
  var vit = {}, watching = false, hiddenAt = document.visibilityState === 'hidden' ? 0 : Infinity, lcpFinal = false;
  var win = 0, winStart = 0, winLast = 0, longest = [], seen = {}, count = 0, countBase = 0, observers = [];

  // `restoredAt`: the pageshow time of a page restored from the back/forward cache, which
  // makes no request and paints at the next frames.
  function newView(restoredAt) {
    vit = {};
    win = winStart = winLast = count = 0;
    longest = [];
    seen = {};
    countBase = performance.interactionCount || 0;
    lcpFinal = true;
    if (!watching) return;
    vit.cls = 0;
    if (restoredAt != null) {
      vit.ttfb = 0;
      requestAnimationFrame(function () {
        requestAnimationFrame(function () { vit.fcp = vit.lcp = performance.now() - restoredAt; });
      });
    }
  }

  // The page view's measured vitals as JSON (`{}` when none), entries not yet delivered to the
  // observers included (an interaction's entry comes after its next paint).
  function vitals() {
    observers.forEach(function (o) { try { o[0].takeRecords().forEach(o[1]); } catch (e) { /* ignore */ } });
    var out = {};
    ['lcp', 'fcp', 'ttfb', 'inp', 'cls'].forEach(function (k) {
      if (vit[k] >= 0) out[k] = k === 'cls' ? Math.round(vit[k] * 1e4) / 1e4 : Math.round(vit[k]);
    });
    return JSON.stringify(out);
  }

  function observe(type, fn, opts) {
    try {
      var o = new PerformanceObserver(guard(function (l) { l.getEntries().forEach(fn); }));
      opts = opts || {};
      opts.type = type;
      opts.buffered = true;
      o.observe(opts);
      observers.push([o, fn]);
    } catch (e) { /* not supported by this browser */ }
  }

  function interaction(e) {
    var id = e.interactionId;
    if (!id) return;
    if (!(id in seen)) { seen[id] = e.duration; count++; longest.push(id); } else if (e.duration > seen[id]) seen[id] = e.duration;
    longest.sort(function (a, b) { return seen[b] - seen[a]; });
    longest.length = Math.min(longest.length, 10);
    var n = (performance.interactionCount || 0) - countBase || count;
    vit.inp = seen[longest[Math.min(longest.length - 1, Math.floor(n / 50))]];
  }

  function watchVitals() {
    watching = true;
    vit.cls = 0;
    var nav = performance.getEntriesByType && performance.getEntriesByType('navigation')[0];
    var act = (nav && nav.activationStart) || 0;
    if (nav && nav.responseStart > 0) vit.ttfb = Math.max(nav.responseStart - act, 0);
    observe('paint', function (e) {
      if (e.name === 'first-contentful-paint' && e.startTime < hiddenAt) vit.fcp = Math.max(e.startTime - act, 0);
    });
    observe('largest-contentful-paint', function (e) {
      if (!lcpFinal && e.startTime < hiddenAt) vit.lcp = Math.max(e.startTime - act, 0);
    });
    ['keydown', 'click'].forEach(function (t) {
      addEventListener(t, function () { lcpFinal = true; }, { once: true, capture: true });
    });
    observe('layout-shift', function (e) {
      if (e.hadRecentInput) return;
      if (win && e.startTime - winLast < 1000 && e.startTime - winStart < 5000) win += e.value;
      else { win = e.value; winStart = e.startTime; }
      winLast = e.startTime;
      if (win > vit.cls) vit.cls = win;
    });
    observe('event', interaction, { durationThreshold: 40 });
    observe('first-input', interaction);
  }

  // The first page view waits for `load` so that its load time is known, unless the page is
  // hidden or navigates first.
  function firstView() {
    if (viewPending) { viewPending = false; cmd(0); }
  }

  // A click (`a` class, `b` text) or, with `form`, a submit (`a` name, `b` action).
  function element(form, id, a, b, x, y) {
    run(function () {
      var i = put(id), p = put(a), q = put(b);
      w.k(form, i[0], i[1], p[0], p[1], q[0], q[1], x, y);
    });
  }

  function autoTrack() {
    var d = document;
    d.addEventListener('click', guard(function (e) {
      var t = e.target;
      if (!t || !t.closest || t.closest(IGNORE)) return;
      var el = t.closest(INTERESTING) || t;
      var tag = el.tagName;
      // Never an input's value, nor what was typed into an editable region; never a whole
      // region's text.
      // (Attributes, not isContentEditable, which would force a style recalculation per click.)
      var editable = t.closest('[contenteditable]');
      var text = tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' ||
        (editable && editable.getAttribute('contenteditable') !== 'false') ||
        el.querySelector('[contenteditable]:not([contenteditable="false"])')
        ? '' : el.textContent || '';
      if (text.length > 5000) text = '';
      element(0, el.id, el.getAttribute('class'), text, Math.round(e.pageX) || 0, Math.round(e.pageY) || 0);
    }), true);
    d.addEventListener('submit', guard(function (e) {
      var f = e.target;
      if (!f || !f.closest || f.closest(IGNORE)) return;
      element(1, f.id, f.getAttribute('name'), typeof f.action === 'string' ? f.action : '', 0, 0);
    }), true);
    var scrollQueued = false;
    addEventListener('scroll', guard(function () {
      if (scrollQueued) return;
      scrollQueued = true;
      requestAnimationFrame(function () {
        scrollQueued = false;
        var y = scrollY, v = innerHeight, h = d.documentElement.scrollHeight;
        run(function () { w.y(y, v, h); });
      });
    }), { passive: true });
    function hide(e) {
      lcpFinal = true;
      hiddenAt = Math.min(hiddenAt, e.timeStamp);
      firstView();
      cmd(9, 0, vitals());
    }
    d.addEventListener('visibilitychange', guard(function (e) {
      if (d.visibilityState === 'hidden') hide(e); else cmd(8);
    }));
    addEventListener('pagehide', guard(hide));
    addEventListener('pageshow', guard(function (e) {
      if (e.persisted) { hiddenAt = Infinity; newView(e.timeStamp); cmd(7); }
    }));
    // A new page view (or one not known yet, before the wasm is ready) measures afresh.
    var navigated = guard(function () { firstView(); if (cmd(6, 0, vitals()) !== 0) newView(); });
    addEventListener('popstate', navigated);
    addEventListener('hashchange', navigated);
    ['pushState', 'replaceState'].forEach(function (method) {
      var original = history[method];
      history[method] = function () {
        var result = original.apply(this, arguments);
        navigated();
        return result;
      };
    });
    if (d.readyState === 'complete') firstView();
    else addEventListener('load', function () { setTimeout(firstView, 0); });
  }

  function initTracking(options) {
    if (facade) {
      warn('initTracking called twice: keeping the first tracker');
      return facade;
    }
    options = options || {};
    debug = !!options.debug;
    var text = function (v) { return v == null ? undefined : String(v); };
    facade = {
      ready: ready,
      trackEvent: function (type, data) {
        var t = String(type), d = fields(data);
        run(function () { var a = put(t), b = put(d); w.e(a[0], a[1], b[0], b[1]); });
      },
      trackPageView: function (data) { firstView(); cmd(10, 0, fields(data)); },
      setUserId: function (id) { cmd(11, 0, id); },
      getSessionId: function () {
        return w ? run(function () { w.s(); return session; }) : text(options.sessionId) || null;
      },
      forceFlush: function () {
        return ready.then(function () {
          if (!w) return 0;
          var total = 0;
          function step() {
            if (!cmd(1, 1) && !inFlight) return total;
            return new Promise(function (r) { waiters.push(r); }).then(function (stored) {
              total += stored;
              return stored ? step() : total;
            });
          }
          return step();
        });
      },
      getQueueLength: function () { return w ? cmd(3) : calls.length; },
      optOut: function () { cmd(4); },
      optIn: function () { cmd(5); }
    };
    try {
      if (options.autoTrack !== false) {
        if (options.webVitals !== false) watchVitals();
        autoTrack();
      }
      loadModule(imports).then(function (exports) {
        var key = text(options.apiKey);
        // Where batches go; the key in the query too, so the collector checks it before
        // reading a body.
        init = [(text(options.apiUrl) || defaultApiUrl).replace(/\/+$/, '') + '/track/batch' +
          (key ? '?api_key=' + encodeURIComponent(key) : ''), options.userId, options.sessionId,
          options.redact === false ? '-' : Array.isArray(options.redact) ? options.redact.join(',') : ''];
        enc = new TextEncoder();
        dec = new TextDecoder();
        w = exports;
        w.i(debug, options.batchSize | 0, !!options.respectDoNotTrack);
        var queued = calls;
        calls = [];
        queued.forEach(run);
        setInterval(function () { cmd(1); }, Math.max(100, options.flushInterval || 10000));
        resolveReady(facade);
      }).catch(function (e) {
        failed = true;
        w = null;
        calls = [];
        warn('tracking disabled: the wasm did not load', e);
        resolveReady(facade);
      });
    } catch (e) {
      failed = true;
      warn('tracking disabled', e);
      resolveReady(facade);
    }
    return facade;
  }

  function getTracking() {
    return facade;
  }

  return { initTracking: initTracking, getTracking: getTracking };
}
