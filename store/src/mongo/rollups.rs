//! The rollup consumer on MongoDB: checkpoint + lease document, idempotent chunk updates,
//! generations for gap-free rebuilds. The protocol is described in [`crate::consumer`].
//!
//! Collections: `rollup_state` holds the `consumer` document (lease, live cursor, a rebuilt
//! generation catching up, retired generations) and the `head` document (the newest
//! `received_at` any writer stamped, raised *before* each insert). Rollups of generation `g`
//! live in `<rollup>_g<g>`; readers look the live generation up on every query.
//!
//! Only what FerretDB v1 serves: `findAndModify`, `update` with `$set`/`$inc`/`$min`/`$max`
//! upserts (at most 50 statements a command), `find` with sort and limit. FerretDB v1 stops an
//! unordered `update` at its first write error and does not report the rest, so after an error
//! the statements behind it are sent again (harmless: they are idempotent).

use std::collections::HashSet;
use std::time::Instant;

use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Bson, DateTime, Document};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use crate::mongo::{doc_to_event, MongoStore, DUPLICATE_KEY};
use crate::protocol::{now_ms, ConsumerConfig, RollupStatus, Step};
use crate::reads::Reads;
use crate::{RollupDoc, StoreError};
use maidian_core::bitmap::Numbers;
use maidian_core::event::Event;
use maidian_core::rollup::{self, Change, Delta, Field, Known, Value};
use maidian_core::site::Zones;

pub(crate) const STATE: &str = "rollup_state";
pub(crate) const CONSUMER: &str = "consumer";
/// The rebuild's own document: which generation `rollups rebuild` is building, its heartbeat,
/// and the cursor it hands over. FerretDB v1 (SQLite) applies an update as a read and a later
/// write outside any transaction, so two processes updating one document can undo each
/// other's change; the consumer document is therefore written by the lease holder only, and
/// the rebuild writes this one (the lease holder clears it when it takes the hand-over).
pub(crate) const REBUILD: &str = "rebuild";
pub(crate) const HEAD: &str = "head";
/// How long a replaced generation is kept for readers that looked the old one up.
pub(crate) const RETIRE_GRACE_MS: i64 = 10_000;
/// A rebuild that has not reported progress for this long is taken as dead.
pub(crate) const REBUILD_STALE_MS: i64 = 120_000;
/// Statements per `update` command. FerretDB v1.24 (SQLite) hangs on one `update` command
/// that modifies 100 or more existing documents (80 pass, 100 never answer); 50 is safe and
/// already amortises the round trip.
const ROLLUP_CHUNK: usize = 50;

/// A position in the event log and the chunks applied up to it, for one generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub(crate) generation: i64,
    /// `(received_at, _id)` of the last event rolled up.
    pub(crate) pos_t: i64,
    pub(crate) pos_id: String,
    /// Number of the last chunk applied.
    pub(crate) chunk: i64,
    /// Events rolled up so far.
    pub(crate) events: i64,
    /// A chunk being applied: its number and last event. A retry applies exactly it.
    #[serde(default)]
    pub(crate) pending: Option<Pending>,
    /// When the generation began: events received earlier count in the zones of that moment
    /// (`maidian_core::site::Zones::rolled_day`). 0 for the first generation.
    #[serde(default)]
    pub(crate) zones_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) chunk: i64,
    pub(crate) to_t: i64,
    pub(crate) to_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Retired {
    pub(crate) generation: i64,
    pub(crate) at: i64,
}

/// The [`REBUILD`] document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Rebuild {
    #[serde(rename = "_id")]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) building: Option<i64>,
    #[serde(default)]
    pub(crate) building_at: i64,
    /// The built generation's cursor, for the lease holder to catch up and switch to.
    #[serde(default)]
    pub(crate) handed: Option<Cursor>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(rename = "_id")]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) owner: String,
    #[serde(default)]
    pub(crate) expires: i64,
    pub(crate) live: Cursor,
    /// A rebuilt generation handed over by `rollups rebuild`, catching up with `live`.
    #[serde(default)]
    pub(crate) next: Option<Cursor>,
    #[serde(default)]
    pub(crate) retired: Vec<Retired>,
    /// Every event with `received_at <= clear_to` is rolled up into `live`.
    #[serde(default)]
    pub(crate) clear_to: i64,
    #[serde(default)]
    pub(crate) created_at: i64,
    /// The rollup format the live generation holds ([`FORMAT`]; 0 before sites).
    #[serde(default)]
    pub(crate) format: i64,
    /// Raw events older than this (ms) were deleted by retention (`[retention] raw_days`).
    #[serde(default)]
    pub(crate) expired_before: i64,
}

/// The rollup format ([`rollup::FORMAT`]). A database with rollups of another format gets a
/// fresh generation rolled up from the start of the log (the old one is retired): figures fill
/// up again as the consumer catches up ([`crate::refuse_other_format`]).
pub(crate) const FORMAT: i64 = rollup::FORMAT as i64;

impl Cursor {
    pub(crate) fn pos(&self) -> (i64, &str) {
        (self.pos_t, self.pos_id.as_str())
    }

    /// This cursor after applying `n` events ending at `(to_t, to_id)` as chunk `chunk`.
    pub(crate) fn advanced(&self, chunk: i64, to_t: i64, to_id: &str, n: usize) -> Cursor {
        Cursor {
            generation: self.generation,
            pos_t: to_t,
            pos_id: to_id.to_string(),
            chunk,
            events: self.events + n as i64,
            pending: None,
            zones_at: self.zones_at,
        }
    }
}

/// Which cursor of the state document a chunk belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Live,
    Next,
}

impl Which {
    fn field(self) -> &'static str {
        match self {
            Which::Live => "live",
            Which::Next => "next",
        }
    }
}

pub(crate) fn format_of(st: &State) -> u32 {
    u32::try_from(st.format).unwrap_or(0)
}

pub(crate) fn gen_name(rollup: &str, generation: i64) -> String {
    format!("{rollup}_g{generation}")
}

pub(crate) fn to_bson<T: Serialize>(v: &T) -> Result<Bson, StoreError> {
    bson::to_bson(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_state(d: Document) -> Result<State, StoreError> {
    bson::from_document(d).map_err(|e| StoreError::Corrupt(format!("rollup state: {e}")))
}

impl MongoStore {
    pub(crate) fn state(&self) -> mongodb::Collection<Document> {
        self.db.collection(STATE)
    }

    pub(crate) async fn read_state(&self) -> Result<Option<State>, StoreError> {
        let d = self.state().find_one(doc! { "_id": CONSUMER }).await?;
        d.map(parse_state).transpose()
    }

    /// The state document, which must exist by now.
    /// Once the server answers ([`MongoStore::ready`]), whether its rollups can be read
    /// ([`crate::refuse_other_format`]).
    pub(crate) async fn ready_to_read(&self) -> Result<(), StoreError> {
        self.ready().await?;
        self.check_format().await
    }

    /// [`crate::refuse_other_format`] for the stored rollups, if any.
    async fn check_format(&self) -> Result<(), StoreError> {
        match self.read_state().await? {
            Some(st) if st.format != FORMAT => {
                crate::refuse_other_format(format_of(&st), st.expired_before)
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn existing_state(&self) -> Result<State, StoreError> {
        self.read_state()
            .await?
            .ok_or_else(|| StoreError::Corrupt("rollup state vanished".into()))
    }

    /// Creates the state document (generation 1, nothing consumed) unless it exists, dropping
    /// rollup collections of the design before generations. Returns the current state.
    pub(crate) async fn ensure_state(
        &self,
        owner: &str,
        expires: i64,
    ) -> Result<State, StoreError> {
        if let Some(st) = self.read_state().await? {
            return Ok(st);
        }
        for name in rollup::all() {
            self.db.collection::<Document>(name).drop().await?;
        }
        self.ensure_gen_indexes(1).await?;
        let st = State {
            id: CONSUMER.into(),
            owner: owner.into(),
            expires,
            live: Cursor {
                generation: 1,
                ..Cursor::default()
            },
            created_at: now_ms(),
            format: FORMAT,
            ..State::default()
        };
        let d = bson::to_document(&st).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self.state().insert_one(d).await {
            Ok(_) => Ok(st),
            Err(e) if is_duplicate(&e) => self.existing_state().await,
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn ensure_gen_indexes(&self, generation: i64) -> Result<(), StoreError> {
        // Every rollup read by day is indexed by (site, its day field).
        let by_day: Vec<(&str, Field)> = rollup::CATALOG
            .iter()
            .filter_map(|s| Some((s.names(), s.day?)))
            .flat_map(|(names, field)| names.map(move |n| (n, field)))
            .collect();
        for (name, field) in by_day {
            let model = mongodb::IndexModel::builder()
                .keys(doc! { Field::Site.as_str(): 1, field.as_str(): 1 })
                .build();
            self.db
                .collection::<Document>(&gen_name(name, generation))
                .create_index(model)
                .await?;
        }
        Ok(())
    }

    /// Takes the lease if it is free or expired, or renews it; `None` when another process
    /// holds it.
    async fn take_lease(
        &self,
        cfg: &ConsumerConfig,
        now: i64,
    ) -> Result<Option<State>, StoreError> {
        let expires = now + cfg.lease_ttl.as_millis() as i64;
        let filter = doc! {
            "_id": CONSUMER,
            "$or": [ { "owner": &cfg.owner }, { "expires": { "$lt": now } } ],
        };
        let update = doc! { "$set": { "owner": &cfg.owner, "expires": expires } };
        let taken = self
            .state()
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await?;
        match taken {
            Some(d) => parse_state(d).map(Some),
            None => {
                let st = self.ensure_state(&cfg.owner, expires).await?;
                Ok((st.owner == cfg.owner).then_some(st))
            }
        }
    }

    /// Renews the lease, or fails with [`StoreError::LeaseLost`] if another process took it.
    async fn renew(&self, cfg: &ConsumerConfig) -> Result<(), StoreError> {
        let expires = now_ms() + cfg.lease_ttl.as_millis() as i64;
        self.set_state(&cfg.owner, doc! { "expires": expires })
            .await
    }

    /// Renews the lease every quarter of its TTL while a step runs (the consumer runs this
    /// beside each step): a step's reads can outlast the TTL, and without it another
    /// collector would take the chunk over and the two would take it from each other for
    /// ever. Returns once the lease is another process's; other errors (the database down)
    /// are the step's to report.
    pub async fn heartbeat(&self, cfg: &ConsumerConfig) -> StoreError {
        loop {
            tokio::time::sleep(cfg.lease_ttl / 4).await;
            if let Err(StoreError::LeaseLost) = self.renew(cfg).await {
                return StoreError::LeaseLost;
            }
        }
    }

    /// Called before each write of a run of writes under the lease (`held`): renews it
    /// before the first and whenever a quarter of its TTL has passed since, so no write goes
    /// out on a lease that may have lapsed. The reads before the first write (the delta, the
    /// stored bitmaps) can take longer than the TTL; another collector may have taken the
    /// chunk over meanwhile, and two writers would apply its counts twice.
    async fn keep(&self, held: &mut Held<'_>) -> Result<(), StoreError> {
        let Some(cfg) = held.cfg else {
            return Ok(());
        };
        if held
            .renewed
            .is_none_or(|at| at.elapsed() > cfg.lease_ttl / 4)
        {
            let at = Instant::now();
            self.renew(cfg).await?;
            held.renewed = Some(at);
        }
        Ok(())
    }

    /// `$set`s fields of the state document if `owner` still holds the lease.
    pub(crate) async fn set_state(&self, owner: &str, set: Document) -> Result<(), StoreError> {
        let r = self
            .state()
            .update_one(
                doc! { "_id": CONSUMER, "owner": owner },
                doc! { "$set": set },
            )
            .await?;
        if r.matched_count == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    pub async fn release_lease(&self, owner: &str) -> Result<(), StoreError> {
        self.ready().await?;
        self.state()
            .update_one(
                doc! { "_id": CONSUMER, "owner": owner },
                doc! { "$set": { "expires": 0_i64 } },
            )
            .await?;
        Ok(())
    }

    /// Raises the head mark to `stamp` before an insert with that `received_at`: the head is
    /// never below a committed event, so a consumer that sees `head <= clear_to` may skip a scan.
    pub(crate) async fn bump_head(&self, stamp: i64) -> Result<(), StoreError> {
        let update = doc! { "$max": { "at": stamp } };
        for _ in 0..3 {
            match self
                .state()
                .update_one(doc! { "_id": HEAD }, update.clone())
                .upsert(true)
                .await
            {
                Ok(_) => return Ok(()),
                // Two writers upserting the first head at once: the loser updates.
                Err(e) if is_duplicate(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Corrupt("head mark kept colliding".into()))
    }

    async fn head(&self) -> Result<Option<i64>, StoreError> {
        let d = self.state().find_one(doc! { "_id": HEAD }).await?;
        Ok(d.and_then(|d| match d.get("at") {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        }))
    }

    /// Events after `after` (exclusive) up to `upto` (inclusive), in log order, with only the
    /// fields rollups read.
    pub(crate) async fn read_log(
        &self,
        after: (i64, &str),
        upto: Option<(i64, &str)>,
        limit: Option<usize>,
    ) -> Result<Vec<Event>, StoreError> {
        let (t, id) = after;
        let t = DateTime::from_millis(t);
        let mut filter = doc! { "$or": [
            { "received_at": { "$gt": t } },
            { "received_at": t, "_id": { "$gt": id } },
        ] };
        if let Some((u, uid)) = upto {
            let u = DateTime::from_millis(u);
            filter = doc! { "$and": [ filter, { "$or": [
                { "received_at": { "$lt": u } },
                { "received_at": u, "_id": { "$lte": uid } },
            ] } ] };
        }
        let projection = doc! {
            "event_type": 1, "visitor": 1, "session_id": 1, "page_url": 1, "referrer": 1,
            "user_agent": 1, "page_view_id": 1, "duration": 1, "timestamp": 1, "day": 1,
            "received_at": 1, "bot": 1, "channel": 1, "source": 1, "utm_medium": 1,
            "utm_campaign": 1, "site": 1, "lcp": 1, "fcp": 1, "ttfb": 1, "inp": 1, "cls": 1,
        };
        let mut find = self
            .events
            .find(filter)
            .sort(doc! { "received_at": 1, "_id": 1 })
            .projection(projection);
        if let Some(n) = limit {
            find = find.limit(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut cursor = find.await?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            out.push(doc_to_event(&d)?);
        }
        Ok(out)
    }

    /// Applies `delta` as chunk `chunk` of `generation`: each document at most once. With a
    /// lease (`Some(cfg)`), renews it before the first write and through a long apply
    /// ([`Self::keep`]); a rebuild's own chunks have none
    /// (the generation is not live yet, and a crashed rebuild is discarded).
    ///
    /// On MongoDB every upsert carries the guard `applied: {$lt: chunk}`. FerretDB v1 runs any
    /// filter other than a lone `_id` as a scan of the whole collection, so there the guard
    /// would make each upsert cost a scan: a fresh chunk upserts by `_id` alone (the lease
    /// keeps other consumers out, and is checked before every command), and a chunk being
    /// finished after an interruption first reads, in one scan per collection, which
    /// documents already carry it and skips them.
    pub(crate) async fn apply_chunk(
        &self,
        lease: Option<&ConsumerConfig>,
        generation: i64,
        chunk: i64,
        delta: &Delta,
        resumed: bool,
    ) -> Result<(), StoreError> {
        let mut held = Held::new(lease);
        // State last: the changes that depend on the state documents (first-day moves, time
        // on page) were settled against them as they stand before this chunk, so those change
        // after everything else (a retry settles alike).
        let mut order: Vec<_> = delta.changes.iter().collect();
        order.sort_by_key(|(name, _)| rollup::apply_level(name));
        for (name, changes) in order {
            let coll = gen_name(name, generation);
            let done = if !self.guarded() && resumed {
                self.applied_keys(&coll, chunk).await?
            } else {
                HashSet::new()
            };
            let todo: Vec<(&String, &Change)> = changes
                .iter()
                .filter(|(key, _)| !done.contains(key.as_str()))
                .collect();
            let bitmaps = self.bitmaps_after(&coll, &todo).await?;
            let mut statements: Vec<Document> = Vec::with_capacity(todo.len());
            for (key, change) in todo {
                let q = if self.guarded() {
                    doc! { "_id": key, "applied": { "$lt": chunk } }
                } else {
                    doc! { "_id": key }
                };
                let mut u = update_doc(change, chunk);
                if let Some(after) = bitmaps.get(key.as_str()) {
                    if after.empty {
                        // Emptied by an erasure or a first-day move: a rebuild would not
                        // have it.
                        self.keep(&mut held).await?;
                        self.db.collection::<Document>(&coll).delete_one(q).await?;
                        continue;
                    }
                    if let Ok(set) = u.get_document_mut("$set") {
                        for (f, bytes) in &after.bits {
                            set.insert(f.as_str(), bson_of(&Value::Bits(bytes.clone())));
                        }
                    }
                }
                statements.push(doc! { "q": q, "u": u, "upsert": true });
            }
            for part in statements.chunks(ROLLUP_CHUNK) {
                self.keep(&mut held).await?;
                self.update_idempotent(&coll, part).await?;
            }
            // A counter taken down to zero (an erasure, a page view's time moving to another
            // day or page): a rebuild would not have the document.
            let lowered: Vec<&String> = changes
                .iter()
                .filter(|(_, c)| c.bits.is_empty() && c.inc.iter().any(|(_, n)| *n < 0))
                .map(|(k, _)| k)
                .collect();
            let counter = maidian_core::lifecycle::counter(name).as_str();
            for part in lowered.chunks(KEYS_PER_FIND) {
                self.keep(&mut held).await?;
                self.db
                    .collection::<Document>(&coll)
                    .delete_many(doc! { "_id": { "$in": part }, counter: { "$lte": 0 } })
                    .await?;
            }
        }
        Ok(())
    }

    /// For the changes among `todo` that touch bitmaps: each document's bitmaps once the
    /// change is applied to what is stored, and whether it is then empty. The consumer is
    /// the only writer of its generation (the lease), so reading first is safe; setting and
    /// clearing bits is idempotent, so a retry writes the same bytes.
    async fn bitmaps_after(
        &self,
        coll: &str,
        todo: &[(&String, &Change)],
    ) -> Result<std::collections::HashMap<String, After>, StoreError> {
        let keys: Vec<&String> = todo
            .iter()
            .filter(|(_, c)| !c.bits.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let mut stored = std::collections::HashMap::new();
        for d in self.find_by_ids(coll, &keys).await? {
            let doc = rollup_doc(&d);
            stored.insert(doc.id, doc.fields);
        }
        let mut out = std::collections::HashMap::with_capacity(keys.len());
        for (key, change) in todo.iter().filter(|(_, c)| !c.bits.is_empty()) {
            let mut fields = stored.remove(key.as_str()).unwrap_or_default();
            change.apply_counts(&mut fields);
            let mut bits = Vec::with_capacity(change.bits.len());
            for (f, b) in &change.bits {
                let old = match fields.get(f) {
                    Some(Value::Bits(v)) => maidian_core::bitmap::decode(v),
                    _ => Default::default(),
                };
                let bytes = maidian_core::bitmap::encode(&b.apply(&old));
                fields.insert(*f, Value::Bits(bytes.clone()));
                bits.push((*f, bytes));
            }
            let empty = rollup::is_empty(&fields);
            out.insert((*key).clone(), After { bits, empty });
        }
        Ok(out)
    }

    /// The numbers of visitors `keys` (`site|visitor`) in the dictionary; with `assign`,
    /// those without one get new numbers of their site, in the order given. Numbers are
    /// taken from a per-site counter (`findAndModify`) before the entries are inserted, so
    /// two processes numbering at once (the consumer and a rebuild) never give one number
    /// twice; when both insert the same visitor, the first entry wins and the other's
    /// number is left unused.
    pub(crate) async fn numbers_of(
        &self,
        keys: &[String],
        assign: bool,
    ) -> Result<Numbers, StoreError> {
        let dict = self.db.collection::<Document>(NUMBERS);
        let mut out = self.read_numbers(keys).await?;
        let missing: Vec<&String> = keys.iter().filter(|k| !out.contains_key(*k)).collect();
        if !assign || missing.is_empty() {
            return Ok(out);
        }
        let mut by_site: Vec<(&str, Vec<&String>)> = Vec::new();
        for k in missing {
            let site = k.split('|').next().unwrap_or_default();
            match by_site.iter_mut().find(|(s, _)| *s == site) {
                Some((_, v)) => v.push(k),
                None => by_site.push((site, vec![k])),
            }
        }
        let mut raced = Vec::new();
        for (site, new) in by_site {
            let n = i64::try_from(new.len()).unwrap_or(i64::MAX);
            let counter = self
                .db
                .collection::<Document>(NEXT_NUMBER)
                .find_one_and_update(doc! { "_id": site }, doc! { "$inc": { "next": n } })
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await?
                .and_then(|d| d.get_i64("next").ok())
                .unwrap_or(n);
            let first = counter - n;
            let mut docs = Vec::with_capacity(new.len());
            for (i, k) in new.iter().enumerate() {
                let number = u32::try_from(first + i as i64).map_err(|_| {
                    StoreError::Corrupt(format!("site {site} has numbered 2^32 visitors"))
                })?;
                docs.push(doc! { "_id": k.as_str(), "n": i64::from(number) });
                out.insert((*k).clone(), number);
            }
            for part in docs.chunks(KEYS_PER_FIND) {
                if dict.insert_many(part).ordered(false).await.is_ok() {
                    continue;
                }
                // Some entry was there already (or the batch failed part way): one by one.
                for d in part {
                    match dict.insert_one(d).await {
                        Ok(_) => {}
                        Err(e) if is_duplicate(&e) => {
                            raced.push(d.get_str("_id").unwrap_or_default().to_string());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        // Another process numbered these first: theirs stand.
        out.extend(self.read_numbers(&raced).await?);
        Ok(out)
    }

    async fn read_numbers(&self, keys: &[String]) -> Result<Numbers, StoreError> {
        let mut out = Numbers::with_capacity(keys.len());
        for d in self.find_by_ids(NUMBERS, keys).await? {
            let n = d.get_i64("n").ok().and_then(|n| u32::try_from(n).ok());
            if let (Ok(id), Some(n)) = (d.get_str("_id"), n) {
                out.insert(id.to_string(), n);
            }
        }
        Ok(out)
    }

    /// The documents of `coll` whose `_id` is one of `keys`, looked up [`KEYS_PER_FIND`] at
    /// a time. FerretDB v1 pushes only a lone `_id` equality down to SQLite (an index lookup
    /// with the index our test server adds, see ARCHITECTURE.md) and runs an `$in` as a scan
    /// of the whole collection, comparing each document with every key, so there each key is
    /// its own lookup, a few in flight.
    pub(crate) async fn find_by_ids<K: AsRef<str>>(
        &self,
        coll: &str,
        keys: &[K],
    ) -> Result<Vec<Document>, StoreError> {
        if !self.is_mongodb() {
            use futures_util::stream::{self, StreamExt};
            let coll = self.db.collection::<Document>(coll);
            let lookups: Vec<_> = keys
                .iter()
                .map(|k| {
                    let (coll, id) = (coll.clone(), k.as_ref().to_string());
                    Box::pin(async move { coll.find_one(doc! { "_id": id }).await })
                })
                .collect();
            let found: Vec<Option<Document>> =
                stream::iter(lookups).buffered(16).try_collect().await?;
            return Ok(found.into_iter().flatten().collect());
        }
        let mut out = Vec::with_capacity(keys.len());
        for part in keys.chunks(KEYS_PER_FIND) {
            let ids: Vec<&str> = part.iter().map(AsRef::as_ref).collect();
            let mut cursor = self
                .db
                .collection::<Document>(coll)
                .find(doc! { "_id": { "$in": ids } })
                .await?;
            while let Some(d) = cursor.try_next().await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The delta that rolling `events` up into the generation of `cur` applies
    /// ([`crate::reads::delta_of`]), against the page index as it stood before chunk `chunk`.
    pub(crate) async fn delta_of(
        &self,
        (cur, chunk): (&Cursor, i64),
        cap: usize,
        events: &[Event],
        zones: &Zones,
    ) -> Result<Delta, StoreError> {
        let mut reads = GenReads {
            store: self,
            generation: cur.generation,
            before: Some(chunk),
        };
        crate::reads::delta_of(&mut reads, events, zones, cur.zones_at, cap).await
    }

    /// The pages with rows of their own on `days` in `generation`'s page index
    /// ([`rollup::PAGE_INDEX`]), leaving out those entered by chunk `before` or later (a chunk
    /// finished after an interruption decides as it did the first time).
    pub(crate) async fn page_index(
        &self,
        generation: i64,
        before: Option<i64>,
        days: &[rollup::IndexDay],
    ) -> Result<rollup::Admitted, StoreError> {
        let mut out = rollup::Admitted::new();
        for (index, site, day) in days {
            let from = rollup::site_key(site, &format!("{day}|"));
            let to = rollup::site_key(site, &format!("{day}}}"));
            let mut cursor = self
                .db
                .collection::<Document>(&gen_name(index, generation))
                .find(doc! { "_id": { "$gte": from, "$lt": to } })
                .projection(doc! { "page_url": 1, "applied": 1 })
                .await?;
            let pages = out.entry((*index, site.clone(), day.clone())).or_default();
            while let Some(d) = cursor.try_next().await? {
                let applied = match d.get("applied") {
                    Some(Bson::Int64(n)) => *n,
                    Some(Bson::Int32(n)) => i64::from(*n),
                    _ => 0,
                };
                if before.is_some_and(|c| applied >= c) {
                    continue;
                }
                if let Ok(page) = d.get_str("page_url") {
                    pages.insert(page.to_string());
                }
            }
        }
        Ok(out)
    }

    /// The stored documents `keys` of `generation` that exist.
    async fn known(
        &self,
        generation: i64,
        keys: Vec<(&'static str, String)>,
    ) -> Result<Known, StoreError> {
        let mut by_rollup: std::collections::HashMap<&'static str, Vec<String>> =
            std::collections::HashMap::new();
        for (name, key) in keys {
            by_rollup.entry(name).or_default().push(key);
        }
        let mut known = Known::new();
        for (name, keys) in by_rollup {
            for d in self.find_by_ids(&gen_name(name, generation), &keys).await? {
                let doc = rollup_doc(&d);
                known.insert((name, doc.id), doc.fields);
            }
        }
        Ok(known)
    }

    /// Keys of `coll` that already hold chunk `chunk` (or a later one).
    async fn applied_keys(&self, coll: &str, chunk: i64) -> Result<HashSet<String>, StoreError> {
        let mut cursor = self
            .db
            .collection::<Document>(coll)
            .find(doc! { "applied": { "$gte": chunk } })
            .projection(doc! { "_id": 1 })
            .await?;
        let mut out = HashSet::new();
        while let Some(d) = cursor.try_next().await? {
            if let Ok(id) = d.get_str("_id") {
                out.insert(id.to_string());
            }
        }
        Ok(out)
    }

    /// One `update` command of idempotent upserts; a duplicate key means "already applied".
    async fn update_idempotent(
        &self,
        coll: &str,
        statements: &[Document],
    ) -> Result<(), StoreError> {
        let mut rest = statements;
        while !rest.is_empty() {
            let reply = self
                .db
                .run_command(doc! { "update": coll, "updates": rest, "ordered": false })
                .await?;
            let Ok(errors) = reply.get_array("writeErrors") else {
                return Ok(());
            };
            let mut last = None;
            for err in errors.iter().filter_map(Bson::as_document) {
                let code = err.get_i32("code").unwrap_or(0);
                if code != DUPLICATE_KEY {
                    return Err(StoreError::Corrupt(format!(
                        "rollup update on {coll} failed: {err}"
                    )));
                }
                let index = err
                    .get_i32("index")
                    .ok()
                    .and_then(|i| usize::try_from(i).ok());
                last = last.max(index);
            }
            match last {
                // FerretDB v1 stops at the first error: resend what followed it.
                Some(i) if i < rest.len() => rest = &rest[i + 1..],
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Rolls `events` (the next ones after `cur`, at least one) up as one chunk of `which`:
    /// records the chunk first, then applies it and moves the cursor.
    pub(crate) async fn run_chunk(
        &self,
        cfg: &ConsumerConfig,
        which: Which,
        cur: &Cursor,
        events: &[Event],
        clear_to: Option<i64>,
    ) -> Result<(), StoreError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let p = Pending {
            chunk: cur.chunk + 1,
            to_t: last.received_at,
            to_id: last.event_id.clone(),
        };
        let mut pending = cur.clone();
        pending.pending = Some(p.clone());
        self.set_state(&cfg.owner, doc! { which.field(): to_bson(&pending)? })
            .await?;
        self.apply_and_commit(cfg, which, cur, &p, events, false, clear_to)
            .await
    }

    /// The time zones rollups count days in (the registry's).
    pub(crate) async fn zones(&self) -> Result<Zones, StoreError> {
        Ok(Zones::of(&self.sites().await?))
    }

    /// Applies the recorded chunk `p` (its `events`) and moves `which` past it, with
    /// `clear_to` when given. `resumed`: the chunk may be partly applied already.
    #[allow(clippy::too_many_arguments)]
    async fn apply_and_commit(
        &self,
        cfg: &ConsumerConfig,
        which: Which,
        cur: &Cursor,
        p: &Pending,
        events: &[Event],
        resumed: bool,
        clear_to: Option<i64>,
    ) -> Result<(), StoreError> {
        let delta = self
            .delta_of(
                (cur, p.chunk),
                cfg.max_pages_per_day,
                events,
                &self.zones().await?,
            )
            .await?;
        self.apply_chunk(Some(cfg), cur.generation, p.chunk, &delta, resumed)
            .await?;
        let done = cur.advanced(p.chunk, p.to_t, &p.to_id, events.len());
        let mut set = doc! { which.field(): to_bson(&done)? };
        if let Some(c) = clear_to {
            set.insert("clear_to", c);
        }
        self.set_state(&cfg.owner, set).await
    }

    /// Applies again, exactly, a chunk whose apply was interrupted.
    pub(crate) async fn finish_pending(
        &self,
        cfg: &ConsumerConfig,
        which: Which,
        cur: &Cursor,
        p: &Pending,
    ) -> Result<usize, StoreError> {
        let events = self
            .read_log(cur.pos(), Some((p.to_t, p.to_id.as_str())), None)
            .await?;
        self.apply_and_commit(cfg, which, cur, p, &events, true, None)
            .await?;
        tracing::info!(
            events = events.len(),
            chunk = p.chunk,
            "finished an interrupted rollup chunk"
        );
        Ok(events.len())
    }

    pub async fn rollup_step(&self, cfg: &ConsumerConfig) -> Result<Step, StoreError> {
        self.ready().await?;
        let now = now_ms();
        let Some(st) = self.take_lease(cfg, now).await? else {
            return Ok(Step::NotOwner);
        };
        self.drop_retired(cfg, &st, now).await?;
        if st.next.is_none() {
            if let Some(step) = self.take_handover(cfg, &st).await? {
                return Ok(step);
            }
        }
        // Another format is rolled up again from the log (`crate::refuse_other_format`).
        if st.format != FORMAT && st.next.is_none() && self.read_rebuild().await?.building.is_none()
        {
            return self.restart_in_new_format(cfg, &st, now).await;
        }
        if let Some(p) = &st.live.pending {
            return Ok(Step::Consumed(
                self.finish_pending(cfg, Which::Live, &st.live, p).await?,
            ));
        }
        if let Some(next) = &st.next {
            return self.step_next(cfg, &st, next).await;
        }
        if let Some(step) = self.forget_step(cfg, &st).await? {
            return Ok(step);
        }
        // Nothing stamped since everything was rolled up: no scan needed.
        if let Some(head) = self.head().await? {
            if head <= st.clear_to {
                return Ok(Step::Idle);
            }
        }
        let cut = now - cfg.safety_lag.as_millis() as i64;
        let read = self.read_limit(cfg);
        let mut events = self.read_log(st.live.pos(), None, Some(read + 1)).await?;
        let consumable = events.partition_point(|e| e.received_at <= cut);
        events.truncate(consumable);
        let clear_to = if events.len() > read {
            events.truncate(read);
            events.last().map_or(st.clear_to, |e| e.received_at - 1)
        } else {
            cut
        };
        if events.is_empty() {
            if clear_to > st.clear_to {
                self.set_state(&cfg.owner, doc! { "clear_to": clear_to })
                    .await?;
            }
            return Ok(Step::Idle);
        }
        self.run_chunk(cfg, Which::Live, &st.live, &events, Some(clear_to))
            .await?;
        Ok(Step::Consumed(events.len()))
    }

    /// Events per chunk. FerretDB v1 scans (and sorts) the whole `events` collection for every
    /// read, so there a chunk is ten times larger: one scan for ten times the events, and the
    /// repeated keys of a larger chunk merge into fewer upserts. MongoDB reads through the
    /// index.
    pub(crate) fn read_limit(&self, cfg: &ConsumerConfig) -> usize {
        let chunk = cfg.chunk_events.max(1);
        if self.guarded() {
            chunk
        } else {
            chunk * 10
        }
    }

    pub async fn rollup_status(&self) -> Result<RollupStatus, StoreError> {
        self.ready().await?;
        let Some(st) = self.read_state().await? else {
            return Ok(RollupStatus::default());
        };
        let head = self.head().await?.unwrap_or(0);
        let now = now_ms();
        let done_to = st.clear_to.max(st.live.pos_t);
        let lag_ms = if head <= done_to {
            0
        } else if done_to == 0 {
            now - st.created_at
        } else {
            head - done_to
        };
        Ok(RollupStatus {
            generation: st.live.generation,
            events: u64::try_from(st.live.events).unwrap_or(0),
            checkpoint_ms: st.live.pos_t,
            head_ms: head,
            lag_seconds: lag_ms.max(0) as f64 / 1000.0,
            owner: (st.expires > now && !st.owner.is_empty()).then_some(st.owner),
            lease_expires_ms: st.expires,
            rebuilding: self
                .read_rebuild()
                .await?
                .building
                .or(st.next.as_ref().map(|n| n.generation)),
        })
    }

    /// Hands each document of [`Store::rollup_fold`] to `add` as the cursor reads it.
    pub async fn rollup_fold<A>(
        &self,
        range: &crate::Range<'_>,
        mut acc: A,
        add: fn(&mut A, RollupDoc),
    ) -> Result<A, StoreError> {
        self.ready().await?;
        let Some(st) = self.read_state().await? else {
            return Ok(acc);
        };
        let site = range.site;
        let filter = doc! {
            Field::Site.as_str(): site,
            range.field.as_str(): { "$gte": range.since.to_string(), "$lte": range.until.to_string() },
        };
        let coll = self
            .db
            .collection::<Document>(&gen_name(range.rollup, st.live.generation));
        let find = coll.find(filter);
        let mut cursor = if range.bitmaps {
            find.await?
        } else {
            find.projection(doc! { Field::Visitors.as_str(): 0 })
                .await?
        };
        while let Some(d) = cursor.try_next().await? {
            let mut doc = rollup_doc(&d);
            let inner = rollup::key_in_site(site, &doc.id);
            if inner.len() != doc.id.len() {
                doc.id = inner.to_string();
            }
            add(&mut acc, doc);
        }
        Ok(acc)
    }
}

/// Longest a rebuild waits on one schema change (drops, index builds).
/// The visitor dictionary (`maidian_core::bitmap`): `{_id: "site|visitor", n}`, shared by every
/// generation; an erased visitor's entry is deleted and their number never given again.
pub(crate) const NUMBERS: &str = "visitor_numbers";
/// The next visitor number of each site: `{_id: site, next}`.
const NEXT_NUMBER: &str = "visitor_next_number";
/// Keys per `$in` lookup. FerretDB v1 answers `$in` with a scan of the collection, so
/// fewer, larger lookups (a few hundred KB of keys; MongoDB takes 16 MB).
const KEYS_PER_FIND: usize = 5_000;

/// The lease through a run of writes ([`MongoStore::keep`]): `None` for a rebuild's own
/// chunks (its generation is not live yet, and a crashed rebuild is discarded).
struct Held<'a> {
    cfg: Option<&'a ConsumerConfig>,
    renewed: Option<Instant>,
}

impl<'a> Held<'a> {
    fn new(cfg: Option<&'a ConsumerConfig>) -> Held<'a> {
        Held { cfg, renewed: None }
    }
}

/// A document's bitmaps after a change (see `MongoStore::bitmaps_after`).
struct After {
    bits: Vec<(Field, Vec<u8>)>,
    empty: bool,
}

const SCHEMA_CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    crate::within(SCHEMA_CHANGE_TIMEOUT, work).await
}

/// [`Reads`] of the rollups of `generation`, leaving out page index entries of chunk `before`
/// or later (a chunk finished after an interruption decides as it did the first time).
pub(crate) struct GenReads<'a> {
    pub(crate) store: &'a MongoStore,
    pub(crate) generation: i64,
    pub(crate) before: Option<i64>,
}

impl Reads for GenReads<'_> {
    async fn numbers(&mut self, keys: &[String], assign: bool) -> Result<Numbers, StoreError> {
        self.store.numbers_of(keys, assign).await
    }

    async fn known(&mut self, keys: Vec<(&'static str, String)>) -> Result<Known, StoreError> {
        self.store.known(self.generation, keys).await
    }

    async fn page_index(
        &mut self,
        days: &[rollup::IndexDay],
    ) -> Result<rollup::Admitted, StoreError> {
        self.store
            .page_index(self.generation, self.before, days)
            .await
    }
}

pub(crate) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

pub(crate) fn bson_of(v: &Value) -> Bson {
    match v {
        Value::Int(n) => Bson::Int64(*n),
        Value::Str(s) => Bson::String(s.clone()),
        Value::Bits(b) => Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: b.clone(),
        }),
    }
}

/// `$inc`/`$min` of the change, and `$set` of its identity plus `applied: chunk`.
fn update_doc(c: &Change, chunk: i64) -> Document {
    let mut u = Document::new();
    if !c.inc.is_empty() {
        let inc: Document = c
            .inc
            .iter()
            .map(|(k, n)| (k.as_str().to_string(), Bson::Int64(*n)))
            .collect();
        u.insert("$inc", inc);
    }
    if !c.min.is_empty() {
        let min: Document = c
            .min
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), bson_of(v)))
            .collect();
        u.insert("$min", min);
    }
    let mut set: Document = c
        .set
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), bson_of(v)))
        .collect();
    set.insert("applied", chunk);
    u.insert("$set", set);
    u
}

/// A stored rollup document's fields.
pub(crate) fn fields_of(d: &Document) -> std::collections::HashMap<Field, Value> {
    rollup_doc(d).fields
}

fn rollup_doc(d: &Document) -> RollupDoc {
    let mut out = RollupDoc {
        id: d.get_str("_id").unwrap_or_default().to_string(),
        ..RollupDoc::default()
    };
    for (k, v) in d {
        let Some(field) = Field::parse(k) else {
            continue;
        };
        let value = match v {
            Bson::Int32(n) => Value::Int(i64::from(*n)),
            Bson::Int64(n) => Value::Int(*n),
            Bson::Double(n) => Value::Int(*n as i64),
            Bson::String(s) => Value::Str(s.clone()),
            Bson::Binary(b) => Value::Bits(b.bytes.clone()),
            _ => continue,
        };
        // A gap counter back at zero (`$inc` cannot remove it) is as good as none, which
        // is what the embedded store and a rebuild hold.
        if matches!(field, Field::Gap(_)) && value == Value::Int(0) {
            continue;
        }
        out.fields.insert(field, value);
    }
    out
}
