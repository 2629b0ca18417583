//! `GET /me`: who the token acts for.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Example};
use time::OffsetDateTime;

use super::{
    Tag,
    auth::Token,
    problem::{ApiError, Problems, status},
    timestamp,
};
use crate::State;

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
}
