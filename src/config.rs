//! Every setting natter reads, from the environment and command-line flags, validated once at
//! start so a bad value stops the process with a sentence instead of failing later.

use std::{collections::HashMap, fmt, net::IpAddr, net::SocketAddr, time::Duration};

use url::Url;

/// A value that must never be printed (logs, `Debug`, error pages).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
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

/// The OAuth 2.0 / OpenID Connect provider natter signs people in with.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_url: Url,
    pub token_url: Url,
    pub userinfo_url: Url,
    pub scopes: Vec<String>,
    /// Label on the sign-in button ("Sign in with {provider_name}").
    pub provider_name: String,
}

/// "n per duration", e.g. `20/10s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
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
    pub posts: RateLimit,
    pub rooms: RateLimit,
    pub join_fails: RateLimit,
    /// Sign-in attempts per client address.
    pub sign_ins: RateLimit,
    /// Largest accepted request body, in bytes.
    pub body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            posts: RateLimit::new(20, Duration::from_secs(10)),
            rooms: RateLimit::new(20, Duration::from_secs(3600)),
            join_fails: RateLimit::new(10, Duration::from_secs(60)),
            sign_ins: RateLimit::new(30, Duration::from_secs(60)),
            body_bytes: 64 * 1024,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// natter's whole configuration (DESIGN.md §2).
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    /// The external origin: redirect URL, cookie `Secure`, Origin checks, host redirects.
    pub public_url: Url,
    pub database_url: String,
    pub oauth: Option<OAuthConfig>,
    pub dev_login: bool,
    pub log: String,
    pub log_format: LogFormat,
    /// Peers whose `X-Real-IP`/`X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    pub session_days: u32,
    pub limits: Limits,
    /// Events queued per socket in a room's hub before the socket must resync from the store.
    pub hub_capacity: usize,
    /// Database connections this instance may open (`None`: natter's default for the backend).
    /// With several instances on one PostgreSQL, their pools (plus one listener connection
    /// each) must fit in the server's `max_connections`.
    pub db_pool: Option<u32>,
    /// On shutdown, how long to keep serving (with `/healthz` failing) before no longer
    /// accepting connections, so a proxy's health check moves traffic away first.
    pub drain: Duration,
}

const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";

impl Config {
    /// Reads the process environment and arguments.
    pub fn from_env_and_args() -> Result<Self, String> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self::from_sources(&env, &args)
    }

    /// Builds the configuration from explicit sources: flags (`--bind 0.0.0.0:80`,
    /// `--bind=…`, `--dev-login`) override `NATTER_*` variables.
    pub fn from_sources(env: &HashMap<String, String>, args: &[String]) -> Result<Self, String> {
        let mut vars: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("NATTER_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Err(HELP.to_string());
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?} (try --help)"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, value.to_string()),
                None if flag == "dev-login" => (flag, "1".to_string()),
                None => (
                    flag,
                    args.next()
                        .ok_or_else(|| format!("--{flag} needs a value"))?
                        .clone(),
                ),
            };
            let key = format!("NATTER_{}", name.replace('-', "_").to_ascii_uppercase());
            if !KNOWN.contains(&key.as_str()) {
                return Err(format!("unknown flag --{name} (try --help)"));
            }
            vars.insert(key, value);
        }
        let get = |key: &str| vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let bind: SocketAddr = get("NATTER_BIND")
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| "NATTER_BIND must be an address like 127.0.0.1:8080".to_string())?;
        let public_url =
            parse_public_url(get("NATTER_PUBLIC_URL").unwrap_or("http://localhost:8080"))?;
        let database_url = get("NATTER_DATABASE_URL")
            .unwrap_or("sqlite://natter.db")
            .to_string();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err("NATTER_DATABASE_URL must start with sqlite:// or postgres://".to_string());
        }

        let oauth = match (
            get("NATTER_OAUTH_CLIENT_ID"),
            get("NATTER_OAUTH_CLIENT_SECRET"),
        ) {
            (Some(id), Some(secret)) => Some(OAuthConfig {
                client_id: id.to_string(),
                client_secret: Secret::new(secret),
                auth_url: parse_url(
                    "NATTER_OAUTH_AUTH_URL",
                    get("NATTER_OAUTH_AUTH_URL").unwrap_or(GOOGLE_AUTH_URL),
                )?,
                token_url: parse_url(
                    "NATTER_OAUTH_TOKEN_URL",
                    get("NATTER_OAUTH_TOKEN_URL").unwrap_or(GOOGLE_TOKEN_URL),
                )?,
                userinfo_url: parse_url(
                    "NATTER_OAUTH_USERINFO_URL",
                    get("NATTER_OAUTH_USERINFO_URL").unwrap_or(GOOGLE_USERINFO_URL),
                )?,
                scopes: get("NATTER_OAUTH_SCOPES")
                    .unwrap_or("openid email profile")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                provider_name: get("NATTER_OAUTH_PROVIDER_NAME")
                    .unwrap_or("Google")
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

        let dev_login = match get("NATTER_DEV_LOGIN") {
            None => false,
            Some(v) => parse_bool("NATTER_DEV_LOGIN", v)?,
        };
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

        let log_format = match get("NATTER_LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(format!(
                    "NATTER_LOG_FORMAT must be text or json, not {other:?}"
                ));
            }
        };
        let log = get("NATTER_LOG").unwrap_or("info").to_string();
        // Checked here, not when logging starts: a typo would otherwise silently mean "info".
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| {
            format!("NATTER_LOG: {log:?} is not a log filter like info or natter=debug,info ({e})")
        })?;
        let trusted_proxies = get("NATTER_TRUSTED_PROXIES")
            .unwrap_or("")
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("NATTER_TRUSTED_PROXIES: {s:?} is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let session_days = match get("NATTER_SESSION_DAYS") {
            None => 30,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or("NATTER_SESSION_DAYS must be a whole number of days from 1 to 3650")?,
        };
        let mut limits = Limits::default();
        for (key, slot) in [
            ("NATTER_LIMIT_POSTS", &mut limits.posts),
            ("NATTER_LIMIT_ROOMS", &mut limits.rooms),
            ("NATTER_LIMIT_JOIN_FAILS", &mut limits.join_fails),
            ("NATTER_LIMIT_SIGN_INS", &mut limits.sign_ins),
        ] {
            if let Some(v) = get(key) {
                *slot = RateLimit::parse(v).map_err(|e| format!("{key}: {e}"))?;
            }
        }

        let hub_capacity = match get("NATTER_HUB_CAPACITY") {
            None => 256,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=65_536).contains(n))
                .ok_or("NATTER_HUB_CAPACITY must be a number from 1 to 65536")?,
        };

        let db_pool = match get("NATTER_DB_POOL") {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (2..=1000).contains(n))
                    .ok_or("NATTER_DB_POOL must be a number from 2 to 1000")?,
            ),
        };

        let drain = match get("NATTER_DRAIN") {
            None => Duration::ZERO,
            Some(v) => parse_duration(v)
                // The drain and finishing requests share the 10 s a restart may take.
                .filter(|d| *d <= Duration::from_secs(5))
                .ok_or("NATTER_DRAIN must be a duration of at most 5s, like 2s or 500ms")?,
        };

        Ok(Self {
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
            hub_capacity,
            db_pool,
            drain,
        })
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

    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_days) * 86_400)
    }
}

/// `500ms`, `2s`, `10m`, `1h`; a missing number means 1 (`s` = `1s`).
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

const KNOWN: &[&str] = &[
    "NATTER_BIND",
    "NATTER_PUBLIC_URL",
    "NATTER_DATABASE_URL",
    "NATTER_OAUTH_CLIENT_ID",
    "NATTER_OAUTH_CLIENT_SECRET",
    "NATTER_OAUTH_AUTH_URL",
    "NATTER_OAUTH_TOKEN_URL",
    "NATTER_OAUTH_USERINFO_URL",
    "NATTER_OAUTH_SCOPES",
    "NATTER_OAUTH_PROVIDER_NAME",
    "NATTER_DEV_LOGIN",
    "NATTER_LOG",
    "NATTER_LOG_FORMAT",
    "NATTER_TRUSTED_PROXIES",
    "NATTER_SESSION_DAYS",
    "NATTER_LIMIT_POSTS",
    "NATTER_LIMIT_ROOMS",
    "NATTER_LIMIT_JOIN_FAILS",
    "NATTER_LIMIT_SIGN_INS",
    "NATTER_HUB_CAPACITY",
    "NATTER_DB_POOL",
    "NATTER_DRAIN",
];

const HELP: &str = "natter: real-time group chat

usage: natter [--dev-login] [--bind ADDR] [--public-url URL] [--database-url URL] [--name value ...]

Every NATTER_* environment variable has a flag of the same name in lower case
(NATTER_PUBLIC_URL = --public-url). Flags override the environment. See README.md.";

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
}
