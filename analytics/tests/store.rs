//! The same checks on both stores: MongoDB (FerretDB of the test run, fresh database per test)
//! and the embedded store (fresh directory per test).

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

use maidian_analytics::engine::stats;
use maidian_analytics::event::{Day, Event};
use maidian_analytics::stats::Period;
use maidian_analytics::store::{MongoConfig, Store, StoreConfig};
use maidian_testkit::{fresh_db_name, mongodb_uri};
use serde_json::json;

const DAY: i64 = 86_400_000;
// 2026-11-20T12:00:00Z
const T0: i64 = 1_795_176_000_000;

fn event(id: u32, ty: &str, user: Option<&str>, page: &str, at: i64) -> Event {
    let mut e = Event {
        site: "default".into(),
        event_id: format!("00000000-0000-7000-8000-{id:012}"),
        event_type: ty.into(),
        user_id: user.map(Into::into),
        page_url: Some(page.into()),
        timestamp: at,
        client_timestamp: at - 5,
        received_at: at + 10,
        day: Day::from_millis(at).unwrap(),
        ..Event::default()
    };
    e.derive_visitor();
    e
}

async fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let mongo = StoreConfig::Mongo(MongoConfig::at_uri(
        mongodb_uri().unwrap(),
        fresh_db_name("store"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let embedded = StoreConfig::Embedded {
        data_dir: dir.path().join("data"),
    };
    vec![
        (Store::open(&mongo).await.unwrap(), None),
        (Store::open(&embedded).await.unwrap(), Some(dir)),
    ]
}

#[tokio::test]
async fn stores_each_event_once_and_reports_duplicates_by_index() {
    for (store, _dir) in stores().await {
        store.ping().await.unwrap();
        let a = event(1, "click", Some("u1"), "/a", T0);
        let b = event(2, "click", Some("u1"), "/a", T0 + 1);
        let first = store
            .insert(&[a.clone(), b.clone(), a.clone()])
            .await
            .unwrap();
        assert_eq!(first.inserted, 2, "{}", store.kind());
        assert_eq!(first.duplicates, vec![2], "{}", store.kind());
        let second = store
            .insert(&[event(3, "scroll", None, "/b", T0), b.clone()])
            .await
            .unwrap();
        assert_eq!((second.inserted, second.duplicates.clone()), (1, vec![1]));
        assert!(second.failed.is_empty());
        let day = Day::from_millis(T0).unwrap();
        assert_eq!(store.events_between(day, day).await.unwrap().len(), 3);
    }
}

/// A document the database refuses (FerretDB v1 refuses arrays inside arrays; the collector's
/// validation refuses them first, this is the store's own last line) fails alone: its index is
/// reported and the events around it are stored.
#[tokio::test]
async fn a_document_the_database_refuses_fails_alone() {
    let (store, _dir) = stores().await.into_iter().next().unwrap();
    let mut poison = event(11, "click", Some("u1"), "/a", T0);
    poison.custom_data = json!({"a": [[1]]}).as_object().cloned();
    let report = store
        .insert(&[
            event(10, "click", Some("u1"), "/a", T0),
            poison,
            event(12, "click", Some("u1"), "/a", T0 + 1),
        ])
        .await
        .unwrap();
    assert_eq!(report.failed, vec![1]);
    assert_eq!(report.inserted, 2);
    let day = Day::from_millis(T0).unwrap();
    assert_eq!(store.events_between(day, day).await.unwrap().len(), 2);
}

#[tokio::test]
async fn events_read_back_equal_what_was_written() {
    for (store, _dir) in stores().await {
        let mut e = event(7, "form_submit", Some("u9"), "/checkout", T0);
        e.anonymous_id = Some("anon".into());
        e.session_id = Some("s".into());
        e.x_position = Some(10.5);
        e.scroll_depth = Some(75.0);
        e.load_time = Some(812.0);
        e.exit_timestamp = Some(T0 + 60_000);
        e.element_text = Some("提交".into());
        e.custom_data =
            json!({"plan": "pro", "n": 3, "f": 1.5, "nested": {"list": [1, "two", null]}})
                .as_object()
                .cloned();
        let before = maidian_analytics::consumer::now_ms();
        store.insert(std::slice::from_ref(&e)).await.unwrap();
        let back = store.events_between(e.day, e.day).await.unwrap();
        // The store stamps `received_at` as it writes: the rollup consumer's log order.
        let stamped = back[0].received_at;
        assert!(
            (before..=maidian_analytics::consumer::now_ms()).contains(&stamped),
            "{}",
            store.kind()
        );
        e.received_at = stamped;
        assert_eq!(back, vec![e], "{}", store.kind());
    }
}

#[tokio::test]
async fn stats_by_type_and_page_within_the_period() {
    for (store, _dir) in stores().await {
        let events = vec![
            event(1, "page_view", Some("u1"), "/a", T0),
            event(2, "page_view", Some("u1"), "/a", T0 + 1000),
            event(3, "page_view", Some("u2"), "/b", T0 - DAY),
            event(4, "click", Some("u2"), "/b", T0 - DAY),
            event(5, "click", None, "/b", T0),
            // Outside the period: the day before `since` and the day after `until`.
            event(6, "page_view", Some("u3"), "/a", T0 - 2 * DAY),
            event(7, "click", Some("u3"), "/a", T0 + DAY),
        ];
        store.insert(&events).await.unwrap();
        let mut cfg = maidian_analytics::consumer::ConsumerConfig::new("test".into());
        cfg.safety_lag = std::time::Duration::ZERO;
        maidian_analytics::consumer::catch_up(&store, &cfg)
            .await
            .unwrap();
        let p = Period::last_days(2, Day::from_millis(T0).unwrap());
        let scope = &Default::default();
        let types = stats::event_types(&store, p, scope).await.unwrap();
        let got: Vec<_> = types
            .iter()
            .map(|t| (t.event_type.as_str(), t.count, t.unique_users))
            .collect();
        assert_eq!(
            got,
            vec![("page_view", 3, 2), ("click", 2, 1)],
            "{}",
            store.kind()
        );
        let pages = stats::pages(&store, p, scope).await.unwrap();
        let got: Vec<_> = pages
            .iter()
            .map(|p| (p.page_url.as_str(), p.views, p.unique_users))
            .collect();
        assert_eq!(got, vec![("/a", 2, 1), ("/b", 1, 1)], "{}", store.kind());
        let empty = Period::last_days(1, Day::parse("2020-01-01").unwrap());
        assert!(stats::event_types(&store, empty, scope)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn embedded_store_keeps_events_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Embedded {
        data_dir: dir.path().to_path_buf(),
    };
    let mut e = event(1, "click", Some("u"), "/", T0);
    {
        let store = Store::open(&config).await.unwrap();
        store.insert(std::slice::from_ref(&e)).await.unwrap();
    }
    let store = Store::open(&config).await.unwrap();
    let again = store.insert(std::slice::from_ref(&e)).await.unwrap();
    assert_eq!(again.duplicates, vec![0]);
    let back = store.events_between(e.day, e.day).await.unwrap();
    e.received_at = back[0].received_at;
    assert_eq!(back, vec![e]);
}

/// A restart opens the same database again: index creation must be idempotent (FerretDB v1
/// used to drop the connection on a repeated multi-index `createIndexes`).
#[tokio::test]
async fn mongodb_store_reopens_the_same_database() {
    let config = StoreConfig::Mongo(MongoConfig::at_uri(
        mongodb_uri().unwrap(),
        fresh_db_name("reopen"),
    ));
    for _ in 0..3 {
        let store = Store::open(&config).await.unwrap();
        store.ping().await.unwrap();
    }
}
