//! Core Web Vitals: per metric the p75 and the shares of good / needs-improvement / poor page
//! views, overall, per page (the most measured pages) and per device type. Reads the vitals
//! histograms (`rollup::DAILY_VITALS`); the p75 is within `vitals::max_relative_error` of the
//! exact one, the shares are exact.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{percent, Scope};
use maidian_core::event::{Event, WEB_VITALS};
use maidian_core::rollup::{self, Field};
use maidian_core::stats::Period;
use maidian_core::vitals::{self, Histogram, Metric, Rating};
use maidian_store::{RollupDoc, Store, StoreError};

/// One metric's figures over some page views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricFigures {
    pub metric: Metric,
    /// `ms`, or empty for CLS.
    pub unit: String,
    /// Page views that measured it.
    pub samples: u64,
    /// The 75th percentile (nearest rank); `None` without samples.
    pub p75: Option<f64>,
    /// Percent of `samples` rated good, needs improvement and poor.
    pub good: f64,
    pub needs_improvement: f64,
    pub poor: f64,
    /// The rating of the p75 (how web.dev rates a page).
    pub rating: Option<Rating>,
}

impl MetricFigures {
    /// The p75 with its unit (`2400ms`, `0.12`), or `none` when nothing was measured.
    pub fn p75_text(&self, none: &str) -> String {
        match self.p75 {
            Some(x) => format!("{x}{}", self.unit),
            None => none.to_string(),
        }
    }
}

/// The figures of one page or one device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// Page views with any vital measured.
    pub page_views: u64,
    pub metrics: Vec<MetricFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vitals {
    pub period: Period,
    /// Page views with any vital measured.
    pub page_views: u64,
    pub metrics: Vec<MetricFigures>,
    /// The most measured pages, most first.
    pub pages: Vec<Group>,
    /// Device types (`pc`, `smartphone`, … as for user agents), most first.
    pub devices: Vec<Group>,
}

/// Histograms of each metric.
#[derive(Debug, Default, Clone)]
struct Hists(BTreeMap<Metric, Histogram>);

impl Hists {
    fn add(&mut self, m: Metric, bucket: i64, rating: Rating, n: u64) {
        self.0.entry(m).or_default().add(bucket, rating, n);
    }

    /// Page views with a vital: every web_vitals event has FCP or TTFB unless the browser
    /// measures neither, so the most sampled metric counts them.
    fn page_views(&self) -> u64 {
        self.0.values().map(Histogram::samples).max().unwrap_or(0)
    }

    fn figures(&self) -> Vec<MetricFigures> {
        Metric::ALL
            .into_iter()
            .map(|m| {
                let h = self.0.get(&m).cloned().unwrap_or_default();
                let n = h.samples();
                let p75 = h.quantile_units(0.75).map(|u| round(m, m.value(u)));
                MetricFigures {
                    metric: m,
                    unit: m.unit().to_string(),
                    samples: n,
                    p75,
                    good: percent(h.rated(Rating::Good), n),
                    needs_improvement: percent(h.rated(Rating::NeedsImprovement), n),
                    poor: percent(h.rated(Rating::Poor), n),
                    rating: p75.map(|v| m.rating(m.units(v))),
                }
            })
            .collect()
    }
}

/// Milliseconds to a whole number, CLS to three decimals.
fn round(m: Metric, v: f64) -> f64 {
    match m {
        Metric::Cls => (v * 1000.0).round() / 1000.0,
        _ => v.round(),
    }
}

fn groups(by: HashMap<String, Hists>, top: usize) -> Vec<Group> {
    let mut out: Vec<Group> = by
        .into_iter()
        .map(|(name, h)| Group {
            name,
            page_views: h.page_views(),
            metrics: h.figures(),
        })
        .collect();
    out.sort_by(|a, b| b.page_views.cmp(&a.page_views).then(a.name.cmp(&b.name)));
    out.truncate(top);
    out
}

/// The histograms summed from the vitals rollup's documents as they are read: overall, per
/// page and per device type. At ten million events the rollup holds about a hundred thousand
/// documents (one per day, metric, device, page, bucket and rating); summed one at a time they
/// cost the collector no more memory than the histograms (collected first, they cost ~100 MB).
#[derive(Debug, Default)]
struct Sums {
    all: Hists,
    pages: HashMap<String, Hists>,
    devices: HashMap<String, Hists>,
}

impl Sums {
    /// Adds a document (one of another rollup, or damaged, adds nothing).
    fn add_doc(&mut self, d: RollupDoc) {
        let entry = (
            Metric::parse(d.str(Field::Metric)),
            Rating::parse(d.str(Field::Rating)),
            u64::try_from(d.int(Field::Count)),
        );
        let (Some(m), Some(rating), Ok(n)) = entry else {
            return;
        };
        let bucket = d.int(Field::Bucket);
        self.all.add(m, bucket, rating, n);
        for (by, name) in [
            (&mut self.pages, d.str(Field::PageUrl)),
            (&mut self.devices, d.str(Field::Device)),
        ] {
            match by.get_mut(name) {
                Some(h) => h.add(m, bucket, rating, n),
                None => {
                    let mut h = Hists::default();
                    h.add(m, bucket, rating, n);
                    by.insert(name.to_string(), h);
                }
            }
        }
    }

    fn figures(self, p: Period, top: usize) -> Vitals {
        Vitals {
            period: p,
            page_views: self.all.page_views(),
            metrics: self.all.figures(),
            pages: groups(self.pages, top),
            devices: groups(self.devices, usize::MAX),
        }
    }
}

/// The figures from the vitals rollup's documents.
pub fn from_rollups(p: Period, docs: Vec<RollupDoc>, top: usize) -> Vitals {
    let mut sums = Sums::default();
    for d in docs {
        sums.add_doc(d);
    }
    sums.figures(p, top)
}

/// The same figures from raw events, bots' left out: their histogram entries made in memory
/// by the rollup's own code ([`rollup::docs_of`]), as the summary's raw path does (the
/// benchmark's naive path). [`exact_p75`] is the independent check of the buckets.
pub fn from_events(p: Period, events: &[Event], top: usize) -> Vitals {
    let docs = rollup::docs_of(events)
        .remove(rollup::DAILY_VITALS)
        .unwrap_or_default();
    from_rollups(p, docs, top)
}

/// The exact p75 of each metric over raw events (bots' left out), for tests.
pub fn exact_p75(events: &[Event]) -> BTreeMap<Metric, f64> {
    Metric::ALL
        .into_iter()
        .filter_map(|m| {
            let mut units: Vec<i64> = events
                .iter()
                .filter(|e| e.event_type == WEB_VITALS && e.bot.is_none())
                .filter_map(|e| Some(m.units(e.vital(m)?)))
                .collect();
            Some((m, m.value(vitals::exact_quantile_units(&mut units, 0.75)?)))
        })
        .collect()
}

pub async fn vitals(
    store: &Store,
    p: Period,
    scope: &Scope,
    top: usize,
) -> Result<Vitals, StoreError> {
    let sums = store
        .rollup_sum(
            rollup::DAILY_VITALS,
            Field::Day,
            p.since,
            p.until,
            scope,
            Sums::default(),
            Sums::add_doc,
        )
        .await?;
    Ok(sums.figures(p, top))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_core::event::Day;

    fn vitals_event(page: &str, ua: &str, lcp: Option<f64>, cls: Option<f64>) -> Event {
        Event {
            event_type: WEB_VITALS.into(),
            page_url: Some(page.into()),
            user_agent: Some(ua.into()),
            lcp,
            cls,
            fcp: Some(900.0),
            day: Day::parse("2026-11-30").unwrap(),
            ..Event::default()
        }
    }

    #[test]
    fn p75_and_shares_overall_per_page_and_per_device() {
        let desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let events = vec![
            vitals_event("https://a.example/", desktop, Some(1000.0), Some(0.0)),
            vitals_event("https://a.example/", desktop, Some(2000.0), Some(0.05)),
            vitals_event("https://a.example/", phone, Some(3000.0), Some(0.2)),
            vitals_event("https://a.example/x", phone, Some(5000.0), None),
        ];
        let p = Period::last_days(30, Day::parse("2026-11-30").unwrap());
        let v = from_rollups(
            p,
            rollup::docs_of(&events)[rollup::DAILY_VITALS].clone(),
            10,
        );
        assert_eq!(v, from_events(p, &events, 10), "rollups equal the raw scan");
        assert_eq!(v.page_views, 4);
        let lcp = &v.metrics[0];
        assert_eq!(lcp.metric, Metric::Lcp);
        assert_eq!(
            (lcp.samples, lcp.good, lcp.needs_improvement, lcp.poor),
            (4, 50.0, 25.0, 25.0)
        );
        // Nearest rank 3 of 4: 3000 ms, read back within the bucket error.
        let p75 = lcp.p75.unwrap();
        assert!(
            (p75 - 3000.0).abs() <= 3000.0 * vitals::max_relative_error(),
            "{p75}"
        );
        assert_eq!(lcp.rating, Some(Rating::NeedsImprovement));
        let cls = &v.metrics[2];
        assert_eq!(
            (cls.samples, cls.good, cls.needs_improvement),
            (3, 66.7, 33.3)
        );
        let inp = &v.metrics[1];
        assert_eq!((inp.samples, inp.p75, inp.rating), (0, None, None));
        assert_eq!(v.pages[0].name, "https://a.example/");
        assert_eq!(v.pages[0].page_views, 3);
        let names: Vec<_> = v
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.page_views))
            .collect();
        assert_eq!(names, [("pc", 2), ("smartphone", 2)]);
        let exact = exact_p75(&events);
        assert_eq!(exact[&Metric::Lcp], 3000.0);
        assert_eq!(exact[&Metric::Cls], 0.2);
    }
}
