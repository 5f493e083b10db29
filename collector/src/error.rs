//! The one error type of the HTTP boundary and its single mapping to status + JSON body
//! `{"error": {"code", "message"}}`. Internal causes are logged where they happen; clients get
//! a short message.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Why one event of a request was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Invalid {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// An event of a batch that was refused, by its index in `events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body inflates to more than {limit} bytes")]
    InflatedTooLarge { limit: usize },
    #[error("request body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("content-encoding {0:?} is not supported; send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("content-type {0:?} is not supported; send application/json or text/plain")]
    UnsupportedMediaType(String),
    #[error("request body is empty")]
    EmptyBody,
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    #[error("request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("request body holds more than {limit} JSON values")]
    TooManyValues { limit: usize },
    #[error("request body did not arrive within {ms} ms of its headers")]
    BodyTimeout { ms: u64 },
    #[error("request body did not start within {ms} ms of its headers")]
    BodyNotStarted { ms: u64 },
    #[error("{message}")]
    TooManyRequests {
        message: &'static str,
        retry_after_secs: u32,
    },
    #[error("request body must be a JSON object")]
    NotAnObject,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{}", .0.message)]
    InvalidEvent(Invalid),
    #[error("{0}")]
    InvalidBatch(&'static str),
    #[error("batch holds {len} events; at most {limit} are accepted per request")]
    BatchTooLarge { len: usize, limit: usize },
    #[error("all {} events were rejected; see `rejected`", .0.len())]
    AllRejected(Vec<Rejected>),
    #[error("invalid query parameter {name}: {message}")]
    BadParam { name: &'static str, message: String },
    #[error("the event store is unavailable; retry later")]
    Unavailable,
    /// The store took the request but did not finish it in time (it goes on).
    #[error("{0}")]
    Busy(String),
    /// A well-formed request that cannot be carried out (an erasure too large).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("origin not allowed")]
    CorsForbidden,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            BodyTimeout { .. } | BodyNotStarted { .. } => StatusCode::REQUEST_TIMEOUT,
            TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            BodyTooLarge { .. }
            | InflatedTooLarge { .. }
            | BatchTooLarge { .. }
            | TooManyValues { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedEncoding(_) | UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Forbidden(_) | CorsForbidden => StatusCode::FORBIDDEN,
            Unavailable | Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            BadGzip(_)
            | EmptyBody
            | BodyRead(_)
            | BadJson(_)
            | NotAnObject
            | InvalidEvent(_)
            | InvalidBatch(_)
            | AllRejected(_)
            | BadParam { .. } => StatusCode::BAD_REQUEST,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            BodyTooLarge { .. } => "body_too_large",
            InflatedTooLarge { .. } => "inflated_too_large",
            BadGzip(_) => "invalid_gzip",
            UnsupportedEncoding(_) => "unsupported_encoding",
            UnsupportedMediaType(_) => "unsupported_media_type",
            EmptyBody => "empty_body",
            BodyRead(_) => "body_read_failed",
            BadJson(_) => "invalid_json",
            NotAnObject => "invalid_body",
            TooManyValues { .. } => "too_many_values",
            BodyTimeout { .. } | BodyNotStarted { .. } => "body_timeout",
            TooManyRequests { .. } => "too_many_requests",
            Unprocessable { code, .. } => code,
            Unauthorized(_) => "unauthorized",
            Forbidden(_) => "forbidden",
            InvalidEvent(i) => i.code,
            InvalidBatch(_) => "invalid_batch",
            BatchTooLarge { .. } => "batch_too_large",
            AllRejected(_) => "no_valid_events",
            BadParam { .. } => "invalid_parameter",
            Unavailable => "store_unavailable",
            Busy(_) => "busy",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            CorsForbidden => "cors_forbidden",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [Rejected]>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let rejected = match &self {
            ApiError::AllRejected(r) => Some(r.as_slice()),
            _ => None,
        };
        let body = Body {
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
            },
            rejected,
        };
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            res.headers_mut().insert(
                "retry-after",
                warp::http::HeaderValue::from(retry_after_secs),
            );
        }
        res
    }
}

/// Maps warp's own rejections (no route, wrong method, CORS) to the same JSON shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let err = if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<warp::cors::CorsForbidden>().is_some() {
        ApiError::CorsForbidden
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadParam {
            name: "query",
            message: e.to_string(),
        }
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::NotFound
    };
    Ok(err.into_response())
}
