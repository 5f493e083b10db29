//! Data lifecycle benchmark: simulated events written to a store and rolled up, then the cost
//! of a visitor's access request and erasure, side by side with the alternative an erasure
//! would otherwise need (a rebuild of every rollup from the remaining events), and the rate at
//! which retention deletes expired raw events, side by side with the rate they were written.
//! Run through `bench/lifecycle.sh`.

use std::time::{Duration, Instant};

use clap::Parser;
use maidian_analytics::consumer::{self, ConsumerConfig};
use maidian_analytics::simulate::Simulation;
use maidian_analytics::site::DEFAULT_SITE;
use maidian_analytics::store::{MongoConfig, Store, StoreConfig};
use maidian_testkit::{fresh_db_name, mongodb_uri};

#[derive(Parser)]
struct Args {
    /// Events in the embedded store.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events in FerretDB (it rolls up slowly: see BENCHMARKS.md); 0 skips it.
    #[arg(long, default_value_t = 5_000)]
    ferret_events: usize,
    /// Days the visits spread over; retention then keeps the newer half.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Visitors erased (each timed).
    #[arg(long, default_value_t = 5)]
    visitors: usize,
}

struct Figures {
    store: &'static str,
    events: usize,
    write: Duration,
    access: Duration,
    forget: Duration,
    forgotten: u64,
    rebuild: Duration,
    expired: u64,
    expire: Duration,
}

async fn run(store: Store, events: usize, args: &Args) -> anyhow::Result<Figures> {
    let now = consumer::now_ms();
    let mut cfg = ConsumerConfig::new(consumer::owner_name("bench"));
    cfg.safety_lag = Duration::ZERO;
    let started = Instant::now();
    let mut sim = Simulation::new(7, now, args.days);
    let (mut written, mut v) = (0usize, 0u64);
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    while written < events {
        let evs = sim.visitor(v);
        if ids.len() < args.visitors && v % 7 == 3 {
            if let Some(id) = evs.iter().find_map(|e| e.visitor.clone()) {
                ids.push(id);
            }
        }
        v += 1;
        written += evs.len();
        batch.extend(evs);
        if batch.len() >= 5_000 {
            store.insert(&std::mem::take(&mut batch)).await?;
            eprint!("\r{}: wrote {written} events", store.kind());
        }
    }
    store.insert(&batch).await?;
    consumer::catch_up(&store, &cfg).await?;
    let write = started.elapsed();
    eprintln!();

    let started = Instant::now();
    for id in &ids {
        store.visitor_events(DEFAULT_SITE, id).await?;
    }
    let access = started.elapsed() / ids.len().max(1) as u32;
    let (mut forget, mut forgotten) = (Duration::ZERO, 0);
    for id in &ids {
        let t = Instant::now();
        let done = store
            .forget(&cfg, DEFAULT_SITE, id, Duration::from_secs(600), true)
            .await?;
        forget += t.elapsed();
        forgotten += done.events_removed;
    }
    let forget = forget / ids.len().max(1) as u32;
    let started = Instant::now();
    store.rebuild_rollups(&cfg, |_| {}).await?;
    let rebuild = started.elapsed();

    // Retention runs as the consumer's lease holder (the rebuild let the lease go).
    consumer::catch_up(&store, &cfg).await?;
    let cutoff = maidian_analytics::lifecycle::cutoff_ms(args.days / 2, now);
    let started = Instant::now();
    let mut expired = 0;
    loop {
        let n = store.expire_raw(&cfg, cutoff, 1_000).await?;
        if n == 0 {
            break;
        }
        expired += n;
    }
    Ok(Figures {
        store: store.kind(),
        events: written,
        write,
        access,
        forget,
        forgotten,
        rebuild,
        expired,
        expire: started.elapsed(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut all = vec![
        run(
            Store::open(&StoreConfig::Embedded {
                data_dir: dir.path().join("data"),
            })
            .await?,
            args.events,
            &args,
        )
        .await?,
    ];
    if args.ferret_events > 0 {
        let config = StoreConfig::Mongo(MongoConfig::at_uri(
            mongodb_uri()?,
            fresh_db_name("lifecycle"),
        ));
        all.push(run(Store::open(&config).await?, args.ferret_events, &args).await?);
    }
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let rate = |n: f64, d: Duration| format!("{:.0}/s", n / d.as_secs_f64().max(1e-9));
    println!(
        "| store | events | access, one visitor | erasure, one visitor | rebuild (the alternative) | erasure vs rebuild | retention deletes | write + roll up | deletes vs writes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &all {
        let deletes = f.expired as f64 / f.expire.as_secs_f64().max(1e-9);
        let writes = f.events as f64 / f.write.as_secs_f64().max(1e-9);
        println!(
            "| {} | {} | {} | {} ({} events each) | {} | {:.4}× | {} ({} events) | {} | {:.2}× |",
            f.store,
            f.events,
            ms(f.access),
            ms(f.forget),
            f.forgotten / args.visitors.max(1) as u64,
            ms(f.rebuild),
            f.forget.as_secs_f64() / f.rebuild.as_secs_f64().max(1e-9),
            rate(f.expired as f64, f.expire),
            f.expired,
            rate(f.events as f64, f.write),
            deletes / writes.max(1e-9),
        );
    }
    Ok(())
}
