//! The page cap: a site's day keeps rows of their own for its first pages ([`PAGE_INDEX`]),
//! the views, times and vitals of the others fold into [`OTHER_PAGE`].

use super::*;

impl Delta {
    /// The days (index, site, day) of the pages this delta counts: those whose entries in
    /// [`PAGE_INDEX`] [`Delta::cap_pages`] needs to know as stored.
    pub fn index_days(&self) -> Vec<IndexDay> {
        let mut out: HashSet<IndexDay> = self
            .named
            .iter()
            .map(|p| (p.index, p.site.clone(), p.day.clone()))
            .collect();
        for (rollup, index) in catalog::by_page() {
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
        for (rollup, index) in catalog::by_page() {
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
        let by_page = catalog::by_page();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in &self.named {
            let day = (p.index, p.site.clone(), p.day.clone());
            if !admitted.get(&day).is_some_and(|a| a.contains(&p.page)) || !seen.insert(p) {
                continue;
            }
            let own = key(&[&p.day, &p.page]);
            let mut rows = Vec::new();
            for &(rollup, _) in by_page.iter().filter(|(_, i)| *i == p.index) {
                if Rollup::named(rollup).map(|(r, _)| r) != Some(Rollup::DailyVitals) {
                    // Views and times are keyed by the page: whoever else had them.
                    rows.push((rollup, site_key(&p.site, &own)));
                    continue;
                }
                // Vitals are keyed by their buckets too: those the erased events were in (a
                // page with vitals of others has their views too).
                for (k, c) in self.changes.get(rollup).into_iter().flatten() {
                    let same = c.site() == Some(p.site.as_str())
                        && c.text(Field::Day) == Some(p.day.as_str())
                        && c.text(Field::PageUrl) == Some(p.page.as_str());
                    if same {
                        rows.push((rollup, k.clone()));
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
}
