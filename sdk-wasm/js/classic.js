// Script-tag entry: finds the wasm next to its own URL and defines the globals at once; the
// loader (wasm.js) is inside this same file.
var maidianBase = (function () {
  var s = document.currentScript;
  return s && s.src ? s.src.replace(/[^/]*([?#].*)?$/, '') : '/';
})();
var maidianApi = makeMaidian(function (imports) {
  return maidianWasm(maidianBase + 'maidian_sdk_bg.wasm', imports);
}, maidianBase + 'api');
if (!window.initTracking) {
  window.initTracking = maidianApi.initTracking;
  window.getTracking = maidianApi.getTracking;
}
