//! Home: create a room, join one by code, my rooms; and the invitation page.

use poem::{
    Response, handler,
    http::{StatusCode, header},
    web::Path,
};
use serde::Deserialize;

use super::{UserForm, member_nav, respond, see_other};
use crate::{
    State,
    actions::{self, Refusal},
    auth::{AppData, CurrentUser, MaybeSession},
    domain::RoomCode,
    error::AppError,
    views::{
        FormEcho,
        home::{self as view, HomeForms},
    },
};

async fn home_page(
    state: &State,
    user: &CurrentUser,
    forms: HomeForms<'_>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let rooms = state.store.my_rooms(user.id).await?;
    let csrf = user.session.csrf();
    let page = view::home(member_nav(user, &csrf), &csrf, &rooms, &forms);
    Ok(respond(status, page))
}

/// `GET /home`.
#[handler]
pub async fn home(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    Ok(home_page(&state, &user, HomeForms::default(), StatusCode::OK).await?)
}

#[derive(Deserialize)]
pub struct CreateRoom {
    #[serde(default)]
    name: String,
}

/// `POST /rooms`: create a room and go in.
#[handler]
pub async fn create_room(
    state: AppData<'_>,
    UserForm { user, form, htmx }: UserForm<CreateRoom>,
) -> poem::Result<Response> {
    match actions::create_room(&state, user.actor(), &form.name).await {
        Ok(room) => Ok(see_other(&format!("/rooms/{}", room.code), htmx)),
        Err(refusal) => {
            let why = refusal.message();
            let forms = HomeForms {
                name: &form.name,
                name_error: Some(&why),
                ..Default::default()
            };
            refused(&state, &user, forms, &refusal).await
        }
    }
}

#[derive(Deserialize)]
pub struct JoinRoom {
    #[serde(default)]
    code: String,
}

/// `POST /rooms/join`: join by code; a wrong code re-renders home with the reason (422).
#[handler]
pub async fn join_room(
    state: AppData<'_>,
    UserForm { user, form, htmx }: UserForm<JoinRoom>,
) -> poem::Result<Response> {
    match actions::join_by_code(&state, user.actor(), &form.code).await {
        Ok(room) => Ok(see_other(&format!("/rooms/{}", room.code), htmx)),
        Err(refusal) => {
            let why = refusal.message();
            let forms = HomeForms {
                code: &form.code,
                code_error: Some(&why),
                ..Default::default()
            };
            refused(&state, &user, forms, &refusal).await
        }
    }
}

/// Home again, with the refused form showing why and what was typed.
async fn refused(
    state: &State,
    user: &CurrentUser,
    forms: HomeForms<'_>,
    refusal: &Refusal,
) -> poem::Result<Response> {
    let status = match refusal {
        Refusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::TooFast { .. } => StatusCode::TOO_MANY_REQUESTS,
        Refusal::NotFound => StatusCode::NOT_FOUND,
        Refusal::Unavailable => {
            // The database is down: give the typed text back, ready to send again.
            let (action, field, value) = match forms.code_error {
                Some(_) => ("/rooms/join", "code", forms.code),
                None => ("/rooms", "name", forms.name),
            };
            let fields = vec![
                (field.to_string(), value.to_string()),
                ("csrf".to_string(), user.session.csrf()),
            ];
            return Err(AppError::UnavailableKeeping(FormEcho {
                action: action.into(),
                fields,
            })
            .into());
        }
    };
    let mut response = home_page(state, user, forms, status).await?;
    if let Some(secs) = refusal.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    Ok(response)
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
    let code = RoomCode::parse(&raw).map_err(|_| AppError::NotFound)?;
    let path = format!("/join/{code}");
    let Some(session) = session else {
        let next = url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
        return Ok(respond(StatusCode::OK, view::invitation_signed_out(&next)));
    };
    let user = CurrentUser::from_session(session)?;
    let room = actions::find_by_code(&state, user.actor(), &raw)
        .await
        .map_err(|r| match r {
            Refusal::Invalid(_) => AppError::NotFound,
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
