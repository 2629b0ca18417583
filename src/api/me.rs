//! `GET /me`: who the token acts for; `/me/sessions`: the browsers signed in as them, each of
//! which can be ended (as on `/profile/sessions`).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Example};
use time::OffsetDateTime;

use super::{
    Tag,
    auth::Token,
    problem::{ApiError, Problems, status},
    timestamp,
};
use crate::{State, actions::account, domain::agent::Agent, store::now_ms};

/// The person a token acts for.
#[derive(Debug, Object)]
#[oai(rename = "Me", example)]
pub struct Me {
    pub id: i64,
    /// Shown to others exactly as typed.
    pub username: String,
    pub member_since: OffsetDateTime,
}

impl Example for Me {
    fn example() -> Self {
        Me {
            id: 7,
            username: "ada".into(),
            member_since: timestamp(1_767_225_600_000),
        }
    }
}

/// A browser signed in as you.
#[derive(Debug, Object)]
#[oai(rename = "Session", example)]
pub struct SessionJson {
    /// Its id: what `DELETE /api/v1/me/sessions/{id}` takes (32 hex digits; not its secret).
    pub id: String,
    /// Its browser and operating system as its User-Agent names them ("Firefox on Linux").
    pub browser: String,
    /// The User-Agent it signed in with (at most 300 characters).
    pub user_agent: String,
    /// When it signed in.
    pub created: OffsetDateTime,
    /// When it was last used (renewed at most once a minute).
    pub last_seen: OffsetDateTime,
    /// Whether it is the browser making this request. The API is called with tokens, never a
    /// browser's session, so here it is always `false`; the profile page marks "This browser".
    pub current: bool,
}

impl Example for SessionJson {
    fn example() -> Self {
        SessionJson {
            id: "3f2a9c0e8b7d4e1fa6c5b4d3e2f1a0b9".into(),
            browser: "Firefox on Linux".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
                .into(),
            created: timestamp(1_767_225_600_000),
            last_seen: timestamp(1_767_312_000_000),
            current: false,
        }
    }
}

#[derive(ApiResponse)]
enum Sessions {
    /// Your signed-in browsers, the newest first.
    #[oai(status = 200)]
    List(Json<Vec<SessionJson>>),
}

#[derive(ApiResponse)]
enum Ended {
    /// Ended: that browser is signed out, and its open rooms close at once (4401) on every
    /// instance.
    #[oai(status = 204)]
    Ended,
}

#[derive(ApiResponse)]
enum Found {
    /// The person the token acts for.
    #[oai(status = 200)]
    Me(Json<Me>),
}

pub struct Api;

#[OpenApi(tag = "Tag::Account")]
impl Api {
    /// Who the token acts for
    ///
    /// A quick way to check that a token works:
    ///
    /// ```sh
    /// curl -H "Authorization: Bearer $NATTER_TOKEN" https://natter.example/api/v1/me
    /// ```
    #[oai(path = "/me", method = "get", operation_id = "get_me")]
    async fn me(
        &self,
        token: Token,
        state: Data<&State>,
    ) -> Result<Found, Problems<{ status::ALWAYS }>> {
        let user = state
            .store
            .user(token.0.id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Found::Me(Json(Me {
            id: user.id,
            username: token.0.username,
            member_since: timestamp(user.created_at),
        })))
    }

    /// Your signed-in browsers
    ///
    /// Each browser signed in as you, with what its User-Agent says it is, when it signed in
    /// and when it was last used. API tokens are listed on the profile page.
    #[oai(path = "/me/sessions", method = "get", operation_id = "list_sessions")]
    async fn sessions(
        &self,
        token: Token,
        state: Data<&State>,
    ) -> Result<Sessions, Problems<{ status::ALWAYS }>> {
        let list = state.store.sessions_of(token.0.id, now_ms()).await?;
        Ok(Sessions::List(Json(
            list.into_iter()
                .map(|s| SessionJson {
                    browser: Agent::parse(&s.user_agent).describe(),
                    id: s.public_id,
                    user_agent: s.user_agent,
                    created: timestamp(s.created_at),
                    last_seen: timestamp(s.last_seen_at),
                    current: false,
                })
                .collect(),
        )))
    }

    /// End a session
    ///
    /// Signs that browser out: its open rooms close at once (4401), on every instance. An id
    /// that is not one of your sessions is 404.
    #[oai(
        path = "/me/sessions/:id",
        method = "delete",
        operation_id = "end_session"
    )]
    async fn end_session(
        &self,
        token: Token,
        state: Data<&State>,
        /// The session's `id`, from the list.
        id: Path<String>,
    ) -> Result<Ended, Problems<{ status::ALWAYS | status::NOT_FOUND }>> {
        account::end_session(&state, token.actor(), &id.0).await?;
        Ok(Ended::Ended)
    }
}
