//! What people do, whichever way they ask (a form, htmx, the JSON API). Each action parses the
//! input into domain types, applies the limits, writes, and tells the live side. Pages and the
//! API both call these, so a rule cannot differ between them.

use std::time::Duration;

use crate::{
    State,
    domain::{MessageBody, RoomCode, RoomName},
    limits::{retry_after_secs, wait_in_words},
    store::{JoinOutcome, NewPost, PostOutcome, Room, StoreError, now_ms},
};

/// Why an action was refused. Each maps to one status: 422, 429, 404, 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The input broke a rule; the text says which (422).
    Invalid(&'static str),
    /// Over a rate limit (429, `Retry-After`).
    TooFast {
        retry_after: Duration,
        message: String,
    },
    /// No such room, or not the actor's (404).
    NotFound,
    /// The database failed; nothing was done (503).
    Unavailable,
}

impl Refusal {
    /// The sentence shown to people.
    pub fn message(&self) -> String {
        match self {
            Refusal::Invalid(why) => (*why).to_string(),
            Refusal::TooFast { message, .. } => message.clone(),
            Refusal::NotFound => "There is no such room, or you are not a member.".into(),
            Refusal::Unavailable => {
                "natter could not save this just now (database unavailable). Try again in a moment."
                    .into()
            }
        }
    }

    /// Seconds for `Retry-After`, when there is one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::TooFast { retry_after, .. } => Some(retry_after_secs(*retry_after)),
            Refusal::Unavailable => Some(5),
            _ => None,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "database failure");
        Refusal::Unavailable
    }
}

/// The signed-in person acting.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: i64,
    pub username: &'a str,
}

/// Creates a room named `name` (optional) with the actor as its first member.
pub async fn create_room(state: &State, actor: Actor<'_>, name: &str) -> Result<Room, Refusal> {
    let name = RoomName::parse(name).map_err(|e| Refusal::Invalid(e.0))?;
    state
        .limits
        .rooms
        .check(&actor.id)
        .map_err(|wait| Refusal::TooFast {
            retry_after: wait,
            message: format!(
                "You have created many rooms recently. You can create another in {}.",
                wait_in_words(wait)
            ),
        })?;
    // 40 random bits: a collision is rare; several in a row would mean something is broken.
    for _ in 0..8 {
        match state
            .store
            .create_room(RoomCode::random(), &name, actor.id, now_ms())
            .await
        {
            Ok(room) => {
                tracing::info!(room_id = room.id, user_id = actor.id, "room created");
                return Ok(room);
            }
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    tracing::error!("no free room code after 8 tries");
    Err(Refusal::Unavailable)
}

/// Joins the room with this code (forgiving spelling). Wrong codes are counted per person;
/// over the limit every attempt is refused for a while, so codes cannot be guessed.
pub async fn join_by_code(state: &State, actor: Actor<'_>, code: &str) -> Result<Room, Refusal> {
    let room = find_by_code(state, actor, code).await?;
    if state.store.join_room(room.id, actor.id, now_ms()).await? == JoinOutcome::Joined {
        tracing::info!(room_id = room.id, user_id = actor.id, "joined room");
        if let Some(member) = state.store.member(room.id, actor.id).await? {
            state.chat.member_joined(room.id, &member).await;
        }
    }
    Ok(room)
}

/// The room with this code, for whoever asks, under the failed-guess limit.
pub async fn find_by_code(state: &State, actor: Actor<'_>, code: &str) -> Result<Room, Refusal> {
    let too_many = |wait| Refusal::TooFast {
        retry_after: wait,
        message: format!(
            "Too many wrong codes. Wait {}, then try again.",
            wait_in_words(wait)
        ),
    };
    // Every attempt spends a guess up front and a right one gets it back: guesses sent in
    // parallel cannot all pass a check made before any of them failed.
    state.limits.join_fails.check(&actor.id).map_err(too_many)?;
    let room = match RoomCode::parse(code) {
        Ok(code) => state.store.room_by_code(code).await,
        Err(_) => Ok(None),
    };
    match room {
        Ok(Some(room)) => {
            state.limits.join_fails.refund(&actor.id);
            Ok(room)
        }
        Ok(None) => Err(Refusal::Invalid(
            "There is no room with that code. Check it and try again.",
        )),
        Err(e) => {
            state.limits.join_fails.refund(&actor.id);
            Err(e.into())
        }
    }
}

/// The room with this code if the actor is a member: the one access check for room routes.
pub async fn member_room(state: &State, actor: Actor<'_>, code: RoomCode) -> Result<Room, Refusal> {
    state
        .store
        .room_for_member(code, actor.id)
        .await?
        .ok_or(Refusal::NotFound)
}

/// Leaves the room; the actor's open sockets to it close (4404).
pub async fn leave(state: &State, actor: Actor<'_>, room: &Room) -> Result<(), Refusal> {
    if state.store.leave_room(room.id, actor.id).await? {
        tracing::info!(room_id = room.id, user_id = actor.id, "left room");
        state.chat.member_left(room.id, actor.id).await;
    }
    Ok(())
}

/// Whether a client-chosen idempotency id is acceptable: 1–64 URL-safe characters.
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Posts a message; returns its seq (also when the same `client_id` was posted before: a double
/// submit answers as if it had succeeded). Live delivery follows the commit. Membership is
/// checked where the message is inserted (`NotFound`); a caller that has not checked it
/// itself must do so before showing any other refusal, or the refusal tells a non-member
/// that the room exists.
pub async fn post(
    state: &State,
    actor: Actor<'_>,
    room_id: i64,
    body: &str,
    client_id: Option<&str>,
) -> Result<i64, Refusal> {
    let body = MessageBody::parse(body).map_err(|e| Refusal::Invalid(e.0))?;
    let client_id = client_id.filter(|id| valid_client_id(id));
    if let Err(wait) = state.limits.posts.check(&actor.id) {
        // A retry of a post that went through (a resubmitted form, an API client that missed
        // the answer) answers as if it had succeeded, over the limit too.
        if let Some(id) = client_id
            && let Some(seq) = state.store.earlier_post(room_id, actor.id, id).await?
        {
            return Ok(seq);
        }
        return Err(Refusal::TooFast {
            retry_after: wait,
            message: format!(
                "You are sending messages very fast. Wait {}, then send again.",
                wait_in_words(wait)
            ),
        });
    }
    let post = NewPost {
        room_id,
        user_id: actor.id,
        author: actor.username.to_string(),
        body,
        client_id: client_id.map(str::to_string),
    };
    match state.store.post_message(post).await? {
        PostOutcome::Posted(m) => Ok(m.seq),
        PostOutcome::AlreadyPosted(seq) => Ok(seq),
        PostOutcome::NotMember => {
            // Not a member: nothing was posted, so nothing is spent.
            state.limits.posts.refund(&actor.id);
            Err(Refusal::NotFound)
        }
    }
}
