//! The behaviour summary of a period, from rollups only.
//!
//! Definitions (also in the README): a *session* is counted on the day it started; its
//! duration is its last event minus its first; a *bounce* is a session with at most one page
//! view and no click or form submit. *Time on page* is the longest visible duration reported
//! for a page view (page_leave events carry the running total).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{percent, seconds, Scope, Visitors};
use maidian_core::event::PAGE_VIEW;
use maidian_core::rollup::{self, Field};
use maidian_core::stats::Period;
use maidian_store::{RollupDoc, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub total_events: u64,
    pub active_users: u64,
    pub sessions: u64,
    pub page_views: u64,
    /// Seconds.
    pub avg_session_duration: f64,
    /// Percent of sessions.
    pub bounce_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub day: String,
    pub events: u64,
    pub page_views: u64,
    pub users: u64,
    pub sessions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageRow {
    pub page_url: String,
    pub views: u64,
    pub unique_users: u64,
    /// Seconds; `None` when no page_leave reported a duration.
    pub avg_time_on_page: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameCount {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub period: Period,
    pub overview: Overview,
    pub daily: Vec<DayRow>,
    pub top_pages: Vec<PageRow>,
    pub top_events: Vec<NameCount>,
    pub top_referrers: Vec<NameCount>,
    pub browsers: Vec<NameCount>,
    pub operating_systems: Vec<NameCount>,
    pub devices: Vec<NameCount>,
    /// Events flagged as bots' in the period, by reason: left out of every other figure
    /// unless bots are included, and listed here either way.
    pub bots: Vec<ReasonCount>,
    /// Sessions (and their visitors) by the channel of their landing page view.
    pub channels: Vec<ChannelRow>,
    /// Sessions that landed with campaign tags, by source, medium and campaign.
    pub campaigns: Vec<CampaignRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRow {
    pub channel: String,
    pub visitors: u64,
    pub sessions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRow {
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub visitors: u64,
    pub sessions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub reason: String,
    pub events: u64,
}

/// The rollup documents a summary reads.
#[derive(Debug, Default)]
pub struct Inputs {
    pub daily_type: Vec<RollupDoc>,
    pub daily_users: Vec<RollupDoc>,
    pub daily_page: Vec<RollupDoc>,
    pub daily_sessions: Vec<RollupDoc>,
    pub daily_channel: Vec<RollupDoc>,
    pub daily_campaign: Vec<RollupDoc>,
    pub daily_page_time: Vec<RollupDoc>,
    pub daily_referrer: Vec<RollupDoc>,
    pub daily_agent: Vec<RollupDoc>,
    pub daily_bot: Vec<RollupDoc>,
    /// How the documents' distinct visitors are found.
    pub visitors: Visitors,
}

pub async fn fetch(store: &Store, p: Period, scope: &Scope) -> Result<Inputs, StoreError> {
    // Boxed: ten read futures inline make a future too large for a worker's stack in debug
    // builds.
    // Those with visitors counted (from gap counters, without bitmaps, unless bots are
    // included), the others as figures read them.
    let counted = |rollup| Box::pin(store.rollup_counted(rollup, &p, scope));
    let get = |rollup| Box::pin(store.rollup_figures(rollup, Field::Day, p.since, p.until, scope));
    let (
        daily_type,
        daily_users,
        daily_page,
        daily_sessions,
        daily_channel,
        daily_campaign,
        daily_page_time,
        daily_referrer,
        daily_agent,
        daily_bot,
    ) = tokio::try_join!(
        counted(rollup::DAILY_TYPE),
        counted(rollup::DAILY_USERS),
        counted(rollup::DAILY_PAGE),
        get(rollup::DAILY_SESSIONS),
        counted(rollup::DAILY_CHANNEL),
        counted(rollup::DAILY_CAMPAIGN),
        get(rollup::DAILY_PAGE_TIME),
        get(rollup::DAILY_REFERRER),
        get(rollup::DAILY_AGENT),
        Box::pin(store.rollup_between(
            rollup::DAILY_BOT,
            Field::Day,
            &scope.site,
            p.since,
            p.until
        )),
    )?;
    Ok(Inputs {
        daily_type,
        daily_users,
        daily_page,
        daily_sessions,
        daily_channel,
        daily_campaign,
        daily_page_time,
        daily_referrer,
        daily_agent,
        daily_bot,
        visitors: Visitors::of(&p, scope),
    })
}

impl Inputs {
    /// The inputs a rebuild from exactly `events` would give (see [`rollup::docs_of`]).
    pub fn from_events(events: &[maidian_core::event::Event]) -> Inputs {
        let mut d = rollup::docs_of(events);
        let mut get = |n: &str| d.remove(n).unwrap_or_default();
        Inputs {
            daily_type: get(rollup::DAILY_TYPE),
            daily_users: get(rollup::DAILY_USERS),
            daily_page: get(rollup::DAILY_PAGE),
            daily_sessions: get(rollup::DAILY_SESSIONS),
            daily_channel: get(rollup::DAILY_CHANNEL),
            daily_campaign: get(rollup::DAILY_CAMPAIGN),
            daily_page_time: get(rollup::DAILY_PAGE_TIME),
            daily_referrer: get(rollup::DAILY_REFERRER),
            daily_agent: get(rollup::DAILY_AGENT),
            daily_bot: get(rollup::DAILY_BOT),
            // The bitmaps: a different way to the same figures than the store's counters.
            visitors: Visitors::United,
        }
    }
}

pub async fn summary(
    store: &Store,
    p: Period,
    top: usize,
    scope: &Scope,
) -> Result<Summary, StoreError> {
    Ok(summarize(p, &fetch(store, p, scope).await?, top))
}

fn top_counts(counts: HashMap<String, u64>, top: usize) -> Vec<NameCount> {
    let mut rows: Vec<NameCount> = counts
        .into_iter()
        .map(|(name, count)| NameCount { name, count })
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    rows.truncate(top);
    rows
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The summary of `p` from its rollup documents: each list's top `top` rows.
pub fn summarize(p: Period, i: &Inputs, top: usize) -> Summary {
    let v = i.visitors;
    let mut days = Days::default();
    let events_by_type = days.add_events(&i.daily_type);
    for d in &i.daily_users {
        days.row(d).users += v.of_day(d);
    }
    let sessions = days.add_sessions(&i.daily_sessions);
    let (channels, campaigns) = sources(&i.daily_channel, &i.daily_campaign, top, v);
    let mut agents: HashMap<&str, HashMap<String, u64>> = HashMap::new();
    for d in &i.daily_agent {
        *agents
            .entry(d.str(Field::Kind))
            .or_default()
            .entry(d.str(Field::Name).to_string())
            .or_default() += u(d.int(Field::Count));
    }
    let mut agent = |kind| top_counts(agents.remove(kind).unwrap_or_default(), top);
    let bots = top_counts(counts_by(&i.daily_bot, Field::Name), usize::MAX)
        .into_iter()
        .map(|n| ReasonCount {
            reason: n.name,
            events: n.count,
        })
        .collect();
    let page_views = events_by_type.get(PAGE_VIEW).copied().unwrap_or(0);
    Summary {
        period: p,
        overview: Overview {
            total_events: events_by_type.values().sum(),
            active_users: v.distinct(&i.daily_users),
            sessions: sessions.count,
            page_views,
            avg_session_duration: if sessions.count == 0 {
                0.0
            } else {
                seconds(sessions.duration as f64 / sessions.count as f64)
            },
            bounce_rate: percent(sessions.bounces, sessions.count),
        },
        daily: days.rows(),
        top_pages: top_pages(i, top),
        top_events: top_counts(events_by_type, top),
        top_referrers: top_counts(counts_by(&i.daily_referrer, Field::Referrer), top),
        browsers: agent("browser"),
        operating_systems: agent("os"),
        devices: agent("device"),
        bots,
        channels,
        campaigns,
    }
}

/// The period's days, as their documents are read.
#[derive(Default)]
struct Days(HashMap<String, DayRow>);

/// Sessions of a period: how many, their summed duration (ms) and how many bounced.
struct Sessions {
    count: u64,
    duration: i64,
    bounces: u64,
}

impl Days {
    /// The row of the day of `doc`.
    fn row(&mut self, doc: &RollupDoc) -> &mut DayRow {
        let d = doc.str(Field::Day);
        self.0.entry(d.to_string()).or_insert_with(|| DayRow {
            day: d.to_string(),
            events: 0,
            page_views: 0,
            users: 0,
            sessions: 0,
        })
    }

    /// Adds the day × type documents to each day's events and page views; the events by type.
    fn add_events(&mut self, daily_type: &[RollupDoc]) -> HashMap<String, u64> {
        let mut by_type: HashMap<String, u64> = HashMap::new();
        for d in daily_type {
            let n = u(d.int(Field::Count));
            *by_type
                .entry(d.str(Field::EventType).to_string())
                .or_default() += n;
            let row = self.row(d);
            row.events += n;
            if d.str(Field::EventType) == PAGE_VIEW {
                row.page_views += n;
            }
        }
        by_type
    }

    /// Adds the sessions of each day; their totals.
    fn add_sessions(&mut self, daily_sessions: &[RollupDoc]) -> Sessions {
        let mut all = Sessions {
            count: 0,
            duration: 0,
            bounces: 0,
        };
        for s in daily_sessions {
            let n = u(s.int(Field::Count));
            self.row(s).sessions += n;
            all.count += n;
            all.duration += s.int(Field::Duration);
            all.bounces += u(s.int(Field::Bounces));
        }
        all
    }

    /// The rows, by day.
    fn rows(self) -> Vec<DayRow> {
        let mut daily: Vec<DayRow> = self.0.into_values().collect();
        daily.sort_by(|a, b| a.day.cmp(&b.day));
        daily
    }
}

/// The counts (`Field::Count`) of `docs` summed by their `field`.
fn counts_by(docs: &[RollupDoc], field: Field) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for d in docs {
        *out.entry(d.str(field).to_string()).or_default() += u(d.int(Field::Count));
    }
    out
}

/// Views per page, and unique users: the page's distinct visitors over the days. Pages ranked
/// by views first; only the pages shown get their visitors counted (a site with thousands of
/// pages counts ten of them).
fn top_pages(i: &Inputs, top: usize) -> Vec<PageRow> {
    let mut pages: HashMap<&str, (u64, Vec<&RollupDoc>)> = HashMap::new();
    for d in &i.daily_page {
        let e = pages.entry(d.str(Field::PageUrl)).or_default();
        e.0 += u(d.int(Field::Views));
        e.1.push(d);
    }
    let mut times: HashMap<&str, (i64, u64)> = HashMap::new();
    for d in &i.daily_page_time {
        let e = times.entry(d.str(Field::PageUrl)).or_default();
        e.0 += d.int(Field::Duration);
        e.1 += u(d.int(Field::Count));
    }
    let mut ranked: Vec<(&str, (u64, Vec<&RollupDoc>))> = pages.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(top);
    ranked
        .into_iter()
        .map(|(url, (views, docs))| PageRow {
            page_url: url.to_string(),
            views,
            unique_users: i.visitors.distinct(docs),
            avg_time_on_page: times
                .get(url)
                .filter(|(_, n)| *n > 0)
                .map(|(total, n)| seconds(*total as f64 / *n as f64)),
        })
        .collect()
}

/// Sessions and distinct visitors per channel and per tagged campaign, from the sessions'
/// landing page views (a session without a page view is `Unassigned`): sums of the daily
/// counts, and the distinct visitors of the daily documents (`v`).
fn sources(
    daily_channel: &[RollupDoc],
    daily_campaign: &[RollupDoc],
    top: usize,
    v: Visitors,
) -> (Vec<ChannelRow>, Vec<CampaignRow>) {
    type Tally<'a> = (u64, Vec<&'a RollupDoc>);
    let mut channels: HashMap<String, Tally> = HashMap::new();
    for d in daily_channel {
        let t = channels.entry(d.str(Field::Name).to_string()).or_default();
        t.0 += u(d.int(Field::Count));
        t.1.push(d);
    }
    // Campaigns ranked by sessions first: only those shown get their visitors counted.
    let mut campaigns: HashMap<(String, String, String), Tally> = HashMap::new();
    for d in daily_campaign {
        let k = (
            d.str(Field::Source).to_string(),
            d.str(Field::Medium).to_string(),
            d.str(Field::Campaign).to_string(),
        );
        let t = campaigns.entry(k).or_default();
        t.0 += u(d.int(Field::Count));
        t.1.push(d);
    }
    let mut channels: Vec<ChannelRow> = channels
        .into_iter()
        .map(|(channel, (sessions, docs))| ChannelRow {
            channel,
            visitors: v.distinct(docs),
            sessions,
        })
        .collect();
    channels.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then_with(|| a.channel.cmp(&b.channel))
    });
    let mut ranked: Vec<_> = campaigns.into_iter().collect();
    ranked.sort_by(|(a, (x, _)), (b, (y, _))| y.cmp(x).then_with(|| a.cmp(b)));
    ranked.truncate(top);
    let campaigns: Vec<CampaignRow> = ranked
        .into_iter()
        .map(
            |((source, medium, campaign), (sessions, docs))| CampaignRow {
                source,
                medium,
                campaign,
                visitors: v.distinct(docs),
                sessions,
            },
        )
        .collect();
    (channels, campaigns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_core::event::{Day, Event};

    fn ev(ty: &str, user: &str, session: &str, page: &str, ts: i64) -> Event {
        let mut e = Event {
            event_id: format!("{ty}-{user}-{ts}"),
            event_type: ty.into(),
            user_id: Some(user.into()),
            session_id: Some(session.into()),
            page_url: Some(page.into()),
            timestamp: ts,
            day: Day::from_millis(ts).unwrap(),
            ..Event::default()
        };
        e.derive_visitor();
        e
    }

    #[test]
    fn overview_sessions_bounces_and_time_on_page() {
        let t = 1_795_996_800_000; // 2026-11-30T00:00Z
        let mut leave = ev("page_leave", "a", "s1", "/", t + 30_000);
        leave.page_view_id = Some("v1".into());
        leave.duration = Some(20_000.0);
        let mut leave_again = leave.clone();
        leave_again.duration = Some(25_000.0); // hidden twice: the later, larger total wins
        let events = vec![
            ev("page_view", "a", "s1", "/", t),
            ev("click", "a", "s1", "/", t + 10_000),
            ev("page_view", "a", "s1", "/pricing", t + 60_000),
            leave,
            leave_again,
            ev("page_view", "b", "s2", "/", t + 5_000), // a bounce
        ];
        let inputs = Inputs::from_events(&events);
        let today = Day::from_millis(t).unwrap();
        let s = summarize(Period::last_days(7, today), &inputs, 10);
        assert_eq!(
            s.overview,
            Overview {
                total_events: 6,
                active_users: 2,
                sessions: 2,
                page_views: 3,
                avg_session_duration: 30.0, // (60 s + 0 s) / 2
                bounce_rate: 50.0,
            }
        );
        assert_eq!(s.daily.len(), 1);
        assert_eq!(s.daily[0].users, 2);
        assert_eq!(
            s.top_pages[0],
            PageRow {
                page_url: "/".into(),
                views: 2,
                unique_users: 2,
                avg_time_on_page: Some(25.0),
            }
        );
        assert_eq!(
            s.top_events[0],
            NameCount {
                name: "page_view".into(),
                count: 3
            }
        );
    }

    #[test]
    fn a_session_across_midnight_utc_counts_once_on_its_first_day() {
        let midnight = 1_795_996_800_000; // 2026-11-30T00:00Z
        let events = vec![
            ev("page_view", "a", "s1", "/", midnight - 60_000),
            ev("page_view", "a", "s1", "/next", midnight + 60_000),
        ];
        let inputs = Inputs::from_events(&events);
        let s = summarize(
            Period::last_days(7, Day::from_millis(midnight).unwrap()),
            &inputs,
            10,
        );
        let days: Vec<(&str, u64, u64, u64)> = s
            .daily
            .iter()
            .map(|d| (d.day.as_str(), d.events, d.users, d.sessions))
            .collect();
        assert_eq!(days, vec![("2026-11-29", 1, 1, 1), ("2026-11-30", 1, 1, 0)]);
        assert_eq!(s.overview.sessions, 1);
        assert_eq!(s.overview.active_users, 1);
        assert_eq!(s.overview.avg_session_duration, 120.0);
        assert_eq!(s.overview.bounce_rate, 0.0); // two page views
    }

    #[test]
    fn only_the_top_pages_and_campaigns_are_listed_with_their_distinct_visitors() {
        let t = 1_795_996_800_000; // 2026-11-30T00:00Z
        let mut events = Vec::new();
        // /a: 3 views by 2 visitors over two days; /b: 2 views by 2; /c: 1 view.
        for (i, (user, page, day)) in [
            ("u1", "/a", 0),
            ("u1", "/a", 1),
            ("u2", "/a", 1),
            ("u1", "/b", 0),
            ("u3", "/b", 1),
            ("u4", "/c", 0),
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = ev(
                "page_view",
                user,
                &format!("s-{user}-{day}"),
                page,
                t + day * 86_400_000 + i as i64,
            );
            // Sessions of u1 and u2 landed from one campaign, u3's from another.
            let campaign = match user {
                "u1" | "u2" => Some("spring"),
                "u3" => Some("autumn"),
                _ => None,
            };
            e.utm_campaign = campaign.map(String::from);
            e.source = campaign.map(|_| "news".to_string());
            e.utm_medium = campaign.map(|_| "email".to_string());
            events.push(e);
        }
        let p = Period::last_days(2, Day::from_millis(t + 86_400_000).unwrap());
        let s = summarize(p, &Inputs::from_events(&events), 2);
        let pages: Vec<(&str, u64, u64)> = s
            .top_pages
            .iter()
            .map(|r| (r.page_url.as_str(), r.views, r.unique_users))
            .collect();
        assert_eq!(pages, [("/a", 3, 2), ("/b", 2, 2)]);
        let campaigns: Vec<(&str, u64, u64)> = s
            .campaigns
            .iter()
            .map(|r| (r.campaign.as_str(), r.sessions, r.visitors))
            .collect();
        assert_eq!(campaigns, [("spring", 3, 2), ("autumn", 1, 1)]);
    }

    #[test]
    fn an_empty_period_is_all_zeros() {
        let s = summarize(Period::last_days(7, Day::today()), &Inputs::default(), 10);
        assert_eq!(s.overview.total_events, 0);
        assert_eq!(s.overview.bounce_rate, 0.0);
        assert!(s.daily.is_empty() && s.top_pages.is_empty());
    }
}
