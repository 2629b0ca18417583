//! Home: create a room, join one by code, my rooms; and the invitation page.

use poem::{Response, handler, http::StatusCode, web::Path};
use serde::Deserialize;

use super::{NoFields, UserForm, member_nav, refused, respond, see_other};
use crate::{
    State, actions,
    auth::{AppData, CurrentUser, MaybeSession},
    domain::RoomCode,
    error::AppError,
    refusal::Refusal,
    views::home::{self as view, HomeForms},
};

/// The home page, with `forms` showing what was typed and why it was refused, if it was.
async fn home_page(
    state: &State,
    user: &CurrentUser,
    forms: &HomeForms<'_>,
) -> Result<maud::Markup, AppError> {
    let rooms = state.store.my_rooms(user.id).await?;
    let directs = state.store.directs(user.id).await?;
    let csrf = user.session.csrf();
    Ok(view::home(
        member_nav(user, &csrf),
        &csrf,
        &rooms,
        &directs,
        forms,
    ))
}

/// `GET /home`.
#[handler]
pub async fn home(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    let page = home_page(&state, &user, &HomeForms::default()).await?;
    Ok(respond(StatusCode::OK, page))
}

/// `POST /home/read`: "Mark all read".
#[handler]
pub async fn mark_all_read(
    state: AppData<'_>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
) -> poem::Result<Response> {
    actions::mark_all_read(&state, user.actor())
        .await
        .map_err(AppError::from)?;
    Ok(see_other("/home", htmx))
}

/// The "Start a room" form.
#[derive(Deserialize)]
pub struct CreateRoom {
    #[serde(default)]
    name: String,
}

/// `POST /rooms`: create a room and go in.
#[handler]
pub async fn create_room(
    state: AppData<'_>,
    posted: UserForm<CreateRoom>,
) -> poem::Result<Response> {
    let UserForm { user, form, .. } = &posted;
    let refusal = match actions::create_room(&state, user.actor(), &form.name).await {
        Ok(room) => return Ok(see_other(&format!("/rooms/{}", room.code), posted.htmx)),
        Err(refusal) => refusal,
    };
    let why = refusal.sentence();
    let forms = HomeForms {
        name: &form.name,
        name_error: Some(&why),
        ..Default::default()
    };
    home_refused(&state, &posted, &forms, refusal).await
}

/// The "Join with a code" form.
#[derive(Deserialize)]
pub struct JoinRoom {
    #[serde(default)]
    code: String,
}

/// `POST /rooms/join`: join by code; a wrong code re-renders home with the reason (422).
#[handler]
pub async fn join_room(state: AppData<'_>, posted: UserForm<JoinRoom>) -> poem::Result<Response> {
    let UserForm { user, form, .. } = &posted;
    let refusal = match actions::join_by_code(&state, user.actor(), &form.code).await {
        Ok(room) => return Ok(see_other(&format!("/rooms/{}", room.code), posted.htmx)),
        Err(refusal) => refusal,
    };
    let why = refusal.sentence();
    let forms = HomeForms {
        code: &form.code,
        code_error: Some(&why),
        ..Default::default()
    };
    home_refused(&state, &posted, &forms, refusal).await
}

/// Home again, with the refused form showing why and what was typed; when the database is
/// down, the error page gives the text back instead.
async fn home_refused<T>(
    state: &State,
    posted: &UserForm<T>,
    forms: &HomeForms<'_>,
    refusal: Refusal,
) -> poem::Result<Response> {
    if refusal == Refusal::Unavailable {
        return Err(posted.keeping(refusal).into());
    }
    match home_page(state, &posted.user, forms).await {
        Ok(page) => Ok(refused(&refusal, page)),
        Err(_) => Err(posted.keeping(Refusal::Unavailable).into()),
    }
}

/// `GET /join/{code}`: the invitation link. Signed out: a page asking to sign in first (and
/// coming back here after). Members go straight in; others see the room's name and a join
/// button.
#[handler]
pub async fn invitation(
    state: AppData<'_>,
    MaybeSession(session): MaybeSession,
    Path(raw): Path<String>,
) -> poem::Result<Response> {
    let code = RoomCode::parse(&raw).map_err(|_| AppError::NOT_FOUND)?;
    let path = format!("/join/{code}");
    let Some(session) = session else {
        let next = url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
        return Ok(respond(StatusCode::OK, view::invitation_signed_out(&next)));
    };
    let user = CurrentUser::from_session(session)?;
    let room = actions::find_by_code(&state, user.actor(), &raw)
        .await
        .map_err(|r| match r {
            Refusal::Invalid(_) => AppError::NOT_FOUND,
            other => AppError::from(other),
        })?;
    if code.canonical() != raw {
        return Ok(see_other(&path, false));
    }
    if state
        .store
        .is_member(room.id, user.id)
        .await
        .map_err(AppError::from)?
    {
        return Ok(see_other(&format!("/rooms/{}", room.code), false));
    }
    let csrf = user.session.csrf();
    let page = view::invitation(
        member_nav(&user, &csrf),
        &csrf,
        room.display_name(),
        &room.code,
    );
    Ok(respond(StatusCode::OK, page))
}
