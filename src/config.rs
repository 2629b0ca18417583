//! Every setting natter reads, from the environment and command-line flags, validated once at
//! start so a bad value stops the process with a sentence instead of failing later.
//!
//! clap reads the flags and the `NATTER_*` variables (flags win) and writes `--help`; it hands
//! over raw text, and `Args::into_config` is the one place that text is checked and typed, so
//! every refusal is one of natter's sentences and a blank value means "use the default".

use std::{
    collections::HashMap, ffi::OsString, fmt, net::IpAddr, net::SocketAddr, path::PathBuf,
    time::Duration,
};

use clap::{CommandFactory, FromArgMatches, Parser};
use url::Url;

/// A value that must never be printed (logs, `Debug`, error pages).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret as soon as it is read.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where the data lives: `sqlite:…` or `postgres://…`. A PostgreSQL URL may carry a password
/// (`postgres://natter:secret@db/natter`), so `Display` and `Debug` show it as `***`; only
/// `expose`, for connecting, gives the URL as written.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts the backends natter has: `sqlite:` and `postgres://` (or `postgresql://`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| text.starts_with(scheme))
        {
            Ok(Self(text.to_string()))
        } else {
            Err("NATTER_DATABASE_URL must start with sqlite:// or postgres://".to_string())
        }
    }

    /// Whether the database is an SQLite file (one instance, one writer).
    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }

    /// The URL as written, password included: for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The directory an SQLite file is in (`None` for PostgreSQL, and for `:memory:`).
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        let path = self.0.strip_prefix("sqlite:")?;
        let path = path.strip_prefix("//").unwrap_or(path);
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path.starts_with(':') {
            return None;
        }
        let parent = std::path::Path::new(path).parent()?;
        Some(if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        })
    }
}

/// Where attachments' bytes are kept (`NATTER_FILES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilesLocation {
    /// A local directory: one instance (or several sharing a network file system).
    Local(PathBuf),
    /// A bucket of S3-compatible storage (`s3://bucket`); endpoint and credentials come from
    /// the usual `AWS_*` variables.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// Where to reach it (`AWS_ENDPOINT_URL`; unset: Amazon S3 itself).
        endpoint: Option<String>,
        /// Its region (`AWS_REGION`, default `us-east-1`; Garage's default is `garage`).
        region: String,
        /// `AWS_ACCESS_KEY_ID`.
        key_id: String,
        /// `AWS_SECRET_ACCESS_KEY`.
        secret: Secret,
    },
}

impl fmt::Display for FilesLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilesLocation::Local(dir) => write!(f, "{}", dir.display()),
            FilesLocation::S3 { bucket, .. } => write!(f, "s3://{bucket}"),
        }
    }
}

/// Attachments: where they are kept and how big they may be (issue 16).
#[derive(Clone, Debug)]
pub struct FilesConfig {
    /// Where the bytes are.
    pub location: FilesLocation,
    /// The largest file, in bytes.
    pub max_upload: u64,
    /// The most files one message carries.
    pub max_files: usize,
    /// The most bytes of files one room may hold (`None`: no limit).
    pub room_quota: Option<u64>,
}

impl fmt::Display for DatabaseUrl {
    /// The URL without its password, for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An SQLite URL names a file: there is no credential in it to hide.
        if self.is_sqlite() {
            return f.write_str(&self.0);
        }
        let Ok(mut url) = Url::parse(&self.0) else {
            // Whatever does not parse might hold a password anywhere: show only the scheme.
            let scheme = self.0.split_once(':').map_or("", |(scheme, _)| scheme);
            return write!(f, "{scheme}://*** (not a well-formed URL)");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        // sqlx also takes the password as a query parameter.
        if url.query_pairs().any(|(key, _)| key == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(key, value)| match key == "password" {
                    true => (key.into_owned(), "***".to_string()),
                    false => (key.into_owned(), value.into_owned()),
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        write!(f, "{url}")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl(\"{self}\")")
    }
}

/// Compares the URL as written, e.g. with a literal in a test.
impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The OAuth 2.0 / OpenID Connect provider natter signs people in with.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret registered at the provider; sent only to its token endpoint.
    pub client_secret: Secret,
    /// Where browsers are sent to sign in.
    pub auth_url: Url,
    /// Where natter exchanges the code for tokens.
    pub token_url: Url,
    /// The OIDC userinfo endpoint: subject, email and name.
    pub userinfo_url: Url,
    /// Scopes asked for, e.g. `openid`, `email`, `profile`.
    pub scopes: Vec<String>,
    /// Label on the sign-in button ("Sign in with {provider_name}").
    pub provider_name: String,
}

/// "n per duration", e.g. `20/10s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// How many are allowed in one period.
    pub count: u32,
    /// The period, at most `LONGEST_PERIOD`.
    pub per: Duration,
}

impl RateLimit {
    /// `count` per `per`, unchecked (for defaults and tests).
    pub const fn new(count: u32, per: Duration) -> Self {
        Self { count, per }
    }

    /// Parses `20/10s`, `20/1h`, `10/1m`, `5/500ms`, `20/s`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a rate like 20/10s (units: ms, s, m, h)");
        let (count, per) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = parse_duration(per).ok_or_else(bad)?;
        if count == 0 || per.is_zero() {
            return Err(format!(
                "{text:?}: both the count and the period must be above zero"
            ));
        }
        if per > Self::LONGEST_PERIOD {
            return Err(format!("{text:?}: the period may be at most 168h (7 days)"));
        }
        Ok(Self { count, per })
    }

    /// The longest period a rate may have. Limiters add periods to `Instant`s, which overflow
    /// (and panic) somewhere past a few hundred billion years; a week is more than any budget
    /// needs and keeps that arithmetic far from the edge.
    pub const LONGEST_PERIOD: Duration = Duration::from_secs(7 * 86_400);
}

/// The per-user and per-address budgets (DESIGN.md §5).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Posts per user.
    pub posts: RateLimit,
    /// Rooms created per user.
    pub rooms: RateLimit,
    /// Wrong room codes per user: the code is the invitation, so guessing is throttled. A
    /// room route answering "not found" (not a member, or no such room) counts as one too.
    pub join_fails: RateLimit,
    /// Joins and leaves per user: each changes every open member list of the room.
    pub membership: RateLimit,
    /// Sign-in attempts per client address.
    pub sign_ins: RateLimit,
    /// Searches per user: each is a full-text query over all their rooms.
    pub searches: RateLimit,
    /// Largest accepted request body, in bytes.
    pub body_bytes: usize,
    /// Live sockets one person may have open on this instance (each tab of a room holds one).
    pub sockets_per_user: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            posts: RateLimit::new(20, Duration::from_secs(10)),
            rooms: RateLimit::new(20, Duration::from_secs(3600)),
            join_fails: RateLimit::new(10, Duration::from_secs(60)),
            membership: RateLimit::new(20, Duration::from_secs(60)),
            sign_ins: RateLimit::new(30, Duration::from_secs(60)),
            searches: RateLimit::new(30, Duration::from_secs(60)),
            body_bytes: 64 * 1024,
            sockets_per_user: 20,
        }
    }
}

/// How long natter waits for slow clients before giving up on them (`server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// For a whole request head: from a connection's opening, and from the first byte of each
    /// later request on it.
    pub head: Duration,
    /// For the next request on a keep-alive connection, from the last answer.
    pub idle: Duration,
    /// For a whole request body, from when natter starts reading it (then 408).
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body: Duration::from_secs(30),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// natter's whole configuration (DESIGN.md §2).
#[derive(Clone, Debug)]
pub struct Config {
    /// The address natter listens on.
    pub bind: SocketAddr,
    /// The external origin: redirect URL, cookie `Secure`, Origin checks, host redirects.
    pub public_url: Url,
    /// The database; prints without its password.
    pub database_url: DatabaseUrl,
    /// The sign-in provider, when both a client id and secret are set.
    pub oauth: Option<OAuthConfig>,
    /// Development sign-in by email alone; only ever on loopback.
    pub dev_login: bool,
    /// The tracing filter, already known to parse.
    pub log: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Peers whose `X-Forwarded-For` is believed (read from the right, skipping these).
    pub trusted_proxies: Vec<IpAddr>,
    /// Sessions end this many days after their last use.
    pub session_days: u32,
    /// The rate limits and the body size limit.
    pub limits: Limits,
    /// How long slow clients are waited for.
    pub timeouts: Timeouts,
    /// Events queued per socket in a room's hub before the socket must resync from the store.
    pub hub_capacity: usize,
    /// Database connections this instance may open (`None`: natter's default for the backend).
    /// With several instances on one PostgreSQL, their pools (plus one listener connection
    /// each) must fit in the server's `max_connections`.
    pub db_pool: Option<u32>,
    /// On shutdown, how long to keep serving (with `/healthz` failing) before no longer
    /// accepting connections, so a proxy's health check moves traffic away first.
    pub drain: Duration,
    /// Refuse every WebSocket upgrade (403), as a proxy that strips them would: for testing
    /// the Server-Sent Events fallback. Never needed in production.
    pub refuse_websockets: bool,
    /// Attachments.
    pub files: FilesConfig,
    /// `NATTER_BUS`: NATS servers (`nats://host:4222`, several for a cluster) that carry news
    /// between instances; `None`: PostgreSQL NOTIFY (or nothing, on SQLite).
    pub bus: Option<Vec<Url>>,
    /// Web Push.
    pub push: PushConfig,
}

/// Web Push settings (README: Notifications).
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// The operator's VAPID private key; `None`: the one natter keeps in the database.
    pub vapid_private_key: Option<Secret>,
    /// The VAPID `sub` claim: how a push service reaches whoever runs natter.
    pub vapid_subject: String,
    /// Whether `http://127.0.0.1` endpoints are accepted (tests, development).
    pub allow_loopback: bool,
}

/// Reads `NATTER_BUS`: blank or `postgres` for PostgreSQL NOTIFY, else one or more
/// `nats://host:port` (or `tls://`) addresses; PostgreSQL only (one SQLite instance has no
/// other to talk to).
fn parse_bus(text: &str, database_url: &DatabaseUrl) -> Result<Option<Vec<Url>>, String> {
    let text = text.trim();
    if text.is_empty() || text == "postgres" {
        return Ok(None);
    }
    let bad = |what: String| {
        format!(
            "NATTER_BUS must be postgres or nats://host:port (commas between the servers of a cluster): {what}"
        )
    };
    let mut servers = Vec::new();
    for server in text.split(',').map(str::trim) {
        let url = Url::parse(server).map_err(|_| bad(format!("{server:?} is not a URL")))?;
        if !matches!(url.scheme(), "nats" | "tls") {
            return Err(bad(format!(
                "{server:?} is not a nats:// or tls:// address"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) || url.port().is_none() {
            return Err(bad(format!("{server:?} needs a host and a port")));
        }
        servers.push(url);
    }
    if database_url.is_sqlite() {
        return Err(
            "NATTER_BUS=nats://… needs PostgreSQL: with SQLite natter is one instance".into(),
        );
    }
    Ok(Some(servers))
}

/// Why `Config::from_env_and_args` gave no configuration.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for: `print` it and exit successfully.
    Shown(clap::Error),
    /// A setting natter refuses, as a sentence saying which one and why.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shown(shown) => write!(f, "{}", shown.render()),
            Self::Invalid(sentence) => f.write_str(sentence),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// clap's own errors (unknown or repeated flags, missing values) as natter's sentences.
    fn from_clap(error: clap::Error) -> Self {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        let context = |kind| match error.get(kind) {
            Some(ContextValue::String(text)) => text.as_str(),
            _ => "",
        };
        let sentence = match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => return Self::Shown(error),
            ErrorKind::UnknownArgument => {
                let arg = context(ContextKind::InvalidArg);
                match context(ContextKind::SuggestedArg) {
                    "" if arg.starts_with('-') => format!("unknown flag {arg} (try --help)"),
                    "" => format!("unexpected argument {arg:?} (try --help)"),
                    like => format!("unknown flag {arg}; did you mean {like}? (try --help)"),
                }
            }
            // `--bind` with nothing after it; the context names it as `--bind <ADDR>`.
            ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_empty() => {
                let arg = context(ContextKind::InvalidArg);
                let flag = arg.split_whitespace().next().unwrap_or(arg);
                format!("{flag} needs a value")
            }
            // Anything else: clap's own first sentence, without its "error: " and usage.
            _ => {
                let rendered = error.render().to_string();
                let first = rendered.split("\n\n").next().unwrap_or(&rendered);
                first.trim_start_matches("error: ").trim().to_string()
            }
        };
        Self::Invalid(sentence)
    }
}

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";
const DEFAULT_DATABASE_URL: &str = "sqlite://natter.db";
const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";
const DEFAULT_SCOPES: &str = "openid email profile";
const DEFAULT_PROVIDER_NAME: &str = "Google";
const DEFAULT_LOG: &str = "info";
const DEFAULT_LOG_FORMAT: &str = "text";
const DEFAULT_SESSION_DAYS: &str = "30";
// The same budgets as `Limits::default()` (a test keeps them equal), as text for `--help`.
const DEFAULT_LIMIT_POSTS: &str = "20/10s";
const DEFAULT_LIMIT_ROOMS: &str = "20/1h";
const DEFAULT_LIMIT_JOIN_FAILS: &str = "10/1m";
const DEFAULT_LIMIT_MEMBERSHIP: &str = "20/1m";
const DEFAULT_LIMIT_SIGN_INS: &str = "30/1m";
const DEFAULT_LIMIT_SEARCHES: &str = "30/1m";
const DEFAULT_HUB_CAPACITY: &str = "256";
const DEFAULT_DRAIN: &str = "0s";
// The same as `Timeouts::default()` and `Limits::default()` (a test keeps them equal).
const DEFAULT_HEADER_TIMEOUT: &str = "10s";
const DEFAULT_IDLE_TIMEOUT: &str = "60s";
const DEFAULT_BODY_TIMEOUT: &str = "30s";
const DEFAULT_SOCKETS_PER_USER: &str = "20";
const DEFAULT_MAX_UPLOAD: &str = "10MiB";
const DEFAULT_MAX_FILES: &str = "10";

/// The command line and the environment as clap reads them. Values stay text here: a blank
/// variable must mean "the default" (clap would hand it over as a value), and each bad value
/// must be refused with natter's sentence, which `into_config` writes. Not `Debug`: it holds
/// the secrets unwrapped.
#[derive(Parser)]
#[command(
    name = "natter",
    version,
    about = "natter: real-time group chat for the browser",
    long_about = None,
    after_help = "Every option is also read from its NATTER_* variable; a flag wins over the \
                  variable, and a blank value counts as unset. See README.md.",
    // A repeated flag takes its last value, as before; `from_sources` relies on it too.
    args_override_self = true,
    // Wrapped to the terminal, but never wider than this: long lines are hard to read.
    max_term_width = 100,
    next_line_help = true
)]
struct Args {
    /// Listen address
    #[arg(long, env = "NATTER_BIND", value_name = "ADDR", default_value = DEFAULT_BIND)]
    bind: String,

    /// The origin people use: redirect URL, Secure cookies (https), Origin checks
    #[arg(long, env = "NATTER_PUBLIC_URL", value_name = "URL", default_value = DEFAULT_PUBLIC_URL)]
    public_url: String,

    /// sqlite://PATH or postgres://user:pass@host/db
    #[arg(
        long,
        env = "NATTER_DATABASE_URL",
        value_name = "URL",
        default_value = DEFAULT_DATABASE_URL,
        // It may carry a password: --help must not print the variable's value.
        hide_env_values = true
    )]
    database_url: String,

    /// OAuth client id; provider sign-in is on when both id and secret are set
    #[arg(long, env = "NATTER_OAUTH_CLIENT_ID", value_name = "ID")]
    oauth_client_id: Option<String>,

    /// OAuth client secret
    #[arg(
        long,
        env = "NATTER_OAUTH_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    oauth_client_secret: Option<String>,

    /// The provider's authorization endpoint
    #[arg(long, env = "NATTER_OAUTH_AUTH_URL", value_name = "URL", default_value = GOOGLE_AUTH_URL)]
    oauth_auth_url: String,

    /// The provider's token endpoint
    #[arg(long, env = "NATTER_OAUTH_TOKEN_URL", value_name = "URL", default_value = GOOGLE_TOKEN_URL)]
    oauth_token_url: String,

    /// The provider's OIDC userinfo endpoint
    #[arg(
        long,
        env = "NATTER_OAUTH_USERINFO_URL",
        value_name = "URL",
        default_value = GOOGLE_USERINFO_URL
    )]
    oauth_userinfo_url: String,

    /// Space-separated scopes
    #[arg(long, env = "NATTER_OAUTH_SCOPES", value_name = "SCOPES", default_value = DEFAULT_SCOPES)]
    oauth_scopes: String,

    /// Label on the sign-in button
    #[arg(
        long,
        env = "NATTER_OAUTH_PROVIDER_NAME",
        value_name = "NAME",
        default_value = DEFAULT_PROVIDER_NAME
    )]
    oauth_provider_name: String,

    /// Development sign-in by email, no password (loopback only); a bare --dev-login means true
    #[arg(
        long,
        env = "NATTER_DEV_LOGIN",
        value_name = "BOOL",
        default_value = "false",
        // `--dev-login` alone turns it on; `--dev-login=no` is the only way to give a value,
        // so `--dev-login` never swallows the argument after it.
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    dev_login: String,

    /// Tracing filter, e.g. natter=debug,info
    #[arg(long, env = "NATTER_LOG", value_name = "FILTER", default_value = DEFAULT_LOG)]
    log: String,

    /// text, or json for one JSON object per line
    #[arg(
        long,
        env = "NATTER_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = DEFAULT_LOG_FORMAT
    )]
    log_format: String,

    /// Comma-separated proxy IPs whose X-Forwarded-For is believed: the client is its rightmost
    /// hop that is not one of them (none by default: the peer address is the client)
    #[arg(long, env = "NATTER_TRUSTED_PROXIES", value_name = "IPS")]
    trusted_proxies: Option<String>,

    /// Sessions expire this many days after their last use
    #[arg(
        long,
        env = "NATTER_SESSION_DAYS",
        value_name = "DAYS",
        default_value = DEFAULT_SESSION_DAYS
    )]
    session_days: String,

    /// Posts per user, as count/period (units ms, s, m, h; period at most 168h)
    #[arg(
        long,
        env = "NATTER_LIMIT_POSTS",
        value_name = "RATE",
        default_value = DEFAULT_LIMIT_POSTS
    )]
    limit_posts: String,

    /// Rooms created per user
    #[arg(
        long,
        env = "NATTER_LIMIT_ROOMS",
        value_name = "RATE",
        default_value = DEFAULT_LIMIT_ROOMS
    )]
    limit_rooms: String,

    /// Wrong room codes per user (joins, and room addresses that are not theirs) before both pause
    #[arg(
        long,
        env = "NATTER_LIMIT_JOIN_FAILS",
        value_name = "RATE",
        default_value = DEFAULT_LIMIT_JOIN_FAILS
    )]
    limit_join_fails: String,

    /// Joins and leaves per user
    #[arg(
        long,
        env = "NATTER_LIMIT_MEMBERSHIP",
        value_name = "RATE",
        default_value = DEFAULT_LIMIT_MEMBERSHIP
    )]
    limit_membership: String,

    /// Sign-in attempts per client address
    #[arg(
        long,
        env = "NATTER_LIMIT_SIGN_INS",
        value_name = "RATE",
        default_value = DEFAULT_LIMIT_SIGN_INS
    )]
    limit_sign_ins: String,

    /// Searches per user, like 30/1m
    #[arg(
        long,
        env = "NATTER_LIMIT_SEARCHES",
        value_name = "RATE",
        default_value = DEFAULT_LIMIT_SEARCHES
    )]
    limit_searches: String,

    /// Live events queued per socket before a slow socket catches up from the database
    #[arg(
        long,
        env = "NATTER_HUB_CAPACITY",
        value_name = "N",
        default_value = DEFAULT_HUB_CAPACITY
    )]
    hub_capacity: String,

    /// How instances tell each other what happened: postgres (NOTIFY, the default) or
    /// nats://host:4222 (commas between the servers of a cluster)
    #[arg(long, env = "NATTER_BUS", value_name = "postgres|nats://HOST:PORT")]
    bus: Option<String>,

    /// Database connections for requests, 2 to 1000 (by default 16 on PostgreSQL; 2 per core,
    /// at most 8, on SQLite)
    #[arg(long, env = "NATTER_DB_POOL", value_name = "N")]
    db_pool: Option<String>,

    /// On SIGTERM, how long to keep serving with /healthz failing, at most 5s (2s behind Caddy)
    #[arg(long, env = "NATTER_DRAIN", value_name = "DURATION", default_value = DEFAULT_DRAIN)]
    drain: String,

    /// Time a client has to send a whole request head, from connecting or from the first byte
    /// of its next request (100ms to 1h)
    #[arg(
        long,
        env = "NATTER_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = DEFAULT_HEADER_TIMEOUT
    )]
    header_timeout: String,

    /// Time an idle keep-alive connection is kept open after its last answer (100ms to 1h)
    #[arg(
        long,
        env = "NATTER_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = DEFAULT_IDLE_TIMEOUT
    )]
    idle_timeout: String,

    /// Time a client has to send a whole request body; then 408 (100ms to 1h)
    #[arg(
        long,
        env = "NATTER_BODY_TIMEOUT",
        value_name = "DURATION",
        default_value = DEFAULT_BODY_TIMEOUT
    )]
    body_timeout: String,

    /// Live sockets one person may hold open on this instance, 1 to 10000; the next gets 429
    #[arg(
        long,
        env = "NATTER_SOCKETS_PER_USER",
        value_name = "N",
        default_value = DEFAULT_SOCKETS_PER_USER
    )]
    sockets_per_user: String,

    /// Refuse every WebSocket upgrade with 403, as a proxy that strips upgrades would, so pages
    /// fall back to Server-Sent Events (for testing that fallback)
    #[arg(
        long,
        env = "NATTER_REFUSE_WEBSOCKETS",
        value_name = "BOOL",
        default_value = "false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    refuse_websockets: String,

    /// Where attachments are kept: a directory, or s3://BUCKET (endpoint and credentials from
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) [default:
    /// natter-files beside the SQLite file, or in the working directory]
    #[arg(long, env = "NATTER_FILES", value_name = "DIR|s3://BUCKET")]
    files: Option<String>,

    /// The largest attachment, like 10MiB or 500KiB (up to 1GiB)
    #[arg(
        long,
        env = "NATTER_MAX_UPLOAD",
        value_name = "SIZE",
        default_value = DEFAULT_MAX_UPLOAD
    )]
    max_upload: String,

    /// The most files one message carries, 1 to 50
    #[arg(long, env = "NATTER_MAX_FILES", value_name = "N", default_value = DEFAULT_MAX_FILES)]
    max_files: String,

    /// The most bytes of attachments one room may hold, like 2GiB [default: no limit]
    #[arg(long, env = "NATTER_ROOM_QUOTA", value_name = "SIZE")]
    room_quota: Option<String>,

    /// The S3 endpoint for NATTER_FILES=s3://… (Garage, MinIO; unset: Amazon S3)
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    s3_endpoint: Option<String>,

    /// The S3 region [default: us-east-1]
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    s3_region: Option<String>,

    /// The S3 access key id
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_name = "ID")]
    s3_key_id: Option<String>,

    /// The S3 secret access key
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    s3_secret: Option<String>,

    /// The server's VAPID private key for Web Push: a P-256 scalar, base64url (43 characters)
    /// [default: made at first start and kept in the database]
    #[arg(
        long,
        env = "NATTER_VAPID_PRIVATE_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    vapid_private_key: Option<String>,

    /// Who push services may contact about natter's pushes: a mailto: or https: URL
    /// [default: the public URL]
    #[arg(long, env = "NATTER_VAPID_SUBJECT", value_name = "URL")]
    vapid_subject: Option<String>,

    /// Accept push endpoints on http://127.0.0.1 (a local push service, for tests and
    /// development); otherwise only https:// endpoints are accepted
    #[arg(
        long,
        env = "NATTER_PUSH_ALLOW_LOOPBACK",
        value_name = "BOOL",
        default_value = "false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    push_allow_loopback: String,
}

/// Whether `key` is a P-256 private key as base64url (no padding): 32 bytes, a valid scalar.
fn check_vapid_key(key: &str) -> Result<(), ()> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .map_err(|_| ())?;
    web_push_native::p256::SecretKey::from_slice(&bytes)
        .map(|_| ())
        .map_err(|_| ())
}

/// A setting as given: trimmed, `None` when blank (a blank variable counts as unset).
fn given(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|value| !value.is_empty())
}

/// A setting as given, or its default when blank.
fn or_default<'a>(raw: &'a str, default: &'a str) -> &'a str {
    given(raw).unwrap_or(default)
}

impl Args {
    /// The one validation path: every value checked and typed, every refusal a sentence that
    /// names the variable.
    fn into_config(self) -> Result<Config, String> {
        let bind: SocketAddr = or_default(&self.bind, DEFAULT_BIND)
            .parse()
            .map_err(|_| "NATTER_BIND must be an address like 127.0.0.1:8080".to_string())?;
        let public_url = parse_public_url(or_default(&self.public_url, DEFAULT_PUBLIC_URL))?;
        let database_url =
            DatabaseUrl::parse(or_default(&self.database_url, DEFAULT_DATABASE_URL))?;

        let client_id = self.oauth_client_id.as_deref().and_then(given);
        let client_secret = self.oauth_client_secret.as_deref().and_then(given);
        let oauth = match (client_id, client_secret) {
            (Some(id), Some(secret)) => Some(OAuthConfig {
                client_id: id.to_string(),
                client_secret: Secret::new(secret),
                auth_url: parse_url(
                    "NATTER_OAUTH_AUTH_URL",
                    or_default(&self.oauth_auth_url, GOOGLE_AUTH_URL),
                )?,
                token_url: parse_url(
                    "NATTER_OAUTH_TOKEN_URL",
                    or_default(&self.oauth_token_url, GOOGLE_TOKEN_URL),
                )?,
                userinfo_url: parse_url(
                    "NATTER_OAUTH_USERINFO_URL",
                    or_default(&self.oauth_userinfo_url, GOOGLE_USERINFO_URL),
                )?,
                scopes: or_default(&self.oauth_scopes, DEFAULT_SCOPES)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                provider_name: or_default(&self.oauth_provider_name, DEFAULT_PROVIDER_NAME)
                    .to_string(),
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "set both NATTER_OAUTH_CLIENT_ID and NATTER_OAUTH_CLIENT_SECRET, or neither"
                        .to_string(),
                );
            }
        };

        let dev_login = parse_bool("NATTER_DEV_LOGIN", or_default(&self.dev_login, "false"))?;
        if dev_login {
            if !bind.ip().is_loopback() {
                return Err(format!(
                    "dev sign-in lets anyone sign in as anyone, so it needs a loopback NATTER_BIND; {bind} is not loopback"
                ));
            }
            if !is_loopback_host(&public_url) {
                return Err(format!(
                    "dev sign-in needs a loopback NATTER_PUBLIC_URL (localhost, 127.0.0.1, [::1]); {public_url} is not"
                ));
            }
        }

        let log_format = match or_default(&self.log_format, DEFAULT_LOG_FORMAT) {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(format!(
                    "NATTER_LOG_FORMAT must be text or json, not {other:?}"
                ));
            }
        };
        let log = or_default(&self.log, DEFAULT_LOG).to_string();
        // Checked here, not when logging starts: a typo would otherwise silently mean "info".
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| {
            format!("NATTER_LOG: {log:?} is not a log filter like info or natter=debug,info ({e})")
        })?;
        let trusted_proxies = self
            .trusted_proxies
            .as_deref()
            .unwrap_or("")
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("NATTER_TRUSTED_PROXIES: {s:?} is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let session_days = or_default(&self.session_days, DEFAULT_SESSION_DAYS)
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .ok_or("NATTER_SESSION_DAYS must be a whole number of days from 1 to 3650")?;
        let rate = |key: &str, raw: &str, default: &str| {
            RateLimit::parse(or_default(raw, default)).map_err(|e| format!("{key}: {e}"))
        };
        let limits = Limits {
            posts: rate("NATTER_LIMIT_POSTS", &self.limit_posts, DEFAULT_LIMIT_POSTS)?,
            rooms: rate("NATTER_LIMIT_ROOMS", &self.limit_rooms, DEFAULT_LIMIT_ROOMS)?,
            join_fails: rate(
                "NATTER_LIMIT_JOIN_FAILS",
                &self.limit_join_fails,
                DEFAULT_LIMIT_JOIN_FAILS,
            )?,
            membership: rate(
                "NATTER_LIMIT_MEMBERSHIP",
                &self.limit_membership,
                DEFAULT_LIMIT_MEMBERSHIP,
            )?,
            sign_ins: rate(
                "NATTER_LIMIT_SIGN_INS",
                &self.limit_sign_ins,
                DEFAULT_LIMIT_SIGN_INS,
            )?,
            searches: rate(
                "NATTER_LIMIT_SEARCHES",
                &self.limit_searches,
                DEFAULT_LIMIT_SEARCHES,
            )?,
            sockets_per_user: or_default(&self.sockets_per_user, DEFAULT_SOCKETS_PER_USER)
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or("NATTER_SOCKETS_PER_USER must be a number from 1 to 10000")?,
            ..Limits::default()
        };

        let timeout = |key: &str, raw: &str, default: &str| {
            parse_duration(or_default(raw, default))
                .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(d))
                .ok_or_else(|| format!("{key} must be a duration from 100ms to 1h, like 10s or 2m"))
        };
        let timeouts = Timeouts {
            head: timeout(
                "NATTER_HEADER_TIMEOUT",
                &self.header_timeout,
                DEFAULT_HEADER_TIMEOUT,
            )?,
            idle: timeout(
                "NATTER_IDLE_TIMEOUT",
                &self.idle_timeout,
                DEFAULT_IDLE_TIMEOUT,
            )?,
            body: timeout(
                "NATTER_BODY_TIMEOUT",
                &self.body_timeout,
                DEFAULT_BODY_TIMEOUT,
            )?,
        };

        let hub_capacity = or_default(&self.hub_capacity, DEFAULT_HUB_CAPACITY)
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=65_536).contains(n))
            .ok_or("NATTER_HUB_CAPACITY must be a number from 1 to 65536")?;

        let db_pool = match self.db_pool.as_deref().and_then(given) {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (2..=1000).contains(n))
                    .ok_or("NATTER_DB_POOL must be a number from 2 to 1000")?,
            ),
        };

        let bus = parse_bus(self.bus.as_deref().unwrap_or(""), &database_url)?;

        let drain = parse_duration(or_default(&self.drain, DEFAULT_DRAIN))
            // The drain and finishing requests share the 10 s a restart may take.
            .filter(|d| *d <= Duration::from_secs(5))
            .ok_or("NATTER_DRAIN must be a duration of at most 5s, like 2s or 500ms")?;

        let refuse_websockets = parse_bool(
            "NATTER_REFUSE_WEBSOCKETS",
            or_default(&self.refuse_websockets, "false"),
        )?;

        let files = FilesConfig {
            location: files_location(
                self.files.as_deref().and_then(given),
                &database_url,
                S3Access {
                    endpoint: self.s3_endpoint.as_deref().and_then(given),
                    region: self.s3_region.as_deref().and_then(given),
                    key_id: self.s3_key_id.as_deref().and_then(given),
                    secret: self.s3_secret.as_deref().and_then(given),
                },
            )?,
            max_upload: parse_size(or_default(&self.max_upload, DEFAULT_MAX_UPLOAD))
                .filter(|n| (1024..=1 << 30).contains(n))
                .ok_or("NATTER_MAX_UPLOAD must be a size from 1KiB to 1GiB, like 10MiB")?,
            max_files: or_default(&self.max_files, DEFAULT_MAX_FILES)
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=50).contains(n))
                .ok_or("NATTER_MAX_FILES must be a number from 1 to 50")?,
            room_quota: match self.room_quota.as_deref().and_then(given) {
                None => None,
                Some(v) => Some(
                    parse_size(v)
                        .filter(|n| *n >= 1024)
                        .ok_or("NATTER_ROOM_QUOTA must be a size of at least 1KiB, like 2GiB")?,
                ),
            },
        };

        let push = PushConfig {
            vapid_private_key: self
                .vapid_private_key
                .as_deref()
                .and_then(given)
                .map(|key| {
                    check_vapid_key(key)
                        .map(|()| Secret::new(key))
                        .map_err(|_| {
                            "NATTER_VAPID_PRIVATE_KEY must be a P-256 private key as 43 base64url \
                             characters (leave it unset and natter makes one)"
                        })
                })
                .transpose()?,
            vapid_subject: match self.vapid_subject.as_deref().and_then(given) {
                None => public_url.as_str().trim_end_matches('/').to_string(),
                Some(s) if s.starts_with("mailto:") || s.starts_with("https://") => s.to_string(),
                Some(_) => {
                    return Err(
                        "NATTER_VAPID_SUBJECT must be a mailto: or https:// URL".to_string()
                    );
                }
            },
            allow_loopback: parse_bool(
                "NATTER_PUSH_ALLOW_LOOPBACK",
                or_default(&self.push_allow_loopback, "false"),
            )?,
        };

        Ok(Config {
            push,
            files,
            bind,
            public_url,
            database_url,
            oauth,
            dev_login,
            log,
            log_format,
            trusted_proxies,
            session_days,
            limits,
            timeouts,
            hub_capacity,
            db_pool,
            drain,
            refuse_websockets,
            bus,
        })
    }
}

/// Runs `command` over `argv` (program name first) and validates what it read.
fn parse(
    command: clap::Command,
    argv: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<Config, ConfigError> {
    let matches = command
        .try_get_matches_from(argv)
        .map_err(ConfigError::from_clap)?;
    let args = Args::from_arg_matches(&matches).map_err(ConfigError::from_clap)?;
    args.into_config().map_err(ConfigError::Invalid)
}

impl Config {
    /// Reads the process's arguments and its `NATTER_*` variables; flags win.
    pub fn from_env_and_args() -> Result<Self, ConfigError> {
        parse(Args::command(), std::env::args_os())
    }

    /// Builds the configuration from explicit sources, never the process environment (tests
    /// run many apps in one process): flags (`--bind 0.0.0.0:80`, `--bind=…`, `--dev-login`)
    /// override the `NATTER_*` variables in `env`.
    pub fn from_sources(env: &HashMap<String, String>, args: &[String]) -> Result<Self, String> {
        // clap's `env` reads the process environment, so the command drops every variable and
        // `env` comes in as flags placed before `args`: a flag repeated later wins
        // (`args_override_self`), so the real flags still override the environment.
        let command = Args::command();
        let from_env: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| {
                let value = env.get(arg.get_env()?.to_str()?)?;
                Some(format!("--{}={value}", arg.get_long()?))
            })
            .collect();
        let argv = std::iter::once("natter".to_string())
            .chain(from_env)
            .chain(args.iter().cloned());
        parse(command.mut_args(|arg| arg.env(None)), argv).map_err(|e| e.to_string())
    }

    /// The public origin, e.g. `http://localhost:8080`, as browsers send it in `Origin`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// `host[:port]` as browsers send it in `Host` for the public URL.
    pub fn public_host(&self) -> String {
        let host = self.public_url.host_str().unwrap_or_default();
        match self.public_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Cookies get `Secure` (and the `__Host-` prefix) when natter is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// Where the provider sends people back.
    pub fn redirect_url(&self) -> String {
        format!("{}/auth/callback", self.public_origin())
    }

    /// How long a session lasts after its last use.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_days) * 86_400)
    }
}

/// `500ms`, `2s`, `10m`, `1h`; a missing number means 1 (`s` = `1s`). Hand-written rather than
/// `humantime`, which takes more units (`1d`, `1w`) than the README documents.
/// The `AWS_*` settings as given.
struct S3Access<'a> {
    endpoint: Option<&'a str>,
    region: Option<&'a str>,
    key_id: Option<&'a str>,
    secret: Option<&'a str>,
}

/// `NATTER_FILES`, or its default: `natter-files` beside the SQLite file, else in the
/// working directory.
fn files_location(
    given: Option<&str>,
    database: &DatabaseUrl,
    s3: S3Access<'_>,
) -> Result<FilesLocation, String> {
    match given {
        Some(url) if url.starts_with("s3://") => {
            let bucket = url.trim_start_matches("s3://").trim_end_matches('/');
            let valid = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid {
                return Err(format!(
                    "NATTER_FILES: {url:?} is not s3://BUCKET with a bucket name of 3-63 lowercase letters, digits, dots and dashes"
                ));
            }
            let (Some(key_id), Some(secret)) = (s3.key_id, s3.secret) else {
                return Err(
                    "NATTER_FILES is an S3 bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY too"
                        .to_string(),
                );
            };
            if let Some(endpoint) = s3.endpoint {
                parse_url("AWS_ENDPOINT_URL", endpoint)?;
            }
            Ok(FilesLocation::S3 {
                bucket: bucket.to_string(),
                endpoint: s3.endpoint.map(str::to_string),
                region: s3.region.unwrap_or("us-east-1").to_string(),
                key_id: key_id.to_string(),
                secret: Secret::new(secret),
            })
        }
        Some(other) if other.contains("://") => Err(format!(
            "NATTER_FILES must be a directory or s3://BUCKET, not {other:?}"
        )),
        Some(dir) => Ok(FilesLocation::Local(PathBuf::from(dir))),
        None => {
            let beside = database.sqlite_dir().unwrap_or_else(|| PathBuf::from("."));
            Ok(FilesLocation::Local(beside.join("natter-files")))
        }
    }
}

/// A size like `10MiB`, `500KiB`, `1GiB`, `2MB` or a number of bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(unit)
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (amount, unit) = text.split_at(split);
    let amount: u64 = if amount.is_empty() {
        1
    } else {
        amount.parse().ok()?
    };
    match unit {
        "ms" => Some(Duration::from_millis(amount)),
        "s" => Some(Duration::from_secs(amount)),
        "m" => Some(Duration::from_secs(amount.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(amount.checked_mul(3600)?)),
        _ => None,
    }
}

fn parse_url(name: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{name}: {value:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{name}: {value:?} must be an http:// or https:// URL"
        ));
    }
    Ok(url)
}

fn parse_public_url(value: &str) -> Result<Url, String> {
    let url = parse_url("NATTER_PUBLIC_URL", value)?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "NATTER_PUBLIC_URL must be an origin without a path, like https://chat.example.org (got {value:?})"
        ));
    }
    Ok(url)
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{name} must be true or false, not {value:?}")),
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)], args: &[&str]) -> Result<Config, String> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::from_sources(&env, &args)
    }

    #[test]
    fn defaults_match_the_design() {
        let c = config(&[], &[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_origin(), "http://localhost:8080");
        assert_eq!(c.public_host(), "localhost:8080");
        assert_eq!(c.database_url, "sqlite://natter.db");
        assert!(c.oauth.is_none());
        assert!(!c.dev_login);
        assert_eq!(c.session_days, 30);
        assert_eq!(c.limits.posts, RateLimit::new(20, Duration::from_secs(10)));
    }

    #[test]
    fn flags_override_the_environment() {
        let c = config(
            &[("NATTER_BIND", "127.0.0.1:1")],
            &["--bind", "127.0.0.1:2", "--dev-login"],
        )
        .unwrap();
        assert_eq!(c.bind.port(), 2);
        assert!(c.dev_login);
        let c = config(&[], &["--public-url=http://127.0.0.1:9"]).unwrap();
        assert_eq!(c.public_origin(), "http://127.0.0.1:9");
    }

    #[test]
    fn dev_login_is_refused_off_loopback() {
        let e = config(&[("NATTER_BIND", "0.0.0.0:8080")], &["--dev-login"]).unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = config(
            &[("NATTER_PUBLIC_URL", "https://chat.example.org")],
            &["--dev-login"],
        )
        .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(
            config(&[("NATTER_PUBLIC_URL", "not a url")], &[])
                .unwrap_err()
                .contains("NATTER_PUBLIC_URL")
        );
        assert!(
            config(&[("NATTER_PUBLIC_URL", "http://x.org/chat")], &[])
                .unwrap_err()
                .contains("origin")
        );
        assert!(
            config(&[("NATTER_DATABASE_URL", "mysql://x")], &[])
                .unwrap_err()
                .contains("sqlite")
        );
        assert!(
            config(&[("NATTER_OAUTH_CLIENT_ID", "x")], &[])
                .unwrap_err()
                .contains("both")
        );
        assert!(
            config(&[("NATTER_LIMIT_POSTS", "lots")], &[])
                .unwrap_err()
                .contains("NATTER_LIMIT_POSTS")
        );
        assert!(
            config(&[], &["--frobnicate", "1"])
                .unwrap_err()
                .contains("unknown flag")
        );
        for pool in ["0", "1", "1001", "-3", "many"] {
            assert!(
                config(&[("NATTER_DB_POOL", pool)], &[])
                    .unwrap_err()
                    .contains("NATTER_DB_POOL must be a number from 2 to 1000"),
                "{pool}"
            );
        }
        assert_eq!(
            config(&[("NATTER_DB_POOL", "4")], &[]).unwrap().db_pool,
            Some(4)
        );
        assert_eq!(config(&[], &[]).unwrap().db_pool, None);
    }

    #[test]
    fn rates_parse() {
        assert_eq!(
            RateLimit::parse("20/10s").unwrap(),
            RateLimit::new(20, Duration::from_secs(10))
        );
        assert_eq!(
            RateLimit::parse("20/1h").unwrap(),
            RateLimit::new(20, Duration::from_secs(3600))
        );
        assert_eq!(
            RateLimit::parse("10/m").unwrap(),
            RateLimit::new(10, Duration::from_secs(60))
        );
        assert_eq!(
            RateLimit::parse("5/250ms").unwrap(),
            RateLimit::new(5, Duration::from_millis(250))
        );
        assert!(RateLimit::parse("0/1s").is_err());
        assert!(RateLimit::parse("1/1d").is_err());
    }

    #[test]
    fn absurd_rate_periods_are_refused_at_start() {
        let e = config(&[("NATTER_LIMIT_SIGN_INS", "1/5000000000000000h")], &[]).unwrap_err();
        assert!(
            e.contains("NATTER_LIMIT_SIGN_INS") && e.contains("7 days"),
            "{e}"
        );
        let e = RateLimit::parse("1/169h").unwrap_err();
        assert!(e.contains("at most 168h"), "{e}");
        assert_eq!(
            RateLimit::parse("1/168h").unwrap().per,
            RateLimit::LONGEST_PERIOD
        );
        // The longest period still works in a limiter: no overflow on the far side of it.
        let limiter = crate::limits::Limiter::new(RateLimit::parse("1/168h").unwrap());
        assert!(limiter.check(&1).is_ok());
        assert!(limiter.check(&1).is_err());
    }

    #[test]
    fn a_bad_log_filter_is_refused_with_the_reason() {
        for bad in ["natter=loud", "info,[", "=debug"] {
            let e = config(&[("NATTER_LOG", bad)], &[]).unwrap_err();
            assert!(
                e.starts_with("NATTER_LOG:") && e.contains("log filter"),
                "{bad}: {e}"
            );
        }
        for good in ["info", "natter=debug,info", "warn,natter::chat=trace"] {
            assert_eq!(config(&[("NATTER_LOG", good)], &[]).unwrap().log, good);
        }
        assert_eq!(config(&[], &[]).unwrap().log, "info");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(
            &[
                ("NATTER_OAUTH_CLIENT_ID", "id"),
                ("NATTER_OAUTH_CLIENT_SECRET", "hunter2"),
            ],
            &[],
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn neither_the_client_secret_nor_the_database_password_prints() {
        let c = config(
            &[
                ("NATTER_OAUTH_CLIENT_ID", "id"),
                ("NATTER_OAUTH_CLIENT_SECRET", "hunter2"),
                (
                    "NATTER_DATABASE_URL",
                    "postgres://natter:swordfish@db.internal/natter",
                ),
            ],
            &[],
        )
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("swordfish"), "{printed}");
        assert!(
            printed.contains("postgres://natter:***@db.internal/natter"),
            "{printed}"
        );
        assert_eq!(
            c.database_url.expose(),
            "postgres://natter:swordfish@db.internal/natter"
        );
    }

    #[test]
    fn a_database_url_shows_without_its_password() {
        let shown = |url: &str| DatabaseUrl::parse(url).unwrap().to_string();
        assert_eq!(shown("sqlite://natter.db"), "sqlite://natter.db");
        assert_eq!(
            shown("postgres://natter@db/natter"),
            "postgres://natter@db/natter"
        );
        assert_eq!(
            shown("postgresql://natter:pw@db:5432/natter?sslmode=require"),
            "postgresql://natter:***@db:5432/natter?sslmode=require"
        );
        assert_eq!(
            shown("postgres://db/natter?user=natter&password=pw&sslmode=require"),
            "postgres://db/natter?user=natter&password=***&sslmode=require"
        );
        assert!(!shown("postgres://natter:p w@[bad/natter").contains("p w"));
    }

    #[test]
    fn blank_values_count_as_unset_and_values_are_trimmed() {
        let c = config(
            &[
                ("NATTER_BIND", "   "),
                ("NATTER_LIMIT_POSTS", ""),
                ("NATTER_DEV_LOGIN", " "),
                ("NATTER_OAUTH_CLIENT_ID", ""),
                ("NATTER_DB_POOL", " "),
                ("NATTER_PUBLIC_URL", " http://127.0.0.1:9 "),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.limits.posts, Limits::default().posts);
        assert!(!c.dev_login && c.oauth.is_none() && c.db_pool.is_none());
        assert_eq!(c.public_origin(), "http://127.0.0.1:9");
        let c = config(&[], &["--bind=", "--drain", " 2s "]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.drain, Duration::from_secs(2));
    }

    #[test]
    fn the_defaults_shown_in_help_are_the_defaults_used() {
        let c = config(&[], &[]).unwrap();
        let d = Limits::default();
        assert_eq!(
            [
                c.limits.posts,
                c.limits.rooms,
                c.limits.join_fails,
                c.limits.membership,
                c.limits.sign_ins,
                c.limits.searches
            ],
            [
                d.posts,
                d.rooms,
                d.join_fails,
                d.membership,
                d.sign_ins,
                d.searches
            ]
        );
        assert_eq!((c.hub_capacity, c.drain), (256, Duration::ZERO));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.limits.sockets_per_user, d.sockets_per_user);
    }

    #[test]
    fn timeouts_and_the_socket_cap_are_bounded() {
        let c = config(
            &[
                ("NATTER_HEADER_TIMEOUT", "500ms"),
                ("NATTER_IDLE_TIMEOUT", "2m"),
                ("NATTER_SOCKETS_PER_USER", "3"),
            ],
            &["--body-timeout", "1s"],
        )
        .unwrap();
        assert_eq!(
            c.timeouts,
            Timeouts {
                head: Duration::from_millis(500),
                idle: Duration::from_secs(120),
                body: Duration::from_secs(1),
            }
        );
        assert_eq!(c.limits.sockets_per_user, 3);
        for (key, bad) in [
            ("NATTER_HEADER_TIMEOUT", "0s"),
            ("NATTER_IDLE_TIMEOUT", "2h"),
            ("NATTER_BODY_TIMEOUT", "soon"),
            ("NATTER_SOCKETS_PER_USER", "0"),
            ("NATTER_SOCKETS_PER_USER", "lots"),
        ] {
            let e = config(&[(key, bad)], &[]).unwrap_err();
            assert!(e.contains(key), "{key}={bad}: {e}");
        }
    }

    #[test]
    fn dev_login_takes_a_bare_flag_or_a_boolean() {
        for (value, on) in [
            ("1", true),
            ("true", true),
            ("YES", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("no", false),
            ("off", false),
        ] {
            assert_eq!(
                config(&[("NATTER_DEV_LOGIN", value)], &[])
                    .unwrap()
                    .dev_login,
                on,
                "{value}"
            );
            let flag = format!("--dev-login={value}");
            assert_eq!(config(&[], &[&flag]).unwrap().dev_login, on, "{flag}");
        }
        assert!(
            config(&[("NATTER_DEV_LOGIN", "0")], &["--dev-login"])
                .unwrap()
                .dev_login
        );
        assert!(
            !config(&[("NATTER_DEV_LOGIN", "1")], &["--dev-login=off"])
                .unwrap()
                .dev_login
        );
        // A bare --dev-login does not swallow the argument after it.
        let c = config(&[], &["--dev-login", "--bind", "127.0.0.1:3"]).unwrap();
        assert!(c.dev_login && c.bind.port() == 3);
        assert_eq!(
            config(&[("NATTER_DEV_LOGIN", "maybe")], &[]).unwrap_err(),
            "NATTER_DEV_LOGIN must be true or false, not \"maybe\""
        );
    }

    #[test]
    fn the_bus_is_nats_only_on_postgresql() {
        let pg = ("NATTER_DATABASE_URL", "postgres://u@127.0.0.1/natter");
        assert!(config(&[pg], &[]).unwrap().bus.is_none());
        assert!(
            config(&[pg, ("NATTER_BUS", "postgres")], &[])
                .unwrap()
                .bus
                .is_none()
        );
        let c = config(&[pg, ("NATTER_BUS", "nats://a:4222, nats://b:4223")], &[]).unwrap();
        let servers: Vec<String> = c.bus.unwrap().iter().map(|u| u.to_string()).collect();
        assert_eq!(servers, ["nats://a:4222", "nats://b:4223"]);
        assert_eq!(
            config(&[("NATTER_BUS", "nats://127.0.0.1:4222")], &[]).unwrap_err(),
            "NATTER_BUS=nats://… needs PostgreSQL: with SQLite natter is one instance"
        );
    }

    #[test]
    fn flag_mistakes_are_sentences() {
        assert_eq!(
            config(&[], &["--frobnicate", "1"]).unwrap_err(),
            "unknown flag --frobnicate (try --help)"
        );
        assert_eq!(
            config(&[], &["--public-ur=http://localhost:1"]).unwrap_err(),
            "unknown flag --public-ur; did you mean --public-url? (try --help)"
        );
        assert_eq!(
            config(&[], &["serve"]).unwrap_err(),
            "unexpected argument \"serve\" (try --help)"
        );
        assert_eq!(
            config(&[], &["--bind"]).unwrap_err(),
            "--bind needs a value"
        );
        // A repeated flag takes its last value.
        let c = config(&[], &["--bind=127.0.0.1:1", "--bind", "127.0.0.1:2"]).unwrap();
        assert_eq!(c.bind.port(), 2);
        // Variables natter does not know are not flags and are left alone.
        assert!(config(&[("NATTER_TEST_LOG", "x"), ("HOME", "/")], &[]).is_ok());
    }

    #[test]
    fn every_refusal_keeps_its_sentence() {
        for (key, value, sentence) in [
            (
                "NATTER_BIND",
                "localhost",
                "NATTER_BIND must be an address like 127.0.0.1:8080",
            ),
            (
                "NATTER_OAUTH_CLIENT_SECRET",
                "s",
                "set both NATTER_OAUTH_CLIENT_ID and NATTER_OAUTH_CLIENT_SECRET, or neither",
            ),
            (
                "NATTER_DB_POOL",
                "1",
                "NATTER_DB_POOL must be a number from 2 to 1000",
            ),
            (
                "NATTER_DRAIN",
                "6s",
                "NATTER_DRAIN must be a duration of at most 5s, like 2s or 500ms",
            ),
            (
                "NATTER_DRAIN",
                "soon",
                "NATTER_DRAIN must be a duration of at most 5s, like 2s or 500ms",
            ),
            (
                "NATTER_LIMIT_ROOMS",
                "lots",
                "NATTER_LIMIT_ROOMS: \"lots\" is not a rate like 20/10s (units: ms, s, m, h)",
            ),
            (
                "NATTER_LIMIT_JOIN_FAILS",
                "0/1m",
                "NATTER_LIMIT_JOIN_FAILS: \"0/1m\": both the count and the period must be above zero",
            ),
            (
                "NATTER_SESSION_DAYS",
                "0",
                "NATTER_SESSION_DAYS must be a whole number of days from 1 to 3650",
            ),
            (
                "NATTER_BUS",
                "http://127.0.0.1:4222",
                "NATTER_BUS must be postgres or nats://host:port (commas between the servers of a cluster): \"http://127.0.0.1:4222\" is not a nats:// or tls:// address",
            ),
            (
                "NATTER_BUS",
                "nats://127.0.0.1",
                "NATTER_BUS must be postgres or nats://host:port (commas between the servers of a cluster): \"nats://127.0.0.1\" needs a host and a port",
            ),
            (
                "NATTER_HUB_CAPACITY",
                "65537",
                "NATTER_HUB_CAPACITY must be a number from 1 to 65536",
            ),
            (
                "NATTER_LOG_FORMAT",
                "xml",
                "NATTER_LOG_FORMAT must be text or json, not \"xml\"",
            ),
            (
                "NATTER_TRUSTED_PROXIES",
                "127.0.0.1,caddy",
                "NATTER_TRUSTED_PROXIES: \"caddy\" is not an IP address",
            ),
            (
                "NATTER_DATABASE_URL",
                "mysql://x",
                "NATTER_DATABASE_URL must start with sqlite:// or postgres://",
            ),
        ] {
            assert_eq!(
                config(&[(key, value)], &[]).unwrap_err(),
                sentence,
                "{key}={value}"
            );
        }
        assert_eq!(
            config(&[("NATTER_BIND", "0.0.0.0:8080")], &["--dev-login"]).unwrap_err(),
            "dev sign-in lets anyone sign in as anyone, so it needs a loopback NATTER_BIND; 0.0.0.0:8080 is not loopback"
        );
        assert_eq!(
            config(
                &[("NATTER_PUBLIC_URL", "https://chat.example.org")],
                &["--dev-login"]
            )
            .unwrap_err(),
            "dev sign-in needs a loopback NATTER_PUBLIC_URL (localhost, 127.0.0.1, [::1]); https://chat.example.org/ is not"
        );
        let e = config(&[], &["--log", "natter=loud"]).unwrap_err();
        assert!(
            e.starts_with(
                "NATTER_LOG: \"natter=loud\" is not a log filter like info or natter=debug,info ("
            ),
            "{e}"
        );
    }

    #[test]
    fn help_lists_every_option_with_its_variable_and_default() {
        Args::command().debug_assert();
        let Err(ConfigError::Shown(help)) =
            parse(Args::command().term_width(0), ["natter", "--help"])
        else {
            panic!("--help is shown, not refused");
        };
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(help.exit_code(), 0);
        let help = help.render().to_string();
        let command = Args::command();
        for arg in command
            .get_arguments()
            .filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version"))
        {
            let long = arg.get_long().unwrap();
            let var = arg
                .get_env()
                .and_then(|v| v.to_str())
                .unwrap_or_else(|| panic!("--{long} has a variable"));
            assert!(help.contains(&format!("--{long}")), "--{long} in {help}");
            assert!(help.contains(&format!("[env: {var}")), "{var} in {help}");
            // The S3 settings keep the names every S3 tool reads.
            if !var.starts_with("AWS_") {
                assert_eq!(
                    var,
                    format!("NATTER_{}", long.replace('-', "_").to_uppercase())
                );
            }
        }
        for default in [
            "[default: 127.0.0.1:8080]",
            "[default: sqlite://natter.db]",
            "[default: 20/10s]",
            "[default: 0s]",
        ] {
            assert!(help.contains(default), "{default} in {help}");
        }
        let Err(ConfigError::Shown(version)) = parse(Args::command(), ["natter", "--version"])
        else {
            panic!("--version is shown, not refused");
        };
        assert_eq!(version.exit_code(), 0);
    }

    /// Set in the child process `only_from_env_and_args_reads_the_process_environment` starts.
    const CHILD: &str = "NATTER_CONFIG_TEST_CHILD";

    #[test]
    fn only_from_env_and_args_reads_the_process_environment() {
        // Changing this process's environment would race the other tests (and C code reading
        // it), so the check runs in a child: this test binary, running only the test below,
        // with a NATTER_BIND that no explicit environment mentions.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::child_sees_the_process_environment_only_through_clap",
            ])
            .args(["--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .env("NATTER_BIND", "127.0.0.1:7")
            .env("NATTER_DB_POOL", "9")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    #[test]
    fn child_sees_the_process_environment_only_through_clap() {
        if std::env::var_os(CHILD).is_none() {
            return; // Only meaningful in the child process started above.
        }
        // from_sources: an unrelated process variable is ignored; flags still beat `env`.
        let c = config(&[("NATTER_HUB_CAPACITY", "8")], &[]).unwrap();
        assert_eq!((c.bind.port(), c.db_pool, c.hub_capacity), (8080, None, 8));
        let c = config(&[("NATTER_BIND", "127.0.0.1:1")], &["--bind=127.0.0.1:2"]).unwrap();
        assert_eq!(c.bind.port(), 2);
        // The process path: clap reads the variables, and a flag overrides one of them.
        let c = parse(Args::command(), ["natter", "--db-pool", "3"]).unwrap();
        assert_eq!((c.bind.port(), c.db_pool), (7, Some(3)));
    }

    #[test]
    fn files_default_beside_the_sqlite_file_and_take_s3_buckets() {
        let local = |db: &str| config(&[("NATTER_DATABASE_URL", db)], &[]).unwrap().files;
        assert_eq!(
            local("sqlite:///var/lib/natter/chat.db?mode=rwc").location,
            FilesLocation::Local(PathBuf::from("/var/lib/natter/natter-files"))
        );
        assert_eq!(
            local("sqlite://natter.db").location,
            FilesLocation::Local(PathBuf::from("./natter-files"))
        );
        let files = local("postgres://db/natter");
        assert_eq!(
            files.location,
            FilesLocation::Local(PathBuf::from("./natter-files"))
        );
        assert_eq!(
            (files.max_upload, files.max_files, files.room_quota),
            (10 << 20, 10, None)
        );
        let s3 = |extra: &[(&str, &str)]| {
            let mut env = vec![("NATTER_FILES", "s3://chat-files")];
            env.extend_from_slice(extra);
            config(&env, &[]).map(|c| c.files.location)
        };
        let e = s3(&[]).unwrap_err();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        let FilesLocation::S3 {
            bucket,
            endpoint,
            region,
            key_id,
            secret,
        } = s3(&[
            ("AWS_ACCESS_KEY_ID", "GK1"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3900"),
            ("AWS_REGION", "garage"),
        ])
        .unwrap()
        else {
            panic!("an S3 location")
        };
        assert_eq!(
            (
                bucket.as_str(),
                endpoint.as_deref(),
                region.as_str(),
                key_id.as_str()
            ),
            ("chat-files", Some("http://127.0.0.1:3900"), "garage", "GK1")
        );
        assert!(!format!("{secret:?}").contains("hunter2"));
        for bad in ["s3://A_B", "s3://", "ftp://x/y"] {
            let e = config(&[("NATTER_FILES", bad)], &[]).unwrap_err();
            assert!(e.starts_with("NATTER_FILES"), "{bad}: {e}");
        }
    }

    #[test]
    fn upload_limits_are_sizes_within_bounds() {
        let files = config(
            &[
                ("NATTER_MAX_UPLOAD", "500KiB"),
                ("NATTER_MAX_FILES", "3"),
                ("NATTER_ROOM_QUOTA", "2GiB"),
            ],
            &[],
        )
        .unwrap()
        .files;
        assert_eq!(files.max_upload, 500 << 10);
        assert_eq!(files.max_files, 3);
        assert_eq!(files.room_quota, Some(2 << 30));
        for (key, bad) in [
            ("NATTER_MAX_UPLOAD", "2GiB"),
            ("NATTER_MAX_UPLOAD", "lots"),
            ("NATTER_MAX_UPLOAD", "10"),
            ("NATTER_MAX_FILES", "0"),
            ("NATTER_ROOM_QUOTA", "-1"),
        ] {
            let e = config(&[(key, bad)], &[]).unwrap_err();
            assert!(e.starts_with(key), "{key}={bad}: {e}");
        }
    }
}
