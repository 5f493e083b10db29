//! In-process route tests (`warp::test`) on the embedded store: the zero-setup default.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

use std::sync::Arc;

use maidian_analytics::store::{Store, StoreConfig};
use maidian_collector::config::Config;
use maidian_collector::handlers::App;
use maidian_collector::routes::routes;
use maidian_collector::writer::Writer;
use serde_json::{json, Value};

async fn app(dir: &tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Arc<App> {
    let mut config = Config::default();
    config.tracking_api.read_key = "r".into();
    config.rollups.poll_ms = 20;
    tweak(&mut config);
    let store = Store::open(&StoreConfig::Embedded {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let store = Arc::new(store);
    let metrics = Arc::new(maidian_collector::metrics::Metrics::new());
    let (writer, _task) = Writer::spawn(store.clone(), &config.writer, metrics.clone());
    Arc::new(App::new(config, store, writer, metrics))
}

fn body(res: &warp::http::Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(res.body()).unwrap()
}

#[tokio::test]
async fn embedded_store_ingests_and_answers_stats() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir, |_| {}).await;
    let filter = routes(app.clone());
    let health = warp::test::request()
        .path("/api/health")
        .reply(&filter)
        .await;
    assert_eq!(health.status(), 200);
    assert_eq!(body(&health)["store"], "embedded");

    let batch = json!({"events": [
        {"event_type": "page_view", "page_url": "/", "user_id": "a"},
        {"event_type": "page_view", "page_url": "/", "user_id": "b"},
        {"event_type": "click", "page_url": "/", "user_id": "a"},
    ]});
    // No write key configured: ingest is open, as in the seed.
    let res = warp::test::request()
        .method("POST")
        .path("/api/track/batch")
        .header("content-type", "text/plain")
        .body(batch.to_string())
        .reply(&filter)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.body());
    assert_eq!(body(&res)["stored"], 3);
    // Stats read rollups (no consumer runs in-process here): roll the three events up.
    let mut cfg = maidian_analytics::consumer::ConsumerConfig::new("test".into());
    cfg.safety_lag = std::time::Duration::ZERO;
    let rolled = maidian_analytics::consumer::catch_up(&app.store, &cfg)
        .await
        .unwrap();
    assert_eq!(rolled, 3);

    let stats = warp::test::request()
        .path("/api/stats/pages?days=1")
        .header("x-api-key", "r")
        .reply(&filter)
        .await;
    assert_eq!(
        body(&stats)["pages"],
        json!([{"page_url": "/", "views": 2, "unique_users": 2}])
    );
}

#[tokio::test]
async fn limits_come_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let filter = routes(
        app(&dir, |c| {
            c.limits.max_batch_events = 2;
            c.limits.max_body_bytes = 200;
        })
        .await,
    );
    let three = json!({"events": [{"event_type": "a"}, {"event_type": "a"}, {"event_type": "a"}]});
    let res = warp::test::request()
        .method("POST")
        .path("/api/track/batch")
        .body(three.to_string())
        .reply(&filter)
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(body(&res)["error"]["code"], "batch_too_large");

    let big = json!({"event_type": "a", "page_title": "t".repeat(300)});
    let res = warp::test::request()
        .method("POST")
        .path("/api/track/event")
        .body(big.to_string())
        .reply(&filter)
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(body(&res)["error"]["code"], "body_too_large");
}
