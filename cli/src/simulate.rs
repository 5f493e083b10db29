//! `maidian simulate`: realistic visitors sent through a collector's HTTP API in batches.

use std::sync::Arc;

use anyhow::bail;
use maidian_analytics::event::Event;
use maidian_analytics::simulate::Simulation;
use maidian_client::{Client, Limits};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use crate::table::Progress;

pub struct Options {
    pub url: String,
    pub api_key: Option<String>,
    pub users: u64,
    pub days: u32,
    pub seed: u64,
    pub batch: usize,
    pub concurrency: usize,
}

/// The wire form of an event, as the SDK would send it.
fn wire(e: &Event) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    };
    put("event_id", json!(e.event_id));
    put("event_type", json!(e.event_type));
    put("timestamp", json!(e.timestamp));
    for (k, v) in [
        ("user_id", &e.user_id),
        ("anonymous_id", &e.anonymous_id),
        ("session_id", &e.session_id),
        ("page_view_id", &e.page_view_id),
        ("page_url", &e.page_url),
        ("page_title", &e.page_title),
        ("element_id", &e.element_id),
        ("element_text", &e.element_text),
        ("referrer", &e.referrer),
        ("user_agent", &e.user_agent),
        ("screen_resolution", &e.screen_resolution),
        ("viewport_size", &e.viewport_size),
    ] {
        put(k, json!(v));
    }
    for (k, v) in e.measures() {
        put(k, json!(v));
    }
    if let Some(c) = &e.custom_data {
        put("custom_data", Value::Object(c.clone()));
    }
    Value::Object(m)
}

/// Totals of a run, from the collector's answers.
#[derive(Default)]
pub struct Totals {
    pub sent: u64,
    pub stored: u64,
    pub deduplicated: u64,
}

pub async fn run(o: Options) -> anyhow::Result<Totals> {
    let client =
        Client::new(&o.url, None, Limits::default()).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    let now = jiff::Timestamp::now().as_second() * 1000;
    let sim = Arc::new(Mutex::new((Simulation::new(o.seed, now, o.days), 0u64)));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let progress = Arc::new(Progress::new(o.users, "visitors"));
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency.max(1) {
        let (sim, totals, progress) = (sim.clone(), totals.clone(), progress.clone());
        let key = o.api_key.clone();
        let client = client.clone();
        let (users, batch) = (o.users, o.batch.max(1));
        tasks.push(tokio::spawn(async move {
            loop {
                // Take whole visitors until a batch is full, so sessions stay together.
                let mut events = Vec::new();
                let mut done_users = 0;
                {
                    let mut guard = sim.lock().await;
                    let (sim, next) = &mut *guard;
                    while events.len() < batch && *next < users {
                        events.extend(sim.visitor(*next));
                        *next += 1;
                        done_users = *next;
                    }
                }
                if events.is_empty() {
                    return anyhow::Ok(());
                }
                for chunk in events.chunks(batch) {
                    let mut body = json!({ "sent_at": jiff::Timestamp::now().as_second() * 1000,
                        "events": chunk.iter().map(wire).collect::<Vec<_>>() });
                    if let Some(k) = &key {
                        body["api_key"] = json!(k);
                    }
                    // 503 (the store was slow) and 429 are answered "retry": as the SDK does,
                    // a few times with a growing pause; the retry is deduplicated.
                    let mut attempt = 0;
                    let res = loop {
                        let res = client
                            .send(
                                "POST",
                                "/api/track/batch",
                                &[("content-type", "text/plain")],
                                body.to_string().into_bytes(),
                            )
                            .await?;
                        if !matches!(res.status, 429 | 503) || attempt == 4 {
                            break res;
                        }
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                    };
                    if res.status != 200 {
                        bail!(
                            "collector answered {}: {}",
                            res.status,
                            String::from_utf8_lossy(&res.body)
                        );
                    }
                    let answer: Value = serde_json::from_slice(&res.body)?;
                    let mut t = totals.lock().await;
                    t.sent += chunk.len() as u64;
                    t.stored += answer["stored"].as_u64().unwrap_or(0);
                    t.deduplicated += answer["deduplicated"].as_u64().unwrap_or(0);
                }
                if done_users > 0 {
                    progress.show(done_users);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    progress.finish();
    let t = std::mem::take(&mut *totals.lock().await);
    Ok(t)
}
