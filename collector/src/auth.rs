//! The two keys: the public write key (ingest; header, query or body, since beacons cannot set
//! headers) and the secret read key (everything that reads; header only). The write key never
//! reads.

use warp::http::header::AUTHORIZATION;
use warp::http::HeaderMap;

use crate::config::ApiSection;
use crate::error::ApiError;

const KEY_HEADER: &str = "x-api-key";

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn header(headers: &HeaderMap, name: impl warp::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `given` is the write key.
fn write_key(api: &ApiSection, given: &str) -> Result<(), ApiError> {
    if same(given, &api.api_key) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong write key"))
    }
}

/// The write-key check that needs no body, made before the body is read: `Ok(true)` when no key
/// is required or the header or query key is right, `Ok(false)` when neither was sent (the key
/// must then be in the body: [`check_body_key`]), an error for a wrong key.
pub fn check_write_early(
    api: &ApiSection,
    headers: &HeaderMap,
    query_key: Option<&str>,
) -> Result<bool, ApiError> {
    if api.api_key.is_empty() {
        return Ok(true);
    }
    match header(headers, KEY_HEADER).or(query_key) {
        None => Ok(false),
        Some(k) => write_key(api, k).map(|()| true),
    }
}

/// The write-key check of a request that sent no header or query key: the body's `api_key`.
pub fn check_body_key(api: &ApiSection, body_key: Option<&str>) -> Result<(), ApiError> {
    if api.api_key.is_empty() {
        return Ok(());
    }
    match body_key {
        None => Err(ApiError::Unauthorized(
            "missing write key: send X-API-Key, ?api_key= or an api_key body field",
        )),
        Some(k) => write_key(api, k),
    }
}

pub fn check_read(api: &ApiSection, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = header(headers, AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    let given = header(headers, KEY_HEADER).or(bearer).map(str::trim);
    match given {
        None => Err(ApiError::Unauthorized(
            "missing read key: send X-API-Key or Authorization: Bearer",
        )),
        Some(k) if same(k, &api.read_key) => Ok(()),
        Some(k) if !api.api_key.is_empty() && same(k, &api.api_key) => Err(ApiError::Forbidden(
            "the write key cannot read; use the read key",
        )),
        Some(_) => Err(ApiError::Unauthorized("wrong read key")),
    }
}
