//! One room's broadcast point on this instance, and what it knows about the room's members.
//! Member-list changes go out as upserts (see `views::members`), in batches.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_broadcast::{Receiver, Sender};
use parking_lot::{Mutex, MutexGuard};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Event, Frame,
    bus::{Rendered, Watching},
    fanout::{self, Sockets},
};
use crate::{
    metrics::Metrics,
    store::{Action, Member, Message, Room},
    views::{
        members::{self, Counts, Entry, MEMBER_LIST_CAP},
        messages::{message_changed, messages_append},
        typing::typing_line,
    },
};

/// Member-list changes (joins, leaves, presence) go out at most once per `BATCH_WINDOW` per
/// room, each frame with every entry that changed, as it is when the frame is sent. A change
/// after a quiet window goes out at once; a storm (a big room filling up, someone joining and
/// leaving in a loop) costs each socket a few frames a second instead of one per change to
/// every member (quadratic when a room fills up).
const BATCH_WINDOW: Duration = Duration::from_millis(250);
/// Where the list is capped (presence then changes only the counts), once a second at most:
/// presence fan-out costs changes x members, and a room of thousands coming online at once would
/// otherwise spend the server on "1,234 online" frames.
const CAPPED_BATCH_WINDOW: Duration = Duration::from_secs(1);

/// Pages say "I am typing" at most this often (`assets/js/typing.js`); a signal sooner than
/// this (less `TYPING_SLACK`, for a network that bunches them) after the last one taken is
/// dropped, so a person starts a typing line for everyone at most once per period.
const TYPING_EVERY: Duration = Duration::from_secs(3);
const TYPING_SLACK: Duration = Duration::from_millis(500);
/// How long a signal shows its typer, unless their message arrives first.
const TYPING_FOR: Duration = Duration::from_secs(6);
/// Above this many people online a typing line is noise (and each signal a frame to all of
/// them): signals are dropped.
const TYPING_MAX_ONLINE: usize = 100;

/// The broadcast point of one active room on this instance. Sockets subscribe; the publisher
/// renders each message once and broadcasts the shared frame.
pub struct Hub {
    /// The room as read when the hub was created: its id never changes (its `last_seq` does:
    /// ask `published`; its name, topic and code may: `room_for` knows them as they are now).
    pub(super) room: Room,
    tx: Sender<Event>,
    /// How many events were broadcast: an event's number in the channel. Changed only under
    /// `state`'s lock (every broadcast is), so read under it, it agrees with what receivers got.
    pushed: AtomicU64,
    /// The caught-up WebSockets the room's writer (`fanout::write`) sends every event to,
    /// without waking their tasks. The writer's own receiver keeps the channel open.
    pub(super) fanout: Arc<Sockets>,
    /// A std mutex: held for bookkeeping only, never across an `.await`.
    state: Mutex<HubState>,
    /// Keeps this instance subscribed to the room's news from other instances (NATS) for as
    /// long as the hub lives.
    _watching: Option<Watching>,
}

struct HubState {
    /// The room as its latest system line left it (name, topic, code).
    room: Room,
    /// This instance's sockets per user (connection ids).
    local: HashMap<i64, HashSet<u64>>,
    /// Who is online in the room: on any instance with PostgreSQL, here with SQLite.
    online: HashSet<i64>,
    /// The members, by name, loaded when the hub was created and kept up to date by joins and
    /// leaves: what (re)connecting sockets are shown without asking the database.
    members: Vec<Member>,
    /// The same members' ids, for membership checks.
    member_ids: HashSet<i64>,
    /// How many joins and leaves reached this hub: a member list read from the store before
    /// one of them may be stale (`reconcile`).
    membership_changes: u64,
    /// The rendered member list for (re)connecting sockets, until the next change.
    list_frame: Option<Frame>,
    /// Members whose entry changed since the last member-list frame, and how.
    pending: HashMap<i64, Change>,
    /// Whether a task will send `pending` when the window is over.
    flush_scheduled: bool,
    /// When the last member-list frame was sent.
    last_flush: Option<Instant>,
    /// The newest room event broadcast here: older or repeated events are not sent again.
    published: i64,
    /// The last message appended (as it is now): the next one groups under it when the same
    /// person wrote it just after.
    last: Option<Message>,
    /// Who signalled typing lately (never stored): shown while `shown`, forgotten at `until`.
    typing: HashMap<i64, Typist>,
    /// Whether a task will end the typing lines that run out (`end_typing`).
    typing_timer: bool,
}

/// Someone's typing signals.
struct Typist {
    /// When their last signal was taken.
    heard: Instant,
    /// When it runs out.
    until: Instant,
    /// Whether the typing line names them (until it runs out or their message arrives).
    shown: bool,
}

/// What changed about a member's entry; a membership change outranks a presence change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    /// Came online or went offline.
    Presence,
    /// Joined or left.
    Membership,
}

impl HubState {
    /// How far apart member-list frames are.
    fn window(&self) -> Duration {
        if self.members.len() > MEMBER_LIST_CAP {
            CAPPED_BATCH_WINDOW
        } else {
            BATCH_WINDOW
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            online: self.online.len(),
            members: self.members.len(),
        }
    }

    fn member(&self, user_id: i64) -> Option<&Member> {
        if !self.member_ids.contains(&user_id) {
            return None;
        }
        self.members.iter().find(|m| m.user_id == user_id)
    }
}

impl Hub {
    /// A hub for `room` whose newest message (as read with it) is `last`: the next one is
    /// grouped under it.
    pub(super) fn new(
        room: &Room,
        members: Vec<Member>,
        last: Option<Message>,
        capacity: usize,
        watching: Option<Watching>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let (mut tx, rx) = async_broadcast::broadcast(capacity);
        // Never wait for slow receivers: drop their oldest event and let them resync.
        tx.set_overflow(true);
        tx.set_await_active(false);
        let sockets = Arc::new(Sockets::default());
        tokio::spawn(fanout::write(rx, sockets.clone(), metrics));
        Self {
            room: room.clone(),
            tx,
            pushed: AtomicU64::new(0),
            fanout: sockets,
            state: Mutex::new(HubState {
                room: room.clone(),
                local: HashMap::new(),
                online: HashSet::new(),
                member_ids: members.iter().map(|m| m.user_id).collect(),
                membership_changes: 0,
                members,
                list_frame: None,
                pending: HashMap::new(),
                flush_scheduled: false,
                last_flush: None,
                published: room.last_seq,
                last: last.filter(|m| m.seq <= room.last_seq),
                typing: HashMap::new(),
                typing_timer: false,
            }),
            _watching: watching,
        }
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock()
    }

    /// Broadcasts `event`; called under `state`'s lock only (see `pushed`).
    fn broadcast(&self, event: Event) {
        // Overflow mode never reports Full; the writer's receiver is always active.
        if self.tx.try_broadcast(event).is_ok() {
            self.pushed.fetch_add(1, Ordering::Release);
        }
    }

    /// Runs `f` with the number of events broadcast so far, while no other can be: what a
    /// receiver checked inside `f` has, or has not, got agrees with that number.
    pub(super) fn between_broadcasts<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let _state = self.state();
        f(self.pushed.load(Ordering::Acquire))
    }

    /// A receiver, and the newest seq broadcast before it existed: everything after that seq
    /// reaches the receiver, everything up to it must come from the store. Both are taken under
    /// the lock `publish` broadcasts under, so no message falls between them.
    pub(super) fn subscribe(&self) -> (Receiver<Event>, i64) {
        let state = self.state();
        (self.tx.new_receiver(), state.published)
    }

    /// The newest seq broadcast here.
    pub(super) fn published(&self) -> i64 {
        self.state().published
    }

    /// The room, as far as this hub knows it, if `user_id` is one of its members.
    pub(super) fn room_for(&self, user_id: i64) -> Option<Room> {
        let state = self.state();
        state.member_ids.contains(&user_id).then(|| Room {
            last_seq: state.published,
            ..state.room.clone()
        })
    }

    /// Renders and broadcasts room events (messages and changes to them, ascending `event`)
    /// newer than what was published, each once, into one shared frame per event. `upto`
    /// says the events were read as complete up to there: events in between that a later
    /// one superseded (a message edited twice) are not sent, but count as published.
    ///
    /// Only the publisher task calls this, so rendering can happen outside the lock; the
    /// broadcast and the new `published` happen together under it (see `subscribe`).
    ///
    /// Returns the frames when every event was new here (what another instance's hub in the
    /// same place can broadcast as they are: `publish_rendered`).
    pub(super) fn publish(
        &self,
        events: &[Message],
        upto: i64,
        committed: Instant,
    ) -> Option<Rendered> {
        self.publish_rendered(events, upto, committed, None)
    }

    /// As `publish`, broadcasting `rendered` (another instance's frames for `events`) instead
    /// of rendering when this hub is where that instance's was: everything before the first
    /// event published, and the same message last appended (the next one groups under it).
    pub(super) fn publish_rendered(
        &self,
        events: &[Message],
        upto: i64,
        committed: Instant,
        rendered: Option<&Rendered>,
    ) -> Option<Rendered> {
        let (published, last, code) = {
            let state = self.state();
            (state.published, state.last.clone(), state.room.code.clone())
        };
        let after = last.as_ref().map(|m| m.seq);
        let ready = rendered.filter(|r| {
            r.frames.len() == events.len()
                && r.after == after
                && events.first().is_some_and(|m| m.event == published + 1)
        });
        let code = code.as_str();
        let mut previous = last.as_ref();
        let mut frames = Vec::new();
        for (i, m) in events
            .iter()
            .enumerate()
            .filter(|(_, m)| m.event > published)
        {
            let frame = if m.is_change() {
                // The message the next one may group under may be the one that changed.
                if previous.is_some_and(|p| p.seq == m.seq) {
                    previous = Some(m);
                }
                match ready {
                    Some(r) => r.frames[i].clone(),
                    None => Utf8Bytes::from(message_changed(code, m).into_string()),
                }
            } else {
                let prev = previous.filter(|p| p.seq < m.seq);
                previous = Some(m);
                match ready {
                    Some(r) => r.frames[i].clone(),
                    None => Utf8Bytes::from(
                        messages_append(code, prev, std::slice::from_ref(m)).into_string(),
                    ),
                }
            };
            frames.push((m.event, m.is_change(), frame));
        }
        let out = (!frames.is_empty() && frames.len() == events.len()).then(|| Rendered {
            after,
            frames: frames.iter().map(|(_, _, f)| f.clone()).collect(),
        });
        let newest = frames.last().map_or(upto, |(event, ..)| (*event).max(upto));
        let last = previous.cloned();
        // Encoded for the sockets before the lock, once for all of them.
        let frames: Vec<_> = frames
            .into_iter()
            .map(|(seq, change, frame)| (seq, change, Frame::shared(frame)))
            .collect();
        let mut state = self.state();
        for (seq, change, frame) in frames {
            if seq > state.published {
                self.broadcast(Event::Message {
                    seq,
                    frame,
                    committed,
                    change,
                });
            }
        }
        if newest > state.published {
            state.published = newest;
            state.last = last;
        }
        // A system line says how the room is now: what later frames and sockets are told.
        if let Some(heading) = events
            .iter()
            .rfind(|m| m.event > published && m.is_system())
            .and_then(Action::of)
            .map(|a| a.heading)
        {
            state.room.name = heading.name;
            state.room.topic = heading.topic;
            state.room.code = heading.code;
        }
        // A typer's message ends their typing line, right after it.
        if !state.typing.is_empty() {
            let mut ended = false;
            for m in events
                .iter()
                .filter(|m| m.event > published && !m.is_change())
            {
                if let Some(typist) = state.typing.get_mut(&m.user_id) {
                    ended |= std::mem::replace(&mut typist.shown, false);
                }
            }
            if ended {
                self.send_typing(&state);
            }
        }
        out
    }

    /// `user_id` is typing: a signal from their page, here or (through the bus) on another
    /// instance. Returns whether it was taken (not too soon after their last, from a member,
    /// in a room small enough); only a typer's first signal changes the line.
    pub(super) fn typing(self: &Arc<Self>, user_id: i64) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        if state.online.len() > TYPING_MAX_ONLINE || state.member(user_id).is_none() {
            return false;
        }
        match state.typing.get_mut(&user_id) {
            Some(typist) if now.duration_since(typist.heard) < TYPING_EVERY - TYPING_SLACK => {
                return false;
            }
            Some(typist) => {
                typist.heard = now;
                typist.until = now + TYPING_FOR;
                if std::mem::replace(&mut typist.shown, true) {
                    return true;
                }
            }
            None => {
                let typist = Typist {
                    heard: now,
                    until: now + TYPING_FOR,
                    shown: true,
                };
                state.typing.insert(user_id, typist);
            }
        }
        self.send_typing(&state);
        if !state.typing_timer {
            state.typing_timer = true;
            let hub = Arc::downgrade(self);
            let mut due = Some(now + TYPING_FOR);
            tokio::spawn(async move {
                while let Some(at) = due {
                    tokio::time::sleep_until(at.into()).await;
                    let Some(hub) = hub.upgrade() else { return };
                    due = hub.end_typing();
                }
            });
        }
        true
    }

    /// Forgets the signals that ran out (and takes their typers off the line). Returns when
    /// the next one runs out; none left stops the timer.
    fn end_typing(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.state();
        let shown = |state: &HubState| state.typing.values().filter(|t| t.shown).count();
        let before = shown(&state);
        state.typing.retain(|_, typist| typist.until > now);
        if shown(&state) != before {
            self.send_typing(&state);
        }
        let next = state.typing.values().map(|typist| typist.until).min();
        state.typing_timer = next.is_some();
        next
    }

    /// Sends the typing line as it is now (under the lock: lines leave in the order they
    /// change, after the message that ended one).
    fn send_typing(&self, state: &HubState) {
        let mut typers: Vec<(i64, &str)> = state
            .typing
            .iter()
            .filter(|(_, typist)| typist.shown)
            .filter_map(|(id, _)| Some((*id, state.member(*id)?.username.as_str())))
            .collect();
        typers.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let frame = typing_line(&typers).into_string();
        self.broadcast(Event::Typing {
            frame: Frame::shared(Utf8Bytes::from(frame)),
        });
    }

    /// Who is online, as this hub knows it.
    pub fn online(&self) -> HashSet<i64> {
        self.state().online.clone()
    }

    /// The member list (and status line) for a (re)connecting socket, rendered once per change.
    pub(super) fn list_frame(&self) -> Frame {
        let mut state = self.state();
        if let Some(frame) = &state.list_frame {
            return frame.clone();
        }
        let markup = members::list_frame(
            &state.members,
            |id| state.online.contains(&id),
            state.counts(),
        );
        let frame = Frame::shared(Utf8Bytes::from(markup.into_string()));
        state.list_frame = Some(frame.clone());
        frame
    }

    /// Records a change to `user_id`'s entry and sends it: at once when the last member-list
    /// frame is a window old, else with the next batch.
    fn changed(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, HubState>,
        user_id: i64,
        change: Change,
    ) {
        // The cached list stays until the batch goes out: re-rendering it for every socket
        // that opens during a storm of changes cost each upgrade the whole list (10% of an
        // upgrade's CPU in natter-load handshakes). A socket that gets it stale has subscribed
        // already, so it gets the batch too, and batch entries are upserts.
        let pending = state.pending.entry(user_id).or_insert(change);
        *pending = (*pending).max(change);
        if state.flush_scheduled {
            return;
        }
        let now = Instant::now();
        let due = state.last_flush.map(|at| at + state.window());
        match due.filter(|due| *due > now) {
            None => self.send_pending(&mut state, now),
            Some(due) => {
                state.flush_scheduled = true;
                let hub = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep_until(due.into()).await;
                    if let Some(hub) = hub.upgrade() {
                        hub.flush();
                    }
                });
            }
        }
    }

    /// Sends the batched changes, when the window is over.
    fn flush(&self) {
        let mut state = self.state();
        state.flush_scheduled = false;
        self.send_pending(&mut state, Instant::now());
    }

    /// Sends the pending changes as one frame: each changed entry as it is now (a member with
    /// their presence, or a departed member's hidden entry) and the counts. Where the list is
    /// capped (more members than `MEMBER_LIST_CAP`), presence changes only change the counts:
    /// entries for thousands of comings and goings, sent to thousands of sockets, would swamp
    /// a big room (and most of them are not on anyone's page); a page gets a fresh list when
    /// it (re)connects. Broadcast under the lock, so frames leave in the order they were made.
    fn send_pending(&self, state: &mut HubState, now: Instant) {
        state.last_flush = Some(now);
        let pending = std::mem::take(&mut state.pending);
        if pending.is_empty() {
            return;
        }
        state.list_frame = None;
        let capped = state.members.len() > MEMBER_LIST_CAP;
        let entries = pending
            .iter()
            .filter(|(_, change)| !capped || **change == Change::Membership)
            .map(|(user_id, _)| match state.member(*user_id) {
                Some(member) => Entry::Member(member, state.online.contains(user_id)),
                None => Entry::Departed(*user_id),
            });
        let markup = members::changes_frame(entries, state.counts());
        self.broadcast(Event::Members {
            frame: Frame::shared(Utf8Bytes::from(markup.into_string())),
        });
    }

    /// A socket of `member` opened here. Returns whether it is their first on this instance.
    pub(super) fn came_online(self: &Arc<Self>, member: &Member, conn: u64) -> bool {
        let mut state = self.state();
        let sockets = state.local.entry(member.user_id).or_default();
        sockets.insert(conn);
        let first = sockets.len() == 1;
        if state.online.insert(member.user_id) {
            self.changed(state, member.user_id, Change::Presence);
        }
        first
    }

    /// A socket closed. Returns whether it was their last on this instance. With `decide` (one
    /// instance) that means offline now; otherwise the shared presence decides (`set_online`).
    pub(super) fn went_offline(self: &Arc<Self>, user_id: i64, conn: u64, decide: bool) -> bool {
        let mut state = self.state();
        let Some(sockets) = state.local.get_mut(&user_id) else {
            return false;
        };
        if !sockets.remove(&conn) || !sockets.is_empty() {
            return false;
        }
        state.local.remove(&user_id);
        if decide && state.online.remove(&user_id) {
            self.changed(state, user_id, Change::Presence);
        }
        true
    }

    /// Whether this instance holds sockets of the user.
    pub(super) fn has_local(&self, user_id: i64) -> bool {
        self.state().local.contains_key(&user_id)
    }

    /// Sets someone's presence from the shared view; sends only a change.
    pub(super) fn set_online(self: &Arc<Self>, user_id: i64, online: bool) {
        let mut state = self.state();
        // Sockets here outrank a stale shared view.
        let online = online || state.local.contains_key(&user_id);
        let changed = if online {
            state.online.insert(user_id)
        } else {
            state.online.remove(&user_id)
        };
        if changed {
            self.changed(state, user_id, Change::Presence);
        }
    }

    /// A new member: added to every open list. A member already listed under another name
    /// (they changed their username) moves to the new name's place, and their entry is
    /// replaced in every open list.
    pub(super) fn member_joined(self: &Arc<Self>, member: &Member) {
        let mut state = self.state();
        let renamed = state
            .member(member.user_id)
            .is_some_and(|known| known.username != member.username);
        if renamed {
            state.members.retain(|m| m.user_id != member.user_id);
            state.member_ids.remove(&member.user_id);
        }
        if state.member(member.user_id).is_none() {
            let at = state
                .members
                .partition_point(|m| m.username.to_lowercase() < member.username.to_lowercase());
            state.members.insert(at, member.clone());
            state.member_ids.insert(member.user_id);
        }
        state.membership_changes += 1;
        self.changed(state, member.user_id, Change::Membership);
    }

    /// What `reconcile` is given with a member list read from the store: taken before the read.
    pub(super) fn membership_version(&self) -> u64 {
        self.state().membership_changes
    }

    /// Compares the member list with `members` (read from the store after this hub was
    /// registered): a join or leave that happened while the hub was being created reached no
    /// hub. Adds the newcomers; returns who is gone, for the caller to treat as leaving.
    /// `None` when a join or leave reached the hub since `version` (`membership_version`,
    /// taken before the read): the list may predate it, and would bring back someone who
    /// just left or turn away someone who just joined; the caller reads again.
    pub(super) fn reconcile(
        self: &Arc<Self>,
        members: &[Member],
        version: u64,
    ) -> Option<Vec<i64>> {
        let (gone, new): (Vec<i64>, Vec<Member>) = {
            let state = self.state();
            if state.membership_changes != version {
                return None;
            }
            let now: HashSet<i64> = members.iter().map(|m| m.user_id).collect();
            (
                state.member_ids.difference(&now).copied().collect(),
                members
                    .iter()
                    .filter(|m| !state.member_ids.contains(&m.user_id))
                    .cloned()
                    .collect(),
            )
        };
        for member in &new {
            self.member_joined(member);
        }
        Some(gone)
    }

    /// A member left: their entry disappears from every open list (replaced by a hidden one).
    pub(super) fn member_left(self: &Arc<Self>, user_id: i64) {
        let mut state = self.state();
        state.members.retain(|m| m.user_id != user_id);
        state.member_ids.remove(&user_id);
        state.membership_changes += 1;
        // Their sockets are being closed; each still unregisters itself (and its shared
        // presence row) on the way out.
        state.online.remove(&user_id);
        self.changed(state, user_id, Change::Membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_of(people: i64) -> Arc<Hub> {
        let room = Room {
            id: 1,
            code: "ABCD-EFGH".into(),
            name: String::new(),
            created_by: 1,
            created_at: 0,
            last_seq: 0,
            last_activity_at: 0,
            direct_pair: None,
            topic: String::new(),
        };
        let members = (1..=people)
            .map(|id| Member {
                user_id: id,
                username: format!("p{id:03}"),
                joined_at: 0,
            })
            .collect();
        Arc::new(Hub::new(&room, members, None, 64, None, None))
    }

    fn online(hub: &Arc<Hub>, people: i64) {
        for id in 1..=people {
            hub.set_online(id, true);
        }
    }

    /// The typing lines broadcast so far.
    fn lines(rx: &mut Receiver<Event>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|event| match event {
                Event::Typing { frame } => Some(frame.html().to_string()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_typer_starts_a_line_once_per_period_and_only_as_a_member() {
        let hub = hub_of(3);
        online(&hub, 3);
        let (mut rx, _) = hub.subscribe();
        assert!(hub.typing(2));
        assert!(!hub.typing(2), "a second signal at once is dropped");
        assert!(!hub.typing(99), "not a member");
        let lines = lines(&mut rx);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("data-user=\"2\""));
    }

    #[tokio::test]
    async fn rooms_with_more_than_a_hundred_online_show_no_typing() {
        let hub = hub_of(TYPING_MAX_ONLINE as i64 + 1);
        online(&hub, TYPING_MAX_ONLINE as i64);
        let (mut rx, _) = hub.subscribe();
        assert!(hub.typing(1), "a hundred online: shown");
        online(&hub, TYPING_MAX_ONLINE as i64 + 1);
        assert!(!hub.typing(2), "a hundred and one: dropped");
        assert_eq!(lines(&mut rx).len(), 1);
    }

    fn member(id: i64) -> Member {
        Member {
            user_id: id,
            username: format!("p{id:03}"),
            joined_at: 0,
        }
    }

    /// The race seen under load: the catch-up of a new hub read the members, the person left
    /// (live, on this hub), then the stale read came back with them.
    #[tokio::test]
    async fn a_member_list_read_before_a_leave_does_not_bring_them_back() {
        let hub = hub_of(2);
        let version = hub.membership_version();
        let read = [member(1), member(2)];
        hub.member_left(2);
        assert_eq!(hub.reconcile(&read, version), None, "stale: read again");
        assert!(!hub.state().member_ids.contains(&2));
        let version = hub.membership_version();
        assert_eq!(hub.reconcile(&[member(1)], version), Some(vec![]));
        assert!(!hub.state().member_ids.contains(&2));
    }

    #[tokio::test]
    async fn a_member_list_read_before_a_join_does_not_turn_them_away() {
        let hub = hub_of(1);
        let version = hub.membership_version();
        let read = [member(1)];
        hub.member_joined(&member(2));
        assert_eq!(hub.reconcile(&read, version), None, "stale: read again");
        let version = hub.membership_version();
        // A read that is current: someone who left while the hub was made is gone, someone
        // who joined meanwhile is added.
        assert_eq!(
            hub.reconcile(&[member(2), member(3)], version),
            Some(vec![1])
        );
        assert!(hub.state().member_ids.contains(&3));
    }
}
