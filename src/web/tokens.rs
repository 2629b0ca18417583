//! Personal access tokens on the profile page: list, create (the text shown once), revoke.
//! A token lets a program use the JSON API (`/api/v1`) as its owner.

use poem::{Response, handler, http::StatusCode, web::Path};
use serde::Deserialize;

use super::{NoFields, UserForm, account, refused, respond, see_other};
use crate::{
    State,
    auth::{self, AppData, CurrentUser},
    domain::TokenName,
    error::AppError,
    refusal::Refusal,
    store::now_ms,
    views::tokens::TokenPanel,
};

/// The most tokens one person may hold at once: enough for every script they run, few enough
/// that a forgotten one stands out on the list.
pub const MAX_TOKENS: i64 = 20;

/// The new-token form.
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
    let name = match TokenName::parse(&form.name) {
        Ok(name) => name,
        Err(invalid) => return refuse(&state, &user, &form.name, invalid.0).await,
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
    let Some(id) = created else {
        let why = "You have 20 tokens, the most one person may hold. Revoke one you no longer use \
                   first.";
        return refuse(&state, &user, &form.name, why).await;
    };
    tracing::info!(user_id = user.id, token_id = id, "API token created");
    let panel = TokenPanel {
        created: Some((name.as_str(), &text)),
        ..TokenPanel::default()
    };
    let page = account::profile_page(&state, &user, panel).await?;
    Ok(respond(StatusCode::CREATED, page))
}

/// The profile again, the token name as typed and why it was refused (422).
async fn refuse(
    state: &State,
    user: &CurrentUser,
    typed: &str,
    why: &'static str,
) -> poem::Result<Response> {
    let panel = TokenPanel {
        typed,
        error: Some(why),
        created: None,
    };
    let page = account::profile_page(state, user, panel).await?;
    Ok(refused(&Refusal::Invalid(why), page))
}

/// `POST /profile/tokens/{id}/revoke`: the token stops working at once (401 from the API).
#[handler]
pub async fn revoke(
    state: AppData<'_>,
    Path(raw): Path<String>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
) -> poem::Result<Response> {
    let id: i64 = raw.parse().map_err(|_| AppError::NOT_FOUND)?;
    if !state
        .store
        .revoke_api_token(user.id, id)
        .await
        .map_err(AppError::from)?
    {
        return Err(AppError::NOT_FOUND.into());
    }
    tracing::info!(user_id = user.id, token_id = id, "API token revoked");
    Ok(see_other("/profile", htmx))
}
