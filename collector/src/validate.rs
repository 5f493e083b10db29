//! From one client JSON object to a domain [`Event`]: types, lengths, nesting, sane times,
//! safe `custom_data` keys, and enrichment (`event_id`, skew-corrected `timestamp`, `day`,
//! `received_at`, `visitor`). The client IP is never read here, so it is never stored.

use maidian_analytics::event::{Event, PAGE_VIEW, WEB_VITALS};
use maidian_analytics::site::Zone;
use maidian_analytics::vitals::Metric;
use serde_json::{Map, Value};

use crate::config::Limits;
use crate::error::Invalid;

/// What every event of one request shares.
pub struct Context<'a> {
    pub limits: &'a Limits,
    /// The site the write key chose: every event of the request is stored under it, whatever
    /// its body says.
    pub site: &'a str,
    /// The site's time zone, for the stored `day`.
    pub zone: &'a Zone,
    /// Names of the URL parameters to redact (`PrivacySection::deny_list`); `None`: keep URLs.
    pub redact: Option<&'a str>,
    /// Query parameters a stored `page_url` keeps (`[privacy] page_params`; `*`: all of them).
    pub page_params: &'a [String],
    /// Arrival time at the collector, ms since the epoch.
    pub received_at: i64,
    /// `received_at - sent_at` when the client said when it sent the request (Segment's and
    /// PostHog's correction for wrong client clocks), else 0.
    pub skew_ms: i64,
    /// The request's own `User-Agent` when it is a browser's (`Mozilla/…`): it speaks for
    /// every event of the request that names no user agent (the SDK sends it on page views
    /// only). An HTTP library's agent (a server sending for its users) is not used.
    pub request_agent: Option<&'a str>,
    /// The request says its browser is driven by automation (`"webdriver": true` beside the
    /// events: the SDK's `navigator.webdriver`).
    pub webdriver: bool,
}

impl Context<'_> {
    /// Builds the skew from a request's `sent_at` (ms since the epoch or RFC 3339).
    pub fn skew_from(sent_at: Option<&Value>, received_at: i64) -> Result<i64, Invalid> {
        match sent_at {
            None | Some(Value::Null) => Ok(0),
            Some(v) => Ok(received_at - millis(v, "sent_at")?),
        }
    }
}

const STRINGS: &[(&str, usize)] = &[
    ("user_id", 128),
    ("anonymous_id", 128),
    ("session_id", 128),
    ("page_view_id", 128),
    ("page_url", 2048),
    ("page_title", 512),
    ("element_id", 256),
    ("element_class", 512),
    ("element_text", 256),
    ("referrer", 2048),
    ("user_agent", 512),
    ("screen_resolution", 32),
    ("viewport_size", 32),
];

const MAX_EVENT_TYPE: usize = 64;

/// Validates and enriches one event. `forced_type` is the page-view endpoint's `page_view`.
pub fn event(
    obj: &Map<String, Value>,
    cx: &Context,
    forced_type: Option<&str>,
) -> Result<Event, Invalid> {
    let event_type = match forced_type {
        Some(t) => t.to_string(),
        None => event_type(obj.get("event_type"))?,
    };
    let mut e = Event {
        event_id: event_id(obj.get("event_id"))?,
        site: cx.site.to_string(),
        event_type,
        received_at: cx.received_at,
        ..Event::default()
    };
    for (name, max) in STRINGS {
        let v = string(obj, name, *max)?;
        match *name {
            "user_id" => e.user_id = v,
            "anonymous_id" => e.anonymous_id = v,
            "session_id" => e.session_id = v,
            "page_view_id" => e.page_view_id = v,
            "page_url" => e.page_url = v,
            "page_title" => e.page_title = v,
            "element_id" => e.element_id = v,
            "element_class" => e.element_class = v,
            "element_text" => e.element_text = v,
            "referrer" => e.referrer = v,
            "user_agent" => e.user_agent = v,
            "screen_resolution" => e.screen_resolution = v,
            "viewport_size" => e.viewport_size = v,
            _ => {}
        }
    }
    e.x_position = number(obj, "x_position", -1e7, 1e7)?;
    e.y_position = number(obj, "y_position", -1e7, 1e7)?;
    e.scroll_depth = number(obj, "scroll_depth", 0.0, 100.0)?;
    // A visit may last a long time, but not longer than the oldest event we accept.
    let max_ms = f64::from(cx.limits.max_event_age_days) * 86_400_000.0;
    e.duration = number(obj, "duration", 0.0, max_ms)?;
    e.load_time = number(obj, "load_time", 0.0, 3_600_000.0)?;
    for m in Metric::ALL {
        e.set_vital(m, number(obj, m.as_str(), 0.0, m.cap())?);
    }

    e.client_timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => cx.received_at - cx.skew_ms,
        Some(v) => millis(v, "timestamp")?,
    };
    e.timestamp = sane_time(e.client_timestamp + cx.skew_ms, "timestamp", cx)?;
    e.exit_timestamp = match obj.get("exit_timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(sane_time(
            millis(v, "exit_timestamp")? + cx.skew_ms,
            "exit_timestamp",
            cx,
        )?),
    };
    e.day = cx
        .zone
        .day_of(e.timestamp)
        .ok_or_else(|| Invalid::new("invalid_timestamp", "timestamp is out of range"))?;
    e.custom_data = custom_data(obj.get("custom_data"), cx.limits)?;
    if let Some(deny) = cx.redact {
        redact_urls(&mut e, deny);
    }
    let webdriver = webdriver(obj)? || cx.webdriver;
    classify_origin(&mut e, webdriver, cx.request_agent);
    // After its campaign tags and click ids fed the source: a page is its URL without them.
    if let Some(u) = e.page_url.as_mut() {
        if let Some(page) = page_of(u, cx.page_params) {
            *u = page;
        }
    }
    e.derive_visitor();
    if e.event_type == PAGE_VIEW && e.page_url.is_none() {
        return Err(Invalid::new("missing_field", "a page_view needs page_url"));
    }
    if e.event_type == WEB_VITALS {
        web_vitals(&mut e, cx)?;
    }
    Ok(e)
}

/// A `web_vitals` event names its page view and carries at least one metric; its device
/// type comes from the browser that sent it, so the request's agent is kept when it names
/// none (the SDK sends the agent with page views only).
fn web_vitals(e: &mut Event, cx: &Context) -> Result<(), Invalid> {
    if e.page_view_id.is_none() {
        return Err(Invalid::new(
            "missing_field",
            "a web_vitals event needs page_view_id",
        ));
    }
    if Metric::ALL.iter().all(|m| e.vital(*m).is_none()) {
        return Err(Invalid::new(
            "missing_field",
            "a web_vitals event needs at least one of lcp, inp, cls, fcp, ttfb",
        ));
    }
    if e.user_agent.is_none() {
        e.user_agent = cx.request_agent.map(str::to_string);
    }
    Ok(())
}

/// `"webdriver": true` in `obj` (an event or a batch).
pub fn webdriver(obj: &Map<String, Value>) -> Result<bool, Invalid> {
    match obj.get("webdriver") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Invalid::new(
            "invalid_type",
            "webdriver must be true or false",
        )),
    }
}

/// Where a page view came from (campaign tags, click id, source, channel) and whether the event
/// is a bot's. The referrer counts only when it is another site than the page's own.
fn classify_origin(e: &mut Event, webdriver: bool, request_agent: Option<&str>) {
    use maidian_analytics::{bots, source};
    let page_host = e.page_url.as_deref().and_then(source::host);
    let referrer_host = e
        .referrer
        .as_deref()
        .and_then(source::host)
        .filter(|h| page_host.as_ref() != Some(h));
    let agent = e.user_agent.as_deref().or(request_agent);
    e.bot = bots::classify(agent, webdriver, referrer_host.as_deref()).map(String::from);
    if e.event_type != PAGE_VIEW {
        return;
    }
    let landing = source::landing(e.page_url.as_deref().unwrap_or(""));
    e.channel = Some(source::channel(&landing, referrer_host.as_deref()).to_string());
    e.source = landing
        .source()
        .map(String::from)
        .or_else(|| source::referrer_source(referrer_host.as_deref()));
    let [s, m, c, t, ct] = landing.utm;
    (
        e.utm_source,
        e.utm_medium,
        e.utm_campaign,
        e.utm_term,
        e.utm_content,
    ) = (s, m, c, t, ct);
    e.click_id = landing.click_id.map(String::from);
}

/// A page URL as a page: without its query string, except the parameters `keep` names
/// (case-insensitive; `*` keeps every one), and without its fragment unless the fragment is a
/// hash-router route (`#/…` or `#!/…`, which the SDK counts as page views). `None` when the
/// URL is already a page. Every query string would otherwise make a new page: ad and
/// tracking parameters (`gclid`, `fbclid`, `r=`…) mint pages without bound.
pub fn page_of(url: &str, keep: &[String]) -> Option<String> {
    let (before, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before, None),
    };
    let route = fragment.filter(|f| f.starts_with('/') || f.starts_with("!/"));
    if query.is_none() && fragment == route {
        return None;
    }
    let all = keep.iter().any(|k| k == "*");
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !name.is_empty() && (all || keep.iter().any(|k| k.eq_ignore_ascii_case(name)))
        })
        .collect();
    let mut page = String::with_capacity(url.len());
    page.push_str(base);
    if !kept.is_empty() {
        page.push('?');
        page.push_str(&kept.join("&"));
    }
    if let Some(r) = route {
        page.push('#');
        page.push_str(r);
    }
    Some(page)
}

/// The URLs of an event without their sensitive query and fragment values.
fn redact_urls(e: &mut Event, deny: &str) {
    for u in [&mut e.page_url, &mut e.referrer].into_iter().flatten() {
        if let Some(clean) = crate::redact::url(u, deny) {
            *u = clean;
        }
    }
    if let Some(Value::String(action)) = e
        .custom_data
        .as_mut()
        .and_then(|d| d.get_mut("form_action"))
    {
        if let Some(clean) = crate::redact::url(action, deny) {
            *action = clean;
        }
    }
}

fn event_type(v: Option<&Value>) -> Result<String, Invalid> {
    let s = match v {
        None | Some(Value::Null) => {
            return Err(Invalid::new("missing_field", "event_type is required"))
        }
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(Invalid::new("invalid_type", "event_type must be a string")),
    };
    if s.is_empty() || s.chars().count() > MAX_EVENT_TYPE {
        return Err(Invalid::new(
            "invalid_event_type",
            format!("event_type must be 1 to {MAX_EVENT_TYPE} characters"),
        ));
    }
    if s.starts_with('$') || s.chars().any(char::is_control) {
        return Err(Invalid::new(
            "invalid_event_type",
            "event_type must not start with $ or hold control characters",
        ));
    }
    Ok(s.to_string())
}

fn event_id(v: Option<&Value>) -> Result<String, Invalid> {
    match v {
        None | Some(Value::Null) => Ok(uuid::Uuid::now_v7().to_string()),
        Some(Value::String(s)) => uuid::Uuid::parse_str(s)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| Invalid::new("invalid_event_id", "event_id must be a UUID")),
        Some(_) => Err(Invalid::new(
            "invalid_event_id",
            "event_id must be a UUID string",
        )),
    }
}

fn string(obj: &Map<String, Value>, name: &str, max: usize) -> Result<Option<String>, Invalid> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(Invalid::new(
            "field_too_long",
            format!("{name} is longer than {max} characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid::new(
            "invalid_type",
            format!("{name} must be a string"),
        )),
    }
}

fn number(
    obj: &Map<String, Value>,
    name: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, Invalid> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(Invalid::new(
                "out_of_range",
                format!("{name} must be between {min} and {max}"),
            )),
        },
        Some(_) => Err(Invalid::new(
            "invalid_type",
            format!("{name} must be a number"),
        )),
    }
}

/// Milliseconds since the epoch from a number of ms or an RFC 3339 string.
fn millis(v: &Value, name: &str) -> Result<i64, Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_timestamp",
            format!("{name} must be milliseconds since the epoch or an RFC 3339 string"),
        )
    };
    match v {
        Value::Number(n) => {
            let x = n.as_f64().ok_or_else(bad)?;
            // ±1e15 ms is ±31 000 years: beyond it the value is garbage, not a time.
            if !x.is_finite() || x.abs() > 1e15 {
                return Err(bad());
            }
            Ok(x as i64)
        }
        Value::String(s) => rfc3339_millis(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Milliseconds since the epoch of an RFC 3339 instant (`2026-11-30T10:00:00.5+02:00`): the
/// seconds and an offset required, no leap second, no RFC 9557 `[zone]` annotation.
fn rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let strict = b.len() >= 20 && b[13] == b':' && b[16] == b':' && &b[17..19] != b"60";
    if !strict || s.contains('[') {
        return None;
    }
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn sane_time(ms: i64, name: &str, cx: &Context) -> Result<i64, Invalid> {
    let oldest = cx.received_at - i64::from(cx.limits.max_event_age_days) * 86_400_000;
    let newest = cx.received_at + i64::from(cx.limits.max_future_secs) * 1000;
    if ms < oldest || ms > newest {
        return Err(Invalid::new(
            "timestamp_out_of_range",
            format!(
                "{name} must be within the last {} days and at most {} s ahead of the collector",
                cx.limits.max_event_age_days, cx.limits.max_future_secs
            ),
        ));
    }
    Ok(ms)
}

fn custom_data(v: Option<&Value>, limits: &Limits) -> Result<Option<Map<String, Value>>, Invalid> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Invalid::new(
                "invalid_type",
                "custom_data must be an object",
            ))
        }
    };
    for v in map.values() {
        check_value(v, 2, limits.max_custom_data_depth)?;
    }
    for k in map.keys() {
        check_key(k)?;
    }
    let size = serde_json::to_vec(map)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_custom_data_bytes {
        return Err(Invalid::new(
            "custom_data_too_large",
            format!(
                "custom_data is larger than {} bytes",
                limits.max_custom_data_bytes
            ),
        ));
    }
    Ok(if map.is_empty() {
        None
    } else {
        Some(map.clone())
    })
}

/// Walks `custom_data`: nesting depth, keys that MongoDB would read as operators or paths, and
/// arrays directly inside arrays (FerretDB refuses those documents; they are refused on every
/// store so that an event is valid or not whatever the store).
fn check_value(v: &Value, depth: usize, max_depth: usize) -> Result<(), Invalid> {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Object(m) => {
            for k in m.keys() {
                check_key(k)?;
            }
            Box::new(m.values())
        }
        Value::Array(a) => {
            if a.iter().any(Value::is_array) {
                return Err(Invalid::new(
                    "nested_array",
                    "custom_data must not hold an array directly inside an array; wrap the inner one in an object",
                ));
            }
            Box::new(a.iter())
        }
        _ => return Ok(()),
    };
    if depth > max_depth {
        return Err(Invalid::new(
            "custom_data_too_deep",
            format!("custom_data nests deeper than {max_depth} levels"),
        ));
    }
    for child in children {
        check_value(child, depth + 1, max_depth)?;
    }
    Ok(())
}

fn check_key(k: &str) -> Result<(), Invalid> {
    if k.is_empty() || k.chars().count() > 128 {
        return Err(Invalid::new(
            "invalid_key",
            "custom_data keys must be 1 to 128 characters",
        ));
    }
    if k.starts_with('$') || k.contains('.') || k.contains('\0') {
        return Err(Invalid::new(
            "invalid_key",
            format!("custom_data key {k:?} must not start with $ or contain . or NUL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_996_800_000; // 2026-11-30T00:00:00Z

    fn run(v: Value, skew_ms: i64) -> Result<Event, Invalid> {
        let limits = Limits::default();
        let zone = Zone::utc();
        let cx = Context {
            limits: &limits,
            site: "default",
            zone: &zone,
            redact: Some(crate::redact::DEFAULT_PARAMS),
            page_params: &[],
            received_at: NOW,
            skew_ms,
            request_agent: None,
            webdriver: false,
        };
        event(v.as_object().unwrap(), &cx, None)
    }

    #[test]
    fn a_page_is_its_url_without_query_and_fragment() {
        let keep = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            (
                "https://a.example/landing?r=1&gclid=x",
                &[],
                Some("https://a.example/landing"),
            ),
            (
                "https://a.example/p#section-2",
                &[],
                Some("https://a.example/p"),
            ),
            ("https://a.example/p", &[], None),
            // Hash-router routes are pages of their own.
            ("https://a.example/#/pricing?x=1", &[], None),
            (
                "https://a.example/?utm_source=x#!/about",
                &[],
                Some("https://a.example/#!/about"),
            ),
            // Chosen parameters stay, in their order, by name whatever the case.
            (
                "https://a.example/s?q=shoes&page=2&LANG=de",
                &["q", "lang"],
                Some("https://a.example/s?q=shoes&LANG=de"),
            ),
            (
                "https://a.example/s?q=a&b=c#top",
                &["*"],
                Some("https://a.example/s?q=a&b=c"),
            ),
            ("https://a.example/s?", &[], Some("https://a.example/s")),
        ];
        for (url, k, want) in cases {
            assert_eq!(page_of(url, &keep(k)).as_deref(), *want, "{url}");
        }
        // Campaign tags still feed the source before the page drops them.
        let e = run(
            json!({"event_type": "page_view", "page_url": "https://a.example/l?utm_source=news&fbclid=z#x"}),
            0,
        )
        .unwrap();
        assert_eq!(e.page_url.as_deref(), Some("https://a.example/l"));
        assert_eq!(e.utm_source.as_deref(), Some("news"));
    }

    #[test]
    fn web_vitals_name_their_page_view_and_stay_within_sane_caps() {
        let vitals = |extra: Value| {
            let mut v =
                json!({"event_type": "web_vitals", "page_view_id": "pv", "session_id": "s"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            run(v, 0)
        };
        let e = vitals(json!({"lcp": 2400.5, "inp": 0, "cls": 0.12})).unwrap();
        assert_eq!(
            (e.lcp, e.inp, e.cls, e.fcp),
            (Some(2400.5), Some(0.0), Some(0.12), None)
        );
        let code = |extra: Value| vitals(extra).unwrap_err().code;
        assert_eq!(code(json!({})), "missing_field");
        assert_eq!(code(json!({"lcp": -1})), "out_of_range");
        assert_eq!(code(json!({"inp": 60_001})), "out_of_range");
        assert_eq!(code(json!({"cls": 100.5})), "out_of_range");
        assert_eq!(code(json!({"ttfb": 600_001})), "out_of_range");
        assert_eq!(code(json!({"fcp": "fast"})), "invalid_type");
        let no_view = run(
            json!({"event_type": "web_vitals", "session_id": "s", "lcp": 1}),
            0,
        );
        assert_eq!(no_view.unwrap_err().code, "missing_field");
        // On other events too, the same checks.
        let other = run(
            json!({"event_type": "click", "session_id": "s", "cls": 1e9}),
            0,
        );
        assert_eq!(other.unwrap_err().code, "out_of_range");
    }

    #[test]
    fn classifies_where_a_page_view_came_from_and_bots() {
        let e = run(
            json!({"event_type": "page_view", "session_id": "s",
                "page_url": "https://shop.example/?utm_source=Newsletter&utm_medium=email&utm_campaign=nov&gclid=x&token=t",
                "referrer": "https://shop.example/cart"}),
            0,
        )
        .unwrap();
        assert_eq!(e.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(e.utm_campaign.as_deref(), Some("nov"));
        assert_eq!(e.click_id.as_deref(), Some("gclid"));
        assert_eq!(e.source.as_deref(), Some("newsletter"));
        // A paid click id wins over the e-mail tags (GA4's order); the own-site referrer is ignored.
        assert_eq!(e.channel.as_deref(), Some("Paid Search"));
        assert_eq!(e.bot, None);
        let e = run(
            json!({"event_type": "page_view", "session_id": "s", "page_url": "https://shop.example/",
                "referrer": "https://www.google.com/", "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}),
            0,
        )
        .unwrap();
        assert_eq!(
            (e.channel.as_deref(), e.source.as_deref()),
            (Some("Organic Search"), Some("google"))
        );
        assert_eq!(e.bot.as_deref(), Some("user_agent"));
        let e = run(json!({"event_type": "click", "webdriver": true}), 0).unwrap();
        assert_eq!(
            (e.bot.as_deref(), e.channel.as_deref()),
            (Some("webdriver"), None)
        );
        let e = run(
            json!({"event_type": "page_view", "page_url": "https://shop.example/", "referrer": "http://semalt.com/x"}),
            0,
        )
        .unwrap();
        assert_eq!(e.bot.as_deref(), Some("referrer_spam"));
        assert!(run(json!({"event_type": "click", "webdriver": "yes"}), 0).is_err());
    }

    #[test]
    fn enriches_a_minimal_event() {
        let e = run(json!({"event_type": "click", "session_id": "s1"}), 0).unwrap();
        assert_eq!(e.timestamp, NOW);
        assert_eq!(e.day.to_string(), "2026-11-30");
        assert_eq!(e.visitor.as_deref(), Some("s1"));
        assert_eq!(
            uuid::Uuid::parse_str(&e.event_id)
                .unwrap()
                .get_version_num(),
            7
        );
    }

    #[test]
    fn corrects_client_clock_skew() {
        // The client's clock is one hour fast: it says it sent at NOW+1h and clicked 5 s before.
        let sent = json!(NOW + 3_600_000);
        let skew = Context::skew_from(Some(&sent), NOW).unwrap();
        let e = run(
            json!({"event_type": "click", "timestamp": NOW + 3_600_000 - 5000}),
            skew,
        )
        .unwrap();
        assert_eq!(e.timestamp, NOW - 5000);
        assert_eq!(e.client_timestamp, NOW + 3_600_000 - 5000);
        assert_eq!(e.day.to_string(), "2026-11-29");
    }

    #[test]
    fn refuses_bad_fields_with_codes() {
        let cases = [
            (json!({}), "missing_field"),
            (json!({"event_type": 5}), "invalid_type"),
            (json!({"event_type": "$set"}), "invalid_event_type"),
            (
                json!({"event_type": "a", "event_id": "nope"}),
                "invalid_event_id",
            ),
            (
                json!({"event_type": "a", "scroll_depth": 101}),
                "out_of_range",
            ),
            (
                json!({"event_type": "a", "timestamp": "yesterday"}),
                "invalid_timestamp",
            ),
            (
                json!({"event_type": "a", "timestamp": 0}),
                "timestamp_out_of_range",
            ),
            (
                json!({"event_type": "a", "custom_data": {"$where": 1}}),
                "invalid_key",
            ),
            (
                json!({"event_type": "a", "custom_data": {"x": [{"a.b": 1}]}}),
                "invalid_key",
            ),
            (
                json!({"event_type": "a", "custom_data": {"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}),
                "custom_data_too_deep",
            ),
            (json!({"event_type": "page_view"}), "missing_field"),
        ];
        for (input, code) in cases {
            let got = run(input.clone(), 0).unwrap_err();
            assert_eq!(got.code, code, "{input} -> {got:?}");
        }
    }
}
