//! The tracker's state and behaviour: identity, sessions, page views, the queue and delivery.
//! The JS shim forwards DOM events here as plain values; everything about what gets recorded,
//! when it is sent and what happens on failure is decided here. Text is UTF-8 bytes
//! throughout (`Buf`): nothing here needs `str`'s character machinery.

use crate::buf::Buf;
use crate::host::{info, Env};
use crate::json::{parse_int, push_int, Event};
use crate::policy::{self, Scroll, Verdict};
use crate::queue::{self, Queue};
use crate::redact;

/// localStorage keys, after the shim's `maidian:` prefix.
const KEY_ANON: &str = "aid";
const KEY_USER: &str = "uid";
const KEY_SESSION: &str = "sid";
const KEY_ACTIVE: &str = "sat";
const KEY_QUEUE: &str = "queue";
const KEY_OPT_OUT: &str = "optout";
/// 5xx answers to the queue's head so far and when the first came: `count,first_ms`.
const KEY_STRIKES: &str = "strikes";

/// Under the 64 KiB that browsers allow a beacon or keepalive fetch.
const MAX_BODY: usize = 60_000;
const MAX_QUEUE_EVENTS: usize = 1_000;
const MAX_QUEUE_BYTES: usize = 512 * 1024;
/// How often, at most, the session's last activity is written to localStorage.
const ACTIVITY_WRITE_MS: f64 = 5_000.0;

/// `initTracking`'s options, read by the shim; empty text: not given.
pub struct Options {
    /// Where batches go: `apiUrl` + `/track/batch`, the key in the query too (so the
    /// collector checks it before reading a body).
    pub endpoint: Buf,
    pub user_id: Buf,
    pub session_id: Buf,
    pub debug: bool,
    pub batch_size: usize,
    pub respect_dnt: bool,
    /// Query parameters whose values are redacted from URLs, comma-separated; empty:
    /// redaction off.
    pub redact: Buf,
}

impl Options {
    /// The redaction list from the `redact` option: `-` turns redaction off, other names
    /// (comma separated) are added to [`redact::DEFAULT_PARAMS`].
    pub fn redact_list(option: &[u8]) -> Buf {
        let mut list = Buf::new();
        if option != b"-" {
            list.put(redact::DEFAULT_PARAMS.as_bytes());
            if !option.is_empty() {
                list.push(b',');
                list.put(option);
            }
        }
        list
    }
}

/// The page view being watched (none yet while `view_id` is empty).
#[derive(Default)]
struct Page {
    view_id: Buf,
    url: Buf,
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
    endpoint: Buf,
    queue: Queue,
    /// The batch `fetch` is sending (empty: none).
    in_flight: Queue,
    /// Handed to `sendBeacon`, so possibly never delivered: kept in localStorage and resent
    /// on the next page load (the collector deduplicates by `event_id`).
    beaconed: Queue,
    attempt: u32,
    backing_off: bool,
    rng: Rng,
    anonymous_id: Buf,
    user_id: Buf,
    session_id: Buf,
    /// When the session's last activity was written to localStorage (throttled).
    activity_saved: f64,
    page: Page,
    /// Tracking is off: opted out or Do Not Track.
    off: bool,
    /// `navigator.webdriver`: the browser is driven by automation (said in every batch).
    webdriver: bool,
}

fn new_queue() -> Queue {
    Queue::new(MAX_QUEUE_EVENTS, MAX_QUEUE_BYTES)
}

impl<H: Env> State<H> {
    pub fn new(host: H, opts: Options) -> State<H> {
        let mut rng = Rng::seeded(&host);
        let anonymous_id = host.get(KEY_ANON).unwrap_or_else(|| {
            let id = rng.uuid4();
            host.set(KEY_ANON, Some(&id));
            id
        });
        let user_id = if opts.user_id.is_empty() {
            host.get(KEY_USER).unwrap_or_default()
        } else {
            host.set(KEY_USER, Some(&opts.user_id));
            opts.user_id.clone()
        };
        let off =
            host.get(KEY_OPT_OUT).is_some() || (opts.respect_dnt && *host.info(info::DNT) == *b"1");
        let webdriver = *host.info(info::WEBDRIVER) == *b"1";
        let mut queue = new_queue();
        queue.load(&host.get(KEY_QUEUE).unwrap_or_default());
        let mut state = State {
            host,
            endpoint: opts.endpoint.clone(),
            queue,
            in_flight: new_queue(),
            beaconed: new_queue(),
            attempt: 0,
            backing_off: false,
            rng,
            anonymous_id,
            user_id,
            session_id: opts.session_id.clone(),
            activity_saved: f64::NEG_INFINITY,
            page: Page::default(),
            off,
            webdriver,
            opts,
        };
        state.touch_session(state.host.now());
        if state.off {
            state.debug("off: opt-out or DNT");
        }
        state
    }

    /// `info(what)` (a URL) without its sensitive query and fragment values.
    fn url_info(&self, what: u32) -> Buf {
        clean_url(self.host.info(what), &self.opts.redact)
    }

    fn debug(&self, msg: &str) {
        if self.opts.debug {
            self.host.log(msg.as_bytes());
        }
    }

    /// Brings the session id up to `now`: the given one stays; else the stored one while it
    /// is fresh, or a new one. Stored, so every tab of the site shares it. Within a few
    /// seconds of the last check the session cannot have expired, so storage is not touched.
    fn touch_session(&mut self, now: f64) {
        if !self.opts.session_id.is_empty()
            || (now - self.activity_saved < ACTIVITY_WRITE_MS && !self.session_id.is_empty())
        {
            return;
        }
        let last = self
            .host
            .get(KEY_ACTIVE)
            .and_then(|s| parse_int(&s))
            .map(|ms| ms as f64);
        self.session_id = match self.host.get(KEY_SESSION) {
            Some(id) if policy::session_alive(last, now) => id,
            _ => {
                let id = self.rng.uuid4();
                self.host.set(KEY_SESSION, Some(&id));
                id
            }
        };
        let mut stamp = Buf::new();
        push_int(&mut stamp, now as i64);
        self.host.set(KEY_ACTIVE, Some(&stamp));
        self.activity_saved = now;
    }

    pub fn session_id(&self) -> &[u8] {
        &self.session_id
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// `setUserId`: empty for none.
    pub fn set_user(&mut self, id: &[u8]) {
        self.host.set(KEY_USER, (!id.is_empty()).then_some(id));
        self.user_id = Buf::of(id);
    }

    pub fn set_off(&mut self, off: bool) {
        self.off = off;
        self.host.set(KEY_OPT_OUT, off.then_some(b"1"));
        if off {
            self.queue = new_queue();
            self.host.set(KEY_QUEUE, None);
        }
    }

    /// Starts an event with the common fields, for the caller to add the type's own and
    /// [`commit`](State::commit); `None` while tracking is off.
    pub fn event(&mut self, event_type: &[u8]) -> Option<Event> {
        if self.off {
            return None;
        }
        let now = self.host.now();
        self.touch_session(now);
        let mut o = Event::new(&self.rng.uuid4());
        // Before the first page view (it waits for `load`), ask the page for its URL.
        let asked;
        let url = if self.page.view_id.is_empty() {
            asked = self.url_info(info::HREF);
            &asked
        } else {
            &self.page.url
        };
        o.str("event_type", event_type)
            .int("timestamp", now as i64)
            .str("session_id", &self.session_id)
            .str("anonymous_id", &self.anonymous_id)
            .str("user_id", &self.user_id)
            .str("page_url", url);
        Some(o)
    }

    /// Queues an event from [`event`](State::event); sends a batch once there are enough.
    pub fn commit(&mut self, o: Event) {
        self.queue.push(&o.finish());
        if self.queue.dropped > 0 {
            self.debug("queue full, oldest dropped");
            self.queue.dropped = 0;
        }
        if self.queue.len() >= self.opts.batch_size {
            self.flush(false);
        }
    }

    /// Starts a page view of the current URL. `referrer` is the previous page on SPA routes;
    /// `data` the fields of `trackPageView(data)` as a JSON object.
    pub fn page_view(&mut self, referrer: &[u8], load_time: Option<u64>, data: &[u8]) {
        let now = self.host.now();
        let hidden = *self.host.info(info::HIDDEN) == *b"1";
        self.page = Page {
            view_id: self.rng.uuid4(),
            url: self.url_info(info::HREF),
            visible_since: (!hidden).then_some(now),
            ..Page::default()
        };
        let Some(mut o) = self.event(b"page_view") else {
            return;
        };
        let h = &self.host;
        // The page view's own id is the one its page_leave names.
        o.str("page_view_id", &self.page.view_id)
            .str("page_title", &h.info(info::TITLE))
            .str("referrer", referrer)
            .str("user_agent", &h.info(info::UA))
            .str("screen_resolution", &h.info(info::SCREEN))
            .str("viewport_size", &h.info(info::VIEWPORT));
        if let Some(ms) = load_time {
            o.int("load_time", ms as i64);
        }
        o.fields(data);
        self.commit(o);
    }

    /// The first page view, once the page has loaded (so its load time is known).
    pub fn initial_view(&mut self) {
        let referrer = self.url_info(info::REFERRER);
        let load = parse_int(&self.host.info(info::LOAD_TIME));
        self.page_view(&referrer, load, b"");
    }

    /// An event of the current page view: `page_view_id` and then `fill`'s fields, unless
    /// `done` (which page says it went out already) or no page view started yet.
    fn page_event(
        &mut self,
        event_type: &[u8],
        done: fn(&mut Page) -> &mut bool,
        fill: impl FnOnce(&mut Event, &mut Page),
    ) {
        if self.page.view_id.is_empty() {
            return;
        }
        let sent = done(&mut self.page);
        if *sent {
            return;
        }
        *sent = true;
        let Some(mut o) = self.event(event_type) else {
            return;
        };
        o.str("page_view_id", &self.page.view_id);
        fill(&mut o, &mut self.page);
        self.commit(o);
    }

    /// The page's visible time and deepest scroll, once per time it is hidden or left.
    fn page_leave(&mut self) {
        let now = self.host.now();
        self.page_event(
            b"page_leave",
            |p| &mut p.left,
            |o, p| {
                let visible = p.visible_ms + p.visible_since.map_or(0.0, |t| now - t);
                o.int("duration", visible as i64)
                    .int("scroll_depth", i64::from(p.scroll.max_depth));
            },
        );
    }

    /// The page view's Core Web Vitals as it ends, once: `data` is the shim's JSON object of
    /// what the browser measured (`{"lcp":1234,"cls":0.05,…}`), empty when nothing was.
    fn vitals(&mut self, data: &[u8]) {
        if data.len() > 2 {
            self.page_event(
                b"web_vitals",
                |p| &mut p.vitals_sent,
                |o, _| {
                    o.fields(data);
                },
            );
        }
    }

    /// An SPA route change or history move: one page view per new URL, never two. `vitals`
    /// are the ending page view's. Says whether a new page view started.
    pub fn navigated(&mut self, vitals: &[u8]) -> bool {
        let url = self.url_info(info::HREF);
        // The page view before (none yet: an empty URL).
        if self.page.url == url {
            return false;
        }
        let previous = self.page.url.clone();
        self.vitals(vitals);
        self.page_leave();
        self.page_view(&previous, None, b"");
        true
    }

    /// A page restored from the back/forward cache is a new view of the same URL.
    pub fn restored(&mut self) {
        self.shown();
        let referrer = self.url_info(info::REFERRER);
        self.page_view(&referrer, None, b"");
    }

    /// A click (`a`: the element's class, `b`: its text) or, with `form`, a form submit
    /// (`a`: its name, `b`: its action URL).
    pub fn element(&mut self, form: bool, id: &[u8], a: &[u8], b: &[u8], x: i32, y: i32) {
        if form {
            let mut data = Event(Buf::new());
            data.str("form_name", a)
                .str("form_action", &clean_url(Buf::of(b), &self.opts.redact));
            // Every field was written after a comma: the first one becomes the brace.
            let mut custom = data.finish();
            custom[0] = b'{';
            if let Some(mut o) = self.event(b"form_submit") {
                o.str("element_id", id);
                if custom.len() > 1 {
                    o.raw("custom_data", &custom);
                }
                self.commit(o);
            }
        } else if let Some(mut o) = self.event(b"click") {
            o.str("element_id", id)
                .str("element_class", a)
                .str("element_text", &policy::clean_text(b, 100))
                .int("x_position", i64::from(x))
                .int("y_position", i64::from(y));
            self.commit(o);
        }
    }

    pub fn scrolled(&mut self, scroll_y: f64, viewport_h: f64, doc_h: f64) {
        let depth = policy::depth_percent(scroll_y, viewport_h, doc_h);
        if self.page.view_id.is_empty() {
            return;
        }
        for q in self.page.scroll.update(depth) {
            if let Some(mut o) = self.event(b"scroll") {
                o.int("scroll_depth", i64::from(25 * (q + 1)));
                self.commit(o);
            }
        }
    }

    pub fn shown(&mut self) {
        let now = self.host.now();
        self.page.visible_since.get_or_insert(now);
        self.page.left = false;
    }

    /// The page is hidden or being left: record its vitals (the first time) and the leave,
    /// then hand everything to beacons.
    pub fn hidden(&mut self, vitals: &[u8]) {
        self.vitals(vitals);
        self.page_leave();
        let now = self.host.now();
        if let Some(t) = self.page.visible_since.take() {
            self.page.visible_ms += now - t;
        }
        self.beacon_all();
    }

    fn body(&self, events: &Queue) -> Buf {
        queue::body(self.host.now() as i64, events.lines(), self.webdriver)
    }

    /// Sends the queue with `sendBeacon` in bodies under 64 KiB. What a beacon refuses goes
    /// back to the queue for `fetch`. Everything unconfirmed, beacons included, is saved for
    /// the next page load; resending is safe because the collector deduplicates by `event_id`.
    fn beacon_all(&mut self) {
        let mut refused = new_queue();
        while !self.queue.is_empty() {
            let batch = self.queue.take(500, MAX_BODY);
            if self.host.beacon(&self.endpoint, &self.body(&batch)) {
                self.beaconed.load(batch.lines());
            } else {
                refused.load(batch.lines());
            }
        }
        let any_refused = !refused.is_empty();
        self.queue.put_back(refused);
        self.persist();
        if any_refused {
            self.flush(true);
        }
    }

    /// Saves unconfirmed events (beaconed, in flight and queued) to localStorage.
    fn persist(&self) {
        let mut all = new_queue();
        all.load(self.beaconed.lines());
        all.load(self.in_flight.lines());
        all.load(self.queue.lines());
        self.host
            .set(KEY_QUEUE, (!all.is_empty()).then_some(all.lines()));
    }

    /// Sends the next batch with `fetch`; `force` skips a pending backoff (`forceFlush`).
    /// Returns how many events the request carries (0: nothing started).
    pub fn flush(&mut self, force: bool) -> usize {
        if !self.in_flight.is_empty() || self.off || (self.backing_off && !force) {
            return 0;
        }
        self.backing_off = false;
        let batch = self.queue.take(self.opts.batch_size, MAX_BODY);
        let count = batch.len();
        if count > 0 {
            self.host.send(&self.endpoint, &self.body(&batch));
            self.in_flight = batch;
        }
        count
    }

    /// The answer to the batch in flight (status 0: no answer). Returns how many events the
    /// collector stored (or had already).
    pub fn sent(&mut self, status: u16, retry_after_ms: Option<u32>) -> usize {
        let batch = core::mem::replace(&mut self.in_flight, new_queue());
        let count = batch.len();
        let mut verdict = policy::verdict(status);
        if (500..=599).contains(&status) && self.strike() {
            verdict = Verdict::Drop;
            self.debug("batch dropped after a day of 5xx");
        } else if verdict != Verdict::Retry {
            self.host.set(KEY_STRIKES, None);
        }
        match verdict {
            Verdict::Done => self.attempt = 0,
            Verdict::Drop => {
                self.attempt = 0;
                if self.opts.debug {
                    let mut m = Buf::of(b"batch dropped: HTTP ");
                    push_int(&mut m, i64::from(status));
                    self.host.log(&m);
                }
            }
            Verdict::Retry => {
                self.queue.put_back(batch);
                let delay = policy::backoff_ms(self.attempt, self.host.rand(), retry_after_ms);
                self.attempt += 1;
                self.backing_off = true;
                self.host.later(delay);
                self.debug("send failed, will retry");
            }
        }
        self.persist();
        if !self.backing_off && self.queue.len() >= self.opts.batch_size {
            self.flush(false);
        }
        if verdict == Verdict::Done {
            count
        } else {
            0
        }
    }

    /// Counts one more 5xx for the queue's head (kept across page loads); true once the head
    /// has failed [`policy::MAX_STRIKES`] times over at least [`policy::GIVE_UP_AFTER_MS`].
    fn strike(&mut self) -> bool {
        let now = self.host.now();
        let saved = self.host.get(KEY_STRIKES).unwrap_or_default();
        let (count, first) = match redact::find(&saved, b',') {
            Some(i) => (parse_int(&saved[..i]), parse_int(&saved[i + 1..])),
            None => (None, None),
        };
        let (count, first) = match (count, first) {
            (Some(c), Some(f)) => (c + 1, f as f64),
            _ => (1, now),
        };
        if policy::give_up(count as u32, first, now) {
            self.host.set(KEY_STRIKES, None);
            return true;
        }
        let mut v = Buf::new();
        push_int(&mut v, count as i64);
        v.push(b',');
        push_int(&mut v, first as i64);
        self.host.set(KEY_STRIKES, Some(&v));
        false
    }

    /// The backoff timer fired.
    pub fn retry(&mut self) {
        self.backing_off = false;
        self.flush(false);
    }
}

/// `url` without its sensitive values (see [`redact`]); unchanged when `deny` is empty.
fn clean_url(url: Buf, deny: &[u8]) -> Buf {
    if deny.is_empty() {
        return url;
    }
    let mut out = Buf::new();
    redact::clean(&url, deny, &mut out);
    out
}

/// xoroshiro128++, seeded once per page with 128 bits from four calls of the host's `rand`
/// (32 random bits each from `crypto.getRandomValues`): ids stay unique across billions of
/// page loads, and one call into JS per id would cost more than the event itself.
/// `Math.random` stands in only where the host has no `crypto`.
pub struct Rng([u64; 2]);

impl Rng {
    pub fn seeded(host: &impl Env) -> Rng {
        let half = || {
            let r = || (host.rand() * 4_294_967_296.0) as u64;
            r() << 32 | r()
        };
        let (a, b) = (half(), half());
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
    pub fn uuid4(&mut self) -> Buf {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // Hex digit 12 is the version (4), digit 16 the variant (8 to b): digits are written
        // from the low nibble of each half up.
        let bits = [
            self.next_u64() & !(0xf << 48) | 4 << 48,
            self.next_u64() & !0xc | 8,
        ];
        let mut out = Buf::new();
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push(b'-');
            }
            out.push(HEX[(bits[i / 16] >> ((i % 16) * 4)) as usize & 15]);
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
        /// What `rand` returns, in order (0.5 once used up).
        rands: RefCell<Vec<f64>>,
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
            let mut r = self.0.rands.borrow_mut();
            if r.is_empty() {
                0.5
            } else {
                r.remove(0)
            }
        }
        fn get(&self, key: &str) -> Option<Buf> {
            self.0
                .storage
                .borrow()
                .get(key)
                .map(|v| Buf::of(v.as_bytes()))
        }
        fn set(&self, key: &str, value: Option<&[u8]>) {
            let mut s = self.0.storage.borrow_mut();
            match value {
                Some(v) => s.insert(key.into(), String::from_utf8(v.to_vec()).unwrap()),
                None => s.remove(key),
            };
        }
        fn info(&self, what: u32) -> Buf {
            match what {
                info::HREF => Buf::of(self.0.href.borrow().as_bytes()),
                info::HIDDEN if self.0.hidden.get() => Buf::of(b"1"),
                info::TITLE => Buf::of(b"T"),
                _ => Buf::new(),
            }
        }
        fn send(&self, _url: &[u8], body: &[u8]) {
            self.0
                .sent
                .borrow_mut()
                .push(String::from_utf8(body.to_vec()).unwrap());
        }
        fn beacon(&self, _url: &[u8], body: &[u8]) -> bool {
            if self.0.refuse_beacons.get() {
                return false;
            }
            self.0
                .beacons
                .borrow_mut()
                .push(String::from_utf8(body.to_vec()).unwrap());
            true
        }
        fn later(&self, ms: u32) {
            self.0.timers.borrow_mut().push(ms);
        }
        fn log(&self, _msg: &[u8]) {}
    }

    impl Fake {
        fn at(&self, ms: f64, href: &str) {
            self.0.now.set(ms);
            *self.0.href.borrow_mut() = href.into();
        }
    }

    fn opts(batch_size: usize) -> Options {
        Options {
            endpoint: Buf::of(b"/api/track/batch?api_key=k"),
            user_id: Buf::new(),
            session_id: Buf::new(),
            debug: false,
            batch_size,
            respect_dnt: false,
            redact: Options::redact_list(b""),
        }
    }

    fn events(bodies: &[String]) -> Vec<Value> {
        bodies
            .iter()
            .flat_map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
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
        t.element(false, b"b", b"", b"Buy", 1, 2);
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
        let first = t.session_id().to_vec();
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
        assert!(t.navigated(br#"{"lcp":1200,"fcp":800,"ttfb":90,"cls":0.05}"#));
        assert!(
            !t.navigated(br#"{"cls":0.5}"#),
            "same URL: the page view goes on"
        );
        env.0.hidden.set(true);
        t.hidden(br#"{"cls":0.01,"inp":180}"#);
        t.hidden(br#"{"cls":0.02,"inp":180}"#); // pagehide: sent already
        env.0.hidden.set(false);
        t.shown();
        t.hidden(br#"{"cls":0.03}"#); // hidden again: still one per page view
        env.at(9_000.0, "https://s.example/b");
        t.navigated(b"");
        t.hidden(b""); // nothing measured: no event
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
        t.navigated(b""); // same URL (replaceState): nothing
        env.at(5_000.0, "https://s.example/products");
        t.navigated(b"");
        t.navigated(b"");
        env.at(8_000.0, "https://s.example/products");
        env.0.hidden.set(true);
        t.hidden(b"");
        t.hidden(b""); // pagehide after visibilitychange: no second leave
        env.0.hidden.set(false);
        env.at(20_000.0, "https://s.example/products");
        t.shown();
        env.at(21_000.0, "https://s.example/products");
        t.hidden(b"");
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
        t.hidden(b""); // the third goes by beacon
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
        t.hidden(b"");
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
        assert_eq!(a[14], b'4');
        assert!(matches!(a[19], b'8' | b'9' | b'a' | b'b'));
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
        t.initial_view();
        t.element(
            true,
            b"f",
            b"n",
            b"https://s.example/go?email=a@b.example&x=1",
            0,
            0,
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
        off.redact = Options::redact_list(b"-");
        let env = Fake::default();
        env.at(2_000_000.0, "https://s.example/?token=abc");
        let mut t = State::new(env.clone(), off);
        t.navigated(b"");
        let sent = events(&env.0.sent.borrow());
        assert_eq!(
            sent.last().unwrap()["page_url"],
            "https://s.example/?token=abc"
        );
    }

    #[test]
    fn ids_come_from_the_128_bit_seed() {
        let ids = |rands: [f64; 4]| {
            let env = Fake::default();
            *env.0.rands.borrow_mut() = rands.to_vec();
            let mut r = Rng::seeded(&env);
            (r.uuid4(), r.uuid4())
        };
        let bit = 1.0 / 4_294_967_296.0;
        let a = ids([0.0, bit, 0.0, 2.0 * bit]);
        assert_eq!(a, ids([0.0, bit, 0.0, 2.0 * bit]));
        for (i, what) in ["the first word", "the second", "the third", "the fourth"]
            .iter()
            .enumerate()
        {
            let mut other = [0.0, bit, 0.0, 2.0 * bit];
            other[i] += 4.0 * bit;
            assert_ne!(a, ids(other), "{what} matters");
        }
    }
}
