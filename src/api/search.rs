//! `GET /search`: full-text search of the messages of the token owner's rooms, with the same
//! syntax, limits and results as the search page (`actions::search`).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json, types::Example};
use time::OffsetDateTime;

use super::{
    Tag,
    auth::Token,
    problem::{ApiError, Problems, status},
    timestamp,
};
use crate::{
    State, actions,
    store::{SearchCursor, SearchHit},
    views::messages::permalink,
};

/// A message a search found.
#[derive(Debug, Object)]
#[oai(rename = "SearchHit", example)]
pub struct SearchHitJson {
    /// Its room's code, `ABCD-EFGH`.
    pub room_code: String,
    /// Its room's name (empty: none); in a direct conversation, the other person's username.
    pub room_name: String,
    /// Its number in the room.
    pub seq: i64,
    /// The author's username.
    pub author: String,
    pub author_id: i64,
    /// The text as stored (plain text, never markup).
    pub body: String,
    pub created_at: OffsetDateTime,
    /// When its author last edited it (`null`: never).
    pub edited_at: Option<OffsetDateTime>,
    /// The message in its room, on the web pages (a path on this server).
    pub url: String,
}

impl SearchHitJson {
    fn of(hit: &SearchHit) -> Self {
        Self {
            room_code: hit.code.clone(),
            room_name: hit.room_name.clone(),
            seq: hit.seq,
            author: hit.author.clone(),
            author_id: hit.user_id,
            body: hit.body.clone(),
            created_at: timestamp(hit.created_at),
            edited_at: hit.edited_at.map(timestamp),
            url: permalink(&hit.code, hit.seq),
        }
    }
}

impl Example for SearchHitJson {
    fn example() -> Self {
        Self {
            room_code: "ABCD-EFGH".into(),
            room_name: "Release crew".into(),
            seq: 42,
            author: "ada".into(),
            author_id: 7,
            body: "The deployment is done.".into(),
            created_at: timestamp(1_767_312_000_000),
            edited_at: None,
            url: "/rooms/ABCD-EFGH/messages/42#msg-42".into(),
        }
    }
}

/// A page of results, newest first.
#[derive(Debug, Object)]
#[oai(rename = "SearchResults", example)]
pub struct SearchResultsJson {
    pub results: Vec<SearchHitJson>,
    /// Ask again with `before` set to this for the next (older) page; `null`: this is the
    /// last one.
    pub next_before: Option<String>,
}

impl Example for SearchResultsJson {
    fn example() -> Self {
        Self {
            results: vec![SearchHitJson::example()],
            next_before: Some("1767312000000.3.42".into()),
        }
    }
}

#[derive(ApiResponse)]
enum Found {
    /// The messages found (none when `q` searches for nothing).
    #[oai(status = 200)]
    Results(Json<SearchResultsJson>),
}

pub struct Api;

#[OpenApi(tag = "Tag::Messages")]
impl Api {
    /// Search messages
    ///
    /// Searches the messages of every room you are a member of, newest first, 20 a page.
    /// Words match their beginnings (`deplo` finds "deployment"; words of one or two letters
    /// only themselves); every word must be there. `"quoted words"` must come one after the
    /// other. `from:username` keeps one person's messages, `in:ABCD-EFGH` one room's.
    /// Punctuation is never syntax. At most 200 characters (else `invalid-input`), and by
    /// default 30 searches a minute (`rate-limited`).
    #[oai(path = "/search", method = "get", operation_id = "search_messages")]
    async fn search(
        &self,
        token: Token,
        state: Data<&State>,
        /// What to search for (nothing: no results).
        #[oai(example = "example_q")]
        q: Query<Option<String>>,
        /// `next_before` of the previous page.
        before: Query<Option<String>>,
    ) -> Result<Found, Problems<{ status::ALWAYS | status::INVALID | status::RATE_LIMITED }>> {
        if let Some(raw) = &before.0
            && SearchCursor::parse(raw).is_none()
        {
            return Err(ApiError::invalid_parameter(
                "`before` must be the `next_before` of a previous page.",
            )
            .into());
        }
        let found = actions::search(
            &state,
            token.actor(),
            q.0.as_deref().unwrap_or_default(),
            before.0.as_deref(),
        )
        .await?;
        Ok(Found::Results(Json(SearchResultsJson {
            results: found.hits.iter().map(SearchHitJson::of).collect(),
            next_before: found.next.map(|c| c.to_string()),
        })))
    }
}

fn example_q() -> Option<String> {
    Some("deplo from:ada".into())
}
