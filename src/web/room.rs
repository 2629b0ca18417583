//! The room: its page, older messages, posting and leaving (the markup is in `views`).

use maud::Markup;
use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::{Path, Query},
};
use serde::Deserialize;

use super::{NoFields, UserForm, is_htmx, member_nav, respond, see_other};
use crate::{
    State,
    actions::{self, Refusal},
    auth::{AppData, CurrentUser},
    domain::RoomCode,
    error::AppError,
    store::{Room, RoomOverview},
    views::{
        FormEcho, Page,
        messages::{self, PAGE_SIZE},
        room::{self as view, RoomPage},
    },
};

/// Parses the code in a room URL. A valid code spelled another way (`abcd-efgh`, `ABCDEFGH`)
/// answers 308 to the canonical URL; an invalid one is simply not found.
pub fn room_code(raw: &str, req: &Request) -> Result<Result<RoomCode, Response>, AppError> {
    let code = RoomCode::parse(raw).map_err(|_| AppError::NotFound)?;
    if code.canonical() == raw {
        return Ok(Ok(code));
    }
    // `/rooms/{code}[/rest]`: the code is the third piece of the path, percent-encoded there
    // (`raw` is decoded), so the new path is built from the pieces, not by replacing `raw`.
    let mut pieces = req.uri().path().splitn(4, '/').skip(1);
    let prefix = pieces.next().unwrap_or("rooms");
    let rest = pieces.nth(1).map(|r| format!("/{r}")).unwrap_or_default();
    let path = format!("/{prefix}/{}{rest}", code.canonical());
    let location = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    Ok(Err(Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, location)
        .finish()))
}

/// The room behind a URL code, if the user is a member: the one access check for room routes.
async fn member_room(state: &State, code: RoomCode, user: &CurrentUser) -> Result<Room, AppError> {
    Ok(actions::member_room(state, user.actor(), code).await?)
}

/// The rooms listed in the room page's side rail.
const SIDE_RAIL_ROOMS: i64 = 50;

/// What the room page shows besides messages, if the user is a member (the same access check
/// as `member_room`, in the same statement).
async fn room_overview(
    state: &State,
    code: RoomCode,
    user: &CurrentUser,
) -> Result<RoomOverview, AppError> {
    state
        .store
        .room_overview(code, user.id, SIDE_RAIL_ROOMS)
        .await?
        .ok_or(AppError::NotFound)
}

/// Renders the room page with the given composer, at `status`.
async fn render_room(
    state: &State,
    user: &CurrentUser,
    overview: &RoomOverview,
    composer: Markup,
    status: StatusCode,
    notice: Option<&str>,
) -> Result<Response, AppError> {
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
        notice,
    };
    Ok(respond(status, page.render()))
}

/// `GET /rooms/{code}`.
#[handler]
pub async fn show(
    state: AppData<'_>,
    req: &Request,
    user: CurrentUser,
    Path(raw): Path<String>,
) -> poem::Result<Response> {
    let code = match room_code(&raw, req)? {
        Ok(code) => code,
        Err(redirect) => return Ok(redirect),
    };
    let overview = room_overview(&state, code, &user).await?;
    let composer = view::composer(
        &overview.room.code,
        &user.session.csrf(),
        "",
        None,
        None,
        false,
    );
    Ok(render_room(&state, &user, &overview, composer, StatusCode::OK, None).await?)
}

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
    user: CurrentUser,
    Path(raw): Path<String>,
    Query(q): Query<OlderQuery>,
) -> poem::Result<Response> {
    let code = match room_code(&raw, req)? {
        Ok(code) => code,
        Err(redirect) => return Ok(redirect),
    };
    let room = member_room(&state, code, &user).await?;
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => Some(
            b.parse::<i64>()
                .ok()
                .filter(|b| *b >= 0)
                .ok_or(AppError::BadRequest("`before` must be a message number."))?,
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

#[derive(Deserialize)]
pub struct PostForm {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
}

/// `POST /rooms/{code}/messages`: post a message. htmx gets a fresh composer (the message itself
/// arrives over the socket like everyone else's); without JS, 303 back to the room at the new
/// message. Refusals keep the typed text: 422 invalid, 429 too fast, 503 database down.
#[handler]
pub async fn post_message(
    state: AppData<'_>,
    Path(raw): Path<String>,
    UserForm { user, form, htmx }: UserForm<PostForm>,
) -> poem::Result<Response> {
    let code = RoomCode::parse(&raw).map_err(|_| AppError::NotFound)?;
    let client_id = form
        .client_id
        .as_deref()
        .filter(|id| actions::valid_client_id(id));
    // The database is down: the typed text comes back, ready to send again.
    let keep_typed = || {
        let mut fields = vec![
            ("body".to_string(), form.body.clone()),
            ("csrf".to_string(), user.session.csrf()),
        ];
        fields.extend(client_id.map(|id| ("client_id".to_string(), id.to_string())));
        let action = format!("/rooms/{code}/messages");
        AppError::UnavailableKeeping(FormEcho { action, fields })
    };
    // Membership is checked by the statement that inserts: one statement per post.
    let room_id = match state.store.room_id(code).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err(AppError::NotFound.into()),
        Err(_) => return Err(keep_typed().into()),
    };
    let outcome = actions::post(&state, user.actor(), room_id, &form.body, client_id).await;
    let refusal = match outcome {
        Ok(_) if htmx => return Ok(posted_with_htmx()),
        Ok(seq) => return Ok(see_other(&format!("/rooms/{code}#msg-{seq}"), false)),
        Err(Refusal::NotFound) => return Err(AppError::NotFound.into()),
        Err(refusal) => refusal,
    };
    // Refused before the insert: only a member may learn why (to anyone else the room is
    // not there).
    let room = match member_room(&state, code, &user).await {
        Ok(room) => room,
        Err(AppError::Unavailable) => return Err(keep_typed().into()),
        Err(e) => return Err(e.into()),
    };
    let csrf = user.session.csrf();
    let status = match refusal {
        Refusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::TooFast { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let why = refusal.message();
    let composer = view::composer(&room.code, &csrf, &form.body, Some(&why), client_id, true);
    let mut response = if htmx {
        respond(status, composer)
    } else {
        let page = match room_overview(&state, code, &user).await {
            Ok(overview) => {
                render_room(&state, &user, &overview, composer.clone(), status, None).await
            }
            Err(e) => Err(e),
        };
        match page {
            Ok(page) => page,
            // The database is down: still give the typed text back, in a page of its own.
            Err(_) => respond(
                status,
                view::unsent_page(&room, member_nav(&user, &csrf), composer),
            ),
        }
    };
    if let Some(secs) = refusal.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    Ok(response)
}

/// The answer to a post htmx made that succeeded: a fresh `client_id` out of band, nothing
/// swapped in (`HX-Reswap: none`).
fn posted_with_htmx() -> Response {
    let mut response = respond(StatusCode::OK, view::posted());
    response
        .headers_mut()
        .insert("hx-reswap", header::HeaderValue::from_static("none"));
    response
}

/// `POST /rooms/{code}/leave`: leave the room; its open sockets for this person close (4404).
#[handler]
pub async fn leave(
    state: AppData<'_>,
    Path(raw): Path<String>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
) -> poem::Result<Response> {
    let code = RoomCode::parse(&raw).map_err(|_| AppError::NotFound)?;
    let room = member_room(&state, code, &user).await?;
    actions::leave(&state, user.actor(), &room)
        .await
        .map_err(AppError::from)?;
    Ok(see_other("/home", htmx))
}
