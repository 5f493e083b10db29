//! Property tests of the two functions every request body goes through: the body decoder
//! (`body::json_object`) and the validator (`validate::event`). Arbitrary input never panics
//! and always gets an answer; valid input comes out as it went in.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

use std::io::Write;

use maidian_collector::body;
use maidian_collector::config::{Limits, PrivacySection};
use maidian_collector::validate::{self, Context};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use warp::http::HeaderMap;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn headers(gzipped: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    if gzipped {
        h.insert("content-encoding", "gzip".parse().unwrap());
    }
    h
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(".{0,12}", json_value(), 0..8).prop_map(|m| m.into_iter().collect())
}

const NOW: i64 = 1_795_996_800_000; // 2026-11-30T00:00:00Z

fn validate_obj(o: &Map<String, Value>) -> Result<maidian_analytics::event::Event, String> {
    let limits = Limits::default();
    let redact = PrivacySection::default().deny_list();
    let zone = maidian_analytics::site::Zone::utc();
    // Every query parameter kept: events come out as they went in (pages without their
    // query strings are `validate`'s unit test).
    let keep_all = ["*".to_string()];
    let cx = Context {
        limits: &limits,
        site: "default",
        zone: &zone,
        redact: redact.as_deref(),
        page_params: &keep_all,
        received_at: NOW,
        skew_ms: 0,
        request_agent: None,
        webdriver: false,
    };
    validate::event(o, &cx, None).map_err(|i| format!("{}: {}", i.code, i.message))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512), gz in any::<bool>()) {
        let raw = if gz { gzip(&bytes) } else { bytes.clone() };
        let _ = body::json_object(&headers(gz), raw.into(), &Limits::default());
        // Raw bytes announced as gzip: refused as bad gzip, never a panic.
        let _ = body::json_object(&headers(true), bytes.into(), &Limits::default());
    }

    #[test]
    fn json_objects_round_trip_through_the_decoder(obj in object(), gz in any::<bool>()) {
        let text = serde_json::to_vec(&obj).unwrap();
        let raw = if gz { gzip(&text) } else { text };
        let back = body::json_object(&headers(gz), raw.into(), &Limits::default()).unwrap();
        prop_assert_eq!(back, obj);
    }

    #[test]
    fn a_body_over_its_value_budget_is_refused_with_413(n in 10usize..200) {
        let body = serde_json::to_vec(&json!({"events": vec![0; n]})).unwrap();
        let limits = Limits { max_json_values: n, ..Limits::default() };
        let err = body::json_object(&headers(false), body.into(), &limits).unwrap_err();
        prop_assert_eq!(err.code(), "too_many_values");
        prop_assert_eq!(err.status().as_u16(), 413);
    }

    #[test]
    fn arbitrary_objects_never_panic_the_validator(obj in object(), custom in json_value(), ty in ".{0,40}") {
        let mut obj = obj;
        obj.insert("event_type".into(), Value::String(ty));
        obj.insert("custom_data".into(), custom);
        let _ = validate_obj(&obj);
    }

    #[test]
    fn valid_events_come_out_as_they_went_in(
        ty in "[a-z_]{1,30}",
        session in "[A-Za-z0-9-]{1,64}",
        path in "/[a-z0-9/]{0,40}",
        text in "[^\u{0}-\u{1f}]{0,100}",
        x in -10_000i64..10_000,
        age_ms in 0i64..86_400_000,
        key in "[a-z][a-z0-9_]{0,20}",
        number in any::<i32>(),
    ) {
        let page = format!("https://shop.example{path}?utm_source=x");
        let obj = json!({
            "event_type": ty, "session_id": session, "page_url": page, "element_text": text,
            "x_position": x, "timestamp": NOW - age_ms, "custom_data": {key.clone(): number},
        });
        let e = validate_obj(obj.as_object().unwrap()).unwrap();
        prop_assert_eq!(e.event_type, ty);
        prop_assert_eq!(e.session_id.as_deref(), Some(session.as_str()));
        prop_assert_eq!(e.page_url.as_deref(), Some(page.as_str()));
        prop_assert_eq!(e.element_text.as_deref(), (!text.is_empty()).then_some(text.as_str()));
        prop_assert_eq!(e.x_position, Some(x as f64));
        prop_assert_eq!(e.timestamp, NOW - age_ms);
        prop_assert_eq!(&e.custom_data.unwrap()[&key], &json!(number));
    }
}
