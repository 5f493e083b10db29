//! Each figure's human form: the tables `maidian` prints without `--json`, from the same
//! documents the HTTP API answers (local or remote alike).

use maidian_analytics::consumer::RollupStatus;
use maidian_analytics::engine::{funnel, realtime, retention, summary, vitals};
use maidian_analytics::lifecycle;
use maidian_analytics::site;

use crate::table;

pub fn print_realtime(r: &realtime::Realtime) {
    println!("events in the last hour  {}", r.recent_events_1h);
    println!("users online (5 min)     {}", r.online_users);
    println!("events per minute (30 min, oldest first)");
    println!("{:?}", r.events_per_minute);
}

pub fn print_rollup_status(s: &RollupStatus) {
    let at = |ms: i64| {
        if ms <= 0 {
            "-".to_string()
        } else {
            lifecycle::rfc3339(ms)
        }
    };
    println!("generation        {}", s.generation);
    println!("events rolled up  {}", s.events);
    println!("checkpoint        {}", at(s.checkpoint_ms));
    println!("newest event      {}", at(s.head_ms));
    println!("lag               {:.1} s", s.lag_seconds);
    match &s.owner {
        Some(o) => println!("lease owner       {o} (until {})", at(s.lease_expires_ms)),
        None => println!("lease owner       none (no collector is rolling up)"),
    }
    if let Some(g) = s.rebuilding {
        println!("rebuilding        generation {g}");
    }
}

pub fn print_sites(rows: &[site::SiteCount]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.name.clone(),
                r.timezone.clone(),
                r.events.to_string(),
                r.bot_events.to_string(),
            ]
        })
        .collect();
    table::print(
        &["site", "name", "time zone", "events", "bot events"],
        &rows,
    );
}

pub fn print_sources(s: &summary::Summary) {
    let n = |v: u64| v.to_string();
    let channels: Vec<Vec<String>> = s
        .channels
        .iter()
        .map(|c| vec![c.channel.clone(), n(c.sessions), n(c.visitors)])
        .collect();
    table::print(&["channel", "sessions", "visitors"], &channels);
    println!();
    let campaigns: Vec<Vec<String>> = s
        .campaigns
        .iter()
        .map(|c| {
            vec![
                c.source.clone(),
                c.medium.clone(),
                c.campaign.clone(),
                n(c.sessions),
                n(c.visitors),
            ]
        })
        .collect();
    table::print(
        &["source", "medium", "campaign", "sessions", "visitors"],
        &campaigns,
    );
}

pub fn print_summary(s: &summary::Summary) {
    let o = &s.overview;
    println!(
        "{} .. {} ({} days)",
        s.period.since, s.period.until, s.period.days
    );
    table::print(
        &[
            "total events",
            "active users",
            "sessions",
            "page views",
            "avg session s",
            "bounce %",
        ],
        &[vec![
            o.total_events.to_string(),
            o.active_users.to_string(),
            o.sessions.to_string(),
            o.page_views.to_string(),
            o.avg_session_duration.to_string(),
            o.bounce_rate.to_string(),
        ]],
    );
    println!();
    let daily: Vec<Vec<String>> = s
        .daily
        .iter()
        .map(|d| {
            vec![
                d.day.clone(),
                d.events.to_string(),
                d.page_views.to_string(),
                d.users.to_string(),
                d.sessions.to_string(),
            ]
        })
        .collect();
    table::print(
        &["day", "events", "page views", "users", "sessions"],
        &daily,
    );
    println!();
    let pages: Vec<Vec<String>> = s
        .top_pages
        .iter()
        .map(|p| {
            let t = p.avg_time_on_page.map_or("-".into(), |t| t.to_string());
            vec![
                p.page_url.clone(),
                p.views.to_string(),
                p.unique_users.to_string(),
                t,
            ]
        })
        .collect();
    table::print(&["top page", "views", "users", "avg time s"], &pages);
    for (title, list) in [
        ("top event", &s.top_events),
        ("top referrer", &s.top_referrers),
        ("browser", &s.browsers),
        ("os", &s.operating_systems),
        ("device", &s.devices),
    ] {
        println!();
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|c| vec![c.name.clone(), c.count.to_string()])
            .collect();
        table::print(&[title, "count"], &rows);
    }
}

pub fn print_funnel(r: &funnel::FunnelResult) {
    if let Some(since) = &r.raw_data_since {
        eprintln!("maidian: raw events before {since} were deleted by retention; this funnel counts what is left");
    }
    println!(
        "{} .. {}, window {} s",
        r.period.since, r.period.until, r.window_seconds
    );
    let rows: Vec<Vec<String>> = r
        .funnel_steps
        .iter()
        .map(|s| {
            vec![
                s.step.clone(),
                s.users.to_string(),
                s.conversion_rate.to_string(),
                s.conversion_from_previous.to_string(),
                s.drop_off.to_string(),
                s.median_time_to_convert
                    .map_or("-".into(), |t| t.to_string()),
            ]
        })
        .collect();
    table::print(
        &[
            "step",
            "users",
            "conv %",
            "from prev %",
            "drop-off",
            "median s",
        ],
        &rows,
    );
}

pub fn print_vitals(v: &vitals::Vitals) {
    println!(
        "{} .. {}: {} page views measured",
        v.period.since, v.period.until, v.page_views
    );
    let p75 = |m: &vitals::MetricFigures| m.p75_text("-");
    let rows: Vec<Vec<String>> = v
        .metrics
        .iter()
        .map(|m| {
            vec![
                m.metric.as_str().to_uppercase(),
                p75(m),
                m.rating.map_or("-", |r| r.as_str()).to_string(),
                m.good.to_string(),
                m.needs_improvement.to_string(),
                m.poor.to_string(),
                m.samples.to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "metric",
            "p75",
            "rating",
            "good %",
            "needs impr. %",
            "poor %",
            "samples",
        ],
        &rows,
    );
    let groups = |title: &str, gs: &[vitals::Group]| {
        println!();
        let rows: Vec<Vec<String>> = gs
            .iter()
            .map(|g| {
                let mut row = vec![g.name.clone(), g.page_views.to_string()];
                row.extend(g.metrics.iter().map(p75));
                row
            })
            .collect();
        table::print(
            &[
                title, "views", "LCP p75", "INP p75", "CLS p75", "FCP p75", "TTFB p75",
            ],
            &rows,
        );
    };
    groups("page", &v.pages);
    groups("device", &v.devices);
}

pub fn print_retention(r: &retention::Retention) {
    println!("{} .. {}", r.period.since, r.period.until);
    let rows: Vec<Vec<String>> = r
        .retention_data
        .iter()
        .map(|d| {
            vec![
                format!("day {}", d.day),
                d.retention_rate.to_string(),
                d.users.to_string(),
                d.cohort_users.to_string(),
            ]
        })
        .collect();
    table::print(&["", "retention %", "users", "of"], &rows);
    println!();
    let cohorts: Vec<Vec<String>> = r
        .cohorts
        .iter()
        .map(|c| {
            let mut row = vec![c.cohort.to_string(), c.users.to_string()];
            row.extend(c.retained.iter().map(u64::to_string));
            row
        })
        .collect();
    table::print(&["cohort", "users", "day 0.."], &cohorts);
}
