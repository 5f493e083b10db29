//! The data lifecycle on the embedded store (see [`maidian_core::lifecycle`]). redb has one writer
//! at a time, so an erasure keeps its write transactions short, whatever the store holds:
//! the visitor's events and the rollup documents naming them are found in a read
//! transaction (nobody waits), then one write transaction folds in what was logged since,
//! takes their rollups back, deletes the documents found and files the events in
//! [`ERASING`]; the events themselves go [`PIECE`] at a time, a transaction each, ingest
//! and rollups going on in between (a crash part way finishes at the next open). Expiry
//! deletes one bounded chunk per transaction.

use std::collections::{HashMap, HashSet};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Deserialize;

use crate::embedded::rollups::{
    apply_delta, decode_fields, encode_fields, state_of as read_state, table, table_name,
    write_state, zones_in, TxReads, NUMBERS,
};
use crate::embedded::{blocking, err, EmbeddedStore, BY_TYPE, EVENTS, IDS, LOG, SITES};
use crate::reads::at_once;
use crate::StoreError;
use maidian_core::bitmap;
use maidian_core::event::Event;
use maidian_core::lifecycle::{self, Forgotten, Names};
use maidian_core::rollup::{self, Delta, Field, Value};

/// Events an erasure has taken back from the rollups and not deleted yet, by key.
pub(crate) const ERASING: TableDefinition<(i64, &str), ()> = TableDefinition::new("erasing");

/// Events deleted per transaction once their erasure is committed.
const PIECE: usize = 2_000;

/// The identifying fields of a stored event, decoded without the rest.
#[derive(Deserialize)]
struct Ids {
    #[serde(default)]
    site: String,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    visitor: Option<String>,
    session_id: Option<String>,
}

/// Every stored event of `site` naming one of `ids` (one scan of the events).
fn events_naming(
    table: &impl ReadableTable<(i64, &'static str), &'static [u8]>,
    site: &str,
    ids: &HashSet<&str>,
) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter().map_err(err)? {
        let (_, value) = row.map_err(err)?;
        let found: Ids = serde_json::from_slice(value.value()).map_err(err)?;
        let in_site = match found.site.as_str() {
            "" => site == maidian_core::site::DEFAULT_SITE,
            s => s == site,
        };
        let named = [
            &found.user_id,
            &found.anonymous_id,
            &found.visitor,
            &found.session_id,
        ]
        .into_iter()
        .flatten()
        .any(|v| ids.contains(v.as_str()));
        if in_site && named {
            out.push(serde_json::from_slice(value.value()).map_err(err)?);
        }
    }
    Ok(out)
}

/// Looks the closure's frontier up until it is complete (see [`lifecycle::Closure`]).
fn complete(
    table: &impl ReadableTable<(i64, &'static str), &'static [u8]>,
    c: &mut lifecycle::Closure,
) -> Result<(), StoreError> {
    while !c.frontier().is_empty() {
        let ids: HashSet<&str> = c.frontier().iter().map(String::as_str).collect();
        let found = events_naming(table, c.site(), &ids)?;
        c.add(found)?;
    }
    Ok(())
}

/// The complete closure of `id` in `site` as `tx` sees the events.
fn closure_in(
    tx: &redb::ReadTransaction,
    site: &str,
    id: &str,
) -> Result<lifecycle::Closure, StoreError> {
    let mut c = lifecycle::Closure::new(site, id)?;
    complete(&tx.open_table(EVENTS).map_err(err)?, &mut c)?;
    Ok(c)
}

/// Keys of `(timestamp, event_id)` logged after `seq` (not rolled up yet), with their numbers.
fn unrolled(tx: &WriteTransaction, seq: u64) -> Result<HashMap<(i64, String), u64>, StoreError> {
    let log = tx.open_table(LOG).map_err(err)?;
    let mut out = HashMap::new();
    for row in log.range(seq + 1..).map_err(err)? {
        let (n, key) = row.map_err(err)?;
        let (ts, id) = key.value();
        out.insert((ts, id.to_string()), n.value());
    }
    Ok(out)
}

/// Deletes one stored event from every table that holds it.
fn delete_event(tx: &WriteTransaction, e: &Event) -> Result<bool, StoreError> {
    let removed = tx
        .open_table(EVENTS)
        .map_err(err)?
        .remove((e.timestamp, e.event_id.as_str()))
        .map_err(err)?
        .is_some();
    tx.open_table(IDS)
        .map_err(err)?
        .remove(e.event_id.as_str())
        .map_err(err)?;
    tx.open_table(BY_TYPE)
        .map_err(err)?
        .remove((e.event_type.as_str(), e.timestamp, e.event_id.as_str()))
        .map_err(err)?;
    Ok(removed)
}

/// Whether a rollup document's fields name one of `ids`.
fn names_visitor(fields: &HashMap<Field, Value>, ids: &HashSet<&str>) -> bool {
    matches!(fields.get(&Field::Visitor), Some(Value::Str(v)) if ids.contains(v.as_str()))
}

/// The page-index entries of `pages` whose rows the erasure left none of.
fn drop_page_entries(
    tx: &WriteTransaction,
    generation: i64,
    pages: &[rollup::PageEntry],
) -> Result<(), StoreError> {
    'entries: for p in pages {
        for (name, key) in &p.rows {
            let tn = table_name(name, generation);
            if tx
                .open_table(table(&tn))
                .map_err(err)?
                .get(key.as_str())
                .map_err(err)?
                .is_some()
            {
                continue 'entries;
            }
        }
        let tn = table_name(p.index, generation);
        tx.open_table(table(&tn))
            .map_err(err)?
            .remove(p.entry.as_str())
            .map_err(err)?;
    }
    Ok(())
}

impl EmbeddedStore {
    /// The events of visitor `id` of `site` and the ids linked to them, found in a read
    /// transaction (ingest and rollups go on meanwhile).
    pub async fn closure(
        &self,
        site: String,
        id: String,
    ) -> Result<(Names, Vec<Event>), StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            Ok(closure_in(&tx, &site, &id)?.finish())
        })
        .await
    }

    /// Erases visitor `id` of `site` (see [`maidian_core::lifecycle`]). The visitor's events and
    /// the rollup documents naming them are found in a read transaction, which holds nobody
    /// up however much is stored; one write transaction then folds in the events logged
    /// since (following any ids they link), takes their rollups back, deletes those
    /// documents and files the events in [`ERASING`]; the events go [`PIECE`] at a time.
    pub async fn forget(&self, site: String, id: String) -> Result<Forgotten, StoreError> {
        let mut forgotten = self.forget_filing(site, id).await?;
        // A transaction a piece: ingest and rollups go on in between.
        let db = self.db.clone();
        forgotten.events_removed = blocking(move || finish_erasing(&db)).await?;
        Ok(forgotten)
    }

    /// [`EmbeddedStore::forget`] up to its events filed in [`ERASING`], not deleted yet: what
    /// a crash part way leaves, for that test.
    #[cfg(feature = "test-api")]
    pub async fn forget_filed_only(
        &self,
        site: String,
        id: String,
    ) -> Result<Forgotten, StoreError> {
        self.forget_filing(site, id).await
    }

    /// [`EmbeddedStore::forget`] up to its events filed in [`ERASING`].
    async fn forget_filing(&self, site: String, id: String) -> Result<Forgotten, StoreError> {
        let db = self.db.clone();
        let (closure, head, plan) = blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let c = closure_in(&tx, &site, &id)?;
            let head = tx
                .open_table(LOG)
                .map_err(err)?
                .last()
                .map_err(err)?
                .map_or(0, |(k, _)| k.value());
            let generation = crate::embedded::rollups::read_state(
                &tx.open_table(crate::embedded::rollups::STATE)
                    .map_err(err)?,
            )?
            .generation;
            let plan = sweep_plan(&tx, generation, c.names())?;
            Ok((c, head, plan))
        })
        .await?;
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            let mut st = read_state(&tx)?;
            let mut c = closure;
            {
                let table = tx.open_table(EVENTS).map_err(err)?;
                let log = tx.open_table(LOG).map_err(err)?;
                let mut newer = Vec::new();
                for row in log.range(head + 1..).map_err(err)? {
                    let (_, key) = row.map_err(err)?;
                    let (ts, event_id) = key.value();
                    if let Some(v) = table.get((ts, event_id)).map_err(err)? {
                        newer.push(serde_json::from_slice::<Event>(v.value()).map_err(err)?);
                    }
                }
                c.add(newer)?;
                complete(&table, &mut c)?;
            }
            let (names, events) = c.finish();
            // Ids the events logged since linked (or a generation switched): looked for
            // again, in a snapshot of what this transaction started from.
            let plan = if names == plan.names && st.generation == plan.generation {
                plan
            } else {
                sweep_plan(&db.begin_read().map_err(err)?, st.generation, &names)?
            };
            let tail = unrolled(&tx, st.seq)?;
            let (mut rolled, mut unlogged) = (Vec::new(), Vec::new());
            for e in &events {
                match tail.get(&(e.timestamp, e.event_id.clone())) {
                    Some(seq) => unlogged.push(*seq),
                    None => rolled.push(e),
                }
            }
            st.events = st.events.saturating_sub(rolled.len() as u64);
            write_state(&tx, &st)?;
            // The delta they were rolled up with, taken back: counters down, their visitor
            // numbers out of every bitmap (documents left empty go, as a rebuild would not
            // have them).
            let zones = zones_in(&tx)?;
            let mut reads = TxReads {
                tx: &tx,
                generation: st.generation,
            };
            let (erasure, pages) = at_once(crate::reads::taken_back(
                &mut reads,
                &rolled,
                &zones,
                st.zones_at,
            ))?;
            apply_delta(&tx, st.generation, &erasure.decrements)?;
            let mut entries = 0u64;
            for (name, key) in &erasure.deletes {
                // First-seen documents are the sweep's: it removes every one of the ids and
                // takes back the retention counters each stands for.
                if *name == rollup::FIRST_SEEN || *name == rollup::bot_twin(rollup::FIRST_SEEN) {
                    continue;
                }
                let tn = table_name(name, st.generation);
                let mut t = tx.open_table(table(&tn)).map_err(err)?;
                entries += u64::from(t.remove(key.as_str()).map_err(err)?.is_some());
            }
            entries += sweep_visitor(&tx, &plan)?;
            drop_page_entries(&tx, st.generation, &pages)?;
            // Not rolled up yet: out of the log too, so the consumer never looks for them.
            let mut log = tx.open_table(LOG).map_err(err)?;
            for seq in unlogged {
                log.remove(seq).map_err(err)?;
            }
            drop(log);
            // Out of every figure now; deleted a piece at a time below.
            let mut filed = tx.open_table(ERASING).map_err(err)?;
            for e in &events {
                filed
                    .insert((e.timestamp, e.event_id.as_str()), ())
                    .map_err(err)?;
            }
            drop(filed);
            tx.commit().map_err(err)?;
            Ok(Forgotten {
                events_removed: 0,
                rollup_entries_removed: entries,
                ids: names.ids.len() as u64,
            })
        })
        .await
    }

    /// Deletes up to `limit` rolled-up raw events older than `cutoff_ms`; returns how many.
    pub async fn expire_raw(&self, cutoff_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            let mut st = read_state(&tx)?;
            let tail = unrolled(&tx, st.seq)?;
            let mut old = Vec::new();
            {
                let table = tx.open_table(EVENTS).map_err(err)?;
                for row in table.range(..(cutoff_ms, "")).map_err(err)? {
                    let (_, value) = row.map_err(err)?;
                    let e: Event = serde_json::from_slice(value.value()).map_err(err)?;
                    if !tail.contains_key(&(e.timestamp, e.event_id.clone())) {
                        old.push(e);
                    }
                    if old.len() >= limit {
                        break;
                    }
                }
            }
            let mut n = 0u64;
            for e in &old {
                n += u64::from(delete_event(&tx, e)?);
            }
            if st.expired_before < cutoff_ms {
                st.expired_before = cutoff_ms;
                write_state(&tx, &st)?;
            }
            tx.commit().map_err(err)?;
            Ok(n)
        })
        .await
    }

    /// The retention cut-off raw events were deleted before (ms), if any were.
    pub async fn raw_since(&self) -> Result<Option<i64>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let st = crate::embedded::rollups::read_state(
                &tx.open_table(crate::embedded::rollups::STATE)
                    .map_err(err)?,
            )?;
            Ok((st.expired_before > 0).then_some(st.expired_before))
        })
        .await
    }
}

/// The rollup documents naming a visitor's ids, found in a read transaction so that the
/// write transaction of an erasure looks nothing up by scanning: those that belong to one of
/// the ids (`visitor`), and those whose bitmaps hold one of their numbers.
struct SweepPlan {
    generation: i64,
    names: Names,
    /// (table, key) of documents naming one of the ids in `visitor`.
    personal: Vec<(String, String)>,
    /// (table, key) of documents whose visitor bitmap holds one of the numbers.
    bitmaps: Vec<(String, String)>,
    /// The ids' dictionary keys (`site|id`) with their numbers.
    numbers: bitmap::Numbers,
}

/// Finds what [`sweep_visitor`] changes for `names` in `generation` (every table scanned, in
/// a read transaction that holds nobody up).
fn sweep_plan(
    tx: &ReadTransaction,
    generation: i64,
    names: &Names,
) -> Result<SweepPlan, StoreError> {
    let ids: HashSet<&str> = names.ids.iter().map(String::as_str).collect();
    let mut personal = Vec::new();
    for name in rollup::catalog::naming_visitors() {
        let tn = table_name(name, generation);
        let Ok(t) = tx.open_table(table(&tn)) else {
            continue;
        };
        for row in t.iter().map_err(err)? {
            let (key, value) = row.map_err(err)?;
            if names_visitor(&decode_fields(value.value())?, &ids) {
                personal.push((tn.clone(), key.value().to_string()));
            }
        }
    }
    let dictionary = tx.open_table(NUMBERS).map_err(err)?;
    let mut numbers = bitmap::Numbers::new();
    for key in visitor_keys(&tx.open_table(SITES).map_err(err)?, names)? {
        if let Some(n) = dictionary.get(key.as_str()).map_err(err)? {
            numbers.insert(key, n.value());
        }
    }
    let by_site = bitmap::numbers_by_site(&numbers);
    let mut bitmaps = Vec::new();
    for name in rollup::catalog::with_visitor_bitmaps() {
        let tn = table_name(name, generation);
        let Ok(t) = tx.open_table(table(&tn)) else {
            continue;
        };
        for (site, gone) in &by_site {
            let (lo, hi) = (format!("{site}|"), format!("{site}|\u{10ffff}"));
            for row in t.range(lo.as_str()..hi.as_str()).map_err(err)? {
                let (key, value) = row.map_err(err)?;
                if let Some(Value::Bits(b)) = decode_fields(value.value())?.get(&Field::Visitors) {
                    if !bitmap::decode(b).is_disjoint(gone) {
                        bitmaps.push((tn.clone(), key.value().to_string()));
                    }
                }
            }
        }
    }
    Ok(SweepPlan {
        generation,
        names: names.clone(),
        personal,
        bitmaps,
        numbers,
    })
}

/// The dictionary and first-seen keys of the ids of `names` in every site
/// ([`lifecycle::keys_in_every_site`]).
fn visitor_keys(
    sites: &impl ReadableTable<&'static str, &'static [u8]>,
    names: &Names,
) -> Result<Vec<String>, StoreError> {
    let sites = crate::embedded::read_sites(sites)?
        .into_iter()
        .map(|s| s.id);
    let ids: Vec<String> = names.ids.iter().cloned().collect();
    Ok(lifecycle::keys_in_every_site(sites, &ids))
}

/// Deletes the rollup documents of `plan` (each read again: what the plan found may have
/// moved on since), clears the numbers from the bitmaps it found, retires the numbers, and
/// takes back the retention counters of the first-seen documents it deletes (from the days
/// they kept). Also the documents of days whose raw events expired.
fn sweep_visitor(tx: &WriteTransaction, plan: &SweepPlan) -> Result<u64, StoreError> {
    let ids: HashSet<&str> = plan.names.ids.iter().map(String::as_str).collect();
    let mut n = 0u64;
    for (tn, key) in &plan.personal {
        let mut t = tx.open_table(table(tn)).map_err(err)?;
        let named = match t.get(key.as_str()).map_err(err)? {
            Some(v) => names_visitor(&decode_fields(v.value())?, &ids),
            None => false,
        };
        if named {
            n += u64::from(t.remove(key.as_str()).map_err(err)?.is_some());
        }
    }
    let by_site = bitmap::numbers_by_site(&plan.numbers);
    for (tn, key) in &plan.bitmaps {
        let mut t = tx.open_table(table(tn)).map_err(err)?;
        let site = key.split('|').next().unwrap_or_default();
        let Some(gone) = by_site.get(site) else {
            continue;
        };
        let Some(mut fields) = t
            .get(key.as_str())
            .map_err(err)?
            .map(|v| decode_fields(v.value()))
            .transpose()?
        else {
            continue;
        };
        if let Some(Value::Bits(b)) = fields.get(&Field::Visitors) {
            let kept = bitmap::encode(&(&bitmap::decode(b) - gone));
            fields.insert(Field::Visitors, Value::Bits(kept));
        }
        if rollup::is_empty(&fields) {
            n += u64::from(t.remove(key.as_str()).map_err(err)?.is_some());
        } else {
            t.insert(key.as_str(), encode_fields(&fields)?.as_slice())
                .map_err(err)?;
        }
    }
    let mut dictionary = tx.open_table(NUMBERS).map_err(err)?;
    for key in plan.numbers.keys() {
        dictionary.remove(key.as_str()).map_err(err)?;
    }
    let keys = visitor_keys(&tx.open_table(SITES).map_err(err)?, &plan.names)?;
    let mut counters = Delta::default();
    for name in [rollup::FIRST_SEEN, rollup::bot_twin(rollup::FIRST_SEEN)] {
        let tn = table_name(name, plan.generation);
        let mut t = tx.open_table(table(&tn)).map_err(err)?;
        for key in &keys {
            if let Some(old) = t.remove(key.as_str()).map_err(err)? {
                counters.counters_taken_back(name, key, &decode_fields(old.value())?);
                n += 1;
            }
        }
    }
    apply_delta(tx, plan.generation, &counters)?;
    Ok(n)
}

/// Deletes up to [`PIECE`] of the events filed in [`ERASING`], in one transaction; returns
/// how many were filed and how many of those were still stored (retention may have been
/// first).
fn erase_piece(db: &redb::Database) -> Result<(usize, u64), StoreError> {
    #[derive(Deserialize)]
    struct Kind {
        event_type: String,
    }
    let tx = db.begin_write().map_err(err)?;
    let mut removed = 0u64;
    let keys: Vec<(i64, String)> = {
        let t = tx.open_table(ERASING).map_err(err)?;
        let mut keys = Vec::new();
        for row in t.iter().map_err(err)?.take(PIECE) {
            let (k, _) = row.map_err(err)?;
            let (ts, id) = k.value();
            keys.push((ts, id.to_string()));
        }
        keys
    };
    for (ts, id) in &keys {
        let kind = {
            let events = tx.open_table(EVENTS).map_err(err)?;
            let found = events.get((*ts, id.as_str())).map_err(err)?;
            found
                .map(|v| serde_json::from_slice::<Kind>(v.value()))
                .transpose()
                .map_err(err)?
        };
        if let Some(kind) = kind {
            let e = Event {
                event_id: id.clone(),
                event_type: kind.event_type,
                timestamp: *ts,
                ..Event::default()
            };
            removed += u64::from(delete_event(&tx, &e)?);
        }
        tx.open_table(ERASING)
            .map_err(err)?
            .remove((*ts, id.as_str()))
            .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok((keys.len(), removed))
}

/// Deletes the events filed in [`ERASING`], a transaction a piece (other writers go in
/// between): after an erasure's rollups are taken back, and at open for one a crash cut
/// short. Returns how many were still stored.
pub(crate) fn finish_erasing(db: &redb::Database) -> Result<u64, StoreError> {
    let mut removed = 0;
    loop {
        let (filed, n) = erase_piece(db)?;
        removed += n;
        if filed == 0 {
            return Ok(removed);
        }
    }
}

impl EmbeddedStore {
    /// Names of the tables holding `needle` in a key or value (every table of the file is
    /// read): for tests that check that an erasure left no trace.
    #[cfg(feature = "test-api")]
    pub async fn tables_containing(&self, needle: String) -> Result<Vec<String>, StoreError> {
        use redb::TableHandle;
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let mut out = Vec::new();
            let has = |s: &str| s.contains(needle.as_str());
            let bytes = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            for handle in tx.list_tables().map_err(err)? {
                let name = handle.name().to_string();
                let mut found = false;
                match name.as_str() {
                    "events" => {
                        for row in tx.open_table(EVENTS).map_err(err)?.iter().map_err(err)? {
                            let (k, v) = row.map_err(err)?;
                            found |= has(k.value().1) || has(&bytes(v.value()));
                        }
                    }
                    "event_ids" => {
                        for row in tx.open_table(IDS).map_err(err)?.iter().map_err(err)? {
                            found |= has(row.map_err(err)?.0.value());
                        }
                    }
                    "events_by_type" => {
                        for row in tx.open_table(BY_TYPE).map_err(err)?.iter().map_err(err)? {
                            let (k, v) = row.map_err(err)?;
                            found |= has(k.value().2) || has(&bytes(v.value()));
                        }
                    }
                    "event_log" => {
                        for row in tx.open_table(LOG).map_err(err)?.iter().map_err(err)? {
                            found |= has(row.map_err(err)?.1.value().1);
                        }
                    }
                    "visitor_numbers" => {
                        for row in tx.open_table(NUMBERS).map_err(err)?.iter().map_err(err)? {
                            found |= has(row.map_err(err)?.0.value());
                        }
                    }
                    "erasing" => {
                        for row in tx.open_table(ERASING).map_err(err)?.iter().map_err(err)? {
                            found |= has(row.map_err(err)?.0.value().1);
                        }
                    }
                    // Keyed by site id, holding a number.
                    "visitor_next_number" => {}
                    other => {
                        for row in tx
                            .open_table(table(other))
                            .map_err(err)?
                            .iter()
                            .map_err(err)?
                        {
                            let (k, v) = row.map_err(err)?;
                            found |= has(k.value()) || has(&bytes(v.value()));
                        }
                    }
                }
                if found {
                    out.push(name);
                }
            }
            Ok(out)
        })
        .await
    }
}
