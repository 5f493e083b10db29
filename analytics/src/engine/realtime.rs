//! Real-time figures from the last hour of raw events: an indexed time range, read as
//! `(timestamp, visitor)` pairs only.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::engine::Scope;
use maidian_store::{Store, StoreError};

pub const ONLINE_WINDOW_MS: i64 = 5 * 60_000;
pub const MINUTES: usize = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Realtime {
    pub recent_events_1h: u64,
    /// Distinct visitors active in the last 5 minutes.
    pub online_users: u64,
    /// Events per minute, oldest first, the last entry being the current minute.
    pub events_per_minute: Vec<u64>,
    pub generated_at: i64,
}

/// `last_hour`: `(timestamp, visitor)` of the events since an hour ago.
pub fn compute(now_ms: i64, last_hour: &[(i64, Option<String>)]) -> Realtime {
    let mut online = HashSet::new();
    let mut per_minute = vec![0u64; MINUTES];
    let current_minute = now_ms.div_euclid(60_000);
    for (timestamp, visitor) in last_hour {
        if now_ms - timestamp <= ONLINE_WINDOW_MS {
            if let Some(v) = visitor {
                online.insert(v.as_str());
            }
        }
        let age = current_minute - timestamp.div_euclid(60_000);
        if (0..MINUTES as i64).contains(&age) {
            per_minute[MINUTES - 1 - age as usize] += 1;
        }
    }
    Realtime {
        recent_events_1h: last_hour.len() as u64,
        online_users: online.len() as u64,
        events_per_minute: per_minute,
        generated_at: now_ms,
    }
}

pub async fn realtime(store: &Store, now_ms: i64, scope: &Scope) -> Result<Realtime, StoreError> {
    let activity: Vec<(i64, Option<String>)> = store
        .activity_since(&scope.site, now_ms - 3_600_000)
        .await?
        .into_iter()
        // Events stamped after `now` (a clock slightly ahead) are not part of the last hour.
        .filter(|(t, _, bot)| *t <= now_ms && (scope.include_bots || !bot))
        .map(|(t, v, _)| (t, v))
        .collect();
    Ok(compute(now_ms, &activity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: &str, ts: i64) -> (i64, Option<String>) {
        (ts, Some(v.into()))
    }

    #[test]
    fn online_users_and_minutes() {
        let now = 1_795_996_800_000 + 30_000; // 30 s into a minute
        let events = [
            ev("a", now - 1_000),
            ev("a", now - 2_000),
            ev("b", now - 4 * 60_000),
            ev("c", now - 10 * 60_000),
        ];
        let r = compute(now, &events);
        assert_eq!((r.recent_events_1h, r.online_users), (4, 2));
        assert_eq!(r.events_per_minute[MINUTES - 1], 2);
        assert_eq!(r.events_per_minute[MINUTES - 1 - 4], 1);
        assert_eq!(r.events_per_minute[MINUTES - 1 - 10], 1);
        assert_eq!(r.events_per_minute.iter().sum::<u64>(), 4);
    }
}
