//! Where events live. [`Store`] is one type with three backends, chosen at start-up:
//!
//! - [`mongo`]: MongoDB (or any MongoDB-wire server such as FerretDB), the storage of record.
//! - [`embedded`]: a redb file in a local data directory, the zero-setup default.
//! - `sink` (feature `bench-sink` only): counts and drops, to measure the collector alone.
//!
//! Every backend stores an event at most once, keyed by `event_id`, and reports duplicates by
//! their index in the batch so the caller can count them as deduplicated, never as failures.
//! A store never decides HTTP status codes or reads request JSON.

pub mod embedded;
pub mod mongo;
#[cfg(feature = "bench-sink")]
pub mod sink;

use std::path::PathBuf;
use std::time::Duration;

use crate::event::{Day, Event};
use crate::stats::KeyVisitorCount;

/// How to reach the store; built by the collector's config or the CLI's flags.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Mongo(MongoConfig),
    Embedded {
        data_dir: PathBuf,
    },
    #[cfg(feature = "bench-sink")]
    Sink,
}

/// Connection settings for MongoDB: a full `uri`, or the seed's host/port/credentials.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    pub uri: Option<String>,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: String,
    /// Server selection and connect timeout.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("embedded store: {0}")]
    Embedded(String),
    #[error("stored document is malformed: {0}")]
    Corrupt(String),
}

/// What happened to each event of one `insert` call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsertReport {
    /// Events newly stored.
    pub inserted: usize,
    /// Indexes of events whose `event_id` was already stored (or repeated within the batch).
    pub duplicates: Vec<usize>,
    /// Indexes of events the store refused for another reason; the caller must not report them
    /// as stored.
    pub failed: Vec<usize>,
}

pub enum Store {
    Mongo(mongo::MongoStore),
    Embedded(embedded::EmbeddedStore),
    #[cfg(feature = "bench-sink")]
    Sink(sink::SinkStore),
}

impl Store {
    /// Connects (MongoDB) or opens (embedded) and makes sure indexes exist.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        match config {
            StoreConfig::Mongo(m) => Ok(Store::Mongo(mongo::MongoStore::connect(m).await?)),
            StoreConfig::Embedded { data_dir } => Ok(Store::Embedded(
                embedded::EmbeddedStore::open(data_dir.clone()).await?,
            )),
            #[cfg(feature = "bench-sink")]
            StoreConfig::Sink => Ok(Store::Sink(sink::SinkStore::default())),
        }
    }

    /// A short name for logs and `/api/health`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Mongo(_) => "mongodb",
            Store::Embedded(_) => "embedded",
            #[cfg(feature = "bench-sink")]
            Store::Sink(_) => "sink",
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Mongo(s) => s.ping().await,
            Store::Embedded(s) => s.ping().await,
            #[cfg(feature = "bench-sink")]
            Store::Sink(_) => Ok(()),
        }
    }

    /// Stores each event at most once; see [`InsertReport`].
    pub async fn insert(&self, events: &[Event]) -> Result<InsertReport, StoreError> {
        if events.is_empty() {
            return Ok(InsertReport::default());
        }
        match self {
            Store::Mongo(s) => s.insert(events).await,
            Store::Embedded(s) => s.insert(events.to_vec()).await,
            #[cfg(feature = "bench-sink")]
            Store::Sink(s) => Ok(s.insert(events)),
        }
    }

    /// Event counts per (event type, visitor) for days `since..=until`.
    pub async fn count_by_type_and_visitor(
        &self,
        since: Day,
        until: Day,
    ) -> Result<Vec<KeyVisitorCount>, StoreError> {
        match self {
            Store::Mongo(s) => s.count_by_type_and_visitor(since, until).await,
            Store::Embedded(s) => s.count_grouped(since, until, Grouping::EventType).await,
            #[cfg(feature = "bench-sink")]
            Store::Sink(_) => Ok(Vec::new()),
        }
    }

    /// Page-view counts per (page URL, visitor) for days `since..=until`.
    pub async fn count_page_views_by_visitor(
        &self,
        since: Day,
        until: Day,
    ) -> Result<Vec<KeyVisitorCount>, StoreError> {
        match self {
            Store::Mongo(s) => s.count_page_views_by_visitor(since, until).await,
            Store::Embedded(s) => s.count_grouped(since, until, Grouping::PageViews).await,
            #[cfg(feature = "bench-sink")]
            Store::Sink(_) => Ok(Vec::new()),
        }
    }

    /// Every stored event of days `since..=until`, oldest first. For tests and tools; analytics
    /// must not call this on dashboard paths.
    pub async fn events_between(&self, since: Day, until: Day) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Mongo(s) => s.events_between(since, until).await,
            Store::Embedded(s) => s.events_between(since, until).await,
            #[cfg(feature = "bench-sink")]
            Store::Sink(_) => Ok(Vec::new()),
        }
    }
}

/// What the embedded store groups by when it scans.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Grouping {
    EventType,
    PageViews,
}
