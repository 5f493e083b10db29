//! Pure decisions, kept apart from the browser so they are tested natively: what an HTTP
//! answer means for a batch, how long to back off, when a session expires, which scroll
//! milestones a new depth crosses.

use alloc::string::String;
use alloc::vec::Vec;

/// What to do with a batch after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (or deduplicated): forget it.
    Done,
    /// Try again later (network error, 5xx, 429).
    Retry,
    /// The collector refused it for good (4xx): drop it.
    Drop,
}

/// `status` 0 means the request failed before any answer (offline, blocked, CORS).
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        0 | 408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Drop,
    }
}

/// A batch the collector answers 5xx is retried, across page loads, until it has failed this
/// many times over at least [`GIVE_UP_AFTER_MS`]; then it is dropped, so that no event can
/// block a browser's queue forever.
pub const MAX_STRIKES: u32 = 20;
pub const GIVE_UP_AFTER_MS: f64 = 24.0 * 3600.0 * 1000.0;

pub fn give_up(strikes: u32, first_strike_ms: f64, now_ms: f64) -> bool {
    strikes >= MAX_STRIKES && now_ms - first_strike_ms >= GIVE_UP_AFTER_MS
}

pub const BACKOFF_BASE_MS: u32 = 1_000;
pub const BACKOFF_MAX_MS: u32 = 300_000;

/// Exponential backoff with "equal jitter": half the step fixed, half random; a server's
/// `Retry-After` is honoured as the minimum.
pub fn backoff_ms(attempt: u32, random01: f64, retry_after_ms: Option<u32>) -> u32 {
    let step = BACKOFF_BASE_MS
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    let half = step / 2;
    let jitter = (f64::from(half) * random01.clamp(0.0, 1.0)) as u32;
    let delay = half + jitter;
    match retry_after_ms {
        Some(r) => delay.max(r.min(BACKOFF_MAX_MS * 4)),
        None => delay,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
pub fn parse_retry_after(value: &str) -> Option<u32> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

pub const SESSION_TIMEOUT_MS: f64 = 30.0 * 60.0 * 1000.0;

/// Whether a stored session is still current at `now`.
pub fn session_alive(last_activity_ms: Option<f64>, now_ms: f64) -> bool {
    matches!(last_activity_ms, Some(t) if now_ms - t < SESSION_TIMEOUT_MS && now_ms >= t - 60_000.0)
}

pub const MILESTONES: [u8; 4] = [25, 50, 75, 100];

/// Scroll milestones reached on one page view.
#[derive(Debug, Default, Clone)]
pub struct Scroll {
    reached: u8,
    pub max_depth: u8,
}

impl Scroll {
    /// Records `depth` (0..=100) and returns the milestones it crosses for the first time.
    pub fn update(&mut self, depth: u8) -> Vec<u8> {
        let depth = depth.min(100);
        self.max_depth = self.max_depth.max(depth);
        let mut crossed = Vec::new();
        for (i, m) in MILESTONES.iter().enumerate() {
            let bit = 1 << i;
            if depth >= *m && self.reached & bit == 0 {
                self.reached |= bit;
                crossed.push(*m);
            }
        }
        crossed
    }
}

/// Scroll depth in percent of the document seen so far.
pub fn depth_percent(scroll_y: f64, viewport_h: f64, doc_h: f64) -> u8 {
    if doc_h <= 0.0 || doc_h <= viewport_h {
        return 100;
    }
    // Rounded half up by hand: `f64::round` is std's (the wasm has only `core`).
    let seen = (scroll_y + viewport_h) / doc_h * 100.0 + 0.5;
    seen.clamp(0.0, 100.0) as u8
}

/// Collapses white space and cuts to `max` characters (element text of clicks).
pub fn clean_text(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in s.split_whitespace() {
        if count > 0 {
            if count >= max {
                break;
            }
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= max {
                break;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let got: Vec<_> = [200, 204, 0, 429, 500, 503, 400, 401, 413]
            .map(verdict)
            .into();
        use Verdict::*;
        assert_eq!(
            got,
            vec![Done, Done, Retry, Retry, Retry, Retry, Drop, Drop, Drop]
        );
    }

    #[test]
    fn backoff_grows_with_jitter_caps_and_honours_retry_after() {
        assert_eq!(backoff_ms(0, 0.0, None), 500);
        assert_eq!(backoff_ms(0, 1.0, None), 1000);
        assert_eq!(backoff_ms(3, 0.5, None), 6000);
        assert_eq!(backoff_ms(30, 1.0, None), BACKOFF_MAX_MS);
        assert_eq!(backoff_ms(0, 0.0, Some(7000)), 7000);
        assert_eq!(parse_retry_after(" 12 "), Some(12_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn sessions_expire_after_30_minutes_idle() {
        let now = 10_000_000.0;
        assert!(session_alive(Some(now - 29.0 * 60_000.0), now));
        assert!(!session_alive(Some(now - 31.0 * 60_000.0), now));
        assert!(!session_alive(None, now));
    }

    #[test]
    fn scroll_milestones_fire_once_each() {
        let mut s = Scroll::default();
        assert_eq!(s.update(10), Vec::<u8>::new());
        assert_eq!(s.update(60), vec![25, 50]);
        assert_eq!(s.update(55), Vec::<u8>::new());
        assert_eq!(s.update(100), vec![75, 100]);
        assert_eq!(s.max_depth, 100);
        assert_eq!(depth_percent(0.0, 800.0, 3200.0), 25);
        assert_eq!(depth_percent(0.0, 800.0, 600.0), 100);
    }

    #[test]
    fn text_is_collapsed_and_cut() {
        assert_eq!(clean_text("  Buy \n\n  now ", 100), "Buy now");
        assert_eq!(clean_text("abcdef", 4), "abcd");
        assert_eq!(clean_text(&"x ".repeat(200), 100).chars().count(), 100);
    }
}
