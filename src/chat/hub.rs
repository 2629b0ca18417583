//! One room's broadcast point on this instance, and what it knows about the room's members.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard},
    time::Instant,
};

use async_broadcast::{InactiveReceiver, Receiver, Sender};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Event;
use crate::{
    store::{Member, Message},
    web::room,
};

/// The broadcast point of one active room on this instance. Sockets subscribe; the publisher
/// renders each message once and broadcasts the shared frame.
pub struct Hub {
    pub(super) room_id: i64,
    tx: Sender<Event>,
    /// Keeps the channel open while no socket is subscribed for a moment.
    _keep_open: InactiveReceiver<Event>,
    /// A std mutex: held for bookkeeping only, never across an `.await`.
    state: Mutex<HubState>,
}

struct HubState {
    /// This instance's sockets per user (connection ids).
    local: HashMap<i64, HashSet<u64>>,
    /// Who is online in the room: on any instance with PostgreSQL, here with SQLite.
    online: HashSet<i64>,
    member_count: usize,
    /// The newest seq broadcast here: older or repeated messages are not sent again.
    published: i64,
    /// The last message broadcast: the next one groups under it when it follows directly.
    last: Option<Message>,
}

impl Hub {
    pub(super) fn new(room_id: i64, member_count: usize, last_seq: i64, capacity: usize) -> Self {
        let (mut tx, rx) = async_broadcast::broadcast(capacity);
        // Never wait for slow receivers: drop their oldest event and let them resync.
        tx.set_overflow(true);
        tx.set_await_active(false);
        Self {
            room_id,
            tx,
            _keep_open: rx.deactivate(),
            state: Mutex::new(HubState {
                local: HashMap::new(),
                online: HashSet::new(),
                member_count,
                published: last_seq,
                last: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn broadcast(&self, event: Event) {
        // Overflow mode never reports Full; Inactive means nobody listens, which is fine.
        let _ = self.tx.try_broadcast(event);
    }

    pub(super) fn subscribe(&self) -> Receiver<Event> {
        self.tx.new_receiver()
    }

    /// The newest seq broadcast here.
    pub(super) fn published(&self) -> i64 {
        self.state().published
    }

    /// Renders and broadcasts messages (ascending seq) newer than what was published, each
    /// once, into one shared frame per message.
    pub(super) fn publish(&self, messages: &[Message], committed: Instant) {
        let (published, mut previous) = {
            let state = self.state();
            (state.published, state.last.clone())
        };
        let mut newest = published;
        for m in messages.iter().filter(|m| m.seq > published) {
            let prev = previous.as_ref().filter(|p| p.seq + 1 == m.seq);
            let frame = room::messages_append(prev, std::slice::from_ref(m)).into_string();
            self.broadcast(Event::Message {
                seq: m.seq,
                frame: Utf8Bytes::from(frame),
                committed,
            });
            newest = m.seq;
            previous = Some(m.clone());
        }
        let mut state = self.state();
        if newest > state.published {
            state.published = newest;
            state.last = previous;
        }
    }

    /// Who is online, as this hub knows it.
    pub fn online(&self) -> HashSet<i64> {
        self.state().online.clone()
    }

    /// The online set and member count, for a (re)connecting socket's fresh list.
    pub(super) fn snapshot(&self) -> (HashSet<i64>, usize) {
        let state = self.state();
        (state.online.clone(), state.member_count)
    }

    fn presence_frame(member: &Member, online: bool, state: &HubState) -> Utf8Bytes {
        let markup = maud::html! {
            (room::member_item(member, online))
            (room::member_summary(state.online.len(), state.member_count))
        };
        Utf8Bytes::from(markup.into_string())
    }

    /// A socket of `member` opened here. Returns whether it is their first on this instance.
    pub(super) fn came_online(&self, member: &Member, conn: u64) -> bool {
        let mut state = self.state();
        let sockets = state.local.entry(member.user_id).or_default();
        sockets.insert(conn);
        let first = sockets.len() == 1;
        if state.online.insert(member.user_id) {
            let frame = Self::presence_frame(member, true, &state);
            drop(state);
            self.broadcast(Event::Members { frame });
        }
        first
    }

    /// A socket closed. Returns whether it was their last on this instance. With `decide` (one
    /// instance) that means offline now; otherwise the shared presence decides (`set_online`).
    pub(super) fn went_offline(&self, member: &Member, conn: u64, decide: bool) -> bool {
        let mut state = self.state();
        let Some(sockets) = state.local.get_mut(&member.user_id) else {
            return false;
        };
        if !sockets.remove(&conn) || !sockets.is_empty() {
            return false;
        }
        state.local.remove(&member.user_id);
        if decide && state.online.remove(&member.user_id) {
            let frame = Self::presence_frame(member, false, &state);
            drop(state);
            self.broadcast(Event::Members { frame });
        }
        true
    }

    /// Whether this instance holds sockets of the user.
    pub(super) fn has_local(&self, user_id: i64) -> bool {
        self.state().local.contains_key(&user_id)
    }

    /// Sets someone's presence from the shared view; broadcasts only a change.
    pub(super) fn set_online(&self, member: &Member, online: bool) {
        let mut state = self.state();
        // Sockets here outrank a stale shared view.
        let online = online || state.local.contains_key(&member.user_id);
        let changed = if online {
            state.online.insert(member.user_id)
        } else {
            state.online.remove(&member.user_id)
        };
        if changed {
            let frame = Self::presence_frame(member, online, &state);
            drop(state);
            self.broadcast(Event::Members { frame });
        }
    }

    /// A new member: appended to every open list.
    pub(super) fn member_joined(&self, member: &Member) {
        let frame = {
            let mut state = self.state();
            state.member_count += 1;
            let online = state.online.contains(&member.user_id);
            let markup = maud::html! {
                ul #members hx-swap-oob="beforeend" { (room::member_item(member, online)) }
                (room::member_summary(state.online.len(), state.member_count))
            };
            Utf8Bytes::from(markup.into_string())
        };
        self.broadcast(Event::Members { frame });
    }

    /// A member left: their entry disappears from every open list.
    pub(super) fn member_left(&self, user_id: i64) {
        let frame = {
            let mut state = self.state();
            state.member_count = state.member_count.saturating_sub(1);
            // Their sockets are being closed; each still unregisters itself (and its shared
            // presence row) on the way out.
            state.online.remove(&user_id);
            let markup = maud::html! {
                li id={ "member-" (user_id) } hx-swap-oob="delete" {}
                (room::member_summary(state.online.len(), state.member_count))
            };
            Utf8Bytes::from(markup.into_string())
        };
        self.broadcast(Event::Members { frame });
    }
}
