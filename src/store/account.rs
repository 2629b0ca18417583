//! Account care (issue 18): a person's sessions listed and ended one by one, their username
//! changed, their data read page by page for an export, and their account deleted.

use sqlx::FromRow;

use super::{Attachments, Result, Room, Store, on_read, on_write};
use crate::domain::Username;

/// How long after one username change the next is allowed: a day.
pub const RENAME_GAP_MS: i64 = 24 * 60 * 60 * 1000;

/// The most characters of a User-Agent kept with a session: enough for every real browser's.
pub const USER_AGENT_MAX: usize = 300;

/// The provider and subject of the row that kept messages of deleted accounts point at. No
/// sign-in can produce them: the development provider is `dev`, an OpenID provider is named
/// by its host, and neither is ever empty.
const GONE_PROVIDER: &str = "";
/// What the placeholder is shown as: a space, so no one can choose it (`Username::parse`).
pub const GONE_NAME: &str = "deleted user";

/// A signed-in browser as its owner sees it on `/profile/sessions`.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its opaque public id: what `/profile/sessions/{id}/end` names (never the token's hash).
    pub public_id: String,
    /// The User-Agent it signed in with (cut to `USER_AGENT_MAX` characters).
    pub user_agent: String,
    /// When it signed in (Unix ms).
    pub created_at: i64,
    /// When it was last used (Unix ms; renewed at most once a minute).
    pub last_seen_at: i64,
    /// The SHA-256 of its token, to mark "this browser" (never shown).
    pub token_hash: Vec<u8>,
}

/// What became of a username change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// Changed; the name it had before.
    Done {
        /// The previous username.
        was: String,
    },
    /// The same name, the same case: nothing to do.
    Unchanged,
    /// Changed less than a day ago: possible again at this time (Unix ms).
    TooSoon {
        /// When the next change is allowed.
        next_at: i64,
    },
}

/// One room a person is in, for their export.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ExportRoom {
    /// Its code (`ABCD-EFGH`); empty for a direct conversation, whose code is never shown.
    pub code: String,
    /// Its name.
    pub name: String,
    /// For a direct conversation, the other person's username.
    pub direct_with: Option<String>,
    /// When the person joined (Unix ms).
    pub joined_at: i64,
}

/// One of a person's messages, for their export.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ExportMessage {
    /// The room's id: half of the key the export pages by.
    pub room_id: i64,
    /// Its number in the room: the other half.
    pub seq: i64,
    /// The room's code (empty for a direct conversation).
    pub code: String,
    /// For a direct conversation, the other person's username.
    pub direct_with: Option<String>,
    /// The text.
    pub body: String,
    /// When it was posted (Unix ms).
    pub created_at: i64,
    /// When it was last edited, if ever.
    pub edited_at: Option<i64>,
    /// Its files.
    #[sqlx(try_from = "Option<String>")]
    pub attachments: Attachments,
}

/// The other person of a direct conversation `r` (a correlated subquery; `$1` is the person).
macro_rules! direct_with {
    () => {
        "CASE WHEN r.direct_pair IS NOT NULL THEN (SELECT u.username FROM members o \
           JOIN users u ON u.id = o.user_id WHERE o.room_id = r.id AND o.user_id <> $1 LIMIT 1) END"
    };
}

/// Rows of a system line that may name the person being deleted.
#[derive(FromRow)]
struct SystemLine {
    room_id: i64,
    seq: i64,
    user_id: i64,
    action: Option<String>,
}

impl Store {
    /// A user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: i64, now: i64) -> Result<Vec<SessionInfo>> {
        let list = on_read!(&self.db, pool => sqlx::query_as::<_, SessionInfo>(
            "SELECT COALESCE(public_id, '') AS public_id, user_agent, created_at, last_seen_at, token_hash \
             FROM sessions WHERE user_id = $1 AND expires_at > $2 \
             ORDER BY created_at DESC, public_id",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(pool)
        .await)?;
        Ok(list)
    }

    /// Ends `user_id`'s session with this public id; its token hash (for closing its sockets),
    /// or `None` when they have no such session (someone else's id is `None` too).
    pub async fn end_session(&self, user_id: i64, public_id: &str) -> Result<Option<Vec<u8>>> {
        let hash = on_write!(&self.db, pool => sqlx::query_scalar::<_, Vec<u8>>(
            "DELETE FROM sessions WHERE public_id = $1 AND user_id = $2 RETURNING token_hash",
        )
        .bind(public_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        if let Some(hash) = &hash {
            self.sessions.forget(|r| &r.token_hash == hash);
        }
        Ok(hash)
    }

    /// Changes a username, at most once per `RENAME_GAP_MS`. A unique violation (someone else
    /// holds the name in any case) comes back as an error the caller turns into "taken"; a
    /// change of case of one's own name is one's own key, so it passes.
    pub async fn change_username(&self, user_id: i64, name: &Username, now: i64) -> Result<Rename> {
        let current: Option<(Option<String>, Option<i64>)> = on_read!(&self.db, pool => sqlx::query_as(
            "SELECT username, username_changed_at FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        let Some((Some(was), _)) = current else {
            return Ok(Rename::Unchanged);
        };
        if was == name.as_str() {
            return Ok(Rename::Unchanged);
        }
        // The condition is checked again in the statement: two changes racing get one day.
        let done = on_write!(&self.db, pool => sqlx::query(
            "UPDATE users SET username = $1, username_key = $2, username_changed_at = $3 \
             WHERE id = $4 AND (username_changed_at IS NULL OR username_changed_at <= $5)",
        )
        .bind(name.as_str())
        .bind(name.key())
        .bind(now)
        .bind(user_id)
        .bind(now - RENAME_GAP_MS)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if done == 1 {
            // Cached sessions carry the name; other instances forget theirs when
            // `Chat::names_changed` tells them.
            self.sessions.forget(|r| r.user.id == user_id);
            return Ok(Rename::Done { was });
        }
        let at: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT username_changed_at FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_one(pool)
        .await)?;
        Ok(Rename::TooSoon {
            next_at: at.unwrap_or(now) + RENAME_GAP_MS,
        })
    }

    /// When `user_id` may change their username again (`None`: now).
    pub async fn next_rename_at(&self, user_id: i64, now: i64) -> Result<Option<i64>> {
        let at: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT username_changed_at FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await)?
        .flatten();
        Ok(at.map(|at| at + RENAME_GAP_MS).filter(|next| *next > now))
    }

    /// The rooms a person is in, for their export, oldest membership first.
    pub async fn export_rooms(&self, user_id: i64) -> Result<Vec<ExportRoom>> {
        let rooms = on_read!(&self.db, pool => sqlx::query_as::<_, ExportRoom>(concat!(
            "SELECT CASE WHEN r.direct_pair IS NULL THEN r.code ELSE '' END AS code, r.name, ",
            direct_with!(),
            " AS direct_with, mb.joined_at \
             FROM members mb JOIN rooms r ON r.id = mb.room_id \
             WHERE mb.user_id = $1 ORDER BY mb.joined_at, r.id",
        ))
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(rooms)
    }

    /// Up to `limit` of a person's messages after `(room_id, seq)` in key order (not deleted,
    /// not system lines): one page of an export. Keyset paging on `messages_by_user`, so each
    /// page costs the same however deep the export is.
    pub async fn export_messages(
        &self,
        user_id: i64,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<ExportMessage>> {
        let page = on_read!(&self.db, pool => sqlx::query_as::<_, ExportMessage>(concat!(
            "SELECT m.room_id, m.seq, \
                    CASE WHEN r.direct_pair IS NULL THEN r.code ELSE '' END AS code, ",
            direct_with!(),
            " AS direct_with, m.body, m.created_at, m.edited_at, ",
            super::attachments_column!(),
            " FROM messages m JOIN rooms r ON r.id = m.room_id \
             WHERE m.user_id = $1 AND (m.room_id > $2 OR (m.room_id = $2 AND m.seq > $3)) \
               AND m.kind = 'text' AND m.deleted_at IS NULL \
             ORDER BY m.room_id, m.seq LIMIT CAST($4 AS BIGINT)",
        ))
        .bind(user_id)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(page)
    }

    /// The rooms a person is a member of (every column of `Room`).
    pub async fn rooms_of(&self, user_id: i64) -> Result<Vec<Room>> {
        let rooms = on_read!(&self.db, pool => sqlx::query_as::<_, Room>(
            "SELECT r.id, r.code, r.name, r.created_by, r.created_at, r.last_seq, \
                    r.last_activity_at, r.direct_pair, r.topic \
             FROM members mb JOIN rooms r ON r.id = mb.room_id \
             WHERE mb.user_id = $1 ORDER BY r.id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(rooms)
    }

    /// Up to `limit` keys (room, seq) of a person's messages that are not deleted, after
    /// `after`: what deleting their account with their messages deletes, page by page.
    pub async fn live_messages_of(
        &self,
        user_id: i64,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let keys = on_read!(&self.db, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT room_id, seq FROM messages \
             WHERE user_id = $1 AND (room_id > $2 OR (room_id = $2 AND seq > $3)) \
               AND kind = 'text' AND deleted_at IS NULL \
             ORDER BY room_id, seq LIMIT CAST($4 AS BIGINT)",
        )
        .bind(user_id)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(keys)
    }

    /// The rooms holding any row of a person's messages (those they left included).
    pub async fn rooms_with_messages_of(&self, user_id: i64) -> Result<Vec<i64>> {
        let ids = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT DISTINCT room_id FROM messages WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(ids)
    }

    /// Deletes the API tokens of a user (their account is being deleted: nothing may act for
    /// them from now on).
    pub async fn revoke_all_api_tokens(&self, user_id: i64) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The last step of deleting an account, in one transaction, once its sessions ended, its
    /// rooms were left and (if asked) its messages deleted: whatever still names the person
    /// stops doing so, then their row goes (sessions, tokens, memberships, mentions and
    /// anything else that references it go with it by `ON DELETE CASCADE`).
    ///
    /// - Their remaining rows in `messages` (kept messages, system lines they wrote) pass to
    ///   one shared placeholder user, shown as "deleted user", which carries nobody's identity.
    /// - System lines that name them (`who`: "removed ada", "ada owns it now", and the names
    ///   they had before, from their own "changed their username" lines) name nobody.
    /// - Rooms they created or owned and direct conversations they were in name nobody.
    pub async fn delete_account(&self, user_id: i64, username: &str) -> Result<()> {
        on_write!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // Made by the first deletion; two at once insert it once.
            sqlx::query(
                "INSERT INTO users (provider, subject, email, username, created_at) \
                 VALUES ($1, $1, '', $2, 0) ON CONFLICT (provider, subject) DO NOTHING",
            )
            .bind(GONE_PROVIDER)
            .bind(GONE_NAME)
            .execute(&mut *tx)
            .await?;
            let gone: i64 = sqlx::query_scalar(
                "SELECT id FROM users WHERE provider = $1 AND subject = $1",
            )
            .bind(GONE_PROVIDER)
            .fetch_one(&mut *tx)
            .await?;
            // Every name they went by: the current one and those their rename lines recorded.
            let own: Vec<SystemLine> = sqlx::query_as(
                "SELECT room_id, seq, user_id, action FROM messages \
                 WHERE user_id = $1 AND kind = 'system'",
            )
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut names = vec![username.to_string()];
            for line in &own {
                if let Some(action) = line.action.as_deref().and_then(|a| serde_json::from_str::<super::Action>(a).ok())
                    && action.what == super::What::Username
                    && let Some(was) = action.who
                {
                    names.push(was);
                }
            }
            names.sort();
            names.dedup();
            let mut lines = own;
            for name in &names {
                // A prefilter (LIKE treats `_` as any character): each row is parsed below.
                let found: Vec<SystemLine> = sqlx::query_as(
                    "SELECT room_id, seq, user_id, action FROM messages \
                     WHERE kind = 'system' AND action LIKE $1",
                )
                .bind(format!("%\"who\":\"{name}\"%"))
                .fetch_all(&mut *tx)
                .await?;
                lines.extend(found);
            }
            for line in lines {
                let Some(mut action) = line.action.as_deref().and_then(|a| serde_json::from_str::<super::Action>(a).ok()) else {
                    continue;
                };
                let names_me = action.who.as_ref().is_some_and(|w| names.contains(w));
                let renamed_me = line.user_id == user_id && action.what == super::What::Username;
                if !(names_me || renamed_me) {
                    continue;
                }
                action.who = if renamed_me { None } else { Some(GONE_NAME.to_string()) };
                let json = serde_json::to_string(&action).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                sqlx::query("UPDATE messages SET action = $3, body = $4 WHERE room_id = $1 AND seq = $2")
                    .bind(line.room_id)
                    .bind(line.seq)
                    .bind(&json)
                    .bind(action.sentence())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE messages SET user_id = $2 WHERE user_id = $1")
                .bind(user_id)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE rooms SET created_by = $2 WHERE created_by = $1")
                .bind(user_id)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
            // "{smaller id}:{larger id}" names them; the conversation stays, as a direct one
            // that no pair will open again.
            sqlx::query(
                "UPDATE rooms SET direct_pair = 'gone:' || CAST(id AS TEXT) \
                 WHERE direct_pair LIKE $1 OR direct_pair LIKE $2",
            )
            .bind(format!("{user_id}:%"))
            .bind(format!("%:{user_id}"))
            .execute(&mut *tx)
            .await?;
            if matches!(self.db, super::Db::Postgres(_)) {
                sqlx::query("DELETE FROM presence WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        })?;
        self.sessions.forget(|r| r.user.id == user_id);
        Ok(())
    }
}
