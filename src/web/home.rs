//! Home: create a room, join one by code, my rooms; and the invitation page.

use maud::{Markup, html};
use poem::{
    Response, handler,
    http::{StatusCode, header},
    web::Path,
};
use serde::Deserialize;

use super::{
    UserForm,
    layout::{self, Nav, Page, csrf_field, field_error, respond, see_other},
};
use crate::{
    State,
    auth::{AppData, CurrentUser, MaybeSession},
    domain::{RoomCode, RoomName},
    error::AppError,
    store::{JoinOutcome, now_ms},
};

/// What the home forms show after a refused submission.
#[derive(Default)]
struct HomeForms<'a> {
    name: &'a str,
    name_error: Option<&'a str>,
    code: &'a str,
    code_error: Option<&'a str>,
}

async fn home_page(
    state: &State,
    user: &CurrentUser,
    forms: HomeForms<'_>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let rooms = state.store.my_rooms(user.id).await?;
    let csrf = user.session.csrf();
    let content = html! {
        h1.visually-hidden { "Your rooms" }
        div.actions {
            section.card.action aria-labelledby="create-title" {
                h2 #create-title { "Start a room" }
                p.muted { "You get a short code to share with the people you invite." }
                form method="post" action="/rooms" novalidate {
                    (csrf_field(&csrf))
                    label for="room-name" { "Room name " span.optional { "(optional)" } }
                    input #room-name type="text" name="name" value=(forms.name) maxlength=(RoomName::MAX) autocomplete="off"
                        placeholder="Book club"
                        aria-invalid=[forms.name_error.map(|_| "true")] aria-describedby=[forms.name_error.map(|_| "room-name-error")];
                    (field_error("room-name-error", forms.name_error))
                    button.button.primary type="submit" { "Create room" }
                }
            }
            section.card.action aria-labelledby="join-title" {
                h2 #join-title { "Join with a code" }
                p.muted { "Someone sent you a code like " code { "ABCD-EFGH" } "? Enter it here." }
                form method="post" action="/rooms/join" novalidate {
                    (csrf_field(&csrf))
                    label for="join-code" { "Room code" }
                    input #join-code.code-input type="text" name="code" value=(forms.code) required autocomplete="off"
                        autocapitalize="characters" spellcheck="false" placeholder="ABCD-EFGH" maxlength="40"
                        aria-invalid=[forms.code_error.map(|_| "true")] aria-describedby=[forms.code_error.map(|_| "join-code-error")];
                    (field_error("join-code-error", forms.code_error))
                    button.button type="submit" { "Join room" }
                }
            }
        }
        section.my-rooms aria-labelledby="rooms-title" {
            h2 #rooms-title { "My rooms" }
            @if rooms.is_empty() {
                div.empty-state {
                    p { strong { "No rooms yet." } }
                    p.muted { "Start a room above and share its code, or join one with a code someone sent you." }
                }
            } @else {
                ul.room-list {
                    @for r in &rooms {
                        li {
                            a.room-row href={ "/rooms/" (r.code) } {
                                span.room-row-main {
                                    span.room-row-name { bdi { (r.display_name()) } }
                                    span.room-row-preview {
                                        @match (&r.last_author, &r.last_body) {
                                            (Some(author), Some(body)) => { span.preview-author { (author) ": " } (preview(body)) },
                                            _ => { span.muted { "No messages yet" } },
                                        }
                                    }
                                }
                                span.room-row-side {
                                    code.code-chip { (r.code) }
                                    (layout::time(r.last_activity_at, false))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let page = Page {
        title: "Rooms",
        nav: Nav::Member {
            username: &user.username,
            user_id: user.id,
            csrf: &csrf,
        },
        body_class: "page-home",
        content,
    };
    Ok(respond(status, page.render()))
}

/// The first line of a message, shortened for the room list.
fn preview(body: &str) -> String {
    let line = body.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(90).collect();
    if short.len() < line.len() || body.lines().nth(1).is_some() {
        short.push('…');
    }
    short
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
    let name = match RoomName::parse(&form.name) {
        Ok(name) => name,
        Err(invalid) => {
            let forms = HomeForms {
                name: &form.name,
                name_error: Some(invalid.0),
                ..Default::default()
            };
            return Ok(home_page(&state, &user, forms, StatusCode::UNPROCESSABLE_ENTITY).await?);
        }
    };
    if let Err(wait) = state.limits.rooms.check(&user.id) {
        let why = format!(
            "You have created many rooms recently. You can create another in {} minutes.",
            crate::limits::retry_after_secs(wait).div_ceil(60)
        );
        let forms = HomeForms {
            name: &form.name,
            name_error: Some(&why),
            ..Default::default()
        };
        let mut response = home_page(&state, &user, forms, StatusCode::TOO_MANY_REQUESTS).await?;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            crate::limits::retry_after_secs(wait).into(),
        );
        return Ok(response);
    }
    // 40 random bits: a collision is rare, several in a row would mean something is broken.
    for _ in 0..8 {
        match state
            .store
            .create_room(RoomCode::random(), &name, user.id, now_ms())
            .await
        {
            Ok(room) => {
                tracing::info!(room_id = room.id, user_id = user.id, "room created");
                return Ok(see_other(&format!("/rooms/{}", room.code), htmx));
            }
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(AppError::from(e).into()),
        }
    }
    Err(AppError::Internal("no free room code after 8 tries".into()).into())
}

#[derive(Deserialize)]
pub struct JoinRoom {
    #[serde(default)]
    code: String,
}

/// `POST /rooms/join`: join by code. Wrong codes are counted per person so codes cannot be
/// guessed: over the limit every attempt is refused for a while.
#[handler]
pub async fn join_room(
    state: AppData<'_>,
    UserForm { user, form, htmx }: UserForm<JoinRoom>,
) -> poem::Result<Response> {
    if let Err(wait) = state.limits.join_fails.peek(&user.id) {
        let why = format!(
            "Too many wrong codes. Wait {} seconds, then try again.",
            crate::limits::retry_after_secs(wait)
        );
        let forms = HomeForms {
            code: &form.code,
            code_error: Some(&why),
            ..Default::default()
        };
        let mut response = home_page(&state, &user, forms, StatusCode::TOO_MANY_REQUESTS).await?;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            crate::limits::retry_after_secs(wait).into(),
        );
        return Ok(response);
    }
    let room = match RoomCode::parse(&form.code) {
        Ok(code) => state
            .store
            .room_by_code(code)
            .await
            .map_err(AppError::from)?,
        Err(_) => None,
    };
    let Some(room) = room else {
        let _ = state.limits.join_fails.check(&user.id);
        let forms = HomeForms {
            code: &form.code,
            code_error: Some("There is no room with that code. Check it and try again."),
            ..Default::default()
        };
        return Ok(home_page(&state, &user, forms, StatusCode::UNPROCESSABLE_ENTITY).await?);
    };
    join_and_enter(&state, &user, room.id, &room.code, htmx).await
}

async fn join_and_enter(
    state: &State,
    user: &CurrentUser,
    room_id: i64,
    code: &str,
    htmx: bool,
) -> poem::Result<Response> {
    if state
        .store
        .join_room(room_id, user.id, now_ms())
        .await
        .map_err(AppError::from)?
        == JoinOutcome::Joined
    {
        tracing::info!(room_id, user_id = user.id, "joined room");
        if let Some(member) = state
            .store
            .member(room_id, user.id)
            .await
            .map_err(AppError::from)?
        {
            state.chat.member_joined(room_id, &member).await;
        }
    }
    Ok(see_other(&format!("/rooms/{code}"), htmx))
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
        return Ok(respond(
            StatusCode::OK,
            invitation_page(
                Nav::Guest,
                html! {
                    h1 #invite-title { "You're invited to a room" }
                    p { "Someone shared a natter room with you. Sign in to see it and join." }
                    a.button.primary href={ "/?next=" (next) } { "Sign in to join" }
                },
            ),
        ));
    };
    let user = CurrentUser::from_session(session)?;
    if let Err(wait) = state.limits.join_fails.peek(&user.id) {
        return Err(AppError::RateLimited { retry_after: wait }.into());
    }
    let Some(room) = state
        .store
        .room_by_code(code)
        .await
        .map_err(AppError::from)?
    else {
        let _ = state.limits.join_fails.check(&user.id);
        return Err(AppError::NotFound.into());
    };
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
    let body = html! {
        h1 #invite-title { "Join " bdi { (room.display_name()) } "?" }
        p { "Room " code.code-chip { (room.code) } }
        form method="post" action="/rooms/join" {
            (csrf_field(&csrf))
            input type="hidden" name="code" value=(room.code);
            button.button.primary type="submit" { "Join room" }
            " "
            a.button.subtle href="/home" { "Not now" }
        }
    };
    Ok(respond(
        StatusCode::OK,
        invitation_page(
            Nav::Member {
                username: &user.username,
                user_id: user.id,
                csrf: &csrf,
            },
            body,
        ),
    ))
}

fn invitation_page(nav: Nav, body: Markup) -> Markup {
    Page {
        title: "Invitation",
        nav,
        body_class: "page-narrow",
        content: html! { section.card.invitation aria-labelledby="invite-title" { (body) } },
    }
    .render()
}
