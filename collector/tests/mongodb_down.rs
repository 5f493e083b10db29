//! The collector starts while MongoDB is down, so an orchestrator's start order does not
//! matter: until the database answers, health says why and ingest answers 503 (the client
//! retries); once it is up, events are stored and rolled up. The database here is a FerretDB
//! started late on the port the collector was given.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use maidian_testkit::http::{self, Request};
use maidian_testkit::Collector;
use serde_json::json;

#[tokio::test]
async fn starts_while_mongodb_is_down_and_stores_once_it_is_up() {
    let port = common::free_port();
    let uri = format!("mongodb://127.0.0.1:{port}/");
    let metrics_port = common::free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let env: HashMap<String, String> = [
        ("MAIDIAN_MONGODB_URI", uri.as_str()),
        ("MAIDIAN_DATABASE", "late"),
        ("MAIDIAN_MONGODB_TIMEOUT", "1"),
        ("MAIDIAN_API_KEY", "wk"),
        ("MAIDIAN_READ_KEY", "rk"),
        ("MAIDIAN_METRICS_LISTEN", metrics_listen.as_str()),
    ]
    .iter()
    .chain(common::QUICK_ROLLUPS)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let collector = Collector::start(common::binary(), &env).await.unwrap();
    let addr = collector.addr;
    let health = http::send(addr, &Request::new("GET", "/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status, 503);
    let h = health.json().unwrap();
    assert_eq!(h["database"], "unreachable");
    // The public answer names no host or port of the database.
    let text = health.text();
    assert!(!text.contains(&port.to_string()), "{text}");
    assert!(!text.contains("127.0.0.1"), "{text}");

    let batch = |id: &str| {
        Request::new("POST", "/api/track/batch")
            .header("content-type", "application/json")
            .header("x-api-key", "wk")
            .body(
                json!({"events": [{"event_id": id, "event_type": "click", "user_id": "u1"}]})
                    .to_string(),
            )
    };
    let id = uuid::Uuid::new_v4().to_string();
    let res = http::send(addr, &batch(&id)).await.unwrap();
    assert_eq!(res.status, 503, "{}", res.text());
    let metrics_addr: std::net::SocketAddr = metrics_listen.parse().unwrap();
    let store_up = || async {
        let text = http::send(metrics_addr, &Request::new("GET", "/metrics"))
            .await
            .unwrap()
            .text();
        text.lines()
            .find_map(|l| l.strip_prefix("maidian_store_up "))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no maidian_store_up in {text}"))
    };
    assert_eq!(store_up().await, "0");
    let metrics_text = http::send(metrics_addr, &Request::new("GET", "/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metrics_text.contains("maidian_store_probe_failures_total{reason="),
        "{metrics_text}"
    );

    // The database comes up on the port the collector was given.
    let dir = tempfile::tempdir().unwrap();
    let ferretdb = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ferretdb/ferretdb");
    let _db = tokio::process::Command::new(&ferretdb)
        .arg("-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-data")
        .arg(dir.path().join("db"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", ferretdb.display()));
    let mut healthy = false;
    for _ in 0..150 {
        let h = http::send(addr, &Request::new("GET", "/api/health"))
            .await
            .unwrap();
        if h.status == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthy, "health never recovered");
    assert_eq!(store_up().await, "1");
    // The client's retry of the refused batch is stored, and rolled up.
    let res = http::send(addr, &batch(&id)).await.unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json().unwrap()["stored"], 1);
    let mut total = json!(null);
    for _ in 0..150 {
        let s = http::send(
            addr,
            &Request::new("GET", "/api/analytics/summary?days=1").header("x-api-key", "rk"),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
        total = s["overview"]["total_events"].clone();
        if total == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(total, 1);
    let (code, _) = collector.terminate().await.unwrap();
    assert_eq!(code, Some(0));
}

/// A database that goes away under a running collector (the driver's default 30 s server
/// selection timeout): `/api/health` still answers 503 at once, naming no host, so a load
/// balancer does not take the service out for a hanging check; it is 200 again once the
/// database is back.
#[tokio::test]
async fn health_answers_within_two_seconds_while_the_database_is_gone() {
    let uri = maidian_testkit::mongodb_uri().unwrap();
    let upstream: std::net::SocketAddr = uri
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = maidian_testkit::proxy::MongoProxy::start(upstream)
        .await
        .unwrap();
    let db = maidian_testkit::fresh_db_name("outage");
    let env: HashMap<String, String> = [
        ("MAIDIAN_MONGODB_URI", proxy.uri().as_str()),
        ("MAIDIAN_DATABASE", db.as_str()),
        ("MAIDIAN_API_KEY", "wk-0123456789abcdef"),
        ("MAIDIAN_READ_KEY", "rk-0123456789abcdef"),
    ]
    .iter()
    .chain(common::QUICK_ROLLUPS)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let collector = Collector::start(common::binary(), &env).await.unwrap();
    let health = || async {
        let started = std::time::Instant::now();
        // Far below the driver's 30 s: an answer that needs it fails here.
        let answer = tokio::time::timeout(
            Duration::from_secs(8),
            http::send(collector.addr, &Request::new("GET", "/api/health")),
        )
        .await
        .expect("health did not answer within 8 s")
        .unwrap();
        (answer, started.elapsed())
    };
    assert_eq!(health().await.0.status, 200);

    proxy.set_down(true);
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let (answer, took) = health().await;
        worst = worst.max(took);
        assert_eq!(answer.status, 503, "{}", answer.text());
        let h = answer.json().unwrap();
        assert_eq!(h["database"], "unreachable", "{h}");
        let text = answer.text();
        let port = proxy.addr.port().to_string();
        assert!(
            !text.contains(&port) && !text.contains("127.0.0.1"),
            "{text}"
        );
    }
    println!(
        "figure: health during an outage: slowest of 3 answers {} ms",
        worst.as_millis()
    );

    proxy.set_down(false);
    let mut back = false;
    for _ in 0..100 {
        if health().await.0.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "health never recovered");
    let (code, _) = collector.terminate().await.unwrap();
    assert_eq!(code, Some(0));
}
