//! `maidian`: the analyst's command line. Reads the store directly (MongoDB when a URI is
//! given, else the embedded store's data directory), or asks a running collector over HTTP
//! (`--url`, or by itself when the embedded store is locked by one), and prints human tables
//! or `--json` (the same documents as the HTTP endpoints). Errors are one line.
//!
//! Layout: this file parses commands and runs them; `remote` asks a collector; `print` shows
//! each figure as tables, which `table` lays out (with progress).

mod print;
mod remote;
mod simulate;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use maidian_analytics::consumer::{self, ConsumerConfig};
use maidian_analytics::engine::answer::{self, Figure, Question};
use maidian_analytics::engine::{self, funnel, summary, Scope};
use maidian_analytics::lifecycle;
use maidian_analytics::rollup::Field;
use maidian_analytics::site::{self, Zone};
use maidian_analytics::stats::{self, Period};
use maidian_analytics::store::{Store, StoreError};
use maidian_collector::config::{Config, RetentionSection};
use print::{
    print_funnel, print_realtime, print_retention, print_rollup_status, print_sites, print_sources,
    print_summary, print_vitals,
};
use remote::Remote;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "maidian",
    version,
    about = "maidian analytics from the command line"
)]
struct Cli {
    /// The collector's config file, read as the collector reads it (then `MAIDIAN_*`): where
    /// the store is and, when the embedded store is locked by a running collector, the address
    /// and read key to ask that collector with. A missing file means the defaults.
    #[arg(
        long,
        env = "MAIDIAN_CONFIG",
        default_value = "maidian.toml",
        global = true
    )]
    config: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Count events flagged as bots' too (every figure leaves them out by default).
    #[arg(long, global = true)]
    include_bots: bool,
    /// The site to read (`maidian sites` lists them); needed when there are several.
    #[arg(long, env = "MAIDIAN_SITE", global = true)]
    site: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Where the store is: the collector's config (`--config`, then `MAIDIAN_*`, read by the
/// collector's own loader) unless these flags say otherwise.
#[derive(Args)]
struct StoreArgs {
    /// MongoDB connection string (else the config's `[mongodb]`); without any, the embedded
    /// store in --data-dir is read.
    #[arg(long, global = true)]
    mongodb_uri: Option<String>,
    /// MongoDB database holding the `events` collection (else `[mongodb] database`).
    #[arg(long, global = true)]
    database: Option<String>,
    /// Data directory of the embedded store (else `[storage] data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// The collectors' rollup safety lag in ms (else `[rollups] safety_lag_ms`): when this
    /// command rolls events up itself, it leaves the newest ones to be sure they committed.
    #[arg(long, global = true)]
    safety_lag_ms: Option<u64>,
    /// The collectors' cap on distinct pages a site's day keeps rows for (else
    /// `[rollups] max_pages_per_day`): a rebuild must use the same.
    #[arg(long, global = true)]
    max_pages_per_day: Option<usize>,
}

#[derive(Args)]
struct RemoteArgs {
    /// Ask the collector at this URL (`https://host[:port]`, or `http://` on a trusted
    /// network) instead of reading the store.
    #[arg(long, env = "MAIDIAN_URL", global = true)]
    url: Option<String>,
    /// CA certificates (PEM) that an `https://` collector's certificate must chain to, instead
    /// of the web PKI's roots (a private CA, a self-signed certificate).
    #[arg(long, env = "MAIDIAN_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// The read key (or admin key) to ask the collector with.
    #[arg(long, env = "MAIDIAN_READ_KEY", global = true, hide_env_values = true)]
    read_key: Option<String>,
}

#[derive(Args, Clone, Copy)]
struct PeriodArgs {
    /// The last N days, today included (days of the site's time zone).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    days: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl PeriodArgs {
    fn period(&self, zone: &Zone) -> Period {
        Period::recent(self.days, zone)
    }
}

#[derive(Subcommand)]
enum Command {
    /// The seed's statistics: events by type, or page views by page.
    Stats {
        #[command(subcommand)]
        what: StatsKind,
    },
    /// Behaviour summary: overview, daily trend, top pages, events, referrers, browsers.
    Summary {
        #[command(flatten)]
        period: PeriodArgs,
        /// Rows per top list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Funnel conversion through ordered steps.
    Funnel {
        /// Steps, comma-separated: `page_view,click@/pricing,purchase`.
        #[arg(long)]
        steps: String,
        /// Conversion window from the first step: seconds, or 30m, 2h, 1d.
        #[arg(long, default_value = "1d")]
        window: String,
        /// Only visitors whose first visit came from this channel (`Email`, `Organic Search`, …).
        #[arg(long)]
        channel: Option<String>,
        /// Only visitors whose first visit came from this campaign (`utm_campaign`).
        #[arg(long)]
        campaign: Option<String>,
        #[command(flatten)]
        period: PeriodArgs,
    },
    /// Where visits came from: sessions and visitors by channel and by campaign.
    Sources {
        #[command(flatten)]
        period: PeriodArgs,
        /// Rows of campaigns.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Day-N retention of first-seen cohorts.
    Retention {
        #[command(flatten)]
        period: PeriodArgs,
    },
    /// Core Web Vitals: p75 and good / needs-improvement / poor shares per metric, overall,
    /// for the most measured pages and per device type.
    Vitals {
        #[command(flatten)]
        period: PeriodArgs,
        /// Rows of pages.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Events in the last hour, users online, events per minute.
    Realtime {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Raw events of the period as CSV (streamed; progress on stderr).
    Export {
        /// The last N days, today included (days of the site's time zone).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write text cells exactly as stored. By default a cell starting with = + - @ tab or
        /// CR gets a leading ' so that a spreadsheet shows it instead of running it.
        #[arg(long)]
        raw: bool,
        /// Everything held about one visitor (user id, anonymous id or session id, and the
        /// ids linked to it), all days, instead of a period: an answer to an access request.
        #[arg(long)]
        visitor: Option<String>,
    },
    /// Erase everything held about one visitor (user id, anonymous id or session id, and the
    /// ids linked to it): raw events and rollup entries, counts adjusted. With --url, pass
    /// the admin key as --read-key.
    Forget {
        #[arg(long)]
        visitor: String,
        /// Only say which ids and how many events would be erased; erase nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// A self-contained HTML report (charts in SVG) of the period.
    Report {
        /// The last N days, today included (days of the site's time zone).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Funnel steps shown in the report.
        #[arg(long, default_value = maidian_analytics::report::DEFAULT_FUNNEL)]
        steps: String,
        /// Funnel conversion window.
        #[arg(long, default_value = "1d")]
        window: String,
        /// The HTML file to write.
        #[arg(long, short, default_value = "maidian-report.html")]
        output: PathBuf,
    },
    /// Send realistic visitor behaviour through a collector's HTTP API (demos, benchmarks).
    Simulate {
        /// The collector's base URL (plain http).
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        url: String,
        /// The collector's write key.
        #[arg(long, env = "MAIDIAN_API_KEY")]
        api_key: Option<String>,
        /// Visitors to simulate.
        #[arg(long, default_value_t = 100)]
        users: u64,
        /// Spread over the last D days.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Same seed, same visitors (a resend is deduplicated by the collector).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Events per request.
        #[arg(long, default_value_t = 200)]
        batch: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// The sites of this store: id, name, time zone and how many events each holds.
    Sites {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Maintenance of the pre-aggregated rollups.
    Rollups {
        #[command(subcommand)]
        what: RollupsCommand,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum StatsKind {
    /// Events by type, with unique users.
    Events(PeriodArgs),
    /// Page views by page, with unique users.
    Pages(PagesArgs),
}

#[derive(Args, Clone, Copy)]
struct PagesArgs {
    #[command(flatten)]
    period: PeriodArgs,
    /// Rows per answer (1 to 1000).
    #[arg(long, default_value_t = maidian_analytics::engine::stats::DEFAULT_ROWS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    limit: usize,
    /// Which page of `--limit` rows (from 1).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    page: usize,
}

impl StatsKind {
    fn period(&self) -> PeriodArgs {
        match self {
            StatsKind::Events(p) => *p,
            StatsKind::Pages(a) => a.period,
        }
    }
}

#[derive(Subcommand, Clone, Copy)]
enum RollupsCommand {
    /// Recompute every rollup from the raw events into a new generation, then switch to it
    /// (collectors may keep running; figures never drop meanwhile).
    Rebuild,
    /// Where the rollup consumer stands: generation, checkpoint, lag, lease owner.
    Status {
        #[arg(long)]
        json: bool,
    },
}

impl StoreArgs {
    /// The flags given, over `config`.
    fn apply(&self, config: &mut Config) {
        if let Some(uri) = &self.mongodb_uri {
            config.mongodb.uri = Some(uri.clone()).filter(|u| !u.is_empty());
        }
        if let Some(database) = &self.database {
            config.mongodb.database = database.clone();
        }
        if let Some(dir) = &self.data_dir {
            config.storage.data_dir = dir.clone();
        }
        if let Some(lag) = self.safety_lag_ms {
            config.rollups.safety_lag_ms = lag;
        }
        if let Some(cap) = self.max_pages_per_day {
            config.rollups.max_pages_per_day = cap.max(1);
        }
    }
}

/// The collector's configuration as the collector reads it (its file, then `MAIDIAN_*`), with
/// the command's flags over it, and whether the file exists.
fn load_config(cli: &Cli) -> anyhow::Result<(Config, bool)> {
    let exists = cli.config.exists();
    let mut config = Config::load(exists.then_some(cli.config.as_path()))?;
    config.apply_env(|k| std::env::var(k).ok())?;
    cli.store.apply(&mut config);
    Ok((config, exists))
}

/// What the CLI rolls up with when it catches up itself: the collectors' settings, without
/// retention (deleting raw events is the collectors' job).
fn consumer_of(config: &Config) -> ConsumerConfig {
    let mut c = config.rollups.consumer(
        consumer::owner_name("maidian-cli"),
        &RetentionSection::default(),
    );
    c.max_pages_per_day = c.max_pages_per_day.max(1);
    c
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever RUST_BACKTRACE says: the cause chain, never a stack trace.
            let line = format!("{e:#}").replace(['\n', '\r'], " ");
            eprintln!("maidian: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Where a command reads: the store itself (with the settings to roll it up with, from the
/// same configuration), or a running collector.
enum Source {
    Store(Store, ConsumerConfig),
    Remote(Remote),
}

async fn open_source(cli: &Cli) -> anyhow::Result<Source> {
    let key = cli.remote.read_key.clone();
    if let Some(url) = cli.remote.url.as_deref().filter(|u| !u.is_empty()) {
        let ca = cli.remote.ca_cert.as_deref();
        return Ok(Source::Remote(Remote::new(url, key, ca)?));
    }
    let (config, config_exists) = load_config(cli)?;
    match Store::open(&config.store_config()).await {
        Ok(store) => Ok(Source::Store(store, consumer_of(&config))),
        Err(StoreError::Locked(path)) if matches!(cli.command, Command::Rollups { .. }) => bail!(
            "{} is in use by a running collector; `maidian rollups` works on the store itself: stop the collector first (its /api/health tells where rollups stand)",
            path.display()
        ),
        Err(StoreError::Locked(path)) => {
            let Some((url, key)) = config_exists.then(|| remote::of_config(&config, key)) else {
                bail!(
                    "{} is in use by a running collector; ask it with --url http://HOST:PORT --read-key KEY",
                    path.display()
                );
            };
            eprintln!(
                "maidian: {} is in use by a running collector; asking it at {url} (from {})",
                path.display(),
                cli.config.display()
            );
            Ok(Source::Remote(Remote::new(&url, Some(key), None)?))
        }
        Err(e) => Err(e.into()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The simulator talks to a collector, not to the store.
    if let Command::Simulate {
        url,
        api_key,
        users,
        days,
        seed,
        batch,
        concurrency,
    } = cli.command
    {
        let t = simulate::run(simulate::Options {
            url,
            api_key,
            users,
            days,
            seed,
            batch,
            concurrency,
        })
        .await?;
        println!(
            "sent {} events of {users} visitors: {} stored, {} deduplicated",
            t.sent, t.stored, t.deduplicated
        );
        return Ok(());
    }
    let (store, consumer) = match open_source(&cli).await? {
        Source::Store(store, consumer) => (store, consumer),
        Source::Remote(r) => {
            let r = r.scoped(cli.site.as_deref(), cli.include_bots);
            return remote_command(cli.command, &r).await;
        }
    };
    let result = on_store(cli, &store, &consumer).await;
    // Before the runtime ends: the MongoDB driver's pool tasks would otherwise outlive it
    // (and panic on the way out, on stderr).
    store.close().await;
    result
}

/// A command that reads or works on the store itself.
async fn on_store(cli: Cli, store: &Store, consumer: &ConsumerConfig) -> anyhow::Result<()> {
    // The embedded file admits one process, so no collector is rolling it up now: catch up
    // first, so that every figure covers every stored event.
    if store.kind() == "embedded" {
        consumer::catch_up(store, consumer).await?;
    }
    let registry = store.sites().await?;
    if let Command::Sites { json } = cli.command {
        let rows = maidian_analytics::engine::site_counts(store, &registry).await?;
        return output(json, &rows, || print_sites(&rows));
    }
    let info = site::pick(&registry, cli.site.as_deref()).map_err(anyhow::Error::msg)?;
    let zone = Zone::named(&info.timezone).map_err(anyhow::Error::msg)?;
    let scope = &Scope::site(&info.id).bots(cli.include_bots);
    let site_id = info.id.as_str();
    match cli.command {
        Command::Simulate { .. } | Command::Sites { .. } => Ok(()),
        Command::Stats { what } => stats_command(store, what, scope, &zone).await,
        Command::Summary { period, top } => {
            let q = Question::Summary {
                period: period.period(&zone),
                top,
            };
            shown(period.json, asked(store, &q, scope).await?, print_summary)
        }
        Command::Funnel {
            steps,
            window,
            channel,
            campaign,
            period,
        } => {
            let q = Question::Funnel {
                funnel: funnel::Funnel::from_params(&steps, &window)?,
                origin: funnel::Origin { channel, campaign },
                period: period.period(&zone),
            };
            shown(period.json, asked(store, &q, scope).await?, print_funnel)
        }
        Command::Sources { period, top } => {
            let s = summary::summary(store, period.period(&zone), top, scope).await?;
            let doc = sources_doc(&s, site_id);
            output(period.json, &doc, || print_sources(&s))
        }
        Command::Retention { period } => {
            let q = Question::Retention {
                period: period.period(&zone),
            };
            shown(period.json, asked(store, &q, scope).await?, print_retention)
        }
        Command::Vitals { period, top } => {
            let q = Question::Vitals {
                period: period.period(&zone),
                top,
            };
            shown(period.json, asked(store, &q, scope).await?, print_vitals)
        }
        Command::Realtime { json } => {
            let q = Question::Realtime {
                now_ms: jiff::Timestamp::now().as_second() * 1000,
            };
            shown(json, asked(store, &q, scope).await?, print_realtime)
        }
        command @ (Command::Report { .. } | Command::Export { .. }) => {
            files_command(command, store, &info, &zone, scope).await
        }
        command @ (Command::Forget { .. } | Command::Rollups { .. }) => {
            upkeep_command(command, store, &info, consumer).await
        }
    }
}

/// `report` and `export`: files written from the store.
async fn files_command(
    command: Command,
    store: &Store,
    info: &site::SiteInfo,
    zone: &Zone,
    scope: &Scope,
) -> anyhow::Result<()> {
    match command {
        Command::Report {
            days,
            steps,
            window,
            output,
        } => {
            let f = funnel::Funnel::from_params(&steps, &window)?;
            let p = Period::recent(days, zone);
            let html = maidian_analytics::report::build(store, p, Some(&f), scope).await?;
            std::fs::write(&output, html)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::Export {
            days,
            output,
            raw,
            visitor,
        } => {
            let cells = if raw {
                maidian_analytics::export::Cells::Raw
            } else {
                maidian_analytics::export::Cells::Spreadsheet
            };
            if let Some(v) = visitor {
                let csv =
                    maidian_analytics::export::visitor_csv(store, &info.id, &v, cells).await?;
                return write_csv(csv.as_bytes(), output.as_deref());
            }
            let p = Period::recent(days, zone);
            if let Some(since) = store.raw_gone(&p).await? {
                eprintln!("maidian: raw events before {since} were deleted by retention; the export starts there");
            }
            export_command(store, &info.id, p, output, cells).await
        }
        _ => Ok(()),
    }
}

/// `forget` and `rollups`: work on the store itself.
async fn upkeep_command(
    command: Command,
    store: &Store,
    info: &site::SiteInfo,
    consumer: &ConsumerConfig,
) -> anyhow::Result<()> {
    match command {
        Command::Forget {
            visitor,
            dry_run: true,
            json,
        } => {
            let (names, events) = store.visitor_closure(&info.id, &visitor).await?;
            let plan = lifecycle::DryRun::of(&names, &events);
            print_forgotten(json, &visitor, &serde_json::to_value(&plan)?)
        }
        Command::Forget { visitor, json, .. } => {
            let done = store
                .forget(consumer, &info.id, &visitor, Duration::from_secs(120), true)
                .await?;
            print_forgotten(json, &visitor, &serde_json::to_value(&done)?)
        }
        Command::Rollups {
            what: RollupsCommand::Rebuild,
        } => {
            let progress = table::Progress::new(0, "events");
            let n = store
                .rebuild_rollups(consumer, |done| progress.show(done))
                .await?;
            progress.finish();
            println!("rebuilt rollups from {n} events");
            Ok(())
        }
        Command::Rollups {
            what: RollupsCommand::Status { json },
        } => {
            let s = store.rollup_status().await?;
            output(json, &s, || print_rollup_status(&s))
        }
        _ => Ok(()),
    }
}

/// A reading command answered by a running collector: the same documents from the HTTP
/// endpoint that serves them, printed the same way.
async fn remote_command(command: Command, r: &Remote) -> anyhow::Result<()> {
    let days = |d: u32| ("days", d.to_string());
    match command {
        Command::Simulate { .. } => Ok(()),
        Command::Rollups { .. } => bail!(
            "`maidian rollups` works on the store itself, not through --url: give --mongodb-uri, or stop the collector of the embedded store"
        ),
        Command::Sites { json } => {
            let v = r.get_json("/api/sites", &[]).await?;
            let rows: Vec<site::SiteCount> = serde_json::from_value(v["sites"].clone())?;
            output(json, &rows, || print_sites(&rows))
        }
        Command::Stats { what } => {
            let mut q = vec![days(what.period().days)];
            let path = match what {
                StatsKind::Events(_) => "/api/stats/events",
                StatsKind::Pages(a) => {
                    q.push(("limit", a.limit.to_string()));
                    q.push(("page", a.page.to_string()));
                    "/api/stats/pages"
                }
            };
            let v = r.get_json(path, &q).await?;
            print_stats(what, &v)
        }
        Command::Summary { period, top } => {
            let q = [days(period.days), ("top", top.to_string())];
            let v = r.get_json(&Figure::Summary.path(), &q).await?;
            shown(period.json, v, print_summary)
        }
        Command::Sources { period, top } => {
            let q = [days(period.days), ("top", top.to_string())];
            let v = r.get_json(&Figure::Summary.path(), &q).await?;
            let site = v["site"].as_str().unwrap_or_default().to_string();
            let s: summary::Summary = serde_json::from_value(v)?;
            output(period.json, &sources_doc(&s, &site), || print_sources(&s))
        }
        Command::Funnel {
            steps,
            window,
            channel,
            campaign,
            period,
        } => {
            let mut q = vec![("steps", steps), ("window", window), days(period.days)];
            q.extend(channel.map(|c| ("channel", c)));
            q.extend(campaign.map(|c| ("campaign", c)));
            let v = r.get_json(&Figure::Funnel.path(), &q).await?;
            shown(period.json, v, print_funnel)
        }
        Command::Retention { period } => {
            let v = r
                .get_json(&Figure::Retention.path(), &[days(period.days)])
                .await?;
            shown(period.json, v, print_retention)
        }
        Command::Vitals { period, top } => {
            let q = [days(period.days), ("top", top.to_string())];
            let v = r.get_json(&Figure::Vitals.path(), &q).await?;
            shown(period.json, v, print_vitals)
        }
        Command::Realtime { json } => {
            let v = r.get_json(&Figure::Realtime.path(), &[]).await?;
            shown(json, v, print_realtime)
        }
        Command::Report {
            days: d,
            steps,
            window,
            output,
        } => {
            let q = [days(d), ("steps", steps), ("window", window)];
            std::fs::write(&output, r.get("/api/report", &q).await?)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::Export {
            days: d,
            output,
            raw,
            visitor,
        } => {
            let mut q = vec![days(d)];
            if raw {
                q.push(("raw", "1".into()));
            }
            q.extend(visitor.map(|v| ("visitor", v)));
            let csv = r.get("/api/export/events.csv", &q).await?;
            write_csv(&csv, output.as_deref())
        }
        Command::Forget {
            visitor,
            dry_run,
            json,
        } => {
            let body = serde_json::json!({ "visitor": visitor, "dry_run": dry_run });
            let done = r.post_json("/api/privacy/forget", &body).await?;
            print_forgotten(json, &visitor, &done)
        }
    }
}

/// Writes a whole CSV file (or standard output), saying how many rows went to a file.
fn write_csv(csv: &[u8], output: Option<&std::path::Path>) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, csv)?;
            let rows = csv
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                .saturating_sub(1);
            eprintln!("exported {rows} events to {}", path.display());
        }
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), csv)?,
    }
    Ok(())
}

fn print_forgotten(json: bool, visitor: &str, done: &serde_json::Value) -> anyhow::Result<()> {
    if json {
        let mut doc = done.clone();
        doc["visitor"] = visitor.into();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if done["dry_run"] == true {
        println!(
            "would erase {visitor}: {} events ({} linked ids); nothing erased",
            done["events"],
            done["ids"].as_array().map_or(0, Vec::len)
        );
    } else {
        println!(
            "erased {visitor}: {} events and {} rollup entries removed ({} linked ids)",
            done["events_removed"], done["rollup_entries_removed"], done["ids"]
        );
    }
    Ok(())
}

/// Prints `value` as JSON, or as the human table of the `T` it holds.
fn shown<T: DeserializeOwned>(
    json: bool,
    value: serde_json::Value,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    human(&serde_json::from_value(value)?);
    Ok(())
}

fn sources_doc(s: &summary::Summary, site: &str) -> serde_json::Value {
    serde_json::json!({
        "site": site, "period": s.period, "channels": s.channels, "campaigns": s.campaigns,
    })
}

async fn export_command(
    store: &Store,
    site: &str,
    p: Period,
    output: Option<PathBuf>,
    cells: maidian_analytics::export::Cells,
) -> anyhow::Result<()> {
    use maidian_analytics::export;
    use std::io::Write;
    // The total for the progress bar comes from the rollups: no scan before the scan.
    let total: i64 = store
        .rollup_between(
            maidian_analytics::rollup::DAILY_TYPE,
            Field::Day,
            site,
            p.since,
            p.until,
        )
        .await?
        .iter()
        .map(|d| d.int(Field::Count))
        .sum();
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    out.write_all(export::header().as_bytes())?;
    let progress = table::Progress::new(u64::try_from(total).unwrap_or(0), "events");
    let mut pager = export::Pager::new(store, site, p, 5_000);
    let mut done = 0u64;
    while let Some(events) = pager.next_page().await? {
        for e in &events {
            out.write_all(export::row(e, cells).as_bytes())?;
        }
        done += events.len() as u64;
        progress.show(done);
    }
    out.flush()?;
    progress.finish();
    if let Some(path) = output {
        eprintln!("exported {done} events to {}", path.display());
    }
    Ok(())
}

/// `value` (a JSON object) with the `site` it is of, as the HTTP endpoints answer.
/// The document the HTTP API answers `q` with (`engine::answer`), from the store itself.
async fn asked(store: &Store, q: &Question, scope: &Scope) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(
        answer::answer(store, q, scope).await?,
    )?)
}

fn output<T: Serialize>(json: bool, value: &T, human: impl FnOnce()) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human();
    }
    Ok(())
}

async fn stats_command(
    store: &Store,
    what: StatsKind,
    scope: &Scope,
    zone: &Zone,
) -> anyhow::Result<()> {
    let p = what.period().period(zone);
    let mut v = serde_json::json!({ "site": scope.site, "period": p });
    match what {
        StatsKind::Events(_) => {
            let rows = engine::stats::event_types(store, p, scope).await?;
            v["total_events"] = rows.iter().map(|r| r.count).sum::<u64>().into();
            v["events"] = serde_json::to_value(&rows)?;
        }
        StatsKind::Pages(a) => {
            let rows = engine::stats::pages(store, p, scope).await?;
            v["event_type"] = maidian_analytics::event::PAGE_VIEW.into();
            v["total_page_views"] = rows.iter().map(|r| r.views).sum::<u64>().into();
            let (rows, paging) = engine::stats::paginate(rows, a.limit, a.page);
            v["total_rows"] = paging.total_rows.into();
            v["limit"] = paging.limit.into();
            v["page"] = paging.page.into();
            v["pages"] = serde_json::to_value(&rows)?;
        }
    }
    print_stats(what, &v)
}

/// Prints a stats document (`/api/stats/events` or `/pages`) as JSON or as a table.
fn print_stats(what: StatsKind, v: &serde_json::Value) -> anyhow::Result<()> {
    if what.period().json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    let (key, total, mut rows) = match what {
        StatsKind::Events(_) => {
            let rows: Vec<stats::EventTypeStat> = serde_json::from_value(v["events"].clone())?;
            let total = rows.iter().map(|r| r.count).sum::<u64>();
            let rows = rows.into_iter().map(|r| {
                vec![
                    r.event_type,
                    r.count.to_string(),
                    r.unique_users.to_string(),
                ]
            });
            ("event type", total, rows.collect::<Vec<_>>())
        }
        StatsKind::Pages(_) => {
            let rows: Vec<stats::PageStat> = serde_json::from_value(v["pages"].clone())?;
            let total = rows.iter().map(|r| r.views).sum::<u64>();
            let rows = rows
                .into_iter()
                .map(|r| vec![r.page_url, r.views.to_string(), r.unique_users.to_string()]);
            ("page", total, rows.collect())
        }
    };
    let p: Period = serde_json::from_value(v["period"].clone())?;
    println!("{} .. {} ({} days)", p.since, p.until, p.days);
    rows.push(vec!["total".into(), total.to_string(), String::new()]);
    table::print(&[key, "count", "unique users"], &rows);
    Ok(())
}
