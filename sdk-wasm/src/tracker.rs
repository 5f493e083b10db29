//! The tracker's state and behaviour: identity, sessions, page views, the queue and delivery.
//! Browser listeners (see `auto`) and the exported API (see `lib`) only call in here.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use wasm_bindgen::JsValue;

use crate::browser;
use crate::json::Obj;
use crate::policy::{self, Scroll, Verdict};
use crate::queue::{self, Queue};

const KEY_ANON: &str = "maidian:aid";
const KEY_USER: &str = "maidian:uid";
const KEY_SESSION: &str = "maidian:sid";
const KEY_ACTIVE: &str = "maidian:sat";
const KEY_QUEUE: &str = "maidian:queue";
pub const KEY_OPT_OUT: &str = "maidian:optout";

/// Under the 64 KiB that browsers allow a beacon or keepalive fetch.
const MAX_BODY: usize = 60_000;
const MAX_QUEUE_EVENTS: usize = 1_000;
const MAX_QUEUE_BYTES: usize = 512 * 1024;
/// Fields the SDK sets itself; `trackEvent` data cannot override them.
const RESERVED: &[&str] = &[
    "event_id",
    "event_type",
    "timestamp",
    "session_id",
    "anonymous_id",
    "api_key",
    "sent_at",
];

pub struct Options {
    pub api_url: String,
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub debug: bool,
    pub auto_track: bool,
    pub batch_size: usize,
    pub flush_interval: u32,
    pub respect_dnt: bool,
}

impl Options {
    pub fn from_js(o: &JsValue) -> Options {
        let api_url = browser::get_str(o, "apiUrl").unwrap_or_else(|| "/api".into());
        Options {
            api_url: api_url.trim_end_matches('/').to_string(),
            api_key: browser::get_str(o, "apiKey"),
            user_id: browser::get_str(o, "userId"),
            session_id: browser::get_str(o, "sessionId"),
            debug: browser::get_bool(o, "debug").unwrap_or(false),
            auto_track: browser::get_bool(o, "autoTrack").unwrap_or(true),
            batch_size: browser::get_f64(o, "batchSize")
                .map_or(20, |n| n.clamp(1.0, 500.0) as usize),
            flush_interval: browser::get_f64(o, "flushInterval")
                .map_or(10_000, |n| n.clamp(100.0, 3_600_000.0) as u32),
            respect_dnt: browser::get_bool(o, "respectDoNotTrack").unwrap_or(false),
        }
    }
}

/// The page view being watched.
struct Page {
    view_id: String,
    url: String,
    visible_ms: f64,
    visible_since: Option<f64>,
    scroll: Scroll,
    /// A page_leave went out since the page was last shown.
    left: bool,
}

impl Page {
    fn new(url: String) -> Page {
        Page {
            view_id: browser::uuid4(),
            url,
            visible_ms: 0.0,
            visible_since: (!browser::is_hidden()).then(browser::now),
            scroll: Scroll::default(),
            left: false,
        }
    }

    fn visible_total(&self, now: f64) -> f64 {
        self.visible_ms + self.visible_since.map_or(0.0, |t| now - t)
    }
}

pub struct Tracker {
    pub opts: Options,
    endpoint: String,
    queue: Queue,
    in_flight: Option<Vec<String>>,
    /// Handed to `sendBeacon`, so possibly never delivered: kept in localStorage and resent
    /// on the next page load (the collector deduplicates by `event_id`).
    beaconed: Vec<String>,
    attempt: u32,
    retry: Option<Timeout>,
    anonymous_id: String,
    user_id: Option<String>,
    session_id: String,
    page: Option<Page>,
    /// Automatic page view not sent yet (it waits for `load` to know the load time).
    initial_view_pending: bool,
    /// Tracking is off: opted out or Do Not Track.
    off: bool,
    me: Weak<RefCell<Tracker>>,
}

pub type Shared = Rc<RefCell<Tracker>>;

impl Tracker {
    pub fn new(opts: Options) -> Shared {
        let anonymous_id = browser::load(KEY_ANON).unwrap_or_else(|| {
            let id = browser::uuid4();
            browser::save(KEY_ANON, &id);
            id
        });
        let user_id = opts.user_id.clone().or_else(|| browser::load(KEY_USER));
        if let Some(u) = &opts.user_id {
            browser::save(KEY_USER, u);
        }
        let off =
            browser::load(KEY_OPT_OUT).is_some() || (opts.respect_dnt && browser::do_not_track());
        let mut queue = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
        if let Some(saved) = browser::load(KEY_QUEUE) {
            queue.load_storage(&saved);
        }
        let endpoint = opts.api_url.clone() + "/track/batch";
        let shared = Rc::new(RefCell::new(Tracker {
            endpoint,
            queue,
            in_flight: None,
            beaconed: Vec::new(),
            attempt: 0,
            retry: None,
            anonymous_id,
            user_id,
            session_id: String::new(),
            page: None,
            initial_view_pending: false,
            off,
            me: Weak::new(),
            opts,
        }));
        {
            let mut t = shared.borrow_mut();
            t.me = Rc::downgrade(&shared);
            t.session_id = t.current_session(browser::now());
            if t.opts.debug && t.off {
                browser::log("tracking is off (opted out or Do Not Track)");
            }
        }
        shared
    }

    fn debug(&self, msg: &str) {
        if self.opts.debug {
            browser::log(msg);
        }
    }

    /// The session id for an event at `now`: the given one, or the stored one while it is
    /// fresh, else a new one. Stored so every tab of the site shares it.
    fn current_session(&mut self, now: f64) -> String {
        if let Some(fixed) = &self.opts.session_id {
            return fixed.clone();
        }
        let last = browser::load(KEY_ACTIVE)
            .and_then(|s| s.parse::<i64>().ok())
            .map(|ms| ms as f64);
        let stored = browser::load(KEY_SESSION);
        let id = match stored {
            Some(id) if policy::session_alive(last, now) => id,
            _ => {
                let id = browser::uuid4();
                browser::save(KEY_SESSION, &id);
                id
            }
        };
        let mut stamp = String::new();
        crate::json::push_int(&mut stamp, now as i64);
        browser::save(KEY_ACTIVE, &stamp);
        id
    }

    pub fn session_id(&self) -> String {
        self.session_id.clone()
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len() + self.in_flight.as_ref().map_or(0, Vec::len)
    }

    pub fn set_user(&mut self, id: Option<String>) {
        match &id {
            Some(u) => browser::save(KEY_USER, u),
            None => browser::forget(KEY_USER),
        }
        self.user_id = id;
    }

    pub fn set_off(&mut self, off: bool) {
        self.off = off;
        if off {
            browser::save(KEY_OPT_OUT, "1");
            self.queue = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
            browser::forget(KEY_QUEUE);
        } else {
            browser::forget(KEY_OPT_OUT);
        }
    }

    /// Builds an event with the common fields; `fill` adds the type's own.
    pub fn record(&mut self, event_type: &str, fill: impl FnOnce(&mut Obj)) {
        if self.off {
            return;
        }
        let now = browser::now();
        self.session_id = self.current_session(now);
        let mut o = Obj::new();
        o.str("event_id", &browser::uuid4())
            .str("event_type", event_type)
            .int("timestamp", now as i64)
            .str("session_id", &self.session_id)
            .str("anonymous_id", &self.anonymous_id)
            .opt_str("user_id", self.user_id.as_deref());
        if event_type != "page_view" {
            o.opt_str("page_url", self.page.as_ref().map(|p| p.url.as_str()));
        }
        fill(&mut o);
        self.queue.push(o.finish());
        if self.queue.dropped > 0 {
            self.debug("queue full: dropped the oldest events");
            self.queue.dropped = 0;
        }
        if self.queue.len() >= self.opts.batch_size {
            self.kick(false);
        }
    }

    /// Appends the caller's own fields of `trackEvent(type, data)` (JSON values as given).
    pub fn add_data(o: &mut Obj, data: &JsValue) {
        for (k, v) in browser::entries(data) {
            if RESERVED.contains(&k.as_str()) {
                continue;
            }
            if let Some(json) = browser::stringify(&v) {
                o.raw(&k, &json);
            }
        }
    }

    /// Starts a page view of the current URL. `referrer` is the previous page on SPA routes.
    pub fn page_view(
        &mut self,
        referrer: Option<String>,
        load_time: Option<i64>,
        data: Option<&JsValue>,
    ) {
        let page = Page::new(browser::href());
        let view_id = page.view_id.clone();
        let url = page.url.clone();
        self.page = Some(page);
        self.record("page_view", |o| {
            o.str("event_id", &view_id);
            o.str("page_url", &url)
                .opt_str("page_title", Some(&browser::title()))
                .opt_str("referrer", referrer.as_deref())
                .opt_str("user_agent", Some(&browser::user_agent()))
                .opt_str("screen_resolution", browser::screen_size().as_deref())
                .opt_str("viewport_size", browser::viewport_size().as_deref());
            if let Some(ms) = load_time {
                o.int("load_time", ms);
            }
            if let Some(d) = data {
                Tracker::add_data(o, d);
            }
        });
    }

    /// Sends the automatic first page view if it is still waiting for `load`.
    pub fn initial_view(&mut self) {
        if self.initial_view_pending {
            self.initial_view_pending = false;
            self.page_view(Some(browser::referrer()), browser::load_time(), None);
        }
    }

    pub fn defer_initial_view(&mut self) {
        self.initial_view_pending = true;
    }

    /// The page's visible time and deepest scroll, once per time it is hidden or left.
    fn page_leave(&mut self) {
        let now = browser::now();
        let Some(page) = self.page.as_mut() else {
            return;
        };
        if page.left {
            return;
        }
        page.left = true;
        let duration = page.visible_total(now) as i64;
        let view_id = page.view_id.clone();
        let depth = i64::from(page.scroll.max_depth);
        self.record("page_leave", |o| {
            o.str("page_view_id", &view_id)
                .int("duration", duration)
                .int("scroll_depth", depth);
        });
    }

    /// An SPA route change or history move: one page view per new URL, never two.
    pub fn navigated(&mut self) {
        self.initial_view();
        let url = browser::href();
        let previous = match &self.page {
            Some(p) if p.url == url => return,
            Some(p) => Some(p.url.clone()),
            None => None,
        };
        self.page_leave();
        self.page_view(previous, None, None);
    }

    /// A page restored from the back/forward cache is a new view of the same URL.
    pub fn restored(&mut self) {
        self.page_view(Some(browser::referrer()), None, None);
    }

    pub fn scrolled(&mut self) {
        let depth = policy::depth_percent(
            browser::scroll_y(),
            browser::viewport_height(),
            browser::document_height(),
        );
        let Some(page) = self.page.as_mut() else {
            return;
        };
        for m in page.scroll.update(depth) {
            self.record("scroll", |o| {
                o.int("scroll_depth", i64::from(m));
            });
        }
    }

    pub fn shown(&mut self) {
        if let Some(p) = self.page.as_mut() {
            p.visible_since.get_or_insert_with(browser::now);
            p.left = false;
        }
    }

    /// The page is hidden or being left: record the leave, then hand everything to beacons.
    pub fn hidden(&mut self) {
        self.initial_view();
        self.page_leave();
        if let Some(p) = self.page.as_mut() {
            let now = browser::now();
            if let Some(t) = p.visible_since.take() {
                p.visible_ms += now - t;
            }
        }
        self.beacon_all();
    }

    fn body(&self, events: &[String]) -> String {
        queue::body(self.opts.api_key.as_deref(), browser::now() as i64, events)
    }

    /// Sends the queue with `sendBeacon` in bodies under 64 KiB. What a beacon refuses goes
    /// back to the queue for `fetch`. Everything unconfirmed, beacons included, is saved for
    /// the next page load; resending is safe because the collector deduplicates by `event_id`.
    fn beacon_all(&mut self) {
        let mut refused = Vec::new();
        while !self.queue.is_empty() {
            let batch = self.queue.take(500, MAX_BODY);
            if crate::transport::beacon(&self.endpoint, &self.body(&batch)) {
                self.beaconed.extend(batch);
            } else {
                refused.push(batch);
            }
        }
        let any_refused = !refused.is_empty();
        for batch in refused.into_iter().rev() {
            self.queue.put_back(batch);
        }
        self.persist();
        if any_refused {
            self.debug("beacon refused; falling back to fetch");
            self.kick(true);
        }
    }

    /// Saves unconfirmed events (beaconed, in flight and queued) to localStorage.
    fn persist(&self) {
        let mut all = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
        for e in self.beaconed.iter().chain(self.in_flight.iter().flatten()) {
            all.push(e.clone());
        }
        all.load_storage(&self.queue.to_storage());
        if all.is_empty() {
            browser::forget(KEY_QUEUE);
        } else {
            browser::save(KEY_QUEUE, &all.to_storage());
        }
    }

    /// Starts [`Tracker::flush`] in the background.
    pub fn kick(&mut self, force: bool) {
        if let Some(send) = self.flush(force) {
            wasm_bindgen_futures::spawn_local(async move {
                send.await;
            });
        }
    }

    /// Sends the next batch with `fetch`. `force` skips a pending backoff (`forceFlush`).
    /// Returns the send's result for `forceFlush`'s promise.
    pub fn flush(&mut self, force: bool) -> Option<impl std::future::Future<Output = usize>> {
        if self.in_flight.is_some() || self.off || (self.retry.is_some() && !force) {
            return None;
        }
        self.retry = None;
        let batch = self.queue.take(self.opts.batch_size, MAX_BODY);
        if batch.is_empty() {
            return None;
        }
        let body = self.body(&batch);
        let count = batch.len();
        self.in_flight = Some(batch);
        let endpoint = self.endpoint.clone();
        let me = self.me.clone();
        let send = async move {
            let (status, retry_after) = crate::transport::post(&endpoint, &body).await;
            let Some(shared) = me.upgrade() else { return 0 };
            let more = shared.borrow_mut().sent(status, retry_after);
            if more {
                shared.borrow_mut().kick(false);
            }
            if policy::verdict(status) == Verdict::Done {
                count
            } else {
                0
            }
        };
        Some(send)
    }

    /// Handles the answer to the batch in flight; returns whether a full batch waits.
    fn sent(&mut self, status: u16, retry_after: Option<u32>) -> bool {
        let batch = self.in_flight.take().unwrap_or_default();
        match policy::verdict(status) {
            Verdict::Done => self.attempt = 0,
            Verdict::Drop => {
                self.attempt = 0;
                if self.opts.debug {
                    let mut m = String::from("collector refused a batch, dropped; HTTP ");
                    crate::json::push_int(&mut m, i64::from(status));
                    browser::log(&m);
                }
            }
            Verdict::Retry => {
                self.queue.put_back(batch);
                let delay = policy::backoff_ms(self.attempt, js_sys::Math::random(), retry_after);
                self.attempt += 1;
                let me = self.me.clone();
                self.retry = Some(Timeout::new(delay, move || {
                    if let Some(shared) = me.upgrade() {
                        let mut t = shared.borrow_mut();
                        t.retry = None;
                        t.kick(false);
                    }
                }));
                self.debug("send failed; will retry");
            }
        }
        self.persist();
        self.retry.is_none() && self.queue.len() >= self.opts.batch_size
    }
}
