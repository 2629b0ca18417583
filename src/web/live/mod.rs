//! `GET /rooms/{code}/ws?after={seq}`: the live socket of a room page.
//!
//! Checked before the upgrade, in this order: Origin (403), session (401), membership (404),
//! `after` (400), the person's open sockets (429, `NATTER_SOCKETS_PER_USER`). The same address
//! asked without an upgrade answers what an upgrade would get (without the Origin check: it
//! changes nothing, and another site cannot read the answer), so the page can tell a refused
//! socket from a network failure. Then the socket listens on its room's hub (`chat::Chat::listen`) and its task
//! (`feed.rs` over `ws.rs`) sends the member list, replays what the page missed (`seq > after`) and
//! forwards live events, each message exactly once and in order. Once caught up, a socket's
//! events come from its room's writer instead (`chat::fanout`: one write per socket per frame,
//! no wake-up of the socket's task), which hands it back to its task whenever it cannot serve
//! it at once; the task keeps reading, pinging, kicks and shutdown. The same feed reaches pages
//! without JavaScript as a streamed document (`stream.rs`) and pages whose sockets never open
//! as Server-Sent Events (`sse.rs`), behind the same checks.

mod batch;
mod feed;
mod pipe;
mod sse;
mod stream;
mod ws;

pub use sse::events;
pub use stream::{STREAMS_PER_SESSION, frame_error, frame_page, live};

use feed::Feed;

use poem::{
    FromRequest, Request, Response, handler,
    http::{StatusCode, header},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tracing::Instrument;

use super::InRoom;
use crate::{
    actions::LiveRoom,
    auth::{AppData, CurrentUser},
    chat::{self, FastSocket},
    error::AppError,
    refusal::Refusal,
    server::RawStream,
    store::{Member, Room},
};

/// Small buffers: an idle socket should cost a few KiB, not tungstenite's default ~260 KiB.
/// Clients send nothing but control frames (a pong or a close is at most 131 bytes), so the
/// read buffer starts at 512 bytes (it grows for a bigger frame, up to the 4 KiB limit).
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(4096))
        .max_frame_size(Some(4096))
}

/// The `after` cursor of a socket URL: `None` when absent; refused unless given once, as
/// decimal digits that fit a seq (`+5`, `-0`, `1e3` are not cursors).
fn after_cursor(query: Option<&str>) -> Result<Option<i64>, ()> {
    let values: Vec<_> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "after")
        .map(|(_, value)| value)
        .collect();
    match values.as_slice() {
        [] => Ok(None),
        [v] => seq_digits(v).map(Some),
        _ => Err(()),
    }
}

/// A cursor as natter's pages and the browser's own reconnects spell one: decimal digits that
/// fit a seq.
fn seq_digits(v: &str) -> Result<i64, ()> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    v.parse().map_err(|_| ())
}

/// `user` as a room's hub knows a listener (when they joined does not matter there).
fn as_member(user: &CurrentUser) -> Member {
    Member {
        user_id: user.id,
        username: user.username.clone(),
        joined_at: 0,
    }
}

/// How long a person over the socket cap is asked to wait: time to close a tab.
const SOCKETS_RETRY_SECS: u64 = 10;

/// 429 with a `Retry-After`; the page shows `text` as why it is not live.
fn refuse_for_now(text: &str, retry_after_secs: u64) -> Response {
    let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, format!("{text}\n"));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after_secs.into());
    response
}

fn refuse(status: StatusCode, text: impl Into<poem::Body>) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

/// Who asks for a room's live feed, and the room, or the plain-text refusal: 401 without a
/// session, 404 for a room that is not theirs (a failed guess), 429 once those are spent.
/// Reconnects and feeds of active rooms are checked against the room's hub, without a database
/// read (`LiveRoom`).
async fn member_in_room(req: &Request) -> poem::Result<Result<(CurrentUser, Room), Response>> {
    let e = match InRoom::<LiveRoom>::from_request_without_body(req).await {
        Ok(InRoom {
            user,
            room: LiveRoom(room),
        }) => return Ok(Ok((user, room))),
        Err(e) => e,
    };
    Ok(Err(
        match e.downcast_ref::<AppError>().map(|e| &e.refusal) {
            Some(Refusal::SignInRequired { .. } | Refusal::UsernameRequired) => {
                refuse(StatusCode::UNAUTHORIZED, "sign in first\n")
            }
            Some(Refusal::NotFound) => refuse(StatusCode::NOT_FOUND, "no such room\n"),
            // Out of wrong guesses (every 404 here spends one).
            Some(refused @ Refusal::TooFast { .. }) => {
                let wait = refused.retry_after_secs().unwrap_or(SOCKETS_RETRY_SECS);
                refuse_for_now(&refused.sentence(), wait)
            }
            _ => return Err(e),
        },
    ))
}

/// `GET /rooms/{code}/ws`: checks, then upgrades and spawns the socket's task.
#[handler]
pub async fn connect(state: AppData<'_>, req: &Request) -> poem::Result<Response> {
    if state.shutdown.is_cancelled() {
        // Draining for a restart: a socket accepted now would be closed with 1012 at once.
        // Refused, the page retries and (behind Caddy) lands on a live instance.
        return Ok(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "restarting, try again\n",
        ));
    }
    let headers = req.headers();
    let upgrading = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let origin_ok = headers
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == state.config.public_origin().as_bytes());
    if state.config.refuse_websockets {
        // `NATTER_REFUSE_WEBSOCKETS`: as a proxy that refuses upgrades; pages fall back to
        // Server-Sent Events (`sse.rs`). Asked without an upgrade too, it answers as an
        // upgrade would get.
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "WebSockets are refused here\n",
        ));
    }
    if upgrading && !origin_ok {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "cross-origin socket refused\n",
        ));
    }
    let (user, room) = match member_in_room(req).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let Ok(after) = after_cursor(req.uri().query()) else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "after must be a non-negative integer\n",
        ));
    };
    let over_cap = || {
        Ok(refuse_for_now(
            "Paused: too many natter tabs are open. Close one and this one reconnects.",
            SOCKETS_RETRY_SECS,
        ))
    };
    let upgrade_ok = upgrading
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| upgrade_ok)
    else {
        if state.limits.sockets.is_full(&user.id) {
            return over_cap();
        }
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "this address only speaks WebSocket\n",
        ));
    };
    let Some(slot) = state.limits.sockets.take(&user.id) else {
        return over_cap();
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = req
        .take_upgrade()
        .map_err(|_| AppError::from(Refusal::BadRequest("the connection cannot be upgraded")))?;
    let state = (*state).clone();
    let member = as_member(&user);
    let session = user.session.token_hash;
    // The socket's log lines carry the upgrade request's id, and who and where.
    let span = tracing::info_span!("socket", room_id = room.id, user_id = member.user_id);
    // The raw connection, for the room's writer (`chat::fanout`).
    let fast = req
        .extensions()
        .get::<RawStream>()
        .map(|raw| FastSocket::new(raw.0.clone()));
    let tasks = state.tasks.clone();
    tasks.spawn(
        async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            // Boxed: listening reads the store, and inline its future would size the task of
            // every socket for its whole life.
            let listening = Box::pin(state.chat.listen(&room, member, session)).await;
            let mut ws =
                WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config())).await;
            let _slot = slot; // the socket counts against its person while it is open
            let metrics = state.metrics.clone();
            match listening {
                Ok(listener) => {
                    metrics.socket_upgraded();
                    let _open = metrics.socket_opened();
                    Feed::new(state, room, ws::Socket::new(ws, fast), listener)
                        .run(after)
                        .await;
                }
                Err(chat::Refused::Unavailable(e)) => {
                    tracing::warn!(error = %e, "socket could not join its room's hub");
                    ws::close(&mut ws, 1011, "try again").await;
                }
                Err(chat::Refused::Closed(code)) => {
                    metrics.socket_upgraded();
                    let reason = match code {
                        chat::close::SIGNED_OUT => "signed out",
                        _ => "left the room",
                    };
                    ws::close(&mut ws, code, reason).await;
                }
            }
        }
        .instrument(span),
    );
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_after_cursor_is_digits_given_once() {
        assert_eq!(after_cursor(None), Ok(None));
        assert_eq!(after_cursor(Some("")), Ok(None));
        assert_eq!(after_cursor(Some("x=1")), Ok(None));
        assert_eq!(after_cursor(Some("after=0")), Ok(Some(0)));
        assert_eq!(after_cursor(Some("after=0042")), Ok(Some(42)));
        assert_eq!(after_cursor(Some("x=1&after=7")), Ok(Some(7)));
        for bad in [
            "after=",
            "after",
            "after=-1",
            "after=+5",
            "after=-0",
            "after=1e3",
            "after=1.0",
            "after=%201",
            "after=99999999999999999999",
            "after=1&after=2",
            "after=%00",
        ] {
            assert_eq!(after_cursor(Some(bad)), Err(()), "{bad}");
        }
    }
}
