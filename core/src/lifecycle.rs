//! The data lifecycle: raw events expire after `[retention] raw_days` (rollups stay), and a
//! visitor's data can be handed out (access) or erased (forget).
//!
//! **Whose data.** A visitor is named by an id of one site: a user id, an anonymous id or a
//! session id. Their events are every event of the site that names that id in `user_id`,
//! `anonymous_id`, `visitor` or `session_id`, and, again, every event naming any id those
//! events carry (a user's anonymous id, their sessions), until nothing new turns up
//! ([`Closure`]), except that a link never crosses to another user's events: ids are sent by
//! anyone holding the public write key, so a forged `{"user_id": victim, "anonymous_id":
//! mine}` must not hand the victim's events to whoever asks for `mine`. Placeholder ids
//! (`"null"`, `"guest"`, …) link nobody.
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

/// Most rounds of following linked ids before the request is refused (each round looks up
/// only the ids the previous one found, so a long chain costs what its events cost).
pub const MAX_ROUNDS: usize = 256;

/// Most events one access or erasure request may cover; past it the request is refused
/// (and, on MongoDB, marked failed) instead of holding the consumer up.
pub const MAX_EVENTS: usize = 1_000_000;

/// Ids that many unrelated visitors share by accident (an SDK that stored `"null"`, a shared
/// `"guest"` login): they link nobody to anybody, and cannot be asked for. Compared trimmed
/// and case-insensitive.
pub const PLACEHOLDER_IDS: &[&str] = &[
    "",
    "null",
    "undefined",
    "none",
    "nil",
    "nan",
    "0",
    "-1",
    "-",
    "false",
    "true",
    "anonymous",
    "anon",
    "guest",
    "unknown",
    "n/a",
    "na",
    "default",
    "user",
    "visitor",
    "[object object]",
];

/// Whether `id` is one of the [`PLACEHOLDER_IDS`].
pub fn is_placeholder(id: &str) -> bool {
    let id = id.trim();
    PLACEHOLDER_IDS.iter().any(|p| p.eq_ignore_ascii_case(id))
}

/// Why a request's closure could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosureError {
    #[error("{0:?} is a placeholder id that many visitors share; it names nobody")]
    Placeholder(String),
    #[error(
        "the visitor's ids keep linking to more after {MAX_ROUNDS} rounds; nothing was erased"
    )]
    TooManyRounds,
    #[error("the visitor's ids link to more than {MAX_EVENTS} events; nothing was erased")]
    TooLarge,
}

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

    /// The identifying fields of an event that are set and are no placeholder.
    pub fn fields(e: &Event) -> impl Iterator<Item = &str> {
        [&e.user_id, &e.anonymous_id, &e.visitor, &e.session_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|v| !is_placeholder(v))
    }
}

/// The events of one visitor in one site, found round by round: the events naming the asked
/// id, then those naming the ids they carry, until nothing new turns up. Written once for
/// both stores, which only look events up ([`Closure::frontier`] → [`Closure::add`]).
///
/// What links, and what does not (anyone with the public write key can send any ids, so a
/// link must never hand one person's events to another):
/// - only events of the request's site;
/// - an event carrying a user id other than the one asked for is left out and followed no
///   further, unless it names the asked id itself (then it is the asker's own event: it is
///   in, but its user id is not followed): asking by an anonymous id or a session never
///   reaches any user's other events, and two users behind one anonymous id (a family
///   computer) never reach each other's;
/// - placeholder ids ([`PLACEHOLDER_IDS`]) link nobody.
#[derive(Debug, Clone)]
pub struct Closure {
    site: String,
    asked: String,
    names: Names,
    frontier: Vec<String>,
    events: std::collections::BTreeMap<String, Event>,
    rounds: usize,
}

impl Closure {
    /// The closure of `asked` in `site`; a placeholder id is refused.
    pub fn new(site: &str, asked: &str) -> Result<Closure, ClosureError> {
        if is_placeholder(asked) {
            return Err(ClosureError::Placeholder(asked.to_string()));
        }
        Ok(Closure {
            site: site.to_string(),
            asked: asked.to_string(),
            names: Names::of(asked),
            frontier: vec![asked.to_string()],
            events: Default::default(),
            rounds: 0,
        })
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    /// The ids found so far.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The ids to look up next (events of the site naming one of them in `user_id`,
    /// `anonymous_id`, `visitor` or `session_id`); empty once the closure is complete.
    pub fn frontier(&self) -> &[String] {
        &self.frontier
    }

    /// Whether `e` belongs to the visitor, given that it names one of the ids found so far.
    fn admits(&self, e: &Event) -> bool {
        if e.site_id() != self.site || !self.names.names(e) {
            return false;
        }
        match e.user_id.as_deref().filter(|u| !is_placeholder(u)) {
            None => true,
            Some(u) if u == self.asked => true,
            Some(_) => [&e.anonymous_id, &e.session_id]
                .into_iter()
                .flatten()
                .any(|v| *v == self.asked),
        }
    }

    /// The ids an admitted event links to: its anonymous id and session, and its visitor
    /// unless that is a user id other than the asked one.
    fn links(&self, e: &Event) -> Vec<String> {
        let user = e.user_id.as_deref();
        [&e.anonymous_id, &e.session_id, &e.visitor]
            .into_iter()
            .flatten()
            .filter(|v| !is_placeholder(v))
            .filter(|v| user != Some(v.as_str()) || **v == self.asked)
            .cloned()
            .collect()
    }

    /// Takes the events a lookup of [`Closure::frontier`] found (any may repeat earlier
    /// ones) and sets the next frontier.
    pub fn add(&mut self, found: Vec<Event>) -> Result<(), ClosureError> {
        self.rounds += 1;
        let mut next = BTreeSet::new();
        for e in found {
            if self.events.contains_key(&e.event_id) || !self.admits(&e) {
                continue;
            }
            for id in self.links(&e) {
                if !self.names.ids.contains(&id) {
                    next.insert(id);
                }
            }
            self.events.insert(e.event_id.clone(), e);
            if self.events.len() > MAX_EVENTS {
                return Err(ClosureError::TooLarge);
            }
        }
        self.names.ids.extend(next.iter().cloned());
        self.frontier = next.into_iter().collect();
        if !self.frontier.is_empty() && self.rounds >= MAX_ROUNDS {
            return Err(ClosureError::TooManyRounds);
        }
        Ok(())
    }

    /// The ids and the events, in time order.
    pub fn finish(self) -> (Names, Vec<Event>) {
        let mut events: Vec<Event> = self.events.into_values().collect();
        events.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
        (self.names, events)
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

/// What an erasure would do, without doing it (`dry_run`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    pub dry_run: bool,
    /// The ids that name the visitor: the one asked for and the linked ones.
    pub ids: Vec<String>,
    /// Raw events that would be deleted.
    pub events: u64,
}

impl DryRun {
    pub fn of(names: &Names, events: &[Event]) -> DryRun {
        DryRun {
            dry_run: true,
            ids: names.ids.iter().cloned().collect(),
            events: events.len() as u64,
        }
    }
}

/// `site|id` for each of `sites` (the registered ones; the default site is added) and each of
/// `ids`, each once: the ids' keys in the visitor dictionary and the first-seen rollups, which
/// an erasure sweeps in every site (a first-seen document read twice would have its counters
/// taken back twice).
pub fn keys_in_every_site(sites: impl IntoIterator<Item = String>, ids: &[String]) -> Vec<String> {
    let mut sites: Vec<String> = sites.into_iter().collect();
    sites.push(crate::event::DEFAULT_SITE.to_string());
    sites.sort_unstable();
    sites.dedup();
    sites
        .iter()
        .flat_map(|s| ids.iter().map(move |id| rollup::site_key(s, id)))
        .collect()
}

/// The counter a shared rollup's document lives by: at zero it would not exist
/// ([`rollup::Spec::counter`]).
pub fn counter(rollup: &str) -> Field {
    rollup::spec(rollup).map_or(Field::Count, |(s, _)| s.counter)
}

/// Whether `name`'s documents belong to one visitor, session or page view
/// ([`rollup::Spec::personal`]).
fn is_personal(name: &str) -> bool {
    rollup::spec(name).is_some_and(|(s, _)| s.personal)
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

/// Why a rebuild is refused once retention deleted raw events: it would lose their days.
pub fn no_rebuild(expired_before_ms: i64) -> String {
    format!(
        "raw events before {} were deleted by retention ([retention] raw_days): a rebuild from the raw events would lose the figures of those days, so it is refused",
        rfc3339(expired_before_ms)
    )
}

/// An instant as `2026-11-30T12:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
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

    /// The closure of `asked` in `site` over `stored`, looked up as a store does.
    fn closure(stored: &[Event], site: &str, asked: &str) -> Result<Vec<String>, ClosureError> {
        let mut c = Closure::new(site, asked)?;
        while !c.frontier().is_empty() {
            let ids: BTreeSet<&String> = c.frontier().iter().collect();
            let found = stored
                .iter()
                .filter(|e| e.site_id() == site)
                .filter(|e| Names::fields(e).any(|v| ids.iter().any(|i| *i == v)))
                .cloned()
                .collect();
            c.add(found)?;
        }
        let (_, events) = c.finish();
        let mut ids: Vec<String> = events.into_iter().map(|e| e.event_id).collect();
        ids.sort();
        Ok(ids)
    }

    #[test]
    fn names_follow_linked_ids() {
        let login = ev(Some("u1"), "a1", "s1", "click");
        let before = ev(None, "a1", "s0", "page_view");
        let other = ev(None, "a2", "s2", "page_view");
        let stored = [login.clone(), before.clone(), other];
        let mut want = vec![login.event_id.clone(), before.event_id.clone()];
        want.sort();
        assert_eq!(closure(&stored, "default", "u1").unwrap(), want);
        // From the anonymous id: the same events (the login names it itself).
        assert_eq!(closure(&stored, "default", "a1").unwrap(), want);
    }

    #[test]
    fn links_never_cross_to_another_users_events_or_site() {
        // A forged event: the attacker's anonymous id beside the victim's user id.
        let forged = ev(Some("victim@corp.example"), "att-1", "s-att", "page_view");
        let victim_own = ev(Some("victim@corp.example"), "v-anon", "s-v", "purchase");
        let attacker = ev(None, "att-1", "s-att2", "click");
        // Two users of one family computer.
        let mum = ev(Some("mum"), "family-pc", "s-m", "page_view");
        let kid = ev(Some("kid"), "family-pc", "s-k", "page_view");
        let pc = ev(None, "family-pc", "s-pc", "page_view");
        // The victim in another site.
        let mut elsewhere = ev(Some("victim@corp.example"), "att-1", "s-x", "page_view");
        elsewhere.site = "shop".into();
        elsewhere.event_id = "elsewhere".into();
        let stored = [
            forged.clone(),
            victim_own.clone(),
            attacker.clone(),
            mum.clone(),
            kid.clone(),
            pc.clone(),
            elsewhere,
        ];
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        // Asking by the attacker's id never reaches the victim's other events.
        assert_eq!(
            closure(&stored, "default", "att-1").unwrap(),
            sorted(vec![forged.event_id.clone(), attacker.event_id.clone()])
        );
        // Asking by the victim: their events, the forged one, and the anonymous events
        // linked to it; never another site's.
        assert_eq!(
            closure(&stored, "default", "victim@corp.example").unwrap(),
            sorted(vec![
                forged.event_id.clone(),
                victim_own.event_id.clone(),
                attacker.event_id.clone()
            ])
        );
        // One user of a shared computer never reaches the other's events.
        assert_eq!(
            closure(&stored, "default", "mum").unwrap(),
            sorted(vec![mum.event_id.clone(), pc.event_id.clone()])
        );
        assert_eq!(
            closure(&stored, "shop", "att-1").unwrap(),
            vec!["elsewhere".to_string()]
        );
    }

    #[test]
    fn placeholders_link_nobody_and_long_chains_are_refused() {
        let a = ev(Some("u1"), "null", "undefined", "click");
        let b = ev(Some("u2"), "null", "undefined", "click");
        let c = ev(None, "null", "s-c", "click");
        let stored = [a.clone(), b, c];
        assert_eq!(closure(&stored, "default", "u1").unwrap(), vec![a.event_id]);
        for p in ["null", " Undefined ", "guest", "", "0"] {
            assert!(matches!(
                closure(&stored, "default", p),
                Err(ClosureError::Placeholder(_))
            ));
        }
        // A chain: anonymous id a_i, session a_{i+1}.
        let chain = |n: usize| -> Vec<Event> {
            (0..n)
                .map(|i| ev(None, &format!("a{i}"), &format!("a{}", i + 1), "click"))
                .collect()
        };
        assert_eq!(closure(&chain(20), "default", "a0").unwrap().len(), 20);
        assert_eq!(
            closure(&chain(MAX_ROUNDS + 5), "default", "a0"),
            Err(ClosureError::TooManyRounds)
        );
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
