//! The browser, as the JS shim hands it to the tracker: one object with a few methods. Going
//! through this instead of web-sys keeps the wasm and its generated glue small; the shim's
//! side of it is `sdk-wasm/js/facade.js` (`host`). No method may throw: the shim catches.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    pub type Host;

    /// `Date.now()`.
    #[wasm_bindgen(method)]
    pub fn now(this: &Host) -> f64;

    /// `Math.random()`.
    #[wasm_bindgen(method)]
    pub fn rand(this: &Host) -> f64;

    /// `localStorage.getItem(key)`.
    #[wasm_bindgen(method)]
    pub fn get(this: &Host, key: &str) -> Option<String>;

    /// `localStorage.setItem(key, value)`, or `removeItem` for `None`.
    #[wasm_bindgen(method)]
    pub fn set(this: &Host, key: &str, value: Option<String>);

    /// Facts about the page: `href`, `title`, `referrer`, `ua`, `screen`, `viewport`,
    /// `loadTime` (ms, or empty), `hidden` (`1` or empty), `dnt` (`1` or empty).
    #[wasm_bindgen(method)]
    pub fn info(this: &Host, key: &str) -> String;

    /// `fetch(url, {method: "POST", body, keepalive: true})`; the answer comes back through
    /// `Tracker.onSent(status, retryAfterMs)`.
    #[wasm_bindgen(method)]
    pub fn send(this: &Host, url: &str, body: &str);

    /// `navigator.sendBeacon(url, body)`.
    #[wasm_bindgen(method)]
    pub fn beacon(this: &Host, url: &str, body: &str) -> bool;

    /// Calls `Tracker.retry()` after `ms` (one pending timer at a time).
    #[wasm_bindgen(method)]
    pub fn later(this: &Host, ms: u32);

    /// `console.log` in debug mode.
    #[wasm_bindgen(method)]
    pub fn log(this: &Host, msg: &str);
}
