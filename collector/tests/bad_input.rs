//! A table of bad requests against the real binary: each gets a 4xx JSON error with a clear
//! message, the server stays up, and nothing of a rejected request is stored.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::io::Write;

use common::{now_ms, start, WRITE_KEY};
use maidian_testkit::http::Request;
use serde_json::json;

struct Case {
    name: &'static str,
    req: Request,
    status: u16,
    code: &'static str,
}

fn post(path: &str, body: impl Into<Vec<u8>>) -> Request {
    Request::new("POST", path)
        .header("content-type", "application/json")
        .header("x-api-key", WRITE_KEY)
        .body(body)
}

fn event(v: serde_json::Value) -> Request {
    post("/api/track/event", v.to_string())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn nested(depth: usize) -> serde_json::Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "k": v });
    }
    v
}

fn cases() -> Vec<Case> {
    let long = |n: usize| "x".repeat(n);
    let deep_array = format!(
        "{{\"event_type\":\"a\",\"custom_data\":{{\"a\":{}1{}}}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    let many: Vec<_> = (0..10_000).map(|_| json!({"event_type": "c"})).collect();
    let c = |name, req, status, code| Case {
        name,
        req,
        status,
        code,
    };
    vec![
        c(
            "malformed json",
            post("/api/track/event", "{\"event_type\":"),
            400,
            "invalid_json",
        ),
        c(
            "empty body",
            post("/api/track/event", ""),
            400,
            "empty_body",
        ),
        c(
            "whitespace body",
            post("/api/track/batch", "  \n "),
            400,
            "empty_body",
        ),
        c(
            "array body",
            post("/api/track/event", "[1,2]"),
            400,
            "invalid_body",
        ),
        c(
            "string body",
            post("/api/track/event", "\"click\""),
            400,
            "invalid_body",
        ),
        c(
            "invalid utf-8",
            post("/api/track/event", vec![b'{', 0xff, 0xfe, b'}']),
            400,
            "invalid_json",
        ),
        c(
            "no event_type",
            event(json!({"user_id": "u"})),
            400,
            "missing_field",
        ),
        c(
            "event_type number",
            event(json!({"event_type": 5})),
            400,
            "invalid_type",
        ),
        c(
            "event_type empty",
            event(json!({"event_type": ""})),
            400,
            "invalid_event_type",
        ),
        c(
            "event_type too long",
            event(json!({"event_type": long(65)})),
            400,
            "invalid_event_type",
        ),
        c(
            "event_type operator",
            event(json!({"event_type": "$where"})),
            400,
            "invalid_event_type",
        ),
        c(
            "event_id not uuid",
            event(json!({"event_type": "a", "event_id": "123"})),
            400,
            "invalid_event_id",
        ),
        c(
            "user_id number",
            event(json!({"event_type": "a", "user_id": 42})),
            400,
            "invalid_type",
        ),
        c(
            "page_url too long",
            event(json!({"event_type": "a", "page_url": long(3000)})),
            400,
            "field_too_long",
        ),
        c(
            "element_text too long",
            event(json!({"event_type": "a", "element_text": long(300)})),
            400,
            "field_too_long",
        ),
        c(
            "x_position string",
            event(json!({"event_type": "a", "x_position": "12"})),
            400,
            "invalid_type",
        ),
        c(
            "scroll_depth 150",
            event(json!({"event_type": "a", "scroll_depth": 150})),
            400,
            "out_of_range",
        ),
        c(
            "negative duration",
            event(json!({"event_type": "a", "duration": -5})),
            400,
            "out_of_range",
        ),
        c(
            "timestamp 1970",
            event(json!({"event_type": "a", "timestamp": 0})),
            400,
            "timestamp_out_of_range",
        ),
        c(
            "timestamp year 3000",
            event(json!({"event_type": "a", "timestamp": 32_503_680_000_000_i64})),
            400,
            "timestamp_out_of_range",
        ),
        c(
            "timestamp text",
            event(json!({"event_type": "a", "timestamp": "yesterday"})),
            400,
            "invalid_timestamp",
        ),
        c(
            "timestamp 1e300",
            post(
                "/api/track/event",
                "{\"event_type\":\"a\",\"timestamp\":1e300}",
            ),
            400,
            "invalid_timestamp",
        ),
        c(
            "custom_data array",
            event(json!({"event_type": "a", "custom_data": [1]})),
            400,
            "invalid_type",
        ),
        c(
            "custom_data $where",
            event(json!({"event_type": "a", "custom_data": {"$where": "1"}})),
            400,
            "invalid_key",
        ),
        c(
            "custom_data dotted",
            event(json!({"event_type": "a", "custom_data": {"a.b": 1}})),
            400,
            "invalid_key",
        ),
        c(
            "custom_data nested operator",
            event(json!({"event_type": "a", "custom_data": {"x": {"$gt": 1}}})),
            400,
            "invalid_key",
        ),
        c(
            "custom_data too deep",
            event(json!({"event_type": "a", "custom_data": nested(8)})),
            400,
            "custom_data_too_deep",
        ),
        c(
            "custom_data too large",
            event(json!({"event_type": "a", "custom_data": {"s": long(20_000)}})),
            400,
            "custom_data_too_large",
        ),
        c(
            "json nested 300 deep",
            post("/api/track/event", deep_array),
            400,
            "invalid_json",
        ),
        c(
            "body over 1 MiB",
            event(json!({"event_type": "a", "pad": long(1_100_000)})),
            413,
            "body_too_large",
        ),
        c(
            "gzip bomb",
            post("/api/track/batch", gzip(&vec![b' '; 20 << 20]))
                .header("content-encoding", "gzip"),
            413,
            "inflated_too_large",
        ),
        c(
            "gzip of an array",
            post("/api/track/batch", gzip(b"[1,2,3]")).header("content-encoding", "gzip"),
            400,
            "invalid_body",
        ),
        c(
            "gzip of whitespace",
            post("/api/track/batch", gzip(b"   ")).header("content-encoding", "gzip"),
            400,
            "empty_body",
        ),
        c(
            "more JSON values than a body may hold",
            post(
                "/api/track/batch",
                format!("{{\"events\":[{}0]}}", "0,".repeat(100_000)),
            ),
            413,
            "too_many_values",
        ),
        c(
            "array directly inside an array",
            event(json!({"event_type": "a", "custom_data": {"m": [[1, 2], [3]]}})),
            400,
            "nested_array",
        ),
        c(
            "gzip header, plain body",
            post("/api/track/event", "{\"event_type\":\"a\"}").header("content-encoding", "gzip"),
            400,
            "invalid_gzip",
        ),
        c(
            "brotli",
            post("/api/track/event", "{}").header("content-encoding", "br"),
            415,
            "unsupported_encoding",
        ),
        c(
            "xml content type",
            Request::new("POST", "/api/track/event")
                .header("content-type", "application/xml")
                .header("x-api-key", WRITE_KEY)
                .body("<event/>"),
            415,
            "unsupported_media_type",
        ),
        c(
            "batch without events",
            post("/api/track/batch", "{\"sent_at\":1}"),
            400,
            "invalid_batch",
        ),
        c(
            "batch events object",
            post("/api/track/batch", "{\"events\":{}}"),
            400,
            "invalid_batch",
        ),
        c(
            "batch events empty",
            post("/api/track/batch", "{\"events\":[]}"),
            400,
            "invalid_batch",
        ),
        c(
            "10 000 events",
            post("/api/track/batch", json!({"events": many}).to_string()),
            413,
            "batch_too_large",
        ),
        c(
            "batch all invalid",
            post(
                "/api/track/batch",
                json!({"events": [{"event_type": 1}, 5, {}]}).to_string(),
            ),
            400,
            "no_valid_events",
        ),
        c(
            "batch sent_at garbage",
            post(
                "/api/track/batch",
                json!({"sent_at": "soon", "events": [{"event_type": "a"}]}).to_string(),
            ),
            400,
            "invalid_timestamp",
        ),
        c(
            "page view without url",
            post(
                "/api/track/pageview",
                json!({"page_title": "x"}).to_string(),
            ),
            400,
            "missing_field",
        ),
        c(
            "page view url number",
            post("/api/track/pageview", json!({"page_url": 1}).to_string()),
            400,
            "invalid_type",
        ),
        c(
            "missing write key",
            Request::new("POST", "/api/track/event").body(json!({"event_type": "a"}).to_string()),
            401,
            "unauthorized",
        ),
        c(
            "wrong write key",
            Request::new("POST", "/api/track/event")
                .header("x-api-key", "guess")
                .body(json!({"event_type": "a", "timestamp": now_ms()}).to_string()),
            401,
            "unauthorized",
        ),
        c(
            "stats days=0",
            Request::new("GET", "/api/stats/events?days=0").header("x-api-key", common::READ_KEY),
            400,
            "invalid_parameter",
        ),
        c(
            "stats days=abc",
            Request::new("GET", "/api/stats/pages?days=abc").header("x-api-key", common::READ_KEY),
            400,
            "invalid_parameter",
        ),
        c(
            "stats days=1000",
            Request::new("GET", "/api/stats/events?days=1000")
                .header("x-api-key", common::READ_KEY),
            400,
            "invalid_parameter",
        ),
        c(
            "unknown path",
            Request::new("GET", "/api/nothing"),
            404,
            "not_found",
        ),
        c(
            "wrong method",
            Request::new("PUT", "/api/track/event").body("{}"),
            405,
            "method_not_allowed",
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let env = start(&[]).await;
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in cases {
        let res = env.send(case.req).await;
        let body = res.json().ok();
        let code = body
            .as_ref()
            .and_then(|b| b["error"]["code"].as_str().map(String::from));
        let message = body
            .as_ref()
            .and_then(|b| b["error"]["message"].as_str().map(String::from))
            .unwrap_or_default();
        let ok = res.status == case.status
            && code.as_deref() == Some(case.code)
            && message.len() > 5
            && res.header("content-type") == Some("application/json");
        if !ok {
            failures.push(format!(
                "{}: got {} {} (want {} {})",
                case.name,
                res.status,
                res.text().chars().take(200).collect::<String>(),
                case.status,
                case.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let health = env.send(Request::new("GET", "/api/health")).await;
    assert_eq!(health.status, 200, "the server went down");
    assert_eq!(
        env.count().await,
        0,
        "a rejected request left events behind"
    );
}

#[tokio::test]
async fn a_rejected_request_does_not_spoil_the_next() {
    let env = start(&[]).await;
    let mut conn = maidian_testkit::http::Conn::open(env.collector.addr)
        .await
        .unwrap();
    let bad = conn
        .send(&event(json!({"event_type": "a", "custom_data": {"$x": 1}})))
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let good = conn.send(&event(json!({"event_type": "a"}))).await.unwrap();
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(env.count().await, 1);
}
