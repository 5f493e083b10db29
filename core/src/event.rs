//! The domain event: what the collector hands to a store after validation and enrichment.
//!
//! Field names follow the seed's data model. Times are milliseconds since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};

/// The site of the seed's single-site keys (`[tracking_api] api_key`/`read_key`), and of
/// events stored before sites existed.
pub const DEFAULT_SITE: &str = "default";

/// One stored tracking event. Page views are events of type [`PAGE_VIEW`]; time on page arrives
/// as a [`PAGE_LEAVE`] event naming the page view in `page_view_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Event {
    /// Client UUID (or a server UUIDv7 when the client sent none); stored as `_id`.
    pub event_id: String,
    /// The site it was tracked on: chosen by the write key, never by the body
    /// (`site::DEFAULT_SITE` for events stored before sites existed).
    #[serde(default = "default_site")]
    pub site: String,
    pub event_type: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    /// Who did it, for "unique users": `user_id`, else `anonymous_id`, else `session_id`.
    pub visitor: Option<String>,
    pub page_view_id: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub element_id: Option<String>,
    pub element_class: Option<String>,
    pub element_text: Option<String>,
    pub x_position: Option<f64>,
    pub y_position: Option<f64>,
    pub scroll_depth: Option<f64>,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    pub screen_resolution: Option<String>,
    pub viewport_size: Option<String>,
    /// Milliseconds.
    pub duration: Option<f64>,
    /// Milliseconds, for page views.
    pub load_time: Option<f64>,
    /// Core Web Vitals of a page view (`web_vitals` events, see `vitals`): milliseconds,
    /// except `cls` (a score). Each only when the browser measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lcp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls: Option<f64>,
    /// When it happened: the client's clock, corrected for skew against the collector's.
    pub timestamp: i64,
    /// The client's own clock reading, uncorrected.
    pub client_timestamp: i64,
    pub received_at: i64,
    pub exit_timestamp: Option<i64>,
    /// The site's local day of `timestamp` when it was stored (figures recompute days with
    /// the site's current time zone; see `site::Zones`).
    pub day: Day,
    /// Free-form data; keys were checked so none is a MongoDB operator or dotted path.
    pub custom_data: Option<serde_json::Map<String, serde_json::Value>>,
    /// Page views: the campaign tags of `page_url` (see `source::landing`).
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// Page views: the ad click id parameter on `page_url` (`gclid`, …), its name only.
    pub click_id: Option<String>,
    /// Page views: `utm_source`, else the referring site (a known site's name or its host).
    pub source: Option<String>,
    /// Page views: the channel this view would give its session if it is the landing one.
    pub channel: Option<String>,
    /// Why the event is a bot's (`user_agent`, `webdriver`, `referrer_spam`); `None` for people.
    pub bot: Option<String>,
}

fn default_site() -> String {
    DEFAULT_SITE.to_string()
}

pub const PAGE_VIEW: &str = "page_view";
pub const PAGE_LEAVE: &str = "page_leave";
/// One per page view, sent when it ends: its Core Web Vitals.
pub const WEB_VITALS: &str = "web_vitals";

impl Event {
    /// The event's site; an event built without one (tests, old records) is the default
    /// site's.
    pub fn site_id(&self) -> &str {
        if self.site.is_empty() {
            DEFAULT_SITE
        } else {
            &self.site
        }
    }

    /// The value of a Core Web Vital, when measured.
    pub fn vital(&self, m: crate::vitals::Metric) -> Option<f64> {
        use crate::vitals::Metric;
        match m {
            Metric::Lcp => self.lcp,
            Metric::Fcp => self.fcp,
            Metric::Ttfb => self.ttfb,
            Metric::Inp => self.inp,
            Metric::Cls => self.cls,
        }
    }

    /// Sets a Core Web Vital.
    pub fn set_vital(&mut self, m: crate::vitals::Metric, v: Option<f64>) {
        use crate::vitals::Metric;
        *match m {
            Metric::Lcp => &mut self.lcp,
            Metric::Fcp => &mut self.fcp,
            Metric::Ttfb => &mut self.ttfb,
            Metric::Inp => &mut self.inp,
            Metric::Cls => &mut self.cls,
        } = v;
    }

    /// The numbers an event may carry, each with its name on the wire and in a stored
    /// document.
    pub fn measures(&self) -> [(&'static str, Option<f64>); 10] {
        [
            ("x_position", self.x_position),
            ("y_position", self.y_position),
            ("scroll_depth", self.scroll_depth),
            ("duration", self.duration),
            ("load_time", self.load_time),
            ("lcp", self.lcp),
            ("fcp", self.fcp),
            ("ttfb", self.ttfb),
            ("inp", self.inp),
            ("cls", self.cls),
        ]
    }

    /// The identity used for unique-user counts (see [`Event::visitor`]).
    pub fn derive_visitor(&mut self) {
        self.visitor = [&self.user_id, &self.anonymous_id, &self.session_id]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .cloned();
    }
}

/// The id an event is stored under when another site already stored its `event_id`:
/// `site:event_id`. Dedupe is per site, so the same client id in two sites is two events.
pub fn site_scoped_id(site: &str, event_id: &str) -> String {
    format!("{site}:{event_id}")
}

/// A UTC calendar day, stored as `YYYY-MM-DD` so that string order is time order. Held as the
/// number of days since 1970-01-01, so that the arithmetic rollups do per event is integer
/// arithmetic; years 1 to 9999.
/// The default is 1970-01-01.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Day(i32);

/// Days from 1970-01-01 to 0001-01-01 and to 9999-12-31: the days a [`Day`] can be.
const FIRST: i32 = -719_162;
const LAST: i32 = 2_932_896;
/// The Julian day number of 1970-01-01.
const JULIAN_EPOCH: i32 = 2_440_588;
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of the proleptic Gregorian `year-month-day` (Howard Hinnant's
/// `days_from_civil`; `month` 1..=12 and `day` 1..=31 already checked).
fn days_from_civil(year: i32, month: u8, day: u8) -> i32 {
    let (m, d) = (i32::from(month), i32::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `(year, month, day)` of `days` since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i32) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i32::from(month <= 2);
    // In range by construction: month 1..=12, day 1..=31.
    (year, month as u8, day as u8)
}

impl Day {
    /// The UTC day holding `ms` milliseconds since the epoch; `None` outside the years 1..=9999.
    pub fn from_millis(ms: i64) -> Option<Day> {
        let days = i32::try_from(ms.div_euclid(DAY_MS)).ok()?;
        (FIRST..=LAST).contains(&days).then_some(Day(days))
    }

    /// The day `year-month-day`, `None` when there is no such day.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Day> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let d = Day(days_from_civil(year, month, day));
        // 31 April comes back as 1 May: no such day.
        (d.ymd() == (year, month, day)).then_some(d)
    }

    /// `(year, month 1..=12, day 1..=31)`.
    pub fn ymd(self) -> (i32, u8, u8) {
        civil_from_days(self.0)
    }

    pub fn today() -> Day {
        Day::from_millis(jiff::Timestamp::now().as_millisecond()).unwrap_or_default()
    }

    /// The first of the last `days` days ending with `self` (so `days = 1` is `self`).
    pub fn window_start(self, days: u32) -> Day {
        let back = i64::from(days.max(1) - 1);
        Day((i64::from(self.0) - back).max(i64::from(FIRST)) as i32)
    }

    /// The day `n` days later.
    pub fn plus_days(self, n: u32) -> Day {
        Day((i64::from(self.0) + i64::from(n)).min(i64::from(LAST)) as i32)
    }

    /// Whole days from `self` to `later` (0 when `later` is not after `self`).
    pub fn days_until(self, later: Day) -> u32 {
        u32::try_from(later.0 - self.0).unwrap_or(0)
    }

    /// Milliseconds since the epoch at 00:00 UTC of this day.
    pub fn start_millis(self) -> i64 {
        i64::from(self.0) * DAY_MS
    }

    /// The day's number (its Julian day number: consecutive days, consecutive numbers,
    /// positive for every day a `Day` can hold), for bitmaps of days.
    pub fn number(self) -> u32 {
        u32::try_from(self.0 + JULIAN_EPOCH).unwrap_or(0)
    }

    /// The day numbered `n` ([`Day::number`]).
    pub fn from_number(n: u32) -> Option<Day> {
        let days = i32::try_from(n).ok()? - JULIAN_EPOCH;
        (FIRST..=LAST).contains(&days).then_some(Day(days))
    }

    /// A `YYYY-MM-DD` day (four-digit year, two-digit month and day).
    pub fn parse(s: &str) -> Option<Day> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i32> {
            let part = &s[r];
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Day::from_ymd(y, u8::try_from(m).ok()?, u8::try_from(d).ok()?)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl From<Day> for String {
    fn from(d: Day) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for Day {
    type Error = String;
    fn try_from(s: String) -> Result<Day, String> {
        Day::parse(&s).ok_or_else(|| format!("not a YYYY-MM-DD day: {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_millis_and_back() {
        // 2026-11-29T23:59:59.999Z and one millisecond later.
        let late = 1_795_996_799_999;
        assert_eq!(Day::from_millis(late).unwrap().to_string(), "2026-11-29");
        assert_eq!(
            Day::from_millis(late + 1).unwrap().to_string(),
            "2026-11-30"
        );
        let d = Day::parse("2026-11-30").unwrap();
        assert_eq!(d.start_millis(), late + 1);
        assert_eq!(d.window_start(7).to_string(), "2026-11-24");
        assert_eq!(d.window_start(1), d);
    }

    #[test]
    fn days_are_the_gregorian_calendar() {
        // Julian day numbers are persisted (bitmaps of days): 1970-01-01 is 2440588.
        assert_eq!(Day::parse("1970-01-01").unwrap().number(), 2_440_588);
        assert_eq!(Day::parse("2000-03-01").unwrap().number(), 2_451_605);
        assert_eq!(Day::parse("0001-01-01").unwrap().number(), 1_721_426);
        let mut d = Day::parse("1899-12-25").unwrap();
        let mut prev = d.ymd();
        for _ in 0..60_000 {
            d = d.plus_days(1);
            let (y, m, day) = d.ymd();
            let next_ok = (y, m, day) > prev && (day == prev.2 + 1 || day == 1);
            assert!(next_ok, "{prev:?} then {:?}", (y, m, day));
            assert_eq!(Day::parse(&d.to_string()), Some(d));
            assert_eq!(Day::from_number(d.number()), Some(d));
            prev = (y, m, day);
        }
        for bad in [
            "2026-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "26-01-01",
            "2026-1-01",
            "+026-01-01",
            "2026-01-0a",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert!(Day::parse("2024-02-29").is_some());
        assert!(Day::parse("2000-02-29").is_some());
        assert_eq!(Day::parse("1900-02-29"), None);
        assert_eq!(Day::from_millis(-1).unwrap().to_string(), "1969-12-31");
        assert_eq!(Day::from_millis(253_402_300_800_000), None);
    }

    #[test]
    fn visitor_prefers_user_then_anonymous_then_session() {
        let mut e = Event {
            anonymous_id: Some("a".into()),
            session_id: Some("s".into()),
            ..Event::default()
        };
        e.derive_visitor();
        assert_eq!(e.visitor.as_deref(), Some("a"));
        e.user_id = Some("u".into());
        e.derive_visitor();
        assert_eq!(e.visitor.as_deref(), Some("u"));
        let mut none = Event::default();
        none.derive_visitor();
        assert_eq!(none.visitor, None);
    }
}
