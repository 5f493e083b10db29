//! Rollups: small pre-aggregated documents that the dashboards read instead of raw events.
//!
//! [`Delta::of`] turns a batch of newly stored events into increments and minimums per rollup
//! key; every store applies a delta with `$inc`/`$min` upserts (or the embedded equivalent).
//! Both operations are commutative, so applying the deltas of any split of the same events, in
//! any order, gives the same rollups: that is what lets `maidian rollups rebuild` recompute
//! them from raw events and get the figures the collector built live.
//!
//! Maxima are kept as minima of the negated value (`neg_*`), because FerretDB v1 is only
//! trusted here with `$inc`, `$min` and `$set`.
//!
//! Field names are the [`Field`] enum, shared by the writer ([`Delta`]) and the readers
//! (`RollupDoc::int`/`str`), so a misspelt field cannot become a silent zero. Keys joining
//! several values go through [`key`], which escapes the separator so that no two different
//! tuples share a key.

use std::collections::{HashMap, HashSet};

use crate::bitmap::{self, Bits, Numbers};
use crate::event::{Event, PAGE_LEAVE, PAGE_VIEW, WEB_VITALS};
pub mod reach;

use self::reach::Reach;
use crate::site::Zones;
pub use crate::site::{key_in_site, site_key};
use crate::vitals::{self, Metric};

/// The rollup format both stores write: rollup documents are keyed `site|…` and carry their
/// site since format 1; distinct visitors are bitmaps since format 2; time on page and
/// sessions are pre-summed by day since format 4; retention is counted by (first day, active
/// day) since format 5; distinct visitors are counted by gap (`crate::rollup::reach`) since format 6;
/// the page index ([`PAGE_INDEX`]) caps a day's pages since format 7.
pub const FORMAT: u32 = 7;

/// Rollup collection names (MongoDB) and table names (embedded).
pub const DAILY_TYPE: &str = "rollup_daily_type";
/// Distinct visitors by day: one bitmap of visitor numbers per day (`Field::Visitors`).
pub const DAILY_USERS: &str = "rollup_daily_users";
/// Page views and distinct visitors by day and page (`Field::Views`, `Field::Visitors`).
pub const DAILY_PAGE: &str = "rollup_daily_page";
/// Visitors by the day they were first seen: each visitor's number in exactly one bitmap,
/// moved when an earlier event of theirs arrives late (see [`Delta::first_days`]).
pub const FIRST_DAY: &str = "rollup_first_day";
/// Per visitor: first day and landing. The consumer's state for [`FIRST_DAY`], and the
/// funnel's origin filter; figures of a period never read it whole.
pub const FIRST_SEEN: &str = "rollup_first_seen";
/// Per session: first day, first and last timestamps, counts, visitor and landing. The
/// consumer's state for [`DAILY_SESSIONS`], [`DAILY_CHANNEL`] and [`DAILY_CAMPAIGN`];
/// figures never read it.
pub const SESSIONS: &str = "rollup_sessions";
/// Sessions pre-summed by the day they started: `Field::Count` sessions, `Field::Bounces`,
/// `Field::Duration` (sum of last event − first event, ms).
pub const DAILY_SESSIONS: &str = "rollup_daily_sessions";
/// Sessions (`Field::Count`) and their visitors (`Field::Visitors`) by day and the channel
/// of their landing page view (`Field::Name`).
pub const DAILY_CHANNEL: &str = "rollup_daily_channel";
/// Sessions and their visitors by day and landing campaign (`Field::Source`,
/// `Field::Medium`, `Field::Campaign`), for sessions that landed with campaign tags.
pub const DAILY_CAMPAIGN: &str = "rollup_daily_campaign";
/// How many of a visitor's sessions of a day landed by a channel (or campaign): keyed
/// `day|kind|…|visitor`, `Field::Count`. The consumer's state for the visitor bitmaps of
/// [`DAILY_CHANNEL`] and [`DAILY_CAMPAIGN`]: a visitor's bit is set while this is above zero.
pub const CHANNEL_VISITOR: &str = "rollup_channel_visitor";
/// Per page view: its longest reported duration, day and page. The consumer's state for
/// [`DAILY_PAGE_TIME`]; figures never read it.
pub const PAGE_TIME: &str = "rollup_page_time";
/// Time on page pre-summed by day and page: page views that reported a duration
/// (`Field::Count`) and the sum of their durations (`Field::Duration`, ms), each page view
/// counted once with its longest duration (see [`Delta::settle`]).
pub const DAILY_PAGE_TIME: &str = "rollup_daily_page_time";
pub const DAILY_REFERRER: &str = "rollup_daily_referrer";
pub const DAILY_AGENT: &str = "rollup_daily_agent";
/// Flagged events by day and reason (`Field::Name`), for the summary's `bots`.
pub const DAILY_BOT: &str = "rollup_daily_bot";
/// Core Web Vitals histograms: page views by day, metric, device, page, bucket and rating
/// (`crate::vitals`).
pub const DAILY_VITALS: &str = "rollup_daily_vitals";
/// Day-N retention counted as events arrive: visitors by the day they were first seen
/// (`Field::Day`, the cohort) and a day they were active (`Field::ActiveDay`), `Field::Count`,
/// keyed `cohort|day`. Settled against each visitor's first-seen document, which keeps the
/// days they were active (see [`Delta::settle`]), so a retention figure reads a few hundred
/// counters instead of every visitor's bit.
pub const RETENTION: &str = "rollup_retention";
/// The pages of each day that have rows of their own, keyed `day|page` (`Field::Count` 1):
/// the first [`ConsumerConfig::max_pages_per_day`](crate::consumer::ConsumerConfig) distinct
/// pages a site's events name on a day, in log order; later ones are counted under
/// [`OTHER_PAGE`] in every figure by page (see [`Delta::cap_pages`]). Figures never read it.
pub const PAGE_INDEX: &str = "rollup_page_index";

/// The page that the views, times and vitals of a day's pages beyond the cap are counted
/// under.
pub const OTHER_PAGE: &str = "(other)";

/// Each rollup and its bot twin: the same documents, made of the events flagged as bots' only.
/// Figures read the rollups; with bots included they read both and merge them
/// ([`merge_docs`]). So excluding bots costs nothing and including them costs one more read.
pub const TWINS: &[(&str, &str)] = &[
    (DAILY_TYPE, BOT_DAILY_TYPE),
    (DAILY_USERS, BOT_DAILY_USERS),
    (DAILY_PAGE, BOT_DAILY_PAGE),
    (FIRST_DAY, BOT_FIRST_DAY),
    (FIRST_SEEN, BOT_FIRST_SEEN),
    (SESSIONS, BOT_SESSIONS),
    (DAILY_SESSIONS, BOT_DAILY_SESSIONS),
    (DAILY_CHANNEL, BOT_DAILY_CHANNEL),
    (DAILY_CAMPAIGN, BOT_DAILY_CAMPAIGN),
    (CHANNEL_VISITOR, BOT_CHANNEL_VISITOR),
    (PAGE_TIME, BOT_PAGE_TIME),
    (DAILY_PAGE_TIME, BOT_DAILY_PAGE_TIME),
    (DAILY_REFERRER, BOT_DAILY_REFERRER),
    (DAILY_AGENT, BOT_DAILY_AGENT),
    (DAILY_VITALS, BOT_DAILY_VITALS),
    (RETENTION, BOT_RETENTION),
    (PAGE_INDEX, BOT_PAGE_INDEX),
];
const BOT_DAILY_TYPE: &str = "rollup_bot_daily_type";
const BOT_DAILY_USERS: &str = "rollup_bot_daily_users";
const BOT_DAILY_PAGE: &str = "rollup_bot_daily_page";
const BOT_FIRST_DAY: &str = "rollup_bot_first_day";
const BOT_FIRST_SEEN: &str = "rollup_bot_first_seen";
const BOT_SESSIONS: &str = "rollup_bot_sessions";
const BOT_DAILY_SESSIONS: &str = "rollup_bot_daily_sessions";
const BOT_DAILY_CHANNEL: &str = "rollup_bot_daily_channel";
const BOT_DAILY_CAMPAIGN: &str = "rollup_bot_daily_campaign";
const BOT_CHANNEL_VISITOR: &str = "rollup_bot_channel_visitor";
const BOT_PAGE_TIME: &str = "rollup_bot_page_time";
const BOT_DAILY_PAGE_TIME: &str = "rollup_bot_daily_page_time";
const BOT_DAILY_REFERRER: &str = "rollup_bot_daily_referrer";
const BOT_DAILY_AGENT: &str = "rollup_bot_daily_agent";
const BOT_DAILY_VITALS: &str = "rollup_bot_daily_vitals";
const BOT_RETENTION: &str = "rollup_bot_retention";
const BOT_PAGE_INDEX: &str = "rollup_bot_page_index";

pub const ALL: &[&str] = &[
    DAILY_TYPE,
    DAILY_USERS,
    DAILY_PAGE,
    FIRST_DAY,
    FIRST_SEEN,
    SESSIONS,
    DAILY_SESSIONS,
    DAILY_CHANNEL,
    DAILY_CAMPAIGN,
    CHANNEL_VISITOR,
    PAGE_TIME,
    DAILY_PAGE_TIME,
    DAILY_REFERRER,
    DAILY_AGENT,
    DAILY_BOT,
    DAILY_VITALS,
    RETENTION,
    PAGE_INDEX,
    BOT_DAILY_TYPE,
    BOT_DAILY_USERS,
    BOT_DAILY_PAGE,
    BOT_FIRST_DAY,
    BOT_FIRST_SEEN,
    BOT_SESSIONS,
    BOT_DAILY_SESSIONS,
    BOT_DAILY_CHANNEL,
    BOT_DAILY_CAMPAIGN,
    BOT_CHANNEL_VISITOR,
    BOT_PAGE_TIME,
    BOT_DAILY_PAGE_TIME,
    BOT_DAILY_REFERRER,
    BOT_DAILY_AGENT,
    BOT_DAILY_VITALS,
    BOT_RETENTION,
    BOT_PAGE_INDEX,
];

/// Rollups whose documents hold a bitmap of visitor numbers (`Field::Visitors`), besides
/// their bot twins.
pub const WITH_VISITORS: &[&str] = &[
    DAILY_TYPE,
    DAILY_USERS,
    DAILY_PAGE,
    FIRST_DAY,
    DAILY_CHANNEL,
    DAILY_CAMPAIGN,
];

/// The bot twin of `rollup` (itself for a rollup that has none).
pub fn bot_twin(rollup: &'static str) -> &'static str {
    TWINS
        .iter()
        .find(|(r, _)| *r == rollup)
        .map_or(rollup, |(_, twin)| *twin)
}

/// Fields that count (summed when two sets of documents are merged); every other field is a
/// minimum or an identity (the least value is kept).
pub const ADDITIVE: &[Field] = &[
    Field::Count,
    Field::Events,
    Field::PageViews,
    Field::Interactions,
    Field::Views,
    Field::Duration,
    Field::Bounces,
];

/// The documents that one rollup would hold had the events of `a` and `b` been rolled up
/// together: same keys merged, counts summed, bitmaps united, minimums and identities
/// lowered.
pub fn merge_docs(a: Vec<RollupDoc>, b: Vec<RollupDoc>) -> Vec<RollupDoc> {
    let mut by_id: HashMap<String, RollupDoc> = HashMap::with_capacity(a.len() + b.len());
    for doc in a.into_iter().chain(b) {
        match by_id.get_mut(&doc.id) {
            None => {
                by_id.insert(doc.id.clone(), doc);
            }
            Some(mine) => {
                for (f, v) in doc.fields {
                    match (mine.fields.get_mut(&f), v) {
                        (Some(Value::Int(x)), Value::Int(y)) if f.additive() => *x += y,
                        (Some(Value::Bits(x)), Value::Bits(y)) => {
                            *x = bitmap::encode(&(bitmap::decode(x) | bitmap::decode(&y)));
                        }
                        (Some(x), y) => {
                            if y < *x {
                                *x = y;
                            }
                        }
                        (None, y) => {
                            mine.fields.insert(f, y);
                        }
                    }
                }
            }
        }
    }
    let mut out: Vec<RollupDoc> = by_id.into_values().collect();
    out.sort_by(|x, y| x.id.cmp(&y.id));
    out
}

/// Event types that count as interaction: a session with one page view and none of these is
/// a bounce.
pub const INTERACTIONS: &[&str] = &["click", "form_submit"];

/// Every field a rollup document holds. Writers and readers name fields only through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Count,
    Day,
    EventType,
    Events,
    Visitor,
    FirstDay,
    FirstTs,
    NegLastTs,
    PageViews,
    Interactions,
    Views,
    PageUrl,
    NegDuration,
    Referrer,
    Kind,
    Name,
    Landing,
    Site,
    Metric,
    Device,
    Bucket,
    Rating,
    Visitors,
    Duration,
    Bounces,
    Source,
    Medium,
    Campaign,
    ActiveDay,
    Days,
    /// A visitor's days per page, event type, channel and campaign (first-seen documents,
    /// [`Reach`]).
    Reach,
    /// Visitors of a daily document (a day's visitors, or of a page, type, channel or
    /// campaign on a day) whose previous day there was this many days earlier; `Gap(0)`:
    /// none within [`MAX_GAP`] days. What distinct visitors over a range are counted from
    /// ([`crate::rollup::reach::reached`]).
    Gap(u16),
}

impl Field {
    pub const ALL: &'static [Field] = &[
        Field::Count,
        Field::Day,
        Field::EventType,
        Field::Events,
        Field::Visitor,
        Field::FirstDay,
        Field::FirstTs,
        Field::NegLastTs,
        Field::PageViews,
        Field::Interactions,
        Field::Views,
        Field::PageUrl,
        Field::NegDuration,
        Field::Referrer,
        Field::Kind,
        Field::Name,
        Field::Landing,
        Field::Site,
        Field::Metric,
        Field::Device,
        Field::Bucket,
        Field::Rating,
        Field::Visitors,
        Field::Duration,
        Field::Bounces,
        Field::Source,
        Field::Medium,
        Field::Campaign,
        Field::ActiveDay,
        Field::Days,
        Field::Reach,
    ];

    /// The stored name (MongoDB field, embedded JSON key).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Count => "count",
            Field::Day => "day",
            Field::EventType => "event_type",
            Field::Events => "events",
            Field::Visitor => "visitor",
            Field::FirstDay => "first_day",
            Field::FirstTs => "first_ts",
            Field::NegLastTs => "neg_last_ts",
            Field::PageViews => "page_views",
            Field::Interactions => "interactions",
            Field::Views => "views",
            Field::PageUrl => "page_url",
            Field::NegDuration => "neg_duration",
            Field::Referrer => "referrer",
            Field::Kind => "kind",
            Field::Name => "name",
            Field::Landing => "landing",
            Field::Site => "site",
            Field::Metric => "metric",
            Field::Device => "device",
            Field::Bucket => "bucket",
            Field::Rating => "rating",
            Field::Visitors => "visitors",
            Field::Duration => "duration_ms",
            Field::Bounces => "bounces",
            Field::Source => "source",
            Field::Medium => "medium",
            Field::Campaign => "campaign",
            Field::ActiveDay => "active_day",
            Field::Days => "days",
            Field::Reach => "reach",
            Field::Gap(g) => gap_name(g),
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        if let Some(g) = name.strip_prefix('g').and_then(|n| n.parse::<u16>().ok()) {
            return (g <= MAX_GAP && gap_name(g) == name).then_some(Field::Gap(g));
        }
        Field::ALL.iter().copied().find(|f| f.as_str() == name)
    }

    /// Whether the field counts (summed when documents are merged, [`ADDITIVE`] and gaps).
    pub fn additive(self) -> bool {
        matches!(self, Field::Gap(_)) || ADDITIVE.contains(&self)
    }
}

/// The longest gap between two days of a visitor that a [`Field::Gap`] tells apart: the
/// longest period a figure covers (366 days), so that any period's distinct visitors are
/// counted exactly.
pub const MAX_GAP: u16 = 366;

/// The stored name of `Gap(g)`: `g0` … `g366`.
fn gap_name(g: u16) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| (0..=MAX_GAP).map(|g| format!("g{g}")).collect())
        .get(usize::from(g))
        .map_or("g", String::as_str)
}

/// The key of a rollup document made of several values: joined by `|`, with `\` and `|`
/// inside a value escaped, so `("a|b", "c")` and `("a", "b|c")` stay two keys. Days never
/// need escaping, so keys starting with a day still sort by day.
pub fn key(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for ch in part.chars() {
            if ch == '|' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
    }
    out
}

/// One rollup document's change: fields to add to, fields to lower to a minimum, fields
/// that identify it (derived from the key, so the same for every update of that key), and
/// bitmaps to set and clear numbers in. Counts, minimums and identities are
/// order-independent, so any split of the same events gives the same documents; bitmap
/// changes are idempotent, and those that depend on what is stored already (a visitor's
/// first day moving) are settled against it before applying ([`Delta::first_days`]).
///
/// A document whose bitmaps are all empty and whose counters are all zero is deleted by the
/// store (a rebuild would not have it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    pub inc: Vec<(Field, i64)>,
    pub min: Vec<(Field, Value)>,
    pub set: Vec<(Field, Value)>,
    pub bits: Vec<(Field, Bits)>,
}

/// A rollup field value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Value {
    Int(i64),
    Str(String),
    /// A bitmap of visitor numbers in its stored form ([`bitmap::encode`]).
    Bits(Vec<u8>),
}

/// Stored consumer-state documents (first-seen, page time) the settling of a delta needs:
/// (rollup, `_id`) → fields, for those of [`Delta::state_keys`] that exist.
pub type Known = HashMap<(&'static str, String), HashMap<Field, Value>>;

/// Rollups whose documents are the consumer's state: read back, by key, to settle the
/// changes that depend on them ([`Delta::settle`]), and applied after everything else.
pub const STATE: &[&str] = &[FIRST_SEEN, PAGE_TIME, SESSIONS];

/// The order a chunk's changes are applied in: figures (0), then the channel-visitor counts
/// (1), settled against the sessions, then the state documents (2) the rest was settled
/// against. So a chunk interrupted part way and applied again settles alike: what is read to
/// settle a level changes only after that level landed.
pub fn apply_level(rollup: &str) -> u8 {
    let is = |r: &'static str| r == rollup || bot_twin(r) == rollup;
    if STATE.iter().any(|r| is(r)) {
        2
    } else if is(CHANNEL_VISITOR) {
        1
    } else {
        0
    }
}

/// The changes of one batch, per rollup and key (`_id`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Delta {
    pub changes: HashMap<&'static str, HashMap<String, Change>>,
    /// The pages the events named, in log order: the order pages are admitted in
    /// ([`Delta::cap_pages`]).
    named: Vec<PageDay>,
}

/// A page of a site's day, in the people's page index or the bots' ([`PAGE_INDEX`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageDay {
    pub index: &'static str,
    pub site: String,
    pub day: String,
    pub page: String,
}

/// A page's entry in a page index and the rows (rollup, `_id`) an erasure touches of it
/// ([`Delta::page_entries`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PageEntry {
    pub index: &'static str,
    pub entry: String,
    pub rows: Vec<(&'static str, String)>,
}

/// A site's day in the people's page index or the bots' ([`PAGE_INDEX`]).
pub type IndexDay = (&'static str, String, String);

/// The pages each day touched by a delta had rows of their own for before it
/// ([`Delta::index_days`]), as the store read them from [`PAGE_INDEX`].
pub type Admitted = HashMap<IndexDay, HashSet<String>>;

/// Rollups with a page in their key, each with its twin and its index.
const BY_PAGE: &[(&str, &str)] = &[
    (DAILY_PAGE, PAGE_INDEX),
    (DAILY_PAGE_TIME, PAGE_INDEX),
    (DAILY_VITALS, PAGE_INDEX),
    (BOT_DAILY_PAGE, BOT_PAGE_INDEX),
    (BOT_DAILY_PAGE_TIME, BOT_PAGE_INDEX),
    (BOT_DAILY_VITALS, BOT_PAGE_INDEX),
];

impl Change {
    fn add(&mut self, field: Field, n: i64) {
        match self.inc.iter_mut().find(|(f, _)| *f == field) {
            Some((_, v)) => *v += n,
            None => self.inc.push((field, n)),
        }
    }

    fn lower(&mut self, field: Field, value: Value) {
        match self.min.iter_mut().find(|(f, _)| *f == field) {
            Some((_, v)) => {
                if value < *v {
                    *v = value;
                }
            }
            None => self.min.push((field, value)),
        }
    }

    fn ident(&mut self, field: Field, value: Value) {
        if !self.set.iter().any(|(f, _)| *f == field) {
            self.set.push((field, value));
        }
    }

    /// The text identity `field`.
    fn text(&self, field: Field) -> Option<&str> {
        self.set.iter().find_map(|(f, v)| match v {
            Value::Str(s) if *f == field => Some(s.as_str()),
            _ => None,
        })
    }

    fn bits_mut(&mut self, field: Field) -> &mut Bits {
        let i = match self.bits.iter().position(|(f, _)| *f == field) {
            Some(i) => i,
            None => {
                self.bits.push((field, Bits::default()));
                self.bits.len() - 1
            }
        };
        &mut self.bits[i].1
    }

    /// The site whose document this changes (its `site` identity).
    pub fn site(&self) -> Option<&str> {
        self.set.iter().find_map(|(f, v)| match (f, v) {
            (Field::Site, Value::Str(s)) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Applies the counts (added) and minimums (lowered) to a stored document's `fields`.
    pub fn apply_counts(&self, fields: &mut HashMap<Field, Value>) {
        for (f, n) in &self.inc {
            let old = match fields.get(f) {
                Some(Value::Int(v)) => *v,
                _ => 0,
            };
            fields.insert(*f, Value::Int(old + n));
        }
        for (f, v) in &self.min {
            if fields.get(f).is_none_or(|old| v < old) {
                fields.insert(*f, v.clone());
            }
        }
    }

    /// Adds visitor number `n` to this document's visitors.
    fn visitor(&mut self, n: Option<u32>) {
        if let Some(n) = n {
            let b = self.bits_mut(Field::Visitors);
            b.clear.remove(n);
            b.set.insert(n);
        }
    }
}

/// Whether a stored document is empty: it has counters or bitmaps, and no bitmap holds a
/// number and no counter is above zero (an erasure took back all it held). Stores delete
/// such documents after applying a change: a rebuild would not have them. Documents with
/// neither (first-seen, page time) are never empty.
pub fn is_empty(fields: &HashMap<Field, Value>) -> bool {
    let mut measured = false;
    for (f, v) in fields {
        match v {
            Value::Bits(b) if *f != Field::Reach => {
                measured = true;
                if !bitmap::decode(b).is_empty() {
                    return false;
                }
            }
            Value::Int(n) if f.additive() => {
                measured = true;
                if *n > 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    measured
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

/// The key of `c` (a change of by-page rollup `rollup`) with its page [`OTHER_PAGE`].
fn folded_key(rollup: &str, c: &Change) -> Option<String> {
    let day = c.text(Field::Day)?;
    if rollup != DAILY_VITALS && rollup != BOT_DAILY_VITALS {
        return Some(key(&[day, OTHER_PAGE]));
    }
    let bucket = c.set.iter().find_map(|(f, v)| match v {
        Value::Int(b) if *f == Field::Bucket => Some(b.to_string()),
        _ => None,
    })?;
    Some(key(&[
        day,
        c.text(Field::Metric)?,
        c.text(Field::Device)?,
        OTHER_PAGE,
        &bucket,
        c.text(Field::Rating)?,
    ]))
}

/// A page view's origin as one string whose least value is the earliest view's:
/// `timestamp|channel|source|medium|campaign` (the timestamp zero-padded, parts escaped by
/// [`key`]). Kept with `$min`, so any split of the events gives the same.
pub fn landing(e: &Event) -> String {
    let ts = format!("{:016}", e.timestamp.max(0));
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    key(&[
        &ts,
        &o(&e.channel),
        &o(&e.source),
        &o(&e.utm_medium),
        &o(&e.utm_campaign),
    ])
}

/// The parts of a [`landing`] string: (channel, source, medium, campaign); `None` for a
/// session or visitor with no page view.
pub fn landing_parts(landing: &str) -> Option<[String; 4]> {
    let mut parts = Vec::with_capacity(5);
    let mut cur = String::new();
    let mut chars = landing.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            '|' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    match <[String; 5]>::try_from(parts) {
        Ok([_, channel, source, medium, campaign]) => Some([channel, source, medium, campaign]),
        Err(_) => None,
    }
}

/// The part of a URL that names the site, for referrers: `https://a.example/x` → `a.example`.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    (!host.is_empty()).then_some(host)
}

/// (browser, operating system, device category) of a user agent.
pub fn agent_of(ua: &str) -> (String, String, String) {
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) => (r.name.to_string(), r.os.to_string(), r.category.to_string()),
        None => ("UNKNOWN".into(), "UNKNOWN".into(), "UNKNOWN".into()),
    }
}

impl Change {
    /// Folds `other` (a later change of the same key, or of a page folded into this one's
    /// `(other)`) into this one: counts added, minimums lowered, bitmaps combined, identities
    /// this one lacks taken.
    fn merge(&mut self, other: Change) {
        for (f, n) in other.inc {
            self.add(f, n);
        }
        for (f, v) in other.min {
            self.lower(f, v);
        }
        for (f, v) in other.set {
            self.ident(f, v);
        }
        for (f, b) in other.bits {
            self.bits_mut(f).then(&b);
        }
    }
}

impl Delta {
    /// Folds `other` into this delta; applying the result equals applying both.
    pub fn merge(&mut self, other: Delta) {
        for (rollup, changes) in other.changes {
            let mine = self.changes.entry(rollup).or_default();
            for (key, change) in changes {
                match mine.get_mut(&key) {
                    Some(c) => c.merge(change),
                    None => {
                        mine.insert(key, change);
                    }
                }
            }
        }
    }

    /// How many rollup documents applying this delta touches.
    pub fn keys(&self) -> usize {
        self.changes.values().map(HashMap::len).sum()
    }

    /// The change of document `key` of `site` in `rollup`: its `_id` is `site|key` (a site id
    /// has no `|`, so the rest stays as it was) and it carries its `site`.
    fn change(&mut self, rollup: &'static str, site: &str, key: String) -> &mut Change {
        let c = self
            .changes
            .entry(rollup)
            .or_default()
            .entry(site_key(site, &key))
            .or_default();
        c.ident(Field::Site, s(site));
        c
    }

    /// The rollup changes that `events` (newly stored, each once) make to empty rollups, on
    /// the days they were stored with, visitors numbered in order of appearance
    /// ([`bitmap::local_numbers`]). Events flagged as bots' go to the bot twins (and are
    /// counted by reason); the others to the rollups.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Delta {
        let events: Vec<&Event> = events.into_iter().collect();
        let numbers = bitmap::local_numbers(events.iter().copied());
        Delta::build(events, |e| e.day, &numbers).settled_alone(&numbers)
    }

    /// The changes of `events` to a generation of rollups begun at `begun` (ms), each on its
    /// site's day by `zones` ([`Zones::rolled_day`]: what the consumer and rebuilds apply and
    /// erasure takes back), visitors numbered by `numbers` (the store's dictionary). The
    /// first-day bitmaps are not in it yet: they depend on what is stored, see
    /// [`Delta::first_days`].
    pub fn in_zones<'a>(
        events: impl IntoIterator<Item = &'a Event>,
        zones: &Zones,
        begun: i64,
        numbers: &Numbers,
    ) -> Delta {
        let day = |e: &Event| zones.rolled_day(e.site_id(), e.timestamp, e.received_at, begun);
        Delta::build(events, day, numbers)
    }

    /// The days (index, site, day) of the pages this delta counts: those whose entries in
    /// [`PAGE_INDEX`] [`Delta::cap_pages`] needs to know as stored.
    pub fn index_days(&self) -> Vec<IndexDay> {
        let mut out: HashSet<IndexDay> = self
            .named
            .iter()
            .map(|p| (p.index, p.site.clone(), p.day.clone()))
            .collect();
        for (rollup, index) in BY_PAGE {
            for c in self
                .changes
                .get(rollup)
                .into_iter()
                .flat_map(HashMap::values)
            {
                if let (Some(site), Some(day)) = (c.site(), c.text(Field::Day)) {
                    out.insert((index, site.to_string(), day.to_string()));
                }
            }
        }
        let mut out: Vec<IndexDay> = out.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// Caps the distinct pages of each site's day at `cap`: the pages named, in log order,
    /// get an entry in [`PAGE_INDEX`] (rows of their own) while their day has fewer than
    /// `cap`; the views, times and vitals of every page without an entry (in `admitted`, as
    /// stored before this delta, or given here) go under [`OTHER_PAGE`]. The admitted pages
    /// are the first `cap` a day's events name whatever the chunks, so a rebuild admits the
    /// same. With `cap` `None` nothing is admitted: an erasure takes counts back from where
    /// they were counted.
    pub fn cap_pages(mut self, admitted: &Admitted, cap: Option<usize>) -> Delta {
        let mut now: Admitted = HashMap::new();
        if let Some(cap) = cap {
            let named = std::mem::take(&mut self.named);
            for p in &named {
                let day = (p.index, p.site.clone(), p.day.clone());
                let before = admitted.get(&day);
                if before.is_some_and(|b| b.contains(&p.page)) {
                    continue;
                }
                let mine = now.entry(day).or_default();
                if mine.contains(&p.page) || before.map_or(0, HashSet::len) + mine.len() >= cap {
                    continue;
                }
                mine.insert(p.page.clone());
                let c = self.change(p.index, &p.site, key(&[&p.day, &p.page]));
                c.add(Field::Count, 1);
                c.ident(Field::Day, s(&p.day));
                c.ident(Field::PageUrl, s(&p.page));
            }
            self.named = named;
        }
        let has = |index: &'static str, site: &str, day: &str, page: &str| {
            let k = (index, site.to_string(), day.to_string());
            [admitted.get(&k), now.get(&k)]
                .into_iter()
                .flatten()
                .any(|pages| pages.contains(page))
        };
        for (rollup, index) in BY_PAGE {
            let Some(changes) = self.changes.get_mut(rollup) else {
                continue;
            };
            let folded: Vec<String> = changes
                .iter()
                .filter(
                    |(_, c)| match (c.site(), c.text(Field::Day), c.text(Field::PageUrl)) {
                        (Some(site), Some(day), Some(page)) => {
                            page != OTHER_PAGE && !has(index, site, day, page)
                        }
                        _ => false,
                    },
                )
                .map(|(k, _)| k.clone())
                .collect();
            for k in folded {
                let Some(c) = changes.remove(&k) else {
                    continue;
                };
                let (Some(site), Some(to)) = (c.site().map(String::from), folded_key(rollup, &c))
                else {
                    changes.insert(k, c);
                    continue;
                };
                let t = changes.entry(site_key(&site, &to)).or_default();
                t.ident(Field::Site, s(&site));
                t.ident(Field::PageUrl, s(OTHER_PAGE));
                t.merge(c);
            }
        }
        self
    }

    /// For an erasure's delta: the index entries of the pages its events named that had rows
    /// of their own (in `admitted`), each with the rows (rollup, `_id`) of that page that may
    /// hold them. An entry whose rows are all gone once the erasure is applied goes too, as
    /// a rebuild without those events would not have it.
    pub fn page_entries(&self, admitted: &Admitted) -> Vec<PageEntry> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in &self.named {
            let day = (p.index, p.site.clone(), p.day.clone());
            if !admitted.get(&day).is_some_and(|a| a.contains(&p.page)) || !seen.insert(p) {
                continue;
            }
            let own = key(&[&p.day, &p.page]);
            let mut rows = Vec::new();
            for (rollup, _) in BY_PAGE.iter().filter(|(_, i)| *i == p.index) {
                if *rollup != DAILY_VITALS && *rollup != BOT_DAILY_VITALS {
                    // Views and times are keyed by the page: whoever else had them.
                    rows.push((*rollup, site_key(&p.site, &own)));
                    continue;
                }
                // Vitals are keyed by their buckets too: those the erased events were in (a
                // page with vitals of others has their views too).
                for (k, c) in self.changes.get(rollup).into_iter().flatten() {
                    let same = c.site() == Some(p.site.as_str())
                        && c.text(Field::Day) == Some(p.day.as_str())
                        && c.text(Field::PageUrl) == Some(p.page.as_str());
                    if same {
                        rows.push((*rollup, k.clone()));
                    }
                }
            }
            out.push(PageEntry {
                index: p.index,
                entry: site_key(&p.site, &own),
                rows,
            });
        }
        out
    }

    /// The state documents (rollup, `_id`) this delta changes: what [`Delta::settle`]
    /// needs to know as stored.
    pub fn state_keys(&self) -> Vec<(&'static str, String)> {
        self.keys_in(STATE)
    }

    /// The documents (rollup, `_id`) this delta changes in `rollups` and their bot twins.
    fn keys_in(&self, rollups: &[&'static str]) -> Vec<(&'static str, String)> {
        rollups
            .iter()
            .flat_map(|r| [*r, bot_twin(r)])
            .flat_map(|name| {
                self.changes
                    .get(name)
                    .into_iter()
                    .flat_map(move |c| c.keys().map(move |k| (name, k.clone())))
            })
            .collect()
    }

    /// Adds the changes that depend on what is stored, given `known` (the state documents
    /// of [`Delta::state_keys`] as stored before this delta): the first-day bitmaps
    /// ([`Delta::first_days`]), time on page by day and page, and the session figures
    /// ([`DAILY_SESSIONS`], and the session counts of [`DAILY_CHANNEL`] and
    /// [`DAILY_CAMPAIGN`]) with the channel-visitor counts. A page view's or session's
    /// contribution is taken out where it stood and put where it stands after this delta.
    /// The channel and campaign bitmaps are settled next ([`Delta::settle_channels`]).
    /// The store applies these before the state documents themselves, so a retry after an
    /// interruption settles alike. `numbers` must hold the visitors of the stored sessions
    /// too.
    pub fn settle(self, numbers: &Numbers, known: &Known) -> Delta {
        self.first_days(numbers, known)
            .retention_cells(known)
            .page_times(known)
            .sessions(known)
    }

    /// Settled as if nothing were stored: what these events alone roll up to (a rebuild from
    /// exactly them, or what an erasure of exactly them takes back).
    pub fn settled_alone(self, numbers: &Numbers) -> Delta {
        self.settle(numbers, &Known::new())
            .settle_channels(numbers, &Known::new())
    }

    /// [`Delta::settled_alone`] with each page counted where `admitted` says it was (its own
    /// rows or `(other)`, [`Delta::cap_pages`]): what an erasure of exactly these events
    /// takes back.
    pub fn settled_alone_in(self, numbers: &Numbers, admitted: &Admitted) -> Delta {
        self.settle(numbers, &Known::new())
            .cap_pages(admitted, None)
            .settle_channels(numbers, &Known::new())
    }

    /// The channel-visitor documents (rollup, `_id`) this delta changes: what
    /// [`Delta::settle_channels`] needs to know as stored.
    pub fn channel_keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = self.keys_in(&[CHANNEL_VISITOR]);
        // The first-seen documents of their visitors too, for the reach
        // ([`Delta::reach_cells`]), unless the state had them read already.
        let seen = self.changes.get(FIRST_SEEN);
        let mut more: Vec<String> = self
            .changes
            .get(CHANNEL_VISITOR)
            .into_iter()
            .flat_map(HashMap::values)
            .filter_map(|c| {
                let visitor = c.set.iter().find_map(|(f, v)| match (f, v) {
                    (Field::Visitor, Value::Str(v)) => Some(v),
                    _ => None,
                })?;
                let k = site_key(c.site()?, visitor);
                (!seen.is_some_and(|s| s.contains_key(&k))).then_some(k)
            })
            .collect();
        more.sort_unstable();
        more.dedup();
        keys.extend(more.into_iter().map(|k| (FIRST_SEEN, k)));
        keys
    }

    /// Sets a visitor's bit in a channel's (or campaign's) bitmap when their count of
    /// sessions there rises from zero, and clears it when it falls to zero, given `known`
    /// (the documents of [`Delta::channel_keys`] as stored, and the state documents
    /// [`Delta::settle`] was given); then counts the gaps of every bitmap change
    /// ([`Delta::reach_cells`]).
    pub fn settle_channels(self, numbers: &Numbers, known: &Known) -> Delta {
        self.channel_flips(numbers, known)
            .reach_cells(numbers, known)
    }

    fn channel_flips(mut self, numbers: &Numbers, known: &Known) -> Delta {
        for (state, channel, campaign) in [
            (CHANNEL_VISITOR, DAILY_CHANNEL, DAILY_CAMPAIGN),
            (
                bot_twin(CHANNEL_VISITOR),
                bot_twin(DAILY_CHANNEL),
                bot_twin(DAILY_CAMPAIGN),
            ),
        ] {
            let Some(changes) = self.changes.get(state) else {
                continue;
            };
            let mut flips = Vec::new();
            for (key, c) in changes {
                let get = |f: Field| {
                    c.set.iter().find_map(|(g, v)| match v {
                        Value::Str(s) if *g == f => Some(s.clone()),
                        _ => None,
                    })
                };
                let (Some(site), Some(kind), Some(target), Some(visitor)) = (
                    get(Field::Site),
                    get(Field::Kind),
                    get(Field::Name),
                    get(Field::Visitor),
                ) else {
                    continue;
                };
                let Some(&n) = numbers.get(&site_key(&site, &visitor)) else {
                    continue;
                };
                let before = match known
                    .get(&(state, key.clone()))
                    .and_then(|k| k.get(&Field::Count))
                {
                    Some(Value::Int(v)) => *v,
                    _ => 0,
                };
                let delta: i64 = c
                    .inc
                    .iter()
                    .filter(|(f, _)| *f == Field::Count)
                    .map(|(_, v)| v)
                    .sum();
                let after = before + delta;
                let rollup = if kind == "channel" { channel } else { campaign };
                if before <= 0 && after > 0 {
                    flips.push((rollup, site, target, n, true));
                } else if before > 0 && after <= 0 {
                    flips.push((rollup, site, target, n, false));
                }
            }
            for (rollup, site, target, n, on) in flips {
                let b = self.change(rollup, &site, target).bits_mut(Field::Visitors);
                if on {
                    b.clear.remove(n);
                    b.set.insert(n);
                } else {
                    b.set.remove(n);
                    b.clear.insert(n);
                }
            }
        }
        self
    }

    /// For each document of `state` this delta changes whose `view` differs once the delta
    /// is applied to it as stored (`known`): its site, the view before and the view after.
    #[allow(clippy::type_complexity)]
    fn moved<T: PartialEq>(
        &self,
        state: &'static str,
        known: &Known,
        view: fn(&HashMap<Field, Value>) -> Option<T>,
    ) -> Vec<(String, Option<T>, Option<T>)> {
        let mut out = Vec::new();
        for (key, c) in self.changes.get(state).into_iter().flatten() {
            let stored = known.get(&(state, key.clone()));
            let before = stored.and_then(view);
            let mut merged = stored.cloned().unwrap_or_default();
            c.apply_counts(&mut merged);
            let after = view(&merged);
            if let (Some(site), true) = (c.site(), before != after) {
                out.push((site.to_string(), before, after));
            }
        }
        out
    }

    /// Moves each touched session's contribution (see [`Delta::settle`]).
    fn sessions(mut self, known: &Known) -> Delta {
        for (state, twin) in [(SESSIONS, false), (bot_twin(SESSIONS), true)] {
            let moves = self.moved(state, known, session_view);
            for (site, old, new) in moves {
                for (view, sign) in [(old, -1), (new, 1)] {
                    if let Some(v) = view {
                        self.add_session(&site, &v, sign, twin);
                    }
                }
            }
        }
        self
    }

    /// Adds (`sign` 1) or takes out (−1) one session's figures.
    fn add_session(&mut self, site: &str, v: &SessionView, sign: i64, twin: bool) {
        let name = |r: &'static str| if twin { bot_twin(r) } else { r };
        let c = self.change(name(DAILY_SESSIONS), site, v.day.clone());
        c.add(Field::Count, sign);
        c.add(Field::Bounces, sign * i64::from(v.bounce));
        c.add(Field::Duration, sign * v.duration);
        c.ident(Field::Day, s(&v.day));

        let ch = key(&[&v.day, &v.channel]);
        let c = self.change(name(DAILY_CHANNEL), site, ch.clone());
        c.add(Field::Count, sign);
        c.ident(Field::Day, s(&v.day));
        c.ident(Field::Name, s(&v.channel));
        let mut refs = vec![("channel", ch)];
        if let Some((source, medium, campaign)) = &v.campaign {
            let cm = key(&[&v.day, source, medium, campaign]);
            let c = self.change(name(DAILY_CAMPAIGN), site, cm.clone());
            c.add(Field::Count, sign);
            c.ident(Field::Day, s(&v.day));
            c.ident(Field::Source, s(source));
            c.ident(Field::Medium, s(medium));
            c.ident(Field::Campaign, s(campaign));
            refs.push(("campaign", cm));
        }
        if v.visitor.is_empty() {
            return;
        }
        for (kind, target) in refs {
            let c = self.change(
                name(CHANNEL_VISITOR),
                site,
                key(&[&v.day, kind, &target, &v.visitor]),
            );
            c.add(Field::Count, sign);
            c.ident(Field::Day, s(&v.day));
            c.ident(Field::Kind, s(kind));
            c.ident(Field::Name, s(&target));
            c.ident(Field::Visitor, s(&v.visitor));
        }
    }

    fn page_times(mut self, known: &Known) -> Delta {
        for (state, target) in [
            (PAGE_TIME, DAILY_PAGE_TIME),
            (bot_twin(PAGE_TIME), bot_twin(DAILY_PAGE_TIME)),
        ] {
            let moves = self.moved(state, known, page_view_time);
            for (site, old, new) in moves {
                let Some((day, page, neg)) = new else {
                    continue;
                };
                if let Some((d, p, n)) = old {
                    let c = self.change(target, &site, key(&[&d, &p]));
                    c.add(Field::Count, -1);
                    c.add(Field::Duration, n);
                    c.ident(Field::Day, s(&d));
                    c.ident(Field::PageUrl, s(&p));
                }
                let c = self.change(target, &site, key(&[&day, &page]));
                c.add(Field::Count, 1);
                c.add(Field::Duration, -neg);
                c.ident(Field::Day, s(&day));
                c.ident(Field::PageUrl, s(&page));
            }
        }
        self
    }

    /// Adds the first-day bitmap changes, given `known` (see [`Delta::settle`]). A visitor new to the
    /// store is set in the bitmap of their first day in this delta; one first seen later
    /// than that (an earlier event arrived late) moves there; others stay. The store applies
    /// these before the first-seen documents themselves, so a retry after an interruption
    /// settles against the same state.
    fn first_days(mut self, numbers: &Numbers, known: &Known) -> Delta {
        for (state, target) in [
            (FIRST_SEEN, FIRST_DAY),
            (bot_twin(FIRST_SEEN), bot_twin(FIRST_DAY)),
        ] {
            let Some(changes) = self.changes.get(state) else {
                continue;
            };
            let mut moves = Vec::new();
            for (key, c) in changes {
                let day = c.min.iter().find_map(|(f, v)| match (f, v) {
                    (Field::FirstDay, Value::Str(d)) => Some(d),
                    _ => None,
                });
                let site = c.site();
                let (Some(day), Some(site), Some(&n)) = (day, site, numbers.get(key)) else {
                    continue;
                };
                let stored =
                    known
                        .get(&(state, key.clone()))
                        .and_then(|k| match k.get(&Field::FirstDay) {
                            Some(Value::Str(d)) => Some(d),
                            _ => None,
                        });
                match stored {
                    Some(stored) if stored <= day => {}
                    from => moves.push((site.to_string(), day.clone(), n, from.cloned())),
                }
            }
            for (site, day, n, from) in moves {
                let c = self.change(target, &site, day.clone());
                c.ident(Field::Day, s(&day));
                c.visitor(Some(n));
                if let Some(old) = from {
                    let c = self.change(target, &site, old.clone());
                    c.ident(Field::Day, s(&old));
                    let b = c.bits_mut(Field::Visitors);
                    b.set.remove(n);
                    b.clear.insert(n);
                }
            }
        }
        self
    }

    /// Adds the retention counters' changes, given `known` (see [`Delta::settle`]): each
    /// visitor counts once in ([`RETENTION`]) (their first day, d) for every day d they were
    /// active. Their first-seen document keeps those days (`Field::Days`, a bitmap of
    /// [`Day::number`](crate::event::Day::number)s): a day new to it adds its counter; a
    /// first day moving earlier (an earlier event arrived late) moves every counter of the
    /// visitor to the new cohort. The union of the days is set on the first-seen document,
    /// which the store writes after the counters, so a retry after an interruption settles
    /// against the same days.
    fn retention_cells(mut self, known: &Known) -> Delta {
        use crate::event::Day;
        for (state, target) in [
            (FIRST_SEEN, RETENTION),
            (bot_twin(FIRST_SEEN), bot_twin(RETENTION)),
        ] {
            let Some(changes) = self.changes.get_mut(state) else {
                continue;
            };
            let mut cells: Vec<(String, Day, u32, i64)> = Vec::new();
            let mut gap_cells = Vec::new();
            for (key, c) in changes.iter_mut() {
                let Some(i) = c.bits.iter().position(|(f, _)| *f == Field::Days) else {
                    continue;
                };
                let fresh = c.bits.swap_remove(i).1.set;
                let first = c.min.iter().find_map(|(f, v)| match (f, v) {
                    (Field::FirstDay, Value::Str(d)) => Day::parse(d),
                    _ => None,
                });
                let (Some(site), Some(first)) = (c.site().map(str::to_string), first) else {
                    continue;
                };
                let stored = known.get(&(state, key.clone()));
                let old_first = stored.and_then(|k| match k.get(&Field::FirstDay) {
                    Some(Value::Str(d)) => Day::parse(d),
                    _ => None,
                });
                let old_days = match stored.and_then(|k| k.get(&Field::Days)) {
                    Some(Value::Bits(b)) => bitmap::decode(b),
                    _ => Default::default(),
                };
                let new_first = old_first.map_or(first, |o| o.min(first));
                let days = &old_days | &fresh;
                if state == FIRST_SEEN {
                    for (d, g, n) in reach::gap_changes(&old_days, &days) {
                        gap_cells.push((site.clone(), d, g, n));
                    }
                }
                if old_first == Some(new_first) {
                    for d in &fresh - &old_days {
                        cells.push((site.clone(), new_first, d, 1));
                    }
                } else {
                    if let Some(o) = old_first {
                        cells.extend(old_days.iter().map(|d| (site.clone(), o, d, -1)));
                    }
                    cells.extend(days.iter().map(|d| (site.clone(), new_first, d, 1)));
                }
                c.set.retain(|(f, _)| *f != Field::Days);
                c.set
                    .push((Field::Days, Value::Bits(bitmap::encode(&days))));
            }
            for (site, cohort, d, n) in cells {
                let Some(day) = Day::from_number(d) else {
                    continue;
                };
                self.count_cell(target, &site, &cohort.to_string(), &day.to_string(), n);
            }
            for (site, d, g, n) in gap_cells {
                self.gap_cell(DAILY_USERS, &site, d, None, g, n);
            }
        }
        self
    }

    /// Adds `n` to the visitors counted at gap `g` in the document of `rollup` (a daily one:
    /// [`DAILY_USERS`] or one of [`reach::REACHED`]) of day number `day`, keyed `day` or
    /// `day|suffix`.
    fn gap_cell(
        &mut self,
        rollup: &'static str,
        site: &str,
        day: u32,
        suffix: Option<&str>,
        g: u16,
        n: i64,
    ) {
        let Some(day) = crate::event::Day::from_number(day) else {
            return;
        };
        let day = day.to_string();
        let k = match suffix {
            Some(rest) => format!("{day}|{rest}"),
            None => day.clone(),
        };
        let c = self.change(rollup, site, k);
        c.add(Field::Gap(g), n);
        c.ident(Field::Day, s(&day));
    }

    /// Adds the gap counters of the pages, event types, channels and campaigns
    /// ([`reach::REACHED`]), given `known` (the first-seen documents of the visitors
    /// concerned, as stored): a visitor number this delta sets in or clears from one of
    /// their daily bitmaps adds or removes that day in the visitor's [`Reach`], and the
    /// gaps there change with it. The new reach is set on the first-seen document, which the
    /// store writes after the counters (as the retention's days).
    fn reach_cells(mut self, numbers: &Numbers, known: &Known) -> Delta {
        let visitor_of = by_number(numbers);
        let mut moves: HashMap<&str, Vec<(u8, String, u32, bool)>> = HashMap::new();
        for (code, rollup) in (0u8..).zip(reach::REACHED) {
            for (id, c) in self.changes.get(rollup).into_iter().flatten() {
                let Some((_, bits)) = c.bits.iter().find(|(f, _)| *f == Field::Visitors) else {
                    continue;
                };
                let Some(site) = c.site() else { continue };
                let Some((day, suffix)) = key_in_site(site, id).split_once('|') else {
                    continue;
                };
                let Some(day) = crate::event::Day::parse(day) else {
                    continue;
                };
                for (numbers, on) in [(&bits.set, true), (&bits.clear, false)] {
                    for n in numbers {
                        if let Some(v) = visitor_of.get(&(site, n)) {
                            let op = (code, suffix.to_string(), day.number(), on);
                            moves.entry(v).or_default().push(op);
                        }
                    }
                }
            }
        }
        for (visitor, ops) in moves {
            let old = match known
                .get(&(FIRST_SEEN, visitor.to_string()))
                .and_then(|k| k.get(&Field::Reach))
            {
                Some(Value::Bits(b)) => Reach::decode(b),
                _ => Reach::default(),
            };
            let mut new = old.clone();
            for (code, suffix, day, on) in &ops {
                new.mark(*code, suffix, *day, *on);
            }
            if new == old {
                continue;
            }
            let site = visitor.split('|').next().unwrap_or_default();
            let mut touched: Vec<(u8, &str)> = ops.iter().map(|o| (o.0, o.1.as_str())).collect();
            touched.sort_unstable();
            touched.dedup();
            for (code, suffix) in touched {
                let (before, after) = (old.days(code, suffix), new.days(code, suffix));
                for (d, g, n) in reach::gap_changes(&before, &after) {
                    let rollup = reach::REACHED[usize::from(code)];
                    self.gap_cell(rollup, site, d, Some(suffix), g, n);
                }
            }
            self.set_reach(visitor, &new);
        }
        self
    }

    /// Sets `reach` on the first-seen document `key` (`site|visitor`).
    fn set_reach(&mut self, key: &str, reach: &Reach) {
        let site = key.split('|').next().unwrap_or_default();
        let c = self
            .changes
            .entry(FIRST_SEEN)
            .or_default()
            .entry(key.to_string())
            .or_default();
        c.ident(Field::Site, s(site));
        c.set.retain(|(f, _)| *f != Field::Reach);
        c.set.push((Field::Reach, Value::Bits(reach.encode())));
    }

    /// The counters a visitor's stored first-seen document (`fields`, in rollup `state`:
    /// [`FIRST_SEEN`] or its twin, key `key`) stands for, taken back: what erasing the
    /// visitor removes from [`RETENTION`] (or its twin) and, for people, from the gap
    /// counters ([`reach`]). Read from the stored days, so it is exact also when raw events
    /// of some of them expired.
    pub fn counters_taken_back(
        &mut self,
        state: &'static str,
        key: &str,
        fields: &HashMap<Field, Value>,
    ) {
        use crate::event::Day;
        let target = if state == FIRST_SEEN {
            RETENTION
        } else {
            bot_twin(RETENTION)
        };
        let first = match fields.get(&Field::FirstDay) {
            Some(Value::Str(d)) => Day::parse(d),
            _ => None,
        };
        let (Some(first), Some(Value::Bits(days))) = (first, fields.get(&Field::Days)) else {
            return;
        };
        let site = key.split('|').next().unwrap_or_default();
        let cohort = first.to_string();
        let days = bitmap::decode(days);
        for d in days.iter().filter_map(Day::from_number) {
            self.count_cell(target, site, &cohort, &d.to_string(), -1);
        }
        if state != FIRST_SEEN {
            return;
        }
        // The gap counters of their days, and of their days per page, type, channel and
        // campaign.
        for (d, g) in reach::gaps(&days) {
            self.gap_cell(DAILY_USERS, site, d, None, g, -1);
        }
        if let Some(Value::Bits(b)) = fields.get(&Field::Reach) {
            for (code, suffix, days) in Reach::decode(b).entries() {
                for (d, g) in reach::gaps(days) {
                    let rollup = reach::REACHED[usize::from(code)];
                    self.gap_cell(rollup, site, d, Some(suffix), g, -1);
                }
            }
        }
    }

    /// Adds `n` to the [`RETENTION`] (or twin, `target`) counter of (`cohort`, `day`) of
    /// `site`, keyed `cohort|day`.
    fn count_cell(&mut self, target: &'static str, site: &str, cohort: &str, day: &str, n: i64) {
        let c = self.change(target, site, key(&[cohort, day]));
        c.add(Field::Count, n);
        c.ident(Field::Day, s(cohort));
        c.ident(Field::ActiveDay, s(day));
    }

    fn build<'a>(
        events: impl IntoIterator<Item = &'a Event>,
        day_of: impl Fn(&Event) -> crate::event::Day,
        numbers: &Numbers,
    ) -> Delta {
        let (mut people, mut bots) = (Delta::default(), Delta::default());
        for e in events {
            let d = day_of(e);
            let day = d.to_string();
            let n = e
                .visitor
                .as_deref()
                .and_then(|v| numbers.get(&site_key(e.site_id(), v)).copied());
            match &e.bot {
                None => people.add_event(e, &day, d.number(), n),
                Some(reason) => {
                    let c = people.change(DAILY_BOT, e.site_id(), key(&[&day, reason]));
                    c.add(Field::Count, 1);
                    c.ident(Field::Day, s(&day));
                    c.ident(Field::Name, s(reason));
                    bots.add_event(e, &day, d.number(), n);
                }
            }
        }
        // No twin is a rollup of its own, so they never collide.
        for (rollup, changes) in bots.changes {
            people.changes.insert(bot_twin(rollup), changes);
        }
        people.named.extend(bots.named.into_iter().map(|p| PageDay {
            index: bot_twin(p.index),
            ..p
        }));
        people
    }

    /// One event's changes on `day` (its number `day_no`); `n` is its visitor's number.
    fn add_event(&mut self, e: &Event, day: &str, day_no: u32, n: Option<u32>) {
        let site = e.site_id();
        let c = self.change(DAILY_TYPE, site, key(&[day, &e.event_type]));
        c.add(Field::Count, 1);
        c.ident(Field::Day, s(day));
        c.ident(Field::EventType, s(&e.event_type));
        c.visitor(n);

        if let Some(v) = &e.visitor {
            let c = self.change(DAILY_USERS, site, day.to_string());
            c.ident(Field::Day, s(day));
            c.visitor(n);
            let c = self.change(FIRST_SEEN, site, v.clone());
            c.lower(Field::FirstDay, s(day));
            // Settled into the stored days and the retention counters ([`Delta::settle`]).
            c.bits_mut(Field::Days).set.insert(day_no);
        }

        if let Some(sid) = &e.session_id {
            let c = self.change(SESSIONS, site, sid.clone());
            c.lower(Field::Day, s(day));
            c.lower(Field::FirstTs, Value::Int(e.timestamp));
            c.lower(Field::NegLastTs, Value::Int(-e.timestamp));
            c.add(Field::Events, 1);
            c.add(Field::PageViews, i64::from(e.event_type == PAGE_VIEW));
            c.add(
                Field::Interactions,
                i64::from(INTERACTIONS.contains(&e.event_type.as_str())),
            );
            // A session's visitor can change (setUserId): the least one is kept, so the
            // result does not depend on how events were split into chunks.
            if let Some(v) = &e.visitor {
                c.lower(Field::Visitor, s(v));
            }
        }

        if e.event_type == PAGE_VIEW {
            self.page_view(e, site, day, n);
        }

        if e.event_type == WEB_VITALS {
            self.vitals(e, site, day);
        }

        if e.event_type == PAGE_LEAVE {
            if let (Some(view), Some(duration)) = (&e.page_view_id, e.duration) {
                self.name_page(site, day, e);
                let c = self.change(PAGE_TIME, site, view.clone());
                c.lower(Field::NegDuration, Value::Int(-(duration as i64)));
                c.lower(Field::Day, s(day));
                c.lower(Field::PageUrl, s(e.page_url.as_deref().unwrap_or("")));
            }
        }
    }

    /// One histogram entry per measured metric: (day, metric, device, page, bucket, rating).
    fn vitals(&mut self, e: &Event, site: &str, day: &str) {
        if Metric::ALL.iter().any(|m| e.vital(*m).is_some()) {
            self.name_page(site, day, e);
        }
        let device = agent_of(e.user_agent.as_deref().unwrap_or("")).2;
        let page = e.page_url.as_deref().unwrap_or("");
        for m in Metric::ALL {
            let Some(v) = e.vital(m) else { continue };
            let units = m.units(v);
            let (bucket, rating) = (vitals::bucket(units), m.rating(units));
            let b = bucket.to_string();
            let c = self.change(
                DAILY_VITALS,
                site,
                key(&[day, m.as_str(), &device, page, &b, rating.as_str()]),
            );
            c.add(Field::Count, 1);
            c.ident(Field::Day, s(day));
            c.ident(Field::Metric, s(m.as_str()));
            c.ident(Field::Device, s(&device));
            c.ident(Field::PageUrl, s(page));
            c.ident(Field::Bucket, Value::Int(bucket));
            c.ident(Field::Rating, s(rating.as_str()));
        }
    }

    /// Notes that `e` names its page on `day` (see [`Delta::cap_pages`]).
    fn name_page(&mut self, site: &str, day: &str, e: &Event) {
        self.named.push(PageDay {
            index: PAGE_INDEX,
            site: site.to_string(),
            day: day.to_string(),
            page: e.page_url.clone().unwrap_or_default(),
        });
    }

    fn page_view(&mut self, e: &Event, site: &str, day: &str, n: Option<u32>) {
        self.name_page(site, day, e);
        // The earliest page view of a session (and of a visitor) says where it came from.
        let landing = Value::Str(landing(e));
        if let Some(sid) = &e.session_id {
            self.change(SESSIONS, site, sid.clone())
                .lower(Field::Landing, landing.clone());
        }
        if let Some(v) = &e.visitor {
            self.change(FIRST_SEEN, site, v.clone())
                .lower(Field::Landing, landing);
        }
        let page = e.page_url.as_deref().unwrap_or("");
        let c = self.change(DAILY_PAGE, site, key(&[day, page]));
        c.add(Field::Views, 1);
        c.ident(Field::Day, s(day));
        c.ident(Field::PageUrl, s(page));
        c.visitor(n);

        // Only visits from elsewhere: a referrer on the same site is navigation.
        let own_host = host_of(page);
        if let Some(from) = e.referrer.as_deref().and_then(host_of) {
            if Some(from) != own_host {
                let c = self.change(DAILY_REFERRER, site, key(&[day, from]));
                c.add(Field::Count, 1);
                c.ident(Field::Day, s(day));
                c.ident(Field::Referrer, s(from));
            }
        }

        if let Some(ua) = &e.user_agent {
            let (browser, os, device) = agent_of(ua);
            for (kind, name) in [("browser", browser), ("os", os), ("device", device)] {
                let c = self.change(DAILY_AGENT, site, key(&[day, kind, &name]));
                c.add(Field::Count, 1);
                c.ident(Field::Day, s(day));
                c.ident(Field::Kind, s(kind));
                c.ident(Field::Name, Value::Str(name));
            }
        }
    }
}

/// `numbers` the other way round: (site, number) → the visitor's `site|visitor` key.
fn by_number(numbers: &Numbers) -> HashMap<(&str, u32), &str> {
    numbers
        .iter()
        .map(|(k, n)| ((k.split('|').next().unwrap_or_default(), *n), k.as_str()))
        .collect()
}

/// The `site|visitor` keys of the visitors of the stored sessions in `known`: their numbers
/// are needed to settle a delta too.
pub fn session_visitors(known: &Known) -> Vec<String> {
    known
        .iter()
        .filter(|((name, _), _)| *name == SESSIONS || *name == bot_twin(SESSIONS))
        .filter_map(|((_, id), fields)| match fields.get(&Field::Visitor) {
            Some(Value::Str(v)) if !v.is_empty() => {
                Some(site_key(id.split('|').next().unwrap_or_default(), v))
            }
            _ => None,
        })
        .collect()
}

/// What one session contributes to the session figures.
#[derive(Debug, Clone, PartialEq)]
struct SessionView {
    day: String,
    duration: i64,
    bounce: bool,
    visitor: String,
    channel: String,
    campaign: Option<(String, String, String)>,
}

/// A session document's contribution; `None` before it has a day.
fn session_view(fields: &HashMap<Field, Value>) -> Option<SessionView> {
    let str_of = |f: Field| match fields.get(&f) {
        Some(Value::Str(s)) => s.as_str(),
        _ => "",
    };
    let int_of = |f: Field| match fields.get(&f) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    let day = str_of(Field::Day);
    if day.is_empty() {
        return None;
    }
    let [channel, source, medium, campaign] =
        landing_parts(str_of(Field::Landing)).unwrap_or_default();
    Some(SessionView {
        day: day.to_string(),
        duration: (-int_of(Field::NegLastTs) - int_of(Field::FirstTs)).max(0),
        bounce: int_of(Field::PageViews) <= 1 && int_of(Field::Interactions) == 0,
        visitor: str_of(Field::Visitor).to_string(),
        channel: if channel.is_empty() {
            "Unassigned".to_string()
        } else {
            channel
        },
        campaign: (!medium.is_empty() || !campaign.is_empty())
            .then_some((source, medium, campaign)),
    })
}

/// A page-time document's (day, page, negated longest duration).
fn page_view_time(fields: &HashMap<Field, Value>) -> Option<(String, String, i64)> {
    match (
        fields.get(&Field::Day),
        fields.get(&Field::PageUrl),
        fields.get(&Field::NegDuration),
    ) {
        (Some(Value::Str(d)), Some(Value::Str(p)), Some(Value::Int(n))) => {
            Some((d.clone(), p.clone(), *n))
        }
        _ => None,
    }
}

/// The rollup documents that applying `Delta::of(events)` to empty rollups gives, computed in
/// memory: what a rebuild from exactly these events holds, with ids as stores return them
/// (without the site prefix). For checks and the benchmark's naive path: `events` should be
/// of one site.
pub fn docs_of<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> HashMap<&'static str, Vec<RollupDoc>> {
    Delta::of(events)
        .changes
        .into_iter()
        .map(|(name, changes)| {
            let docs = changes
                .into_iter()
                .map(|(id, c)| {
                    let site = c.site().map(str::to_string);
                    let id = match site {
                        Some(site) => key_in_site(&site, &id).to_string(),
                        None => id,
                    };
                    let mut fields = HashMap::new();
                    for (f, n) in c.inc {
                        fields.insert(f, Value::Int(n));
                    }
                    for (f, v) in c.min.into_iter().chain(c.set) {
                        fields.insert(f, v);
                    }
                    for (f, b) in c.bits {
                        fields.insert(
                            f,
                            Value::Bits(bitmap::encode(&b.apply(&Default::default()))),
                        );
                    }
                    RollupDoc { id, fields }
                })
                .collect();
            (name, docs)
        })
        .collect()
}

/// One rollup document as read back: its key and its fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RollupDoc {
    pub id: String,
    pub fields: HashMap<Field, Value>,
}

impl RollupDoc {
    /// An integer field; 0 when the document has none (a counter never incremented).
    pub fn int(&self, field: Field) -> i64 {
        match self.fields.get(&field) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        }
    }

    pub fn str(&self, field: Field) -> &str {
        match self.fields.get(&field) {
            Some(Value::Str(s)) => s,
            _ => "",
        }
    }

    /// A bitmap field (visitor numbers); empty when the document has none.
    pub fn bits(&self, field: Field) -> roaring::RoaringBitmap {
        match self.fields.get(&field) {
            Some(Value::Bits(b)) => crate::bitmap::decode(b),
            _ => roaring::RoaringBitmap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Day;

    fn ev(ty: &str, visitor: &str, session: &str, day: &str, ts: i64) -> Event {
        let mut e = Event {
            event_id: format!("{ty}{ts}"),
            event_type: ty.into(),
            user_id: Some(visitor.into()),
            session_id: Some(session.into()),
            page_url: Some("https://shop.example/p".into()),
            timestamp: ts,
            day: Day::parse(day).unwrap(),
            ..Event::default()
        };
        e.derive_visitor();
        e
    }

    /// What a store does with a chunk's delta: caps its pages against the entries stored,
    /// then stores the entries it adds.
    fn capped(events: &[Event], index: &mut Admitted, cap: usize) -> Delta {
        let numbers = bitmap::local_numbers(events.iter());
        let d = Delta::build(events.iter(), |e| e.day, &numbers)
            .settle(&numbers, &Known::new())
            .cap_pages(index, Some(cap));
        for c in d
            .changes
            .get(PAGE_INDEX)
            .into_iter()
            .flat_map(HashMap::values)
        {
            let (site, day, page) = (c.site(), c.text(Field::Day), c.text(Field::PageUrl));
            let k = (PAGE_INDEX, site.unwrap().into(), day.unwrap().into());
            index.entry(k).or_default().insert(page.unwrap().into());
        }
        d
    }

    #[test]
    fn pages_beyond_the_cap_fold_into_other_whatever_the_chunks() {
        let mut events = Vec::new();
        for (i, page) in ["a", "b", "a", "c", "d", "b", "e"].iter().enumerate() {
            let mut e = ev("page_view", &format!("u{i}"), "s", "2026-12-01", i as i64);
            e.page_url = Some(format!("https://shop.example/{page}"));
            events.push(e);
        }
        let mut vital = events[4].clone();
        (vital.event_type, vital.event_id) = (WEB_VITALS.into(), "v".into());
        vital.set_vital(Metric::Lcp, Some(1200.0));
        events.push(vital);
        let views = |d: &Delta| -> Vec<(String, i64)> {
            let mut out: Vec<(String, i64)> = d.changes[DAILY_PAGE]
                .values()
                .map(|c| {
                    let views = c.inc.iter().find(|(f, _)| *f == Field::Views).unwrap().1;
                    (c.text(Field::PageUrl).unwrap().to_string(), views)
                })
                .collect();
            out.sort();
            out
        };
        let page = |p: &str| format!("https://shop.example/{p}");
        let whole = capped(&events, &mut Admitted::new(), 3);
        assert_eq!(
            views(&whole),
            vec![
                (OTHER_PAGE.to_string(), 2),
                (page("a"), 2),
                (page("b"), 2),
                (page("c"), 1)
            ]
        );
        assert_eq!(whole.changes[PAGE_INDEX].len(), 3);
        // The vitals of page d went under (other) too, keyed like any other vitals row.
        let vitals: Vec<&String> = whole.changes[DAILY_VITALS].keys().collect();
        assert_eq!(vitals.len(), 1);
        assert!(vitals[0].contains("|(other)|"), "{vitals:?}");
        // In two chunks: the same pages admitted, the same rows.
        let mut index = Admitted::new();
        let first = capped(&events[..4], &mut index, 3);
        let second = capped(&events[4..], &mut index, 3);
        let mut split = views(&first);
        split.extend(views(&second));
        let mut merged: HashMap<String, i64> = HashMap::new();
        for (p, n) in split {
            *merged.entry(p).or_default() += n;
        }
        let mut merged: Vec<(String, i64)> = merged.into_iter().collect();
        merged.sort();
        assert_eq!(merged, views(&whole));
        // An erasure counts nothing into the index and takes back from where views were.
        let numbers = bitmap::local_numbers(events[4..5].iter());
        let gone = Delta::build(events[4..5].iter(), |e| e.day, &numbers)
            .settled_alone_in(&numbers, &index);
        assert!(!gone.changes.contains_key(PAGE_INDEX));
        assert_eq!(views(&gone), vec![(OTHER_PAGE.to_string(), 1)]);
    }

    #[test]
    fn sites_never_share_a_document_and_count_their_own_days() {
        // 2026-11-29T16:30:00Z: 00:30 on 2026-11-30 in Shanghai.
        let ts = 1_795_969_800_000;
        let utc = ev("page_view", "u1", "s1", "2026-11-29", ts);
        let mut shop = utc.clone();
        shop.site = "shop".into();
        let zones = crate::site::Zones::of(&[crate::site::SiteInfo {
            id: "shop".into(),
            name: "Shop".into(),
            timezone: "Asia/Shanghai".into(),
            earlier: Vec::new(),
        }]);
        let numbers = bitmap::local_numbers([&utc, &shop]);
        let d = Delta::in_zones([&utc, &shop], &zones, 0, &numbers);
        let types = &d.changes[DAILY_TYPE];
        assert_eq!(types.len(), 2);
        assert_eq!(
            types["default|2026-11-29|page_view"].inc,
            vec![(Field::Count, 1)]
        );
        let local = &types["shop|2026-11-30|page_view"];
        assert!(local.set.contains(&(Field::Site, s("shop"))));
        assert!(local.set.contains(&(Field::Day, s("2026-11-30"))));
        // The same visitor and session on two sites are two of each.
        assert_eq!(d.changes[FIRST_SEEN].len(), 2);
        assert_eq!(d.changes[SESSIONS].len(), 2);
        assert_eq!(key_in_site("shop", "shop|u1"), "u1");
    }

    #[test]
    fn counts_minimums_and_identities() {
        let mut view = ev("page_view", "u1", "s1", "2026-11-02", 200);
        view.referrer = Some("https://search.example/?q=x".into());
        view.user_agent = Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
                .into(),
        );
        let mut internal = ev("page_view", "u1", "s1", "2026-11-02", 300);
        internal.referrer = Some("https://shop.example/".into());
        let click = ev("click", "u1", "s1", "2026-11-01", 100);
        let d = Delta::of([&view, &internal, &click]);

        let types = &d.changes[DAILY_TYPE];
        assert_eq!(
            types["default|2026-11-02|page_view"].inc,
            // u1's first page_view day: no day before it.
            vec![(Field::Count, 2), (Field::Gap(0), 1)]
        );
        assert_eq!(
            types["default|2026-11-01|click"].inc,
            vec![(Field::Count, 1), (Field::Gap(0), 1)]
        );
        // A day's visitors count gaps back to the visitor's day before: u1 was there the
        // day before.
        assert_eq!(
            d.changes[DAILY_USERS]["default|2026-11-02"].inc,
            vec![(Field::Gap(1), 1)]
        );
        assert_eq!(
            d.changes[FIRST_SEEN]["default|u1"].min,
            vec![
                (Field::FirstDay, s("2026-11-01")),
                // The earliest page view (200), not the earlier click.
                (Field::Landing, s("0000000000000200||||"))
            ]
        );
        let session = &d.changes[SESSIONS]["default|s1"];
        assert!(session.min.contains(&(Field::FirstTs, Value::Int(100))));
        assert!(session.min.contains(&(Field::NegLastTs, Value::Int(-300))));
        assert!(session.inc.contains(&(Field::PageViews, 2)));
        assert!(session.inc.contains(&(Field::Interactions, 1)));
        assert_eq!(
            d.changes[DAILY_REFERRER].len(),
            1,
            "same-site referrer skipped"
        );
        assert!(d.changes[DAILY_AGENT].contains_key("default|2026-11-02|browser|Chrome"));
        assert!(d.changes[DAILY_AGENT].contains_key("default|2026-11-02|os|Linux"));
        assert!(d.changes[DAILY_AGENT].contains_key("default|2026-11-02|device|pc"));
    }

    #[test]
    fn merging_deltas_equals_one_delta_of_all_events() {
        let events = [
            ev("page_view", "u1", "s1", "2026-11-02", 200),
            ev("click", "u1", "s1", "2026-11-01", 100),
            ev("page_view", "u2", "s2", "2026-11-02", 300),
        ];
        let whole = Delta::of(&events);
        let mut merged = Delta::of(&events[2..]);
        merged.merge(Delta::of(&events[..2]));
        for (rollup, changes) in &whole.changes {
            for (key, c) in changes {
                let m = &merged.changes[rollup][key];
                let sorted = |c: &Change| {
                    let mut inc = c.inc.clone();
                    inc.sort_by_key(|x| x.0);
                    let mut min = c.min.clone();
                    min.sort_by_key(|a| a.0);
                    (inc, min)
                };
                assert_eq!(sorted(m), sorted(c), "{rollup} {key}");
            }
        }
        assert_eq!(merged.keys(), whole.keys());
    }

    #[test]
    fn first_days_move_when_an_earlier_event_arrives_late() {
        let late = ev("click", "u1", "s1", "2026-11-01", 100);
        let numbers: Numbers = [("default|u1".to_string(), 7)].into();
        let delta = || Delta::build([&late], |e| e.day, &numbers);
        let bits = |d: &Delta, key: &str| {
            let c = &d.changes[FIRST_DAY][key];
            let b = &c.bits[0].1;
            (
                b.set.iter().collect::<Vec<_>>(),
                b.clear.iter().collect::<Vec<_>>(),
            )
        };
        // New to the store: set on its day.
        let d = delta().settle(&numbers, &Known::new());
        assert_eq!(bits(&d, "default|2026-11-01"), (vec![7], vec![]));
        let stored = |day: &str| -> Known {
            [(
                (FIRST_SEEN, "default|u1".to_string()),
                [(Field::FirstDay, s(day))].into(),
            )]
            .into()
        };
        // Stored as first seen later: moves.
        let d = delta().settle(&numbers, &stored("2026-11-05"));
        assert_eq!(bits(&d, "default|2026-11-01"), (vec![7], vec![]));
        assert_eq!(bits(&d, "default|2026-11-05"), (vec![], vec![7]));
        // Stored as first seen earlier or the same day: nothing.
        for day in ["2026-10-30", "2026-11-01"] {
            let d = delta().settle(&numbers, &stored(day));
            assert!(!d.changes.contains_key(FIRST_DAY));
        }
    }

    #[test]
    fn retention_counters_follow_new_days_and_moving_first_days() {
        let numbers: Numbers = [("default|u1".to_string(), 7)].into();
        let on = |day: &str| ev("click", "u1", "s1", day, 100);
        let settle = |events: &[&Event], known: &Known| {
            Delta::build(events.iter().copied(), |e| e.day, &numbers).settle(&numbers, known)
        };
        let counters = |d: &Delta| -> Vec<(String, i64)> {
            let mut v: Vec<(String, i64)> = d
                .changes
                .get(RETENTION)
                .into_iter()
                .flatten()
                .map(|(k, c)| (k.clone(), c.inc.iter().map(|(_, n)| *n).sum()))
                .collect();
            v.sort();
            v
        };
        let numbers_of = |days: &[&str]| -> Value {
            let b: roaring::RoaringBitmap = days
                .iter()
                .map(|d| Day::parse(d).unwrap().number())
                .collect();
            Value::Bits(bitmap::encode(&b))
        };
        let days_set = |d: &Delta| {
            d.changes[FIRST_SEEN]["default|u1"]
                .set
                .iter()
                .find(|(f, _)| *f == Field::Days)
                .map(|(_, v)| v.clone())
        };
        let fields = |first: &str, days: &[&str]| -> HashMap<Field, Value> {
            [(Field::FirstDay, s(first)), (Field::Days, numbers_of(days))].into()
        };
        let stored = |first: &str, days: &[&str]| -> Known {
            [((FIRST_SEEN, "default|u1".to_string()), fields(first, days))].into()
        };
        let cell = |c: &str, d: &str, n: i64| (format!("default|{c}|{d}"), n);

        // New to the store, active on two days: both counted in the cohort of the first.
        let (a, b) = (on("2026-11-03"), on("2026-11-05"));
        let d = settle(&[&a, &b], &Known::new());
        assert_eq!(
            counters(&d),
            [
                cell("2026-11-03", "2026-11-03", 1),
                cell("2026-11-03", "2026-11-05", 1)
            ]
        );
        assert_eq!(
            days_set(&d),
            Some(numbers_of(&["2026-11-03", "2026-11-05"]))
        );
        // Known on those days: a day already counted adds nothing, a new one adds its counter.
        let known = stored("2026-11-03", &["2026-11-03", "2026-11-05"]);
        let c = on("2026-11-06");
        let d = settle(&[&b, &c], &known);
        assert_eq!(counters(&d), [cell("2026-11-03", "2026-11-06", 1)]);
        assert_eq!(
            days_set(&d),
            Some(numbers_of(&["2026-11-03", "2026-11-05", "2026-11-06"]))
        );
        // An earlier event arrives late: every counter moves to the earlier cohort.
        let late = on("2026-11-01");
        let d = settle(&[&late], &known);
        assert_eq!(
            counters(&d),
            [
                cell("2026-11-01", "2026-11-01", 1),
                cell("2026-11-01", "2026-11-03", 1),
                cell("2026-11-01", "2026-11-05", 1),
                cell("2026-11-03", "2026-11-03", -1),
                cell("2026-11-03", "2026-11-05", -1),
            ]
        );
        // No first-seen document is ever left holding the chunk's days as bits.
        assert!(d.changes[FIRST_SEEN]["default|u1"].bits.is_empty());
        // Erased: the stored days come out of their cohort.
        let mut back = Delta::default();
        back.counters_taken_back(
            FIRST_SEEN,
            "default|u1",
            &fields("2026-11-03", &["2026-11-03", "2026-11-05"]),
        );
        assert_eq!(
            counters(&back),
            [
                cell("2026-11-03", "2026-11-03", -1),
                cell("2026-11-03", "2026-11-05", -1)
            ]
        );
    }

    #[test]
    fn page_gaps_follow_a_day_added_between_and_come_back_on_erasure() {
        let numbers: Numbers = [("default|u1".to_string(), 7)].into();
        let view = |day: &str| ev("page_view", "u1", "s1", day, 100);
        let settle = |events: &[&Event], known: &Known| {
            Delta::build(events.iter().copied(), |e| e.day, &numbers)
                .settle(&numbers, known)
                .settle_channels(&numbers, known)
        };
        let gaps = |d: &Delta| -> Vec<(String, u16, i64)> {
            let mut v: Vec<_> = d
                .changes
                .get(DAILY_PAGE)
                .into_iter()
                .flatten()
                .flat_map(|(k, c)| {
                    c.inc.iter().filter_map(move |(f, n)| match f {
                        Field::Gap(g) => Some((k[8..18].to_string(), *g, *n)),
                        _ => None,
                    })
                })
                .collect();
            v.sort();
            v
        };
        let reach_of = |d: &Delta| -> Value {
            d.changes[FIRST_SEEN]["default|u1"]
                .set
                .iter()
                .find(|(f, _)| *f == Field::Reach)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let g = |day: &str, gap: u16, n: i64| (day.to_string(), gap, n);

        // New: the first day has no day before it, the next one is 4 days later.
        let (a, b) = (view("2026-11-03"), view("2026-11-07"));
        let first = settle(&[&a, &b], &Known::new());
        assert_eq!(gaps(&first), [g("2026-11-03", 0, 1), g("2026-11-07", 4, 1)]);
        // A day arriving between them splits the gap of the day after it.
        let known: Known = [(
            (FIRST_SEEN, "default|u1".to_string()),
            [
                (Field::FirstDay, s("2026-11-03")),
                (Field::Reach, reach_of(&first)),
            ]
            .into(),
        )]
        .into();
        let late = view("2026-11-05");
        let second = settle(&[&late], &known);
        assert_eq!(
            gaps(&second),
            [
                g("2026-11-05", 2, 1),
                g("2026-11-07", 2, 1),
                g("2026-11-07", 4, -1)
            ]
        );
        // A day already there changes nothing.
        assert_eq!(gaps(&settle(&[&a], &known)), []);
        // Erased: every counter the stored reach stands for comes back.
        let mut back = Delta::default();
        back.counters_taken_back(
            FIRST_SEEN,
            "default|u1",
            &[
                (Field::FirstDay, s("2026-11-03")),
                (
                    Field::Days,
                    Value::Bits(bitmap::encode(&Default::default())),
                ),
                (Field::Reach, reach_of(&second)),
            ]
            .into(),
        );
        assert_eq!(
            gaps(&back),
            [
                g("2026-11-03", 0, -1),
                g("2026-11-05", 2, -1),
                g("2026-11-07", 2, -1)
            ]
        );
    }

    #[test]
    fn time_on_page_moves_with_the_page_views_longest_duration() {
        let mut leave = ev("page_leave", "u1", "s1", "2026-11-02", 100);
        leave.page_view_id = Some("v1".into());
        leave.duration = Some(25_000.0);
        let numbers = bitmap::local_numbers([&leave]);
        let delta = || Delta::build([&leave], |e| e.day, &numbers);
        let key = "default|2026-11-02|https://shop.example/p";
        let inc = |d: &Delta| {
            let mut inc = d.changes[DAILY_PAGE_TIME][key].inc.clone();
            inc.sort_by_key(|x| x.0);
            inc
        };
        // First seen: one view of 25 s.
        let d = delta().settle(&numbers, &Known::new());
        assert_eq!(inc(&d), vec![(Field::Count, 1), (Field::Duration, 25_000)]);
        // Stored with 20 s (an earlier leave): the view's 20 s out, its 25 s in.
        let stored: Known = [(
            (PAGE_TIME, "default|v1".to_string()),
            [
                (Field::Day, s("2026-11-02")),
                (Field::PageUrl, s("https://shop.example/p")),
                (Field::NegDuration, Value::Int(-20_000)),
            ]
            .into(),
        )]
        .into();
        let d = delta().settle(&numbers, &stored);
        assert_eq!(inc(&d), vec![(Field::Count, 0), (Field::Duration, 5_000)]);
        // Stored with 30 s: the longest stays, nothing changes.
        let mut longer = stored.clone();
        if let Some(f) = longer.values_mut().next() {
            f.insert(Field::NegDuration, Value::Int(-30_000));
        }
        let d = delta().settle(&numbers, &longer);
        assert!(!d.changes.contains_key(DAILY_PAGE_TIME));
    }

    #[test]
    fn keys_of_different_tuples_never_collide() {
        assert_ne!(key(&["https://a/|x", "y"]), key(&["https://a/", "x|y"]));
        assert_ne!(key(&["a\\", "b"]), key(&["a", "\\b"]));
        assert_eq!(key(&["2026-11-02", "click"]), "2026-11-02|click");
        for f in Field::ALL {
            assert_eq!(Field::parse(f.as_str()), Some(*f));
        }
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("https://a.example/x?y"), Some("a.example"));
        assert_eq!(host_of("http://u:p@b.example:8080"), Some("b.example:8080"));
        assert_eq!(host_of(""), None);
    }
}
#[cfg(test)]
mod bot_routing {
    #[test]
    fn bot_events_go_to_the_twins() {
        let e = crate::event::Event {
            event_type: "click".into(),
            bot: Some("user_agent".into()),
            visitor: Some("v".into()),
            ..Default::default()
        };
        let d = super::Delta::of([&e]);
        let mut names: Vec<_> = d.changes.keys().copied().collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "rollup_bot_daily_type",
                "rollup_bot_daily_users",
                "rollup_bot_first_day",
                "rollup_bot_first_seen",
                "rollup_bot_retention",
                "rollup_daily_bot"
            ]
        );
    }

    #[test]
    fn landings_sort_by_time_and_come_apart_again() {
        let e = |ts, campaign: &str| crate::event::Event {
            timestamp: ts,
            channel: Some("Email".into()),
            source: Some("news|letter".into()),
            utm_medium: Some("email".into()),
            utm_campaign: Some(campaign.into()),
            ..Default::default()
        };
        let (early, late) = (
            super::landing(&e(999, "z\\")),
            super::landing(&e(1_000, "a")),
        );
        assert!(early < late);
        assert_eq!(
            super::landing_parts(&early),
            Some(["Email", "news|letter", "email", "z\\"].map(String::from))
        );
        assert_eq!(super::landing_parts(""), None);
    }
}
