//! A room's fan-out writer: one task per hub that writes each broadcast frame straight to the
//! WebSockets that are caught up and idle, without waking their tasks (DESIGN.md §6).
//!
//! Each socket has a task (`web::live::feed`) that reads the client, pings, replays, fills
//! gaps and batches. Waking every one of them for every message (and each re-registering its
//! listener on the hub's channel) was a third of the server's CPU in a big room. So a socket
//! with nothing to catch up hands itself to its hub's writer and drops its receiver
//! (`Listener::hand_to_writer`): the writer takes every event from its own receiver and, for each
//! such socket, makes one non-blocking write of the frame's shared wire bytes. A socket the
//! writer cannot serve at once (the kernel took only part of the frame or none of it, a gap, its
//! task busy writing a ping) is handed back: the writer keeps the unwritten bytes for the task,
//! gives it a clone of its own receiver (which has every later event and nothing earlier) and
//! wakes it. The task writes those bytes first (closing a socket that takes nothing for 10 s),
//! and runs as before until it is caught up again.
//!
//! Exactly once and in order: every event has a number (its place in the hub's channel,
//! `Hub::pushed`); a socket records the last one it was sent when it joins the writer, and the
//! writer skips what is not newer, so a writer that lags the channel never repeats what the
//! task sent before handing itself over. Messages keep their own check by `seq`.

use std::sync::Arc;

use async_broadcast::{Receiver, RecvError};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::{net::TcpStream, sync::Notify};

use super::Event;
use crate::metrics::Metrics;

/// Sockets written to between yields: a room of 10,000 must not hold a worker thread (and the
/// rooms waiting on it) for a whole frame's fan-out.
const CHUNK: usize = 256;

/// One WebSocket's place in its room's fan-out, shared by its task and the writer.
pub struct FastSocket {
    /// The connection, written to without an `.await` (`server::RawStream`).
    stream: Arc<TcpStream>,
    /// Who writes to the connection, and what was sent. A `parking_lot` mutex, held for one
    /// non-blocking write at most, never across an `.await`.
    state: Mutex<Owned>,
    /// Wakes the task when the writer handed the socket back to it.
    pub wake: Notify,
}

/// Who may write to a socket, and what it was sent.
struct Owned {
    owner: Owner,
    /// The newest message seq sent to the socket (meaningful while the writer owns it).
    last_sent: i64,
    /// The number of the newest event of the hub's channel the socket has had (or skipped).
    last_event: u64,
    /// What the writer left for the task, once it handed the socket back.
    handover: Option<Handover>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The writer sends every event.
    Writer,
    /// The task is writing something of its own (a ping, a pong, activity): the writer writes
    /// nothing, and hands the socket back at the next event.
    Claimed,
    /// The task has its own receiver again.
    Task,
    /// The socket is closing.
    Closed,
}

/// What the task takes back from the writer.
pub struct Handover {
    /// A receiver with every event after the last one the writer took for this socket.
    pub events: Receiver<Event>,
    /// The newest message seq sent (in part, possibly: see `pending`).
    pub last_sent: i64,
    /// The rest of a frame the connection did not take whole: written before anything else.
    pub pending: Option<Bytes>,
    /// An event the writer did not send (a gap before it, or the task was busy).
    pub held: Option<Event>,
    /// The writer fell behind the channel: events were dropped, resync from the store.
    pub overflowed: bool,
}

impl FastSocket {
    /// A socket owned by its task.
    pub fn new(stream: Arc<TcpStream>) -> Arc<Self> {
        Arc::new(FastSocket {
            stream,
            state: Mutex::new(Owned {
                owner: Owner::Task,
                last_sent: 0,
                last_event: 0,
                handover: None,
            }),
            wake: Notify::new(),
        })
    }

    /// Hands the socket to the writer, unless `pending` (a check of the task's receiver, made
    /// under this socket's lock) finds something for the task to do first. `last_event` is the
    /// channel's count of events taken before that check.
    pub(super) fn to_writer<R>(
        &self,
        last_sent: i64,
        last_event: impl FnOnce() -> u64,
        pending: impl FnOnce() -> Option<R>,
    ) -> Option<R> {
        let mut state = self.state.lock();
        debug_assert_eq!(state.owner, Owner::Task);
        let count = last_event();
        if let Some(work) = pending() {
            return Some(work);
        }
        state.owner = Owner::Writer;
        state.last_sent = last_sent;
        state.last_event = count;
        None
    }

    /// The task is about to write (or to let tungstenite write) on its own. Returns what the
    /// writer handed back meanwhile, if it did; otherwise the writer holds off until `release`.
    pub fn claim(&self) -> Option<Handover> {
        let mut state = self.state.lock();
        match state.owner {
            Owner::Writer => {
                state.owner = Owner::Claimed;
                None
            }
            _ => state.handover.take(),
        }
    }

    /// The task's own write is done: the socket goes back to the writer, unless the writer
    /// handed it over meanwhile (then the task takes it).
    pub fn release(&self) -> Option<Handover> {
        let mut state = self.state.lock();
        match state.owner {
            Owner::Claimed => {
                state.owner = Owner::Writer;
                None
            }
            _ => state.handover.take(),
        }
    }

    /// What the writer handed back, if it did (the task was woken; wake-ups may be stale).
    pub fn taken_back(&self) -> Option<Handover> {
        self.state.lock().handover.take()
    }

    /// The socket is closing: the writer stops writing. Returns the rest of a frame the
    /// connection did not take whole (written before the close frame).
    pub fn close(&self) -> Option<Bytes> {
        let mut state = self.state.lock();
        state.owner = Owner::Closed;
        state.handover.take().and_then(|h| h.pending)
    }
}

/// The sockets a writer serves, in slots that keep their place (a socket removed while the
/// writer yields does not move another past it).
#[derive(Default)]
pub(super) struct Sockets {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    sockets: Vec<Option<Arc<FastSocket>>>,
    free: Vec<usize>,
}

impl Sockets {
    /// Adds a socket; returns its slot, for `remove`.
    pub(super) fn add(&self, socket: Arc<FastSocket>) -> usize {
        let mut slots = self.slots.lock();
        match slots.free.pop() {
            Some(slot) => {
                slots.sockets[slot] = Some(socket);
                slot
            }
            None => {
                slots.sockets.push(Some(socket));
                slots.sockets.len() - 1
            }
        }
    }

    pub(super) fn remove(&self, slot: usize) {
        let mut slots = self.slots.lock();
        if let Some(place) = slots.sockets.get_mut(slot) {
            *place = None;
            slots.free.push(slot);
        }
    }
}

/// The writer of one hub: takes every event the hub broadcasts, in order, and writes it to
/// the sockets handed to it. Ends when the hub is gone (its channel closes).
pub(super) async fn write(
    mut rx: Receiver<Event>,
    sockets: Arc<Sockets>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut taken: u64 = 0;
    loop {
        let event = match rx.recv().await {
            Ok(event) => event,
            Err(RecvError::Overflowed(missed)) => {
                taken += missed;
                tracing::debug!(
                    missed,
                    "a room's writer fell behind its hub; handing its sockets back"
                );
                each(&sockets, |socket| hand_back_overflowed(socket, &rx)).await;
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        taken += 1;
        let (seq, frame, committed) = match &event {
            Event::Message {
                seq,
                frame,
                committed,
                ..
            } => (Some(*seq), frame, Some(*committed)),
            Event::Members { frame } | Event::Typing { frame } => (None, frame, None),
        };
        let wire = frame.wire();
        let (mut writes, mut handbacks) = (0, 0);
        each(&sockets, |socket| {
            match send(socket, taken, seq, &wire, &event, &rx) {
                Sent::Whole => {
                    writes += 1;
                    if let (Some(metrics), Some(at)) = (&metrics, committed) {
                        metrics.delivered(at.elapsed());
                    }
                }
                Sent::HandedBack => handbacks += 1,
                Sent::Nothing => {}
            }
        })
        .await;
        if let Some(metrics) = &metrics {
            metrics.fanned_out(writes, handbacks);
        }
    }
}

/// Runs `f` on every socket, a chunk at a time, yielding between chunks.
async fn each(sockets: &Sockets, mut f: impl FnMut(&FastSocket)) {
    let mut from = 0;
    loop {
        {
            let slots = sockets.slots.lock();
            let to = (from + CHUNK).min(slots.sockets.len());
            for socket in slots.sockets[from..to].iter().flatten() {
                f(socket);
            }
            if to == slots.sockets.len() {
                return;
            }
            from = to;
        }
        tokio::task::yield_now().await;
    }
}

/// What the writer did for one socket.
enum Sent {
    /// Wrote the frame whole.
    Whole,
    /// Handed the socket back to its task.
    HandedBack,
    /// Nothing: the task has the socket, or already sent the event.
    Nothing,
}

/// Sends event number `n` (`seq`, if a message) to one socket, or hands the socket back to
/// its task.
fn send(
    socket: &FastSocket,
    n: u64,
    seq: Option<i64>,
    wire: &Bytes,
    event: &Event,
    rx: &Receiver<Event>,
) -> Sent {
    let mut state = socket.state.lock();
    if !matches!(state.owner, Owner::Writer | Owner::Claimed) || n <= state.last_event {
        return Sent::Nothing;
    }
    state.last_event = n;
    if seq.is_some_and(|seq| seq <= state.last_sent) {
        return Sent::Nothing;
    }
    let gap = seq.is_some_and(|seq| seq > state.last_sent + 1);
    if state.owner == Owner::Claimed || gap {
        hand_back(socket, &mut state, rx, None, Some(event.clone()));
        return Sent::HandedBack;
    }
    // On an error the task's write fails the same way and ends the socket.
    let written = socket.stream.try_write(wire).unwrap_or_default();
    if let Some(seq) = seq {
        state.last_sent = seq;
    }
    if written == wire.len() {
        return Sent::Whole;
    }
    hand_back(socket, &mut state, rx, Some(wire.slice(written..)), None);
    Sent::HandedBack
}

fn hand_back(
    socket: &FastSocket,
    state: &mut Owned,
    rx: &Receiver<Event>,
    pending: Option<Bytes>,
    held: Option<Event>,
) {
    state.owner = Owner::Task;
    state.handover = Some(Handover {
        events: rx.clone(),
        last_sent: state.last_sent,
        pending,
        held,
        overflowed: false,
    });
    socket.wake.notify_one();
}

fn hand_back_overflowed(socket: &FastSocket, rx: &Receiver<Event>) {
    let mut state = socket.state.lock();
    if matches!(state.owner, Owner::Writer | Owner::Claimed) {
        hand_back(socket, &mut state, rx, None, None);
        if let Some(handover) = &mut state.handover {
            handover.overflowed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::{
        io::AsyncReadExt,
        net::{TcpListener, TcpStream},
    };
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;
    use crate::chat::Frame;

    fn message(seq: i64) -> Event {
        Event::Message {
            seq,
            frame: Frame::shared(Utf8Bytes::from(format!("<m{seq}>"))),
            committed: Instant::now(),
            change: false,
        }
    }

    /// A room's channel with its writer running, and one socket (its client end) added to it.
    async fn room() -> (async_broadcast::Sender<Event>, Arc<FastSocket>, TcpStream) {
        let (mut tx, rx) = async_broadcast::broadcast(16);
        tx.set_overflow(true);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let socket = FastSocket::new(Arc::new(server));
        let sockets = Arc::new(Sockets::default());
        sockets.add(socket.clone());
        tokio::spawn(write(rx, sockets, None));
        (tx, socket, client)
    }

    /// What the client received within a moment.
    async fn received(client: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0; 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    fn wire(seq: i64) -> Vec<u8> {
        Frame::shared(Utf8Bytes::from(format!("<m{seq}>")))
            .wire()
            .to_vec()
    }

    #[tokio::test]
    async fn the_writer_skips_what_the_task_sent_before_handing_the_socket_over() {
        let (tx, socket, mut client) = room().await;
        let mut events = tx.new_receiver();
        tx.try_broadcast(message(1)).unwrap();
        // The task takes (and would send) message 1, then finds nothing more waiting.
        assert!(events.try_recv().is_ok());
        let waiting = socket.to_writer(1, || 1, || events.try_recv().ok());
        assert!(waiting.is_none());
        tx.try_broadcast(message(2)).unwrap();
        tx.try_broadcast(message(3)).unwrap();
        assert_eq!(received(&mut client).await, [wire(2), wire(3)].concat());
    }

    #[tokio::test]
    async fn a_busy_task_or_a_gap_gets_the_socket_back_with_the_event_unsent() {
        let (tx, socket, mut client) = room().await;
        assert!(socket.to_writer(0, || 0, || None::<()>).is_none());
        // The task writes a ping: the writer holds off and hands the next event back.
        assert!(socket.claim().is_none());
        tx.try_broadcast(message(1)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), socket.wake.notified())
            .await
            .expect("woken");
        let handover = socket.release().expect("handed back");
        assert!(matches!(handover.held, Some(Event::Message { seq: 1, .. })));
        assert!(handover.pending.is_none() && !handover.overflowed);
        // Its receiver has every later event, and nothing earlier.
        let mut events = handover.events;
        assert!(events.try_recv().is_err());
        tx.try_broadcast(message(2)).unwrap();
        assert!(matches!(
            events.try_recv(),
            Ok(Event::Message { seq: 2, .. })
        ));
        assert!(
            received(&mut client).await.is_empty(),
            "the writer wrote nothing"
        );

        // Back on the writer at seq 2: seq 4 comes with a gap before it.
        assert!(socket.to_writer(2, || 2, || None::<()>).is_none());
        drop(events);
        tx.try_broadcast(message(4)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), socket.wake.notified())
            .await
            .expect("woken");
        let handover = socket.taken_back().expect("handed back");
        assert!(matches!(handover.held, Some(Event::Message { seq: 4, .. })));
        assert_eq!(handover.last_sent, 2);
        assert!(received(&mut client).await.is_empty());
    }

    #[tokio::test]
    async fn a_connection_that_takes_nothing_leaves_the_frame_to_the_task() {
        let (tx, socket, _client) = room().await;
        assert!(socket.to_writer(0, || 0, || None::<()>).is_none());
        // Frames of 64 KB until the connection's buffers are full (the client never reads).
        let big = "x".repeat(64 * 1024);
        let mut seq = 0;
        let handover = loop {
            seq += 1;
            let frame = Frame::shared(Utf8Bytes::from(big.clone()));
            let event = Event::Message {
                seq,
                frame,
                committed: Instant::now(),
                change: false,
            };
            tx.try_broadcast(event).unwrap();
            if let Ok(()) =
                tokio::time::timeout(Duration::from_millis(100), socket.wake.notified()).await
            {
                break socket.taken_back().expect("handed back");
            }
            assert!(seq < 1000, "never handed back");
        };
        let pending = handover.pending.expect("the rest of the frame");
        assert!(!pending.is_empty() && handover.held.is_none());
        assert_eq!(
            handover.last_sent, seq,
            "counted as sent: the task finishes it"
        );
        // Closing, the socket gives the rest up once (the writer wrote nothing since).
        assert!(socket.close().is_none());
    }
}
