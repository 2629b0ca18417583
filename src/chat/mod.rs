//! Live delivery: one hub per active room, presence, and closing sockets on sign-out or leave.
//!
//! Messages reach hubs after they are committed: the post writer hands every committed batch, in
//! commit (= seq) order, to the publisher task here, which renders each message **once** into
//! shared bytes and broadcasts them to the room's sockets. Each socket keeps the last seq it
//! sent and fills gaps from the store, so a socket never loses, repeats or reorders a message
//! whatever happens to the queue (DESIGN.md §6).

pub mod socket;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use async_broadcast::{InactiveReceiver, Receiver, Sender};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    store::{Committed, Member, Message},
    web::room,
};

/// What a hub broadcasts: pre-rendered frames, shared (reference-counted) by every socket.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message frame; `seq` orders and deduplicates; `committed` dates it for the latency
    /// histogram.
    Message {
        seq: i64,
        frame: Utf8Bytes,
        committed: Instant,
    },
    /// A member-list change (presence, a join, a leave).
    Members { frame: Utf8Bytes },
}

/// The broadcast point of one active room on this instance.
pub struct Hub {
    room_id: i64,
    tx: Sender<Event>,
    /// Keeps the channel open while no socket is subscribed for a moment.
    _keep_open: InactiveReceiver<Event>,
    /// A std mutex: held for bookkeeping only, never across an `.await`.
    state: Mutex<HubState>,
}

struct HubState {
    /// Who is online: the user's open sockets (connection ids) on this instance.
    online: HashMap<i64, HashSet<u64>>,
    member_count: usize,
    /// The last message published: the next one groups under it when it follows directly.
    last: Option<Message>,
}

impl Hub {
    fn new(room_id: i64, member_count: usize, capacity: usize) -> Self {
        let (mut tx, rx) = async_broadcast::broadcast(capacity);
        // Never wait for slow receivers: drop their oldest event and let them resync.
        tx.set_overflow(true);
        tx.set_await_active(false);
        Self {
            room_id,
            tx,
            _keep_open: rx.deactivate(),
            state: Mutex::new(HubState {
                online: HashMap::new(),
                member_count,
                last: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn broadcast(&self, event: Event) {
        // Overflow mode never reports Full; Inactive means nobody listens, which is fine.
        let _ = self.tx.try_broadcast(event);
    }

    fn subscribe(&self) -> Receiver<Event> {
        self.tx.new_receiver()
    }

    /// Renders and broadcasts committed messages of this room, in order.
    fn publish(&self, messages: &[Message], committed: Instant) {
        let mut previous = self.state().last.clone();
        for m in messages {
            let prev = previous.as_ref().filter(|p| p.seq + 1 == m.seq);
            let frame =
                Utf8Bytes::from(room::messages_append(prev, std::slice::from_ref(m)).into_string());
            self.broadcast(Event::Message {
                seq: m.seq,
                frame,
                committed,
            });
            previous = Some(m.clone());
        }
        self.state().last = previous;
    }

    /// Who is online here now.
    pub fn online(&self) -> HashSet<i64> {
        self.state().online.keys().copied().collect()
    }

    fn presence_frame(member: &Member, online: bool, state: &HubState) -> Utf8Bytes {
        let markup = maud::html! {
            (room::member_item(member, online))
            (room::member_summary(state.online.len(), state.member_count))
        };
        Utf8Bytes::from(markup.into_string())
    }

    /// A socket of `member` opened: announce them online if it is their first.
    fn came_online(&self, member: &Member, conn: u64) {
        let mut state = self.state();
        let sockets = state.online.entry(member.user_id).or_default();
        sockets.insert(conn);
        if sockets.len() == 1 {
            let frame = Self::presence_frame(member, true, &state);
            drop(state);
            self.broadcast(Event::Members { frame });
        }
    }

    /// A socket closed: announce them offline if it was their last (and they are still a member).
    fn went_offline(&self, member: &Member, conn: u64) {
        let mut state = self.state();
        let Some(sockets) = state.online.get_mut(&member.user_id) else {
            return;
        };
        if !sockets.remove(&conn) || !sockets.is_empty() {
            return;
        }
        state.online.remove(&member.user_id);
        let frame = Self::presence_frame(member, false, &state);
        drop(state);
        self.broadcast(Event::Members { frame });
    }

    /// The member list and counts as this instance knows them, for a (re)connecting socket.
    fn snapshot(&self) -> (HashSet<i64>, usize) {
        let state = self.state();
        (state.online.keys().copied().collect(), state.member_count)
    }
}

/// One open socket, as far as kicking it goes.
struct Conn {
    user_id: i64,
    room_id: i64,
    session: Vec<u8>,
    kick: oneshot::Sender<u16>,
}

/// The live side of natter. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Arc<Metrics>,
    hub_capacity: usize,
    hubs: Mutex<HashMap<i64, Weak<Hub>>>,
    conns: Mutex<HashMap<u64, Conn>>,
    next_conn: AtomicU64,
}

/// Close codes natter's sockets use (DESIGN.md §6).
pub mod close {
    /// The session ended (signed out): go to the sign-in page.
    pub const SIGNED_OUT: u16 = 4401;
    /// No longer a member of the room.
    pub const LEFT: u16 = 4404;
    /// Too far behind to catch up over the socket: reload the page.
    pub const TOO_FAR_BEHIND: u16 = 4409;
    /// The server is restarting: reconnect (to another instance) and resume.
    pub const RESTART: u16 = 1012;
}

impl Chat {
    /// Starts the publisher, which delivers every batch the post writer commits.
    pub fn new(
        commits: mpsc::Receiver<Committed>,
        hub_capacity: usize,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let chat = Chat {
            inner: Arc::new(Inner {
                metrics,
                hub_capacity,
                hubs: Mutex::new(HashMap::new()),
                conns: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
            }),
        };
        tokio::spawn(chat.clone().publisher(commits, shutdown));
        chat
    }

    async fn publisher(self, mut commits: mpsc::Receiver<Committed>, shutdown: CancellationToken) {
        loop {
            let batch = tokio::select! {
                batch = commits.recv() => batch,
                _ = shutdown.cancelled() => None,
            };
            let Some(batch) = batch else { return };
            let posted = batch.messages.len() as u64;
            self.inner
                .metrics
                .messages_posted
                .fetch_add(posted, Ordering::Relaxed);
            self.publish(&batch.messages, batch.at);
        }
    }

    /// Delivers committed messages (in seq order per room) to the rooms' hubs on this instance.
    pub fn publish(&self, batch: &[Message], committed: Instant) {
        let mut start = 0;
        while start < batch.len() {
            let room_id = batch[start].room_id;
            let end = batch[start..]
                .iter()
                .position(|m| m.room_id != room_id)
                .map_or(batch.len(), |n| start + n);
            if let Some(hub) = self.hub(room_id) {
                hub.publish(&batch[start..end], committed);
            }
            start = end;
        }
    }

    fn hub(&self, room_id: i64) -> Option<Arc<Hub>> {
        let hubs = self.inner.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.get(&room_id).and_then(Weak::upgrade)
    }

    /// The room's hub (created if this is its first socket) and a receiver on it. Subscribing
    /// comes before reading the store, so nothing committed in between is missed.
    fn subscribe(&self, room_id: i64, member_count: usize) -> (Arc<Hub>, Receiver<Event>) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|e| e.into_inner());
        let hub = match hubs.get(&room_id).and_then(Weak::upgrade) {
            Some(hub) => hub,
            None => {
                let hub = Arc::new(Hub::new(room_id, member_count, self.inner.hub_capacity));
                hubs.insert(room_id, Arc::downgrade(&hub));
                hub
            }
        };
        let rx = hub.subscribe();
        (hub, rx)
    }

    /// Drops the room's hub entry once its last socket is gone.
    fn release(&self, hub: Arc<Hub>) {
        let room_id = hub.room_id;
        drop(hub);
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|e| e.into_inner());
        if hubs.get(&room_id).is_some_and(|w| w.strong_count() == 0) {
            hubs.remove(&room_id);
        }
    }

    /// Who is online in the room (on this instance).
    pub fn online(&self, room_id: i64) -> HashSet<i64> {
        self.hub(room_id).map(|h| h.online()).unwrap_or_default()
    }

    /// Records an open socket so sign-out and leaving can close it.
    fn register(
        &self,
        user_id: i64,
        room_id: i64,
        session: Vec<u8>,
    ) -> (u64, oneshot::Receiver<u16>) {
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (kick, kicked) = oneshot::channel();
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.insert(
            id,
            Conn {
                user_id,
                room_id,
                session,
                kick,
            },
        );
        (id, kicked)
    }

    fn unregister(&self, id: u64) {
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(&id);
    }

    /// Closes every socket matching `which` with `code`.
    fn kick(&self, code: u16, which: impl Fn(&Conn) -> bool) -> usize {
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<u64> = conns
            .iter()
            .filter(|(_, c)| which(c))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(conn) = conns.remove(id) {
                let _ = conn.kick.send(code);
            }
        }
        ids.len()
    }

    /// Sessions were deleted (sign-out): their sockets close with 4401.
    pub async fn end_sessions(&self, sessions: &[Vec<u8>]) {
        let closed = self.kick(close::SIGNED_OUT, |c| sessions.contains(&c.session));
        if closed > 0 {
            tracing::debug!(closed, "closed sockets of ended sessions");
        }
    }

    /// Someone joined: their entry is appended to every open member list.
    pub async fn member_joined(&self, room_id: i64, member: &Member) {
        let Some(hub) = self.hub(room_id) else { return };
        let frame = {
            let mut state = hub.state();
            state.member_count += 1;
            let online = state.online.contains_key(&member.user_id);
            let markup = maud::html! {
                ul #members hx-swap-oob="beforeend" { (room::member_item(member, online)) }
                (room::member_summary(state.online.len(), state.member_count))
            };
            Utf8Bytes::from(markup.into_string())
        };
        hub.broadcast(Event::Members { frame });
    }

    /// Someone left: their sockets to the room close with 4404 and their entry disappears from
    /// every open member list.
    pub async fn member_left(&self, room_id: i64, user_id: i64) {
        self.kick(close::LEFT, |c| {
            c.user_id == user_id && c.room_id == room_id
        });
        let Some(hub) = self.hub(room_id) else { return };
        let frame = {
            let mut state = hub.state();
            state.member_count = state.member_count.saturating_sub(1);
            state.online.remove(&user_id);
            let markup = maud::html! {
                li id={ "member-" (user_id) } hx-swap-oob="delete" {}
                (room::member_summary(state.online.len(), state.member_count))
            };
            Utf8Bytes::from(markup.into_string())
        };
        hub.broadcast(Event::Members { frame });
    }
}
