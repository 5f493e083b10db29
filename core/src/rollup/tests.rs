//! The rollup algebra's unit tests.

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
    let gone =
        Delta::build(events[4..5].iter(), |e| e.day, &numbers).settled_alone_in(&numbers, &index);
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
