//! The embedded store: a single redb file in the data directory, so the collector runs with no
//! database server. Events are keyed by (timestamp, event_id) for time-range scans, with a second
//! table of seen ids for exactly-once storage, and a log numbering events in commit order for the
//! rollup consumer (`embedded_rollups`). redb is synchronous, so every call runs on tokio's
//! blocking pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::Deserialize;

use super::{Grouping, InsertReport, StoreError};
use crate::consumer::now_ms;
use crate::engine::Scope;
use crate::event::{Day, Event, PAGE_VIEW};
use crate::site::{SiteInfo, DEFAULT_SITE};
use crate::stats::{KeyVisitorCount, Period};

pub(super) const EVENTS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("events");
pub(super) const IDS: TableDefinition<&str, i64> = TableDefinition::new("event_ids");
/// (event_type, timestamp, event_id) → the funnel's fields: the embedded twin of MongoDB's
/// `(event_type, timestamp)` index, so a funnel reads only its step types.
pub(super) const BY_TYPE: TableDefinition<(&str, i64, &str), &[u8]> =
    TableDefinition::new("events_by_type");
/// The event log: commit-ordered sequence number → the event's key in [`EVENTS`]. The rollup
/// consumer reads it from its checkpoint on.
pub(super) const LOG: TableDefinition<u64, (i64, &str)> = TableDefinition::new("event_log");
/// The registry of sites: id → `SiteInfo` as JSON.
pub(super) const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
const FILE: &str = "events.redb";

#[derive(Clone)]
pub struct EmbeddedStore {
    pub(super) db: Arc<Database>,
}

pub(super) fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Embedded(e.to_string())
}

/// redb's page cache (its default is 1 GiB, which a busy collector filled: RSS passed 1 GB
/// at a million events). Pages beyond it are read from the file, through the OS page cache.
const CACHE_BYTES: usize = 64 << 20;

impl EmbeddedStore {
    pub async fn open(data_dir: PathBuf) -> Result<EmbeddedStore, StoreError> {
        blocking(move || {
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
            let path = data_dir.join(FILE);
            let db = Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&path)
                .map_err(|e| match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.clone()),
                    e => err(format!("cannot open {}: {e}", path.display())),
                })?;
            // Create the tables up front so that readers never meet a missing table.
            let tx = db.begin_write().map_err(err)?;
            tx.open_table(EVENTS).map_err(err)?;
            tx.open_table(IDS).map_err(err)?;
            tx.open_table(BY_TYPE).map_err(err)?;
            tx.open_table(LOG).map_err(err)?;
            tx.open_table(SITES).map_err(err)?;
            super::embedded_rollups::init(&tx)?;
            tx.commit().map_err(err)?;
            Ok(EmbeddedStore { db: Arc::new(db) })
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        blocking(move || db.begin_read().map(|_| ()).map_err(err)).await
    }

    /// Stores new events and appends them to the log, in one transaction: the log order is
    /// the commit order, so the consumer needs no safety lag here.
    pub async fn insert(&self, mut events: Vec<Event>) -> Result<InsertReport, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let mut report = InsertReport::default();
            let tx = db.begin_write().map_err(err)?;
            {
                let mut ids = tx.open_table(IDS).map_err(err)?;
                let mut table = tx.open_table(EVENTS).map_err(err)?;
                let mut by_type = tx.open_table(BY_TYPE).map_err(err)?;
                let mut log = tx.open_table(LOG).map_err(err)?;
                let mut seq = log.last().map_err(err)?.map_or(0, |(k, _)| k.value());
                let stamp = now_ms();
                for (i, e) in events.iter_mut().enumerate() {
                    if ids.get(e.event_id.as_str()).map_err(err)?.is_some() {
                        report.duplicates.push(i);
                        continue;
                    }
                    e.received_at = stamp;
                    if e.site.is_empty() {
                        e.site = DEFAULT_SITE.to_string();
                    }
                    seq += 1;
                    log.insert(seq, (e.timestamp, e.event_id.as_str()))
                        .map_err(err)?;
                    let bytes = serde_json::to_vec(e).map_err(err)?;
                    ids.insert(e.event_id.as_str(), e.timestamp).map_err(err)?;
                    table
                        .insert((e.timestamp, e.event_id.as_str()), bytes.as_slice())
                        .map_err(err)?;
                    let slim = serde_json::to_vec(&FunnelFields {
                        site: &e.site,
                        visitor: e.visitor.as_deref(),
                        page_url: e.page_url.as_deref(),
                        bot: e.bot.as_deref(),
                    })
                    .map_err(err)?;
                    by_type
                        .insert(
                            (e.event_type.as_str(), e.timestamp, e.event_id.as_str()),
                            slim.as_slice(),
                        )
                        .map_err(err)?;
                    report.inserted += 1;
                }
            }
            // redb commits durably (fsync) by default: an answer of "stored" survives a crash.
            tx.commit().map_err(err)?;
            Ok(report)
        })
        .await
    }

    pub(crate) async fn count_grouped(
        &self,
        p: Period,
        grouping: Grouping,
        scope: &Scope,
    ) -> Result<Vec<KeyVisitorCount>, StoreError> {
        /// Only the fields a grouping reads, so the scan skips the rest of each event.
        #[derive(Deserialize)]
        struct Slim {
            site: Option<String>,
            event_type: String,
            visitor: Option<String>,
            page_url: Option<String>,
            bot: Option<String>,
        }
        let db = self.db.clone();
        let scope = scope.clone();
        blocking(move || {
            let mut groups: HashMap<(String, Option<String>), u64> = HashMap::new();
            scan(&db, p.start_ms, p.end_ms, |bytes| {
                let e: Slim = serde_json::from_slice(bytes).map_err(err)?;
                if (e.bot.is_some() && !scope.include_bots)
                    || !of_site(e.site.as_deref(), &scope.site)
                {
                    return Ok(());
                }
                let key = match grouping {
                    Grouping::EventType => e.event_type,
                    Grouping::PageViews if e.event_type == PAGE_VIEW => {
                        e.page_url.unwrap_or_default()
                    }
                    Grouping::PageViews => return Ok(()),
                };
                *groups.entry((key, e.visitor)).or_default() += 1;
                Ok(())
            })?;
            Ok(groups
                .into_iter()
                .map(|((key, visitor), count)| KeyVisitorCount {
                    key,
                    visitor,
                    count,
                })
                .collect())
        })
        .await
    }

    pub async fn events_between(&self, since: Day, until: Day) -> Result<Vec<Event>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let mut out = Vec::new();
            let (start, end) = (since.start_millis(), until.start_millis() + 86_400_000);
            scan(&db, start, end, |bytes| {
                out.push(serde_json::from_slice(bytes).map_err(err)?);
                Ok(())
            })?;
            Ok(out)
        })
        .await
    }
}

impl EmbeddedStore {
    pub async fn activity_since(
        &self,
        site: String,
        since_ms: i64,
    ) -> Result<Vec<(i64, Option<String>, bool)>, StoreError> {
        #[derive(Deserialize)]
        struct Who {
            site: Option<String>,
            visitor: Option<String>,
            bot: Option<String>,
        }
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(EVENTS).map_err(err)?;
            let mut out = Vec::new();
            for row in table.range((since_ms, "")..).map_err(err)? {
                let (key, value) = row.map_err(err)?;
                let who: Who = serde_json::from_slice(value.value()).map_err(err)?;
                if !of_site(who.site.as_deref(), &site) {
                    continue;
                }
                out.push((key.value().0, who.visitor, who.bot.is_some()));
            }
            Ok(out)
        })
        .await
    }

    pub async fn events_of_types(
        &self,
        site: String,
        types: Vec<String>,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(BY_TYPE).map_err(err)?;
            let mut out = Vec::new();
            for ty in &types {
                let range = (ty.as_str(), since_ms, "")..(ty.as_str(), until_ms, "");
                for row in table.range(range).map_err(err)? {
                    let (key, value) = row.map_err(err)?;
                    let (_, timestamp, id) = key.value();
                    let f: OwnedFunnelFields =
                        serde_json::from_slice(value.value()).map_err(err)?;
                    if !of_site(f.site.as_deref(), &site) {
                        continue;
                    }
                    out.push(Event {
                        event_id: id.to_string(),
                        event_type: ty.clone(),
                        visitor: f.visitor,
                        page_url: f.page_url,
                        timestamp,
                        day: Day::from_millis(timestamp).unwrap_or_default(),
                        bot: f.bot,
                        ..Event::default()
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn events_after(
        &self,
        site: Option<String>,
        after: Option<(i64, String)>,
        until_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(EVENTS).map_err(err)?;
            let end = until_ms.unwrap_or(i64::MAX);
            let mut out = Vec::with_capacity(limit.min(10_000));
            let start = after
                .as_ref()
                .map_or((i64::MIN, ""), |(t, id)| (*t, id.as_str()));
            for row in table.range(start..(end, "")).map_err(err)? {
                let (key, value) = row.map_err(err)?;
                let (ts, id) = key.value();
                if after
                    .as_ref()
                    .is_some_and(|(t, a)| ts == *t && id == a.as_str())
                {
                    continue;
                }
                let e: Event = serde_json::from_slice(value.value()).map_err(err)?;
                if site.as_deref().is_some_and(|s| e.site_id() != s) {
                    continue;
                }
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}

#[derive(serde::Serialize)]
struct FunnelFields<'a> {
    site: &'a str,
    visitor: Option<&'a str>,
    page_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bot: Option<&'a str>,
}

#[derive(Deserialize)]
struct OwnedFunnelFields {
    site: Option<String>,
    visitor: Option<String>,
    page_url: Option<String>,
    bot: Option<String>,
}

/// Whether an event stored with `stored` as its site (none or empty: stored before sites) is
/// of `site`.
fn of_site(stored: Option<&str>, site: &str) -> bool {
    match stored {
        None | Some("") => site == DEFAULT_SITE,
        Some(s) => s == site,
    }
}

/// The registry's sites, by id.
pub(super) fn read_sites(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<SiteInfo>, StoreError> {
    let mut out = Vec::new();
    for row in t.iter().map_err(err)? {
        let (_, v) = row.map_err(err)?;
        out.push(serde_json::from_slice(v.value()).map_err(err)?);
    }
    Ok(out)
}

impl EmbeddedStore {
    pub async fn sites(&self) -> Result<Vec<SiteInfo>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            read_sites(&tx.open_table(SITES).map_err(err)?)
        })
        .await
    }

    pub async fn register_sites(&self, sites: Vec<SiteInfo>) -> Result<(), StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut t = tx.open_table(SITES).map_err(err)?;
                for s in &sites {
                    let bytes = serde_json::to_vec(s).map_err(err)?;
                    t.insert(s.id.as_str(), bytes.as_slice()).map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        })
        .await
    }
}

/// Calls `f` with every stored event with a timestamp in `start..end` (ms), in time order.
fn scan(
    db: &Database,
    start: i64,
    end: i64,
    mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tx = db.begin_read().map_err(err)?;
    let table = tx.open_table(EVENTS).map_err(err)?;
    for row in table.range((start, "")..(end, "")).map_err(err)? {
        let (_, value) = row.map_err(err)?;
        f(value.value())?;
    }
    Ok(())
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err(format!("worker stopped: {e}")))?
}
