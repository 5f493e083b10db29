//! CSV export of raw events: RFC 4180 quoting, UTF-8, one header line, one row per event.
//!
//! Text cells are safe to open in a spreadsheet by default ([`Cells::Spreadsheet`]): a cell
//! whose text starts with `=`, `+`, `-`, `@`, tab or CR (what Excel, LibreOffice and Google
//! Sheets read as a formula) gets a leading `'`, as OWASP advises against CSV injection.
//! [`Cells::Raw`] writes every value as stored, for programs.
//! Callers page through the store with `events_after` and write rows as they come, so an
//! export never holds more than one page in memory.

use maidian_core::event::Event;

/// The columns, in order: the seed's event fields plus what the collector adds.
pub const COLUMNS: &[&str] = &[
    "event_id",
    "event_type",
    "timestamp",
    "day",
    "user_id",
    "anonymous_id",
    "session_id",
    "page_view_id",
    "page_url",
    "page_title",
    "element_id",
    "element_class",
    "element_text",
    "x_position",
    "y_position",
    "scroll_depth",
    "referrer",
    "user_agent",
    "screen_resolution",
    "viewport_size",
    "duration",
    "load_time",
    "exit_timestamp",
    "received_at",
    "custom_data",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "click_id",
    "source",
    "channel",
    "bot",
    "lcp",
    "fcp",
    "ttfb",
    "inp",
    "cls",
];

pub fn header() -> String {
    let mut s = COLUMNS.join(",");
    s.push_str("\r\n");
    s
}

/// How text cells are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cells {
    /// Text that a spreadsheet would run as a formula is prefixed with `'`.
    #[default]
    Spreadsheet,
    /// Every value as stored.
    Raw,
}

/// `value` as a spreadsheet shows it, not runs it.
fn defused(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

fn push_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn num(v: Option<f64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

/// One CSV line (with `\r\n`) for `e`. Numbers and times are never changed; text cells are
/// written per `cells`.
pub fn row(e: &Event, cells: Cells) -> String {
    let text = |v: &str| match cells {
        Cells::Raw => v.to_string(),
        Cells::Spreadsheet => defused(v).into_owned(),
    };
    let s = |v: &Option<String>| v.as_deref().map(text).unwrap_or_default();
    let fields = [
        text(&e.event_id),
        text(&e.event_type),
        iso(e.timestamp),
        e.day.to_string(),
        s(&e.user_id),
        s(&e.anonymous_id),
        s(&e.session_id),
        s(&e.page_view_id),
        s(&e.page_url),
        s(&e.page_title),
        s(&e.element_id),
        s(&e.element_class),
        s(&e.element_text),
        num(e.x_position),
        num(e.y_position),
        num(e.scroll_depth),
        s(&e.referrer),
        s(&e.user_agent),
        s(&e.screen_resolution),
        s(&e.viewport_size),
        num(e.duration),
        num(e.load_time),
        e.exit_timestamp.map(iso).unwrap_or_default(),
        iso(e.received_at),
        s(&e.custom_data
            .as_ref()
            .map(|c| serde_json::Value::Object(c.clone()).to_string())),
        s(&e.utm_source),
        s(&e.utm_medium),
        s(&e.utm_campaign),
        s(&e.utm_term),
        s(&e.utm_content),
        s(&e.click_id),
        s(&e.source),
        s(&e.channel),
        s(&e.bot),
        num(e.lcp),
        num(e.fcp),
        num(e.ttfb),
        num(e.inp),
        num(e.cls),
    ];
    let mut out = String::with_capacity(256);
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(&mut out, f);
    }
    out.push_str("\r\n");
    out
}

/// Everything held about one visitor (see [`maidian_core::lifecycle`]) in `site`, all days, as a
/// whole CSV file: the answer to an access request, for the HTTP export and the CLI.
pub async fn visitor_csv(
    store: &maidian_store::Store,
    site: &str,
    visitor: &str,
    cells: Cells,
) -> Result<String, maidian_store::StoreError> {
    let mut csv = header();
    for e in store.visitor_events(site, visitor).await? {
        csv.push_str(&row(&e, cells));
    }
    Ok(csv)
}

/// Pages through the events of one site in a period, in `(timestamp, event_id)` order.
pub struct Pager<'a> {
    store: &'a maidian_store::Store,
    site: String,
    after: Option<(i64, String)>,
    until_ms: i64,
    limit: usize,
    done: bool,
}

impl<'a> Pager<'a> {
    pub fn new(
        store: &'a maidian_store::Store,
        site: &str,
        p: maidian_core::stats::Period,
        limit: usize,
    ) -> Pager<'a> {
        Pager {
            store,
            site: site.to_string(),
            // `after` is exclusive and ids are never empty: this starts at the period's start.
            after: Some((p.start_ms, String::new())),
            until_ms: p.end_ms,
            limit,
            done: false,
        }
    }

    pub async fn next_page(&mut self) -> Result<Option<Vec<Event>>, maidian_store::StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .events_after(
                Some(&self.site),
                self.after.take(),
                Some(self.until_ms),
                self.limit,
            )
            .await?;
        self.done = page.len() < self.limit;
        match page.last() {
            Some(last) => {
                self.after = Some((last.timestamp, last.event_id.clone()));
                Ok(Some(page))
            }
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maidian_core::event::Day;

    #[test]
    fn quotes_what_needs_quoting() {
        let e = Event {
            event_id: "id-1".into(),
            event_type: "click".into(),
            element_text: Some("Buy, \"now\"\nplease".into()),
            page_title: Some("中文标题".into()),
            x_position: Some(12.5),
            timestamp: 1_795_996_800_000,
            received_at: 1_795_996_800_000,
            day: Day::parse("2026-11-30").unwrap(),
            custom_data: serde_json::json!({"a": 1}).as_object().cloned(),
            ..Event::default()
        };
        let line = row(&e, Cells::Spreadsheet);
        assert!(
            line.starts_with("id-1,click,2026-11-30T00:00:00Z,2026-11-30,"),
            "{line}"
        );
        assert!(line.contains(",中文标题,"));
        assert!(
            line.contains(",\"Buy, \"\"now\"\"\nplease\",12.5,"),
            "{line}"
        );
        assert!(
            line.ends_with(",\"{\"\"a\"\":1}\",,,,,,,,,,,,,,\r\n"),
            "{line}"
        );
        assert_eq!(line.matches(',').count() - 1, COLUMNS.len() - 1); // one comma is quoted
        assert_eq!(header().trim_end().split(',').count(), COLUMNS.len());
    }

    #[test]
    fn formulas_are_defused_unless_raw() {
        let e = Event {
            event_id: "id-2".into(),
            event_type: "click".into(),
            element_text: Some("=HYPERLINK(\"http://x\",\"y\")".into()),
            page_title: Some("+1".into()),
            element_id: Some("@SUM(A1)".into()),
            element_class: Some("\tx".into()),
            referrer: Some("-2+3".into()),
            user_agent: Some("a=b".into()),
            x_position: Some(-5.0),
            ..Event::default()
        };
        let safe = row(&e, Cells::Spreadsheet);
        for cell in ["'+1", "'@SUM(A1)", "'\tx", "'-2+3", ",a=b,", ",-5,"] {
            assert!(safe.contains(cell), "{cell} in {safe}");
        }
        assert!(
            safe.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
            "{safe}"
        );
        let raw = row(&e, Cells::Raw);
        assert!(!raw.contains('\''), "{raw}");
        assert!(raw.contains(",+1,"), "{raw}");
    }
}
