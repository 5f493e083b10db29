//! `maidian-collector`: parse config, init tracing, open the store, bind, serve until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use maidian_analytics::store::Store;
use maidian_collector::config::Config;
use maidian_collector::writer::Sink;
use tracing_subscriber::EnvFilter;

/// maidian's tracking collector. Settings come from the config file, then MAIDIAN_* environment
/// variables, then these flags.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML config file (sections [mongodb], [tracking_api], [storage], [limits], [writer]).
    #[arg(long, env = "MAIDIAN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:5000).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory of the embedded store, used when no MongoDB is configured.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn load(args: &Args) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(listen) = args.listen {
        config.tracking_api.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.storage.data_dir = dir.clone();
    }
    config.validate()?;
    Ok(config)
}

/// Where ingest is written: the store, or with `MAIDIAN_STORE=sink` in the benchmark's build
/// (feature `bench-sink`) nowhere.
fn sink_of(store: &std::sync::Arc<Store>) -> anyhow::Result<std::sync::Arc<dyn Sink>> {
    match std::env::var("MAIDIAN_STORE").as_deref() {
        Err(_) | Ok("") | Ok("auto") => Ok(store.clone()),
        #[cfg(feature = "bench-sink")]
        Ok("sink") => Ok(std::sync::Arc::new(maidian_collector::writer::Discard)),
        Ok(other) => anyhow::bail!("invalid value for MAIDIAN_STORE: {other:?} (expected auto)"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; draining");
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("maidian-collector: {e:#}");
        std::process::exit(2);
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    // MAIDIAN_LOG_FORMAT=json: one JSON object per line, for log collectors.
    match std::env::var("MAIDIAN_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("") | Ok("text") | Err(_) => logs.init(),
        Ok(other) => {
            logs.init();
            tracing::warn!(
                format = other,
                "MAIDIAN_LOG_FORMAT is text or json; logging text"
            );
        }
    }
    let config = load(&args)?;
    let store_config = config.store_config();
    // MongoDB may come up after the collector (an orchestrator's start order does not
    // matter): until it answers, ingest gets 503 and /api/health says why.
    let store = Store::open_lazily(&store_config, std::time::Duration::from_secs(2))
        .await
        .with_context(|| format!("cannot open the store ({store_config})"))?;
    let store = std::sync::Arc::new(store);
    let sink = sink_of(&store)?;
    let listener = tokio::net::TcpListener::bind(config.tracking_api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.tracking_api.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = store.kind(), "collector listening");
    // One plain line on stdout that scripts and tests wait for.
    println!("maidian-collector listening on http://{addr}");
    maidian_collector::serve_into(listener, config, store, sink, shutdown_signal()).await;
    Ok(())
}
