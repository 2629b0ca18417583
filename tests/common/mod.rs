//! What every test starts from: the real natter on `127.0.0.1:0` with a fresh database (a temp
//! SQLite file, or a fresh PostgreSQL database cloned from a migrated template), the strict fake
//! OIDC provider, an HTTP client with a cookie jar and redirects off, and real WebSocket clients.
#![allow(dead_code)]

pub mod oidc;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Once},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use natter::{State, config::Config};
use reqwest::{cookie::CookieStore, header::HeaderMap};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

#[allow(unused_imports)]
pub use oidc::{FakeProvider, FakeUser, Mode};

/// The database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed test body once per backend: `mod name { fn sqlite(); fn postgres(); }`.
#[macro_export]
macro_rules! both {
    ($(async fn $name:ident($app:ident : TestApp) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::common::TestApp) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await {
                    run(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::spawn($crate::common::Backend::Postgres).await {
                    run(app).await;
                }
            }
        }
    )*};
}

/// Whether `NATTER_TEST_REQUIRE` makes a missing dependency a failure instead of a skip.
pub fn required(what: &str) -> bool {
    std::env::var("NATTER_TEST_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|s| s.trim() == what)
}

/// Skips (prints why) or, when required, fails.
pub fn skip_or_fail(what: &str, why: &str) {
    if required(what) {
        panic!("{what} is required by NATTER_TEST_REQUIRE but unavailable: {why}");
    }
    eprintln!("skipping: {what} unavailable ({why})");
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("NATTER_TEST_LOG").unwrap_or_else(|_| "off".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

/// A fresh database, removed when dropped.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))),
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("NATTER_TEST_POSTGRES_URL") else {
                    skip_or_fail("postgres", "NATTER_TEST_POSTGRES_URL is not set");
                    return None;
                };
                match create_pg_database(&admin_url).await {
                    Ok((name, url)) => Some(TestDb::Postgres {
                        admin_url,
                        name,
                        url,
                    }),
                    Err(e) => {
                        skip_or_fail("postgres", &e);
                        None
                    }
                }
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => format!("sqlite://{}/natter.db", dir.path().display()),
            TestDb::Postgres { url, .. } => url.clone(),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite(_) => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside async: use a thread with its own small runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = admin_pool(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

async fn admin_pool(admin_url: &str) -> Result<sqlx::PgPool, String> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(admin_url)
        .await
        .map_err(|e| format!("cannot connect to {admin_url}: {e}"))
}

fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("postgres url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A name that changes whenever a PostgreSQL migration does.
fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        h.update(std::fs::read(f).expect("migration"));
    }
    let digest = h.finalize();
    format!(
        "natter_tpl_{}",
        digest[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Creates a database cloned from a migrated template (migrating the template once, under an
/// advisory lock so parallel test processes agree).
async fn create_pg_database(admin_url: &str) -> Result<(String, String), String> {
    let pool = admin_pool(admin_url).await?;
    let template = template_name();
    let err = |e: sqlx::Error| e.to_string();
    let mut conn = pool.acquire().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_lock(72160)")
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname = $1")
            .bind(&template)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
    if exists.is_none() {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'natter_tpl_%'",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        for name in stale {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
        let building = format!("{template}_build");
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        )))
        .execute(&mut *conn)
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{building}\""
        )))
        .execute(&mut *conn)
        .await
        .map_err(err)?;
        let (store, _commits) =
            natter::store::Store::connect(&with_database(admin_url, &building), 2)
                .await
                .map_err(|e| format!("migrating the template: {e}"))?;
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        )))
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    }
    // The lock guards only the template; copies run in parallel.
    let _ = sqlx::query("SELECT pg_advisory_unlock(72160)")
        .execute(&mut *conn)
        .await;
    let name = format!("natter_test_{:016x}", rand::random::<u64>());
    let created = sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    )))
    .execute(&mut *conn)
    .await
    .map_err(err);
    drop(conn);
    pool.close().await;
    created?;
    Ok((name.clone(), with_database(admin_url, &name)))
}

/// A running natter.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:{port}`: the public URL.
    pub base: String,
    pub state: State,
    pub provider: FakeProvider,
    pub db: Arc<TestDb>,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<Result<(), String>>>,
}

impl TestApp {
    /// natter on a fresh database, with development sign-in and the fake provider configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// As `spawn`, with extra `NATTER_*` settings.
    pub async fn spawn_with(backend: Backend, settings: &[(&str, &str)]) -> Option<TestApp> {
        let db = Arc::new(TestDb::create(backend).await?);
        Some(Self::start_on(db, None, settings).await)
    }

    /// natter on an existing database (a second instance, or a restart), optionally on a given
    /// port.
    pub async fn start_on(
        db: Arc<TestDb>,
        port: Option<u16>,
        settings: &[(&str, &str)],
    ) -> TestApp {
        init_logs();
        let listener = bind(port).await;
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://127.0.0.1:{}", addr.port());
        let provider = FakeProvider::start().await;
        provider.register_redirect(&format!("{base}/auth/callback"));
        let mut env: HashMap<String, String> = [
            ("NATTER_BIND", addr.to_string()),
            ("NATTER_PUBLIC_URL", base.clone()),
            ("NATTER_DATABASE_URL", db.url()),
            ("NATTER_DEV_LOGIN", "1".into()),
            ("NATTER_OAUTH_CLIENT_ID", oidc::CLIENT_ID.into()),
            ("NATTER_OAUTH_CLIENT_SECRET", oidc::CLIENT_SECRET.into()),
            ("NATTER_OAUTH_AUTH_URL", provider.url("/authorize")),
            ("NATTER_OAUTH_TOKEN_URL", provider.url("/token")),
            ("NATTER_OAUTH_USERINFO_URL", provider.url("/userinfo")),
            ("NATTER_OAUTH_PROVIDER_NAME", "Fake".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if db.url().starts_with("postgres") {
            // Tests run in parallel, some with several instances: keep their connections well
            // inside PostgreSQL's max_connections (100 by default).
            env.insert("NATTER_DB_POOL".into(), "4".into());
        }
        for (k, v) in settings {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_sources(&env, &[]).expect("test config");
        let state = natter::build(config).await.expect("natter builds");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(natter::run(state.clone(), listener, async move {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            base,
            state,
            provider,
            db,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Graceful shutdown, as SIGTERM would do; returns when natter has stopped.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like HTTP client (cookie jar, redirects off).
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A browser signed in through development sign-in, with `username` chosen.
    pub async fn signed_in(&self, email: &str, username: &str) -> Browser {
        let b = self.browser();
        b.dev_sign_in(email).await;
        let r = b
            .post_form("/username", "/username", &[("username", username)])
            .await;
        assert_eq!(r.status, 303, "choosing {username}: {}", r.body);
        b
    }

    /// Creates a room as `owner`; returns its code.
    pub async fn create_room(&self, owner: &Browser, name: &str) -> String {
        let r = owner.post_form("/home", "/rooms", &[("name", name)]).await;
        assert_eq!(r.status, 303, "create room: {}", r.body);
        r.location().trim_start_matches("/rooms/").to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn bind(port: Option<u16>) -> tokio::net::TcpListener {
    let addr = SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(0)));
    // A restarted instance may find its old port in TIME_WAIT for a moment.
    for _ in 0..50 {
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot bind {addr}");
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` header as a path on natter (the origin removed).
    pub fn location(&self) -> String {
        let loc = self.header("location").unwrap_or_default();
        match url::Url::parse(loc) {
            Ok(u) => u[url::Position::BeforePath..].to_string(),
            Err(_) => loc.to_string(),
        }
    }

    /// The first CSRF token in the page.
    pub fn csrf(&self) -> Option<String> {
        extract_attr(&self.body, "name=\"csrf\" value=\"")
    }
}

/// The value following `marker` up to the next `"`.
pub fn extract_attr(body: &str, marker: &str) -> Option<String> {
    let start = body.find(marker)? + marker.len();
    let len = body[start..].find('"')?;
    Some(body[start..start + len].to_string())
}

/// A signed-out or signed-in browser: its own cookie jar, redirects not followed.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub base: String,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            http,
            jar,
            base: base.to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::read(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// GET with extra headers (e.g. `HX-Request`).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("GET")).await
    }

    /// POSTs `fields` as a browser on natter's page would: same-origin `Origin` header.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_with(path, fields, &[("origin", &self.base)])
            .await
    }

    pub async fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.post(self.url(path)).form(fields);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("POST")).await
    }

    /// Loads `page` for its CSRF token, then posts the form with it.
    pub async fn post_form(&self, page: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf_from(page).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post(path, &all).await
    }

    pub async fn csrf_from(&self, page: &str) -> String {
        let p = self.get(page).await;
        p.csrf()
            .unwrap_or_else(|| panic!("no csrf on {page} ({}): {}", p.status, p.body))
    }

    /// A browser on `base` signed in through development sign-in, with `username` chosen.
    pub async fn signed_in(base: &str, email: &str, username: &str) -> Browser {
        let b = Browser::new(base);
        b.dev_sign_in(email).await;
        let r = b
            .post_form("/username", "/username", &[("username", username)])
            .await;
        assert_eq!(r.status, 303, "choosing {username}: {}", r.body);
        b
    }

    /// Creates a room; returns its code.
    pub async fn create_room(&self, name: &str) -> String {
        let r = self.post_form("/home", "/rooms", &[("name", name)]).await;
        assert_eq!(r.status, 303, "create room: {}", r.body);
        r.location().trim_start_matches("/rooms/").to_string()
    }

    /// Joins a room by code.
    pub async fn join(&self, code: &str) {
        let r = self
            .post_form("/home", "/rooms/join", &[("code", code)])
            .await;
        assert_eq!(r.status, 303, "join {code}: {}", r.body);
    }

    /// Posts a message without JS; returns its seq.
    pub async fn say(&self, code: &str, body: &str) -> i64 {
        let csrf = self.csrf_from(&format!("/rooms/{code}")).await;
        let id = format!("{:032x}", rand::random::<u128>());
        let r = self
            .post(
                &format!("/rooms/{code}/messages"),
                &[("body", body), ("client_id", &id), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 303, "post: {}", r.body);
        r.location()
            .rsplit("#msg-")
            .next()
            .and_then(|s| s.parse().ok())
            .expect("seq in the redirect")
    }

    /// Development sign-in as `email`.
    pub async fn dev_sign_in(&self, email: &str) -> Answer {
        let r = self.post_form("/", "/auth/dev", &[("email", email)]).await;
        assert_eq!(r.status, 303, "dev sign-in: {}", r.body);
        r
    }

    /// The `Cookie` header this browser sends to natter.
    pub fn cookie_header(&self) -> String {
        let url = url::Url::parse(&self.base).expect("base");
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// A browser on `base` (another instance) carrying this one's cookies: the same session.
    pub fn same_session_on(&self, base: &str) -> Browser {
        let there = Browser::new(base);
        let url = url::Url::parse(base).expect("base");
        for cookie in self.cookie_header().split("; ") {
            there.jar.add_cookie_str(cookie, &url);
        }
        there
    }

    /// Opens the room's live socket as the page would (same origin, this browser's cookies).
    pub async fn socket(&self, code: &str, after: Option<i64>) -> Result<Socket, SocketRefused> {
        let origin = self.base.clone();
        self.socket_with(code, after.map(|a| a.to_string()).as_deref(), Some(&origin))
            .await
    }

    /// Opens a socket with an explicit `after` text and `Origin`.
    pub async fn socket_with(
        &self,
        code: &str,
        after: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Socket, SocketRefused> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let url = match after {
            Some(a) => format!("{ws_base}/rooms/{code}/ws?after={a}"),
            None => format!("{ws_base}/rooms/{code}/ws"),
        };
        let mut request = url.into_client_request().expect("ws request");
        let cookie = self.cookie_header();
        if !cookie.is_empty() {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().expect("cookie"));
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("origin"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Socket {
                ws,
                frames: Vec::new(),
            }),
            Err(tungstenite::Error::Http(response)) => {
                Err(SocketRefused(response.status().as_u16()))
            }
            Err(e) => panic!("socket failed: {e}"),
        }
    }
}

/// A socket upgrade natter refused, with its HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct SocketRefused(pub u16);

/// A live socket, as a test reads it.
pub struct Socket {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Every text frame received so far.
    pub frames: Vec<String>,
}

/// What a socket did next.
#[derive(Debug)]
pub enum Next {
    Text(String),
    Closed(Closed),
    /// Nothing arrived in time.
    Quiet,
}

/// How the server ended a socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Code(u16),
    /// The connection ended without a close frame.
    Abruptly,
}

impl Socket {
    /// The next text frame, or `None` at close/timeout.
    pub async fn next_text(&mut self, within: Duration) -> Option<String> {
        match self.next_event(within).await {
            Next::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The next text frame, the close, or `Quiet` after `within`.
    pub async fn next_event(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                    self.frames.push(t.to_string());
                    return Next::Text(t.to_string());
                }
                Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                    return Next::Closed(
                        frame.map_or(Closed::Code(1005), |f| Closed::Code(f.code.into())),
                    );
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Next::Closed(Closed::Abruptly),
                Err(_) => return Next::Quiet,
            }
        }
    }

    /// Reads frames until `n` messages (by `data-seq`) have arrived in total; returns the seqs
    /// of all message articles received so far, in arrival order.
    pub async fn seqs_until(&mut self, n: usize, within: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seqs = self.seqs();
            if seqs.len() >= n {
                return seqs;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next_text(left).await.is_none() {
                return self.seqs();
            }
        }
    }

    /// The seqs of all message articles received so far, in arrival order.
    pub fn seqs(&self) -> Vec<i64> {
        self.frames.iter().flat_map(|f| seqs_in(f)).collect()
    }

    /// Waits for a frame containing `needle` (one received earlier counts).
    pub async fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
        if self.frames.iter().any(|f| f.contains(needle)) {
            return true;
        }
        self.wait_for_new(needle, within).await
    }

    /// Waits for a frame containing `needle` among those arriving from now on (for states that
    /// come and go, like presence counts).
    pub async fn wait_for_new(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_text(left).await {
                Some(f) if f.contains(needle) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    }

    /// Reads until the server closes; returns how.
    pub async fn closed(&mut self, within: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Next::Closed(how) => return how,
                Next::Text(_) => continue,
                Next::Quiet => panic!("socket still open after {within:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(tungstenite::Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.ws.next().await.is_some() {}
        })
        .await;
    }
}

/// The `data-seq` values of message articles in a fragment, in order.
pub fn seqs_in(html: &str) -> Vec<i64> {
    html.match_indices("<article")
        .filter_map(|(i, _)| extract_attr(&html[i..], "data-seq=\""))
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Asserts `seqs` is exactly `from..=to` in order (nothing lost, duplicated or reordered).
#[track_caller]
pub fn assert_exactly(seqs: &[i64], from: i64, to: i64) {
    let expected: Vec<i64> = (from..=to).collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "expected every seq {from}..={to} exactly once, in order"
    );
}

/// The inputs of the hostile-inputs fixture (a copy of `shared/fixtures/hostile-inputs.txt`) as
/// real strings (`\n`, `\t`, `\r`, `\uXXXX` decoded), without comments.
///
/// The fixture annotates some lines, and the annotations mean more than "drop the brackets":
/// `value (explanation)` is the value; ` (only spaces)` is a space (the value is the line's
/// leading blank); `a / b / c (…)` is three inputs; and `AAA… (4000 …) / (4001 …)` is one run
/// of `A`s per bracketed length.
pub fn hostile_inputs() -> Vec<String> {
    include_str!("hostile-inputs.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .flat_map(hostile_line)
        .collect()
}

/// The inputs one fixture line stands for.
fn hostile_line(line: &str) -> Vec<String> {
    let (value, note) = match line.find(" (") {
        Some(i) if line.ends_with(')') => (&line[..i], &line[i + 1..]),
        _ => (line, ""),
    };
    if value.is_empty() {
        // " (only spaces)": the separator's space was the value.
        return vec![" ".to_string()];
    }
    if let Some(run) = value.strip_suffix('…') {
        // "AAAA… (4000 characters: …) / (4001 characters: …)": the run, once per length.
        let unit = run.chars().next().unwrap_or('A');
        return note
            .split('(')
            .filter_map(|part| part.split(|c: char| !c.is_ascii_digit()).next())
            .filter_map(|digits| digits.parse::<usize>().ok())
            .map(|n| unit.to_string().repeat(n))
            .collect();
    }
    if value.contains(" / ") {
        // "admin / Admin / ADMIN": each spelling is its own input.
        return value.split(" / ").map(decode_escapes).collect();
    }
    vec![decode_escapes(value)]
}

fn decode_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => out.push_str(&format!("\\u{hex}")),
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Polls `check` until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
