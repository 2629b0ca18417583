//! Who calls the API: the owner of a personal access token, sent as `Authorization: Bearer`.
//!
//! The API never looks at the session cookie. That is what makes it safe without CSRF tokens:
//! a browser attaches cookies to a forged cross-site request on its own, but never an
//! `Authorization` header, so another site cannot make a visitor's browser act through the API.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use super::problem::ApiError;
use crate::{
    State,
    auth::{Actor, hash_token, parse_api_token},
    store::now_ms,
};

/// A personal access token (`ntr_…`), created on the profile page and sent as
/// `Authorization: Bearer ntr_…`. It acts as the person who created it. The session cookie is
/// never accepted here, which is why the API needs no CSRF token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "ntr_…", checker = "token_owner")]
pub struct Token(pub ApiUser);

/// The person a token acts for.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub id: i64,
    pub username: String,
}

impl Token {
    /// The caller as an actor in `actions`.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            id: self.0.id,
            username: &self.0.username,
        }
    }
}

/// Looks the token up by its hash and records its use (at most once a minute: SQLite has a
/// single writer and a script may call many times a second). Unknown or revoked: 401; the
/// database down: 503.
async fn token_owner(req: &Request, bearer: Bearer) -> poem::Result<ApiUser> {
    let state = req.data::<State>().ok_or_else(|| {
        poem::Error::from_string(
            "application state missing",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })?;
    let secret = parse_api_token(bearer.token.trim()).ok_or_else(ApiError::unauthorized)?;
    let owner = state
        .store
        .api_token_owner(&hash_token(&secret))
        .await
        .map_err(ApiError::from)?
        .ok_or_else(ApiError::unauthorized)?;
    let username = owner.username.ok_or_else(ApiError::unauthorized)?;
    let now = now_ms();
    if owner.last_used_at.is_none_or(|at| now - at > 60_000) {
        // Bookkeeping only: a failure here must not refuse a request that is otherwise fine.
        if let Err(e) = state.store.touch_api_token(owner.token_id, now).await {
            tracing::warn!(error = %e, "could not record an API token's use");
        }
    }
    Ok(ApiUser {
        id: owner.user_id,
        username,
    })
}
