//! The rollup catalog: every rollup once, with all that the consumer, the stores and the data
//! lifecycle need to know of it. A rollup has a people's name and (all but [`DAILY_BOT`]) a
//! bots' twin holding the same documents made of the events flagged as bots'; both share one
//! [`Spec`]. A new rollup (a new dimension) is one row here plus what its documents count
//! ([`super::Delta`]); no list elsewhere names rollups.

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
    pub page_index: Option<&'static str>,
}

const fn figure(people: &'static str, bots: &'static str) -> Spec {
    Spec {
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
    s.page_index = Some(PAGE_INDEX);
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

/// Every rollup, people's names in the order stores create them.
pub const CATALOG: &[Spec] = &[
    with_visitors(figure(DAILY_TYPE, BOT_DAILY_TYPE), Some(1)),
    with_visitors(figure(DAILY_USERS, BOT_DAILY_USERS), None),
    {
        let mut s = paged(with_visitors(figure(DAILY_PAGE, BOT_DAILY_PAGE), Some(0)));
        s.counter = Field::Views;
        s
    },
    with_visitors(figure(FIRST_DAY, BOT_FIRST_DAY), None),
    state(
        figure(FIRST_SEEN, BOT_FIRST_SEEN),
        2,
        Some(Field::FirstDay),
        false,
    ),
    state(figure(SESSIONS, BOT_SESSIONS), 2, Some(Field::Day), true),
    figure(DAILY_SESSIONS, BOT_DAILY_SESSIONS),
    with_visitors(figure(DAILY_CHANNEL, BOT_DAILY_CHANNEL), Some(2)),
    with_visitors(figure(DAILY_CAMPAIGN, BOT_DAILY_CAMPAIGN), Some(3)),
    state(figure(CHANNEL_VISITOR, BOT_CHANNEL_VISITOR), 1, None, true),
    state(figure(PAGE_TIME, BOT_PAGE_TIME), 2, Some(Field::Day), false),
    paged(figure(DAILY_PAGE_TIME, BOT_DAILY_PAGE_TIME)),
    figure(DAILY_REFERRER, BOT_DAILY_REFERRER),
    figure(DAILY_AGENT, BOT_DAILY_AGENT),
    {
        let mut s = figure(DAILY_BOT, DAILY_BOT);
        s.bots = None;
        s
    },
    paged(figure(DAILY_VITALS, BOT_DAILY_VITALS)),
    figure(RETENTION, BOT_RETENTION),
    {
        let mut s = figure(PAGE_INDEX, BOT_PAGE_INDEX);
        s.day = None;
        s.day_keyed = false;
        s
    },
];

impl Spec {
    /// Its name for `audience` (people's for a rollup without a twin).
    pub fn name(&self, audience: Audience) -> &'static str {
        match audience {
            Audience::Bots => self.bots.unwrap_or(self.people),
            Audience::People => self.people,
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
        let Some((index, _)) = s.page_index.and_then(spec) else {
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
