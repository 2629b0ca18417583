//! `GET /rooms/{code}/events?after={seq}`: the room's live feed as Server-Sent Events, for
//! pages whose WebSockets never open (a proxy that strips upgrades); `js/live.js` switches a
//! page over after two socket attempts that failed.
//!
//! The same checks as the socket, in its order (Origin when sent 403, session 401, membership
//! 404, cursor 400, the person's open sockets 429), then the same feed (`feed.rs`) with the
//! same fragments: each frame one `message` event, its `id:` the newest room event it brings
//! (none for member lists and activity), so the browser's own reconnect sends `Last-Event-ID`
//! and resumes after it (it wins over the URL's stale `?after=`). The end is an event too:
//! `event: close` with the socket's close code as its data (4401 signed out, 4404 left, 4409
//! too far behind, 1012 restarting, 1011 try again).

use std::time::Duration;

use bytes::Bytes;
use poem::{
    Body, Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
};
use tracing::Instrument;

use super::{
    SOCKETS_RETRY_SECS, after_cursor,
    feed::{End, Feed, Heard, Transport},
    member_in_room,
    pipe::{self, Pipe},
    refuse, refuse_for_now,
};
use crate::{
    auth::AppData,
    chat::{self, Frame, close},
};

/// A comment this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// How long the browser waits before reconnecting a stream that ended (it picks a moment
/// between these, so a restart's readers do not all come back at once).
const RETRY_MS: std::ops::Range<u32> = 1000..4000;

/// The events cursor: `Last-Event-ID` (what the browser's own reconnect sends) when present,
/// otherwise `?after=`; both follow the socket's rule (decimal digits, given once).
fn events_cursor(req: &Request) -> Result<Option<i64>, ()> {
    let after = after_cursor(req.uri().query())?;
    let mut ids = req.headers().get_all("last-event-id").iter();
    match (ids.next(), ids.next()) {
        (None, _) => Ok(after),
        (Some(id), None) => super::seq_digits(id.to_str().map_err(|_| ())?).map(Some),
        (Some(_), Some(_)) => Err(()),
    }
}

/// One event: `id:` when it brings room events, then the frame as `data:` lines (a line
/// break of any kind ends an SSE line; the browser joins the lines with `\n`, which HTML
/// reads as it reads `\r\n`), then the blank line that dispatches it.
fn event(frame: &str, seq: i64) -> Bytes {
    let mut out = String::with_capacity(frame.len() + 64);
    if seq > 0 {
        out.push_str(&format!("id: {seq}\n"));
    }
    for line in frame.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The last event of a stream: why it ends, as the socket's close code.
fn close_event(code: u16) -> Bytes {
    Bytes::from(format!("event: close\ndata: {code}\n\n"))
}

/// The close event of a reader removed from the room: 4404, and why on a line of its own.
fn removed_event() -> Bytes {
    Bytes::from(format!(
        "event: close\ndata: {}\ndata: {}\n\n",
        close::LEFT,
        super::feed::REMOVED
    ))
}

/// How long the browser waits before reconnecting once the stream ends, picked per stream.
fn retry() -> Bytes {
    Bytes::from(format!("retry: {}\n\n", rand::random_range(RETRY_MS)))
}

/// A stream that ends at once, with `code`.
fn ended(code: u16) -> Response {
    let body = [retry(), close_event(code)].concat();
    event_stream(Body::from_vec(body))
}

/// An answer of events from `body`, with the headers that keep proxies from buffering,
/// caching or compressing it.
fn event_stream(body: Body) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        // Caddy and nginx pass a response on as it comes when told not to buffer it.
        .header("x-accel-buffering", "no")
        .body(body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-transform"),
    );
    response
}

/// `GET /rooms/{code}/events`.
#[handler]
pub async fn events(state: AppData<'_>, req: &Request) -> poem::Result<Response> {
    if state.shutdown.is_cancelled() {
        // Draining for a restart: said as a feed cut by the restart would say it, so the
        // browser comes back by itself (behind Caddy, to a live instance).
        return Ok(ended(close::RESTART));
    }
    // EventSource sends no Origin to its own origin, but a page elsewhere would.
    let foreign = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() != state.config.public_origin().as_bytes());
    if foreign {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "cross-origin events refused\n",
        ));
    }
    let (user, room) = match member_in_room(req).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let Ok(after) = events_cursor(req) else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "after and Last-Event-ID must be non-negative integers\n",
        ));
    };
    let Some(slot) = state.limits.sockets.take(&user.id) else {
        return Ok(refuse_for_now(
            "Paused: too many natter tabs are open. Close one and this one reconnects.",
            SOCKETS_RETRY_SECS,
        ));
    };
    let member = super::as_member(&user);
    let session = user.session.token_hash;
    let listening = Box::pin(state.chat.listen(&room, member, session)).await;
    let listener = match listening {
        Ok(listener) => listener,
        Err(chat::Refused::Unavailable(e)) => {
            tracing::warn!(error = %e, "events could not join the room's hub");
            return Ok(ended(1011));
        }
        // Signed out or out of the room since the checks: said the way a feed would end.
        Err(chat::Refused::Closed(code)) => return Ok(ended(code)),
    };
    let (pipe, body) = pipe::pipe([retry()]);
    let span = tracing::info_span!("events", room_id = room.id, user_id = user.id);
    let metrics = state.metrics.clone();
    let state = (*state).clone();
    state.tasks.clone().spawn(
        async move {
            let _slot = slot; // counted against the person while open, as a socket is
            let _open = metrics.stream_opened();
            Feed::new(state, room, Events { pipe }, listener)
                .run(after)
                .await;
        }
        .instrument(span),
    );
    Ok(event_stream(body))
}

/// An event stream as a feed's transport.
struct Events {
    pipe: Pipe,
}

impl Transport for Events {
    const IN_PLACE: bool = true;
    const PRESENCE: bool = true;
    const KEEP_ALIVE: Duration = HEARTBEAT;

    async fn send(&mut self, frame: Frame, seq: i64) -> Result<(), End> {
        self.pipe.write(event(frame.html(), seq)).await
    }

    async fn heard(&mut self) -> Result<Heard, End> {
        Err(self.pipe.gone().await)
    }

    async fn keep_alive(&mut self) -> Result<(), End> {
        self.pipe
            .write(Bytes::from_static(b": keep-alive\n\n"))
            .await
    }

    async fn close(mut self, end: End) {
        let code = match end {
            End::Gone => return,
            End::Close(close::LEFT, super::feed::REMOVED) => {
                let _ = self.pipe.write(removed_event()).await;
                return;
            }
            End::Close(code, _) => code,
            // Not for a client that changes messages in place; if it were, reloading would be
            // the way back to the room as it is.
            End::Reload => close::TOO_FAR_BEHIND,
        };
        let _ = self.pipe.write(close_event(code)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_one_event_whatever_its_line_breaks() {
        assert_eq!(
            event("<div id=\"messages\">\n<p>a\r\nb\rc</p></div>", 7),
            "id: 7\ndata: <div id=\"messages\">\ndata: <p>a\ndata: b\ndata: c</p></div>\n\n"
        );
        assert_eq!(event("<ul></ul>", 0), "data: <ul></ul>\n\n");
        assert_eq!(close_event(4401), "event: close\ndata: 4401\n\n");
    }

    #[test]
    fn last_event_id_wins_over_after_and_follows_its_rules() {
        let req = |uri: &str, ids: &[&str]| {
            let mut b = Request::builder().uri(uri.parse().unwrap());
            for id in ids {
                b = b.header("last-event-id", *id);
            }
            b.finish()
        };
        assert_eq!(events_cursor(&req("/e", &[])), Ok(None));
        assert_eq!(events_cursor(&req("/e?after=3", &[])), Ok(Some(3)));
        assert_eq!(events_cursor(&req("/e?after=3", &["9"])), Ok(Some(9)));
        assert_eq!(events_cursor(&req("/e", &["0"])), Ok(Some(0)));
        for bad in ["", "-1", "+1", "1e3", " 1", "99999999999999999999"] {
            assert_eq!(
                events_cursor(&req("/e?after=3", &[bad])),
                Err(()),
                "{bad:?}"
            );
        }
        assert_eq!(events_cursor(&req("/e", &["1", "2"])), Err(()));
        assert_eq!(events_cursor(&req("/e?after=x", &["1"])), Err(()));
    }
}
