//! Web Push: browsers' push subscriptions (one per browser, owned by the session that made it),
//! the server's VAPID key, "do not disturb until", and who is to hear of a new message.

use sqlx::FromRow;

use super::{Result, Store, on_read, on_write};

/// A browser's push subscription, as `PushManager.subscribe` gave it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct PushSubscription {
    /// Its id.
    pub id: i64,
    /// The push service's URL for this browser.
    pub endpoint: String,
    /// The browser's P-256 public key (base64url, uncompressed point).
    pub p256dh: String,
    /// The browser's 16-byte auth secret (base64url).
    pub auth: String,
}

/// Someone with a push subscription who is a member of a room a message arrived in, with what
/// decides whether they hear of it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct PushRecipient {
    /// Their subscription.
    #[sqlx(flatten)]
    pub subscription: PushSubscription,
    /// Who they are.
    pub user_id: i64,
    /// Their setting for the room (`members.notify`, else `users.notify_default`).
    pub notify: String,
    /// Whether the message mentions them.
    pub mentioned: bool,
    /// How far they have read the room.
    pub last_read_seq: i64,
    /// Do not disturb until then (Unix ms), if set.
    pub dnd_until: Option<i64>,
}

impl Store {
    /// Stores (or renews) a subscription for the session `session_hash` of `user_id`, unless
    /// that person already has `max` others (`Ok(false)`). A browser that subscribes again
    /// sends the same endpoint: its row is taken over, keys and session renewed.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_push_subscription(
        &self,
        session_hash: &[u8],
        user_id: i64,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        now: i64,
        max: i64,
    ) -> Result<bool> {
        let id = on_write!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO push_subscriptions (session_hash, user_id, endpoint, p256dh, auth, created_at) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $2 AND endpoint <> $3) \
                   < CAST($7 AS BIGINT) \
             ON CONFLICT (endpoint) DO UPDATE SET session_hash = excluded.session_hash, \
                user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth, \
                created_at = excluded.created_at \
             RETURNING id",
        )
        .bind(session_hash)
        .bind(user_id)
        .bind(endpoint)
        .bind(p256dh)
        .bind(auth)
        .bind(now)
        .bind(max)
        .fetch_optional(pool)
        .await)?;
        Ok(id.is_some())
    }

    /// Deletes `user_id`'s subscription to `endpoint`; `false` if they had none.
    pub async fn delete_push_subscription(&self, user_id: i64, endpoint: &str) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2",
        )
        .bind(user_id)
        .bind(endpoint)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Forgets a subscription the push service says is gone (404/410).
    pub async fn forget_push_subscription(&self, id: i64) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The subscriptions of one session (the profile says whether this browser has one).
    pub async fn push_subscriptions_of_session(
        &self,
        session_hash: &[u8],
    ) -> Result<Vec<PushSubscription>> {
        let rows = on_read!(&self.db, pool => sqlx::query_as::<_, PushSubscription>(
            "SELECT id, endpoint, p256dh, auth FROM push_subscriptions \
              WHERE session_hash = $1 ORDER BY id",
        )
        .bind(session_hash)
        .fetch_all(pool)
        .await)?;
        Ok(rows)
    }

    /// Whether anyone at all has a subscription: while nobody does, messages cost the push
    /// worker nothing.
    pub async fn any_push_subscription(&self) -> Result<bool> {
        let any: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM push_subscriptions LIMIT 1",
        )
        .fetch_optional(pool)
        .await)?;
        Ok(any.is_some())
    }

    /// The members of `room_id` other than `author` who have subscriptions, each subscription
    /// with what decides whether message `seq` is pushed to it.
    pub async fn push_recipients(
        &self,
        room_id: i64,
        seq: i64,
        author: i64,
    ) -> Result<Vec<PushRecipient>> {
        let rows = on_read!(&self.db, pool => sqlx::query_as::<_, PushRecipient>(
            "SELECT ps.id, ps.endpoint, ps.p256dh, ps.auth, mb.user_id, \
                    COALESCE(mb.notify, u.notify_default) AS notify, \
                    EXISTS (SELECT 1 FROM mentions mn WHERE mn.room_id = mb.room_id \
                              AND mn.seq = $2 AND mn.user_id = mb.user_id) AS mentioned, \
                    mb.last_read_seq, u.dnd_until \
               FROM members mb \
               JOIN users u ON u.id = mb.user_id \
               JOIN push_subscriptions ps ON ps.user_id = mb.user_id \
              WHERE mb.room_id = $1 AND mb.user_id <> $3 \
              ORDER BY ps.id",
        )
        .bind(room_id)
        .bind(seq)
        .bind(author)
        .fetch_all(pool)
        .await)?;
        Ok(rows)
    }

    /// The VAPID private key kept in the database, made by `generate` (and stored) the first
    /// time. Two instances starting at once store one: the first insert wins, both read it.
    pub async fn vapid_key(&self, generate: impl FnOnce() -> String, now: i64) -> Result<String> {
        let stored: Option<String> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT private_key FROM vapid_keys WHERE id = 1",
        )
        .fetch_optional(pool)
        .await)?;
        if let Some(key) = stored {
            return Ok(key);
        }
        let fresh = generate();
        on_write!(&self.db, pool => sqlx::query(
            "INSERT INTO vapid_keys (id, private_key, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&fresh)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        let key: String = on_write!(&self.db, pool => sqlx::query_scalar(
            "SELECT private_key FROM vapid_keys WHERE id = 1",
        )
        .fetch_one(pool)
        .await)?;
        Ok(key)
    }

    /// What a push says of room `room_id`: its code (for the permalink), its name, and whether
    /// it is a direct conversation.
    pub async fn push_room(&self, room_id: i64) -> Result<Option<(String, String, bool)>> {
        let room = on_read!(&self.db, pool => sqlx::query_as::<_, (String, String, bool)>(
            "SELECT code, name, direct_pair IS NOT NULL FROM rooms WHERE id = $1",
        )
        .bind(room_id)
        .fetch_optional(pool)
        .await)?;
        Ok(room)
    }

    /// Until when `user_id` does not want to be disturbed (Unix ms), if they said so.
    pub async fn dnd_until(&self, user_id: i64) -> Result<Option<i64>> {
        let until: Option<Option<i64>> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT dnd_until FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(until.flatten())
    }

    /// Sets (or, with `None`, clears) `user_id`'s "do not disturb until".
    pub async fn set_dnd_until(&self, user_id: i64, until: Option<i64>) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query("UPDATE users SET dnd_until = $2 WHERE id = $1")
            .bind(user_id)
            .bind(until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
