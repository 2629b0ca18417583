//! Rooms, memberships and reading messages. Posting lives in `writer.rs`.

use sqlx::FromRow;

use super::{
    Attachments, Mentions, Result, RoomNotify, Store, attachments_column,
    mentions::{NotifyColumn, mentions_column},
    on_read, on_write,
};
use crate::domain::{RoomCode, RoomName, notify::Notify};

/// A room as stored. Pages reach it through the viewer's membership (`room_for_member`), so a
/// non-member simply finds nothing.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Room {
    /// Its id.
    pub id: i64,
    /// Its code, `ABCD-EFGH`.
    pub code: String,
    /// The name its creator gave it (empty: none).
    pub name: String,
    /// Who created it: they may delete anyone's messages.
    pub created_by: i64,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// The newest event's sequence number (0: nothing posted yet).
    pub last_seq: i64,
    /// When the room was created or last posted in.
    pub last_activity_at: i64,
    /// A direct conversation's pair of people, `"{smaller id}:{larger id}"` (`None`: a room).
    /// Read where a route must tell the two apart; elsewhere `None`.
    #[sqlx(default)]
    pub direct_pair: Option<String>,
    /// What the room is about, under its name (empty: none).
    pub topic: String,
}

impl Room {
    /// Whether this is a direct conversation between two people (`store::direct`).
    pub fn is_direct(&self) -> bool {
        self.direct_pair.is_some()
    }

    /// Whether `user_id` owns this room (its creator, or whoever it was handed to): may change
    /// its settings and delete others' messages. A direct conversation has no owner: neither
    /// of its two people manages the other.
    pub fn owned_by(&self, user_id: i64) -> bool {
        !self.is_direct() && self.created_by == user_id
    }

    /// The name people gave it, or its code when it has none. A direct conversation's code
    /// is never shown: where the other person's name is not at hand it is "Direct messages".
    pub fn display_name(&self) -> &str {
        if self.is_direct() {
            "Direct messages"
        } else if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }
}

/// One person in a room.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Member {
    /// Their user id.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// When they joined (Unix ms).
    pub joined_at: i64,
}

/// A message as shown: the same struct feeds the page, the older-messages fragment and the
/// live WebSocket fragment. Serialisable: the NATS bus carries it to other instances.
#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The room.
    pub room_id: i64,
    /// Its number in the room.
    pub seq: i64,
    /// The author's user id.
    pub user_id: i64,
    /// The author's username.
    pub author: String,
    /// The text, as stored.
    pub body: String,
    /// When it was posted (Unix ms).
    pub created_at: i64,
    /// When it was last edited, if ever.
    pub edited_at: Option<i64>,
    /// Who it mentions (members of the room when it was posted), by user id: rendered with
    /// `data-user` so `/me.css` can accent one's own.
    #[sqlx(try_from = "Option<String>")]
    pub mentions: Mentions,
    /// When it was deleted, if it was: its body is empty then (the row keeps its place).
    pub deleted_at: Option<i64>,
    /// The files it carries (none once it is deleted).
    #[sqlx(try_from = "Option<String>")]
    pub attachments: Attachments,
    /// The room event this copy of the message stands for. Its own `seq` when it is new to
    /// whoever reads it (just posted, or read as posted after a cursor: appended, in its current
    /// state); the seq of the edit or delete that changed it when it is read as changed (shown
    /// in place of the copy the reader has). On a page, the newest event that touched it.
    pub event: i64,
    /// What a system line says happened (`store::settings::Action`, as JSON); `None` for a
    /// person's message.
    pub action: Option<String>,
}

impl Message {
    /// Whether this copy is a change to a message the reader already shows (an edit or a
    /// delete), rather than a message to append.
    pub fn is_change(&self) -> bool {
        self.event > self.seq
    }

    /// Whether it was deleted (its body is gone).
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Whether it is a system line (a change to the room), not a person's message.
    pub fn is_system(&self) -> bool {
        self.action.is_some()
    }
}

/// A room in "my rooms", with its latest message for the preview.
#[derive(Debug, Clone, FromRow)]
pub struct RoomSummary {
    /// Its code.
    pub code: String,
    /// Its name (empty: none).
    pub name: String,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// The newest message's seq.
    pub last_seq: i64,
    /// When it was created or last posted in (Unix ms).
    pub last_activity_at: i64,
    /// Who wrote the latest message.
    pub last_author: Option<String>,
    /// The first 200 characters of the latest message.
    pub last_body: Option<String>,
    /// Whether the latest message was deleted (its text is gone).
    pub last_deleted: bool,
    /// Messages I have not read, counted up to `UNREAD_CAP` (see `unread_sql!`).
    pub unread: i64,
    /// Of them, those that mention me, up to `UNREAD_CAP`.
    pub mentions: i64,
    /// What I want to hear about the room.
    #[sqlx(try_from = "String")]
    pub notify: NotifyColumn,
}

impl RoomSummary {
    /// What its mark beside it says.
    pub fn marks(&self) -> Marks {
        Marks {
            unread: self.unread,
            mentions: self.mentions,
            notify: self.notify.0,
        }
    }

    /// The name people gave it, or its code when it has none.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }
}

/// What a room's mark says: its unread messages, those of them that mention the viewer, and
/// what the viewer wants to hear about the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// Unread messages by others, up to `UNREAD_CAP`.
    pub unread: i64,
    /// Of them, those that mention the viewer, up to `UNREAD_CAP`.
    pub mentions: i64,
    /// The viewer's setting for the room.
    pub notify: Notify,
}

impl Marks {
    /// The number the badge shows: every unread message, only those that mention the viewer,
    /// or nothing, as they chose.
    pub fn shown(&self) -> i64 {
        match self.notify {
            Notify::All => self.unread,
            Notify::Mentions => self.mentions,
            Notify::Nothing => 0,
        }
    }

    /// Whether the mark is the stronger one: something unread mentions the viewer.
    pub fn mentioned(&self) -> bool {
        self.notify != Notify::Nothing && self.mentions > 0
    }
}

/// Unread counts stop here: a room with a million unread messages costs a hundred rows, and
/// shows "99+" (`views::unread::count`).
pub const UNREAD_CAP: i64 = 100;

/// The unread count of room `$room` for member `$user` whose read mark is `$mark` (SQL
/// expressions): messages after the mark, not the member's own, not deleted, counted up to
/// `UNREAD_CAP` (the `LIMIT`). Not `last_seq - last_read_seq`: edits and deletes take seqs too.
/// A range scan of the messages' primary key `(room_id, seq)` from the mark.
macro_rules! unread_sql {
    ($room:literal, $mark:literal, $user:literal) => {
        concat!(
            "(SELECT COUNT(*) FROM (SELECT 1 FROM messages n WHERE n.room_id = ",
            $room,
            " AND n.seq > ",
            $mark,
            " AND n.user_id <> ",
            $user,
            " AND n.deleted_at IS NULL AND n.kind = 'text' LIMIT 100) AS n)"
        )
    };
}

/// Of the messages `unread_sql!` counts, those that mention `$user`, up to 100 as well: a
/// range of the mentions index `(user_id, room_id, seq)`.
macro_rules! unread_mentions_sql {
    ($room:literal, $mark:literal, $user:literal) => {
        concat!(
            "(SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn \
               JOIN messages n ON n.room_id = mn.room_id AND n.seq = mn.seq \
              WHERE mn.user_id = ",
            $user,
            " AND mn.room_id = ",
            $room,
            " AND mn.seq > ",
            $mark,
            " AND n.user_id <> ",
            $user,
            " AND n.deleted_at IS NULL AND n.kind = 'text' LIMIT 100) AS mn)"
        )
    };
}

pub(super) use {unread_mentions_sql, unread_sql};

/// The seq of the first message counted by `unread_sql!` (NULL: none): the same scan, stopped
/// at the first row.
macro_rules! first_unread_sql {
    ($room:literal, $mark:literal, $user:literal) => {
        concat!(
            "(SELECT n.seq FROM messages n WHERE n.room_id = ",
            $room,
            " AND n.seq > ",
            $mark,
            " AND n.user_id <> ",
            $user,
            " AND n.deleted_at IS NULL AND n.kind = 'text' ORDER BY n.seq LIMIT 1)"
        )
    };
}

/// `Store::room_overview`'s statement, for a backend whose JSON array constructor is `$array`
/// and whose aggregate of them opens with `$agg` and closes with `$agg_end` (an empty list
/// must come out as the text `[]`).
macro_rules! overview_sql {
    ($array:literal, $agg:literal, $agg_end:literal) => {
        concat!(
            "SELECT r.id, r.code, r.name, r.created_by, r.created_at, r.last_seq, r.last_activity_at, \
               r.direct_pair, r.topic, me.last_read_seq, ",
            first_unread_sql!("r.id", "me.last_read_seq", "$2"),
            " AS first_unread, \
               (SELECT ",
            $agg,
            $array,
            "(mb.user_id, COALESCE(u.username, ''), mb.joined_at) \
                       ORDER BY u.username_key",
            $agg_end,
            " \
                  FROM members mb JOIN users u ON u.id = mb.user_id \
                 WHERE mb.room_id = r.id) AS members, \
               (SELECT ",
            $agg,
            $array,
            "(l.code, l.name, l.unread, l.id, l.last_seq, l.mentions, l.notify, l.direct) \
                       ORDER BY l.last_activity_at DESC, l.id DESC",
            $agg_end,
            " \
                  FROM (SELECT r2.id, r2.code, r2.name, r2.last_activity_at, r2.last_seq, ",
            unread_sql!("r2.id", "m2.last_read_seq", "$2"),
            " AS unread, ",
            unread_mentions_sql!("r2.id", "m2.last_read_seq", "$2"),
            " AS mentions, \
                   COALESCE(m2.notify, (SELECT notify_default FROM users WHERE id = $2)) AS notify, \
                   CASE WHEN r2.direct_pair IS NOT NULL THEN \
                     (SELECT u3.username FROM members m3 JOIN users u3 ON u3.id = m3.user_id \
                       WHERE m3.room_id = r2.id AND m3.user_id <> $2) END AS direct \
                          FROM members m2 JOIN rooms r2 ON r2.id = m2.room_id \
                         WHERE m2.user_id = $2 AND m2.hidden_at IS NULL \
                         ORDER BY r2.last_activity_at DESC, r2.id DESC \
                         LIMIT CAST($3 AS BIGINT)) l) AS links, \
               me.notify, (SELECT notify_default FROM users WHERE id = $2) AS notify_default \
             FROM rooms r JOIN members me ON me.room_id = r.id AND me.user_id = $2 \
             WHERE r.code = $1"
        )
    };
}

/// What the room page shows besides messages (`Store::room_overview`).
#[derive(Debug, Clone)]
pub struct RoomOverview {
    /// The room.
    pub room: Room,
    /// Its members, by name.
    pub members: Vec<Member>,
    /// The viewer's rooms for the side rail, most recently active first.
    pub links: Vec<RoomLink>,
    /// What the viewer wants to hear about the room.
    pub notify: RoomNotify,
    /// The viewer's read mark in this room, as it was before this page.
    pub last_read_seq: i64,
    /// The first message the viewer has not read (not their own, not deleted), if any: where
    /// the page puts its "New messages" divider.
    pub first_unread: Option<i64>,
}

#[derive(FromRow)]
struct OverviewRow {
    #[sqlx(flatten)]
    room: Room,
    last_read_seq: i64,
    first_unread: Option<i64>,
    members: String,
    links: String,
    notify: Option<String>,
    notify_default: String,
}

/// A room in the room page's side rail: just enough to link to it, with its unread count.
#[derive(Debug, Clone, FromRow)]
pub struct RoomLink {
    /// Its code.
    pub code: String,
    /// Its name (empty: none).
    pub name: String,
    /// Messages the viewer has not read, up to `UNREAD_CAP`.
    pub unread: i64,
    /// Its id: live activity names rooms by id (`chat::activity`).
    pub id: i64,
    /// Its newest seq when the rail was read: live activity at or below it is counted already.
    pub last_seq: i64,
    /// Of the unread messages, those that mention the viewer, up to `UNREAD_CAP`.
    pub mentions: i64,
    /// What the viewer wants to hear about it.
    #[sqlx(try_from = "String")]
    pub notify: NotifyColumn,
    /// For a direct conversation, the other person's username (`None`: a room).
    #[sqlx(default)]
    pub direct: Option<String>,
}

impl RoomLink {
    /// What its mark beside it says.
    pub fn marks(&self) -> Marks {
        Marks {
            unread: self.unread,
            mentions: self.mentions,
            notify: self.notify.0,
        }
    }

    /// The name people gave it, or its code when it has none.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }
}

/// A slice of a room's history in ascending `seq` order.
#[derive(Debug, Clone, Default)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<Message>,
    /// Whether messages older than the first one exist.
    pub has_older: bool,
}

/// Room ids by code, as read lately (`room_id`).
#[derive(Debug, Default)]
pub(super) struct RoomIds(parking_lot::Mutex<std::collections::HashMap<String, i64>>);

/// Codes whose room id is kept; past this the map starts over.
const ROOM_IDS_MAX: usize = 100_000;

impl RoomIds {
    fn get(&self, code: &str) -> Option<i64> {
        let ids = self.0.lock();
        ids.get(code).copied()
    }

    pub(super) fn forget(&self, code: &str) {
        self.0.lock().remove(code);
    }

    fn insert(&self, code: String, id: i64) {
        let mut ids = self.0.lock();
        if ids.len() >= ROOM_IDS_MAX {
            ids.clear();
        }
        ids.insert(code, id);
    }
}

/// What joining did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Newly a member.
    Joined,
    /// Was a member already.
    AlreadyMember,
}

/// The columns of `Message`, for `concat!` into static SQL; `$event` is what the read says its
/// `event` is (by default the newest event that touched it).
macro_rules! message_columns {
    () => {
        message_columns!("COALESCE(m.changed_seq, m.seq)")
    };
    ($event:literal) => {
        concat!(
            "m.room_id, m.seq, m.user_id, COALESCE(u.username, '') AS author, m.body, \
             m.created_at, m.edited_at, m.deleted_at, ",
            $event,
            " AS event, m.action, ",
            mentions_column!(),
            ", ",
            attachments_column!()
        )
    };
}

impl Store {
    /// Creates a room with its creator as first member. A taken code comes back as a unique
    /// violation; the caller draws another.
    pub async fn create_room(
        &self,
        code: RoomCode,
        name: &RoomName,
        user_id: i64,
        now: i64,
    ) -> Result<Room> {
        on_write!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let room = sqlx::query_as::<_, Room>(
                "INSERT INTO rooms (code, name, created_by, created_at, last_activity_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id, code, name, created_by, created_at, last_seq, last_activity_at, topic",
            )
            .bind(code.canonical())
            .bind(name.as_str())
            .bind(user_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO members (room_id, user_id, joined_at) VALUES ($1, $2, $3)")
                .bind(room.id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(room)
        })
    }

    /// The room with this code, whoever asks (the invitation page shows its name).
    pub async fn room_by_code(&self, code: RoomCode) -> Result<Option<Room>> {
        let room = on_read!(&self.db, pool => sqlx::query_as::<_, Room>(
            // A direct conversation's code cannot be joined: it is not there for a code.
            "SELECT id, code, name, created_by, created_at, last_seq, last_activity_at, topic FROM rooms \
             WHERE code = $1 AND direct_pair IS NULL",
        )
        .bind(code.canonical())
        .fetch_optional(pool)
        .await)?;
        Ok(room)
    }

    /// The room with this code if `user_id` is a member: the one access check for every room
    /// route and socket.
    pub async fn room_for_member(&self, code: RoomCode, user_id: i64) -> Result<Option<Room>> {
        let room = on_read!(&self.db, pool => sqlx::query_as::<_, Room>(
            "SELECT r.id, r.code, r.name, r.created_by, r.created_at, r.last_seq, r.last_activity_at, \
                    r.direct_pair, r.topic \
             FROM rooms r JOIN members mb ON mb.room_id = r.id AND mb.user_id = $2 \
             WHERE r.code = $1",
        )
        .bind(code.canonical())
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(room)
    }

    /// The id of the room with this code, if it was read before. Rooms are never deleted and
    /// change code only when rotated (which forgets the old one here), so an id once read is remembered: posting needs nothing else (the writer
    /// checks membership in the statement that inserts), and a post then costs one statement.
    pub fn remembered_room_id(&self, code: RoomCode) -> Option<i64> {
        self.room_ids.get(&code.canonical())
    }

    /// The id of the room with this code, if there is one, read from the database (and
    /// remembered, see `remembered_room_id`).
    pub async fn read_room_id(&self, code: RoomCode) -> Result<Option<i64>> {
        let canonical = code.canonical();
        let id: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM rooms WHERE code = $1",
        )
        .bind(&canonical)
        .fetch_optional(pool)
        .await)?;
        if let Some(id) = id {
            self.room_ids.insert(canonical, id);
        }
        Ok(id)
    }

    /// Whether `user_id` is (still) a member of the room.
    pub async fn is_member(&self, room_id: i64, user_id: i64) -> Result<bool> {
        let found: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT user_id FROM members WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }

    /// Makes `user_id` a member of the room.
    pub async fn join_room(&self, room_id: i64, user_id: i64, now: i64) -> Result<JoinOutcome> {
        let done = on_write!(&self.db, pool => sqlx::query(
            // What was said before someone joined is not unread to them: they start read up
            // to the room's newest event.
            "INSERT INTO members (room_id, user_id, joined_at, last_read_seq) \
             SELECT $1, $2, $3, last_seq FROM rooms WHERE id = $1 \
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(if done == 1 {
            JoinOutcome::Joined
        } else {
            JoinOutcome::AlreadyMember
        })
    }

    /// Removes the membership; `false` if there was none.
    pub async fn leave_room(&self, room_id: i64, user_id: i64) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "DELETE FROM members WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// A room's members by name.
    pub async fn members(&self, room_id: i64) -> Result<Vec<Member>> {
        let members = on_read!(&self.db, pool => sqlx::query_as::<_, Member>(
            "SELECT mb.user_id, COALESCE(u.username, '') AS username, mb.joined_at \
             FROM members mb JOIN users u ON u.id = mb.user_id \
             WHERE mb.room_id = $1 ORDER BY u.username_key",
        )
        .bind(room_id)
        .fetch_all(pool)
        .await)?;
        Ok(members)
    }

    /// One member of the room, if they are one.
    pub async fn member(&self, room_id: i64, user_id: i64) -> Result<Option<Member>> {
        let member = on_read!(&self.db, pool => sqlx::query_as::<_, Member>(
            "SELECT mb.user_id, COALESCE(u.username, '') AS username, mb.joined_at \
             FROM members mb JOIN users u ON u.id = mb.user_id \
             WHERE mb.room_id = $1 AND mb.user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(member)
    }

    /// The room with this code if `user_id` is a member, with its members (by name) and the
    /// member's other rooms for the side rail (`links`, most recently active first): what the
    /// room page shows besides messages, in one statement and one row. Each statement and
    /// each row is a round trip to SQLite's worker thread (a thread switch on one core); as
    /// three queries the page spent more time switching than rendering (measured: 8,600
    /// against 12,800 pages/s).
    pub async fn room_overview(
        &self,
        code: RoomCode,
        user_id: i64,
        links: i64,
    ) -> Result<Option<RoomOverview>> {
        // The lists travel as JSON arrays of arrays: [[user_id, username, joined_at], ...] and
        // [[code, name], ...], built with each backend's JSON functions.
        let sql = match &self.db {
            super::Db::Sqlite { .. } => overview_sql!("json_array", "json_group_array(", ")"),
            super::Db::Postgres(_) => {
                overview_sql!("json_build_array", "COALESCE(json_agg(", "), '[]')::text")
            }
        };
        let row: Option<OverviewRow> = on_read!(&self.db, pool => sqlx::query_as(sql)
            .bind(code.canonical())
            .bind(user_id)
            .bind(links)
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
        let members: Vec<(i64, String, i64)> =
            serde_json::from_str(&row.members).map_err(decode)?;
        #[allow(clippy::type_complexity)]
        let links: Vec<(String, String, i64, i64, i64, i64, String, Option<String>)> =
            serde_json::from_str(&row.links).map_err(decode)?;
        Ok(Some(RoomOverview {
            room: row.room,
            members: members
                .into_iter()
                .map(|(user_id, username, joined_at)| Member {
                    user_id,
                    username,
                    joined_at,
                })
                .collect(),
            links: links
                .into_iter()
                .map(
                    |(code, name, unread, id, last_seq, mentions, notify, direct)| RoomLink {
                        code,
                        name,
                        unread,
                        id,
                        last_seq,
                        mentions,
                        notify: NotifyColumn::from(notify),
                        direct,
                    },
                )
                .collect(),
            notify: RoomNotify::of(row.notify.as_deref(), &row.notify_default),
            last_read_seq: row.last_read_seq,
            first_unread: row.first_unread,
        }))
    }

    /// The rooms a user belongs to, most recently active first.
    pub async fn my_rooms(&self, user_id: i64) -> Result<Vec<RoomSummary>> {
        let rooms = on_read!(&self.db, pool => sqlx::query_as::<_, RoomSummary>(concat!(
            "SELECT r.code, r.name, r.created_at, r.last_seq, r.last_activity_at, \
                    u.username AS last_author, SUBSTR(m.body, 1, 200) AS last_body, \
                    m.deleted_at IS NOT NULL AS last_deleted, ",
            unread_sql!("r.id", "mb.last_read_seq", "mb.user_id"),
            " AS unread, ",
            unread_mentions_sql!("r.id", "mb.last_read_seq", "mb.user_id"),
            " AS mentions, COALESCE(mb.notify, me.notify_default) AS notify \
             FROM members mb \
             JOIN users me ON me.id = mb.user_id \
             JOIN rooms r ON r.id = mb.room_id \
             LEFT JOIN messages m ON m.room_id = r.id \
                  AND m.seq = (SELECT MAX(l.seq) FROM messages l WHERE l.room_id = r.id) \
             LEFT JOIN users u ON u.id = m.user_id \
             WHERE mb.user_id = $1 AND r.direct_pair IS NULL \
             ORDER BY r.last_activity_at DESC, r.id DESC LIMIT 500",
        ))
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(rooms)
    }

    /// Up to `limit` messages with `seq < before` (all of the newest when `before` is `None`),
    /// in ascending order.
    pub async fn messages_before(
        &self,
        room_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<MessagePage> {
        let before = before.unwrap_or(i64::MAX);
        let mut messages = on_read!(&self.db, pool => sqlx::query_as::<_, Message>(concat!(
            "SELECT ", message_columns!(), " FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT CAST($3 AS BIGINT)"
        ))
        .bind(room_id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(pool)
        .await)?;
        let has_older = messages.len() as i64 > limit;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok(MessagePage {
            messages,
            has_older,
        })
    }

    /// Message `seq` with up to `before` messages before it and `after` after it, in
    /// ascending order (`None`: no such message). One statement, each half a range scan of
    /// the primary key `(room_id, seq)` from `seq`, however far back it is.
    pub async fn messages_around(
        &self,
        room_id: i64,
        seq: i64,
        before: i64,
        after: i64,
    ) -> Result<Option<MessagePage>> {
        let mut messages = on_read!(&self.db, pool => sqlx::query_as::<_, Message>(concat!(
            "SELECT * FROM (SELECT ", message_columns!(), " FROM messages m \
             JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 AND m.seq <= $2 \
             ORDER BY m.seq DESC LIMIT CAST($3 AS BIGINT)) AS older \
             UNION ALL \
             SELECT * FROM (SELECT ", message_columns!(), " FROM messages m \
             JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 AND m.seq > $2 \
             ORDER BY m.seq LIMIT CAST($4 AS BIGINT)) AS newer"
        ))
        .bind(room_id)
        .bind(seq)
        // The message, those before it, and one more to tell whether there are older ones.
        .bind(before + 2)
        .bind(after)
        .fetch_all(pool)
        .await)?;
        messages.sort_unstable_by_key(|m| m.seq);
        if !messages.iter().any(|m| m.seq == seq) {
            return Ok(None);
        }
        let older = messages.iter().filter(|m| m.seq < seq).count() as i64;
        let has_older = older > before;
        if has_older {
            messages.remove(0);
        }
        Ok(Some(MessagePage {
            messages,
            has_older,
        }))
    }

    /// The room's events `after < event <= upto`, for a reader that shows every event up to
    /// `after`: the messages posted in that range, in their current state, as new (`event` is
    /// their seq), and the messages edited or deleted in it, as changes (`event` is the
    /// change's seq), ordered by `event`. A message posted and then changed in the range is
    /// there twice: appended as it is now, then changed to the same, because the change is
    /// what moves the reader's cursor to its seq (without it a page that caught up across a
    /// post and its edit would show the edit yet resume before it). An event a later one
    /// superseded (a message edited twice) is not there: the later one carries its result.
    /// So the answer may be shorter than the range, and empty, yet the reader is then current
    /// up to `upto`. Each event stands for at most one row, so a range of n seqs reads at
    /// most n rows. What a socket replays on (re)connect and fills gaps with, and what a hub
    /// catches up with.
    pub async fn events_between(
        &self,
        room_id: i64,
        after: i64,
        upto: i64,
    ) -> Result<Vec<Message>> {
        let mut events = on_read!(&self.db, pool => sqlx::query_as::<_, Message>(concat!(
            "SELECT ", message_columns!("m.seq"), " FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 \
             UNION ALL \
             SELECT ", message_columns!("m.changed_seq"), " FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 AND m.changed_seq IS NOT NULL AND m.changed_seq > $2 \
               AND m.changed_seq <= $3"
        ))
        .bind(room_id)
        .bind(after)
        .bind(upto)
        .fetch_all(pool)
        .await)?;
        events.sort_unstable_by_key(|m| m.event);
        Ok(events)
    }

    /// Up to `limit` messages with `after < seq <= upto`, as they are now, in ascending order
    /// (the API's history after a cursor of message numbers).
    pub async fn messages_between(
        &self,
        room_id: i64,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<Message>> {
        let messages = on_read!(&self.db, pool => sqlx::query_as::<_, Message>(concat!(
            "SELECT ", message_columns!(), " FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq LIMIT CAST($4 AS BIGINT)"
        ))
        .bind(room_id)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(messages)
    }

    /// Message `seq` of the room as it is now (`None`: no such message).
    pub async fn message(&self, room_id: i64, seq: i64) -> Result<Option<Message>> {
        let message = on_read!(&self.db, pool => sqlx::query_as::<_, Message>(concat!(
            "SELECT ", message_columns!(), " FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 AND m.seq = $2"
        ))
        .bind(room_id)
        .bind(seq)
        .fetch_optional(pool)
        .await)?;
        Ok(message)
    }

    /// The seq of what this person posted in the room with this `client_id`, if anything.
    pub async fn earlier_post(
        &self,
        room_id: i64,
        user_id: i64,
        client_id: &str,
    ) -> Result<Option<i64>> {
        let seq = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT seq FROM messages WHERE room_id = $1 AND user_id = $2 AND client_id = $3",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?;
        Ok(seq)
    }

    /// The room's newest seq (`None`: no such room).
    pub async fn last_seq(&self, room_id: i64) -> Result<Option<i64>> {
        let seq = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT last_seq FROM rooms WHERE id = $1",
        )
        .bind(room_id)
        .fetch_optional(pool)
        .await)?;
        Ok(seq)
    }
}
