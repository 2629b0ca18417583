//! One live subscriber's loop, whatever carries it (a WebSocket, a streamed document, Server-Sent
//! Events): replay what the client missed (`seq > after`) from the store, then forward the
//! hub's events, keeping `last_sent` so that every event goes out exactly once and in order
//! (gaps are filled from the store). The `Transport` only writes, keeps the connection alive
//! and says how it ends.
//!
//! Shaped like mini-redis's connection handler: `run` is a loop over `next_event`, and each
//! kind of event has a small method of its own.

use std::{collections::VecDeque, pin::Pin, sync::Arc, time::Instant};

use async_broadcast::{Receiver, RecvError};
use bytes::Bytes;
use tokio::time::Interval;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::batch::Batch;
use crate::{
    State,
    chat::{Event, FastSocket, Frame, Handover, Listener, close},
    store::Room,
    views::{messages::events_frame, status::away_notice},
};

/// A client may be this far behind (in room events) and still catch up; further behind, it is
/// told to reload (4409).
pub(super) const MAX_REPLAY: i64 = 500;
/// Room events per replay read (and frame).
const REPLAY_CHUNK: i64 = 100;
/// The close reason of a socket whose reader the room's owner removed (code 4404): the page
/// says "You were removed from this room" rather than "You left".
pub(super) const REMOVED: &str = "removed";

/// Why a feed ends: what (if anything) to tell the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Close with this code (`chat::close`, or 1011 "try again") and reason.
    Close(u16, &'static str),
    /// The client cannot apply what happened in place (a streamed document and an edit): end,
    /// so that it reloads into the room's current state.
    Reload,
    /// The client went away or broke the protocol: nothing to say.
    Gone,
}

/// What carries a feed to its client. The feed decides what goes out and when; the transport
/// writes it, keeps the connection alive, and says goodbye.
pub(super) trait Transport: Send {
    /// Whether the client applies an edit or a delete in place (htmx swaps it); otherwise the
    /// feed ends with `End::Reload` when one happens.
    const IN_PLACE: bool;
    /// Whether the client shows the member list and the person's activity elsewhere.
    const PRESENCE: bool;
    /// How often `keep_alive` runs.
    const KEEP_ALIVE: std::time::Duration;

    /// Sends one frame of fragments; `seq` is the newest room event it brings (0: none).
    fn send(&mut self, frame: Frame, seq: i64) -> impl Future<Output = Result<(), End>> + Send;

    /// Completes when the client said something (it is alive, and maybe typing) or went
    /// away.
    fn heard(&mut self) -> impl Future<Output = Result<Heard, End>> + Send;

    /// Runs every `KEEP_ALIVE`: a ping, a heartbeat, a check that the client still answers.
    fn keep_alive(&mut self) -> impl Future<Output = Result<(), End>> + Send;

    /// Ends the connection, telling the client why.
    fn close(self, end: End) -> impl Future<Output = ()> + Send;

    /// The connection's place with its room's writer (`chat::fanout`), if it can have one (a
    /// WebSocket on natter's own HTTP server): while caught up, the writer sends it the hub's
    /// events without waking the feed.
    fn fast(&self) -> Option<Arc<FastSocket>> {
        None
    }

    /// Writes bytes already in wire form: the rest of a frame the writer could not write
    /// whole.
    fn send_wire(&mut self, wire: Bytes) -> impl Future<Output = Result<(), End>> + Send {
        let _ = wire;
        async { Ok(()) }
    }

    /// Writes what the transport itself may hold (a pong), before the writer writes again.
    fn flush_control(&mut self) -> impl Future<Output = Result<(), End>> + Send {
        async { Ok(()) }
    }
}

/// What a client said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard {
    /// Something (a pong, a frame): it is alive.
    Alive,
    /// Its person is typing (`assets/js/typing.js`).
    Typing,
}

/// What happened next, as `next_event` saw it.
enum Next {
    /// The hub broadcast something, or the feed fell behind it.
    Hub(Result<Event, RecvError>),
    /// Activity in the person's other rooms (`chat::activity`): sent as it is.
    Activity(Utf8Bytes),
    /// The client said something: it is alive.
    Heard(Heard),
    /// Time to ping, and to check that the client still answers.
    KeepAlive,
    /// The room's writer handed the socket back (or a stale wake-up).
    TakenBack,
    /// The feed must end.
    End(End),
}

/// A live feed of one member in one room.
pub(super) struct Feed<T> {
    state: State,
    room: Room,
    out: T,
    /// The feed's place in the room's hub (its events and its kick). Its `events` are `None`
    /// while the room's writer sends them (`fast`).
    listener: Listener,
    /// The socket's place with its room's writer, if it has one (`Transport::fast`).
    fast: Option<Arc<FastSocket>>,
    /// The newest seq sent: older or repeated events are skipped, a newer one with a gap
    /// before it waits for the gap to be read from the store.
    last_sent: i64,
    keep_alive: Interval,
    /// Completes when the server starts shutting down. Registered once, not once per event:
    /// a busy room wakes the loop for every message.
    restarting: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Events to handle before the receiver's, oldest first: one taken from the hub while
    /// gathering a batch that did not fit in it, or those the room's writer took and handed
    /// back unsent. Never lost.
    held: VecDeque<Result<Event, RecvError>>,
}

impl<T: Transport> Feed<T> {
    pub(super) fn new(state: State, room: Room, out: T, listener: Listener) -> Self {
        let restarting = Box::pin(state.shutdown.clone().cancelled_owned());
        let first = tokio::time::Instant::now() + T::KEEP_ALIVE;
        let fast = out.fast();
        Feed {
            state,
            room,
            out,
            listener,
            fast,
            last_sent: 0,
            keep_alive: tokio::time::interval_at(first, T::KEEP_ALIVE),
            restarting,
            held: VecDeque::new(),
        }
    }

    /// Serves the feed until it ends, then says goodbye and leaves the hub.
    ///
    /// A feed spends its life inside one task, whose future is as large as its largest
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
        let Feed { out, listener, .. } = self;
        Box::pin(listener.close()).await;
        out.close(end).await;
    }

    /// Sends the member list (where it is shown) and the events after `after`.
    async fn start(&mut self, after: Option<i64>) -> Result<(), End> {
        if T::PRESENCE {
            self.out.send(self.listener.list_frame(), 0).await?;
        }
        // Everything up to what the hub had published is committed, and anything newer reaches
        // this feed through the hub (it subscribed first): no need to ask the store.
        let latest = self.listener.published.max(self.room.last_seq);
        let from = match after {
            None => latest,
            Some(a) if a <= latest => a,
            Some(a) => self.resume_point(a, latest).await?,
        };
        if latest - from > MAX_REPLAY {
            let notice = away_notice(&self.room.code);
            self.out.send(Frame::from(notice.into_string()), 0).await?;
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
                tracing::warn!(error = %e, "feed could not read the room's last seq");
                Err(End::Close(1011, "try again"))
            }
        }
    }

    /// Forwards the hub's events until the feed ends: the feed's own while it has catching
    /// up to do, the room's writer's while it is caught up.
    async fn forward(&mut self) -> End {
        loop {
            self.hand_to_writer();
            let next = self.next_event().await;
            // Anything the feed writes itself (or lets tungstenite write) while the writer
            // has the socket, it writes between two of the writer's frames.
            let own = self.listener.events.is_none()
                && matches!(next, Next::Activity(_) | Next::KeepAlive | Next::Heard(_));
            if own && let Err(end) = self.claim().await {
                return end;
            }
            let handled = match next {
                Next::Hub(Ok(Event::Message {
                    seq,
                    frame,
                    committed,
                    change,
                })) => self.on_message(seq, frame, committed, change).await,
                Next::Hub(Ok(Event::Members { frame } | Event::Typing { frame }))
                    if T::PRESENCE =>
                {
                    self.out.send(frame, 0).await
                }
                Next::Hub(Ok(Event::Members { .. } | Event::Typing { .. })) => Ok(()),
                Next::Hub(Err(RecvError::Overflowed(missed))) => self.on_overflow(missed).await,
                Next::Hub(Err(RecvError::Closed)) => Err(End::Close(close::RESTART, "closing")),
                Next::Activity(frame) if T::PRESENCE => self.out.send(Frame::from(frame), 0).await,
                Next::Heard(heard) => {
                    if heard == Heard::Typing {
                        self.listener.typing();
                    }
                    match own {
                        true => self.out.flush_control().await,
                        false => Ok(()),
                    }
                }
                Next::Activity(_) => Ok(()),
                Next::KeepAlive => self.out.keep_alive().await,
                Next::TakenBack => match self.fast.as_ref().and_then(|f| f.taken_back()) {
                    Some(handover) => self.take_back(handover).await,
                    None => Ok(()),
                },
                Next::End(end) => Err(end),
            };
            let handled = match handled {
                Ok(()) if own => self.release().await,
                other => other,
            };
            if let Err(end) = handled {
                return end;
            }
        }
    }

    /// Hands the socket to the room's writer if it is caught up: nothing held, nothing
    /// waiting in its receiver (else that is handled next).
    fn hand_to_writer(&mut self) {
        if let Some(fast) = &self.fast
            && self.held.is_empty()
            && self.listener.events.is_some()
        {
            self.held
                .extend(self.listener.hand_to_writer(fast, self.last_sent));
        }
    }

    /// Stops the writer from writing while the feed writes on its own, or takes back what it
    /// handed over meanwhile.
    async fn claim(&mut self) -> Result<(), End> {
        match self.fast.as_ref().and_then(|f| f.claim()) {
            Some(handover) => self.take_back(handover).await,
            None => Ok(()),
        }
    }

    /// The feed's own write is done: the writer goes on, or the feed takes back what it handed
    /// over meanwhile.
    async fn release(&mut self) -> Result<(), End> {
        if self.listener.events.is_some() {
            return Ok(());
        }
        match self.fast.as_ref().and_then(|f| f.release()) {
            Some(handover) => self.take_back(handover).await,
            None => Ok(()),
        }
    }

    /// The writer handed the socket back: the feed finishes the frame it left half written,
    /// then handles what the writer did not send, then its own receiver.
    async fn take_back(&mut self, handover: Handover) -> Result<(), End> {
        let Handover {
            events,
            last_sent,
            pending,
            held,
            overflowed,
        } = handover;
        self.listener.events = Some(events);
        self.last_sent = last_sent;
        self.held = held.into_iter().map(Ok).collect();
        if overflowed {
            // Events were dropped after those: resync from the store once they are handled.
            self.held.push_back(Err(RecvError::Overflowed(0)));
        }
        match pending {
            Some(wire) => self.out.send_wire(wire).await,
            None => Ok(()),
        }
    }

    /// Waits for what happens next. In this order, and the hub before the client: a wake-up
    /// for a message sends it without first polling the connection and the ping timer. While
    /// messages keep coming the client is read only once they pause; it has nothing to say
    /// but pongs and a close, and a write to a client gone fails on its own.
    async fn next_event(&mut self) -> Next {
        if let Some(event) = self.held.pop_front() {
            return Next::Hub(event);
        }
        tokio::select! {
            biased;
            _ = &mut self.restarting => Next::End(End::Close(close::RESTART, "server restarting")),
            code = &mut self.listener.kicked => Next::End(match code {
                Ok(close::SIGNED_OUT) => End::Close(close::SIGNED_OUT, "signed out"),
                Ok(close::LEFT) => End::Close(close::LEFT, "left the room"),
                Ok(close::REMOVED) => End::Close(close::LEFT, REMOVED),
                Ok(code) => End::Close(code, ""),
                Err(_) => End::Close(1011, ""),
            }),
            next = hub_or_writer(&mut self.listener.events, self.fast.as_deref()) => next,
            Some(frame) = self.listener.activity.recv() => Next::Activity(frame),
            heard = self.out.heard() => match heard {
                Ok(heard) => Next::Heard(heard),
                Err(end) => Next::End(end),
            },
            _ = self.keep_alive.tick() => Next::KeepAlive,
        }
    }

    /// A message from the hub: skipped if already sent, sent after its gap otherwise, together
    /// with the messages waiting right behind it.
    async fn on_message(
        &mut self,
        seq: i64,
        frame: Frame,
        at: Instant,
        change: bool,
    ) -> Result<(), End> {
        if seq <= self.last_sent {
            return Ok(());
        }
        if seq > self.last_sent + 1 {
            // A gap: the missing messages are committed (commit order is seq order), so read
            // them before sending this one.
            self.state.metrics.gap_filled();
            self.catch_up(seq - 1).await?;
        }
        if change && !T::IN_PLACE {
            return Err(End::Reload);
        }
        let mut batch = Batch::new(frame, seq, at);
        // Only from the receiver when nothing older is held (else it would jump the queue).
        if self.held.is_empty()
            && let Some(events) = self.listener.events.as_mut()
        {
            self.held.extend(batch.gather(events));
        }
        self.out.send(batch.frame(), batch.last_seq).await?;
        for committed in batch.committed() {
            self.state.metrics.delivered(committed.elapsed());
        }
        self.last_sent = batch.last_seq;
        Ok(())
    }

    /// The feed fell behind its hub and events were dropped: catch up from the store (or
    /// reload, if too far behind), and send a fresh member list (presence changes may have
    /// been dropped too).
    async fn on_overflow(&mut self, missed: u64) -> Result<(), End> {
        tracing::debug!(missed, "feed fell behind its hub; resyncing from the store");
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
        if T::PRESENCE {
            self.out.send(self.listener.list_frame(), 0).await?;
        }
        Ok(())
    }

    /// Sends the room's events `(last_sent, upto]` from the store in order, a chunk of seqs
    /// at a time: new messages appended, changed ones in place. Everything up to `upto` is
    /// committed (commit order is seq order); seqs a later change superseded are simply not
    /// there (`Store::events_between`).
    async fn catch_up(&mut self, upto: i64) -> Result<(), End> {
        while self.last_sent < upto {
            let to = upto.min(self.last_sent + REPLAY_CHUNK);
            // Boxed: the store's futures are large, and kept inline they would size every
            // idle feed's task.
            let read = self
                .state
                .store
                .events_between(self.room.id, self.last_sent, to);
            let events = Box::pin(read).await.map_err(|e| {
                tracing::warn!(error = %e, "feed could not read messages");
                End::Close(1011, "try again")
            })?;
            if !T::IN_PLACE && events.iter().any(|m| m.is_change()) {
                return Err(End::Reload);
            }
            if !events.is_empty() {
                let frame = events_frame(&self.room.code, &events);
                self.out.send(Frame::from(frame), to).await?;
            }
            self.last_sent = to;
        }
        Ok(())
    }
}

/// The next event from the feed's receiver, or, while the room's writer has the socket, its
/// wake-up when it hands the socket back.
async fn hub_or_writer(events: &mut Option<Receiver<Event>>, fast: Option<&FastSocket>) -> Next {
    match (events, fast) {
        (Some(events), _) => Next::Hub(events.recv().await),
        (None, Some(fast)) => {
            fast.wake.notified().await;
            Next::TakenBack
        }
        (None, None) => std::future::pending().await,
    }
}
