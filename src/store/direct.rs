//! Direct conversations between two people (issue 17). Each is a room whose `direct_pair` is
//! `"{smaller id}:{larger id}"`, so every room route, the socket, unread counts, mentions, edits
//! and attachments work in it unchanged. What differs lives here: opening one (race-free by the
//! unique pair), closing it (`members.hidden_at`; a message reopens it for both, by trigger, see
//! the migration), and listing them by the other person's name.

use sqlx::FromRow;

use super::{
    Result, Room, Store,
    mentions::NotifyColumn,
    on_read, on_write,
    rooms::{Marks, unread_mentions_sql, unread_sql},
};
use crate::domain::{RoomCode, Username};

/// The `direct_pair` of two people: the same text whoever of them asks.
pub fn direct_pair(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

/// Someone found by username.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Person {
    /// Their id.
    pub id: i64,
    /// Their username, as they typed it.
    pub username: String,
}

/// What opening a direct conversation did.
#[derive(Debug, Clone)]
pub struct OpenedDirect {
    /// The conversation's room.
    pub room: Room,
    /// Whether this call created it (the first open between the two).
    pub created: bool,
}

/// A direct conversation in the viewer's list: the other person, and unread counts like a room.
#[derive(Debug, Clone, FromRow)]
pub struct DirectSummary {
    /// The room's id (live activity names rooms by id).
    pub id: i64,
    /// The room's internal code: its routes (`/rooms/{code}/…`) use it; it is never shown.
    pub code: String,
    /// The other person's id.
    pub other_id: i64,
    /// The other person's username.
    pub other: String,
    /// The newest event's seq.
    pub last_seq: i64,
    /// When it was opened or last posted in (Unix ms).
    pub last_activity_at: i64,
    /// Messages the viewer has not read, up to `UNREAD_CAP`.
    pub unread: i64,
    /// Of them, those that mention the viewer, up to `UNREAD_CAP`.
    pub mentions: i64,
    /// What the viewer wants to hear about it.
    #[sqlx(try_from = "String")]
    pub notify: NotifyColumn,
}

impl DirectSummary {
    /// What its mark beside it says.
    pub fn marks(&self) -> Marks {
        Marks {
            unread: self.unread,
            mentions: self.mentions,
            notify: self.notify.0,
        }
    }
}

impl Store {
    /// The person with this username (any case), if there is one.
    pub async fn person(&self, name: &Username) -> Result<Option<Person>> {
        let person = on_read!(&self.db, pool => sqlx::query_as::<_, Person>(
            "SELECT id, username FROM users WHERE username_key = $1 AND username IS NOT NULL",
        )
        .bind(name.key())
        .fetch_optional(pool)
        .await)?;
        Ok(person)
    }

    /// Whether the two are members of one room (not a direct conversation): who may start one.
    pub async fn share_a_room(&self, a: i64, b: i64) -> Result<bool> {
        let shared: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT x.room_id FROM members x \
             JOIN members y ON y.room_id = x.room_id AND y.user_id = $2 \
             JOIN rooms r ON r.id = x.room_id AND r.direct_pair IS NULL \
             WHERE x.user_id = $1 LIMIT 1",
        )
        .bind(a)
        .bind(b)
        .fetch_optional(pool)
        .await)?;
        Ok(shared.is_some())
    }

    /// The direct conversation between `me` and `other`, if it was ever opened.
    pub async fn direct_room(&self, me: i64, other: i64) -> Result<Option<Room>> {
        let room = on_read!(&self.db, pool => sqlx::query_as::<_, Room>(
            "SELECT r.id, r.code, r.name, r.created_by, r.created_at, r.last_seq, \
                    r.last_activity_at, r.direct_pair, r.topic \
             FROM rooms r JOIN members mb ON mb.room_id = r.id AND mb.user_id = $2 \
             WHERE r.direct_pair = $1",
        )
        .bind(direct_pair(me, other))
        .bind(me)
        .fetch_optional(pool)
        .await)?;
        Ok(room)
    }

    /// Opens the direct conversation between `me` and `other`: creates it (with `code`) if it
    /// was never opened, and shows it in `me`'s list again if they had closed it. Two people
    /// opening it at once get the same room: the unique `direct_pair` lets one insert win and
    /// the other find it. A new conversation starts closed for `other`: it reaches their list
    /// with its first message. A taken `code` comes back as a unique violation; the caller
    /// draws another.
    pub async fn open_direct(
        &self,
        me: i64,
        other: i64,
        code: RoomCode,
        now: i64,
    ) -> Result<OpenedDirect> {
        let pair = direct_pair(me, other);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let created: Option<i64> = sqlx::query_scalar(
                "INSERT INTO rooms (code, name, created_by, created_at, last_activity_at, direct_pair) \
                 VALUES ($1, '', $2, $3, $3, $4) ON CONFLICT (direct_pair) DO NOTHING RETURNING id",
            )
            .bind(code.canonical())
            .bind(me)
            .bind(now)
            .bind(&pair)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = created {
                sqlx::query(
                    "INSERT INTO members (room_id, user_id, joined_at, hidden_at) \
                     VALUES ($1, $2, $4, NULL), ($1, $3, $4, $4)",
                )
                .bind(id)
                .bind(me)
                .bind(other)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "UPDATE members SET hidden_at = NULL WHERE user_id = $2 AND hidden_at IS NOT NULL \
                       AND room_id = (SELECT id FROM rooms WHERE direct_pair = $1)",
                )
                .bind(&pair)
                .bind(me)
                .execute(&mut *tx)
                .await?;
            }
            let room = sqlx::query_as::<_, Room>(
                "SELECT id, code, name, created_by, created_at, last_seq, last_activity_at, direct_pair, topic \
                 FROM rooms WHERE direct_pair = $1",
            )
            .bind(&pair)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(OpenedDirect { room, created: created.is_some() })
        })
    }

    /// Closes a direct conversation for `user_id`: it leaves their list until a message
    /// arrives in it. `false` when the room is not a direct conversation of theirs.
    pub async fn close_direct(&self, room_id: i64, user_id: i64, now: i64) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "UPDATE members SET hidden_at = $3 WHERE room_id = $1 AND user_id = $2 \
               AND EXISTS (SELECT 1 FROM rooms WHERE id = $1 AND direct_pair IS NOT NULL)",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The user's direct conversations that are not closed, most recently active first.
    pub async fn directs(&self, user_id: i64) -> Result<Vec<DirectSummary>> {
        let list = on_read!(&self.db, pool => sqlx::query_as::<_, DirectSummary>(concat!(
            "SELECT r.id, r.code, o.user_id AS other_id, COALESCE(u.username, '') AS other, \
                    r.last_seq, r.last_activity_at, ",
            unread_sql!("r.id", "mb.last_read_seq", "mb.user_id"),
            " AS unread, ",
            unread_mentions_sql!("r.id", "mb.last_read_seq", "mb.user_id"),
            " AS mentions, COALESCE(mb.notify, me.notify_default) AS notify \
             FROM members mb \
             JOIN users me ON me.id = mb.user_id \
             JOIN rooms r ON r.id = mb.room_id AND r.direct_pair IS NOT NULL \
             JOIN members o ON o.room_id = r.id AND o.user_id <> mb.user_id \
             JOIN users u ON u.id = o.user_id \
             WHERE mb.user_id = $1 AND mb.hidden_at IS NULL \
             ORDER BY r.last_activity_at DESC, r.id DESC LIMIT 500",
        ))
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::direct_pair;

    #[test]
    fn a_pair_reads_the_same_whoever_asks() {
        assert_eq!(direct_pair(7, 42), "7:42");
        assert_eq!(direct_pair(42, 7), "7:42");
        // Numbers, not text: 10 sorts after 9.
        assert_eq!(direct_pair(10, 9), "9:10");
    }
}
