//! The collector's configuration: one struct, read from a TOML file (the seed's `[mongodb]` and
//! `[tracking_api]` sections plus maidian's own), then overridden by `MAIDIAN_*` environment
//! variables, then by command-line flags. Every field has a default that works on localhost,
//! except `read_key`, which must be chosen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maidian_analytics::store::{MongoConfig as StoreMongo, MongoTarget, StoreConfig};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mongodb: MongoSection,
    pub tracking_api: ApiSection,
    pub storage: StorageSection,
    pub limits: Limits,
    pub writer: WriterSection,
    pub rollups: RollupsSection,
    pub privacy: PrivacySection,
    /// `[[sites]]`: the sites tracked besides the seed's single-site keys (site `default`).
    pub sites: Vec<SiteSection>,
    pub metrics: MetricsSection,
    pub retention: RetentionSection,
}

/// `[retention]`: how long raw events are kept. Rollups (every dashboard figure) are kept
/// forever; funnels, exports and rebuilds need raw events, so they cover the kept days only.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Raw events older than this many days are deleted; unset: kept forever. Events older
    /// than this are also refused at ingest, so a resend cannot bring one back.
    pub raw_days: Option<u32>,
    /// How often the rollup consumer's lease holder looks for expired events (ms).
    pub check_ms: u64,
    /// Most events deleted in one go.
    pub chunk_events: usize,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            raw_days: None,
            check_ms: 60_000,
            chunk_events: 1_000,
        }
    }
}

/// `[metrics]`: Prometheus metrics on a listener of their own.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Where `GET /metrics` is served (`127.0.0.1:9464`); unset: no metrics listener. Never
    /// the public port: keep it on a private interface.
    pub listen: Option<SocketAddr>,
}

/// One `[[sites]]` entry. Its `Debug` shows neither key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// `[a-z0-9_-]{1,32}`; stored on every event of the site.
    pub id: String,
    /// Shown in the dashboard's site picker and `maidian sites`; the id when empty.
    #[serde(default)]
    pub name: String,
    /// Public key of the site's tracked pages: it picks the site at ingest.
    pub write_key: String,
    /// Secret key that reads this site only.
    pub read_key: String,
    /// If set, ingest requests that carry an `Origin` header must come from one of these
    /// (`https://shop.example`); CORS allows them too.
    #[serde(default)]
    pub origins: Vec<String>,
    /// IANA time zone of the site's days (`Asia/Shanghai`); `UTC` by default.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

impl std::fmt::Debug for SiteSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteSection")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("write_key", &"***")
            .field("read_key", &"***")
            .field("origins", &self.origins)
            .field("timezone", &self.timezone)
            .finish()
    }
}

/// `[mongodb]`: leave `uri` and `host` unset to run on the embedded store. Its `Debug` never
/// shows the password.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoSection {
    /// A full connection string (`mongodb://…`); wins over host/port/username/password.
    pub uri: Option<String>,
    /// MongoDB host; setting it (or `uri`) selects MongoDB over the embedded store.
    pub host: Option<String>,
    /// MongoDB port.
    pub port: u16,
    /// User name, if the server requires authentication.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// Database that holds the `events` collection.
    pub database: String,
    /// Seconds to wait for the server when connecting or selecting it.
    pub timeout: u64,
}

impl MongoSection {
    /// The store's connection settings (host `localhost` when unset).
    pub fn store(&self) -> StoreMongo {
        let target = match &self.uri {
            Some(uri) => MongoTarget::Uri(uri.clone()),
            None => MongoTarget::Host {
                host: self.host.clone().unwrap_or_else(|| "localhost".into()),
                port: self.port,
                username: self.username.clone(),
                password: self.password.clone(),
            },
        };
        StoreMongo {
            target,
            database: self.database.clone(),
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

/// Shown as the store's settings, whose `Debug` hides the password.
impl std::fmt::Debug for MongoSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store().fmt(f)
    }
}

impl Default for MongoSection {
    fn default() -> Self {
        MongoSection {
            uri: None,
            host: None,
            port: 27017,
            username: None,
            password: None,
            database: "tracking".into(),
            timeout: 30,
        }
    }
}

/// `[tracking_api]`: the HTTP side. Its `Debug` shows neither key.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Public write key for ingest; empty means ingest needs no key.
    pub api_key: String,
    /// Secret read key for stats, analytics and export of the site `default` (the seed's
    /// single site); required unless `[[sites]]` are configured.
    pub read_key: String,
    /// Secret key that reads every site (`?site=ID`); empty: none.
    pub admin_key: String,
    /// Time zone of the site `default`'s days.
    pub timezone: String,
    /// Answer CORS requests (ingest comes from other origins); `false` turns CORS off.
    pub enable_cors: bool,
    /// Origins allowed by CORS; empty allows any origin.
    pub cors_origins: Vec<String>,
    /// The built browser SDK (`sdk-wasm/build.sh`), served at `/tracking_sdk.js` and `/sdk/`.
    pub sdk_dir: PathBuf,
    /// Demo pages and the dashboard, served at `/demo/`.
    pub www_dir: PathBuf,
    /// Addresses or CIDR blocks of the reverse proxies in front of the collector
    /// (`["10.0.0.0/8", "::1"]`). Only from these is `X-Forwarded-For` (or `Forwarded`)
    /// believed: the client is then the rightmost forwarded address that is not one of them.
    /// Empty: the client is always the connection's peer.
    pub trusted_proxies: Vec<String>,
}

impl std::fmt::Debug for ApiSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |k: &str| if k.is_empty() { "" } else { "***" };
        f.debug_struct("ApiSection")
            .field("listen", &self.listen)
            .field("api_key", &hidden(&self.api_key))
            .field("read_key", &hidden(&self.read_key))
            .field("admin_key", &hidden(&self.admin_key))
            .field("timezone", &self.timezone)
            .field("enable_cors", &self.enable_cors)
            .field("cors_origins", &self.cors_origins)
            .field("sdk_dir", &self.sdk_dir)
            .field("www_dir", &self.www_dir)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            api_key: String::new(),
            read_key: String::new(),
            admin_key: String::new(),
            timezone: utc(),
            enable_cors: true,
            cors_origins: Vec::new(),
            sdk_dir: PathBuf::from("sdk-wasm/dist"),
            www_dir: PathBuf::from("www"),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[storage]`: the embedded store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Directory of the embedded store, used when no MongoDB is configured.
    pub data_dir: PathBuf,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("maidian-data"),
        }
    }
}

/// `[limits]`: what one request may carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body as sent (compressed or not), in bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip inflation, in bytes.
    pub max_inflated_bytes: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Largest `custom_data` of one event, as JSON bytes.
    pub max_custom_data_bytes: usize,
    /// Deepest nesting of objects and arrays inside `custom_data`.
    pub max_custom_data_depth: usize,
    /// Oldest accepted event, in days before arrival (after clock-skew correction).
    pub max_event_age_days: u32,
    /// How far in the future an event may claim to be, in seconds (after correction).
    pub max_future_secs: u32,
    /// Most JSON values (objects, arrays, strings, numbers…) in one decoded body; parsing stops
    /// at the first one past it, so a small body cannot become a large tree in memory.
    pub max_json_values: usize,
    /// A request head must be complete this long (ms) after the connection opens or its
    /// previous response is sent; so this is also how long an idle keep-alive connection stays.
    pub header_timeout_ms: u64,
    /// A connection on which nothing was read or written for this long (ms) is closed, such as
    /// a client that stops reading its answer.
    pub idle_timeout_ms: u64,
    /// A whole request body must arrive within this long (ms) of its headers, else 408.
    pub body_timeout_ms: u64,
    /// Most open connections; past it new connections wait in the listen backlog.
    pub max_connections: usize,
    /// Threads that decode bodies (off the async workers); 0 = one per CPU core.
    pub decode_concurrency: usize,
    /// Bytes of request bodies being read or waiting to be decoded, over all requests,
    /// charged as they arrive; a request waits (within its body timeout) for its share.
    pub max_body_bytes_in_flight: usize,
    /// The same for one client address (its share of the above); past it the client's next
    /// body is answered 429 with `Retry-After`.
    pub max_body_bytes_in_flight_per_client: usize,
    /// A request body's first byte must arrive within this long (ms) of its headers, else 408:
    /// a head that announces a body and sends none is cut off early.
    pub body_first_byte_ms: u64,
    /// Most open connections from one client address (trusted proxies excepted); past it a
    /// new connection is answered 429 and closed.
    pub max_connections_per_client: usize,
    /// Heavy reads (funnel, HTML report, CSV export, visitor export) one read key may have in
    /// flight; past it 429 with `Retry-After`.
    pub max_heavy_reads_per_key: usize,
    /// After SIGTERM, how long (ms) in-flight requests may take before their connections are
    /// closed and the collector exits.
    pub drain_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_inflated_bytes: 4 << 20,
            max_batch_events: 500,
            max_custom_data_bytes: 16 << 10,
            max_custom_data_depth: 5,
            max_event_age_days: 400,
            max_future_secs: 600,
            max_json_values: 100_000,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            body_timeout_ms: 5_000,
            max_connections: 4_096,
            decode_concurrency: 0,
            max_body_bytes_in_flight: 64 << 20,
            max_body_bytes_in_flight_per_client: 8 << 20,
            body_first_byte_ms: 2_000,
            max_connections_per_client: 256,
            max_heavy_reads_per_key: 4,
            drain_timeout_ms: 10_000,
        }
    }
}

/// `[privacy]`: what is removed from events before they are stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySection {
    /// Redact sensitive query and fragment values of `page_url`, `referrer` and
    /// `custom_data.form_action` (the SDK does it too, this covers every other client).
    pub redact_urls: bool,
    /// Parameter names whose values are replaced by `[redacted]` (case-insensitive); the
    /// default list names tokens, passwords, keys, session ids, e-mail and phone. Values that
    /// look like an e-mail address are redacted whatever their name.
    pub redact_params: Vec<String>,
    /// Query parameters a stored page URL keeps (`["q", "lang"]`; `["*"]` keeps every one).
    /// A page is its URL without query string and fragment: campaign tags and click ids have
    /// fed the source and channel already, and every other parameter would mint a new page.
    pub page_params: Vec<String>,
}

impl PrivacySection {
    /// The names to redact as `redact::url` takes them (comma-separated); `None` when URL
    /// redaction is off.
    pub fn deny_list(&self) -> Option<String> {
        self.redact_urls.then(|| {
            let names: Vec<&str> = self.redact_params.iter().map(|s| s.trim()).collect();
            names.join(",")
        })
    }
}

impl Default for PrivacySection {
    fn default() -> Self {
        PrivacySection {
            redact_urls: true,
            redact_params: crate::redact::DEFAULT_PARAMS
                .split(',')
                .map(String::from)
                .collect(),
            page_params: Vec::new(),
        }
    }
}

/// `[writer]`: how concurrent requests are grouped into database writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSection {
    /// Most events in one `insert_many`.
    pub max_batch_events: usize,
    /// How long the first waiting request may wait for others to join its write, in ms.
    pub linger_ms: u64,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Longest a write may take, in ms; a write not acknowledged by then is answered 503
    /// (the client retries). Bounding it is what lets the rollup consumer trust that an
    /// event older than `rollups.safety_lag_ms` has committed or never will.
    pub insert_timeout_ms: u64,
}

impl Default for WriterSection {
    fn default() -> Self {
        WriterSection {
            max_batch_events: 2000,
            linger_ms: 2,
            concurrency: 4,
            insert_timeout_ms: 3_000,
        }
    }
}

/// `[rollups]`: the consumer that rolls the event log up for the dashboards.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupsSection {
    /// MongoDB: events are rolled up once their `received_at` is this old (ms), so that every
    /// write that could still commit has. At least `writer.insert_timeout_ms` + 500; every
    /// collector of a database must use the same value, and their clocks must agree to
    /// within the difference.
    pub safety_lag_ms: u64,
    /// A consumer lease not renewed for this long (ms) passes to another collector.
    pub lease_ttl_ms: u64,
    /// Most events rolled up in one step.
    pub chunk_events: usize,
    /// Pause between checks when there is nothing to roll up (ms).
    pub poll_ms: u64,
    /// Distinct pages a site's day keeps rows of its own for; the views, times and vitals of
    /// the pages beyond are counted under `(other)`. Every collector of a store (and
    /// `maidian rollups rebuild`) must use the same value.
    pub max_pages_per_day: usize,
}

impl Default for RollupsSection {
    fn default() -> Self {
        RollupsSection {
            safety_lag_ms: 5_000,
            lease_ttl_ms: 10_000,
            chunk_events: 5_000,
            poll_ms: 250,
            max_pages_per_day: maidian_analytics::consumer::MAX_PAGES_PER_DAY,
        }
    }
}

impl RollupsSection {
    /// The consumer settings, for the process named `owner`, with `retention`.
    pub fn consumer(
        &self,
        owner: String,
        retention: &RetentionSection,
    ) -> maidian_analytics::consumer::ConsumerConfig {
        maidian_analytics::consumer::ConsumerConfig {
            owner,
            lease_ttl: Duration::from_millis(self.lease_ttl_ms),
            safety_lag: Duration::from_millis(self.safety_lag_ms),
            chunk_events: self.chunk_events,
            idle_poll: Duration::from_millis(self.poll_ms),
            retention: retention
                .raw_days
                .map(|raw_days| maidian_analytics::consumer::Retention {
                    raw_days,
                    every: Duration::from_millis(retention.check_ms),
                    chunk: retention.chunk_events.max(1),
                }),
            max_pages_per_day: self.max_pages_per_day,
        }
    }
}

/// A configuration problem, named by the key the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{key} is required: {hint}")]
    Missing {
        key: &'static str,
        hint: &'static str,
    },
}

fn invalid(key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.to_string(),
    }
}

impl Config {
    /// Reads `path` if given (a missing file is an error), else starts from the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.message().to_string(),
        })
    }

    /// Applies `MAIDIAN_*` overrides; `get` is `std::env::var` in production, a map in tests.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e| invalid(key, e))
        }
        let opt = |v: String| if v.is_empty() { None } else { Some(v) };
        // A comma-separated list, blanks dropped.
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        for key in ENV_KEYS {
            let Some(v) = get(key) else { continue };
            match *key {
                "MAIDIAN_LISTEN" => self.tracking_api.listen = parse(key, &v)?,
                "MAIDIAN_API_KEY" => self.tracking_api.api_key = v,
                "MAIDIAN_READ_KEY" => self.tracking_api.read_key = v,
                "MAIDIAN_ADMIN_KEY" => self.tracking_api.admin_key = v,
                "MAIDIAN_METRICS_LISTEN" => {
                    self.metrics.listen = match v.trim() {
                        "" => None,
                        a => Some(parse(key, a)?),
                    }
                }
                "MAIDIAN_TIMEZONE" => self.tracking_api.timezone = v,
                "MAIDIAN_ENABLE_CORS" => self.tracking_api.enable_cors = parse(key, &v)?,
                "MAIDIAN_CORS_ORIGINS" => self.tracking_api.cors_origins = list(&v),
                "MAIDIAN_MONGODB_URI" => self.mongodb.uri = opt(v),
                "MAIDIAN_MONGODB_HOST" => self.mongodb.host = opt(v),
                "MAIDIAN_MONGODB_PORT" => self.mongodb.port = parse(key, &v)?,
                "MAIDIAN_MONGODB_USERNAME" => self.mongodb.username = opt(v),
                "MAIDIAN_MONGODB_PASSWORD" => self.mongodb.password = opt(v),
                "MAIDIAN_DATABASE" => self.mongodb.database = v,
                "MAIDIAN_MONGODB_TIMEOUT" => self.mongodb.timeout = parse(key, &v)?,
                "MAIDIAN_DATA_DIR" => self.storage.data_dir = PathBuf::from(v),
                "MAIDIAN_SDK_DIR" => self.tracking_api.sdk_dir = PathBuf::from(v),
                "MAIDIAN_WWW_DIR" => self.tracking_api.www_dir = PathBuf::from(v),
                "MAIDIAN_MAX_BODY_BYTES" => self.limits.max_body_bytes = parse(key, &v)?,
                "MAIDIAN_MAX_BATCH_EVENTS" => self.limits.max_batch_events = parse(key, &v)?,
                "MAIDIAN_HEADER_TIMEOUT_MS" => self.limits.header_timeout_ms = parse(key, &v)?,
                "MAIDIAN_BODY_TIMEOUT_MS" => self.limits.body_timeout_ms = parse(key, &v)?,
                "MAIDIAN_IDLE_TIMEOUT_MS" => self.limits.idle_timeout_ms = parse(key, &v)?,
                "MAIDIAN_MAX_CONNECTIONS" => self.limits.max_connections = parse(key, &v)?,
                "MAIDIAN_MAX_CONNECTIONS_PER_CLIENT" => {
                    self.limits.max_connections_per_client = parse(key, &v)?
                }
                "MAIDIAN_MAX_BODY_BYTES_IN_FLIGHT_PER_CLIENT" => {
                    self.limits.max_body_bytes_in_flight_per_client = parse(key, &v)?
                }
                "MAIDIAN_MAX_HEAVY_READS_PER_KEY" => {
                    self.limits.max_heavy_reads_per_key = parse(key, &v)?
                }
                "MAIDIAN_BODY_FIRST_BYTE_MS" => self.limits.body_first_byte_ms = parse(key, &v)?,
                "MAIDIAN_TRUSTED_PROXIES" => self.tracking_api.trusted_proxies = list(&v),
                "MAIDIAN_DRAIN_TIMEOUT_MS" => self.limits.drain_timeout_ms = parse(key, &v)?,
                "MAIDIAN_REDACT_URLS" => self.privacy.redact_urls = parse(key, &v)?,
                "MAIDIAN_REDACT_PARAMS" => self.privacy.redact_params = list(&v),
                "MAIDIAN_PAGE_PARAMS" => self.privacy.page_params = list(&v),
                "MAIDIAN_DECODE_CONCURRENCY" => self.limits.decode_concurrency = parse(key, &v)?,
                "MAIDIAN_WRITER_CONCURRENCY" => self.writer.concurrency = parse(key, &v)?,
                "MAIDIAN_WRITER_MAX_BATCH_EVENTS" => self.writer.max_batch_events = parse(key, &v)?,
                "MAIDIAN_WRITER_LINGER_MS" => self.writer.linger_ms = parse(key, &v)?,
                "MAIDIAN_WRITER_INSERT_TIMEOUT_MS" => {
                    self.writer.insert_timeout_ms = parse(key, &v)?
                }
                "MAIDIAN_ROLLUP_SAFETY_LAG_MS" => self.rollups.safety_lag_ms = parse(key, &v)?,
                "MAIDIAN_ROLLUP_LEASE_TTL_MS" => self.rollups.lease_ttl_ms = parse(key, &v)?,
                "MAIDIAN_ROLLUP_CHUNK_EVENTS" => self.rollups.chunk_events = parse(key, &v)?,
                "MAIDIAN_ROLLUP_POLL_MS" => self.rollups.poll_ms = parse(key, &v)?,
                "MAIDIAN_ROLLUP_MAX_PAGES_PER_DAY" => {
                    self.rollups.max_pages_per_day = parse(key, &v)?
                }
                "MAIDIAN_RETENTION_RAW_DAYS" => {
                    self.retention.raw_days = match v.trim() {
                        "" => None,
                        v => Some(parse(key, v)?),
                    }
                }
                "MAIDIAN_RETENTION_CHECK_MS" => self.retention.check_ms = parse(key, &v)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks what cannot be typed: required keys, non-zero limits, a usable MongoDB URI.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let api = &self.tracking_api;
        if api.read_key.trim().is_empty() && self.sites.is_empty() {
            return Err(ConfigError::Missing {
                key: "tracking_api.read_key",
                hint: "set it in the config file or MAIDIAN_READ_KEY (stats and analytics need it), or configure [[sites]]",
            });
        }
        if !api.api_key.is_empty() && api.api_key == api.read_key {
            return Err(invalid(
                "tracking_api.read_key",
                "must differ from api_key (the write key ships in public pages)",
            ));
        }
        self.validate_sites()?;
        crate::peer::TrustedProxies::parse(&api.trusted_proxies)
            .map_err(|m| invalid("tracking_api.trusted_proxies", m))?;
        if let Some(uri) = &self.mongodb.uri {
            if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
                return Err(invalid(
                    "mongodb.uri",
                    "must start with mongodb:// or mongodb+srv://",
                ));
            }
        }
        if self.mongodb.database.is_empty()
            || self
                .mongodb
                .database
                .contains(['/', '\\', '.', ' ', '"', '$', '\0'])
        {
            return Err(invalid(
                "mongodb.database",
                "must be a non-empty name without / \\ . space \" $",
            ));
        }
        if self.mongodb.timeout == 0 {
            return Err(invalid("mongodb.timeout", "must be at least 1 second"));
        }
        let nonzero = [
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            ("limits.max_inflated_bytes", self.limits.max_inflated_bytes),
            ("limits.max_batch_events", self.limits.max_batch_events),
            (
                "limits.max_custom_data_bytes",
                self.limits.max_custom_data_bytes,
            ),
            ("limits.max_json_values", self.limits.max_json_values),
            ("limits.max_connections", self.limits.max_connections),
            (
                "limits.max_body_bytes_in_flight",
                self.limits.max_body_bytes_in_flight,
            ),
            (
                "limits.max_body_bytes_in_flight_per_client",
                self.limits.max_body_bytes_in_flight_per_client,
            ),
            (
                "limits.max_connections_per_client",
                self.limits.max_connections_per_client,
            ),
            (
                "limits.max_heavy_reads_per_key",
                self.limits.max_heavy_reads_per_key,
            ),
            ("writer.max_batch_events", self.writer.max_batch_events),
            ("writer.concurrency", self.writer.concurrency),
            ("rollups.chunk_events", self.rollups.chunk_events),
        ];
        for (key, v) in nonzero {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, v) in [
            ("limits.header_timeout_ms", self.limits.header_timeout_ms),
            ("limits.body_timeout_ms", self.limits.body_timeout_ms),
            ("limits.body_first_byte_ms", self.limits.body_first_byte_ms),
            ("limits.idle_timeout_ms", self.limits.idle_timeout_ms),
            ("limits.drain_timeout_ms", self.limits.drain_timeout_ms),
        ] {
            if v < 100 {
                return Err(invalid(key, "must be at least 100"));
            }
        }
        if self.writer.insert_timeout_ms < 100 {
            return Err(invalid("writer.insert_timeout_ms", "must be at least 100"));
        }
        if self.rollups.safety_lag_ms < self.writer.insert_timeout_ms + 500 {
            return Err(invalid(
                "rollups.safety_lag_ms",
                format!(
                    "must be at least writer.insert_timeout_ms + 500 ({} ms): a write may commit until its timeout",
                    self.writer.insert_timeout_ms + 500
                ),
            ));
        }
        if self.retention.raw_days == Some(0) {
            return Err(invalid(
                "retention.raw_days",
                "must be at least 1 (remove it to keep raw events forever)",
            ));
        }
        if self.rollups.lease_ttl_ms < 1_000 {
            return Err(invalid("rollups.lease_ttl_ms", "must be at least 1000"));
        }
        if self.rollups.max_pages_per_day == 0 {
            return Err(invalid("rollups.max_pages_per_day", "must be at least 1"));
        }
        Ok(())
    }

    /// The config names of the keys set shorter than [`STRONG_KEY_CHARS`]: easy to guess (a
    /// write key ships in pages anyway, but a short one is still a typo-like mistake to flag).
    pub fn short_keys(&self) -> Vec<String> {
        let api = &self.tracking_api;
        let mut keys: Vec<(String, &str)> = vec![
            ("tracking_api.api_key".into(), &api.api_key),
            ("tracking_api.read_key".into(), &api.read_key),
            ("tracking_api.admin_key".into(), &api.admin_key),
        ];
        for (i, site) in self.sites.iter().enumerate() {
            keys.push((format!("sites[{i}].write_key"), &site.write_key));
            keys.push((format!("sites[{i}].read_key"), &site.read_key));
        }
        keys.into_iter()
            .filter(|(_, k)| !k.is_empty() && k.chars().count() < STRONG_KEY_CHARS)
            .map(|(name, _)| name)
            .collect()
    }

    /// Site ids, time zones, origins, and keys: every key distinct from every other.
    fn validate_sites(&self) -> Result<(), ConfigError> {
        use maidian_analytics::site::{valid_id, Zone, DEFAULT_SITE};
        let api = &self.tracking_api;
        Zone::named(&api.timezone).map_err(|m| invalid("tracking_api.timezone", m))?;
        // (the key's config name, the key), for the clash check.
        let mut keys: Vec<(String, &str)> = vec![
            ("tracking_api.api_key".into(), api.api_key.as_str()),
            ("tracking_api.read_key".into(), api.read_key.as_str()),
            ("tracking_api.admin_key".into(), api.admin_key.as_str()),
        ];
        let has_default = !api.read_key.trim().is_empty();
        for (i, site) in self.sites.iter().enumerate() {
            let at = |field: &str| format!("sites[{i}].{field}");
            if !valid_id(&site.id) {
                return Err(invalid(&at("id"), "must match [a-z0-9_-]{1,32}"));
            }
            if site.id == DEFAULT_SITE && has_default {
                return Err(invalid(
                    &at("id"),
                    "\"default\" is the site of [tracking_api] api_key/read_key; choose another id",
                ));
            }
            if let Some(j) = self.sites[..i].iter().position(|s| s.id == site.id) {
                return Err(invalid(&at("id"), format!("same id as sites[{j}]")));
            }
            for (field, key) in [("write_key", &site.write_key), ("read_key", &site.read_key)] {
                if key.trim().is_empty() {
                    return Err(invalid(&at(field), "must not be empty"));
                }
            }
            Zone::named(&site.timezone).map_err(|m| invalid(&at("timezone"), m))?;
            if let Some(o) = site
                .origins
                .iter()
                .find(|o| !(o.starts_with("https://") || o.starts_with("http://")))
            {
                return Err(invalid(
                    &at("origins"),
                    format!("{o:?} is not an origin such as https://shop.example"),
                ));
            }
            keys.push((at("write_key"), site.write_key.as_str()));
            keys.push((at("read_key"), site.read_key.as_str()));
        }
        for (i, (name, key)) in keys.iter().enumerate() {
            if key.is_empty() {
                continue;
            }
            if let Some((other, _)) = keys[..i].iter().find(|(_, k)| k == key) {
                return Err(invalid(
                    name,
                    format!("same key as {other}: keys must be distinct"),
                ));
            }
        }
        Ok(())
    }

    /// The store `[mongodb]` names, else the embedded store in `[storage] data_dir`.
    pub fn store_config(&self) -> StoreConfig {
        let m = &self.mongodb;
        if m.uri.is_none() && m.host.is_none() {
            return StoreConfig::Embedded {
                data_dir: self.storage.data_dir.clone(),
            };
        }
        StoreConfig::Mongo(m.store())
    }
}

/// Keys shorter than this are warned about at start-up.
pub const STRONG_KEY_CHARS: usize = 16;

/// Every environment variable the collector reads.
pub const ENV_KEYS: &[&str] = &[
    "MAIDIAN_LISTEN",
    "MAIDIAN_API_KEY",
    "MAIDIAN_READ_KEY",
    "MAIDIAN_ADMIN_KEY",
    "MAIDIAN_METRICS_LISTEN",
    "MAIDIAN_TIMEZONE",
    "MAIDIAN_ENABLE_CORS",
    "MAIDIAN_CORS_ORIGINS",
    "MAIDIAN_MONGODB_URI",
    "MAIDIAN_MONGODB_HOST",
    "MAIDIAN_MONGODB_PORT",
    "MAIDIAN_MONGODB_USERNAME",
    "MAIDIAN_MONGODB_PASSWORD",
    "MAIDIAN_DATABASE",
    "MAIDIAN_MONGODB_TIMEOUT",
    "MAIDIAN_DATA_DIR",
    "MAIDIAN_SDK_DIR",
    "MAIDIAN_WWW_DIR",
    "MAIDIAN_MAX_BODY_BYTES",
    "MAIDIAN_MAX_BATCH_EVENTS",
    "MAIDIAN_HEADER_TIMEOUT_MS",
    "MAIDIAN_BODY_TIMEOUT_MS",
    "MAIDIAN_IDLE_TIMEOUT_MS",
    "MAIDIAN_MAX_CONNECTIONS",
    "MAIDIAN_MAX_CONNECTIONS_PER_CLIENT",
    "MAIDIAN_MAX_BODY_BYTES_IN_FLIGHT_PER_CLIENT",
    "MAIDIAN_BODY_FIRST_BYTE_MS",
    "MAIDIAN_MAX_HEAVY_READS_PER_KEY",
    "MAIDIAN_TRUSTED_PROXIES",
    "MAIDIAN_DRAIN_TIMEOUT_MS",
    "MAIDIAN_DECODE_CONCURRENCY",
    "MAIDIAN_REDACT_URLS",
    "MAIDIAN_REDACT_PARAMS",
    "MAIDIAN_PAGE_PARAMS",
    "MAIDIAN_WRITER_CONCURRENCY",
    "MAIDIAN_WRITER_MAX_BATCH_EVENTS",
    "MAIDIAN_WRITER_LINGER_MS",
    "MAIDIAN_WRITER_INSERT_TIMEOUT_MS",
    "MAIDIAN_ROLLUP_SAFETY_LAG_MS",
    "MAIDIAN_ROLLUP_LEASE_TTL_MS",
    "MAIDIAN_ROLLUP_CHUNK_EVENTS",
    "MAIDIAN_ROLLUP_POLL_MS",
    "MAIDIAN_ROLLUP_MAX_PAGES_PER_DAY",
    "MAIDIAN_RETENTION_RAW_DAYS",
    "MAIDIAN_RETENTION_CHECK_MS",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn seed_sections_parse_and_env_overrides_win() {
        let mut c: Config = toml::from_str(
            "[mongodb]\nhost = \"db.local\"\nport = 27018\ndatabase = \"tracking\"\ntimeout = 5\n\
             [tracking_api]\napi_key = \"pub\"\nread_key = \"secret\"\nenable_cors = true\n",
        )
        .unwrap();
        c.apply_env(env(&[
            ("MAIDIAN_LISTEN", "0.0.0.0:8080"),
            ("MAIDIAN_DATABASE", "other"),
        ]))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.tracking_api.listen.port(), 8080);
        match c.store_config() {
            StoreConfig::Mongo(m) => match &m.target {
                MongoTarget::Host { host, port, .. } => assert_eq!(
                    (host.as_str(), *port, m.database.as_str()),
                    ("db.local", 27018, "other")
                ),
                other => panic!("expected a host, got {other:?}"),
            },
            other => panic!("expected mongo, got {other:?}"),
        }
    }

    #[test]
    fn no_mongodb_means_embedded() {
        let c = Config::default();
        assert!(matches!(c.store_config(), StoreConfig::Embedded { .. }));
    }

    #[test]
    fn errors_name_the_key() {
        let missing = Config::default().validate().unwrap_err().to_string();
        assert!(
            missing.starts_with("tracking_api.read_key is required"),
            "{missing}"
        );

        let mut c = Config::default();
        let bad = c
            .apply_env(env(&[("MAIDIAN_LISTEN", "nowhere")]))
            .unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("invalid value for MAIDIAN_LISTEN"),
            "{bad}"
        );

        let err = toml::from_str::<Config>("[mongodb]\nprot = 1\n").unwrap_err();
        assert!(err.message().contains("prot"), "{}", err.message());

        c.tracking_api.read_key = "r".into();
        c.mongodb.uri = Some("http://x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("mongodb.uri"));

        let mut c = Config::default();
        c.tracking_api.read_key = "r".into();
        c.writer.insert_timeout_ms = 5_000;
        let lag = c.validate().unwrap_err().to_string();
        assert!(
            lag.starts_with("invalid value for rollups.safety_lag_ms"),
            "{lag}"
        );
        c.rollups.safety_lag_ms = 5_500;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_shipped_config_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../maidian.toml");
        let c = Config::load(Some(&path)).unwrap();
        c.validate().unwrap();
        assert_eq!(c.rollups.safety_lag_ms, 5_000);
        // Its commented examples are valid too.
        let text = std::fs::read_to_string(&path).unwrap();
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("[[sites]]")
                        || rest.starts_with("admin_key")
                        || [
                            "id ",
                            "name ",
                            "write_key ",
                            "read_key ",
                            "origins ",
                            "timezone ",
                        ]
                        .iter()
                        .any(|k| rest.starts_with(k)) =>
                {
                    rest.to_string()
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c: Config = toml::from_str(&uncommented).unwrap();
        c.validate().unwrap();
        assert_eq!(c.sites.len(), 1);
        assert_eq!(c.sites[0].timezone, "Asia/Shanghai");
        assert!(!c.tracking_api.admin_key.is_empty());
    }
}
