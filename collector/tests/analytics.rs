//! Analytics over HTTP against the real collector on FerretDB: the endpoints answer what the
//! `maidian` CLI answers on the same database, before and after a rollup rebuild.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use common::{now_ms, start, uuid};
use maidian_testkit::http::Request;
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

/// Runs the `maidian` CLI (built beside the collector) on the test's database.
fn run_cli(env: &common::Env, args: &[&str]) -> Vec<u8> {
    let bin = common::binary().with_file_name("maidian");
    assert!(
        bin.exists(),
        "{} is not built (run the workspace tests)",
        bin.display()
    );
    let uri = maidian_testkit::mongodb_uri().unwrap();
    let out = std::process::Command::new(&bin)
        .args(args)
        .args(["--mongodb-uri", &uri, "--database", &env.db_name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn cli(env: &common::Env, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_slice(&run_cli(env, &args)).unwrap()
}

async fn seed(env: &common::Env) {
    let now = now_ms();
    let mut events = Vec::new();
    // Visitor u1: two days ago views, clicks and buys; back today. u2: views only today.
    // u3: an anonymous visitor (no user_id) who clicks.
    for (user, anon, ty, page, age) in [
        (Some("u1"), None, "page_view", "/", 2 * DAY),
        (Some("u1"), None, "click", "/", 2 * DAY - 1000),
        (Some("u1"), None, "purchase", "/cart", 2 * DAY - 2000),
        (Some("u1"), None, "page_view", "/", 0),
        (Some("u2"), None, "page_view", "/pricing", 0),
        (None, Some("anon-3"), "page_view", "/", 1000),
        (None, Some("anon-3"), "click", "/", 500),
    ] {
        events.push(
            json!({"event_id": uuid(), "event_type": ty, "user_id": user, "anonymous_id": anon,
            "session_id": format!("{}-{}", user.or(anon).unwrap(), age / DAY), "page_url": page,
            "timestamp": now - age}),
        );
    }
    let res = env
        .post("/api/track/batch", &json!({"events": events}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn endpoints_agree_with_the_cli_before_and_after_a_rebuild() {
    let env = start(&[]).await;
    seed(&env).await;
    let summary = env.wait_for_rollups(7, 7).await;
    assert_eq!(summary["overview"]["total_events"], 7);
    assert_eq!(summary["overview"]["active_users"], 3);
    assert_eq!(summary, cli(&env, &["summary", "--days", "7"]));

    let funnel = env
        .get("/api/analytics/funnel?steps=page_view,click,purchase&days=7&window=1d")
        .await
        .json()
        .unwrap();
    let users: Vec<u64> = funnel["funnel_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    assert_eq!(users, vec![3, 2, 1]);
    assert_eq!(
        funnel,
        cli(
            &env,
            &[
                "funnel",
                "--steps",
                "page_view,click,purchase",
                "--days",
                "7",
                "--window",
                "1d"
            ]
        )
    );

    let retention = env
        .get("/api/analytics/retention?days=7")
        .await
        .json()
        .unwrap();
    assert_eq!(retention, cli(&env, &["retention", "--days", "7"]));
    assert_eq!(retention["retention_data"][0]["retention_rate"], 100.0);

    let realtime = env.get("/api/analytics/realtime").await.json().unwrap();
    assert_eq!(realtime["recent_events_1h"], 4);
    assert_eq!(realtime["online_users"], 3);

    // The CSV export, streamed over HTTP, is the CLI's export byte for byte.
    let csv = env.get("/api/export/events.csv?days=7").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.text();
    assert_eq!(text.lines().count(), 1 + 7, "{text}");
    assert!(text.starts_with("event_id,event_type,timestamp,day,"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.csv");
    run_cli(
        &env,
        &["export", "--days", "7", "--output", file.to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    // So is the HTML report.
    let html = env.get("/api/report?days=7").await;
    assert_eq!(html.status, 200);
    assert!(html
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let report = dir.path().join("report.html");
    run_cli(
        &env,
        &[
            "report",
            "--days",
            "7",
            "--output",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap(), html.text());
    assert!(html.text().contains("<svg id=\"funnel\""));

    let rebuilt = run_cli(&env, &["rollups", "rebuild"]);
    assert!(String::from_utf8_lossy(&rebuilt).contains("from 7 events"));
    let after = env
        .get("/api/analytics/summary?days=7")
        .await
        .json()
        .unwrap();
    assert_eq!(after, summary, "rebuilt rollups differ from live ones");
}

#[tokio::test]
async fn bad_analytics_parameters_are_4xx() {
    let env = start(&[]).await;
    for (path, status, code) in [
        ("/api/analytics/funnel?days=7", 400, "invalid_parameter"),
        (
            "/api/analytics/funnel?steps=a,b&window=1w",
            400,
            "invalid_parameter",
        ),
        (
            "/api/analytics/funnel?steps=a,b&window=0",
            400,
            "invalid_parameter",
        ),
        ("/api/analytics/summary?days=0", 400, "invalid_parameter"),
        ("/api/analytics/summary?top=0", 400, "invalid_parameter"),
        ("/api/analytics/cohorts", 404, "not_found"),
    ] {
        let res = env.get(path).await;
        assert_eq!(res.status, status, "{path}: {}", res.text());
        assert_eq!(res.json().unwrap()["error"]["code"], code, "{path}");
    }
    let no_key = env
        .send(Request::new("GET", "/api/analytics/summary"))
        .await;
    assert_eq!(no_key.status, 401);
}

#[tokio::test]
async fn simulate_sends_realistic_visitors_and_a_resend_is_deduplicated() {
    let env = start(&[]).await;
    let url = format!("http://{}", env.collector.addr);
    let args = [
        "simulate",
        "--url",
        &url,
        "--api-key",
        common::WRITE_KEY,
        "--users",
        "40",
        "--days",
        "5",
        "--seed",
        "9",
    ];
    let first = String::from_utf8(run_cli(&env, &args)).unwrap();
    let sent: u64 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
    // "… N stored, M deduplicated": a batch answered 503 (the test database slower than the
    // test's 1 s insert timeout) may have been stored all the same, and its retry is then
    // deduplicated; nothing is lost or stored twice either way.
    let counts: Vec<u64> = first
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (stored, deduplicated) = (counts[counts.len() - 2], counts[counts.len() - 1]);
    assert_eq!(stored + deduplicated, sent, "{first}");
    let second = String::from_utf8(run_cli(&env, &args)).unwrap();
    assert!(
        second.contains(&format!("0 stored, {sent} deduplicated")),
        "{second}"
    );
    assert_eq!(env.count().await, sent);

    let s = env.wait_for_rollups(5, sent).await;
    assert_eq!(s["overview"]["active_users"], 40);
    let events: Vec<&str> = s["top_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for ty in ["page_view", "page_leave", "scroll", "click"] {
        assert!(events.contains(&ty), "{ty} missing from {events:?}");
    }
}

/// Bots are stored and flagged at ingest, left out of every figure by default (HTTP and CLI),
/// counted with `include_bots=true` / `--include-bots`, and listed in the summary's `bots`.
#[tokio::test]
async fn bots_are_left_out_of_the_figures_unless_asked_for() {
    let env = start(&[]).await;
    let now = now_ms();
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let mut events = Vec::new();
    for (visitor, ua, referrer) in [
        ("person", chrome, None),
        ("crawler", bot, None),
        ("spammer", chrome, Some("https://semalt.com/")),
    ] {
        events.push(json!({"event_id": uuid(), "event_type": "page_view", "session_id": visitor,
            "page_url": "https://shop.example/", "user_agent": ua, "referrer": referrer, "timestamp": now}));
    }
    events.push(
        json!({"event_id": uuid(), "event_type": "click", "session_id": "driven",
        "webdriver": true, "timestamp": now}),
    );
    let res = env
        .post("/api/track/batch", &json!({ "events": events }))
        .await;
    assert_eq!(res.json().unwrap()["stored"], 4);
    // The rollups hold one human event; health's lag says when all four are rolled up.
    env.wait_for_rollups(1, 1).await;

    let s = env
        .get("/api/analytics/summary?days=1")
        .await
        .json()
        .unwrap();
    assert_eq!(s["overview"]["total_events"], 1);
    assert_eq!(s["overview"]["active_users"], 1);
    let mut bots = s["bots"].as_array().unwrap().clone();
    bots.sort_by_key(|b| b["reason"].as_str().unwrap().to_string());
    assert_eq!(
        Value::Array(bots),
        json!([
            {"reason": "referrer_spam", "events": 1},
            {"reason": "user_agent", "events": 1},
            {"reason": "webdriver", "events": 1},
        ])
    );
    let all = env
        .get("/api/analytics/summary?days=1&include_bots=true")
        .await
        .json()
        .unwrap();
    assert_eq!(all["overview"]["total_events"], 4);
    assert_eq!(all["overview"]["active_users"], 4);

    let stats = env.get("/api/stats/events?days=1").await.json().unwrap();
    assert_eq!(stats["total_events"], 1);
    let stats = env
        .get("/api/stats/events?days=1&include_bots=1")
        .await
        .json()
        .unwrap();
    assert_eq!(stats["total_events"], 4);
    let rt = env.get("/api/analytics/realtime").await.json().unwrap();
    assert_eq!(rt["recent_events_1h"], 1);
    let funnel = "/api/analytics/funnel?steps=page_view&days=1";
    let f = env.get(funnel).await.json().unwrap();
    assert_eq!(f["funnel_steps"][0]["users"], 1);
    let f = env
        .get(&format!("{funnel}&include_bots=true"))
        .await
        .json()
        .unwrap();
    assert_eq!(f["funnel_steps"][0]["users"], 3);
    let bad = env.get("/api/analytics/summary?include_bots=maybe").await;
    assert_eq!(bad.status, 400);

    let cli_summary = cli(&env, &["summary", "--days", "1"]);
    assert_eq!(cli_summary["overview"]["total_events"], 1);
    let cli_all = cli(&env, &["summary", "--days", "1", "--include-bots"]);
    assert_eq!(cli_all["overview"]["total_events"], 4);
}

/// Channels and campaigns: sessions by the channel of their landing page view, tagged
/// campaigns, a funnel of the visitors whose first visit came from a channel or campaign; the
/// same from the CLI.
#[tokio::test]
async fn channels_campaigns_and_funnels_by_origin() {
    let env = start(&[]).await;
    let now = now_ms();
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let mut events = Vec::new();
    let mut view = |session: &str, url: &str, referrer: Option<&str>, at: i64| {
        events.push(
            json!({"event_id": uuid(), "event_type": "page_view", "session_id": session,
            "anonymous_id": format!("v-{session}"), "page_url": url, "referrer": referrer,
            "user_agent": chrome, "timestamp": now - 60_000 + at}),
        );
    };
    let shop = "https://shop.example/";
    let mail = "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=nov";
    view("m1", mail, None, 0);
    view("m1", "https://shop.example/cart", Some(mail), 1_000); // later view: not the landing
    view("m2", mail, None, 0);
    view("g1", shop, Some("https://www.google.com/"), 0);
    view("d1", shop, None, 0);
    view(
        "w1",
        "https://shop.example/?utm_source=weibo&utm_medium=paid_social&utm_campaign=双11",
        None,
        0,
    );
    events.push(
        json!({"event_id": uuid(), "event_type": "purchase", "session_id": "m1",
        "anonymous_id": "v-m1", "timestamp": now - 30_000}),
    );
    events.push(
        json!({"event_id": uuid(), "event_type": "purchase", "session_id": "g1",
        "anonymous_id": "v-g1", "timestamp": now - 30_000}),
    );
    let n = events.len() as u64;
    let res = env
        .post("/api/track/batch", &json!({ "events": events }))
        .await;
    assert_eq!(res.json().unwrap()["stored"], n);
    let s = env.wait_for_rollups(1, n).await;

    assert_eq!(
        s["channels"],
        json!([
            {"channel": "Email", "visitors": 2, "sessions": 2},
            {"channel": "Direct", "visitors": 1, "sessions": 1},
            {"channel": "Organic Search", "visitors": 1, "sessions": 1},
            {"channel": "Paid Social", "visitors": 1, "sessions": 1},
        ])
    );
    assert_eq!(
        s["campaigns"],
        json!([
            {"source": "newsletter", "medium": "email", "campaign": "nov", "visitors": 2, "sessions": 2},
            {"source": "weibo", "medium": "paid_social", "campaign": "双11", "visitors": 1, "sessions": 1},
        ])
    );
    let funnel = |q: &str| {
        let path = format!("/api/analytics/funnel?steps=page_view,purchase&days=1{q}");
        let env = &env;
        async move {
            let f = env.get(&path).await.json().unwrap();
            f["funnel_steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["users"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(funnel("").await, vec![5, 2]);
    assert_eq!(funnel("&channel=email").await, vec![2, 1]);
    assert_eq!(funnel("&campaign=nov").await, vec![2, 1]);
    assert_eq!(funnel("&channel=Organic%20Search").await, vec![1, 1]);
    assert_eq!(funnel("&channel=Display").await, vec![0, 0]);

    let cli_sources = cli(&env, &["sources", "--days", "1"]);
    assert_eq!(cli_sources["channels"], s["channels"]);
    assert_eq!(cli_sources["campaigns"], s["campaigns"]);
    let table = String::from_utf8(run_cli(&env, &["sources", "--days", "1"])).unwrap();
    assert!(table.contains("Organic Search"), "{table}");
    let cli_funnel = cli(
        &env,
        &[
            "funnel",
            "--steps",
            "page_view,purchase",
            "--days",
            "1",
            "--channel",
            "Email",
        ],
    );
    assert_eq!(cli_funnel["funnel_steps"][0]["users"], 2);
}

#[tokio::test]
async fn core_web_vitals_over_http_and_the_cli() {
    let env = start(&[]).await;
    let now = now_ms();
    let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let mut events = Vec::new();
    // Four page views of two pages: LCP 1 000, 2 000, 3 000 and 5 000 ms; INP on two.
    for (i, (page, ua, lcp, inp)) in [
        ("/", desktop, 1000, Some(150)),
        ("/", desktop, 2000, None),
        ("/", phone, 3000, Some(700)),
        ("/pricing", phone, 5000, None),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(json!({"event_id": uuid(), "event_type": "web_vitals", "session_id": format!("s{i}"),
            "page_view_id": format!("pv{i}"), "page_url": page, "timestamp": now - 1000, "user_agent": ua,
            "lcp": lcp, "fcp": 300, "ttfb": 40, "cls": 0.05, "inp": inp}));
    }
    let res = env
        .post("/api/track/batch", &json!({"events": events}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // A web_vitals event must name its page view; the values must be sane.
    let bad = env
        .post(
            "/api/track/batch",
            &json!({"events": [{"event_type": "web_vitals", "session_id": "x", "lcp": 1000}]}),
        )
        .await;
    assert_eq!(bad.json().unwrap()["rejected"][0]["code"], "missing_field");
    let bad = env
        .post(
            "/api/track/batch",
            &json!({"events": [{"event_type": "web_vitals", "session_id": "x", "page_view_id": "p", "inp": -5}]}),
        )
        .await;
    assert_eq!(bad.json().unwrap()["rejected"][0]["code"], "out_of_range");
    env.wait_for_rollups(7, 4).await;

    let v: Value = env
        .get("/api/analytics/vitals?days=7")
        .await
        .json()
        .unwrap();
    assert_eq!(v["page_views"], 4, "{v}");
    let lcp = &v["metrics"][0];
    assert_eq!(lcp["metric"], "lcp");
    // Nearest rank 3 of 4: 3 000 ms, within the histogram's 4.9 %.
    let p75 = lcp["p75"].as_f64().unwrap();
    assert!((p75 - 3000.0).abs() <= 3000.0 * 0.049, "{p75}");
    assert_eq!(lcp["rating"], "needs_improvement");
    assert_eq!(
        (lcp["good"].as_f64(), lcp["poor"].as_f64()),
        (Some(50.0), Some(25.0))
    );
    let inp = &v["metrics"][1];
    assert_eq!(
        (inp["samples"].as_u64(), inp["poor"].as_f64()),
        (Some(2), Some(50.0))
    );
    assert_eq!(v["pages"][0]["name"], "/");
    assert_eq!(v["pages"][0]["page_views"], 3);
    let devices: Vec<&str> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["pc", "smartphone"]);
    // The CLI reads the same rollups, JSON and table.
    assert_eq!(v, cli(&env, &["vitals", "--days", "7"]));
    let table = String::from_utf8_lossy(&run_cli(&env, &["vitals", "--days", "7"])).to_string();
    assert!(
        table.contains("LCP")
            && table.contains("needs_improvement")
            && table.contains("smartphone"),
        "{table}"
    );
    // A bad `top` is a 400 naming it.
    let res = env.get("/api/analytics/vitals?top=0").await;
    assert_eq!(res.status, 400);
}
