// Script-tag entry: finds the wasm next to its own URL and defines the globals at once; the
// wasm-bindgen glue is inside this same file.
var maidianBase = (function () {
  var s = document.currentScript;
  return s && s.src ? s.src.replace(/[^/]*([?#].*)?$/, '') : '/';
})();
// `wasm_bindgen`: the glue, put in front of this file by sdk-wasm/build.sh.
var maidianApi = makeMaidian(function () {
  return wasm_bindgen({ module_or_path: maidianBase + 'maidian_sdk_bg.wasm' }).then(function () { return wasm_bindgen; });
}, maidianBase + 'api');
if (!window.initTracking) {
  window.initTracking = maidianApi.initTracking;
  window.getTracking = maidianApi.getTracking;
}
