//! The `/api/stats/events` and `/api/stats/pages` figures: every event type (every page) of a
//! period with its events (views) and distinct visitors, from the day × type and day × page
//! rollups: counts summed, distinct visitors over the days ([`Visitors`]).

use std::collections::HashMap;

use super::{Scope, Visitors};
use maidian_core::rollup::{self, Field};
use maidian_core::stats::{EventTypeStat, PageStat, Period};
use maidian_store::{RollupDoc, Store, StoreError};

/// (key, count, distinct visitors), most counted first, then by key.
fn fold(docs: &[RollupDoc], key: Field, count: Field, v: Visitors) -> Vec<(String, u64, u64)> {
    let mut by_key: HashMap<&str, (u64, Vec<&RollupDoc>)> = HashMap::new();
    for d in docs {
        let e = by_key.entry(d.str(key)).or_default();
        e.0 += u64::try_from(d.int(count)).unwrap_or(0);
        e.1.push(d);
    }
    let mut rows: Vec<_> = by_key
        .into_iter()
        .map(|(k, (n, docs))| (k.to_string(), n, v.distinct(docs)))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// Event types from `rollup::DAILY_TYPE` documents.
pub fn event_types_of(docs: &[RollupDoc], v: Visitors) -> Vec<EventTypeStat> {
    fold(docs, Field::EventType, Field::Count, v)
        .into_iter()
        .map(|(event_type, count, unique_users)| EventTypeStat {
            event_type,
            count,
            unique_users,
        })
        .collect()
}

/// Pages from `rollup::DAILY_PAGE` documents.
pub fn pages_of(docs: &[RollupDoc], v: Visitors) -> Vec<PageStat> {
    fold(docs, Field::PageUrl, Field::Views, v)
        .into_iter()
        .map(|(page_url, views, unique_users)| PageStat {
            page_url,
            views,
            unique_users,
        })
        .collect()
}

pub async fn event_types(
    store: &Store,
    p: Period,
    scope: &Scope,
) -> Result<Vec<EventTypeStat>, StoreError> {
    let docs = store.rollup_counted(rollup::DAILY_TYPE, &p, scope).await?;
    Ok(event_types_of(&docs, Visitors::of(&p, scope)))
}

/// Rows of a page list when none is asked for, and the most one page may hold.
pub const DEFAULT_ROWS: usize = 100;
pub const MAX_ROWS: usize = 1_000;

/// Which rows of a ranked list an answer holds: `limit` rows from row `(page - 1) * limit`,
/// out of `total_rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Paging {
    pub total_rows: usize,
    pub limit: usize,
    pub page: usize,
}

/// Page `page` (from 1) of `limit` rows of `rows`, and where it stands.
pub fn paginate<T>(rows: Vec<T>, limit: usize, page: usize) -> (Vec<T>, Paging) {
    let total_rows = rows.len();
    let (limit, page) = (limit.clamp(1, MAX_ROWS), page.max(1));
    let skip = (page - 1).saturating_mul(limit);
    let rows = rows.into_iter().skip(skip).take(limit).collect();
    (
        rows,
        Paging {
            total_rows,
            limit,
            page,
        },
    )
}

pub async fn pages(store: &Store, p: Period, scope: &Scope) -> Result<Vec<PageStat>, StoreError> {
    let docs = store.rollup_counted(rollup::DAILY_PAGE, &p, scope).await?;
    Ok(pages_of(&docs, Visitors::of(&p, scope)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_core::event::{Day, Event};

    fn ev(ty: &str, visitor: Option<&str>, page: &str) -> Event {
        let mut e = Event {
            event_id: format!("{ty}{visitor:?}{page}"),
            event_type: ty.into(),
            user_id: visitor.map(Into::into),
            page_url: Some(page.into()),
            day: Day::parse("2026-11-30").unwrap_or_default(),
            ..Event::default()
        };
        e.derive_visitor();
        e
    }

    #[test]
    fn lists_are_paged() {
        let rows: Vec<u32> = (0..250).collect();
        let (first, p) = paginate(rows.clone(), DEFAULT_ROWS, 1);
        assert_eq!((first.len(), first[0], p.total_rows), (100, 0, 250));
        let (last, p) = paginate(rows.clone(), 100, 3);
        assert_eq!((last, p.page), ((200..250).collect::<Vec<_>>(), 3));
        assert!(paginate(rows.clone(), 100, 4).0.is_empty());
        assert_eq!(paginate(rows, 5_000, 1).1.limit, MAX_ROWS);
    }

    #[test]
    fn counts_and_distinct_visitors_by_type_and_page() {
        let mut events = vec![
            ev("click", Some("u1"), "/a"),
            ev("click", Some("u2"), "/a"),
            ev("click", None, "/b"),
            ev("page_view", Some("u1"), "/a"),
            ev("page_view", Some("u1"), "/b"),
            ev("page_view", Some("u2"), "/b"),
            ev("scroll", Some("u3"), "/a"),
        ];
        for (i, e) in events.iter_mut().enumerate() {
            e.event_id = format!("e{i}");
        }
        let docs = rollup::docs_of(&events);
        // The bitmaps united and the gap counters count alike.
        for v in [Visitors::United, Visitors::Counted(events[0].day)] {
            let types: Vec<_> = event_types_of(&docs[rollup::DAILY_TYPE], v)
                .into_iter()
                .map(|r| (r.event_type, r.count, r.unique_users))
                .collect();
            assert_eq!(
                types,
                [
                    ("click".to_string(), 3, 2),
                    ("page_view".to_string(), 3, 2),
                    ("scroll".to_string(), 1, 1)
                ]
            );
            let pages: Vec<_> = pages_of(&docs[rollup::DAILY_PAGE], v)
                .into_iter()
                .map(|r| (r.page_url, r.views, r.unique_users))
                .collect();
            assert_eq!(pages, [("/b".to_string(), 2, 2), ("/a".to_string(), 1, 1)]);
        }
        assert!(pages_of(&[], Visitors::United).is_empty());
    }
}
