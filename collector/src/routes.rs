//! One function per route returning a `Filter`, and [`routes`] that joins them with CORS and
//! the JSON error mapping.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::body;
use crate::config::ApiSection;
use crate::error;
use crate::handlers::{self, App, DaysQuery, Ingest, IngestQuery};

fn with_app(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// Query string, headers and the body read up to `limit` bytes (an oversize body becomes an
/// error the handler answers, so the JSON error shape holds).
fn ingest(limit: usize) -> impl Filter<Extract = (Ingest,), Error = Rejection> + Clone {
    let query = warp::query::<IngestQuery>()
        .or(warp::any().map(IngestQuery::default))
        .unify();
    query
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |query, headers, stream| async move {
            let body = body::read_limited(Box::pin(stream), limit).await;
            Ingest {
                query,
                headers,
                body,
            }
        })
}

fn days_query() -> impl Filter<Extract = (DaysQuery,), Error = std::convert::Infallible> + Clone {
    warp::query::<DaysQuery>()
        .or(warp::any().map(DaysQuery::default))
        .unify()
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
    let limit = app.config.limits.max_body_bytes;
    warp::path!("api" / "track" / "event")
        .and(warp::post())
        .and(with_app(app))
        .and(ingest(limit))
        .and_then(|app, req| handlers::track_one(app, None, req))
}

/// POST /api/track/pageview
pub fn track_pageview(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = app.config.limits.max_body_bytes;
    warp::path!("api" / "track" / "pageview")
        .and(warp::post())
        .and(with_app(app))
        .and(ingest(limit))
        .and_then(|app, req| {
            handlers::track_one(app, Some(maidian_analytics::event::PAGE_VIEW), req)
        })
}

/// POST /api/track/batch
pub fn track_batch(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = app.config.limits.max_body_bytes;
    warp::path!("api" / "track" / "batch")
        .and(warp::post())
        .and(with_app(app))
        .and(ingest(limit))
        .and_then(handlers::track_batch)
}

/// GET /api/stats/events?days=N
pub fn stats_events(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "stats" / "events")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(days_query())
        .and_then(handlers::stats_events)
}

/// GET /api/stats/pages?days=N
pub fn stats_pages(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "stats" / "pages")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(days_query())
        .and_then(handlers::stats_pages)
}

fn cors(api: &ApiSection) -> warp::cors::Builder {
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
        builder.allow_origins(api.cors_origins.iter().map(String::as_str))
    }
}

/// Every route, with CORS as configured and every failure as a JSON error.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let api = app.config.tracking_api.clone();
    let inner = health(app.clone())
        .or(track_event(app.clone()))
        .unify()
        .or(track_pageview(app.clone()))
        .unify()
        .or(track_batch(app.clone()))
        .unify()
        .or(stats_events(app.clone()))
        .unify()
        .or(stats_pages(app))
        .unify()
        .recover(error::recover)
        .unify();
    if !api.enable_cors {
        return inner.boxed();
    }
    inner
        .with(cors(&api))
        .map(Reply::into_response)
        .recover(error::recover)
        .unify()
        .boxed()
}
