//! Ingest benchmark: events per second, side by side in one run, on the same FerretDB.
//!
//! 1. `raw insert_many`: the driver inserting the collector's own document shape, batches of
//!    20 and of 500, `--concurrency` tasks: the database ceiling.
//! 2. `collector → FerretDB`: the release collector, batches of 20 over HTTP/1.1 keep-alive from
//!    `--concurrency` connections.
//! 3. `collector → sink`: the same load with the write replaced by the in-memory sink
//!    (`bench-sink` build), i.e. the collector's own cost.
//! 4. `collector → embedded`: the same load on the embedded store.
//!
//! After the FerretDB and embedded runs, the rollup consumer's lag right after the load and
//! the time it takes to drain to 0 (from `/api/health`), and the collector's peak RSS during
//! load and drain.
//!
//! Run through `bench/ingest.sh`, which builds everything and starts FerretDB.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use maidian_analytics::event::{Day, Event};
use maidian_analytics::store::mongo::{event_to_doc, index_models};
use maidian_testkit::http::{Conn, Request};
use maidian_testkit::{fresh_db_name, mongodb_uri, Collector};
use mongodb::bson::Document;
use serde_json::json;

#[derive(Parser, Clone)]
struct Args {
    /// Events per scenario.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Concurrent connections (HTTP) or tasks (driver).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The collector binary, built with `--features bench-sink`.
    #[arg(long, default_value = "target/release/maidian-collector")]
    collector: PathBuf,
    /// Longest wait for the rollups to catch up after a load, in seconds.
    #[arg(long, default_value_t = 600)]
    drain_timeout: u64,
    /// Sites of the multi-site runs (the sink and embedded loads again, requests spread over
    /// this many sites' write keys); 1 skips them.
    #[arg(long, default_value_t = 10)]
    sites: usize,
    /// Alternating one-site / several-site runs of the multi-site comparison (best of each).
    #[arg(long, default_value_t = 3)]
    site_runs: usize,
    /// Distinct visitors the load's events come from (sessions: four per visitor).
    #[arg(long, default_value_t = 5_000)]
    visitors: usize,
    /// Instead of the scenarios above: the embedded collector loaded from `--visitors`
    /// visitors and from this many, alternating `--site-runs` times, best of each: load rate,
    /// rollup drain, peak RSS, as ratios.
    #[arg(long)]
    compare_visitors: Option<usize>,
}

/// The rollup consumer after a load: lag when the load ended, time to catch up, peak RSS.
struct Drain {
    lag_at_end: f64,
    to_zero: Option<Duration>,
    /// How long the drain was watched.
    waited: Duration,
    peak_rss_mb: f64,
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn lag(addr: std::net::SocketAddr) -> anyhow::Result<f64> {
    let h = maidian_testkit::http::send(addr, &Request::new("GET", "/api/health")).await?;
    h.json()?["rollup_lag_seconds"]
        .as_f64()
        .context("health without rollup_lag_seconds")
}

/// Waits for the rollup lag to reach 0, sampling RSS.
async fn drain(
    collector: &Collector,
    timeout: Duration,
    peak_during_load: f64,
) -> anyhow::Result<Drain> {
    let pid = collector.pid().context("collector exited")?;
    let lag_at_end = lag(collector.addr).await?;
    let start = Instant::now();
    let mut peak = peak_during_load.max(rss_mb(pid));
    let to_zero = loop {
        if lag(collector.addr).await? == 0.0 {
            break Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            break None;
        }
        peak = peak.max(rss_mb(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(Drain {
        lag_at_end,
        to_zero,
        waited: start.elapsed(),
        peak_rss_mb: peak,
    })
}

const BATCH: usize = 20;
const WRITE_KEY: &str = "bench-write";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A realistic click, as the SDK sends it.
fn wire_event(i: usize, now: i64, visitors: usize) -> serde_json::Value {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": if i.is_multiple_of(5) { "page_view" } else { "click" },
        "user_id": format!("user_{}", i % visitors),
        "session_id": format!("session_{}", i % (4 * visitors)),
        "page_url": format!("https://shop.example/products/{}", i % 300),
        "page_title": "Product page",
        "element_id": "add-to-cart",
        "element_class": "btn btn-primary",
        "element_text": "Add to cart",
        "x_position": 640, "y_position": 380,
        "referrer": "https://search.example/?q=shoes",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36",
        "screen_resolution": "1920x1080", "viewport_size": "1280x720",
        "timestamp": now - 1000,
        "custom_data": {"variant": "b", "price": 59.9}
    })
}

/// The same event as the collector would store it.
fn stored_event(v: &serde_json::Value, now: i64) -> Event {
    let s = |k: &str| v[k].as_str().map(String::from);
    let mut e = Event {
        event_id: s("event_id").unwrap_or_default(),
        event_type: s("event_type").unwrap_or_default(),
        user_id: s("user_id"),
        session_id: s("session_id"),
        page_url: s("page_url"),
        page_title: s("page_title"),
        element_id: s("element_id"),
        element_class: s("element_class"),
        element_text: s("element_text"),
        referrer: s("referrer"),
        user_agent: s("user_agent"),
        screen_resolution: s("screen_resolution"),
        viewport_size: s("viewport_size"),
        x_position: v["x_position"].as_f64(),
        y_position: v["y_position"].as_f64(),
        timestamp: now - 1000,
        client_timestamp: now - 1000,
        received_at: now,
        day: Day::from_millis(now).unwrap_or_default(),
        custom_data: v["custom_data"].as_object().cloned(),
        ..Event::default()
    };
    e.derive_visitor();
    e
}

struct Figure {
    name: String,
    events: usize,
    elapsed: Duration,
    /// Peak RSS of the collector during the load (0 for driver runs).
    peak_rss_mb: f64,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

async fn raw_insert(
    uri: &str,
    events: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<Figure> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let db = client.database(&fresh_db_name("bench_raw"));
    let coll = db.collection::<Document>("events");
    // The collector's indexes, so both sides pay the same write cost.
    coll.create_indexes(index_models()).await?;
    let now = now_ms();
    let docs: Vec<Document> = (0..events)
        .map(|i| event_to_doc(&stored_event(&wire_event(i, now, 5_000), now)))
        .collect();
    let chunks: Vec<Vec<Document>> = docs.chunks(batch).map(<[Document]>::to_vec).collect();
    let queue = Arc::new(tokio::sync::Mutex::new(chunks));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let coll = coll.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = queue.lock().await.pop() else {
                    break;
                };
                coll.insert_many(chunk).ordered(false).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let stored = coll.count_documents(Document::new()).await? as usize;
    if stored != events {
        bail!("raw insert stored {stored} of {events}");
    }
    db.drop().await?;
    Ok(Figure {
        name: format!("raw insert_many, batches of {batch}"),
        events,
        elapsed,
        peak_rss_mb: 0.0,
    })
}

async fn through_collector(
    args: &Args,
    env: HashMap<String, String>,
    name: &str,
    keys: &[String],
) -> anyhow::Result<(Figure, Collector)> {
    let collector = Collector::start(&args.collector, &env).await?;
    let now = now_ms();
    let bodies: Vec<Vec<u8>> = (0..args.events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|is| {
            let events: Vec<_> = is
                .iter()
                .map(|&i| wire_event(i, now, args.visitors))
                .collect();
            json!({"events": events, "sent_at": now})
                .to_string()
                .into_bytes()
        })
        .collect();
    // Request i goes to site i mod the number of keys.
    let bodies: Vec<(String, Vec<u8>)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (keys[i % keys.len()].clone(), b))
        .collect();
    let queue = Arc::new(tokio::sync::Mutex::new(bodies));
    let start = Instant::now();
    let pid = collector.pid().unwrap_or(0);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(rss_mb(pid));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            peak
        })
    };
    let mut tasks = Vec::new();
    let retries = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..args.concurrency {
        let queue = queue.clone();
        let retries = retries.clone();
        let addr = collector.addr;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            loop {
                let Some((key, body)) = queue.lock().await.pop() else {
                    break;
                };
                let req = Request::new("POST", "/api/track/batch")
                    .header("content-type", "text/plain")
                    .header("x-api-key", &key)
                    .body(body);
                // A 503 (a write past its timeout) is retried, as the SDK does.
                loop {
                    let res = conn.send(&req).await?;
                    match res.status {
                        200 => break,
                        503 => {
                            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        s => bail!("collector answered {s}: {}", res.text()),
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let retried = retries.load(std::sync::atomic::Ordering::Relaxed);
    if retried > 0 {
        println!("{name}: {retried} requests answered 503 and were retried");
    }
    let figure = Figure {
        name: name.into(),
        events: args.events,
        elapsed,
        peak_rss_mb: sampler.await.unwrap_or(0.0),
    };
    Ok((figure, collector))
}

fn base_env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("MAIDIAN_API_KEY", WRITE_KEY),
        ("MAIDIAN_READ_KEY", "bench-read"),
        ("RUST_LOG", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let uri = mongodb_uri()?;
    if !args.collector.exists() {
        bail!(
            "{} not found: build it with --features bench-sink",
            args.collector.display()
        );
    }
    println!(
        "ingest benchmark: {} events per scenario, batches of {BATCH}, concurrency {}, {} cores",
        args.events,
        args.concurrency,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let one = vec![WRITE_KEY.to_string()];
    if let Some(many) = args.compare_visitors {
        return compare_visitors(&args, many, &one).await;
    }
    let raw20 = raw_insert(&uri, args.events, BATCH, args.concurrency).await?;
    let raw500 = raw_insert(&uri, args.events, 500, args.concurrency.min(8)).await?;

    // The collector's own cost and the embedded store first, each with one site and then
    // with several, back to back; FerretDB last (its rollup drain keeps it busy afterwards).
    // The sink keeps nothing; reads (and the idle consumer) use an empty embedded store.
    let sink_dir = tempfile::tempdir()?;
    let sink_data = sink_dir.path().to_string_lossy().to_string();
    let env = base_env(&[
        ("MAIDIAN_STORE", "sink"),
        ("MAIDIAN_DATA_DIR", sink_data.as_str()),
    ]);
    let (via_sink, collector) = through_collector(&args, env, "collector -> in-memory sink", &one)
        .await
        .context("is the collector built with --features bench-sink?")?;
    collector.terminate().await?;

    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_string_lossy().to_string();
    let env = base_env(&[("MAIDIAN_DATA_DIR", data_dir.as_str())]);
    let (via_embedded, collector) = through_collector(
        &args,
        env,
        "collector -> embedded, HTTP batches of 20",
        &one,
    )
    .await?;
    let embedded_drain = drain(
        &collector,
        Duration::from_secs(args.drain_timeout),
        via_embedded.peak_rss_mb,
    )
    .await?;
    collector.terminate().await?;

    // The same loads spread over `--sites` sites, one config file declaring them.
    // One site against several on the sink (the collector's own cost, where a per-site
    // cost would show) and on the embedded store: `--site-runs` alternating pairs, best of
    // each, since one run of the sink lasts about a second.
    let mut multi = Vec::new();
    if args.sites > 1 {
        let dir = tempfile::tempdir()?;
        let (config, keys) = sites_config(dir.path(), args.sites)?;
        let config = config.to_string_lossy().to_string();
        let n = args.sites;
        for (store, label) in [("sink", "in-memory sink"), ("embedded", "embedded")] {
            let (mut one_best, mut many_best) = (0.0f64, None::<Figure>);
            for run in 0..args.site_runs.max(1) {
                for several in [false, true] {
                    let data = dir.path().join(format!("data-{store}-{run}-{several}"));
                    let data = data.to_string_lossy().to_string();
                    let mut extra = vec![("MAIDIAN_DATA_DIR", data.as_str())];
                    if store == "sink" {
                        extra.push(("MAIDIAN_STORE", "sink"));
                    }
                    if several {
                        extra.push(("MAIDIAN_CONFIG", config.as_str()));
                    }
                    let (name, keys) = if several {
                        (format!("collector -> {label}, {n} sites"), keys.clone())
                    } else {
                        (format!("collector -> {label}, 1 site"), one.clone())
                    };
                    let (f, collector) =
                        through_collector(&args, base_env(&extra), &name, &keys).await?;
                    collector.terminate().await?;
                    if !several {
                        one_best = one_best.max(f.rate());
                    } else if many_best.as_ref().is_none_or(|b| f.rate() > b.rate()) {
                        many_best = Some(f);
                    }
                }
            }
            if let Some(f) = many_best {
                multi.push((f, one_best));
            }
        }
    }

    let db = fresh_db_name("bench_collector");
    let env = base_env(&[
        ("MAIDIAN_MONGODB_URI", uri.as_str()),
        ("MAIDIAN_DATABASE", db.as_str()),
    ]);
    let (via_db, collector) = through_collector(
        &args,
        env,
        "collector -> FerretDB, HTTP batches of 20",
        &one,
    )
    .await?;
    let client = mongodb::Client::with_uri_str(&uri).await?;
    let stored = client
        .database(&db)
        .collection::<Document>("events")
        .count_documents(Document::new())
        .await?;
    if stored as usize != args.events {
        bail!("collector stored {stored} of {} events", args.events);
    }
    // Every event is stored (checked above); now the rollup consumer catches up.
    let db_drain = drain(
        &collector,
        Duration::from_secs(args.drain_timeout),
        via_db.peak_rss_mb,
    )
    .await?;
    let rolled =
        maidian_analytics::store::Store::open(&maidian_analytics::store::StoreConfig::Mongo(
            maidian_analytics::store::MongoConfig::at_uri(uri.clone(), db.clone()),
        ))
        .await?
        .rollup_status()
        .await?
        .events;
    println!(
        "FerretDB rollups: {rolled} of {} events rolled up {:.0} s after the load ended",
        args.events,
        db_drain.waited.as_secs_f64()
    );
    drop(collector);
    client.database(&db).drop().await?;

    let ceiling = raw20.rate().max(raw500.rate());
    println!(
        "{:<44} {:>9} {:>9} {:>12} {:>10}",
        "scenario", "events", "seconds", "events/s", "vs ceiling"
    );
    for f in [&raw20, &raw500, &via_db, &via_sink, &via_embedded] {
        println!(
            "{:<44} {:>9} {:>9.2} {:>12.0} {:>9.2}x",
            f.name,
            f.events,
            f.elapsed.as_secs_f64(),
            f.rate(),
            f.rate() / ceiling
        );
    }
    println!(
        "collector / raw ceiling = {:.2}   (goal >= 0.90)",
        via_db.rate() / ceiling
    );
    println!(
        "{:<28} {:>14} {:>16} {:>18} {:>14}",
        "rollups after the load", "lag at end s", "drained in s", "rolled up ev/s", "peak RSS MB"
    );
    for (name, d, f) in [
        ("FerretDB", &db_drain, &via_db),
        ("embedded", &embedded_drain, &via_embedded),
    ] {
        let drained = d.to_zero.map_or("not in time".to_string(), |t| {
            format!("{:.1}", t.as_secs_f64())
        });
        // Rolled up per second over load + drain: the consumer ran from the first event on.
        let rate = d
            .to_zero
            .map_or(0.0, |t| f.events as f64 / (f.elapsed + t).as_secs_f64());
        println!(
            "{name:<28} {:>14.1} {:>16} {:>18.0} {:>14.0}",
            d.lag_at_end, drained, rate, d.peak_rss_mb
        );
    }
    println!(
        "collector overhead per event = {:.1} µs (sink run, {} connections)",
        1e6 / via_sink.rate(),
        args.concurrency
    );
    if !multi.is_empty() {
        println!(
            "{:<44} {:>12} {:>18}",
            format!("several sites (best of {} runs)", args.site_runs.max(1)),
            "events/s",
            "vs one site"
        );
        for (f, single) in &multi {
            println!(
                "{:<44} {:>12.0} {:>17.3}x",
                f.name,
                f.rate(),
                f.rate() / single
            );
        }
    }
    Ok(())
}

/// A config file declaring `n` sites (the seed keys' `default` and `n - 1` more, half of them
/// in Asia/Shanghai) and the write key of each.
fn sites_config(dir: &std::path::Path, n: usize) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let mut toml = String::from("[tracking_api]\nadmin_key = \"bench-admin\"\n");
    let mut keys = vec![WRITE_KEY.to_string()];
    for i in 1..n {
        let zone = if i % 2 == 0 { "UTC" } else { "Asia/Shanghai" };
        toml.push_str(&format!(
            "[[sites]]\nid = \"site{i}\"\nwrite_key = \"bench-write-{i}\"\nread_key = \"bench-read-{i}\"\ntimezone = \"{zone}\"\n"
        ));
        keys.push(format!("bench-write-{i}"));
    }
    let path = dir.join("sites.toml");
    std::fs::write(&path, toml)?;
    Ok((path, keys))
}

/// The embedded collector under the same load from `args.visitors` and from `many` visitors:
/// HTTP ingest rate, rollup drain after the load, events rolled up per second over both, and
/// peak RSS; best of `--site-runs` alternating runs.
async fn compare_visitors(args: &Args, many: usize, keys: &[String]) -> anyhow::Result<()> {
    // (load events/s, drain s, rolled up events/s, peak RSS MB), best of the runs.
    let mut best = [(0.0f64, f64::MAX, 0.0f64, 0.0f64); 2];
    for _ in 0..args.site_runs.max(1) {
        for (k, visitors) in [args.visitors, many].into_iter().enumerate() {
            let dir = tempfile::tempdir()?;
            let data_dir = dir.path().to_string_lossy().to_string();
            let env = base_env(&[("MAIDIAN_DATA_DIR", data_dir.as_str())]);
            let run = Args {
                visitors,
                ..args.clone()
            };
            let name = format!("embedded, {visitors} visitors");
            let (f, collector) = through_collector(&run, env, &name, keys).await?;
            let d = drain(
                &collector,
                Duration::from_secs(args.drain_timeout),
                f.peak_rss_mb,
            )
            .await?;
            collector.terminate().await?;
            let Some(to_zero) = d.to_zero else {
                bail!("{name}: the rollups did not catch up in {:?}", d.waited);
            };
            let b = &mut best[k];
            b.0 = b.0.max(f.rate());
            b.1 = b.1.min(to_zero.as_secs_f64());
            b.2 =
                b.2.max(f.events as f64 / (f.elapsed + to_zero).as_secs_f64());
            b.3 = b.3.max(d.peak_rss_mb);
        }
    }
    println!(
        "{:<28} {:>14} {:>12} {:>18} {:>12}",
        "embedded collector", "ingest ev/s", "drain s", "rolled up ev/s", "peak RSS MB"
    );
    for (visitors, b) in [args.visitors, many].into_iter().zip(best) {
        println!(
            "{:<28} {:>14.0} {:>12.1} {:>18.0} {:>12.0}",
            format!("{visitors} visitors"),
            b.0,
            b.1,
            b.2,
            b.3
        );
    }
    println!(
        "{many} / {} visitors: ingest {:.2}x, rolled up {:.2}x   (goal >= 0.80)",
        args.visitors,
        best[1].0 / best[0].0,
        best[1].2 / best[0].2
    );
    Ok(())
}
