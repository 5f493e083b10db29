//! Events into a [`Delta`]: each event's changes, in the zone its site's day is counted in.

use super::*;

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
    pub(super) fn change(&mut self, rollup: &'static str, site: &str, key: String) -> &mut Change {
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

    pub(super) fn build<'a>(
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
    pub(super) fn add_event(&mut self, e: &Event, day: &str, day_no: u32, n: Option<u32>) {
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
    pub(super) fn vitals(&mut self, e: &Event, site: &str, day: &str) {
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
    pub(super) fn name_page(&mut self, site: &str, day: &str, e: &Event) {
        self.named.push(PageDay {
            index: PAGE_INDEX,
            site: site.to_string(),
            day: day.to_string(),
            page: e.page_url.clone().unwrap_or_default(),
        });
    }

    pub(super) fn page_view(&mut self, e: &Event, site: &str, day: &str, n: Option<u32>) {
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
