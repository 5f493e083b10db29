//! The seed's statistics: events by type and page views by page over the last N days.
//!
//! Stores answer with partial groups ([`TypeVisitorCount`], [`PageVisitorCount`]: a count per
//! (key, visitor) pair); the folding into figures lives here, once, for every store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::Day;
use crate::site::Zone;

/// How many events one visitor (or no known visitor) produced under one key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyVisitorCount {
    pub key: String,
    pub visitor: Option<String>,
    pub count: u64,
}

pub type TypeVisitorCount = KeyVisitorCount;
pub type PageVisitorCount = KeyVisitorCount;

/// Events of one type in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypeStat {
    pub event_type: String,
    pub count: u64,
    pub unique_users: u64,
}

/// Page views of one page in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageStat {
    pub page_url: String,
    pub views: u64,
    pub unique_users: u64,
}

/// The period "last N days": from `since` through `until`, whole days of a site's time zone;
/// `start_ms..end_ms` are the instants they span.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub days: u32,
    pub since: Day,
    pub until: Day,
    #[serde(skip)]
    pub start_ms: i64,
    #[serde(skip)]
    pub end_ms: i64,
}

impl Period {
    /// The last `days` UTC days ending with `today`.
    pub fn last_days(days: u32, today: Day) -> Period {
        Period::last_days_in(days, today, &Zone::utc())
    }

    /// The last `days` days of `zone` ending with `today` (a day of that zone).
    pub fn last_days_in(days: u32, today: Day, zone: &Zone) -> Period {
        let since = today.window_start(days);
        let (start_ms, end_ms) = zone.span_millis(since, today);
        Period {
            days,
            since,
            until: today,
            start_ms,
            end_ms,
        }
    }

    /// The last `days` days of `zone`, today included.
    pub fn recent(days: u32, zone: &Zone) -> Period {
        Period::last_days_in(days, zone.today(), zone)
    }
}

/// Sums counts per key and counts distinct known visitors; most frequent first, ties by key.
fn fold(groups: Vec<KeyVisitorCount>) -> Vec<(String, u64, u64)> {
    let mut by_key: HashMap<String, (u64, u64)> = HashMap::new();
    for g in groups {
        let entry = by_key.entry(g.key).or_default();
        entry.0 += g.count;
        if g.visitor.is_some() {
            // Each (key, visitor) pair arrives once, so counting pairs counts visitors.
            entry.1 += 1;
        }
    }
    let mut rows: Vec<_> = by_key.into_iter().map(|(k, (c, u))| (k, c, u)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

pub fn event_type_stats(groups: Vec<TypeVisitorCount>) -> Vec<EventTypeStat> {
    fold(groups)
        .into_iter()
        .map(|(event_type, count, unique_users)| EventTypeStat {
            event_type,
            count,
            unique_users,
        })
        .collect()
}

pub fn page_stats(groups: Vec<PageVisitorCount>) -> Vec<PageStat> {
    fold(groups)
        .into_iter()
        .map(|(page_url, views, unique_users)| PageStat {
            page_url,
            views,
            unique_users,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(key: &str, visitor: Option<&str>, count: u64) -> KeyVisitorCount {
        KeyVisitorCount {
            key: key.into(),
            visitor: visitor.map(Into::into),
            count,
        }
    }

    #[test]
    fn folds_counts_and_distinct_visitors() {
        let rows = event_type_stats(vec![
            g("click", Some("u1"), 3),
            g("click", Some("u2"), 1),
            g("click", None, 2),
            g("page_view", Some("u1"), 6),
            g("scroll", Some("u3"), 6),
        ]);
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.event_type.as_str(), r.count, r.unique_users))
            .collect();
        assert_eq!(
            got,
            vec![("click", 6, 2), ("page_view", 6, 1), ("scroll", 6, 1)]
        );
    }

    #[test]
    fn empty_input_gives_no_rows() {
        assert!(page_stats(vec![]).is_empty());
    }
}
