//! The rollup consumer: a checkpointed, idempotent reader of the event log that keeps the
//! rollups exactly equal to a rebuild from the raw events.
//!
//! The `events` collection is the only source of truth. The store stamps `received_at` on
//! each event just before writing it, and the collector bounds every write's time
//! (`[writer] insert_timeout_ms`), so once `safety_lag` has passed an event with that stamp has
//! either committed or failed for good. The consumer reads events in `(received_at, _id)` order
//! behind that lag (the embedded store numbers its log in commit order and needs no lag),
//! turns each chunk into a [`Delta`](crate::rollup::Delta) and applies it so that applying a
//! chunk twice changes nothing:
//!
//! - MongoDB: the chunk's range and number are written to the checkpoint document *before*
//!   its updates, so a retry reads exactly the same events; every rollup update carries
//!   `applied: {$lt: chunk}` in its filter and sets `applied: chunk`, so an upsert that meets an
//!   already-updated document fails with a duplicate key, which means "done". Then the
//!   checkpoint moves past the chunk.
//! - Embedded: the delta and the checkpoint commit in one redb transaction.
//!
//! One consumer at a time per database: the checkpoint document doubles as a lease (owner,
//! expiry), taken and renewed by conditional updates, and renewed beside a long step; every
//! checkpoint write is conditional on still owning it, and every rollup write follows a
//! renewal less than a quarter of the TTL old. When the owner dies, another collector takes over after `lease_ttl`.
//! Nothing is queued in memory: a slow store means lag, never growth.
//!
//! This module never decides HTTP answers; the collector runs [`run`] as a task and the CLI
//! uses [`catch_up`] and `Store::rebuild_rollups`.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::store::{Store, StoreError};

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

/// A unique consumer name for this process: `host:pid:random`.
pub fn owner_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{role}@{host}:{}:{nanos:08x}", std::process::id())
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

/// Runs the consumer until `shutdown` resolves, then gives the lease up. Errors (the store
/// down, a lost lease) are logged and retried with backoff; nothing is lost meanwhile because
/// the backlog is the event log itself.
pub async fn run(store: &Store, cfg: ConsumerConfig, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut backoff = cfg.idle_poll;
    let mut owned = false;
    let mut expire_at = tokio::time::Instant::now();
    loop {
        // A step (a chunk, an erasure) is crash-safe at any point, so shutdown need not wait
        // for a long one: it is dropped, and the next lease holder takes it up again.
        // The lease is renewed beside the step; once it is lost the step is dropped (the
        // new holder finishes its chunk).
        let step = tokio::select! {
            _ = &mut shutdown => break,
            step = store.rollup_step(&cfg) => step,
            _ = store.heartbeat(&cfg) => Ok(Step::NotOwner),
        };
        // Retention keeps its own timer whatever the load: between two chunks when the
        // consumer is busy, not only once it is idle (a site with steady traffic never is).
        let owner = matches!(step, Ok(Step::Idle | Step::Consumed(_)));
        if let (true, Some(r)) = (owner, cfg.retention) {
            if tokio::time::Instant::now() >= expire_at {
                expire_at = expire(store, &cfg, r).await;
            }
        }
        let pause = match step {
            Ok(Step::Consumed(n)) => {
                if !owned {
                    tracing::info!(owner = %cfg.owner, "rollup consumer lease taken");
                    owned = true;
                }
                tracing::debug!(events = n, "rolled up");
                backoff = cfg.idle_poll;
                Duration::ZERO
            }
            Ok(Step::Switched) => {
                tracing::info!("rollups switched to the rebuilt generation");
                Duration::ZERO
            }
            Ok(Step::Idle) => {
                owned = true;
                backoff = cfg.idle_poll;
                cfg.idle_poll
            }
            Ok(Step::NotOwner) => {
                owned = false;
                cfg.idle_poll.max(Duration::from_millis(500))
            }
            Err(e) => {
                tracing::warn!(error = %e, "rollup step failed; will retry");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if let Err(e) = store.release_lease(&cfg.owner).await {
        tracing::warn!(error = %e, "could not release the rollup lease");
    }
}

/// One bounded pass of retention; returns when to look again.
async fn expire(store: &Store, cfg: &ConsumerConfig, r: Retention) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let cutoff = crate::lifecycle::cutoff_ms(r.raw_days, now_ms());
    match store.expire_raw(cfg, cutoff, r.chunk).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(
                    events = n,
                    before = %crate::lifecycle::rfc3339(cutoff),
                    "deleted expired raw events"
                );
            }
            if n as usize >= r.chunk {
                now
            } else {
                now + r.every
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "raw-event retention failed; will retry");
            now + r.every
        }
    }
}

/// Steps until nothing is left to roll up (or another process owns the lease); returns how
/// many events were rolled up. For the CLI, tests and benchmarks.
pub async fn catch_up(store: &Store, cfg: &ConsumerConfig) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        match store.rollup_step(cfg).await {
            Ok(Step::Consumed(n)) => total += n as u64,
            Ok(Step::Switched) => {}
            Ok(Step::Idle | Step::NotOwner) | Err(StoreError::LeaseLost) => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}
