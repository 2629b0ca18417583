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
//! A writer that fell behind its channel (the core was busy) takes what waited together, up
//! to 32 events and 64 KiB, and writes them to each socket end to end in one write: the kernel
//! charges per write, not per byte, so a room catches up in one write per socket instead of
//! one per event. A socket handed back mid-batch gets the events of the batch it was not sent.
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
    /// Events the writer took but did not send (a gap before them, or the task was busy),
    /// oldest first: handled before `events`.
    pub held: Vec<Event>,
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

/// Events a writer sends together at most, and their wire bytes at most: a writer that fell
/// behind its channel (the core was busy) catches up in one write per socket instead of one per
/// event, which is what the kernel charges for.
const BATCH_EVENTS: usize = 32;
const BATCH_BYTES: usize = 64 * 1024;

/// Events the writer took from its channel together, and their frames' wire bytes end to end.
struct Batch {
    /// Each event with its number in the channel, oldest first. Messages' seqs are
    /// consecutive (a gap ends a batch: the next one starts at it).
    events: Vec<(u64, Event)>,
    /// The events' wire bytes, concatenated (one event's own bytes when alone).
    wire: Bytes,
    /// Where each event's bytes start in `wire`.
    starts: Vec<usize>,
    /// An event taken after these that starts the next batch (its seq does not follow), or
    /// none. The writer does not send it with this batch, but a socket handed back now gets
    /// it (its receiver starts after it).
    next: Option<Event>,
    /// The channel dropped events after these (the writer fell behind): every socket goes
    /// back to its task to resync, and one handed back now is told so.
    missed: Option<u64>,
}

impl Batch {
    /// `wires`: each event's wire bytes.
    fn new(
        events: Vec<(u64, Event)>,
        wires: Vec<Bytes>,
        next: Option<Event>,
        missed: Option<u64>,
    ) -> Self {
        let mut starts = Vec::with_capacity(wires.len());
        let wire = if let [one] = &wires[..] {
            starts.push(0);
            one.clone()
        } else {
            let mut all = bytes::BytesMut::with_capacity(wires.iter().map(Bytes::len).sum());
            for w in &wires {
                starts.push(all.len());
                all.extend_from_slice(w);
            }
            all.freeze()
        };
        Batch {
            events,
            wire,
            starts,
            next,
            missed,
        }
    }

    /// What a socket handed back now has not had: the events from `from` on, and the next.
    fn held(&self, from: usize) -> Vec<Event> {
        let taken = self.events[from..].iter().map(|(_, e)| e.clone());
        taken.chain(self.next.clone()).collect()
    }

    /// The bytes of events `i..j`.
    /// The bytes of events `i..` (what a socket is sent).
    fn tail(&self, i: usize) -> &[u8] {
        &self.wire[self.starts[i]..]
    }

    fn last_number(&self) -> u64 {
        self.events.last().map_or(0, |(n, _)| *n)
    }
}

fn frame_of(event: &Event) -> &super::Frame {
    match event {
        Event::Message { frame, .. } | Event::Members { frame } | Event::Typing { frame } => frame,
    }
}

fn seq_of(event: &Event) -> Option<i64> {
    match event {
        Event::Message { seq, .. } => Some(*seq),
        _ => None,
    }
}

/// Takes the events waiting behind `first` (up to the batch's limits) without waiting. A
/// message whose seq does not follow the batch's last one ends it and starts the next; so
/// does an overflow of the channel (events were dropped after these).
fn gather(rx: &mut Receiver<Event>, taken: &mut u64, first: Event) -> Batch {
    *taken += 1;
    let mut wires = vec![frame_of(&first).wire()];
    let mut bytes = wires[0].len();
    let mut last_seq = seq_of(&first);
    let mut events = vec![(*taken, first)];
    while events.len() < BATCH_EVENTS && bytes < BATCH_BYTES {
        let event = match rx.try_recv() {
            Ok(event) => event,
            Err(async_broadcast::TryRecvError::Overflowed(missed)) => {
                return Batch::new(events, wires, None, Some(missed));
            }
            Err(_) => break,
        };
        if let Some(seq) = seq_of(&event) {
            if last_seq.is_some_and(|last| seq != last + 1) {
                return Batch::new(events, wires, Some(event), None);
            }
            last_seq = Some(seq);
        }
        *taken += 1;
        let wire = frame_of(&event).wire();
        bytes += wire.len();
        wires.push(wire);
        events.push((*taken, event));
    }
    Batch::new(events, wires, None, None)
}

/// The writer of one hub: takes every event the hub broadcasts, in order, and writes it to
/// the sockets handed to it, each event that waited behind another in the same write.
/// Ends when the hub is gone (its channel closes).
pub(super) async fn write(
    mut rx: Receiver<Event>,
    sockets: Arc<Sockets>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut taken: u64 = 0;
    // An event taken that starts the next batch (its seq did not follow the last one's).
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(event) => event,
            None => match rx.recv().await {
                Ok(event) => event,
                Err(RecvError::Overflowed(missed)) => {
                    overflowed(&sockets, &rx, &mut taken, missed).await;
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
        };
        let mut batch = gather(&mut rx, &mut taken, first);
        let (mut writes, mut handbacks) = (0, 0);
        each(&sockets, |socket| match send(socket, &batch, &rx) {
            Sent::Whole(sent) => {
                writes += sent.len() as u64;
                if let Some(metrics) = &metrics {
                    for i in sent {
                        if let (_, Event::Message { committed, .. }) = &batch.events[i] {
                            metrics.delivered(committed.elapsed());
                        }
                    }
                }
            }
            Sent::HandedBack => handbacks += 1,
            Sent::Nothing => {}
        })
        .await;
        if let Some(metrics) = &metrics {
            metrics.fanned_out(writes, handbacks);
        }
        next = batch.next.take();
        if let Some(missed) = batch.missed {
            overflowed(&sockets, &rx, &mut taken, missed).await;
        }
    }
}

/// The writer fell behind its channel, which dropped `missed` events: every socket goes back
/// to its task, to resync from the store.
async fn overflowed(sockets: &Sockets, rx: &Receiver<Event>, taken: &mut u64, missed: u64) {
    *taken += missed;
    tracing::debug!(
        missed,
        "a room's writer fell behind its hub; handing its sockets back"
    );
    each(sockets, |socket| hand_back_overflowed(socket, rx)).await;
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
    /// Wrote these events of the batch (by index), whole.
    Whole(std::ops::Range<usize>),
    /// Handed the socket back to its task.
    HandedBack,
    /// Nothing: the task has the socket, or already sent the events.
    Nothing,
}

/// Sends one socket the events of `batch` it has not had, in one write, or hands the socket
/// back to its task with them.
fn send(socket: &FastSocket, batch: &Batch, rx: &Receiver<Event>) -> Sent {
    let mut state = socket.state.lock();
    if !matches!(state.owner, Owner::Writer | Owner::Claimed) {
        return Sent::Nothing;
    }
    // The events newer than the socket's last (it may have joined after the writer took some).
    let Some(from) = batch.events.iter().position(|(n, _)| *n > state.last_event) else {
        return Sent::Nothing;
    };
    state.last_event = batch.last_number();
    // Messages it was sent already (its task read them from the store) lead the batch's
    // messages; what follows them is sent. Presence and typing frames before them count too.
    let skip = batch.events[from..]
        .iter()
        .take_while(|(_, e)| seq_of(e).is_some_and(|seq| seq <= state.last_sent))
        .count();
    let from = from + skip;
    let later = &batch.events[from..];
    if later.is_empty() {
        return Sent::Nothing;
    }
    // A message sent already behind one not sent yet is rare (a socket joining mid-batch); a
    // gap before the first message is the task's to fill; a busy task writes on its own. In
    // each case the task gets the rest, and skips by seq what it sent.
    let sent_behind = later
        .iter()
        .any(|(_, e)| seq_of(e).is_some_and(|seq| seq <= state.last_sent));
    let first_seq = later.iter().find_map(|(_, e)| seq_of(e));
    let gap = first_seq.is_some_and(|seq| seq > state.last_sent + 1);
    if sent_behind || gap || state.owner == Owner::Claimed {
        let (held, overflowed) = (batch.held(from), batch.missed.is_some());
        hand_back(socket, &mut state, rx, None, held, overflowed);
        return Sent::HandedBack;
    }
    let wire = batch.tail(from);
    // On an error the task's write fails the same way and ends the socket.
    let written = socket.stream.try_write(wire).unwrap_or_default();
    if let Some(seq) = later.iter().rev().find_map(|(_, e)| seq_of(e)) {
        state.last_sent = seq;
    }
    if written == wire.len() {
        return Sent::Whole(from..batch.events.len());
    }
    let rest = Some(batch.wire.slice(batch.starts[from] + written..));
    let next = batch.next.iter().cloned().collect();
    hand_back(socket, &mut state, rx, rest, next, batch.missed.is_some());
    Sent::HandedBack
}

/// Hands a socket back to its task, with what it has not had (`held`; `pending`: the rest of a
/// write the connection did not take whole). `overflowed`: events were dropped after those.
fn hand_back(
    socket: &FastSocket,
    state: &mut Owned,
    rx: &Receiver<Event>,
    pending: Option<Bytes>,
    held: Vec<Event>,
    overflowed: bool,
) {
    state.owner = Owner::Task;
    state.handover = Some(Handover {
        events: rx.clone(),
        last_sent: state.last_sent,
        pending,
        held,
        overflowed,
    });
    socket.wake.notify_one();
}

fn hand_back_overflowed(socket: &FastSocket, rx: &Receiver<Event>) {
    let mut state = socket.state.lock();
    if matches!(state.owner, Owner::Writer | Owner::Claimed) {
        hand_back(socket, &mut state, rx, None, Vec::new(), true);
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
        assert!(matches!(handover.held[..], [Event::Message { seq: 1, .. }]));
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
        assert!(matches!(handover.held[..], [Event::Message { seq: 4, .. }]));
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
        assert!(!pending.is_empty() && handover.held.is_empty());
        assert_eq!(
            handover.last_sent, seq,
            "counted as sent: the task finishes it"
        );
        // Closing, the socket gives the rest up once (the writer wrote nothing since).
        assert!(socket.close().is_none());
    }

    /// A socket on the writer, on a current-thread runtime where the writer runs only when the
    /// test awaits: events broadcast meanwhile wait in its channel.
    async fn room_on_writer() -> (async_broadcast::Sender<Event>, Arc<FastSocket>, TcpStream) {
        let (tx, socket, client) = room().await;
        assert!(socket.to_writer(0, || 0, || None::<()>).is_none());
        (tx, socket, client)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_behind_its_channel_sends_what_waited_in_one_write_and_stops_at_a_gap() {
        let (tx, socket, mut client) = room_on_writer().await;
        // 1-3 wait together; 5 does not follow 3: it goes alone, and with a gap before it
        // the socket goes back to its task, holding 5.
        for seq in [1, 2, 3, 5] {
            tx.try_broadcast(message(seq)).unwrap();
        }
        let got = received(&mut client).await;
        assert_eq!(got, [wire(1), wire(2), wire(3)].concat());
        let handover = socket.taken_back().expect("handed back at the gap");
        assert!(matches!(handover.held[..], [Event::Message { seq: 5, .. }]));
        assert_eq!(handover.last_sent, 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_task_gets_back_every_event_of_the_batch_in_order() {
        let (tx, socket, mut client) = room_on_writer().await;
        assert!(socket.claim().is_none());
        for seq in [1, 2, 3] {
            tx.try_broadcast(message(seq)).unwrap();
        }
        // A gap after them: taken with the batch, not sent with it, held too.
        tx.try_broadcast(message(7)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), socket.wake.notified())
            .await
            .expect("woken");
        let handover = socket.release().expect("handed back");
        let seqs: Vec<_> = handover.held.iter().filter_map(seq_of).collect();
        assert_eq!(seqs, [1, 2, 3, 7]);
        let mut events = handover.events;
        assert!(events.try_recv().is_err(), "nothing twice");
        assert!(received(&mut client).await.is_empty());
    }

    #[test]
    fn a_batch_is_the_events_waiting_with_consecutive_seqs_their_bytes_end_to_end() {
        let (mut tx, mut rx) = async_broadcast::broadcast(64);
        tx.set_overflow(true);
        for seq in [1, 2, 3, 5, 6] {
            tx.try_broadcast(message(seq)).unwrap();
        }
        let mut taken = 0;
        let first = rx.try_recv().unwrap();
        let batch = gather(&mut rx, &mut taken, first);
        let seqs: Vec<_> = batch.events.iter().map(|(n, e)| (*n, seq_of(e))).collect();
        assert_eq!(seqs, [(1, Some(1)), (2, Some(2)), (3, Some(3))]);
        assert_eq!(batch.wire, [wire(1), wire(2), wire(3)].concat());
        assert_eq!(batch.tail(1), [wire(2), wire(3)].concat());
        assert!(matches!(batch.next, Some(Event::Message { seq: 5, .. })));
        // The next batch starts at 5, numbered after 3.
        let batch = gather(&mut rx, &mut taken, batch.next.unwrap());
        let seqs: Vec<_> = batch.events.iter().map(|(n, e)| (*n, seq_of(e))).collect();
        assert_eq!(seqs, [(4, Some(5)), (5, Some(6))]);
        assert!(batch.next.is_none() && batch.missed.is_none());
        // At most BATCH_EVENTS at once.
        for seq in 7..7 + 2 * BATCH_EVENTS as i64 {
            tx.try_broadcast(message(seq)).unwrap();
        }
        let first = rx.try_recv().unwrap();
        assert_eq!(
            gather(&mut rx, &mut taken, first).events.len(),
            BATCH_EVENTS
        );
    }
}
