//! The real `maidian` binary on a store it did not write: figures and exit codes.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

use maidian_analytics::event::{Day, Event};
use maidian_analytics::store::{Store, StoreConfig};
use serde_json::{json, Value};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn seed(dir: &std::path::Path) {
    let store = Store::open(&StoreConfig::Embedded {
        data_dir: dir.to_path_buf(),
    })
    .await
    .unwrap();
    let now = now_ms();
    let events: Vec<Event> = [
        ("page_view", "a"),
        ("click", "a"),
        ("click", "b"),
        ("page_view", "b"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (ty, user))| {
        event(
            i,
            now,
            Event {
                event_type: ty.to_string(),
                user_id: Some(user.to_string()),
                page_url: Some("/x".into()),
                ..Event::default()
            },
        )
    })
    .collect();
    store.insert(&events).await.unwrap();
}

/// `fields` stamped at `now` with the `i`th id and its visitor.
fn event(i: usize, now: i64, fields: Event) -> Event {
    let mut e = Event {
        event_id: format!("00000000-0000-7000-8000-{i:012}"),
        timestamp: now,
        client_timestamp: now,
        received_at: now,
        day: Day::from_millis(now).unwrap(),
        ..fields
    };
    e.derive_visitor();
    e
}

fn maidian(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_maidian"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("MAIDIAN_MONGODB_URI")
        .output()
        .unwrap()
}

#[tokio::test]
async fn stats_as_json_and_as_a_table() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path()).await;

    let out = maidian(&["stats", "events", "--days", "7", "--json"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_events"], 4);
    assert_eq!(
        v["events"],
        json!([
            {"event_type": "click", "count": 2, "unique_users": 2},
            {"event_type": "page_view", "count": 2, "unique_users": 2},
        ])
    );

    let out = maidian(&["stats", "pages"], dir.path());
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with("/x")).unwrap();
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["/x", "2", "2"]);

    let bad = maidian(&["stats", "events", "--days", "0"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--days"));
}

/// Visitor strings with terminal escapes and spreadsheet formulas: tables show the escapes as
/// text, the CSV export defuses formulas unless `--raw` is asked.
#[tokio::test]
async fn hostile_visitor_strings_neither_drive_the_terminal_nor_run_in_a_spreadsheet() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::Embedded {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let e = event(
        99,
        now_ms(),
        Event {
            event_type: "page_view".into(),
            session_id: Some("s".into()),
            page_url: Some("/x\u{1b}]0;owned\u{7}\u{1b}[2J".into()),
            element_text: Some("=HYPERLINK(\"http://evil.example\")".into()),
            ..Event::default()
        },
    );
    store.insert(&[e]).await.unwrap();
    drop(store);

    let out = maidian(&["stats", "pages"], dir.path());
    assert!(out.status.success());
    assert!(
        !out.stdout.contains(&0x1b),
        "an escape byte reached the terminal"
    );
    assert!(!out.stdout.contains(&0x07));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("/x\\u{1b}]0;owned\\u{7}\\u{1b}[2J"),
        "{table}"
    );

    let safe = maidian(&["export", "--days", "1"], dir.path());
    let safe = String::from_utf8_lossy(&safe.stdout);
    assert!(safe.contains("\"'=HYPERLINK("), "{safe}");
    let raw = maidian(&["export", "--days", "1", "--raw"], dir.path());
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(raw.contains("\"=HYPERLINK("), "{raw}");
}
