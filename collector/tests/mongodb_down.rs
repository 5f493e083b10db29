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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env: HashMap<String, String> = [
        (
            "MAIDIAN_MONGODB_URI",
            format!("mongodb://127.0.0.1:{port}/"),
        ),
        ("MAIDIAN_DATABASE", "late".to_string()),
        ("MAIDIAN_MONGODB_TIMEOUT", "1".to_string()),
        ("MAIDIAN_API_KEY", "wk".to_string()),
        ("MAIDIAN_READ_KEY", "rk".to_string()),
        ("MAIDIAN_WRITER_INSERT_TIMEOUT_MS", "1000".to_string()),
        ("MAIDIAN_ROLLUP_SAFETY_LAG_MS", "1500".to_string()),
        ("MAIDIAN_ROLLUP_POLL_MS", "50".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let collector = Collector::start(Path::new(env!("CARGO_BIN_EXE_maidian-collector")), &env)
        .await
        .unwrap();
    let addr = collector.addr;
    let health = http::send(addr, &Request::new("GET", "/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status, 503);
    let h = health.json().unwrap();
    assert_eq!(h["database"], "unreachable");
    assert!(!h["error"].as_str().unwrap().is_empty(), "{h}");

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
