//! The post writer: one task that commits posts in batches.
//!
//! Every post takes the next number of its room's sequence inside the posting transaction
//! (`UPDATE rooms SET last_seq = last_seq + 1 … RETURNING last_seq`). The room row stays locked
//! until commit, so commit order equals `seq` order within a room, on both backends and across
//! instances: once seq N is committed, everything below N is too. Sockets rely on that to fill
//! gaps from the store.
//!
//! Batching: SQLite runs with `synchronous=FULL`, so each commit is an fsync. Posts that arrive
//! while a batch commits wait in the channel and go together into the next transaction (one
//! commit), so a thousand concurrent posters cost a handful of fsyncs.
//!
//! A batch takes its rooms' row locks in room-id order (posts are sorted by room, stably, so
//! each room keeps its arrival order): two instances batching the same rooms then never wait
//! on each other in a cycle. A deadlock or serialization failure reported anyway (another
//! statement locking rooms in its own order) runs the batch again.
//!
//! One post failing on its own (a constraint, a trigger) answers that poster with the error;
//! the others in its batch still commit. SQLite: a savepoint per post. PostgreSQL: the batch
//! runs again without the failing post (see `commit_postgres` for why not savepoints there).

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use super::{
    Attachments, Db, Mentions, Message, NewAttachment, Result, StoreError, attachments_column,
    files::{self, insert_attachments},
    mentions,
    mentions::mentions_column,
    now_ms,
    settings::{EditOutcome, RoomEdit, edit_room},
};
use crate::domain::MessageBody;

/// The most posts committed in one transaction.
const MAX_BATCH: usize = 256;
/// How often a batch runs again after a deadlock or serialization failure before its posters
/// are told it failed.
const MAX_RETRIES: u32 = 5;

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewPost {
    /// The room.
    pub room_id: i64,
    /// The author.
    pub user_id: i64,
    /// The poster's username, copied into the returned `Message` for rendering.
    pub author: String,
    /// The text, validated.
    pub body: MessageBody,
    /// The composer's random id: the same id posts once.
    pub client_id: Option<String>,
    /// Its files, whose bytes are stored already (rows are written with the message).
    pub attachments: Vec<NewAttachment>,
}

/// A committed post.
pub type Posted = Message;

/// A change to a stored message: an edit by its author, or a delete by its author or the
/// room's creator. It takes the room's next seq, like a post (DESIGN.md §9b).
#[derive(Debug, Clone)]
pub struct MessageChange {
    /// The room.
    pub room_id: i64,
    /// The message's seq.
    pub seq: i64,
    /// Who changes it.
    pub user_id: i64,
    /// The new text; `None` deletes the message (its text is removed from the database).
    pub body: Option<MessageBody>,
    /// A delete of its author's own message wherever it is, member or not: their account is
    /// being deleted with their messages (rooms they left keep none either).
    pub erase: bool,
}

/// What became of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per change, moved once to its requester: boxing would only add an allocation"
)]
pub enum ChangeOutcome {
    /// Changed: the message as it is now, its `event` the change's seq, and the storage keys
    /// of the files a delete took away (their bytes are to go now that it committed).
    Changed(Message, Vec<String>),
    /// An edit to the text the message already has: nothing to do.
    Unchanged,
    /// The message is deleted (an edit cannot bring it back; a second delete has nothing to do).
    Deleted,
    /// No such message, not theirs to change, or they are not a member: the same answer for
    /// all, so that it tells nothing.
    NotFound,
}

/// What the writer is asked to do.
#[derive(Debug, Clone)]
enum Write {
    Post(NewPost),
    Change(MessageChange),
    Room(RoomEdit),
}

impl Write {
    fn room_id(&self) -> i64 {
        match self {
            Write::Post(post) => post.room_id,
            Write::Change(change) => change.room_id,
            Write::Room(edit) => edit.room_id,
        }
    }
}

/// What became of a write.
#[derive(Debug)]
enum Outcome {
    Post(PostOutcome),
    Change(ChangeOutcome),
    Room(EditOutcome),
}

impl Outcome {
    /// What readers must be shown: the message posted or changed, the system lines written.
    fn published(&self) -> &[Message] {
        match self {
            Outcome::Post(PostOutcome::Posted(m))
            | Outcome::Change(ChangeOutcome::Changed(m, _)) => std::slice::from_ref(m),
            Outcome::Room(EditOutcome::Changed(lines)) => lines,
            _ => &[],
        }
    }
}

/// Posts one transaction committed, in seq order within each room, and when it committed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// When the batch committed.
    pub at: std::time::Instant,
    /// How long its transaction took, from its first statement to the end of the commit.
    pub took: std::time::Duration,
    /// Its messages, in commit (and seq) order.
    pub messages: Vec<Message>,
}

/// What became of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// Stored, with its seq.
    Posted(Posted),
    /// The same `client_id` was posted before (double click, resubmitted form): this is its seq.
    AlreadyPosted(i64),
    /// The poster is not (or no longer) a member of the room.
    NotMember,
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Outcome>>,
    /// The poster's request span: what the writer logs about this post carries its request id.
    span: tracing::Span,
}

/// Handle to the writer task.
#[derive(Clone, Debug)]
pub(super) struct PostWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("room_id", &self.write.room_id())
            .finish()
    }
}

impl PostWriter {
    /// Starts the writer task. Each committed batch's messages go to `committed` in seq order.
    pub(super) fn start(db: Db, committed: mpsc::Sender<Committed>) -> Self {
        // Bounded: when the database falls behind, posters wait here instead of piling up.
        let (jobs, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        if let Db::Sqlite { read, .. } = &db {
            tokio::spawn(checkpoints(read.clone(), jobs.downgrade()));
        }
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let started = std::time::Instant::now();
                let messages = commit_batch(&db, std::mem::take(&mut batch)).await;
                // Published only after the commit: nobody sees a message that could vanish.
                let at = std::time::Instant::now();
                let took = at - started;
                if !messages.is_empty()
                    && (committed.send(Committed { at, took, messages }).await).is_err()
                {
                    tracing::debug!("nobody publishes committed posts any more");
                }
            }
        });
        Self { jobs }
    }

    async fn submit(&self, write: Write) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        self.jobs
            .send(Job { write, reply, span })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// How often the SQLite WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the SQLite WAL from a reading connection while the writer goes on writing
/// (`PASSIVE` never blocks it), until the writer is gone. With SQLite's own automatic
/// checkpoint, the commit that crossed 1,000 pages did the copy and its fsyncs itself, and
/// every post behind it waited: fan-out's p99 at 20,000 deliveries/s was 22–26 ms with it and
/// 8–13 ms without.
async fn checkpoints(read: sqlx::SqlitePool, writer: mpsc::WeakSender<Job>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if writer.upgrade().is_none() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&read)
            .await
        {
            tracing::debug!(error = %e, "WAL checkpoint did not run");
        }
    }
}

/// Commits the jobs in one transaction (room by room), answers each poster, and returns what
/// was posted or changed, in seq order within each room.
async fn commit_batch(db: &Db, mut jobs: Vec<Job>) -> Vec<Message> {
    // Row locks in one order on every instance. A stable sort: within a room, posts keep the
    // order they arrived in. Each reply travels with its job, so it reaches its own poster.
    jobs.sort_by_key(|job| job.write.room_id());
    let now = now_ms();
    let outcomes = match db {
        Db::Sqlite { write, .. } => commit_sqlite(write, &jobs, now).await,
        Db::Postgres(pool) => commit_postgres(pool, &jobs, now).await,
    };
    let mut posted = Vec::new();
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        match &outcome {
            Ok(done) => posted.extend(done.published().iter().cloned()),
            // Logged in the poster's request span, so the line carries its request id.
            Err(e) => job.span.in_scope(|| match &job.write {
                Write::Post(post) => {
                    tracing::error!(error = %e, room_id = post.room_id, "post not stored")
                }
                Write::Change(change) => {
                    tracing::error!(error = %e, room_id = change.room_id, "change not stored")
                }
                Write::Room(edit) if e.is_unique_violation() => {
                    tracing::info!(room_id = edit.room_id, "new room code taken: drawing again")
                }
                Write::Room(edit) => {
                    tracing::error!(error = %e, room_id = edit.room_id, "room change not stored")
                }
            }),
        }
        let _ = job.reply.send(outcome);
    }
    posted
}

/// The same failure for every post of a batch.
fn all_failed(e: StoreError, n: usize) -> Vec<Result<Outcome>> {
    let shared = Arc::new(e);
    (0..n)
        .map(|_| Err(StoreError::Batch(shared.clone())))
        .collect()
}

/// The posted message, as the writer returns it.
fn posted(post: &NewPost, seq: i64, now: i64, mentions: Mentions) -> PostOutcome {
    PostOutcome::Posted(Message {
        room_id: post.room_id,
        seq,
        user_id: post.user_id,
        author: post.author.clone(),
        body: post.body.as_str().to_string(),
        created_at: now,
        edited_at: None,
        deleted_at: None,
        event: seq,
        action: None,
        mentions,
        attachments: Attachments(post.attachments.iter().map(|a| a.shown.clone()).collect()),
    })
}

const EARLIER_POST: &str =
    "SELECT seq FROM messages WHERE room_id = $1 AND user_id = $2 AND client_id = $3";

/// Run first in each SQLite batch: brings the writer's copy of the schema up to date before
/// anything is prepared. Running a statement checks the schema's version and reads the schema
/// again if another connection changed it (an operator's trigger, say); from here on the batch
/// holds the write lock, so nobody changes it again before the commit.
///
/// Works around an SQLite bug (3.40.1 and the bundled 3.51.3 both have it): with the schema
/// changed by another connection, *preparing* an INSERT into a table with two AFTER INSERT
/// triggers, one of them writing to an FTS5 table not yet opened on this connection (the first
/// post since natter started, or since migrations that ALTER a table), fails with "no such
/// table" (here `messages`): opening the FTS5 table runs FTS5's own statements, which find the
/// schema changed and discard it under the INSERT being prepared. Reproduced without natter:
/// `CREATE TABLE t(x); CREATE TABLE g(y); CREATE TRIGGER t1 AFTER INSERT ON t BEGIN UPDATE g
/// SET y = 1; END; CREATE VIRTUAL TABLE f USING fts5(body); CREATE TRIGGER ti AFTER INSERT ON
/// t BEGIN INSERT INTO f(body) VALUES (new.x); END;`, then a new connection A, a trigger on `t`
/// created by connection B, and `INSERT INTO t VALUES (1)` prepared on A. Once a statement has
/// run on A after B's change, it prepares.
const SCHEMA_CURRENT: &str = "SELECT 1 FROM sqlite_schema LIMIT 1";

/// SQLite: `BEGIN IMMEDIATE` takes the write lock up front (a deferred transaction that reads
/// first could meet `SQLITE_BUSY` when it upgrades), then each post runs under its own
/// savepoint: a post that fails is rolled back alone and answered with its error, the rest
/// commit together. This task is the only writer and holds the database for the whole
/// transaction, so reading `last_seq + 1` and writing it back cannot interleave with anyone.
async fn commit_sqlite(pool: &sqlx::SqlitePool, jobs: &[Job], now: i64) -> Vec<Result<Outcome>> {
    let run = async {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(SCHEMA_CURRENT).execute(&mut *tx).await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            sqlx::query("SAVEPOINT post").execute(&mut *tx).await?;
            let done = match &job.write {
                Write::Post(post) => sqlite_post(&mut tx, post, now).await.map(Outcome::Post),
                Write::Change(change) => sqlite_change(&mut tx, change, now)
                    .await
                    .map(Outcome::Change),
                Write::Room(edit) => sqlite_edit(&mut tx, edit, now).await.map(Outcome::Room),
            };
            match done {
                Ok(outcome) => {
                    sqlx::query("RELEASE post").execute(&mut *tx).await?;
                    outcomes.push(Ok(outcome));
                }
                Err(e) => {
                    // Fails too when SQLite rolled the whole transaction back by itself (a
                    // full disk, an I/O error): then the batch fails as a whole.
                    sqlx::query("ROLLBACK TO post").execute(&mut *tx).await?;
                    sqlx::query("RELEASE post").execute(&mut *tx).await?;
                    outcomes.push(Err(StoreError::from(e)));
                }
            }
        }
        index_posts(&mut tx, &outcomes).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(outcomes)
    };
    match run.await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, posts = jobs.len(), "post batch failed");
            all_failed(e.into(), jobs.len())
        }
    }
}

/// Adds a batch's posts to the search index (SQLite), all in one statement before the commit.
/// What is searchable is what an edit keeps searchable (`messages_fts_update`, migration
/// 0008): text people wrote that nobody deleted. (An edit's trigger indexes the message
/// itself; an edit can hardly share its post's batch, its seq being known only after the
/// commit, but one that did is not indexed twice.)
///
/// Not a trigger per post any more (migration 0012): FTS5 writes the words it holds in memory
/// to disk as a new segment whenever a savepoint opens, and each statement in a transaction
/// opens one, so the trigger wrote a segment per post and merged them again and again. SQLite's
/// work per post (callgrind, batches of 32 posts to 100 rooms): 204k instructions with the
/// trigger, 90k with this. The rowids go in rising order (posts are sorted by room, seqs rise
/// within one), or FTS5 would write a segment each time one went down.
const INDEX_POSTS: &str = "INSERT INTO messages_fts (rowid, body) \
     SELECT j.value, m.body FROM json_each($1) j CROSS JOIN messages m \
      WHERE m.room_id = (j.value >> 32) AND m.seq = (j.value & 4294967295) \
        AND m.kind = 'text' AND m.deleted_at IS NULL AND m.body <> '' AND m.edited_at IS NULL";

async fn index_posts(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    outcomes: &[Result<Outcome>],
) -> Result<(), sqlx::Error> {
    let keys: Vec<i64> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Ok(Outcome::Post(PostOutcome::Posted(m))) => Some((m.room_id << 32) | m.seq),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let keys = serde_json::to_string(&keys).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(INDEX_POSTS)
        .bind(keys)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One post's two statements (SQLite), and a third when it mentions someone.
async fn sqlite_post(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    post: &NewPost,
    now: i64,
) -> Result<PostOutcome, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar(
        "INSERT INTO messages (room_id, seq, user_id, body, client_id, created_at) \
         SELECT r.id, r.last_seq + 1, $2, $3, $4, $5 FROM rooms r \
         WHERE r.id = $1 AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2) \
         ON CONFLICT DO NOTHING RETURNING seq",
    )
    .bind(post.room_id)
    .bind(post.user_id)
    .bind(post.body.as_str())
    .bind(&post.client_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match seq {
        Some(seq) => {
            sqlx::query("UPDATE rooms SET last_seq = $2, last_activity_at = $3 WHERE id = $1")
                .bind(post.room_id)
                .bind(seq)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            let mentions =
                mentions::insert_sqlite(tx, post.room_id, seq, post.body.as_str()).await?;
            insert_attachments!(&mut **tx, post.room_id, seq, post.attachments, now);
            posted(post, seq, now, mentions)
        }
        // Nothing inserted: the same client_id was posted before, or not a member.
        None => match &post.client_id {
            Some(client_id) => sqlx::query_scalar::<_, i64>(EARLIER_POST)
                .bind(post.room_id)
                .bind(post.user_id)
                .bind(client_id)
                .fetch_optional(&mut **tx)
                .await?
                .map_or(PostOutcome::NotMember, PostOutcome::AlreadyPosted),
            None => PostOutcome::NotMember,
        },
    })
}

/// Why a PostgreSQL attempt at a batch stopped.
enum Stopped {
    /// The post at this index failed on its own.
    Post(usize, sqlx::Error),
    /// The transaction failed as a whole (connection, deadlock, commit).
    Batch(sqlx::Error),
}

/// PostgreSQL: one round trip per post. An error aborts a PostgreSQL transaction, so a post
/// that fails on its own is answered with its error and the batch runs again without it (a
/// rare cost, paid only then). A savepoint per post would cost two more round trips per post
/// on every batch, and each savepoint that writes takes a subtransaction id: past 64 of them
/// in one transaction every other session's snapshots get slower (subtransaction overflow),
/// and batches hold up to 256 posts. Deadlocks and serialization failures run the whole batch
/// again, a few times.
async fn commit_postgres(pool: &sqlx::PgPool, jobs: &[Job], now: i64) -> Vec<Result<Outcome>> {
    let mut outcomes: Vec<Option<Result<Outcome>>> = jobs.iter().map(|_| None).collect();
    let mut retries = 0;
    loop {
        // The posts not answered yet, by index into `jobs`.
        let pending: Vec<usize> = (0..jobs.len()).filter(|&i| outcomes[i].is_none()).collect();
        if pending.is_empty() {
            break;
        }
        let attempt: Vec<&Job> = pending.iter().map(|&i| &jobs[i]).collect();
        match postgres_attempt(pool, &attempt, now).await {
            Ok(done) => {
                for (i, outcome) in pending.into_iter().zip(done) {
                    outcomes[i] = Some(Ok(outcome));
                }
            }
            Err(Stopped::Post(k, e)) => outcomes[pending[k]] = Some(Err(e.into())),
            Err(Stopped::Batch(e)) if retryable(&e) && retries < MAX_RETRIES => {
                retries += 1;
                tracing::warn!(error = %e, posts = pending.len(), retries, "post batch runs again");
                // The transaction that won goes on meanwhile; a little jitter keeps two
                // retrying writers from meeting again.
                let pause = 5 + rand::random::<u64>() % (10 * u64::from(retries));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(Stopped::Batch(e)) => {
                tracing::warn!(error = %e, posts = pending.len(), "post batch failed");
                for (i, failed) in pending.into_iter().zip(all_failed(e.into(), attempt.len())) {
                    outcomes[i] = Some(failed);
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(StoreError::WriterGone)))
        .collect()
}

/// A deadlock (40P01) or serialization failure (40001): running again may well succeed.
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Whether a statement's error is the post's own doing (bad data, a constraint, a trigger)
/// rather than the transaction's or the connection's: SQLSTATE classes 08 (connection), 40
/// (transaction rollback), 53 (resources), 57 (operator intervention), 58 (system) and XX
/// (internal) are not; anything not from the database (I/O, pool) is not either.
fn post_fault(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| !matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58" | "XX")))
}

/// One attempt at committing `jobs` in one PostgreSQL transaction.
async fn postgres_attempt(
    pool: &sqlx::PgPool,
    jobs: &[&Job],
    now: i64,
) -> Result<Vec<Outcome>, Stopped> {
    let mut tx = pool.begin().await.map_err(Stopped::Batch)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let done = match &job.write {
            Write::Post(post) => postgres_post(&mut tx, post, now).await.map(Outcome::Post),
            Write::Change(change) => postgres_change(&mut tx, change, now)
                .await
                .map(Outcome::Change),
            Write::Room(edit) => postgres_edit(&mut tx, edit, now).await.map(Outcome::Room),
        };
        match done {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(if post_fault(&e) {
                    Stopped::Post(i, e)
                } else {
                    Stopped::Batch(e)
                });
            }
        }
    }
    tx.commit().await.map_err(Stopped::Batch)?;
    Ok(outcomes)
}

/// `postgres_post`'s statement: `$mentions` is empty, or the part that stores the post's
/// mentions (the members named by `$6`, the case-folded names) and the column that returns
/// them.
macro_rules! postgres_post_sql {
    ($mentions:literal, $returned:literal) => {
        concat!(
            "WITH earlier AS (SELECT seq FROM messages WHERE room_id = $1 AND user_id = $2 AND client_id = $4), \
             bump AS (UPDATE rooms SET last_seq = last_seq + 1, last_activity_at = $5 \
                      WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM earlier) \
                        AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2) \
                      RETURNING last_seq), \
             ins AS (INSERT INTO messages (room_id, seq, user_id, body, client_id, created_at) \
                     SELECT $1, last_seq, $2, $3, $4, $5 FROM bump \
                     ON CONFLICT DO NOTHING RETURNING seq)",
            $mentions,
            " SELECT (SELECT last_seq FROM bump), (SELECT seq FROM ins), (SELECT seq FROM earlier), ",
            $returned
        )
    };
}

/// A post that mentions nobody (most): as before mentions existed.
const POST: &str = postgres_post_sql!("", "NULL::text");

/// A post that names someone: its mentions are stored by the same statement (one round trip).
const POST_MENTIONING: &str = postgres_post_sql!(
    ", ment AS (INSERT INTO mentions (room_id, seq, user_id) \
               SELECT $1, ins.seq, u.id FROM ins CROSS JOIN users u \
                 JOIN members mb ON mb.room_id = $1 AND mb.user_id = u.id \
                WHERE u.username_key = ANY($6) \
               RETURNING user_id)",
    "(SELECT string_agg(CAST(ment.user_id AS TEXT) || ':' || u.username, ',') \
        FROM ment JOIN users u ON u.id = ment.user_id)"
);

/// One post (PostgreSQL). The UPDATE takes the room row's lock, held until commit, so posts to
/// one room (from any instance) take their seqs in commit order. The statement reports what
/// happened: posted (with whom it mentions), posted before (same client_id), or not a member.
async fn postgres_post(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    post: &NewPost,
    now: i64,
) -> Result<PostOutcome, sqlx::Error> {
    let keys = mentions::mentioned_keys(post.body.as_str());
    let sql = if keys.is_some() {
        POST_MENTIONING
    } else {
        POST
    };
    let mut query = sqlx::query_as(sql)
        .bind(post.room_id)
        .bind(post.user_id)
        .bind(post.body.as_str())
        .bind(&post.client_id)
        .bind(now);
    if let Some(keys) = keys {
        query = query.bind(keys);
    }
    let (bumped, inserted, earlier, mentioned): (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    ) = query.fetch_one(&mut **tx).await?;
    Ok(match (bumped, inserted, earlier) {
        (Some(_), Some(seq), _) => {
            // Files ride a statement of their own, paid only by posts that carry some.
            insert_attachments!(&mut **tx, post.room_id, seq, post.attachments, now);
            posted(post, seq, now, Mentions::from(mentioned))
        }
        (_, _, Some(seq)) => PostOutcome::AlreadyPosted(seq),
        (None, _, None) => PostOutcome::NotMember,
        (Some(_), None, None) => {
            // The same client_id was committed by another instance between our snapshot and
            // the row lock. Give the seq back (we still hold the lock, so nobody took a later
            // one) and answer with the earlier post.
            sqlx::query("UPDATE rooms SET last_seq = last_seq - 1 WHERE id = $1")
                .bind(post.room_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query_scalar::<_, i64>(EARLIER_POST)
                .bind(post.room_id)
                .bind(post.user_id)
                .bind(&post.client_id)
                .fetch_optional(&mut **tx)
                .await?
                .map_or(PostOutcome::NotMember, PostOutcome::AlreadyPosted)
        }
    })
}

/// An edit, for its author, if it changes the text. The new seq is the room's next: the caller
/// holds the room's row (SQLite: the one writer; PostgreSQL: `FOR UPDATE` first).
const EDIT: &str = "UPDATE messages SET body = $4, edited_at = $5, \
     changed_seq = (SELECT last_seq + 1 FROM rooms WHERE id = $1) \
     WHERE room_id = $1 AND seq = $2 AND user_id = $3 AND deleted_at IS NULL AND body <> $4 \
       AND kind = 'text' \
       AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $3) \
     RETURNING changed_seq";

/// A delete, for its author or the room's creator (still a member). The text goes; the row
/// keeps the message's place (and its `client_id`, so a resubmitted post stays answered).
const DELETE: &str = "UPDATE messages SET body = '', deleted_at = $4, \
     changed_seq = (SELECT last_seq + 1 FROM rooms WHERE id = $1) \
     WHERE room_id = $1 AND seq = $2 AND deleted_at IS NULL AND kind = 'text' \
       AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $3) \
       AND (user_id = $3 OR EXISTS (SELECT 1 FROM rooms WHERE id = $1 AND created_by = $3)) \
     RETURNING changed_seq";

/// A delete of one's own message as one's account is deleted: no membership needed (the
/// rooms they left keep none of their messages either).
const ERASE: &str = "UPDATE messages SET body = '', deleted_at = $4, \
     changed_seq = (SELECT last_seq + 1 FROM rooms WHERE id = $1) \
     WHERE room_id = $1 AND seq = $2 AND user_id = $3 AND deleted_at IS NULL AND kind = 'text' \
     RETURNING changed_seq";

/// What is left to know when a change changed nothing: whether the message is there, whose it
/// is, whether it is deleted, and whether the changer may still see the room.
const CHANGE_REFUSED: &str = "SELECT m.user_id, m.deleted_at IS NOT NULL, \
       EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $3), \
       EXISTS (SELECT 1 FROM rooms WHERE id = $1 AND created_by = $3) \
     FROM messages m WHERE m.room_id = $1 AND m.seq = $2 AND m.kind = 'text'";

/// The changed message as readers will see it, its `event` the change's seq.
const CHANGED: &str = concat!(
    "SELECT m.room_id, m.seq, m.user_id, COALESCE(u.username, '') AS author, \
       m.body, m.created_at, m.edited_at, m.deleted_at, m.changed_seq AS event, m.action, ",
    mentions_column!(),
    ", ",
    attachments_column!(),
    " FROM messages m JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 AND m.seq = $2"
);

/// Why a change that changed nothing did not (`CHANGE_REFUSED`'s row).
fn change_refused(change: &MessageChange, row: Option<(i64, bool, bool, bool)>) -> ChangeOutcome {
    let Some((author, deleted, member, creator)) = row else {
        return ChangeOutcome::NotFound;
    };
    let allowed = member && (author == change.user_id || (change.body.is_none() && creator));
    match (allowed, deleted) {
        (false, _) => ChangeOutcome::NotFound,
        (true, true) => ChangeOutcome::Deleted,
        // Allowed, not deleted, and nothing changed: the same text.
        (true, false) => ChangeOutcome::Unchanged,
    }
}

/// One change's statements, the same on both backends (`$tx`: a transaction that holds the
/// room's row; `$mentions`: the backend's `mentions::insert_*`, which stores whom an edit's
/// new text mentions once the old mentions are out; a delete leaves nobody mentioned).
macro_rules! change_message {
    ($tx:expr, $change:expr, $now:expr, $mentions:path) => {{
        let change: &MessageChange = $change;
        let query = match &change.body {
            Some(body) => sqlx::query_scalar(EDIT)
                .bind(change.room_id)
                .bind(change.seq)
                .bind(change.user_id)
                .bind(body.as_str())
                .bind($now),
            None if change.erase => sqlx::query_scalar(ERASE)
                .bind(change.room_id)
                .bind(change.seq)
                .bind(change.user_id)
                .bind($now),
            None => sqlx::query_scalar(DELETE)
                .bind(change.room_id)
                .bind(change.seq)
                .bind(change.user_id)
                .bind($now),
        };
        let changed: Option<i64> = query.fetch_optional(&mut **$tx).await?;
        match changed {
            Some(seq) => {
                sqlx::query("UPDATE rooms SET last_seq = $2 WHERE id = $1")
                    .bind(change.room_id)
                    .bind(seq)
                    .execute(&mut **$tx)
                    .await?;
                sqlx::query("DELETE FROM mentions WHERE room_id = $1 AND seq = $2")
                    .bind(change.room_id)
                    .bind(change.seq)
                    .execute(&mut **$tx)
                    .await?;
                let text = change.body.as_ref().map_or("", |b| b.as_str());
                $mentions(&mut **$tx, change.room_id, change.seq, text).await?;
                let removed = match change.body {
                    Some(_) => Vec::new(),
                    None => files::removed_keys(
                        sqlx::query_as(files::DELETE_ATTACHMENTS)
                            .bind(change.room_id)
                            .bind(change.seq)
                            .fetch_all(&mut **$tx)
                            .await?,
                    ),
                };
                let message: Message = sqlx::query_as(CHANGED)
                    .bind(change.room_id)
                    .bind(change.seq)
                    .fetch_one(&mut **$tx)
                    .await?;
                Ok(ChangeOutcome::Changed(message, removed))
            }
            None => {
                let row = sqlx::query_as(CHANGE_REFUSED)
                    .bind(change.room_id)
                    .bind(change.seq)
                    .bind(change.user_id)
                    .fetch_optional(&mut **$tx)
                    .await?;
                Ok(change_refused(change, row))
            }
        }
    }};
}

/// One change (SQLite: the one writer holds the database, so the room's seq is its own).
async fn sqlite_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    change: &MessageChange,
    now: i64,
) -> Result<ChangeOutcome, sqlx::Error> {
    change_message!(tx, change, now, mentions::insert_sqlite)
}

/// One change (PostgreSQL): the room's row is locked first, as a post's UPDATE locks it, so
/// the change's seq is the room's next in commit order on every instance.
async fn postgres_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &MessageChange,
    now: i64,
) -> Result<ChangeOutcome, sqlx::Error> {
    sqlx::query("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE")
        .bind(change.room_id)
        .execute(&mut **tx)
        .await?;
    change_message!(tx, change, now, mentions::insert_postgres)
}

/// A room change (SQLite: the one writer holds the database).
async fn sqlite_edit(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    edit: &RoomEdit,
    now: i64,
) -> Result<EditOutcome, sqlx::Error> {
    edit_room!(tx, edit, now)
}

/// A room change (PostgreSQL): the room's row is locked first, as a post locks it.
async fn postgres_edit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    edit: &RoomEdit,
    now: i64,
) -> Result<EditOutcome, sqlx::Error> {
    sqlx::query("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE")
        .bind(edit.room_id)
        .execute(&mut **tx)
        .await?;
    edit_room!(tx, edit, now)
}

impl super::Store {
    /// Changes a room (through the same writer as posts: each system line the change writes
    /// takes the room's next seq and is published like a post). Only after this returns
    /// `Changed` is the change durable and may be published.
    pub async fn edit_room(&self, edit: RoomEdit) -> Result<EditOutcome> {
        match self.writer.submit(Write::Room(edit)).await? {
            Outcome::Room(outcome) => Ok(outcome),
            _ => unreachable!("a room change is answered as one"),
        }
    }

    /// Stores a message (through the batching writer) and returns what happened. Only after
    /// this returns `Posted` is the message durable and may be published.
    pub async fn post_message(&self, post: NewPost) -> Result<PostOutcome> {
        match self.writer.submit(Write::Post(post)).await? {
            Outcome::Post(outcome) => Ok(outcome),
            _ => unreachable!("a post is answered as a post"),
        }
    }

    /// Edits or deletes a message (through the same writer as posts: the change takes the
    /// room's next seq and is published like a post). Only after this returns `Changed` is the
    /// change durable and may be published.
    pub async fn change_message(&self, change: MessageChange) -> Result<ChangeOutcome> {
        match self.writer.submit(Write::Change(change)).await? {
            Outcome::Change(outcome) => Ok(outcome),
            _ => unreachable!("a change is answered as a change"),
        }
    }
}
