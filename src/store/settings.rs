//! Room settings: what a room's owner changes about it (its name and topic, its code, its
//! members, who owns it), and the owner leaving. Each change is written by the post writer in
//! the transaction of a *system line*, a row of `messages` with `kind = 'system'` that takes the
//! room's next seq: readers learn of the change through the room's event sequence, so a page
//! that resumes after any seq ends exactly where a fresh page would (DESIGN.md §9b).

use serde::{Deserialize, Serialize};

use super::{Message, Room, Store, StoreError, on_read};
use crate::domain::{RoomCode, RoomName, RoomTopic};

/// What a system line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// The room's name changed.
    Renamed,
    /// Its topic changed.
    Topic,
    /// Its code was rotated: the old code and invitation link stopped working.
    Rotated,
    /// A member was removed (`who`).
    Removed,
    /// The owner handed the room to another member (`who`).
    Owner,
    /// The owner left, and the room passed to its longest-standing member (`who`).
    Handover,
    /// The line's author changed their username (`who`: the name they had before; none once
    /// their account is deleted).
    Username,
    /// The line's author deleted their account and so left the room: their messages here are
    /// shown as by "deleted user" (or were deleted) from now on.
    Gone,
}

/// The room's heading (name, topic, code) as a change left it: every system line carries it,
/// so the frame that shows the line also brings the page's header up to date, and a page that
/// replays several lines ends with the newest heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heading {
    /// The name (empty: none; the code is shown).
    pub name: String,
    /// The topic (empty: none).
    pub topic: String,
    /// The code, `ABCD-EFGH`.
    pub code: String,
}

impl Heading {
    /// What the header's title shows: the name, or the code when there is none.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }
}

/// A system line's `action`: what happened, to whom, and the heading after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What happened.
    pub what: What,
    /// The member it concerns, by username (removed, new owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// The room's heading after the change.
    pub heading: Heading,
}

impl Action {
    /// A stored action (`None`: a person's message, or a row this version cannot read).
    pub fn of(message: &Message) -> Option<Self> {
        serde_json::from_str(message.action.as_deref()?).ok()
    }

    /// What the line says after the name of whoever did it, in plain text (stored as the
    /// line's `body`, for previews and the API; the page renders the same words).
    pub fn sentence(&self) -> String {
        let who = self.who.as_deref().unwrap_or("someone");
        let h = &self.heading;
        match self.what {
            What::Renamed if h.name.is_empty() => "removed the room's name".into(),
            What::Renamed => format!("renamed the room to “{}”", h.name),
            What::Topic if h.topic.is_empty() => "cleared the topic".into(),
            What::Topic => format!("set the topic to “{}”", h.topic),
            What::Rotated => {
                "changed the room code: the old code and invitation link no longer work".into()
            }
            What::Removed => format!("removed {who} from the room"),
            What::Owner => format!("made {who} the room's owner"),
            What::Handover => format!("left the room; {who} owns it now"),
            What::Username => match &self.who {
                Some(was) => format!("changed their username (was {was})"),
                None => "changed their username".into(),
            },
            What::Gone => "deleted their account".into(),
        }
    }
}

/// A change to a room, asked for by `user_id`.
#[derive(Debug, Clone)]
pub struct RoomEdit {
    /// The room.
    pub room_id: i64,
    /// Who asks: its owner (any member may `Leave`).
    pub user_id: i64,
    /// What changes.
    pub change: RoomChange,
}

/// What changes about a room.
#[derive(Debug, Clone)]
pub enum RoomChange {
    /// The name and topic, as the settings form sends both (a line for each that changed).
    Settings {
        /// The new name.
        name: RoomName,
        /// The new topic.
        topic: RoomTopic,
    },
    /// A new code; the current one becomes `previous_code`.
    Rotate(RoomCode),
    /// Take this member (by user id) out of the room.
    Remove(i64),
    /// Hand the room to this member (by user id).
    Owner(i64),
    /// The asker leaves; if they own the room, its longest-standing other member gets it.
    Leave,
    /// The asker changed their username from this one (any member; direct conversations too).
    Username(String),
    /// The asker's account is being deleted: they leave like `Leave`, and a line says so even
    /// where they owned nothing, so open pages learn it in the room's event sequence.
    Gone,
}

/// What became of a room change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOutcome {
    /// Done: the system lines it wrote (none when a member who does not own the room left, or
    /// the last member did), in seq order.
    Changed(Vec<Message>),
    /// Nothing to change (the same name and topic, the owner already owns it).
    Unchanged,
    /// The asker is not a member (or there is no such room).
    NotMember,
    /// The asker is a member but not the owner.
    NotOwner,
    /// The member the change concerns is not one (any more).
    NoSuchMember,
    /// The owner asked to remove themself: leaving is how.
    RemovingSelf,
}

/// One room change's statements, the same on both backends: `$tx` is a transaction that holds
/// the room's row (SQLite: the one writer; PostgreSQL: `FOR UPDATE` first), so each system
/// line's seq is the room's next in commit order.
macro_rules! edit_room {
    ($tx:expr, $edit:expr, $now:expr) => {{
        let edit: &$crate::store::settings::RoomEdit = $edit;
        let tx = $tx;
        let found: Option<(i64, bool)> = sqlx::query_as(
            "SELECT r.created_by, EXISTS (SELECT 1 FROM members WHERE room_id = r.id AND user_id = $2) \
             FROM rooms r WHERE r.id = $1",
        )
        .bind(edit.room_id)
        .bind(edit.user_id)
        .fetch_optional(&mut **tx)
        .await?;
        let owner = match found {
            Some((owner, true)) => owner,
            _ => return Ok($crate::store::settings::EditOutcome::NotMember),
        };
        let owns = owner == edit.user_id;
        if !owns
            && !matches!(
                edit.change,
                $crate::store::settings::RoomChange::Leave
                    | $crate::store::settings::RoomChange::Gone
                    | $crate::store::settings::RoomChange::Username(_)
            )
        {
            return Ok($crate::store::settings::EditOutcome::NotOwner);
        }
        let heading: (String, String) =
            sqlx::query_as("SELECT name, topic FROM rooms WHERE id = $1")
                .bind(edit.room_id)
                .fetch_one(&mut **tx)
                .await?;
        // What happened, and whom it concerns (a user id).
        let mut lines: Vec<($crate::store::settings::What, Option<i64>)> = Vec::new();
        match &edit.change {
            $crate::store::settings::RoomChange::Settings { name, topic } => {
                if name.as_str() != heading.0 {
                    sqlx::query("UPDATE rooms SET name = $2 WHERE id = $1")
                        .bind(edit.room_id)
                        .bind(name.as_str())
                        .execute(&mut **tx)
                        .await?;
                    lines.push(($crate::store::settings::What::Renamed, None));
                }
                if topic.as_str() != heading.1 {
                    sqlx::query("UPDATE rooms SET topic = $2 WHERE id = $1")
                        .bind(edit.room_id)
                        .bind(topic.as_str())
                        .execute(&mut **tx)
                        .await?;
                    lines.push(($crate::store::settings::What::Topic, None));
                }
            }
            $crate::store::settings::RoomChange::Rotate(code) => {
                // A code taken by another room is a unique violation: the caller draws again.
                sqlx::query("UPDATE rooms SET previous_code = code, code = $2 WHERE id = $1")
                    .bind(edit.room_id)
                    .bind(code.canonical())
                    .execute(&mut **tx)
                    .await?;
                lines.push(($crate::store::settings::What::Rotated, None));
            }
            $crate::store::settings::RoomChange::Remove(user_id) => {
                if *user_id == edit.user_id {
                    return Ok($crate::store::settings::EditOutcome::RemovingSelf);
                }
                let gone = sqlx::query("DELETE FROM members WHERE room_id = $1 AND user_id = $2")
                    .bind(edit.room_id)
                    .bind(*user_id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if gone == 0 {
                    return Ok($crate::store::settings::EditOutcome::NoSuchMember);
                }
                lines.push(($crate::store::settings::What::Removed, Some(*user_id)));
            }
            $crate::store::settings::RoomChange::Owner(user_id) => {
                if *user_id == owner {
                    return Ok($crate::store::settings::EditOutcome::Unchanged);
                }
                let done = sqlx::query(
                    "UPDATE rooms SET created_by = $2 WHERE id = $1 \
                     AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2)",
                )
                .bind(edit.room_id)
                .bind(*user_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if done == 0 {
                    return Ok($crate::store::settings::EditOutcome::NoSuchMember);
                }
                lines.push(($crate::store::settings::What::Owner, Some(*user_id)));
            }
            $crate::store::settings::RoomChange::Username(_) => {
                lines.push(($crate::store::settings::What::Username, None));
            }
            $crate::store::settings::RoomChange::Leave
            | $crate::store::settings::RoomChange::Gone => {
                sqlx::query("DELETE FROM members WHERE room_id = $1 AND user_id = $2")
                    .bind(edit.room_id)
                    .bind(edit.user_id)
                    .execute(&mut **tx)
                    .await?;
                if matches!(edit.change, $crate::store::settings::RoomChange::Gone) {
                    lines.push(($crate::store::settings::What::Gone, None));
                }
                if owns {
                    let heir: Option<i64> = sqlx::query_scalar(
                        "SELECT user_id FROM members WHERE room_id = $1 \
                         ORDER BY joined_at, user_id LIMIT 1",
                    )
                    .bind(edit.room_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if let Some(heir) = heir {
                        sqlx::query("UPDATE rooms SET created_by = $2 WHERE id = $1")
                            .bind(edit.room_id)
                            .bind(heir)
                            .execute(&mut **tx)
                            .await?;
                        lines.push(($crate::store::settings::What::Handover, Some(heir)));
                    }
                }
            }
        }
        if lines.is_empty() {
            return Ok(match edit.change {
                $crate::store::settings::RoomChange::Leave => $crate::store::settings::EditOutcome::Changed(Vec::new()),
                _ => $crate::store::settings::EditOutcome::Unchanged,
            });
        }
        let (name, topic, code): (String, String, String) =
            sqlx::query_as("SELECT name, topic, code FROM rooms WHERE id = $1")
                .bind(edit.room_id)
                .fetch_one(&mut **tx)
                .await?;
        // The lines of an account being deleted (its "deleted their account" and the room's
        // hand-over) are by the placeholder, as every page shows them from now on: an open page
        // may get the hand-over in a frame after the one `js/members.js` renames her messages
        // on, and nothing would rename it there.
        let author: String = match edit.change {
            $crate::store::settings::RoomChange::Gone => $crate::store::GONE_NAME.to_string(),
            _ => {
                sqlx::query_scalar("SELECT COALESCE(username, '') FROM users WHERE id = $1")
                    .bind(edit.user_id)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        let mut written = Vec::with_capacity(lines.len());
        for (what, whom) in lines {
            let who = match (whom, &edit.change) {
                (_, $crate::store::settings::RoomChange::Username(was)) => Some(was.clone()),
                (Some(id), _) => Some(
                    sqlx::query_scalar::<_, String>(
                        "SELECT COALESCE(username, '') FROM users WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?,
                ),
                (None, _) => None,
            };
            let action = $crate::store::settings::Action {
                what,
                who,
                heading: $crate::store::settings::Heading {
                    name: name.clone(),
                    topic: topic.clone(),
                    code: code.clone(),
                },
            };
            let body = action.sentence();
            let json = serde_json::to_string(&action)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let seq: i64 = sqlx::query_scalar(
                "UPDATE rooms SET last_seq = last_seq + 1, last_activity_at = $2 \
                 WHERE id = $1 RETURNING last_seq",
            )
            .bind(edit.room_id)
            .bind($now)
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO messages (room_id, seq, user_id, body, created_at, kind, action) \
                 VALUES ($1, $2, $3, $4, $5, 'system', $6)",
            )
            .bind(edit.room_id)
            .bind(seq)
            .bind(edit.user_id)
            .bind(&body)
            .bind($now)
            .bind(&json)
            .execute(&mut **tx)
            .await?;
            written.push($crate::store::Message {
                room_id: edit.room_id,
                seq,
                user_id: edit.user_id,
                author: author.clone(),
                body,
                created_at: $now,
                edited_at: None,
                deleted_at: None,
                event: seq,
                action: Some(json),
                mentions: $crate::store::Mentions::default(),
                attachments: Default::default(),
            });
        }
        Ok($crate::store::settings::EditOutcome::Changed(written))
    }};
}

pub(super) use edit_room;

impl Store {
    /// The member of the room whose username is `username` (any case), if there is one.
    pub async fn member_named(
        &self,
        room_id: i64,
        username: &str,
    ) -> Result<Option<i64>, StoreError> {
        let key = username.trim().to_ascii_lowercase();
        let id = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT mb.user_id FROM members mb JOIN users u ON u.id = mb.user_id \
             WHERE mb.room_id = $1 AND u.username_key = $2",
        )
        .bind(room_id)
        .bind(&key)
        .fetch_optional(pool)
        .await)?;
        Ok(id)
    }

    /// The room whose code was `code` before its last rotation, if `user_id` is a member: where
    /// a member's old link leads (308 to its current code).
    pub async fn room_moved_from(
        &self,
        code: RoomCode,
        user_id: i64,
    ) -> Result<Option<Room>, StoreError> {
        let room = on_read!(&self.db, pool => sqlx::query_as::<_, Room>(
            "SELECT r.id, r.code, r.name, r.created_by, r.created_at, r.last_seq, \
                    r.last_activity_at, r.topic \
             FROM rooms r JOIN members mb ON mb.room_id = r.id AND mb.user_id = $2 \
             WHERE r.previous_code = $1",
        )
        .bind(code.canonical())
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(room)
    }

    /// Forgets the room id remembered for `code` (it was rotated away).
    pub fn forget_room_code(&self, code: &str) {
        self.room_ids.forget(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(what: What, who: Option<&str>, name: &str, topic: &str) -> Action {
        Action {
            what,
            who: who.map(str::to_string),
            heading: Heading {
                name: name.into(),
                topic: topic.into(),
                code: "ABCD-EFGH".into(),
            },
        }
    }

    #[test]
    fn each_system_line_says_what_happened_in_words() {
        assert_eq!(
            action(What::Renamed, None, "Lunch", "").sentence(),
            "renamed the room to “Lunch”"
        );
        assert_eq!(
            action(What::Renamed, None, "", "").sentence(),
            "removed the room's name"
        );
        assert_eq!(
            action(What::Topic, None, "", "Fridays").sentence(),
            "set the topic to “Fridays”"
        );
        assert_eq!(
            action(What::Topic, None, "", "").sentence(),
            "cleared the topic"
        );
        assert_eq!(
            action(What::Removed, Some("bob"), "", "").sentence(),
            "removed bob from the room"
        );
        assert_eq!(
            action(What::Owner, Some("bob"), "", "").sentence(),
            "made bob the room's owner"
        );
        assert!(
            action(What::Rotated, None, "", "")
                .sentence()
                .contains("old code")
        );
        assert_eq!(
            action(What::Gone, None, "", "").sentence(),
            "deleted their account"
        );
    }

    #[test]
    fn an_action_reads_back_as_written() {
        let a = action(What::Handover, Some("bob"), "<b>", "\"x\"");
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains(r#""what":"handover""#), "{json}");
        assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
    }
}
