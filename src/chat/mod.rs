//! Live delivery: one hub per active room, presence, and closing sockets on sign-out or leave.
//!
//! Messages reach hubs after they are committed. One publisher task per instance takes, in
//! order: the batches this instance's post writer commits, and (with PostgreSQL) hints from
//! other instances that a room has newer messages. It renders each message **once** into shared
//! bytes and broadcasts them to the room's sockets, reading any gap from the store first. Each
//! socket in turn keeps the last seq it sent and fills its own gaps from the store, so a socket
//! never loses, repeats or reorders a message whatever happens to queues, notifications or
//! instances (DESIGN.md §6, §7).

mod bus;
mod hub;
pub mod socket;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_broadcast::Receiver;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

pub use hub::Hub;

use crate::{
    domain::RoomCode,
    metrics::Metrics,
    store::{Committed, Member, Message, Store, now_ms},
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

/// Work for the publisher: news from other instances (and resync requests).
#[derive(Debug)]
pub enum Job {
    /// Messages up to `seq` are committed in the room.
    Upto {
        room_id: i64,
        seq: i64,
    },
    /// Someone's presence in the room changed: recompute it from the shared view.
    Presence {
        room_id: i64,
        user_id: i64,
    },
    Joined {
        room_id: i64,
        user_id: i64,
    },
    Left {
        room_id: i64,
        user_id: i64,
    },
    SessionsEnded(Vec<Vec<u8>>),
    /// The listener listens (first or again): notifications sent before are gone, so
    /// everything they could have said is read again (`Scope::Everything`), sessions included.
    /// The first time matters too: sockets open as soon as the server serves, which may be
    /// before the first LISTEN.
    Listening,
    /// Bring one room's hub up to date (its first socket just opened here).
    Room(i64),
}

/// What a resync brings up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every active hub's messages and presence: the periodic safety net.
    Active,
    /// One new hub: its messages, presence and member list.
    Room(i64),
    /// Every active hub's messages, presence and member list (after lost notifications).
    Everything,
}

/// How often active rooms are checked against the store: the safety net for a lost
/// notification (PostgreSQL) or a catch-up request that did not fit the job queue.
const POLL_EVERY: Duration = Duration::from_secs(3);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);
/// How long start-up waits for the first LISTEN before serving without it.
const FIRST_LISTEN_WAIT: Duration = Duration::from_secs(5);
/// How long an ended session is remembered for sockets that were opening as it ended: far
/// longer than an upgrade takes (the session cache's 5 s included).
const ENDED_KEPT: Duration = Duration::from_secs(60);
/// The most messages a hub reads from the store to close a gap before broadcasting; sockets
/// further behind catch up (or reload) on their own.
const MAX_GAP: i64 = 500;

/// One open socket, as far as closing it from elsewhere goes.
struct Conn {
    user_id: i64,
    room_id: i64,
    session: Vec<u8>,
    kick: oneshot::Sender<u16>,
}

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
    hubs: Mutex<Hubs>,
    conns: Mutex<HashMap<u64, Conn>>,
    /// Sessions ended lately, for sockets that passed their session check just before the
    /// end and registered just after its kick (see `socket_opened`).
    ended: Mutex<HashMap<Vec<u8>, Instant>>,
    next_conn: AtomicU64,
    /// With PostgreSQL: how this instance talks to the others.
    bus: Option<bus::Bus>,
    /// Presence changes this instance decides itself (its own sockets) go through the publisher
    /// like everyone else's, so a hub's presence is only ever changed from one task.
    jobs: mpsc::Sender<Job>,
}

impl Chat {
    /// Starts the publisher and its poll (and, with PostgreSQL, the listener and heartbeat),
    /// which run until `stop` is cancelled: after the server has finished its last request,
    /// not when draining begins (posts taken while draining must still be published and
    /// notified).
    pub async fn start(
        store: Store,
        commits: mpsc::Receiver<Committed>,
        hub_capacity: usize,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Self {
        let bus = store.postgres_pool().map(|_| bus::Bus::new(store.clone()));
        let (jobs, job_rx) = mpsc::channel(4096);
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
            }),
        };
        if let Some(bus) = &bus {
            if let Err(e) = store.heartbeat(&bus.instance, now_ms()).await {
                tracing::warn!(error = %e, "could not register this instance");
            }
            tracing::info!(instance = %bus.instance, "sharing live updates with other instances through PostgreSQL");
            let (listening, first_listen) = oneshot::channel();
            tokio::spawn(bus::listen(
                store.clone(),
                bus.instance.clone(),
                jobs,
                chat.inner.metrics.clone(),
                listening,
                stop.clone(),
            ));
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
        tokio::spawn(chat.clone().publisher(commits, job_rx, stop));
        chat
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The one task that changes what hubs broadcast.
    async fn publisher(
        self,
        mut commits: mpsc::Receiver<Committed>,
        mut jobs: mpsc::Receiver<Job>,
        stop: CancellationToken,
    ) {
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = commits.recv() => {
                    let Some(batch) = batch else { return };
                    self.publish_committed(batch).await;
                }
                job = jobs.recv() => {
                    let Some(job) = job else { return };
                    self.handle(job).await;
                }
                _ = poll.tick() => self.resync(Scope::Active).await,
                _ = stop.cancelled() => {
                    // The server has answered its last post: publish what it committed.
                    while let Ok(batch) = commits.try_recv() {
                        self.publish_committed(batch).await;
                    }
                    return;
                }
            }
        }
    }

    async fn publish_committed(&self, batch: Committed) {
        let posted = batch.messages.len() as u64;
        self.inner
            .metrics
            .messages_posted
            .fetch_add(posted, Ordering::Relaxed);
        let mut newest: Vec<(i64, i64)> = Vec::new();
        for run in batch.messages.chunk_by(|a, b| a.room_id == b.room_id) {
            let room_id = run[0].room_id;
            if let Some(hub) = self.hub(room_id) {
                self.deliver(&hub, run, batch.at).await;
            }
            newest.retain(|(r, _)| *r != room_id);
            newest.push((room_id, run[run.len() - 1].seq));
        }
        if let Some(bus) = self.inner.bus.clone() {
            // Off the publishing path: other instances learn a moment later, this one is done.
            tokio::spawn(async move { bus.committed(&newest).await });
        }
    }

    /// Broadcasts `messages` (one room, ascending seq) on `hub`, first reading from the store
    /// whatever the hub is missing before them.
    async fn deliver(&self, hub: &Hub, messages: &[Message], committed: Instant) {
        let published = hub.published();
        let Some(first) = messages.iter().find(|m| m.seq > published) else {
            return;
        };
        if first.seq > published + 1 {
            self.catch_up_hub(hub, first.seq - 1).await;
        }
        hub.publish(messages, committed);
    }

    /// Reads and broadcasts the hub's missing messages up to `upto`.
    async fn catch_up_hub(&self, hub: &Hub, upto: i64) {
        let from = hub.published().max(upto - MAX_GAP);
        if upto <= from {
            return;
        }
        match self
            .store()
            .messages_between(hub.room.id, from, upto, MAX_GAP)
            .await
        {
            Ok(missing) => {
                let now = Instant::now();
                let ms = now_ms();
                // Dated by their creation: they come from another instance or a lost hint.
                let committed = missing
                    .first()
                    .and_then(|m| {
                        now.checked_sub(Duration::from_millis((ms - m.created_at).max(0) as u64))
                    })
                    .unwrap_or(now);
                hub.publish(&missing, committed);
            }
            Err(e) => {
                tracing::warn!(error = %e, room_id = hub.room.id, "could not read missed messages")
            }
        }
    }

    async fn handle(&self, job: Job) {
        match job {
            Job::Upto { room_id, seq } => {
                if let Some(hub) = self.hub(room_id)
                    && seq > hub.published()
                {
                    self.catch_up_hub(&hub, seq).await;
                }
            }
            Job::Presence { room_id, user_id } => self.refresh_presence(room_id, user_id).await,
            Job::Joined { room_id, user_id } => {
                if let Some(hub) = self.hub(room_id)
                    && let Ok(Some(member)) = self.store().member(room_id, user_id).await
                {
                    hub.member_joined(&member);
                }
            }
            Job::Left { room_id, user_id } => self.left_here(room_id, user_id),
            Job::SessionsEnded(sessions) => {
                self.store().forget_sessions(&sessions);
                self.sessions_ended_here(&sessions);
            }
            Job::Listening => {
                self.resync(Scope::Everything).await;
                self.recheck_sessions().await;
            }
            Job::Room(room_id) => self.resync(Scope::Room(room_id)).await,
        }
    }

    /// After lost notifications: forgets cached sessions and closes (4401) this instance's
    /// sockets whose session ended meanwhile.
    async fn recheck_sessions(&self) {
        self.store().forget_all_sessions();
        let mut sessions: Vec<Vec<u8>> = self.conns().values().map(|c| c.session.clone()).collect();
        sessions.sort();
        sessions.dedup();
        if sessions.is_empty() {
            return;
        }
        match self.store().live_sessions(&sessions, now_ms()).await {
            Ok(live) => {
                let live: HashSet<Vec<u8>> = live.into_iter().collect();
                let ended: Vec<Vec<u8>> =
                    sessions.into_iter().filter(|s| !live.contains(s)).collect();
                if !ended.is_empty() {
                    // As a sign-out notification would have: remembered, then kicked.
                    self.sessions_ended_here(&ended);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not check the sockets' sessions"),
        }
    }

    /// Brings hubs up to date from the store: messages by cursor, and presence from the
    /// shared view; member lists too where a join or leave may have reached no hub (`scope`).
    /// Runs periodically as the safety net for lost notifications, when a room's first socket
    /// opens, and after the listener reconnects.
    async fn resync(&self, scope: Scope) {
        let hubs: Vec<Arc<Hub>> = {
            let hubs = self.hubs();
            match scope {
                Scope::Room(room_id) => hubs.get(room_id).into_iter().collect(),
                Scope::Active | Scope::Everything => {
                    hubs.by_id.values().filter_map(Weak::upgrade).collect()
                }
            }
        };
        if hubs.is_empty() {
            return;
        }
        let ids: Vec<i64> = hubs.iter().map(|h| h.room.id).collect();
        if let Ok(seqs) = self.store().last_seqs(&ids).await {
            for (room_id, seq) in seqs {
                if let Some(hub) = hubs.iter().find(|h| h.room.id == room_id)
                    && seq > hub.published()
                {
                    self.catch_up_hub(hub, seq).await;
                }
            }
        }
        if scope != Scope::Active {
            // A new hub: joins and leaves between its members read and its registration
            // reached no hub. After a reconnect: their notifications may be lost.
            for hub in &hubs {
                if let Ok(members) = self.store().members(hub.room.id).await {
                    for user_id in hub.reconcile(&members) {
                        // Also closes a socket that opened just before its owner left.
                        self.left_here(hub.room.id, user_id);
                    }
                }
            }
        }
        if self.inner.bus.is_none() {
            return;
        }
        let Ok(online) = self.store().online_in(&ids, now_ms()).await else {
            return;
        };
        for hub in &hubs {
            let now: HashSet<i64> = online
                .iter()
                .filter(|(r, _)| *r == hub.room.id)
                .map(|(_, u)| *u)
                .collect();
            let known = hub.online();
            for user_id in now.symmetric_difference(&known) {
                self.refresh_presence(hub.room.id, *user_id).await;
            }
        }
    }

    /// Recomputes one person's presence in a room from the shared view and broadcasts a change.
    async fn refresh_presence(&self, room_id: i64, user_id: i64) {
        let Some(hub) = self.hub(room_id) else { return };
        let online = match &self.inner.bus {
            Some(_) => match self.store().online_in(&[room_id], now_ms()).await {
                Ok(rows) => rows.iter().any(|(_, u)| *u == user_id),
                Err(_) => return,
            },
            None => hub.has_local(user_id),
        };
        hub.set_online(user_id, online);
    }

    async fn heartbeat(self, stop: CancellationToken) {
        let Some(bus) = self.inner.bus.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        let mut beats = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match self.store().heartbeat(&bus.instance, now_ms()).await {
                // Our row was gone: after an outage of ours, another instance swept it and
                // our presence rows with it. Our people are still here.
                Ok(true) => self.register_presence(&bus.instance).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "instance heartbeat failed"),
            }
            beats += 1;
            if beats.is_multiple_of(4)
                && let Ok(n) = self.store().sweep_dead_instances(now_ms()).await
                && n > 0
            {
                tracing::info!(instances = n, "removed instances that stopped beating");
            }
        }
    }

    /// Who has sockets on this instance, as (room, user) pairs.
    fn local_presence(&self) -> HashSet<(i64, i64)> {
        self.conns()
            .values()
            .map(|c| (c.room_id, c.user_id))
            .collect()
    }

    /// Records again, in the shared view, everyone with a socket here. Other instances see
    /// them online again at their next poll.
    async fn register_presence(&self, instance: &str) {
        let pairs: Vec<(i64, i64)> = self.local_presence().into_iter().collect();
        if pairs.is_empty() {
            return;
        }
        tracing::info!(
            present = pairs.len(),
            "this instance had been swept away; recording its presence again"
        );
        if let Err(e) = self.store().register_presence(instance, &pairs).await {
            tracing::warn!(error = %e, "could not record presence again");
            return;
        }
        // A socket that closed while the rows were written removed its row before ours
        // landed: remove it again.
        let now = self.local_presence();
        for (room_id, user_id) in pairs.into_iter().filter(|p| !now.contains(p)) {
            let _ = self
                .store()
                .set_present(instance, room_id, user_id, false)
                .await;
        }
    }

    /// Removes this instance and its presence rows from the shared view (graceful shutdown,
    /// once its sockets are closed).
    pub async fn retire(&self) {
        if let Some(bus) = &self.inner.bus
            && let Err(e) = self.store().retire_instance(&bus.instance).await
        {
            tracing::warn!(error = %e, "could not retire this instance");
        }
    }

    /// Delivers committed messages to hubs directly, in seq order per room (tests use it to
    /// simulate racing publishers).
    pub fn publish(&self, batch: &[Message], committed: Instant) {
        for run in batch.chunk_by(|a, b| a.room_id == b.room_id) {
            if let Some(hub) = self.hub(run[0].room_id) {
                hub.publish(run, committed);
            }
        }
    }

    fn hub(&self, room_id: i64) -> Option<Arc<Hub>> {
        self.hubs().get(room_id)
    }

    fn hubs(&self) -> MutexGuard<'_, Hubs> {
        self.inner.hubs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room with this code if it is active here and `user_id` is one of its members: a
    /// (re)connecting socket then needs no database read. The hub's member list is as current
    /// as a database read: joins and leaves update it right after they commit (on other
    /// instances, within the bus's latency), and it is reconciled with the store when the hub
    /// is created. A leave that races the check closes the socket when it arrives, as it would
    /// after a database check.
    pub fn active_member_room(&self, code: RoomCode, user_id: i64) -> Option<crate::store::Room> {
        let hub = {
            let hubs = self.hubs();
            hubs.get(*hubs.by_code.get(&code)?)?
        };
        hub.room_for(user_id)
    }

    /// The room's hub (created, with its members read from the store, if this is its first
    /// socket here) and a receiver on it. Subscribing comes before reading messages from the
    /// store, so nothing committed in between is missed.
    async fn subscribe(
        &self,
        room: &crate::store::Room,
    ) -> Result<(Arc<Hub>, Receiver<Event>, i64), crate::store::StoreError> {
        if let Some(hub) = self.hub(room.id) {
            let (rx, published) = hub.subscribe();
            return Ok((hub, rx, published));
        }
        // One socket creates the hub; the others arriving with it (a room opening, a reconnect
        // storm after a restart) wait for it instead of each reading the member list.
        let gate = self.hubs().creating.entry(room.id).or_default().clone();
        let _creating = gate.lock().await;
        if let Some(hub) = self.hub(room.id) {
            let (rx, published) = hub.subscribe();
            return Ok((hub, rx, published));
        }
        let members = match self.store().members(room.id).await {
            Ok(members) => members,
            Err(e) => {
                self.hubs().creating.remove(&room.id);
                return Err(e);
            }
        };
        let hub = Arc::new(Hub::new(room, members, self.inner.hub_capacity));
        {
            let mut hubs = self.hubs();
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
        let (rx, published) = hub.subscribe();
        Ok((hub, rx, published))
    }

    /// Drops the room's hub entry once its last socket is gone.
    fn release(&self, hub: Arc<Hub>) {
        let room_id = hub.room.id;
        let code = RoomCode::parse(&hub.room.code);
        drop(hub);
        let mut hubs = self.hubs();
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

    /// Who is online in the room, as far as this instance knows (its hub), or from the shared
    /// view when this instance has no socket in the room.
    pub async fn online(&self, room_id: i64) -> HashSet<i64> {
        if let Some(hub) = self.hub(room_id) {
            return hub.online();
        }
        match &self.inner.bus {
            Some(_) => self
                .store()
                .online_in(&[room_id], now_ms())
                .await
                .map(|rows| rows.into_iter().map(|(_, u)| u).collect())
                .unwrap_or_default(),
            None => HashSet::new(),
        }
    }

    /// A socket of `member` opened: record it (shared presence too) and announce them. Refused
    /// with the close code to send when the session ended or the membership was left after the
    /// socket's checks but before it was recorded here (the kick found nothing to close then).
    async fn socket_opened(
        &self,
        hub: &Arc<Hub>,
        member: &Member,
        session: Vec<u8>,
    ) -> Result<(u64, oneshot::Receiver<u16>), u16> {
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (kick, kicked) = oneshot::channel();
        self.conns().insert(
            id,
            Conn {
                user_id: member.user_id,
                room_id: hub.room.id,
                session: session.clone(),
                kick,
            },
        );
        // Recorded first, checked second; a sign-out records the ended session first and
        // kicks second, a leave takes the member out of the hub first and kicks second: one
        // of the two sees the other.
        let refused = if self.ended().contains_key(&session) {
            Some(close::SIGNED_OUT)
        } else if hub.room_for(member.user_id).is_none() {
            Some(close::LEFT)
        } else {
            None
        };
        if let Some(code) = refused {
            self.conns().remove(&id);
            return Err(code);
        }
        let first_here = hub.came_online(member, id);
        if first_here && let Some(bus) = &self.inner.bus {
            if let Err(e) = self
                .store()
                .set_present(&bus.instance, hub.room.id, member.user_id, true)
                .await
            {
                tracing::warn!(error = %e, "could not record presence");
            }
            bus.presence(hub.room.id, member.user_id).await;
        }
        Ok((id, kicked))
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Conn>> {
        self.inner.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ended(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Instant>> {
        self.inner.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A socket closed: forget it and, if it was the person's last here, update presence.
    async fn socket_closed(&self, hub: &Arc<Hub>, member: &Member, id: u64) {
        self.conns().remove(&id);
        let shared = self.inner.bus.is_some();
        let last_here = hub.went_offline(member.user_id, id, !shared);
        if last_here && let Some(bus) = &self.inner.bus {
            if let Err(e) = self
                .store()
                .set_present(&bus.instance, hub.room.id, member.user_id, false)
                .await
            {
                tracing::warn!(error = %e, "could not clear presence");
            }
            bus.presence(hub.room.id, member.user_id).await;
            // They may still be online elsewhere: the shared view decides.
            let _ = self
                .inner
                .jobs
                .send(Job::Presence {
                    room_id: hub.room.id,
                    user_id: member.user_id,
                })
                .await;
        }
    }

    /// Closes every socket on this instance matching `which` with `code`.
    fn kick(&self, code: u16, which: impl Fn(&Conn) -> bool) -> usize {
        let mut conns = self.conns();
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

    /// Sessions were deleted (sign-out): their sockets close with 4401, on every instance.
    pub async fn end_sessions(&self, sessions: &[Vec<u8>]) {
        self.sessions_ended_here(sessions);
        if let Some(bus) = &self.inner.bus {
            bus.sessions_ended(sessions).await;
        }
    }

    /// Someone joined: their entry is appended to every open member list, on every instance.
    pub async fn member_joined(&self, room_id: i64, member: &Member) {
        if let Some(hub) = self.hub(room_id) {
            hub.member_joined(member);
        }
        if let Some(bus) = &self.inner.bus {
            bus.joined(room_id, member.user_id).await;
        }
    }

    /// Someone left: their sockets to the room close with 4404 and their entry disappears from
    /// every open member list, on every instance.
    pub async fn member_left(&self, room_id: i64, user_id: i64) {
        self.left_here(room_id, user_id);
        if let Some(bus) = &self.inner.bus {
            bus.left(room_id, user_id).await;
        }
    }

    /// Remembers the ended sessions for a while (a socket past its checks may not be
    /// recorded yet), then closes their sockets here.
    fn sessions_ended_here(&self, sessions: &[Vec<u8>]) {
        {
            let now = Instant::now();
            let mut ended = self.ended();
            ended.retain(|_, at| now.duration_since(*at) < ENDED_KEPT);
            ended.extend(sessions.iter().map(|s| (s.clone(), now)));
        }
        self.kick(close::SIGNED_OUT, |c| sessions.contains(&c.session));
    }

    fn left_here(&self, room_id: i64, user_id: i64) {
        // The hub first: a socket that sees 4404 and reconnects finds them no longer a member.
        if let Some(hub) = self.hub(room_id) {
            hub.member_left(user_id);
        }
        self.kick(close::LEFT, |c| {
            c.user_id == user_id && c.room_id == room_id
        });
    }
}
