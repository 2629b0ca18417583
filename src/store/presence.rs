//! Cross-instance bookkeeping on PostgreSQL: instance heartbeats, shared presence, and the
//! `natter` notification channel. SQLite runs one instance, so none of this applies there and
//! these methods are not called.

use sqlx::PgPool;

use super::{Result, Store};

/// How long an instance's heartbeat counts: its people are online while it is younger.
pub const INSTANCE_TTL_MS: i64 = 60_000;

impl Store {
    fn pg(&self) -> Result<&PgPool> {
        self.postgres_pool().ok_or_else(|| {
            super::StoreError::Sqlx(sqlx::Error::Configuration("not PostgreSQL".into()))
        })
    }

    /// Announces this instance (or renews its heartbeat). True when the row was created: at
    /// start, or after other instances swept it away during an outage of ours (and its presence
    /// rows with it).
    pub async fn heartbeat(&self, instance: &str, now: i64) -> Result<bool> {
        // `xmax = 0` only for a row this statement inserted; an updated row carries our xid.
        let created = sqlx::query_scalar::<_, bool>(
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at \
             RETURNING xmax = 0",
        )
        .bind(instance)
        .bind(now)
        .fetch_one(self.pg()?)
        .await?;
        Ok(created)
    }

    /// Records at once that these (room, user) pairs have sockets on this instance.
    pub async fn register_presence(&self, instance: &str, pairs: &[(i64, i64)]) -> Result<()> {
        let (rooms, users): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO presence (instance_id, room_id, user_id) \
             SELECT $1, r, u FROM UNNEST($2::BIGINT[], $3::BIGINT[]) AS t (r, u) \
             ON CONFLICT DO NOTHING",
        )
        .bind(instance)
        .bind(rooms)
        .bind(users)
        .execute(self.pg()?)
        .await?;
        Ok(())
    }

    /// Which of these sessions still exist (not signed out, not expired).
    pub async fn live_sessions(&self, token_hashes: &[Vec<u8>], now: i64) -> Result<Vec<Vec<u8>>> {
        let live = sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT token_hash FROM sessions WHERE token_hash = ANY($1) AND expires_at > $2",
        )
        .bind(token_hashes)
        .bind(now)
        .fetch_all(self.pg()?)
        .await?;
        Ok(live)
    }

    /// Removes this instance and its presence rows (graceful shutdown).
    pub async fn retire_instance(&self, instance: &str) -> Result<()> {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(instance)
            .execute(self.pg()?)
            .await?;
        Ok(())
    }

    /// Deletes instances whose heartbeat stopped (and, by cascade, their presence rows).
    pub async fn sweep_dead_instances(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM instances WHERE heartbeat_at < $1")
            .bind(now - 2 * INSTANCE_TTL_MS)
            .execute(self.pg()?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records that `user_id` has (or no longer has) sockets to the room on this instance.
    pub async fn set_present(
        &self,
        instance: &str,
        room_id: i64,
        user_id: i64,
        present: bool,
    ) -> Result<()> {
        let sql = if present {
            "INSERT INTO presence (instance_id, room_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM presence WHERE instance_id = $1 AND room_id = $2 AND user_id = $3"
        };
        sqlx::query(sql)
            .bind(instance)
            .bind(room_id)
            .bind(user_id)
            .execute(self.pg()?)
            .await?;
        Ok(())
    }

    /// Who is online (on any live instance) in each of these rooms, as (room, user) pairs.
    pub async fn online_in(&self, room_ids: &[i64], now: i64) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query_as::<_, (i64, i64)>(
            "SELECT DISTINCT p.room_id, p.user_id FROM presence p \
             JOIN instances i ON i.id = p.instance_id \
             WHERE p.room_id = ANY($1) AND i.heartbeat_at > $2",
        )
        .bind(room_ids)
        .bind(now - INSTANCE_TTL_MS)
        .fetch_all(self.pg()?)
        .await?;
        Ok(rows)
    }

    /// The newest seq of each of these rooms.
    pub async fn last_seqs(&self, room_ids: &[i64]) -> Result<Vec<(i64, i64)>> {
        let rows = match &self.db {
            super::Db::Postgres(pool) => {
                sqlx::query_as::<_, (i64, i64)>("SELECT id, last_seq FROM rooms WHERE id = ANY($1)")
                    .bind(room_ids)
                    .fetch_all(pool)
                    .await?
            }
            // SQLite has no arrays: the ids travel as one JSON array.
            super::Db::Sqlite { read, .. } => {
                let ids = serde_json::to_string(room_ids).unwrap_or_else(|_| "[]".into());
                sqlx::query_as::<_, (i64, i64)>(
                    "SELECT id, last_seq FROM rooms WHERE id IN (SELECT value FROM json_each($1))",
                )
                .bind(ids)
                .fetch_all(read)
                .await?
            }
        };
        Ok(rows)
    }

    /// Sends `payload` on the `natter` channel to every instance (after any commit: NOTIFY is
    /// its own statement, never inside the posting transaction).
    pub async fn notify(&self, payload: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify('natter', $1)")
            .bind(payload)
            .execute(self.pg()?)
            .await?;
        Ok(())
    }
}
