//! Care of one's account (issue 18): ending one session, changing one's username, deleting
//! one's account. The pages (and the API where it has a route) call these.

use futures_util::future::join_all;

use crate::{
    State,
    auth::Actor,
    domain::Username,
    refusal::Refusal,
    store::{ChangeOutcome, EditOutcome, MessageChange, Rename, RoomChange, RoomEdit, now_ms},
};

/// Why a name someone else holds was refused (422).
pub const TAKEN: &str = "That username is taken. Please choose another.";

/// Messages deleted per round when an account goes with its messages: one writer batch.
const ERASE_BATCH: i64 = 256;

/// Ends the actor's session with this public id: its sockets close (4401) on every instance.
/// Someone else's id, or one that never was, is `NotFound`.
pub async fn end_session(state: &State, actor: Actor<'_>, public_id: &str) -> Result<(), Refusal> {
    // Public ids are 32 hex digits: anything else is no id at all (and never reaches SQL).
    if public_id.len() != 32 || !public_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::NotFound);
    }
    let ended = state
        .store
        .end_session(actor.id, public_id)
        .await?
        .ok_or(Refusal::NotFound)?;
    tracing::info!(user_id = actor.id, "session ended from the profile");
    state.chat.end_sessions(&[ended]).await;
    Ok(())
}

/// What became of a username change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renamed {
    /// Done: every room of theirs says so, and every open member list shows the new name.
    Done,
    /// The name they already have, exactly.
    Unchanged,
    /// They changed it less than a day ago; possible again at `next_at` (Unix ms).
    TooSoon {
        /// When the next change is allowed.
        next_at: i64,
    },
}

/// Changes the actor's username: the rules of choosing one (`Username::parse`, reserved
/// names, unique in any case), at most once a day. Each of their rooms gets a system line
/// ("changed their username (was ada)") in its event sequence, so open pages, resumed pages
/// and every instance's cached newest page learn of it; their entry in open member lists is
/// replaced live. Mentions are stored by user id, so old ones still point at them.
pub async fn change_username(
    state: &State,
    actor: Actor<'_>,
    typed: &str,
) -> Result<Renamed, Refusal> {
    let name = Username::parse(typed).map_err(|e| Refusal::Invalid(e.0))?;
    let was = match state.store.change_username(actor.id, &name, now_ms()).await {
        Ok(Rename::Done { was }) => was,
        Ok(Rename::Unchanged) => return Ok(Renamed::Unchanged),
        Ok(Rename::TooSoon { next_at }) => return Ok(Renamed::TooSoon { next_at }),
        Err(e) if e.is_unique_violation() => return Err(Refusal::Invalid(TAKEN)),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user_id = actor.id, "username changed");
    for room in state.store.rooms_of(actor.id).await? {
        let edit = RoomEdit {
            room_id: room.id,
            user_id: actor.id,
            change: RoomChange::Username(was.clone()),
        };
        // A room they left meanwhile answers `NotMember`: nothing to say there.
        state.store.edit_room(edit).await?;
        if let Some(member) = state.store.member(room.id, actor.id).await? {
            state.chat.member_joined(room.id, &member).await;
        }
    }
    // Rooms they left keep their messages under the new name, with no event to say so; and
    // other instances hold their session (with the old name) for a few seconds: every instance
    // forgets both.
    let shown_in = state.store.rooms_with_messages_of(actor.id).await?;
    state.chat.names_changed(actor.id, &shown_in).await;
    Ok(Renamed::Done)
}

/// What happens to a deleted account's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Messages {
    /// They stay, shown as written by "deleted user".
    Keep,
    /// Each is deleted, as its author would delete it (an event of its room).
    Delete,
}

impl Messages {
    /// The form's `messages` field: `keep` or `delete`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "keep" => Some(Messages::Keep),
            "delete" => Some(Messages::Delete),
            _ => None,
        }
    }
}

/// Deletes the actor's account. In this order, so that nothing acts for them while it runs:
/// their sessions end (sockets close 4401 everywhere) and their API tokens stop working;
/// their messages are deleted if they asked (each an event in its room, through the writer,
/// in batches); they leave every room, each with a system line saying their account is gone
/// (owned rooms pass to their longest-standing member with one more; member lists drop them
/// live); then one transaction makes every remaining
/// row stop naming them and deletes their user row (`Store::delete_account`). Signing in
/// again with the same identity starts a new account.
pub async fn delete_account(
    state: &State,
    actor: Actor<'_>,
    messages: Messages,
) -> Result<(), Refusal> {
    // Where their name shows on cached pages; read before their rows pass to the placeholder.
    let shown_in = state.store.rooms_with_messages_of(actor.id).await?;
    let ended = state.store.delete_user_sessions(actor.id).await?;
    state.chat.end_sessions(&ended).await;
    state.store.revoke_all_api_tokens(actor.id).await?;
    if messages == Messages::Delete {
        let mut after = (0, 0);
        loop {
            let keys = state
                .store
                .live_messages_of(actor.id, after, ERASE_BATCH)
                .await?;
            let Some(last) = keys.last() else { break };
            after = *last;
            // Submitted together, so the writer commits them as one batch.
            let changes = keys.into_iter().map(|(room_id, seq)| {
                state.store.change_message(MessageChange {
                    room_id,
                    seq,
                    user_id: actor.id,
                    body: None,
                    erase: true,
                })
            });
            for outcome in join_all(changes).await {
                if let ChangeOutcome::Changed(_, removed) = outcome? {
                    state.files.discard(&removed).await;
                }
            }
        }
    }
    for room in state.store.rooms_of(actor.id).await? {
        // Each room gets a line "deleted their account" (`What::Gone`, marked `data-gone`):
        // open pages turn their earlier messages into "deleted user" live (`js/members.js`).
        let edit = RoomEdit {
            room_id: room.id,
            user_id: actor.id,
            change: RoomChange::Gone,
        };
        if let EditOutcome::Changed(_) = state.store.edit_room(edit).await? {
            state.chat.member_left(room.id, actor.id).await;
        }
    }
    state.store.delete_account(actor.id, actor.username).await?;
    // Pages cached meanwhile on any instance may show their name on messages that are now the
    // placeholder's, with no event of the room to say so.
    state.chat.names_changed(actor.id, &shown_in).await;
    tracing::info!(
        user_id = actor.id,
        sessions = ended.len(),
        ?messages,
        "account deleted"
    );
    Ok(())
}
