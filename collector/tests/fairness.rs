//! No client can take what every other client needs, through the real binary on a real port
//! (loopback only, bounded in count and time): heads that announce bodies and send none cost
//! nothing and are cut off early, one address holds a bounded share of the connections and of
//! the body bytes in flight (a trusted proxy's forwarded clients each their own, a spoofed
//! `X-Forwarded-For` from anyone else ignored), and keys are checked strictly.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::time::{Duration, Instant};

use common::{now_ms, read_to_close, start, uuid, WRITE_KEY};
use maidian_testkit::http::{self, Request};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn one_event() -> serde_json::Value {
    json!({"events": [{
        "event_id": uuid(),
        "event_type": "click",
        "page_url": "https://shop.example/",
        "timestamp": now_ms(),
    }]})
}

fn batch(extra: &[(&str, &str)]) -> Request {
    let mut req = Request::new("POST", "/api/track/batch")
        .header("content-type", "application/json")
        .header("x-api-key", WRITE_KEY);
    for (k, v) in extra {
        req = req.header(k, v);
    }
    req.body(one_event().to_string())
}

/// 80 key-less heads that each announce a 1 MiB body and send nothing held 64 MiB of the
/// bodies budget before a byte arrived, so real batches waited until they timed out. Now
/// bytes are charged as they arrive: the heads cost nothing, each is answered 408 at the
/// first-byte timeout, and a real batch is served at once meanwhile.
#[tokio::test]
async fn heads_without_bodies_do_not_starve_real_batches() {
    let env = start(&[
        // A long whole-body timeout: before the change, a real batch waited for it.
        ("MAIDIAN_BODY_TIMEOUT_MS", "30000"),
        ("MAIDIAN_BODY_FIRST_BYTE_MS", "3000"),
    ])
    .await;
    let addr = env.collector.addr;
    let head = "POST /api/track/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 1048576\r\n\r\n";
    let mut heads = Vec::new();
    for _ in 0..80 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        heads.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(10), env.send(batch(&[])))
            .await
            .expect("a real batch waited behind heads that sent no body");
        worst = worst.max(started.elapsed());
        assert_eq!(res.status, 200, "{}", res.text());
    }
    eprintln!(
        "figure: real batch while 80 empty 1 MiB heads are held: slowest of 10 {} ms",
        worst.as_millis()
    );

    let answers = futures_util::future::join_all(
        heads
            .iter_mut()
            .map(|s| read_to_close(s, Duration::from_secs(15))),
    )
    .await;
    for a in &answers {
        let a = a.as_deref().expect("a head without a body was kept open");
        assert!(a.starts_with("HTTP/1.1 408"), "{a}");
        assert!(a.contains("did not start within 3000 ms"), "{a}");
    }
    assert_eq!(env.count().await, 10);
}

/// One address holds at most `max_connections_per_client` connections: the next is answered
/// 429 and closed, while a trusted proxy's connections are not counted.
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let env = start(&[
        ("MAIDIAN_MAX_CONNECTIONS_PER_CLIENT", "8"),
        ("MAIDIAN_HEADER_TIMEOUT_MS", "30000"),
        ("MAIDIAN_IDLE_TIMEOUT_MS", "30000"),
    ])
    .await;
    let addr = env.collector.addr;
    // Eight keep-alive connections, each having asked for health.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut c = http::Conn::open(addr).await.unwrap();
        let res = c.send(&Request::new("GET", "/api/health")).await.unwrap();
        assert_eq!(res.status, 200);
        held.push(c);
    }
    let mut ninth = TcpStream::connect(addr).await.unwrap();
    let answer = read_to_close(&mut ninth, Duration::from_secs(5))
        .await
        .expect("the ninth connection was kept open");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));

    // A slot given back is taken again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = env.send(Request::new("GET", "/api/health")).await;
    assert_eq!(res.status, 200);
    drop(held);

    // Behind a trusted proxy every connection comes from the proxy: none is refused.
    let proxied = start(&[
        ("MAIDIAN_MAX_CONNECTIONS_PER_CLIENT", "8"),
        ("MAIDIAN_TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut c = http::Conn::open(proxied.collector.addr).await.unwrap();
        let res = c.send(&Request::new("GET", "/api/health")).await.unwrap();
        assert_eq!(res.status, 200);
        conns.push(c);
    }
}

/// A client that holds its share of body bytes in flight gets 429 with `Retry-After` for the
/// next body, while other clients are served; behind a trusted proxy the client is the
/// forwarded address, and `X-Forwarded-For` from an untrusted peer changes nothing.
#[tokio::test]
async fn one_client_holds_a_bounded_share_of_body_bytes() {
    let partial = |xff: Option<&str>| {
        let xff = xff.map_or(String::new(), |a| format!("x-forwarded-for: {a}\r\n"));
        format!(
            "POST /api/track/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             x-api-key: {WRITE_KEY}\r\n{xff}content-length: 200000\r\n\r\n{{\"events\":[{}",
            " ".repeat(65_400)
        )
    };
    let settings = [
        ("MAIDIAN_MAX_BODY_BYTES_IN_FLIGHT_PER_CLIENT", "65536"),
        ("MAIDIAN_BODY_TIMEOUT_MS", "20000"),
    ];

    // No trusted proxy: the client is the peer, whatever it forwards.
    let env = start(&settings).await;
    let addr = env.collector.addr;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(partial(Some("198.51.100.1")).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(partial(Some("203.0.113.9")).as_bytes())
        .await
        .unwrap();
    let refused = read_to_close(&mut second, Duration::from_secs(10))
        .await
        .expect("the second body of a full client was kept waiting");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("too_many_requests"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"));
    drop(first);

    // Through a trusted proxy: two forwarded clients each have their own share.
    let mut with_proxy = settings.to_vec();
    with_proxy.push(("MAIDIAN_TRUSTED_PROXIES", "127.0.0.1"));
    let env = start(&with_proxy).await;
    let addr = env.collector.addr;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(partial(Some("198.51.100.1")).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another client behind the proxy: served at once.
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        env.send(batch(&[("x-forwarded-for", "203.0.113.9")])),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    // The full client again, its address written as the proxy chain ends: refused.
    let res = env
        .send(batch(&[("x-forwarded-for", "10.9.8.7, 198.51.100.1")]))
        .await;
    assert_eq!(res.status, 429, "{}", res.text());
    assert_eq!(res.json().unwrap()["error"]["code"], "too_many_requests");
    drop(first);
}

/// A key of no site is 401 even on a collector that takes events without a key, and keys
/// shorter than 16 characters are named in a warning at start-up.
#[tokio::test]
async fn unknown_keys_are_refused_and_short_keys_are_named() {
    let env = start(&[("MAIDIAN_API_KEY", "")]).await;
    // No key: the keyless default site, as the seed did.
    let res = env
        .send(
            Request::new("POST", "/api/track/batch")
                .header("content-type", "application/json")
                .body(one_event().to_string()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // The read key pasted into a page, and a key of no site: both refused.
    for key in [common::READ_KEY, "a-removed-sites-key"] {
        let res = env
            .send(
                Request::new("POST", "/api/track/batch")
                    .header("content-type", "application/json")
                    .header("x-api-key", key)
                    .body(one_event().to_string()),
            )
            .await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(res.json().unwrap()["error"]["code"], "unauthorized");
    }
    assert_eq!(env.count().await, 1);
    let (_, output) = env.collector.terminate().await.unwrap();
    assert!(
        output.contains("tracking_api.read_key") && output.contains("shorter than 16"),
        "{output}"
    );
    assert!(
        !output.contains(common::READ_KEY),
        "a key's value was logged"
    );
}

/// A read key has a bounded number of heavy reads (funnel, report, exports) in flight: two
/// exports whose client stops reading hold both shares, so a third export and a funnel are
/// answered 429 with `Retry-After`, while another key and the light figures are served; once
/// the two clients go away the key is served again.
#[tokio::test]
async fn heavy_reads_are_bounded_per_key() {
    let data = tempfile::tempdir().unwrap();
    let admin = "admin-key-0123456789abcdef";
    let env: std::collections::HashMap<String, String> = [
        ("MAIDIAN_DATA_DIR", data.path().to_str().unwrap()),
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", common::READ_KEY),
        ("MAIDIAN_ADMIN_KEY", admin),
        ("MAIDIAN_MAX_HEAVY_READS_PER_KEY", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let collector = maidian_testkit::Collector::start(common::binary(), &env)
        .await
        .unwrap();
    let addr = collector.addr;
    // About 20 MB of CSV: more than the sockets between the two ends can hold.
    let filler = "x".repeat(10_000);
    for _ in 0..25 {
        let events: Vec<_> = (0..80)
            .map(|_| {
                json!({"event_id": uuid(), "event_type": "custom", "timestamp": now_ms(),
                       "custom_data": {"note": filler}})
            })
            .collect();
        let res = http::send(
            addr,
            &Request::new("POST", "/api/track/batch")
                .header("content-type", "application/json")
                .header("x-api-key", WRITE_KEY)
                .body(json!({ "events": events }).to_string()),
        )
        .await
        .unwrap();
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let get = |path: &str, key: &str| {
        let req = Request::new("GET", path)
            .header("x-api-key", key)
            .header("connection", "close");
        async move { http::send(addr, &req).await }
    };

    let export_head = format!(
        "GET /api/export/events.csv?days=1 HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\n\r\n",
        common::READ_KEY
    );
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(export_head.as_bytes()).await.unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let third = get("/api/export/events.csv?days=1", common::READ_KEY)
        .await
        .unwrap();
    assert_eq!(third.status, 429, "a third export of the key was served");
    assert_eq!(third.header("retry-after"), Some("2"));
    assert_eq!(third.json().unwrap()["error"]["code"], "too_many_requests");
    let funnel = get(
        "/api/analytics/funnel?steps=page_view,custom",
        common::READ_KEY,
    )
    .await
    .unwrap();
    assert_eq!(funnel.status, 429, "{}", funnel.text());
    // Light figures of the same key, and heavy ones of another key, are served.
    let summary = get("/api/analytics/summary", common::READ_KEY)
        .await
        .unwrap();
    assert_eq!(summary.status, 200);
    let other = get("/api/analytics/funnel?steps=page_view,custom", admin)
        .await
        .unwrap();
    assert_eq!(other.status, 200, "{}", other.text());

    drop(slow);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let res = get(
            "/api/analytics/funnel?steps=page_view,custom",
            common::READ_KEY,
        )
        .await
        .unwrap();
        if res.status == 200 {
            served = true;
            break;
        }
    }
    assert!(served, "the key's heavy reads were never given back");
    collector.terminate().await.unwrap();
}
