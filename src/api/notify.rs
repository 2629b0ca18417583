//! What a person wants to hear about: their default, and each room's own setting. Read and
//! set exactly as the profile's and the room's forms do (through `actions`).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Example};

use super::{
    Tag,
    auth::Token,
    problem::{Problems, status},
    rooms::member_room,
    text::Text,
};
use crate::{State, actions, store::RoomNotify};

/// Your default: what natter tells you about a room that has no setting of its own.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NotifyDefault {
    /// `all` (every message), `mentions` (messages that mention you) or `nothing`.
    pub default: String,
}

impl Example for NotifyDefault {
    fn example() -> Self {
        Self {
            default: "mentions".into(),
        }
    }
}

/// A new default.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SetNotifyDefault {
    /// `all`, `mentions` or `nothing`; anything else is refused (422).
    pub default: Text,
}

impl Example for SetNotifyDefault {
    fn example() -> Self {
        Self {
            default: "mentions".into(),
        }
    }
}

/// Your setting for one room.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RoomNotifyJson {
    /// The room's own setting: `all`, `mentions`, `nothing`, or `default` (your default
    /// applies).
    pub notify: String,
    /// What applies: `all`, `mentions` or `nothing`.
    pub effective: String,
}

impl RoomNotifyJson {
    fn of(n: RoomNotify) -> Self {
        Self {
            notify: n.own.map_or("default", |o| o.as_str()).into(),
            effective: n.effective().as_str().into(),
        }
    }
}

impl Example for RoomNotifyJson {
    fn example() -> Self {
        Self {
            notify: "default".into(),
            effective: "mentions".into(),
        }
    }
}

/// A room's new setting.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SetRoomNotify {
    /// `all`, `mentions`, `nothing`, or `default` (follow your default); anything else is
    /// refused (422).
    pub notify: Text,
}

impl Example for SetRoomNotify {
    fn example() -> Self {
        Self {
            notify: "nothing".into(),
        }
    }
}

#[derive(ApiResponse)]
enum Default {
    /// Your default.
    #[oai(status = 200)]
    Setting(Json<NotifyDefault>),
}

#[derive(ApiResponse)]
enum Room {
    /// Your setting for the room.
    #[oai(status = 200)]
    Setting(Json<RoomNotifyJson>),
}

pub struct Api;

#[OpenApi]
impl Api {
    /// Your default notification setting
    ///
    /// What natter tells you about rooms without a setting of their own: unread marks follow
    /// it (`all`: every message counts, `mentions`: only messages mentioning you, `nothing`:
    /// no mark), and so will notifications.
    #[oai(
        path = "/me/notifications",
        method = "get",
        operation_id = "get_notify_default",
        tag = "Tag::Account"
    )]
    async fn get_default(
        &self,
        token: Token,
        state: Data<&State>,
    ) -> Result<Default, Problems<{ status::ALWAYS }>> {
        let notify = state.store.notify_default(token.0.id).await?;
        Ok(Default::Setting(Json(NotifyDefault {
            default: notify.as_str().into(),
        })))
    }

    /// Set your default notification setting
    #[oai(
        path = "/me/notifications",
        method = "put",
        operation_id = "set_notify_default",
        tag = "Tag::Account"
    )]
    async fn set_default(
        &self,
        token: Token,
        state: Data<&State>,
        setting: Json<SetNotifyDefault>,
    ) -> Result<Default, Problems<{ status::JSON_BODY | status::INVALID }>> {
        let notify =
            actions::set_notify_default(&state, token.actor(), &setting.0.default.0).await?;
        Ok(Default::Setting(Json(NotifyDefault {
            default: notify.as_str().into(),
        })))
    }

    /// Your notification setting for a room
    #[oai(
        path = "/rooms/:code/notifications",
        method = "get",
        operation_id = "get_room_notify",
        tag = "Tag::Rooms"
    )]
    async fn get_room(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
    ) -> Result<Room, Problems<{ status::ALWAYS | status::NOT_FOUND | status::RATE_LIMITED }>> {
        let room = member_room(&state, &token, &code.0).await?;
        let notify = state
            .store
            .room_notify(room.id, token.0.id)
            .await?
            .ok_or_else(super::problem::ApiError::not_found)?;
        Ok(Room::Setting(Json(RoomNotifyJson::of(notify))))
    }

    /// Set your notification setting for a room
    #[oai(
        path = "/rooms/:code/notifications",
        method = "put",
        operation_id = "set_room_notify",
        tag = "Tag::Rooms"
    )]
    async fn set_room(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        setting: Json<SetRoomNotify>,
    ) -> Result<
        Room,
        Problems<
            { status::JSON_BODY | status::NOT_FOUND | status::INVALID | status::RATE_LIMITED },
        >,
    > {
        let room = member_room(&state, &token, &code.0).await?;
        let notify =
            actions::set_room_notify(&state, token.actor(), &room, &setting.0.notify.0).await?;
        Ok(Room::Setting(Json(RoomNotifyJson::of(notify))))
    }
}
