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
//!
//! # Layout
//! - this file: the catalog (rollup names, twins, lists), [`Field`], [`Change`], [`Delta`]'s
//!   types, keys and [`docs_of`];
//! - `build`: events into a delta ([`Delta::of`], [`Delta::in_zones`]);
//! - `settle`: a delta settled against the stored state ([`Delta::settle`],
//!   [`Delta::settle_channels`]);
//! - `pages`: the page cap ([`Delta::cap_pages`]);
//! - [`reach`]: distinct visitors over any period from gap counters.

use std::collections::{HashMap, HashSet};

use crate::bitmap::{self, Bits, Numbers};
use crate::event::{Event, PAGE_LEAVE, PAGE_VIEW, WEB_VITALS};
mod build;
pub mod catalog;
mod pages;
pub mod reach;
mod settle;
pub use settle::session_visitors;
#[cfg(test)]
mod tests;

pub use self::catalog::{all, spec, Audience, Rollup, Spec, CATALOG};
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

/// The people's rollup names (MongoDB collections, embedded tables), as readers name them: see
/// each [`Rollup`] for what its documents hold.
pub const DAILY_TYPE: &str = Rollup::DailyType.name(Audience::People);
pub const DAILY_USERS: &str = Rollup::DailyUsers.name(Audience::People);
pub const DAILY_PAGE: &str = Rollup::DailyPage.name(Audience::People);
pub const FIRST_DAY: &str = Rollup::FirstDay.name(Audience::People);
pub const FIRST_SEEN: &str = Rollup::FirstSeen.name(Audience::People);
pub const SESSIONS: &str = Rollup::Sessions.name(Audience::People);
pub const DAILY_SESSIONS: &str = Rollup::DailySessions.name(Audience::People);
pub const DAILY_CHANNEL: &str = Rollup::DailyChannel.name(Audience::People);
pub const DAILY_CAMPAIGN: &str = Rollup::DailyCampaign.name(Audience::People);
pub const CHANNEL_VISITOR: &str = Rollup::ChannelVisitor.name(Audience::People);
pub const PAGE_TIME: &str = Rollup::PageTime.name(Audience::People);
pub const DAILY_PAGE_TIME: &str = Rollup::DailyPageTime.name(Audience::People);
pub const DAILY_REFERRER: &str = Rollup::DailyReferrer.name(Audience::People);
pub const DAILY_AGENT: &str = Rollup::DailyAgent.name(Audience::People);
pub const DAILY_BOT: &str = Rollup::DailyBot.name(Audience::People);
pub const DAILY_VITALS: &str = Rollup::DailyVitals.name(Audience::People);
pub const RETENTION: &str = Rollup::Retention.name(Audience::People);
pub const PAGE_INDEX: &str = Rollup::PageIndex.name(Audience::People);

/// The page that the views, times and vitals of a day's pages beyond the cap are counted
/// under.
pub const OTHER_PAGE: &str = "(other)";

/// The bot twin of `rollup` (itself for a rollup that has none, or a twin).
pub fn bot_twin(rollup: &'static str) -> &'static str {
    match spec(rollup) {
        Some((s, Audience::People)) => s.name(Audience::Bots),
        _ => rollup,
    }
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

/// The order a chunk's changes are applied in ([`Spec::level`]): figures (0), then the
/// channel-visitor counts (1), settled against the sessions, then the state documents (2) the
/// rest was settled against. So a chunk interrupted part way and applied again settles alike:
/// what is read to settle a level changes only after that level landed.
pub fn apply_level(rollup: &str) -> u8 {
    spec(rollup).map_or(0, |(s, _)| s.level)
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
    if Rollup::named(rollup).map(|(r, _)| r) != Some(Rollup::DailyVitals) {
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
