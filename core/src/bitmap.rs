//! Distinct-visitor sets as compressed bitmaps (Roaring) over dense visitor numbers.
//!
//! Every visitor of a site gets a number (`u32`) from the store's dictionary the first time
//! the rollup consumer meets them; numbers are never reused (an erased visitor's is retired)
//! and are shared by every rollup generation, so a rebuild writes the very bytes the live
//! consumer wrote. A rollup document keeps a set as the bitmap's portable serialization
//! ([`Value::Bits`](crate::rollup::Value::Bits)); a union of the bitmaps of any range of days
//! answers "distinct visitors over the range" exactly.

use std::collections::HashMap;

use roaring::RoaringBitmap;

use crate::event::Event;

/// A change to one bitmap: numbers to add, then numbers to take out. Applying it is
/// idempotent, so a chunk applied twice sets and clears the same bits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bits {
    pub set: RoaringBitmap,
    pub clear: RoaringBitmap,
}

impl Bits {
    /// `old` with this change applied.
    pub fn apply(&self, old: &RoaringBitmap) -> RoaringBitmap {
        &(old | &self.set) - &self.clear
    }

    /// Folds `later` (applied after this one) into this change.
    pub fn then(&mut self, later: &Bits) {
        self.set -= &later.clear;
        self.set |= &later.set;
        self.clear -= &later.set;
        self.clear |= &later.clear;
    }

    /// The change that takes this one back: what it set is cleared.
    pub fn undo(&self) -> Bits {
        Bits {
            set: RoaringBitmap::new(),
            clear: self.set.clone(),
        }
    }
}

/// The stored form of a bitmap (Roaring's portable format: the same set, the same bytes).
pub fn encode(b: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = b.serialize_into(&mut out);
    out
}

/// A stored bitmap; bytes that are not one read as the empty set.
pub fn decode(bytes: &[u8]) -> RoaringBitmap {
    RoaringBitmap::deserialize_from(bytes).unwrap_or_default()
}

/// Visitor numbers, keyed `site|visitor` (as `rollup::site_key` makes it).
pub type Numbers = HashMap<String, u32>;

/// The numbers of dictionary keys (`site|visitor`), by site: what an erasure clears from each
/// site's bitmaps.
pub fn numbers_by_site(numbers: &Numbers) -> HashMap<String, RoaringBitmap> {
    let mut by_site: HashMap<String, RoaringBitmap> = HashMap::new();
    for (key, n) in numbers {
        let site = key.split('|').next().unwrap_or_default();
        by_site.entry(site.to_string()).or_default().insert(*n);
    }
    by_site
}

/// The `site|visitor` keys of `events`, each once, in order of first appearance: the order
/// in which a dictionary numbers new visitors.
pub fn visitor_keys<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in events {
        if let Some(v) = e.visitor.as_deref() {
            let k = crate::site::site_key(e.site_id(), v);
            if seen.insert(k.clone()) {
                out.push(k);
            }
        }
    }
    out
}

/// Numbers 0, 1, … in order of first appearance: what a fresh dictionary would assign. For
/// figures computed from raw events in memory, where only the sets' sizes matter.
pub fn local_numbers<'a>(events: impl IntoIterator<Item = &'a Event>) -> Numbers {
    visitor_keys(events)
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn bm(v: &[u32]) -> RoaringBitmap {
        v.iter().copied().collect()
    }

    #[test]
    fn unions_equal_set_unions() {
        // Table of (sets, expected distinct count), including container boundaries (65 536)
        // and a set dense enough to be stored as a bitmap container (> 4 096 values).
        let dense: Vec<u32> = (0..10_000).map(|i| i * 3).collect();
        let cases: Vec<Vec<Vec<u32>>> = vec![
            vec![],
            vec![vec![1, 2, 3], vec![3, 4]],
            vec![vec![65_535, 65_536], vec![65_536, 131_072], vec![0]],
            vec![dense.clone(), vec![1, 3, 29_997, 40_000]],
            vec![vec![u32::MAX], vec![u32::MAX - 1, u32::MAX]],
        ];
        for sets in cases {
            let mut want = BTreeSet::new();
            let mut got = RoaringBitmap::new();
            for s in &sets {
                want.extend(s.iter().copied());
                // Each set goes through its stored form, as rollups hold them.
                got |= decode(&encode(&bm(s)));
            }
            assert_eq!(got.len(), want.len() as u64, "{sets:?}");
            assert_eq!(got.iter().collect::<BTreeSet<u32>>(), want);
        }
    }

    #[test]
    fn the_same_set_has_the_same_bytes_however_it_was_made() {
        let a = bm(&[5, 1, 70_000, 3]);
        let mut b = bm(&[70_000, 9]);
        b.insert(1);
        b.insert(3);
        b.insert(5);
        b.remove(9);
        assert_eq!(encode(&a), encode(&b));
        assert_eq!(decode(b"not a bitmap"), RoaringBitmap::new());
    }

    #[test]
    fn changes_fold_in_order_and_undo() {
        let mut first = Bits {
            set: bm(&[1, 2]),
            clear: bm(&[7]),
        };
        let later = Bits {
            set: bm(&[7]),
            clear: bm(&[2, 9]),
        };
        let old = bm(&[2, 7, 9, 11]);
        let stepwise = later.apply(&first.apply(&old));
        first.then(&later);
        assert_eq!(first.apply(&old), stepwise);
        assert_eq!(stepwise, bm(&[1, 7, 11]));
        assert_eq!(first.undo().apply(&stepwise), bm(&[11]));
    }
}
