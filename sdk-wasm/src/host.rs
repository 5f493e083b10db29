//! The browser, as the JS shim hands it to the tracker: a few functions imported by the wasm
//! (module `h`), implemented by the shim's `host` object (`sdk-wasm/js/facade.js`) through the
//! hand-written loader (`sdk-wasm/js/wasm.js`). Going through these instead of web-sys or
//! wasm-bindgen keeps the wasm and its JS small. No function may throw: the shim catches.
//!
//! The tracker is generic over [`Env`], so that native unit tests can stand in for the browser.

use alloc::string::String;

/// What the tracker needs from its surroundings; see [`Host`] for each function.
pub trait Env {
    /// `Date.now()`.
    fn now(&self) -> f64;
    /// `Math.random()`.
    fn rand(&self) -> f64;
    /// `localStorage.getItem(key)`.
    fn get(&self, key: &str) -> Option<String>;
    /// `localStorage.setItem(key, value)`, or `removeItem` for `None`.
    fn set(&self, key: &str, value: Option<String>);
    /// `initTracking`'s text options, empty when not given: `apiUrl` (with its default),
    /// `apiKey`, `userId`, `sessionId`, `redact` (`-`: off; else extra names, comma-separated).
    /// Facts about the page: `href`, `title`, `referrer`, `ua`, `screen`, `viewport`,
    /// `loadTime` (ms, or empty), `hidden` (`1` or empty), `dnt` (`1` or empty), `webdriver`
    /// (`1` or empty), `seed` (32 hex digits from `crypto.getRandomValues`, or empty).
    fn info(&self, key: &str) -> String;
    /// `fetch(url, {method: "POST", body, keepalive: true})`; the answer comes back through
    /// the `sent` export.
    fn send(&self, url: &str, body: &str);
    /// `navigator.sendBeacon(url, body)`.
    fn beacon(&self, url: &str, body: &str) -> bool;
    /// Calls the `retry` command after `ms` (one pending timer at a time).
    fn later(&self, ms: u32);
    /// `console.log` in debug mode.
    fn log(&self, msg: &str);
}

/// The browser through the shim: [`Env`] on the wasm's imports (`crate::abi`).
#[cfg(target_arch = "wasm32")]
pub struct Host;
