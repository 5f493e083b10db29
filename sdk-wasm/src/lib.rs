//! maidian's browser SDK, compiled to WebAssembly and driven by a small JS shim
//! (`sdk-wasm/js/`), which defines `initTracking`/`getTracking` at once and forwards here.
//!
//! # Layout
//! - [`tracker`]: state and behaviour (identity, sessions, page views, queue, delivery).
//! - [`auto`]: automatic capture listeners (clicks, scrolls, submits, visibility, history).
//! - [`transport`]: `fetch` with keepalive and `sendBeacon`.
//! - [`queue`], [`policy`], [`json`]: pure logic, unit-tested natively.
//! - [`browser`]: infallible wrappers over web-sys.
//!
//! Nothing here may throw into the host page: every browser call degrades quietly. The SDK
//! depends on no server crate; its JSON is written by hand (see [`json`]) to stay small.

pub mod auto;
pub mod browser;
pub mod json;
pub mod policy;
pub mod queue;
pub mod tracker;
pub mod transport;

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use wasm_bindgen::prelude::*;

use crate::tracker::{Options, Shared, Tracker as State};

/// The object `getTracking()` returns.
#[wasm_bindgen]
pub struct Tracker {
    state: Shared,
    _listeners: Vec<EventListener>,
    _timer: Interval,
}

#[wasm_bindgen]
impl Tracker {
    /// `initTracking(options)`; see the README for the options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &JsValue) -> Tracker {
        let opts = Options::from_js(options);
        let auto_track = opts.auto_track;
        let interval = opts.flush_interval;
        let state = State::new(opts);
        let listeners = if auto_track {
            let list = auto::install(&state);
            let mut s = state.borrow_mut();
            if browser::is_loaded() {
                s.page_view(Some(browser::referrer()), browser::load_time(), None);
            } else {
                s.defer_initial_view();
            }
            list
        } else {
            Vec::new()
        };
        let weak = std::rc::Rc::downgrade(&state);
        let timer = Interval::new(interval, move || {
            if let Some(s) = weak.upgrade() {
                if let Ok(mut s) = s.try_borrow_mut() {
                    s.kick(false);
                }
            }
        });
        Tracker {
            state,
            _listeners: listeners,
            _timer: timer,
        }
    }

    /// Records a custom event; `data`'s fields (e.g. `custom_data`, `element_id`) are sent
    /// with it.
    #[wasm_bindgen(js_name = trackEvent)]
    pub fn track_event(&self, event_type: &str, data: &JsValue) {
        self.state
            .borrow_mut()
            .record(event_type, |o| State::add_data(o, data));
    }

    /// Records a page view of the current URL (automatic with `autoTrack`).
    #[wasm_bindgen(js_name = trackPageView)]
    pub fn track_page_view(&self, data: &JsValue) {
        let mut s = self.state.borrow_mut();
        s.initial_view();
        s.page_view(None, None, Some(data));
    }

    /// Attaches `id` to the following events (`null` to forget it); kept across reloads.
    #[wasm_bindgen(js_name = setUserId)]
    pub fn set_user_id(&self, id: Option<String>) {
        self.state
            .borrow_mut()
            .set_user(id.filter(|s| !s.is_empty()));
    }

    #[wasm_bindgen(js_name = getSessionId)]
    pub fn get_session_id(&self) -> String {
        self.state.borrow().session_id()
    }

    /// Sends queued events now, skipping any backoff; resolves to how many were stored.
    #[wasm_bindgen(js_name = forceFlush)]
    pub fn force_flush(&self) -> js_sys::Promise {
        let send = self.state.borrow_mut().flush(true);
        wasm_bindgen_futures::future_to_promise(async move {
            let n = match send {
                Some(send) => send.await,
                None => 0,
            };
            Ok(JsValue::from(n as u32))
        })
    }

    /// Events not yet confirmed by the collector (queued or in flight).
    #[wasm_bindgen(js_name = getQueueLength)]
    pub fn get_queue_length(&self) -> usize {
        self.state.borrow().queue_len()
    }

    /// Stops tracking in this browser and forgets queued events; remembered across visits.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        self.state.borrow_mut().set_off(true);
    }

    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) {
        self.state.borrow_mut().set_off(false);
    }

    /// Called by the shim after `history.pushState`/`replaceState`.
    #[wasm_bindgen(js_name = onNavigation)]
    pub fn on_navigation(&self) {
        if let Ok(mut s) = self.state.try_borrow_mut() {
            s.navigated();
        }
    }
}
