//! The data lifecycle: raw events expire after `[retention] raw_days` (rollups stay), and a
//! visitor's data can be handed out (access) or erased (forget).
//!
//! **Whose data.** A visitor is named by an id: a user id, an anonymous id or a session id.
//! Their events are every event that names that id in `user_id`, `anonymous_id`, `visitor`
//! or `session_id`, and, again, every event naming any id those events carry (a user's
//! anonymous id, their sessions), until nothing new turns up ([`Names`]). So an erasure
//! leaves no stored event that shares a session or an identity with an erased one.
//!
//! **Erasing from rollups.** The rollups of the erased events that were already rolled up are
//! recomputed as a [`Delta`] and taken back ([`Erasure`]): documents that belong to one
//! visitor, session or page view (daily visitors, first seen, sessions, page times, a
//! visitor's page views) are deleted whole — the closure guarantees that every event they
//! count is erased — and shared counters (events by type and day, referrers, agents, bots,
//! page views without a visitor) are decremented, and deleted when they reach zero. The
//! result equals a rebuild from the remaining events. Rollup documents of days whose raw
//! events already expired cannot be recomputed: those naming the visitor are deleted as
//! well ([`PERSONAL_BY_VISITOR`]), while anonymous counters of those days keep counting the
//! visitor's events (they name nobody).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::rollup::{self, Delta, Field};

/// Most rounds of following linked ids before giving up (a visitor links to a handful).
pub const MAX_ROUNDS: usize = 16;

/// The ids naming one visitor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    pub ids: BTreeSet<String>,
}

impl Names {
    pub fn of(id: &str) -> Names {
        Names {
            ids: BTreeSet::from([id.to_string()]),
        }
    }

    /// Whether `e` names one of these ids.
    pub fn names(&self, e: &Event) -> bool {
        Self::fields(e).any(|v| self.ids.contains(v))
    }

    /// The identifying fields of an event that are set.
    pub fn fields(e: &Event) -> impl Iterator<Item = &str> {
        [&e.user_id, &e.anonymous_id, &e.visitor, &e.session_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Adds the ids `events` carry; true when one was new.
    pub fn grow<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) -> bool {
        let before = self.ids.len();
        for e in events {
            for v in Self::fields(e) {
                if !self.ids.contains(v) {
                    self.ids.insert(v.to_string());
                }
            }
        }
        self.ids.len() > before
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Forgotten {
    /// Raw events deleted.
    pub events_removed: u64,
    /// Rollup documents deleted (whole).
    pub rollup_entries_removed: u64,
    /// Ids that named the visitor, all gone now (the one asked for and the linked ones).
    pub ids: u64,
}

/// Rollups whose documents belong to one visitor, session or page view.
const PERSONAL: &[&str] = &[
    rollup::FIRST_SEEN,
    rollup::SESSIONS,
    rollup::PAGE_TIME,
    rollup::CHANNEL_VISITOR,
];

/// Rollups whose documents carry the visitor in `visitor` (searched for when raw events
/// are gone). `FIRST_SEEN` is keyed by the visitor itself; bitmaps hold their number
/// (`rollup::WITH_VISITORS`, cleared through the dictionary).
pub const PERSONAL_BY_VISITOR: &[&str] = &[rollup::SESSIONS, rollup::CHANNEL_VISITOR];

/// The counter a shared rollup's document lives by: at zero it would not exist.
pub fn counter(rollup: &str) -> Field {
    if rollup::bot_twin(rollup::DAILY_PAGE) == rollup || rollup == rollup::DAILY_PAGE {
        Field::Views
    } else {
        Field::Count
    }
}

fn is_personal(name: &str) -> bool {
    PERSONAL
        .iter()
        .any(|p| *p == name || rollup::bot_twin(p) == name)
}

/// The rollup side of erasing events that were rolled up.
#[derive(Debug, Default)]
pub struct Erasure {
    /// Negative increments of shared counters.
    pub decrements: Delta,
    /// Documents to delete whole: (rollup, `_id`).
    pub deletes: Vec<(&'static str, String)>,
}

impl Erasure {
    /// Takes back `delta` (the delta the erased events were rolled up with, first days
    /// settled as if nothing were stored): personal documents go whole, counters go down and
    /// the visitors' numbers come out of the bitmaps.
    pub fn of(delta: Delta) -> Erasure {
        let mut out = Erasure::default();
        for (name, changes) in delta.changes {
            // Retention counters are taken back from the stored first-seen documents
            // (`Delta::counters_taken_back`), exact also for days whose raw events expired.
            if name == rollup::RETENTION || name == rollup::bot_twin(rollup::RETENTION) {
                continue;
            }
            for (key, change) in changes {
                if is_personal(name) {
                    out.deletes.push((name, key));
                    continue;
                }
                // Gap counters too are taken back from the first-seen documents.
                let c = rollup::Change {
                    inc: change
                        .inc
                        .iter()
                        .filter(|(f, _)| !matches!(f, rollup::Field::Gap(_)))
                        .map(|(f, n)| (*f, -n))
                        .collect(),
                    min: Vec::new(),
                    set: change.set,
                    bits: change.bits.iter().map(|(f, b)| (*f, b.undo())).collect(),
                };
                out.decrements
                    .changes
                    .entry(name)
                    .or_default()
                    .insert(key, c);
            }
        }
        out
    }
}

/// When raw events of period `p` were deleted by retention: the instant (RFC 3339) raw
/// events start at, for figures read from raw events (funnels, exports) to say so.
pub async fn raw_gone(
    store: &crate::store::Store,
    p: &crate::stats::Period,
) -> Result<Option<String>, crate::store::StoreError> {
    Ok(store
        .raw_since()
        .await?
        .filter(|t| p.start_ms < *t)
        .map(rfc3339))
}

/// Why a rebuild is refused once retention deleted raw events: it would lose their days.
pub fn no_rebuild(expired_before_ms: i64) -> String {
    format!(
        "raw events before {} were deleted by retention ([retention] raw_days): a rebuild from the raw events would lose the figures of those days, so it is refused",
        rfc3339(expired_before_ms)
    )
}

/// An instant as `2026-11-30T12:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The cut-off of `[retention] raw_days` at `now_ms`: raw events older than this go.
pub fn cutoff_ms(raw_days: u32, now_ms: i64) -> i64 {
    now_ms - i64::from(raw_days) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Day;

    fn ev(user: Option<&str>, anon: &str, session: &str, ty: &str) -> Event {
        let mut e = Event {
            event_id: format!("{anon}{session}{ty}"),
            event_type: ty.into(),
            user_id: user.map(String::from),
            anonymous_id: Some(anon.into()),
            session_id: Some(session.into()),
            page_url: Some("https://a.example/".into()),
            day: Day::parse("2026-11-30").unwrap(),
            ..Event::default()
        };
        e.derive_visitor();
        e
    }

    #[test]
    fn names_follow_linked_ids() {
        let login = ev(Some("u1"), "a1", "s1", "click");
        let before = ev(None, "a1", "s0", "page_view");
        let other = ev(None, "a2", "s2", "page_view");
        let mut n = Names::of("u1");
        assert!(n.names(&login) && !n.names(&before));
        assert!(n.grow([&login]));
        assert!(n.names(&before) && !n.names(&other));
        assert!(n.grow([&before]));
        assert!(!n.grow([&login, &before]));
    }

    #[test]
    fn personal_documents_go_and_shared_counters_go_down() {
        let e = ev(Some("u1"), "a1", "s1", "page_view");
        let er = Erasure::of(Delta::of([&e]));
        let deleted: BTreeSet<&str> = er.deletes.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            deleted,
            BTreeSet::from([
                rollup::FIRST_SEEN,
                rollup::SESSIONS,
                rollup::CHANNEL_VISITOR
            ])
        );
        let types = &er.decrements.changes[rollup::DAILY_TYPE];
        assert_eq!(
            types["default|2026-11-30|page_view"].inc,
            vec![(Field::Count, -1)]
        );
        // The visitor's number (0: the only one) comes out of each bitmap it went into.
        for (name, key) in [
            (rollup::DAILY_TYPE, "default|2026-11-30|page_view"),
            (rollup::DAILY_USERS, "default|2026-11-30"),
            (rollup::DAILY_PAGE, "default|2026-11-30|https://a.example/"),
            (rollup::FIRST_DAY, "default|2026-11-30"),
        ] {
            let c = &er.decrements.changes[name][key];
            let b = &c.bits[0].1;
            assert_eq!(c.bits[0].0, Field::Visitors, "{name}");
            assert!(b.set.is_empty() && b.clear.iter().eq([0]), "{name}");
        }
    }
}
