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
    actions::{self, Refusal},
    auth::{AppData, CurrentUser, MaybeSession},
    domain::{RoomCode, RoomName},
    error::{AppError, FormEcho},
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
