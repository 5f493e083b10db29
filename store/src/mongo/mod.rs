//! MongoDB backend: one append-only `events` collection, `_id` = `event_id`.
//!
//! Uses only what both MongoDB and FerretDB v1 serve: unordered `insert_many`, `find`, indexes
//! and `aggregate` with `$match`/`$group($sum)`. Folding groups into figures happens in Rust.
//! Rollups and their consumer are in `mongo_rollups`.

mod lifecycle;
mod rebuild;
mod rollups;

use std::collections::HashMap;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use mongodb::{Client, Collection, Database, IndexModel};

use crate::protocol::now_ms;
use crate::{InsertReport, MongoConfig, MongoTarget, StoreError};
use maidian_core::event::{Day, Event};
use maidian_core::site::{SiteInfo, DEFAULT_SITE};

const EVENTS: &str = "events";
pub(crate) const DUPLICATE_KEY: i32 = 11000;

pub struct MongoStore {
    pub(crate) db: Database,
    pub(crate) events: Collection<Document>,
    /// Set once the server has answered: whether it is MongoDB (not FerretDB), with the
    /// indexes made. Until then every call tries again, so a store opened while the server
    /// is down starts working when it comes up.
    ready: tokio::sync::OnceCell<bool>,
    /// Tests force the `applied` guard on or off whatever the server.
    forced_guard: Option<bool>,
}

impl MongoStore {
    /// A store for the server `config` names, without waiting for it: fails only on a bad
    /// configuration. Calls fail while the server is down and work once it is up.
    pub async fn connect_lazily(config: &MongoConfig) -> Result<MongoStore, StoreError> {
        let mut options = match &config.target {
            MongoTarget::Uri(uri) => ClientOptions::parse(uri).await?,
            MongoTarget::Host {
                host,
                port,
                username,
                password,
            } => {
                let mut o = ClientOptions::default();
                o.hosts = vec![ServerAddress::Tcp {
                    host: host.clone(),
                    port: Some(*port),
                }];
                if let Some(user) = username {
                    let mut cred = Credential::default();
                    cred.username = Some(user.clone());
                    cred.password = password.clone();
                    o.credential = Some(cred);
                }
                o
            }
        };
        options.app_name = Some("maidian".into());
        options.server_selection_timeout = Some(config.timeout);
        options.connect_timeout = Some(config.timeout);
        let client = Client::with_options(options)?;
        let db = client.database(&config.database);
        Ok(MongoStore {
            events: db.collection(EVENTS),
            db,
            ready: tokio::sync::OnceCell::new(),
            forced_guard: None,
        })
    }

    pub async fn table_sizes(&self) -> Result<Vec<crate::TableSize>, StoreError> {
        self.ready().await?;
        let mut out = Vec::new();
        for name in self.db.list_collection_names().await? {
            let stats = self.db.run_command(doc! { "collStats": &name }).await?;
            let number = |k: &str| count_of(stats.get(k));
            out.push(crate::TableSize {
                entries: number("count"),
                bytes: number("size") + number("totalIndexSize"),
                name,
            });
        }
        Ok(out)
    }

    /// See [`crate::Store::close`].
    pub async fn close(&self) {
        self.db.client().clone().shutdown().immediate(true).await;
    }

    /// Connects and waits for the server (its kind, the indexes): fails when it is down.
    pub async fn connect(config: &MongoConfig) -> Result<MongoStore, StoreError> {
        let store = MongoStore::connect_lazily(config).await?;
        store.ready_to_read().await?;
        Ok(store)
    }

    /// Once the server answers: learns whether it is MongoDB or FerretDB and makes the
    /// indexes; every call goes through here first.
    pub(crate) async fn ready(&self) -> Result<(), StoreError> {
        // Boxed: the driver's futures are large, and this one sits inside every call's.
        self.ready
            .get_or_try_init(|| {
                Box::pin(async {
                    let info = self
                        .db
                        .client()
                        .database("admin")
                        .run_command(doc! { "buildInfo": 1 })
                        .await?;
                    let mongodb = !info.contains_key("ferretdbVersion");
                    self.ensure_indexes(mongodb).await?;
                    Ok::<bool, StoreError>(mongodb)
                })
            })
            .await
            .map(|_| ())
    }

    /// Whether the server is MongoDB (not FerretDB), once it has answered.
    pub(crate) fn is_mongodb(&self) -> bool {
        self.ready.get().copied().unwrap_or(false)
    }

    /// Whether rollup upserts carry their `applied` guard in the filter: yes on MongoDB, no
    /// on FerretDB v1, which scans the whole collection for any filter but a lone `_id`.
    pub(crate) fn guarded(&self) -> bool {
        self.forced_guard
            .or_else(|| self.ready.get().copied())
            .unwrap_or(true)
    }

    /// The database's name.
    pub fn database_name(&self) -> String {
        self.db.name().to_string()
    }

    /// Forces rollup upserts to carry (`true`) or drop (`false`) their `applied` guard, whatever
    /// the server: lets tests on FerretDB exercise the path MongoDB takes.
    #[cfg(feature = "test-api")]
    pub fn set_guarded_updates(&mut self, guarded: bool) {
        self.forced_guard = Some(guarded);
    }

    /// One `createIndexes` per index: FerretDB v1 panics on a `createIndexes` of several
    /// indexes that already exist (seen with 1.24 on SQLite), and a restart does exactly that.
    async fn ensure_indexes(&self, mongodb: bool) -> Result<(), StoreError> {
        for model in index_models() {
            self.events.create_index(model).await?;
        }
        // The rollup consumer's log order. FerretDB v1 never reads through it (it scans for
        // any filter but a lone `_id`), so there it would only slow every insert.
        if mongodb {
            let log = IndexModel::builder()
                .keys(doc! { "received_at": 1, "_id": 1 })
                .build();
            self.events.create_index(log).await?;
        }
        Ok(())
    }

    pub async fn activity_since(
        &self,
        site: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, Option<String>, bool)>, StoreError> {
        self.ready().await?;
        let filter = doc! { "site": site_match(site), "timestamp": { "$gte": DateTime::from_millis(since_ms) } };
        let mut cursor = self
            .events
            .find(filter)
            .projection(doc! { "timestamp": 1, "visitor": 1, "bot": 1 })
            .await?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            out.push((
                opt_millis(&d, "timestamp").unwrap_or(0),
                opt_str(&d, "visitor"),
                d.contains_key("bot"),
            ));
        }
        Ok(out)
    }

    pub async fn events_of_types(
        &self,
        site: &str,
        types: &[String],
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        self.ready().await?;
        let filter = doc! {
            "site": site_match(site),
            "event_type": { "$in": types },
            "timestamp": { "$gte": DateTime::from_millis(since_ms), "$lt": DateTime::from_millis(until_ms) },
        };
        let projection = doc! {
            "event_type": 1, "visitor": 1, "page_url": 1, "timestamp": 1, "day": 1, "bot": 1,
        };
        let mut cursor = self.events.find(filter).projection(projection).await?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            let timestamp = opt_millis(&d, "timestamp").unwrap_or(0);
            out.push(Event {
                event_id: opt_str(&d, "_id").unwrap_or_default(),
                event_type: opt_str(&d, "event_type").unwrap_or_default(),
                visitor: opt_str(&d, "visitor"),
                page_url: opt_str(&d, "page_url"),
                timestamp,
                day: Day::from_millis(timestamp).unwrap_or_default(),
                bot: opt_str(&d, "bot"),
                ..Event::default()
            });
        }
        Ok(out)
    }

    pub async fn events_after(
        &self,
        site: Option<&str>,
        after: Option<(i64, String)>,
        until_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.ready().await?;
        let mut filter = match after {
            None => Document::new(),
            Some((ts, id)) => {
                let t = DateTime::from_millis(ts);
                doc! { "$or": [ { "timestamp": { "$gt": t } }, { "timestamp": t, "_id": { "$gt": id } } ] }
            }
        };
        if let Some(until) = until_ms {
            filter = doc! { "$and": [ filter, { "timestamp": { "$lt": DateTime::from_millis(until) } } ] };
        }
        if let Some(site) = site {
            filter.insert("site", site_match(site));
        }
        let mut cursor = self
            .events
            .find(filter)
            .sort(doc! { "timestamp": 1, "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await?;
        let mut out = Vec::with_capacity(limit.min(10_000));
        while let Some(d) = cursor.try_next().await? {
            out.push(doc_to_event(&d)?);
        }
        Ok(out)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        self.ready().await
    }

    /// Stamps `received_at` (the log order the rollup consumer reads in), raises the head mark
    /// to it, then inserts. The caller bounds the whole call's time, so that once the
    /// consumer's safety lag has passed, an event with this stamp has committed or never will.
    pub async fn insert(&self, events: &[Event]) -> Result<InsertReport, StoreError> {
        self.ready().await?;
        let stamp = now_ms();
        self.bump_head(stamp).await?;
        let docs: Vec<Document> = events
            .iter()
            .map(|e| {
                let mut d = event_to_doc(e);
                d.insert("received_at", DateTime::from_millis(stamp));
                d
            })
            .collect();
        match self.events.insert_many(docs).ordered(false).await {
            Ok(_) => Ok(InsertReport {
                inserted: events.len(),
                ..InsertReport::default()
            }),
            Err(err) => match *err.kind {
                ErrorKind::InsertMany(ref e) if e.write_concern_error.is_none() => {
                    let mut report = InsertReport::default();
                    for w in e.write_errors.iter().flatten() {
                        if w.code == DUPLICATE_KEY {
                            report.duplicates.push(w.index);
                        } else {
                            report.failed.push(w.index);
                        }
                    }
                    report.duplicates.sort_unstable();
                    report.failed.sort_unstable();
                    report.inserted = events.len() - report.duplicates.len() - report.failed.len();
                    if !report.failed.is_empty() {
                        tracing::error!(failed = report.failed.len(), error = %err, "mongodb refused events");
                    }
                    Ok(report)
                }
                _ => Err(err.into()),
            },
        }
    }

    /// The site each of the stored events `ids` belongs to. Looked up by `_id` (see
    /// `find_by_ids`: on FerretDB an `$in` scans the whole collection once per id, which made
    /// a resent batch of 500 events cost seconds).
    pub async fn sites_of_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for d in self.find_by_ids(self.events.name(), ids).await? {
            if let Some(id) = opt_str(&d, "_id") {
                let site = opt_str(&d, "site").unwrap_or_else(|| DEFAULT_SITE.to_string());
                out.insert(id, site);
            }
        }
        Ok(out)
    }

    pub async fn events_between(&self, since: Day, until: Day) -> Result<Vec<Event>, StoreError> {
        self.events_where(day_range(since, until)).await
    }

    /// Every stored event matching `filter`, whole, in time order.
    pub(crate) async fn events_where(&self, filter: Document) -> Result<Vec<Event>, StoreError> {
        self.ready().await?;
        let mut cursor = self
            .events
            .find(filter)
            .sort(doc! { "timestamp": 1, "_id": 1 })
            .await?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            out.push(doc_to_event(&d)?);
        }
        Ok(out)
    }

    /// The registry of sites (collection `sites`).
    pub async fn sites(&self) -> Result<Vec<SiteInfo>, StoreError> {
        self.ready().await?;
        let mut cursor = self
            .db
            .collection::<Document>(SITES)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            out.push(SiteInfo {
                id: opt_str(&d, "_id").unwrap_or_default(),
                name: opt_str(&d, "name").unwrap_or_default(),
                timezone: opt_str(&d, "timezone").unwrap_or_else(|| "UTC".into()),
                earlier: match d.get("earlier") {
                    Some(b) => mongodb::bson::from_bson(b.clone()).map_err(registry_err)?,
                    None => Vec::new(),
                },
            });
        }
        Ok(out)
    }

    /// Upserts `sites` into the registry, one statement each.
    pub async fn register_sites(&self, sites: &[SiteInfo]) -> Result<(), StoreError> {
        self.ready().await?;
        let coll = self.db.collection::<Document>(SITES);
        for s in sites {
            coll.update_one(
                doc! { "_id": &s.id },
                doc! { "$set": {
                    "name": &s.name,
                    "timezone": &s.timezone,
                    "earlier": mongodb::bson::to_bson(&s.earlier).map_err(registry_err)?,
                } },
            )
            .upsert(true)
            .await?;
        }
        Ok(())
    }
}

const SITES: &str = "sites";

fn registry_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("site registry: {e}"))
}

/// Matches the events of `site`; the default site's include those stored before sites
/// existed (no `site` field).
pub(crate) fn site_match(site: &str) -> Bson {
    if site == DEFAULT_SITE {
        Bson::Document(doc! { "$in": [DEFAULT_SITE, Bson::Null] })
    } else {
        Bson::String(site.to_string())
    }
}

/// The indexes of the `events` collection (public so benchmarks measure the same write cost):
/// every query names a site and a time range, the funnel also its event types.
pub fn index_models() -> Vec<IndexModel> {
    [
        doc! { "site": 1, "timestamp": 1 },
        doc! { "site": 1, "event_type": 1, "timestamp": 1 },
    ]
    .into_iter()
    .map(|keys| IndexModel::builder().keys(keys).build())
    .collect()
}

fn day_range(since: Day, until: Day) -> Document {
    doc! { "day": { "$gte": since.to_string(), "$lte": until.to_string() } }
}

fn count_of(v: Option<&Bson>) -> u64 {
    match v {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) if *n >= 0.0 => *n as u64,
        _ => 0,
    }
}

fn opt_str(d: &Document, key: &str) -> Option<String> {
    match d.get(key) {
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn opt_f64(d: &Document, key: &str) -> Option<f64> {
    match d.get(key) {
        Some(Bson::Double(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(f64::from(*n)),
        Some(Bson::Int64(n)) => Some(*n as f64),
        _ => None,
    }
}

fn opt_millis(d: &Document, key: &str) -> Option<i64> {
    match d.get(key) {
        Some(Bson::DateTime(t)) => Some(t.timestamp_millis()),
        _ => None,
    }
}

/// The stored shape of an event: absent optional fields are left out, times are BSON dates.
pub fn event_to_doc(e: &Event) -> Document {
    let mut d = doc! {
        "_id": &e.event_id,
        "site": e.site_id(),
        "event_type": &e.event_type,
        "timestamp": DateTime::from_millis(e.timestamp),
        "client_timestamp": DateTime::from_millis(e.client_timestamp),
        "received_at": DateTime::from_millis(e.received_at),
        "day": e.day.to_string(),
    };
    let strings = [
        ("user_id", &e.user_id),
        ("anonymous_id", &e.anonymous_id),
        ("session_id", &e.session_id),
        ("visitor", &e.visitor),
        ("page_view_id", &e.page_view_id),
        ("page_url", &e.page_url),
        ("page_title", &e.page_title),
        ("element_id", &e.element_id),
        ("element_class", &e.element_class),
        ("element_text", &e.element_text),
        ("referrer", &e.referrer),
        ("user_agent", &e.user_agent),
        ("screen_resolution", &e.screen_resolution),
        ("viewport_size", &e.viewport_size),
        ("utm_source", &e.utm_source),
        ("utm_medium", &e.utm_medium),
        ("utm_campaign", &e.utm_campaign),
        ("utm_term", &e.utm_term),
        ("utm_content", &e.utm_content),
        ("click_id", &e.click_id),
        ("source", &e.source),
        ("channel", &e.channel),
        ("bot", &e.bot),
    ];
    for (k, v) in strings {
        if let Some(v) = v {
            d.insert(k, v.as_str());
        }
    }
    for (k, v) in e.measures() {
        if let Some(v) = v {
            d.insert(k, v);
        }
    }
    if let Some(t) = e.exit_timestamp {
        d.insert("exit_timestamp", DateTime::from_millis(t));
    }
    if let Some(custom) = &e.custom_data {
        d.insert("custom_data", json_map_to_doc(custom));
    }
    d
}

fn json_to_bson(v: &serde_json::Value) -> Bson {
    use serde_json::Value;
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Value::Object(o) => Bson::Document(json_map_to_doc(o)),
    }
}

fn json_map_to_doc(m: &serde_json::Map<String, serde_json::Value>) -> Document {
    m.iter()
        .map(|(k, v)| (k.clone(), json_to_bson(v)))
        .collect()
}

fn bson_to_json(b: &Bson) -> serde_json::Value {
    use serde_json::Value;
    match b {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(n) => Value::from(*n),
        Bson::Int64(n) => Value::from(*n),
        Bson::Double(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(a) => Value::Array(a.iter().map(bson_to_json).collect()),
        Bson::Document(d) => Value::Object(doc_to_json_map(d)),
        other => Value::String(other.to_string()),
    }
}

fn doc_to_json_map(d: &Document) -> serde_json::Map<String, serde_json::Value> {
    d.iter()
        .map(|(k, v)| (k.clone(), bson_to_json(v)))
        .collect()
}

/// Reads back what [`event_to_doc`] wrote.
pub fn doc_to_event(d: &Document) -> Result<Event, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("event without {what}"));
    let timestamp = opt_millis(d, "timestamp").ok_or_else(|| corrupt("timestamp"))?;
    Ok(Event {
        event_id: opt_str(d, "_id").ok_or_else(|| corrupt("_id"))?,
        site: opt_str(d, "site").unwrap_or_else(|| DEFAULT_SITE.to_string()),
        event_type: opt_str(d, "event_type").ok_or_else(|| corrupt("event_type"))?,
        user_id: opt_str(d, "user_id"),
        anonymous_id: opt_str(d, "anonymous_id"),
        session_id: opt_str(d, "session_id"),
        visitor: opt_str(d, "visitor"),
        page_view_id: opt_str(d, "page_view_id"),
        page_url: opt_str(d, "page_url"),
        page_title: opt_str(d, "page_title"),
        element_id: opt_str(d, "element_id"),
        element_class: opt_str(d, "element_class"),
        element_text: opt_str(d, "element_text"),
        x_position: opt_f64(d, "x_position"),
        y_position: opt_f64(d, "y_position"),
        scroll_depth: opt_f64(d, "scroll_depth"),
        referrer: opt_str(d, "referrer"),
        user_agent: opt_str(d, "user_agent"),
        screen_resolution: opt_str(d, "screen_resolution"),
        viewport_size: opt_str(d, "viewport_size"),
        duration: opt_f64(d, "duration"),
        load_time: opt_f64(d, "load_time"),
        lcp: opt_f64(d, "lcp"),
        fcp: opt_f64(d, "fcp"),
        ttfb: opt_f64(d, "ttfb"),
        inp: opt_f64(d, "inp"),
        cls: opt_f64(d, "cls"),
        timestamp,
        client_timestamp: opt_millis(d, "client_timestamp").unwrap_or(timestamp),
        received_at: opt_millis(d, "received_at").unwrap_or(timestamp),
        exit_timestamp: opt_millis(d, "exit_timestamp"),
        day: opt_str(d, "day")
            .and_then(|s| Day::parse(&s))
            .ok_or_else(|| corrupt("day"))?,
        custom_data: match d.get("custom_data") {
            Some(Bson::Document(c)) => Some(doc_to_json_map(c)),
            _ => None,
        },
        utm_source: opt_str(d, "utm_source"),
        utm_medium: opt_str(d, "utm_medium"),
        utm_campaign: opt_str(d, "utm_campaign"),
        utm_term: opt_str(d, "utm_term"),
        utm_content: opt_str(d, "utm_content"),
        click_id: opt_str(d, "click_id"),
        source: opt_str(d, "source"),
        channel: opt_str(d, "channel"),
        bot: opt_str(d, "bot"),
    })
}
