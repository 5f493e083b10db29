//! What the rollup consumer ([`crate::consumer`]) and the stores agree on: its settings, what
//! one step did, where it stands, and the clock. Defined here, below both, so that the stores
//! never import the consumer that drives them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How the consumer behaves; one per process.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Who holds the lease: unique per process (host, pid and a random part).
    pub owner: String,
    /// A lease not renewed for this long may be taken by another collector.
    pub lease_ttl: Duration,
    /// Events younger than this (by `received_at`) are not consumed yet: they may still be
    /// committing. Must exceed the writer's insert timeout. MongoDB only.
    pub safety_lag: Duration,
    /// Most events rolled up in one step.
    pub chunk_events: usize,
    /// Pause between steps when there is nothing to do.
    pub idle_poll: Duration,
    /// Raw-event retention, run between steps by the lease holder every `every` however busy
    /// it is; `None` keeps raw events.
    pub retention: Option<Retention>,
    /// Distinct pages a site's day keeps rows of its own for; the views, times and vitals
    /// of the pages beyond are counted under `(other)` (`rollup::Delta::cap_pages`). Every
    /// consumer and rebuild of a store must use the same value.
    pub max_pages_per_day: usize,
}

/// The default [`ConsumerConfig::max_pages_per_day`].
pub const MAX_PAGES_PER_DAY: usize = 10_000;

/// `[retention]`: raw events older than `raw_days` are deleted, `chunk` at a time, looked for
/// every `every` (continuously while a pass finds full chunks). Rollups are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_days: u32,
    pub every: Duration,
    pub chunk: usize,
}

impl ConsumerConfig {
    /// Defaults that suit a collector; `owner` names this process.
    pub fn new(owner: String) -> ConsumerConfig {
        ConsumerConfig {
            owner,
            lease_ttl: Duration::from_secs(10),
            safety_lag: Duration::from_secs(5),
            chunk_events: 5_000,
            idle_poll: Duration::from_millis(250),
            retention: None,
            max_pages_per_day: MAX_PAGES_PER_DAY,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Another process holds the lease.
    NotOwner,
    /// Nothing to roll up yet.
    Idle,
    /// Rolled up this many events (a chunk, or the rest of a half-applied one).
    Consumed(usize),
    /// A rebuilt generation caught up and readers now use it.
    Switched,
}

/// The consumer's position, for `/api/health` and `maidian rollups status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RollupStatus {
    /// The rollup generation readers use (a rebuild makes a new one).
    pub generation: i64,
    /// Events rolled up into that generation.
    pub events: u64,
    /// `received_at` (ms) of the last event rolled up; 0 before the first.
    pub checkpoint_ms: i64,
    /// Newest `received_at` (ms) the store has stamped.
    pub head_ms: i64,
    /// How far the checkpoint trails the newest stored event, in seconds; 0 when caught up.
    pub lag_seconds: f64,
    /// The process holding the lease, if any still does.
    pub owner: Option<String>,
    /// When the lease runs out (ms) unless renewed.
    pub lease_expires_ms: i64,
    /// A generation being rebuilt, if any.
    pub rebuilding: Option<i64>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a funnel's scan of the event log needs of the funnel, which the store does not know:
/// the event types to read, what each event read matches, and the rows it collects. The funnel
/// engine implements it (`engine::funnel::Funnel`, its rows `Hits`); a store hands every
/// event of those types, in (timestamp, event id) order, to [`FunnelScan::push`].
pub trait FunnelScan: Clone + Send + Sync + 'static {
    /// What one event type's events are matched with (built once per scan).
    type Matcher: Send + Sync;
    /// What a scan collects; a store scanning spans in parallel appends theirs in order.
    type Rows: Default + Send;
    /// The event types whose events the scan reads.
    fn types(&self) -> Vec<String>;
    fn matcher(&self, event_type: &str) -> Self::Matcher;
    /// The steps (bit i: step i; 0: none) an event on `page_url` matches.
    fn steps(matcher: &Self::Matcher, page_url: Option<&[u8]>) -> u16;
    /// Appends an event of `visitor` (the id's UTF-8) that matches `steps`.
    fn push(rows: &mut Self::Rows, visitor: &[u8], timestamp: i64, steps: u16);
    /// Appends `later`'s rows (all after those of `rows`).
    fn append(rows: &mut Self::Rows, later: Self::Rows);
}

/// The rows of `events` (any order; those of no visitor or no step left out), as a store
/// without an index of its own hands them to `scan`.
pub fn scan_events<S: FunnelScan>(scan: &S, events: &[maidian_core::event::Event]) -> S::Rows {
    let mut sorted: Vec<&maidian_core::event::Event> =
        events.iter().filter(|e| e.visitor.is_some()).collect();
    sorted.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.event_id.cmp(&b.event_id))
    });
    let matchers: Vec<(String, S::Matcher)> = scan
        .types()
        .into_iter()
        .map(|t| {
            let m = scan.matcher(&t);
            (t, m)
        })
        .collect();
    let mut rows = S::Rows::default();
    for e in sorted {
        let Some((_, m)) = matchers.iter().find(|(t, _)| *t == e.event_type) else {
            continue;
        };
        let steps = S::steps(m, e.page_url.as_deref().map(str::as_bytes));
        if let (Some(v), true) = (e.visitor.as_deref(), steps != 0) {
            S::push(&mut rows, v.as_bytes(), e.timestamp, steps);
        }
    }
    rows
}
