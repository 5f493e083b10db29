//! The keys: a site's public write key (ingest; header, query or body, since beacons cannot
//! set headers) picks the site events are stored under; a site's secret read key reads that
//! site; the admin key reads any (header only). A write key never reads. Which key is whose is
//! [`Sites`]' business.

use warp::http::header::{AUTHORIZATION, ORIGIN};
use warp::http::HeaderMap;

use crate::error::ApiError;
use crate::sites::{Reader, Site, Sites};

const KEY_HEADER: &str = "x-api-key";

fn header(headers: &HeaderMap, name: impl warp::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The write-key check that needs no body, made before the body is read: `Ok(Some(site))`
/// for a header or query key (or a collector that takes events without one), `Ok(None)` when
/// neither was sent and a key is needed (it must then be in the body: [`Sites::writer`] with
/// the body's `api_key`), an error for a key of no site.
pub fn write_site_early(
    sites: &Sites,
    headers: &HeaderMap,
    query_key: Option<&str>,
) -> Result<Option<usize>, ApiError> {
    match header(headers, KEY_HEADER).or(query_key) {
        Some(k) => sites.writer(Some(k)).map(Some),
        None if sites.keyless() => sites.writer(None).map(Some),
        None => Ok(None),
    }
}

/// Refuses a browser request from an origin the site does not list.
pub fn check_origin(site: &Site, headers: &HeaderMap) -> Result<(), ApiError> {
    if site.admits_origin(header(headers, ORIGIN)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this origin may not send events to this site",
        ))
    }
}

/// Who the request's read key (`X-API-Key` or `Authorization: Bearer`) is.
pub fn reader(sites: &Sites, headers: &HeaderMap) -> Result<Reader, ApiError> {
    let bearer = header(headers, AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    match header(headers, KEY_HEADER).or(bearer).map(str::trim) {
        None => Err(ApiError::Unauthorized(
            "missing read key: send X-API-Key or Authorization: Bearer",
        )),
        Some(k) => sites.reader(k),
    }
}

/// The site a read request reads: its key's, or for the admin key the `?site=` it names.
pub fn check_read<'a>(
    sites: &'a Sites,
    headers: &HeaderMap,
    asked: Option<&str>,
) -> Result<&'a Site, ApiError> {
    sites.readable(reader(sites, headers)?, asked)
}
