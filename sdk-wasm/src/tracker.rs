//! The tracker's state and behaviour: identity, sessions, page views, the queue and delivery.
//! The JS shim forwards DOM events here as plain values; everything about what gets recorded,
//! when it is sent and what happens on failure is decided here.

use crate::host::Host;
use crate::json::{push_int, Obj};
use crate::policy::{self, Scroll, Verdict};
use crate::queue::{self, Queue};

const KEY_ANON: &str = "maidian:aid";
const KEY_USER: &str = "maidian:uid";
const KEY_SESSION: &str = "maidian:sid";
const KEY_ACTIVE: &str = "maidian:sat";
const KEY_QUEUE: &str = "maidian:queue";
const KEY_OPT_OUT: &str = "maidian:optout";

/// Under the 64 KiB that browsers allow a beacon or keepalive fetch.
const MAX_BODY: usize = 60_000;
const MAX_QUEUE_EVENTS: usize = 1_000;
const MAX_QUEUE_BYTES: usize = 512 * 1024;
/// How often, at most, the session's last activity is written to localStorage.
const ACTIVITY_WRITE_MS: f64 = 5_000.0;

/// `initTracking`'s options, read by the shim.
pub struct Options {
    pub api_url: String,
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub debug: bool,
    pub batch_size: usize,
    pub respect_dnt: bool,
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

pub struct State {
    host: Host,
    opts: Options,
    endpoint: String,
    queue: Queue,
    in_flight: Option<Vec<String>>,
    /// Handed to `sendBeacon`, so possibly never delivered: kept in localStorage and resent
    /// on the next page load (the collector deduplicates by `event_id`).
    beaconed: Vec<String>,
    attempt: u32,
    backing_off: bool,
    rng: Rng,
    anonymous_id: String,
    user_id: Option<String>,
    session_id: String,
    /// When the session's last activity was written to localStorage (throttled).
    activity_saved: f64,
    page: Option<Page>,
    /// Tracking is off: opted out or Do Not Track.
    off: bool,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl State {
    pub fn new(host: Host, opts: Options) -> State {
        let mut rng = Rng::seeded(&host);
        let anonymous_id = host.get(KEY_ANON).unwrap_or_else(|| {
            let id = rng.uuid4();
            host.set(KEY_ANON, Some(id.clone()));
            id
        });
        if let Some(u) = &opts.user_id {
            host.set(KEY_USER, Some(u.clone()));
        }
        let user_id = opts.user_id.clone().or_else(|| host.get(KEY_USER));
        let off = host.get(KEY_OPT_OUT).is_some() || (opts.respect_dnt && host.info("dnt") == "1");
        let mut queue = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
        if let Some(saved) = host.get(KEY_QUEUE) {
            queue.load_storage(&saved);
        }
        let endpoint = opts.api_url.trim_end_matches('/').to_string() + "/track/batch";
        let mut state = State {
            host,
            endpoint,
            queue,
            in_flight: None,
            beaconed: Vec::new(),
            attempt: 0,
            backing_off: false,
            rng,
            anonymous_id,
            user_id,
            session_id: String::new(),
            activity_saved: f64::NEG_INFINITY,
            page: None,
            off,
            opts,
        };
        state.session_id = state.current_session(state.host.now());
        if state.off {
            state.debug("tracking is off (opted out or Do Not Track)");
        }
        state
    }

    fn debug(&self, msg: &str) {
        if self.opts.debug {
            self.host.log(msg);
        }
    }

    /// The session id for an event at `now`: the given one, or the stored one while it is
    /// fresh, else a new one. Stored, so every tab of the site shares it. Within a few seconds
    /// of the last check the session cannot have expired, so storage is not touched then.
    fn current_session(&mut self, now: f64) -> String {
        if let Some(fixed) = &self.opts.session_id {
            return fixed.clone();
        }
        if now - self.activity_saved < ACTIVITY_WRITE_MS && !self.session_id.is_empty() {
            return self.session_id.clone();
        }
        let last = self
            .host
            .get(KEY_ACTIVE)
            .and_then(|s| s.parse::<i64>().ok())
            .map(|ms| ms as f64);
        let id = match self.host.get(KEY_SESSION) {
            Some(id) if policy::session_alive(last, now) => id,
            _ => {
                let id = self.rng.uuid4();
                self.host.set(KEY_SESSION, Some(id.clone()));
                id
            }
        };
        let mut stamp = String::new();
        push_int(&mut stamp, now as i64);
        self.host.set(KEY_ACTIVE, Some(stamp));
        self.activity_saved = now;
        id
    }

    pub fn session_id(&self) -> String {
        self.session_id.clone()
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len() + self.in_flight.as_ref().map_or(0, Vec::len)
    }

    pub fn set_user(&mut self, id: Option<String>) {
        self.host.set(KEY_USER, id.clone());
        self.user_id = id;
    }

    pub fn set_off(&mut self, off: bool) {
        self.off = off;
        if off {
            self.host.set(KEY_OPT_OUT, Some("1".into()));
            self.queue = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
            self.host.set(KEY_QUEUE, None);
        } else {
            self.host.set(KEY_OPT_OUT, None);
        }
    }

    /// Queues an event with the common fields; `fill` adds the type's own.
    pub fn record(&mut self, event_type: &str, fill: &dyn Fn(&mut Obj)) {
        if self.off {
            return;
        }
        let now = self.host.now();
        self.session_id = self.current_session(now);
        let mut o = Obj::new();
        let event_id = self.rng.uuid4();
        o.str("event_id", &event_id)
            .str("event_type", event_type)
            .int("timestamp", now as i64)
            .str("session_id", &self.session_id)
            .str("anonymous_id", &self.anonymous_id)
            .opt_str("user_id", self.user_id.as_deref())
            .opt_str("page_url", self.page.as_ref().map(|p| p.url.as_str()));
        fill(&mut o);
        self.queue.push(o.finish());
        if self.queue.dropped > 0 {
            self.debug("queue full: dropped the oldest events");
            self.queue.dropped = 0;
        }
        if self.queue.len() >= self.opts.batch_size {
            self.flush(false);
        }
    }

    /// Starts a page view of the current URL. `referrer` is the previous page on SPA routes.
    pub fn page_view(&mut self, referrer: Option<String>, load_time: Option<i64>, data: &str) {
        let now = self.host.now();
        let view_id = self.rng.uuid4();
        let hidden = self.host.info("hidden") == "1";
        let url = self.host.info("href");
        self.page = Some(Page {
            view_id: view_id.clone(),
            url,
            visible_ms: 0.0,
            visible_since: (!hidden).then_some(now),
            scroll: Scroll::default(),
            left: false,
        });
        let h = &self.host;
        let (title, ua, screen, viewport) = (
            h.info("title"),
            h.info("ua"),
            h.info("screen"),
            h.info("viewport"),
        );
        self.record("page_view", &|o| {
            // The page view's own id is the one its page_leave names.
            o.str("page_view_id", &view_id)
                .opt_str("page_title", Some(&title))
                .opt_str("referrer", referrer.as_deref())
                .opt_str("user_agent", Some(&ua))
                .opt_str("screen_resolution", Some(&screen))
                .opt_str("viewport_size", Some(&viewport));
            if let Some(ms) = load_time {
                o.int("load_time", ms);
            }
            o.fields(data);
        });
    }

    /// The first page view, once the page has loaded (so its load time is known).
    pub fn initial_view(&mut self) {
        let referrer = non_empty(self.host.info("referrer"));
        let load = self.host.info("loadTime").parse::<i64>().ok();
        self.page_view(referrer, load, "");
    }

    /// The page's visible time and deepest scroll, once per time it is hidden or left.
    fn page_leave(&mut self) {
        let now = self.host.now();
        let Some(page) = self.page.as_mut() else {
            return;
        };
        if page.left {
            return;
        }
        page.left = true;
        let duration = (page.visible_ms + page.visible_since.map_or(0.0, |t| now - t)) as i64;
        let view_id = page.view_id.clone();
        let depth = i64::from(page.scroll.max_depth);
        self.record("page_leave", &|o| {
            o.str("page_view_id", &view_id)
                .int("duration", duration)
                .int("scroll_depth", depth);
        });
    }

    /// An SPA route change or history move: one page view per new URL, never two.
    pub fn navigated(&mut self) {
        let url = self.host.info("href");
        let previous = match &self.page {
            Some(p) if p.url == url => return,
            Some(p) => Some(p.url.clone()),
            None => None,
        };
        self.page_leave();
        self.page_view(previous, None, "");
    }

    /// A page restored from the back/forward cache is a new view of the same URL.
    pub fn restored(&mut self) {
        self.shown();
        let referrer = non_empty(self.host.info("referrer"));
        self.page_view(referrer, None, "");
    }

    pub fn click(&mut self, id: String, class: String, text: String, x: i32, y: i32) {
        let text = policy::clean_text(&text, 100);
        self.record("click", &|o| {
            o.opt_str("element_id", Some(&id))
                .opt_str("element_class", Some(&class))
                .opt_str("element_text", Some(&text))
                .int("x_position", i64::from(x))
                .int("y_position", i64::from(y));
        });
    }

    pub fn submit(&mut self, id: String, name: String, action: String) {
        let mut data = Obj::new();
        data.opt_str("form_name", Some(&name))
            .opt_str("form_action", Some(&action));
        let data = data.finish();
        self.record("form_submit", &|o| {
            o.opt_str("element_id", Some(&id)).raw("custom_data", &data);
        });
    }

    pub fn scrolled(&mut self, scroll_y: f64, viewport_h: f64, doc_h: f64) {
        let depth = policy::depth_percent(scroll_y, viewport_h, doc_h);
        let Some(page) = self.page.as_mut() else {
            return;
        };
        for m in page.scroll.update(depth) {
            self.record("scroll", &|o| {
                o.int("scroll_depth", i64::from(m));
            });
        }
    }

    pub fn shown(&mut self) {
        let now = self.host.now();
        if let Some(p) = self.page.as_mut() {
            p.visible_since.get_or_insert(now);
            p.left = false;
        }
    }

    /// The page is hidden or being left: record the leave, then hand everything to beacons.
    pub fn hidden(&mut self) {
        self.page_leave();
        let now = self.host.now();
        if let Some(p) = self.page.as_mut() {
            if let Some(t) = p.visible_since.take() {
                p.visible_ms += now - t;
            }
        }
        self.beacon_all();
    }

    fn body(&self, events: &[String]) -> String {
        queue::body(self.opts.api_key.as_deref(), self.host.now() as i64, events)
    }

    /// Sends the queue with `sendBeacon` in bodies under 64 KiB. What a beacon refuses goes
    /// back to the queue for `fetch`. Everything unconfirmed, beacons included, is saved for
    /// the next page load; resending is safe because the collector deduplicates by `event_id`.
    fn beacon_all(&mut self) {
        let mut refused = Vec::new();
        while !self.queue.is_empty() {
            let batch = self.queue.take(500, MAX_BODY);
            if self.host.beacon(&self.endpoint, &self.body(&batch)) {
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
            self.flush(true);
        }
    }

    /// Saves unconfirmed events (beaconed, in flight and queued) to localStorage.
    fn persist(&self) {
        let mut all = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
        for e in self.beaconed.iter().chain(self.in_flight.iter().flatten()) {
            all.push(e.clone());
        }
        all.load_storage(&self.queue.to_storage());
        self.host
            .set(KEY_QUEUE, (!all.is_empty()).then(|| all.to_storage()));
    }

    /// Sends the next batch with `fetch`; `force` skips a pending backoff (`forceFlush`).
    /// Returns how many events the request carries (0: nothing started).
    pub fn flush(&mut self, force: bool) -> usize {
        if self.in_flight.is_some() || self.off || (self.backing_off && !force) {
            return 0;
        }
        self.backing_off = false;
        let batch = self.queue.take(self.opts.batch_size, MAX_BODY);
        if batch.is_empty() {
            return 0;
        }
        let body = self.body(&batch);
        let count = batch.len();
        self.in_flight = Some(batch);
        self.host.send(&self.endpoint, &body);
        count
    }

    /// The answer to the batch in flight (status 0: no answer). Returns how many events the
    /// collector stored (or had already).
    pub fn sent(&mut self, status: u16, retry_after_ms: Option<u32>) -> usize {
        let batch = self.in_flight.take().unwrap_or_default();
        let verdict = policy::verdict(status);
        match verdict {
            Verdict::Done => self.attempt = 0,
            Verdict::Drop => {
                self.attempt = 0;
                let mut m = String::from("collector refused a batch, dropped; HTTP ");
                push_int(&mut m, i64::from(status));
                self.debug(&m);
            }
            Verdict::Retry => {
                self.queue.put_back(batch.clone());
                let delay = policy::backoff_ms(self.attempt, self.host.rand(), retry_after_ms);
                self.attempt += 1;
                self.backing_off = true;
                self.host.later(delay);
                self.debug("send failed; will retry");
            }
        }
        self.persist();
        if !self.backing_off && self.queue.len() >= self.opts.batch_size {
            self.flush(false);
        }
        if verdict == Verdict::Done {
            batch.len()
        } else {
            0
        }
    }

    /// The backoff timer fired.
    pub fn retry(&mut self) {
        self.backing_off = false;
        self.flush(false);
    }
}

/// xorshift64*, seeded once per page from `Math.random` and the clock: event ids need to be
/// unique, not secret, and one call into JS per id would cost more than the event itself.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(host: &Host) -> Rng {
        let a = (host.rand() * 9_007_199_254_740_992.0) as u64;
        let b = (host.rand() * 9_007_199_254_740_992.0) as u64;
        // The state must never be zero.
        Rng((a ^ b.rotate_left(29) ^ (host.now() as u64).rotate_left(53)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random (version 4) UUID.
    pub fn uuid4(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bits = [self.next_u64(), self.next_u64()];
        let mut out = String::with_capacity(36);
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push('-');
            }
            let r = (bits[i / 16] >> ((i % 16) * 4)) as usize & 15;
            let nibble = match i {
                12 => 4,
                16 => 8 | (r & 3),
                _ => r,
            };
            out.push(HEX[nibble] as char);
        }
        out
    }
}
