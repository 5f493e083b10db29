//! The rollup consumer: a checkpointed, idempotent reader of the event log that keeps the
//! rollups exactly equal to a rebuild from the raw events.
//!
//! The `events` collection is the only source of truth. The store stamps `received_at` on
//! each event just before writing it, and the collector bounds every write's time
//! (`[writer] insert_timeout_ms`), so once `safety_lag` has passed an event with that stamp has
//! either committed or failed for good. The consumer reads events in `(received_at, _id)` order
//! behind that lag (the embedded store numbers its log in commit order and needs no lag),
//! turns each chunk into a [`Delta`](maidian_core::rollup::Delta) and applies it so that applying a
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
//! renewal less than a quarter of the TTL old. When the owner dies, another collector takes
//! over after `lease_ttl`.
//! Nothing is queued in memory: a slow store means lag, never growth.
//!
//! This module never decides HTTP answers; the collector runs [`run`] as a task and the CLI
//! uses [`catch_up`] and `Store::rebuild_rollups`.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::protocol::{
    now_ms, ConsumerConfig, Retention, RollupStatus, Step, MAX_PAGES_PER_DAY,
};
use crate::{Store, StoreError};

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
    let cutoff = maidian_core::lifecycle::cutoff_ms(r.raw_days, now_ms());
    match store.expire_raw(cfg, cutoff, r.chunk).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(
                    events = n,
                    before = %maidian_core::lifecycle::rfc3339(cutoff),
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
