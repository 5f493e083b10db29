//! Retention: visitors grouped by the day they were first seen; day-N retention is the share
//! of a cohort active again N days later. Reads the first-seen and daily-visitor rollups.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::percent;
use crate::event::Day;
use crate::rollup::{self, Field};
use crate::stats::Period;
use crate::store::{RollupDoc, Store, StoreError};

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

pub fn compute(p: Period, first_seen: &[RollupDoc], daily_visitor: &[RollupDoc]) -> Retention {
    let mut cohorts: HashMap<Day, Vec<&str>> = HashMap::new();
    for d in first_seen {
        if let Some(day) = Day::parse(d.str(Field::FirstDay)) {
            cohorts.entry(day).or_default().push(d.id.as_str());
        }
    }
    let active: HashSet<(Day, &str)> = daily_visitor
        .iter()
        .filter_map(|d| Some((Day::parse(d.str(Field::Day))?, d.str(Field::Visitor))))
        .collect();
    let mut rows: Vec<Cohort> = cohorts
        .into_iter()
        .map(|(cohort, visitors)| {
            let span = cohort.days_until(p.until);
            let retained = (0..=span)
                .map(|n| {
                    let day = cohort.plus_days(n);
                    visitors
                        .iter()
                        .filter(|v| active.contains(&(day, **v)))
                        .count() as u64
                })
                .collect();
            Cohort {
                cohort,
                users: visitors.len() as u64,
                retained,
            }
        })
        .collect();
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

/// Retention from exactly `events`, as a rebuild would give it.
pub fn from_events(p: Period, events: &[crate::event::Event]) -> Retention {
    let mut d = rollup::docs_of(events);
    let first = d.remove(rollup::FIRST_SEEN).unwrap_or_default();
    let daily = d.remove(rollup::DAILY_VISITOR).unwrap_or_default();
    let in_period = |f: Field| {
        move |doc: &RollupDoc| {
            Day::parse(doc.str(f)).is_some_and(|day| day >= p.since && day <= p.until)
        }
    };
    let first: Vec<RollupDoc> = first
        .into_iter()
        .filter(in_period(Field::FirstDay))
        .collect();
    let daily: Vec<RollupDoc> = daily.into_iter().filter(in_period(Field::Day)).collect();
    compute(p, &first, &daily)
}

pub async fn retention(
    store: &Store,
    p: Period,
    scope: &super::Scope,
) -> Result<Retention, StoreError> {
    let (first_seen, daily_visitor) = tokio::try_join!(
        store.rollup_figures(rollup::FIRST_SEEN, Field::FirstDay, p.since, p.until, scope),
        store.rollup_figures(rollup::DAILY_VISITOR, Field::Day, p.since, p.until, scope),
    )?;
    Ok(compute(p, &first_seen, &daily_visitor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::Value;

    fn doc(id: &str, pairs: &[(Field, &str)]) -> RollupDoc {
        RollupDoc {
            id: id.into(),
            fields: pairs
                .iter()
                .map(|(k, v)| (*k, Value::Str(v.to_string())))
                .collect(),
        }
    }

    #[test]
    fn cohorts_with_gaps() {
        let p = Period::last_days(4, Day::parse("2026-11-04").unwrap());
        let first = [
            doc("a", &[(Field::FirstDay, "2026-11-01")]),
            doc("b", &[(Field::FirstDay, "2026-11-01")]),
            doc("c", &[(Field::FirstDay, "2026-11-03")]),
        ];
        let active = [
            ("a", "2026-11-01"),
            ("b", "2026-11-01"),
            ("a", "2026-11-03"), // day 2, with a gap on day 1
            ("b", "2026-11-04"), // day 3
            ("c", "2026-11-03"),
            ("c", "2026-11-04"), // day 1
        ]
        .map(|(v, d)| doc(&format!("{d}|{v}"), &[(Field::Visitor, v), (Field::Day, d)]));
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
    fn an_empty_period() {
        let p = Period::last_days(3, Day::parse("2026-11-04").unwrap());
        let r = compute(p, &[], &[]);
        assert!(r.cohorts.is_empty());
        assert_eq!(r.retention_data.len(), 3);
        assert!(r.retention_data.iter().all(|d| d.retention_rate == 0.0));
    }
}
