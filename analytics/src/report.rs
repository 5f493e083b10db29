//! The HTML report: one self-contained file (inline CSS and SVG, no script, no network) with
//! the overview, the daily trend, top pages, the funnel, the retention heat map and Core Web
//! Vitals.

use std::fmt::Write;

use crate::engine::funnel::FunnelResult;
use crate::engine::retention::Retention;
use crate::engine::summary::Summary;
use crate::engine::vitals::{MetricFigures, Vitals};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#222}\
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2rem}.cards{display:flex;flex-wrap:wrap;gap:.75rem}\
.card{border:1px solid #ddd;border-radius:8px;padding:.75rem 1rem;min-width:120px}\
.card b{display:block;font-size:1.4rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left}\
td.n{text-align:right}svg text{font-size:11px;fill:#444}";

fn card(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><b>{}</b>{}</div>",
        esc(value),
        esc(label)
    );
}

/// A line chart of one or two daily series.
fn trend_svg(s: &Summary) -> String {
    let (w, h, pad) = (900.0, 220.0, 30.0);
    let days = &s.daily;
    let max = days
        .iter()
        .map(|d| d.events.max(d.users))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |i: usize| {
        pad + (w - 2.0 * pad)
            * if days.len() > 1 {
                i as f64 / (days.len() - 1) as f64
            } else {
                0.5
            }
    };
    let y = |v: u64| h - pad - (h - 2.0 * pad) * v as f64 / max;
    let line = |f: &dyn Fn(&crate::engine::summary::DayRow) -> u64| {
        days.iter()
            .enumerate()
            .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(f(d))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!("<svg id=\"trend\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"daily trend\">");
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ccc\"/>",
        h - pad,
        w - pad,
        h - pad
    );
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#3b6fd8\" stroke-width=\"2\" points=\"{}\"/>",
        line(&|d| d.events)
    );
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#e07b39\" stroke-width=\"2\" points=\"{}\"/>",
        line(&|d| d.users)
    );
    for (i, d) in days.iter().enumerate() {
        let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#3b6fd8\"><title>{} events {}</title></circle>", x(i), y(d.events), esc(&d.day), d.events);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - 10.0,
            esc(d.day.get(5..).unwrap_or(&d.day))
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"14\">events (blue) · users (orange) · max {max}</text></svg>"
    );
    svg
}

/// Horizontal bars with a label and a value.
fn bars_svg(id: &str, rows: &[(String, f64, String)]) -> String {
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0);
    let h = 24.0 * rows.len() as f64 + 10.0;
    let mut svg = format!("<svg id=\"{id}\" viewBox=\"0 0 900 {h}\" width=\"100%\" role=\"img\">");
    for (i, (label, v, shown)) in rows.iter().enumerate() {
        let y = 5.0 + 24.0 * i as f64;
        let width = 500.0 * v / max;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.0}\">{}</text>",
            y + 15.0,
            esc(&truncate(label, 48))
        );
        let _ = write!(
            svg,
            "<rect x=\"320\" y=\"{y}\" width=\"{width:.1}\" height=\"18\" fill=\"#3b6fd8\"/>"
        );
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            326.0 + width,
            y + 14.0,
            esc(shown)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// Cohort rows × day-N columns, shaded by the share retained.
fn heatmap_svg(r: &Retention) -> String {
    let cols = r.retention_data.len().max(1);
    let cell = (800.0 / cols as f64).min(40.0);
    let h = 22.0 * r.cohorts.len() as f64 + 30.0;
    let mut svg =
        format!("<svg id=\"retention\" viewBox=\"0 0 900 {h}\" width=\"100%\" role=\"img\">");
    for n in 0..cols {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"14\" text-anchor=\"middle\">{n}</text>",
            100.0 + cell * (n as f64 + 0.5)
        );
    }
    for (i, c) in r.cohorts.iter().enumerate() {
        let y = 20.0 + 22.0 * i as f64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.0}\">{} ({})</text>",
            y + 14.0,
            c.cohort,
            c.users
        );
        for (n, kept) in c.retained.iter().enumerate() {
            let share = if c.users == 0 {
                0.0
            } else {
                *kept as f64 / c.users as f64
            };
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"20\" fill=\"rgb(59,111,216)\" fill-opacity=\"{:.2}\"><title>day {n}: {kept} of {}</title></rect>",
                100.0 + cell * n as f64,
                cell - 2.0,
                0.08 + 0.92 * share,
                c.users
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

pub fn render(s: &Summary, funnel: Option<&FunnelResult>, r: &Retention, v: &Vitals) -> String {
    let p = &s.period;
    let o = &s.overview;
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>maidian report {} – {}</title><style>{STYLE}</style></head><body>",
        p.since, p.until
    );
    let _ = write!(
        out,
        "<h1>maidian report: {} – {} ({} days)</h1><div class=\"cards\">",
        p.since, p.until, p.days
    );
    card(&mut out, "events", &o.total_events.to_string());
    card(&mut out, "active users", &o.active_users.to_string());
    card(&mut out, "sessions", &o.sessions.to_string());
    card(&mut out, "page views", &o.page_views.to_string());
    card(
        &mut out,
        "avg session (s)",
        &o.avg_session_duration.to_string(),
    );
    card(&mut out, "bounce rate", &format!("{}%", o.bounce_rate));
    out.push_str("</div><h2>Daily trend</h2>");
    out.push_str(&trend_svg(s));
    out.push_str("<h2>Top pages</h2>");
    let pages: Vec<(String, f64, String)> = s
        .top_pages
        .iter()
        .map(|pg| {
            (
                pg.page_url.clone(),
                pg.views as f64,
                format!("{} views · {} users", pg.views, pg.unique_users),
            )
        })
        .collect();
    out.push_str(&bars_svg("pages", &pages));
    out.push_str("<h2>Top events</h2>");
    let events: Vec<(String, f64, String)> = s
        .top_events
        .iter()
        .map(|e| (e.name.clone(), e.count as f64, e.count.to_string()))
        .collect();
    out.push_str(&bars_svg("events", &events));
    if let Some(f) = funnel {
        let _ = write!(out, "<h2>Funnel (window {} s)</h2>", f.window_seconds);
        let steps: Vec<(String, f64, String)> = f
            .funnel_steps
            .iter()
            .map(|st| {
                (
                    st.step.clone(),
                    st.users as f64,
                    format!("{} users · {}%", st.users, st.conversion_rate),
                )
            })
            .collect();
        out.push_str(&bars_svg("funnel", &steps));
    }
    out.push_str("<h2>Retention by first-seen day</h2>");
    out.push_str(&heatmap_svg(r));
    vitals_table(&mut out, v);
    out.push_str("<h2>Referrers, browsers, systems, devices</h2><table><tr><th>kind</th><th>name</th><th>count</th></tr>");
    for (kind, list) in [
        ("referrer", &s.top_referrers),
        ("browser", &s.browsers),
        ("os", &s.operating_systems),
        ("device", &s.devices),
    ] {
        for c in list.iter() {
            let _ = write!(
                out,
                "<tr><td>{kind}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&c.name),
                c.count
            );
        }
    }
    out.push_str("</table></body></html>\n");
    out
}

/// Core Web Vitals: p75, rating and shares per metric, then p75 per page and device.
fn vitals_table(out: &mut String, v: &Vitals) {
    let p75 = |m: &MetricFigures| m.p75_text("–");
    let _ = write!(
        out,
        "<h2>Core Web Vitals ({} page views measured)</h2><table id=\"vitals\"><tr><th>metric</th><th>p75</th><th>rating</th><th>good</th><th>needs improvement</th><th>poor</th></tr>",
        v.page_views
    );
    for m in &v.metrics {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}%</td><td class=\"n\">{}%</td><td class=\"n\">{}%</td></tr>",
            m.metric.as_str().to_uppercase(),
            p75(m),
            m.rating.map_or("–", |r| r.as_str()),
            m.good,
            m.needs_improvement,
            m.poor
        );
    }
    out.push_str("</table><table><tr><th>page / device</th><th>views</th>");
    for m in &v.metrics {
        let _ = write!(out, "<th>{} p75</th>", m.metric.as_str().to_uppercase());
    }
    out.push_str("</tr>");
    for g in v.pages.iter().chain(&v.devices) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            esc(&g.name),
            g.page_views
        );
        for m in &g.metrics {
            let _ = write!(out, "<td class=\"n\">{}</td>", p75(m));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// Reads every figure of the report from `store` and renders it.
pub async fn build(
    store: &maidian_store::Store,
    p: maidian_core::stats::Period,
    funnel: Option<&crate::engine::funnel::Funnel>,
    scope: &crate::engine::Scope,
) -> Result<String, maidian_store::StoreError> {
    use crate::engine::{funnel as f, retention, summary, vitals};
    // Boxed: the three figures' futures side by side overflow a worker's stack in debug
    // builds.
    let (s, r, v) = tokio::try_join!(
        Box::pin(summary::summary(store, p, 10, scope)),
        Box::pin(retention::retention(store, p, scope)),
        Box::pin(vitals::vitals(store, p, scope, 10))
    )?;
    let fr = match funnel {
        Some(def) => Some(f::funnel(store, def, p, scope).await?),
        None => None,
    };
    Ok(render(&s, fr.as_ref(), &r, &v))
}

/// The funnel a report shows when none is asked for: the seed's example steps.
pub const DEFAULT_FUNNEL: &str = "page_view,click,form_submit";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{retention, summary};
    use maidian_core::event::Day;
    use maidian_core::stats::Period;

    #[test]
    fn self_contained_and_escaped() {
        let p = Period::last_days(3, Day::parse("2026-11-30").unwrap());
        let mut s = summary::summarize(p, &summary::Inputs::default(), 10);
        s.top_pages.push(summary::PageRow {
            page_url: "/<script>alert(1)</script>".into(),
            views: 3,
            unique_users: 2,
            avg_time_on_page: None,
        });
        let r = retention::compute(p, &[], &[]);
        let mut v = crate::engine::vitals::from_rollups(p, Vec::new(), 10);
        v.pages.push(crate::engine::vitals::Group {
            name: "/<script>x</script>".into(),
            page_views: 1,
            metrics: v.metrics.clone(),
        });
        let html = render(&s, None, &r, &v);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"), "unescaped input or a script");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<table id=\"vitals\">") && html.contains("<td>LCP</td>"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resource"
        );
        for id in ["trend", "pages", "events", "retention"] {
            assert!(html.contains(&format!("<svg id=\"{id}\"")), "{id}");
        }
    }
}
