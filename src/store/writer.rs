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

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Db, Message, Result, StoreError, now_ms};
use crate::domain::MessageBody;

/// The most posts committed in one transaction.
const MAX_BATCH: usize = 256;

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub room_id: i64,
    pub user_id: i64,
    /// The poster's username, copied into the returned `Message` for rendering.
    pub author: String,
    pub body: MessageBody,
    /// The composer's random id: the same id posts once.
    pub client_id: Option<String>,
}

/// A committed post.
pub type Posted = Message;

/// Posts one transaction committed, in seq order, and when it committed.
#[derive(Debug, Clone)]
pub struct Committed {
    pub at: std::time::Instant,
    pub messages: Vec<Message>,
}

/// What became of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Posted(Posted),
    /// The same `client_id` was posted before (double click, resubmitted form): this is its seq.
    AlreadyPosted(i64),
    /// The poster is not (or no longer) a member of the room.
    NotMember,
}

struct Job {
    post: NewPost,
    reply: oneshot::Sender<Result<PostOutcome>>,
}

/// Handle to the writer task.
#[derive(Clone, Debug)]
pub(super) struct PostWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("room_id", &self.post.room_id)
            .finish()
    }
}

impl PostWriter {
    /// Starts the writer task. Each committed batch's messages go to `committed` in seq order.
    pub(super) fn start(db: Db, committed: mpsc::Sender<Committed>) -> Self {
        // Bounded: when the database falls behind, posters wait here instead of piling up.
        let (jobs, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let messages = commit_batch(&db, std::mem::take(&mut batch)).await;
                // Published only after the commit: nobody sees a message that could vanish.
                let at = std::time::Instant::now();
                if !messages.is_empty() && committed.send(Committed { at, messages }).await.is_err()
                {
                    tracing::debug!("nobody publishes committed posts any more");
                }
            }
        });
        Self { jobs }
    }

    pub(super) async fn submit(&self, post: NewPost) -> Result<PostOutcome> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { post, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// Commits the jobs in one transaction, answers each poster, and returns what was posted.
async fn commit_batch(db: &Db, jobs: Vec<Job>) -> Vec<Message> {
    let now = now_ms();
    let result = match db {
        Db::Sqlite { write, .. } => commit_sqlite(write, &jobs, now).await,
        Db::Postgres(pool) => commit_postgres(pool, &jobs, now).await,
    };
    match result {
        Ok(outcomes) => {
            let mut posted = Vec::new();
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                if let Ok(PostOutcome::Posted(m)) = &outcome {
                    posted.push(m.clone());
                }
                let _ = job.reply.send(outcome);
            }
            posted
        }
        Err(e) => {
            tracing::error!(error = %e, posts = jobs.len(), "post batch failed");
            let shared = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::Batch(shared.clone())));
            }
            Vec::new()
        }
    }
}

/// The posted message, as the writer returns it.
fn posted(post: &NewPost, seq: i64, now: i64) -> PostOutcome {
    PostOutcome::Posted(Message {
        room_id: post.room_id,
        seq,
        user_id: post.user_id,
        author: post.author.clone(),
        body: post.body.as_str().to_string(),
        created_at: now,
        edited_at: None,
    })
}

const EARLIER_POST: &str =
    "SELECT seq FROM messages WHERE room_id = $1 AND user_id = $2 AND client_id = $3";

/// SQLite: two statements per post. This task is the only writer and holds the database for the
/// whole transaction, so reading `last_seq + 1` and writing it back cannot interleave with
/// anyone. A refused statement (membership, a repeated client_id) changes nothing and leaves the
/// transaction usable: no savepoints needed.
async fn commit_sqlite(
    pool: &sqlx::SqlitePool,
    jobs: &[Job],
    now: i64,
) -> Result<Vec<Result<PostOutcome>>> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let post = &job.post;
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
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match seq {
            Some(seq) => {
                sqlx::query("UPDATE rooms SET last_seq = $2, last_activity_at = $3 WHERE id = $1")
                    .bind(post.room_id)
                    .bind(seq)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                posted(post, seq, now)
            }
            // Nothing inserted: the same client_id was posted before, or not a member.
            None => match &post.client_id {
                Some(client_id) => sqlx::query_scalar::<_, i64>(EARLIER_POST)
                    .bind(post.room_id)
                    .bind(post.user_id)
                    .bind(client_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map_or(PostOutcome::NotMember, PostOutcome::AlreadyPosted),
                None => PostOutcome::NotMember,
            },
        };
        outcomes.push(Ok(outcome));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// PostgreSQL: one round trip per post. The UPDATE takes the room row's lock, held until
/// commit, so posts to one room (from any instance) take their seqs in commit order. The
/// statement reports what happened: posted, posted before (same client_id), or not a member.
async fn commit_postgres(
    pool: &sqlx::PgPool,
    jobs: &[Job],
    now: i64,
) -> Result<Vec<Result<PostOutcome>>> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let post = &job.post;
        let (bumped, inserted, earlier): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "WITH earlier AS (SELECT seq FROM messages WHERE room_id = $1 AND user_id = $2 AND client_id = $4), \
             bump AS (UPDATE rooms SET last_seq = last_seq + 1, last_activity_at = $5 \
                      WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM earlier) \
                        AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2) \
                      RETURNING last_seq), \
             ins AS (INSERT INTO messages (room_id, seq, user_id, body, client_id, created_at) \
                     SELECT $1, last_seq, $2, $3, $4, $5 FROM bump \
                     ON CONFLICT DO NOTHING RETURNING seq) \
             SELECT (SELECT last_seq FROM bump), (SELECT seq FROM ins), (SELECT seq FROM earlier)",
        )
        .bind(post.room_id)
        .bind(post.user_id)
        .bind(post.body.as_str())
        .bind(&post.client_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let outcome = match (bumped, inserted, earlier) {
            (Some(_), Some(seq), _) => posted(post, seq, now),
            (_, _, Some(seq)) => PostOutcome::AlreadyPosted(seq),
            (None, _, None) => PostOutcome::NotMember,
            (Some(_), None, None) => {
                // The same client_id was committed by another instance between our snapshot
                // and the row lock. Give the seq back (we still hold the lock, so nobody took
                // a later one) and answer with the earlier post.
                sqlx::query("UPDATE rooms SET last_seq = last_seq - 1 WHERE id = $1")
                    .bind(post.room_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_scalar::<_, i64>(EARLIER_POST)
                    .bind(post.room_id)
                    .bind(post.user_id)
                    .bind(&post.client_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map_or(PostOutcome::NotMember, PostOutcome::AlreadyPosted)
            }
        };
        outcomes.push(Ok(outcome));
    }
    tx.commit().await?;
    Ok(outcomes)
}

impl super::Store {
    /// Stores a message (through the batching writer) and returns what happened. Only after
    /// this returns `Posted` is the message durable and may be published.
    pub async fn post_message(&self, post: NewPost) -> Result<PostOutcome> {
        self.writer.submit(post).await
    }
}
