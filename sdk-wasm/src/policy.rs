//! Pure decisions, kept apart from the browser so they are tested natively: what an HTTP
//! answer means for a batch, how long to back off, when a session expires, which scroll
//! milestones a new depth crosses.

use crate::buf::Buf;

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

pub const SESSION_TIMEOUT_MS: f64 = 30.0 * 60.0 * 1000.0;

/// Whether a stored session is still current at `now`.
pub fn session_alive(last_activity_ms: Option<f64>, now_ms: f64) -> bool {
    matches!(last_activity_ms, Some(t) if now_ms - t < SESSION_TIMEOUT_MS && now_ms >= t - 60_000.0)
}

pub const MILESTONES: [u8; 4] = [25, 50, 75, 100];

/// Scroll milestones reached on one page view.
#[derive(Debug, Default, Clone)]
pub struct Scroll {
    /// How many quarters of the page were reached so far (0..=4).
    quarters: u8,
    pub max_depth: u8,
}

impl Scroll {
    /// Records `depth` (0..=100) and returns the milestones it crosses for the first time, as
    /// quarters: `q` is the milestone `25 * (q + 1)` %.
    pub fn update(&mut self, depth: u8) -> core::ops::Range<u8> {
        let depth = depth.min(100);
        self.max_depth = self.max_depth.max(depth);
        let from = self.quarters;
        self.quarters = from.max(depth / 25);
        from..self.quarters
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

/// Collapses white space (ASCII) and cuts to at most `max` characters, never inside one
/// (element text of clicks; UTF-8 in and out).
pub fn clean_text(s: &[u8], max: usize) -> Buf {
    let mut out = Buf::new();
    let (mut count, mut space) = (0, false);
    for &c in s {
        if c <= b' ' {
            space = !out.is_empty();
            continue;
        }
        // A character starts at every byte but UTF-8's continuation bytes.
        if c & 0xc0 != 0x80 {
            if count + usize::from(space) >= max {
                break;
            }
            if space {
                out.push(b' ');
                count += 1;
                space = false;
            }
            count += 1;
        }
        out.push(c);
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
        let mut milestones = |d| s.update(d).map(|q| 25 * (q + 1)).collect::<Vec<_>>();
        assert_eq!(milestones(10), Vec::<u8>::new());
        assert_eq!(milestones(60), vec![25, 50]);
        assert_eq!(milestones(55), Vec::<u8>::new());
        assert_eq!(milestones(100), vec![75, 100]);
        assert_eq!(s.max_depth, 100);
        assert_eq!(depth_percent(0.0, 800.0, 3200.0), 25);
        assert_eq!(depth_percent(0.0, 800.0, 600.0), 100);
    }

    #[test]
    fn text_is_collapsed_and_cut() {
        let t = |s: &str, max| String::from_utf8(clean_text(s.as_bytes(), max).to_vec()).unwrap();
        assert_eq!(t("  Buy \n\n  now ", 100), "Buy now");
        assert_eq!(t("abcdef", 4), "abcd");
        assert_eq!(t("中文字 x", 2), "中文");
        assert_eq!(t(&"x ".repeat(200), 100), "x ".repeat(50).trim_end());
    }
}
