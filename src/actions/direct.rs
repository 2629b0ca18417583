//! Direct conversations (issue 17): finding the person a `/dm/{username}` route names, opening
//! the conversation with them, closing it. Pages and the API both call these.
//!
//! Who exists is not told: an unknown username and someone who shares no room with the asker
//! both answer `NotFound`, each a failed guess (`not_found`), like a room code that is not
//! theirs. Asking for a conversation with oneself is a mistake worth a sentence (`Invalid`).

use super::{membership, not_found};
use crate::{
    State,
    auth::Actor,
    domain::{RoomCode, Username},
    refusal::Refusal,
    store::{OpenedDirect, Person, Room, now_ms},
};

/// Why there is no conversation with oneself.
pub const WITH_ONESELF: &str =
    "That is you. A direct conversation is between you and someone else: pick another name.";

/// The person `name` names, and the direct conversation with them if it was ever opened. Only
/// someone sharing a room with the actor may be found without one.
pub async fn find(
    state: &State,
    actor: Actor<'_>,
    name: &str,
) -> Result<(Person, Option<Room>), Refusal> {
    let Ok(username) = Username::parse(name) else {
        return Err(not_found(state, actor.id));
    };
    let Some(person) = state.store.person(&username).await? else {
        return Err(not_found(state, actor.id));
    };
    if person.id == actor.id {
        return Err(Refusal::Invalid(WITH_ONESELF));
    }
    if let Some(room) = state.store.direct_room(actor.id, person.id).await? {
        return Ok((person, Some(room)));
    }
    if !state.store.share_a_room(actor.id, person.id).await? {
        return Err(not_found(state, actor.id));
    }
    Ok((person, None))
}

/// Opens the direct conversation with `name`, creating it on first use (which spends one of
/// the actor's joins: creating conversations in a loop costs like joining rooms in one), and
/// shows it in the actor's list again if they had closed it.
pub async fn open(
    state: &State,
    actor: Actor<'_>,
    name: &str,
) -> Result<(Person, OpenedDirect), Refusal> {
    let (person, existing) = find(state, actor, name).await?;
    if existing.is_none() {
        membership(state, actor)?;
    }
    // 40 random bits per code: a collision is rare; several in a row would mean a bug.
    for _ in 0..8 {
        match state
            .store
            .open_direct(actor.id, person.id, RoomCode::random(), now_ms())
            .await
        {
            Ok(opened) => {
                if opened.created {
                    // Both people's open pages follow it from now on: its first message
                    // reaches their rails live (`chat::activity`), on every instance.
                    for member in state.store.members(opened.room.id).await? {
                        state.chat.member_joined(opened.room.id, &member).await;
                    }
                    tracing::info!(
                        room_id = opened.room.id,
                        user_id = actor.id,
                        with = person.id,
                        "direct conversation opened"
                    );
                }
                return Ok((person, opened));
            }
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    tracing::error!("no free room code after 8 tries");
    Err(Refusal::Unavailable)
}

/// Closes a direct conversation for the actor: it leaves their list until a message arrives.
/// A room that is not a direct conversation cannot be closed (`NotFound`).
pub async fn close(state: &State, actor: Actor<'_>, room: &Room) -> Result<(), Refusal> {
    if !room.is_direct() {
        return Err(Refusal::NotFound);
    }
    state
        .store
        .close_direct(room.id, actor.id, now_ms())
        .await?;
    Ok(())
}
