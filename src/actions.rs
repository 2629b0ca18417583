//! What people do, whichever way they ask (a form, htmx, the JSON API). Each action parses the
//! input into domain types, applies the limits, writes, and tells the live side. Pages and the
//! API both call these, so a rule cannot differ between them.

pub mod account;
pub mod direct;
pub mod settings;

use std::time::Duration;

use crate::{
    State,
    auth::Actor,
    config::RateLimit,
    domain::{MessageBody, RoomCode, RoomName, notify::Notify, search::Query},
    files::Upload,
    refusal::{Budget, Refusal},
    store::{
        ChangeOutcome, JoinOutcome, MessageChange, NewAttachment, NewPost, PostOutcome, Room,
        RoomNotify, RoomOverview, SearchCursor, SearchHit, StoreError, now_ms,
    },
};

/// Creates a room named `name` (optional) with the actor as its first member.
pub async fn create_room(state: &State, actor: Actor<'_>, name: &str) -> Result<Room, Refusal> {
    let name = RoomName::parse(name).map_err(|e| Refusal::Invalid(e.0))?;
    Budget::Rooms.spend(&state.limits.rooms, &actor.id)?;
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
/// over the limit every attempt is refused for a while, so codes cannot be guessed. Joins
/// with a right code are counted too, with leaves (`membership`).
pub async fn join_by_code(state: &State, actor: Actor<'_>, code: &str) -> Result<Room, Refusal> {
    let room = find_by_code(state, actor, code).await?;
    membership(state, actor)?;
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
    // Every attempt spends a guess up front and a right one gets it back: guesses sent in
    // parallel cannot all pass a check made before any of them failed.
    Budget::JoinFails.spend(&state.limits.join_fails, &actor.id)?;
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

/// What a room route needs of its room, looked up **through the person's membership**: for
/// someone who is not a member the room does not exist (the same answer as no room at all).
/// Each implementation does that in one statement, the one that serves the request where it
/// can (the room page reads its members and rail in it), so access costs nothing extra.
pub trait ThroughMembership: Sized {
    /// The room with `code` as `user_id` may see it; `None` when there is no such room or they
    /// are not a member.
    fn load(
        state: &State,
        code: RoomCode,
        user_id: i64,
    ) -> impl Future<Output = Result<Option<Self>, StoreError>> + Send;
}

/// The room row.
impl ThroughMembership for Room {
    async fn load(state: &State, code: RoomCode, user_id: i64) -> Result<Option<Self>, StoreError> {
        state.store.room_for_member(code, user_id).await
    }
}

/// The rooms listed in the room page's side rail.
const SIDE_RAIL_ROOMS: i64 = 50;

/// The room page's room, members and side rail, in one statement.
impl ThroughMembership for RoomOverview {
    async fn load(state: &State, code: RoomCode, user_id: i64) -> Result<Option<Self>, StoreError> {
        state
            .store
            .room_overview(code, user_id, SIDE_RAIL_ROOMS)
            .await
    }
}

/// A room for a live socket: from its hub when the room is active here (reconnect storms and
/// busy rooms need no database read), otherwise from the store.
pub struct LiveRoom(pub Room);

impl ThroughMembership for LiveRoom {
    async fn load(state: &State, code: RoomCode, user_id: i64) -> Result<Option<Self>, StoreError> {
        if let Some(room) = state.chat.active_member_room(code, user_id) {
            return Ok(Some(LiveRoom(room)));
        }
        Ok(state
            .store
            .room_for_member(code, user_id)
            .await?
            .map(LiveRoom))
    }
}

/// A room to post in. Membership is checked by the statement that inserts the post (one
/// statement per post: the room's id comes from memory), so `post` answers `NotFound` for a
/// non-member, and checks membership itself before telling anyone why a post was refused.
///
/// A code that names no room is a room too, one with an id no room has: its post goes through
/// the writer and is refused there like a non-member's, so posting cannot tell an unknown code
/// from someone else's room by how long the answer takes.
pub struct PostingRoom {
    /// The room's id (`NO_ROOM` when the code names none).
    pub id: i64,
    /// Its code, as the URL named it.
    pub code: RoomCode,
    /// Whether `id` came from memory rather than from a read made for this request: a
    /// non-member's post then makes that read after all (see `post`).
    remembered: bool,
}

/// The id of no room (ids start at 1).
const NO_ROOM: i64 = 0;

impl PostingRoom {
    /// A room the person was just found a member of by a statement of its own (the API's).
    pub fn member_of(room: &Room) -> Result<Self, Refusal> {
        let code = RoomCode::parse(&room.code).map_err(|_| Refusal::Internal)?;
        Ok(PostingRoom {
            id: room.id,
            code,
            remembered: false,
        })
    }
}

impl ThroughMembership for PostingRoom {
    async fn load(state: &State, code: RoomCode, _: i64) -> Result<Option<Self>, StoreError> {
        if let Some(id) = state.store.remembered_room_id(code) {
            return Ok(Some(PostingRoom {
                id,
                code,
                remembered: true,
            }));
        }
        let id = state.store.read_room_id(code).await?;
        Ok(Some(PostingRoom {
            id: id.unwrap_or(NO_ROOM),
            code,
            remembered: false,
        }))
    }
}

/// The room with this code (any spelling) as `T`, if the person is a member: the one access
/// check for room routes (pages, fragments, posts, the socket, the API). Anything else is
/// `not_found`, a failed guess.
pub async fn room_for<T: ThroughMembership>(
    state: &State,
    code: &str,
    user_id: i64,
) -> Result<T, Refusal> {
    let found = match RoomCode::parse(code) {
        Ok(code) => T::load(state, code, user_id).await?,
        Err(_) => None,
    };
    found.ok_or_else(|| not_found(state, user_id))
}

/// What a room route answers someone for whom the room is not there (no such code, or not a
/// member): `NotFound`, at the price of a wrong code to join. Room routes would otherwise
/// test codes for free, so each such answer spends the same budget (`limits.join_fails`),
/// and once it is spent every answer is `TooFast`, whatever the code. Members are never
/// charged: their rooms are found.
pub fn not_found(state: &State, user_id: i64) -> Refusal {
    match Budget::JoinFails.spend(&state.limits.join_fails, &user_id) {
        Ok(()) => Refusal::NotFound,
        Err(too_many) => too_many,
    }
}

/// Spends one of the person's joins and leaves. Each one changes the member list on every
/// page that has the room open: joining and leaving in a loop would flood them all.
fn membership(state: &State, actor: Actor<'_>) -> Result<(), Refusal> {
    Budget::Membership.spend(&state.limits.membership, &actor.id)
}

/// Leaves the room; the actor's open sockets to it close (4404).
/// A direct conversation cannot be left, only closed (`direct::close`): leaving one closes it.
///
/// The owner leaving hands the room to its longest-standing other member (`settings`).
pub async fn leave(state: &State, actor: Actor<'_>, room: &Room) -> Result<(), Refusal> {
    if room.is_direct() {
        return direct::close(state, actor, room).await;
    }
    membership(state, actor)?;
    let left = match room.created_by == actor.id {
        true => settings::owner_leaves(state, actor, room).await?,
        false => state.store.leave_room(room.id, actor.id).await?,
    };
    if left {
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

/// Posts a message with its files (text may then be empty); returns its seq (also when the same
/// `client_id` was posted before: a double submit answers as if it had succeeded). Live
/// delivery follows the commit. Membership is checked where the message is inserted
/// (`NotFound`), and before any other refusal is told: to a non-member the room is not there,
/// whatever they sent.
pub async fn post(
    state: &State,
    actor: Actor<'_>,
    room: &PostingRoom,
    body: &str,
    client_id: Option<&str>,
    files: Vec<Upload>,
) -> Result<i64, Refusal> {
    match attempt_post(state, actor, room.id, body, client_id, files).await {
        Ok(seq) => return Ok(seq),
        Err(Refusal::NotFound) => {}
        Err(refusal) => {
            if state.store.is_member(room.id, actor.id).await? {
                return Err(refusal);
            }
        }
    }
    // Not a member. A known code's id may have come from memory where an unknown code's was
    // read: read it now, so that both cost one read and one refusal, in time too.
    if room.remembered {
        state.store.read_room_id(room.code).await?;
    }
    Err(not_found(state, actor.id))
}

async fn attempt_post(
    state: &State,
    actor: Actor<'_>,
    room_id: i64,
    body: &str,
    client_id: Option<&str>,
    files: Vec<Upload>,
) -> Result<i64, Refusal> {
    let body = match files.is_empty() {
        true => MessageBody::parse(body),
        false => MessageBody::parse_caption(body),
    }
    .map_err(|e| Refusal::Invalid(e.0))?;
    let client_id = client_id.filter(|id| valid_client_id(id));
    if let Err(too_fast) = Budget::Posts.spend(&state.limits.posts, &actor.id) {
        // A retry of a post that went through (a resubmitted form, an API client that missed
        // the answer) answers as if it had succeeded, over the limit too.
        if let Some(id) = client_id
            && let Some(seq) = state.store.earlier_post(room_id, actor.id, id).await?
        {
            return Ok(seq);
        }
        return Err(too_fast);
    }
    let attachments = match files.is_empty() {
        true => Vec::new(),
        false => match store_files(state, actor, room_id, files).await {
            Ok(stored) => stored,
            Err(refusal) => {
                state.limits.posts.refund(&actor.id);
                return Err(refusal);
            }
        },
    };
    let keys = crate::files::keys_of(&attachments);
    let post = NewPost {
        room_id,
        user_id: actor.id,
        author: actor.username.to_string(),
        body,
        client_id: client_id.map(str::to_string),
        attachments,
    };
    let outcome = state.store.post_message(post).await;
    if !matches!(outcome, Ok(PostOutcome::Posted(_))) {
        // Stored for a post that did not happen (refused, posted before, failed).
        state.files.discard(&keys).await;
    }
    match outcome? {
        PostOutcome::Posted(m) => Ok(m.seq),
        PostOutcome::AlreadyPosted(seq) => Ok(seq),
        PostOutcome::NotMember => {
            // Not a member: nothing was posted, so nothing is spent.
            state.limits.posts.refund(&actor.id);
            Err(Refusal::NotFound)
        }
    }
}

/// Stores a post's files (thumbnails made), within the room's quota, for a member: a
/// non-member's files are never written (`NotFound`, as the post would be).
async fn store_files(
    state: &State,
    actor: Actor<'_>,
    room_id: i64,
    files: Vec<Upload>,
) -> Result<Vec<NewAttachment>, Refusal> {
    if !state.store.is_member(room_id, actor.id).await? {
        return Err(Refusal::NotFound);
    }
    if let Some(quota) = state.files.config().room_quota {
        let adding: u64 = files.iter().map(|f| f.size).sum();
        let used = state.store.room_file_bytes(room_id).await?.max(0) as u64;
        if used.saturating_add(adding) > quota {
            return Err(Refusal::RoomFull { quota });
        }
    }
    state.files.store(files).await
}

/// Edits message `seq` of `room`, which must be the actor's: the new text follows the rules of
/// a post and spends the post budget. An edit that changes nothing is done at once.
pub async fn edit(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    seq: i64,
    body: &str,
) -> Result<(), Refusal> {
    let body = MessageBody::parse(body).map_err(|e| Refusal::Invalid(e.0))?;
    Budget::Posts.spend(&state.limits.posts, &actor.id)?;
    let change = MessageChange {
        room_id: room.id,
        seq,
        user_id: actor.id,
        body: Some(body),
        erase: false,
    };
    match state.store.change_message(change).await? {
        ChangeOutcome::Changed(..) | ChangeOutcome::Unchanged => Ok(()),
        ChangeOutcome::Deleted => Err(Refusal::Conflict(DELETED)),
        ChangeOutcome::NotFound => {
            // Nothing was changed, so nothing is spent.
            state.limits.posts.refund(&actor.id);
            Err(Refusal::NotFound)
        }
    }
}

/// Deletes message `seq` of `room`: the actor's own, or anyone's if they created the room.
/// Its text is removed from the database; its place shows "Message deleted". Deleting it again
/// is done at once (a resubmitted form).
pub async fn delete(state: &State, actor: Actor<'_>, room: &Room, seq: i64) -> Result<(), Refusal> {
    let change = MessageChange {
        room_id: room.id,
        seq,
        user_id: actor.id,
        body: None,
        erase: false,
    };
    match state.store.change_message(change).await? {
        ChangeOutcome::Changed(_, removed) => {
            // Its files' rows went with the commit; now their bytes.
            state.files.discard(&removed).await;
            Ok(())
        }
        ChangeOutcome::Unchanged | ChangeOutcome::Deleted => Ok(()),
        ChangeOutcome::NotFound => Err(Refusal::NotFound),
    }
}

/// Why a deleted message cannot be edited.
pub const DELETED: &str = "This message was deleted, so it cannot be edited.";

/// Sets what the actor wants to hear about by default (`all`, `mentions` or `nothing`).
pub async fn set_notify_default(
    state: &State,
    actor: Actor<'_>,
    value: &str,
) -> Result<Notify, Refusal> {
    let notify = Notify::parse(value).map_err(|e| Refusal::Invalid(e.0))?;
    state.store.set_notify_default(actor.id, notify).await?;
    Ok(notify)
}

/// Sets what the actor wants to hear about `room` (`default`, `all`, `mentions` or
/// `nothing`); the room was found through their membership.
pub async fn set_room_notify(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    value: &str,
) -> Result<RoomNotify, Refusal> {
    let own = Notify::parse_for_room(value).map_err(|e| Refusal::Invalid(e.0))?;
    if !state.store.set_room_notify(room.id, actor.id, own).await? {
        // Left meanwhile.
        return Err(Refusal::NotFound);
    }
    state
        .store
        .room_notify(room.id, actor.id)
        .await?
        .ok_or(Refusal::NotFound)
}

/// Read marks a person's pages may write per room: one every 2 s. A page at the bottom of a
/// busy room asks to save its place as messages arrive (`js/unread.js` waits as long between
/// writes); this keeps a script that does not from turning reading into a write per message.
pub const READ_MARKS: RateLimit = RateLimit::new(1, Duration::from_secs(2));

/// Moves the actor's read mark in `room` up to `seq` (clamped to the room's newest seq; a
/// mark never moves down), spending one of their read-mark writes for the room.
pub async fn mark_read(
    state: &State,
    actor: Actor<'_>,
    room: &Room,
    seq: i64,
) -> Result<(), Refusal> {
    Budget::Reads.spend(&state.limits.reads, &(actor.id, room.id))?;
    state
        .store
        .mark_read(room.id, actor.id, seq.clamp(0, room.last_seq))
        .await?;
    Ok(())
}

/// The room page opened showing messages up to `shown`: the actor has read them. Written only
/// when it moves the mark (`read` is the mark the page was read with), so opening a room with
/// nothing new costs no write. Not limited: a page load is not a script's loop, and refusing
/// it would refuse the page.
pub async fn read_on_open(
    state: &State,
    actor: Actor<'_>,
    room_id: i64,
    read: i64,
    shown: i64,
) -> Result<(), Refusal> {
    if shown > read {
        state.store.mark_read(room_id, actor.id, shown).await?;
    }
    Ok(())
}

/// Moves the actor's read mark to the newest message in every room of theirs.
pub async fn mark_all_read(state: &State, actor: Actor<'_>) -> Result<(), Refusal> {
    let rooms = state.store.mark_all_read(actor.id).await?;
    tracing::debug!(user_id = actor.id, rooms, "marked all read");
    Ok(())
}

/// A read mark as a form or the API sends it: decimal digits that fit a seq. Anything else is
/// refused (422) rather than read as 0.
pub fn parse_read_seq(raw: &str) -> Result<i64, Refusal> {
    let raw = raw.trim();
    let digits = !raw.is_empty() && raw.len() <= 19 && raw.bytes().all(|b| b.is_ascii_digit());
    raw.parse::<i64>()
        .ok()
        .filter(|_| digits)
        .ok_or(Refusal::Invalid("`seq` must be a message number."))
}

/// Search results per page.
pub const SEARCH_PAGE: i64 = 20;

/// A page of search results.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// What was searched, as understood.
    pub query: Query,
    /// The messages found, newest first.
    pub hits: Vec<SearchHit>,
    /// Where the next (older) page starts, if there is one.
    pub next: Option<SearchCursor>,
}

/// Searches the messages of the actor's rooms for `text` (`domain::search`), below the
/// cursor `before` (`created_at.room_id.seq`, from a previous page). Text that searches for
/// nothing finds nothing and costs nothing; each real search spends one of the person's
/// searches.
pub async fn search(
    state: &State,
    actor: Actor<'_>,
    text: &str,
    before: Option<&str>,
) -> Result<SearchResults, Refusal> {
    let query = Query::parse(text).map_err(|e| Refusal::Invalid(e.0))?;
    let before = match before.filter(|b| !b.is_empty()) {
        Some(raw) => Some(SearchCursor::parse(raw).ok_or(Refusal::BadRequest(
            "The address asked for a page of results that does not exist (`before`).",
        ))?),
        None => None,
    };
    if query.is_empty() {
        return Ok(SearchResults {
            query,
            hits: Vec::new(),
            next: None,
        });
    }
    Budget::Searches.spend(&state.limits.searches, &actor.id)?;
    let mut hits = state
        .store
        .search(actor.id, &query, before, SEARCH_PAGE + 1)
        .await?;
    let next = if hits.len() > SEARCH_PAGE as usize {
        hits.truncate(SEARCH_PAGE as usize);
        hits.last().map(SearchHit::cursor)
    } else {
        None
    };
    Ok(SearchResults { query, hits, next })
}
