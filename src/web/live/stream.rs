//! `GET /rooms/{code}/live?after={seq}`: the room as one streamed HTML document, for pages
//! without JavaScript (an `<iframe>` in the room page's `<noscript>`).
//!
//! The same checks as the socket (session, membership, `after`), then the same feed
//! (`feed.rs`): it listens on the room's hub first, writes the newest page, then every event
//! after the page's cursor exactly once and in order. A document cannot change what it already
//! shows, so an edit or a delete ends it, and so do 15 minutes, 500 events, a restart and a
//! broken connection: the refresh in its head reloads the frame into the room as it is then.
//! A reader signed out or out of the room gets a notice and nothing that reloads.

use std::time::{Duration, Instant};

use bytes::Bytes;
use poem::{
    FromRequest, Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
};
use tracing::Instrument;

use super::{
    after_cursor,
    feed::{End, Feed, Heard, MAX_REPLAY, Transport},
    pipe::{self, Pipe},
};
use crate::{
    actions::LiveRoom,
    auth::AppData,
    chat::{self, Frame, close},
    error::AppError,
    refusal::Refusal,
    views::{
        messages::PAGE_SIZE,
        stream::{self, Ended, STREAM_END},
    },
    web::InRoom,
};

/// Streams one session may hold open on this instance. A browser opens at most six HTTP/1.1
/// connections to a host, and the page's own requests need some of them; the next frame gets
/// the room as it is with a "Refresh" link.
pub const STREAMS_PER_SESSION: u32 = 4;
/// A stream ends (and its frame reloads) after this long...
const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// ... or after this many room events, so a document does not grow without end.
const MAX_EVENTS: i64 = MAX_REPLAY;
/// A comment every 25 s keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(25);

/// The frame route's Content-Security-Policy: natter's, but framed by its own pages.
pub const FRAME_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; \
    form-action 'self'";

/// Headers every frame answer carries: framed by natter's own pages only, never cached or
/// transformed (a proxy that compresses or buffers would hold the stream back).
pub fn frame_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FRAME_CSP),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-transform"),
    );
}

/// A whole frame document (a notice, a snapshot, the composer), with the frame headers.
pub fn frame_page(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = super::super::respond(status, markup);
    frame_headers(&mut response);
    response
}

/// Why a frame cannot be shown (signed out, not a member, too fast, the database away), said
/// inside the frame with a way on: natter's error pages refuse to be framed.
pub fn frame_error(title: &str, e: poem::Error) -> Response {
    let refusal = match e.downcast::<AppError>() {
        Ok(e) => e.refusal,
        Err(e) => Refusal::from_status(e.status()),
    };
    let (status, text, link) = match refusal {
        Refusal::SignInRequired { .. } | Refusal::UsernameRequired => (
            StatusCode::UNAUTHORIZED,
            "You are signed out.".into(),
            ("/", "Sign in"),
        ),
        Refusal::NotFound => (
            StatusCode::NOT_FOUND,
            "You are not in this room.".into(),
            ("/home", "Your rooms"),
        ),
        refusal => (
            refusal.status(),
            refusal.sentence(),
            ("/home", "Your rooms"),
        ),
    };
    frame_page(status, stream::frame_notice(title, 0, &text, link, None))
}

/// `GET /rooms/{code}/live`.
#[handler]
pub async fn live(state: AppData<'_>, req: &Request) -> poem::Result<Response> {
    let notice = |status, text: &str, link| {
        Ok(frame_page(
            status,
            stream::frame_notice("Messages", 0, text, link, None),
        ))
    };
    if state.shutdown.is_cancelled() {
        let restarting = stream::restarting(req.uri().path());
        let mut response = frame_page(StatusCode::SERVICE_UNAVAILABLE, restarting);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        return Ok(response);
    }
    let (user, room) = match InRoom::<LiveRoom>::from_request_without_body(req).await {
        Ok(InRoom {
            user,
            room: LiveRoom(room),
        }) => (user, room),
        Err(e) => return Ok(frame_error("Messages", e)),
    };
    let Ok(after) = after_cursor(req.uri().query()) else {
        return notice(
            StatusCode::BAD_REQUEST,
            "This address has a broken position in it.",
            (&format!("/rooms/{}/live", room.code), "Open the room"),
        );
    };
    let session = user.session.token_hash.clone();
    let page = state
        .pages
        .newest(&state.store, &room, PAGE_SIZE)
        .await
        .map_err(AppError::from)?;
    let slots = state
        .limits
        .streams
        .take(&session)
        .and_then(|s| Some((s, state.limits.sockets.take(&user.id)?)));
    let Some(slots) = slots else {
        let text = "This room is not live here: too many natter rooms are open in this browser.";
        let refresh = format!("/rooms/{}/live", room.code);
        let markup = stream::frame_notice(
            room.display_name(),
            user.id,
            text,
            (&refresh, "Refresh"),
            Some(&page),
        );
        return Ok(frame_page(StatusCode::OK, markup));
    };
    let member = super::as_member(&user);
    let listening = Box::pin(state.chat.listen(&room, member, session)).await;
    let listener = match listening {
        Ok(listener) => listener,
        Err(chat::Refused::Unavailable(e)) => return Err(AppError::from(e).into()),
        Err(chat::Refused::Closed(code)) => {
            let markup = match code {
                close::SIGNED_OUT => stream::frame_notice(
                    "Messages",
                    user.id,
                    "You signed out.",
                    ("/", "Sign in again"),
                    None,
                ),
                _ => stream::frame_notice(
                    "Messages",
                    user.id,
                    "You are no longer in this room.",
                    ("/home", "Your rooms"),
                    None,
                ),
            };
            return Ok(frame_page(StatusCode::OK, markup));
        }
    };
    // Subscribed first: the page read before may be older than what the hub will send, never
    // newer than what the store has; the feed fills the gap from the page's cursor.
    let page = if page.cursor < listener.published {
        state
            .pages
            .newest(&state.store, &room, PAGE_SIZE)
            .await
            .map_err(AppError::from)?
    } else {
        page
    };
    let missed = after.is_some_and(|a| page.first_seq.is_some_and(|first| a + 1 < first));
    let (before, after) = stream::stream_start(&room, user.id, &page, missed);
    // The start goes first in the body, the page's messages as the cache holds them; the
    // pipe then carries the live pieces.
    let (pipe, body) = pipe::pipe([
        Bytes::from(before),
        Bytes::from_owner(Messages(page.clone())),
        Bytes::from(after),
    ]);
    let out = StreamOut {
        pipe,
        opened: Instant::now(),
        first: page.cursor,
    };
    let span = tracing::info_span!("stream", room_id = room.id, user_id = user.id);
    let cursor = page.cursor;
    let metrics = state.metrics.clone();
    let state = (*state).clone();
    state.tasks.clone().spawn(
        async move {
            let _slots = slots; // counted against the session and the person while open
            let _open = metrics.stream_opened();
            Feed::new(state, room, out, listener)
                .run(Some(cursor))
                .await;
        }
        .instrument(span),
    );
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        // Caddy and nginx pass a response on as it comes when told not to buffer it.
        .header("x-accel-buffering", "no")
        .body(body);
    frame_headers(&mut response);
    Ok(response)
}

/// A cached page's messages as a piece of a body, without a copy.
struct Messages(std::sync::Arc<crate::views::NewestPage>);

impl AsRef<[u8]> for Messages {
    fn as_ref(&self) -> &[u8] {
        self.0.html.as_bytes()
    }
}

/// A streamed document as a feed's transport.
struct StreamOut {
    pipe: Pipe,
    opened: Instant,
    /// The cursor of the page the stream began with.
    first: i64,
}

impl Transport for StreamOut {
    const IN_PLACE: bool = false;
    const PRESENCE: bool = false;
    const KEEP_ALIVE: Duration = HEARTBEAT;

    async fn send(&mut self, frame: Frame, seq: i64) -> Result<(), End> {
        self.pipe.write(Bytes::from(frame.html().clone())).await?;
        if seq - self.first >= MAX_EVENTS {
            return Err(End::Reload);
        }
        Ok(())
    }

    async fn heard(&mut self) -> Result<Heard, End> {
        Err(self.pipe.gone().await)
    }

    async fn keep_alive(&mut self) -> Result<(), End> {
        if self.opened.elapsed() >= MAX_AGE {
            return Err(End::Reload);
        }
        self.pipe.write(Bytes::from_static(b"<!-- -->\n")).await
    }

    async fn close(mut self, end: End) {
        let ending = match end {
            End::Gone => return,
            End::Close(close::SIGNED_OUT, _) => stream::stream_ended(Ended::SignedOut),
            End::Close(close::LEFT, super::feed::REMOVED) => stream::stream_ended(Ended::Removed),
            End::Close(close::LEFT, _) => stream::stream_ended(Ended::Left),
            End::Close(..) | End::Reload => STREAM_END.to_string(),
        };
        let _ = self.pipe.write(Bytes::from(ending)).await;
    }
}
