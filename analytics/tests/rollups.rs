//! Rollups on both stores: rolled up by the consumer in small chunks as events arrive (as a
//! collector does) they equal a rebuild from the raw events, a rebuild switches generations
//! without a gap, and the figures read from them agree between stores.

#![allow(clippy::unwrap_used)] // Test helpers: a failed setup should stop the test loudly.

use maidian_analytics::consumer::{self, ConsumerConfig, Step};
use maidian_analytics::engine::{funnel, retention, summary, vitals, Scope};
use maidian_analytics::event::{Day, Event};
use maidian_analytics::rollup::{self, Field};
use maidian_analytics::site::DEFAULT_SITE;
use maidian_analytics::stats::Period;
use maidian_analytics::store::{MongoConfig, RollupDoc, Store, StoreConfig, StoreError};
use maidian_testkit::{fresh_db_name, mongodb_uri};

const DAY: i64 = 86_400_000;
// 2026-11-20T10:00:00Z
const T0: i64 = 1_795_168_800_000;

/// Three visitors over four days: sessions, pages, a funnel, a return visit, a bounce.
fn dataset() -> Vec<Event> {
    let rows: &[(&str, &str, &str, &str, i64)] = &[
        ("a", "s1", "page_view", "https://shop.example/", 0),
        ("a", "s1", "click", "https://shop.example/", 20_000),
        ("a", "s1", "page_view", "https://shop.example/cart", 60_000),
        ("a", "s1", "page_leave", "https://shop.example/cart", 90_000),
        ("a", "s1", "web_vitals", "https://shop.example/cart", 95_000),
        ("a", "s1", "purchase", "https://shop.example/cart", 120_000),
        ("b", "s2", "page_view", "https://shop.example/", 5_000),
        ("a", "s3", "page_view", "https://shop.example/", 2 * DAY),
        ("c", "s4", "page_view", "https://shop.example/cart", 3 * DAY),
        (
            "c",
            "s4",
            "click",
            "https://shop.example/cart",
            3 * DAY + 1_000,
        ),
        // A crawler's visit: stored and flagged, left out of every figure by default.
        (
            "bot1",
            "s5",
            "page_view",
            "https://shop.example/",
            3 * DAY + 2_000,
        ),
        (
            "bot1",
            "s5",
            "click",
            "https://shop.example/",
            3 * DAY + 3_000,
        ),
        (
            "bot1",
            "s5",
            "page_leave",
            "https://shop.example/",
            3 * DAY + 4_000,
        ),
        (
            "bot1",
            "s5",
            "web_vitals",
            "https://shop.example/",
            3 * DAY + 4_000,
        ),
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (user, session, ty, page, at))| {
            let ts = T0 + at;
            let mut e = Event {
                event_id: format!("00000000-0000-7000-8000-{i:012}"),
                event_type: ty.to_string(),
                user_id: Some(user.to_string()),
                session_id: Some(session.to_string()),
                page_url: Some(page.to_string()),
                referrer: (*ty == "page_view").then(|| "https://search.example/q".to_string()),
                user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36".into()),
                timestamp: ts,
                client_timestamp: ts,
                received_at: ts,
                day: Day::from_millis(ts).unwrap(),
                ..Event::default()
            };
            if *ty == "page_leave" {
                e.page_view_id = Some(format!("view-{session}"));
                e.duration = Some(30_000.0);
            }
            if *ty == "web_vitals" {
                e.page_view_id = Some(format!("view-{session}"));
                (e.lcp, e.fcp, e.ttfb, e.cls) = (Some(2600.0), Some(700.0), Some(120.0), Some(0.12));
            }
            if user.starts_with("bot") {
                e.bot = Some("user_agent".into());
            }
            // b's and the bot's visits landed from a tagged newsletter link.
            if *ty == "page_view" && (*user == "b" || user.starts_with("bot")) {
                e.channel = Some("Email".into());
                e.source = Some("newsletter".into());
                e.utm_medium = Some("email".into());
                e.utm_campaign = Some("launch".into());
            }
            e.derive_visitor();
            e
        })
        .collect()
}

fn mongo_config() -> StoreConfig {
    StoreConfig::Mongo(MongoConfig::at_uri(
        mongodb_uri().unwrap(),
        fresh_db_name("rollups"),
    ))
}

/// MongoDB (FerretDB, with rollup upserts as FerretDB gets them), MongoDB with the `applied`
/// guard in every upsert filter (as real MongoDB gets them), and the embedded store.
async fn stores() -> Vec<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let embedded = StoreConfig::Embedded {
        data_dir: dir.path().join("data"),
    };
    let mut guarded = Store::open(&mongo_config()).await.unwrap();
    if let Store::Mongo(m) = &mut guarded {
        m.set_guarded_updates(true);
    }
    vec![
        (
            Store::open(&mongo_config()).await.unwrap(),
            tempfile::tempdir().unwrap(),
        ),
        (guarded, tempfile::tempdir().unwrap()),
        (Store::open(&embedded).await.unwrap(), dir),
    ]
}

/// Every rollup's documents: (rollup, [(`_id`, [(field, value)])]).
type Snapshot = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;

async fn snapshot(store: &Store) -> Snapshot {
    let (since, until) = (
        Day::parse("2000-01-01").unwrap(),
        Day::parse("2100-01-01").unwrap(),
    );
    let mut out = Vec::new();
    for name in rollup::all() {
        let field = if name == rollup::FIRST_SEEN || name == rollup::bot_twin(rollup::FIRST_SEEN) {
            Field::FirstDay
        } else {
            Field::Day
        };
        let docs: Vec<RollupDoc> = store
            .rollup_between(name, field, "default", since, until)
            .await
            .unwrap();
        let mut rows: Vec<(String, Vec<(String, String)>)> = docs
            .into_iter()
            .map(|d| {
                let mut f: Vec<(String, String)> = d
                    .fields
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), format!("{v:?}")))
                    .collect();
                f.sort();
                (d.id, f)
            })
            .collect();
        rows.sort();
        out.push((name.to_string(), rows));
    }
    out
}

fn consumer_config() -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(consumer::owner_name("test"));
    cfg.chunk_events = 2;
    // Nothing else writes to these stores, so no write can still be in flight.
    cfg.safety_lag = std::time::Duration::ZERO;
    cfg.idle_poll = std::time::Duration::from_millis(20);
    cfg
}

#[tokio::test]
async fn live_rollups_equal_a_rebuild_on_both_stores() {
    let events = dataset();
    let mut figures = Vec::new();
    for (store, _dir) in stores().await {
        // Live: three uneven batches rolled up by the consumer in chunks of 2, one batch resent
        // (duplicates are not counted again).
        let cfg = consumer_config();
        for batch in [&events[..2], &events[2..7], &events[..2], &events[7..]] {
            store.insert(batch).await.unwrap();
            consumer::catch_up(&store, &cfg).await.unwrap();
        }
        let again = store.insert(&events[..2]).await.unwrap();
        assert_eq!(again.duplicates, vec![0, 1]);
        assert_eq!(store.rollup_step(&cfg).await.unwrap(), Step::Idle);
        let status = store.rollup_status().await.unwrap();
        assert_eq!((status.generation, status.events), (1, events.len() as u64));
        assert_eq!(status.lag_seconds, 0.0);

        let live = snapshot(&store).await;
        assert!(live.iter().all(|(_, rows)| !rows.is_empty()), "{live:?}");
        let n = store.rebuild_rollups(&cfg, |_| {}).await.unwrap();
        assert_eq!(n, events.len() as u64);
        assert_eq!(snapshot(&store).await, live, "{}", store.kind());
        let status = store.rollup_status().await.unwrap();
        assert_eq!((status.generation, status.events), (2, events.len() as u64));

        let p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
        let s = summary::summary(&store, p, 10, &Scope::default())
            .await
            .unwrap();
        let f = funnel::Funnel::parse("page_view,click,purchase", DAY).unwrap();
        let fr = funnel::funnel(&store, &f, p, &Scope::default())
            .await
            .unwrap();
        let r = retention::retention(&store, p, &Scope::default())
            .await
            .unwrap();
        let all = &Scope::default().bots(true);
        let with_bots = (
            summary::summary(&store, p, 10, all).await.unwrap(),
            funnel::funnel(&store, &f, p, all).await.unwrap(),
            retention::retention(&store, p, all).await.unwrap(),
            vitals::vitals(&store, p, all, 10).await.unwrap(),
        );
        let v = vitals::vitals(&store, p, &Scope::default(), 10)
            .await
            .unwrap();
        figures.push((s, fr, r, with_bots, v));
    }
    let (mongo, guarded, embedded) = (&figures[0], &figures[1], &figures[2]);
    assert_eq!(mongo, embedded, "the two stores disagree");
    assert_eq!(mongo, guarded, "guarded upserts disagree");

    let (s, f, r, with_bots, v) = mongo;
    assert_eq!(s.overview.total_events, 10);
    assert_eq!(
        serde_json::to_value(&s.bots).unwrap(),
        serde_json::json!([{"reason": "user_agent", "events": 4}])
    );
    assert_eq!(s.overview.active_users, 3);
    assert_eq!(s.overview.sessions, 4);
    assert_eq!(s.overview.bounce_rate, 50.0); // s2 and s3
    assert_eq!(s.top_referrers[0].name, "search.example");
    assert_eq!(s.browsers[0].name, "Chrome");
    let cart = s
        .top_pages
        .iter()
        .find(|p| p.page_url.ends_with("/cart"))
        .unwrap();
    assert_eq!(
        (cart.views, cart.unique_users, cart.avg_time_on_page),
        (2, 2, Some(30.0))
    );
    let users: Vec<u64> = f.funnel_steps.iter().map(|s| s.users).collect();
    assert_eq!(users, vec![3, 2, 1]);
    assert_eq!(r.cohorts[0].retained, vec![2, 0, 1, 0]);
    let p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
    assert_eq!(r, &retention::from_events(p, &dataset()));
    assert_eq!(
        s,
        &summary::summarize(p, &summary::Inputs::from_events(&dataset()), 10)
    );

    // With bots: the figures of the same events, none flagged (the bots list aside).
    let unflagged: Vec<Event> = dataset()
        .into_iter()
        .map(|e| Event { bot: None, ..e })
        .collect();
    let (sb, fb, rb, vb) = with_bots;
    assert_eq!(sb.overview.total_events, 14);
    assert_eq!(sb.overview.sessions, 5);
    let mut want = summary::summarize(p, &summary::Inputs::from_events(&unflagged), 10);
    want.bots = s.bots.clone();
    assert_eq!(sb, &want);
    let users: Vec<u64> = fb.funnel_steps.iter().map(|s| s.users).collect();
    assert_eq!(users, vec![4, 3, 1]);
    assert_eq!(rb, &retention::from_events(p, &unflagged));

    // Core Web Vitals: one page view measured (two with the bot's), equal to the raw scan.
    assert_eq!(v, &vitals::from_events(p, &dataset(), 10));
    assert_eq!(vb, &vitals::from_events(p, &unflagged, 10));
    assert_eq!((v.page_views, vb.page_views), (1, 2));
    assert_eq!(v.metrics[0].good, 0.0);
    assert_eq!(v.pages[0].name, "https://shop.example/cart");
}

/// A visitor's earlier event arriving after later ones moves them to the earlier cohort, and a
/// page view's longer leave replaces its shorter one in time on page: the rollups equal a
/// rebuild's, byte for byte, and the figures a raw scan's.
#[tokio::test]
async fn late_events_move_first_days_and_times_on_page() {
    let events = dataset();
    // c's page view (day 3) arrives first, then c's click backdated to day 1 (an offline
    // queue flushed late), then a bot's event for c's id on day 0.
    let mut late = events[9].clone();
    late.event_id = "00000000-0000-7000-8000-00000000late".into();
    late.timestamp = T0 + DAY;
    late.day = Day::from_millis(late.timestamp).unwrap();
    let mut bot = late.clone();
    bot.event_id = "00000000-0000-7000-8000-000000000bot".into();
    bot.timestamp = T0;
    bot.day = Day::from_millis(T0).unwrap();
    bot.bot = Some("user_agent".into());
    // Then two leaves of c's page view in separate chunks: the second, longer one replaces
    // the first in the time on page by day and page.
    let leave = |n: u32, secs: f64| {
        let mut e = events[8].clone();
        e.event_id = format!("00000000-0000-7000-8000-00000000lv{n:02}");
        e.event_type = "page_leave".into();
        e.timestamp += i64::from(n) * 1_000;
        e.page_view_id = Some("view-c".into());
        e.duration = Some(secs * 1_000.0);
        e
    };
    let (short, long) = (leave(1, 10.0), leave(2, 40.0));
    let p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
    for (store, _dir) in stores().await {
        let cfg = consumer_config();
        let batches = [
            &events[8..9],
            std::slice::from_ref(&late),
            std::slice::from_ref(&bot),
            std::slice::from_ref(&short),
            std::slice::from_ref(&long),
        ];
        for batch in batches {
            store.insert(batch).await.unwrap();
            consumer::catch_up(&store, &cfg).await.unwrap();
        }
        let first_days = |snap: &Snapshot| {
            snap.iter()
                .find(|(n, _)| n == rollup::FIRST_DAY)
                .map(|(_, rows)| rows.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>())
                .unwrap()
        };
        let live = snapshot(&store).await;
        let want = Day::from_millis(T0 + DAY).unwrap().to_string();
        assert_eq!(first_days(&live), vec![want], "{}", store.kind());
        store.rebuild_rollups(&cfg, |_| {}).await.unwrap();
        assert_eq!(snapshot(&store).await, live, "{}", store.kind());
        let all: Vec<Event> = vec![
            events[8].clone(),
            late.clone(),
            bot.clone(),
            short.clone(),
            long.clone(),
        ];
        let s = summary::summary(&store, p, 10, &Scope::default())
            .await
            .unwrap();
        assert_eq!(
            s,
            summary::summarize(p, &summary::Inputs::from_events(&all), 10)
        );
        assert_eq!(
            s.top_pages[0].avg_time_on_page,
            Some(40.0),
            "{}",
            store.kind()
        );
        let r = retention::retention(&store, p, &Scope::default())
            .await
            .unwrap();
        assert_eq!(r, retention::from_events(p, &all));
        assert_eq!(r.cohorts.len(), 1);
        assert_eq!(r.cohorts[0].retained, vec![1, 0, 1]);
        // With bots: c first seen on day 0 (the bot's event), still one cohort.
        let rb = retention::retention(&store, p, &Scope::default().bots(true))
            .await
            .unwrap();
        let unflagged: Vec<Event> = all.into_iter().map(|e| Event { bot: None, ..e }).collect();
        assert_eq!(rb, retention::from_events(p, &unflagged));
        assert_eq!(rb.cohorts.len(), 1);
        assert_eq!(rb.cohorts[0].retained, vec![1, 1, 0, 1]);
    }
}

/// A page URL holding the key separator must not merge with another page's rollup.
#[tokio::test]
async fn keys_with_separators_stay_apart() {
    let mut a = dataset()[0].clone();
    a.event_id = "sep-a".into();
    a.page_url = Some("https://a/|x".into());
    a.user_id = Some("y".into());
    a.derive_visitor();
    let mut b = a.clone();
    b.event_id = "sep-b".into();
    b.page_url = Some("https://a/".into());
    b.user_id = Some("x|y".into());
    b.derive_visitor();
    for (store, _dir) in stores().await {
        store.insert(&[a.clone(), b.clone()]).await.unwrap();
        consumer::catch_up(&store, &consumer_config())
            .await
            .unwrap();
        let p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
        let s = summary::summary(&store, p, 10, &Scope::default())
            .await
            .unwrap();
        let mut pages: Vec<(String, u64, u64)> = s
            .top_pages
            .iter()
            .map(|p| (p.page_url.clone(), p.views, p.unique_users))
            .collect();
        pages.sort();
        assert_eq!(
            pages,
            vec![("https://a/".into(), 1, 1), ("https://a/|x".into(), 1, 1)],
            "{}",
            store.kind()
        );
    }
}

/// A rebuild replaces the live generation in one step and leaves no old tables behind
/// (embedded), and a consumer keeps adding to the new generation afterwards.
#[tokio::test]
async fn a_rebuild_switches_generations_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::Embedded {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let events = dataset();
    let cfg = consumer_config();
    store.insert(&events[..5]).await.unwrap();
    consumer::catch_up(&store, &cfg).await.unwrap();
    // Logged but not rolled up yet when the rebuild starts: the rebuild takes them too.
    store.insert(&events[5..7]).await.unwrap();
    assert_eq!(store.rebuild_rollups(&cfg, |_| {}).await.unwrap(), 7);
    store.insert(&events[7..]).await.unwrap();
    assert_eq!(
        consumer::catch_up(&store, &cfg).await.unwrap(),
        events.len() as u64 - 7
    );
    let Store::Embedded(e) = &store else {
        unreachable!()
    };
    let tables = e.rollup_tables().await.unwrap();
    assert!(tables.iter().all(|t| t.ends_with("@2")), "{tables:?}");
    let p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
    assert_eq!(
        summary::summary(&store, p, 10, &Scope::default())
            .await
            .unwrap(),
        summary::summarize(p, &summary::Inputs::from_events(&events), 10)
    );
}

/// A chunk whose rollup updates are cut part-way (the server applied some, the reply was
/// lost) is finished on the next step without counting anything twice: with the `applied`
/// guard in the filter (MongoDB) and with the read-then-skip path (FerretDB).
#[tokio::test]
async fn an_interrupted_chunk_is_finished_exactly_once() {
    let upstream: std::net::SocketAddr = mongodb_uri()
        .unwrap()
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = maidian_testkit::proxy::MongoProxy::start(upstream)
        .await
        .unwrap();
    let events = dataset();
    let p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
    for guarded in [true, false] {
        let mut store = Store::open(&StoreConfig::Mongo(MongoConfig::at_uri(
            proxy.uri(),
            fresh_db_name("cut"),
        )))
        .await
        .unwrap();
        if let Store::Mongo(m) = &mut store {
            m.set_guarded_updates(guarded);
        }
        let mut cfg = consumer_config();
        cfg.chunk_events = 100;
        store.insert(&events).await.unwrap();
        // The second rollup update of the chunk reaches the server, its reply does not.
        let before = proxy.dropped();
        proxy.drop_replies("update", "rollup_", 2);
        let first = consumer::catch_up(&store, &cfg).await;
        assert!(first.is_err(), "the cut went unnoticed");
        // Whatever is left of the fault hits the retry; the step after that finishes it.
        let mut rounds = 0;
        while consumer::catch_up(&store, &cfg).await.is_err() {
            rounds += 1;
            assert!(rounds < 5);
        }
        assert_eq!(proxy.dropped() - before, 2);
        assert_eq!(
            summary::summary(&store, p, 10, &Scope::default())
                .await
                .unwrap(),
            summary::summarize(p, &summary::Inputs::from_events(&events), 10),
            "guarded: {guarded}"
        );
        assert_eq!(
            retention::retention(&store, p, &Scope::default())
                .await
                .unwrap(),
            retention::from_events(p, &events)
        );
        let status = store.rollup_status().await.unwrap();
        assert_eq!(status.events, events.len() as u64);
    }
}

type Figures = (summary::Summary, funnel::FunnelResult, retention::Retention);

async fn site_figures(
    store: &Store,
    f: &funnel::Funnel,
    sites: [(&str, Period); 2],
) -> Vec<Figures> {
    let mut out = Vec::new();
    for (site, p) in sites {
        let scope = &Scope::site(site);
        out.push((
            summary::summary(store, p, 10, scope).await.unwrap(),
            funnel::funnel(store, f, p, scope).await.unwrap(),
            retention::retention(store, p, scope).await.unwrap(),
        ));
    }
    out
}

/// Two sites in one store: the default one (UTC) and `shop` in Asia/Shanghai with the same
/// visitors, ids and pages, its events at 16:30 UTC (00:30 the next day in Shanghai). Each
/// site's figures are those of its own events alone, counted on its own days; nothing of one
/// appears in the other. Then the rollups are marked as of the format before sites: both
/// stores roll the log up again and give the same figures.
#[tokio::test]
async fn sites_are_apart_and_count_their_own_days_on_both_stores() {
    use maidian_analytics::site::{SiteInfo, Zone};
    let shanghai = Zone::named("Asia/Shanghai").unwrap();
    let blog = dataset();
    let shift = 6 * 3_600_000 + 30 * 60_000;
    let shop: Vec<Event> = dataset()
        .into_iter()
        .map(|mut e| {
            e.site = "shop".into();
            e.event_id = format!("shop-{}", e.event_id);
            e.timestamp += shift;
            e.client_timestamp += shift;
            // What the collector stores: the site's local day.
            e.day = shanghai.day_of(e.timestamp).unwrap();
            e
        })
        .collect();
    assert_ne!(shop[0].day, Day::from_millis(shop[0].timestamp).unwrap());
    let sites = [
        SiteInfo::default_site(),
        SiteInfo {
            id: "shop".into(),
            name: "Shop".into(),
            timezone: "Asia/Shanghai".into(),
            earlier: Vec::new(),
        },
    ];
    let blog_p = Period::last_days(7, Day::from_millis(T0 + 3 * DAY).unwrap());
    let shop_p = Period::last_days_in(7, shanghai.day_of(T0 + shift + 3 * DAY).unwrap(), &shanghai);
    let f = funnel::Funnel::parse("page_view,click,purchase", DAY).unwrap();
    let expected = |events: &[Event], p: Period| {
        (
            summary::summarize(p, &summary::Inputs::from_events(events), 10),
            funnel::compute(
                &f,
                p,
                &events
                    .iter()
                    .filter(|e| e.bot.is_none())
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            retention::from_events(p, events),
        )
    };
    let want_blog = expected(&blog, blog_p);
    let want_shop = expected(&shop, shop_p);
    assert_ne!(want_blog.0.daily, want_shop.0.daily);

    let both = [("default", blog_p), ("shop", shop_p)];
    for (store, dir) in stores().await {
        assert!(store.register_sites(&sites).await.unwrap().is_empty());
        let mut all: Vec<Event> = blog.iter().chain(&shop).cloned().collect();
        all.sort_by_key(|e| e.timestamp);
        let cfg = consumer_config();
        for batch in all.chunks(5) {
            store.insert(batch).await.unwrap();
            consumer::catch_up(&store, &cfg).await.unwrap();
        }
        let status = store.rollup_status().await.unwrap();
        assert_eq!(
            status.events,
            all.len() as u64,
            "{} {status:?}",
            store.kind()
        );
        let got = site_figures(&store, &f, both).await;
        assert_eq!(got[0], want_blog, "{}", store.kind());
        assert_eq!(got[1], want_shop, "{}", store.kind());

        // Rollups of the format before sites are rolled up again.
        let store = match store {
            Store::Mongo(_) => {
                let db_name = match &store {
                    Store::Mongo(s) => s.database_name(),
                    _ => unreachable!(),
                };
                let client = mongodb::Client::with_uri_str(mongodb_uri().unwrap())
                    .await
                    .unwrap();
                client
                    .database(&db_name)
                    .collection::<mongodb::bson::Document>("rollup_state")
                    .update_one(
                        mongodb::bson::doc! {"_id": "consumer"},
                        mongodb::bson::doc! {"$set": {"format": 0_i64}},
                    )
                    .await
                    .unwrap();
                store
            }
            Store::Embedded(e) => {
                drop(e);
                set_embedded_format(&dir, 0);
                Store::open(&StoreConfig::Embedded {
                    data_dir: dir.path().join("data"),
                })
                .await
                .unwrap()
            }
        };
        let before = store.rollup_status().await.unwrap().generation;
        consumer::catch_up(&store, &cfg).await.unwrap();
        let status = store.rollup_status().await.unwrap();
        assert_eq!(status.events, all.len() as u64, "{}", store.kind());
        if store.kind() == "mongodb" {
            assert_eq!(status.generation, before + 1);
        }
        assert_eq!(
            site_figures(&store, &f, both).await,
            got,
            "{}",
            store.kind()
        );
    }
}

/// The dataset with visitor `a` as a signed-in user `alice-7f3` who browsed anonymously
/// (`anon-alice-7f3`) before signing in, in sessions of her own: one erasure of her user id
/// must take all of it.
fn dataset_with_alice() -> Vec<Event> {
    let mut events = dataset();
    for e in events
        .iter_mut()
        .filter(|e| e.user_id.as_deref() == Some("a"))
    {
        e.user_id = Some("alice-7f3".into());
        e.anonymous_id = Some("anon-alice-7f3".into());
        let s = e.session_id.take().unwrap_or_default();
        e.session_id = Some(format!("sess-alice-{s}"));
        if let Some(v) = &mut e.page_view_id {
            // Page views have opaque ids (the SDK's are random), naming no one.
            *v = format!("pv-{s}-1");
        }
        e.derive_visitor();
    }
    let mut before = events[0].clone();
    before.event_id = "00000000-0000-7000-8000-999999999999".into();
    before.user_id = None;
    before.session_id = Some("sess-alice-s0".into());
    before.timestamp -= 60_000;
    before.received_at = before.timestamp;
    before.derive_visitor();
    events.push(before);
    events
}

/// Where `needle` is stored: collection or table names.
async fn traces(store: &Store, needle: &str) -> Vec<String> {
    match store {
        Store::Mongo(m) => {
            let client = mongodb::Client::with_uri_str(mongodb_uri().unwrap())
                .await
                .unwrap();
            let db = client.database(&m.database_name());
            maidian_testkit::collections_containing(&db, needle)
                .await
                .unwrap()
        }
        Store::Embedded(e) => e.tables_containing(needle.to_string()).await.unwrap(),
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn forgetting_a_visitor_leaves_no_trace_and_figures_equal_a_rebuild() {
    let events = dataset_with_alice();
    let alice = events
        .iter()
        .filter(|e| e.anonymous_id.as_deref() == Some("anon-alice-7f3"))
        .count() as u64;
    assert_eq!(alice, 8);
    for (store, _dir) in stores().await {
        let cfg = consumer_config();
        // Most events rolled up, the last two not yet: both kinds must go.
        let (rolled, tail) = events.split_at(events.len() - 2);
        store.insert(rolled).await.unwrap();
        consumer::catch_up(&store, &cfg).await.unwrap();
        store.insert(tail).await.unwrap();
        assert!(!traces(&store, "alice-7f3").await.is_empty());
        let access = store
            .visitor_events(DEFAULT_SITE, "anon-alice-7f3")
            .await
            .unwrap();
        assert_eq!(access.len() as u64, alice, "{}", store.kind());

        let done = store
            .forget(
                &cfg,
                DEFAULT_SITE,
                "alice-7f3",
                std::time::Duration::from_secs(60),
                true,
            )
            .await
            .unwrap();
        assert_eq!(done.events_removed, alice, "{}", store.kind());
        assert!(done.rollup_entries_removed > 0);
        consumer::catch_up(&store, &cfg).await.unwrap();
        for needle in ["alice-7f3", "sess-alice"] {
            assert_eq!(
                traces(&store, needle).await,
                Vec::<String>::new(),
                "{needle} on {}",
                store.kind()
            );
        }
        assert!(store
            .visitor_events(DEFAULT_SITE, "alice-7f3")
            .await
            .unwrap()
            .is_empty());
        let left = events.len() as u64 - alice;
        assert_eq!(store.rollup_status().await.unwrap().events, left);
        let (counted, from_bitmaps) = retention_both_ways(&store).await;
        assert_eq!(counted, from_bitmaps, "{}", store.kind());
        // The rollups taken back equal rollups made from the remaining events alone.
        let after = snapshot(&store).await;
        assert_eq!(store.rebuild_rollups(&cfg, |_| {}).await.unwrap(), left);
        assert_eq!(snapshot(&store).await, after, "{}", store.kind());
    }
}

/// An embedded erasure deletes its events a piece at a time after the transaction that
/// takes their rollups back: one stopped in between (a crash) finishes at the next open, and
/// the figures equal a rebuild's.
#[tokio::test]
async fn an_embedded_erasure_stopped_part_way_finishes_at_the_next_open() {
    let events = dataset_with_alice();
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Embedded {
        data_dir: dir.path().join("data"),
    };
    let cfg = consumer_config();
    let store = Store::open(&config).await.unwrap();
    store.insert(&events).await.unwrap();
    consumer::catch_up(&store, &cfg).await.unwrap();
    let Store::Embedded(e) = store else {
        unreachable!()
    };
    let done = e
        .forget_filed_only(DEFAULT_SITE.into(), "alice-7f3".into())
        .await
        .unwrap();
    assert_eq!(done.events_removed, 0);
    let store = Store::Embedded(e);
    assert_eq!(
        store
            .visitor_events(DEFAULT_SITE, "alice-7f3")
            .await
            .unwrap()
            .len(),
        8
    );
    drop(store);
    let store = Store::open(&config).await.unwrap();
    assert_eq!(traces(&store, "alice-7f3").await, Vec::<String>::new());
    let left = events.len() as u64 - 8;
    let after = snapshot(&store).await;
    assert_eq!(store.rebuild_rollups(&cfg, |_| {}).await.unwrap(), left);
    assert_eq!(snapshot(&store).await, after);
}

/// One rule for rollups of another format: rolled up again from the log (the test above);
/// but once retention has deleted raw events, whose figures only those rollups hold, the store
/// refuses to open, in one line saying why and what to do, and the consumer refuses to start
/// over; nothing is dropped.
#[tokio::test]
async fn another_format_over_expired_raw_events_refuses_to_open() {
    let events = dataset_with_alice();
    for (store, dir) in stores().await {
        let cfg = consumer_config();
        store.insert(&events).await.unwrap();
        consumer::catch_up(&store, &cfg).await.unwrap();
        // The first two days' raw events expired: rolling up again would lose them.
        while store.expire_raw(&cfg, T0 + 2 * DAY, 100).await.unwrap() > 0 {}
        let made = snapshot(&store).await;
        let reopened = match store {
            Store::Mongo(m) => {
                let name = m.database_name();
                let client = mongodb::Client::with_uri_str(mongodb_uri().unwrap())
                    .await
                    .unwrap();
                client
                    .database(&name)
                    .collection::<mongodb::bson::Document>("rollup_state")
                    .update_one(
                        mongodb::bson::doc! { "_id": "consumer" },
                        mongodb::bson::doc! { "$set": { "format": 4_i64 } },
                    )
                    .await
                    .unwrap();
                // A process already running refuses to roll up again.
                let running = Store::Mongo(m);
                let e = running.rollup_step(&cfg).await.unwrap_err();
                assert!(matches!(e, StoreError::Format(_)), "{e}");
                assert_eq!(snapshot(&running).await, made);
                Store::open(&StoreConfig::Mongo(MongoConfig::at_uri(
                    mongodb_uri().unwrap(),
                    name,
                )))
                .await
            }
            Store::Embedded(e) => {
                drop(e);
                set_embedded_format(&dir, 4);
                Store::open(&StoreConfig::Embedded {
                    data_dir: dir.path().join("data"),
                })
                .await
            }
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        let Err(e) = reopened else {
            panic!("a store of format 4 over expired raw events opened");
        };
        let line = e.to_string();
        assert!(matches!(e, StoreError::Format(_)), "{line}");
        for part in [
            "format 4",
            &format!("format {}", rollup::FORMAT),
            "deleted by retention",
            "run the maidian release that wrote them",
        ] {
            assert!(line.contains(part), "{line}");
        }
        assert!(!line.contains('\n'), "{line}");
    }
}

/// Sets the rollup format recorded in the embedded store of `dir` (closed).
fn set_embedded_format(dir: &tempfile::TempDir, format: u32) {
    let path = dir.path().join("data").join("events.redb");
    let db = redb::Database::open(&path).unwrap();
    let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("rollup_state");
    let tx = db.begin_write().unwrap();
    {
        use redb::ReadableTable;
        let mut t = tx.open_table(table).unwrap();
        let mut st: serde_json::Value =
            serde_json::from_slice(t.get("consumer").unwrap().unwrap().value()).unwrap();
        st["format"] = format.into();
        let bytes = serde_json::to_vec(&st).unwrap();
        t.insert("consumer", bytes.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

/// Retention computed from the stored bitmaps (first days, daily visitors), which an erasure
/// clears bit by bit, against the retention counters the figure reads: they must agree.
async fn retention_both_ways(store: &Store) -> (retention::Retention, retention::Retention) {
    let p = Period::last_days(10, Day::from_millis(T0 + 5 * DAY).unwrap());
    let scope = Scope::default();
    let origin = Day::parse("1970-01-01").unwrap();
    let first = store
        .rollup_figures(rollup::FIRST_DAY, Field::Day, origin, p.until, &scope)
        .await
        .unwrap();
    let daily = store
        .rollup_figures(rollup::DAILY_USERS, Field::Day, p.since, p.until, &scope)
        .await
        .unwrap();
    let counted = retention::retention(store, p, &scope).await.unwrap();
    assert!(!counted.cohorts.is_empty());
    (counted, retention::compute(p, &first, &daily))
}

#[tokio::test]
async fn retention_deletes_old_raw_events_and_keeps_their_figures() {
    let events = dataset_with_alice();
    let cutoff = T0 + 2 * DAY;
    for (store, _dir) in stores().await {
        let cfg = consumer_config();
        store.insert(&events).await.unwrap();
        consumer::catch_up(&store, &cfg).await.unwrap();
        let before = snapshot(&store).await;
        assert_eq!(store.raw_since().await.unwrap(), None);
        let mut deleted = 0;
        loop {
            let n = store.expire_raw(&cfg, cutoff, 3).await.unwrap();
            if n == 0 {
                break;
            }
            deleted += n;
        }
        let old = events.iter().filter(|e| e.timestamp < cutoff).count() as u64;
        assert_eq!(deleted, old, "{}", store.kind());
        let (since, until) = (
            Day::parse("2000-01-01").unwrap(),
            Day::parse("2100-01-01").unwrap(),
        );
        let kept = store.events_between(since, until).await.unwrap();
        assert_eq!(kept.len() as u64, events.len() as u64 - old);
        assert!(kept.iter().all(|e| e.timestamp >= cutoff));
        // Every figure of the old days stays: rollups are kept.
        assert_eq!(snapshot(&store).await, before, "{}", store.kind());
        assert_eq!(store.raw_since().await.unwrap(), Some(cutoff));
        let refused = store.rebuild_rollups(&cfg, |_| {}).await;
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("retention")),
            "{refused:?}"
        );
        // An erasure after expiry still leaves no trace: what names the visitor goes, though
        // her raw events of old days are gone; her retention counters go exactly (taken
        // from her stored days, not from raw events).
        store
            .forget(
                &cfg,
                DEFAULT_SITE,
                "alice-7f3",
                std::time::Duration::from_secs(60),
                true,
            )
            .await
            .unwrap();
        let (counted, from_bitmaps) = retention_both_ways(&store).await;
        assert_eq!(counted, from_bitmaps, "{}", store.kind());
        for needle in ["alice-7f3", "sess-alice"] {
            assert_eq!(
                traces(&store, needle).await,
                Vec::<String>::new(),
                "{needle}"
            );
        }
    }
}

/// Funnels read from each store (the embedded one merges one index range per step type)
/// equal the raw walk: simulated traffic, page-narrowed and repeated steps, bots, and step
/// events of one visitor at the same millisecond, ordered by event id.
#[tokio::test]
async fn funnels_from_the_stores_equal_the_raw_walk() {
    let now = T0 + 7 * DAY;
    let mut sim = maidian_analytics::simulate::Simulation::new(7, now, 7);
    let mut events: Vec<Event> = (0..150).flat_map(|v| sim.visitor(v)).collect();
    for (i, e) in events.iter_mut().enumerate() {
        if i % 23 == 0 {
            e.bot = Some("user_agent".into());
        }
    }
    // A click and a page view of one visitor in the same millisecond: the ids decide the
    // order, so "z" converts (view "t1" before click "t2") and "y" does not.
    let tie = |visitor: &str, id: &str, ty: &str| {
        let mut e = events[0].clone();
        e.event_id = id.into();
        e.event_type = ty.into();
        e.user_id = Some(visitor.into());
        e.visitor = Some(format!("u:{visitor}"));
        e.timestamp = now - 2 * DAY;
        e.day = Day::from_millis(e.timestamp).unwrap();
        e.bot = None;
        e
    };
    events.extend([
        tie("z", "t1", "page_view"),
        tie("z", "t2", "click"),
        tie("y", "t3", "click"),
        tie("y", "t4", "page_view"),
    ]);
    let page = events
        .iter()
        .find(|e| e.event_type == "page_view")
        .and_then(|e| e.page_url.clone())
        .unwrap();
    let funnels = [
        "page_view,click,form_submit,purchase".to_string(),
        format!("page_view@{page},click"),
        "click,click,page_view".to_string(),
    ];
    let p = Period::last_days(7, Day::from_millis(now).unwrap());
    for (store, _dir) in stores().await {
        for batch in events.chunks(500) {
            store.insert(batch).await.unwrap();
        }
        for steps in &funnels {
            let f = funnel::Funnel::parse(steps, DAY).unwrap();
            for bots in [false, true] {
                let raw: Vec<Event> = events
                    .iter()
                    .filter(|e| bots || e.bot.is_none())
                    .cloned()
                    .collect();
                let want = funnel::compute(&f, p, &raw);
                let got = funnel::funnel(&store, &f, p, &Scope::default().bots(bots))
                    .await
                    .unwrap();
                assert_eq!(got, want, "{} {steps} bots={bots}", store.kind());
                assert!(got.funnel_steps[1].users > 0, "{steps}: {got:?}");
            }
        }
        let ties = funnel::Funnel::parse("page_view,click", 1_000).unwrap();
        let only = |v: &str| {
            let raw: Vec<Event> = events
                .iter()
                .filter(|e| e.user_id.as_deref() == Some(v))
                .cloned()
                .collect();
            funnel::compute(&ties, p, &raw).funnel_steps[1].users
        };
        assert_eq!((only("z"), only("y")), (1, 0));
    }
}
