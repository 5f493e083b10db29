//! The vocabulary of an exploration query (issue 27), named as Plausible's Stats API v2 names
//! it so that its clients and habits work: the metrics, the dimensions, the filter operators
//! and the date ranges, each parsed from its API name and resolved against a site's calendar.
//! The collector turns a request's JSON into these; the engine answers them.
//!
//! Date ranges are whole days of the site's time zone. Where maidian resolves a name
//! differently from Plausible, it says so on the variant: `"7d"` and the other day counts are
//! the N days ending today, as every maidian figure's `days=N` is.

use maidian_core::event::Day;
use maidian_core::site::Zone;
use maidian_core::stats::Period;

/// A figure a query can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    ScrollDepth,
    Percentage,
    ConversionRate,
    TimeOnPage,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::ScrollDepth,
        Metric::Percentage,
        Metric::ConversionRate,
        Metric::TimeOnPage,
    ];

    /// Its API name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::ScrollDepth => "scroll_depth",
            Metric::Percentage => "percentage",
            Metric::ConversionRate => "conversion_rate",
            Metric::TimeOnPage => "time_on_page",
        }
    }

    /// The metric named `name`.
    pub fn named(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The `utm_*` tags of a visit's landing page view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Utm {
    Source,
    Medium,
    Campaign,
    Content,
    Term,
}

/// How `time` dimensions bucket a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeBucket {
    /// `time`: hours for a period of one day, days up to a few months, months beyond.
    Auto,
    Hour,
    Day,
    Week,
    Month,
}

/// A property of an event (`event:*`) or of the visit it belongs to (`visit:*`: its first
/// page view's), or a time bucket, to break results down or filter them by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `event:page`: the path of a page view (no host, query or fragment).
    Page,
    Goal,
    Hostname,
    /// `event:name`, a maidian extension: the event's type (`page_view`, `click`, a
    /// `trackEvent` type).
    EventName,
    /// `event:props:<key>`: a key of the event's `custom_data`.
    Prop(String),
    EntryPage,
    ExitPage,
    Source,
    Referrer,
    Channel,
    Utm(Utm),
    Device,
    Browser,
    BrowserVersion,
    Os,
    OsVersion,
    /// `visit:country`, `visit:region`, `visit:city`; `named` the `_name` forms.
    Country {
        named: bool,
    },
    Region {
        named: bool,
    },
    City {
        named: bool,
    },
    Time(TimeBucket),
}

impl Dimension {
    /// The dimension of its API name (`event:page`, `visit:utm_source`, `time:day`, …).
    pub fn named(name: &str) -> Option<Dimension> {
        use Dimension::*;
        if let Some(key) = name.strip_prefix("event:props:") {
            return (!key.is_empty()).then(|| Prop(key.to_string()));
        }
        Some(match name {
            "event:page" => Page,
            "event:goal" => Goal,
            "event:hostname" => Hostname,
            "event:name" => EventName,
            "visit:entry_page" => EntryPage,
            "visit:exit_page" => ExitPage,
            "visit:source" => Source,
            "visit:referrer" => Referrer,
            "visit:channel" => Channel,
            "visit:utm_source" => Utm(self::Utm::Source),
            "visit:utm_medium" => Utm(self::Utm::Medium),
            "visit:utm_campaign" => Utm(self::Utm::Campaign),
            "visit:utm_content" => Utm(self::Utm::Content),
            "visit:utm_term" => Utm(self::Utm::Term),
            "visit:device" => Device,
            "visit:browser" => Browser,
            "visit:browser_version" => BrowserVersion,
            "visit:os" => Os,
            "visit:os_version" => OsVersion,
            "visit:country" => Country { named: false },
            "visit:country_name" => Country { named: true },
            "visit:region" => Region { named: false },
            "visit:region_name" => Region { named: true },
            "visit:city" => City { named: false },
            "visit:city_name" => City { named: true },
            "time" => Time(TimeBucket::Auto),
            "time:hour" => Time(TimeBucket::Hour),
            "time:day" => Time(TimeBucket::Day),
            "time:week" => Time(TimeBucket::Week),
            "time:month" => Time(TimeBucket::Month),
            _ => return None,
        })
    }

    /// Whether it is a property of the visit (its first page view), so that filtering by it
    /// keeps whole visits.
    pub fn of_visit(&self) -> bool {
        !matches!(
            self,
            Dimension::Page
                | Dimension::Goal
                | Dimension::Hostname
                | Dimension::EventName
                | Dimension::Prop(_)
                | Dimension::Time(_)
        )
    }
}

/// How a filter compares a dimension's value with the values it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    Matches,
    MatchesNot,
}

impl Op {
    /// The operator of its API name.
    pub fn named(name: &str) -> Option<Op> {
        Some(match name {
            "is" => Op::Is,
            "is_not" => Op::IsNot,
            "contains" => Op::Contains,
            "contains_not" => Op::ContainsNot,
            "matches" => Op::Matches,
            "matches_not" => Op::MatchesNot,
            _ => return None,
        })
    }
}

/// A query's period, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRange {
    /// `"day"`: today.
    Today,
    /// `"7d"`, `"28d"`, `"30d"`, `"91d"`: the N days ending today (Plausible's own resolution
    /// has varied between versions; maidian keeps its `days=N`).
    Days(u32),
    /// `"month"`: the current calendar month, whole.
    Month,
    /// `"6mo"`, `"12mo"`: the current calendar month and the N − 1 before it.
    Months(u32),
    /// `"year"`: the current calendar year, whole.
    Year,
    /// `"all"`: from the site's first stored day to today.
    All,
    /// `[from, to]`: those days, both included.
    Between(Day, Day),
}

impl DateRange {
    /// The range of its API name (the `[from, to]` form is [`DateRange::between`]).
    pub fn named(name: &str) -> Option<DateRange> {
        Some(match name {
            "day" => DateRange::Today,
            "7d" => DateRange::Days(7),
            "28d" => DateRange::Days(28),
            "30d" => DateRange::Days(30),
            "91d" => DateRange::Days(91),
            "month" => DateRange::Month,
            "6mo" => DateRange::Months(6),
            "12mo" => DateRange::Months(12),
            "year" => DateRange::Year,
            "all" => DateRange::All,
            _ => return None,
        })
    }

    /// `[from, to]`: two `YYYY-MM-DD` days, or two RFC 3339 instants whose days (in `zone`)
    /// are taken; `None` unless both parse and `from` is not after `to`.
    pub fn between(from: &str, to: &str, zone: &Zone) -> Option<DateRange> {
        let day = |s: &str| {
            Day::parse(s).or_else(|| {
                let t = s.parse::<jiff::Timestamp>().ok()?;
                zone.day_of(t.as_millisecond())
            })
        };
        let (from, to) = (day(from)?, day(to)?);
        (from <= to).then_some(DateRange::Between(from, to))
    }

    /// The days it covers when today is `today` (a day of `zone`) and the site's first stored
    /// day is `first` (for `"all"`; today when nothing is stored).
    pub fn period(self, today: Day, first: Option<Day>, zone: &Zone) -> Period {
        let (since, until) = match self {
            DateRange::Today => (today, today),
            DateRange::Days(n) => (today.window_start(n), today),
            DateRange::Month => month_span(today, 1),
            DateRange::Months(n) => month_span(today, n),
            DateRange::Year => {
                let (y, _, _) = today.ymd();
                (ymd(y, 1, 1, today), ymd(y, 12, 31, today))
            }
            DateRange::All => (first.unwrap_or(today).min(today), today),
            DateRange::Between(from, to) => (from, to),
        };
        span(since, until, zone)
    }
}

/// What a query's figures are compared with (maidian's `include.comparisons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// The same number of days just before.
    PreviousPeriod,
    /// The same days a year before.
    YearOverYear,
    /// Those days.
    Custom(Day, Day),
}

impl Comparison {
    /// The period `p` is compared with.
    pub fn period(self, p: &Period, zone: &Zone) -> Period {
        match self {
            Comparison::PreviousPeriod => {
                let days = p.since.days_until(p.until) + 1;
                Period::last_days_in(days, day_before(p.since), zone)
            }
            Comparison::YearOverYear => span(year_before(p.since), year_before(p.until), zone),
            Comparison::Custom(from, to) => span(from, to, zone),
        }
    }
}

/// The days `since..=until` of `zone`.
fn span(since: Day, until: Day, zone: &Zone) -> Period {
    Period::last_days_in(since.days_until(until) + 1, until, zone)
}

/// The day `y-m-d`, or `fallback` when there is none (years beyond 1..=9999).
fn ymd(y: i32, m: u8, d: u8, fallback: Day) -> Day {
    Day::from_ymd(y, m, d).unwrap_or(fallback)
}

fn day_before(d: Day) -> Day {
    d.window_start(2)
}

/// The first day of the month `n - 1` months before `today`'s, and the last day of `today`'s.
fn month_span(today: Day, n: u32) -> (Day, Day) {
    let (y, m, _) = today.ymd();
    let months = y * 12 + i32::from(m) - 1;
    let first = months - (n.max(1) as i32 - 1);
    let since = ymd(
        first.div_euclid(12),
        (first.rem_euclid(12) + 1) as u8,
        1,
        today,
    );
    let next = months + 1;
    let until = day_before(ymd(
        next.div_euclid(12),
        (next.rem_euclid(12) + 1) as u8,
        1,
        today,
    ));
    (since, until)
}

/// The same day a year before (28 February for 29 February).
fn year_before(d: Day) -> Day {
    let (y, m, day) = d.ymd();
    Day::from_ymd(y - 1, m, day)
        .or_else(|| Day::from_ymd(y - 1, m, day - 1))
        .unwrap_or(d)
}

/// A filter: a dimension compared with values, or filters combined.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `[op, dimension, values]` (with `{"case_sensitive": false}` to compare ignoring case).
    Match {
        op: Op,
        dimension: Dimension,
        values: Vec<String>,
        case_sensitive: bool,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// Visitors who did (or did not) do what the inner filter matches, in the period.
    HasDone(Box<Filter>),
    HasNotDone(Box<Filter>),
}

/// What a result is sorted by: a metric or a dimension of the query.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(Dimension),
}

/// One exploration query: the site's figures `metrics` over `range`, broken down by
/// `dimensions`, of what every filter keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub site: String,
    pub range: DateRange,
    pub metrics: Vec<Metric>,
    pub dimensions: Vec<Dimension>,
    /// All must hold.
    pub filters: Vec<Filter>,
    /// (key, descending); empty: the first metric, descending.
    pub order_by: Vec<(OrderKey, bool)>,
    pub limit: usize,
    pub offset: usize,
    pub total_rows: bool,
    pub time_labels: bool,
    pub comparison: Option<Comparison>,
    /// Count events flagged as bots' too (maidian's `include.bots`).
    pub include_bots: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        Day::parse(s).expect("a day")
    }

    fn days(r: DateRange, today: &str) -> (String, String) {
        let p = r.period(d(today), Some(d("2025-03-10")), &Zone::utc());
        (p.since.to_string(), p.until.to_string())
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for m in Metric::ALL {
            assert_eq!(Metric::named(m.name()), Some(m));
        }
        assert_eq!(Metric::named("visitor"), None);
        assert_eq!(
            Dimension::named("visit:utm_term"),
            Some(Dimension::Utm(Utm::Term))
        );
        assert_eq!(
            Dimension::named("event:props:plan"),
            Some(Dimension::Prop("plan".into()))
        );
        assert_eq!(Dimension::named("event:props:"), None);
        assert_eq!(Dimension::named("visit:pages"), None);
        assert!(Dimension::named("visit:channel").is_some_and(|d| d.of_visit()));
        assert!(Dimension::named("event:page").is_some_and(|d| !d.of_visit()));
        assert_eq!(Op::named("matches_not"), Some(Op::MatchesNot));
        assert_eq!(Op::named("equals"), None);
    }

    #[test]
    fn ranges_are_whole_days_of_the_calendar() {
        let r = |n| DateRange::named(n).expect("a range");
        assert_eq!(
            days(r("day"), "2026-12-08"),
            ("2026-12-08".into(), "2026-12-08".into())
        );
        assert_eq!(
            days(r("7d"), "2026-12-08"),
            ("2026-12-02".into(), "2026-12-08".into())
        );
        assert_eq!(
            days(r("month"), "2026-02-11"),
            ("2026-02-01".into(), "2026-02-28".into())
        );
        assert_eq!(
            days(r("6mo"), "2026-03-31"),
            ("2025-10-01".into(), "2026-03-31".into())
        );
        assert_eq!(
            days(r("12mo"), "2026-12-08"),
            ("2026-01-01".into(), "2026-12-31".into())
        );
        assert_eq!(
            days(r("year"), "2024-07-01"),
            ("2024-01-01".into(), "2024-12-31".into())
        );
        assert_eq!(
            days(r("all"), "2026-12-08"),
            ("2025-03-10".into(), "2026-12-08".into())
        );
        assert_eq!(DateRange::named("1w"), None);
        let shanghai = Zone::named("Asia/Shanghai").expect("a zone");
        // 23:30 UTC is already the next day in Shanghai.
        let b = DateRange::between("2026-12-01T23:30:00Z", "2026-12-03", &shanghai);
        assert_eq!(
            b,
            Some(DateRange::Between(d("2026-12-02"), d("2026-12-03")))
        );
        assert_eq!(
            DateRange::between("2026-12-04", "2026-12-03", &shanghai),
            None
        );
        assert_eq!(
            DateRange::between("yesterday", "2026-12-03", &shanghai),
            None
        );
        let p = DateRange::Today.period(d("2026-12-08"), None, &shanghai);
        assert_eq!(p.end_ms - p.start_ms, 86_400_000);
        assert_eq!(p.days, 1);
    }

    #[test]
    fn comparisons_are_the_days_before_or_a_year_before() {
        let zone = Zone::utc();
        let p = DateRange::Days(7).period(d("2026-12-08"), None, &zone);
        let prev = Comparison::PreviousPeriod.period(&p, &zone);
        assert_eq!((prev.since, prev.until), (d("2026-11-25"), d("2026-12-01")));
        assert_eq!(prev.days, 7);
        let leap = DateRange::Between(d("2024-02-29"), d("2024-03-01")).period(
            d("2024-03-05"),
            None,
            &zone,
        );
        let yoy = Comparison::YearOverYear.period(&leap, &zone);
        assert_eq!((yoy.since, yoy.until), (d("2023-02-28"), d("2023-03-01")));
        let custom = Comparison::Custom(d("2026-01-01"), d("2026-01-31")).period(&p, &zone);
        assert_eq!(custom.days, 31);
    }
}
