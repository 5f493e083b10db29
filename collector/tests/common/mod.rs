//! Shared by the collector's end-to-end tests: the real binary on a real port, talking to the
//! FerretDB of the test run, one fresh database per test.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use maidian_testkit::http::{self, Request, Response};
use maidian_testkit::{fresh_db_name, mongodb_uri, Collector};
use mongodb::bson::Document;

pub const WRITE_KEY: &str = "test-write-key";
pub const READ_KEY: &str = "test-read-key";

pub struct Env {
    pub collector: Collector,
    pub db: mongodb::Database,
    pub db_name: String,
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_maidian-collector"))
}

/// The rollup consumer's settings of every test collector: short waits, so tests see figures
/// within about two seconds.
pub const QUICK_ROLLUPS: &[(&str, &str)] = &[
    ("MAIDIAN_WRITER_INSERT_TIMEOUT_MS", "1000"),
    ("MAIDIAN_ROLLUP_SAFETY_LAG_MS", "1500"),
    ("MAIDIAN_ROLLUP_POLL_MS", "50"),
];

/// A collector on a fresh database, with the test keys and `extra` environment.
pub async fn start(extra: &[(&str, &str)]) -> Env {
    start_on(&fresh_db_name("collector"), extra).await
}

/// A collector on database `db_name` (several may share one), with the test keys and
/// `extra` environment.
pub async fn start_on(db_name: &str, extra: &[(&str, &str)]) -> Env {
    let uri = mongodb_uri().unwrap();
    let db_name = db_name.to_string();
    let mut env: HashMap<String, String> = [
        ("MAIDIAN_MONGODB_URI", uri.as_str()),
        ("MAIDIAN_DATABASE", db_name.as_str()),
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", READ_KEY),
        ("MAIDIAN_MONGODB_TIMEOUT", "10"),
    ]
    .iter()
    .chain(QUICK_ROLLUPS)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let collector = Collector::start(binary(), &env).await.unwrap();
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    Env {
        collector,
        db: client.database(&db_name),
        db_name,
    }
}

impl Env {
    pub async fn send(&self, req: Request) -> Response {
        http::send(self.collector.addr, &req).await.unwrap()
    }

    /// POSTs JSON with the write key header.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send(
            Request::new("POST", path)
                .header("content-type", "application/json")
                .header("x-api-key", WRITE_KEY)
                .body(body.to_string()),
        )
        .await
    }

    /// GETs with the read key.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::new("GET", path).header("x-api-key", READ_KEY))
            .await
    }

    /// Polls until the rollup consumer has caught up (`rollup_lag_seconds` 0 in health) and
    /// the summary counts `events` events.
    pub async fn wait_for_rollups(&self, days: u32, events: u64) -> serde_json::Value {
        settled(self.collector.addr, READ_KEY, days, events).await
    }

    pub async fn stored(&self) -> Vec<Document> {
        use futures_util::TryStreamExt;
        let coll = self.db.collection::<Document>("events");
        coll.find(Document::new())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    pub async fn count(&self) -> u64 {
        self.db
            .collection::<Document>("events")
            .count_documents(Document::new())
            .await
            .unwrap()
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads until the server closes the connection (or `limit` passes); returns what came.
pub async fn read_to_close(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

/// Polls the collector at `addr` until its rollup consumer has caught up
/// (`rollup_lag_seconds` 0 in health) and the summary of the last `days` days that `key`
/// reads counts `events` events; returns that summary.
pub async fn settled(
    addr: std::net::SocketAddr,
    key: &str,
    days: u32,
    events: u64,
) -> serde_json::Value {
    let summary = Request::new("GET", &format!("/api/analytics/summary?days={days}"))
        .header("x-api-key", key);
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let health = http::send(addr, &Request::new("GET", "/api/health"))
            .await
            .unwrap()
            .json()
            .unwrap();
        let s = http::send(addr, &summary).await.unwrap().json().unwrap();
        if s["overview"]["total_events"] == events && health["rollup_lag_seconds"] == 0.0 {
            return s;
        }
        last = s;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("rollups never settled at {events} events: {last}");
}
