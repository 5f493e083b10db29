//! Beyond one machine: three collector processes on one database behind a round-robin of
//! clients, a tenth of the batches resent to another collector (at the same moment, as a
//! client that timed out and retried elsewhere would), and still every event stored once,
//! every answer's counts adding up, and the same exact figures from each collector.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::collections::HashSet;

use common::{now_ms, start_on, uuid, Env};
use maidian_testkit::fresh_db_name;
use serde_json::{json, Value};

const BATCHES: usize = 60;
const PER_BATCH: usize = 20;
const USERS: usize = 37;

#[tokio::test]
async fn three_collectors_store_each_event_once_and_agree() {
    let db = fresh_db_name("scale");
    let mut collectors: Vec<Env> = Vec::new();
    for _ in 0..3 {
        collectors.push(start_on(&db, &[]).await);
    }
    let now = now_ms();
    let types = ["page_view", "click", "purchase", "page_view"];
    let batches: Vec<Vec<Value>> = (0..BATCHES)
        .map(|b| {
            (0..PER_BATCH)
                .map(|i| {
                    let n = b * PER_BATCH + i;
                    json!({"event_id": uuid(), "event_type": types[n % types.len()],
                           "user_id": format!("u{}", n % USERS), "session_id": format!("s{}", n % USERS),
                           "page_url": "https://a.example/", "timestamp": now - (n as i64) * 1000})
                })
                .collect()
        })
        .collect();
    // Four clients; batch b goes to collector b % 3, and every tenth also to the next one.
    let mut answers: Vec<Value> = Vec::new();
    for wave in batches.chunks(4).enumerate() {
        let (w, wave) = wave;
        let mut sends = Vec::new();
        for (k, batch) in wave.iter().enumerate() {
            let b = w * 4 + k;
            let body = json!({ "events": batch });
            let first = &collectors[b % 3];
            sends.push((first, body.clone()));
            if b % 10 == 0 {
                sends.push((&collectors[(b + 1) % 3], body));
            }
        }
        let results = futures_util::future::join_all(
            sends
                .iter()
                .map(|(env, body)| env.post("/api/track/batch", body)),
        )
        .await;
        for r in results {
            assert_eq!(r.status, 200, "{}", r.text());
            answers.push(r.json().unwrap());
        }
    }
    let total = (BATCHES * PER_BATCH) as u64;
    let resent = (BATCHES / 10 * PER_BATCH) as u64;
    let sum = |field: &str| {
        answers
            .iter()
            .map(|a| a[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        sum("stored"),
        total,
        "every event stored by exactly one answer"
    );
    assert_eq!(sum("deduplicated"), resent);
    assert_eq!(collectors[0].count().await, total);
    let ids: HashSet<String> = collectors[0]
        .stored()
        .await
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len() as u64, total);

    // One consumer rolls up for all; every collector answers the same exact figures.
    let summary = collectors[0].wait_for_rollups(7, total).await;
    assert_eq!(summary["overview"]["active_users"], USERS as u64);
    let views = (0..BATCHES * PER_BATCH)
        .filter(|n| types[n % types.len()] == "page_view")
        .count() as u64;
    assert_eq!(summary["overview"]["page_views"], views);
    for env in &collectors[1..] {
        assert_eq!(
            env.get("/api/analytics/summary?days=7")
                .await
                .json()
                .unwrap(),
            summary
        );
        let stats = env.get("/api/stats/events?days=7").await.json().unwrap();
        assert_eq!(stats["total_events"], total);
    }
    // One lease for the database, held by one of the three.
    let state = collectors[0]
        .db
        .collection::<mongodb::bson::Document>("rollup_state")
        .find_one(mongodb::bson::doc! { "_id": "consumer" })
        .await
        .unwrap()
        .unwrap();
    assert!(state
        .get_str("owner")
        .unwrap()
        .starts_with("maidian-collector@"));
}
