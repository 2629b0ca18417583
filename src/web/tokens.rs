//! Personal access tokens on the profile page: list, create (the text shown once), revoke.
//! A token lets a program use the JSON API (`/api/v1`) as its owner.

use maud::{Markup, html};
use poem::{Response, handler, http::StatusCode, web::Path};
use serde::Deserialize;

use super::{
    NoFields, UserForm, account,
    layout::{self, csrf_field, field_error, see_other},
};
use crate::{
    auth::{self, AppData},
    domain::TokenName,
    error::AppError,
    store::{ApiToken, now_ms},
};

/// The most tokens one person may hold at once: enough for every script they run, few enough
/// that a forgotten one stands out on the list.
pub const MAX_TOKENS: i64 = 20;

/// What the token panel shows besides the list.
#[derive(Default)]
pub struct TokenPanel<'a> {
    /// The name as typed, kept after a refusal.
    pub typed: &'a str,
    pub error: Option<&'a str>,
    /// A token just created: its name and its text, shown this once.
    pub created: Option<(&'a str, &'a str)>,
}

/// The "API tokens" section of the profile page.
pub fn panel(tokens: &[ApiToken], csrf: &str, panel: &TokenPanel) -> Markup {
    html! {
        section.card.api-tokens aria-labelledby="tokens-title" {
            h2 #tokens-title { "API tokens" }
            p {
                "A token lets a script use natter's " a href="/api/docs" { "JSON API" }
                " as you: it can read your rooms and post in them. Keep it secret, and revoke any you no longer use."
            }
            @if let Some((name, token)) = panel.created {
                div.token-created role="status" aria-labelledby="token-created-title" {
                    h3 #token-created-title { "Your new token \u{201c}" (name) "\u{201d}" }
                    p { strong { "Copy it now: it won't be shown again." } }
                    p { code.token-value #new-token { (token) } }
                    p.muted.small { "Send it as " code { "Authorization: Bearer " (token) } }
                }
            }
            @if tokens.is_empty() {
                p.muted { "You have no API tokens." }
            } @else {
                table.token-list {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for token in tokens {
                            tr id={ "token-" (token.id) } {
                                td { bdi { (token.name) } }
                                td { (layout::time(token.created_at, false)) }
                                td {
                                    @match token.last_used_at {
                                        Some(at) => (layout::time(at, false)),
                                        None => span.muted { "never" },
                                    }
                                }
                                td {
                                    form.inline-form method="post" action={ "/profile/tokens/" (token.id) "/revoke" } {
                                        (csrf_field(csrf))
                                        button.button.small.danger type="submit" aria-label={ "Revoke " (token.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/profile/tokens" novalidate {
                (csrf_field(csrf))
                label for="token-name" { "New token name" }
                input #token-name type="text" name="name" value=(panel.typed) required
                    maxlength=(TokenName::MAX) autocomplete="off"
                    aria-invalid=[panel.error.map(|_| "true")]
                    aria-describedby={ "token-name-help" @if panel.error.is_some() { " token-name-error" } };
                p.help #token-name-help { "What the token is for, such as \u{201c}deploy bot\u{201d}. Up to 60 characters." }
                (field_error("token-name-error", panel.error))
                button.button.primary type="submit" { "Create token" }
            }
        }
    }
}

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
