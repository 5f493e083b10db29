// The SDK's public face, shared by the script-tag loader and the npm module (sdk-wasm/build.sh
// puts this file in front of each). It defines initTracking/getTracking synchronously, queues
// calls until the wasm tracker is ready, then replays them in order. Nothing here may throw
// into the host page: when wasm cannot load (CSP, old browser), tracking quietly turns off and
// debug mode says why, once.
function makeMaidian(loadModule, defaultApiUrl) {
  var facade = null;
  var real = null;
  var failed = false;
  var calls = [];
  var debug = false;
  var resolveReady;
  var ready = new Promise(function (r) { resolveReady = r; });

  function warn(message, error) {
    if (debug && typeof console !== 'undefined') console.warn('[maidian] ' + message, error || '');
  }

  function call(name, args) {
    if (real) {
      try {
        return real[name].apply(real, args);
      } catch (e) {
        warn(name + ' failed', e);
        return undefined;
      }
    }
    if (!failed) calls.push([name, args]);
    return undefined;
  }

  function patchHistory() {
    if (typeof history === 'undefined') return;
    ['pushState', 'replaceState'].forEach(function (method) {
      var original = history[method];
      if (typeof original !== 'function') return;
      history[method] = function () {
        var result = original.apply(this, arguments);
        call('onNavigation', []);
        return result;
      };
    });
  }

  function initTracking(options) {
    if (facade) {
      warn('initTracking was already called; keeping the first tracker');
      return facade;
    }
    options = Object.assign({}, options || {});
    if (!options.apiUrl) options.apiUrl = defaultApiUrl;
    debug = !!options.debug;
    facade = {
      ready: ready,
      trackEvent: function (type, data) { call('trackEvent', [String(type), data || {}]); },
      trackPageView: function (data) { call('trackPageView', [data || {}]); },
      setUserId: function (id) { call('setUserId', [id == null ? undefined : String(id)]); },
      getSessionId: function () { return real ? call('getSessionId', []) : options.sessionId || null; },
      forceFlush: function () {
        return ready.then(function () { return real ? real.forceFlush() : 0; }).catch(function () { return 0; });
      },
      getQueueLength: function () { return real ? call('getQueueLength', []) : calls.length; },
      optOut: function () { call('optOut', []); },
      optIn: function () { call('optIn', []); }
    };
    if (options.autoTrack !== false) patchHistory();
    try {
      loadModule().then(function (module) {
        real = new module.Tracker(options);
        var queued = calls;
        calls = [];
        queued.forEach(function (c) { call(c[0], c[1]); });
        resolveReady(facade);
      }).catch(function (e) {
        failed = true;
        calls = [];
        warn('tracking disabled: the WebAssembly module could not load', e);
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
