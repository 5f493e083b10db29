//! maidian's storage: where events live, and the consumer that rolls them up. [`Store`] is one
//! type with two backends, chosen at start-up.
//!
//! # Layout
//! - [`mongo`]: MongoDB (or any MongoDB-wire server such as FerretDB), the storage of record.
//! - [`embedded`]: a redb file in a local data directory, the zero-setup default.
//! - [`consumer`]: the checkpointed, leased reader of the event log that keeps rollups exact.
//! - [`protocol`]: what the consumer and the backends agree on (settings, steps, status).
//! - `reads`: what rolling events up reads, as one narrow trait both backends implement, and
//!   the orchestration over it written once (a chunk's delta, an erasure's taken-back delta).
//!
//! Each backend is a folder: its connection and event log (`mod.rs`), its rollups and their
//! consumer (`mongo/rollups.rs`: checkpoint, lease, chunks; `embedded/rollups.rs`: one
//! transaction), `mongo/rebuild.rs` (generations, rebuild, hand-over) and `lifecycle.rs`
//! (retention, access, erasure). Backends do I/O only: the rollup arithmetic (what a batch
//! adds, how a state settles, what an erasure takes back) is `maidian-core`'s.
//!
//! Every backend stores an event at most once, keyed by `event_id`, and reports duplicates by
//! their index in the batch so the caller can count them as deduplicated, never as failures.
//! A store never decides HTTP status codes or reads request JSON.

pub mod consumer;
pub mod embedded;
pub mod mongo;
pub mod protocol;
mod reads;

use std::path::PathBuf;
use std::time::Duration;

use maidian_core::event::{Day, Event};
use maidian_core::lifecycle::Forgotten;
use maidian_core::rollup::reach::Visitors;
use maidian_core::rollup::Field;
pub use maidian_core::rollup::RollupDoc;
use maidian_core::site::Scope;
use maidian_core::site::SiteInfo;
pub use protocol::FunnelScan;
use protocol::{ConsumerConfig, RollupStatus, Step};

/// Rollup documents to read: those of `site` in `rollup` (current generation) whose `field`
/// (a `YYYY-MM-DD` day) is within `since..=until`, with ids without their site prefix;
/// without their visitor bitmaps unless `bitmaps`.
#[derive(Debug, Clone)]
pub struct Range<'a> {
    pub rollup: &'static str,
    pub field: Field,
    pub site: &'a str,
    pub since: Day,
    pub until: Day,
    pub bitmaps: bool,
}

impl<'a> Range<'a> {
    /// The documents with their bitmaps.
    pub fn new(rollup: &'static str, field: Field, site: &'a str, since: Day, until: Day) -> Self {
        Range {
            rollup,
            field,
            site,
            since,
            until,
            bitmaps: true,
        }
    }
}

/// How to reach the store; built by the collector's config or the CLI's flags.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Mongo(MongoConfig),
    Embedded { data_dir: PathBuf },
}

/// Connection settings for MongoDB: a full `uri`, or the seed's host/port/credentials.
/// Its `Debug` and `Display` never show a password.
#[derive(Clone)]
pub struct MongoConfig {
    pub target: MongoTarget,
    pub database: String,
    /// Server selection and connect timeout.
    pub timeout: Duration,
}

/// Where the MongoDB server is.
#[derive(Clone, PartialEq)]
pub enum MongoTarget {
    /// A connection string (`mongodb://…`), credentials and options included.
    Uri(String),
    /// A host and port, with the user to log in as.
    Host {
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<String>,
    },
}

impl MongoConfig {
    /// The server at connection string `uri`, database `database`, 10 s to connect.
    pub fn at_uri(uri: impl Into<String>, database: impl Into<String>) -> MongoConfig {
        MongoConfig {
            target: MongoTarget::Uri(uri.into()),
            database: database.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// `uri` with the password of its user info (`user:password@`) replaced by `***`.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    // The user info ends at the last '@' before the host list.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => uri.to_string(),
    }
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("target", &self.target)
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Never shows a password.
impl std::fmt::Debug for MongoTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MongoTarget::Uri(uri) => f.debug_tuple("Uri").field(&redact_uri(uri)).finish(),
            MongoTarget::Host {
                host,
                port,
                username,
                password,
            } => f
                .debug_struct("Host")
                .field("host", host)
                .field("port", port)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

impl std::fmt::Display for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            MongoTarget::Uri(uri) => write!(f, "{}", redact_uri(uri))?,
            MongoTarget::Host { host, port, .. } => write!(f, "mongodb://{host}:{port}")?,
        }
        write!(f, " database {}", self.database)
    }
}

impl std::fmt::Display for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Mongo(m) => write!(f, "MongoDB at {m}"),
            StoreConfig::Embedded { data_dir } => {
                write!(f, "embedded store in {}", data_dir.display())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// redb's error, or the embedded store's own (a malformed entry, a stopped worker), with
    /// its source kept.
    #[error("embedded store: {0}")]
    Embedded(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored document is malformed: {0}")]
    Corrupt(String),
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the rollup consumer lease was lost to another process")]
    LeaseLost,
    #[error("{0}")]
    Busy(String),
    /// An access or erasure request that cannot be carried out (see `lifecycle::Closure`).
    #[error(transparent)]
    Closure(#[from] maidian_core::lifecycle::ClosureError),
    /// A queued request that the lease holder marked failed, with its reason.
    #[error("{0}")]
    Refused(String),
    /// Rollups of another format over raw events retention deleted: they cannot be rolled
    /// up again ([`refuse_other_format`]).
    #[error("{0}")]
    Format(String),
    /// The embedded file is open in another process (a running collector): it admits one.
    #[error("{} is in use by another process (a running collector?)", .0.display())]
    Locked(PathBuf),
}

/// The one rule for rollups of another format than [`maidian_core::rollup::FORMAT`]: both stores roll
/// the event log up again, which counts every figure anew, unless retention has deleted raw
/// events (`expired_before`, ms) whose figures only those rollups still hold; then the store
/// refuses to open, saying why and what to do.
pub(crate) fn refuse_other_format(format: u32, expired_before: i64) -> Result<(), StoreError> {
    if expired_before <= 0 {
        return Ok(());
    }
    Err(StoreError::Format(format!(
        "the rollups are of format {format} and this build reads format {}; raw events before \
         {} were deleted by retention, so rolling the log up again would lose their figures: \
         run the maidian release that wrote them, or move this database aside to start afresh",
        maidian_core::rollup::FORMAT,
        maidian_core::lifecycle::rfc3339(expired_before),
    )))
}

/// `work`, or [`StoreError::Timeout`] when it takes longer than `limit` (it is then dropped).
pub async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(StoreError::Timeout(limit)))
}

/// What happened to each event of one `insert` call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsertReport {
    /// Events newly stored.
    pub inserted: usize,
    /// Indexes (ascending) of events whose `event_id` was already stored for their site (or
    /// repeated within the batch).
    pub duplicates: Vec<usize>,
    /// Indexes (ascending) of events the store refused for another reason; the caller must not
    /// report them as stored.
    pub failed: Vec<usize>,
}

/// See [`Store::table_sizes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    pub name: String,
    pub entries: u64,
    pub bytes: u64,
}

pub enum Store {
    Mongo(mongo::MongoStore),
    Embedded(embedded::EmbeddedStore),
}

impl Store {
    /// Connects (MongoDB) or opens (embedded) and makes sure indexes exist.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        match config {
            StoreConfig::Mongo(m) => Ok(Store::Mongo(mongo::MongoStore::connect(m).await?)),
            StoreConfig::Embedded { data_dir } => Ok(Store::Embedded(
                embedded::EmbeddedStore::open(data_dir.clone()).await?,
            )),
        }
    }

    /// [`Store::open`] that does not wait for a MongoDB server: the store answers errors
    /// while the server is down and works once it is up (a collector may start first). A
    /// server that answers within `wait` is asked whether its rollups can be read
    /// ([`refuse_other_format`]), as [`Store::open`] does.
    pub async fn open_lazily(config: &StoreConfig, wait: Duration) -> Result<Store, StoreError> {
        match config {
            StoreConfig::Mongo(m) => {
                let store = mongo::MongoStore::connect_lazily(m).await?;
                // Down or slow: the consumer checks again before it rolls anything up.
                if let Ok(Err(e @ StoreError::Format(_))) =
                    tokio::time::timeout(wait, store.ready_to_read()).await
                {
                    return Err(e);
                }
                Ok(Store::Mongo(store))
            }
            _ => Store::open(config).await,
        }
    }

    /// Ends the MongoDB client's background tasks (connection pools, monitors) now, so none
    /// outlives the runtime of a process about to exit. The store is unusable after it.
    pub async fn close(&self) {
        if let Store::Mongo(s) = self {
            s.close().await;
        }
    }

    /// Every table (embedded) or collection (MongoDB) with its entries and bytes: stored keys
    /// and values plus the B-tree's own pages (embedded), data plus indexes (MongoDB).
    pub async fn table_sizes(&self) -> Result<Vec<TableSize>, StoreError> {
        match self {
            Store::Mongo(s) => s.table_sizes().await,
            Store::Embedded(s) => s.table_sizes().await,
        }
    }

    /// A short name for logs and `/api/health`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Mongo(_) => "mongodb",
            Store::Embedded(_) => "embedded",
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Mongo(s) => s.ping().await,
            Store::Embedded(s) => s.ping().await,
        }
    }

    /// Stores each event at most once per site; see [`InsertReport`].
    pub async fn insert(&self, events: &[Event]) -> Result<InsertReport, StoreError> {
        let mut report = self.insert_once(events).await?;
        // Dedupe is per site: an id already stored by *another* site is another event (a
        // coincidence, or a probe), stored under the id scoped to its site, and answered as
        // stored, so the answer never tells whether an id exists in another site.
        if report.duplicates.is_empty() {
            return Ok(report);
        }
        let ids: Vec<String> = report
            .duplicates
            .iter()
            .filter_map(|&i| events.get(i).map(|e| e.event_id.clone()))
            .collect();
        let owners = self.sites_of_ids(&ids).await?;
        let (mut again, mut positions) = (Vec::new(), Vec::new());
        report.duplicates.retain(|&i| {
            let Some(e) = events.get(i) else { return true };
            match owners.get(&e.event_id) {
                Some(owner) if owner != e.site_id() => {
                    let mut scoped = e.clone();
                    scoped.event_id = maidian_core::event::site_scoped_id(e.site_id(), &e.event_id);
                    again.push(scoped);
                    positions.push(i);
                    false
                }
                _ => true,
            }
        });
        if again.is_empty() {
            return Ok(report);
        }
        let second = self.insert_once(&again).await?;
        report.inserted += second.inserted;
        report
            .duplicates
            .extend(second.duplicates.iter().filter_map(|&j| positions.get(j)));
        report
            .failed
            .extend(second.failed.iter().filter_map(|&j| positions.get(j)));
        report.duplicates.sort_unstable();
        report.failed.sort_unstable();
        Ok(report)
    }

    async fn insert_once(&self, events: &[Event]) -> Result<InsertReport, StoreError> {
        if events.is_empty() {
            return Ok(InsertReport::default());
        }
        match self {
            Store::Mongo(s) => s.insert(events).await,
            Store::Embedded(s) => s.insert(events.to_vec()).await,
        }
    }

    /// The site each of the stored events `ids` belongs to (absent: not stored).
    async fn sites_of_ids(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        match self {
            Store::Mongo(s) => s.sites_of_ids(ids).await,
            Store::Embedded(s) => s.sites_of_ids(ids.to_vec()).await,
        }
    }

    /// The store's registry of sites (see [`maidian_core::site`]), by id.
    pub async fn sites(&self) -> Result<Vec<SiteInfo>, StoreError> {
        match self {
            Store::Mongo(s) => s.sites().await,
            Store::Embedded(s) => s.sites().await,
        }
    }

    /// Writes `sites` into the registry (other registered sites stay: their events do) and
    /// returns the registry as it was before.
    pub async fn register_sites(&self, sites: &[SiteInfo]) -> Result<Vec<SiteInfo>, StoreError> {
        let before = self.sites().await?;
        let now = protocol::now_ms();
        let changed: Vec<SiteInfo> = sites
            .iter()
            .map(|s| s.over(before.iter().find(|o| o.id == s.id), now))
            .filter(|s| !before.contains(s))
            .collect();
        if !changed.is_empty() {
            match self {
                Store::Mongo(s) => s.register_sites(&changed).await?,
                Store::Embedded(s) => s.register_sites(changed).await?,
            }
        }
        Ok(before)
    }

    /// Every stored event of days `since..=until`, oldest first. For tests and tools; analytics
    /// must not call this on dashboard paths.
    pub async fn events_between(&self, since: Day, until: Day) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Mongo(s) => s.events_between(since, until).await,
            Store::Embedded(s) => s.events_between(since, until).await,
        }
    }
}

impl Store {
    /// When raw events of period `p` were deleted by retention: the instant (RFC 3339) raw
    /// events start at, for figures read from raw events (funnels, exports) to say so.
    pub async fn raw_gone(
        &self,
        p: &maidian_core::stats::Period,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .raw_since()
            .await?
            .filter(|t| p.start_ms < *t)
            .map(maidian_core::lifecycle::rfc3339))
    }

    /// One step of the rollup consumer: takes or renews the lease, then rolls up at most one
    /// chunk of the event log (or finishes a half-applied one). See [`crate::consumer`].
    pub async fn rollup_step(&self, cfg: &ConsumerConfig) -> Result<Step, StoreError> {
        match self {
            Store::Mongo(s) => s.rollup_step(cfg).await,
            Store::Embedded(s) => s.rollup_step(cfg).await,
        }
    }

    /// Keeps the consumer lease while a step runs; resolves once another process holds it
    /// (never on the embedded store: one process). See `MongoStore::heartbeat`.
    pub async fn heartbeat(&self, cfg: &ConsumerConfig) -> StoreError {
        match self {
            Store::Mongo(s) => s.heartbeat(cfg).await,
            _ => std::future::pending().await,
        }
    }

    /// Gives the consumer lease up (at shutdown), so another collector takes over at once.
    pub async fn release_lease(&self, owner: &str) -> Result<(), StoreError> {
        match self {
            Store::Mongo(s) => s.release_lease(owner).await,
            Store::Embedded(_) => Ok(()),
        }
    }

    /// Where the consumer stands: generation, checkpoint, lag, lease owner.
    pub async fn rollup_status(&self) -> Result<RollupStatus, StoreError> {
        match self {
            Store::Mongo(s) => s.rollup_status().await,
            Store::Embedded(s) => s.rollup_status().await,
        }
    }

    /// The documents of `site` in `rollup` (current generation) whose `field` (a `YYYY-MM-DD`
    /// day) is within `since..=until`, with ids without their site prefix.
    pub async fn rollup_between(
        &self,
        rollup: &'static str,
        field: Field,
        site: &str,
        since: Day,
        until: Day,
    ) -> Result<Vec<RollupDoc>, StoreError> {
        let range = Range::new(rollup, field, site, since, until);
        self.rollup_fold(&range, Vec::new(), Vec::push).await
    }

    /// The documents of `range` handed to `add` as they are read instead of collected: a
    /// figure that sums over many documents holds only its sums.
    pub async fn rollup_fold<A: Send + 'static>(
        &self,
        range: &Range<'_>,
        acc: A,
        add: fn(&mut A, RollupDoc),
    ) -> Result<A, StoreError> {
        match self {
            Store::Mongo(s) => s.rollup_fold(range, acc, add).await,
            Store::Embedded(s) => s.rollup_fold(range, acc, add).await,
        }
    }

    /// [`Store::rollup_fold`] as figures read it, for figures that only add counts up: the
    /// documents of `scope`'s site, then, when `scope` includes bots, those of the bot twin
    /// (a key of both comes twice, which adding up does not mind).
    #[allow(clippy::too_many_arguments)]
    pub async fn rollup_sum<A: Send + 'static>(
        &self,
        rollup: &'static str,
        field: Field,
        since: Day,
        until: Day,
        scope: &Scope,
        acc: A,
        add: fn(&mut A, RollupDoc),
    ) -> Result<A, StoreError> {
        let mut range = Range::new(rollup, field, &scope.site, since, until);
        let acc = self.rollup_fold(&range, acc, add).await?;
        if !scope.include_bots {
            return Ok(acc);
        }
        range.rollup = maidian_core::rollup::bot_twin(rollup);
        self.rollup_fold(&range, acc, add).await
    }

    /// [`Store::rollup_between`] as figures read it: `scope`'s site, the bot twin merged in
    /// when `scope` includes bots.
    pub async fn rollup_figures(
        &self,
        rollup: &'static str,
        field: Field,
        since: Day,
        until: Day,
        scope: &Scope,
    ) -> Result<Vec<RollupDoc>, StoreError> {
        let site = scope.site.as_str();
        let people = self.rollup_between(rollup, field, site, since, until);
        if !scope.include_bots {
            return people.await;
        }
        let twin = maidian_core::rollup::bot_twin(rollup);
        let (people, bots) =
            tokio::try_join!(people, self.rollup_between(twin, field, site, since, until))?;
        Ok(maidian_core::rollup::merge_docs(people, bots))
    }

    /// The daily documents of `rollup` in `since..=until` as figures counting distinct
    /// visitors read them: without bots, people's documents without their visitor bitmaps
    /// (the gap counters count them, [`maidian_core::rollup::reach`]); with bots, as
    /// [`Store::rollup_figures`] (bitmaps united, as people's and bots' counters cannot be).
    /// Which of the two [`maidian_core::rollup::reach::Visitors::of`] says.
    pub async fn rollup_counted(
        &self,
        rollup: &'static str,
        p: &maidian_core::stats::Period,
        scope: &Scope,
    ) -> Result<Vec<RollupDoc>, StoreError> {
        let (since, until) = (p.since, p.until);
        if Visitors::of(p, scope) == Visitors::United {
            return self
                .rollup_figures(rollup, Field::Day, since, until, scope)
                .await;
        }
        let mut range = Range::new(rollup, Field::Day, &scope.site, since, until);
        range.bitmaps = false;
        self.rollup_fold(&range, Vec::new(), Vec::push).await
    }

    /// Recomputes every rollup from the raw events into a new generation beside the live
    /// one, then switches readers to it in one step and drops the old one. Collectors keep
    /// ingesting meanwhile (MongoDB); `progress` hears the running count of events read.
    /// Returns how many events the new generation holds.
    pub async fn rebuild_rollups(
        &self,
        cfg: &ConsumerConfig,
        progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        match self {
            Store::Mongo(s) => s.rebuild_rollups(cfg, progress).await,
            Store::Embedded(s) => s.rebuild_rollups(cfg, progress).await,
        }
    }

    /// The events of `site` a funnel walks, from `since_ms` to before `until_ms`, handed to
    /// `scan` ([`FunnelScan`]; people's only unless `include_bots`).
    pub async fn funnel_hits<S: FunnelScan>(
        &self,
        scan: &S,
        site: &str,
        since_ms: i64,
        until_ms: i64,
        include_bots: bool,
    ) -> Result<S::Rows, StoreError> {
        match self {
            Store::Mongo(s) => {
                let mut events = s
                    .events_of_types(site, &scan.types(), since_ms, until_ms)
                    .await?;
                if !include_bots {
                    events.retain(|e| e.bot.is_none());
                }
                Ok(protocol::scan_events(scan, &events))
            }
            Store::Embedded(s) => {
                s.funnel_hits(
                    scan.clone(),
                    site.to_string(),
                    since_ms,
                    until_ms,
                    include_bots,
                )
                .await
            }
        }
    }

    /// `(timestamp, visitor, is a bot's)` of every event of `site` with `timestamp >=
    /// since_ms`: what real-time figures read, and nothing more.
    pub async fn activity_since(
        &self,
        site: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, Option<String>, bool)>, StoreError> {
        match self {
            Store::Mongo(s) => s.activity_since(site, since_ms).await,
            Store::Embedded(s) => s.activity_since(site.to_string(), since_ms).await,
        }
    }

    /// Up to `limit` stored events (of `site`, or of every site) after `after` (a
    /// `(timestamp, event_id)` position, `None` for the start) in `(timestamp, event_id)`
    /// order: a resumable scan, for exports and tools.
    pub async fn events_after(
        &self,
        site: Option<&str>,
        after: Option<(i64, String)>,
        until_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Mongo(s) => s.events_after(site, after, until_ms, limit).await,
            Store::Embedded(s) => {
                s.events_after(site.map(String::from), after, until_ms, limit)
                    .await
            }
        }
    }
}

/// The data lifecycle (see [`maidian_core::lifecycle`]).
impl Store {
    /// The ids linked to visitor `id` of `site` and their events (see
    /// [`maidian_core::lifecycle::Closure`]): an access request's answer, an erasure's dry run.
    pub async fn visitor_closure(
        &self,
        site: &str,
        id: &str,
    ) -> Result<(maidian_core::lifecycle::Names, Vec<Event>), StoreError> {
        match self {
            Store::Mongo(s) => s.closure(site, id).await,
            Store::Embedded(s) => s.closure(site.to_string(), id.to_string()).await,
        }
    }

    /// Every stored event of visitor `id` of `site` and of the ids linked to it.
    pub async fn visitor_events(&self, site: &str, id: &str) -> Result<Vec<Event>, StoreError> {
        Ok(self.visitor_closure(site, id).await?.1)
    }

    /// Erases visitor `id` of `site`: raw events, rollup entries, adjusted counts. On MongoDB
    /// the consumer's lease holder does it and this waits up to `wait` (stepping the consumer
    /// itself with `step`, when no collector may be running).
    pub async fn forget(
        &self,
        cfg: &ConsumerConfig,
        site: &str,
        id: &str,
        wait: Duration,
        step: bool,
    ) -> Result<Forgotten, StoreError> {
        match self {
            Store::Mongo(s) => s.forget(cfg, site, id, wait, step).await,
            Store::Embedded(s) => s.forget(site.to_string(), id.to_string()).await,
        }
    }

    /// Deletes up to `limit` rolled-up raw events older than `cutoff_ms` (MongoDB: only as
    /// the lease holder, with no rebuild running); returns how many.
    pub async fn expire_raw(
        &self,
        cfg: &ConsumerConfig,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Mongo(s) => s.expire_raw(cfg, cutoff_ms, limit).await,
            Store::Embedded(s) => s.expire_raw(cutoff_ms, limit).await,
        }
    }

    /// The instant (ms) raw events were deleted before by retention, if they were.
    pub async fn raw_since(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Mongo(s) => s.raw_since().await,
            Store::Embedded(s) => s.raw_since().await,
        }
    }
}
