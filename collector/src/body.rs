//! Turning an ingest request body into a JSON object: size cap while reading, optional gzip
//! with a cap on the inflated size, `application/json` or `text/plain` (beacons), one object.

use std::io::Read;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use warp::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use warp::http::HeaderMap;

use crate::config::Limits;
use crate::decode::{BodyCharge, ChargeRefused};
use crate::error::ApiError;

/// Reads the whole body, refusing it as soon as it passes `limit` bytes, charging every chunk
/// to `charge` as it arrives. The first chunk must come within `first_byte` (a head that
/// announces a body and sends none is cut off early); the caller bounds the whole read.
pub async fn read_limited<S, B>(
    mut stream: S,
    limit: usize,
    charge: &mut BodyCharge,
    first_byte: Duration,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut buf = BytesMut::new();
    let first = match tokio::time::timeout(first_byte, stream.next()).await {
        Ok(first) => first,
        Err(_) => {
            return Err(ApiError::BodyNotStarted {
                ms: u64::try_from(first_byte.as_millis()).unwrap_or(u64::MAX),
            })
        }
    };
    let mut next = first;
    while let Some(chunk) = next {
        let mut chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        if buf.len() + chunk.remaining() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        charge
            .add(chunk.remaining())
            .await
            .map_err(|refused| match refused {
                ChargeRefused::ClientFull => ApiError::TooManyRequests {
                    message: "this client has too many request bodies in flight; retry shortly",
                    retry_after_secs: 1,
                },
                ChargeRefused::Closed => ApiError::Unavailable,
            })?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
        next = stream.next().await;
    }
    Ok(buf.freeze())
}

/// Decodes `raw` per the request headers and parses it as one JSON object. A gzip body is
/// parsed as it inflates, so inflation stops where parsing does: at the first byte of a body
/// that is not an object, at the value past `max_json_values`, or at `max_inflated_bytes`.
/// The inflated body is never held whole.
pub fn json_object(
    headers: &HeaderMap,
    raw: Bytes,
    limits: &Limits,
) -> Result<Map<String, Value>, ApiError> {
    check_content_type(headers)?;
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => {
            if raw.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::EmptyBody);
            }
            parse_object(&raw, limits.max_json_values)
        }
        Some("gzip") | Some("x-gzip") => {
            let mut inflated = Capped {
                inner: flate2::read::MultiGzDecoder::new(&raw[..]),
                left: limits.max_inflated_bytes,
                failure: None,
                content: false,
            };
            let result = parse(
                &mut serde_json::Deserializer::from_reader(std::io::BufReader::new(&mut inflated)),
                limits.max_json_values,
            );
            match (result, inflated.failure) {
                (Ok(map), _) => Ok(map),
                (Err(_), Some(Failure::TooLarge)) => Err(ApiError::InflatedTooLarge {
                    limit: limits.max_inflated_bytes,
                }),
                (Err(_), Some(Failure::Gzip(e))) => Err(ApiError::BadGzip(e)),
                (Err(ApiError::BadJson(_)), None) if !inflated.content => Err(ApiError::EmptyBody),
                (Err(e), None) => Err(e),
            }
        }
        Some(other) => Err(ApiError::UnsupportedEncoding(other.to_string())),
    }
}

enum Failure {
    TooLarge,
    Gzip(String),
}

/// The inflating reader, cut at `left` bytes and remembering why it failed.
struct Capped<R> {
    inner: R,
    left: usize,
    failure: Option<Failure>,
    /// A byte other than whitespace went by.
    content: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte more than allowed tells "exactly at the limit" from "past it".
        let want = buf.len().min(self.left + 1);
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                self.failure = Some(Failure::Gzip(e.to_string()));
                return Err(e);
            }
        };
        if n > self.left {
            self.failure = Some(Failure::TooLarge);
            return Err(std::io::Error::other("inflated body too large"));
        }
        self.left -= n;
        self.content |= buf[..n].iter().any(|b| !b.is_ascii_whitespace());
        Ok(n)
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    let ok = essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/plain")
        || essence.is_empty();
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.to_string()))
    }
}

/// Parses one JSON object of at most `max_values` values (see [`json_object`]).
pub fn parse_object(body: &[u8], max_values: usize) -> Result<Map<String, Value>, ApiError> {
    parse(&mut serde_json::Deserializer::from_slice(body), max_values)
}

/// A body that is not an object is refused at its first value, never built; parsing stops at
/// the first value past the budget, so no body grows into a tree much larger than itself.
fn parse<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    max_values: usize,
) -> Result<Map<String, Value>, ApiError> {
    let budget = std::cell::Cell::new(max_values);
    let seed = TopLevel(Bounded { budget: &budget });
    let value =
        serde::de::DeserializeSeed::deserialize(seed, &mut *de).and_then(|v| de.end().map(|()| v));
    match value {
        Ok(map) => Ok(map),
        Err(_) if budget.get() == 0 => Err(ApiError::TooManyValues { limit: max_values }),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(ApiError::NotAnObject),
        Err(e) => Err(ApiError::BadJson(e.to_string())),
    }
}

/// The body's one object: anything else is a type error at its first byte.
struct TopLevel<'a>(Bounded<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Map<String, Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match d.deserialize_map(self.0)? {
            Value::Object(map) => Ok(map),
            _ => Err(serde::de::Error::custom("expected an object")),
        }
    }
}

/// A `serde_json::Value` built against a shared budget of values.
#[derive(Clone, Copy)]
struct Bounded<'a> {
    budget: &'a std::cell::Cell<usize>,
}

impl Bounded<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.budget.get() {
            0 => Err(E::custom("too many JSON values")),
            n => {
                self.budget.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn gzip_and_text_plain_decode() {
        let h = headers(&[
            ("content-encoding", "gzip"),
            ("content-type", "text/plain;charset=UTF-8"),
        ]);
        let map = json_object(&h, gz(br#"{"a":1}"#), &Limits::default()).unwrap();
        assert_eq!(map["a"], 1);
    }

    #[test]
    fn gzip_bomb_is_refused() {
        let limits = Limits {
            max_inflated_bytes: 1000,
            ..Limits::default()
        };
        let h = headers(&[("content-encoding", "gzip")]);
        let err = json_object(&h, gz(&vec![b' '; 5000]), &limits).unwrap_err();
        assert_eq!(err.code(), "inflated_too_large");
    }
}
