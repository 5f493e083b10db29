// Script-tag entry: finds the wasm next to its own URL and defines the globals at once.
var maidianBase = (function () {
  var s = document.currentScript;
  return s && s.src ? s.src.replace(/[^/]*([?#].*)?$/, '') : '/';
})();
var maidianApi = makeMaidian(function () {
  return import(maidianBase + 'maidian_sdk.js').then(function (m) {
    return m.default({ module_or_path: maidianBase + 'maidian_sdk_bg.wasm' }).then(function () { return m; });
  });
}, maidianBase + 'api');
if (!window.initTracking) {
  window.initTracking = maidianApi.initTracking;
  window.getTracking = maidianApi.getTracking;
}
