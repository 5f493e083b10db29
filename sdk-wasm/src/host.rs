//! The browser, as the JS shim hands it to the tracker: one object with a few methods. Going
//! through this instead of web-sys keeps the wasm and its generated glue small; the shim's
//! side of it is `sdk-wasm/js/facade.js` (`host`). No method may throw: the shim catches.
//!
//! The tracker is generic over [`Env`], so that native unit tests can stand in for the browser.

use alloc::string::String;

use wasm_bindgen::prelude::*;

/// What the tracker needs from its surroundings; see [`Host`] for each method.
pub trait Env {
    fn now(&self) -> f64;
    fn rand(&self) -> f64;
    fn get(&self, key: &str) -> Option<String>;
    fn set(&self, key: &str, value: Option<String>);
    fn info(&self, key: &str) -> String;
    fn send(&self, url: &str, body: &str);
    fn beacon(&self, url: &str, body: &str) -> bool;
    fn later(&self, ms: u32);
    fn log(&self, msg: &str);
}

impl Env for Host {
    fn now(&self) -> f64 {
        Host::now(self)
    }
    fn rand(&self) -> f64 {
        Host::rand(self)
    }
    fn get(&self, key: &str) -> Option<String> {
        Host::get(self, key)
    }
    fn set(&self, key: &str, value: Option<String>) {
        Host::set(self, key, value)
    }
    fn info(&self, key: &str) -> String {
        Host::info(self, key)
    }
    fn send(&self, url: &str, body: &str) {
        Host::send(self, url, body)
    }
    fn beacon(&self, url: &str, body: &str) -> bool {
        Host::beacon(self, url, body)
    }
    fn later(&self, ms: u32) {
        Host::later(self, ms)
    }
    fn log(&self, msg: &str) {
        Host::log(self, msg)
    }
}

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

    /// `initTracking`'s text options, empty when not given: `apiUrl` (with its default),
    /// `apiKey`, `userId`, `sessionId`, `redact` (`-`: off; else extra names, comma-separated).
    /// Facts about the page: `href`, `title`, `referrer`, `ua`, `screen`, `viewport`,
    /// `loadTime` (ms, or empty), `hidden` (`1` or empty), `dnt` (`1` or empty), `webdriver` (`1` or empty), `seed` (32 hex
    /// digits from `crypto.getRandomValues`, or empty).
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
