//! The room: its page, older messages, posting and leaving (the markup is in `views`). Every
//! handler takes its room through `InRoom`, the one membership check.

use maud::Markup;
use poem::{
    Request, Response, handler,
    http::{HeaderValue, StatusCode},
    web::Query,
};
use serde::Deserialize;

use super::{InRoom, NoFields, UserForm, is_htmx, member_nav, refused, respond, see_other};
use crate::{
    State,
    actions::{self, PostingRoom},
    auth::{AppData, CurrentUser},
    error::AppError,
    refusal::{Budget, Refusal},
    store::{Room, RoomOverview},
    views::{
        Page,
        messages::{self, PAGE_SIZE},
        room::{self as view, RoomPage},
    },
};

/// The room page with `composer`, for `status` (200, or a refusal's).
async fn room_page(
    state: &State,
    user: &CurrentUser,
    overview: &RoomOverview,
    composer: Markup,
) -> Result<Markup, AppError> {
    let RoomOverview {
        room,
        members,
        links,
    } = overview;
    let history = state.pages.newest(&state.store, room, PAGE_SIZE).await?;
    let online = state.chat.online(room.id).await;
    let csrf = user.session.csrf();
    let page = RoomPage {
        room,
        nav: member_nav(user, &csrf),
        csrf: &csrf,
        members,
        online: &online,
        history: &history,
        rooms: links,
        composer,
        notice: None,
    };
    Ok(page.render())
}

/// `GET /rooms/{code}`.
#[handler]
pub async fn show(
    state: AppData<'_>,
    InRoom { user, room }: InRoom<RoomOverview>,
) -> poem::Result<Response> {
    let csrf = user.session.csrf();
    let composer = view::composer(&room.room.code, &csrf, "", None, None, false);
    let page = room_page(&state, &user, &room, composer).await?;
    Ok(respond(StatusCode::OK, page))
}

/// `?before=` of older messages.
#[derive(Deserialize)]
pub struct OlderQuery {
    before: Option<String>,
}

/// `GET /rooms/{code}/messages?before={seq}`: older history, as a fragment for htmx (the next
/// "Load older" link, plus the messages prepended out of band) or as a page without JS.
#[handler]
pub async fn older(
    state: AppData<'_>,
    req: &Request,
    InRoom { user, room }: InRoom<Room>,
    Query(q): Query<OlderQuery>,
) -> poem::Result<Response> {
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => Some(
            b.parse::<i64>()
                .ok()
                .filter(|b| *b >= 0)
                .ok_or(Refusal::BadRequest("`before` must be a message number."))
                .map_err(AppError::from)?,
        ),
    };
    let page = state
        .store
        .messages_before(room.id, before, PAGE_SIZE)
        .await
        .map_err(AppError::from)?;
    let code = room.code.as_str();
    if is_htmx(req) {
        let markup = messages::older_fragment(code, &page.messages, page.has_older);
        return Ok(respond(StatusCode::OK, markup));
    }
    let csrf = user.session.csrf();
    let page = Page {
        title: room.display_name(),
        nav: member_nav(&user, &csrf),
        body_class: "page-narrow",
        content: messages::history(code, room.display_name(), &page.messages, page.has_older),
    };
    Ok(respond(StatusCode::OK, page.render()))
}

/// The message form.
#[derive(Deserialize)]
pub struct PostForm {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
}

/// `POST /rooms/{code}/messages`: post a message. htmx gets a fresh `client_id` (the message
/// itself arrives over the socket like everyone else's); without JS, 303 back to the room at
/// the new message. Refused, the typed text stays: in the composer (422 invalid, 429 too
/// fast), or on the error page when the database failed (503).
#[handler]
pub async fn post_message(
    state: AppData<'_>,
    posted: UserForm<PostForm>,
    found: poem::Result<InRoom<PostingRoom>>,
) -> poem::Result<Response> {
    let InRoom { user, room } = posted.or_keeping(found)?;
    let form = &posted.form;
    let client_id = form
        .client_id
        .as_deref()
        .filter(|id| actions::valid_client_id(id));
    let code = room.code.canonical();
    let refusal = match actions::post(&state, user.actor(), &room, &form.body, client_id).await {
        Ok(_) if posted.htmx => return Ok(posted_with_htmx()),
        Ok(seq) => return Ok(see_other(&format!("/rooms/{code}#msg-{seq}"), false)),
        // Not a member: no composer to show it in.
        Err(
            refusal @ (Refusal::NotFound
            | Refusal::TooFast {
                budget: Budget::JoinFails,
                ..
            }),
        ) => return Err(AppError::from(refusal).into()),
        Err(Refusal::Unavailable) => return Err(posted.keeping(Refusal::Unavailable).into()),
        Err(refusal) => refusal,
    };
    let csrf = user.session.csrf();
    let why = refusal.sentence();
    let composer = view::composer(&code, &csrf, &form.body, Some(&why), client_id, true);
    if posted.htmx {
        return Ok(refused(&refusal, composer));
    }
    let page = match actions::room_for::<RoomOverview>(&state, &code, user.id).await {
        Ok(overview) => room_page(&state, &user, &overview, composer).await,
        Err(refusal) => Err(refusal.into()),
    };
    match page {
        Ok(page) => Ok(refused(&refusal, page)),
        // The database went away meanwhile: the typed text comes back on the error page.
        Err(_) => Err(posted.keeping(Refusal::Unavailable).into()),
    }
}

/// The answer to a post htmx made that succeeded: a fresh `client_id` out of band, nothing
/// swapped in (`HX-Reswap: none`).
fn posted_with_htmx() -> Response {
    let mut response = respond(StatusCode::OK, view::posted());
    response
        .headers_mut()
        .insert("hx-reswap", HeaderValue::from_static("none"));
    response
}

/// `POST /rooms/{code}/leave`: leave the room; its open sockets for this person close (4404).
#[handler]
pub async fn leave(
    state: AppData<'_>,
    UserForm { htmx, .. }: UserForm<NoFields>,
    InRoom { user, room }: InRoom<Room>,
) -> poem::Result<Response> {
    actions::leave(&state, user.actor(), &room)
        .await
        .map_err(AppError::from)?;
    Ok(see_other("/home", htmx))
}
