//! The room: its page, older messages, posting, leaving, and the fragments the live socket
//! sends. Each thing on screen has one maud function, used by the page, the htmx answers and the
//! WebSocket frames alike.

use maud::{Markup, PreEscaped, html};
use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::{Path, Query},
};
use serde::Deserialize;

use super::{
    NoFields, UserForm, is_htmx,
    layout::{self, Nav, Page, csrf_field, respond, see_other},
};
use crate::{
    State,
    actions::{self, Refusal},
    auth::{AppData, CurrentUser},
    domain::{MessageBody, RoomCode},
    error::{AppError, FormEcho},
    store::{Member, Message, MessagePage, Room, RoomLink, RoomOverview},
};

/// Messages per page of history.
pub const PAGE_SIZE: i64 = 50;

/// Consecutive messages of one person within this many milliseconds share one name line.
const GROUP_WINDOW_MS: i64 = 5 * 60 * 1000;

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

fn utc_day(ms: i64) -> Option<time::Date> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(|t| t.date())
}

/// Messages in order, each grouped under the previous one when the same person wrote it within
/// a few minutes, with a day divider wherever the (UTC) date changes. `previous` is the message
/// just before the first, if known.
pub fn message_items(previous: Option<&Message>, messages: &[Message]) -> Markup {
    html! {
        @for (i, m) in messages.iter().enumerate() {
            @let prev = if i == 0 { previous } else { messages.get(i - 1) };
            @let new_day = prev.is_none_or(|p| utc_day(p.created_at) != utc_day(m.created_at));
            @let continued = !new_day && prev.is_some_and(|p| {
                p.user_id == m.user_id && p.seq + 1 == m.seq && m.created_at - p.created_at < GROUP_WINDOW_MS
            });
            @if new_day { (day_divider(m.created_at)) }
            (message(m, continued))
        }
    }
}

fn day_divider(ms: i64) -> Markup {
    let Some(day) = utc_day(ms) else {
        return html! {};
    };
    let label = day
        .format(time::macros::format_description!(
            "[weekday repr:long], [day padding:none] [month repr:long] [year]"
        ))
        .unwrap_or_default();
    html! {
        div.day-divider role="separator" aria-label=(label) {
            time datetime=(day.to_string()) data-style="day" { (label) }
        }
    }
}

/// One message. Rendered once and shared by every viewer: nothing in it depends on who looks
/// (own messages are marked by `/me.css` through `data-author`).
pub fn message(m: &Message, continued: bool) -> Markup {
    html! {
        article.message.continued[continued] id={ "msg-" (m.seq) } data-seq=(m.seq) data-author=(m.user_id) {
            header.message-meta {
                span.author { (m.author) }
                " "
                a.permalink href={ "#msg-" (m.seq) } { (layout::time(m.created_at, true)) }
            }
            div.message-body dir="auto" { (linkify(&m.body)) }
        }
    }
}

/// Text with its http(s) URLs as links. Everything is escaped by maud; only the two URL
/// schemes become links, so `javascript:` stays text.
fn linkify(text: &str) -> Markup {
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'']);
        let scheme_len = if url.starts_with("https://") { 8 } else { 7 };
        if url.len() <= scheme_len {
            parts.push((false, &rest[..start + end.max(1)]));
            rest = &rest[start + end.max(1)..];
            continue;
        }
        parts.push((false, &rest[..start]));
        parts.push((true, url));
        rest = &rest[start + url.len()..];
    }
    parts.push((false, rest));
    html! {
        @for (is_url, part) in parts {
            @if is_url { a href=(part) rel="noopener nofollow ugc" target="_blank" { (part) } } @else { (part) }
        }
    }
}

fn find_url(text: &str) -> Option<usize> {
    let http = text.find("http://");
    let https = text.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Messages appended live: the frame the hub renders once per message and sends to every socket.
pub fn messages_append(previous: Option<&Message>, messages: &[Message]) -> Markup {
    html! { div #messages hx-swap-oob="beforeend" { (message_items(previous, messages)) } }
}

/// One member in the list, with presence.
pub fn member_item(member: &Member, online: bool) -> Markup {
    html! {
        li.member id={ "member-" (member.user_id) } data-online=(if online { "true" } else { "false" }) {
            span.member-name { (member.username) }
            span.visually-hidden { (if online { ", online" } else { ", offline" }) }
        }
    }
}

/// The most members listed at once; the rest are counted ("and 9,900 more"). Online
/// members come first, so the cap hides the absent; the list is sent to every (re)connecting
/// socket, so it stays small.
pub const MEMBER_LIST_CAP: usize = 100;

/// The member list, online members first, at most `MEMBER_LIST_CAP` entries.
pub fn member_list(members: &[Member], is_online: impl Fn(i64) -> bool) -> Markup {
    let mut sorted: Vec<(&Member, bool)> =
        members.iter().map(|m| (m, is_online(m.user_id))).collect();
    sorted.sort_by_key(|(_, online)| !online);
    let hidden = sorted.len().saturating_sub(MEMBER_LIST_CAP);
    html! {
        ul #members.member-list data-capped[hidden > 0] {
            @for (member, online) in sorted.iter().take(MEMBER_LIST_CAP) { (member_item(member, *online)) }
            @if hidden > 0 {
                li.member-more { "and " (hidden) " more" }
            }
        }
    }
}

/// What replaces a departed member's entry: hidden, so it vanishes from every list.
pub fn departed_item(user_id: i64) -> Markup {
    html! { li.member id={ "member-" (user_id) } data-online="false" hidden {} }
}

/// "3 online · 12 members".
pub fn member_summary(online: usize, members: usize) -> Markup {
    html! {
        span #member-summary {
            (online) " online · " (members) (if members == 1 { " member" } else { " members" })
        }
    }
}

/// The live-status line (connection state and notices).
pub fn room_status(text: &str) -> Markup {
    html! { p #room-status.room-status role="status" aria-live="polite" { (text) } }
}

/// The composer. A fresh one carries a new random `client_id`; after a refused post it keeps
/// the typed text and says why.
pub fn composer(
    code: &str,
    csrf: &str,
    body: &str,
    error: Option<&str>,
    client_id: Option<&str>,
    focus: bool,
) -> Markup {
    let fresh_id;
    let client_id = match client_id {
        Some(id) => id,
        None => {
            fresh_id = crate::auth::encode_token(&rand::random::<[u8; 16]>());
            &fresh_id
        }
    };
    let action = format!("/rooms/{code}/messages");
    html! {
        form #composer.composer method="post" action=(action) hx-post=(action) hx-target="this" hx-swap="outerHTML" {
            (csrf_field(csrf))
            label.visually-hidden for="composer-body" { "Message" }
            textarea #composer-body name="body" rows="1" maxlength=(MessageBody::MAX) required
                placeholder="Write a message" autocomplete="off" autofocus[focus]
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "composer-error")]
                { (body) }
            button.button.primary.send type="submit" { "Send" }
            (composer_state(client_id, error))
        }
    }
}

/// The part of the composer a post changes: the next `client_id` and the error, if any.
fn composer_state(client_id: &str, error: Option<&str>) -> Markup {
    html! {
        div #composer-state {
            input type="hidden" name="client_id" value=(client_id);
            @if let Some(error) = error {
                p #composer-error.field-error role="alert" { (error) }
            }
        }
    }
}

/// The answer to a post htmx made that succeeded: only a fresh `client_id` (and no error),
/// out of band; the form itself stays, so focus and whatever was typed meanwhile are
/// untouched (natter.js emptied the text when it sent).
fn posted_with_htmx() -> Response {
    let client_id = crate::auth::encode_token(&rand::random::<[u8; 16]>());
    let markup = html! {
        div #composer-state hx-swap-oob="true" {
            input type="hidden" name="client_id" value=(client_id);
        }
    };
    let mut response = respond(StatusCode::OK, markup);
    response
        .headers_mut()
        .insert("hx-reswap", header::HeaderValue::from_static("none"));
    response
}

/// The left rail: my rooms, this one marked.
fn rooms_rail(rooms: &[RoomLink], current: &str) -> Markup {
    html! {
        nav.rooms-rail aria-label="Your rooms" {
            h2.rail-title { "Rooms" }
            ul {
                @for r in rooms {
                    li {
                        a href={ "/rooms/" (r.code) } aria-current=[(r.code == current).then_some("page")] {
                            span.rail-name { (r.display_name()) }
                        }
                    }
                }
            }
            a.rail-home href="/home" { "+ New or join" }
        }
    }
}

/// What the room page shows besides the standard parts.
struct RoomView<'a> {
    room: &'a Room,
    user: &'a CurrentUser,
    csrf: &'a str,
    members: &'a [Member],
    online: &'a std::collections::HashSet<i64>,
    history: &'a MessagePage,
    rooms: &'a [RoomLink],
    composer: Markup,
    /// The newest seq on the page: where the live socket resumes.
    live_after: Option<i64>,
    notice: Option<&'a str>,
}

fn room_page(v: RoomView) -> Markup {
    let code = v.room.code.as_str();
    let online_count = v
        .members
        .iter()
        .filter(|m| v.online.contains(&m.user_id))
        .count();
    let content = html! {
        div.room hx-ext=[v.live_after.map(|_| "ws")]
            ws-connect=[v.live_after.map(|after| format!("/rooms/{code}/ws?after={after}"))]
            data-room=(code) {
            header.room-header {
                div.room-title {
                    h1 { bdi { (v.room.display_name()) } }
                    p.room-code {
                        span.visually-hidden { "Room code " }
                        code.code-chip #room-code { (code) }
                        button.button.small.copy-button type="button" data-copy="#room-code" hidden { "Copy code" }
                        a.invite-link href={ "/join/" (code) } { "Invitation link" }
                    }
                }
                form.leave-form method="post" action={ "/rooms/" (code) "/leave" } {
                    (csrf_field(v.csrf))
                    button.button.subtle type="submit" { "Leave room" }
                }
            }
            div.room-body {
                (rooms_rail(v.rooms, code))
                section.conversation aria-label="Conversation" {
                    (room_status(v.notice.unwrap_or("")))
                    div.scroller {
                        div.history {
                            @if v.history.has_older {
                                @if let Some(first) = v.history.messages.first() { (older_link(code, first.seq)) }
                            }
                            div #messages role="log" aria-live="polite" aria-label="Messages" {
                                (PreEscaped(v.history.html.get_or_init(|| {
                                    message_items(None, &v.history.messages).into_string()
                                })))
                            }
                            @if v.history.messages.is_empty() {
                                p.empty-hint { "No messages yet. Say hello, then share the room code so others can join." }
                            }
                        }
                    }
                    (v.composer)
                }
                aside.members-panel aria-labelledby="members-title" {
                    details.members-details {
                        summary #members-title {
                            span.visually-hidden { "Members: " }
                            (member_summary(online_count, v.members.len()))
                        }
                        (member_list(v.members, |id| v.online.contains(&id)))
                    }
                }
            }
        }
    };
    Page {
        title: v.room.display_name(),
        nav: Nav::Member {
            username: &v.user.username,
            user_id: v.user.id,
            csrf: v.csrf,
        },
        body_class: "page-room",
        content,
    }
    .render()
}

fn older_link(code: &str, before: i64) -> Markup {
    let href = format!("/rooms/{code}/messages?before={before}");
    html! {
        a #load-older.load-older href=(href) hx-get=(href) hx-target="this" hx-swap="outerHTML" {
            "Load older messages"
        }
    }
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
        links: rooms,
    } = overview;
    let page = state.store.latest_messages(room, PAGE_SIZE).await?;
    let online = state.chat.online(room.id).await;
    let csrf = user.session.csrf();
    let live_after = Some(page.messages.last().map_or(0, |m| m.seq));
    let markup = room_page(RoomView {
        room,
        user,
        csrf: &csrf,
        members,
        online: &online,
        history: &page,
        rooms,
        composer,
        live_after,
        notice,
    });
    Ok(respond(status, markup))
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
    let composer = composer(
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
        let markup = html! {
            @if page.has_older { @if let Some(first) = page.messages.first() { (older_link(code, first.seq)) } }
            div #messages hx-swap-oob="afterbegin" { (message_items(None, &page.messages)) }
        };
        return Ok(respond(StatusCode::OK, markup));
    }
    let csrf = user.session.csrf();
    let content = html! {
        section.card.history-page aria-labelledby="history-title" {
            h1 #history-title { "Earlier in " bdi { (room.display_name()) } }
            p { a href={ "/rooms/" (code) } { "Back to the latest messages" } }
            @if page.has_older { @if let Some(first) = page.messages.first() {
                p { a href={ "/rooms/" (code) "/messages?before=" (first.seq) } { "Load older messages" } }
            } }
            div.messages-static { (message_items(None, &page.messages)) }
            @if page.messages.is_empty() { p.muted { "Nothing earlier." } }
            @if let Some(last) = page.messages.last() {
                p { a href={ "/rooms/" (code) "/messages?before=" (last.seq + PAGE_SIZE + 1) } { "Newer messages" } }
            }
        }
    };
    let page = Page {
        title: room.display_name(),
        nav: Nav::Member {
            username: &user.username,
            user_id: user.id,
            csrf: &csrf,
        },
        body_class: "page-narrow",
        content,
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
    let composer = composer(&room.code, &csrf, &form.body, Some(&why), client_id, true);
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
            Err(_) => respond(status, composer_only_page(&user, &room, &csrf, composer)),
        }
    };
    if let Some(secs) = refusal.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    Ok(response)
}

/// The composer alone, for when the room itself cannot be read.
fn composer_only_page(user: &CurrentUser, room: &Room, csrf: &str, composer: Markup) -> Markup {
    Page {
        title: room.display_name(),
        nav: Nav::Member {
            username: &user.username,
            user_id: user.id,
            csrf,
        },
        body_class: "page-narrow",
        content: html! {
            section.card aria-labelledby="unsent-title" {
                h1 #unsent-title { "Your message was not sent yet" }
                (composer)
                p { a href={ "/rooms/" (room.code) } { "Back to the room" } }
            }
        },
    }
    .render()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64, user_id: i64, at: i64, body: &str) -> Message {
        Message {
            room_id: 1,
            seq,
            user_id,
            author: format!("u{user_id}"),
            body: body.into(),
            created_at: at,
            edited_at: None,
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        for body in [
            "<script>alert(1)</script>",
            "\"><img src=x onerror=alert(1)>",
            "<div hx-swap-oob=\"true\" id=\"messages\">x</div>",
        ] {
            let html = message(&msg(1, 1, 0, body), false).into_string();
            assert!(
                !html.contains("<script>")
                    && !html.contains("<img")
                    && !html.contains("<div hx-swap-oob"),
                "{html}"
            );
        }
    }

    #[test]
    fn only_http_urls_become_links() {
        let html = linkify(
            "see https://example.org/a?b=1&c=<2>, or javascript:alert(1) and http://x.org.",
        )
        .into_string();
        assert!(html.contains(r#"<a href="https://example.org/a?b=1&amp;c=" rel="noopener nofollow ugc" target="_blank">"#), "{html}");
        assert!(html.contains(r#"<a href="http://x.org" rel"#), "{html}");
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert_eq!(linkify("http:// nothing").into_string(), "http:// nothing");
    }

    #[test]
    fn consecutive_messages_group_and_days_divide() {
        let day = 86_400_000;
        let items = message_items(
            None,
            &[
                msg(1, 1, 0, "a"),
                msg(2, 1, 1000, "b"),
                msg(3, 2, 2000, "c"),
                msg(4, 2, day, "d"),
            ],
        )
        .into_string();
        assert_eq!(items.matches("day-divider").count(), 2, "{items}");
        assert_eq!(items.matches("message continued").count(), 1, "{items}");
    }
}
