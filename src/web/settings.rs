//! Room settings, for the room's owner: `GET,POST /rooms/{code}/settings` (name and topic),
//! `POST /rooms/{code}/settings/rotate` (a new code), `POST /rooms/{code}/members/{username}/remove`
//! and `POST /rooms/{code}/owner` (hand the room over). Plain forms, each answering 303; a
//! refused one re-renders the page with why (422), a member who does not own the room gets
//! 403 with a sentence, anyone else 404 like every room route (`InRoom`).

use poem::{Response, handler, http::StatusCode, web::Path};
use serde::Deserialize;

use super::{InRoom, NoFields, UserForm, member_nav, refused, respond, see_other};
use crate::{
    State,
    actions::settings,
    auth::{AppData, CurrentUser},
    error::AppError,
    refusal::Refusal,
    store::Room,
    views::settings::SettingsPage,
};

/// The name and topic form.
#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    topic: String,
}

/// The hand-over form.
#[derive(Deserialize)]
pub struct OwnerForm {
    #[serde(default)]
    username: String,
}

/// `{username}` of the remove route.
#[derive(Deserialize)]
pub struct MemberParam {
    username: String,
}

/// What the page shows besides the room: the form's values and why something was refused.
#[derive(Default)]
struct Shown<'a> {
    typed: Option<(&'a str, &'a str)>,
    error: Option<&'a str>,
    member_error: Option<&'a str>,
}

/// The settings page of `room` for its owner.
async fn page(
    state: &State,
    user: &CurrentUser,
    room: &Room,
    shown: Shown<'_>,
) -> Result<maud::Markup, AppError> {
    let members = state.store.members(room.id).await?;
    let csrf = user.session.csrf();
    let (name, topic) = shown.typed.unwrap_or((&room.name, &room.topic));
    Ok(SettingsPage {
        nav: member_nav(user, &csrf),
        csrf: &csrf,
        room,
        members: &members,
        name,
        topic,
        error: shown.error,
        member_error: shown.member_error,
    }
    .render())
}

/// The page again with `refusal` said where it belongs (beside the name and topic, with what
/// was `typed`, or above the members), at its status; refusals that are not about the forms
/// (403, 404, 429 on guesses, 503) are the error page.
async fn again(
    state: &State,
    user: &CurrentUser,
    room: &Room,
    refusal: Refusal,
    typed: Option<(&str, &str)>,
) -> poem::Result<Response> {
    if !matches!(refusal, Refusal::Invalid(_) | Refusal::TooFast { .. }) {
        return Err(AppError::from(refusal).into());
    }
    let why = refusal.sentence();
    let shown = match typed {
        Some(typed) => Shown {
            typed: Some(typed),
            error: Some(&why),
            member_error: None,
        },
        None => Shown {
            member_error: Some(&why),
            ..Shown::default()
        },
    };
    let markup = page(state, user, room, shown).await?;
    Ok(refused(&refusal, markup))
}

/// `GET /rooms/{code}/settings`.
#[handler]
pub async fn show(
    state: AppData<'_>,
    InRoom { user, room }: InRoom<Room>,
) -> poem::Result<Response> {
    settings::may_manage(&room, user.actor()).map_err(AppError::from)?;
    let markup = page(&state, &user, &room, Shown::default()).await?;
    Ok(respond(StatusCode::OK, markup))
}

/// `POST /rooms/{code}/settings`: name and topic; 303 back to the room, where the system line
/// says what changed.
#[handler]
pub async fn update(
    state: AppData<'_>,
    posted: UserForm<SettingsForm>,
    found: poem::Result<InRoom<Room>>,
) -> poem::Result<Response> {
    let InRoom { user, room } = posted.or_keeping(found)?;
    let form = &posted.form;
    match settings::update(&state, user.actor(), &room, &form.name, &form.topic).await {
        Ok(()) => Ok(see_other(&format!("/rooms/{}", room.code), posted.htmx)),
        Err(Refusal::Unavailable) => Err(posted.keeping(Refusal::Unavailable).into()),
        Err(refusal) => {
            let typed = Some((form.name.as_str(), form.topic.as_str()));
            again(&state, &user, &room, refusal, typed).await
        }
    }
}

/// `POST /rooms/{code}/settings/rotate`: a new code; 303 to the settings page at it.
#[handler]
pub async fn rotate(
    state: AppData<'_>,
    UserForm { htmx, .. }: UserForm<NoFields>,
    InRoom { user, room }: InRoom<Room>,
) -> poem::Result<Response> {
    match settings::rotate(&state, user.actor(), &room).await {
        Ok(code) => Ok(see_other(&format!("/rooms/{code}/settings"), htmx)),
        Err(refusal) => again(&state, &user, &room, refusal, None).await,
    }
}

/// `POST /rooms/{code}/members/{username}/remove`: 303 back to the settings page.
#[handler]
pub async fn remove(
    state: AppData<'_>,
    UserForm { htmx, .. }: UserForm<NoFields>,
    InRoom { user, room }: InRoom<Room>,
    Path(MemberParam { username }): Path<MemberParam>,
) -> poem::Result<Response> {
    match settings::remove(&state, user.actor(), &room, &username).await {
        Ok(()) => Ok(see_other(&format!("/rooms/{}/settings", room.code), htmx)),
        Err(refusal) => again(&state, &user, &room, refusal, None).await,
    }
}

/// `POST /rooms/{code}/owner` (`username`): hands the room over; 303 back to the room (the
/// settings page is no longer theirs).
#[handler]
pub async fn hand_over(
    state: AppData<'_>,
    posted: UserForm<OwnerForm>,
    InRoom { user, room }: InRoom<Room>,
) -> poem::Result<Response> {
    let username = &posted.form.username;
    match settings::hand_over(&state, user.actor(), &room, username).await {
        Ok(()) => Ok(see_other(&format!("/rooms/{}", room.code), posted.htmx)),
        Err(refusal) => again(&state, &user, &room, refusal, None).await,
    }
}
