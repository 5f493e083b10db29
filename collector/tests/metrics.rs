//! Prometheus metrics scraped from the real binary on FerretDB: the event counters agree with
//! what the store holds, and the metrics listener is not the public port.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use common::{now_ms, start, uuid};
use maidian_testkit::http::{self, Request};
use serde_json::json;

/// The sum of every sample of `name` whose labels contain `labels` (all of them).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric == name && labels.iter().all(|l| rest.contains(l)) {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}

#[tokio::test]
async fn counters_agree_with_the_store_and_metrics_stay_off_the_public_port() {
    let port = common::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let env = start(&[
        ("MAIDIAN_METRICS_LISTEN", metrics_addr.as_str()),
        ("MAIDIAN_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ])
    .await;
    let now = now_ms();
    let good: Vec<_> = (0..25)
        .map(|i| json!({"event_id": uuid(), "event_type": "click", "user_id": format!("u{i}"), "timestamp": now}))
        .collect();
    let bad: Vec<_> = (0..5)
        .map(|_| json!({"event_id": uuid(), "event_type": "click", "timestamp": "yesterday"}))
        .collect();
    let batch: Vec<_> = good.iter().chain(&bad).cloned().collect();
    let res = env
        .post("/api/track/batch", &json!({"events": batch}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let code = res.json().unwrap()["rejected"][0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    // A resend of ten: deduplicated.
    let res = env
        .post("/api/track/batch", &json!({"events": good[..10]}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = env
        .post(
            "/api/track/event",
            &json!({"event_id": uuid(), "event_type": "signup", "timestamp": now}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());

    let addr: std::net::SocketAddr = metrics_addr.parse().unwrap();
    let scrape = http::send(addr, &Request::new("GET", "/metrics"))
        .await
        .unwrap();
    assert_eq!(scrape.status, 200);
    let text = scrape.text();
    let stored = env.count().await as f64;
    assert_eq!(stored, 26.0);
    let get = |name: &str, labels: &[&str]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(get("maidian_events_received_total", &[]), 41.0);
    assert_eq!(get("maidian_events_stored_total", &[]), stored);
    assert_eq!(get("maidian_events_deduplicated_total", &[]), 10.0);
    assert_eq!(get("maidian_events_rejected_total", &[]), 5.0);
    assert_eq!(
        get(
            "maidian_events_rejected_total",
            &[&format!("code=\"{code}\"")]
        ),
        5.0
    );
    assert_eq!(
        get(
            "maidian_http_requests_total",
            &["route=\"track_batch\"", "status=\"200\""]
        ),
        2.0
    );
    assert_eq!(
        get(
            "maidian_http_request_duration_seconds_count",
            &["route=\"track_event\""]
        ),
        1.0
    );
    assert!(get("maidian_store_write_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(get("maidian_writer_queue_events", &[]), 0.0);
    assert_eq!(get("maidian_store_up", &[]), 1.0);
    assert!(get("maidian_rollup_lag_seconds", &[]) >= 0.0);
    assert!(get("process_resident_memory_bytes", &[]) > 1e6);
    assert!(get("process_open_fds", &[]) > 0.0);

    // Not on the public port; nothing but /metrics on the metrics port.
    assert_eq!(env.send(Request::new("GET", "/metrics")).await.status, 404);
    let other = http::send(addr, &Request::new("GET", "/api/health"))
        .await
        .unwrap();
    assert_eq!(other.status, 404);

    // MAIDIAN_LOG_FORMAT=json: every log line is one JSON object.
    let (code, stderr) = env.collector.terminate().await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
