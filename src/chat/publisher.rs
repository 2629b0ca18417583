//! The one task that changes what hubs broadcast: committed posts in, rendered frames out, and
//! the resyncs that repair whatever a lost notification or a full queue left out.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Chat, Hub,
    bus::{Posted, Rendered},
};
use crate::store::{Committed, Message, UNREAD_CAP, now_ms};

/// Work for the publisher: news from other instances (and resync requests).
#[derive(Debug)]
pub enum Job {
    /// Events committed on another instance, as it published them (NATS): no need to read
    /// them back unless this hub has a gap before them.
    Posted {
        /// The room.
        room_id: i64,
        /// The events, ascending.
        events: Vec<Message>,
        /// The frames the other instance rendered for them, if it had a hub for the room.
        rendered: Option<Rendered>,
    },
    /// Messages up to `seq` are committed in the room.
    Upto {
        /// The room.
        room_id: i64,
        /// Its newest committed seq.
        seq: i64,
    },
    /// Someone's presence in the room changed: recompute it from the shared view.
    Presence {
        /// The room.
        room_id: i64,
        /// Whose presence.
        user_id: i64,
    },
    /// Someone joined the room (on another instance).
    Joined {
        /// The room.
        room_id: i64,
        /// Who joined.
        user_id: i64,
    },
    /// Someone left the room (on another instance): close their sockets here.
    Left {
        /// The room.
        room_id: i64,
        /// Who left.
        user_id: i64,
    },
    /// Someone was removed from the room (on another instance): close their sockets here.
    Removed {
        /// The room.
        room_id: i64,
        /// Who was removed.
        user_id: i64,
    },
    /// Someone is typing in the room (on another instance).
    Typing {
        /// The room.
        room_id: i64,
        /// Who is typing.
        user_id: i64,
    },
    /// These sessions ended (by their token hashes): close their sockets here.
    SessionsEnded(Vec<Vec<u8>>),
    /// What shows this person's name changed (a new username, a deleted account): drop their
    /// cached sessions and the cached pages of these rooms here.
    NamesChanged {
        /// Whose name.
        user_id: i64,
        /// The rooms whose cached pages may show the old one.
        room_ids: Vec<i64>,
    },
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
/// The most events a hub reads from the store to close a gap before broadcasting; sockets
/// further behind catch up (or reload) on their own.
const MAX_GAP: i64 = 500;

impl Chat {
    /// The publisher task: commits, jobs and the poll, one at a time.
    pub(super) async fn publisher(
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
        self.inner.metrics.posted(posted);
        self.inner.metrics.committed(batch.took);
        let carry = self.inner.bus.as_ref().is_some_and(|b| b.carries_events());
        let mut posts: Vec<Posted> = Vec::new();
        for run in batch.messages.chunk_by(|a, b| a.room_id == b.room_id) {
            let room_id = run[0].room_id;
            let rendered = match self.hub(room_id) {
                Some(hub) => self.deliver(&hub, run, batch.at).await,
                None => None,
            };
            // After `deliver`, which announces what it read to close a gap first.
            self.inner.activity.publish(room_id, run);
            match posts.iter_mut().find(|p| p.room_id == room_id) {
                // A room twice in one batch (runs are by room, in commit order): the frames
                // of the first run no longer line up with all the events.
                Some(post) => {
                    post.rendered = None;
                    match carry {
                        true => post.events.extend_from_slice(run),
                        false => post.events = vec![run[run.len() - 1].clone()],
                    }
                }
                None => posts.push(Posted {
                    room_id,
                    events: match carry {
                        true => run.to_vec(),
                        // NOTIFY carries the newest seq only.
                        false => vec![run[run.len() - 1].clone()],
                    },
                    rendered: rendered.filter(|_| carry),
                }),
            }
        }
        if let Some(hook) = self.inner.after_commit.get() {
            hook(&batch.messages);
        }
        match self.inner.bus.clone() {
            // NATS: queued in commit order (never waits), so receivers see no gap.
            Some(bus) if carry => bus.committed(posts).await,
            // NOTIFY: off the publishing path, other instances learn a moment later.
            Some(bus) => {
                tokio::spawn(async move { bus.committed(posts).await });
            }
            None => {}
        }
    }

    /// Broadcasts `events` (one room's committed posts and changes, ascending seq) on `hub`,
    /// first reading from the store whatever the hub is missing before them.
    /// Returns the frames broadcast, for other instances (`Hub::publish`).
    async fn deliver(&self, hub: &Hub, events: &[Message], committed: Instant) -> Option<Rendered> {
        self.deliver_rendered(hub, events, committed, None).await
    }

    /// As `deliver`, with another instance's frames for `events` (used if they fit here).
    async fn deliver_rendered(
        &self,
        hub: &Hub,
        events: &[Message],
        committed: Instant,
        rendered: Option<&Rendered>,
    ) -> Option<Rendered> {
        let published = hub.published();
        let first = events.iter().find(|m| m.event > published)?;
        if first.event > published + 1 {
            self.catch_up_hub(hub, first.event - 1).await;
        }
        hub.publish_rendered(events, 0, committed, rendered)
    }

    /// Events another instance committed and published (NATS): straight to the hub, or to
    /// the pages here that follow the room's activity.
    async fn posted_remote(&self, room_id: i64, events: Vec<Message>, rendered: Option<Rendered>) {
        let Some(newest) = events.last().map(|m| m.event) else {
            return;
        };
        if let Some(hub) = self.hub(room_id) {
            let committed = dated(events[0].created_at);
            self.deliver_rendered(&hub, &events, committed, rendered.as_ref())
                .await;
            self.inner.activity.publish(room_id, &events);
            return;
        }
        // No hub here: a page follows the room's activity. What it lacks before these
        // events (or a start from an unknown seq) is read as before.
        match self.inner.activity.announced(room_id) {
            None => {}
            Some(Some(after)) if events[0].event <= after + 1 && newest - after <= UNREAD_CAP => {
                self.inner.activity.publish(room_id, &events)
            }
            Some(_) => self.announce_remote(room_id, newest).await,
        }
    }

    /// Reads and broadcasts the hub's missing events up to `upto`.
    async fn catch_up_hub(&self, hub: &Hub, upto: i64) {
        let from = hub.published().max(upto - MAX_GAP);
        if upto <= from {
            return;
        }
        match self.store().events_between(hub.room.id, from, upto).await {
            Ok(missing) => {
                self.inner.metrics.hub_caught_up();
                // Dated by their creation: they come from another instance or a lost hint.
                let committed = missing
                    .first()
                    .map_or_else(Instant::now, |m| dated(m.created_at));
                hub.publish(&missing, upto, committed);
                self.inner.activity.publish(hub.room.id, &missing);
            }
            Err(e) => {
                tracing::warn!(error = %e, room_id = hub.room.id, "could not read missed messages")
            }
        }
    }

    async fn handle(&self, job: Job) {
        match job {
            Job::Posted {
                room_id,
                events,
                rendered,
            } => self.posted_remote(room_id, events, rendered).await,
            Job::Upto { room_id, seq } => match self.hub(room_id) {
                Some(hub) if seq > hub.published() => self.catch_up_hub(&hub, seq).await,
                Some(_) => {}
                None => self.announce_remote(room_id, seq).await,
            },
            Job::Presence { room_id, user_id } => self.refresh_presence(room_id, user_id).await,
            Job::Joined { room_id, user_id } => {
                self.inner.activity.membership(room_id, user_id, true);
                if let Some(hub) = self.hub(room_id)
                    && let Ok(Some(member)) = self.store().member(room_id, user_id).await
                {
                    hub.member_joined(&member);
                }
            }
            Job::Left { room_id, user_id } => self.left_here(room_id, user_id),
            Job::Removed { room_id, user_id } => {
                self.out_here(room_id, user_id, super::close::REMOVED)
            }
            Job::Typing { room_id, user_id } => {
                if let Some(hub) = self.hub(room_id) {
                    hub.typing(user_id);
                }
            }
            Job::SessionsEnded(sessions) => {
                self.store().forget_sessions(&sessions);
                self.sessions_ended_here(&sessions);
            }
            Job::NamesChanged { user_id, room_ids } => {
                self.names_changed_here(user_id, &room_ids);
            }
            Job::Listening => {
                self.resync(Scope::Everything).await;
                self.recheck_sessions().await;
            }
            Job::Room(room_id) => self.resync(Scope::Room(room_id)).await,
        }
    }

    /// Brings hubs up to date from the store: messages by cursor, and presence from the
    /// shared view; member lists too where a join or leave may have reached no hub (`scope`).
    /// Runs periodically as the safety net for lost notifications, when a room's first socket
    /// opens, and after the listener reconnects.
    async fn resync(&self, scope: Scope) {
        let hubs: Vec<Arc<Hub>> = match scope {
            Scope::Room(room_id) => self.hub(room_id).into_iter().collect(),
            Scope::Active | Scope::Everything => self.active_hubs(),
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
            // A join or leave that reaches the hub during a read makes the read stale: read
            // again (a few times; a room that churns that fast is told of every change live).
            for hub in &hubs {
                for _ in 0..3 {
                    let version = hub.membership_version();
                    let Ok(members) = self.store().members(hub.room.id).await else {
                        break;
                    };
                    if let Some(gone) = hub.reconcile(&members, version) {
                        for user_id in gone {
                            // Also closes a socket that opened just before its owner left.
                            self.left_here(hub.room.id, user_id);
                        }
                        break;
                    }
                }
            }
        }
        self.resync_presence(&hubs, &ids).await;
    }

    /// Compares each hub's presence with the shared view (several instances only).
    async fn resync_presence(&self, hubs: &[Arc<Hub>], ids: &[i64]) {
        if self.inner.bus.is_none() {
            return;
        }
        let Ok(online) = self.store().online_in(ids, now_ms()).await else {
            return;
        };
        for hub in hubs {
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

    /// Delivers committed messages to hubs directly, in seq order per room (tests use it to
    /// simulate racing publishers).
    pub fn publish(&self, batch: &[Message], committed: Instant) {
        for run in batch.chunk_by(|a, b| a.room_id == b.room_id) {
            if let Some(hub) = self.hub(run[0].room_id) {
                hub.publish(run, 0, committed);
            }
        }
    }
}

/// The instant a message created at `created_at` (Unix ms, another instance's clock) was
/// committed, as near as this instance can tell: for the latency histogram.
fn dated(created_at: i64) -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_millis((now_ms() - created_at).max(0) as u64))
        .unwrap_or(now)
}
