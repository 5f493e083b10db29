//! Figures you can trust: after crashes, lost replies, an unreachable database, several
//! collectors and a rebuild under load, every rollup-derived figure equals what a rebuild from
//! the raw events gives. The reference is computed in this test from the stored events
//! (`rollup::docs_of`, the same arithmetic a rebuild applies), so the database is only read.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::{binary, now_ms, uuid, READ_KEY, WRITE_KEY};
use maidian_analytics::engine::{retention, summary};
use maidian_analytics::event::Day;
use maidian_analytics::stats::Period;
use maidian_analytics::store::{MongoConfig, Store, StoreConfig};
use maidian_testkit::http::{self, Request};
use maidian_testkit::proxy::MongoProxy;
use maidian_testkit::{fresh_db_name, mongodb_uri, Collector};
use serde_json::{json, Value};

/// These tests load the one FerretDB of the run heavily: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Collector settings for these tests: short lags and a short lease so takeovers are quick.
fn collector_env(uri: &str, db: &str) -> HashMap<String, String> {
    [
        ("MAIDIAN_MONGODB_URI", uri),
        ("MAIDIAN_DATABASE", db),
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", READ_KEY),
        ("MAIDIAN_MONGODB_TIMEOUT", "3"),
        ("MAIDIAN_WRITER_INSERT_TIMEOUT_MS", "1500"),
        // The production margin (lag − timeout = 2 s here, 2 s by default): FerretDB on a
        // loaded CI machine has committed an abandoned insert more than 0.5 s after its
        // timeout, which is the one case outside the guarantee (README).
        ("MAIDIAN_ROLLUP_SAFETY_LAG_MS", "3500"),
        ("MAIDIAN_ROLLUP_LEASE_TTL_MS", "4000"),
        ("MAIDIAN_ROLLUP_POLL_MS", "50"),
        ("MAIDIAN_ROLLUP_CHUNK_EVENTS", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One batch of 20 realistic events (page views, clicks, leaves, form submits) from a pool of
/// 60 visitors.
fn batch(seed: u64) -> Value {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let now = now_ms();
    let events: Vec<Value> = (0..20)
        .map(|i| {
            let user = format!("u{}", next(60));
            let page = format!("https://shop.example/p{}", next(5));
            let kind = ["page_view", "click", "page_leave", "form_submit", "scroll"][next(5) as usize];
            let mut e = json!({
                "event_id": uuid(),
                "event_type": kind,
                "user_id": user,
                "session_id": format!("{user}-s{}", next(2)),
                "page_url": page,
                "timestamp": now - 1_000 - i64::from(i) * 10,
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            });
            if kind == "page_view" && next(2) == 0 {
                e["referrer"] = json!("https://search.example/?q=shoes");
            }
            if kind == "page_leave" {
                e["page_view_id"] = json!(format!("view-{}", next(40)));
                e["duration"] = json!(next(60_000));
            }
            if kind == "scroll" {
                e["scroll_depth"] = json!(25 * (1 + next(4)));
            }
            e
        })
        .collect();
    json!({ "events": events })
}

/// Clients that send batches until stopped, each batch retried (on any collector) until it
/// is acknowledged: at-least-once delivery, as the SDK does.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    targets: Arc<RwLock<Vec<SocketAddr>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(clients: u64, targets: Vec<SocketAddr>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let targets = Arc::new(RwLock::new(targets));
        let tasks = (0..clients)
            .map(|c| {
                let (stop, acked, targets) = (stop.clone(), acked.clone(), targets.clone());
                tokio::spawn(async move {
                    let mut n = c * 1_000_000;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let body = batch(n).to_string();
                        for attempt in 0u64.. {
                            let addrs = targets.read().unwrap().clone();
                            let addr = addrs[((n + attempt) % addrs.len() as u64) as usize];
                            let req = Request::new("POST", "/api/track/batch")
                                .header("content-type", "application/json")
                                .header("x-api-key", WRITE_KEY)
                                .body(body.clone());
                            if let Ok(r) = http::send(addr, &req).await {
                                if r.status == 200 {
                                    acked.fetch_add(20, Ordering::SeqCst);
                                    break;
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        // About 100 events a second per client: a busy site, and what
                        // FerretDB (the test database) rolls up with room to spare.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            targets,
            tasks,
        }
    }

    fn retarget(&self, targets: Vec<SocketAddr>) {
        *self.targets.write().unwrap() = targets;
    }

    /// Stops sending; every batch started is acknowledged before this returns.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("a client never got its batch acknowledged")
                .unwrap();
        }
        self.acked.load(Ordering::SeqCst)
    }
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let r = http::send(
        addr,
        &Request::new("GET", path).header("x-api-key", READ_KEY),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json().unwrap()
}

async fn health(addr: SocketAddr) -> Value {
    http::send(addr, &Request::new("GET", "/api/health"))
        .await
        .unwrap()
        .json()
        .unwrap()
}

/// Waits until the consumer has rolled up everything stored (lag 0).
async fn wait_caught_up(addr: SocketAddr) {
    for _ in 0..600 {
        if health(addr).await["rollup_lag_seconds"] == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rollups never caught up: {}", health(addr).await);
}

fn mongo_store(uri: &str, db: &str) -> StoreConfig {
    StoreConfig::Mongo(MongoConfig::at_uri(uri, db))
}

/// The summary and retention a collector serves once its rollups have caught up.
struct Served {
    summary: Value,
    retention: Value,
}

async fn served_when_caught_up(addr: SocketAddr) -> Served {
    wait_caught_up(addr).await;
    Served {
        summary: get(addr, "/api/analytics/summary?days=7&top=10").await,
        retention: get(addr, "/api/analytics/retention?days=7").await,
    }
}

/// Every summary and retention figure served equals the figures a rebuild from the stored
/// events gives, and the stored events are exactly what clients sent.
async fn assert_exact(served: &Served, store: &Store, acked: u64) {
    let p = Period::last_days(7, Day::today());
    let events = store.events_between(p.since, p.until).await.unwrap();
    assert_eq!(
        events.len() as u64,
        acked,
        "stored events differ from acknowledged ones"
    );
    let mut expected = serde_json::to_value(summary::summarize(
        p,
        &summary::Inputs::from_events(&events),
        10,
    ))
    .unwrap();
    expected["site"] = "default".into();
    assert_eq!(served.summary, expected, "summary differs from a rebuild");
    let mut expected = serde_json::to_value(retention::from_events(p, &events)).unwrap();
    expected["site"] = "default".into();
    assert_eq!(
        served.retention, expected,
        "retention differs from a rebuild"
    );
}

/// `kill -9` of the collector while clients send; after a restart the figures become exact
/// with no manual step.
#[tokio::test]
async fn kill_9_under_load_then_restart_figures_are_exact() {
    let _one_at_a_time = SERIAL.lock().await;
    let uri = mongodb_uri().unwrap();
    let db = fresh_db_name("kill9");
    let env = collector_env(&uri, &db);
    let first = Collector::start(binary(), &env).await.unwrap();
    let load = Load::start(8, vec![first.addr]);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    first.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = Collector::start(binary(), &env).await.unwrap();
    load.retarget(vec![second.addr]);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let acked = load.finish().await;
    assert!(acked > 0);
    let served = served_when_caught_up(second.addr).await;
    let store = Store::open(&mongo_store(&uri, &db)).await.unwrap();
    assert_exact(&served, &store, acked).await;
}

/// The same on the embedded store: the chunk and its checkpoint commit together.
#[tokio::test]
async fn kill_9_on_the_embedded_store_then_restart_figures_are_exact() {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let env: HashMap<String, String> = [
        ("MAIDIAN_DATA_DIR", data.as_str()),
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", READ_KEY),
        ("MAIDIAN_ROLLUP_POLL_MS", "20"),
        ("MAIDIAN_ROLLUP_CHUNK_EVENTS", "100"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let first = Collector::start(binary(), &env).await.unwrap();
    let load = Load::start(8, vec![first.addr]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    first.kill().await.unwrap();
    let second = Collector::start(binary(), &env).await.unwrap();
    load.retarget(vec![second.addr]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = load.finish().await;
    let served = served_when_caught_up(second.addr).await;
    second.terminate().await.unwrap();
    // The file admits one process: read it once the collector is gone.
    let store = Store::open(&StoreConfig::Embedded {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    assert_exact(&served, &store, acked).await;
}

/// Inserts that commit but whose replies are lost (the collector answers 503, the client
/// resends, the resend is all duplicates), and rollup updates cut part-way through a chunk:
/// both end up counted exactly once.
#[tokio::test]
async fn lost_replies_and_cut_rollup_applies_still_count_exactly_once() {
    let _one_at_a_time = SERIAL.lock().await;
    let uri = mongodb_uri().unwrap();
    let upstream: SocketAddr = uri
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = MongoProxy::start(upstream).await.unwrap();
    let db = fresh_db_name("lost");
    let env = collector_env(&proxy.uri(), &db);
    let c = Collector::start(binary(), &env).await.unwrap();

    // One batch whose insert commits but whose reply is lost.
    proxy.drop_replies("insert", "events", 1);
    let req = Request::new("POST", "/api/track/batch")
        .header("content-type", "application/json")
        .header("x-api-key", WRITE_KEY)
        .body(batch(7).to_string());
    let send = || http::send(c.addr, &req);
    let first = send().await.unwrap();
    assert_eq!(proxy.dropped(), 1, "the insert reply was not dropped");
    let mut answer = first.json().unwrap_or(Value::Null);
    if first.status != 200 {
        assert_eq!(first.status, 503, "{}", first.text());
        let again = send().await.unwrap();
        assert_eq!(again.status, 200, "{}", again.text());
        answer = again.json().unwrap();
    }
    // Stored by the first attempt: the answer that reaches the client reports duplicates.
    assert_eq!(answer["deduplicated"], 20, "{answer}");
    let mut acked = 20;

    // Under load: rollup updates whose replies are lost mid-chunk, and the database cut off.
    let load = Load::start(4, vec![c.addr]);
    proxy.drop_replies("update", "rollup_daily", 3);
    for _ in 0..300 {
        if proxy.dropped() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(proxy.dropped(), 4, "rollup updates were not cut");
    proxy.set_down(true);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    proxy.set_down(false);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    acked += load.finish().await;
    let served = served_when_caught_up(c.addr).await;
    let store = Store::open(&mongo_store(&uri, &db)).await.unwrap();
    assert_exact(&served, &store, acked).await;
}

/// Two collectors on one database under load; `maidian rollups rebuild` runs meanwhile
/// (figures never drop), then the lease owner is killed and the other takes over.
#[tokio::test]
async fn two_collectors_a_rebuild_under_load_and_a_lease_takeover() {
    let _one_at_a_time = SERIAL.lock().await;
    let uri = mongodb_uri().unwrap();
    let db = fresh_db_name("pair");
    let env = collector_env(&uri, &db);
    let a = Collector::start(binary(), &env).await.unwrap();
    let b = Collector::start(binary(), &env).await.unwrap();
    let load = Load::start(6, vec![a.addr, b.addr]);
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    // Sample the figures while the rebuild runs: they never decrease.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        let addr = a.addr;
        tokio::spawn(async move {
            let mut last = 0u64;
            let mut samples = 0;
            while sampling.load(Ordering::SeqCst) {
                let s = get(addr, "/api/analytics/summary?days=7").await;
                let total = s["overview"]["total_events"].as_u64().unwrap();
                assert!(
                    total >= last,
                    "total_events fell from {last} to {total} during a rebuild"
                );
                last = total;
                samples += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        })
    };
    let cli = binary().with_file_name("maidian");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut rebuild = tokio::process::Command::new(&cli)
        .args([
            "rollups",
            "rebuild",
            "--mongodb-uri",
            &uri,
            "--database",
            &db,
        ])
        .args(["--safety-lag-ms", "3500"])
        .env("RUST_LOG", "info,mongodb=warn")
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(300), rebuild.wait()).await;
    let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
    let Ok(status) = status else {
        let state = Store::open(&mongo_store(&uri, &db))
            .await
            .unwrap()
            .rollup_status()
            .await;
        panic!("the rebuild never finished: {stderr}\nrollup status: {state:?}");
    };
    assert!(status.unwrap().success(), "{stderr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampling.store(false, Ordering::SeqCst);
    assert!(sampler.await.unwrap() > 5);

    let status = Store::open(&mongo_store(&uri, &db))
        .await
        .unwrap()
        .rollup_status()
        .await
        .unwrap();
    assert_eq!(status.generation, 2, "{status:?}");
    let owner = status.owner.expect("a collector holds the lease");
    let (owner_c, survivor) = if owner.contains(&format!(":{}:", a.pid().unwrap())) {
        (a, b)
    } else {
        assert!(
            owner.contains(&format!(":{}:", b.pid().unwrap())),
            "{owner}"
        );
        (b, a)
    };
    owner_c.kill().await.unwrap();
    load.retarget(vec![survivor.addr]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let acked = load.finish().await;
    let served = served_when_caught_up(survivor.addr).await;
    let store = Store::open(&mongo_store(&uri, &db)).await.unwrap();
    let status = store.rollup_status().await.unwrap();
    let new_owner = status.owner.clone().unwrap();
    assert!(
        new_owner.contains(&format!(":{}:", survivor.pid().unwrap())),
        "the survivor did not take the lease over: {status:?}"
    );
    assert_exact(&served, &store, acked).await;
}
