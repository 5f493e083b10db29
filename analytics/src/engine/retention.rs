//! Retention: visitors grouped by the day they were first seen; day-N retention is the share
//! of a cohort active again N days later. Reads the retention counters (visitors by first day
//! and active day, [`rollup::RETENTION`]); with bots included, the first-day and daily-visitor
//! bitmaps (a visitor may be in both a people's and a bot's cohort, which counters cannot
//! merge).

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use super::percent;
use maidian_core::event::Day;
use maidian_core::rollup::{self, Field};
use maidian_core::stats::Period;
use maidian_store::{RollupDoc, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionDay {
    pub day: u32,
    /// Percent of the users of every cohort old enough to have a day N.
    pub retention_rate: f64,
    pub users: u64,
    pub cohort_users: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub cohort: Day,
    pub users: u64,
    /// Users active N days after the cohort day, for N = 0.. while within the period.
    pub retained: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    pub period: Period,
    pub retention_data: Vec<RetentionDay>,
    pub cohorts: Vec<Cohort>,
}

/// Retention of period `p` from the first-day bitmaps of every day up to the period's end
/// (`first_days`: with bots included a visitor may sit in a people's and a bot's bitmap;
/// their cohort is the earlier) and the daily visitor bitmaps of the period.
pub fn compute(p: Period, first_days: &[RollupDoc], daily_users: &[RollupDoc]) -> Retention {
    let mut firsts: BTreeMap<Day, RoaringBitmap> = BTreeMap::new();
    for d in first_days {
        if let Some(day) = Day::parse(d.str(Field::Day)) {
            *firsts.entry(day).or_default() |= d.bits(Field::Visitors);
        }
    }
    let mut seen = RoaringBitmap::new();
    let mut cohorts: Vec<(Day, RoaringBitmap)> = Vec::new();
    for (day, visitors) in firsts {
        let fresh = &visitors - &seen;
        seen |= visitors;
        if day >= p.since && day <= p.until && !fresh.is_empty() {
            cohorts.push((day, fresh));
        }
    }
    let mut active: HashMap<Day, RoaringBitmap> = HashMap::new();
    for d in daily_users {
        if let Some(day) = Day::parse(d.str(Field::Day)) {
            *active.entry(day).or_default() |= d.bits(Field::Visitors);
        }
    }
    let mut rows: Vec<Cohort> = cohorts
        .iter()
        .map(|(cohort, visitors)| Cohort {
            cohort: *cohort,
            users: visitors.len(),
            retained: vec![0; cohort.days_until(p.until) as usize + 1],
        })
        .collect();
    if dense(&seen) {
        count_by_visitor(&mut rows, &cohorts, &active);
    } else {
        count_by_intersection(&mut rows, &cohorts, &active);
    }
    finish(p, rows)
}

/// Retention of period `p` from the retention counters of its cohorts: each document counts
/// the visitors first seen on its `day` who were active on its `active_day`; a cohort's size
/// is its day-0 counter (a visitor is active on their first day).
pub fn from_counters(p: Period, counters: &[RollupDoc]) -> Retention {
    let mut rows: BTreeMap<Day, Cohort> = BTreeMap::new();
    for d in counters {
        let (Some(cohort), Some(day)) = (
            Day::parse(d.str(Field::Day)),
            Day::parse(d.str(Field::ActiveDay)),
        ) else {
            continue;
        };
        if cohort < p.since || day < cohort || day > p.until {
            continue;
        }
        let row = rows.entry(cohort).or_insert_with(|| Cohort {
            cohort,
            users: 0,
            retained: vec![0; cohort.days_until(p.until) as usize + 1],
        });
        let n = u64::try_from(d.int(Field::Count)).unwrap_or(0);
        let i = cohort.days_until(day) as usize;
        if i == 0 {
            row.users += n;
        }
        if let Some(slot) = row.retained.get_mut(i) {
            *slot += n;
        }
    }
    finish(p, rows.into_values().filter(|r| r.users > 0).collect())
}

/// The per-day rates of cohort rows.
fn finish(p: Period, mut rows: Vec<Cohort>) -> Retention {
    rows.sort_by_key(|c| c.cohort);
    let retention_data = (0..p.days)
        .map(|n| {
            let eligible = rows.iter().filter(|c| c.retained.len() > n as usize);
            let (users, cohort_users) = eligible.fold((0, 0), |(u, t), c| {
                (u + c.retained[n as usize], t + c.users)
            });
            RetentionDay {
                day: n,
                retention_rate: percent(users, cohort_users),
                users,
                cohort_users,
            }
        })
        .collect();
    Retention {
        period: p,
        retention_data,
        cohorts: rows,
    }
}

/// Whether the visitor numbers of `seen` are dense enough to index an array by: the
/// dictionary numbers a site's visitors 0, 1, 2, … as it meets them, so they always are
/// unless numbers were damaged; then the cohorts are intersected instead.
fn dense(seen: &RoaringBitmap) -> bool {
    seen.max()
        .is_none_or(|top| u64::from(top) < 2 * seen.len() + (1 << 20))
}

/// Fills each row's `retained` by walking each active day's visitors once: each visitor's
/// cohort is looked up in an array by number, so the work is the number of (visitor, active
/// day) pairs, whatever the number of cohorts. At ten million events this took retention from
/// 0.08 s of bitmap intersections (cohorts × days of them) to a few ms.
fn count_by_visitor(
    rows: &mut [Cohort],
    cohorts: &[(Day, RoaringBitmap)],
    active: &HashMap<Day, RoaringBitmap>,
) {
    let top = cohorts.iter().filter_map(|(_, v)| v.max()).max();
    // Each visitor's cohort: its index + 1, 0 for none (first seen before the period).
    let mut cohort_of = vec![0u32; top.map_or(0, |t| t as usize + 1)];
    for (i, (_, visitors)) in cohorts.iter().enumerate() {
        for v in visitors {
            cohort_of[v as usize] = i as u32 + 1;
        }
    }
    for (day, visitors) in active {
        for v in visitors {
            let Some(&c) = cohort_of.get(v as usize).filter(|c| **c != 0) else {
                continue;
            };
            let row = &mut rows[c as usize - 1];
            if *day >= row.cohort {
                if let Some(n) = row.retained.get_mut(row.cohort.days_until(*day) as usize) {
                    *n += 1;
                }
            }
        }
    }
}

/// Fills each row's `retained` with one bitmap intersection per cohort and day after it.
fn count_by_intersection(
    rows: &mut [Cohort],
    cohorts: &[(Day, RoaringBitmap)],
    active: &HashMap<Day, RoaringBitmap>,
) {
    for (row, (cohort, visitors)) in rows.iter_mut().zip(cohorts) {
        for (n, slot) in row.retained.iter_mut().enumerate() {
            *slot = active
                .get(&cohort.plus_days(n as u32))
                .map_or(0, |a| a.intersection_len(visitors));
        }
    }
}

/// Retention from exactly `events`, as a rebuild would give it.
pub fn from_events(p: Period, events: &[maidian_core::event::Event]) -> Retention {
    let mut d = rollup::docs_of(events);
    let first = d.remove(rollup::FIRST_DAY).unwrap_or_default();
    let daily = d.remove(rollup::DAILY_USERS).unwrap_or_default();
    let until = |doc: &RollupDoc| Day::parse(doc.str(Field::Day)).is_some_and(|d| d <= p.until);
    let first: Vec<RollupDoc> = first.into_iter().filter(until).collect();
    let daily: Vec<RollupDoc> = daily
        .into_iter()
        .filter(|doc| until(doc) && Day::parse(doc.str(Field::Day)).is_some_and(|d| d >= p.since))
        .collect();
    compute(p, &first, &daily)
}

pub async fn retention(
    store: &Store,
    p: Period,
    scope: &super::Scope,
) -> Result<Retention, StoreError> {
    if !scope.include_bots {
        let counters = store
            .rollup_figures(rollup::RETENTION, Field::Day, p.since, p.until, scope)
            .await?;
        return Ok(from_counters(p, &counters));
    }
    // Every first-day bitmap up to the period's end: each visitor is in one (two at most
    // with bots included), so this grows with visitors ever seen, a few bytes each.
    let origin = Day::parse("1970-01-01").unwrap_or(p.since);
    let (first_days, daily_users) = tokio::try_join!(
        store.rollup_figures(rollup::FIRST_DAY, Field::Day, origin, p.until, scope),
        store.rollup_figures(rollup::DAILY_USERS, Field::Day, p.since, p.until, scope),
    )?;
    Ok(compute(p, &first_days, &daily_users))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_core::rollup::Value;

    /// A day's bitmap document: visitors a = 1, b = 2, c = 3, z = 9.
    fn doc(day: &str, visitors: &str) -> RollupDoc {
        let bits: RoaringBitmap = visitors
            .bytes()
            .map(|c| {
                if c == b'z' {
                    9
                } else {
                    u32::from(c - b'a') + 1
                }
            })
            .collect();
        RollupDoc {
            id: day.into(),
            fields: [
                (Field::Day, Value::Str(day.into())),
                (
                    Field::Visitors,
                    Value::Bits(maidian_core::bitmap::encode(&bits)),
                ),
            ]
            .into(),
        }
    }

    #[test]
    fn cohorts_with_gaps() {
        let p = Period::last_days(4, Day::parse("2026-11-04").unwrap());
        let first = [
            doc("2026-10-01", "z"), // before the period: not a cohort
            doc("2026-11-01", "ab"),
            doc("2026-11-03", "c"),
            // With bots included, z's bot twin first seen in the period: z stays in October.
            doc("2026-11-03", "z"),
        ];
        let active = [
            doc("2026-11-01", "abz"),
            doc("2026-11-03", "acz"), // a: day 2, with a gap on day 1
            doc("2026-11-04", "bc"),  // b: day 3; c: day 1
        ];
        let r = compute(p, &first, &active);
        assert_eq!(r.cohorts[0].retained, vec![2, 0, 1, 1]);
        assert_eq!(r.cohorts[1].retained, vec![1, 1]);
        let rates: Vec<(u32, f64, u64, u64)> = r
            .retention_data
            .iter()
            .map(|d| (d.day, d.retention_rate, d.users, d.cohort_users))
            .collect();
        assert_eq!(
            rates,
            vec![
                (0, 100.0, 3, 3),
                (1, 33.3, 1, 3),
                (2, 50.0, 1, 2),
                (3, 50.0, 1, 2)
            ]
        );
    }

    #[test]
    fn counting_by_visitor_equals_intersecting() {
        let day0 = Day::parse("2026-11-01").unwrap();
        let p = Period::last_days(10, day0.plus_days(9));
        // Visitor v first seen on day v % 7, active on the days d where (v * d) % 5 < 2,
        // from their first day on; numbers dense, then spread far apart.
        for spread in [1u32, 40_000] {
            let mut cohorts: Vec<(Day, RoaringBitmap)> = Vec::new();
            let mut active: HashMap<Day, RoaringBitmap> = HashMap::new();
            for v in 0..3_000u32 {
                let first = v % 7;
                match cohorts
                    .iter_mut()
                    .find(|(d, _)| *d == day0.plus_days(first))
                {
                    Some((_, b)) => {
                        b.insert(v * spread);
                    }
                    None => {
                        cohorts.push((day0.plus_days(first), [v * spread].into_iter().collect()))
                    }
                }
                for d in first..10 {
                    if (v * d) % 5 < 2 || d == first {
                        active
                            .entry(day0.plus_days(d))
                            .or_default()
                            .insert(v * spread);
                    }
                }
            }
            let rows = || -> Vec<Cohort> {
                cohorts
                    .iter()
                    .map(|(c, v)| Cohort {
                        cohort: *c,
                        users: v.len(),
                        retained: vec![0; c.days_until(p.until) as usize + 1],
                    })
                    .collect()
            };
            let (mut a, mut b) = (rows(), rows());
            count_by_visitor(&mut a, &cohorts, &active);
            count_by_intersection(&mut b, &cohorts, &active);
            assert_eq!(a, b, "spread {spread}");
            assert!(a.iter().all(|c| c.retained[0] == c.users));
            let seen = cohorts.iter().fold(RoaringBitmap::new(), |s, (_, v)| s | v);
            assert_eq!(dense(&seen), spread == 1);
        }
    }

    #[test]
    fn an_empty_period() {
        let p = Period::last_days(3, Day::parse("2026-11-04").unwrap());
        let r = compute(p, &[], &[]);
        assert!(r.cohorts.is_empty());
        assert_eq!(r.retention_data.len(), 3);
        assert!(r.retention_data.iter().all(|d| d.retention_rate == 0.0));
    }
}
