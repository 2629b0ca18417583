//! natter: real-time group chat for the browser.
//!
//! `serve` runs the whole thing; `build` and `app` give tests the exact same application on a
//! port of their choosing.
//!
//! # The map
//!
//! From the bottom up; each module may call those above it in this list, never those below.
//!
//! - **`domain`**: validated input (`Username`, `RoomCode`, `MessageBody`, …), each with a
//!   `parse` that says why it refuses, and what a message's text holds (`domain::mention`:
//!   links and mentions, for the store and the views alike). Calls nothing of natter's.
//! - **`config`**: every setting, from `NATTER_*` variables and flags (clap), checked once at
//!   start; secrets are wrapped so they never print.
//! - **`store`**: all SQL, one API over SQLite and PostgreSQL: users, sessions, rooms,
//!   members, messages, tokens, shared presence. Posts go through one writer task that
//!   commits them in batches and hands each committed batch on. No HTML here.
//! - **`limits`**, **`metrics`**: the in-memory rate limiters; the `/metrics` counters.
//! - **`refusal`**: why natter says no. Each `Refusal` knows its status, `Retry-After` and
//!   words; everything below refuses with it.
//! - **`assets`**, **`views`**: the embedded static files; everything people see, as one maud
//!   function per thing on screen (pages, fragments, live frames), taking data, never a
//!   request. The rendered newest page of each room is cached beside them.
//! - **`error`**: the web's error type, a `Refusal` plus the typed form to give back.
//! - **`chat`**: live delivery on this instance: one hub per active room (`hub`), the one
//!   publisher task that renders committed messages once and broadcasts the shared bytes
//!   (`publisher`), presence (`presence`), closing sockets on sign-out or leave (`kicks`),
//!   and with PostgreSQL the notifications between instances (`bus`). Calls `store` and
//!   `views`, never `web`.
//! - **`push`**: Web Push: the VAPID key, and the bounded queue and worker that push committed
//!   messages to the browsers of people who are away (`chat` hands it each batch).
//! - **`auth`**: sessions behind a random cookie, CSRF tokens, OIDC sign-in, client
//!   addresses, and the extractors `Session` and `CurrentUser`.
//! - **`actions`**: what people do, whichever way they ask (create, join, post, leave), with
//!   the limits and the one room access check (`room_for`, through the person's membership).
//!   Pages and the API both call these, so a rule cannot differ between them.
//! - **`web`**: the HTTP application: every route in `web::routes`, one module per area, the
//!   extractors for forms and rooms (`web::extract`), the live socket (`web::live`), and the
//!   middleware around every request (request id, origin check, error pages, headers).
//! - **`api`**: the JSON API under `/api/v1` (poem-openapi), bearer tokens only, every error
//!   problem+json.
//! - **`server`**: accepts connections and serves the application on them (hyper), closing
//!   those that send too slowly or idle too long.
//!
//! # One message, from the form to every browser
//!
//! 1. The composer posts `body`, `client_id` and `csrf` to `POST /rooms/{code}/messages`
//!    (htmx with JavaScript, a plain form without). `web::middleware` gives the request an id
//!    and checks its `Origin`.
//! 2. `web::room::post_message` takes a CSRF-checked `UserForm` and the room through
//!    `web::InRoom` (its id, remembered by code), and calls `actions::post`, which validates
//!    the body and spends the person's post budget.
//! 3. `store`'s writer task puts the post in the next batch: in one transaction per batch,
//!    each post takes its room's next `seq` and is inserted only if its author is a member,
//!    so commit order is `seq` order. One fsync answers the whole batch.
//! 4. The poster gets `303 /rooms/{code}#msg-{seq}` (htmx: a fresh `client_id`); the
//!    message itself reaches them like everyone else's, through their socket.
//! 5. The committed batch goes to `chat`'s publisher, which renders each message once
//!    (`views::messages::messages_append`) into shared bytes and broadcasts them on the
//!    room's hub. With PostgreSQL it also notifies the other instances after the commit;
//!    their publishers read the new rows by cursor and broadcast them on their own hubs.
//! 6. Each socket's task (`web::live::socket`) takes the frame, skips what it already sent,
//!    reads any gap from the store first, joins the messages waiting behind it into one
//!    frame, and writes it. In the browser, htmx's WebSocket extension appends it to
//!    `#messages` and natter's JavaScript shows local times and groups name lines.
//!
//! An edit or a delete (`actions::edit`, `actions::delete`) takes the same path as a post
//! through the writer: it takes the room's next `seq` (the sequence numbers room *events*),
//! and its frame replaces the message's content in place and moves the page's
//! `#room-cursor`. Gaps and resumes read "posted or changed after seq N"
//! (`Store::events_between`), so a page that was away ends exactly as a fresh one.

#![warn(missing_docs)]

pub mod actions;
pub mod api;
pub mod assets;
pub mod auth;
pub mod chat;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod limits;
pub mod metrics;
pub mod push;
pub mod refusal;
pub mod server;
pub mod store;
pub mod views;
pub mod web;

use std::{sync::Arc, time::Duration};

use poem::EndpointExt;
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
    /// The settings natter started with.
    pub config: Config,
    /// All SQL: the one way to the database.
    pub store: Store,
    /// The OpenID Connect provider, when an OAuth client is configured.
    pub provider: Option<Provider>,
    /// The live side: hubs, presence, kicks.
    pub chat: Chat,
    /// Attachments' storage and limits.
    pub files: files::Files,
    /// The newest page of each room read lately, rendered (room pages are read far more often
    /// than rooms change).
    pub pages: Arc<views::NewestPages>,
    /// The rate limiters, one per budget.
    pub limits: Limiters,
    /// The counters `/metrics` shows.
    pub metrics: Arc<metrics::Metrics>,
    /// Web Push: the VAPID key and the queue of messages to push.
    pub push: push::Push,
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
    /// Posts per person.
    pub posts: Limiter<i64>,
    /// Rooms created per person.
    pub rooms: Limiter<i64>,
    /// Wrong room codes per person.
    pub join_fails: Limiter<i64>,
    /// Joins and leaves per person.
    pub membership: Limiter<i64>,
    /// Sign-in attempts per client address (an IPv6 client's /64: `auth::limit_key`).
    pub sign_ins: Limiter<std::net::IpAddr>,
    /// Searches per person.
    pub searches: Limiter<i64>,
    /// Exports of one's data per person (`web::account_care::EXPORTS`).
    pub exports: Limiter<i64>,
    /// Read-mark writes per (person, room): `actions::READ_MARKS`.
    pub reads: Limiter<(i64, i64)>,
    /// Open live sockets per person.
    pub sockets: limits::SocketCap,
    /// Streamed rooms (`/rooms/{code}/live`) per session: a browser's HTTP/1.1 connections to
    /// one host are six, and a page needs some for itself.
    pub streams: limits::SocketCap<Vec<u8>>,
}

/// The shared state as handlers hold it.
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
    let files = files::Files::open(&config.files).map_err(|e| {
        format!(
            "cannot open the file storage {}: {e}",
            config.files.location
        )
    })?;
    files.spawn_sweeper(store.clone());
    tracing::info!(storage = %files.storage().describe(), "attachments");
    let provider = match &config.oauth {
        Some(oauth) => Some(Provider::new(oauth, &config.redirect_url())?),
        None => None,
    };
    let limits = Limiters {
        posts: Limiter::new(config.limits.posts),
        rooms: Limiter::new(config.limits.rooms),
        join_fails: Limiter::new(config.limits.join_fails),
        membership: Limiter::new(config.limits.membership),
        sign_ins: Limiter::new(config.limits.sign_ins),
        searches: Limiter::new(config.limits.searches),
        exports: Limiter::new(web::account_care::EXPORTS),
        reads: Limiter::new(actions::READ_MARKS),
        sockets: limits::SocketCap::new(config.limits.sockets_per_user),
        streams: limits::SocketCap::new(web::live::STREAMS_PER_SESSION),
    };
    let background = CancellationToken::new();
    let metrics = Arc::new(metrics::Metrics::default());
    let chat = Chat::start(
        store.clone(),
        commits,
        config.hub_capacity,
        config.bus.as_deref(),
        metrics.clone(),
        background.clone(),
    )
    .await?;
    let push = push::Push::start(
        store.clone(),
        chat.clone(),
        &config.push,
        metrics.clone(),
        background.clone(),
    )
    .await?;
    Ok(Arc::new(AppState {
        pages: chat.pages(),
        push,
        config,
        store,
        provider,
        chat,
        files,
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
    raise_open_file_limit();
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
    let timeouts = state.config.timeouts;
    server::serve(
        listener,
        app(state.clone()),
        timeouts,
        server_stop,
        requests,
    )
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
    Ok(())
}

/// Every connection and socket is a file descriptor: raise the soft limit to the hard one
/// (often 1,024 → 524,288 under systemd), and say what it is.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
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
        state.limits.searches.sweep();
        state.limits.exports.sweep();
        state.limits.membership.sweep();
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
