//! The maidian collector: a warp service that takes tracking events over HTTP, stores each
//! exactly once, and answers statistics.
//!
//! # Layout
//! - [`config`]: the one documented `Config` (TOML file, `MAIDIAN_*` env, flags).
//! - [`routes`]: one `Filter` per route; [`handlers`]: one async fn per route.
//! - [`body`]: body size caps, gzip, content types; [`decode`]: the threads bodies decode on; [`validate`]: wire JSON → domain `Event`;
//!   [`query`]: a Stats API v2 query body → the engine's `Query` (issue 27: parsed, not yet answered).
//! - [`sites`]: the sites and whose key is which; [`auth`]: keys of requests → sites; [`error`]: `ApiError` → status + JSON.
//! - [`server`]: hyper with header, idle and drain timeouts and connection caps (in all and per client).
//! - [`peer`]: the client's address (trusted proxies), and what one client may hold at once.
//! - [`writer`]: groups concurrent requests into large unordered inserts, each bounded in time.
//! - [`metrics`]: the Prometheus metrics and the `/metrics` listener; [`redact`]: URL redaction,
//!   the `maidian-wire` crate the SDK links too.
//!
//! [`serve`] also runs the rollup consumer (`maidian_analytics::consumer`) as a task: it holds
//! the database's consumer lease or waits for it, so any number of collectors can share one
//! database.
//!
//! Storage lives in `maidian_analytics::store`; this crate only chooses and opens it.

pub mod auth;
pub mod body;
pub mod config;
pub mod decode;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod peer;
pub mod query;
/// URL redaction, the very crate the browser SDK links.
pub use maidian_wire::redact;
pub mod routes;
pub mod server;
pub mod sites;
pub mod validate;
pub mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use maidian_analytics::store::Store;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::handlers::App;
use crate::writer::Writer;

/// Serves on an already-bound `listener` until `shutdown` resolves, then finishes in-flight
/// requests (for at most `limits.drain_timeout_ms`) and drains the writer, so that every
/// answered request is stored.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    store: Arc<Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_into(listener, config, store.clone(), store, shutdown).await
}

/// [`serve`], with ingest written into `sink` instead of the store (the ingest benchmark's
/// [`writer::Discard`]); everything else reads `store`.
pub async fn serve_into(
    listener: TcpListener,
    mut config: Config,
    store: Arc<Store>,
    sink: Arc<dyn writer::Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // An event older than the retention would be deleted again, after its rollups counted it
    // a second time: refused at ingest instead.
    if let Some(days) = config.retention.raw_days {
        let age = &mut config.limits.max_event_age_days;
        *age = (*age).min(days);
    }
    for key in config.short_keys() {
        tracing::warn!(
            key = %key,
            min_chars = config::STRONG_KEY_CHARS,
            "a key is shorter than 16 characters and easy to guess; choose a longer random one"
        );
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let (writer, writer_task) = Writer::spawn(sink, &config.writer, metrics.clone());
    let app = Arc::new(App::new(config, store.clone(), writer, metrics.clone()));
    // Before the consumer starts: it counts days in the registered time zones.
    sites::register(&app.sites, &store).await;
    let config = &app.config;
    let metrics_task = match config.metrics.listen {
        None => None,
        Some(addr) => match metrics::bind(addr).await {
            Ok(l) => {
                let local = l.local_addr().map_or(addr, |a| a);
                tracing::info!(%local, "metrics listening");
                println!("maidian-collector metrics on http://{local}/metrics");
                Some(tokio::spawn(metrics::serve(
                    l,
                    metrics.clone(),
                    store.clone(),
                )))
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for metrics; serving without them");
                None
            }
        },
    };
    let (stop_consumer, consumer_stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = {
        let store = store.clone();
        let cfg = config.rollups.consumer(
            maidian_analytics::consumer::owner_name("maidian-collector"),
            &config.retention,
        );
        tokio::spawn(async move {
            let stop = async {
                let _ = consumer_stopped.await;
            };
            maidian_analytics::consumer::run(&store, cfg, stop).await;
        })
    };
    let limits = server::ConnLimits {
        header_timeout: Duration::from_millis(config.limits.header_timeout_ms),
        idle_timeout: Duration::from_millis(config.limits.idle_timeout_ms),
        max_connections: config.limits.max_connections,
        max_per_client: config.limits.max_connections_per_client,
        trusted: app.trusted.clone(),
        drain_timeout: Duration::from_millis(config.limits.drain_timeout_ms),
    };
    // The server's filters hold the only `App`, and with it every `Writer`.
    server::run(listener, routes::routes(app), limits, shutdown).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    // The server and its filters, which held every Writer, are gone: drain the queue.
    if let Err(e) = writer_task.await {
        tracing::error!(error = %e, "writer task failed");
    }
    // The consumer gives its lease up so another collector takes over at once; what it has
    // not rolled up stays in the log for the next consumer.
    let _ = stop_consumer.send(());
    if let Err(e) = consumer.await {
        tracing::error!(error = %e, "rollup consumer failed");
    }
    tracing::info!("collector stopped");
}
