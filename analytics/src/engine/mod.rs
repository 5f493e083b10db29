//! The analytics engine: summary, funnel, retention and real-time figures.
//!
//! Each figure has a pure function over domain inputs (rollup documents or trimmed events),
//! tested with small hand-made tables, and an async function that fetches those inputs from a
//! [`Store`](crate::store::Store). Dashboards and stats read rollups only; funnels read the events of
//! their step types in the period; real-time reads the last hour.

pub mod funnel;
pub mod realtime;
pub mod retention;
pub mod stats;
pub mod summary;
pub mod vitals;

/// Which events a figure counts: one site's, and by default not those flagged as bots'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The site (`site::valid_id`); figures never mix sites.
    pub site: String,
    /// Count events flagged as bots' too (`include_bots=true`, `--include-bots`).
    pub include_bots: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Scope::site(crate::site::DEFAULT_SITE)
    }
}

impl Scope {
    /// The people of `site`.
    pub fn site(site: &str) -> Scope {
        Scope {
            site: site.to_string(),
            include_bots: false,
        }
    }

    /// This scope with bots included or not.
    pub fn bots(mut self, include: bool) -> Scope {
        self.include_bots = include;
        self
    }
}

/// How a figure finds the distinct visitors of its period in daily documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visitors {
    /// From the gap counters of people's documents ([`crate::reach`]), read without their
    /// bitmaps; the period starts on this day.
    Counted(crate::event::Day),
    /// By uniting the documents' bitmaps: with bots included, people's and bots' documents
    /// are merged, and their counters cannot be.
    #[default]
    United,
}

impl Visitors {
    /// How `scope`'s figures of period `p` count visitors.
    pub fn of(p: &crate::stats::Period, scope: &Scope) -> Visitors {
        let days = p.until.number().saturating_sub(p.since.number());
        if scope.include_bots || days >= u32::from(crate::rollup::MAX_GAP) {
            Visitors::United
        } else {
            Visitors::Counted(p.since)
        }
    }

    /// Distinct visitors of `docs` (daily documents of one key) over the period.
    pub fn distinct<'a>(self, docs: impl IntoIterator<Item = &'a crate::store::RollupDoc>) -> u64 {
        match self {
            Visitors::Counted(since) => crate::reach::reached(docs, since),
            Visitors::United => distinct_visitors(docs),
        }
    }

    /// Visitors of one daily document.
    pub fn of_day(self, doc: &crate::store::RollupDoc) -> u64 {
        match self {
            Visitors::Counted(_) => crate::reach::visitors_of(doc),
            Visitors::United => doc.bits(crate::rollup::Field::Visitors).len(),
        }
    }
}

/// Distinct visitors of `docs` (rollup documents with a visitor bitmap): the size of their
/// union, taken in one call (roaring's `MultiOps`, several times faster than adding the
/// bitmaps one by one into a growing one).
pub fn distinct_visitors<'a>(docs: impl IntoIterator<Item = &'a crate::store::RollupDoc>) -> u64 {
    use roaring::MultiOps;
    docs.into_iter()
        .map(|d| d.bits(crate::rollup::Field::Visitors))
        .union()
        .len()
}

/// `part / whole` as a percentage with one decimal, 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

/// Milliseconds as seconds with one decimal.
pub fn seconds(ms: f64) -> f64 {
    (ms / 100.0).round() / 10.0
}

/// The median of `values` (sorted in place), `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_median() {
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
