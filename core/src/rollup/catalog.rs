//! The rollup catalog: every rollup once, with all that the consumer, the stores and the data
//! lifecycle need to know of it. A [`Rollup`] has a people's name and (all but
//! [`Rollup::DailyBot`]) a bots' twin holding the same documents made of the events flagged as
//! bots' ([`Audience`]); both share one [`Spec`]. A new rollup (a new dimension) is one variant
//! and one arm of [`Rollup::spec`] here, plus what its documents count ([`super::Delta`]); no
//! list elsewhere names rollups.

use super::*;

/// Whose events a rollup's documents count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    People,
    Bots,
}

/// One rollup, for people and for bots.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Which rollup.
    pub rollup: Rollup,
    /// The people's collection (MongoDB) or table (embedded) name.
    pub people: &'static str,
    /// The bots' twin, if it has one.
    pub bots: Option<&'static str>,
    /// The field holding a document's day (indexed with the site; periods read by it), for
    /// rollups read by day.
    pub day: Option<Field>,
    /// Keys start with the day (`site|day|…`): a period is one range of keys.
    pub day_keyed: bool,
    /// Documents hold a bitmap of visitor numbers ([`Field::Visitors`]).
    pub visitors: bool,
    /// When a chunk applies its changes ([`apply_level`]): figures 0, channel-visitor counts
    /// 1, the consumer's state documents 2.
    pub level: u8,
    /// Documents belong to one visitor (deleted whole by an erasure, never decremented).
    pub personal: bool,
    /// Documents name their visitor in [`Field::Visitor`] (found by it when raw events are
    /// gone).
    pub names_visitor: bool,
    /// The code of its days in each visitor's [`reach::Reach`] (persisted: never reused).
    pub reached: Option<u8>,
    /// The counter a document lives by: at zero a rebuild would not have it.
    pub counter: Field,
    /// For rollups with a page in their key: the page index that admits their pages
    /// ([`Delta::cap_pages`]).
    pub page_index: Option<Rollup>,
}

const fn figure(rollup: Rollup, people: &'static str, bots: &'static str) -> Spec {
    Spec {
        rollup,
        people,
        bots: Some(bots),
        day: Some(Field::Day),
        day_keyed: true,
        visitors: false,
        level: 0,
        personal: false,
        names_visitor: false,
        reached: None,
        counter: Field::Count,
        page_index: None,
    }
}

const fn with_visitors(mut s: Spec, reached: Option<u8>) -> Spec {
    s.visitors = true;
    s.reached = reached;
    s
}

const fn paged(mut s: Spec) -> Spec {
    s.page_index = Some(Rollup::PageIndex);
    s
}

const fn state(mut s: Spec, level: u8, day: Option<Field>, names_visitor: bool) -> Spec {
    s.day = day;
    s.day_keyed = false;
    s.level = level;
    s.personal = true;
    s.names_visitor = names_visitor;
    s
}

/// Every rollup, in the order stores create them. What each one is, for people and for bots,
/// is its [`Rollup::spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rollup {
    /// Events by day and type (`Field::Count`) and their distinct visitors (`Field::Visitors`).
    DailyType,
    /// Distinct visitors by day: one bitmap of visitor numbers per day (`Field::Visitors`).
    DailyUsers,
    /// Page views and distinct visitors by day and page (`Field::Views`, `Field::Visitors`).
    DailyPage,
    /// Visitors by the day they were first seen: each visitor's number in exactly one bitmap,
    /// moved when an earlier event of theirs arrives late (see [`super::Delta::first_days`]).
    FirstDay,
    /// Per visitor: first day and landing. The consumer's state for [`Rollup::FirstDay`], and the
    /// funnel's origin filter; figures of a period never read it whole.
    FirstSeen,
    /// Per session: first day, first and last timestamps, counts, visitor and landing. The
    /// consumer's state for [`Rollup::DailySessions`], [`Rollup::DailyChannel`] and [`Rollup::DailyCampaign`];
    /// figures never read it.
    Sessions,
    /// Sessions pre-summed by the day they started: `Field::Count` sessions, `Field::Bounces`,
    /// `Field::Duration` (sum of last event − first event, ms).
    DailySessions,
    /// Sessions (`Field::Count`) and their visitors (`Field::Visitors`) by day and the channel
    /// of their landing page view (`Field::Name`).
    DailyChannel,
    /// Sessions and their visitors by day and landing campaign (`Field::Source`,
    /// `Field::Medium`, `Field::Campaign`), for sessions that landed with campaign tags.
    DailyCampaign,
    /// How many of a visitor's sessions of a day landed by a channel (or campaign): keyed
    /// `day|kind|…|visitor`, `Field::Count`. The consumer's state for the visitor bitmaps of
    /// [`Rollup::DailyChannel`] and [`Rollup::DailyCampaign`]: a visitor's bit is set while this is above zero.
    ChannelVisitor,
    /// Per page view: its longest reported duration, day and page. The consumer's state for
    /// [`Rollup::DailyPageTime`]; figures never read it.
    PageTime,
    /// Time on page pre-summed by day and page: page views that reported a duration
    /// (`Field::Count`) and the sum of their durations (`Field::Duration`, ms), each page view
    /// counted once with its longest duration (see [`super::Delta::settle`]).
    DailyPageTime,
    /// Page views by day and referring host.
    DailyReferrer,
    /// Events by day, browser, operating system and device class.
    DailyAgent,
    /// Flagged events by day and reason (`Field::Name`), for the summary's `bots`.
    DailyBot,
    /// Core Web Vitals histograms: page views by day, metric, device, page, bucket and rating
    /// (`crate::vitals`).
    DailyVitals,
    /// Day-N retention counted as events arrive: visitors by the day they were first seen
    /// (`Field::Day`, the cohort) and a day they were active (`Field::ActiveDay`), `Field::Count`,
    /// keyed `cohort|day`. Settled against each visitor's first-seen document, which keeps the
    /// days they were active (see [`super::Delta::settle`]), so a retention figure reads a few hundred
    /// counters instead of every visitor's bit.
    Retention,
    /// The pages of each day that have rows of their own, keyed `day|page` (`Field::Count` 1):
    /// the first `ConsumerConfig::max_pages_per_day` (maidian-store) distinct
    /// pages a site's events name on a day, in log order; later ones are counted under
    /// [`super::OTHER_PAGE`] in every figure by page (see [`super::Delta::cap_pages`]). Figures never read it.
    PageIndex,
}

impl Rollup {
    /// Every rollup, in the order stores create them.
    pub const ALL: [Rollup; 18] = [
        Rollup::DailyType,
        Rollup::DailyUsers,
        Rollup::DailyPage,
        Rollup::FirstDay,
        Rollup::FirstSeen,
        Rollup::Sessions,
        Rollup::DailySessions,
        Rollup::DailyChannel,
        Rollup::DailyCampaign,
        Rollup::ChannelVisitor,
        Rollup::PageTime,
        Rollup::DailyPageTime,
        Rollup::DailyReferrer,
        Rollup::DailyAgent,
        Rollup::DailyBot,
        Rollup::DailyVitals,
        Rollup::Retention,
        Rollup::PageIndex,
    ];

    /// Everything about this rollup: the one place its properties are written.
    pub const fn spec(self) -> Spec {
        use Rollup::*;
        let f = figure;
        match self {
            DailyType => with_visitors(
                f(self, "rollup_daily_type", "rollup_bot_daily_type"),
                Some(1),
            ),
            DailyUsers => with_visitors(
                f(self, "rollup_daily_users", "rollup_bot_daily_users"),
                None,
            ),
            DailyPage => {
                let mut s = paged(with_visitors(
                    f(self, "rollup_daily_page", "rollup_bot_daily_page"),
                    Some(0),
                ));
                s.counter = Field::Views;
                s
            }
            FirstDay => with_visitors(f(self, "rollup_first_day", "rollup_bot_first_day"), None),
            FirstSeen => state(
                f(self, "rollup_first_seen", "rollup_bot_first_seen"),
                2,
                Some(Field::FirstDay),
                false,
            ),
            Sessions => state(
                f(self, "rollup_sessions", "rollup_bot_sessions"),
                2,
                Some(Field::Day),
                true,
            ),
            DailySessions => f(self, "rollup_daily_sessions", "rollup_bot_daily_sessions"),
            DailyChannel => with_visitors(
                f(self, "rollup_daily_channel", "rollup_bot_daily_channel"),
                Some(2),
            ),
            DailyCampaign => with_visitors(
                f(self, "rollup_daily_campaign", "rollup_bot_daily_campaign"),
                Some(3),
            ),
            ChannelVisitor => state(
                f(self, "rollup_channel_visitor", "rollup_bot_channel_visitor"),
                1,
                None,
                true,
            ),
            PageTime => state(
                f(self, "rollup_page_time", "rollup_bot_page_time"),
                2,
                Some(Field::Day),
                false,
            ),
            DailyPageTime => paged(f(
                self,
                "rollup_daily_page_time",
                "rollup_bot_daily_page_time",
            )),
            DailyReferrer => f(self, "rollup_daily_referrer", "rollup_bot_daily_referrer"),
            DailyAgent => f(self, "rollup_daily_agent", "rollup_bot_daily_agent"),
            DailyBot => {
                let mut s = f(self, "rollup_daily_bot", "rollup_daily_bot");
                s.bots = None;
                s
            }
            DailyVitals => paged(f(self, "rollup_daily_vitals", "rollup_bot_daily_vitals")),
            Retention => f(self, "rollup_retention", "rollup_bot_retention"),
            PageIndex => {
                let mut s = f(self, "rollup_page_index", "rollup_bot_page_index");
                s.day = None;
                s.day_keyed = false;
                s
            }
        }
    }

    /// Its collection (MongoDB) or table (embedded) name for `audience`.
    pub const fn name(self, audience: Audience) -> &'static str {
        self.spec().name(audience)
    }

    /// The rollup named `name` (people's or bots') and whose it is.
    pub fn named(name: &str) -> Option<(Rollup, Audience)> {
        spec(name).map(|(s, a)| (s.rollup, a))
    }
}

/// Every rollup's spec, in [`Rollup::ALL`]'s order.
pub static CATALOG: [Spec; 18] = {
    let mut out = [Rollup::DailyType.spec(); 18];
    let mut i = 0;
    while i < out.len() {
        out[i] = Rollup::ALL[i].spec();
        i += 1;
    }
    out
};

impl Spec {
    /// Its name for `audience` (people's for a rollup without a twin).
    pub const fn name(&self, audience: Audience) -> &'static str {
        match (audience, self.bots) {
            (Audience::Bots, Some(bots)) => bots,
            _ => self.people,
        }
    }

    /// Its names: people's, then the twin's if it has one.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.people).chain(self.bots)
    }
}

/// The rollup named `name` (people's or bots') and whose it is.
pub fn spec(name: &str) -> Option<(&'static Spec, Audience)> {
    CATALOG.iter().find_map(|s| {
        if s.people == name {
            Some((s, Audience::People))
        } else if s.bots == Some(name) {
            Some((s, Audience::Bots))
        } else {
            None
        }
    })
}

/// Every rollup name: people's, then the bots' twins.
pub fn all() -> Vec<&'static str> {
    CATALOG
        .iter()
        .map(|s| s.people)
        .chain(CATALOG.iter().filter_map(|s| s.bots))
        .collect()
}

/// The names, people's and bots', of the rollups `keep` accepts.
fn names_where(keep: impl Fn(&Spec) -> bool) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|s| keep(s))
        .flat_map(Spec::names)
        .collect()
}

/// Rollups whose documents hold a visitor bitmap.
pub fn with_visitor_bitmaps() -> Vec<&'static str> {
    names_where(|s| s.visitors)
}

/// The consumer's state documents, what [`Delta::settle`] reads.
pub fn state_rollups() -> Vec<&'static str> {
    names_where(|s| s.level == 2)
}

/// Rollups whose documents name their visitor in [`Field::Visitor`].
pub fn naming_visitors() -> Vec<&'static str> {
    names_where(|s| s.names_visitor)
}

/// The rollup whose days a [`reach::Reach`] keeps under `code`.
pub fn reached(code: u8) -> Option<&'static str> {
    CATALOG
        .iter()
        .find(|s| s.reached == Some(code))
        .map(|s| s.people)
}

/// The people's rollups a [`reach::Reach`] keeps days of, with their codes, by code.
pub fn reached_rollups() -> Vec<(u8, &'static str)> {
    (0u8..).map_while(|c| reached(c).map(|r| (c, r))).collect()
}

/// Rollups with a page in their key (people's and bots'), each with its page index.
pub fn by_page() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for s in CATALOG {
        let Some(index) = s.page_index.map(Rollup::spec) else {
            continue;
        };
        out.push((s.people, index.people));
        if let (Some(bots), Some(index)) = (s.bots, index.bots) {
            out.push((bots, index));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_one_rollups_and_twins_pair_up() {
        let names = all();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len());
        assert_eq!(names.len(), CATALOG.len() * 2 - 1);
        for name in &names {
            let (s, audience) = spec(name).expect("in the catalog");
            assert_eq!(s.name(audience), *name);
            assert_eq!(bot_twin(s.people), s.name(Audience::Bots));
        }
        assert_eq!(bot_twin(DAILY_BOT), DAILY_BOT);
        for (i, r) in Rollup::ALL.into_iter().enumerate() {
            assert_eq!(CATALOG[i].rollup, r);
            assert_eq!(
                Rollup::named(r.name(Audience::People)),
                Some((r, Audience::People))
            );
            let bots = Rollup::named(r.name(Audience::Bots));
            let audience = if r == Rollup::DailyBot {
                Audience::People
            } else {
                Audience::Bots
            };
            assert_eq!(bots, Some((r, audience)));
        }
    }

    #[test]
    fn reach_codes_are_dense_and_stable() {
        let codes = reached_rollups();
        assert_eq!(
            codes,
            vec![
                (0, DAILY_PAGE),
                (1, DAILY_TYPE),
                (2, DAILY_CHANNEL),
                (3, DAILY_CAMPAIGN)
            ]
        );
        let with_codes = CATALOG.iter().filter(|s| s.reached.is_some()).count();
        assert_eq!(with_codes, codes.len());
    }

    #[test]
    fn pages_are_indexed_by_their_audiences_index() {
        let pairs = by_page();
        assert_eq!(pairs.len(), 6);
        for (r, index) in pairs {
            assert_eq!(spec(r).map(|(_, a)| a), spec(index).map(|(_, a)| a));
        }
    }
}
