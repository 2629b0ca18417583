//! Rooms: mine, create, join by code, one room, its members, leave.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Example};
use time::OffsetDateTime;

use super::{
    Tag,
    auth::Token,
    problem::{ApiError, Problems, status},
    text::Text,
    timestamp,
};
use crate::{
    State, actions,
    store::{Member, Room, RoomSummary},
};

/// A room you are a member of.
#[derive(Debug, Object)]
#[oai(rename = "Room", example)]
pub struct RoomJson {
    /// The room's code, `ABCD-EFGH`: its name in URLs, and the invitation.
    pub code: String,
    /// The name its creator gave it; `null` when it has none (it is then shown by its code).
    pub name: Option<String>,
    pub created_at: OffsetDateTime,
    /// The newest message's `seq` (0: nothing posted yet).
    pub last_seq: i64,
    /// When the room was created or last posted in.
    pub last_activity_at: OffsetDateTime,
    /// What the room is about, shown under its name; `null` when it has none. Absent in your
    /// room list.
    #[oai(skip_serializing_if_is_none)]
    pub topic: Option<String>,
    /// In your room list: messages you have not read (others' messages after your read mark,
    /// not deleted), counted up to 100: `100` means 100 or more. Absent elsewhere.
    #[oai(skip_serializing_if_is_none)]
    pub unread: Option<i64>,
}

impl RoomJson {
    pub(super) fn of(room: &Room) -> Self {
        Self {
            code: room.code.clone(),
            name: (!room.name.is_empty()).then(|| room.name.clone()),
            created_at: timestamp(room.created_at),
            last_seq: room.last_seq,
            last_activity_at: timestamp(room.last_activity_at),
            topic: (!room.topic.is_empty()).then(|| room.topic.clone()),
            unread: None,
        }
    }

    fn of_summary(room: &RoomSummary) -> Self {
        Self {
            code: room.code.clone(),
            name: (!room.name.is_empty()).then(|| room.name.clone()),
            created_at: timestamp(room.created_at),
            last_seq: room.last_seq,
            last_activity_at: timestamp(room.last_activity_at),
            topic: None,
            unread: Some(room.unread),
        }
    }
}

impl Example for RoomJson {
    fn example() -> Self {
        Self {
            code: "ABCD-EFGH".into(),
            name: Some("Book club".into()),
            created_at: timestamp(1_767_225_600_000),
            last_seq: 42,
            last_activity_at: timestamp(1_767_312_000_000),
            topic: None,
            unread: Some(3),
        }
    }
}

/// Your rooms, most recently active first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RoomList {
    pub rooms: Vec<RoomJson>,
}

impl Example for RoomList {
    fn example() -> Self {
        Self {
            rooms: vec![RoomJson::example()],
        }
    }
}

/// A room to create.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewRoom {
    /// Optional, one line, at most 80 characters; spaces around it are trimmed.
    pub name: Option<Text>,
}

impl Example for NewRoom {
    fn example() -> Self {
        Self {
            name: Some("Book club".into()),
        }
    }
}

/// A room to join.
#[derive(Debug, Object)]
#[oai(example)]
pub struct JoinRoom {
    /// The room's code. Forgiving: any case, spaces and dashes anywhere, O read as 0, I and L
    /// as 1.
    pub code: Text,
}

impl Example for JoinRoom {
    fn example() -> Self {
        Self {
            code: "abcd efgh".into(),
        }
    }
}

/// One member of a room.
#[derive(Debug, Object)]
#[oai(rename = "Member", example)]
pub struct MemberJson {
    pub user_id: i64,
    pub username: String,
    pub joined_at: OffsetDateTime,
    /// Whether they have the room open in a browser right now.
    pub online: bool,
}

impl Example for MemberJson {
    fn example() -> Self {
        Self {
            user_id: 7,
            username: "ada".into(),
            joined_at: timestamp(1_767_225_600_000),
            online: true,
        }
    }
}

/// A room's members, online ones first, then by name.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MemberList {
    pub members: Vec<MemberJson>,
}

impl Example for MemberList {
    fn example() -> Self {
        Self {
            members: vec![MemberJson::example()],
        }
    }
}

#[derive(ApiResponse)]
enum Listed {
    /// Your rooms, most recently active first.
    #[oai(status = 200)]
    Rooms(Json<RoomList>),
}

#[derive(ApiResponse)]
enum Found {
    /// The room.
    #[oai(status = 200)]
    Room(Json<RoomJson>),
}

#[derive(ApiResponse)]
enum Joined {
    /// You are a member of the room now (or already were).
    #[oai(status = 200)]
    Room(Json<RoomJson>),
}

#[derive(ApiResponse)]
enum Members {
    /// The room's members, online ones first.
    #[oai(status = 200)]
    List(Json<MemberList>),
}

#[derive(ApiResponse)]
enum Created {
    /// The room was created, with you as its first member. `Location` is its API URL.
    #[oai(status = 201)]
    Room(Json<RoomJson>, #[oai(header = "Location")] String),
}

/// How far you have read a room.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ReadMark {
    /// The `seq` you have read up to. A mark never moves down (a smaller one changes
    /// nothing) and stops at the room's newest `seq`.
    pub seq: i64,
}

impl Example for ReadMark {
    fn example() -> Self {
        Self { seq: 42 }
    }
}

#[derive(ApiResponse)]
enum MarkedRead {
    /// Your read mark is at least `seq` now (or at the room's newest `seq`, if that is
    /// smaller).
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum Left {
    /// You are no longer a member. Your browser tabs showing the room are told so.
    #[oai(status = 204)]
    Done,
}

/// The room with this code (any spelling), found through the caller's membership: the API
/// flavour of the one room access check (`web::InRoom`), answering problem+json.
pub(super) async fn member_room(state: &State, token: &Token, raw: &str) -> Result<Room, ApiError> {
    Ok(actions::room_for::<Room>(state, raw, token.0.id).await?)
}

pub struct Api;

#[OpenApi(tag = "Tag::Rooms")]
impl Api {
    /// Your rooms
    ///
    /// Every room you are a member of, most recently active first, with its newest `seq` and
    /// latest activity.
    #[oai(path = "/rooms", method = "get", operation_id = "list_rooms")]
    async fn list(
        &self,
        token: Token,
        state: Data<&State>,
    ) -> Result<Listed, Problems<{ status::ALWAYS }>> {
        let rooms = state.store.my_rooms(token.0.id).await?;
        Ok(Listed::Rooms(Json(RoomList {
            rooms: rooms.iter().map(RoomJson::of_summary).collect(),
        })))
    }

    /// Create a room
    ///
    /// Creates a room with you as its only member; share its `code` to invite people.
    /// Limited like the page (by default 20 rooms per hour).
    ///
    /// ```sh
    /// curl -X POST -H "Authorization: Bearer $NATTER_TOKEN" -H 'Content-Type: application/json' \
    ///      -d '{"name": "Book club"}' https://natter.example/api/v1/rooms
    /// ```
    #[oai(path = "/rooms", method = "post", operation_id = "create_room")]
    async fn create(
        &self,
        token: Token,
        state: Data<&State>,
        room: Json<NewRoom>,
    ) -> Result<Created, Problems<{ status::JSON_BODY | status::INVALID | status::RATE_LIMITED }>>
    {
        let name = room.0.name.map(|n| n.0).unwrap_or_default();
        let room = actions::create_room(&state, token.actor(), &name).await?;
        let location = format!("/api/v1/rooms/{}", room.code);
        Ok(Created::Room(Json(RoomJson::of(&room)), location))
    }

    /// Join a room by its code
    ///
    /// Joining a room you are already in changes nothing. A wrong code is refused (422) and
    /// counted: after 10 wrong codes in a minute every join is refused for a while (429), so
    /// codes cannot be guessed. Joins and leaves together are limited too (by default 20 a
    /// minute): each changes the member list of everyone in the room.
    #[oai(path = "/rooms/join", method = "post", operation_id = "join_room")]
    async fn join(
        &self,
        token: Token,
        state: Data<&State>,
        join: Json<JoinRoom>,
    ) -> Result<Joined, Problems<{ status::JSON_BODY | status::INVALID | status::RATE_LIMITED }>>
    {
        let room = actions::join_by_code(&state, token.actor(), &join.0.code.0).await?;
        Ok(Joined::Room(Json(RoomJson::of(&room))))
    }

    /// One of your rooms
    #[oai(path = "/rooms/:code", method = "get", operation_id = "get_room")]
    async fn get(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH` (any case; dashes optional).
        code: Path<String>,
    ) -> Result<Found, Problems<{ status::ALWAYS | status::NOT_FOUND | status::RATE_LIMITED }>>
    {
        let room = member_room(&state, &token, &code.0).await?;
        Ok(Found::Room(Json(RoomJson::of(&room))))
    }

    /// A room's members
    ///
    /// Everyone in the room, with whether they have it open right now; online members first.
    #[oai(
        path = "/rooms/:code/members",
        method = "get",
        operation_id = "list_members"
    )]
    async fn members(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
    ) -> Result<Members, Problems<{ status::ALWAYS | status::NOT_FOUND | status::RATE_LIMITED }>>
    {
        let room = member_room(&state, &token, &code.0).await?;
        let members = state.store.members(room.id).await?;
        let online = state.chat.online(room.id).await;
        let mut members: Vec<MemberJson> = members
            .iter()
            .map(|m: &Member| MemberJson {
                user_id: m.user_id,
                username: m.username.clone(),
                joined_at: timestamp(m.joined_at),
                online: online.contains(&m.user_id),
            })
            .collect();
        // Stable: members stay in name order within each group.
        members.sort_by_key(|m| !m.online);
        Ok(Members::List(Json(MemberList { members })))
    }

    /// Mark a room read up to a message
    ///
    /// Moves your read mark, which the `unread` counts of your room list start from, up to
    /// `seq`. It never moves down, and stops at the room's newest `seq`. At most one write per
    /// room every 2 s (429 beyond, with `Retry-After`).
    #[oai(
        path = "/rooms/:code/read",
        method = "post",
        operation_id = "mark_read"
    )]
    async fn read(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        mark: Json<ReadMark>,
    ) -> Result<
        MarkedRead,
        Problems<
            { status::JSON_BODY | status::NOT_FOUND | status::INVALID | status::RATE_LIMITED },
        >,
    > {
        let room = member_room(&state, &token, &code.0).await?;
        if mark.0.seq < 0 {
            return Err(ApiError::invalid_parameter("`seq` must be 0 or more.").into());
        }
        actions::mark_read(&state, token.actor(), &room, mark.0.seq).await?;
        Ok(MarkedRead::Done)
    }

    /// Leave a room
    ///
    /// To come back you need its code again. Limited with joining (by default 20 joins and
    /// leaves a minute).
    #[oai(
        path = "/rooms/:code/leave",
        method = "post",
        operation_id = "leave_room"
    )]
    async fn leave(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
    ) -> Result<Left, Problems<{ status::POST | status::NOT_FOUND | status::RATE_LIMITED }>> {
        let room = member_room(&state, &token, &code.0).await?;
        actions::leave(&state, token.actor(), &room).await?;
        Ok(Left::Done)
    }
}
