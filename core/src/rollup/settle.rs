//! Settling a [`Delta`] against what is stored: first days, retention cells, time on page,
//! sessions, channel bitmaps and gap counters move from where they stood to where they stand.

use super::*;

impl Delta {
    /// The state documents (rollup, `_id`) this delta changes: what [`Delta::settle`]
    /// needs to know as stored.
    pub fn state_keys(&self) -> Vec<(&'static str, String)> {
        self.keys_in(catalog::state_rollups())
    }

    /// The documents (rollup, `_id`) this delta changes in `rollups`.
    pub(super) fn keys_in(
        &self,
        rollups: impl IntoIterator<Item = &'static str>,
    ) -> Vec<(&'static str, String)> {
        rollups
            .into_iter()
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
        let mut keys = self.keys_in([CHANNEL_VISITOR, bot_twin(CHANNEL_VISITOR)]);
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

    pub(super) fn channel_flips(mut self, numbers: &Numbers, known: &Known) -> Delta {
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
    pub(super) fn moved<T: PartialEq>(
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
    pub(super) fn sessions(mut self, known: &Known) -> Delta {
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
    pub(super) fn add_session(&mut self, site: &str, v: &SessionView, sign: i64, twin: bool) {
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

    pub(super) fn page_times(mut self, known: &Known) -> Delta {
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
    pub(super) fn first_days(mut self, numbers: &Numbers, known: &Known) -> Delta {
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
    pub(super) fn retention_cells(mut self, known: &Known) -> Delta {
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
    /// [`DAILY_USERS`] or one of [`catalog::reached_rollups`]) of day number `day`, keyed `day` or
    /// `day|suffix`.
    pub(super) fn gap_cell(
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
    /// ([`catalog::reached_rollups`]), given `known` (the first-seen documents of the visitors
    /// concerned, as stored): a visitor number this delta sets in or clears from one of
    /// their daily bitmaps adds or removes that day in the visitor's [`Reach`], and the
    /// gaps there change with it. The new reach is set on the first-seen document, which the
    /// store writes after the counters (as the retention's days).
    pub(super) fn reach_cells(mut self, numbers: &Numbers, known: &Known) -> Delta {
        let visitor_of = by_number(numbers);
        let mut moves: HashMap<&str, Vec<(u8, String, u32, bool)>> = HashMap::new();
        for (code, rollup) in catalog::reached_rollups() {
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
                let Some(rollup) = catalog::reached(code) else {
                    continue;
                };
                for (d, g, n) in reach::gap_changes(&before, &after) {
                    self.gap_cell(rollup, site, d, Some(suffix), g, n);
                }
            }
            self.set_reach(visitor, &new);
        }
        self
    }

    /// Sets `reach` on the first-seen document `key` (`site|visitor`).
    pub(super) fn set_reach(&mut self, key: &str, reach: &Reach) {
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
                let Some(rollup) = catalog::reached(code) else {
                    continue;
                };
                for (d, g) in reach::gaps(days) {
                    self.gap_cell(rollup, site, d, Some(suffix), g, -1);
                }
            }
        }
    }

    /// Adds `n` to the [`RETENTION`] (or twin, `target`) counter of (`cohort`, `day`) of
    /// `site`, keyed `cohort|day`.
    pub(super) fn count_cell(
        &mut self,
        target: &'static str,
        site: &str,
        cohort: &str,
        day: &str,
        n: i64,
    ) {
        let c = self.change(target, site, key(&[cohort, day]));
        c.add(Field::Count, n);
        c.ident(Field::Day, s(cohort));
        c.ident(Field::ActiveDay, s(day));
    }
}

/// `numbers` the other way round: (site, number) → the visitor's `site|visitor` key.
pub(super) fn by_number(numbers: &Numbers) -> HashMap<(&str, u32), &str> {
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
pub(super) struct SessionView {
    day: String,
    duration: i64,
    bounce: bool,
    visitor: String,
    channel: String,
    campaign: Option<(String, String, String)>,
}

/// A session document's contribution; `None` before it has a day.
pub(super) fn session_view(fields: &HashMap<Field, Value>) -> Option<SessionView> {
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
pub(super) fn page_view_time(fields: &HashMap<Field, Value>) -> Option<(String, String, i64)> {
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
