//! `POST /api/v2/query` bodies (Plausible's Stats API v2 request) into an engine
//! [`Query`]: every part checked, and a bad one refused naming its field (`metrics[1]`,
//! `filters[0][1]`, `date_range`) so a client can fix it. Issue 27: parsed and checked here,
//! not yet answered.

use maidian_analytics::engine::query::{
    Comparison, DateRange, Dimension, Filter, Metric, Op, OrderKey, Query,
};
use maidian_analytics::site::Zone;
use serde_json::{Map, Value};

/// A part of the request that cannot be used: which (a JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> QueryError {
    QueryError {
        field: field.into(),
        message: message.into(),
    }
}

/// Results per page unless `pagination.limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 10_000;

/// The query `body` asks, its dates read in `zone` (the site's).
pub fn parse(body: &Value, zone: &Zone) -> Result<Query, QueryError> {
    let o = body
        .as_object()
        .ok_or_else(|| err("body", "must be a JSON object"))?;
    const KNOWN: [&str; 8] = [
        "site_id",
        "date_range",
        "metrics",
        "dimensions",
        "filters",
        "order_by",
        "pagination",
        "include",
    ];
    if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(err(k.as_str(), "is not a field of a query"));
    }
    let site = match o.get("site_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(err("site_id", "must be the id of a site")),
    };
    let range = date_range(o.get("date_range"), zone)?;
    let metrics = list(o, "metrics", true, |v, f| {
        let name = v.as_str().ok_or_else(|| err(&f, "must be a metric name"))?;
        Metric::named(name).ok_or_else(|| err(&f, format!("unknown metric {name:?}")))
    })?;
    let dimensions = list(o, "dimensions", false, |v, f| dimension(v, &f))?;
    let filters = list(o, "filters", false, |v, f| filter(v, &f))?;
    let order_by = list(o, "order_by", false, |v, f| {
        order(v, &f, &metrics, &dimensions)
    })?;
    let (limit, offset) = pagination(o.get("pagination"))?;
    let include = object(o.get("include"), "include")?;
    let flag = |k: &str| match include.get(k) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(format!("include.{k}"), "must be true or false")),
    };
    if let Some(k) = include
        .keys()
        .find(|k| !["total_rows", "time_labels", "comparisons", "bots"].contains(&k.as_str()))
    {
        return Err(err(format!("include.{k}"), "is not a field of include"));
    }
    let time_labels = flag("time_labels")?;
    if time_labels && !dimensions.iter().any(|d| matches!(d, Dimension::Time(_))) {
        return Err(err("include.time_labels", "needs a time dimension"));
    }
    Ok(Query {
        site,
        range,
        metrics,
        dimensions,
        filters,
        order_by,
        limit,
        offset,
        total_rows: flag("total_rows")?,
        time_labels,
        comparison: comparison(include.get("comparisons"), zone)?,
        include_bots: flag("bots")?,
    })
}

fn object(v: Option<&Value>, field: &str) -> Result<Map<String, Value>, QueryError> {
    match v {
        None => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(err(field, "must be an object")),
    }
}

/// The items of the array `o[key]`, each parsed by `item` (given its field path).
fn list<T>(
    o: &Map<String, Value>,
    key: &str,
    required: bool,
    item: impl Fn(&Value, String) -> Result<T, QueryError>,
) -> Result<Vec<T>, QueryError> {
    let items = match o.get(key) {
        None if !required => return Ok(Vec::new()),
        Some(Value::Array(a)) if !(required && a.is_empty()) => a,
        _ if required => return Err(err(key, "must be a non-empty list")),
        _ => return Err(err(key, "must be a list")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item(v, format!("{key}[{i}]")))
        .collect()
}

fn date_range(v: Option<&Value>, zone: &Zone) -> Result<DateRange, QueryError> {
    let bad = || {
        err(
            "date_range",
            "must be day, 7d, 28d, 30d, 91d, month, 6mo, 12mo, year, all or [from, to]",
        )
    };
    match v {
        Some(Value::String(s)) => DateRange::named(s).ok_or_else(bad),
        Some(Value::Array(a)) => match a.as_slice() {
            [Value::String(from), Value::String(to)] => DateRange::between(from, to, zone)
                .ok_or_else(|| {
                    err(
                        "date_range",
                        "must be two dates (YYYY-MM-DD) or instants (RFC 3339), the first not after the second",
                    )
                }),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn dimension(v: &Value, field: &str) -> Result<Dimension, QueryError> {
    let name = v
        .as_str()
        .ok_or_else(|| err(field, "must be a dimension name"))?;
    Dimension::named(name).ok_or_else(|| err(field, format!("unknown dimension {name:?}")))
}

fn filter(v: &Value, field: &str) -> Result<Filter, QueryError> {
    let a = v
        .as_array()
        .ok_or_else(|| err(field, "must be a list [operator, …]"))?;
    let op = a
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| err(format!("{field}[0]"), "must be an operator"))?;
    let inner = |i: usize| -> Result<Filter, QueryError> {
        let f = format!("{field}[{i}]");
        filter(a.get(i).ok_or_else(|| err(&f, "is missing"))?, &f)
    };
    match op {
        "and" | "or" => {
            let items = match a.get(1) {
                Some(Value::Array(items)) if !items.is_empty() && a.len() == 2 => items,
                _ => {
                    return Err(err(
                        format!("{field}[1]"),
                        "must be a non-empty list of filters",
                    ))
                }
            };
            let parts = items
                .iter()
                .enumerate()
                .map(|(i, f)| filter(f, &format!("{field}[1][{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Filter::And(parts)
            } else {
                Filter::Or(parts)
            })
        }
        "not" | "has_done" | "has_not_done" => {
            if a.len() != 2 {
                return Err(err(field, format!("{op} takes one filter")));
            }
            let f = Box::new(inner(1)?);
            Ok(match op {
                "not" => Filter::Not(f),
                "has_done" => Filter::HasDone(f),
                _ => Filter::HasNotDone(f),
            })
        }
        name => {
            let op = Op::named(name)
                .ok_or_else(|| err(format!("{field}[0]"), format!("unknown operator {name:?}")))?;
            let dimension = dimension(a.get(1).unwrap_or(&Value::Null), &format!("{field}[1]"))?;
            if matches!(dimension, Dimension::Time(_)) {
                return Err(err(format!("{field}[1]"), "time is filtered by date_range"));
            }
            let values = match a.get(2) {
                Some(Value::Array(vs)) if !vs.is_empty() => vs
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(err(format!("{field}[2][{i}]"), "must be a string")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => {
                    return Err(err(
                        format!("{field}[2]"),
                        "must be a non-empty list of values",
                    ))
                }
            };
            if matches!(op, Op::Matches | Op::MatchesNot) {
                if let Some((i, _)) = values.iter().enumerate().find(|(_, p)| !pattern_ok(p)) {
                    return Err(err(format!("{field}[2][{i}]"), "is not a usable pattern"));
                }
            }
            let case_sensitive = match a.get(3) {
                None => true,
                Some(Value::Object(m)) => match m.get("case_sensitive") {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(err(
                            format!("{field}[3].case_sensitive"),
                            "must be true or false",
                        ))
                    }
                },
                Some(_) => return Err(err(format!("{field}[3]"), "must be an object")),
            };
            if a.len() > 4 {
                return Err(err(field, "has more than four parts"));
            }
            Ok(Filter::Match {
                op,
                dimension,
                values,
                case_sensitive,
            })
        }
    }
}

/// Whether a `matches` pattern is one maidian evaluates: at most 256 bytes, brackets and
/// parentheses balanced (the engine's matcher is a bounded one, not a full regex engine).
fn pattern_ok(p: &str) -> bool {
    if p.len() > 256 {
        return false;
    }
    let mut depth = Vec::new();
    let mut escaped = false;
    for c in p.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '(' | '[') => depth.push(c),
            (false, ')') if depth.pop() != Some('(') => return false,
            (false, ']') if depth.pop() != Some('[') => return false,
            _ => {}
        }
    }
    depth.is_empty() && !escaped
}

fn order(
    v: &Value,
    field: &str,
    metrics: &[Metric],
    dimensions: &[Dimension],
) -> Result<(OrderKey, bool), QueryError> {
    let (name, dir) = match v.as_array().map(Vec::as_slice) {
        Some([Value::String(n), Value::String(d)]) => (n, d),
        _ => {
            return Err(err(
                field,
                "must be [metric or dimension, \"asc\" or \"desc\"]",
            ))
        }
    };
    let desc = match dir.as_str() {
        "asc" => false,
        "desc" => true,
        _ => return Err(err(format!("{field}[1]"), "must be \"asc\" or \"desc\"")),
    };
    let key = match (Metric::named(name), Dimension::named(name)) {
        (Some(m), _) if metrics.contains(&m) => OrderKey::Metric(m),
        (_, Some(d)) if dimensions.contains(&d) => OrderKey::Dimension(d),
        _ => {
            return Err(err(
                format!("{field}[0]"),
                "must be a metric or dimension of the query",
            ))
        }
    };
    Ok((key, desc))
}

fn pagination(v: Option<&Value>) -> Result<(usize, usize), QueryError> {
    let o = object(v, "pagination")?;
    if let Some(k) = o
        .keys()
        .find(|k| !["limit", "offset"].contains(&k.as_str()))
    {
        return Err(err(
            format!("pagination.{k}"),
            "is not a field of pagination",
        ));
    }
    let number = |k: &str| {
        o.get(k)
            .map(|n| n.as_u64().and_then(|n| usize::try_from(n).ok()))
    };
    let limit = match number("limit") {
        None => DEFAULT_LIMIT,
        Some(Some(n)) if (1..=DEFAULT_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(err(
                "pagination.limit",
                format!("must be a whole number from 1 to {DEFAULT_LIMIT}"),
            ))
        }
    };
    let offset = match number("offset") {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return Err(err("pagination.offset", "must be a whole number")),
    };
    Ok((limit, offset))
}

fn comparison(v: Option<&Value>, zone: &Zone) -> Result<Option<Comparison>, QueryError> {
    let Some(v) = v else { return Ok(None) };
    let o = v
        .as_object()
        .ok_or_else(|| err("include.comparisons", "must be an object"))?;
    match o.get("mode").and_then(Value::as_str) {
        Some("previous_period") => Ok(Some(Comparison::PreviousPeriod)),
        Some("year_over_year") => Ok(Some(Comparison::YearOverYear)),
        Some("custom") => match date_range(o.get("date_range"), zone) {
            Ok(DateRange::Between(from, to)) => Ok(Some(Comparison::Custom(from, to))),
            _ => Err(err(
                "include.comparisons.date_range",
                "must be [from, to] for the custom mode",
            )),
        },
        _ => Err(err(
            "include.comparisons.mode",
            "must be previous_period, year_over_year or custom",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_analytics::event::Day;
    use serde_json::json;

    fn field_of(body: Value) -> String {
        match parse(&body, &Zone::utc()) {
            Err(e) => e.field,
            Ok(q) => panic!("parsed: {q:?}"),
        }
    }

    #[test]
    fn a_full_query_parses() {
        let q = parse(
            &json!({
                "site_id": "shop",
                "date_range": ["2026-11-01", "2026-11-30"],
                "metrics": ["visitors", "bounce_rate"],
                "dimensions": ["visit:channel", "time:day"],
                "filters": [
                    ["is", "event:page", ["/pricing"]],
                    ["or", [["contains", "visit:source", ["Twit"], {"case_sensitive": false}],
                            ["not", ["is", "visit:device", ["Desktop"]]]]],
                    ["has_done", ["is", "event:name", ["purchase"]]]
                ],
                "order_by": [["visitors", "desc"], ["time:day", "asc"]],
                "pagination": {"limit": 50, "offset": 100},
                "include": {"total_rows": true, "time_labels": true,
                            "comparisons": {"mode": "previous_period"}}
            }),
            &Zone::utc(),
        )
        .expect("a valid query");
        assert_eq!(q.site, "shop");
        assert_eq!(q.metrics, vec![Metric::Visitors, Metric::BounceRate]);
        assert_eq!(q.filters.len(), 3);
        assert!(matches!(&q.filters[1], Filter::Or(parts) if parts.len() == 2));
        assert!(matches!(
            &q.filters[1],
            Filter::Or(parts) if matches!(&parts[0], Filter::Match { case_sensitive: false, .. })
        ));
        assert_eq!(q.order_by[0], (OrderKey::Metric(Metric::Visitors), true));
        assert_eq!((q.limit, q.offset), (50, 100));
        assert!(q.total_rows && q.time_labels);
        assert_eq!(q.comparison, Some(Comparison::PreviousPeriod));
        assert_eq!(
            q.range,
            DateRange::Between(
                Day::parse("2026-11-01").unwrap(),
                Day::parse("2026-11-30").unwrap()
            )
        );
    }

    #[test]
    fn a_bad_part_is_named() {
        let base = || json!({"site_id": "shop", "date_range": "7d", "metrics": ["visitors"]});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        assert_eq!(field_of(json!([])), "body");
        assert_eq!(field_of(with("site_id", json!(""))), "site_id");
        assert_eq!(field_of(with("date_range", json!("1w"))), "date_range");
        assert_eq!(
            field_of(with("date_range", json!(["2026-12-02", "2026-12-01"]))),
            "date_range"
        );
        assert_eq!(field_of(with("metrics", json!([]))), "metrics");
        assert_eq!(
            field_of(with("metrics", json!(["visitors", "hits"]))),
            "metrics[1]"
        );
        assert_eq!(
            field_of(with("dimensions", json!(["visit:planet"]))),
            "dimensions[0]"
        );
        assert_eq!(
            field_of(with("filters", json!([["equals", "event:page", ["/"]]]))),
            "filters[0][0]"
        );
        assert_eq!(
            field_of(with("filters", json!([["is", "event:page", []]]))),
            "filters[0][2]"
        );
        assert_eq!(
            field_of(with("filters", json!([["is", "time:day", ["x"]]]))),
            "filters[0][1]"
        );
        assert_eq!(
            field_of(with(
                "filters",
                json!([["and", [["is", "visit:os", ["iOS"]], ["is", "nope", ["x"]]]]])
            )),
            "filters[0][1][1][1]"
        );
        assert_eq!(
            field_of(with(
                "filters",
                json!([["matches", "event:page", ["/a(b"]]])
            )),
            "filters[0][2][0]"
        );
        assert_eq!(
            field_of(with("order_by", json!([["visits", "desc"]]))),
            "order_by[0][0]"
        );
        assert_eq!(
            field_of(with("order_by", json!([["visitors", "up"]]))),
            "order_by[0][1]"
        );
        assert_eq!(
            field_of(with("pagination", json!({"limit": 0}))),
            "pagination.limit"
        );
        assert_eq!(
            field_of(with("include", json!({"time_labels": true}))),
            "include.time_labels"
        );
        assert_eq!(
            field_of(with(
                "include",
                json!({"comparisons": {"mode": "last_week"}})
            )),
            "include.comparisons.mode"
        );
        assert_eq!(field_of(with("site", json!("shop"))), "site");
    }
}
