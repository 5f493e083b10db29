//! The rollup consumer on the embedded store. redb has one writer at a time and atomic
//! transactions, so each chunk's rollup changes and the checkpoint commit together: no
//! pending chunk, no safety lag (the log is numbered in commit order), and the process holds
//! the file lock, so it is the only consumer. Rollups of generation `g` live in tables
//! `<rollup>@<g>`; a rebuild fills generation `g + 1` and switches in one transaction.

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::embedded::{blocking, err, EmbeddedStore, EVENTS, LOG, SITES};
use crate::protocol::{now_ms, ConsumerConfig, RollupStatus, Step};
use crate::reads::{at_once, Reads};
use crate::{RollupDoc, StoreError};
use maidian_core::bitmap::{self, Numbers};
use maidian_core::event::Event;
use maidian_core::rollup::{self, Delta, Field, Known, Value};
use maidian_core::site::Zones;

pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("rollup_state");
/// The visitor dictionary (`maidian_core::bitmap`): `site|visitor` → number. Shared by every
/// generation; an erased visitor's entry is removed and their number never given again.
pub(crate) const NUMBERS: TableDefinition<&str, u32> = TableDefinition::new("visitor_numbers");
/// The next number to give, per site.
const NEXT_NUMBER: TableDefinition<&str, u32> = TableDefinition::new("visitor_next_number");
const CONSUMER: &str = "consumer";

/// The checkpoint: the log is rolled up into `generation` up to sequence number `seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) generation: i64,
    pub(crate) seq: u64,
    pub(crate) events: u64,
    created_at: i64,
    /// The rollup format the tables hold ([`FORMAT`]; 0 before sites).
    #[serde(default)]
    format: u32,
    /// Raw events older than this (ms) were deleted by retention (`[retention] raw_days`).
    #[serde(default)]
    pub(crate) expired_before: i64,
    /// When the generation began: events received earlier count in the zones of that moment
    /// (`maidian_core::site::Zones::rolled_day`). 0 for the first generation.
    #[serde(default)]
    pub(crate) zones_at: i64,
}

/// The rollup format ([`rollup::FORMAT`]). A file with rollups of another format has them
/// dropped at open, and the consumer rolls the log up again
/// ([`crate::refuse_other_format`]).
const FORMAT: u32 = rollup::FORMAT;

pub(crate) fn table_name(rollup: &str, generation: i64) -> String {
    format!("{rollup}@{generation}")
}

pub(crate) fn table(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

/// Creates the state at first open. A file from before the consumer existed gets its log
/// numbered from the stored events (time order) and its old rollup tables dropped, so the
/// consumer rebuilds them.
pub(crate) fn init(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut state = tx.open_table(STATE).map_err(err)?;
    let old = match state.get(CONSUMER).map_err(err)? {
        Some(v) => Some(serde_json::from_slice::<State>(v.value()).map_err(err)?),
        None => None,
    };
    if let Some(mut st) = old {
        if st.format != FORMAT {
            // One rule for another format: rolled up again from the log, unless retention
            // deleted raw events those rollups still count.
            crate::refuse_other_format(st.format, st.expired_before)?;
            drop_generation(tx, st.generation)?;
            (st.seq, st.events, st.format, st.zones_at) = (0, 0, FORMAT, now_ms());
            let bytes = serde_json::to_vec(&st).map_err(err)?;
            state.insert(CONSUMER, bytes.as_slice()).map_err(err)?;
        }
        return Ok(());
    }
    let events = tx.open_table(EVENTS).map_err(err)?;
    let mut log = tx.open_table(LOG).map_err(err)?;
    if log.first().map_err(err)?.is_none() {
        let mut seq = 0u64;
        for row in events.iter().map_err(err)? {
            let (key, _) = row.map_err(err)?;
            let (ts, id) = key.value();
            seq += 1;
            log.insert(seq, (ts, id)).map_err(err)?;
        }
    }
    for name in rollup::all() {
        tx.delete_table(table(name)).map_err(err)?;
    }
    let st = State {
        generation: 1,
        created_at: now_ms(),
        format: FORMAT,
        ..State::default()
    };
    let bytes = serde_json::to_vec(&st).map_err(err)?;
    state.insert(CONSUMER, bytes.as_slice()).map_err(err)?;
    Ok(())
}

pub(crate) fn read_state(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<State, StoreError> {
    match table.get(CONSUMER).map_err(err)? {
        Some(v) => serde_json::from_slice(v.value()).map_err(err),
        None => Err(StoreError::Corrupt("rollup state missing".into())),
    }
}

/// The consumer's state, read inside a write transaction.
pub(crate) fn state_of(tx: &WriteTransaction) -> Result<State, StoreError> {
    read_state(&tx.open_table(STATE).map_err(err)?)
}

pub(crate) fn write_state(tx: &WriteTransaction, st: &State) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(st).map_err(err)?;
    tx.open_table(STATE)
        .map_err(err)?
        .insert(CONSUMER, bytes.as_slice())
        .map_err(err)?;
    Ok(())
}

/// Up to `limit` logged events after sequence number `after`, with the last number read.
/// A logged event that is no longer stored (erased, or expired by retention) is skipped.
fn read_log(
    tx: &WriteTransaction,
    after: u64,
    limit: usize,
) -> Result<(Vec<Event>, u64), StoreError> {
    let log = tx.open_table(LOG).map_err(err)?;
    let events = tx.open_table(EVENTS).map_err(err)?;
    let mut out = Vec::new();
    let mut last = after;
    for row in log.range(after + 1..).map_err(err)?.take(limit) {
        let (seq, key) = row.map_err(err)?;
        let (ts, id) = key.value();
        last = seq.value();
        if let Some(bytes) = events.get((ts, id)).map_err(err)? {
            out.push(serde_json::from_slice(bytes.value()).map_err(err)?);
        }
    }
    Ok((out, last))
}

/// The time zones of the registered sites.
pub(crate) fn zones_in(tx: &WriteTransaction) -> Result<Zones, StoreError> {
    let t = tx.open_table(SITES).map_err(err)?;
    Ok(Zones::of(&crate::embedded::read_sites(&t)?))
}

/// The numbers of visitors `keys` (`site|visitor`) in the dictionary; with `assign`, those
/// without one get the next numbers of their site, in the order given.
pub(crate) fn numbers_of(
    tx: &WriteTransaction,
    keys: &[String],
    assign: bool,
) -> Result<Numbers, StoreError> {
    let mut t = tx.open_table(NUMBERS).map_err(err)?;
    let mut next = tx.open_table(NEXT_NUMBER).map_err(err)?;
    let mut out = Numbers::with_capacity(keys.len());
    for k in keys {
        let known = t.get(k.as_str()).map_err(err)?.map(|v| v.value());
        let n = match known {
            Some(n) => n,
            None if assign => {
                let site = k.split('|').next().unwrap_or_default();
                let n = next.get(site).map_err(err)?.map_or(0, |v| v.value());
                let after = n.checked_add(1).ok_or_else(|| {
                    StoreError::Corrupt(format!("site {site} has numbered 2^32 visitors"))
                })?;
                next.insert(site, after).map_err(err)?;
                t.insert(k.as_str(), n).map_err(err)?;
                n
            }
            None => continue,
        };
        out.insert(k.clone(), n);
    }
    Ok(out)
}

/// The delta that rolling `events` up into `generation` (begun at `begun`) applies
/// ([`crate::reads::delta_of`]).
pub(crate) fn delta_of(
    tx: &WriteTransaction,
    (generation, begun): (i64, i64),
    cap: usize,
    events: &[Event],
) -> Result<Delta, StoreError> {
    let zones = zones_in(tx)?;
    let mut reads = TxReads { tx, generation };
    at_once(crate::reads::delta_of(
        &mut reads, events, &zones, begun, cap,
    ))
}

/// [`Reads`] inside a write transaction, of the tables of `generation`.
pub(crate) struct TxReads<'a> {
    pub(crate) tx: &'a WriteTransaction,
    pub(crate) generation: i64,
}

impl Reads for TxReads<'_> {
    async fn numbers(&mut self, keys: &[String], assign: bool) -> Result<Numbers, StoreError> {
        numbers_of(self.tx, keys, assign)
    }

    async fn known(&mut self, keys: Vec<(&'static str, String)>) -> Result<Known, StoreError> {
        known_state(self.tx, self.generation, keys)
    }

    async fn page_index(
        &mut self,
        days: &[rollup::IndexDay],
    ) -> Result<rollup::Admitted, StoreError> {
        page_index(self.tx, self.generation, days)
    }
}

/// The pages with rows of their own on `days` in `generation`'s page index
/// ([`rollup::PAGE_INDEX`]).
fn page_index(
    tx: &WriteTransaction,
    generation: i64,
    days: &[rollup::IndexDay],
) -> Result<rollup::Admitted, StoreError> {
    let mut out = rollup::Admitted::new();
    for (index, site, day) in days {
        let tn = table_name(index, generation);
        let t = tx.open_table(table(&tn)).map_err(err)?;
        let from = rollup::site_key(site, &format!("{day}|"));
        let to = rollup::site_key(site, &format!("{day}}}"));
        let pages = out.entry((*index, site.clone(), day.clone())).or_default();
        for row in t.range(from.as_str()..to.as_str()).map_err(err)? {
            let (_, v) = row.map_err(err)?;
            if let Some(Value::Str(page)) = decode_fields(v.value())?.remove(&Field::PageUrl) {
                pages.insert(page);
            }
        }
    }
    Ok(out)
}

/// The stored documents `keys` of `generation` that exist.
fn known_state(
    tx: &WriteTransaction,
    generation: i64,
    keys: Vec<(&'static str, String)>,
) -> Result<Known, StoreError> {
    let mut known = Known::new();
    for (name, key) in keys {
        let tn = table_name(name, generation);
        let t = tx.open_table(table(&tn)).map_err(err)?;
        let Some(bytes) = t.get(key.as_str()).map_err(err)? else {
            continue;
        };
        known.insert((name, key), decode_fields(bytes.value())?);
    }
    Ok(known)
}

/// Applies a delta to the tables of `generation` (inside the caller's transaction); a
/// document it empties is deleted ([`rollup::is_empty`]).
pub(crate) fn apply_delta(
    tx: &WriteTransaction,
    generation: i64,
    delta: &Delta,
) -> Result<(), StoreError> {
    for (name, changes) in &delta.changes {
        let name = table_name(name, generation);
        let mut t = tx.open_table(table(&name)).map_err(err)?;
        for (key, change) in changes {
            let stored = match t.get(key.as_str()).map_err(err)? {
                Some(bytes) => Some(decode_fields(bytes.value())?),
                None => None,
            };
            let existed = stored.is_some();
            let mut fields = stored.unwrap_or_default();
            change.apply_counts(&mut fields);
            // A gap counter back at zero goes (a rebuild would not have it).
            fields.retain(|f, v| !matches!(f, Field::Gap(_)) || *v != Value::Int(0));
            // A key's `site|` prefix says its site (MongoDB needs the field to filter by):
            // not storing it spares every read decoding it.
            for (f, v) in change.set.iter().filter(|(f, _)| *f != Field::Site) {
                fields.insert(*f, v.clone());
            }
            for (f, bits) in &change.bits {
                let old = match fields.get(f) {
                    Some(Value::Bits(b)) => bitmap::decode(b),
                    _ => Default::default(),
                };
                fields.insert(*f, Value::Bits(bitmap::encode(&bits.apply(&old))));
            }
            if rollup::is_empty(&fields) {
                if existed {
                    t.remove(key.as_str()).map_err(err)?;
                }
                continue;
            }
            t.insert(key.as_str(), encode_fields(&fields)?.as_slice())
                .map_err(err)?;
        }
    }
    Ok(())
}

fn drop_generation(tx: &WriteTransaction, generation: i64) -> Result<(), StoreError> {
    for name in rollup::all() {
        tx.delete_table(table(&table_name(name, generation)))
            .map_err(err)?;
    }
    Ok(())
}

/// `received_at` of the event logged as `seq`.
fn received_at(tx: &ReadTransaction, seq: u64) -> Result<Option<i64>, StoreError> {
    #[derive(Deserialize)]
    struct Received {
        received_at: i64,
    }
    let log = tx.open_table(LOG).map_err(err)?;
    let Some(key) = log.get(seq).map_err(err)? else {
        return Ok(None);
    };
    let events = tx.open_table(EVENTS).map_err(err)?;
    let Some(bytes) = events.get(key.value()).map_err(err)? else {
        return Ok(None);
    };
    let r: Received = serde_json::from_slice(bytes.value()).map_err(err)?;
    Ok(Some(r.received_at))
}

impl EmbeddedStore {
    pub async fn rollup_step(&self, cfg: &ConsumerConfig) -> Result<Step, StoreError> {
        let db = self.db.clone();
        let (limit, cap) = (cfg.chunk_events.max(1), cfg.max_pages_per_day);
        blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            let mut st = read_state(&tx.open_table(STATE).map_err(err)?)?;
            let (events, last) = read_log(&tx, st.seq, limit)?;
            if last == st.seq {
                return Ok(Step::Idle);
            }
            let delta = delta_of(&tx, (st.generation, st.zones_at), cap, &events)?;
            apply_delta(&tx, st.generation, &delta)?;
            st.seq = last;
            st.events += events.len() as u64;
            write_state(&tx, &st)?;
            tx.commit().map_err(err)?;
            Ok(Step::Consumed(events.len()))
        })
        .await
    }

    pub async fn rollup_status(&self) -> Result<RollupStatus, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let st = read_state(&tx.open_table(STATE).map_err(err)?)?;
            let head_seq = tx
                .open_table(LOG)
                .map_err(err)?
                .last()
                .map_err(err)?
                .map_or(0, |(k, _)| k.value());
            let head_ms = received_at(&tx, head_seq)?.unwrap_or(0);
            let checkpoint_ms = received_at(&tx, st.seq)?.unwrap_or(0);
            let lag_ms = if head_seq <= st.seq {
                0
            } else if st.seq == 0 {
                // Nothing rolled up yet: measured from the first logged event.
                head_ms - received_at(&tx, 1)?.unwrap_or(head_ms)
            } else {
                head_ms - checkpoint_ms
            };
            Ok(RollupStatus {
                generation: st.generation,
                events: st.events,
                checkpoint_ms,
                head_ms,
                lag_seconds: lag_ms.max(0) as f64 / 1000.0,
                owner: Some("this process (embedded store)".into()),
                lease_expires_ms: 0,
                rebuilding: None,
            })
        })
        .await
    }

    /// Hands each document of [`Store::rollup_fold`] to `add` as it is read.
    pub async fn rollup_fold<A: Send + 'static>(
        &self,
        range: &crate::Range<'_>,
        mut acc: A,
        add: fn(&mut A, RollupDoc),
    ) -> Result<A, StoreError> {
        let db = self.db.clone();
        let (since, until) = (range.since.to_string(), range.until.to_string());
        let (rollup, field, bitmaps) = (range.rollup, range.field, range.bitmaps);
        let site = range.site.to_string();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let st = read_state(&tx.open_table(STATE).map_err(err)?)?;
            let name = table_name(rollup, st.generation);
            let t = match tx.open_table(table(&name)) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(acc),
                Err(e) => return Err(err(e)),
            };
            // Daily rollups are keyed `day|…`: read only the period's keys.
            let day_keyed =
                field == Field::Day && rollup::spec(rollup).is_some_and(|(s, _)| s.day_keyed);
            // Keys are `site|…` (a site id has no `|`): read only the site's, and of daily
            // rollups only the period's.
            let (lo, hi) = if day_keyed {
                (
                    format!("{site}|{since}"),
                    format!("{site}|{until}|\u{10ffff}"),
                )
            } else {
                (format!("{site}|"), format!("{site}|\u{10ffff}"))
            };
            let rows = t.range(lo.as_str()..hi.as_str()).map_err(err)?;
            for row in rows {
                let (key, value) = row.map_err(err)?;
                let fields = decode_fields_with(value.value(), bitmaps)?;
                let within =
                    matches!(fields.get(&field), Some(Value::Str(d)) if *d >= since && *d <= until);
                if within {
                    let id = rollup::key_in_site(&site, key.value()).to_string();
                    add(&mut acc, RollupDoc { id, fields });
                }
            }
            Ok(acc)
        })
        .await
    }

    /// Fills generation `g + 1` from the whole log, chunk by chunk, then in one transaction
    /// rolls up what was logged meanwhile, switches readers and drops generation `g`.
    pub async fn rebuild_rollups(
        &self,
        cfg: &ConsumerConfig,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let db = self.db.clone();
        let generation = blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            let st = read_state(&tx.open_table(STATE).map_err(err)?)?;
            if st.expired_before > 0 {
                return Err(StoreError::Busy(maidian_core::lifecycle::no_rebuild(
                    st.expired_before,
                )));
            }
            let generation = st.generation + 1;
            drop_generation(&tx, generation)?;
            tx.commit().map_err(err)?;
            Ok(generation)
        })
        .await?;
        // The whole log counts in the zones of now (see `maidian_core::site`).
        let begun = now_ms();
        let cap = cfg.max_pages_per_day;
        let limit = cfg.chunk_events.max(1);
        let (mut seq, mut total) = (0u64, 0u64);
        loop {
            let db = self.db.clone();
            let (n, last) = blocking(move || {
                let tx = db.begin_write().map_err(err)?;
                let (events, last) = read_log(&tx, seq, limit)?;
                let delta = delta_of(&tx, (generation, begun), cap, &events)?;
                apply_delta(&tx, generation, &delta)?;
                tx.commit().map_err(err)?;
                Ok((events.len() as u64, last))
            })
            .await?;
            if last == seq {
                break;
            }
            (seq, total) = (last, total + n);
            progress(total);
        }
        let db = self.db.clone();
        let total = blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            let mut st = read_state(&tx.open_table(STATE).map_err(err)?)?;
            loop {
                let (events, last) = read_log(&tx, seq, limit)?;
                if last == seq {
                    break;
                }
                let delta = delta_of(&tx, (generation, begun), cap, &events)?;
                apply_delta(&tx, generation, &delta)?;
                (seq, total) = (last, total + events.len() as u64);
            }
            let old = st.generation;
            st.generation = generation;
            st.zones_at = begun;
            st.seq = seq;
            st.events = total;
            write_state(&tx, &st)?;
            drop_generation(&tx, old)?;
            tx.commit().map_err(err)?;
            Ok(total)
        })
        .await?;
        Ok(total)
    }

    /// Names of the rollup tables in the file (for tests).
    pub async fn rollup_tables(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            let names = tx
                .list_tables()
                .map_err(err)?
                .map(|t| t.name().to_string())
                .filter(|n| n.starts_with("rollup_") && n != "rollup_state")
                .collect();
            Ok(names)
        })
        .await
    }
}

/// A rollup document's fields as stored in redb: the byte [`BINARY`], then each field in name
/// order: its name (a u8 length and UTF-8), a tag and the value — `0` and an i64, `1` and a
/// string, `2` and a bitmap's bytes (strings and bitmaps: a u32 length first; integers
/// little-endian).
const BINARY: u8 = 2;

pub(crate) fn encode_fields(fields: &HashMap<Field, Value>) -> Result<Vec<u8>, StoreError> {
    let mut sorted: Vec<(&str, &Value)> = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
    sorted.sort_unstable_by_key(|(k, _)| *k);
    let mut out = vec![BINARY];
    let too_long = || err("a rollup field is too long to store");
    for (name, value) in sorted {
        out.push(u8::try_from(name.len()).map_err(|_| too_long())?);
        out.extend_from_slice(name.as_bytes());
        let (tag, bytes) = match value {
            Value::Int(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
                continue;
            }
            Value::Str(s) => (1, s.as_bytes()),
            Value::Bits(b) => (2, b.as_slice()),
        };
        out.push(tag);
        out.extend_from_slice(
            &u32::try_from(bytes.len())
                .map_err(|_| too_long())?
                .to_le_bytes(),
        );
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

pub(crate) fn decode_fields(bytes: &[u8]) -> Result<HashMap<Field, Value>, StoreError> {
    decode_fields_with(bytes, true)
}

/// [`decode_fields`], without the visitor bitmap unless `bitmaps` (its bytes are not
/// copied).
fn decode_fields_with(bytes: &[u8], bitmaps: bool) -> Result<HashMap<Field, Value>, StoreError> {
    let bad = || err("a rollup document is malformed");
    let mut rest = bytes.strip_prefix(&[BINARY]).ok_or_else(bad)?;
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        let (head, tail) = rest.split_at_checked(n).ok_or_else(bad)?;
        rest = tail;
        Ok(head)
    };
    let mut out = HashMap::new();
    loop {
        let Ok(&[len]) = take(1) else {
            return Ok(out);
        };
        let name = std::str::from_utf8(take(usize::from(len))?).map_err(|_| bad())?;
        let tag = take(1)?[0];
        let value = if tag == 0 {
            Value::Int(i64::from_le_bytes(take(8)?.try_into().map_err(|_| bad())?))
        } else {
            let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad())?);
            let bytes = take(len as usize)?;
            if tag == 2 && !bitmaps && name == Field::Visitors.as_str() {
                continue;
            }
            match tag {
                1 => Value::Str(std::str::from_utf8(bytes).map_err(|_| bad())?.to_string()),
                2 => Value::Bits(bytes.to_vec()),
                _ => return Err(bad()),
            }
        };
        // A field this version does not know (a newer writer's) is left out.
        if let Some(field) = Field::parse(name) {
            out.insert(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_whatever_the_order_and_cut_documents_fail() {
        let fields: HashMap<Field, Value> = [
            (Field::Day, Value::Str("2026-11-30".into())),
            (Field::Views, Value::Int(-7)),
            (Field::Visitors, Value::Bits(vec![0, 1, 2, 255])),
        ]
        .into();
        let bytes = encode_fields(&fields).expect("encodes");
        assert_eq!(bytes[0], BINARY);
        assert_eq!(decode_fields(&bytes).expect("decodes"), fields);
        // The same document whatever the map's order.
        let mut pairs: Vec<(Field, Value)> = fields.clone().into_iter().collect();
        pairs.reverse();
        let again: HashMap<Field, Value> = pairs.into_iter().collect();
        assert_eq!(encode_fields(&again).expect("encodes"), bytes);
        // A cut document is an error, or (cut between fields) the fields before the cut.
        for cut in 1..bytes.len() {
            if let Ok(part) = decode_fields(&bytes[..cut]) {
                assert!(part.len() < fields.len(), "cut at {cut}");
                assert!(
                    part.iter().all(|(k, v)| fields.get(k) == Some(v)),
                    "cut at {cut}"
                );
            }
        }
        assert!(decode_fields(&[BINARY, 1, 0xff, 0]).is_err());
    }
}
