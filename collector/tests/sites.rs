//! Several sites on one collector, through the real binary on both stores: each write key
//! stores under its own site whatever the body claims, every read answer is one site's, a
//! site key cannot read another site, the admin key reads any site it names, and a site's days
//! are its time zone's (an event at 00:30 in Shanghai is on that Shanghai day).

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::collections::HashMap;

use common::{now_ms, uuid};
use maidian_analytics::event::Day;
use maidian_analytics::site::Zone;
use maidian_testkit::http::{self, Request, Response};
use maidian_testkit::{fresh_db_name, mongodb_uri, Collector};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[tracking_api]
api_key = "wk-blog"
read_key = "rk-blog"
admin_key = "ak-all"

[[sites]]
id = "shop"
name = "Shop"
write_key = "wk-shop"
read_key = "rk-shop"
origins = ["https://shop.example"]
timezone = "Asia/Shanghai"
"#;

const BLOG_PAGE: &str = "https://blog.example/post";
const SHOP_PAGE: &str = "https://shop.example/cart";

struct Sites {
    collector: Collector,
    mongo_db: Option<String>,
    _dir: tempfile::TempDir,
}

enum Kind {
    Mongo,
    Embedded,
}

async fn start(kind: Kind) -> Sites {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("maidian.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut env: HashMap<String, String> = [("MAIDIAN_CONFIG", config.to_str().unwrap())]
        .iter()
        .chain(common::QUICK_ROLLUPS)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mongo_db = match kind {
        Kind::Mongo => {
            let name = fresh_db_name("sites");
            env.insert("MAIDIAN_MONGODB_URI".into(), mongodb_uri().unwrap());
            env.insert("MAIDIAN_DATABASE".into(), name.clone());
            Some(name)
        }
        Kind::Embedded => {
            let data = dir.path().join("data");
            env.insert("MAIDIAN_DATA_DIR".into(), data.to_str().unwrap().into());
            None
        }
    };
    let collector = Collector::start(common::binary(), &env).await.unwrap();
    Sites {
        collector,
        mongo_db,
        _dir: dir,
    }
}

impl Sites {
    async fn send(&self, req: Request) -> Response {
        http::send(self.collector.addr, &req).await.unwrap()
    }

    async fn post(&self, key: &str, body: &Value, origin: Option<&str>) -> Response {
        let mut req = Request::new("POST", "/api/track/batch")
            .header("content-type", "application/json")
            .header("x-api-key", key);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        self.send(req.body(body.to_string())).await
    }

    async fn get(&self, key: &str, path: &str) -> Response {
        self.send(Request::new("GET", path).header("x-api-key", key))
            .await
    }

    async fn json(&self, key: &str, path: &str) -> Value {
        let res = self.get(key, path).await;
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        res.json().unwrap()
    }

    /// Waits until the rollups hold `events` events of the site `key` reads.
    async fn settled(&self, key: &str, events: u64) -> Value {
        common::settled(self.collector.addr, key, 7, events).await
    }
}

fn event(ty: &str, user: &str, page: &str, at: i64) -> Value {
    json!({"event_id": uuid(), "event_type": ty, "user_id": user, "session_id": format!("{user}-s"),
        "page_url": page, "timestamp": at,
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"})
}

/// 00:30 of the latest Shanghai day whose 00:30 is more than an hour past, so that real-time
/// figures (the last hour) leave it out whatever the time of day the test runs (16:30 UTC).
fn half_past_midnight_in_shanghai() -> i64 {
    let sh = Zone::named("Asia/Shanghai").unwrap();
    let now = now_ms();
    let today = sh.today();
    let at = sh.start_millis(today) + 30 * 60_000;
    if at < now - 3_660_000 {
        at
    } else {
        sh.start_millis(today.window_start(2)) + 30 * 60_000
    }
}

async fn two_sites_with_their_own_keys_days_and_figures(kind: Kind) {
    let env = start(kind).await;
    let now = now_ms();
    let midnight = half_past_midnight_in_shanghai();
    // The blog (the seed's keys, site `default`, UTC): two visitors.
    let blog = json!({"events": [
        event("page_view", "b1", BLOG_PAGE, now - 60_000),
        event("click", "b1", BLOG_PAGE, now - 50_000),
        event("page_view", "b2", BLOG_PAGE, midnight),
    ]});
    let res = env.post("wk-blog", &blog, None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    // The shop: its events claim the blog's site in the body; the key decides.
    let mut shop_events = vec![
        event("page_view", "s1", SHOP_PAGE, midnight),
        event("page_view", "s2", SHOP_PAGE, now - 30_000),
    ];
    for e in &mut shop_events {
        e["site"] = json!("default");
    }
    let shop = json!({"events": shop_events, "site": "default"});
    let res = env
        .post("wk-shop", &shop, Some("https://shop.example"))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());

    // A site's listed origins only.
    let other = json!({"events": [event("page_view", "x", SHOP_PAGE, now)]});
    let res = env
        .post("wk-shop", &other, Some("https://evil.example"))
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    // A read key does not write.
    assert_eq!(env.post("rk-shop", &other, None).await.status, 401);

    let shop_summary = env.settled("rk-shop", 2).await;
    let blog_summary = env.settled("rk-blog", 3).await;
    assert_eq!(shop_summary["site"], "shop");
    assert_eq!(shop_summary["overview"]["active_users"], 2);
    assert_eq!(blog_summary["overview"]["active_users"], 2);
    let pages = |s: &Value| -> Vec<String> {
        s["top_pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["page_url"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(pages(&shop_summary), [SHOP_PAGE]);
    assert_eq!(pages(&blog_summary), [BLOG_PAGE]);

    // Days are the site's: the 00:30 event is on its Shanghai day for the shop, on the UTC day
    // (the one before) for the blog.
    let local_day = Zone::named("Asia/Shanghai")
        .unwrap()
        .day_of(midnight)
        .unwrap()
        .to_string();
    let utc_day = Day::from_millis(midnight).unwrap().to_string();
    assert_ne!(local_day, utc_day);
    let views_on = |s: &Value, day: &str| -> u64 {
        s["daily"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["day"] == day)
            .map(|d| d["page_views"].as_u64().unwrap())
            .sum()
    };
    let s2_day = Zone::named("Asia/Shanghai")
        .unwrap()
        .day_of(now - 30_000)
        .unwrap()
        .to_string();
    let expected_local = 1 + u64::from(s2_day == local_day);
    assert_eq!(
        views_on(&shop_summary, &local_day),
        expected_local,
        "{shop_summary}"
    );
    let b1_day = Day::from_millis(now - 60_000).unwrap().to_string();
    assert_eq!(
        views_on(&blog_summary, &utc_day),
        1 + u64::from(b1_day == utc_day),
        "{blog_summary}"
    );
    assert_eq!(
        shop_summary["period"]["until"],
        Zone::named("Asia/Shanghai").unwrap().today().to_string()
    );

    // Every read endpoint answers for the key's site only.
    let stats = env.json("rk-shop", "/api/stats/events?days=7").await;
    assert_eq!(stats["total_events"], 2, "{stats}");
    let stats = env.json("rk-blog", "/api/stats/events?days=7").await;
    assert_eq!(stats["total_events"], 3, "{stats}");
    let stats = env.json("rk-shop", "/api/stats/pages?days=7").await;
    assert_eq!(stats["pages"][0]["page_url"], SHOP_PAGE);
    assert_eq!(stats["pages"].as_array().unwrap().len(), 1);
    let funnel = env
        .json(
            "rk-shop",
            "/api/analytics/funnel?steps=page_view,click&days=7",
        )
        .await;
    assert_eq!(funnel["funnel_steps"][0]["users"], 2, "{funnel}");
    assert_eq!(funnel["funnel_steps"][1]["users"], 0, "{funnel}");
    let funnel = env
        .json(
            "rk-blog",
            "/api/analytics/funnel?steps=page_view,click&days=7",
        )
        .await;
    assert_eq!(funnel["funnel_steps"][1]["users"], 1, "{funnel}");
    let retention = env.json("rk-shop", "/api/analytics/retention?days=7").await;
    let cohort_users: u64 = retention["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["users"].as_u64().unwrap())
        .sum();
    assert_eq!(cohort_users, 2, "{retention}");
    let realtime = env.json("rk-shop", "/api/analytics/realtime").await;
    assert_eq!(realtime["recent_events_1h"], 1, "{realtime}");
    let realtime = env.json("rk-blog", "/api/analytics/realtime").await;
    assert_eq!(realtime["recent_events_1h"], 2, "{realtime}");
    let csv = env.get("rk-shop", "/api/export/events.csv?days=7").await;
    assert_eq!(csv.status, 200);
    let csv = csv.text();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains(SHOP_PAGE) && !csv.contains(BLOG_PAGE), "{csv}");
    assert!(csv.contains(&local_day), "stored day is the site's: {csv}");
    let report = env.get("rk-shop", "/api/report?days=7").await;
    assert_eq!(report.status, 200);
    assert!(report.text().contains("shop.example") && !report.text().contains("blog.example"));

    // A site key reads its own site only; the admin key must name one.
    for (key, path, status) in [
        ("rk-shop", "/api/analytics/summary?site=default", 403),
        ("rk-blog", "/api/stats/events?site=shop", 403),
        ("rk-shop", "/api/export/events.csv?site=default", 403),
        ("rk-blog", "/api/report?site=shop", 403),
        ("wk-shop", "/api/analytics/summary", 403),
        ("nope", "/api/analytics/summary", 401),
        ("ak-all", "/api/analytics/summary", 400),
        ("ak-all", "/api/analytics/summary?site=blog", 400),
    ] {
        let res = env.get(key, path).await;
        assert_eq!(res.status, status, "{key} {path}: {}", res.text());
        assert!(res.json().unwrap()["error"]["code"].is_string());
    }
    let admin = env
        .json("ak-all", "/api/analytics/summary?site=shop&days=7")
        .await;
    assert_eq!(admin["overview"], shop_summary["overview"]);
    assert_eq!(
        env.json("rk-shop", "/api/analytics/summary?site=shop&days=7")
            .await["overview"],
        shop_summary["overview"]
    );

    // The sites list: all of them for the admin key, its own for a site key.
    let all = env.json("ak-all", "/api/sites").await;
    assert_eq!(all["admin"], true);
    let rows: Vec<(String, String, u64)> = all["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["timezone"].as_str().unwrap().to_string(),
                s["events"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("default".into(), "UTC".into(), 3),
            ("shop".into(), "Asia/Shanghai".into(), 2)
        ]
    );
    let own = env.json("rk-shop", "/api/sites").await;
    assert_eq!(own["sites"].as_array().unwrap().len(), 1);
    assert_eq!(own["admin"], false);

    if let Some(db) = &env.mongo_db {
        // Stored under the key's site, whatever the body said.
        let client = mongodb::Client::with_uri_str(mongodb_uri().unwrap())
            .await
            .unwrap();
        let coll = client
            .database(db)
            .collection::<mongodb::bson::Document>("events");
        let shop_docs = coll
            .count_documents(mongodb::bson::doc! {"site": "shop"})
            .await
            .unwrap();
        assert_eq!(shop_docs, 2);
        // The CLI on the same database: --site picks the site, several sites need it.
        let bin = common::binary().with_file_name("maidian");
        let cli = |args: &[&str]| {
            std::process::Command::new(&bin)
                .args(args)
                .args(["--mongodb-uri", &mongodb_uri().unwrap(), "--database", db])
                .output()
                .unwrap()
        };
        let out = cli(&["summary", "--site", "shop", "--days", "7", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["overview"], shop_summary["overview"]);
        assert_eq!(s["daily"], shop_summary["daily"]);
        let out = cli(&["summary", "--days", "7"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("several sites"));
        let out = cli(&["sites", "--json"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed, all["sites"]);
    }
}

#[tokio::test]
async fn two_sites_on_mongodb() {
    two_sites_with_their_own_keys_days_and_figures(Kind::Mongo).await;
}

#[tokio::test]
async fn two_sites_on_the_embedded_store() {
    two_sites_with_their_own_keys_days_and_figures(Kind::Embedded).await;
}

/// Dedupe is per site: the same `event_id` sent with another site's key is another event
/// (stored, answered as stored, counted by that site), so the answer never tells whether an id
/// exists in another site; a resend to either site is still deduplicated. It used to be
/// answered `deduplicated` and dropped.
async fn the_same_event_id_in_two_sites_is_two_events(kind: Kind) {
    let s = start(kind).await;
    let now = common::now_ms();
    let id = uuid();
    let one = |page: &str| {
        let mut e = event("click", "u-dedupe", page, now);
        e["event_id"] = json!(id);
        json!({ "events": [e] })
    };
    let blog = s.post("wk-blog", &one(BLOG_PAGE), None).await;
    assert_eq!(blog.json().unwrap()["stored"], 1, "{}", blog.text());
    let shop = s
        .post("wk-shop", &one(SHOP_PAGE), Some("https://shop.example"))
        .await;
    let answer = shop.json().unwrap();
    assert_eq!(
        (&answer["stored"], &answer["deduplicated"]),
        (&json!(1), &json!(0)),
        "{answer}"
    );
    // Resends, to either site: deduplicated.
    for (key, page, origin) in [
        ("wk-blog", BLOG_PAGE, None),
        ("wk-shop", SHOP_PAGE, Some("https://shop.example")),
    ] {
        let again = s.post(key, &one(page), origin).await.json().unwrap();
        assert_eq!(
            (&again["stored"], &again["deduplicated"]),
            (&json!(0), &json!(1)),
            "{key}: {again}"
        );
    }
    s.settled("rk-blog", 1).await;
    s.settled("rk-shop", 1).await;
}

#[tokio::test]
async fn dedupe_is_per_site_on_mongodb() {
    the_same_event_id_in_two_sites_is_two_events(Kind::Mongo).await;
}

#[tokio::test]
async fn dedupe_is_per_site_on_the_embedded_store() {
    the_same_event_id_in_two_sites_is_two_events(Kind::Embedded).await;
}
