//! Direct conversations: list mine, open one with someone (issue 17). Inside, a direct
//! conversation is a room: read and post in it with the room operations and its `code`.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Example};
use time::OffsetDateTime;

use super::{
    Tag,
    auth::Token,
    problem::{Problems, status},
    timestamp,
};
use crate::{
    State,
    actions::direct,
    store::{DirectSummary, Room},
};

/// A direct conversation between you and one other person.
#[derive(Debug, Object)]
#[oai(rename = "Direct", example)]
pub struct DirectJson {
    /// The other person's username.
    pub username: String,
    /// The conversation's code, for the room operations (`/rooms/{code}/messages`, …). It
    /// cannot be joined: nobody but the two of you is ever a member.
    pub code: String,
    /// The newest event's `seq` (0: nothing posted yet).
    pub last_seq: i64,
    /// When the conversation was opened or last posted in.
    pub last_activity_at: OffsetDateTime,
    /// In your list: messages you have not read, counted up to 100. Absent elsewhere.
    #[oai(skip_serializing_if_is_none)]
    pub unread: Option<i64>,
}

impl DirectJson {
    fn of(username: &str, room: &Room) -> Self {
        Self {
            username: username.to_string(),
            code: room.code.clone(),
            last_seq: room.last_seq,
            last_activity_at: timestamp(room.last_activity_at),
            unread: None,
        }
    }

    fn of_summary(d: &DirectSummary) -> Self {
        Self {
            username: d.other.clone(),
            code: d.code.clone(),
            last_seq: d.last_seq,
            last_activity_at: timestamp(d.last_activity_at),
            unread: Some(d.unread),
        }
    }
}

impl Example for DirectJson {
    fn example() -> Self {
        Self {
            username: "bob".into(),
            code: "QRST-VWXY".into(),
            last_seq: 12,
            last_activity_at: timestamp(1_767_312_000_000),
            unread: Some(1),
        }
    }
}

/// Your direct conversations, most recently active first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct DirectList {
    pub direct: Vec<DirectJson>,
}

impl Example for DirectList {
    fn example() -> Self {
        Self {
            direct: vec![DirectJson::example()],
        }
    }
}

#[derive(ApiResponse)]
enum Listed {
    /// Your direct conversations (not those you closed), most recently active first.
    #[oai(status = 200)]
    Direct(Json<DirectList>),
}

#[derive(ApiResponse)]
enum Opened {
    /// The conversation existed already (if you had closed it, it is in your list again).
    #[oai(status = 200)]
    Existing(Json<DirectJson>),
    /// The conversation was created. The other person sees it once a message is posted in it.
    #[oai(status = 201)]
    Created(Json<DirectJson>),
}

pub struct Api;

#[OpenApi(tag = "Tag::Direct")]
impl Api {
    /// Your direct conversations
    ///
    /// Conversations you closed are not listed until a new message arrives in them; one the
    /// other person opened appears with its first message.
    #[oai(path = "/direct", method = "get", operation_id = "list_direct")]
    async fn list(
        &self,
        token: Token,
        state: Data<&State>,
    ) -> Result<Listed, Problems<{ status::ALWAYS }>> {
        let list = state.store.directs(token.0.id).await?;
        Ok(Listed::Direct(Json(DirectList {
            direct: list.iter().map(DirectJson::of_summary).collect(),
        })))
    }

    /// Open a direct conversation
    ///
    /// With someone who shares a room with you: created on first use (201; limited with joins
    /// and leaves), otherwise the existing one (200). An unknown username and someone who
    /// shares no room with you are both not found (404, counted as wrong room codes); your own
    /// name is invalid (422).
    #[oai(
        path = "/direct/:username",
        method = "post",
        operation_id = "open_direct"
    )]
    async fn open(
        &self,
        token: Token,
        state: Data<&State>,
        /// The other person's username (any case).
        username: Path<String>,
    ) -> Result<
        Opened,
        Problems<{ status::POST | status::NOT_FOUND | status::INVALID | status::RATE_LIMITED }>,
    > {
        let (person, opened) = direct::open(&state, token.actor(), &username.0).await?;
        let json = Json(DirectJson::of(&person.username, &opened.room));
        Ok(if opened.created {
            Opened::Created(json)
        } else {
            Opened::Existing(json)
        })
    }
}
