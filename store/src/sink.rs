//! A store that keeps nothing: the ingest benchmark runs the collector on it to measure the
//! collector's own cost. Built only with the `bench-sink` feature.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::InsertReport;
use maidian_core::event::Event;

#[derive(Default)]
pub struct SinkStore {
    accepted: AtomicU64,
}

impl SinkStore {
    pub fn insert(&self, events: &[Event]) -> InsertReport {
        self.accepted
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        InsertReport {
            inserted: events.len(),
            ..InsertReport::default()
        }
    }
}
