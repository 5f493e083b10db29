//! Funnels: ordered steps, each an event type optionally narrowed to a page URL, completed
//! within a conversion window from the first step. Other events may happen between steps.
//! Reads only the events of the step types in the period (plus one window after it).
//!
//! For each visitor the events are walked in time order, keeping for every step the latest
//! first-step time of a chain that has reached it: a later start leaves the most window for
//! the steps after it, so this finds the deepest step any chain reaches. An event advances a
//! chain by at most one step, so a step repeated in the funnel needs a repeated event.

use serde::{Deserialize, Serialize};

use super::{median, percent};
use maidian_core::event::Event;
use maidian_core::stats::Period;
use maidian_store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Step {
    pub event_type: String,
    pub page_url: Option<String>,
}

impl Step {
    /// `click` or `page_view@https://shop.example/checkout`.
    pub fn parse(s: &str) -> Option<Step> {
        let (ty, page) = match s.split_once('@') {
            Some((t, p)) => (
                t.trim(),
                Some(p.trim().to_string()).filter(|p| !p.is_empty()),
            ),
            None => (s.trim(), None),
        };
        (!ty.is_empty()).then(|| Step {
            event_type: ty.to_string(),
            page_url: page,
        })
    }

    pub fn label(&self) -> String {
        match &self.page_url {
            Some(p) => format!("{}@{p}", self.event_type),
            None => self.event_type.clone(),
        }
    }

    /// Whether an event of this type and page matches (the reference [`Funnel::matcher`] is
    /// tested against).
    #[cfg(test)]
    fn matches(&self, event_type: &str, page_url: Option<&[u8]>) -> bool {
        event_type == self.event_type
            && self
                .page_url
                .as_ref()
                .is_none_or(|p| page_url == Some(p.as_bytes()))
    }
}

/// A funnel definition: at least one step, by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    first: Step,
    rest: Vec<Step>,
    /// Milliseconds from the first step within which the others must happen.
    pub window_ms: i64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunnelError {
    #[error("a funnel needs at least one step")]
    NoSteps,
    #[error("a funnel has at most {0} steps")]
    TooManySteps(usize),
    #[error("step {0:?} is not `event_type` or `event_type@page_url`")]
    BadStep(String),
    #[error("the conversion window must be seconds or a number with s, m, h or d, from 1 second to 90 days")]
    BadWindow,
}

pub const MAX_STEPS: usize = 10;

/// Parses a conversion window: plain seconds, or a number with `s`, `m`, `h` or `d`; in ms.
pub fn parse_window(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num.parse().ok()?;
    let scale = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

impl Funnel {
    pub fn new(steps: Vec<Step>, window_ms: i64) -> Result<Funnel, FunnelError> {
        if !(1_000..=90 * 86_400_000).contains(&window_ms) {
            return Err(FunnelError::BadWindow);
        }
        if steps.len() > MAX_STEPS {
            return Err(FunnelError::TooManySteps(MAX_STEPS));
        }
        let mut it = steps.into_iter();
        let first = it.next().ok_or(FunnelError::NoSteps)?;
        Ok(Funnel {
            first,
            rest: it.collect(),
            window_ms,
        })
    }

    /// Parses the HTTP and CLI parameters: steps `a,b@/page,c` and a window such as `1d`.
    pub fn from_params(steps: &str, window: &str) -> Result<Funnel, FunnelError> {
        let window_ms = parse_window(window).ok_or(FunnelError::BadWindow)?;
        Funnel::parse(steps, window_ms)
    }

    /// Parses `a,b@/page,c`.
    pub fn parse(steps: &str, window_ms: i64) -> Result<Funnel, FunnelError> {
        let steps = steps
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Step::parse(s).ok_or_else(|| FunnelError::BadStep(s.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Funnel::new(steps, window_ms)
    }

    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// The steps' event types, each once, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.steps().map(|s| s.event_type.clone()).collect();
        types.sort();
        types.dedup();
        types
    }

    /// The steps an event of this type and page (UTF-8) matches: bit i for step i. Stores
    /// scan through [`Funnel::matcher`]; this is what its tests check it against.
    #[cfg(test)]
    fn steps_of(&self, event_type: &str, page_url: Option<&[u8]>) -> u16 {
        self.steps()
            .enumerate()
            .filter(|(_, s)| s.matches(event_type, page_url))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The steps (bit i: step i) events of one type match, the type compared once: a scan of
    /// that type's events then compares only the pages of the steps narrowed to one.
    pub fn matcher(&self, event_type: &str) -> Matcher {
        let mut m = Matcher::default();
        for (i, s) in self.steps().enumerate() {
            if s.event_type != event_type {
                continue;
            }
            match &s.page_url {
                None => m.any |= 1 << i,
                Some(p) => m.paged.push((1 << i, p.as_bytes().into())),
            }
        }
        m
    }
}

/// The store's funnel scans hand their events to [`Hits`].
impl maidian_store::FunnelScan for Funnel {
    type Matcher = Matcher;
    type Rows = Hits;

    fn types(&self) -> Vec<String> {
        Funnel::types(self)
    }

    fn matcher(&self, event_type: &str) -> Matcher {
        Funnel::matcher(self, event_type)
    }

    fn steps(matcher: &Matcher, page_url: Option<&[u8]>) -> u16 {
        matcher.steps(page_url)
    }

    fn push(rows: &mut Hits, visitor: &[u8], timestamp: i64, steps: u16) {
        rows.push(visitor, timestamp, steps);
    }

    fn append(rows: &mut Hits, later: Hits) {
        rows.append(later);
    }
}

/// The steps an event of one type matches, by its page: see [`Funnel::matcher`].
#[derive(Debug, Default)]
pub struct Matcher {
    /// The steps of this type whatever the page.
    any: u16,
    /// The steps of this type on one page: (bit, page URL).
    paged: Vec<(u16, Box<[u8]>)>,
}

impl Matcher {
    /// The steps an event on `page_url` (UTF-8) matches: bit i for step i.
    pub fn steps(&self, page_url: Option<&[u8]>) -> u16 {
        self.paged
            .iter()
            .filter(|(_, p)| page_url == Some(&p[..]))
            .fold(self.any, |m, (bit, _)| m | bit)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub step: String,
    pub users: u64,
    /// Percent of the first step's users.
    pub conversion_rate: f64,
    /// Percent of the previous step's users.
    pub conversion_from_previous: f64,
    /// Users of the previous step who did not reach this one.
    pub drop_off: u64,
    /// Median seconds from the first step to this one (`None` for the first step or nobody).
    pub median_time_to_convert: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelResult {
    pub period: Period,
    pub window_seconds: i64,
    pub funnel_steps: Vec<StepResult>,
    /// Raw events before this instant (RFC 3339) were deleted by retention, so the funnel
    /// (read from raw events) does not see them. Set by the caller that knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_data_since: Option<String>,
}

/// A step event's time and the steps it matches (bit i: step i), in one `i64`: the timestamp
/// (ms) shifted left by 16 above the step bits. Timestamps are held within ±2^47 ms of the
/// epoch (about 4 400 years; the collector accepts days around now).
#[derive(Debug, Clone, Copy)]
struct Moment(i64);

impl Moment {
    const LIMIT: i64 = 1 << 47;

    fn new(timestamp: i64, steps: u16) -> Moment {
        Moment((timestamp.clamp(-Moment::LIMIT, Moment::LIMIT - 1) << 16) | i64::from(steps))
    }

    fn timestamp(self) -> i64 {
        self.0 >> 16
    }

    fn steps(self) -> u16 {
        self.0 as u16
    }
}

/// One step event as a scan finds it: a [`Moment`] and whose (a number of [`Hits`]). Packed
/// to 12 bytes: a funnel at ten million events holds millions of them.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Hit {
    moment: Moment,
    visitor: u32,
}

/// The events a funnel walks, in (timestamp, event_id) order, reduced to [`Hit`]s: visitors
/// numbered as first met, the step types and pages already matched. A store's scan fills it
/// without building events. Held in chunks of [`CHUNK`] hits: growing never copies, no room
/// is left over beyond the last chunk, and the sort frees each chunk once it is moved.
#[derive(Debug, Default)]
pub struct Hits {
    numbers: Numbers,
    chunks: Vec<Vec<Hit>>,
}

/// Hits per chunk of [`Hits`]: 48 MiB of room, above glibc's largest threshold (32 MiB) for
/// giving an allocation its own mapping, so that its unused room is never resident and freeing
/// it gives it back at once. (Small chunks came from the scan threads' malloc arenas and stayed
/// there: the collector's RSS grew with every 10 M funnel.) A few in unit tests, so that they
/// cross chunks.
const CHUNK: usize = if cfg!(test) { 3 } else { 1 << 22 };

/// Visitor ids → numbers 0, 1, 2, … as first met. The ids' bytes lie end to end in one buffer
/// and the table holds only numbers, so numbering 454 300 visitors makes a few large
/// allocations instead of one per visitor (small ones stay in malloc's arenas once freed).
#[derive(Debug, Default)]
struct Numbers {
    bytes: Vec<u8>,
    /// Where visitor n's id lies in `bytes`: (start, end).
    spans: Vec<(usize, usize)>,
    /// Visitor numbers, found by their id's hash.
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Numbers {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The number of visitor `id`, given the next one when first met.
    fn number(&mut self, id: &[u8]) -> u32 {
        use std::hash::BuildHasher;
        let Numbers {
            bytes,
            spans,
            table,
            hasher,
        } = self;
        let hash = hasher.hash_one(id);
        let found = table.find(hash, |&n| {
            let (a, b) = spans[n as usize];
            &bytes[a..b] == id
        });
        if let Some(&n) = found {
            return n;
        }
        let n = spans.len() as u32;
        table.insert_unique(hash, n, |&m| {
            let (a, b) = spans[m as usize];
            hasher.hash_one(&bytes[a..b])
        });
        spans.push((bytes.len(), bytes.len() + id.len()));
        bytes.extend_from_slice(id);
        n
    }

    /// The ids in number order.
    fn ids(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(a, b)| &self.bytes[a..b])
    }
}

impl Hits {
    /// Appends an event (they come in (timestamp, event_id) order) of `visitor` (the id's
    /// UTF-8) that matches `steps`.
    pub fn push(&mut self, visitor: &[u8], timestamp: i64, steps: u16) {
        let visitor = self.numbers.number(visitor);
        let hit = Hit {
            moment: Moment::new(timestamp, steps),
            visitor,
        };
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(hit),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(hit);
                self.chunks.push(chunk);
            }
        }
    }

    /// Appends `later`'s hits (all after this one's), numbering its visitors as this one does.
    pub fn append(&mut self, mut later: Hits) {
        if self.chunks.is_empty() && self.numbers.is_empty() {
            *self = later;
            return;
        }
        let renumber: Vec<u32> = later
            .numbers
            .ids()
            .map(|v| self.numbers.number(v))
            .collect();
        for h in later.chunks.iter_mut().flatten() {
            h.visitor = renumber[h.visitor as usize];
        }
        self.chunks.append(&mut later.chunks);
    }

    /// The hits of `events` (any order; those of no visitor or no step left out).
    pub fn of_events(funnel: &Funnel, events: &[Event]) -> Hits {
        maidian_store::protocol::scan_events(funnel, events)
    }

    /// Keeps the hits of the visitors `admit` accepts.
    pub fn retain_visitors(&mut self, admit: impl Fn(&str) -> bool) {
        let admitted: Vec<bool> = self
            .numbers
            .ids()
            .map(|v| std::str::from_utf8(v).is_ok_and(&admit))
            .collect();
        for chunk in &mut self.chunks {
            chunk.retain(|h| admitted[h.visitor as usize]);
        }
    }

    /// Each visitor's hits in time order: a counting sort on the visitor numbers (stable, so
    /// the scan's order holds within a visitor). The hits' moments in that order, and where
    /// each visitor's run starts (then the end). The visitor ids are dropped first and each
    /// chunk once it is moved, so the hits are not held twice.
    fn into_runs(self) -> (Vec<Moment>, Vec<usize>) {
        let Hits { numbers, chunks } = self;
        let mut starts = vec![0usize; numbers.len() + 1];
        drop(numbers);
        for h in chunks.iter().flatten() {
            starts[h.visitor as usize + 1] += 1;
        }
        for v in 1..starts.len() {
            starts[v] += starts[v - 1];
        }
        let mut next = starts.clone();
        let mut sorted = vec![Moment(0); starts.last().copied().unwrap_or(0)];
        for chunk in chunks {
            for h in chunk {
                let slot = &mut next[h.visitor as usize];
                sorted[*slot] = h.moment;
                *slot += 1;
            }
        }
        (sorted, starts)
    }
}

/// Per visitor: how deep they got, and when (ms after their start) they reached each step.
fn walk(
    funnel: &Funnel,
    hits: &[Moment],
    start_from: i64,
    start_until: i64,
) -> [Option<i64>; MAX_STEPS] {
    let n = funnel.len();
    // reached[i]: the latest start time of a chain that has reached step i.
    let mut reached = [None; MAX_STEPS];
    // first time (after its start) each step was reached.
    let mut took = [None; MAX_STEPS];
    for &h in hits {
        let (timestamp, steps) = (h.timestamp(), h.steps());
        for i in (1..n).rev() {
            if steps & (1 << i) == 0 {
                continue;
            }
            if let Some(start) = reached[i - 1] {
                if timestamp - start <= funnel.window_ms && reached[i].is_none_or(|r| start > r) {
                    reached[i] = Some(start);
                    took[i].get_or_insert(timestamp - start);
                }
            }
        }
        if steps & 1 != 0 && (start_from..start_until).contains(&timestamp) {
            reached[0] = Some(timestamp);
            took[0] = Some(0);
        }
    }
    took
}

/// The funnel of `events` (the raw way: any events, any order).
pub fn compute(funnel: &Funnel, p: Period, events: &[Event]) -> FunnelResult {
    compute_hits(funnel, p, Hits::of_events(funnel, events))
}

/// The funnel of the step events in `hits`.
pub fn compute_hits(funnel: &Funnel, p: Period, hits: Hits) -> FunnelResult {
    let (from, until) = (p.start_ms, p.end_ms);
    let n = funnel.len();
    let mut users = vec![0u64; n];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
    let (sorted, starts) = hits.into_runs();
    for run in starts.windows(2) {
        let took = walk(funnel, &sorted[run[0]..run[1]], from, until);
        for (i, t) in took.into_iter().take(n).enumerate() {
            if let Some(ms) = t {
                users[i] += 1;
                times[i].push(ms as f64 / 1000.0);
            }
        }
    }
    let funnel_steps = funnel
        .steps()
        .enumerate()
        .map(|(i, step)| {
            let previous = if i == 0 { users[0] } else { users[i - 1] };
            StepResult {
                step: step.label(),
                users: users[i],
                conversion_rate: if i == 0 && users[0] > 0 {
                    100.0
                } else {
                    percent(users[i], users[0])
                },
                conversion_from_previous: if i == 0 && users[0] > 0 {
                    100.0
                } else {
                    percent(users[i], previous)
                },
                drop_off: previous.saturating_sub(users[i]),
                median_time_to_convert: if i == 0 {
                    None
                } else {
                    median(&mut times[i]).map(|t| (t * 10.0).round() / 10.0)
                },
            }
        })
        .collect();
    FunnelResult {
        period: p,
        window_seconds: funnel.window_ms / 1000,
        funnel_steps,
        raw_data_since: None,
    }
}

/// Restricts a funnel to the visitors whose first visit came from a channel or a campaign
/// (the landing page view of their first session, see `rollup::landing`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    /// A channel name (`Email`, `Organic Search`, …), compared case-insensitively.
    pub channel: Option<String>,
    /// A `utm_campaign` value.
    pub campaign: Option<String>,
}

impl Origin {
    pub fn is_any(&self) -> bool {
        self.channel.is_none() && self.campaign.is_none()
    }

    /// Whether a visitor's landing (`rollup::landing_parts`) matches.
    pub fn admits(&self, landing: Option<&[String; 4]>) -> bool {
        let channel_ok = self
            .channel
            .as_ref()
            .is_none_or(|c| landing.is_some_and(|l| l[0].eq_ignore_ascii_case(c)));
        let campaign_ok = self
            .campaign
            .as_ref()
            .is_none_or(|c| landing.is_some_and(|l| l[3] == *c));
        channel_ok && campaign_ok
    }
}

/// The visitors `origin` admits, from the first-seen rollup (every visitor first seen up to the
/// period's end).
async fn admitted(
    store: &Store,
    origin: &Origin,
    p: Period,
    scope: &super::Scope,
) -> Result<std::collections::HashSet<String>, StoreError> {
    use maidian_core::rollup::{self, Field};
    let since = maidian_core::event::Day::parse("1970-01-01").unwrap_or(p.since);
    let docs = store
        .rollup_figures(rollup::FIRST_SEEN, Field::FirstDay, since, p.until, scope)
        .await?;
    Ok(docs
        .into_iter()
        .filter(|d| origin.admits(rollup::landing_parts(d.str(Field::Landing)).as_ref()))
        .map(|d| d.id)
        .collect())
}

pub async fn funnel(
    store: &Store,
    funnel: &Funnel,
    p: Period,
    scope: &super::Scope,
) -> Result<FunnelResult, StoreError> {
    funnel_from(store, funnel, p, scope, &Origin::default()).await
}

/// [`funnel`] of the visitors `origin` admits.
pub async fn funnel_from(
    store: &Store,
    funnel: &Funnel,
    p: Period,
    scope: &super::Scope,
    origin: &Origin,
) -> Result<FunnelResult, StoreError> {
    let (from, until) = (p.start_ms, p.end_ms + funnel.window_ms);
    let mut hits = store
        .funnel_hits(funnel, &scope.site, from, until, scope.include_bots)
        .await?;
    if !origin.is_any() {
        let visitors = admitted(store, origin, p, scope).await?;
        hits.retain_visitors(|v| visitors.contains(v));
    }
    Ok(compute_hits(funnel, p, hits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_core::event::Day;

    const T: i64 = 1_795_996_800_000; // 2026-11-30T00:00Z
    const MIN: i64 = 60_000;

    fn ev(user: Option<&str>, ty: &str, page: &str, at: i64) -> Event {
        let mut e = Event {
            event_id: format!("{ty}{at}"),
            event_type: ty.into(),
            user_id: user.map(Into::into),
            anonymous_id: None,
            page_url: Some(page.into()),
            timestamp: at,
            day: Day::from_millis(at).unwrap(),
            ..Event::default()
        };
        e.derive_visitor();
        e
    }

    fn run(steps: &str, window_ms: i64, events: &[Event]) -> Vec<(u64, f64, Option<f64>)> {
        let f = Funnel::parse(steps, window_ms).unwrap();
        let p = Period::last_days(7, Day::from_millis(T).unwrap());
        compute(&f, p, events)
            .funnel_steps
            .into_iter()
            .map(|s| (s.users, s.conversion_rate, s.median_time_to_convert))
            .collect()
    }

    #[test]
    fn ordered_steps_with_events_between() {
        let events = [
            ev(Some("a"), "page_view", "/", T),
            ev(Some("a"), "scroll", "/", T + MIN),
            ev(Some("a"), "click", "/", T + 2 * MIN),
            ev(Some("a"), "purchase", "/", T + 4 * MIN),
            ev(Some("b"), "page_view", "/", T),
            ev(Some("b"), "click", "/", T + 10 * MIN),
            ev(Some("c"), "page_view", "/", T),
        ];
        assert_eq!(
            run("page_view,click,purchase", 86_400_000, &events),
            vec![
                (3, 100.0, None),
                (2, 66.7, Some(360.0)),
                (1, 33.3, Some(240.0))
            ]
        );
    }

    #[test]
    fn steps_out_of_order_do_not_count() {
        let events = [
            ev(Some("a"), "click", "/", T),
            ev(Some("a"), "page_view", "/", T + MIN),
        ];
        assert_eq!(run("page_view,click", 86_400_000, &events)[1].0, 0);
    }

    #[test]
    fn a_repeated_step_needs_a_repeated_event() {
        let once = [ev(Some("a"), "page_view", "/", T)];
        assert_eq!(run("page_view,page_view", 86_400_000, &once)[1].0, 0);
        let twice = [
            ev(Some("a"), "page_view", "/", T),
            ev(Some("a"), "page_view", "/b", T + 1),
        ];
        assert_eq!(run("page_view,page_view", 86_400_000, &twice)[1].0, 1);
    }

    #[test]
    fn the_window_expires_but_a_later_start_can_still_convert() {
        let events = [
            ev(Some("a"), "page_view", "/", T),
            ev(Some("a"), "page_view", "/", T + 50 * MIN),
            ev(Some("a"), "purchase", "/", T + 70 * MIN),
            ev(Some("b"), "page_view", "/", T),
            ev(Some("b"), "purchase", "/", T + 61 * MIN),
        ];
        let got = run("page_view,purchase", 60 * MIN, &events);
        assert_eq!(got[1], (1, 50.0, Some(1200.0)));
    }

    #[test]
    fn page_narrowed_steps_and_visitors_without_user_id() {
        let mut anon = ev(None, "page_view", "/pricing", T);
        anon.anonymous_id = Some("anon-1".into());
        anon.derive_visitor();
        let mut anon_signup = ev(None, "signup", "/pricing", T + MIN);
        anon_signup.anonymous_id = Some("anon-1".into());
        anon_signup.derive_visitor();
        let nobody = ev(None, "page_view", "/pricing", T); // no id at all: not a user
        let events = [
            anon,
            anon_signup,
            nobody,
            ev(Some("x"), "page_view", "/", T),
        ];
        assert_eq!(
            run("page_view@/pricing,signup", 86_400_000, &events),
            vec![(1, 100.0, None), (1, 100.0, Some(60.0))]
        );
    }

    #[test]
    fn starts_must_fall_in_the_period_and_empty_periods_are_zero() {
        let before = T - 8 * 86_400_000;
        let events = [
            ev(Some("a"), "page_view", "/", before),
            ev(Some("a"), "click", "/", T),
        ];
        assert_eq!(run("page_view,click", 86_400_000, &events)[0].0, 0);
        assert_eq!(
            run("page_view,click", 86_400_000, &[]),
            vec![(0, 0.0, None), (0, 0.0, None)]
        );
    }

    #[test]
    fn a_conversion_across_midnight_utc_counts() {
        // Step 1 at 23:59 on the last day but one, step 2 two minutes later, the next day.
        let late = T - 60_000;
        let events = [
            ev(Some("a"), "page_view", "/", late),
            ev(Some("a"), "purchase", "/", late + 2 * MIN),
        ];
        assert_eq!(events[0].day.to_string(), "2026-11-29");
        assert_eq!(events[1].day.to_string(), "2026-11-30");
        assert_eq!(
            run("page_view,purchase", 86_400_000, &events),
            vec![(1, 100.0, None), (1, 100.0, Some(120.0))]
        );
    }

    #[test]
    fn hits_scanned_in_spans_and_appended_equal_one_scan() {
        let events = [
            ev(Some("a"), "page_view", "/", T),
            ev(Some("b"), "page_view", "/", T + MIN),
            ev(Some("a"), "click", "/", T + 2 * MIN),
            ev(Some("c"), "page_view", "/", T + 3 * MIN),
            ev(Some("b"), "click", "/", T + 4 * MIN),
            ev(Some("c"), "purchase", "/", T + 5 * MIN),
            ev(Some("a"), "purchase", "/", T + 6 * MIN),
        ];
        let f = Funnel::parse("page_view,click,purchase", 86_400_000).unwrap();
        let p = Period::last_days(7, Day::from_millis(T).unwrap());
        let whole = compute(&f, p, &events);
        for cut in 0..=events.len() {
            let mut hits = Hits::of_events(&f, &events[..cut]);
            hits.append(Hits::of_events(&f, &events[cut..]));
            assert_eq!(compute_hits(&f, p, hits), whole, "cut at {cut}");
        }
        assert_eq!(
            whole
                .funnel_steps
                .iter()
                .map(|s| s.users)
                .collect::<Vec<_>>(),
            [3, 2, 1]
        );
    }

    #[test]
    fn a_matcher_finds_the_steps_of_steps_of() {
        let f = Funnel::parse("page_view,click@/a,page_view@/b,click,page_view@/b", 1_000).unwrap();
        for ty in ["page_view", "click", "scroll"] {
            let m = f.matcher(ty);
            for page in [None, Some("/a"), Some("/b"), Some("/c")] {
                let page = page.map(str::as_bytes);
                assert_eq!(m.steps(page), f.steps_of(ty, page), "{ty} {page:?}");
            }
        }
        assert_eq!(f.matcher("page_view").steps(Some(b"/b")), 0b10101);
    }

    #[test]
    fn moments_keep_time_and_steps() {
        for t in [T, 0, -1, -T, Moment::LIMIT - 1, -Moment::LIMIT] {
            for steps in [0, 1, 0b1010, u16::MAX] {
                let m = Moment::new(t, steps);
                assert_eq!((m.timestamp(), m.steps()), (t, steps));
            }
        }
        assert_eq!(Moment::new(i64::MAX, 1).timestamp(), Moment::LIMIT - 1);
        assert!(Moment::new(T, 0).0 < Moment::new(T + 1, 0).0);
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("90"), Some(90_000));
        assert_eq!(parse_window("30m"), Some(1_800_000));
        assert_eq!(parse_window("1d"), Some(86_400_000));
        assert_eq!(parse_window("1w"), None);
        assert_eq!(parse_window("x"), None);
    }

    #[test]
    fn definitions_are_checked() {
        assert_eq!(Funnel::parse("", 86_400_000), Err(FunnelError::NoSteps));
        assert_eq!(Funnel::parse("a,b", 10), Err(FunnelError::BadWindow));
        assert!(matches!(
            Funnel::parse(&"a,".repeat(11), 86_400_000),
            Err(FunnelError::TooManySteps(10))
        ));
    }
}
