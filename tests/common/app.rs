//! The real natter as a test runs it: on `127.0.0.1:0` (or a given port) over a `TestDb`, with
//! development sign-in and the fake OIDC provider configured, stopped as SIGTERM would.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Once},
    time::Duration,
};

use natter::{State, config::Config};
use tokio::{sync::oneshot, task::JoinHandle};

use super::{
    browser::Browser,
    db::{Backend, TestDb},
    oidc::{self, FakeProvider},
};

/// natter's logs in the test output, when `NATTER_TEST_LOG` (an `EnvFilter`) asks for them.
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
            ("NATTER_FILES", db.files_dir().display().to_string()),
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

    /// Commits `n` messages by `author` in room `code` straight through the store's writer,
    /// 500 at a time (they share its batches, as concurrent posts do): thousands in seconds,
    /// where forms would take minutes. The `i`th (from 0) says `body(i)`; seqs follow commit
    /// order, not `i`.
    pub async fn fill(
        &self,
        code: &str,
        author: &str,
        n: usize,
        body: impl Fn(usize) -> natter::domain::MessageBody,
    ) {
        use natter::{domain::RoomCode, store};
        let store = &self.state.store;
        let room = store
            .room_by_code(RoomCode::parse(code).expect("a room code"))
            .await
            .expect("read the room")
            .expect("the room exists");
        let members = store.members(room.id).await.expect("read members");
        let user_id = members
            .iter()
            .find(|m| m.username == author)
            .expect("the author is a member")
            .user_id;
        let mut sent = 0;
        while sent < n {
            let batch = (sent..n.min(sent + 500)).map(|i| {
                store.post_message(store::NewPost {
                    room_id: room.id,
                    user_id,
                    author: author.into(),
                    body: body(i),
                    client_id: None,
                    attachments: Vec::new(),
                })
            });
            for outcome in futures_util::future::join_all(batch).await {
                assert!(
                    matches!(outcome, Ok(store::PostOutcome::Posted(_))),
                    "{outcome:?}"
                );
            }
            sent = n.min(sent + 500);
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
