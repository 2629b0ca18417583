//! `GET /rooms/{code}/ws?after={seq}`: the live socket of a room page.
//!
//! Checked before the upgrade, in this order: Origin (403), session (401), membership (404),
//! `after` (400). Then: subscribe to the hub, send the member list, replay what the page missed
//! (`seq > after`) from the store, and forward live events, keeping `last_sent` so that every
//! message goes out exactly once and in order (gaps are filled from the store).

use std::{
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use async_broadcast::RecvError;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::Path,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as WsMessage, Utf8Bytes,
        handshake::derive_accept_key,
        protocol::{
            CloseFrame, Role, WebSocketConfig,
            frame::{
                Frame,
                coding::{CloseCode, Data, OpCode},
            },
        },
    },
};
use tracing::Instrument;

use super::{Event, close};
use crate::{
    State,
    auth::{AppData, CurrentUser, Session},
    domain::RoomCode,
    error::AppError,
    store::{Member, Room},
    views::{messages::messages_append, room::away_notice},
};

/// A socket may be this far behind (in messages) and still catch up over the socket; further
/// behind, it is told to reload (4409).
const MAX_REPLAY: i64 = 500;
/// Messages per replay frame.
const REPLAY_CHUNK: i64 = 100;
/// The largest WebSocket frame sent; longer messages go out in fragments of this size.
const MAX_FRAGMENT: usize = 4096;
/// A client that cannot take a frame for this long is closed (it reconnects and resumes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client silent (no pong, no frame) for this long is gone.
const SILENT_LIMIT: Duration = Duration::from_secs(60);

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
        [v] if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map(Some).map_err(|_| ())
        }
        _ => Err(()),
    }
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

#[handler]
pub async fn connect(
    state: AppData<'_>,
    req: &Request,
    Path(raw): Path<String>,
) -> poem::Result<Response> {
    if state.shutdown.is_cancelled() {
        // Draining for a restart: a socket accepted now would be closed with 1012 at once.
        // Refused, the page retries and (behind Caddy) lands on a live instance.
        return Ok(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "restarting, try again\n",
        ));
    }
    let origin_ok = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == state.config.public_origin().as_bytes());
    if !origin_ok {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "cross-origin socket refused\n",
        ));
    }
    let Some(user) = Session::load(&state, req)
        .await?
        .and_then(|s| CurrentUser::from_session(s).ok())
    else {
        return Ok(refuse(StatusCode::UNAUTHORIZED, "sign in first\n"));
    };
    let code = RoomCode::parse(&raw).map_err(|_| AppError::NotFound)?;
    // Reconnects and sockets to active rooms are checked against the room's hub here, without
    // a database read.
    let room = match state.chat.active_member_room(code, user.id) {
        Some(room) => room,
        None => match state.store.room_for_member(code, user.id).await {
            Ok(Some(room)) => room,
            Ok(None) => return Ok(refuse(StatusCode::NOT_FOUND, "no such room\n")),
            Err(e) => return Err(AppError::from(e).into()),
        },
    };
    let Ok(after) = after_cursor(req.uri().query()) else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "after must be a non-negative integer\n",
        ));
    };
    let headers = req.headers();
    let upgrade_ok = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| upgrade_ok)
    else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "this address only speaks WebSocket\n",
        ));
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = req
        .take_upgrade()
        .map_err(|_| AppError::BadRequest("the connection cannot be upgraded"))?;
    let state = (*state).clone();
    let task_state = state.clone();
    // The socket's log lines carry the upgrade request's id, and who and where.
    let span = tracing::info_span!("socket", room_id = room.id, user_id = user.id);
    state.tasks.spawn(
        async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config())).await;
            Live {
                state: task_state,
                room,
                user,
                ws,
            }
            .run(after)
            .await;
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

type Ws = WebSocketStream<poem::Upgraded>;

/// The most messages sent in one frame.
const BATCH_MAX: usize = 16;

/// Messages that go out together: the one just received and those already waiting right
/// behind it (a socket that fell behind, a burst in the room). One frame and one write for
/// all of them instead of one each; the write is most of a delivery's cost. A lone message
/// (the usual case) is sent as the shared frame itself, without a copy.
struct Batch {
    first: Utf8Bytes,
    joined: Option<String>,
    last_seq: i64,
    committed: [Option<Instant>; BATCH_MAX],
    len: usize,
}

impl Batch {
    fn new(frame: Utf8Bytes, seq: i64, committed: Instant) -> Self {
        let mut batch = Batch {
            first: frame,
            joined: None,
            last_seq: seq,
            committed: [None; BATCH_MAX],
            len: 1,
        };
        batch.committed[0] = Some(committed);
        batch
    }

    fn size(&self) -> usize {
        self.joined.as_ref().map_or(self.first.len(), String::len)
    }

    /// Takes the messages waiting in `rx` that directly follow the batch, while the whole
    /// fits in one frame. Returns the first event that does not belong (it must be handled
    /// next, not lost).
    fn gather(
        &mut self,
        rx: &mut async_broadcast::Receiver<Event>,
    ) -> Option<Result<Event, RecvError>> {
        use async_broadcast::TryRecvError;
        while self.len < BATCH_MAX {
            let event = match rx.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Overflowed(n)) => return Some(Err(RecvError::Overflowed(n))),
                Err(TryRecvError::Closed) => return Some(Err(RecvError::Closed)),
            };
            match event {
                Event::Message { seq, .. } if seq <= self.last_seq => continue,
                Event::Message {
                    seq,
                    frame,
                    committed,
                } if seq == self.last_seq + 1 && self.size() + frame.len() <= MAX_FRAGMENT => {
                    let joined = self.joined.get_or_insert_with(|| {
                        let mut joined = String::with_capacity(MAX_FRAGMENT);
                        joined.push_str(self.first.as_str());
                        joined
                    });
                    joined.push_str(frame.as_str());
                    self.last_seq = seq;
                    self.committed[self.len] = Some(committed);
                    self.len += 1;
                }
                other => return Some(Ok(other)),
            }
        }
        None
    }

    fn frame(&mut self) -> Utf8Bytes {
        match self.joined.take() {
            Some(joined) => Utf8Bytes::from(joined),
            None => self.first.clone(),
        }
    }

    fn committed(&self) -> impl Iterator<Item = Instant> + '_ {
        self.committed.iter().flatten().copied()
    }
}

/// Why the loop ended: what (if anything) to tell the client.
enum End {
    Close(u16, &'static str),
    /// The client went away or broke the protocol: nothing to say.
    Gone,
}

struct Live {
    state: State,
    room: Room,
    user: CurrentUser,
    ws: Ws,
}

impl Live {
    async fn run(mut self, after: Option<i64>) {
        let chat = self.state.chat.clone();
        let (hub, mut rx, published) = match chat.subscribe(&self.room).await {
            Ok(subscribed) => subscribed,
            Err(e) => {
                tracing::warn!(error = %e, "socket could not join its room's hub");
                return self.close(1011, "try again").await;
            }
        };
        let me = Member {
            user_id: self.user.id,
            username: self.user.username.clone(),
            joined_at: 0,
        };
        self.state.metrics.socket_upgrades.fetch_add(1, Relaxed);
        self.state.metrics.sockets_open.fetch_add(1, Relaxed);
        let end = match chat
            .socket_opened(&hub, &me, self.user.session.token_hash.clone())
            .await
        {
            Ok((conn, mut kicked)) => {
                let end = match self.start(&hub, published, after).await {
                    Ok(last_sent) => self.forward(&mut rx, &mut kicked, last_sent, &hub).await,
                    Err(end) => end,
                };
                chat.socket_closed(&hub, &me, conn).await;
                end
            }
            Err(close::SIGNED_OUT) => End::Close(close::SIGNED_OUT, "signed out"),
            Err(code) => End::Close(code, "left the room"),
        };
        self.state.metrics.sockets_open.fetch_sub(1, Relaxed);
        drop(rx);
        chat.release(hub);
        if let End::Close(code, reason) = end {
            self.close(code, reason).await;
        }
    }

    /// Sends the member list and the messages after `after`; returns the last seq sent.
    /// `published` is what the hub had broadcast before this socket subscribed.
    async fn start(
        &mut self,
        hub: &super::Hub,
        published: i64,
        after: Option<i64>,
    ) -> Result<i64, End> {
        self.send(hub.list_frame()).await?;
        // Everything up to what the hub had published is committed, and anything newer reaches
        // this socket through the hub (it subscribed first): no need to ask the store.
        let latest = published.max(self.room.last_seq);
        let last_sent = match after {
            None => latest,
            Some(a) if a <= latest => a,
            // The page shows more than this instance has published (its hub lags a post
            // committed elsewhere, or the room came from the hub itself), or `after` is made
            // up. Only the store can tell: what a page shows is committed. Made up, it counts
            // as `latest`, and everything newer comes through the hub (subscribed first);
            // clamped to the store's seq instead, a post committed since subscribing would be
            // skipped, and clamped to `latest` when real, the lagging ones sent twice.
            Some(a) => match self.state.store.last_seq(self.room.id).await {
                Ok(committed) if a <= committed.unwrap_or(0) => a,
                Ok(_) => latest,
                Err(e) => {
                    tracing::warn!(error = %e, "socket could not read the room's last seq");
                    return Err(End::Close(1011, "try again"));
                }
            },
        };
        if latest - last_sent > MAX_REPLAY {
            let notice = away_notice(&self.room.code);
            self.send(Utf8Bytes::from(notice.into_string())).await?;
            return Err(End::Close(close::TOO_FAR_BEHIND, "too far behind"));
        }
        self.catch_up(last_sent, latest).await
    }

    /// Sends messages `(from, upto]` from the store in order; returns the last seq sent, `upto`.
    /// Everything up to `upto` is committed (commit order is seq order), so a store that
    /// answers short is failing: the socket closes and the page resumes on a new one.
    async fn catch_up(&mut self, from: i64, upto: i64) -> Result<i64, End> {
        let mut last_sent = from;
        while last_sent < upto {
            let batch = self
                .state
                .store
                .messages_between(self.room.id, last_sent, upto, REPLAY_CHUNK)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "socket could not read messages");
                    End::Close(1011, "try again")
                })?;
            let Some(last) = batch.last() else {
                tracing::warn!(
                    after = last_sent,
                    upto,
                    "socket found committed messages missing"
                );
                return Err(End::Close(1011, "try again"));
            };
            let new_last = last.seq;
            self.send(Utf8Bytes::from(messages_append(None, &batch).into_string()))
                .await?;
            last_sent = new_last;
        }
        Ok(last_sent)
    }

    async fn forward(
        &mut self,
        rx: &mut async_broadcast::Receiver<Event>,
        kicked: &mut tokio::sync::oneshot::Receiver<u16>,
        mut last_sent: i64,
        hub: &super::Hub,
    ) -> End {
        let shutdown = self.state.shutdown.clone();
        // Registered once, not once per event: a busy room wakes this loop for every message.
        let restarting = shutdown.cancelled();
        tokio::pin!(restarting);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = Instant::now();
        // An event taken from the hub while gathering a batch that did not fit in it.
        let mut held: Option<Result<Event, RecvError>> = None;
        loop {
            let event = match held.take() {
                Some(event) => event,
                // In this order, and the hub before the client: a wake-up for a message sends
                // it without first polling the connection and the ping timer. While messages
                // keep coming the client is read only once they pause; it has nothing to say
                // but pongs and a close, and a write to a client gone fails on its own.
                None => tokio::select! {
                    biased;
                    _ = &mut restarting => return End::Close(close::RESTART, "server restarting"),
                    code = &mut *kicked => {
                        return match code {
                            Ok(close::SIGNED_OUT) => End::Close(close::SIGNED_OUT, "signed out"),
                            Ok(close::LEFT) => End::Close(close::LEFT, "left the room"),
                            Ok(code) => End::Close(code, ""),
                            Err(_) => End::Close(1011, ""),
                        };
                    }
                    event = rx.recv() => event,
                    incoming = self.ws.next() => match incoming {
                        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return End::Gone,
                        Some(Ok(_)) => {
                            heard = Instant::now();
                            continue;
                        }
                    },
                    _ = ping.tick() => {
                        if heard.elapsed() > SILENT_LIMIT {
                            return End::Gone;
                        }
                        if let Err(end) = self.send_message(WsMessage::Ping(Default::default())).await {
                            return end;
                        }
                        continue;
                    }
                },
            };
            match event {
                Ok(Event::Message {
                    seq,
                    frame,
                    committed,
                }) => {
                    if seq <= last_sent {
                        continue;
                    }
                    if seq > last_sent + 1 {
                        // A gap: the missing messages are committed (commit order is seq
                        // order), so read them before sending this one.
                        self.state.metrics.gap_fills.fetch_add(1, Relaxed);
                        if let Err(end) = self.catch_up(last_sent, seq - 1).await {
                            return end;
                        }
                    }
                    let mut batch = Batch::new(frame, seq, committed);
                    held = batch.gather(rx);
                    if let Err(end) = self.send(batch.frame()).await {
                        return end;
                    }
                    for committed in batch.committed() {
                        self.state.metrics.delivered(committed.elapsed());
                    }
                    last_sent = batch.last_seq;
                }
                Ok(Event::Members { frame }) => {
                    if let Err(end) = self.send(frame).await {
                        return end;
                    }
                }
                Err(RecvError::Overflowed(missed)) => {
                    tracing::debug!(
                        missed,
                        "socket fell behind its hub; resyncing from the store"
                    );
                    self.state.metrics.resyncs.fetch_add(1, Relaxed);
                    let latest = match self.state.store.last_seq(self.room.id).await {
                        Ok(Some(latest)) => latest,
                        _ => return End::Close(1011, "try again"),
                    };
                    if latest - last_sent > MAX_REPLAY {
                        return End::Close(close::TOO_FAR_BEHIND, "too far behind");
                    }
                    last_sent = match self.catch_up(last_sent, latest).await {
                        Ok(s) => s,
                        Err(end) => return end,
                    };
                    // Presence changes may have been dropped too: send a fresh list.
                    if let Err(end) = self.resend_members(hub).await {
                        return end;
                    }
                }
                Err(RecvError::Closed) => return End::Close(close::RESTART, "closing"),
            }
        }
    }

    async fn resend_members(&mut self, hub: &super::Hub) -> Result<(), End> {
        self.send(hub.list_frame()).await
    }

    /// Sends one HTML frame: whole when small, otherwise as a fragmented message (same bytes,
    /// shared, cut into `MAX_FRAGMENT` pieces). tungstenite's write buffer keeps the capacity
    /// of the largest frame it ever wrote for the socket's lifetime; a 200-member list or a
    /// replay of a hundred messages would otherwise pin tens of KiB to every idle socket.
    async fn send(&mut self, frame: Utf8Bytes) -> Result<(), End> {
        if frame.len() <= MAX_FRAGMENT {
            return self.send_message(WsMessage::Text(frame)).await;
        }
        let bytes = Bytes::from(frame);
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + MAX_FRAGMENT).min(bytes.len());
            let opcode = if start == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let part = Frame::message(bytes.slice(start..end), opcode, end == bytes.len());
            self.send_message(WsMessage::Frame(part)).await?;
            start = end;
        }
        Ok(())
    }

    async fn send_message(&mut self, message: WsMessage) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                tracing::debug!("socket could not take a frame for 10 s; closing");
                Err(End::Gone)
            }
        }
    }

    async fn close(mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if self.ws.send(WsMessage::Close(Some(frame))).await.is_ok() {
                // Wait for the client's answering close so the TCP connection ends cleanly.
                while let Some(Ok(message)) = self.ws.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: i64, text: &str) -> Event {
        Event::Message {
            seq,
            frame: Utf8Bytes::from(format!("<{seq}:{text}>")),
            committed: Instant::now(),
        }
    }

    fn channel() -> (
        async_broadcast::Sender<Event>,
        async_broadcast::Receiver<Event>,
    ) {
        let (mut tx, rx) = async_broadcast::broadcast(64);
        tx.set_overflow(true);
        (tx, rx)
    }

    fn batch_of(seq: i64, text: &str) -> Batch {
        let Event::Message { frame, .. } = message(seq, text) else {
            unreachable!()
        };
        Batch::new(frame, seq, Instant::now())
    }

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

    #[test]
    fn a_lone_message_goes_out_as_the_shared_frame() {
        let (_tx, mut rx) = channel();
        let mut batch = batch_of(1, "a");
        assert!(batch.gather(&mut rx).is_none());
        assert_eq!(batch.frame().as_str(), "<1:a>");
        assert_eq!((batch.last_seq, batch.committed().count()), (1, 1));
    }

    #[test]
    fn waiting_messages_join_in_order_skipping_repeats_up_to_the_batch_limit() {
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(1, "again")).unwrap();
        for seq in 2..=20 {
            tx.try_broadcast(message(seq, "m")).unwrap();
        }
        let mut batch = batch_of(1, "a");
        assert!(batch.gather(&mut rx).is_none());
        assert_eq!(batch.last_seq, BATCH_MAX as i64);
        assert_eq!(batch.committed().count(), BATCH_MAX);
        let expected: String = std::iter::once("<1:a>".to_string())
            .chain((2..=BATCH_MAX).map(|s| format!("<{s}:m>")))
            .collect();
        assert_eq!(batch.frame().as_str(), expected);
        // The rest stay queued for the next round.
        assert!(matches!(rx.try_recv(), Ok(Event::Message { seq: 17, .. })));
    }

    #[test]
    fn what_does_not_belong_is_handed_back_not_lost() {
        // A member-list change.
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(2, "m")).unwrap();
        tx.try_broadcast(Event::Members {
            frame: Utf8Bytes::from_static("<members>"),
        })
        .unwrap();
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Ok(Event::Members { .. }))
        ));
        assert_eq!(batch.frame().as_str(), "<1:a><2:m>");

        // A gap: filled from the store before that message is sent.
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(3, "m")).unwrap();
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Ok(Event::Message { seq: 3, .. }))
        ));
        assert_eq!(batch.last_seq, 1);

        // A message that would make the frame too big.
        let (tx, mut rx) = channel();
        tx.try_broadcast(message(2, &"x".repeat(MAX_FRAGMENT - 5)))
            .unwrap();
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Ok(Event::Message { seq: 2, .. }))
        ));
        assert_eq!(batch.frame().as_str(), "<1:a>");

        // The queue overflowed: the caller resyncs.
        let (mut tx, mut rx) = async_broadcast::broadcast(2);
        tx.set_overflow(true);
        for seq in 2..=5 {
            tx.try_broadcast(message(seq, "m")).unwrap();
        }
        let mut batch = batch_of(1, "a");
        assert!(matches!(
            batch.gather(&mut rx),
            Some(Err(RecvError::Overflowed(2)))
        ));
    }
}
