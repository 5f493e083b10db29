//! Analytics benchmark: about 1 000 000 simulated events written straight to a store, rolled
//! up by the rollup consumer (as a collector does), then summary, a 4-step funnel and 30-day
//! retention timed from the engine, side by side with the naive way (read every raw event of
//! the period and compute from that). Run through `bench/analytics.sh`.

use maidian_analytics::engine::Scope;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use maidian_analytics::consumer::{self, ConsumerConfig};
use maidian_analytics::engine::{funnel, retention, summary};
use maidian_analytics::event::Day;
use maidian_analytics::simulate::Simulation;
use maidian_analytics::stats::Period;
use maidian_analytics::store::{MongoConfig, Store, StoreConfig};
use maidian_testkit::{fresh_db_name, mongodb_uri};

#[derive(Parser)]
struct Args {
    /// Roughly how many events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Days the visits spread over (and the period analysed).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// `mongo` (FerretDB of the run) or `embedded`.
    #[arg(long, default_value = "mongo")]
    store: String,
    /// Timed repetitions of each query (the best is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const FUNNEL: &str = "page_view,click,form_submit,purchase";

async fn best<T, F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f().await?;
        let d = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, v));
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("no run"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let config = match args.store.as_str() {
        "mongo" => StoreConfig::Mongo(MongoConfig {
            uri: Some(mongodb_uri()?),
            host: String::new(),
            port: 0,
            username: None,
            password: None,
            database: fresh_db_name("bench_analytics"),
            timeout: Duration::from_secs(30),
        }),
        "embedded" => StoreConfig::Embedded {
            data_dir: dir.path().to_path_buf(),
        },
        other => bail!("--store: mongo or embedded, not {other}"),
    };
    let store = Store::open(&config).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut sim = Simulation::new(42, now, args.days);

    // Write: batches of 5 000 events, then the rollup consumer catches up (no safety lag:
    // nothing else writes).
    let started = Instant::now();
    let (mut written, mut visitors) = (0usize, 0u64);
    let mut batch = Vec::with_capacity(6_000);
    while written < args.events {
        batch.extend(sim.visitor(visitors));
        visitors += 1;
        if batch.len() >= 5_000 {
            store.insert(&batch).await?;
            written += batch.len();
            batch.clear();
            eprint!("\rwrote {written} events");
        }
    }
    let write_time = started.elapsed();
    eprintln!();
    let mut cfg = ConsumerConfig::new(consumer::owner_name("bench"));
    cfg.safety_lag = Duration::ZERO;
    let started = Instant::now();
    let rolled = consumer::catch_up(&store, &cfg).await?;
    let rollup_time = started.elapsed();
    println!(
        "analytics benchmark: {written} events of {visitors} visitors over {} days, store {}, {} cores",
        args.days,
        store.kind(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "write (insert, batches of 5000): {:.1} s, {:.0} events/s",
        write_time.as_secs_f64(),
        written as f64 / write_time.as_secs_f64()
    );
    println!(
        "rollup consumer (chunks of {} events, ten times that on FerretDB): {rolled} events in {:.1} s, {:.0} events/s",
        cfg.chunk_events,
        rollup_time.as_secs_f64(),
        rolled as f64 / rollup_time.as_secs_f64()
    );

    let p = Period::last_days(args.days, Day::from_millis(now).unwrap_or_default());
    let f = funnel::Funnel::parse(FUNNEL, 86_400_000)?;
    let runs = args.runs;

    let (engine_summary, s1) = best(runs, || async {
        Ok(summary::summary(&store, p, 10, &Scope::default()).await?)
    })
    .await?;
    let (engine_funnel, f1) = best(runs, || async {
        Ok(funnel::funnel(&store, &f, p, &Scope::default()).await?)
    })
    .await?;
    let (engine_retention, r1) = best(runs, || async {
        Ok(retention::retention(&store, p, &Scope::default()).await?)
    })
    .await?;

    // Naive: every raw event of the period, then the same arithmetic.
    let (naive_summary, s2) = best(runs, || async {
        let events = store.events_between(p.since, p.until).await?;
        Ok(summary::summarize(
            p,
            &summary::Inputs::from_events(&events),
            10,
        ))
    })
    .await?;
    let (naive_funnel, f2) = best(runs, || async {
        let events = store.events_between(p.since, p.until).await?;
        Ok(funnel::compute(&f, p, &events))
    })
    .await?;
    let (naive_retention, r2) = best(runs, || async {
        let events = store.events_between(p.since, p.until).await?;
        Ok(retention::from_events(p, &events))
    })
    .await?;

    // Both ways must agree, or the comparison means nothing.
    if s1.overview != s2.overview
        || f1.funnel_steps != f2.funnel_steps
        || r1.retention_data != r2.retention_data
    {
        bail!("engine and naive answers differ");
    }
    println!(
        "{:<28} {:>12} {:>12} {:>9}",
        "query (best of runs)", "engine s", "naive s", "speed-up"
    );
    for (name, e, n) in [
        ("summary, 30 days", engine_summary, naive_summary),
        ("funnel, 4 steps, 30 days", engine_funnel, naive_funnel),
        ("retention, 30 days", engine_retention, naive_retention),
    ] {
        println!(
            "{name:<28} {:>12.3} {:>12.3} {:>8.1}x",
            e.as_secs_f64(),
            n.as_secs_f64(),
            n.as_secs_f64() / e.as_secs_f64()
        );
    }
    println!(
        "answers agree: {} events, {} active users, funnel {:?}, day-1 retention {}%",
        s1.overview.total_events,
        s1.overview.active_users,
        f1.funnel_steps.iter().map(|s| s.users).collect::<Vec<_>>(),
        r1.retention_data.get(1).map_or(0.0, |d| d.retention_rate)
    );
    println!("goal: each engine answer under 1 s");
    Ok(())
}
