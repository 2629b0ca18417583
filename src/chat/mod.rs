//! Live delivery: one hub per active room, presence, and closing sockets on sign-out or leave.
//!
//! Messages reach hubs after they are committed. One publisher task per instance
//! (`publisher.rs`) takes, in order: the batches this instance's post writer commits, and (with
//! PostgreSQL) hints from other instances that a room has newer messages (`bus.rs`). It renders
//! each message **once** into shared bytes and broadcasts them to the room's sockets
//! (`hub.rs`), reading any gap from the store first. Each socket in turn keeps the last seq it
//! sent and fills its own gaps from the store, so a socket never loses, repeats or reorders a
//! message whatever happens to queues, notifications or instances (DESIGN.md §6, §7). Who is
//! online is `presence.rs`; closing sockets from elsewhere (sign-out, leave) is `kicks.rs`;
//! the activity of a person's other rooms, for a page's unread counts, is `activity.rs`.
//!
//! This file keeps the registry: which rooms have a hub here, and a socket's way in and out
//! (`listen`, `Listener::close`). The socket itself (the WebSocket protocol) is `web::live`.

mod activity;
mod bus;
mod fanout;
mod frame;
mod hub;
mod kicks;
mod nats;
mod notify;
mod presence;
mod publisher;

use std::{
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_broadcast::{Receiver, RecvError, TryRecvError};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

pub use fanout::{FastSocket, Handover};
pub use frame::{Frame, MAX_FRAGMENT};
use hub::Hub;
pub use publisher::Job;

use crate::{
    domain::RoomCode,
    metrics::Metrics,
    store::{Committed, Member, Room, Store, StoreError, now_ms},
};

/// What a hub broadcasts: pre-rendered frames, shared (reference-counted) by every socket.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message frame; `seq` orders and deduplicates; `committed` dates it for the latency
    /// histogram.
    Message {
        /// The message's number in its room.
        seq: i64,
        /// The rendered frame, shared by every socket.
        frame: Frame,
        /// When the message was committed (or, for one read back from the store, created).
        committed: Instant,
        /// An edit or delete of an earlier message (replaced in place), not a new message.
        change: bool,
    },
    /// A member-list change (presence, a join, a leave).
    Members {
        /// The rendered frame, shared by every socket.
        frame: Frame,
    },
    /// Who is typing changed (`hub::Hub::typing`): the line under the conversation.
    Typing {
        /// The rendered frame, shared by every socket.
        frame: Frame,
    },
}

/// Close codes natter's sockets use (DESIGN.md §6).
pub mod close {
    /// The session ended (signed out): go to the sign-in page.
    pub const SIGNED_OUT: u16 = 4401;
    /// No longer a member of the room.
    pub const LEFT: u16 = 4404;
    /// Removed from the room by its owner. Not a code of its own on the wire: the socket
    /// closes with `LEFT` (4404) and the reason `removed`, so the page can say which; this
    /// value only tells the socket's task why it is kicked.
    pub const REMOVED: u16 = 4405;
    /// Too far behind to catch up over the socket: reload the page.
    pub const TOO_FAR_BEHIND: u16 = 4409;
    /// The server is restarting: reconnect (to another instance) and resume.
    pub const RESTART: u16 = 1012;
}

/// How long start-up waits for the first LISTEN before serving without it.
const FIRST_LISTEN_WAIT: Duration = Duration::from_secs(5);

/// The active rooms' hubs, by room id and by code.
#[derive(Default)]
struct Hubs {
    by_id: HashMap<i64, Weak<Hub>>,
    by_code: HashMap<RoomCode, i64>,
    /// Rooms whose hub is being created, and the gate the creating socket holds meanwhile.
    creating: HashMap<i64, Arc<tokio::sync::Mutex<()>>>,
}

impl Hubs {
    fn get(&self, room_id: i64) -> Option<Arc<Hub>> {
        self.by_id.get(&room_id).and_then(Weak::upgrade)
    }
}

/// The live side of natter. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: Arc<Metrics>,
    hub_capacity: usize,
    /// A plain mutex: held for map lookups only, never across an `.await`.
    hubs: Mutex<Hubs>,
    /// This instance's open sockets, for closing them from elsewhere (`kicks.rs`).
    conns: Mutex<HashMap<u64, kicks::Conn>>,
    /// Sessions ended lately, for sockets that passed their session check just before the
    /// end and registered just after its kick (see `Chat::listen`).
    ended: Mutex<HashMap<Vec<u8>, Instant>>,
    next_conn: AtomicU64,
    /// With PostgreSQL: how this instance talks to the others (NOTIFY or NATS).
    bus: Option<bus::Bus>,
    /// Presence changes this instance decides itself (its own sockets) go through the publisher
    /// like everyone else's, so a hub's presence is only ever changed from one task.
    jobs: mpsc::Sender<Job>,
    /// Which browsers here follow which rooms' activity (`activity.rs`).
    activity: activity::Activity,
    /// Told of every batch this instance commits, after the commit (Web Push's queue): set
    /// once at start.
    after_commit: std::sync::OnceLock<AfterCommit>,
    /// The newest page of each room, rendered (`AppState::pages` is this one): held here so
    /// that news from other instances that a person's name changed drops their pages too.
    pages: Arc<crate::views::NewestPages>,
}

/// What `Chat::after_commit` takes: called on the publisher task, so it must not wait.
pub type AfterCommit = Box<dyn Fn(&[crate::store::Message]) + Send + Sync>;

impl Chat {
    /// Starts the publisher and its poll (and, with PostgreSQL, the bus (`bus_servers`: NATS,
    /// else NOTIFY) and heartbeat), which run until `stop` is cancelled: after the server has
    /// finished its last request, not when draining begins (posts taken while draining must
    /// still be published and notified). Fails only on a NATS address the client refuses.
    pub async fn start(
        store: Store,
        commits: mpsc::Receiver<Committed>,
        hub_capacity: usize,
        bus_servers: Option<&[url::Url]>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Self, String> {
        let (jobs, job_rx) = mpsc::channel(4096);
        let (listening, first_listen) = oneshot::channel();
        let bus = match store.postgres_pool() {
            Some(_) => Some(
                bus::Bus::start(
                    bus_servers,
                    &store,
                    jobs.clone(),
                    metrics.clone(),
                    listening,
                    stop.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let chat = Chat {
            inner: Arc::new(Inner {
                store: store.clone(),
                metrics,
                hub_capacity,
                hubs: Mutex::new(Hubs::default()),
                conns: Mutex::new(HashMap::new()),
                ended: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                bus: bus.clone(),
                jobs: jobs.clone(),
                activity: activity::Activity::new(bus.clone()),
                after_commit: Default::default(),
                pages: Default::default(),
            }),
        };
        if let Some(bus) = &bus {
            if let Err(e) = store.heartbeat(bus.instance(), now_ms()).await {
                tracing::warn!(error = %e, "could not register this instance");
            }
            tracing::info!(instance = %bus.instance(), bus = bus.describe(), "sharing live updates with other instances");
            // Serve once we hear the others, so nothing they say meanwhile waits for the poll.
            // A listener that cannot connect yet does not keep the instance down: its first
            // LISTEN resyncs everything, whenever it comes.
            if tokio::time::timeout(FIRST_LISTEN_WAIT, first_listen)
                .await
                .is_err()
            {
                tracing::warn!(
                    "not listening to other instances yet; serving anyway, the listener keeps trying"
                );
            }
            tokio::spawn(chat.clone().heartbeat(stop.clone()));
        }
        tokio::spawn(chat.clone().activity_flusher(stop.clone()));
        tokio::spawn(chat.clone().publisher(commits, job_rx, stop));
        Ok(chat)
    }

    /// What is wrong with the bus between instances, if anything (for `/readyz`).
    pub fn bus_trouble(&self) -> Option<&'static str> {
        self.inner.bus.as_ref().and_then(bus::Bus::trouble)
    }

    /// Has `hook` told of every batch of messages this instance commits, after its commit and
    /// its broadcast (only the first hook set is kept).
    pub fn after_commit(&self, hook: AfterCommit) {
        let _ = self.inner.after_commit.set(hook);
    }

    /// The newest page of each room read lately, rendered: one cache per instance.
    pub fn pages(&self) -> Arc<crate::views::NewestPages> {
        self.inner.pages.clone()
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn hub(&self, room_id: i64) -> Option<Arc<Hub>> {
        self.inner.hubs.lock().get(room_id)
    }

    /// Every active hub here.
    fn active_hubs(&self) -> Vec<Arc<Hub>> {
        let hubs = self.inner.hubs.lock();
        hubs.by_id.values().filter_map(Weak::upgrade).collect()
    }

    /// The room with this code if it is active here and `user_id` is one of its members: a
    /// (re)connecting socket then needs no database read. The hub's member list is as current
    /// as a database read: joins and leaves update it right after they commit (on other
    /// instances, within the bus's latency), and it is reconciled with the store when the hub
    /// is created. A leave that races the check closes the socket when it arrives, as it would
    /// after a database check.
    pub fn active_member_room(&self, code: RoomCode, user_id: i64) -> Option<Room> {
        let hub = {
            let hubs = self.inner.hubs.lock();
            hubs.get(*hubs.by_code.get(&code)?)?
        };
        // A rotated code is no longer the room's: the store says what it is now.
        hub.room_for(user_id)
            .filter(|room| room.code == code.canonical())
    }

    /// The room's hub, created (with its members read from the store) if this is its first
    /// socket here.
    async fn hub_for(&self, room: &Room) -> Result<Arc<Hub>, StoreError> {
        if let Some(hub) = self.hub(room.id) {
            return Ok(hub);
        }
        // One socket creates the hub; the others arriving with it (a room opening, a reconnect
        // storm after a restart) wait for it instead of each reading the member list.
        let gate = self
            .inner
            .hubs
            .lock()
            .creating
            .entry(room.id)
            .or_default()
            .clone();
        let _creating = gate.lock().await;
        if let Some(hub) = self.hub(room.id) {
            return Ok(hub);
        }
        let members = match self.store().members(room.id).await {
            Ok(members) => members,
            Err(e) => {
                self.inner.hubs.lock().creating.remove(&room.id);
                return Err(e);
            }
        };
        // The newest message, so the first one posted next is grouped under it (a name line
        // and a day divider only where they belong; pages without script cannot fix them).
        // Without it the hub still works, as it did before.
        let last = match self.store().messages_before(room.id, None, 1).await {
            Ok(page) => page.messages.into_iter().last(),
            Err(_) => None,
        };
        // Hear of the room from other instances before reading anything more of it: what
        // they say from now on reaches the hub, what they said before is in the store.
        let (watching, subscribed) = match &self.inner.bus {
            Some(bus) => {
                let (watching, subscribed) = bus.watch(room.id);
                (Some(watching), subscribed)
            }
            None => (None, None),
        };
        if let Some(subscribed) = subscribed {
            // NATS away: the poll brings the room's news meanwhile.
            let _ = tokio::time::timeout(Duration::from_secs(1), subscribed).await;
        }
        let hub = Arc::new(Hub::new(
            room,
            members,
            last,
            self.inner.hub_capacity,
            watching,
            Some(self.inner.metrics.clone()),
        ));
        {
            let mut hubs = self.inner.hubs.lock();
            hubs.by_id.insert(room.id, Arc::downgrade(&hub));
            // Codes in the database are always well formed; one that were not would only miss
            // the shortcut.
            if let Ok(code) = RoomCode::parse(&room.code) {
                hubs.by_code.insert(code, room.id);
            }
            hubs.creating.remove(&room.id);
        }
        // The room row and members read for this hub may predate a post, a join or a leave
        // committed before it was registered (those reached no hub): catch up from the store,
        // and learn who is online on other instances.
        let _ = self.inner.jobs.try_send(Job::Room(room.id));
        Ok(hub)
    }

    /// Someone joined: their entry is appended to every open member list, on every instance.
    pub async fn member_joined(&self, room_id: i64, member: &Member) {
        if let Some(hub) = self.hub(room_id) {
            hub.member_joined(member);
        }
        self.inner
            .activity
            .membership(room_id, member.user_id, true);
        if let Some(bus) = &self.inner.bus {
            bus.joined(room_id, member.user_id).await;
        }
    }

    /// A socket of `member` opens on `room`: subscribes it to the room's hub, records it (for
    /// presence and for closing it from elsewhere) and announces them. Refused, with the close
    /// code to send, when the session ended or the membership was left after the socket's
    /// checks but before it was recorded here (the kick found nothing to close then).
    ///
    /// Subscribing comes before the socket reads anything from the store, so nothing committed
    /// in between is missed: everything after `Listener::published` reaches the receiver.
    pub async fn listen(
        &self,
        room: &Room,
        member: Member,
        session: Vec<u8>,
    ) -> Result<Listener, Refused> {
        let hub = self.hub_for(room).await.map_err(Refused::Unavailable)?;
        let (events, published) = hub.subscribe();
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let kicked = self.register(id, &member, room.id, session.clone());
        // Recorded first, checked second; a sign-out records the ended session first and
        // kicks second, a leave takes the member out of the hub first and kicks second: one
        // of the two sees the other.
        let refused = if self.inner.ended.lock().contains_key(&session) {
            Some(close::SIGNED_OUT)
        } else if hub.room_for(member.user_id).is_none() {
            Some(close::LEFT)
        } else {
            None
        };
        if let Some(code) = refused {
            self.inner.conns.lock().remove(&id);
            drop(events);
            self.release(hub);
            return Err(Refused::Closed(code));
        }
        self.came_online(&hub, &member, id).await;
        let activity = self
            .follow_activity(id, room.id, &session, member.user_id)
            .await;
        Ok(Listener {
            chat: self.clone(),
            hub,
            events: Some(events),
            fanout_slot: None,
            published,
            kicked,
            activity,
            member,
            session,
            id,
        })
    }

    /// Drops the room's hub entry once its last socket is gone.
    fn release(&self, hub: Arc<Hub>) {
        let room_id = hub.room.id;
        let code = RoomCode::parse(&hub.room.code);
        drop(hub);
        let mut hubs = self.inner.hubs.lock();
        if hubs
            .by_id
            .get(&room_id)
            .is_some_and(|w| w.strong_count() == 0)
        {
            hubs.by_id.remove(&room_id);
            if let Ok(code) = code {
                hubs.by_code.remove(&code);
            }
        }
    }
}

/// Why a socket could not listen.
#[derive(Debug)]
pub enum Refused {
    /// The hub could not be created (its members could not be read).
    Unavailable(StoreError),
    /// Closed as soon as opened, with this code: the session ended or the membership was left
    /// while the socket was being checked.
    Closed(u16),
}

/// One socket's place in its room's hub: its receiver, and the kick that closes it from
/// elsewhere. `close` takes it out again (presence, the hub registry).
pub struct Listener {
    chat: Chat,
    hub: Arc<Hub>,
    /// The hub's broadcast, subscribed before anything was read from the store. `None`
    /// while the room's writer sends to the socket (`hand_to_writer`).
    pub events: Option<Receiver<Event>>,
    /// The socket's slot with the room's writer, once it was handed to it.
    fanout_slot: Option<usize>,
    /// The newest seq the hub had broadcast before subscribing: everything after it reaches
    /// `events`, everything up to it must come from the store.
    pub published: i64,
    /// Fires with a close code when the socket must close (signed out, left the room).
    pub kicked: oneshot::Receiver<u16>,
    /// Activity in the person's other rooms, one frame per flush, for this socket to send as
    /// it is (`activity.rs`): only the browser's leader socket gets any.
    pub activity: mpsc::Receiver<Utf8Bytes>,
    member: Member,
    session: Vec<u8>,
    id: u64,
}

impl Listener {
    /// The member list (and status line) for a (re)connecting socket.
    pub fn list_frame(&self) -> Frame {
        self.hub.list_frame()
    }

    /// The socket's page says its person is typing: the room's line names them (on every
    /// instance) for a few seconds, or until their message arrives.
    pub fn typing(&self) {
        let user_id = self.member.user_id;
        if self.hub.typing(user_id)
            && let Some(bus) = self.chat.inner.bus.clone()
        {
            let room_id = self.hub.room.id;
            tokio::spawn(async move { bus.typing(room_id, user_id).await });
        }
    }

    /// Hands a caught-up socket (`last_sent`) to the room's writer (`fanout`), unless an
    /// event already waits for it: then that event is returned, and the task keeps the socket.
    /// The check and the hand-over happen between two broadcasts, under the socket's lock.
    pub fn hand_to_writer(
        &mut self,
        socket: &Arc<FastSocket>,
        last_sent: i64,
    ) -> Option<Result<Event, RecvError>> {
        if self.fanout_slot.is_none() {
            self.fanout_slot = Some(self.hub.fanout.add(socket.clone()));
        }
        let events = self.events.as_mut()?;
        let hub = &self.hub;
        let waiting = hub.between_broadcasts(|pushed| {
            socket.to_writer(
                last_sent,
                || pushed,
                || match events.try_recv() {
                    Ok(event) => Some(Ok(event)),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Overflowed(n)) => Some(Err(RecvError::Overflowed(n))),
                    Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                },
            )
        });
        if waiting.is_none() {
            // The writer sends to the socket now; a receiver left would only fill up.
            self.events = None;
        }
        waiting
    }

    /// The socket closed: forget it, update presence, and drop the hub if it was the last.
    pub async fn close(self) {
        let Listener {
            chat,
            hub,
            events,
            fanout_slot,
            member,
            session,
            id,
            ..
        } = self;
        if let Some(slot) = fanout_slot {
            hub.fanout.remove(slot);
        }
        chat.inner.activity.unfollow(id, &session);
        chat.went_offline(&hub, &member, id).await;
        drop(events);
        chat.release(hub);
    }
}
