//! One live socket's task, after the upgrade: send the member list, replay what the page
//! missed (`seq > after`) from the store, then forward the hub's events, keeping `last_sent`
//! so that every message goes out exactly once and in order (gaps are filled from the store).
//!
//! Shaped like mini-redis's connection handler: `run` is a loop over `next_event`, and each
//! kind of event has a small method of its own.

use std::{
    pin::Pin,
    time::{Duration, Instant},
};

use async_broadcast::RecvError;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Interval;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as WsMessage, Utf8Bytes,
        protocol::{
            CloseFrame,
            frame::{
                Frame,
                coding::{CloseCode, Data, OpCode},
            },
        },
    },
};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::batch::{Batch, MAX_FRAGMENT};
use crate::{
    State,
    chat::{Event, Listener, close},
    store::Room,
    views::{messages::events_frame, status::away_notice},
};

/// A socket may be this far behind (in messages) and still catch up over the socket; further
/// behind, it is told to reload (4409).
const MAX_REPLAY: i64 = 500;
/// Room events per replay read (and frame).
const REPLAY_CHUNK: i64 = 100;
/// A client that cannot take a frame for this long is closed (it reconnects and resumes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client silent (no pong, no frame) for this long is gone.
const SILENT_LIMIT: Duration = Duration::from_secs(60);

/// The upgraded connection.
pub(super) type Ws = WebSocketStream<poem::Upgraded>;

/// Why the socket ends: what (if anything) to tell the client.
pub(super) enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client went away or broke the protocol: nothing to say.
    Gone,
}

/// What happened next, as `next_event` saw it.
enum Next {
    /// The hub broadcast something, or the socket fell behind it.
    Hub(Result<Event, RecvError>),
    /// Activity in the person's other rooms (`chat::activity`): sent as it is.
    Activity(Utf8Bytes),
    /// The client said something (a pong, a frame): it is alive.
    Heard,
    /// Time to ping, and to check that the client still answers.
    Ping,
    /// The socket must end.
    End(End),
}

/// A live socket of one member in one room.
pub(super) struct Socket {
    state: State,
    room: Room,
    ws: Ws,
    /// The socket's place in the room's hub (its events and its kick).
    listener: Listener,
    /// The newest seq sent: older or repeated messages are skipped, a newer one with a gap
    /// before it waits for the gap to be read from the store.
    last_sent: i64,
    ping: Interval,
    /// When the client was last heard from.
    heard: Instant,
    /// Completes when the server starts shutting down. Registered once, not once per event:
    /// a busy room wakes the loop for every message.
    restarting: Pin<Box<WaitForCancellationFutureOwned>>,
    /// An event taken from the hub while gathering a batch that did not fit in it: handled
    /// next, never lost.
    held: Option<Result<Event, RecvError>>,
}

impl Socket {
    pub(super) fn new(state: State, room: Room, ws: Ws, listener: Listener) -> Self {
        let restarting = Box::pin(state.shutdown.clone().cancelled_owned());
        let first_ping = tokio::time::Instant::now() + PING_EVERY;
        Socket {
            state,
            room,
            ws,
            listener,
            last_sent: 0,
            ping: tokio::time::interval_at(first_ping, PING_EVERY),
            heard: Instant::now(),
            restarting,
            held: None,
        }
    }

    /// Serves the socket until it ends, then closes it and leaves the hub.
    ///
    /// A socket spends its life inside one task, whose future is as large as its largest
    /// state: no future here is kept alive past its `.await` (a `match` on an awaited
    /// expression would keep it alive through the arms), nothing large is moved into another
    /// future, and the store's futures are boxed (see `catch_up`). Each of these was a few
    /// hundred bytes on every idle socket.
    pub(super) async fn run(mut self, after: Option<i64>) {
        let started = self.start(after).await;
        let end = match started {
            Ok(()) => self.forward().await,
            Err(end) => end,
        };
        let Socket {
            ref mut ws,
            listener,
            ..
        } = self;
        Box::pin(listener.close()).await;
        if let End::Close(code, reason) = end {
            close(ws, code, reason).await;
        }
    }

    /// Sends the member list and the messages after `after`.
    async fn start(&mut self, after: Option<i64>) -> Result<(), End> {
        self.send(self.listener.list_frame()).await?;
        // Everything up to what the hub had published is committed, and anything newer reaches
        // this socket through the hub (it subscribed first): no need to ask the store.
        let latest = self.listener.published.max(self.room.last_seq);
        let from = match after {
            None => latest,
            Some(a) if a <= latest => a,
            Some(a) => self.resume_point(a, latest).await?,
        };
        if latest - from > MAX_REPLAY {
            let notice = away_notice(&self.room.code);
            self.send(Utf8Bytes::from(notice.into_string())).await?;
            return Err(End::Close(close::TOO_FAR_BEHIND, "too far behind"));
        }
        self.last_sent = from;
        self.catch_up(latest).await
    }

    /// Where to resume when the page shows more than this instance has published (its hub
    /// lags a post committed elsewhere, or the room came from the hub itself), or `after` is
    /// made up. Only the store can tell: what a page shows is committed. Made up, it counts as
    /// `latest`, and everything newer comes through the hub (subscribed first); clamped to the
    /// store's seq instead, a post committed since subscribing would be skipped, and clamped to
    /// `latest` when real, the lagging ones sent twice.
    async fn resume_point(&mut self, after: i64, latest: i64) -> Result<i64, End> {
        let read = Box::pin(self.state.store.last_seq(self.room.id)).await;
        match read {
            Ok(committed) if after <= committed.unwrap_or(0) => Ok(after),
            Ok(_) => Ok(latest),
            Err(e) => {
                tracing::warn!(error = %e, "socket could not read the room's last seq");
                Err(End::Close(1011, "try again"))
            }
        }
    }

    /// Forwards the hub's events until the socket ends.
    async fn forward(&mut self) -> End {
        loop {
            let next = self.next_event().await;
            let handled = match next {
                Next::Hub(Ok(Event::Message {
                    seq,
                    frame,
                    committed,
                })) => self.on_message(seq, frame, committed).await,
                Next::Hub(Ok(Event::Members { frame })) => self.send(frame).await,
                Next::Hub(Err(RecvError::Overflowed(missed))) => self.on_overflow(missed).await,
                Next::Hub(Err(RecvError::Closed)) => Err(End::Close(close::RESTART, "closing")),
                Next::Activity(frame) => self.send(frame).await,
                Next::Heard => {
                    self.heard = Instant::now();
                    Ok(())
                }
                Next::Ping => self.on_ping().await,
                Next::End(end) => Err(end),
            };
            if let Err(end) = handled {
                return end;
            }
        }
    }

    /// Waits for what happens next. In this order, and the hub before the client: a wake-up
    /// for a message sends it without first polling the connection and the ping timer. While
    /// messages keep coming the client is read only once they pause; it has nothing to say
    /// but pongs and a close, and a write to a client gone fails on its own.
    async fn next_event(&mut self) -> Next {
        if let Some(event) = self.held.take() {
            return Next::Hub(event);
        }
        tokio::select! {
            biased;
            _ = &mut self.restarting => Next::End(End::Close(close::RESTART, "server restarting")),
            code = &mut self.listener.kicked => Next::End(match code {
                Ok(close::SIGNED_OUT) => End::Close(close::SIGNED_OUT, "signed out"),
                Ok(close::LEFT) => End::Close(close::LEFT, "left the room"),
                Ok(code) => End::Close(code, ""),
                Err(_) => End::Close(1011, ""),
            }),
            event = self.listener.events.recv() => Next::Hub(event),
            Some(frame) = self.listener.activity.recv() => Next::Activity(frame),
            incoming = self.ws.next() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => Next::End(End::Gone),
                Some(Ok(_)) => Next::Heard,
            },
            _ = self.ping.tick() => Next::Ping,
        }
    }

    /// A message from the hub: skipped if already sent, sent after its gap otherwise, together
    /// with the messages waiting right behind it.
    async fn on_message(&mut self, seq: i64, frame: Utf8Bytes, at: Instant) -> Result<(), End> {
        if seq <= self.last_sent {
            return Ok(());
        }
        if seq > self.last_sent + 1 {
            // A gap: the missing messages are committed (commit order is seq order), so read
            // them before sending this one.
            self.state.metrics.gap_filled();
            self.catch_up(seq - 1).await?;
        }
        let mut batch = Batch::new(frame, seq, at);
        self.held = batch.gather(&mut self.listener.events);
        self.send(batch.frame()).await?;
        for committed in batch.committed() {
            self.state.metrics.delivered(committed.elapsed());
        }
        self.last_sent = batch.last_seq;
        Ok(())
    }

    /// The socket fell behind its hub and events were dropped: catch up from the store (or
    /// reload, if too far behind), and send a fresh member list (presence changes may have
    /// been dropped too).
    async fn on_overflow(&mut self, missed: u64) -> Result<(), End> {
        tracing::debug!(
            missed,
            "socket fell behind its hub; resyncing from the store"
        );
        self.state.metrics.resynced();
        let read = Box::pin(self.state.store.last_seq(self.room.id)).await;
        let latest = match read {
            Ok(Some(latest)) => latest,
            _ => return Err(End::Close(1011, "try again")),
        };
        if latest - self.last_sent > MAX_REPLAY {
            return Err(End::Close(close::TOO_FAR_BEHIND, "too far behind"));
        }
        self.catch_up(latest).await?;
        self.send(self.listener.list_frame()).await
    }

    /// Pings the client, unless it has been silent too long.
    async fn on_ping(&mut self) -> Result<(), End> {
        if self.heard.elapsed() > SILENT_LIMIT {
            return Err(End::Gone);
        }
        self.send_message(WsMessage::Ping(Default::default())).await
    }

    /// Sends the room's events `(last_sent, upto]` from the store in order, a chunk of seqs
    /// at a time: new messages appended, changed ones in place. Everything up to `upto` is
    /// committed (commit order is seq order); seqs a later change superseded are simply not
    /// there (`Store::events_between`).
    async fn catch_up(&mut self, upto: i64) -> Result<(), End> {
        while self.last_sent < upto {
            let to = upto.min(self.last_sent + REPLAY_CHUNK);
            // Boxed: the store's futures are large, and kept inline they would size every
            // idle socket's task.
            let read = self
                .state
                .store
                .events_between(self.room.id, self.last_sent, to);
            let events = Box::pin(read).await.map_err(|e| {
                tracing::warn!(error = %e, "socket could not read messages");
                End::Close(1011, "try again")
            })?;
            if !events.is_empty() {
                let frame = events_frame(&self.room.code, &events);
                self.send(Utf8Bytes::from(frame)).await?;
            }
            self.last_sent = to;
        }
        Ok(())
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
}

/// Says goodbye with `code`, and waits (briefly) for the client's answering close so the TCP
/// connection ends cleanly.
pub(super) async fn close(ws: &mut Ws, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.send(WsMessage::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        }
    })
    .await;
}
