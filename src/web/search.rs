//! `GET /search`: search the messages of my rooms (the markup is in `views::search`).

use poem::{Response, handler, http::StatusCode, web::Query};
use serde::Deserialize;

use super::{member_nav, refused, respond};
use crate::{
    actions,
    auth::{AppData, CurrentUser},
    error::AppError,
    refusal::Refusal,
    views::search::{self as view, SearchPage},
};

/// The search form's fields.
#[derive(Deserialize)]
pub struct SearchParams {
    /// What was typed.
    #[serde(default)]
    q: String,
    /// Where the page starts (`created_at.room_id.seq` of the last result of the page before).
    before: Option<String>,
}

/// `GET /search?q=…&before=…`: the form; with a search, its results, newest first. Text that
/// is too long (422) or too many searches (429) shows the form again with the reason and the
/// text kept.
#[handler]
pub async fn search(
    state: AppData<'_>,
    user: CurrentUser,
    Query(params): Query<SearchParams>,
) -> poem::Result<Response> {
    let csrf = user.session.csrf();
    let nav = member_nav(&user, &csrf);
    let found = actions::search(&state, user.actor(), &params.q, params.before.as_deref()).await;
    let mut page = SearchPage {
        q: &params.q,
        results: None,
        error: None,
        continued: params.before.is_some(),
    };
    match found {
        Ok(results) => {
            page.results = Some(&results);
            Ok(respond(StatusCode::OK, view::page(nav, &page)))
        }
        Err(refusal @ (Refusal::Invalid(_) | Refusal::TooFast { .. })) => {
            let why = refusal.sentence();
            page.error = Some(&why);
            Ok(refused(&refusal, view::page(nav, &page)))
        }
        Err(other) => Err(AppError::from(other).into()),
    }
}
