//! The seed's statistics (events by type and page views by page over the last N days, read
//! from rollups by `engine::stats`) and the period every figure covers.

use serde::{Deserialize, Serialize};

use crate::event::Day;
use crate::site::Zone;

/// How many events one visitor (or no known visitor) produced under one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypeStat {
    pub event_type: String,
    pub count: u64,
    pub unique_users: u64,
}

/// Page views of one page in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageStat {
    pub page_url: String,
    pub views: u64,
    pub unique_users: u64,
}

/// The period "last N days": from `since` through `until`, whole days of a site's time zone;
/// `start_ms..end_ms` are the instants they span.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub days: u32,
    pub since: Day,
    pub until: Day,
    #[serde(skip)]
    pub start_ms: i64,
    #[serde(skip)]
    pub end_ms: i64,
}

impl Period {
    /// The last `days` UTC days ending with `today`.
    pub fn last_days(days: u32, today: Day) -> Period {
        Period::last_days_in(days, today, &Zone::utc())
    }

    /// The last `days` days of `zone` ending with `today` (a day of that zone).
    pub fn last_days_in(days: u32, today: Day, zone: &Zone) -> Period {
        let since = today.window_start(days);
        let (start_ms, end_ms) = zone.span_millis(since, today);
        Period {
            days,
            since,
            until: today,
            start_ms,
            end_ms,
        }
    }

    /// The last `days` days of `zone`, today included.
    pub fn recent(days: u32, zone: &Zone) -> Period {
        Period::last_days_in(days, zone.today(), zone)
    }
}
