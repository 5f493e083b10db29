//! Prometheus metrics (`prometheus-client`, the Prometheus project's own Rust client: no global
//! registry, no dependencies beyond number formatting), served in the text exposition format
//! at `/metrics` on a listener of its own (`[metrics] listen`), never on the public port.
//!
//! Counters are bumped where the events are decided (handlers, writer); the store's health,
//! the rollup lag and the process figures are read when the endpoint is scraped, so they are
//! never stale.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use maidian_analytics::store::{within, Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// How long a store probe (`/api/health`, a metrics scrape) may take in all: under 2 s, so
/// that health answers within 2 s with its own work included.
pub const PROBE_LIMIT: Duration = Duration::from_millis(1_500);

/// What a store probe found.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// The store answered a ping.
    pub up: bool,
    /// How far the rollups trail the stored events; `None` when the store could not tell in
    /// time.
    pub lag: Option<f64>,
}

/// Every metric of the collector.
pub struct Metrics {
    registry: Registry,
    /// Events in ingest requests whose body was read and decoded.
    pub received: Counter,
    /// Events newly stored.
    pub stored: Counter,
    /// Events already stored (a resend), answered as deduplicated.
    pub deduplicated: Counter,
    /// Events refused, by the code of their rejection.
    pub rejected: Family<CodeLabel, Counter>,
    pub http_requests: Family<RouteStatus, Counter>,
    pub http_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    pub store_write: Histogram,
    /// Events waiting for or in a write.
    pub writer_queue: Gauge,
    rollup_lag: Gauge<f64, AtomicU64>,
    store_up: Gauge,
    /// Store probes (health, scrapes) that failed, by why: `timeout` or `error`.
    store_probe_failures: Family<ReasonLabel, Counter>,
    resident_memory: Gauge,
    cpu_seconds: Gauge<f64, AtomicU64>,
    open_fds: Gauge,
    start_time: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            received: Counter::default(),
            stored: Counter::default(),
            deduplicated: Counter::default(),
            rejected: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds_histogram),
            store_write: seconds_histogram(),
            writer_queue: Gauge::default(),
            rollup_lag: Gauge::default(),
            store_up: Gauge::default(),
            store_probe_failures: Family::default(),
            resident_memory: Gauge::default(),
            cpu_seconds: Gauge::default(),
            open_fds: Gauge::default(),
            start_time: Gauge::default(),
        };
        registry.register(
            "maidian_events_received",
            "Events in ingest requests whose body was decoded",
            m.received.clone(),
        );
        registry.register(
            "maidian_events_stored",
            "Events newly stored",
            m.stored.clone(),
        );
        registry.register(
            "maidian_events_deduplicated",
            "Events already stored (resent), answered as deduplicated",
            m.deduplicated.clone(),
        );
        registry.register(
            "maidian_events_rejected",
            "Events refused, by rejection code",
            m.rejected.clone(),
        );
        registry.register(
            "maidian_http_requests",
            "HTTP requests answered, by route and status",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "maidian_http_request_duration",
            "Time from a request's head to its answer, by route",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register_with_unit(
            "maidian_store_write_duration",
            "Time of one grouped write to the store",
            Unit::Seconds,
            m.store_write.clone(),
        );
        registry.register(
            "maidian_writer_queue_events",
            "Events waiting for or in a store write",
            m.writer_queue.clone(),
        );
        registry.register_with_unit(
            "maidian_rollup_lag",
            "How far the rollups trail the newest stored event",
            Unit::Seconds,
            m.rollup_lag.clone(),
        );
        registry.register(
            "maidian_store_up",
            "1 when the store answers a ping, else 0",
            m.store_up.clone(),
        );
        registry.register(
            "maidian_store_probe_failures",
            "Store probes (health checks, scrapes) that failed, by reason (timeout, error)",
            m.store_probe_failures.clone(),
        );
        // Process metrics keep their conventional names.
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            m.resident_memory.clone(),
        );
        registry.register_with_unit(
            "process_cpu",
            "User and system CPU time spent",
            Unit::Seconds,
            m.cpu_seconds.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            m.open_fds.clone(),
        );
        registry.register_with_unit(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Unit::Seconds,
            m.start_time.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabel { route })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts `n` events rejected with `code`.
    pub fn reject(&self, code: &str, n: u64) {
        self.rejected
            .get_or_create(&CodeLabel { code: code.into() })
            .inc_by(n);
    }

    /// Asks the store whether it answers and how far its rollups trail, both within
    /// [`PROBE_LIMIT`] in all (a MongoDB that is down would otherwise hold the caller for the
    /// driver's whole server selection timeout), and records the answer: `maidian_store_up`,
    /// the lag, and a failure's reason. The failure's detail (the driver's text, which names
    /// the database's host) goes to the log only.
    pub async fn probe(&self, store: &Store) -> Probe {
        // Side by side, so both end within the one limit.
        let (ping, status) = tokio::join!(
            within(PROBE_LIMIT, store.ping()),
            within(PROBE_LIMIT, store.rollup_status()),
        );
        let up = match ping {
            Ok(()) => true,
            Err(e) => {
                let reason = match e {
                    StoreError::Timeout(_) => "timeout",
                    _ => "error",
                };
                tracing::warn!(error = %e, reason, "store probe: the store does not answer");
                self.store_probe_failures
                    .get_or_create(&ReasonLabel { reason })
                    .inc();
                false
            }
        };
        self.store_up.set(i64::from(up));
        let lag = match status {
            Ok(s) if up => Some(s.lag_seconds),
            _ => None,
        };
        if let Some(lag) = lag {
            self.rollup_lag.set(lag);
        }
        Probe { up, lag }
    }

    /// The text exposition, with the store's and the process's figures read now.
    pub async fn render(&self, store: &Store) -> String {
        self.probe(store).await;
        self.read_process();
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// Linux's `/proc/self`: RSS, CPU time, open descriptors, start time. Elsewhere they stay 0.
    fn read_process(&self) {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command name (which may hold spaces) in parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime 14, stime 15, starttime 22, rss 24 in proc(5) numbering; `rest` starts at 3.
        const TICKS: f64 = 100.0;
        const PAGE: f64 = 4096.0;
        self.cpu_seconds.set((num(11) + num(12)) / TICKS);
        self.resident_memory.set((num(21) * PAGE) as i64);
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        self.start_time.set((boot + num(19) / TICKS) as i64);
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
    }
}

/// The route label of a request path: a fixed set, so that no client can grow the label space.
pub fn route_of(path: &str) -> &'static str {
    match path {
        "/api/track/event" => "track_event",
        "/api/track/pageview" => "track_pageview",
        "/api/track/batch" => "track_batch",
        "/api/health" => "health",
        "/api/sites" => "sites",
        "/api/report" => "report",
        "/api/export/events.csv" => "export",
        "/api/privacy/forget" => "forget",
        p if p.starts_with("/api/stats/") => "stats",
        p if p.starts_with("/api/analytics/") => "analytics",
        p if p.starts_with("/dashboard") => "dashboard",
        p if p.starts_with("/demo/") => "demo",
        p if p.starts_with("/sdk/") || p.ends_with(".js") || p.ends_with(".wasm") => "sdk",
        _ => "other",
    }
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, store: Arc<Store>) {
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, store) = (metrics.clone(), store.clone());
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (metrics, store) = (metrics.clone(), store.clone());
            async move {
                let res = if req.uri().path() == "/metrics" && req.method() == hyper::Method::GET {
                    Response::builder()
                        .header(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .body(metrics.render(&store).await)
                } else {
                    Response::builder()
                        .status(404)
                        .body("only GET /metrics here\n".to_string())
                };
                Ok::<_, Infallible>(res.unwrap_or_default())
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// Binds the metrics listener, or says why not.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
