//! All SQL lives here. One `Store` API over two backends: SQLite (embedded, one instance) and
//! PostgreSQL (one or many instances). Where the SQL is identical it is written once and compiled
//! for both pools by the `on!` macros; where it differs it is written twice, side by side.
//!
//! Queries are runtime-checked (`sqlx::query_as`), not compile-time checked: a `query!` macro is
//! tied to one database type, and natter must speak two. Every query runs in the test suite on
//! both backends instead.
//!
//! `LIMIT CAST($n AS BIGINT)`, never `LIMIT $n`: SQLite (3.47 and later) plans a bare bound
//! limit by its value and then re-prepares the statement every time the value is bound, i.e.
//! on every execution (perf showed the room page parsing SQL on each request).

mod account;
mod direct;
mod files;
mod mentions;
mod presence;
mod push;
mod rooms;
mod search;
mod settings;
mod tokens;
mod unread;
mod users;
mod writer;

use std::{str::FromStr, time::Duration};

use sqlx::{
    ConnectOptions, Connection, PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use thiserror::Error;
use tokio::sync::mpsc;

pub use account::{
    ExportMessage, ExportRoom, GONE_NAME, RENAME_GAP_MS, Rename, SessionInfo, USER_AGENT_MAX,
};
pub use direct::{DirectSummary, OpenedDirect, Person, direct_pair};
pub(crate) use files::attachments_column;
pub use files::{Attachment, Attachments, ImageSize, NewAttachment, StoredFile};
pub use mentions::{MENTION_COUNT_CAP, Mentions, NotifyColumn, RoomMentions, RoomNotify};
pub use presence::INSTANCE_TTL_MS;
pub use push::{PushRecipient, PushSubscription};
pub use rooms::{
    JoinOutcome, Marks, Member, Message, MessagePage, Room, RoomLink, RoomOverview, RoomSummary,
    UNREAD_CAP,
};
pub use search::{Cursor as SearchCursor, SearchHit};
pub use settings::{Action, EditOutcome, Heading, RoomChange, RoomEdit, What};
pub use tokens::{ApiToken, TokenOwner};
pub use users::{PendingLogin, SessionRecord, User};
pub use writer::{ChangeOutcome, Committed, MessageChange, NewPost, PostOutcome, Posted};

/// Which database natter runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file: one instance.
    Sqlite,
    /// PostgreSQL: one or many instances.
    Postgres,
}

/// A database failure. Shown to people only as "something went wrong" with a request id.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sqlx failed (the connection, or the statement).
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The post writer task ended (shutting down).
    #[error("the post writer has stopped")]
    WriterGone,
    /// The transaction holding this post failed as a whole.
    #[error("post batch failed: {0}")]
    Batch(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// True when a UNIQUE constraint refused the write (e.g. a username someone else took).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// What the store's methods return.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
enum Db {
    /// SQLite allows one writer at a time. All writes go through `write` (one connection), so
    /// natter's own writers queue in the pool instead of failing with `SQLITE_BUSY`; reads use
    /// `read` concurrently (WAL).
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool for reads; the body is compiled once
/// per backend, so the same SQL text serves both.
macro_rules! on_read {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite { read: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Like `on_read!`, with the pool that may write.
macro_rules! on_write {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite { write: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

pub(crate) use {on_read, on_write};

/// The handle every part of natter uses to reach the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    writer: writer::PostWriter,
    sessions: std::sync::Arc<users::SessionCache>,
    room_ids: std::sync::Arc<rooms::RoomIds>,
}

impl Store {
    /// Opens the database named by `url` (creating a SQLite file if missing), applies the
    /// migrations and starts the post writer. `pool_size` bounds the connections it may open.
    /// The receiver yields every batch of posts the writer commits, in commit order: what the
    /// live side publishes.
    pub async fn connect(url: &str, pool_size: u32) -> Result<(Self, mpsc::Receiver<Committed>)> {
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            // SQLite creates the file but not its directory, and then says only "unable to
            // open database file".
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
                && !dir.is_dir()
            {
                return Err(unreachable(
                    std::io::ErrorKind::NotFound,
                    format!("the directory {} does not exist", dir.display()),
                ));
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // A post acknowledged is a post on disk; the writer batches posts so this
                // costs one fsync per batch, not per post.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                // Checkpoints run beside the writer (see `writer::checkpoints`), not inside
                // whichever commit crosses the WAL's size: that commit, and every post queued
                // behind it, waited for the copy.
                .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
                .await?;
            sqlx::migrate!("migrations/sqlite").run(&write).await?;
            let read = SqlitePoolOptions::new()
                .max_connections(pool_size.max(1))
                .connect_with(options)
                .await?;
            Db::Sqlite { read, write }
        } else {
            let options = PgConnectOptions::from_str(url)?.application_name("natter");
            // A pool that cannot connect says only that it timed out waiting for a connection;
            // one connection first says why ("connection refused", "password authentication
            // failed").
            match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
                Ok(connection) => connection?.close().await?,
                Err(_) => {
                    return Err(unreachable(
                        std::io::ErrorKind::TimedOut,
                        "no answer within 10 s".into(),
                    ));
                }
            }
            let pool = PgPoolOptions::new()
                .max_connections(pool_size.max(2))
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Db::Postgres(pool)
        };
        let (committed, commits) = mpsc::channel(1024);
        let writer = writer::PostWriter::start(db.clone(), committed);
        let sessions = Default::default();
        Ok((
            Self {
                db,
                writer,
                sessions,
                room_ids: Default::default(),
            },
            commits,
        ))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, for the cross-instance listener.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite { .. } => None,
        }
    }

    /// One round trip to the database: what `/readyz` reports.
    pub async fn ping(&self) -> Result<()> {
        on_read!(&self.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes the pools (after the server has finished its in-flight requests).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// A database that cannot be reached, for a reason natter found itself.
fn unreachable(kind: std::io::ErrorKind, why: String) -> StoreError {
    StoreError::Sqlx(sqlx::Error::Io(std::io::Error::new(kind, why)))
}

/// Milliseconds since the Unix epoch: how every time is stored (the same type on both backends).
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
