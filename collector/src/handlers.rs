//! One async function per route, taking exactly what it needs and answering with a reply or
//! an [`ApiError`].

use std::sync::Arc;

use maidian_analytics::engine::answer::{self, Figure, Question};
use maidian_analytics::engine::{self, funnel, Scope};
use maidian_analytics::event::PAGE_VIEW;
use maidian_analytics::site::Zone;
use maidian_analytics::stats::Period;
use maidian_analytics::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::{self, Response};
use warp::Reply;

use crate::auth;
use crate::body;
use crate::config::Config;
use crate::decode::{BodyBudget, BodyCharge, DecodePool};
use crate::error::{ApiError, Rejected};
use crate::metrics::Metrics;
use crate::peer::{Held, PerKey, TrustedProxies};
use crate::sites::{Reader, Site, Sites};
use crate::validate::{self, Context};
use crate::writer::Writer;

/// What the handlers share.
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub writer: Writer,
    /// The threads that inflate and parse bodies (`limits.decode_concurrency`).
    pub decoder: DecodePool,
    /// Bytes of bodies read or waiting to be decoded (`limits.max_body_bytes_in_flight`, and
    /// per client).
    pub bodies: BodyBudget,
    /// `tracking_api.trusted_proxies`, parsed once.
    pub trusted: TrustedProxies,
    /// Heavy reads (funnel, report, exports) in flight per read key
    /// (`limits.max_heavy_reads_per_key`).
    pub heavy: PerKey<Reader>,
    /// `privacy.deny_list()`, computed once.
    pub redact: Option<String>,
    /// The sites and their keys.
    pub sites: Sites,
    pub metrics: Arc<Metrics>,
}

impl App {
    pub fn new(config: Config, store: Arc<Store>, writer: Writer, metrics: Arc<Metrics>) -> App {
        let threads = match config.limits.decode_concurrency {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        App {
            decoder: DecodePool::new(threads),
            bodies: BodyBudget::new(
                config.limits.max_body_bytes_in_flight,
                config.limits.max_body_bytes_in_flight_per_client,
            ),
            // Checked by `Config::validate`; an invalid list trusts nobody.
            trusted: TrustedProxies::parse(&config.tracking_api.trusted_proxies)
                .unwrap_or_default(),
            heavy: PerKey::new(config.limits.max_heavy_reads_per_key),
            redact: config.privacy.deny_list(),
            sites: Sites::from_config(&config),
            metrics,
            config,
            store,
            writer,
        }
    }
}

/// An ingest request as it arrived: query string, headers, raw body.
pub struct Ingest {
    pub query: IngestQuery,
    pub headers: HeaderMap,
    /// The body as read; an oversize or broken body is answered as the request's error.
    pub body: Result<bytes::Bytes, ApiError>,
    /// The site, when the header or query key (or a keyless collector) chose it before the
    /// body was read; else the body's `api_key` chooses.
    pub site: Option<usize>,
    /// The body's share of [`App::bodies`], held until it is decoded.
    pub reserved: BodyCharge,
}

#[derive(Debug, Default, Deserialize)]
pub struct IngestQuery {
    pub api_key: Option<String>,
}

/// What every read request names: the site, the period, bots in or out.
#[derive(Debug, Default, Deserialize)]
pub struct ReadQuery {
    /// The site to read (the admin key must name one when there are several).
    pub site: Option<String>,
    pub days: Option<String>,
    /// `true` counts events flagged as bots' too.
    pub include_bots: Option<String>,
}

/// Query of `/api/stats/*` and the CSV export.
#[derive(Debug, Default, Deserialize)]
pub struct DaysQuery {
    #[serde(flatten)]
    pub read: ReadQuery,
    /// CSV export: `1` writes text cells exactly as stored (see `export::Cells`).
    pub raw: Option<String>,
    /// CSV export: every event held about this visitor (all days) instead of a period.
    pub visitor: Option<String>,
    /// Page lists: rows per answer (1..=1000, 100 by default).
    pub limit: Option<String>,
    /// Page lists: which page of `limit` rows (from 1).
    pub page: Option<String>,
}

/// Query of `/api/analytics/*`: the period, plus what one figure needs.
#[derive(Debug, Default, Deserialize)]
pub struct AnalyticsQuery {
    #[serde(flatten)]
    pub read: ReadQuery,
    /// Funnel steps: `page_view,click@/pricing,purchase`.
    pub steps: Option<String>,
    /// Funnel conversion window: seconds, or `30m`, `2h`, `1d`.
    pub window: Option<String>,
    /// Rows in each top list of the summary.
    pub top: Option<String>,
    /// Funnel: only visitors whose first visit came from this channel.
    pub channel: Option<String>,
    /// Funnel: only visitors whose first visit came from this `utm_campaign`.
    pub campaign: Option<String>,
}

fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Decodes and parses the body on the decode threads (the async workers keep answering), then
/// picks the site by a write key sent in the body if none came before, and checks the
/// request's origin against it. Returns the body's object, the request's headers and the site.
async fn open_ingest(
    app: &Arc<App>,
    req: Ingest,
) -> Result<(Map<String, Value>, HeaderMap, &Site), ApiError> {
    let raw = req.body?;
    let obj = {
        let (decoding, headers) = (app.clone(), req.headers.clone());
        app.decoder
            .run(move || body::json_object(&headers, raw, &decoding.config.limits))
            .await
            .ok_or(ApiError::Unavailable)??
    };
    drop(req.reserved);
    let index = match req.site {
        Some(i) => i,
        None => app
            .sites
            .writer(obj.get("api_key").and_then(Value::as_str))?,
    };
    let site = app.sites.get(index).ok_or(ApiError::Unavailable)?;
    auth::check_origin(site, &req.headers)?;
    Ok((obj, req.headers, site))
}

/// What validating the events of one request needs: limits, redaction, clock skew (from
/// `sent_at`), and the request-wide bot signals (a browser `User-Agent`, `webdriver`).
fn context<'a>(
    app: &'a App,
    site: &'a Site,
    obj: &Map<String, Value>,
    headers: &'a HeaderMap,
    received_at: i64,
) -> Result<Context<'a>, ApiError> {
    let skew_ms =
        Context::skew_from(obj.get("sent_at"), received_at).map_err(ApiError::InvalidEvent)?;
    let request_agent = headers
        .get(warp::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|ua| ua.starts_with("Mozilla/"));
    Ok(Context {
        limits: &app.config.limits,
        site: &site.id,
        zone: &site.zone,
        redact: app.redact.as_deref(),
        page_params: &app.config.privacy.page_params,
        received_at,
        skew_ms,
        request_agent,
        webdriver: validate::webdriver(obj).map_err(ApiError::InvalidEvent)?,
    })
}

/// GET /api/health: 200 when the store answers, 503 within `metrics::PROBE_LIMIT` when it
/// does not. The public body says only `unreachable`: why goes to the log and `/metrics`.
pub async fn health(app: Arc<App>) -> Result<Response, std::convert::Infallible> {
    let probe = app.metrics.probe(&app.store).await;
    let status = match probe.up {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "status": if probe.up { "healthy" } else { "unhealthy" },
        "store": app.store.kind(),
        "database": if probe.up { "ok" } else { "unreachable" },
        // How far the rollups (every dashboard figure) trail the stored events; null when the
        // store cannot tell.
        "rollup_lag_seconds": probe.lag,
        "version": env!("CARGO_PKG_VERSION"),
    });
    Ok(reply::with_status(reply::json(&body), status).into_response())
}

/// POST /api/track/event and POST /api/track/pageview (`forced_type` = `page_view`).
pub async fn track_one(
    app: Arc<App>,
    forced_type: Option<&'static str>,
    req: Ingest,
) -> Result<Response, ApiError> {
    let app = &app;
    let received_at = now_millis();
    let (obj, headers, site) = open_ingest(app, req).await?;
    let cx = context(app, site, &obj, &headers, received_at)?;
    app.metrics.received.inc();
    let event = validate::event(&obj, &cx, forced_type).map_err(|i| {
        app.metrics.reject(i.code, 1);
        ApiError::InvalidEvent(i)
    })?;
    let event_id = event.event_id.clone();
    let written = app
        .writer
        .write(vec![event])
        .await
        .map_err(|_| ApiError::Unavailable)?;
    count_written(&app.metrics, &written);
    if !written.refused.is_empty() {
        return Err(ApiError::InvalidEvent(store_refused()));
    }
    Ok(reply::json(&json!({
        "status": "ok",
        "event_id": event_id,
        "deduplicated": written.deduplicated > 0,
    }))
    .into_response())
}

#[derive(Serialize)]
struct BatchAnswer {
    status: &'static str,
    received: usize,
    stored: usize,
    deduplicated: usize,
    rejected: Vec<Rejected>,
}

/// POST /api/track/batch
pub async fn track_batch(app: Arc<App>, req: Ingest) -> Result<Response, ApiError> {
    let app = &app;
    let received_at = now_millis();
    let (obj, headers, site) = open_ingest(app, req).await?;
    let items = match obj.get("events") {
        None | Some(Value::Null) => return Err(ApiError::InvalidBatch("events is required")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::InvalidBatch("events must be an array")),
    };
    let limit = app.config.limits.max_batch_events;
    if items.is_empty() {
        return Err(ApiError::InvalidBatch("events is empty"));
    }
    if items.len() > limit {
        return Err(ApiError::BatchTooLarge {
            len: items.len(),
            limit,
        });
    }
    let cx = context(app, site, &obj, &headers, received_at)?;
    app.metrics.received.inc_by(items.len() as u64);
    let mut events = Vec::with_capacity(items.len());
    // Where each of `events` was in the request.
    let mut positions = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let result = match item {
            Value::Object(o) => validate::event(o, &cx, None),
            _ => Err(crate::error::Invalid::new(
                "invalid_event",
                "each event must be a JSON object",
            )),
        };
        match result {
            Ok(e) => {
                events.push(e);
                positions.push(index);
            }
            Err(i) => {
                app.metrics.reject(i.code, 1);
                rejected.push(Rejected {
                    index,
                    code: i.code,
                    message: i.message,
                })
            }
        }
    }
    if events.is_empty() {
        return Err(ApiError::AllRejected(rejected));
    }
    let written = app
        .writer
        .write(events)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    count_written(&app.metrics, &written);
    for &index in written.refused.iter().filter_map(|i| positions.get(*i)) {
        let refused = store_refused();
        rejected.push(Rejected {
            index,
            code: refused.code,
            message: refused.message,
        });
    }
    rejected.sort_by_key(|r| r.index);
    if written.inserted + written.deduplicated == 0 {
        return Err(ApiError::AllRejected(rejected));
    }
    Ok(reply::json(&BatchAnswer {
        status: "ok",
        received: items.len(),
        stored: written.inserted,
        deduplicated: written.deduplicated,
        rejected,
    })
    .into_response())
}

/// Counts what the store did with a request's events.
fn count_written(metrics: &Metrics, written: &crate::writer::Written) {
    metrics.stored.inc_by(written.inserted as u64);
    metrics.deduplicated.inc_by(written.deduplicated as u64);
    if !written.refused.is_empty() {
        metrics.reject("store_refused", written.refused.len() as u64);
    }
}

/// An event that passed validation and that the store still refused, alone (the others of its
/// write are stored). Resending it cannot help, so it is a 4xx of that event.
fn store_refused() -> crate::error::Invalid {
    crate::error::Invalid::new(
        "store_refused",
        "the event store refused this event; it was not stored",
    )
}

/// A yes/no query parameter: `true`/`1` or `false`/`0`, absent or empty meaning no.
fn flag(name: &'static str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(bad(name, "must be true or false (1 or 0)")),
    }
}

/// What a read request reads: the site its key and `?site=` give, in that site's days, without
/// bots unless `include_bots=true`.
struct Reading<'a> {
    site: &'a Site,
    period: Period,
    scope: Scope,
}

fn reading<'a>(
    app: &'a App,
    headers: &HeaderMap,
    site: Option<&str>,
    days: Option<&str>,
    include_bots: Option<&str>,
) -> Result<Reading<'a>, ApiError> {
    let site = auth::check_read(&app.sites, headers, site)?;
    Ok(Reading {
        period: period_of(days, &site.zone)?,
        scope: Scope::site(&site.id).bots(flag("include_bots", include_bots)?),
        site,
    })
}

impl ReadQuery {
    fn reading<'a>(&self, app: &'a App, headers: &HeaderMap) -> Result<Reading<'a>, ApiError> {
        let (site, days) = (self.site.as_deref(), self.days.as_deref());
        reading(app, headers, site, days, self.include_bots.as_deref())
    }
}

/// `days` = 1..=366, 7 when absent: that many days of `zone`, today included.
fn period_of(days: Option<&str>, zone: &Zone) -> Result<Period, ApiError> {
    let days = whole_number(
        "days",
        days.map(str::trim),
        7,
        366,
        "must be a whole number from 1 to 366",
    )?;
    Ok(Period::recent(days as u32, zone))
}

/// A query parameter that is a whole number from 1 to `max`; `default` when absent or empty.
fn whole_number(
    name: &'static str,
    value: Option<&str>,
    default: usize,
    max: usize,
    message: &'static str,
) -> Result<usize, ApiError> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad(name, message)),
    }
}

/// A share of the request's read key's heavy reads (funnel, report, exports: each scans raw
/// events or many rollups), held until the answer is sent; past the share, 429 with
/// `Retry-After`, so one key cannot keep the store busy for everyone.
fn heavy_read(app: &App, headers: &HeaderMap) -> Result<Held<Reader>, ApiError> {
    let reader = auth::reader(&app.sites, headers)?;
    app.heavy.take(reader, 1).ok_or(ApiError::TooManyRequests {
        message:
            "too many heavy reads (funnel, report, export) in flight for this key; retry shortly",
        retry_after_secs: 2,
    })
}

fn store_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "stats query failed");
    ApiError::Unavailable
}

/// GET /api/stats/events?days=N
pub async fn stats_events(
    app: Arc<App>,
    headers: HeaderMap,
    q: DaysQuery,
) -> Result<Response, ApiError> {
    let r = q.read.reading(&app, &headers)?;
    let p = r.period;
    let rows = engine::stats::event_types(&app.store, p, &r.scope)
        .await
        .map_err(store_failed)?;
    let total: u64 = rows.iter().map(|r| r.count).sum();
    Ok(reply::json(
        &json!({ "site": r.site.id, "period": p, "total_events": total, "events": rows }),
    )
    .into_response())
}

/// GET /api/stats/pages?days=N
pub async fn stats_pages(
    app: Arc<App>,
    headers: HeaderMap,
    q: DaysQuery,
) -> Result<Response, ApiError> {
    let r = q.read.reading(&app, &headers)?;
    let p = r.period;
    let limit = whole_number(
        "limit",
        q.limit.as_deref(),
        engine::stats::DEFAULT_ROWS,
        engine::stats::MAX_ROWS,
        "must be a whole number from 1 to 1000",
    )?;
    let page = whole_number(
        "page",
        q.page.as_deref(),
        1,
        usize::MAX,
        "must be a whole number from 1",
    )?;
    let rows = engine::stats::pages(&app.store, p, &r.scope)
        .await
        .map_err(store_failed)?;
    let total: u64 = rows.iter().map(|r| r.views).sum();
    let (rows, paging) = engine::stats::paginate(rows, limit, page);
    Ok(reply::json(&json!({
        "site": r.site.id,
        "period": p,
        "event_type": PAGE_VIEW,
        "total_page_views": total,
        "total_rows": paging.total_rows,
        "limit": paging.limit,
        "page": paging.page,
        "pages": rows,
    }))
    .into_response())
}

/// The funnel of `steps` and `window` (default one day); `default_steps` when none is given.
fn funnel_of(
    q: &AnalyticsQuery,
    default_steps: &str,
) -> Result<maidian_analytics::engine::funnel::Funnel, ApiError> {
    use maidian_analytics::engine::funnel::{Funnel, FunnelError};
    let steps = q
        .steps
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(default_steps);
    let window = q
        .window
        .as_deref()
        .filter(|w| !w.is_empty())
        .unwrap_or("1d");
    Funnel::from_params(steps, window).map_err(|e| match e {
        FunnelError::BadWindow => bad("window", e.to_string()),
        _ => bad("steps", e.to_string()),
    })
}

fn bad(name: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadParam {
        name,
        message: message.into(),
    }
}

/// GET /api/analytics/summary, /funnel, /retention, /realtime, /vitals
pub async fn analytics(
    app: Arc<App>,
    figure: Figure,
    headers: HeaderMap,
    q: AnalyticsQuery,
) -> Result<Response, ApiError> {
    let (app, headers, q) = (&*app, &headers, &q);
    let r = q.read.reading(app, headers)?;
    let (period, scope) = (r.period, &r.scope);
    let top = || {
        let message = "must be a whole number from 1 to 100";
        whole_number("top", q.top.as_deref(), 10, 100, message)
    };
    // A funnel reads raw events: one of the heavy reads a key may run at once.
    let _heavy = match figure {
        Figure::Funnel => Some(heavy_read(app, headers)?),
        _ => None,
    };
    let question = match figure {
        Figure::Summary => Question::Summary {
            period,
            top: top()?,
        },
        Figure::Vitals => Question::Vitals {
            period,
            top: top()?,
        },
        Figure::Funnel => Question::Funnel {
            funnel: funnel_of(q, "")?,
            origin: funnel::Origin {
                channel: q.channel.clone().filter(|c| !c.is_empty()),
                campaign: q.campaign.clone().filter(|c| !c.is_empty()),
            },
            period,
        },
        Figure::Retention => Question::Retention { period },
        Figure::Realtime => Question::Realtime {
            now_ms: now_millis(),
        },
    };
    let answer = answer::answer(&app.store, &question, scope)
        .await
        .map_err(store_failed)?;
    Ok(reply::json(&answer).into_response())
}

/// See `lifecycle::raw_gone`.
async fn raw_gone(store: &Store, p: &Period) -> Result<Option<String>, ApiError> {
    store.raw_gone(p).await.map_err(store_failed)
}

/// `raw=1`: CSV cells exactly as stored (see `export::Cells`).
fn cells_of(q: &DaysQuery) -> Result<maidian_analytics::export::Cells, ApiError> {
    use maidian_analytics::export::Cells;
    Ok(match flag("raw", q.raw.as_deref())? {
        true => Cells::Raw,
        false => Cells::Spreadsheet,
    })
}

/// GET /api/export/events.csv?days=N: streamed, one page of events in memory at a time.
/// With `visitor=ID`: every event held about that visitor (see `lifecycle`), all days.
pub async fn export_csv(
    app: Arc<App>,
    headers: HeaderMap,
    q: DaysQuery,
) -> Result<Response, ApiError> {
    if let Some(v) = q.visitor.as_deref().filter(|v| !v.trim().is_empty()) {
        return export_visitor(&app, &headers, &q, v).await;
    }
    export_period(app, &headers, &q).await
}

async fn export_visitor(
    app: &App,
    headers: &HeaderMap,
    q: &DaysQuery,
    visitor: &str,
) -> Result<Response, ApiError> {
    let site = auth::check_read(&app.sites, headers, q.read.site.as_deref())?;
    use maidian_analytics::export;
    let cells = cells_of(q)?;
    let heavy = heavy_read(app, headers)?;
    let events = app
        .store
        .visitor_events(&site.id, visitor)
        .await
        .map_err(store_failed)?;
    // Streamed a thousand rows at a time: the file is never whole in memory. The body holds
    // the key's heavy-read share until its last byte is sent or the client goes away.
    let (mut events, mut head) = (events.into_iter(), Some(export::header()));
    let body = futures_util::stream::iter(std::iter::from_fn(move || {
        let _share = &heavy;
        let mut chunk = head.take().unwrap_or_default();
        chunk.extend(events.by_ref().take(1_000).map(|e| export::row(&e, cells)));
        (!chunk.is_empty()).then(|| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)))
    }));
    let name = format!("attachment; filename=\"visitor-{}.csv\"", site.id);
    let reply = warp::reply::stream(body);
    let reply = warp::reply::with_header(reply, "content-type", "text/csv; charset=utf-8");
    Ok(warp::reply::with_header(reply, "content-disposition", name).into_response())
}

/// How long an erasure call waits for the lease holder before it answers 503 `busy` (the
/// request stays queued and completes): well under `limits.idle_timeout_ms` (30 s by
/// default), which would otherwise close the waiting connection without an answer.
const FORGET_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// POST /api/privacy/forget `{"visitor": ID, "dry_run": false}` (admin key only), the site
/// as `?site=` or `"site"` when there are several: erases everything held about the visitor
/// in that site and answers what was removed; `dry_run` answers the linked ids and the events
/// that would go, erasing nothing.
pub async fn forget(
    app: Arc<App>,
    headers: HeaderMap,
    q: ReadQuery,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let (app, headers, q, body) = (&*app, &headers, &q, &body[..]);
    use maidian_analytics::lifecycle::{ClosureError, DryRun};
    use maidian_analytics::store::StoreError;
    if !matches!(auth::reader(&app.sites, headers)?, Reader::Admin) {
        return Err(ApiError::Forbidden(
            "erasure needs the admin key ([tracking_api] admin_key)",
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadJson(e.to_string()))?;
    let visitor = match v.get("visitor") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s.clone(),
        _ => {
            return Err(ApiError::BadParam {
                name: "visitor",
                message: "must be a non-empty string (a user id, anonymous id or session id) of at most 256 bytes".into(),
            })
        }
    };
    let dry_run = match v.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("dry_run", "must be true or false")),
    };
    let asked = q.site.as_deref().or(v.get("site").and_then(Value::as_str));
    let site = app.sites.readable(Reader::Admin, asked)?;
    let refused = |e: StoreError| {
        match e {
        StoreError::Busy(m) => ApiError::Busy(m),
        StoreError::Closure(ClosureError::Placeholder(_)) => bad(
            "visitor",
            "is a placeholder id (null, undefined, guest, ...) that many visitors share; it names nobody",
        ),
        StoreError::Closure(why) => ApiError::Unprocessable {
            code: "erasure_refused",
            message: why.to_string(),
        },
        StoreError::Refused(why) => ApiError::Unprocessable {
            code: "erasure_refused",
            message: why,
        },
        e => store_failed(e),
    }
    };
    let mut answer = if dry_run {
        let (names, events) = app
            .store
            .visitor_closure(&site.id, &visitor)
            .await
            .map_err(refused)?;
        serde_json::to_value(DryRun::of(&names, &events)).map_err(store_failed)?
    } else {
        let cfg = app.config.rollups.consumer(
            maidian_analytics::consumer::owner_name("maidian-erasure"),
            &crate::config::RetentionSection::default(),
        );
        let done = app
            .store
            .forget(&cfg, &site.id, &visitor, FORGET_WAIT, false)
            .await
            .map_err(refused)?;
        serde_json::to_value(&done).map_err(store_failed)?
    };
    answer["visitor"] = Value::String(visitor);
    answer["site"] = Value::String(site.id.clone());
    Ok(reply::json(&answer).into_response())
}

async fn export_period(
    app: Arc<App>,
    headers: &HeaderMap,
    q: &DaysQuery,
) -> Result<Response, ApiError> {
    use maidian_analytics::export;
    let (p, site) = {
        let (site, days) = (q.read.site.as_deref(), q.read.days.as_deref());
        let r = reading(&app, headers, site, days, None)?;
        (r.period, r.site.id.clone())
    };
    let cells = cells_of(q)?;
    let heavy = heavy_read(&app, headers)?;
    let gone = raw_gone(&app.store, &p).await?;
    let name = format!(
        "attachment; filename=\"events-{}-{}-{}.csv\"",
        site, p.since, p.until
    );
    // A small channel: the database scan waits while the client is slow to read.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if tx.send(Ok(export::header().into())).await.is_err() {
            return;
        }
        let mut pager = export::Pager::new(&app.store, &site, p, 1_000);
        loop {
            let chunk = match pager.next_page().await {
                Ok(Some(events)) => Ok(events
                    .iter()
                    .map(|e| export::row(e, cells))
                    .collect::<String>()
                    .into()),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "export failed midway");
                    Err(std::io::Error::other("export failed"))
                }
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    // The body holds the key's heavy-read share until its last byte is sent or the client
    // goes away (the scan task may finish earlier, its pages queued).
    let body = futures_util::stream::unfold((rx, heavy), |(mut rx, heavy)| async move {
        rx.recv().await.map(|item| (item, (rx, heavy)))
    });
    let reply = warp::reply::stream(body);
    let reply = warp::reply::with_header(reply, "content-type", "text/csv; charset=utf-8");
    let mut resp = warp::reply::with_header(reply, "content-disposition", name).into_response();
    // Raw events before this instant were deleted by retention: the file starts there.
    if let Some(v) = gone.and_then(|g| warp::http::HeaderValue::from_str(&g).ok()) {
        resp.headers_mut().insert("x-maidian-raw-data-since", v);
    }
    Ok(resp)
}

/// GET /api/report?days=N&steps=…&window=…: the self-contained HTML report.
pub async fn report(
    app: Arc<App>,
    headers: HeaderMap,
    q: AnalyticsQuery,
) -> Result<Response, ApiError> {
    let (app, headers, q) = (&*app, &headers, &q);
    use maidian_analytics::report;
    let r = q.read.reading(app, headers)?;
    let _heavy = heavy_read(app, headers)?;
    let f = funnel_of(q, report::DEFAULT_FUNNEL)?;
    let html = report::build(&app.store, r.period, Some(&f), &r.scope)
        .await
        .map_err(store_failed)?;
    Ok(reply::html(html).into_response())
}

/// GET /api/sites: the sites the key reads (every site for the admin key), with their event
/// counts.
pub async fn sites(app: Arc<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let reader = auth::reader(&app.sites, &headers)?;
    let infos: Vec<_> = app.sites.visible(reader).iter().map(|s| s.info()).collect();
    let rows = maidian_analytics::engine::site_counts(&app.store, &infos)
        .await
        .map_err(store_failed)?;
    let admin = matches!(reader, crate::sites::Reader::Admin);
    Ok(reply::json(&json!({ "admin": admin, "sites": rows })).into_response())
}
