//! The collector as an attacker and a careful operator see it, through the real binary on a
//! real port (loopback only, bounded in count and time): stalled and slow clients are cut off,
//! the connection cap holds, SIGTERM drains in bounded time, bodies are refused before they
//! cost memory, a poison event fails alone, secrets never reach the output, CSV cells cannot
//! run as formulas.
//!
//! Figures (RSS, time to close stalled uploads) are printed for BENCHMARKS.md; the assertions
//! are about behaviour, with generous bounds.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{now_ms, read_to_close, start, WRITE_KEY};
use maidian_testkit::http::Request;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn stalled_uploads_slow_headers_and_idle_connections_are_cut_off() {
    let env = start(&[
        ("MAIDIAN_HEADER_TIMEOUT_MS", "1000"),
        ("MAIDIAN_BODY_TIMEOUT_MS", "1000"),
        ("MAIDIAN_IDLE_TIMEOUT_MS", "1500"),
        // Every stalled upload comes from this one host: lift its share of the connections.
        ("MAIDIAN_MAX_CONNECTIONS_PER_CLIENT", "1000"),
    ])
    .await;
    let addr = env.collector.addr;
    let head = format!(
        "POST /api/track/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: {WRITE_KEY}\r\ncontent-length: 100000\r\n\r\n{{\"events\":["
    );
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    // A head that never ends, and a connection that never says anything.
    let mut slow_head = TcpStream::connect(addr).await.unwrap();
    slow_head
        .write_all(b"POST /api/track/event HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A finished request whose keep-alive connection then idles.
    let mut idle = maidian_testkit::http::Conn::open(addr).await.unwrap();
    assert_eq!(
        idle.send(&Request::new("GET", "/api/health"))
            .await
            .unwrap()
            .status,
        200
    );

    // Meanwhile the collector answers others at once.
    let health = env.send(Request::new("GET", "/api/health")).await;
    assert_eq!(health.status, 200);

    let answers = futures_util::future::join_all(
        stalled
            .iter_mut()
            .map(|s| async move { read_to_close(s, Duration::from_secs(20)).await }),
    )
    .await;
    let closed_after = started.elapsed();
    let timeouts = answers
        .iter()
        .filter(|a| a.as_deref().is_some_and(|t| t.starts_with("HTTP/1.1 408")))
        .count();
    assert!(
        answers.iter().all(Option::is_some),
        "a stalled upload was still open after 20 s"
    );
    assert_eq!(timeouts, 300, "each stalled upload gets a 408");
    assert!(answers[0]
        .as_deref()
        .unwrap()
        .contains("\"code\":\"body_timeout\""));
    assert!(
        read_to_close(&mut slow_head, Duration::from_secs(10))
            .await
            .is_some(),
        "a head that never ends keeps its connection"
    );
    assert!(
        read_to_close(&mut silent, Duration::from_secs(10))
            .await
            .is_some(),
        "a silent connection stays open"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle_answer = idle.send(&Request::new("GET", "/api/health")).await;
    assert!(
        idle_answer.is_err(),
        "an idle keep-alive connection stayed open: {:?}",
        idle_answer.map(|r| (r.status, r.text()))
    );
    eprintln!(
        "figure: 300 stalled uploads (body timeout 1 s) all answered 408 and closed after {:.2} s",
        closed_after.as_secs_f64()
    );
    assert_eq!(env.count().await, 0);
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let env = start(&[
        ("MAIDIAN_MAX_CONNECTIONS", "4"),
        ("MAIDIAN_HEADER_TIMEOUT_MS", "30000"),
        ("MAIDIAN_IDLE_TIMEOUT_MS", "30000"),
    ])
    .await;
    let addr = env.collector.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn(async move {
        maidian_testkit::http::send(addr, &Request::new("GET", "/api/health")).await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "a fifth connection was served");
    drop(held.pop());
    let res = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("a freed slot was not reused")
        .unwrap()
        .unwrap();
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn sigterm_drains_in_bounded_time_even_with_a_stalled_upload() {
    let env = start(&[
        ("MAIDIAN_BODY_TIMEOUT_MS", "60000"),
        ("MAIDIAN_HEADER_TIMEOUT_MS", "60000"),
        ("MAIDIAN_IDLE_TIMEOUT_MS", "60000"),
        ("MAIDIAN_DRAIN_TIMEOUT_MS", "1000"),
    ])
    .await;
    let addr = env.collector.addr;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(
            format!("POST /api/track/event HTTP/1.1\r\nhost: x\r\nx-api-key: {WRITE_KEY}\r\ncontent-length: 500\r\n\r\n{{").as_bytes(),
        )
        .await
        .unwrap();
    let ok = env
        .post(
            "/api/track/event",
            &json!({"event_type": "kept", "session_id": "s"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    let db = env.db.clone();
    let started = Instant::now();
    let (code, _) = env
        .collector
        .terminate_within(Duration::from_secs(15))
        .await
        .expect("the collector did not exit within 15 s of SIGTERM");
    eprintln!(
        "figure: SIGTERM with a stalled upload (drain timeout 1 s): exited after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, Some(0));
    let n = db
        .collection::<mongodb::bson::Document>("events")
        .count_documents(mongodb::bson::doc! {"event_type": "kept"})
        .await
        .unwrap();
    assert_eq!(n, 1, "an answered event was lost in the drain");
}

/// 100 parallel 4 KB gzip bodies that inflate to 4 MiB, several kinds, with and without the
/// (public) write key: every one refused, memory and health unharmed.
#[tokio::test]
async fn gzip_bombs_are_refused_before_they_cost_memory() {
    let env = start(&[]).await;
    let addr = env.collector.addr;
    let pid = env.collector.pid().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_kb = rss_kb(pid, "VmRSS:");

    let zeros = |open: &str, close: &str| {
        let n = (4 << 20) - open.len() - close.len();
        let mut s = String::with_capacity(4 << 20);
        s.push_str(open);
        s.push_str(&"0,".repeat(n / 2 - 1));
        s.push('0');
        s.push_str(close);
        gzip(s.as_bytes())
    };
    let array = zeros("[", "]");
    let events = zeros("{\"events\":[", "]}");
    let custom = zeros("{\"event_type\":\"a\",\"custom_data\":{\"a\":[", "]}}");
    assert!(array.len() < 8 << 10, "{}", array.len());
    let kinds: Vec<(&str, Vec<u8>, Option<&str>, u16)> = vec![
        ("array, right key", array.clone(), Some(WRITE_KEY), 400),
        ("array, no key", array.clone(), None, 400),
        ("array, wrong key", array, Some("guess"), 401),
        ("events array, right key", events, Some(WRITE_KEY), 413),
        ("custom_data array, right key", custom, Some(WRITE_KEY), 413),
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut failures = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                match maidian_testkit::http::send(addr, &Request::new("GET", "/api/health")).await {
                    Ok(r) if r.status == 200 => {}
                    _ => failures += 1,
                }
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (worst, failures)
        })
    };
    let mut peak_kb = idle_kb;
    for (name, body, key, want) in &kinds {
        let path = if name.starts_with("custom") {
            "/api/track/event"
        } else {
            "/api/track/batch"
        };
        let sends = (0..100).map(|_| {
            let mut req = Request::new("POST", path)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(body.clone());
            if let Some(k) = key {
                req = req.header("x-api-key", k);
            }
            async move { maidian_testkit::http::send(addr, &req).await }
        });
        let started = Instant::now();
        let answers = futures_util::future::join_all(sends).await;
        peak_kb = peak_kb.max(rss_kb(pid, "VmHWM:"));
        let statuses: std::collections::BTreeSet<u16> = answers
            .iter()
            .map(|a| a.as_ref().map_or(0, |r| r.status))
            .collect();
        assert_eq!(
            statuses,
            [*want].into_iter().collect(),
            "{name}: every bomb refused with {want}"
        );
        eprintln!(
            "figure: 100 bombs ({name}) answered {want} in {:.2} s, peak RSS so far {} MB",
            started.elapsed().as_secs_f64(),
            peak_kb / 1024
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst_health, health_failures) = prober.await.unwrap();
    let grown_mb = peak_kb.saturating_sub(idle_kb) / 1024;
    eprintln!(
        "figure: gzip bombs: idle RSS {} MB, peak {} MB (+{grown_mb} MB), slowest health {} ms",
        idle_kb / 1024,
        peak_kb / 1024,
        worst_health.as_millis()
    );
    assert_eq!(health_failures, 0, "health failed during the bombs");
    assert!(
        grown_mb < 64,
        "the bombs raised RSS by {grown_mb} MB (idle {idle_kb} kB)"
    );
    assert_eq!(env.count().await, 0);
}

#[tokio::test]
async fn a_poison_event_is_rejected_alone_and_its_batch_is_stored() {
    let env = start(&[]).await;
    let res = env
        .post(
            "/api/track/batch",
            &json!({"events": [
                {"event_type": "a", "session_id": "s"},
                {"event_type": "a", "session_id": "s", "custom_data": {"a": [[1]]}},
                {"event_type": "a", "session_id": "s", "custom_data": {"a": [{"b": [1, 2]}]}},
            ]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json().unwrap();
    assert_eq!(body["stored"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["code"], "nested_array");
    let one = env
        .post(
            "/api/track/event",
            &json!({"event_type": "a", "custom_data": {"m": [1, [2]]}}),
        )
        .await;
    assert_eq!(one.status, 400);
    assert_eq!(one.json().unwrap()["error"]["code"], "nested_array");
    assert_eq!(env.count().await, 2);
}

/// The binary on a MongoDB it cannot reach, its password given three ways: the password is in
/// none of its output.
#[tokio::test]
async fn the_mongodb_password_is_never_printed() {
    let runs: [&[(&str, &str)]; 2] = [
        &[("MAIDIAN_MONGODB_URI", "mongodb://user:hunter2@127.0.0.1:1/")],
        &[
            ("MAIDIAN_MONGODB_HOST", "127.0.0.1"),
            ("MAIDIAN_MONGODB_PORT", "1"),
            ("MAIDIAN_MONGODB_USERNAME", "user"),
            ("MAIDIAN_MONGODB_PASSWORD", "hunter2"),
        ],
    ];
    for env in runs {
        // The collector starts while its database is unreachable (the driver's errors, with
        // the server's address in them, are logged and shown by /api/health): nothing of it
        // may show the password.
        let mut vars: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in [
            ("MAIDIAN_READ_KEY", "r"),
            ("MAIDIAN_API_KEY", "w"),
            ("MAIDIAN_MONGODB_TIMEOUT", "1"),
            ("RUST_LOG", "debug"),
        ]
        .iter()
        .chain(common::QUICK_ROLLUPS)
        {
            vars.insert(k.to_string(), v.to_string());
        }
        let collector = maidian_testkit::Collector::start(common::binary(), &vars)
            .await
            .unwrap();
        let health = maidian_testkit::http::send(
            collector.addr,
            &maidian_testkit::http::Request::new("GET", "/api/health"),
        )
        .await
        .unwrap();
        assert_eq!(health.status, 503);
        let ingest = maidian_testkit::http::send(
            collector.addr,
            &maidian_testkit::http::Request::new("POST", "/api/track/event")
                .header("x-api-key", "w")
                .header("content-type", "application/json")
                .body(r#"{"event_type":"click"}"#),
        )
        .await
        .unwrap();
        assert_eq!(ingest.status, 503);
        let (_, stderr) = collector.terminate().await.unwrap();
        let text = format!("{}{}{stderr}", health.text(), ingest.text());
        assert!(text.contains("Server selection timeout"), "{text}");
        assert!(
            !text.contains("hunter2"),
            "the password was printed: {text}"
        );
    }
}

#[tokio::test]
async fn csv_cells_cannot_run_as_formulas_unless_raw_is_asked() {
    let env = start(&[]).await;
    let res = env
        .post(
            "/api/track/event",
            &json!({"event_type": "click", "session_id": "s", "timestamp": now_ms(),
                "element_text": "=HYPERLINK(\"http://evil.example\",\"click me\")",
                "page_title": "@SUM(A1:A9)"}),
        )
        .await;
    assert_eq!(res.status, 200);
    let safe = env.get("/api/export/events.csv?days=1").await.text();
    assert!(
        safe.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click me\"\")\""),
        "{safe}"
    );
    assert!(safe.contains(",'@SUM(A1:A9),"), "{safe}");
    let raw = env.get("/api/export/events.csv?days=1&raw=1").await.text();
    assert!(raw.contains(",@SUM(A1:A9),"), "{raw}");
    let bad = env.get("/api/export/events.csv?raw=maybe").await;
    assert_eq!(bad.status, 400);
}
