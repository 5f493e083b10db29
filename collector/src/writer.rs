//! The batch writer: one task that groups the events of concurrent requests into large
//! unordered inserts. A request waits for the write that holds its events, so a 2xx answer
//! means "stored".
//!
//! The group closes when it reaches `max_batch_events` or when its first request has waited
//! `linger`; while every write slot is busy, requests keep queueing and the next group grows,
//! which is what keeps a slow database busy with big writes. Every write is bounded by
//! `insert_timeout_ms`: past it the requests get 503 and retry (deduplicated). That bound is
//! what the rollup consumer (`maidian_analytics::consumer`) relies on; the writer itself knows
//! nothing of rollups.
//!
//! It writes into a [`Sink`]: the [`Store`], or, in the ingest benchmark's build only
//! (feature `bench-sink`), [`Discard`], which keeps nothing, to measure the collector alone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use maidian_analytics::event::Event;
use maidian_analytics::store::StoreError;
use maidian_analytics::store::{InsertReport, Store};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::WriterSection;
use crate::metrics::Metrics;

/// What became of one request's events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Written {
    pub inserted: usize,
    pub deduplicated: usize,
    /// Indexes (in the request's events) of events the store refused one by one; the rest
    /// of the request is stored all the same.
    pub refused: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("events were not stored")]
pub struct NotStored;

/// Where the writer's groups of events go.
pub trait Sink: Send + Sync + 'static {
    /// Stores `events` (each at most once), saying what became of each.
    fn insert<'a>(&'a self, events: &'a [Event])
        -> BoxFuture<'a, Result<InsertReport, StoreError>>;
}

impl Sink for Store {
    fn insert<'a>(
        &'a self,
        events: &'a [Event],
    ) -> BoxFuture<'a, Result<InsertReport, StoreError>> {
        Box::pin(Store::insert(self, events))
    }
}

/// A sink that keeps nothing and says every event was stored: the ingest benchmark runs the
/// collector on it (`MAIDIAN_STORE=sink`) to measure the collector's own cost.
#[cfg(feature = "bench-sink")]
#[derive(Default)]
pub struct Discard;

#[cfg(feature = "bench-sink")]
impl Sink for Discard {
    fn insert<'a>(
        &'a self,
        events: &'a [Event],
    ) -> BoxFuture<'a, Result<InsertReport, StoreError>> {
        let report = InsertReport {
            inserted: events.len(),
            ..InsertReport::default()
        };
        Box::pin(std::future::ready(Ok(report)))
    }
}

struct Job {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Written, NotStored>>,
}

/// The handle requests write through; the writer stops once every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Starts the writer task. Await the returned handle after dropping every [`Writer`] to
    /// drain what is queued and in flight.
    pub fn spawn(
        sink: Arc<dyn Sink>,
        config: &WriterSection,
        metrics: Arc<Metrics>,
    ) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let task = Task {
            sink,
            max_events: config.max_batch_events,
            linger: Duration::from_millis(config.linger_ms),
            timeout: Duration::from_millis(config.insert_timeout_ms),
            slots: Arc::new(Semaphore::new(config.concurrency)),
            concurrency: config.concurrency,
            metrics: metrics.clone(),
        };
        (Writer { tx, metrics }, tokio::spawn(task.run(rx)))
    }

    pub async fn write(&self, events: Vec<Event>) -> Result<Written, NotStored> {
        // Counted as queued until answered, or until the request is dropped.
        let _queued = Queued::new(&self.metrics.writer_queue, events.len() as i64);
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { events, reply })
            .await
            .map_err(|_| NotStored)?;
        answer.await.map_err(|_| NotStored)?
    }
}

/// Events counted in the writer-queue gauge while it lives.
struct Queued<'a>(&'a prometheus_client::metrics::gauge::Gauge, i64);

impl<'a> Queued<'a> {
    fn new(gauge: &'a prometheus_client::metrics::gauge::Gauge, n: i64) -> Queued<'a> {
        gauge.inc_by(n);
        Queued(gauge, n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.dec_by(self.1);
    }
}

struct Task {
    sink: Arc<dyn Sink>,
    max_events: usize,
    linger: Duration,
    /// Longest one insert may take.
    timeout: Duration,
    slots: Arc<Semaphore>,
    concurrency: usize,
    metrics: Arc<Metrics>,
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
            let sink = self.sink.clone();
            let timeout = self.timeout;
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                write_group(&*sink, timeout, jobs, &metrics).await;
                drop(slot);
            });
        }
        // Every Writer is gone: wait for the writes still in flight.
        let n = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(n).await;
    }
}

async fn write_group(sink: &dyn Sink, timeout: Duration, jobs: Vec<Job>, metrics: &Metrics) {
    let mut events = Vec::with_capacity(jobs.iter().map(|j| j.events.len()).sum());
    let mut waiters = Vec::with_capacity(jobs.len());
    for job in jobs {
        waiters.push((job.events.len(), job.reply));
        events.extend(job.events);
    }
    // Dropping the insert at the deadline abandons it; the consumer's safety lag, longer than
    // this timeout, covers a write that still lands.
    let started = std::time::Instant::now();
    let result = maidian_analytics::store::within(timeout, sink.insert(&events)).await;
    metrics.store_write.observe(started.elapsed().as_secs_f64());
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
    let mut start = 0;
    for (len, reply) in waiters {
        let range = start..start + len;
        start = range.end;
        let outcome = match &result {
            Ok(report) => Ok(outcome_for(report, range)),
            Err(_) => Err(NotStored),
        };
        // The request may have gone away; its events are stored all the same.
        let _ = reply.send(outcome);
    }
}

/// The share of one group's report that belongs to the events at `range`; a document the
/// store refused is that event's failure alone.
fn outcome_for(report: &InsertReport, range: std::ops::Range<usize>) -> Written {
    let within = |v: &[usize]| v.iter().filter(|i| range.contains(i)).count();
    let refused: Vec<usize> = report
        .failed
        .iter()
        .filter(|i| range.contains(i))
        .map(|i| i - range.start)
        .collect();
    let deduplicated = within(&report.duplicates);
    Written {
        inserted: range.len() - deduplicated - refused.len(),
        deduplicated,
        refused,
    }
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
            Written {
                inserted: 2,
                deduplicated: 1,
                refused: vec![]
            }
        );
        assert_eq!(
            outcome_for(&report, 3..6),
            Written {
                inserted: 2,
                deduplicated: 1,
                refused: vec![]
            }
        );
        assert_eq!(
            outcome_for(&report, 6..8),
            Written {
                inserted: 1,
                deduplicated: 0,
                refused: vec![1]
            }
        );
    }
}
