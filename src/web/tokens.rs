//! Personal access tokens on the profile page: list, create (the text shown once), revoke.
//! A token lets a program use the JSON API (`/api/v1`) as its owner.

use poem::{Response, handler, http::StatusCode, web::Path};
use serde::Deserialize;

use super::{NoFields, UserForm, account, see_other};
use crate::{
    auth::{self, AppData},
    domain::TokenName,
    error::AppError,
    store::now_ms,
    views::tokens::TokenPanel,
};

/// The most tokens one person may hold at once: enough for every script they run, few enough
/// that a forgotten one stands out on the list.
pub const MAX_TOKENS: i64 = 20;

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
}

/// `POST /profile/tokens`: creates a token and shows the profile with its text, once (201). The
/// text never travels in a URL; only its hash is stored. A refused name comes back with the
/// reason and what was typed (422).
#[handler]
pub async fn create(
    state: AppData<'_>,
    UserForm { user, form, .. }: UserForm<NewToken>,
) -> poem::Result<Response> {
    let refuse = |why: &'static str| TokenPanel {
        typed: &form.name,
        error: Some(why),
        created: None,
    };
    let name = match TokenName::parse(&form.name) {
        Ok(name) => name,
        Err(invalid) => {
            let page = account::profile_page(
                &state,
                &user,
                refuse(invalid.0),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
            return Ok(page.await?);
        }
    };
    let (secret, text) = auth::new_api_token();
    let created = state
        .store
        .create_api_token(
            user.id,
            &name,
            &auth::hash_token(&secret),
            now_ms(),
            MAX_TOKENS,
        )
        .await
        .map_err(AppError::from)?;
    let (panel, status) = match created {
        Some(id) => {
            tracing::info!(user_id = user.id, token_id = id, "API token created");
            let panel = TokenPanel {
                created: Some((name.as_str(), &text)),
                ..TokenPanel::default()
            };
            (panel, StatusCode::CREATED)
        }
        None => (
            refuse(
                "You have 20 tokens, the most one person may hold. Revoke one you no longer use first.",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    };
    Ok(account::profile_page(&state, &user, panel, status).await?)
}

/// `POST /profile/tokens/{id}/revoke`: the token stops working at once (401 from the API).
#[handler]
pub async fn revoke(
    state: AppData<'_>,
    Path(raw): Path<String>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
) -> poem::Result<Response> {
    let id: i64 = raw.parse().map_err(|_| AppError::NotFound)?;
    if !state
        .store
        .revoke_api_token(user.id, id)
        .await
        .map_err(AppError::from)?
    {
        return Err(AppError::NotFound.into());
    }
    tracing::info!(user_id = user.id, token_id = id, "API token revoked");
    Ok(see_other("/profile", htmx))
}
