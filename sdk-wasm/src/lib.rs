//! maidian's browser SDK, compiled to WebAssembly and driven by a small JS shim
//! (`sdk-wasm/js/`), which defines `initTracking`/`getTracking` at once, forwards DOM events
//! here as plain values and lends the tracker a [`host::Host`] for storage, time and network.
//!
//! # Layout
//! - [`tracker`]: state and behaviour (identity, sessions, page views, queue, delivery).
//! - [`queue`], [`policy`], [`json`], [`redact`]: pure logic, unit-tested natively.
//! - [`host`]: the few browser calls the tracker makes, implemented by the shim.
//!
//! Nothing here may throw into the host page. The SDK depends on no server crate; its JSON is
//! written by hand (see [`json`]) to stay small.

// No std in the wasm: `core` + `alloc`, a trapping panic handler and no formatting machinery
// (BENCHMARKS.md, SDK size). Native builds (unit tests) keep std.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod host;
pub mod json;
pub mod policy;
pub mod queue;
pub mod redact;
pub mod tracker;

use alloc::string::String;
use wasm_bindgen::prelude::*;

use crate::host::Host;
use crate::tracker::{non_empty, Options, State};

/// The wasm side of `getTracking()`; the shim wraps it.
#[wasm_bindgen]
pub struct Tracker(State<Host>);

#[wasm_bindgen]
impl Tracker {
    /// Options as the shim read them from `initTracking`: the text ones through
    /// `host.info` (a string parameter each would cost glue on both sides); `batch_size` 0
    /// means the default.
    #[wasm_bindgen(constructor)]
    pub fn new(host: Host, debug: bool, batch_size: u32, respect_dnt: bool) -> Tracker {
        let opt = |key: &str| non_empty(host.info(key));
        let opts = Options {
            api_url: host.info("apiUrl"),
            api_key: opt("apiKey"),
            user_id: opt("userId"),
            session_id: opt("sessionId"),
            debug,
            batch_size: if batch_size == 0 {
                20
            } else {
                batch_size.min(500) as usize
            },
            respect_dnt,
            redact: Options::redact_list(opt("redact").as_deref()),
        };
        Tracker(State::new(host, opts))
    }

    /// The commands that carry at most a flag and one string, as one export (each export
    /// costs about 300 B of wasm and glue): the shim numbers them in this order (`CMDS` in
    /// `js/facade.js`).
    /// 0 the first page view, 1 flush (`flag`: even a partial batch; returns how many events
    /// the request carries), 2 retry, 3 queue length (returned), 4 opt out, 5 opt in,
    /// 6 navigated (returns 1 when a new page view started), 7 restored from the
    /// back/forward cache, 8 shown, 9 hidden, 10 `trackPageView(data)`, 11 `setUserId(id)`.
    /// `data`: for 6 and 9, the ending page view's Core Web Vitals as a JSON object (empty when
    /// none were measured); for 10, `JSON.stringify(data)`; for 11, the id (empty: none).
    pub fn cmd(&mut self, code: u32, flag: bool, data: &str) -> usize {
        let s = &mut self.0;
        match code {
            0 => s.initial_view(),
            1 => return s.flush(flag),
            2 => s.retry(),
            3 => return s.queue_len(),
            4 => s.set_off(true),
            5 => s.set_off(false),
            6 => return usize::from(s.navigated(data)),
            7 => s.restored(),
            8 => s.shown(),
            9 => s.hidden(data),
            10 => s.page_view(None, None, data),
            11 => s.set_user(non_empty(data.into())),
            _ => {}
        }
        0
    }

    /// `trackEvent(type, data)`: `data_json` is `JSON.stringify(data)` without reserved keys.
    #[wasm_bindgen(js_name = trackEvent)]
    pub fn track_event(&mut self, event_type: &str, data_json: &str) {
        self.0.record(event_type, &|o| {
            o.fields(data_json);
        });
    }

    #[wasm_bindgen(js_name = getSessionId)]
    pub fn get_session_id(&self) -> String {
        self.0.session_id()
    }

    /// The answer to `host.send`; returns how many events were stored.
    #[wasm_bindgen(js_name = onSent)]
    pub fn on_sent(&mut self, status: u16, retry_after_ms: Option<u32>) -> usize {
        self.0.sent(status, retry_after_ms)
    }

    /// A click (`id`, class, text, page x/y) or, with `form`, a form submit (`id`, name,
    /// action): one export for both, as they carry the same kind of values.
    pub fn element(&mut self, form: bool, id: String, a: String, b: String, x: i32, y: i32) {
        if form {
            self.0.submit(id, a, b);
        } else {
            self.0.click(id, a, b, x, y);
        }
    }

    pub fn scrolled(&mut self, scroll_y: f64, viewport_h: f64, doc_h: f64) {
        self.0.scrolled(scroll_y, viewport_h, doc_h);
    }
}

// dlmalloc, Rust's default on wasm, is a quarter of the SDK's size; this free-list allocator
// is a few hundred bytes and plenty for a tracker's short strings.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// A panic in the wasm traps (the shim catches the exception and turns tracking off): no
/// message is formatted, so no formatting code is linked.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
