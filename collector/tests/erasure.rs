//! Erasure and access that no request can turn against the service or another visitor,
//! through the real binary on FerretDB and on the embedded store: a long chain of linked ids
//! is erased at once, a request that cannot be carried out is refused with its reason and
//! never holds the rollups up, a forged link never hands one person's events to another,
//! placeholder ids link nobody, and a dry run erases nothing.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{now_ms, uuid, READ_KEY, WRITE_KEY};
use maidian_testkit::http::{self, Request, Response};
use maidian_testkit::Collector;
use serde_json::{json, Value};

const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A collector on FerretDB (a fresh database) or on the embedded store (a fresh directory).
struct Running {
    collector: Collector,
    _dir: Option<tempfile::TempDir>,
    kind: &'static str,
}

async fn both_stores() -> Vec<Running> {
    let mut out = Vec::new();
    for kind in ["mongodb", "embedded"] {
        let dir = tempfile::tempdir().unwrap();
        let db = maidian_testkit::fresh_db_name("erasure");
        let env = env_of(kind, dir.path(), &db, &[]);
        let collector = Collector::start(common::binary(), &env).await.unwrap();
        out.push(Running {
            collector,
            _dir: Some(dir),
            kind,
        });
    }
    out
}

/// The environment of a collector on store `kind`: database `db` or directory `dir`.
fn env_of(
    kind: &str,
    dir: &std::path::Path,
    db: &str,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", READ_KEY),
        ("MAIDIAN_ADMIN_KEY", ADMIN_KEY),
    ]
    .iter()
    .chain(common::QUICK_ROLLUPS)
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if kind == "mongodb" {
        env.insert(
            "MAIDIAN_MONGODB_URI".into(),
            maidian_testkit::mongodb_uri().unwrap(),
        );
        env.insert("MAIDIAN_DATABASE".into(), db.into());
    } else {
        env.insert("MAIDIAN_DATA_DIR".into(), dir.to_str().unwrap().into());
    }
    env
}

impl Running {
    async fn send(&self, req: Request) -> Response {
        http::send(self.collector.addr, &req).await.unwrap()
    }

    async fn track(&self, events: Vec<Value>) {
        for part in events.chunks(500) {
            let res = self
                .send(
                    Request::new("POST", "/api/track/batch")
                        .header("content-type", "application/json")
                        .header("x-api-key", WRITE_KEY)
                        .body(json!({ "events": part }).to_string()),
                )
                .await;
            assert_eq!(res.status, 200, "{}: {}", self.kind, res.text());
        }
    }

    async fn forget(&self, body: Value) -> Response {
        self.send(
            Request::new("POST", "/api/privacy/forget")
                .header("content-type", "application/json")
                .header("x-api-key", ADMIN_KEY)
                .body(body.to_string()),
        )
        .await
    }

    /// The event ids of an access request (the visitor's CSV export).
    async fn access(&self, visitor: &str) -> Vec<String> {
        let res = self
            .send(
                Request::new("GET", &format!("/api/export/events.csv?visitor={visitor}"))
                    .header("x-api-key", READ_KEY),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let mut ids: Vec<String> = res
            .text()
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next().map(String::from))
            .collect();
        ids.sort();
        ids
    }

    /// Waits until the summary counts `events` events, all rolled up.
    async fn rolled_up(&self, events: u64) -> Value {
        common::settled(self.collector.addr, READ_KEY, 1, events).await
    }
}

fn event(user: Option<&str>, anon: &str, session: &str) -> (String, Value) {
    let id = uuid();
    let e = json!({"event_id": id, "event_type": "click", "user_id": user,
                   "anonymous_id": anon, "session_id": session,
                   "page_url": "https://a.example/p", "timestamp": now_ms()});
    (id, e)
}

/// A chain of `n` events: anonymous id `{p}{i}`, session `{p}{i+1}`.
fn chain(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| event(None, &format!("{prefix}{i}"), &format!("{prefix}{}", i + 1)).1)
        .collect()
}

fn load(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            event(
                Some(&format!("load-{i}")),
                &format!("la-{i}"),
                &format!("ls-{i}"),
            )
            .1
        })
        .collect()
}

/// A 20-link chain used to need more than the 16 rounds allowed: the request failed, stayed
/// the oldest, and the consumer retried it forever (no rollup moved again). Now it is erased
/// at once; a chain longer than any request may follow is refused with its reason (422),
/// and events sent afterwards are rolled up either way.
#[tokio::test]
async fn long_chains_are_erased_or_refused_and_never_freeze_the_rollups() {
    for run in both_stores().await {
        run.track(chain("a", 20)).await;
        run.rolled_up(20).await;
        let started = std::time::Instant::now();
        let res = tokio::time::timeout(
            Duration::from_secs(20),
            run.forget(json!({"visitor": "a0"})),
        )
        .await
        .expect("the erasure of a 20-link chain did not answer");
        assert_eq!(res.status, 200, "{}: {}", run.kind, res.text());
        let done = res.json().unwrap();
        assert_eq!(done["events_removed"], 20, "{}: {done}", run.kind);
        assert_eq!(done["ids"], 21, "{}: {done}", run.kind);
        eprintln!(
            "figure: {}: erasure of a 20-link chain {} ms",
            run.kind,
            started.elapsed().as_millis()
        );
        run.track(load(50)).await;
        run.rolled_up(50).await;

        // Longer than any request may follow: refused, nothing erased, rollups go on.
        let long = maidian_analytics::lifecycle::MAX_ROUNDS + 5;
        run.track(chain("b", long)).await;
        run.rolled_up(50 + long as u64).await;
        let res = run.forget(json!({"visitor": "b0"})).await;
        assert_eq!(res.status, 422, "{}: {}", run.kind, res.text());
        let err = res.json().unwrap();
        assert_eq!(err["error"]["code"], "erasure_refused");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was erased"),
            "{err}"
        );
        run.track(load(50)).await;
        run.rolled_up(100 + long as u64).await;
        run.collector.terminate().await.unwrap();
    }
}

/// Anyone with the public write key can send `{"user_id": victim, "anonymous_id": att-1}`:
/// an access request for `att-1` returned the victim's other events, and erasing `att-1`
/// deleted them. Now links never cross to another user's events, placeholder ids link
/// nobody, and a dry run says what would go without erasing.
#[tokio::test]
async fn forged_links_and_placeholders_reach_nobody_else() {
    for run in both_stores().await {
        let (victim_own, e1) = event(Some("victim@corp.example"), "v-anon", "v-session");
        let (forged, e2) = event(Some("victim@corp.example"), "att-1", "att-session");
        let (attacker, e3) = event(None, "att-1", "att-session-2");
        // Two users behind the anonymous id an SDK stored as "null".
        let (mum, e4) = event(Some("mum"), "null", "undefined");
        let (kid, e5) = event(Some("kid"), "null", "undefined");
        run.track(vec![e1, e2, e3, e4, e5]).await;
        run.rolled_up(5).await;

        let mut want = vec![forged.clone(), attacker.clone()];
        want.sort();
        assert_eq!(run.access("att-1").await, want, "{}", run.kind);
        assert_eq!(run.access("mum").await, vec![mum.clone()], "{}", run.kind);

        // A dry run answers the ids and counts and erases nothing.
        let res = run
            .forget(json!({"visitor": "att-1", "dry_run": true}))
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let plan = res.json().unwrap();
        assert_eq!(plan["dry_run"], true);
        assert_eq!(plan["events"], 2, "{plan}");
        let ids: Vec<&str> = plan["ids"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            ids.contains(&"att-1") && !ids.contains(&"victim@corp.example"),
            "{plan}"
        );
        run.rolled_up(5).await;

        let res = run.forget(json!({"visitor": "att-1"})).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json().unwrap()["events_removed"], 2);
        assert_eq!(
            run.access("victim@corp.example").await,
            vec![victim_own.clone()],
            "{}: the victim's own event survives",
            run.kind
        );
        let res = run.forget(json!({"visitor": "mum"})).await;
        assert_eq!(res.json().unwrap()["events_removed"], 1);
        assert_eq!(run.access("kid").await, vec![kid.clone()], "{}", run.kind);

        for placeholder in ["null", "undefined", "guest", " "] {
            let res = run.forget(json!({"visitor": placeholder})).await;
            assert_eq!(res.status, 400, "{placeholder:?}: {}", res.text());
            assert_eq!(res.json().unwrap()["error"]["code"], "invalid_parameter");
        }
        run.rolled_up(2).await;
        run.collector.terminate().await.unwrap();
    }
}

/// A site's zone changed (UTC, then Asia/Shanghai after a restart): the events counted before
/// the change stay on their UTC days, and erasing one of them takes its counts back from
/// that day. It used to take them from the day in today's zone, leaving the old day counted
/// and the new one short.
#[tokio::test]
async fn erasure_after_a_zone_change_takes_counts_from_the_days_they_were_counted_on() {
    use maidian_analytics::site::Zone;
    let sh = Zone::named("Asia/Shanghai").unwrap();
    // 00:30 in Shanghai two days ago: 16:30 UTC on the day before that.
    let at = sh.start_millis(sh.today().window_start(3)) + 30 * 60_000;
    let (utc_day, sh_day) = (
        Zone::utc().day_of(at).unwrap().to_string(),
        sh.day_of(at).unwrap().to_string(),
    );
    assert_ne!(utc_day, sh_day);
    let visit = |user: &str| {
        json!({"event_id": uuid(), "event_type": "page_view", "user_id": user,
               "session_id": format!("{user}-s"), "page_url": "https://a.example/p",
               "timestamp": at})
    };
    for kind in ["mongodb", "embedded"] {
        let dir = tempfile::tempdir().unwrap();
        let db = maidian_testkit::fresh_db_name("zones");
        let env = |tz: &str| env_of(kind, dir.path(), &db, &[("MAIDIAN_TIMEZONE", tz)]);
        let run = Running {
            collector: Collector::start(common::binary(), &env("UTC"))
                .await
                .unwrap(),
            _dir: None,
            kind,
        };
        run.track(vec![visit("gone"), visit("kept")]).await;
        common::settled(run.collector.addr, READ_KEY, 7, 2).await;
        run.collector.terminate().await.unwrap();

        let run = Running {
            collector: Collector::start(common::binary(), &env("Asia/Shanghai"))
                .await
                .unwrap(),
            _dir: None,
            kind,
        };
        run.track(vec![visit("later")]).await;
        common::settled(run.collector.addr, READ_KEY, 7, 3).await;
        let res = run.forget(json!({"visitor": "gone"})).await;
        assert_eq!(res.status, 200, "{kind}: {}", res.text());
        let summary = common::settled(run.collector.addr, READ_KEY, 7, 2).await;
        let daily: HashMap<String, u64> = summary["daily"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["day"].as_str().unwrap().to_string(),
                    d["events"].as_u64().unwrap(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let want: HashMap<String, u64> = [(utc_day.clone(), 1), (sh_day.clone(), 1)].into();
        assert_eq!(daily, want, "{kind}: {summary}");
        assert_eq!(summary["overview"]["active_users"], 2, "{kind}: {summary}");
    }
}

/// A site's day keeps rows of its own for its first `max_pages_per_day` distinct pages; the
/// views (and times) of later ones are counted under `(other)`, on both stores, and an
/// erasure takes a visitor's views back from where they were counted.
#[tokio::test]
async fn pages_beyond_the_daily_cap_are_counted_under_other() {
    for kind in ["mongodb", "embedded"] {
        let dir = tempfile::tempdir().unwrap();
        let db = maidian_testkit::fresh_db_name("pagecap");
        let env = env_of(
            kind,
            dir.path(),
            &db,
            &[("MAIDIAN_ROLLUP_MAX_PAGES_PER_DAY", "3")],
        );
        let run = Running {
            collector: Collector::start(common::binary(), &env).await.unwrap(),
            _dir: None,
            kind,
        };
        let view = |user: &str, page: &str, id: &str| {
            json!({"event_id": id, "event_type": "page_view", "user_id": user,
                   "session_id": format!("{user}-s"), "timestamp": now_ms(),
                   "page_url": format!("https://a.example/{page}")})
        };
        let mut events: Vec<Value> = (1..=5)
            .map(|i| view(&format!("u{i}"), &format!("p{i}"), &uuid()))
            .collect();
        let again = uuid();
        events.push(view("u4", "p4", &again));
        events.push(
            json!({"event_type": "page_leave", "user_id": "u4", "session_id": "u4-s",
            "page_url": "https://a.example/p4", "page_view_id": again, "duration": 3000,
            "timestamp": now_ms()}),
        );
        run.track(events).await;
        let pages = |s: &Value| -> HashMap<String, (u64, u64)> {
            s["top_pages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let url = p["page_url"].as_str().unwrap();
                    let url = url.strip_prefix("https://a.example/").unwrap_or(url);
                    let n = |k: &str| p[k].as_u64().unwrap();
                    (url.to_string(), (n("views"), n("unique_users")))
                })
                .collect()
        };
        // Which three pages keep rows depends on the log's order (MongoDB: time, then id).
        let s = run.rolled_up(7).await;
        let first = pages(&s);
        let own: Vec<&String> = first.keys().filter(|p| *p != "(other)").collect();
        assert_eq!(own.len(), 3, "{kind}: {s}");
        let views: u64 = first.values().map(|v| v.0).sum();
        assert_eq!(views, 6, "{kind}: {s}");
        let other = first["(other)"];
        assert!(other.0 >= 2, "{kind}: {s}");
        let p4 = if own.iter().any(|p| *p == "p4") {
            "https://a.example/p4"
        } else {
            "(other)"
        };
        let row = s["top_pages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["page_url"] == p4)
            .unwrap();
        assert_eq!(row["avg_time_on_page"], 3.0, "{kind}: {s}");

        // Erasing a visitor whose one page was folded takes the view back from (other).
        let folded = (1..=5)
            .find(|i| *i != 4 && !first.contains_key(&format!("p{i}")))
            .unwrap();
        let res = run.forget(json!({"visitor": format!("u{folded}")})).await;
        assert_eq!(res.status, 200, "{kind}: {}", res.text());
        let s = run.rolled_up(6).await;
        let mut want = first.clone();
        want.insert("(other)".into(), (other.0 - 1, other.1 - 1));
        assert_eq!(pages(&s), want, "{kind}: {s}");
        // The day is full: a new page is counted under (other) too.
        run.track(vec![view("u6", "p6", &uuid())]).await;
        let s = run.rolled_up(7).await;
        assert_eq!(pages(&s), first, "{kind}: {s}");
    }
}
