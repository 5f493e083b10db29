//! The analytics engine: summary, funnel, retention, real-time and vitals figures, and
//! [`answer`], the one way a figure asked by name is answered (HTTP and CLI alike); [`query`]
//! is the vocabulary of exploration queries (Plausible's Stats API v2 names), not yet answered.
//!
//! Each figure has a pure function over domain inputs (rollup documents or trimmed events),
//! tested with small hand-made tables, and an async function that fetches those inputs from a
//! [`Store`](maidian_store::Store). Dashboards and stats read rollups only; funnels read the events of
//! their step types in the period; real-time reads the last hour.

pub mod answer;
pub mod funnel;
pub mod query;
pub mod realtime;
pub mod retention;
pub mod stats;
pub mod summary;
pub mod vitals;

pub use maidian_core::site::Scope;

pub use maidian_core::rollup::reach::{distinct_visitors, Visitors};

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

/// The event counts of `sites`, from the rollups (all days).
pub async fn site_counts(
    store: &maidian_store::Store,
    sites: &[maidian_core::site::SiteInfo],
) -> Result<Vec<maidian_core::site::SiteCount>, maidian_store::StoreError> {
    use maidian_core::rollup::{self, Field};
    let (first, last) = (
        maidian_core::event::Day::from_ymd(1, 1, 1).unwrap_or_default(),
        maidian_core::event::Day::from_ymd(9999, 12, 31).unwrap_or_default(),
    );
    let mut out = Vec::with_capacity(sites.len());
    for s in sites {
        let sum = |docs: Vec<maidian_core::rollup::RollupDoc>| -> u64 {
            docs.iter()
                .map(|d| u64::try_from(d.int(Field::Count)).unwrap_or(0))
                .sum()
        };
        let people = store.rollup_between(rollup::DAILY_TYPE, Field::Day, &s.id, first, last);
        let bots = store.rollup_between(rollup::DAILY_BOT, Field::Day, &s.id, first, last);
        let (people, bots) = tokio::try_join!(people, bots)?;
        out.push(maidian_core::site::SiteCount {
            id: s.id.clone(),
            name: s.name.clone(),
            timezone: s.timezone.clone(),
            events: sum(people),
            bot_events: sum(bots),
        });
    }
    Ok(out)
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
