//! Mentions and what people want to hear about.
//!
//! A message's mentions are stored in the transaction that stores (or edits) the message:
//! `insert_sqlite` / `insert_postgres` take the transaction, so the writer calls them for a
//! post, and for an edit after taking the old ones out (`writer::change_message!`).
//! Only members of the room at that moment are mentioned; the names come from
//! `domain::mention::mentioned_names`, the function that also decides what is rendered as one.
//!
//! Reading them costs no extra statement: each message row carries its mentions as a short
//! text (`mentions_column!`), decoded into `Mentions`.

use sqlx::{FromRow, PgConnection, SqliteConnection};

use super::{Result, Store, on_read, on_write};
use crate::domain::{mention::mentioned_names, notify::Notify};

/// Who a message mentions: (user id, username) of each, by user id.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mentions(pub Vec<(i64, String)>);

impl Mentions {
    /// The user id of the mentioned person called `name` (any case), if they are mentioned.
    pub fn user(&self, name: &str) -> Option<i64> {
        self.0
            .iter()
            .find(|(_, username)| username.eq_ignore_ascii_case(name))
            .map(|(id, _)| *id)
    }

    /// Whether nobody is mentioned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The mentions as stored in one column: `id:username` joined by commas (usernames hold
    /// neither), or `None`. Anything else is skipped rather than failing the page.
    fn decode(text: Option<&str>) -> Self {
        let mut list: Vec<(i64, String)> = text
            .unwrap_or_default()
            .split(',')
            .filter_map(|one| {
                let (id, name) = one.split_once(':')?;
                Some((id.parse().ok()?, name.to_string()))
            })
            .collect();
        list.sort_unstable();
        Mentions(list)
    }
}

/// `mentions_column!`'s text as the row carries it.
impl From<Option<String>> for Mentions {
    fn from(text: Option<String>) -> Self {
        Mentions::decode(text.as_deref())
    }
}

/// The mentions of message `m` as one text column (`Mentions::decode`), for `concat!` into a
/// message query: the same SQL on both backends (`string_agg` is SQLite's too since 3.44).
/// Most messages mention nobody: one probe of the primary key finds that.
macro_rules! mentions_column {
    () => {
        "(SELECT string_agg(CAST(mn.user_id AS TEXT) || ':' || mu.username, ',') \
           FROM mentions mn JOIN users mu ON mu.id = mn.user_id \
          WHERE mn.room_id = m.room_id AND mn.seq = m.seq) AS mentions"
    };
}
pub(crate) use mentions_column;

/// The case-folded names `body` mentions (`users.username_key`), or `None` when it mentions
/// nobody: then nothing is written.
pub(super) fn mentioned_keys(body: &str) -> Option<Vec<String>> {
    let keys: Vec<String> = mentioned_names(body)
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// Stores who message `seq` of `room_id` (whose text is `body`) mentions, inside the caller's
/// SQLite transaction: the members of the room named in it. Returns them.
pub(super) async fn insert_sqlite(
    tx: &mut SqliteConnection,
    room_id: i64,
    seq: i64,
    body: &str,
) -> Result<Mentions, sqlx::Error> {
    let Some(keys) = mentioned_keys(body) else {
        return Ok(Mentions::default());
    };
    let keys = serde_json::to_string(&keys).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO mentions (room_id, seq, user_id) \
         SELECT $1, $2, u.id FROM users u JOIN members mb ON mb.room_id = $1 AND mb.user_id = u.id \
          WHERE u.username_key IN (SELECT value FROM json_each($3)) \
         ON CONFLICT DO NOTHING \
         RETURNING user_id, (SELECT username FROM users WHERE id = user_id)",
    )
    .bind(room_id)
    .bind(seq)
    .bind(keys)
    .fetch_all(&mut *tx)
    .await?;
    let mut rows = rows;
    rows.sort_unstable();
    Ok(Mentions(rows))
}

/// As `insert_sqlite`, inside a PostgreSQL transaction. (A post does it inside its own
/// statement instead, see `writer::postgres_post`: one round trip per post.)
pub(super) async fn insert_postgres(
    tx: &mut PgConnection,
    room_id: i64,
    seq: i64,
    body: &str,
) -> Result<Mentions, sqlx::Error> {
    let Some(keys) = mentioned_keys(body) else {
        return Ok(Mentions::default());
    };
    let mut rows: Vec<(i64, String)> = sqlx::query_as(
        "WITH ins AS (INSERT INTO mentions (room_id, seq, user_id) \
                      SELECT $1, $2, u.id FROM users u \
                        JOIN members mb ON mb.room_id = $1 AND mb.user_id = u.id \
                       WHERE u.username_key = ANY($3) \
                      ON CONFLICT DO NOTHING RETURNING user_id) \
         SELECT ins.user_id, u.username FROM ins JOIN users u ON u.id = ins.user_id",
    )
    .bind(room_id)
    .bind(seq)
    .bind(keys)
    .fetch_all(&mut *tx)
    .await?;
    rows.sort_unstable();
    Ok(Mentions(rows))
}

/// Unread mentions counted per room are capped here (shown as "99+" like unread counts), so
/// a room with thousands costs no more than one with a hundred.
pub const MENTION_COUNT_CAP: i64 = 100;

/// One of a person's rooms, for unread marks: how many unread messages mention them, and what
/// they want to hear about it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RoomMentions {
    /// The room.
    pub room_id: i64,
    /// Messages after their read mark that mention them, are not deleted and not their own,
    /// at most `MENTION_COUNT_CAP`.
    pub mentions: i64,
    /// Their setting for the room, or their default (`all`, `mentions`, `nothing`).
    #[sqlx(try_from = "String")]
    pub notify: NotifyColumn,
}

/// A `Notify` as a column holds it (anything unexpected reads as `all`: the database's CHECK
/// allows nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyColumn(pub Notify);

impl From<String> for NotifyColumn {
    fn from(text: String) -> Self {
        NotifyColumn(Notify::parse(&text).unwrap_or(Notify::All))
    }
}

/// A person's notification setting for one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomNotify {
    /// The room's own setting; `None`: the default.
    pub own: Option<Notify>,
    /// Their default (the profile's).
    pub default: Notify,
}

impl RoomNotify {
    /// What applies: the room's own setting, else the default.
    pub fn effective(self) -> Notify {
        self.own.unwrap_or(self.default)
    }

    /// From the two columns (`members.notify`, `users.notify_default`).
    pub(super) fn of(own: Option<&str>, default: &str) -> Self {
        RoomNotify {
            own: own.and_then(|n| Notify::parse(n).ok()),
            default: Notify::parse(default).unwrap_or(Notify::All),
        }
    }
}

impl Store {
    /// For each of `user_id`'s rooms, the unread messages mentioning them (after
    /// `members.last_read_seq`, not deleted, not their own, capped at `MENTION_COUNT_CAP`) and their
    /// setting, in one statement for all their rooms: each room is a range of the index
    /// `mentions_by_user` from the read mark, stopped at the cap. By room id.
    pub async fn mention_counts(&self, user_id: i64) -> Result<Vec<RoomMentions>> {
        let rows = on_read!(&self.db, pool => sqlx::query_as::<_, RoomMentions>(
            "SELECT mb.room_id, \
                    (SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn \
                       JOIN messages m ON m.room_id = mn.room_id AND m.seq = mn.seq \
                      WHERE mn.user_id = mb.user_id AND mn.room_id = mb.room_id \
                        AND mn.seq > mb.last_read_seq AND m.deleted_at IS NULL \
                        AND m.user_id <> mb.user_id \
                      LIMIT CAST($2 AS BIGINT)) AS capped) AS mentions, \
                    COALESCE(mb.notify, u.notify_default) AS notify \
               FROM members mb JOIN users u ON u.id = mb.user_id \
              WHERE mb.user_id = $1 ORDER BY mb.room_id",
        )
        .bind(user_id)
        .bind(MENTION_COUNT_CAP)
        .fetch_all(pool)
        .await)?;
        Ok(rows)
    }

    /// `user_id`'s default setting (the profile's).
    pub async fn notify_default(&self, user_id: i64) -> Result<Notify> {
        let value: Option<String> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT notify_default FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(RoomNotify::of(None, value.as_deref().unwrap_or("all")).default)
    }

    /// Sets `user_id`'s default setting.
    pub async fn set_notify_default(&self, user_id: i64, notify: Notify) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query(
            "UPDATE users SET notify_default = $2 WHERE id = $1",
        )
        .bind(user_id)
        .bind(notify.as_str())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// `user_id`'s setting for the room, if they are a member.
    pub async fn room_notify(&self, room_id: i64, user_id: i64) -> Result<Option<RoomNotify>> {
        let row: Option<(Option<String>, String)> = on_read!(&self.db, pool => sqlx::query_as(
            "SELECT mb.notify, u.notify_default FROM members mb JOIN users u ON u.id = mb.user_id \
              WHERE mb.room_id = $1 AND mb.user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(own, default)| RoomNotify::of(own.as_deref(), &default)))
    }

    /// Sets `user_id`'s own setting for the room (`None`: follow the default); `false` when
    /// they are not a member.
    pub async fn set_room_notify(
        &self,
        room_id: i64,
        user_id: i64,
        notify: Option<Notify>,
    ) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "UPDATE members SET notify = $3 WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(notify.map(Notify::as_str))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_read_back_from_their_column() {
        assert_eq!(Mentions::from(None), Mentions::default());
        assert_eq!(
            Mentions::from(Some("9:Bob.B,7:ada".to_string())),
            Mentions(vec![(7, "ada".into()), (9, "Bob.B".into())])
        );
        // Nothing a username cannot hold breaks the page: a bad piece is skipped.
        assert_eq!(
            Mentions::from(Some("x:ada,,7".to_string())),
            Mentions::default()
        );
        let m = Mentions(vec![(7, "ada".into())]);
        assert_eq!(
            (m.user("ADA"), m.user("ad"), m.user("adam")),
            (Some(7), None, None)
        );
    }

    #[test]
    fn only_named_people_are_looked_up() {
        assert_eq!(mentioned_keys("no names, x@ada.org"), None);
        assert_eq!(
            mentioned_keys("@Ada @ADA @bob."),
            Some(vec!["ada".to_string(), "bob".to_string()])
        );
    }
}
