//! `maidian`: the analyst's command line. Reads the store directly (MongoDB when a URI is
//! given, else the embedded store's data directory) and prints human tables or `--json`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use maidian_analytics::event::Day;
use maidian_analytics::stats::{self, Period};
use maidian_analytics::store::{MongoConfig, Store, StoreConfig};

#[derive(Parser)]
#[command(
    name = "maidian",
    version,
    about = "maidian analytics from the command line"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct StoreArgs {
    /// MongoDB connection string; without it the embedded store in --data-dir is read.
    #[arg(long, env = "MAIDIAN_MONGODB_URI", global = true)]
    mongodb_uri: Option<String>,
    /// MongoDB database holding the `events` collection.
    #[arg(
        long,
        env = "MAIDIAN_DATABASE",
        default_value = "tracking",
        global = true
    )]
    database: String,
    /// Data directory of the embedded store.
    #[arg(
        long,
        env = "MAIDIAN_DATA_DIR",
        default_value = "maidian-data",
        global = true
    )]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// The seed's statistics: events by type, or page views by page.
    Stats {
        #[command(subcommand)]
        what: StatsKind,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum StatsKind {
    /// Events by type, with unique users.
    Events(PeriodArgs),
    /// Page views by page, with unique users.
    Pages(PeriodArgs),
}

#[derive(Args, Clone, Copy)]
struct PeriodArgs {
    /// The last N days, today included (UTC).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    days: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl StoreArgs {
    fn config(&self) -> StoreConfig {
        match &self.mongodb_uri {
            Some(uri) if !uri.is_empty() => StoreConfig::Mongo(MongoConfig {
                uri: Some(uri.clone()),
                host: String::new(),
                port: 0,
                username: None,
                password: None,
                database: self.database.clone(),
                timeout: Duration::from_secs(10),
            }),
            _ => StoreConfig::Embedded {
                data_dir: self.data_dir.clone(),
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let store = Store::open(&cli.store.config()).await?;
    match cli.command {
        Command::Stats { what } => stats_command(&store, what).await,
    }
}

async fn stats_command(store: &Store, what: StatsKind) -> anyhow::Result<()> {
    let (StatsKind::Events(args) | StatsKind::Pages(args)) = what;
    let p = Period::last_days(args.days, Day::today());
    // (key column, total field, rows field, JSON rows, table rows)
    let (key, total_name, rows_name, json_rows, rows) = match what {
        StatsKind::Events(_) => {
            let groups = store.count_by_type_and_visitor(p.since, p.until).await?;
            let rows = stats::event_type_stats(groups);
            let table = rows
                .iter()
                .map(|r| (r.event_type.clone(), r.count, r.unique_users))
                .collect::<Vec<_>>();
            (
                "event type",
                "total_events",
                "events",
                serde_json::to_value(&rows)?,
                table,
            )
        }
        StatsKind::Pages(_) => {
            let groups = store.count_page_views_by_visitor(p.since, p.until).await?;
            let rows = stats::page_stats(groups);
            let table = rows
                .iter()
                .map(|r| (r.page_url.clone(), r.views, r.unique_users))
                .collect::<Vec<_>>();
            (
                "page",
                "total_page_views",
                "pages",
                serde_json::to_value(&rows)?,
                table,
            )
        }
    };
    let total: u64 = rows.iter().map(|r| r.1).sum();
    if args.json {
        let mut v = serde_json::json!({ "period": p });
        v[total_name] = total.into();
        v[rows_name] = json_rows;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{} .. {} ({} days)", p.since, p.until, p.days);
    let width = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(key.len());
    println!("{key:<width$}  {:>10}  {:>12}", "count", "unique users");
    for (k, count, users) in &rows {
        println!("{k:<width$}  {count:>10}  {users:>12}");
    }
    println!("{:<width$}  {total:>10}", "total");
    Ok(())
}
