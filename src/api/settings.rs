//! Room settings over the API, for the room's owner: name and topic, a new code, removing a
//! member, handing the room over. The same actions as the settings page (`actions::settings`):
//! anyone not in the room gets 404, a member who does not own it 403 `forbidden`.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Example};

use super::{
    Tag,
    auth::Token,
    problem::{Problems, status},
    rooms::{RoomJson, member_room},
    text::Text,
};
use crate::{State, actions::settings};

/// New settings for a room. A field left out keeps its value; an empty string clears it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RoomSettings {
    /// One line, at most 80 characters; empty: no name (the room is shown by its code).
    pub name: Option<Text>,
    /// One line, at most 200 characters (line breaks and control characters are taken out);
    /// empty: no topic.
    pub topic: Option<Text>,
}

impl Example for RoomSettings {
    fn example() -> Self {
        Self {
            name: Some("Book club".into()),
            topic: Some("This month: Middlemarch".into()),
        }
    }
}

/// The member to hand a room to.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewOwner {
    /// Their username (any case). They must be a member of the room.
    pub username: Text,
}

impl Example for NewOwner {
    fn example() -> Self {
        Self {
            username: "ada".into(),
        }
    }
}

#[derive(ApiResponse)]
enum Changed {
    /// The room as it is now. Everyone in it sees a line saying what changed.
    #[oai(status = 200)]
    Room(Json<RoomJson>),
}

#[derive(ApiResponse)]
enum Done {
    /// Done. Everyone in the room sees a line saying so.
    #[oai(status = 204)]
    Done,
}

/// What a settings operation without a body may answer with besides success.
const SETTINGS: u16 = status::POST | status::NOT_FOUND | status::FORBIDDEN | status::RATE_LIMITED;
/// The same, for an operation whose input can break a rule.
const SETTINGS_INPUT: u16 = SETTINGS | status::INVALID;
/// The same, for an operation with a JSON body.
const SETTINGS_JSON: u16 = SETTINGS_INPUT | status::JSON_BODY;

pub struct Api;

#[OpenApi(tag = "Tag::Rooms")]
impl Api {
    /// Rename a room, set its topic
    ///
    /// For the room's owner. Members see the new name and topic at once, with a line saying
    /// who changed them.
    #[oai(
        path = "/rooms/:code/settings",
        method = "post",
        operation_id = "update_room_settings"
    )]
    async fn update(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        change: Json<RoomSettings>,
    ) -> Result<Changed, Problems<SETTINGS_JSON>> {
        let room = member_room(&state, &token, &code.0).await?;
        let name = change.0.name.map_or(room.name.clone(), |n| n.0);
        let topic = change.0.topic.map_or(room.topic.clone(), |t| t.0);
        settings::update(&state, token.actor(), &room, &name, &topic).await?;
        let room = member_room(&state, &token, &room.code).await?;
        Ok(Changed::Room(Json(RoomJson::of(&room))))
    }

    /// Give a room a new code
    ///
    /// For the room's owner. The old code and invitation link stop working at once; members
    /// stay. Answers the room with its new `code`.
    #[oai(
        path = "/rooms/:code/rotate",
        method = "post",
        operation_id = "rotate_room_code"
    )]
    async fn rotate(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
    ) -> Result<Changed, Problems<SETTINGS>> {
        let room = member_room(&state, &token, &code.0).await?;
        let code = settings::rotate(&state, token.actor(), &room).await?;
        let room = member_room(&state, &token, &code).await?;
        Ok(Changed::Room(Json(RoomJson::of(&room))))
    }

    /// Remove a member
    ///
    /// For the room's owner. The member's open pages and streams of the room close (4404,
    /// reason `removed`); they can come back only with the room's current code.
    #[oai(
        path = "/rooms/:code/members/:username/remove",
        method = "post",
        operation_id = "remove_member"
    )]
    async fn remove(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        /// The member's username (any case).
        username: Path<String>,
    ) -> Result<Done, Problems<SETTINGS_INPUT>> {
        let room = member_room(&state, &token, &code.0).await?;
        settings::remove(&state, token.actor(), &room, &username.0).await?;
        Ok(Done::Done)
    }

    /// Hand a room over
    ///
    /// For the room's owner: the member named becomes its owner, and you no longer are.
    #[oai(
        path = "/rooms/:code/owner",
        method = "post",
        operation_id = "hand_over_room"
    )]
    async fn hand_over(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        owner: Json<NewOwner>,
    ) -> Result<Done, Problems<SETTINGS_JSON>> {
        let room = member_room(&state, &token, &code.0).await?;
        settings::hand_over(&state, token.actor(), &room, &owner.0.username.0).await?;
        Ok(Done::Done)
    }
}
