//! The tracker's state and behaviour: identity, sessions, page views, the queue and delivery.
//! The JS shim forwards DOM events here as plain values; everything about what gets recorded,
//! when it is sent and what happens on failure is decided here.

use alloc::string::String;
use alloc::vec::Vec;

use crate::host::Env;
use crate::json::{parse_int, push_int, Obj};
use crate::policy::{self, Scroll, Verdict};
use crate::queue::{self, Queue};
use crate::redact;

const KEY_ANON: &str = "maidian:aid";
const KEY_USER: &str = "maidian:uid";
const KEY_SESSION: &str = "maidian:sid";
const KEY_ACTIVE: &str = "maidian:sat";
const KEY_QUEUE: &str = "maidian:queue";
const KEY_OPT_OUT: &str = "maidian:optout";
/// 5xx answers to the queue's head so far and when the first came: `count,first_ms`.
const KEY_STRIKES: &str = "maidian:strikes";

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
    /// Query parameters whose values are redacted from URLs, comma-separated; empty:
    /// redaction off.
    pub redact: String,
}

impl Options {
    /// The redaction list from the `redact` option: `-` turns redaction off, other names
    /// (comma separated) are added to [`redact::DEFAULT_PARAMS`].
    pub fn redact_list(option: Option<&str>) -> String {
        match option {
            Some("-") => String::new(),
            Some(extra) if !extra.is_empty() => String::from(redact::DEFAULT_PARAMS) + "," + extra,
            _ => redact::DEFAULT_PARAMS.into(),
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
    /// Its web_vitals event went out (once per page view).
    vitals_sent: bool,
}

pub struct State<H: Env> {
    host: H,
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
    /// `navigator.webdriver`: the browser is driven by automation (said in every batch).
    webdriver: bool,
}

/// `s`, or `None` when empty (the shim says "not given" with an empty string).
pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl<H: Env> State<H> {
    pub fn new(host: H, opts: Options) -> State<H> {
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
        let webdriver = host.info("webdriver") == "1";
        let mut queue = Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES);
        if let Some(saved) = host.get(KEY_QUEUE) {
            queue.load_storage(&saved);
        }
        // The key goes in the query too, so the collector checks it before reading a body.
        let mut endpoint = opts.api_url.clone();
        while endpoint.ends_with('/') {
            endpoint.truncate(endpoint.len() - 1);
        }
        endpoint.push_str("/track/batch");
        if let Some(k) = &opts.api_key {
            endpoint.push_str("?api_key=");
            percent_encode_into(&mut endpoint, k);
        }
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
            webdriver,
            opts,
        };
        state.session_id = state.current_session(state.host.now());
        if state.off {
            state.debug("tracking is off (opted out or Do Not Track)");
        }
        state
    }

    /// `info(key)` (a URL) without its sensitive query and fragment values.
    fn url_info(&self, key: &str) -> String {
        clean_url(self.host.info(key), &self.opts.redact)
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
            .and_then(|s| parse_int(&s))
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
            .opt_str("user_id", self.user_id.as_deref());
        match &self.page {
            Some(p) => o.str("page_url", &p.url),
            // Before the first page view (it waits for `load`), ask the page.
            None => o.opt_str("page_url", Some(&self.url_info("href"))),
        };
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
        let url = self.url_info("href");
        self.page = Some(Page {
            view_id: view_id.clone(),
            url,
            visible_ms: 0.0,
            visible_since: (!hidden).then_some(now),
            scroll: Scroll::default(),
            left: false,
            vitals_sent: false,
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
        let referrer = non_empty(self.url_info("referrer"));
        let load = parse_int(&self.host.info("loadTime"));
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

    /// The page view's Core Web Vitals as it ends, once: `data` is the shim's JSON object of
    /// what the browser measured (`{"lcp":1234,"cls":0.05,…}`), empty when nothing was.
    fn vitals(&mut self, data: &str) {
        let Some(page) = self.page.as_mut() else {
            return;
        };
        if page.vitals_sent || data.len() < 3 {
            return;
        }
        page.vitals_sent = true;
        let view_id = page.view_id.clone();
        self.record("web_vitals", &|o| {
            o.str("page_view_id", &view_id).fields(data);
        });
    }

    /// An SPA route change or history move: one page view per new URL, never two. `vitals`
    /// are the ending page view's. Says whether a new page view started.
    pub fn navigated(&mut self, vitals: &str) -> bool {
        let url = self.url_info("href");
        let previous = match &self.page {
            Some(p) if p.url == url => return false,
            Some(p) => Some(p.url.clone()),
            None => None,
        };
        self.vitals(vitals);
        self.page_leave();
        self.page_view(previous, None, "");
        true
    }

    /// A page restored from the back/forward cache is a new view of the same URL.
    pub fn restored(&mut self) {
        self.shown();
        let referrer = non_empty(self.url_info("referrer"));
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
        let action = clean_url(action, &self.opts.redact);
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

    /// The page is hidden or being left: record its vitals (the first time) and the leave,
    /// then hand everything to beacons.
    pub fn hidden(&mut self, vitals: &str) {
        self.vitals(vitals);
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
        queue::body(
            self.opts.api_key.as_deref(),
            self.host.now() as i64,
            events,
            self.webdriver,
        )
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
        let mut verdict = policy::verdict(status);
        if (500..=599).contains(&status) && self.strike() {
            verdict = Verdict::Drop;
            self.debug("collector failed this batch for over a day of retries; dropped");
        } else if verdict != Verdict::Retry {
            self.host.set(KEY_STRIKES, None);
        }
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

    /// Counts one more 5xx for the queue's head (kept across page loads); true once the head
    /// has failed [`policy::MAX_STRIKES`] times over at least [`policy::GIVE_UP_AFTER_MS`].
    fn strike(&mut self) -> bool {
        let now = self.host.now();
        let saved = self.host.get(KEY_STRIKES).unwrap_or_default();
        let parts = redact::find(saved.as_bytes(), b',')
            .and_then(|i| Some((parse_int(saved.get(..i)?)?, parse_int(saved.get(i + 1..)?)?)));
        let (count, first) = match parts {
            Some((c, f)) => (c + 1, f as f64),
            None => (1, now),
        };
        if policy::give_up(count as u32, first, now) {
            self.host.set(KEY_STRIKES, None);
            return true;
        }
        let mut v = String::new();
        push_int(&mut v, count);
        v.push(',');
        push_int(&mut v, first as i64);
        self.host.set(KEY_STRIKES, Some(v));
        false
    }

    /// The backoff timer fired.
    pub fn retry(&mut self) {
        self.backing_off = false;
        self.flush(false);
    }
}

/// `url` without its sensitive values (see [`redact`]); unchanged when `deny` is empty.
fn clean_url(url: String, deny: &str) -> String {
    if deny.is_empty() {
        return url;
    }
    redact::url(&url, deny).unwrap_or(url)
}

/// Appends `s` percent-encoded (everything but RFC 3986's unreserved characters).
fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// xoroshiro128++, seeded once per page with 128 bits from `crypto.getRandomValues` (the
/// host's `seed` info, 32 hex digits): ids stay unique across billions of page loads, and one
/// call into JS per id would cost more than the event itself. `Math.random` and the clock
/// stand in only where the host has no `crypto`.
pub struct Rng([u64; 2]);

impl Rng {
    pub fn seeded(host: &impl Env) -> Rng {
        let seed = host.info("seed");
        let mut s = [0u64; 2];
        let mut ok = seed.len() == 32;
        for (i, c) in seed.bytes().enumerate().take(32) {
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => {
                    ok = false;
                    0
                }
            };
            s[i / 16] = s[i / 16] << 4 | u64::from(v);
        }
        let (a, b) = match ok {
            true => (s[0], s[1]),
            false => (
                (host.rand() * 9_007_199_254_740_992.0) as u64
                    ^ (host.now() as u64).rotate_left(53),
                (host.rand() * 9_007_199_254_740_992.0) as u64,
            ),
        };
        // The state must never be all zero; any other keeps all 128 bits of the seed.
        Rng([a, if a == 0 && b == 0 { 1 } else { b }])
    }

    pub fn next_u64(&mut self) -> u64 {
        let [s0, mut s1] = self.0;
        let out = s0.wrapping_add(s1).rotate_left(17).wrapping_add(s0);
        s1 ^= s0;
        self.0 = [s0.rotate_left(49) ^ s1 ^ (s1 << 21), s1.rotate_left(28)];
        out
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::rc::Rc;

    /// A browser stand-in: a clock the test moves, localStorage in a map, and every request.
    #[derive(Default)]
    struct Browser {
        now: Cell<f64>,
        storage: RefCell<HashMap<String, String>>,
        href: RefCell<String>,
        seed: RefCell<String>,
        hidden: Cell<bool>,
        sent: RefCell<Vec<String>>,
        beacons: RefCell<Vec<String>>,
        refuse_beacons: Cell<bool>,
        timers: RefCell<Vec<u32>>,
    }

    #[derive(Clone, Default)]
    struct Fake(Rc<Browser>);

    impl Env for Fake {
        fn now(&self) -> f64 {
            self.0.now.get()
        }
        fn rand(&self) -> f64 {
            0.5
        }
        fn get(&self, key: &str) -> Option<String> {
            self.0.storage.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: Option<String>) {
            let mut s = self.0.storage.borrow_mut();
            match value {
                Some(v) => s.insert(key.into(), v),
                None => s.remove(key),
            };
        }
        fn info(&self, key: &str) -> String {
            match key {
                "href" => self.0.href.borrow().clone(),
                "seed" => self.0.seed.borrow().clone(),
                "hidden" if self.0.hidden.get() => "1".into(),
                "title" => "T".into(),
                _ => String::new(),
            }
        }
        fn send(&self, _url: &str, body: &str) {
            self.0.sent.borrow_mut().push(body.into());
        }
        fn beacon(&self, _url: &str, body: &str) -> bool {
            if self.0.refuse_beacons.get() {
                return false;
            }
            self.0.beacons.borrow_mut().push(body.into());
            true
        }
        fn later(&self, ms: u32) {
            self.0.timers.borrow_mut().push(ms);
        }
        fn log(&self, _msg: &str) {}
    }

    impl Fake {
        fn at(&self, ms: f64, href: &str) {
            self.0.now.set(ms);
            *self.0.href.borrow_mut() = href.into();
        }
    }

    fn opts(batch_size: usize) -> Options {
        Options {
            api_url: "/api".into(),
            api_key: Some("k".into()),
            user_id: None,
            session_id: None,
            debug: false,
            batch_size,
            respect_dnt: false,
            redact: Options::redact_list(None),
        }
    }

    fn events(bodies: &[String]) -> Vec<Value> {
        bodies
            .iter()
            .flat_map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
                assert_eq!(v["api_key"], "k");
                v["events"].as_array().unwrap().clone()
            })
            .collect()
    }

    fn types(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    }

    fn click(t: &mut State<Fake>) {
        t.click("b".into(), String::new(), "Buy".into(), 1, 2);
    }

    #[test]
    fn sends_at_batch_size_retries_a_500_with_backoff_then_forgets() {
        let env = Fake::default();
        env.at(1_000_000.0, "https://s.example/a");
        let mut t = State::new(env.clone(), opts(3));
        for _ in 0..3 {
            click(&mut t);
        }
        assert_eq!(env.0.sent.borrow().len(), 1);
        let first = events(&env.0.sent.borrow());
        assert_eq!(first.len(), 3);

        assert_eq!(t.sent(500, None), 0);
        assert_eq!(*env.0.timers.borrow(), vec![750]); // 1 s step, half fixed, half jitter
        assert_eq!(t.queue_len(), 3);
        assert!(env.get(KEY_QUEUE).is_some(), "unsent events are saved");
        assert_eq!(t.flush(false), 0, "no send while backing off");

        t.retry();
        let again = events(&env.0.sent.borrow()[1..]);
        assert_eq!(again, first, "the resend carries the same event ids");
        assert_eq!(t.sent(200, None), 3);
        assert_eq!(t.queue_len(), 0);
        assert_eq!(env.get(KEY_QUEUE), None);
    }

    #[test]
    fn a_4xx_drops_the_batch_and_retry_after_is_honoured() {
        let env = Fake::default();
        let mut t = State::new(env.clone(), opts(1));
        click(&mut t);
        assert_eq!(t.sent(400, None), 0);
        assert_eq!(t.queue_len(), 0);
        assert!(env.0.timers.borrow().is_empty());
        click(&mut t);
        t.sent(429, Some(30_000));
        assert_eq!(*env.0.timers.borrow(), vec![30_000]);
    }

    #[test]
    fn sessions_rotate_after_30_idle_minutes() {
        let env = Fake::default();
        env.at(0.0, "/");
        let mut t = State::new(env.clone(), opts(100));
        let first = t.session_id();
        env.at(10.0 * 60_000.0, "/");
        click(&mut t);
        assert_eq!(t.session_id(), first);
        env.at(41.0 * 60_000.0 + 1.0, "/");
        click(&mut t);
        assert_ne!(t.session_id(), first);
    }

    #[test]
    fn one_web_vitals_event_per_page_view_as_it_ends() {
        let env = Fake::default();
        env.at(0.0, "https://s.example/");
        let mut t = State::new(env.clone(), opts(100));
        t.initial_view();
        env.at(5_000.0, "https://s.example/a");
        assert!(t.navigated(r#"{"lcp":1200,"fcp":800,"ttfb":90,"cls":0.05}"#));
        assert!(
            !t.navigated(r#"{"cls":0.5}"#),
            "same URL: the page view goes on"
        );
        env.0.hidden.set(true);
        t.hidden(r#"{"cls":0.01,"inp":180}"#);
        t.hidden(r#"{"cls":0.02,"inp":180}"#); // pagehide: sent already
        env.0.hidden.set(false);
        t.shown();
        t.hidden(r#"{"cls":0.03}"#); // hidden again: still one per page view
        env.at(9_000.0, "https://s.example/b");
        t.navigated("");
        t.hidden(""); // nothing measured: no event
        let sent = events(&env.0.beacons.borrow());
        let vitals: Vec<&serde_json::Value> = sent
            .iter()
            .filter(|e| e["event_type"] == "web_vitals")
            .collect();
        assert_eq!(vitals.len(), 2);
        let views: Vec<&serde_json::Value> = sent
            .iter()
            .filter(|e| e["event_type"] == "page_view")
            .map(|e| &e["page_view_id"])
            .collect();
        assert_eq!(vitals[0]["page_view_id"], *views[0]);
        assert_eq!(vitals[0]["page_url"], "https://s.example/");
        assert_eq!(
            (vitals[0]["lcp"].as_i64(), vitals[0]["cls"].as_f64()),
            (Some(1200), Some(0.05))
        );
        assert_eq!(vitals[1]["page_view_id"], *views[1]);
        assert_eq!(vitals[1]["inp"], 180);
        assert!(vitals[1].get("lcp").is_none());
    }

    #[test]
    fn one_page_view_per_url_and_one_leave_per_hide() {
        let env = Fake::default();
        env.at(0.0, "https://s.example/");
        let mut t = State::new(env.clone(), opts(100));
        t.initial_view();
        t.navigated(""); // same URL (replaceState): nothing
        env.at(5_000.0, "https://s.example/products");
        t.navigated("");
        t.navigated("");
        env.at(8_000.0, "https://s.example/products");
        env.0.hidden.set(true);
        t.hidden("");
        t.hidden(""); // pagehide after visibilitychange: no second leave
        env.0.hidden.set(false);
        env.at(20_000.0, "https://s.example/products");
        t.shown();
        env.at(21_000.0, "https://s.example/products");
        t.hidden("");
        let sent = events(&env.0.beacons.borrow());
        assert_eq!(
            types(&sent),
            [
                "page_view",
                "page_leave",
                "page_view",
                "page_leave",
                "page_leave"
            ]
        );
        assert_eq!(sent[1]["duration"], 5_000);
        assert_eq!(sent[1]["page_view_id"], sent[0]["page_view_id"]);
        assert_eq!(sent[2]["referrer"], "https://s.example/");
        // 3 s visible, hidden 12 s, visible 1 s more: the second leave says 4 s in all.
        assert_eq!(sent[3]["duration"], 3_000);
        assert_eq!(sent[4]["duration"], 4_000);
    }

    #[test]
    fn beaconed_and_in_flight_events_are_resent_on_the_next_load() {
        let env = Fake::default();
        env.at(0.0, "/");
        let mut t = State::new(env.clone(), opts(2));
        click(&mut t);
        click(&mut t); // a fetch is now in flight, unanswered
        click(&mut t);
        t.hidden(""); // the third goes by beacon
        let beaconed = events(&env.0.beacons.borrow());
        assert_eq!(beaconed.len(), 1);
        let in_flight = events(&env.0.sent.borrow());
        assert_eq!(in_flight.len(), 2);

        let next = Fake(Rc::new(Browser {
            storage: RefCell::new(env.0.storage.borrow().clone()),
            ..Browser::default()
        }));
        let mut t2 = State::new(next.clone(), opts(100));
        assert_eq!(t2.queue_len(), 3);
        t2.flush(true);
        let resent = events(&next.0.sent.borrow());
        let ids = |v: &[Value]| {
            let mut ids: Vec<String> = v.iter().map(|e| e["event_id"].to_string()).collect();
            ids.sort();
            ids
        };
        let mut expected = ids(&in_flight);
        expected.extend(ids(&beaconed));
        expected.sort();
        assert_eq!(ids(&resent), expected);
    }

    #[test]
    fn a_refused_beacon_falls_back_to_fetch() {
        let env = Fake::default();
        env.0.refuse_beacons.set(true);
        let mut t = State::new(env.clone(), opts(100));
        click(&mut t);
        t.hidden("");
        assert_eq!(types(&events(&env.0.sent.borrow())), ["click"]);
    }

    #[test]
    fn opting_out_forgets_the_queue_and_is_remembered() {
        let env = Fake::default();
        let mut t = State::new(env.clone(), opts(100));
        click(&mut t);
        t.set_off(true);
        click(&mut t);
        assert_eq!(t.queue_len(), 0);
        let mut again = State::new(env.clone(), opts(100));
        click(&mut again);
        assert_eq!(again.queue_len(), 0);
        again.set_off(false);
        click(&mut again);
        assert_eq!(again.queue_len(), 1);
    }

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        let env = Fake::default();
        let mut rng = Rng::seeded(&env);
        let a = rng.uuid4();
        let b = rng.uuid4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_batch_failing_with_5xx_for_a_day_is_dropped_but_offline_never_is() {
        let env = Fake::default();
        env.at(1_000_000.0, "https://s.example/a");
        let mut t = State::new(env.clone(), opts(1));
        click(&mut t);
        // Offline (status 0) for two days: kept.
        for i in 0..40 {
            env.0.now.set(1_000_000.0 + f64::from(i) * 3_600_000.0);
            t.retry();
            t.sent(0, None);
        }
        assert_eq!(t.queue_len(), 1);
        // 5xx: many failures within hours are not enough, a day of them is.
        for i in 0..30 {
            env.0.now.set(200_000_000.0 + f64::from(i) * 60_000.0);
            t.retry();
            t.sent(503, None);
        }
        assert_eq!(t.queue_len(), 1, "under a day of 5xx: still queued");
        // A new page load keeps counting (the strikes are in storage).
        let mut t = State::new(env.clone(), opts(1));
        env.0.now.set(200_000_000.0 + policy::GIVE_UP_AFTER_MS);
        t.retry();
        t.sent(503, None);
        assert_eq!(t.queue_len(), 0, "a day of 5xx: dropped");
        assert_eq!(env.get(KEY_STRIKES), None);
    }

    #[test]
    fn urls_are_redacted_and_the_key_rides_in_the_query() {
        let env = Fake::default();
        env.at(
            1_000_000.0,
            "https://s.example/reset?token=abc&utm_source=m#access_token=z",
        );
        let mut t = State::new(env.clone(), opts(1));
        assert_eq!(t.endpoint, "/api/track/batch?api_key=k");
        t.initial_view();
        t.submit(
            "f".into(),
            "n".into(),
            "https://s.example/go?email=a@b.example&x=1".into(),
        );
        let sent = events(&env.0.sent.borrow());
        assert_eq!(
            sent[0]["page_url"],
            "https://s.example/reset?token=[redacted]&utm_source=m#access_token=[redacted]"
        );
        t.sent(200, None);
        let sent = events(&env.0.sent.borrow());
        assert_eq!(
            sent[1]["custom_data"]["form_action"],
            "https://s.example/go?email=[redacted]&x=1"
        );
        let mut off = opts(1);
        off.redact = Options::redact_list(Some("-"));
        let env = Fake::default();
        env.at(2_000_000.0, "https://s.example/?token=abc");
        let mut t = State::new(env.clone(), off);
        t.navigated("");
        let sent = events(&env.0.sent.borrow());
        assert_eq!(
            sent.last().unwrap()["page_url"],
            "https://s.example/?token=abc"
        );
    }

    #[test]
    fn ids_come_from_the_128_bit_seed() {
        let ids = |seed: &str| {
            let env = Fake::default();
            *env.0.seed.borrow_mut() = seed.into();
            let mut r = Rng::seeded(&env);
            (r.uuid4(), r.uuid4())
        };
        let a = ids("00000000000000010000000000000002");
        assert_eq!(a, ids("00000000000000010000000000000002"));
        assert_ne!(
            a,
            ids("00000000000000010000000000000004"),
            "the low half matters"
        );
        assert_ne!(
            a,
            ids("00000000000000020000000000000002"),
            "the high half matters"
        );
    }
}
