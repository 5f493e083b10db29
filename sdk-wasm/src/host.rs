//! The browser, as the JS shim hands it to the tracker: a few functions imported by the wasm
//! (module `h`), implemented by the shim (`sdk-wasm/js/facade.js`, its `imports`). Going
//! through these instead of web-sys or wasm-bindgen keeps the wasm and its JS small. No
//! function may throw: the shim catches.
//!
//! The tracker is generic over [`Env`], so that native unit tests can stand in for the browser.

use crate::buf::Buf;

/// What [`Env::info`] is asked, by number (the shim's `info` answers in this order):
/// `initTracking`'s text options, empty when not given (`REDACT`: `-` for off, else extra
/// names, comma-separated), then facts about the page.
pub mod info {
    /// Where batches go: `apiUrl` (or its default) + `/track/batch`, then `?api_key=` and
    /// the key percent-encoded when there is one.
    pub const ENDPOINT: u32 = 0;
    pub const USER_ID: u32 = 1;
    pub const SESSION_ID: u32 = 2;
    pub const REDACT: u32 = 3;
    /// `location.href`.
    pub const HREF: u32 = 4;
    pub const TITLE: u32 = 5;
    pub const REFERRER: u32 = 6;
    pub const UA: u32 = 7;
    /// `1920x1080`.
    pub const SCREEN: u32 = 8;
    pub const VIEWPORT: u32 = 9;
    /// The page's load time in ms, or empty.
    pub const LOAD_TIME: u32 = 10;
    /// `1` when the page is hidden, else empty.
    pub const HIDDEN: u32 = 11;
    /// `1` when Do Not Track is on, else empty.
    pub const DNT: u32 = 12;
    /// `1` when `navigator.webdriver`, else empty.
    pub const WEBDRIVER: u32 = 13;
}

/// What the tracker needs from its surroundings. Text crosses as UTF-8 bytes.
pub trait Env {
    /// `Date.now()`.
    fn now(&self) -> f64;
    /// A random number in [0, 1) from `crypto.getRandomValues` (`Math.random()` without it).
    fn rand(&self) -> f64;
    /// `localStorage.getItem("maidian:" + key)`.
    fn get(&self, key: &str) -> Option<Buf>;
    /// `localStorage.setItem("maidian:" + key, value)`, or `removeItem` for `None`.
    fn set(&self, key: &str, value: Option<&[u8]>);
    /// One of the [`info`] texts.
    fn info(&self, what: u32) -> Buf;
    /// `fetch(url, {method: "POST", body, keepalive: true})`; the answer comes back through
    /// the `sent` export.
    fn send(&self, url: &[u8], body: &[u8]);
    /// `navigator.sendBeacon(url, body)`.
    fn beacon(&self, url: &[u8], body: &[u8]) -> bool;
    /// Calls the `retry` command after `ms` (one pending timer at a time).
    fn later(&self, ms: u32);
    /// `console.log` in debug mode.
    fn log(&self, msg: &[u8]);
}

/// The browser through the shim: [`Env`] on the wasm's imports (`crate::abi`).
#[cfg(target_arch = "wasm32")]
pub struct Host;
