//! The batch writer: one task that groups the events of concurrent requests into large
//! unordered inserts. A request waits for the write that holds its events, so a 2xx answer
//! means "stored".
//!
//! The rollup changes of the events that were new go to a second task, which merges them
//! (they are commutative) and applies them every `rollup_interval_ms`: repeated keys (the same
//! visitor, session, day and page across many requests) cost one upsert per interval instead
//! of one per request, and ingest never waits for them. Dashboards lag by about one interval;
//! a crash loses at most one interval of rollup changes, never an event, and
//! `maidian rollups rebuild` recomputes them. The group closes when it reaches `max_batch_events` or when its first
//! request has waited `linger`; while every write slot is busy, requests keep queueing and the
//! next group grows, which is what keeps a slow database busy with big writes.

use std::sync::Arc;
use std::time::Duration;

use maidian_analytics::event::Event;
use maidian_analytics::rollup::Delta;
use maidian_analytics::store::{InsertReport, Store};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::WriterSection;

/// What became of one request's events.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Written {
    pub inserted: usize,
    pub deduplicated: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("events were not stored")]
pub struct NotStored;

struct Job {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Written, NotStored>>,
}

/// The handle requests write through; the writer stops once every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task. Await the returned handle after dropping every [`Writer`] to
    /// drain what is queued and in flight.
    pub fn spawn(store: Arc<Store>, config: &WriterSection) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let (rollups, rollup_rx) = mpsc::unbounded_channel();
        let interval = Duration::from_millis(config.rollup_interval_ms.max(1));
        let rollup_task = tokio::spawn(apply_rollups(store.clone(), rollup_rx, interval));
        let task = Task {
            store,
            max_events: config.max_batch_events,
            linger: Duration::from_millis(config.linger_ms),
            slots: Arc::new(Semaphore::new(config.concurrency)),
            concurrency: config.concurrency,
            rollups,
        };
        let run = async move {
            task.run(rx).await;
            // Every write is done and the rollup sender is gone: the last changes go out.
            if let Err(e) = rollup_task.await {
                tracing::error!(error = %e, "rollup task failed");
            }
        };
        (Writer { tx }, tokio::spawn(run))
    }

    pub async fn write(&self, events: Vec<Event>) -> Result<Written, NotStored> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { events, reply })
            .await
            .map_err(|_| NotStored)?;
        answer.await.map_err(|_| NotStored)?
    }
}

struct Task {
    store: Arc<Store>,
    max_events: usize,
    linger: Duration,
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// Where the rollup changes of each stored batch go.
    rollups: mpsc::UnboundedSender<Delta>,
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                break;
            };
            // Collect after taking a slot: whatever queued while we waited joins this write.
            let deadline = Instant::now() + self.linger;
            let mut count = first.events.len();
            let mut jobs = vec![first];
            while count < self.max_events {
                let next = match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::time::timeout_at(deadline, rx.recv())
                            .await
                            .unwrap_or_default()
                    }
                };
                let Some(job) = next else { break };
                count += job.events.len();
                jobs.push(job);
            }
            let store = self.store.clone();
            let rollups = self.rollups.clone();
            tokio::spawn(async move {
                write_group(&store, &rollups, jobs).await;
                drop(slot);
            });
        }
        // Every Writer is gone: wait for the writes still in flight.
        let n = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(n).await;
    }
}

async fn write_group(store: &Store, rollups: &mpsc::UnboundedSender<Delta>, jobs: Vec<Job>) {
    let mut events = Vec::with_capacity(jobs.iter().map(|j| j.events.len()).sum());
    let mut waiters = Vec::with_capacity(jobs.len());
    for job in jobs {
        waiters.push((job.events.len(), job.reply));
        events.extend(job.events);
    }
    let result = store.insert(&events).await;
    match &result {
        Ok(r) => tracing::debug!(
            events = events.len(),
            requests = waiters.len(),
            inserted = r.inserted,
            deduplicated = r.duplicates.len(),
            failed = r.failed.len(),
            "stored batch"
        ),
        Err(e) => tracing::error!(events = events.len(), error = %e, "batch write failed"),
    }
    if let Ok(report) = &result {
        // Only a stopped rollup task refuses, and then the figures are rebuilt anyway.
        let _ = rollups.send(Delta::of(new_events(&events, report)));
    }
    let mut start = 0;
    for (len, reply) in waiters {
        let range = start..start + len;
        start = range.end;
        let outcome = match &result {
            Ok(report) => outcome_for(report, range),
            Err(_) => Err(NotStored),
        };
        // The request may have gone away; its events are stored all the same.
        let _ = reply.send(outcome);
    }
}

/// Rollup keys pending before a flush is forced, whatever the interval.
const MAX_PENDING_KEYS: usize = 50_000;

/// Merges rollup changes as they come and applies them every `interval` (one task, so
/// upserts of one collector never race each other). A failed apply is merged back and
/// retried at the next tick.
async fn apply_rollups(
    store: Arc<Store>,
    mut rx: mpsc::UnboundedReceiver<Delta>,
    interval: Duration,
) {
    let mut pending = Delta::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            delta = rx.recv() => match delta {
                Some(d) => {
                    pending.merge(d);
                    if pending.keys() < MAX_PENDING_KEYS {
                        continue;
                    }
                    false
                }
                None => true,
            },
            _ = tick.tick() => false,
        };
        if pending.keys() > 0 {
            let delta = std::mem::take(&mut pending);
            if let Err(e) = store.apply_rollups(&delta).await {
                tracing::error!(keys = delta.keys(), error = %e, "rollup update failed; will retry");
                if closed {
                    tracing::error!("rollups lost at shutdown; run `maidian rollups rebuild`");
                } else {
                    pending.merge(delta);
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// The events of a group that the store took as new: neither duplicates nor failures.
fn new_events<'a>(
    events: &'a [Event],
    report: &'a InsertReport,
) -> impl Iterator<Item = &'a Event> {
    events.iter().enumerate().filter_map(move |(i, e)| {
        let skip =
            report.duplicates.binary_search(&i).is_ok() || report.failed.binary_search(&i).is_ok();
        (!skip).then_some(e)
    })
}

/// The share of one group's report that belongs to the events at `range`.
fn outcome_for(report: &InsertReport, range: std::ops::Range<usize>) -> Result<Written, NotStored> {
    let within = |v: &[usize]| v.iter().filter(|i| range.contains(i)).count();
    if within(&report.failed) > 0 {
        return Err(NotStored);
    }
    let deduplicated = within(&report.duplicates);
    Ok(Written {
        inserted: range.len() - deduplicated,
        deduplicated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_group_report_per_request() {
        let report = InsertReport {
            inserted: 5,
            duplicates: vec![1, 5],
            failed: vec![7],
        };
        assert_eq!(
            outcome_for(&report, 0..3),
            Ok(Written {
                inserted: 2,
                deduplicated: 1
            })
        );
        assert_eq!(
            outcome_for(&report, 3..6),
            Ok(Written {
                inserted: 2,
                deduplicated: 1
            })
        );
        assert_eq!(outcome_for(&report, 6..8), Err(NotStored));
    }
}
