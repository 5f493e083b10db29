//! One function per route returning a `Filter`, and [`routes`] that joins them with CORS and
//! the JSON error mapping.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth;
use crate::body;
use crate::config::ApiSection;
use crate::error::{self, ApiError};
use crate::handlers::{self, AnalyticsQuery, App, DaysQuery, Ingest, IngestQuery};
use crate::peer::Peer;

fn with_app(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The client's address: the connection's peer, or what a trusted proxy forwarded.
fn client(
    app: Arc<App>,
) -> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .and(warp::header::headers_cloned())
        .map(move |peer: Option<Peer>, headers: HeaderMap| {
            // No peer only in in-process tests (`warp::test`), which have no connection.
            let peer = peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.ip());
            app.trusted.client(peer, &headers)
        })
}

/// Query string, headers and the body, read only when the header or query key (if any) is
/// right, up to `max_body_bytes`, its first byte within `body_first_byte_ms` and all of it
/// within `body_timeout_ms` of the headers, each chunk charged to the bodies-in-flight budget
/// (all clients', and the client's own) as it arrives. A refused, oversize, slow or broken
/// body becomes an error the handler answers, so the JSON error shape holds.
fn ingest(app: Arc<App>) -> impl Filter<Extract = (Ingest,), Error = Rejection> + Clone {
    query_or_default::<IngestQuery>()
        .and(warp::header::headers_cloned())
        .and(client(app.clone()))
        .and(warp::body::stream())
        .then(move |query: IngestQuery, headers, client, stream| {
            let app = app.clone();
            async move {
                let limits = &app.config.limits;
                let early = auth::write_site_early(&app.sites, &headers, query.api_key.as_deref());
                let site = early.as_ref().ok().copied().flatten();
                let mut charge = app.bodies.charge(client);
                let body = match early {
                    Err(e) => Err(e),
                    Ok(_) => {
                        let ms = limits.body_timeout_ms;
                        let first = Duration::from_millis(limits.body_first_byte_ms);
                        let read = body::read_limited(
                            Box::pin(stream),
                            limits.max_body_bytes,
                            &mut charge,
                            first,
                        );
                        match tokio::time::timeout(Duration::from_millis(ms), read).await {
                            Ok(body) => body,
                            Err(_) => Err(ApiError::BodyTimeout { ms }),
                        }
                    }
                };
                Ingest {
                    query,
                    headers,
                    body,
                    site,
                    reserved: charge,
                }
            }
        })
}

/// The query string as `Q`, or `Q`'s default when there is none or it does not parse.
fn query_or_default<Q>() -> impl Filter<Extract = (Q,), Error = std::convert::Infallible> + Clone
where
    Q: serde::de::DeserializeOwned + Default + Send + 'static,
{
    warp::query::<Q>().or(warp::any().map(Q::default)).unify()
}

/// GET /api/health
pub fn health(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "health")
        .and(warp::get())
        .and(with_app(app))
        .and_then(handlers::health)
}

/// POST /api/track/event
pub fn track_event(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "track" / "event")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(ingest(app))
        .then(|app, req| handlers::track_one(app, None, req))
        .map(answer)
}

/// POST /api/track/pageview
pub fn track_pageview(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "track" / "pageview")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(ingest(app))
        .then(|app, req| handlers::track_one(app, Some(maidian_analytics::event::PAGE_VIEW), req))
        .map(answer)
}

/// POST /api/track/batch
pub fn track_batch(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "track" / "batch")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(ingest(app))
        .then(handlers::track_batch)
        .map(answer)
}

/// GET /api/stats/events?days=N
pub fn stats_events(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "stats" / "events")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(query_or_default::<DaysQuery>())
        .then(handlers::stats_events)
        .map(answer)
}

/// GET /api/stats/pages?days=N
pub fn stats_pages(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "stats" / "pages")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(query_or_default::<DaysQuery>())
        .then(handlers::stats_pages)
        .map(answer)
}

/// GET /api/analytics/{summary,funnel,retention,realtime,vitals}
pub fn analytics(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let figure = warp::path!("api" / "analytics" / String).and_then(|name: String| async move {
        maidian_analytics::engine::answer::Figure::named(&name).ok_or_else(warp::reject::not_found)
    });
    figure
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(query_or_default::<AnalyticsQuery>())
        .then(|figure, app, headers, q| handlers::analytics(app, figure, headers, q))
        .map(answer)
}

/// GET /api/sites
pub fn sites(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "sites")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .then(handlers::sites)
        .map(answer)
}

/// GET /api/export/events.csv?days=N
pub fn export_csv(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "export" / "events.csv")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(query_or_default::<DaysQuery>())
        .then(handlers::export_csv)
        .map(answer)
}

/// POST /api/privacy/forget (admin key)
pub fn forget(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "privacy" / "forget")
        .and(warp::post())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(query_or_default::<crate::handlers::ReadQuery>())
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .then(handlers::forget)
        .map(answer)
}

/// GET /api/report?days=N, with [`REPORT_CSP`] and the hardening headers (on an error's
/// JSON too: they cost nothing there).
pub fn report(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "report")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(query_or_default::<AnalyticsQuery>())
        .then(handlers::report)
        .map(answer)
        .map(|res: Response| hardened(res, REPORT_CSP))
}

/// A handler's answer: its response, or its error as the JSON error response.
fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

fn cached(file: warp::fs::File, max_age: &'static str) -> Response {
    warp::reply::with_header(file, "cache-control", max_age).into_response()
}

/// GET /tracking_sdk.js, /maidian_sdk_bg.wasm and /sdk/…: the built SDK.
/// The loader is cached briefly so a new release reaches pages soon; the rest for an hour.
pub fn sdk(dir: PathBuf) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let loader = warp::path!("tracking_sdk.js")
        .and(warp::fs::file(dir.join("tracking_sdk.js")))
        .map(|f| cached(f, "public, max-age=300"));
    let wasm = warp::path!("maidian_sdk_bg.wasm")
        .and(warp::fs::file(dir.join("maidian_sdk_bg.wasm")))
        .map(|f| cached(f, "public, max-age=3600"));
    let all = warp::path("sdk")
        .and(warp::fs::dir(dir))
        .map(|f| cached(f, "public, max-age=300"));
    warp::get().and(loader.or(wasm).unify().or(all).unify())
}

/// The dashboard's policy: its own script and style files only, requests to this origin only,
/// never framed. Visitor strings it shows are escaped, and even one that slipped through
/// could not run.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The HTML report's policy: no script at all, its one inline style sheet, inline SVG.
pub const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the headers every page that shows analytics carries: `csp`, no framing, no Referer,
/// no content sniffing.
pub fn hardened(reply: impl Reply, csp: &'static str) -> Response {
    let mut res = reply.into_response();
    let h = res.headers_mut();
    for (name, value) in [
        ("content-security-policy", csp),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        h.insert(name, warp::http::HeaderValue::from_static(value));
    }
    res
}

/// GET /dashboard (the page; it asks for the read key itself) and /dashboard/dashboard.js,
/// /dashboard/dashboard.css, all with [`DASHBOARD_CSP`] and the hardening headers.
pub fn dashboard(www: PathBuf) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let dir = www.join("dashboard");
    let page = warp::path::end().and(warp::fs::file(dir.join("index.html")));
    let script = warp::path!("dashboard.js").and(warp::fs::file(dir.join("dashboard.js")));
    let style = warp::path!("dashboard.css").and(warp::fs::file(dir.join("dashboard.css")));
    warp::get()
        .and(warp::path("dashboard"))
        .and(page.or(script).unify().or(style).unify())
        .map(|f| hardened(cached(f, "no-cache"), DASHBOARD_CSP))
}

/// GET /demo/…: demo pages from the www directory.
pub fn demo(www: PathBuf) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::get()
        .and(warp::path("demo"))
        .and(warp::fs::dir(www.join("demo")))
        .map(|f| cached(f, "no-cache"))
}

/// CORS: `cors_origins` when set, with every origin a site lists; any origin otherwise (a
/// site's own list is then enforced at ingest).
fn cors(api: &ApiSection, site_origins: Vec<String>) -> warp::cors::Builder {
    let builder = warp::cors()
        .allow_methods(["GET", "POST", "OPTIONS"])
        .allow_headers([
            "content-type",
            "content-encoding",
            "x-api-key",
            "authorization",
        ])
        .max_age(86_400);
    if api.cors_origins.is_empty() {
        builder.allow_any_origin()
    } else {
        let all = api.cors_origins.iter().chain(&site_origins);
        builder.allow_origins(all.map(String::as_str))
    }
}

/// Every route, with CORS as configured and every failure as a JSON error.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let api = app.config.tracking_api.clone();
    let site_origins = app.sites.listed_origins();
    let metrics = app.metrics.clone();
    let counted = warp::log::custom(move |info: warp::log::Info<'_>| {
        let route = crate::metrics::route_of(info.path());
        metrics.request(route, info.status().as_u16(), info.elapsed());
    });
    let inner = health(app.clone())
        .or(track_event(app.clone()))
        .unify()
        .or(track_pageview(app.clone()))
        .unify()
        .or(track_batch(app.clone()))
        .unify()
        .or(stats_events(app.clone()))
        .unify()
        .or(stats_pages(app.clone()))
        .unify()
        .or(analytics(app.clone()))
        .unify()
        .or(sites(app.clone()))
        .unify()
        .or(export_csv(app.clone()))
        .unify()
        .or(report(app.clone()))
        .unify()
        .or(forget(app))
        .unify()
        .or(sdk(api.sdk_dir.clone()))
        .unify()
        .or(demo(api.www_dir.clone()))
        .unify()
        .or(dashboard(api.www_dir.clone()))
        .unify()
        .recover(error::recover)
        .unify();
    if !api.enable_cors {
        return inner.with(counted).map(Reply::into_response).boxed();
    }
    inner
        .with(cors(&api, site_origins))
        .map(Reply::into_response)
        .recover(error::recover)
        .unify()
        .with(counted)
        .map(Reply::into_response)
        .boxed()
}
