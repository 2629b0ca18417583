//! The room: its page, older messages, a message's own page, posting and leaving (the markup
//! is in `views`). Every handler takes its room through `InRoom`, the one membership check.

use maud::Markup;
use poem::{
    Request, Response, handler,
    http::{HeaderValue, StatusCode},
    web::{Path, Query},
};
use serde::Deserialize;

use super::{InRoom, NoFields, UserForm, is_htmx, live, member_nav, refused, respond, see_other};
use crate::{
    State,
    actions::{self, PostingRoom},
    auth::{AppData, CurrentUser},
    error::AppError,
    refusal::{Budget, Refusal},
    store::{MessagePage, Room, RoomOverview},
    views::{
        Page,
        messages::{self, PAGE_SIZE},
        room::{self as view, RoomPage},
        stream,
    },
};

/// The room page with `composer`, for `status` (200, or a refusal's), and why a notification
/// choice was refused, if one was.
pub(super) async fn room_page(
    state: &State,
    user: &CurrentUser,
    overview: &RoomOverview,
    composer: Markup,
    notify_error: Option<&str>,
) -> Result<Markup, AppError> {
    let RoomOverview {
        room,
        members,
        links,
        notify,
        last_read_seq,
        first_unread,
    } = overview;
    let history = state.pages.newest(&state.store, room, PAGE_SIZE).await?;
    // What the page shows is read. A mark that could not be saved costs a divider next time,
    // not the page.
    let marking = actions::read_on_open(
        state,
        user.actor(),
        room.id,
        *last_read_seq,
        history.last_seq,
    );
    if let Err(e) = marking.await {
        tracing::warn!(error = %e, room_id = room.id, "could not save the read mark");
    }
    let online = state.chat.online(room.id).await;
    let csrf = user.session.csrf();
    let direct = direct_with(overview, user.id);
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
        moderator: room.owned_by(user.id),
        notify: view::notify_form(&room.code, &csrf, *notify, notify_error),
        first_unread: *first_unread,
        direct,
    };
    Ok(page.render())
}

/// For a direct conversation, the other person's username (`None`: a room).
pub(super) fn direct_with(overview: &RoomOverview, me: i64) -> Option<&str> {
    if !overview.room.is_direct() {
        return None;
    }
    let other = overview.members.iter().find(|m| m.user_id != me);
    Some(other.map_or("", |m| m.username.as_str()))
}

/// `GET /rooms/{code}`. A direct conversation lives at `/dm/{username}` (its code is never
/// shown): 303 there, which keeps the link's `#msg-{seq}` or `#unread`.
#[handler]
pub async fn show(
    state: AppData<'_>,
    InRoom { user, room }: InRoom<RoomOverview>,
) -> poem::Result<Response> {
    if let Some(other) = direct_with(&room, user.id) {
        return Ok(see_other(&format!("/dm/{other}"), false));
    }
    show_page(&state, &user, &room).await
}

/// The room page with a fresh composer.
pub(super) async fn show_page(
    state: &State,
    user: &CurrentUser,
    room: &RoomOverview,
) -> poem::Result<Response> {
    let csrf = user.session.csrf();
    let composer = view::composer(
        &state.config.files,
        &room.room.code,
        &csrf,
        "",
        None,
        None,
        false,
    );
    let page = room_page(state, user, room, composer, None).await?;
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
    let newest = state
        .pages
        .newest(&state.store, &room, PAGE_SIZE)
        .await
        .map_err(AppError::from)?;
    Ok(history_page(&user, &room, &page, newest.first_seq))
}

/// The `{seq}` of a message's route, as typed: anything but a message number is simply not
/// found, like a number no message has.
#[derive(Deserialize)]
pub struct SeqParam {
    seq: String,
}

/// Messages shown on each side of a linked message further back than the newest page.
const AROUND: i64 = PAGE_SIZE / 2;

/// `GET /rooms/{code}/messages/{seq}`: a message's own link (`views::messages::permalink`),
/// which works from anywhere. On the room's newest page the message is shown in the room
/// (303 to `/rooms/{code}#msg-{seq}`); further back, on a page of history around it, with
/// links older and newer. A message that does not exist is 404, as a room that does not.
#[handler]
pub async fn message(
    state: AppData<'_>,
    req: &Request,
    InRoom { user, room }: InRoom<Room>,
    Path(SeqParam { seq }): Path<SeqParam>,
) -> poem::Result<Response> {
    let seq = message_number(&seq).ok_or(AppError::NOT_FOUND)?;
    let newest = state
        .pages
        .newest(&state.store, &room, PAGE_SIZE)
        .await
        .map_err(AppError::from)?;
    if seq > newest.last_seq {
        return Err(AppError::NOT_FOUND.into());
    }
    if newest.first_seq.is_some_and(|first| first <= seq) {
        let location = format!("/rooms/{}#msg-{seq}", room.code);
        return Ok(see_other(&location, is_htmx(req)));
    }
    let around = state
        .store
        .messages_around(room.id, seq, AROUND, AROUND)
        .await
        .map_err(AppError::from)?
        .ok_or(AppError::NOT_FOUND)?;
    Ok(history_page(&user, &room, &around, newest.first_seq))
}

/// A message number as its links spell it: digits without a leading zero, which fit an
/// `i64` (`+7`, `07` or ` 7` are other addresses, not found like any other).
pub(super) fn message_number(raw: &str) -> Option<i64> {
    let digits = raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    raw.parse().ok().filter(|_| digits)
}

/// A page of history without JavaScript, in the site layout.
fn history_page(
    user: &CurrentUser,
    room: &Room,
    page: &MessagePage,
    newest_first: Option<i64>,
) -> Response {
    let csrf = user.session.csrf();
    let content = messages::history(&room.code, room.display_name(), page, newest_first);
    let page = Page {
        title: room.display_name(),
        nav: member_nav(user, &csrf),
        body_class: "page-narrow",
        content,
    };
    respond(StatusCode::OK, page.render())
}

/// The message form.
#[derive(Deserialize)]
pub struct PostForm {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
}

impl PostForm {
    /// The form's `client_id`, if it is one (anything else posts without one).
    fn client_id(&self) -> Option<&str> {
        self.client_id
            .as_deref()
            .filter(|id| actions::valid_client_id(id))
    }
}

/// `POST /rooms/{code}/messages`: post a message. htmx gets a fresh `client_id` (the message
/// itself arrives over the socket like everyone else's); without JS, 303 back to the room at
/// the new message. Refused, the typed text stays: in the composer (422 invalid, 429 too
/// fast), or on the error page when the database failed (503).
#[handler]
pub async fn post_message(
    state: AppData<'_>,
    mut posted: UserForm<PostForm, true>,
    found: poem::Result<InRoom<PostingRoom>>,
) -> poem::Result<Response> {
    let InRoom { user, room } = posted.or_keeping(found)?;
    let files = posted.take_files();
    let form = &posted.form;
    let client_id = form.client_id();
    let code = room.code.canonical();
    let posting =
        async { actions::post(&state, user.actor(), &room, &form.body, client_id, files?).await };
    let refusal = match posting.await {
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
    let composer = view::composer(
        &state.config.files,
        &code,
        &csrf,
        &form.body,
        Some(&why),
        client_id,
        true,
    );
    if posted.htmx {
        return Ok(refused(&refusal, composer));
    }
    let page = match actions::room_for::<RoomOverview>(&state, &code, user.id).await {
        Ok(overview) => room_page(&state, &user, &overview, composer, None).await,
        Err(refusal) => Err(refusal.into()),
    };
    match page {
        Ok(page) => Ok(refused(&refusal, page)),
        // The database went away meanwhile: the typed text comes back on the error page.
        Err(_) => Err(posted.keeping(Refusal::Unavailable).into()),
    }
}

/// `GET /rooms/{code}/compose`: the composer frame of a room page without JavaScript.
#[handler]
pub async fn compose_form(found: poem::Result<InRoom<Room>>) -> Response {
    let InRoom { user, room } = match found {
        Ok(found) => found,
        Err(e) => return live::frame_error("Write a message", e),
    };
    let csrf = user.session.csrf();
    let frame = stream::compose_frame(
        &room.code,
        user.id,
        &csrf,
        "",
        None,
        &view::fresh_client_id(),
    );
    live::frame_page(StatusCode::OK, frame)
}

/// `POST /rooms/{code}/compose`: the composer frame posts here, and comes back to itself: 303
/// to an empty composer (the message arrives in the stream beside it), or the composer again
/// with the typed text and why it was refused. Whatever goes wrong is said inside the frame.
#[handler]
pub async fn compose(
    state: AppData<'_>,
    posted: poem::Result<UserForm<PostForm, true>>,
    found: poem::Result<InRoom<PostingRoom>>,
) -> Response {
    let mut posted = match posted {
        Ok(posted) => posted,
        Err(e) => return live::frame_error("Write a message", e),
    };
    let room = match found {
        Ok(InRoom { room, .. }) => room,
        Err(e) => return live::frame_error("Write a message", e),
    };
    let files = posted.take_files();
    let form = &posted.form;
    let code = room.code.canonical();
    let client_id = form.client_id();
    let posting = async {
        let actor = posted.user.actor();
        actions::post(&state, actor, &room, &form.body, client_id, files?).await
    };
    match posting.await {
        Ok(_) => see_other(&format!("/rooms/{code}/compose"), false),
        Err(refusal @ Refusal::NotFound) => {
            live::frame_error("Write a message", AppError::from(refusal).into())
        }
        Err(refusal) => frame_refused(&posted, &code, &refusal),
    }
}

/// The composer frame after a refused post: the typed text, why, and its status.
fn frame_refused(posted: &UserForm<PostForm, true>, code: &str, refusal: &Refusal) -> Response {
    let csrf = posted.user.session.csrf();
    let client_id = posted
        .form
        .client_id()
        .map_or_else(view::fresh_client_id, str::to_string);
    let why = refusal.sentence();
    let frame = stream::compose_frame(
        code,
        posted.user.id,
        &csrf,
        &posted.form.body,
        Some(&why),
        &client_id,
    );
    let mut response = live::frame_page(refusal.status(), frame);
    if let Some(secs) = refusal.retry_after_secs() {
        response
            .headers_mut()
            .insert(poem::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
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

/// `POST /rooms/{code}/notify`: what to hear about this room (`notify`: `default`, `all`,
/// `mentions` or `nothing`); 303 back to the room, or the room page again (422) with why the
/// choice was refused. Not a member: 404, like every room route.
#[handler]
pub async fn set_notify(
    state: AppData<'_>,
    UserForm { form, htmx, .. }: UserForm<super::account::NotifyForm>,
    InRoom { user, room }: InRoom<RoomOverview>,
) -> poem::Result<Response> {
    let code = &room.room.code;
    match actions::set_room_notify(&state, user.actor(), &room.room, form.value()).await {
        Ok(_) => Ok(see_other(&format!("/rooms/{code}"), htmx)),
        Err(refusal @ Refusal::Invalid(why)) => {
            let csrf = user.session.csrf();
            let composer = view::composer(&state.config.files, code, &csrf, "", None, None, false);
            let page = room_page(&state, &user, &room, composer, Some(why)).await?;
            Ok(refused(&refusal, page))
        }
        Err(refusal) => Err(AppError::from(refusal).into()),
    }
}

/// The read-mark form.
#[derive(Deserialize)]
pub struct ReadForm {
    seq: Option<String>,
}

/// `POST /rooms/{code}/read`: the reader has read up to `seq` (`js/unread.js` sends it while
/// the reader is at the bottom of a live room). The mark never moves down and stops at the
/// room's newest message; a person writes it at most once every 2 s per room (429 beyond).
/// Scripts get 204; a plain form 303 back to the room.
#[handler]
pub async fn read(
    state: AppData<'_>,
    posted: UserForm<ReadForm>,
    InRoom { user, room }: InRoom<Room>,
) -> poem::Result<Response> {
    let raw = posted.form.seq.as_deref().unwrap_or_default();
    let seq = actions::parse_read_seq(raw).map_err(AppError::from)?;
    actions::mark_read(&state, user.actor(), &room, seq)
        .await
        .map_err(AppError::from)?;
    if posted.htmx {
        return Ok(Response::builder().status(StatusCode::NO_CONTENT).finish());
    }
    Ok(see_other(&format!("/rooms/{}", room.code), false))
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

#[cfg(test)]
mod tests {
    use super::message_number;

    #[test]
    fn only_a_message_number_as_links_spell_it_is_one() {
        assert_eq!(message_number("1"), Some(1));
        assert_eq!(message_number("9223372036854775807"), Some(i64::MAX));
        for raw in [
            "",
            "0",
            "07",
            "+7",
            "-7",
            " 7",
            "7 ",
            "7.0",
            "1e3",
            "9223372036854775808",
        ] {
            assert_eq!(message_number(raw), None, "{raw:?}");
        }
    }
}
