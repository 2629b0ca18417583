//! natter: real-time group chat for the browser.
//!
//! `serve` runs the whole thing; `build` and `app` give tests the exact same application on a
//! port of their choosing.

pub mod actions;
pub mod api;
pub mod assets;
pub mod auth;
pub mod chat;
pub mod config;
pub mod domain;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod refusal;
pub mod store;
pub mod views;
pub mod web;

use std::{sync::Arc, time::Duration};

use poem::{
    EndpointExt, Server,
    listener::{Acceptor, TcpAcceptor},
    web::{LocalAddr, RemoteAddr},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::oidc::Provider,
    chat::Chat,
    config::Config,
    limits::Limiter,
    store::{Backend, Store},
};

/// Everything a request handler may need, shared by all of them. Passed explicitly (poem
/// `Data`), never global.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    /// The OpenID Connect provider, when an OAuth client is configured.
    pub provider: Option<Provider>,
    pub chat: Chat,
    /// The newest page of each room read lately, rendered (room pages are read far more often
    /// than rooms change).
    pub pages: views::NewestPages,
    pub limits: Limiters,
    pub metrics: Arc<metrics::Metrics>,
    /// Cancelled when the server begins shutting down (draining): sockets close with 1012,
    /// `/healthz` fails and no new socket is accepted, while requests are still served.
    pub shutdown: CancellationToken,
    /// Cancelled once the server has finished its in-flight requests: stops the background
    /// tasks (publisher, poll, listener, heartbeat), which posts taken while draining still
    /// need (their NOTIFY goes out through the publisher).
    pub background: CancellationToken,
    /// Tracks socket tasks so shutdown can wait for them to say goodbye.
    pub tasks: TaskTracker,
}

/// The rate limiters, one per budget.
pub struct Limiters {
    pub posts: Limiter<i64>,
    pub rooms: Limiter<i64>,
    pub join_fails: Limiter<i64>,
    pub sign_ins: Limiter<std::net::IpAddr>,
}

pub type State = Arc<AppState>;

/// Connects to the database, applies migrations and assembles the shared state.
pub async fn build(config: Config) -> Result<State, String> {
    // SQLite reads run on one thread per connection: more of them than cores only adds thread
    // switches (measured: 8 connections on one core cost a third of the server's CPU).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    let pool_size = config
        .db_pool
        .unwrap_or(match config.database_url.is_sqlite() {
            true => (2 * cores).clamp(2, 8),
            false => 16,
        });
    let (store, commits) = Store::connect(config.database_url.expose(), pool_size)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", config.database_url))?;
    let provider = match &config.oauth {
        Some(oauth) => Some(Provider::new(oauth, &config.redirect_url())?),
        None => None,
    };
    let limits = Limiters {
        posts: Limiter::new(config.limits.posts),
        rooms: Limiter::new(config.limits.rooms),
        join_fails: Limiter::new(config.limits.join_fails),
        sign_ins: Limiter::new(config.limits.sign_ins),
    };
    let background = CancellationToken::new();
    let metrics = Arc::new(metrics::Metrics::default());
    let chat = Chat::start(
        store.clone(),
        commits,
        config.hub_capacity,
        metrics.clone(),
        background.clone(),
    )
    .await;
    Ok(Arc::new(AppState {
        config,
        store,
        provider,
        chat,
        pages: Default::default(),
        limits,
        metrics,
        shutdown: CancellationToken::new(),
        background,
        tasks: TaskTracker::new(),
    }))
}

/// The whole HTTP application over `state`.
pub fn app(state: State) -> impl poem::Endpoint + 'static {
    web::routes().data(state.clone()).around(move |ep, req| {
        let state = state.clone();
        async move { web::middleware::around(&state, ep, req).await }
    })
}

/// Everything after SIGTERM fits in this: the drain, in-flight requests, sockets' goodbyes and
/// closing the database (the issue promises an exit within 10 s).
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(10);
/// Of the budget: for sockets to finish their close handshake after the last request.
const SOCKETS_GRACE: Duration = Duration::from_secs(1);
/// Of the budget: for retiring this instance and closing the database pools.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs natter until SIGINT/SIGTERM, then shuts down gracefully: stop accepting, close sockets
/// with 1012, finish in-flight requests, exit within 10 s.
pub async fn serve(config: Config) -> Result<(), String> {
    let bind = config.bind;
    let state = build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    run(state, listener, shutdown_signal()).await
}

/// Serves `state` on `listener` until `stop` completes.
pub async fn run(
    state: State,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let acceptor = TcpAcceptor::from_tokio(listener).map_err(|e| format!("cannot listen: {e}"))?;
    if state.store.backend() == Backend::Sqlite {
        tracing::info!(
            "database is SQLite: run a single natter instance on it (use PostgreSQL for several)"
        );
    }
    if state.config.dev_login {
        tracing::warn!(
            "development sign-in is ON: anyone who can reach {} can sign in as anyone",
            state.config.public_origin()
        );
    }
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let shutdown = state.shutdown.clone();
    let drain = state.config.drain;
    // poem's timeout for in-flight requests starts when the drain ends: it gets what the drain
    // and the steps after it leave of the budget (at least 3 s: the drain is at most 5 s).
    let requests = SHUTDOWN_BUDGET
        .saturating_sub(drain)
        .saturating_sub(SOCKETS_GRACE + CLOSE_GRACE);
    let server_stop = async move {
        stop.await;
        tracing::info!(
            ?drain,
            "shutting down: closing sockets with 1012, draining, finishing requests"
        );
        shutdown.cancel();
        // Keep answering while the proxy's health check notices (/healthz now fails), so no
        // request is sent to a closed port.
        tokio::time::sleep(drain).await;
    };
    let result = Server::new_with_acceptor(NoDelay(acceptor))
        .name("natter")
        .run_with_graceful_shutdown(app(state.clone()), server_stop, Some(requests))
        .await;
    // Sockets were told to close when `shutdown` was cancelled; give them a moment to finish.
    state.tasks.close();
    let _ = tokio::time::timeout(SOCKETS_GRACE, state.tasks.wait()).await;
    // No request is left to post anything: now the publisher, listener and heartbeat stop.
    state.background.cancel();
    housekeeping.abort();
    let closed = tokio::time::timeout(CLOSE_GRACE, async {
        state.chat.retire().await;
        state.store.close().await;
    })
    .await;
    if closed.is_err() {
        tracing::warn!("the database did not close in time; exiting anyway");
    }
    result.map_err(|e| format!("server error: {e}"))
}

/// Accepts connections with Nagle's algorithm off (a live frame must leave at once, not wait
/// for an ACK), and rides out accept errors such as running out of file descriptors instead of
/// stopping the server.
struct NoDelay(TcpAcceptor);

impl Acceptor for NoDelay {
    type Io = tokio::net::TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            match self.0.accept().await {
                Ok(accepted) => {
                    let _ = accepted.0.set_nodelay(true);
                    return Ok(accepted);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Periodic cleanups: expired sessions, idle rate-limit entries.
async fn housekeeping(state: State) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        if let Err(e) = state.store.purge_expired(store::now_ms()).await {
            tracing::warn!(error = %e, "could not purge expired sessions");
        }
        state.limits.posts.sweep();
        state.limits.rooms.sweep();
        state.limits.join_fails.sweep();
        state.limits.sign_ins.sweep();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn build_on(url: &str) -> Result<State, String> {
        let env = [("NATTER_DATABASE_URL".to_string(), url.to_string())].into();
        build(Config::from_sources(&env, &[])?).await
    }

    #[tokio::test]
    async fn an_unreachable_database_is_reported_as_what_happened() {
        let Err(e) = build_on("postgres://natter:hunter2@127.0.0.1:1/natter").await else {
            panic!("nothing listens on port 1");
        };
        assert!(e.contains("refused"), "{e}");
        assert!(!e.contains("timed out") && !e.contains("hunter2"), "{e}");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fine = format!("sqlite://{}/natter.db", dir.path().display());
        assert!(build_on(&fine).await.is_ok());
        let Err(e) = build_on("sqlite:///no/such/dir/natter.db").await else {
            panic!("the directory does not exist");
        };
        assert!(
            e.contains("the directory /no/such/dir does not exist"),
            "{e}"
        );
    }
}
