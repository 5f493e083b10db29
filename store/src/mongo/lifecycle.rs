//! The data lifecycle on MongoDB (see [`maidian_core::lifecycle`]): raw-event expiry and a
//! visitor's erasure, both done by the rollup consumer's lease holder between chunks, so
//! they never race a chunk, a rebuild or each other.
//!
//! An erasure is a request document in `privacy_requests`. The lease holder plans it (the
//! visitor's events, the ids that link to them, and the rollup fields of those already rolled
//! up, written into the request, and a chunk number taken from the live cursor), then applies
//! it: deletes the raw events, takes their rollups back as that chunk (so a retry after a crash
//! changes nothing twice), deletes the documents that name the visitor, and leaves only counts
//! in the request. The caller waits for it; the CLI steps the consumer itself when no
//! collector holds the lease.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Bson, DateTime, Document};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use crate::mongo::rollups::{gen_name, GenReads, State, NUMBERS};
use crate::mongo::{doc_to_event, event_to_doc, MongoStore};
use crate::protocol::{now_ms, ConsumerConfig, Step};
use crate::StoreError;
use maidian_core::event::Event;
use maidian_core::lifecycle::{self, Forgotten, Names};
use maidian_core::rollup::{self, Field, Value};

const PRIVACY: &str = "privacy_requests";
/// The plans of erasure requests, in pieces of at most [`EVENTS_PER_PIECE`] events: a plan
/// is as large as the visitor's events, far more than one document may hold.
const PLANS: &str = "privacy_plans";
const EVENTS_PER_PIECE: usize = 2_000;

/// One piece of a planned erasure.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PlanPiece {
    /// `request id:n`.
    #[serde(rename = "_id")]
    id: String,
    request: String,
    /// The events to delete.
    events: Vec<String>,
    /// The rollup fields of those already rolled up.
    rolled: Vec<Document>,
}
/// Ids per `$in` of one delete or lookup. Large, because a server that does not use an index
/// for `$in` (FerretDB v1) scans the collection once per query: 50 000 erased events cost
/// ten scans, not a hundred.
const IDS_PER_DELETE: usize = 5_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct ForgetRequest {
    #[serde(rename = "_id")]
    id: String,
    requested_at: i64,
    /// The site the visitor is erased from.
    #[serde(default)]
    site: String,
    /// The id asked for.
    #[serde(default)]
    asked: String,
    /// Why the request could not be carried out (it is then done, with nothing erased).
    #[serde(default)]
    failed: Option<String>,
    /// Planned: how many pieces of the plan are in `privacy_plans`.
    #[serde(default)]
    pieces: u64,
    /// The ids naming the visitor; cleared when done.
    #[serde(default)]
    ids: Vec<String>,
    /// Planned: the chunk (of `generation`) that takes their rollups back; 0 before planning.
    #[serde(default)]
    chunk: i64,
    #[serde(default)]
    generation: i64,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    result: Option<Forgotten>,
}

/// Only what rollups read of an event (no free-form data, no nested arrays).
fn rolled_doc(e: &Event) -> Document {
    let mut d = event_to_doc(e);
    for k in [
        "custom_data",
        "page_title",
        "element_id",
        "element_class",
        "element_text",
        "utm_term",
        "utm_content",
        "click_id",
    ] {
        d.remove(k);
    }
    d
}

/// Deletes the documents of `coll` whose `field` is one of `values` (and that match
/// `extra`), a bounded `$in` at a time; returns how many.
async fn delete_in(
    coll: &Collection<Document>,
    field: &str,
    values: &[String],
    extra: Option<Document>,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for part in values.chunks(IDS_PER_DELETE) {
        let mut filter = doc! { field: { "$in": part } };
        if let Some(x) = &extra {
            filter.extend(x.clone());
        }
        n += coll.delete_many(filter).await?.deleted_count;
    }
    Ok(n)
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("privacy request: {e}"))
}

impl MongoStore {
    fn privacy(&self) -> mongodb::Collection<Document> {
        self.db.collection(PRIVACY)
    }

    /// The events of `site` naming one of `ids` (a bounded `$in` at a time).
    async fn events_naming(&self, site: &str, ids: &[String]) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for part in ids.chunks(IDS_PER_DELETE) {
            let filter = doc! {
                "site": crate::mongo::site_match(site),
                "$or": [
                    { "user_id": { "$in": part } },
                    { "anonymous_id": { "$in": part } },
                    { "visitor": { "$in": part } },
                    { "session_id": { "$in": part } },
                ],
            };
            out.extend(self.events_where(filter).await?);
        }
        Ok(out)
    }

    /// The events of visitor `id` in `site` and the ids linked to them (see
    /// [`lifecycle::Closure`]); each round looks up only the ids the previous one found.
    pub async fn closure(&self, site: &str, id: &str) -> Result<(Names, Vec<Event>), StoreError> {
        let mut c = lifecycle::Closure::new(site, id)?;
        while !c.frontier().is_empty() {
            let found = self.events_naming(site, c.frontier()).await?;
            c.add(found)?;
        }
        Ok(c.finish())
    }

    /// Erases visitor `id` of `site` (see [`maidian_core::lifecycle`]): queues the request and
    /// waits up to `wait` for the lease holder to carry it out. With `step`, this process
    /// runs consumer steps itself (the CLI: no collector may be running). A request that
    /// cannot be carried out is marked failed by the lease holder, and answered as an error.
    pub async fn forget(
        &self,
        cfg: &ConsumerConfig,
        site: &str,
        id: &str,
        wait: Duration,
        step: bool,
    ) -> Result<Forgotten, StoreError> {
        self.ready().await?;
        // Refused before anything is queued.
        lifecycle::Closure::new(site, id)?;
        let req = ForgetRequest {
            id: format!("{}:{}", cfg.owner, now_ms()),
            requested_at: now_ms(),
            site: site.to_string(),
            asked: id.to_string(),
            ids: vec![id.to_string()],
            ..ForgetRequest::default()
        };
        let key = req.id.clone();
        self.privacy()
            .insert_one(bson::to_document(&req).map_err(corrupt)?)
            .await?;
        let deadline = Instant::now() + wait;
        loop {
            // A step that did work is followed at once by the next; otherwise wait a little.
            let mut busy = false;
            if step {
                match self.rollup_step(cfg).await {
                    Ok(Step::Consumed(_) | Step::Switched) => busy = true,
                    Ok(_) | Err(StoreError::LeaseLost) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(d) = self.privacy().find_one(doc! { "_id": &key }).await? {
                let r: ForgetRequest = bson::from_document(d).map_err(corrupt)?;
                if r.done {
                    self.privacy().delete_one(doc! { "_id": &key }).await?;
                    if step {
                        self.release_lease(&cfg.owner).await?;
                    }
                    if let Some(why) = r.failed {
                        return Err(StoreError::Refused(why));
                    }
                    return Ok(r.result.unwrap_or_default());
                }
            }
            if Instant::now() > deadline {
                return Err(StoreError::Busy(format!(
                    "the erasure is queued (request {key}) and runs when a collector rolls up; it did not finish within {wait:?}"
                )));
            }
            if !busy {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The lease holder's part: plans or applies the oldest erasure request, if any. `None`
    /// when there is none, or a rebuild is running (the consumer goes on rolling up; the
    /// request waits, so the rebuild cannot read events it is deleting).
    pub(crate) async fn forget_step(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
    ) -> Result<Option<Step>, StoreError> {
        let Some(d) = self
            .privacy()
            .find_one(doc! { "done": false })
            .sort(doc! { "requested_at": 1 })
            .await?
        else {
            return Ok(None);
        };
        if self.read_rebuild().await?.building.is_some() {
            return Ok(None);
        }
        let req: ForgetRequest = bson::from_document(d).map_err(corrupt)?;
        if req.chunk == 0 || req.generation != st.live.generation {
            self.plan_forget(cfg, st, &req).await?;
        } else {
            self.apply_forget(cfg, st, req).await?;
        }
        Ok(Some(Step::Consumed(0)))
    }

    async fn plan_forget(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
        req: &ForgetRequest,
    ) -> Result<(), StoreError> {
        // Requests queued before sites and the asked id were recorded name the default site.
        let site = match req.site.as_str() {
            "" => maidian_core::site::DEFAULT_SITE,
            s => s,
        };
        let asked = match (req.asked.as_str(), req.ids.first()) {
            ("", Some(first)) => first.as_str(),
            (a, _) => a,
        };
        let (names, events) = match self.closure(site, asked).await {
            Ok(found) => found,
            // A request that can never be carried out is marked failed, so it neither
            // blocks the consumer nor the requests behind it.
            Err(StoreError::Closure(why)) => {
                tracing::warn!(request = %req.id, reason = %why, "erasure request failed");
                self.privacy()
                    .update_one(
                        doc! { "_id": &req.id },
                        doc! { "$set": { "done": true, "failed": why.to_string() } },
                    )
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let pos = st.live.pos();
        // The plan, in pieces (a re-plan after a crash replaces the pieces of before).
        self.db
            .collection::<Document>(PLANS)
            .delete_many(doc! { "request": &req.id })
            .await?;
        let mut pieces = 0u64;
        let mut rolled_count = 0i64;
        for part in events.chunks(EVENTS_PER_PIECE) {
            let rolled: Vec<Document> = part
                .iter()
                .filter(|e| (e.received_at, e.event_id.as_str()) <= pos)
                .map(rolled_doc)
                .collect();
            rolled_count += rolled.len() as i64;
            let piece = PlanPiece {
                id: format!("{}:{pieces}", req.id),
                request: req.id.clone(),
                events: part.iter().map(|e| e.event_id.clone()).collect(),
                rolled,
            };
            self.db
                .collection::<Document>(PLANS)
                .insert_one(bson::to_document(&piece).map_err(corrupt)?)
                .await?;
            pieces += 1;
        }
        // The chunk number first: later chunks number past it, so its guard never blocks
        // theirs (a crash before the request records it only skips a number).
        let chunk = st.live.chunk + 1;
        let mut live = st.live.clone();
        live.chunk = chunk;
        live.events -= rolled_count;
        self.set_state(
            &cfg.owner,
            doc! { "live": bson::to_bson(&live).map_err(corrupt)? },
        )
        .await?;
        self.privacy()
            .update_one(
                doc! { "_id": &req.id },
                doc! { "$set": {
                    "ids": names.ids.iter().cloned().collect::<Vec<_>>(),
                    "pieces": pieces as i64,
                    "chunk": chunk,
                    "generation": st.live.generation,
                } },
            )
            .await?;
        Ok(())
    }

    /// The planned pieces of request `id` (in any order: deletes and take-backs commute).
    async fn plan_pieces(&self, id: &str) -> Result<Vec<PlanPiece>, StoreError> {
        let mut cursor = self
            .db
            .collection::<Document>(PLANS)
            .find(doc! { "request": id })
            .await?;
        let mut pieces = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            pieces.push(bson::from_document::<PlanPiece>(d).map_err(corrupt)?);
        }
        Ok(pieces)
    }

    async fn apply_forget(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
        req: ForgetRequest,
    ) -> Result<(), StoreError> {
        let generation = st.live.generation;
        let pieces = self.plan_pieces(&req.id).await?;
        if pieces.len() as u64 != req.pieces {
            return Err(StoreError::Corrupt(format!(
                "erasure request {}: {} plan pieces of {}",
                req.id,
                pieces.len(),
                req.pieces
            )));
        }
        // Raw events first: from here on nothing can roll them up again.
        let mut removed = 0;
        for p in &pieces {
            removed += delete_in(&self.events, "_id", &p.events, None).await?;
        }
        let rolled = pieces
            .iter()
            .flat_map(|p| &p.rolled)
            .map(doc_to_event)
            .collect::<Result<Vec<_>, _>>()?;
        // The delta they were rolled up with, taken back: counters down, their numbers out
        // of the bitmaps (the dictionary entries go last, below, so a retry still finds them).
        let zones = self.zones().await?;
        let mut reads = GenReads {
            store: self,
            generation,
            before: None,
        };
        let rolled: Vec<&Event> = rolled.iter().collect();
        let (mut erasure, pages) =
            crate::reads::taken_back(&mut reads, &rolled, &zones, st.live.zones_at).await?;
        // The retention counters their first-seen documents stand for (read before the
        // sweep below deletes them; a retry after it finds none, and the chunk's guard has
        // already kept what it applied).
        let keys = self.visitor_keys_of(&req.ids).await?;
        for name in [rollup::FIRST_SEEN, rollup::bot_twin(rollup::FIRST_SEEN)] {
            for d in self.find_by_ids(&gen_name(name, generation), &keys).await? {
                let key = d.get_str("_id").unwrap_or_default().to_string();
                let fields = crate::mongo::rollups::fields_of(&d);
                erasure.decrements.counters_taken_back(name, &key, &fields);
            }
        }
        self.apply_chunk(Some(cfg), generation, req.chunk, &erasure.decrements, true)
            .await?;
        // (`apply_chunk` deletes the shared documents the decrements empty: a rebuild would
        // not have them.)
        let mut deletes: HashMap<&str, Vec<String>> = HashMap::new();
        for (name, key) in erasure.deletes {
            deletes.entry(name).or_default().push(key);
        }
        // The live generation, then those replaced moments ago (kept a little for readers):
        // they hold the visitor too. The answer counts the live generation's entries.
        let retired = st.retired.iter().map(|r| r.generation);
        let mut entries = 0u64;
        for (i, g) in std::iter::once(generation).chain(retired).enumerate() {
            let mut n = 0;
            for (name, keys) in &deletes {
                n += delete_in(&self.rollup(name, g), "_id", keys, None).await?;
            }
            n += self.sweep_visitor(g, &req.ids).await?;
            if i == 0 {
                entries = n;
            }
        }
        self.drop_page_entries(generation, &pages).await?;
        // The numbers are retired: never given again (the counters only grow).
        let keys = self.visitor_keys_of(&req.ids).await?;
        delete_in(&self.db.collection(NUMBERS), "_id", &keys, None).await?;
        let result = Forgotten {
            events_removed: removed,
            rollup_entries_removed: entries,
            ids: req.ids.len() as u64,
        };
        self.privacy()
            .update_one(
                doc! { "_id": &req.id },
                doc! {
                    "$set": { "done": true, "result": bson::to_bson(&result).map_err(corrupt)? },
                    "$unset": { "ids": "" },
                },
            )
            .await?;
        self.db
            .collection::<Document>(PLANS)
            .delete_many(doc! { "request": &req.id })
            .await?;
        tracing::info!(
            events = removed,
            rollup_entries = entries,
            "erased a visitor's data"
        );
        Ok(())
    }

    /// The page-index entries of `pages` whose rows the erasure left none of.
    async fn drop_page_entries(
        &self,
        generation: i64,
        pages: &[rollup::PageEntry],
    ) -> Result<(), StoreError> {
        'entries: for p in pages {
            for (name, key) in &p.rows {
                let coll = self.rollup(name, generation);
                if coll.find_one(doc! { "_id": key }).await?.is_some() {
                    continue 'entries;
                }
            }
            self.rollup(p.index, generation)
                .delete_one(doc! { "_id": &p.entry })
                .await?;
        }
        Ok(())
    }

    /// Collection `rollup` of `generation`.
    fn rollup(&self, rollup: &str, generation: i64) -> Collection<Document> {
        self.db.collection(&gen_name(rollup, generation))
    }

    /// Rollup documents that name one of `ids`, whatever events they came from (also those
    /// of days whose raw events expired).
    async fn sweep_visitor(&self, generation: i64, ids: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        for name in rollup::catalog::naming_visitors() {
            let coll = self.rollup(name, generation);
            n += delete_in(&coll, Field::Visitor.as_str(), ids, None).await?;
        }
        let keys = self.visitor_keys_of(ids).await?;
        for name in [rollup::FIRST_SEEN, rollup::bot_twin(rollup::FIRST_SEEN)] {
            n += delete_in(&self.rollup(name, generation), "_id", &keys, None).await?;
        }
        // Their numbers out of every bitmap of their sites (also of days whose raw events
        // expired); a document left empty goes.
        let numbers = self.numbers_of(&keys, false).await?;
        let by_site = maidian_core::bitmap::numbers_by_site(&numbers);
        for name in rollup::catalog::with_visitor_bitmaps() {
            let coll = self.rollup(name, generation);
            for (site, gone) in &by_site {
                let mut cursor = coll
                    .find(doc! { Field::Site.as_str(): site.as_str() })
                    .await?;
                let mut changed = Vec::new();
                while let Some(d) = cursor.try_next().await? {
                    if let Ok(b) = d.get_binary_generic(Field::Visitors.as_str()) {
                        let bits = maidian_core::bitmap::decode(b);
                        if !bits.is_disjoint(gone) {
                            let id = d.get_str("_id").unwrap_or_default().to_string();
                            changed.push((id, &bits - gone, d));
                        }
                    }
                }
                for (id, kept, d) in changed {
                    let mut fields = crate::mongo::rollups::fields_of(&d);
                    let kept = Value::Bits(maidian_core::bitmap::encode(&kept));
                    fields.insert(Field::Visitors, kept.clone());
                    if rollup::is_empty(&fields) {
                        n += coll.delete_one(doc! { "_id": &id }).await?.deleted_count;
                    } else {
                        coll.update_one(
                            doc! { "_id": &id },
                            doc! { "$set": { Field::Visitors.as_str(): crate::mongo::rollups::bson_of(&kept) } },
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(n)
    }

    /// `site|id` for every site and each of `ids`: their keys in the dictionary and in the
    /// first-seen rollups.
    async fn visitor_keys_of(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let sites = self.sites().await?.into_iter().map(|s| s.id);
        Ok(lifecycle::keys_in_every_site(sites, ids))
    }

    /// Deletes up to `limit` raw events older than `cutoff_ms` that are rolled up, when this
    /// process holds the lease and no rebuild runs; returns how many. Marks the cut-off first,
    /// so figures read from raw events can say what is gone.
    pub async fn expire_raw(
        &self,
        cfg: &ConsumerConfig,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.ready().await?;
        let st = self.existing_state().await?;
        let busy = st.next.is_some()
            || st.live.pending.is_some()
            || self.read_rebuild().await?.building.is_some();
        if st.owner != cfg.owner || st.expires < now_ms() || busy {
            return Ok(0);
        }
        if st.expired_before < cutoff_ms {
            self.set_state(&cfg.owner, doc! { "expired_before": cutoff_ms })
                .await?;
        }
        // Rolled up: at or before the live cursor's `(received_at, _id)`.
        let (t, id) = st.live.pos();
        let t = DateTime::from_millis(t);
        let filter = doc! {
            "timestamp": { "$lt": DateTime::from_millis(cutoff_ms) },
            "$or": [
                { "received_at": { "$lt": t } },
                { "received_at": t, "_id": { "$lte": id } },
            ],
        };
        let mut cursor = self
            .events
            .find(filter)
            .projection(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await?;
        let mut ids = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            if let Some(Bson::String(id)) = d.get("_id") {
                ids.push(id.clone());
            }
        }
        delete_in(&self.events, "_id", &ids, None).await
    }

    /// The retention cut-off raw events were deleted before (ms), if any were.
    pub async fn raw_since(&self) -> Result<Option<i64>, StoreError> {
        self.ready().await?;
        Ok(self
            .read_state()
            .await?
            .map(|s| s.expired_before)
            .filter(|t| *t > 0))
    }
}
