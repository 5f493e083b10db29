//! The embedded store: a single redb file in the data directory, so the collector runs with no
//! database server. Events are keyed by (timestamp, event_id) for time-range scans, with a second
//! table of seen ids for exactly-once storage, and a log numbering events in commit order for the
//! rollup consumer (`embedded_rollups`). redb is synchronous, so every call runs on tokio's
//! blocking pool.

mod lifecycle;
mod rollups;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::Deserialize;

use crate::protocol::now_ms;
use crate::FunnelScan;
use crate::{InsertReport, StoreError};
use maidian_core::event::{Day, Event};
use maidian_core::site::{SiteInfo, DEFAULT_SITE};

pub(crate) const EVENTS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("events");
pub(crate) const IDS: TableDefinition<&str, i64> = TableDefinition::new("event_ids");
/// (event_type, timestamp, event_id) → the funnel's fields: the embedded twin of MongoDB's
/// `(event_type, timestamp)` index, so a funnel reads only its step types.
pub(crate) const BY_TYPE: TableDefinition<(&str, i64, &str), &[u8]> =
    TableDefinition::new("events_by_type");
/// The event log: commit-ordered sequence number → the event's key in [`EVENTS`]. The rollup
/// consumer reads it from its checkpoint on.
pub(crate) const LOG: TableDefinition<u64, (i64, &str)> = TableDefinition::new("event_log");
/// The registry of sites: id → `SiteInfo` as JSON.
pub(crate) const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
const FILE: &str = "events.redb";

#[derive(Clone)]
pub struct EmbeddedStore {
    pub(crate) db: Arc<Database>,
}

pub(crate) fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Embedded(e.into())
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
            crate::embedded::rollups::init(&tx)?;
            tx.open_table(crate::embedded::lifecycle::ERASING)
                .map_err(err)?;
            tx.commit().map_err(err)?;
            // An erasure interrupted after its rollups were taken back: its events go now.
            crate::embedded::lifecycle::finish_erasing(&db)?;
            Ok(EmbeddedStore { db: Arc::new(db) })
        })
        .await
    }

    pub async fn table_sizes(&self) -> Result<Vec<crate::TableSize>, StoreError> {
        use redb::{ReadableTableMetadata, TableHandle};
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let mut out = Vec::new();
            for handle in tx.list_tables().map_err(err)? {
                let name = handle.name().to_string();
                let table = tx.open_untyped_table(handle).map_err(err)?;
                let stats = table.stats().map_err(err)?;
                out.push(crate::TableSize {
                    name,
                    entries: table.len().map_err(err)?,
                    bytes: stats.stored_bytes() + stats.metadata_bytes(),
                });
            }
            Ok(out)
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
                    let slim = Slim {
                        site: Some(Cow::Borrowed(e.site.as_bytes())),
                        visitor: e.visitor.as_deref().map(|s| Cow::Borrowed(s.as_bytes())),
                        page_url: e.page_url.as_deref().map(|s| Cow::Borrowed(s.as_bytes())),
                        bot: e.bot.as_deref().map(|s| Cow::Borrowed(s.as_bytes())),
                    }
                    .encode();
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
    /// The site each of the stored events `ids` belongs to.
    pub async fn sites_of_ids(
        &self,
        ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        #[derive(Deserialize)]
        struct Site {
            #[serde(default)]
            site: String,
        }
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let known = tx.open_table(IDS).map_err(err)?;
            let events = tx.open_table(EVENTS).map_err(err)?;
            let mut out = std::collections::HashMap::new();
            for id in ids {
                let Some(ts) = known.get(id.as_str()).map_err(err)?.map(|v| v.value()) else {
                    continue;
                };
                if let Some(v) = events.get((ts, id.as_str())).map_err(err)? {
                    let s: Site = serde_json::from_slice(v.value()).map_err(err)?;
                    let site = match s.site.as_str() {
                        "" => DEFAULT_SITE.to_string(),
                        other => other.to_string(),
                    };
                    out.insert(id, site);
                }
            }
            Ok(out)
        })
        .await
    }

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
                if !of_site(who.site.as_deref().map(str::as_bytes), &site) {
                    continue;
                }
                out.push((key.value().0, who.visitor, who.bot.is_some()));
            }
            Ok(out)
        })
        .await
    }

    /// The funnel's step events: one range of [`BY_TYPE`] per step type, merged in
    /// (timestamp, event_id) order as they are read, so nothing is sorted or built but the hits.
    /// The period is cut into consecutive spans scanned on parallel threads (one read
    /// transaction), whose hits are then appended in order.
    pub async fn funnel_hits<S: FunnelScan>(
        &self,
        funnel: S,
        site: String,
        since_ms: i64,
        until_ms: i64,
        include_bots: bool,
    ) -> Result<S::Rows, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(BY_TYPE).map_err(err)?;
            let spans = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            let width = (until_ms - since_ms).max(0) / spans as i64;
            let bounds: Vec<i64> = (0..spans)
                .map(|i| since_ms + width * i as i64)
                .chain([until_ms])
                .collect();
            let types = funnel.types();
            let matchers: Vec<_> = types.iter().map(|ty| funnel.matcher(ty)).collect();
            let scan = |w: &[i64]| -> Result<S::Rows, StoreError> {
                let mut hits = S::Rows::default();
                let (from, until) = (w[0], w[1]);
                let mut ranges = types
                    .iter()
                    .map(|ty| table.range((ty.as_str(), from, "")..(ty.as_str(), until, "")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                // Each range's next row, with its timestamp.
                let mut heads: Vec<Option<Head>> = Vec::with_capacity(ranges.len());
                for range in &mut ranges {
                    heads.push(next_row(range)?);
                }
                while let Some(k) = earliest(&heads) {
                    let Some((timestamp, (_, value))) = heads[k].take() else {
                        break;
                    };
                    let slim = Slim::decode(value.value())?;
                    if of_site(slim.site.as_deref(), &site) && (include_bots || slim.bot.is_none())
                    {
                        let steps = S::steps(&matchers[k], slim.page_url.as_deref());
                        if let (Some(v), true) = (slim.visitor.as_deref(), steps != 0) {
                            S::push(&mut hits, v, timestamp, steps);
                        }
                    }
                    heads[k] = next_row(&mut ranges[k])?;
                }
                Ok(hits)
            };
            let parts: Vec<Result<S::Rows, StoreError>> = std::thread::scope(|s| {
                let threads: Vec<_> = bounds.windows(2).map(|w| s.spawn(|| scan(w))).collect();
                threads
                    .into_iter()
                    .map(|t| {
                        t.join()
                            .unwrap_or_else(|_| Err(err("a funnel scan thread panicked")))
                    })
                    .collect()
            });
            let mut hits = S::Rows::default();
            for part in parts {
                S::append(&mut hits, part?);
            }
            Ok(hits)
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

type TypeKey = (&'static str, i64, &'static str);
/// A row of a [`BY_TYPE`] range, with its timestamp.
type Head<'a> = (
    i64,
    (
        redb::AccessGuard<'a, TypeKey>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
);

/// The next row of a [`BY_TYPE`] range.
fn next_row<'a>(
    range: &mut redb::Range<'a, TypeKey, &'static [u8]>,
) -> Result<Option<Head<'a>>, StoreError> {
    Ok(match range.next() {
        Some(row) => {
            let (key, value) = row.map_err(err)?;
            Some((key.value().1, (key, value)))
        }
        None => None,
    })
}

/// Which of `heads` holds the earliest row in (timestamp, event_id) order.
fn earliest(heads: &[Option<Head>]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (k, head) in heads.iter().enumerate() {
        let Some((t, (key, _))) = head else { continue };
        let earlier = match best.and_then(|b| heads[b].as_ref()) {
            None => true,
            Some((bt, (bkey, _))) => t < bt || (t == bt && key.value().2 < bkey.value().2),
        };
        if earlier {
            best = Some(k);
        }
    }
    best
}

/// An event's entry in [`BY_TYPE`], what a funnel reads of it. Stored as the byte `1`, then
/// site, visitor, page URL and bot reason, each a little-endian u32 length (`u32::MAX`: none)
/// and its UTF-8.
/// Read as bytes: a funnel compares and hashes them, so the UTF-8 is not checked again.
struct Slim<'a> {
    site: Option<Cow<'a, [u8]>>,
    visitor: Option<Cow<'a, [u8]>>,
    page_url: Option<Cow<'a, [u8]>>,
    bot: Option<Cow<'a, [u8]>>,
}

impl<'a> Slim<'a> {
    fn encode(&self) -> Vec<u8> {
        let fields = [&self.site, &self.visitor, &self.page_url, &self.bot];
        let size = fields.iter().map(|f| 4 + f.as_ref().map_or(0, |s| s.len()));
        let mut out = Vec::with_capacity(1 + size.sum::<usize>());
        out.push(1);
        for f in fields {
            match f {
                Some(s) => {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s);
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        out
    }

    fn decode(bytes: &'a [u8]) -> Result<Slim<'a>, StoreError> {
        let bad = || err("a funnel index entry is malformed");
        let mut rest = bytes.strip_prefix(&[1]).ok_or_else(bad)?;
        let mut field = || -> Result<Option<Cow<'a, [u8]>>, StoreError> {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
            let len = u32::from_le_bytes(*len);
            if len == u32::MAX {
                rest = tail;
                return Ok(None);
            }
            let (s, tail) = tail.split_at_checked(len as usize).ok_or_else(bad)?;
            rest = tail;
            Ok(Some(Cow::Borrowed(s)))
        };
        Ok(Slim {
            site: field()?,
            visitor: field()?,
            page_url: field()?,
            bot: field()?,
        })
    }
}

/// Whether an event stored with `stored` as its site (none or empty: stored before sites) is
/// of `site`.
fn of_site(stored: Option<&[u8]>, site: &str) -> bool {
    match stored {
        None | Some(b"") => site == DEFAULT_SITE,
        Some(s) => s == site.as_bytes(),
    }
}

/// The registry's sites, by id.
pub(crate) fn read_sites(
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

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err(format!("worker stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn funnel_entries_round_trip_and_cut_entries_fail() {
        let slim = Slim {
            site: Some(Cow::Borrowed(b"shop")),
            visitor: Some(Cow::Borrowed("u:ünï".as_bytes())),
            page_url: None,
            bot: Some(Cow::Borrowed(b"")),
        };
        let bytes = slim.encode();
        let back = Slim::decode(&bytes).expect("decodes");
        assert_eq!(back.site.as_deref(), Some(&b"shop"[..]));
        assert_eq!(back.visitor.as_deref(), Some("u:ünï".as_bytes()));
        assert_eq!(back.page_url, None);
        assert_eq!(back.bot.as_deref(), Some(&b""[..]));
        for cut in 0..bytes.len() {
            assert!(Slim::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
