//! Realistic visitor behaviour for demos and benchmarks, as the seed's example script made:
//! visitors arrive from search, social or nowhere, walk a shop's pages (home → products →
//! product → cart → checkout → thanks) dropping off on the way, scroll, click, submit forms,
//! leave each page after a while, and some come back on later days.
//!
//! Deterministic for a seed. The events are domain [`Event`]s; the CLI sends them through the
//! collector's HTTP API and the benchmark writes them straight to a store.

use crate::event::{Day, Event};

/// xorshift64*: small, fast, reproducible; nothing here needs better randomness.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

const SITE: &str = "https://shop.example";
const FUNNEL: &[&str] = &[
    "/",
    "/products",
    "/products/item",
    "/cart",
    "/checkout",
    "/thanks",
];
const LANDINGS: &[&str] = &["/", "/", "/products", "/blog/summer-sale", "/pricing"];
const REFERRERS: &[Option<&str>] = &[
    None,
    None,
    Some("https://www.google.com/search?q=shop"),
    Some("https://www.bing.com/search?q=shop"),
    Some("https://twitter.com/shop"),
    Some("https://news.example/article"),
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
];

/// Who a simulated visitor is.
struct Visitor {
    user_id: Option<String>,
    anonymous_id: String,
    agent: &'static str,
}

/// Generates the events of `users` visitors over the `days` days ending `now_ms` (UTC).
pub struct Simulation {
    rng: Rng,
    now_ms: i64,
    days: u32,
}

impl Simulation {
    pub fn new(seed: u64, now_ms: i64, days: u32) -> Simulation {
        Simulation {
            rng: Rng::new(seed),
            now_ms,
            days: days.max(1),
        }
    }

    /// Every event of visitor number `n`: one or more sessions.
    pub fn visitor(&mut self, n: u64) -> Vec<Event> {
        let r = &mut self.rng;
        let v = Visitor {
            user_id: r.chance(0.6).then(|| format!("user_{n}")),
            anonymous_id: r.uuid(),
            agent: AGENTS[r.below(AGENTS.len() as u64) as usize],
        };
        let today = Day::from_millis(self.now_ms).unwrap_or_default();
        let first_day = today.window_start(self.days);
        let mut day_index = self.rng.below(u64::from(self.days)) as u32;
        let mut events = Vec::new();
        loop {
            let day = first_day.plus_days(day_index);
            let start = day.start_millis() + self.rng.below(86_400_000) as i64;
            // Nothing in the future: today's visits happen before now.
            let start = start.min(self.now_ms - 3_600_000).max(day.start_millis());
            self.session(&v, start, &mut events);
            // Some come back, a few days later.
            let r = &mut self.rng;
            if !r.chance(0.45) {
                break;
            }
            day_index += 1 + r.below(4) as u32;
            if day_index >= self.days {
                break;
            }
        }
        events
    }

    fn session(&mut self, v: &Visitor, start: i64, out: &mut Vec<Event>) {
        let session_id = self.rng.uuid();
        let mut t = start;
        let landing = *self.rng.pick(LANDINGS);
        let mut referrer = self.rng.pick(REFERRERS).map(str::to_string);
        // Walk the funnel from where the visitor landed, dropping off on the way.
        let mut step = FUNNEL.iter().position(|p| *p == landing);
        let mut page = landing;
        for _ in 0..8 {
            let view_id = self.rng.uuid();
            let base = |ty: &str, t: i64| {
                let mut e = Event {
                    event_type: ty.into(),
                    user_id: v.user_id.clone(),
                    anonymous_id: Some(v.anonymous_id.clone()),
                    session_id: Some(session_id.clone()),
                    page_url: Some(format!("{SITE}{page}")),
                    timestamp: t,
                    client_timestamp: t,
                    received_at: t,
                    day: Day::from_millis(t).unwrap_or_default(),
                    ..Event::default()
                };
                e.derive_visitor();
                e
            };
            let mut view = base("page_view", t);
            view.event_id = self.rng.uuid();
            view.page_view_id = Some(view_id.clone());
            view.page_title = Some(format!("Shop – {page}"));
            view.referrer = referrer.take();
            view.user_agent = Some(v.agent.to_string());
            view.screen_resolution = Some("1920x1080".into());
            view.viewport_size = Some("1280x720".into());
            view.load_time = Some((300 + self.rng.below(2500)) as f64);
            out.push(view);

            let stay = 5_000 + self.rng.below(90_000) as i64;
            let mut depth = 0;
            for m in [25, 50, 75, 100] {
                if !self.rng.chance(0.7) {
                    break;
                }
                depth = m;
                let mut e = base("scroll", t + stay * i64::from(m) / 120);
                e.event_id = self.rng.uuid();
                e.scroll_depth = Some(f64::from(m));
                out.push(e);
            }
            let clicks = self.rng.below(3);
            for c in 0..clicks {
                let mut e = base("click", t + 1_000 + c as i64 * 2_000);
                e.event_id = self.rng.uuid();
                e.element_id =
                    Some((*self.rng.pick(&["buy", "add-to-cart", "menu", "details"])).into());
                e.element_text = Some("Add to cart".into());
                e.x_position = Some(self.rng.below(1280) as f64);
                e.y_position = Some(self.rng.below(2000) as f64);
                out.push(e);
            }
            if page == "/checkout" || (page == "/pricing" && self.rng.chance(0.3)) {
                let mut e = base("form_submit", t + stay - 500);
                e.event_id = self.rng.uuid();
                e.element_id = Some(
                    if page == "/checkout" {
                        "checkout"
                    } else {
                        "signup"
                    }
                    .into(),
                );
                out.push(e);
            }
            if page == "/thanks" {
                let mut e = base("purchase", t + 500);
                e.event_id = self.rng.uuid();
                let amount = 10 + self.rng.below(190);
                e.custom_data = serde_json::json!({ "amount": amount, "currency": "EUR" })
                    .as_object()
                    .cloned();
                out.push(e);
            }
            // The page view's Core Web Vitals, sent as it ends: a slow network for some
            // visitors, an interaction's latency only when they clicked.
            let mut vit = base(crate::event::WEB_VITALS, t + stay);
            vit.event_id = self.rng.uuid();
            vit.page_view_id = Some(view_id.clone());
            vit.user_agent = Some(v.agent.to_string());
            let slow = 1 + self.rng.below(4) * self.rng.below(2);
            let ttfb = (40 + self.rng.below(400)) * slow;
            let fcp = ttfb + 150 + self.rng.below(1200) * slow;
            vit.ttfb = Some(ttfb as f64);
            vit.fcp = Some(fcp as f64);
            vit.lcp = Some((fcp + self.rng.below(2000) * slow) as f64);
            vit.cls = Some(self.rng.below(2) as f64 * self.rng.below(300) as f64 / 1000.0);
            vit.inp = (clicks > 0).then(|| (16 + self.rng.below(300) * slow) as f64);
            out.push(vit);

            let mut leave = base("page_leave", t + stay);
            leave.event_id = self.rng.uuid();
            leave.page_view_id = Some(view_id);
            leave.duration = Some(stay as f64);
            leave.scroll_depth = Some(f64::from(depth));
            out.push(leave);
            t += stay + 1_000;

            // Next page: further down the funnel (60 %), elsewhere (15 %), or gone.
            let next = match step {
                Some(i) if i + 1 < FUNNEL.len() && self.rng.chance(0.6) => Some(i + 1),
                _ if self.rng.chance(0.15) => Some(self.rng.below(3) as usize),
                _ => None,
            };
            let Some(i) = next else { break };
            step = Some(i);
            page = FUNNEL[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_realistic_and_never_in_the_future() {
        let now = 1_795_996_800_000 + 12 * 3_600_000;
        let mut a = Simulation::new(7, now, 14);
        let mut b = Simulation::new(7, now, 14);
        let events: Vec<Event> = (0..200).flat_map(|n| a.visitor(n)).collect();
        let again: Vec<Event> = (0..200).flat_map(|n| b.visitor(n)).collect();
        assert_eq!(events, again);
        assert!(events.iter().all(|e| e.timestamp <= now));
        let oldest = Day::from_millis(now)
            .unwrap()
            .window_start(14)
            .start_millis();
        assert!(events.iter().all(|e| e.timestamp >= oldest));
        let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
        assert!(count("page_view") > 200);
        assert!(count("click") > 0 && count("scroll") > 0 && count("form_submit") > 0);
        assert!(count("purchase") > 0 && count("purchase") < count("page_view") / 5);
        assert_eq!(count("page_view"), count("page_leave"));
        assert_eq!(count("page_view"), count("web_vitals"));
        let ids: std::collections::HashSet<_> = events.iter().map(|e| &e.event_id).collect();
        assert_eq!(ids.len(), events.len());
    }
}
