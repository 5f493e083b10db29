//! End to end: the real collector binary on a real port, storing into FerretDB.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::io::Write;

use common::{now_ms, start, uuid, READ_KEY, WRITE_KEY};
use maidian_testkit::http::Request;
use mongodb::bson::{doc, Bson, Document};
use serde_json::json;

fn full_event(id: &str) -> serde_json::Value {
    json!({
        "event_id": id,
        "user_id": "user_123",
        "session_id": "session_456",
        "event_type": "click",
        "page_url": "https://example.com/page",
        "page_title": "页面标题",
        "element_id": "button_1",
        "element_class": "btn primary",
        "element_text": "Buy now",
        "x_position": 120,
        "y_position": 48.5,
        "scroll_depth": 25,
        "referrer": "https://search.example/",
        "user_agent": "Mozilla/5.0 test",
        "screen_resolution": "1920x1080",
        "viewport_size": "1280x720",
        "timestamp": now_ms() - 1000,
        "duration": 15,
        "custom_data": {"action": "button_click", "cart": {"items": 2, "tags": ["a", "b"]}}
    })
}

#[tokio::test]
async fn single_event_is_stored_with_every_field() {
    let env = start(&[]).await;
    let id = uuid();
    let res = env.post("/api/track/event", &full_event(&id)).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json().unwrap()["event_id"], id);

    let docs = env.stored().await;
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(d.get_str("_id").unwrap(), id);
    assert_eq!(d.get_str("event_type").unwrap(), "click");
    assert_eq!(d.get_str("page_title").unwrap(), "页面标题");
    assert_eq!(d.get_str("visitor").unwrap(), "user_123");
    assert_eq!(d.get_f64("y_position").unwrap(), 48.5);
    assert_eq!(
        d.get_document("custom_data").unwrap(),
        &doc! {"action": "button_click", "cart": {"items": 2_i64, "tags": ["a", "b"]}}
    );
    assert!(matches!(d.get("timestamp"), Some(Bson::DateTime(_))));
    assert!(matches!(d.get("received_at"), Some(Bson::DateTime(_))));
    assert_eq!(d.get_str("day").unwrap().len(), 10);
    // The client IP is never stored, under any name.
    let text = format!("{d:?}");
    assert!(!text.contains("127.0.0.1"), "{text}");
}

#[tokio::test]
async fn page_view_endpoint_stores_a_page_view() {
    let env = start(&[]).await;
    let res = env
        .post(
            "/api/track/pageview",
            &json!({"user_id": "u1", "session_id": "s1", "page_url": "https://example.com/",
                    "page_title": "Home", "load_time": 1500}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let docs = env.stored().await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].get_str("event_type").unwrap(), "page_view");
    assert_eq!(docs[0].get_f64("load_time").unwrap(), 1500.0);
    // Without a client id, the server assigned a UUIDv7.
    let id = uuid::Uuid::parse_str(docs[0].get_str("_id").unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

#[tokio::test]
async fn batch_of_20_resent_is_stored_once() {
    let env = start(&[]).await;
    let events: Vec<_> = (0..20)
        .map(|i| json!({"event_id": uuid(), "event_type": "click", "user_id": format!("u{}", i % 4)}))
        .collect();
    let body = json!({"events": events, "sent_at": now_ms()});
    let first = env.post("/api/track/batch", &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let j = first.json().unwrap();
    assert_eq!(
        (j["stored"].as_u64(), j["deduplicated"].as_u64()),
        (Some(20), Some(0))
    );

    let again = env.post("/api/track/batch", &body).await;
    assert_eq!(again.status, 200);
    let j = again.json().unwrap();
    assert_eq!(
        (j["stored"].as_u64(), j["deduplicated"].as_u64()),
        (Some(0), Some(20))
    );
    assert_eq!(env.count().await, 20);
}

#[tokio::test]
async fn mixed_batch_stores_valid_events_and_names_the_rest() {
    let env = start(&[]).await;
    let body = json!({"events": [
        {"event_type": "click", "user_id": "a"},
        {"event_type": 7},
        {"event_type": "scroll", "scroll_depth": 50},
        "not an object",
        {"event_type": "x", "custom_data": {"a.b": 1}}
    ]});
    let res = env.post("/api/track/batch", &body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let j = res.json().unwrap();
    assert_eq!(j["stored"], 2);
    let rejected: Vec<(u64, String)> = j["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "invalid_type".into()),
            (3, "invalid_event".into()),
            (4, "invalid_key".into())
        ]
    );
    assert_eq!(env.count().await, 2);
}

#[tokio::test]
async fn beacon_text_plain_body_with_key_in_body() {
    let env = start(&[]).await;
    let body =
        json!({"api_key": WRITE_KEY, "events": [{"event_type": "page_leave", "duration": 5000}]});
    let res = env
        .send(
            Request::new("POST", "/api/track/batch")
                .header("content-type", "text/plain;charset=UTF-8")
                .body(body.to_string()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let docs = env.stored().await;
    assert_eq!(docs.len(), 1);
    assert!(docs[0].get("api_key").is_none());

    // The key may also ride in the query string.
    let res = env
        .send(
            Request::new("POST", &format!("/api/track/event?api_key={WRITE_KEY}"))
                .header("content-type", "text/plain")
                .body(json!({"event_type": "click"}).to_string()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(env.count().await, 2);
}

#[tokio::test]
async fn gzip_body_is_inflated() {
    let env = start(&[]).await;
    let events: Vec<_> = (0..50)
        .map(|_| json!({"event_type": "click", "page_url": "/gz"}))
        .collect();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(json!({"events": events}).to_string().as_bytes())
        .unwrap();
    let res = env
        .send(
            Request::new("POST", "/api/track/batch")
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .header("x-api-key", WRITE_KEY)
                .body(enc.finish().unwrap()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(env.count().await, 50);
}

fn preflight(origin: &str) -> Request {
    Request::new("OPTIONS", "/api/track/batch")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-api-key")
}

#[tokio::test]
async fn cors_any_origin_narrowed_or_off() {
    let open = start(&[]).await;
    let res = open.send(preflight("https://shop.example")).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    let res = open
        .send(
            Request::new("POST", "/api/track/event")
                .header("origin", "https://shop.example")
                .header("x-api-key", WRITE_KEY)
                .body(json!({"event_type": "click"}).to_string()),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://shop.example")
    );

    let narrow = start(&[("MAIDIAN_CORS_ORIGINS", "https://a.example")]).await;
    assert_eq!(
        narrow.send(preflight("https://a.example")).await.status,
        200
    );
    let res = narrow.send(preflight("https://b.example")).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.json().unwrap()["error"]["code"], "cors_forbidden");

    let off = start(&[("MAIDIAN_ENABLE_CORS", "false")]).await;
    let res = off
        .send(
            Request::new("POST", "/api/track/event")
                .header("origin", "https://shop.example")
                .header("x-api-key", WRITE_KEY)
                .body(json!({"event_type": "click"}).to_string()),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn keys_guard_ingest_and_reads() {
    let env = start(&[]).await;
    let event = json!({"event_type": "click"}).to_string();
    let missing = env
        .send(Request::new("POST", "/api/track/event").body(event.clone()))
        .await;
    assert_eq!(missing.status, 401);
    let wrong = env
        .send(
            Request::new("POST", "/api/track/event")
                .header("x-api-key", "nope")
                .body(event.clone()),
        )
        .await;
    assert_eq!(wrong.status, 401);
    // The read key is not a write key.
    let read_as_write = env
        .send(
            Request::new("POST", "/api/track/event")
                .header("x-api-key", READ_KEY)
                .body(event),
        )
        .await;
    assert_eq!(read_as_write.status, 401);
    assert_eq!(env.count().await, 0);

    let no_key = env.send(Request::new("GET", "/api/stats/events")).await;
    assert_eq!(no_key.status, 401);
    let write_key = env
        .send(Request::new("GET", "/api/stats/events").header("x-api-key", WRITE_KEY))
        .await;
    assert_eq!(write_key.status, 403);
    assert_eq!(write_key.json().unwrap()["error"]["code"], "forbidden");
    let bearer = env
        .send(
            Request::new("GET", "/api/stats/pages")
                .header("authorization", &format!("Bearer {READ_KEY}")),
        )
        .await;
    assert_eq!(bearer.status, 200, "{}", bearer.text());
}

#[tokio::test]
async fn stats_on_a_known_dataset() {
    let env = start(&[]).await;
    let day = 86_400_000;
    let now = now_ms();
    // Today: u1 views /a twice and /b once, u2 views /a once, u1 clicks 3 times, an anonymous
    // click. Three days ago: u3 views /b. Ten days ago: u4 views /a and clicks (outside 7 days).
    let mut events = vec![];
    for (ty, user, page, age_days) in [
        ("page_view", Some("u1"), "/a", 0),
        ("page_view", Some("u1"), "/a", 0),
        ("page_view", Some("u1"), "/b", 0),
        ("page_view", Some("u2"), "/a", 0),
        ("click", Some("u1"), "/a", 0),
        ("click", Some("u1"), "/a", 0),
        ("click", Some("u1"), "/b", 0),
        ("click", None, "/b", 0),
        ("page_view", Some("u3"), "/b", 3),
        ("page_view", Some("u4"), "/a", 10),
        ("click", Some("u4"), "/a", 10),
    ] {
        // Midday-safe: events "today" are stamped at the collector's current time.
        events.push(json!({"event_type": ty, "user_id": user, "page_url": page,
                           "timestamp": now - age_days * day}));
    }
    let res = env
        .post("/api/track/batch", &json!({"events": events}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // Stats read rollups: once the consumer has rolled all eleven events up.
    env.wait_for_rollups(30, 11).await;

    let week = env.get("/api/stats/events?days=7").await.json().unwrap();
    assert_eq!(week["total_events"], 9);
    assert_eq!(
        week["events"],
        json!([
            {"event_type": "page_view", "count": 5, "unique_users": 3},
            {"event_type": "click", "count": 4, "unique_users": 1},
        ])
    );
    let pages = env.get("/api/stats/pages?days=7").await.json().unwrap();
    assert_eq!(pages["total_page_views"], 5);
    assert_eq!(
        pages["pages"],
        json!([
            {"page_url": "/a", "views": 3, "unique_users": 2},
            {"page_url": "/b", "views": 2, "unique_users": 2},
        ])
    );
    let today = env.get("/api/stats/pages?days=1").await.json().unwrap();
    assert_eq!(today["total_page_views"], 4);
    let month = env.get("/api/stats/events?days=30").await.json().unwrap();
    assert_eq!(month["total_events"], 11);
    assert_eq!(month["period"]["days"], 30);
}

#[tokio::test]
async fn health_reports_the_database() {
    let env = start(&[]).await;
    let res = env.send(Request::new("GET", "/api/health")).await;
    assert_eq!(res.status, 200);
    let j = res.json().unwrap();
    assert_eq!(
        (j["status"].as_str(), j["store"].as_str()),
        (Some("healthy"), Some("mongodb"))
    );
}

#[tokio::test]
async fn sigterm_drains_every_acknowledged_request() {
    let env = start(&[]).await;
    let addr = env.collector.addr;
    let mut tasks = Vec::new();
    for t in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for r in 0..40 {
                let ids: Vec<String> = (0..5).map(|_| uuid()).collect();
                let events: Vec<_> = ids
                    .iter()
                    .map(|id| json!({"event_id": id, "event_type": "click", "user_id": format!("t{t}r{r}")}))
                    .collect();
                let req = Request::new("POST", "/api/track/batch")
                    .header("x-api-key", WRITE_KEY)
                    .body(json!({"events": events}).to_string());
                match maidian_testkit::http::send(addr, &req).await {
                    Ok(res) if res.status == 200 => acked.extend(ids),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let db = env.db.clone();
    let (code, stderr) = env.collector.terminate().await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(!acked.is_empty());
    let coll = db.collection::<Document>("events");
    let stored = coll
        .count_documents(doc! {"_id": {"$in": &acked}})
        .await
        .unwrap();
    assert_eq!(
        stored as usize,
        acked.len(),
        "an acknowledged event was lost"
    );
}

#[tokio::test]
async fn bad_config_stops_startup_naming_the_key() {
    let out = tokio::process::Command::new(common::binary())
        .env_clear()
        .env("MAIDIAN_API_KEY", "w")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("tracking_api.read_key is required"), "{err}");

    let out = tokio::process::Command::new(common::binary())
        .env_clear()
        .env("MAIDIAN_READ_KEY", "r")
        .env("MAIDIAN_MONGODB_PORT", "lots")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MAIDIAN_MONGODB_PORT"), "{err}");
}

/// A curl client gets the same tagging as the SDK: campaign tags, source and channel on page
/// views, a bot reason on crawler, automation and referrer-spam events; all stored, and
/// exported.
#[tokio::test]
async fn page_views_are_tagged_with_their_source_and_bots_are_flagged_not_dropped() {
    let env = start(&[]).await;
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let res = env
        .post(
            "/api/track/batch",
            &json!({"events": [
                {"event_id": uuid(), "event_type": "page_view", "session_id": "a", "user_agent": chrome,
                 "page_url": "https://shop.example/?utm_source=Weibo&utm_medium=paid_social&utm_campaign=双11"},
                {"event_id": uuid(), "event_type": "page_view", "session_id": "b", "user_agent": chrome,
                 "page_url": "https://shop.example/p", "referrer": "https://www.baidu.com/link?url=1"},
                {"event_id": uuid(), "event_type": "page_view", "session_id": "c",
                 "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                 "page_url": "https://shop.example/"},
                {"event_id": uuid(), "event_type": "page_view", "session_id": "d", "user_agent": chrome,
                 "page_url": "https://shop.example/", "referrer": "https://semalt.com/"},
                {"event_id": uuid(), "event_type": "click", "session_id": "e", "webdriver": true},
            ]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json().unwrap()["stored"],
        5,
        "bots are stored, not dropped"
    );
    let docs = env.stored().await;
    let by = |sid: &str| {
        docs.iter()
            .find(|d| d.get_str("session_id").ok() == Some(sid))
            .unwrap()
    };
    let field = |sid: &str, f: &str| by(sid).get_str(f).ok().map(String::from);
    assert_eq!(field("a", "channel").as_deref(), Some("Paid Social"));
    assert_eq!(field("a", "source").as_deref(), Some("weibo"));
    assert_eq!(field("a", "utm_campaign").as_deref(), Some("双11"));
    assert_eq!(field("a", "bot"), None);
    assert_eq!(field("b", "channel").as_deref(), Some("Organic Search"));
    assert_eq!(field("b", "source").as_deref(), Some("baidu"));
    assert_eq!(field("c", "bot").as_deref(), Some("user_agent"));
    assert_eq!(field("d", "bot").as_deref(), Some("referrer_spam"));
    assert_eq!(field("e", "bot").as_deref(), Some("webdriver"));
    // Request-wide signals: a browser's User-Agent header speaks for events without one, an
    // HTTP library's does not; `webdriver` beside the events flags them all.
    let batch = |sid: &str, webdriver: bool| {
        json!({"webdriver": webdriver, "events": [{"event_id": uuid(), "event_type": "click", "session_id": sid}]})
            .to_string()
    };
    for (sid, agent, webdriver) in [
        (
            "headless",
            "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36",
            false,
        ),
        ("server", "python-requests/2.31", false),
        ("driven", "Mozilla/5.0 Chrome/120.0", true),
    ] {
        let res = env
            .send(
                Request::new("POST", "/api/track/batch")
                    .header("content-type", "application/json")
                    .header("x-api-key", WRITE_KEY)
                    .header("user-agent", agent)
                    .body(batch(sid, webdriver)),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let docs = env.stored().await;
    let bot_of = |sid: &str| {
        docs.iter()
            .find(|d| d.get_str("session_id").ok() == Some(sid))
            .and_then(|d| d.get_str("bot").ok().map(String::from))
    };
    assert_eq!(bot_of("headless").as_deref(), Some("user_agent"));
    assert_eq!(bot_of("server"), None);
    assert_eq!(bot_of("driven").as_deref(), Some("webdriver"));

    let csv = env.get("/api/export/events.csv?days=1").await.text();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",source,channel,bot,lcp,fcp,ttfb,inp,cls"));
    assert!(csv.contains(",weibo,Paid Social,"), "{csv}");
    assert!(csv.contains(",user_agent,,,,,\r\n"), "{csv}");
}

/// 1 500 views of one landing page with ad and tracking parameters are one page, not 1 500
/// page rows; `[privacy] page_params` keeps the parameters chosen (a search page's `q`).
#[tokio::test]
async fn query_strings_do_not_mint_pages() {
    let env = start(&[("MAIDIAN_PAGE_PARAMS", "q")]).await;
    for batch in 0..3 {
        let events: Vec<_> = (0..500)
            .map(|i| {
                let n = batch * 500 + i;
                json!({"event_type": "page_view", "user_id": format!("u{}", n % 50),
                       "page_url": format!("https://shop.example/landing?r={n}&gclid=g{n}#ad-{n}")})
            })
            .collect();
        let res = env
            .post("/api/track/batch", &json!({ "events": events }))
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let searches = json!({"events": [
        {"event_type": "page_view", "user_id": "s", "page_url": "https://shop.example/search?q=shoes&sort=new"},
        {"event_type": "page_view", "user_id": "s", "page_url": "https://shop.example/search?sort=old&q=shoes"},
        {"event_type": "page_view", "user_id": "s", "page_url": "https://shop.example/search?q=hats"},
    ]});
    let res = env.post("/api/track/batch", &searches).await;
    assert_eq!(res.status, 200, "{}", res.text());
    env.wait_for_rollups(1, 1503).await;
    let pages = env.get("/api/stats/pages?days=1").await.json().unwrap();
    assert_eq!(
        pages["pages"],
        json!([
            {"page_url": "https://shop.example/landing", "views": 1500, "unique_users": 50},
            {"page_url": "https://shop.example/search?q=shoes", "views": 2, "unique_users": 1},
            {"page_url": "https://shop.example/search?q=hats", "views": 1, "unique_users": 1},
        ])
    );
    assert_eq!(
        (&pages["total_rows"], &pages["limit"], &pages["page"]),
        (&json!(3), &json!(100), &json!(1))
    );
    // Page lists come in pages.
    let second = env
        .get("/api/stats/pages?days=1&limit=1&page=2")
        .await
        .json()
        .unwrap();
    assert_eq!(second["pages"], json!([pages["pages"][1]]));
    assert_eq!(second["total_page_views"], 1503);
    for bad in ["limit=0", "limit=1001", "page=0", "limit=x"] {
        let res = env.get(&format!("/api/stats/pages?{bad}")).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text());
    }
    let stored = env.stored().await;
    assert!(stored
        .iter()
        .all(|d| !d.get_str("page_url").unwrap_or("").contains("gclid")));
}
