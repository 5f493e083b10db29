//! The domain event: what the collector hands to a store after validation and enrichment.
//!
//! Field names follow the seed's data model. Times are milliseconds since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

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

/// A UTC calendar day, stored as `YYYY-MM-DD` so that string order is time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Day(Date);

impl Default for Day {
    fn default() -> Self {
        Day(Date::from_calendar_date(1970, time::Month::January, 1).unwrap_or(Date::MIN))
    }
}

impl Day {
    /// The UTC day holding `ms` milliseconds since the epoch; `None` outside the years 1..=9999.
    pub fn from_millis(ms: i64) -> Option<Day> {
        let nanos = i128::from(ms) * 1_000_000;
        let dt = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        Some(Day(dt.date()))
    }

    /// The day `year-month-day`, `None` when there is no such day.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Day> {
        let month = time::Month::try_from(month).ok()?;
        Date::from_calendar_date(year, month, day).ok().map(Day)
    }

    /// `(year, month 1..=12, day 1..=31)`.
    pub fn ymd(self) -> (i32, u8, u8) {
        (self.0.year(), u8::from(self.0.month()), self.0.day())
    }

    pub fn today() -> Day {
        Day(OffsetDateTime::now_utc().date())
    }

    /// The first of the last `days` days ending with `self` (so `days = 1` is `self`).
    pub fn window_start(self, days: u32) -> Day {
        let back = i64::from(days.max(1) - 1);
        Day(self
            .0
            .checked_sub(time::Duration::days(back))
            .unwrap_or(Date::MIN))
    }

    /// The day `n` days later.
    pub fn plus_days(self, n: u32) -> Day {
        Day(self
            .0
            .checked_add(time::Duration::days(i64::from(n)))
            .unwrap_or(Date::MAX))
    }

    /// Whole days from `self` to `later` (0 when `later` is not after `self`).
    pub fn days_until(self, later: Day) -> u32 {
        u32::try_from((later.0 - self.0).whole_days()).unwrap_or(0)
    }

    /// Milliseconds since the epoch at 00:00 UTC of this day.
    pub fn start_millis(self) -> i64 {
        let secs = self.0.midnight().assume_utc().unix_timestamp();
        secs * 1000
    }

    /// The day's number (its Julian day number: consecutive days, consecutive numbers,
    /// positive for every day a `Day` can hold), for bitmaps of days.
    pub fn number(self) -> u32 {
        u32::try_from(self.0.to_julian_day()).unwrap_or(0)
    }

    /// The day numbered `n` ([`Day::number`]).
    pub fn from_number(n: u32) -> Option<Day> {
        Date::from_julian_day(i32::try_from(n).ok()?).ok().map(Day)
    }

    pub fn parse(s: &str) -> Option<Day> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(s, &format).ok().map(Day)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
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
