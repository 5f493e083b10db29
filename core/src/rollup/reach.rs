//! Distinct visitors over any period as counters: each daily document with a visitor bitmap
//! (a day's visitors, a page's, an event type's, a channel's or a campaign's on a day) also
//! counts its visitors by the gap back to their previous day there ([`Field::Gap`]).
//!
//! A visitor is among a period's distinct visitors of a key exactly when one of their days
//! there falls in the period; the first such day is the only one whose previous day is
//! before the period. So the distinct visitors of `since..=until` are, summed over its days
//! `d`, the visitors counted at a gap longer than `d − since` (or with none within
//! [`MAX_GAP`], the longest period): a few hundred counters whatever the number of
//! visitors ([`reached`]). The consumer keeps each visitor's days per key in their
//! first-seen document ([`Reach`]; a day's visitors use its `Field::Days`) and moves the
//! counters as days come and go (`Delta::settle_channels`).

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

use crate::event::Day;
use crate::rollup::RollupDoc;
use crate::rollup::{Field, MAX_GAP};

/// One visitor's days per key: (code of the rollup, [`Spec::reached`](super::Spec::reached):
/// the daily rollups keyed `day|…` a visitor's reach follows; a day's visitors follow
/// `Field::Days`; the document key after its `day|`) →
/// day numbers ([`Day::number`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach(BTreeMap<(u8, String), RoaringBitmap>);

impl Reach {
    /// Adds (`on`) or removes the visitor's `day` at key (`code`, `suffix`).
    pub fn mark(&mut self, code: u8, suffix: &str, day: u32, on: bool) {
        let k = (code, suffix.to_string());
        if on {
            self.0.entry(k).or_default().insert(day);
        } else if let Some(days) = self.0.get_mut(&k) {
            days.remove(day);
            if days.is_empty() {
                self.0.remove(&k);
            }
        }
    }

    /// The days at key (`code`, `suffix`).
    pub fn days(&self, code: u8, suffix: &str) -> RoaringBitmap {
        self.0
            .get(&(code, suffix.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every key with its days.
    pub fn entries(&self) -> impl Iterator<Item = (u8, &str, &RoaringBitmap)> {
        self.0.iter().map(|((c, s), d)| (*c, s.as_str(), d))
    }

    /// The stored form: per key its code, the suffix's length and bytes, the number of days,
    /// the first day and the steps between days, integers as LEB128.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for ((code, suffix), days) in &self.0 {
            out.push(*code);
            leb(&mut out, suffix.len() as u64);
            out.extend_from_slice(suffix.as_bytes());
            leb(&mut out, days.len());
            let mut last = 0;
            for d in days {
                leb(&mut out, u64::from(d - last));
                last = d;
            }
        }
        out
    }

    /// A stored reach; what cannot be read ends it (the keys read before it are kept).
    pub fn decode(mut bytes: &[u8]) -> Reach {
        let mut out = Reach::default();
        while let Some((&code, rest)) = bytes.split_first() {
            bytes = rest;
            let Some(entry) = (|| {
                let len = usize::try_from(unleb(&mut bytes)?).ok()?;
                let (s, rest) = bytes.split_at_checked(len)?;
                bytes = rest;
                let suffix = std::str::from_utf8(s).ok()?.to_string();
                let (mut days, mut last) = (RoaringBitmap::new(), 0u32);
                for _ in 0..unleb(&mut bytes)? {
                    last = last.checked_add(u32::try_from(unleb(&mut bytes)?).ok()?)?;
                    days.insert(last);
                }
                Some((suffix, days))
            })() else {
                break;
            };
            out.0.insert((code, entry.0), entry.1);
        }
        out
    }
}

fn leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn unleb(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Each of `days` with its gap back to the day before it in `days` (0: none within
/// [`MAX_GAP`]).
pub fn gaps(days: &RoaringBitmap) -> impl Iterator<Item = (u32, u16)> + '_ {
    let mut prev: Option<u32> = None;
    days.iter().map(move |d| {
        let gap = prev
            .map(|p| d - p)
            .filter(|g| *g <= u32::from(MAX_GAP))
            .map_or(0, |g| g as u16);
        prev = Some(d);
        (d, gap)
    })
}

/// The gap counter changes (day, gap, ±n) that turn `old`'s gaps into `new`'s.
pub fn gap_changes(old: &RoaringBitmap, new: &RoaringBitmap) -> Vec<(u32, u16, i64)> {
    let mut cells: HashMap<(u32, u16), i64> = HashMap::new();
    for (days, n) in [(old, -1), (new, 1)] {
        for cell in gaps(days) {
            *cells.entry(cell).or_default() += n;
        }
    }
    let mut out: Vec<_> = cells
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|((d, g), n)| (d, g, n))
        .collect();
    out.sort_unstable();
    out
}

/// Distinct visitors of `docs` (daily documents of one key, or of a day's visitors) over
/// the period starting `since` (at most [`MAX_GAP`] days long), from their gap counters.
pub fn reached<'a>(docs: impl IntoIterator<Item = &'a RollupDoc>, since: Day) -> u64 {
    let a = since.number();
    let mut total = 0i64;
    for doc in docs {
        let Some(d) = Day::parse(doc.str(Field::Day)).map(Day::number) else {
            continue;
        };
        let before = d.saturating_sub(a);
        for (f, v) in &doc.fields {
            if let (Field::Gap(g), crate::rollup::Value::Int(n)) = (f, v) {
                if *g == 0 || u32::from(*g) > before {
                    total += n;
                }
            }
        }
    }
    u64::try_from(total).unwrap_or(0)
}

/// Visitors of one daily document: every gap counter summed.
pub fn visitors_of(doc: &RollupDoc) -> u64 {
    let n: i64 = doc
        .fields
        .iter()
        .filter_map(|(f, v)| match (f, v) {
            (Field::Gap(_), crate::rollup::Value::Int(n)) => Some(*n),
            _ => None,
        })
        .sum();
    u64::try_from(n).unwrap_or(0)
}

/// How a figure finds the distinct visitors of its period in daily documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visitors {
    /// From the gap counters of people's documents (this module), read without their
    /// bitmaps; the period starts on this day.
    Counted(crate::event::Day),
    /// By uniting the documents' bitmaps: with bots included, people's and bots' documents
    /// are merged, and their counters cannot be.
    #[default]
    United,
}

impl Visitors {
    /// How `scope`'s figures of period `p` count visitors.
    pub fn of(p: &crate::stats::Period, scope: &crate::site::Scope) -> Visitors {
        let days = p.until.number().saturating_sub(p.since.number());
        if scope.include_bots || days >= u32::from(crate::rollup::MAX_GAP) {
            Visitors::United
        } else {
            Visitors::Counted(p.since)
        }
    }

    /// Distinct visitors of `docs` (daily documents of one key) over the period.
    pub fn distinct<'a>(self, docs: impl IntoIterator<Item = &'a RollupDoc>) -> u64 {
        match self {
            Visitors::Counted(since) => reached(docs, since),
            Visitors::United => distinct_visitors(docs),
        }
    }

    /// Visitors of one daily document.
    pub fn of_day(self, doc: &RollupDoc) -> u64 {
        match self {
            Visitors::Counted(_) => visitors_of(doc),
            Visitors::United => doc.bits(crate::rollup::Field::Visitors).len(),
        }
    }
}

/// Distinct visitors of `docs` (rollup documents with a visitor bitmap): the size of their
/// union, taken in one call (roaring's `MultiOps`, several times faster than adding the
/// bitmaps one by one into a growing one).
pub fn distinct_visitors<'a>(docs: impl IntoIterator<Item = &'a RollupDoc>) -> u64 {
    use roaring::MultiOps;
    docs.into_iter()
        .map(|d| d.bits(crate::rollup::Field::Visitors))
        .union()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_round_trips_and_cut_bytes_keep_whole_keys() {
        let mut r = Reach::default();
        r.mark(0, "/a|b", 2_461_000, true);
        r.mark(0, "/a|b", 2_461_009, true);
        r.mark(3, "x", 5, true);
        r.mark(3, "x", 5, false);
        r.mark(1, "", 7, true);
        let bytes = r.encode();
        assert_eq!(Reach::decode(&bytes), r);
        assert_eq!(r.entries().count(), 2);
        for cut in 0..bytes.len() {
            let got = Reach::decode(&bytes[..cut]);
            assert!(got.entries().all(|(c, s, d)| r.days(c, s) == *d));
        }
    }

    /// Every period of a few days, for the day's visitors and each page and type: the
    /// counted distinct visitors equal the union of the bitmaps.
    #[test]
    fn counted_visitors_equal_unions_over_every_period() {
        use crate::event::Event;
        use crate::rollup::{docs_of, DAILY_USERS};
        let first = Day::parse("2026-11-01").unwrap();
        let mut events = Vec::new();
        for v in 0..7u32 {
            for d in 0..12u32 {
                // Visitors come back at different rhythms, to pages and types by turns.
                if (d * (v + 1) + v) % (v % 4 + 2) != 0 {
                    continue;
                }
                let day = Day::from_number(first.number() + d).unwrap();
                let mut e = Event {
                    event_id: format!("{v}-{d}"),
                    event_type: ["page_view", "click"][(d % 2) as usize].into(),
                    user_id: Some(format!("u{v}")),
                    page_url: Some(format!("/p{}", (v + d) % 3)),
                    timestamp: day.start_millis() + 1000,
                    day,
                    ..Event::default()
                };
                e.derive_visitor();
                events.push(e);
            }
        }
        let docs = docs_of(&events);
        for rollup in std::iter::once(DAILY_USERS).chain(
            crate::rollup::catalog::reached_rollups()
                .into_iter()
                .map(|(_, r)| r),
        ) {
            let docs = docs.get(rollup).map_or(&[][..], Vec::as_slice);
            let keys: std::collections::BTreeSet<&str> = docs
                .iter()
                .map(|d| d.id.split_once('|').map_or("", |(_, k)| k))
                .collect();
            for key in keys {
                for a in 0..12 {
                    for b in a..12 {
                        let (a, b) = (first.number() + a, first.number() + b);
                        let within: Vec<&RollupDoc> = docs
                            .iter()
                            .filter(|d| d.id.split_once('|').map_or("", |(_, k)| k) == key)
                            .filter(|d| {
                                let n = Day::parse(d.str(Field::Day)).unwrap().number();
                                a <= n && n <= b
                            })
                            .collect();
                        let since = Day::from_number(a).unwrap();
                        assert_eq!(
                            Visitors::Counted(since).distinct(within.iter().copied()),
                            Visitors::United.distinct(within.iter().copied()),
                            "{rollup} {key} {a}..={b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gaps_and_their_changes() {
        let days = |d: &[u32]| d.iter().copied().collect::<RoaringBitmap>();
        let g: Vec<_> = gaps(&days(&[10, 11, 15, 15 + 366, 15 + 733])).collect();
        assert_eq!(g, [(10, 0), (11, 1), (15, 4), (381, 366), (748, 0)]);
        // A day in between splits a gap: its own cell, the next day's gap shortened.
        assert_eq!(
            gap_changes(&days(&[10, 15]), &days(&[10, 12, 15])),
            [(12, 2, 1), (15, 3, 1), (15, 5, -1)]
        );
        assert_eq!(gap_changes(&days(&[3]), &days(&[3])), []);
    }
}
