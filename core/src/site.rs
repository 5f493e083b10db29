//! Sites: one collector tracks several, each with its own keys and time zone. Every event
//! carries its `site`; rollup keys start with it; every figure reads one site.
//!
//! A site's days are its own: [`Zone`] turns instants into the site's calendar days and back,
//! from the IANA database bundled into the binary (`jiff`), so a site in `Asia/Shanghai`
//! counts an event at 00:30 local time on that local day. The store keeps a registry of the
//! sites (id, name, time zone), written by the collector at start-up, so the rollup consumer
//! and the CLI see the same days as the collector.
//!
//! A site's zone can change (a restart with another `timezone`). The registry keeps the zones
//! it had before ([`EarlierZone`]), and an event is rolled up on its day in the zone in effect
//! when it was received, or when its generation of rollups began if that is later (a rebuild
//! counts the whole log in the zone of its day): [`Zones::rolled_day`]. Erasure takes counts
//! back by the same rule, so they come off the days they were added to, whatever the consumer
//! or a restart did in between.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::Day;

pub use crate::event::DEFAULT_SITE;

/// Whether `id` is a valid site id: `[a-z0-9_-]{1,32}`.
pub fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A site as the store's registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub id: String,
    pub name: String,
    /// IANA time zone name (`UTC`, `Asia/Shanghai`, …).
    pub timezone: String,
    /// The zones the site had before `timezone`, oldest first (kept by the registry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<EarlierZone>,
}

/// A zone a site had until a restart changed it: events received before `until` (ms) count
/// in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierZone {
    pub timezone: String,
    pub until: i64,
}

impl SiteInfo {
    /// The default site of a collector configured with the seed's keys only.
    pub fn default_site() -> SiteInfo {
        SiteInfo {
            id: DEFAULT_SITE.into(),
            name: "Default".into(),
            timezone: "UTC".into(),
            earlier: Vec::new(),
        }
    }

    /// This site as the registry keeps it once written over `old` (its entry, if any) at
    /// `now`: the zones it had before carried on, and `old`'s zone added to them when it
    /// differs.
    pub fn over(&self, old: Option<&SiteInfo>, now: i64) -> SiteInfo {
        let mut out = self.clone();
        let Some(old) = old else { return out };
        out.earlier = old.earlier.clone();
        if old.timezone != self.timezone {
            let after = out.earlier.last().map_or(i64::MIN, |e| e.until);
            out.earlier.push(EarlierZone {
                timezone: old.timezone.clone(),
                until: now.max(after),
            });
        }
        out
    }
}

/// A time zone: where a site's days begin and end.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Default for Zone {
    fn default() -> Self {
        Zone::utc()
    }
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone named `name` in the bundled IANA database.
    pub fn named(name: &str) -> Result<Zone, String> {
        if name == "UTC" {
            return Ok(Zone::utc());
        }
        jiff::tz::TimeZone::get(name)
            .map(|tz| Zone {
                name: name.to_string(),
                tz,
            })
            .map_err(|_| format!("unknown time zone {name:?} (an IANA name such as Asia/Shanghai)"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local day holding the instant `ms` (milliseconds since the epoch); `None` outside
    /// the years 1..=9999.
    pub fn day_of(&self, ms: i64) -> Option<Day> {
        let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
        let d = ts.to_zoned_datetime(self.tz.clone()).date();
        Day::from_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    }

    /// The first instant of local day `day`, in milliseconds since the epoch (after the gap
    /// when a clock change skips midnight).
    pub fn start_millis(&self, day: Day) -> i64 {
        let (y, m, d) = day.ymd();
        let start = i16::try_from(y)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, m as i8, d as i8).ok())
            .and_then(|date| date.to_zoned_datetime(self.tz.clone()).ok());
        match start {
            Some(z) => z.timestamp().as_millisecond(),
            None => day.start_millis(),
        }
    }

    /// The instants of local days `since..=until`: `[start, end)` in milliseconds.
    pub fn span_millis(&self, since: Day, until: Day) -> (i64, i64) {
        (
            self.start_millis(since),
            self.start_millis(until.plus_days(1)),
        )
    }

    /// Today's local day.
    pub fn today(&self) -> Day {
        let now = jiff::Timestamp::now().as_millisecond();
        self.day_of(now).unwrap_or_else(Day::today)
    }
}

/// The time zones of the known sites, with the zones they had before; a site not in the
/// registry counts in UTC.
#[derive(Debug, Clone, Default)]
pub struct Zones(HashMap<String, Line>);

/// One site's zones: `earlier` (in force until each instant, oldest first), then `now`.
#[derive(Debug, Clone, Default)]
struct Line {
    now: Zone,
    earlier: Vec<(i64, Zone)>,
}

impl Line {
    fn at(&self, ms: i64) -> &Zone {
        self.earlier
            .iter()
            .find(|(until, _)| ms < *until)
            .map_or(&self.now, |(_, z)| z)
    }
}

impl Zones {
    /// From the registry; a name that is not in the database falls back to UTC (the collector
    /// refuses such names at start-up, so this only guards a hand-edited registry).
    pub fn of(sites: &[SiteInfo]) -> Zones {
        let zone = |name: &str| Zone::named(name).unwrap_or_default();
        Zones(
            sites
                .iter()
                .map(|s| {
                    let line = Line {
                        now: zone(&s.timezone),
                        earlier: s
                            .earlier
                            .iter()
                            .map(|e| (e.until, zone(&e.timezone)))
                            .collect(),
                    };
                    (s.id.clone(), line)
                })
                .collect(),
        )
    }

    /// The site's zone now.
    pub fn get(&self, site: &str) -> Zone {
        self.0.get(site).map(|l| l.now.clone()).unwrap_or_default()
    }

    /// The local day of `ms` on `site`, in its zone now.
    pub fn day_of(&self, site: &str, ms: i64) -> Day {
        day_in(self.0.get(site).map(|l| &l.now), ms)
    }

    /// The day an event of `site` at `ms`, received at `received_at`, is rolled up on in a
    /// generation of rollups begun at `begun`: in the zone in effect at the later of the two.
    pub fn rolled_day(&self, site: &str, ms: i64, received_at: i64, begun: i64) -> Day {
        let at = received_at.max(begun);
        day_in(self.0.get(site).map(|l| l.at(at)), ms)
    }
}

/// The day of `ms` in `zone` (UTC for a site not in the registry).
fn day_in(zone: Option<&Zone>, ms: i64) -> Day {
    let day = match zone {
        Some(z) => z.day_of(ms),
        None => Day::from_millis(ms),
    };
    day.unwrap_or_default()
}

/// The site a reader asked for (`asked`), or the only one there is: `None` asked with several
/// sites registered is an error naming them. An empty registry (nothing configured yet) has
/// the default site.
pub fn pick(registry: &[SiteInfo], asked: Option<&str>) -> Result<SiteInfo, String> {
    let ids = || {
        registry
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match asked {
        Some(id) => match registry.iter().find(|s| s.id == id) {
            Some(s) => Ok(s.clone()),
            None if registry.is_empty() && id == DEFAULT_SITE => Ok(SiteInfo::default_site()),
            None => Err(format!("unknown site {id:?}; sites: {}", ids())),
        },
        None => match registry {
            [] => Ok(SiteInfo::default_site()),
            [only] => Ok(only.clone()),
            _ => Err(format!("several sites: name one ({})", ids())),
        },
    }
}

/// A site with how many events it holds, as `/api/sites` and `maidian sites` list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteCount {
    pub id: String,
    pub name: String,
    pub timezone: String,
    /// Events counted in figures (bots' left out).
    pub events: u64,
    /// Events flagged as bots'.
    pub bot_events: u64,
}

/// Which events a figure counts: one site's, and by default not those flagged as bots'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The site (`site::valid_id`); figures never mix sites.
    pub site: String,
    /// Count events flagged as bots' too (`include_bots=true`, `--include-bots`).
    pub include_bots: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Scope::site(DEFAULT_SITE)
    }
}

impl Scope {
    /// The people of `site`.
    pub fn site(site: &str) -> Scope {
        Scope {
            site: site.to_string(),
            include_bots: false,
        }
    }

    /// This scope with bots included or not.
    pub fn bots(mut self, include: bool) -> Scope {
        self.include_bots = include;
        self
    }
}

/// `site|key`: the `_id` of document `key` of `site` in every rollup.
pub fn site_key(site: &str, key: &str) -> String {
    let mut out = String::with_capacity(site.len() + 1 + key.len());
    out.push_str(site);
    out.push('|');
    out.push_str(key);
    out
}

/// The document key within its site: `_id` without its `site|` prefix.
pub fn key_in_site<'a>(site: &str, id: &'a str) -> &'a str {
    id.strip_prefix(site)
        .and_then(|rest| rest.strip_prefix('|'))
        .unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picking_a_site() {
        let one = vec![SiteInfo::default_site()];
        assert_eq!(pick(&one, None).unwrap().id, "default");
        assert_eq!(pick(&[], None).unwrap().id, "default");
        let two = vec![
            SiteInfo::default_site(),
            SiteInfo {
                id: "shop".into(),
                name: "Shop".into(),
                timezone: "Asia/Shanghai".into(),
                earlier: Vec::new(),
            },
        ];
        assert_eq!(pick(&two, Some("shop")).unwrap().timezone, "Asia/Shanghai");
        assert!(pick(&two, None).unwrap_err().contains("default, shop"));
        assert!(pick(&two, Some("blog"))
            .unwrap_err()
            .contains("unknown site"));
    }

    #[test]
    fn a_changed_zone_is_remembered_and_rolls_by_when_events_arrived() {
        let site = |tz: &str| SiteInfo {
            id: "shop".into(),
            name: "Shop".into(),
            timezone: tz.into(),
            earlier: Vec::new(),
        };
        let utc = site("UTC").over(None, 100);
        assert!(utc.earlier.is_empty());
        assert_eq!(
            site("UTC").over(Some(&utc), 200),
            utc,
            "unchanged: no history"
        );
        let sh = site("Asia/Shanghai").over(Some(&utc), 1_000);
        assert_eq!(
            sh.earlier,
            vec![EarlierZone {
                timezone: "UTC".into(),
                until: 1_000
            }]
        );
        // Back to UTC: both earlier zones kept, in order, never going back in time.
        let back = site("UTC").over(Some(&sh), 900);
        assert_eq!(back.earlier.len(), 2);
        assert_eq!(back.earlier[1].until, 1_000);
        assert_eq!(site("UTC").over(Some(&back), 5_000).earlier, back.earlier);

        // 2026-11-29T16:30:00Z: the 29th in UTC, the 30th in Shanghai.
        let ms = 1_795_969_800_000;
        let zones = Zones::of(&[site("Asia/Shanghai").over(Some(&utc), ms + 10)]);
        let (d29, d30) = ("2026-11-29", "2026-11-30");
        assert_eq!(zones.day_of("shop", ms).to_string(), d30, "today's zone");
        assert_eq!(zones.rolled_day("shop", ms, ms, 0).to_string(), d29);
        assert_eq!(zones.rolled_day("shop", ms, ms + 10, 0).to_string(), d30);
        // A generation begun after the change counts everything in the new zone.
        assert_eq!(zones.rolled_day("shop", ms, ms, ms + 20).to_string(), d30);
        assert_eq!(
            zones.rolled_day("blog", ms, ms, 0).to_string(),
            d29,
            "unknown: UTC"
        );
    }

    #[test]
    fn ids() {
        for ok in ["default", "shop", "a", "shop-2_b", &"x".repeat(32)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "Shop", "a b", "a|b", "a.b", &"x".repeat(33), "商店"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn shanghai_days_start_at_local_midnight() {
        let sh = Zone::named("Asia/Shanghai").unwrap();
        // 2026-11-29T16:30:00Z is 00:30 on 2026-11-30 in Shanghai.
        let ms = 1_795_969_800_000;
        assert_eq!(Day::from_millis(ms).unwrap().to_string(), "2026-11-29");
        assert_eq!(sh.day_of(ms).unwrap().to_string(), "2026-11-30");
        let day = Day::parse("2026-11-30").unwrap();
        assert_eq!(sh.start_millis(day), ms - 30 * 60_000);
        assert_eq!(
            sh.span_millis(day, day).1 - sh.span_millis(day, day).0,
            86_400_000
        );
        assert!(Zone::named("Mars/Olympus").is_err());
    }

    #[test]
    fn days_across_a_clock_change() {
        // Europe/Berlin leaves summer time on 2026-10-25: that day has 25 hours.
        let berlin = Zone::named("Europe/Berlin").unwrap();
        let day = Day::parse("2026-10-25").unwrap();
        let (start, end) = berlin.span_millis(day, day);
        assert_eq!(end - start, 25 * 3_600_000);
        assert_eq!(berlin.day_of(start).unwrap(), day);
        assert_eq!(berlin.day_of(end - 1).unwrap(), day);
        assert_eq!(berlin.day_of(end).unwrap(), day.plus_days(1));
    }
}
