//! Room settings, for the room's owner (its creator, or whoever they handed it to): name and
//! topic, a new code, removing a member, handing the room over. The web pages and the API both
//! call these; `may_manage` is the one role check. Each change writes a system line that takes
//! the room's next seq, so everyone's page learns of it through the room's event sequence.

use crate::{
    State,
    auth::Actor,
    domain::{RoomCode, RoomName, RoomTopic},
    refusal::{Budget, Refusal},
    store::{EditOutcome, Room, RoomChange, RoomEdit},
};

/// Why a member who does not own the room cannot change it (403).
pub const NOT_OWNER: &str =
    "Only the room's owner can change its settings. Ask them, or ask them to hand the room to you.";
/// Why a change concerning someone who is not a member was refused (422).
const NOT_A_MEMBER: &str = "That person is not a member of this room.";
/// Why the owner cannot remove themself (422).
const REMOVING_SELF: &str = "You cannot remove yourself: leave the room instead.";

/// The one role check, after the membership check (`room_for`, 404 for anyone else): whether
/// the actor owns `room`. A member who does not is refused with a sentence (403).
pub fn may_manage(room: &Room, actor: Actor<'_>) -> Result<(), Refusal> {
    if room.is_direct() {
        // A direct conversation has no settings (and no owner): as if the page were not there.
        Err(Refusal::NotFound)
    } else if room.owned_by(actor.id) {
        Ok(())
    } else {
        Err(Refusal::NotOwner(NOT_OWNER))
    }
}

/// Writes `change` to `room` for the actor, under the management budget, and answers what it
/// came to: the store checks ownership again in the change's transaction (a handover may have
/// committed since the room was read).
async fn apply(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    change: RoomChange,
) -> Result<EditOutcome, Refusal> {
    Budget::Manage.spend(&state.limits.posts, &actor.id)?;
    let edit = RoomEdit {
        room_id: room.id,
        user_id: actor.id,
        change,
    };
    let outcome = state.store.edit_room(edit).await;
    // A change that was refused, or failed, changed nothing: nothing is spent.
    if !matches!(outcome, Ok(EditOutcome::Changed(_))) {
        state.limits.posts.refund(&actor.id);
    }
    refused(state, actor, outcome?)
}

/// The outcome of a room change as the actor is answered.
fn refused(state: &State, actor: Actor<'_>, outcome: EditOutcome) -> Result<EditOutcome, Refusal> {
    match outcome {
        EditOutcome::NotMember => Err(super::not_found(state, actor.id)),
        EditOutcome::NotOwner => Err(Refusal::NotOwner(NOT_OWNER)),
        EditOutcome::NoSuchMember => Err(Refusal::Invalid(NOT_A_MEMBER)),
        EditOutcome::RemovingSelf => Err(Refusal::Invalid(REMOVING_SELF)),
        done @ (EditOutcome::Changed(_) | EditOutcome::Unchanged) => Ok(done),
    }
}

/// Renames the room and sets its topic (both, as the settings form sends them): the same rules
/// as a name given at creation; a topic is one line of up to 200 characters.
pub async fn update(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    name: &str,
    topic: &str,
) -> Result<(), Refusal> {
    may_manage(room, actor)?;
    let name = RoomName::parse(name).map_err(|e| Refusal::Invalid(e.0))?;
    let topic = RoomTopic::parse(topic).map_err(|e| Refusal::Invalid(e.0))?;
    apply(state, actor, room, RoomChange::Settings { name, topic }).await?;
    Ok(())
}

/// Gives the room a new random code: the old one and its invitation link stop working at once
/// (members' open pages and links still reach the room: a 308 to the new code). Returns the
/// new code.
pub async fn rotate(state: &State, actor: Actor<'_>, room: &Room) -> Result<String, Refusal> {
    may_manage(room, actor)?;
    // 40 random bits: a collision is rare; several in a row would mean something is broken.
    for _ in 0..8 {
        let code = RoomCode::random();
        match apply(state, actor, room, RoomChange::Rotate(code)).await {
            Ok(_) => {
                state.store.forget_room_code(&room.code);
                tracing::info!(room_id = room.id, user_id = actor.id, "room code rotated");
                return Ok(code.canonical());
            }
            Err(Refusal::Unavailable) => continue,
            Err(refusal) => return Err(refusal),
        }
    }
    Err(Refusal::Unavailable)
}

/// The id of the member named `username`, once the actor is known to own the room: what
/// removing and handing over both act on (422 for someone who is not a member).
async fn managed_member(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    username: &str,
) -> Result<i64, Refusal> {
    may_manage(room, actor)?;
    state
        .store
        .member_named(room.id, username)
        .await?
        .ok_or(Refusal::Invalid(NOT_A_MEMBER))
}

/// Removes the member named `username` from the room: their sockets and streams close (4404,
/// `removed`), and they can come back only with the room's current code.
pub async fn remove(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    username: &str,
) -> Result<(), Refusal> {
    let user_id = managed_member(state, actor, room, username).await?;
    if let EditOutcome::Changed(_) = apply(state, actor, room, RoomChange::Remove(user_id)).await? {
        tracing::info!(room_id = room.id, user_id, by = actor.id, "member removed");
        state.chat.member_removed(room.id, user_id).await;
    }
    Ok(())
}

/// Hands the room to the member named `username`: they own it from now on (and the actor no
/// longer does).
pub async fn hand_over(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    username: &str,
) -> Result<(), Refusal> {
    let user_id = managed_member(state, actor, room, username).await?;
    apply(state, actor, room, RoomChange::Owner(user_id)).await?;
    Ok(())
}

/// The owner leaves: the room passes to its longest-standing other member (a system line says
/// so). Returns whether the actor was a member.
pub(super) async fn owner_leaves(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
) -> Result<bool, Refusal> {
    let edit = RoomEdit {
        room_id: room.id,
        user_id: actor.id,
        change: RoomChange::Leave,
    };
    match state.store.edit_room(edit).await? {
        EditOutcome::Changed(_) => Ok(true),
        _ => Ok(false),
    }
}
