//! The data lifecycle through the real collector on FerretDB: erasure with the admin key
//! only (no trace of the visitor afterwards, figures equal to a rebuild), access to one
//! visitor's data, and raw-event retention that keeps the figures of old days.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use common::{now_ms, start, uuid, Env, READ_KEY, WRITE_KEY};
use maidian_testkit::http::Request;
use serde_json::{json, Value};

const ADMIN_KEY: &str = "test-admin-key";
const DAY: i64 = 86_400_000;

/// Events of visitors: `(user, anonymous id, session, type, age in ms)`.
fn events(rows: &[(Option<&str>, &str, &str, &str, i64)]) -> Vec<Value> {
    let now = now_ms();
    rows.iter()
        .map(|(user, anon, session, ty, age)| {
            json!({"event_id": uuid(), "event_type": ty, "user_id": user, "anonymous_id": anon,
                   "session_id": session, "page_url": "https://a.example/p",
                   "referrer": "https://search.example/", "timestamp": now - age})
        })
        .collect()
}

async fn send(env: &Env, events: Vec<Value>) {
    let res = env
        .post("/api/track/batch", &json!({ "events": events }))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

/// Collections of the test's database holding `needle` anywhere.
async fn traces(env: &Env, needle: &str) -> Vec<String> {
    maidian_testkit::collections_containing(&env.db, needle)
        .await
        .unwrap()
}

fn cli(env: &Env, args: &[&str]) -> std::process::Output {
    let bin = common::binary().with_file_name("maidian");
    std::process::Command::new(&bin)
        .args(args)
        .args([
            "--mongodb-uri",
            &maidian_testkit::mongodb_uri().unwrap(),
            "--database",
            &env.db_name,
        ])
        .env("MAIDIAN_ROLLUP_SAFETY_LAG_MS", "1500")
        .output()
        .unwrap()
}

/// The test's database as a store, to put events in straight (as stored before a setting).
async fn store_of(env: &Env) -> maidian_analytics::store::Store {
    maidian_analytics::store::Store::open(&maidian_analytics::store::StoreConfig::Mongo(
        maidian_analytics::store::MongoConfig::at_uri(
            maidian_testkit::mongodb_uri().unwrap(),
            env.db_name.clone(),
        ),
    ))
    .await
    .unwrap()
}

async fn forget(env: &Env, key: Option<&str>, body: &str) -> maidian_testkit::http::Response {
    let mut req = Request::new("POST", "/api/privacy/forget")
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    env.send(req).await
}

#[tokio::test]
async fn erasure_needs_the_admin_key_and_leaves_no_trace() {
    let env = start(&[("MAIDIAN_ADMIN_KEY", ADMIN_KEY)]).await;
    // Visitor eve-42 browsed anonymously, then signed in; bob and carol are others.
    send(
        &env,
        events(&[
            (None, "anon-eve-42", "sess-eve-1", "page_view", 2 * DAY),
            (None, "anon-eve-42", "sess-eve-1", "click", 2 * DAY - 1000),
            (
                Some("eve-42"),
                "anon-eve-42",
                "sess-eve-2",
                "page_view",
                60_000,
            ),
            (
                Some("eve-42"),
                "anon-eve-42",
                "sess-eve-2",
                "purchase",
                50_000,
            ),
            (Some("bob"), "anon-bob", "sess-bob", "page_view", 40_000),
            (Some("bob"), "anon-bob", "sess-bob", "click", 30_000),
            (
                Some("carol"),
                "anon-carol",
                "sess-carol",
                "page_view",
                20_000,
            ),
        ]),
    )
    .await;
    env.wait_for_rollups(7, 7).await;
    assert!(!traces(&env, "eve-42").await.is_empty());

    // Access: everything held about one visitor, with a read key.
    let csv = env.get("/api/export/events.csv?visitor=eve-42").await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert_eq!(csv.text().lines().count(), 1 + 4, "{}", csv.text());
    let by_cli = cli(&env, &["export", "--visitor", "anon-bob"]);
    assert!(by_cli.status.success());
    assert_eq!(
        String::from_utf8_lossy(&by_cli.stdout).lines().count(),
        1 + 2
    );

    // Erasure: the admin key only, a clear error otherwise.
    let body = r#"{"visitor": "eve-42"}"#;
    assert_eq!(forget(&env, None, body).await.status, 401);
    assert_eq!(forget(&env, Some(READ_KEY), body).await.status, 403);
    assert!([401, 403].contains(&forget(&env, Some(WRITE_KEY), body).await.status));
    let bad = forget(&env, Some(ADMIN_KEY), r#"{"visitor": ""}"#).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json().unwrap()["error"]["code"], "invalid_parameter");
    assert_eq!(forget(&env, Some(ADMIN_KEY), "not json").await.status, 400);
    assert_eq!(env.count().await, 7, "refused requests erased nothing");

    let done = forget(&env, Some(ADMIN_KEY), body).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let done = done.json().unwrap();
    assert_eq!(done["events_removed"], 4, "{done}");
    assert!(done["rollup_entries_removed"].as_u64().unwrap() > 0);
    for needle in ["eve-42", "sess-eve"] {
        assert_eq!(traces(&env, needle).await, Vec::<String>::new(), "{needle}");
    }
    assert_eq!(env.count().await, 3);
    let summary = env.wait_for_rollups(7, 3).await;
    assert_eq!(summary["overview"]["active_users"], 2);
    // The figures equal a rebuild from the remaining events.
    let rebuilt = cli(&env, &["rollups", "rebuild"]);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let after = env
        .get("/api/analytics/summary?days=7")
        .await
        .json()
        .unwrap();
    assert_eq!(after, summary);

    // The CLI over HTTP with the admin key; a visitor nobody knows removes nothing.
    let url = format!("http://{}", env.collector.addr);
    let out = cli(
        &env,
        &[
            "forget",
            "--visitor",
            "carol",
            "--json",
            "--url",
            &url,
            "--read-key",
            ADMIN_KEY,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events_removed"], 1, "{v}");
    let none = forget(&env, Some(ADMIN_KEY), r#"{"visitor": "nobody"}"#).await;
    assert_eq!(none.json().unwrap()["events_removed"], 0);
    assert_eq!(traces(&env, "carol").await, Vec::<String>::new());
}

#[tokio::test]
async fn retention_deletes_old_raw_events_and_keeps_their_figures() {
    let env = start(&[
        ("MAIDIAN_RETENTION_RAW_DAYS", "5"),
        ("MAIDIAN_RETENTION_CHECK_MS", "200"),
    ])
    .await;
    // Stored before the retention existed (straight into the database): 3 events 10 days
    // old, 2 of yesterday.
    let store = store_of(&env).await;
    let now = now_ms();
    let mut old = Vec::new();
    for (i, age) in [10 * DAY, 10 * DAY - 1000, 10 * DAY - 2000, DAY, DAY - 1000]
        .into_iter()
        .enumerate()
    {
        let ts = now - age;
        let mut e = maidian_analytics::event::Event {
            event_id: uuid(),
            event_type: if i % 2 == 0 { "page_view" } else { "click" }.into(),
            user_id: Some(format!("u{i}")),
            session_id: Some(format!("s{i}")),
            page_url: Some("https://a.example/p".into()),
            timestamp: ts,
            client_timestamp: ts,
            day: maidian_analytics::event::Day::from_millis(ts).unwrap(),
            ..Default::default()
        };
        e.derive_visitor();
        old.push(e);
    }
    store.insert(&old).await.unwrap();
    let summary = env.wait_for_rollups(30, 5).await;
    for _ in 0..100 {
        if env.count().await == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        env.count().await,
        2,
        "the 10-day-old raw events are deleted"
    );
    // Every figure of the old days stays.
    let after = env
        .get("/api/analytics/summary?days=30")
        .await
        .json()
        .unwrap();
    assert_eq!(after["overview"], summary["overview"]);
    assert_eq!(after["daily"], summary["daily"]);
    // Figures read from raw events say where raw data starts; a 7-day funnel does not.
    let funnel = env
        .get("/api/analytics/funnel?steps=page_view,click&days=30")
        .await
        .json()
        .unwrap();
    assert!(funnel["raw_data_since"].is_string(), "{funnel}");
    let recent = env
        .get("/api/analytics/funnel?steps=page_view,click&days=3")
        .await
        .json()
        .unwrap();
    assert!(recent.get("raw_data_since").is_none(), "{recent}");
    let export = env.get("/api/export/events.csv?days=30").await;
    assert!(export.header("x-maidian-raw-data-since").is_some());
    assert_eq!(export.text().lines().count(), 1 + 2);
    // An event older than the retention is refused: a resend cannot bring one back.
    let res = env
        .post(
            "/api/track/event",
            &json!({"event_type": "click", "user_id": "late", "timestamp": now - 6 * DAY}),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert_eq!(
        res.json().unwrap()["error"]["code"],
        "timestamp_out_of_range"
    );
    // A rebuild would lose the old days: refused, in one line.
    let rebuilt = cli(&env, &["rollups", "rebuild"]);
    assert!(!rebuilt.status.success());
    let err = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(
        err.contains("retention") && err.trim().lines().count() == 1,
        "{err}"
    );
}

/// Retention keeps its own timer: under a load steady enough that the rollup consumer is never
/// idle (one-event chunks, batches arriving faster than they roll up), raw events past the
/// retention are still deleted. It used to run only after an idle step.
#[tokio::test]
async fn retention_runs_under_steady_load() {
    let env = start(&[
        ("MAIDIAN_RETENTION_RAW_DAYS", "5"),
        ("MAIDIAN_RETENTION_CHECK_MS", "200"),
        ("MAIDIAN_ROLLUP_CHUNK_EVENTS", "1"),
    ])
    .await;
    let store = store_of(&env).await;
    let now = now_ms();
    let old: Vec<_> = (0..3)
        .map(|i| {
            let ts = now - 10 * DAY + i * 1000;
            let mut e = maidian_analytics::event::Event {
                event_id: uuid(),
                event_type: "page_view".into(),
                user_id: Some(format!("old-{i}")),
                page_url: Some("https://a.example/p".into()),
                timestamp: ts,
                client_timestamp: ts,
                day: maidian_analytics::event::Day::from_millis(ts).unwrap(),
                ..Default::default()
            };
            e.derive_visitor();
            e
        })
        .collect();
    store.insert(&old).await.unwrap();

    let old_left = || async {
        env.db
            .collection::<mongodb::bson::Document>("events")
            .count_documents(mongodb::bson::doc! { "user_id": { "$regex": "^old-" } })
            .await
            .unwrap()
    };
    let started = std::time::Instant::now();
    let mut sent = 0;
    let mut expired_after = None;
    while started.elapsed() < std::time::Duration::from_secs(40) {
        let batch: Vec<Value> = (0..20)
            .map(|i| {
                json!({"event_type": "click", "user_id": format!("load-{sent}-{i}"),
                       "timestamp": now_ms()})
            })
            .collect();
        sent += 1;
        let res = env
            .post("/api/track/batch", &json!({ "events": batch }))
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        if old_left().await == 0 {
            expired_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let health = env
        .send(Request::new("GET", "/api/health"))
        .await
        .json()
        .unwrap();
    let took = expired_after.unwrap_or_else(|| {
        panic!("raw events past the retention were never deleted under load: {health}")
    });
    // The consumer was busy all along: it still trails the load.
    assert!(
        health["rollup_lag_seconds"].as_f64().unwrap_or(0.0) > 0.0,
        "{health}"
    );
    eprintln!(
        "figure: retention under steady load: expired raw events deleted after {} ms (lag then {} s)",
        took.as_millis(),
        health["rollup_lag_seconds"]
    );
}
