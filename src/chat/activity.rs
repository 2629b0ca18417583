//! Live activity in a person's *other* rooms, for the unread counts in a room page's rail:
//! when a message arrives in room B, every page of B's members that shows another room learns
//! B's new seq within a second (`js/unread.js` counts it).
//!
//! Per browser, not per socket. A person may have many rooms open at once (tabs, or a client
//! with a socket in every room, like `natter-load fanout`); telling each socket about every
//! other room's every message would cost sockets × rooms deliveries per message, a hundred
//! times the fan-out itself. So activity is gathered per session (one browser) and sent, at
//! most every `FLUSH_EVERY`, to one of that browser's sockets here (its *leader*); the page
//! that receives it passes it to the browser's other tabs (a `BroadcastChannel`). A busy
//! person then costs one small frame per quarter second, whatever they have open.
//!
//! The frame names rooms by id, each with how many new messages others wrote and the first and
//! last of their seqs: a page counts only what lies above the seq its rail was rendered with
//! (`data-seq`), so a frame seen twice (relayed to a tab that got it too, or from two
//! instances) counts once. A dozen bytes per room: a person in a hundred busy rooms costs a
//! frame of a kilobyte or two. Rendered per browser, four times a second at most, never per
//! message and viewer.
//!
//! What a session follows is read once, when its first socket opens here (the person's
//! rooms), and kept while it has sockets here; joins and leaves on this instance update it.
//!
//! A browser whose sockets here are all in the room a message arrived in gets nothing for it:
//! its pages show that room, which receive the message itself and ignore its activity
//! (`unread.js`), and a tab of the browser on another instance hears of it there. In a room of
//! 10,000, each member with a tab on it, a post had cost a second frame per member (rendered,
//! queued, its socket task woken to write it): more than the post's own fan-out.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use super::{
    Chat,
    bus::{Bus, Watching},
};
use crate::{
    store::{Message, UNREAD_CAP},
    views::unread::{Run, activity_frame},
};

/// How often gathered activity goes out: well within the second the rail promises.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Frames a socket may have waiting; a socket that cannot take them is behind on its own
/// room too (and its page recounts when it reloads).
const QUEUE: usize = 8;

/// A session token hash: whose browser.
type SessionKey = Arc<[u8]>;

/// New messages by others, not yet sent, by room id.
type Pending = BTreeMap<i64, Run>;

/// Who follows what on this instance.
#[derive(Default)]
pub(super) struct Activity {
    /// A blocking mutex: held for map updates only, never across an `.await`.
    state: Mutex<Followers>,
}

#[derive(Default)]
struct Followers {
    /// The browsers with sockets here.
    sessions: HashMap<SessionKey, Follow>,
    /// By room: the browsers following it here, and the newest seq announced to them.
    rooms: HashMap<i64, RoomFollowers>,
    /// Browsers with activity waiting for the next flush.
    dirty: HashSet<SessionKey>,
    /// The bus, to hear of followed rooms' messages from other instances (NATS routes a
    /// room's news only to instances that subscribed to it).
    bus: Option<Bus>,
}

/// One browser's follow.
struct Follow {
    /// Whose browser: their own messages are not unread to them.
    user_id: i64,
    /// The rooms it follows: the person's rooms.
    rooms: HashSet<i64>,
    /// Its sockets here; the first gets the frames.
    sockets: Vec<Socket>,
    /// New messages by others since the last frame, at most `UNREAD_CAP` per room.
    pending: Pending,
}

/// One socket of a browser here.
struct Socket {
    conn: u64,
    /// The room its page shows.
    room_id: i64,
    frames: mpsc::Sender<Utf8Bytes>,
}

impl Follow {
    /// Whether every page of the browser here shows `room_id` (its activity is for nobody).
    fn only_in(&self, room_id: i64) -> bool {
        self.sockets.iter().all(|s| s.room_id == room_id)
    }
}

#[derive(Default)]
struct RoomFollowers {
    sessions: HashSet<SessionKey>,
    /// The newest seq announced (`None`: not known yet); older ones are not announced again.
    announced: Option<i64>,
    /// Keeps this instance subscribed to the room's news while someone here follows it.
    _watching: Option<Watching>,
}

impl Followers {
    /// `session` follows `room_id`, whose newest seq is `seq` if known: announcing starts
    /// after it, unless another browser here follows the room already.
    fn add_room(&mut self, session: &SessionKey, room_id: i64, seq: Option<i64>) {
        let bus = &self.bus;
        let room = self.rooms.entry(room_id).or_insert_with(|| RoomFollowers {
            _watching: bus.as_ref().map(|bus| bus.watch(room_id).0),
            ..Default::default()
        });
        room.sessions.insert(session.clone());
        room.announced = room.announced.or(seq);
    }

    fn drop_room(&mut self, session: &SessionKey, room_id: i64) {
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.sessions.remove(session);
            if room.sessions.is_empty() {
                self.rooms.remove(&room_id);
            }
        }
    }
}

impl Activity {
    /// Who follows what, with the bus to subscribe to followed rooms through.
    pub(super) fn new(bus: Option<Bus>) -> Self {
        Self {
            state: Mutex::new(Followers {
                bus,
                ..Default::default()
            }),
        }
    }

    /// Socket `conn` (on `room_id`) of a browser whose follow exists here joins it; `None`
    /// when the browser has no socket here yet (`follow` then, with its rooms).
    pub(super) fn attach(
        &self,
        conn: u64,
        room_id: i64,
        session: &[u8],
    ) -> Option<mpsc::Receiver<Utf8Bytes>> {
        let mut state = self.state.lock();
        let follow = state.sessions.get_mut(session)?;
        let (frames, rx) = mpsc::channel(QUEUE);
        follow.sockets.push(Socket {
            conn,
            room_id,
            frames,
        });
        Some(rx)
    }

    /// Socket `conn` (on `room_id`), the first of its browser here, follows `rooms` (the
    /// person's rooms, by id, with their newest seq).
    pub(super) fn follow(
        &self,
        conn: u64,
        room_id: i64,
        session: &[u8],
        user_id: i64,
        rooms: Vec<(i64, i64)>,
    ) -> mpsc::Receiver<Utf8Bytes> {
        let (frames, rx) = mpsc::channel(QUEUE);
        let socket = Socket {
            conn,
            room_id,
            frames,
        };
        let mut state = self.state.lock();
        let key: SessionKey = session.into();
        if let Some(follow) = state.sessions.get_mut(session) {
            // Another socket of the browser got here first.
            follow.sockets.push(socket);
            return rx;
        }
        for (room_id, seq) in &rooms {
            state.add_room(&key, *room_id, Some(*seq));
        }
        state.sessions.insert(
            key,
            Follow {
                user_id,
                rooms: rooms.into_iter().map(|(id, _)| id).collect(),
                sockets: vec![socket],
                pending: Pending::new(),
            },
        );
        rx
    }

    /// Socket `conn` closed; its browser stops following once its last socket here did.
    pub(super) fn unfollow(&self, conn: u64, session: &[u8]) {
        let mut state = self.state.lock();
        let Some(follow) = state.sessions.get_mut(session) else {
            return;
        };
        follow.sockets.retain(|s| s.conn != conn);
        if !follow.sockets.is_empty() {
            return;
        }
        let Some((key, follow)) = state.sessions.remove_entry(session) else {
            return;
        };
        for room_id in follow.rooms {
            state.drop_room(&key, room_id);
        }
        state.dirty.remove(&key);
    }

    /// `user_id` joined or left `room_id`: their browsers here follow it, or stop (a room
    /// left tells them nothing more).
    pub(super) fn membership(&self, room_id: i64, user_id: i64, member: bool) {
        let mut state = self.state.lock();
        let keys: Vec<SessionKey> = state
            .sessions
            .iter()
            .filter(|(_, f)| f.user_id == user_id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if member {
                state.add_room(&key, room_id, None);
            } else {
                state.drop_room(&key, room_id);
            }
            if let Some(follow) = state.sessions.get_mut(&key) {
                if member {
                    follow.rooms.insert(room_id);
                } else {
                    follow.rooms.remove(&room_id);
                    follow.pending.remove(&room_id);
                }
            }
        }
    }

    /// The newest seq announced in `room_id` if anyone here follows it (`Some(None)`: followed,
    /// nothing announced yet).
    pub(super) fn announced(&self, room_id: i64) -> Option<Option<i64>> {
        self.state.lock().rooms.get(&room_id).map(|r| r.announced)
    }

    /// Notes that nothing up to `seq` needs announcing in `room_id` (its messages are not
    /// known here, and were before any page here followed).
    pub(super) fn skip_to(&self, room_id: i64, seq: i64) {
        if let Some(room) = self.state.lock().rooms.get_mut(&room_id) {
            room.announced = Some(room.announced.map_or(seq, |a| a.max(seq)));
        }
    }

    /// Committed messages of one room (ascending seq): each new one is gathered for every
    /// browser following the room but its author's. One map lookup when nobody follows it.
    pub(super) fn publish(&self, room_id: i64, messages: &[Message]) {
        let mut state = self.state.lock();
        let Followers {
            sessions,
            rooms,
            dirty,
            ..
        } = &mut *state;
        let Some(room) = rooms.get_mut(&room_id) else {
            return;
        };
        let announced = room.announced.unwrap_or(0);
        // New messages only: an edit or a delete takes a seq of the room's but adds nothing
        // to read (and a message deleted before it was announced is not there to read).
        let new = || {
            messages
                .iter()
                .filter(|m| m.seq > announced && !m.is_change() && !m.is_deleted())
        };
        let Some(newest) = new().next_back().map(|m| m.seq) else {
            return;
        };
        room.announced = Some(newest);
        for key in &room.sessions {
            let Some(follow) = sessions.get_mut(key) else {
                continue;
            };
            if follow.only_in(room_id) {
                continue;
            }
            let mut gathered = false;
            for m in new().filter(|m| m.user_id != follow.user_id) {
                let run = follow.pending.entry(room_id).or_insert(Run {
                    count: 0,
                    first: m.seq,
                    last: m.seq,
                    mentions: 0,
                });
                run.count = (run.count + 1).min(UNREAD_CAP);
                run.last = m.seq;
                if m.mentions.0.iter().any(|(id, _)| *id == follow.user_id) {
                    run.mentions = (run.mentions + 1).min(UNREAD_CAP);
                }
                gathered = true;
            }
            if gathered && !dirty.contains(key) {
                dirty.insert(key.clone());
            }
        }
    }

    /// Sends each browser's gathered activity to its leader socket, one frame each.
    fn flush(&self) {
        let out: Vec<(mpsc::Sender<Utf8Bytes>, Pending)> = {
            let mut state = self.state.lock();
            let dirty = std::mem::take(&mut state.dirty);
            dirty
                .into_iter()
                .filter_map(|key| {
                    let follow = state.sessions.get_mut(&key)?;
                    let pending = std::mem::take(&mut follow.pending);
                    let leader = follow.sockets.first()?;
                    Some((leader.frames.clone(), pending))
                })
                .collect()
        };
        for (leader, pending) in out {
            let frame = activity_frame(&pending);
            // Full: that socket is behind on its own room too; its page recounts on reload.
            let _ = leader.try_send(Utf8Bytes::from(frame.into_string()));
        }
    }
}

impl Chat {
    /// Sends gathered activity every `FLUSH_EVERY` until `stop`.
    pub(super) async fn activity_flusher(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.inner.activity.flush(),
                _ = stop.cancelled() => return,
            }
        }
    }

    /// The activity receiver of socket `conn` (on `room_id`) of `user_id`'s browser `session`:
    /// joins the browser's follow here, or starts it with the person's rooms (read from the
    /// store).
    pub(super) async fn follow_activity(
        &self,
        conn: u64,
        room_id: i64,
        session: &[u8],
        user_id: i64,
    ) -> mpsc::Receiver<Utf8Bytes> {
        if let Some(rx) = self.inner.activity.attach(conn, room_id, session) {
            return rx;
        }
        let rooms = match self.store().room_seqs_of(user_id).await {
            Ok(rooms) => rooms,
            Err(e) => {
                // The page still works; only its rail stays as rendered.
                tracing::warn!(error = %e, "could not read the rooms to follow");
                Vec::new()
            }
        };
        self.inner
            .activity
            .follow(conn, room_id, session, user_id, rooms)
    }

    /// Announces messages of `room_id` up to `seq` committed on another instance, when a page
    /// here follows the room but no hub here read them.
    pub(super) async fn announce_remote(&self, room_id: i64, seq: i64) {
        let Some(announced) = self.inner.activity.announced(room_id) else {
            return;
        };
        let Some(after) = announced else {
            // Followed since a join, from an unknown seq: start from this one.
            self.inner.activity.skip_to(room_id, seq);
            return;
        };
        if after >= seq {
            return;
        }
        let read = self
            .store()
            .messages_between(room_id, after.max(seq - UNREAD_CAP), seq, UNREAD_CAP)
            .await;
        match read {
            Ok(messages) => self.inner.activity.publish(room_id, &messages),
            Err(e) => tracing::warn!(error = %e, room_id, "could not read activity"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: i64, user_id: i64) -> Message {
        Message {
            room_id: 7,
            seq,
            user_id,
            author: String::new(),
            body: "hi".into(),
            created_at: 0,
            edited_at: None,
            deleted_at: None,
            event: seq,
            action: None,
            mentions: Default::default(),
            attachments: Default::default(),
        }
    }

    fn frame(rx: &mut mpsc::Receiver<Utf8Bytes>) -> Option<String> {
        rx.try_recv().ok().map(|f| f.to_string())
    }

    #[test]
    fn a_browser_gets_one_frame_per_flush_on_one_socket_without_its_own_messages() {
        let activity = Activity::default();
        // Ada's two tabs show room 8, Bob's shows room 9.
        let mut leader = activity.follow(1, 8, b"ada-laptop", 1, vec![(7, 0), (8, 0)]);
        let mut other_tab = activity
            .attach(2, 8, b"ada-laptop")
            .expect("the browser follows");
        let mut bob = activity.follow(3, 9, b"bob", 2, vec![(7, 0), (9, 0)]);
        activity.publish(7, &[message(1, 2), message(2, 1), message(3, 2)]);
        activity.publish(7, &[message(3, 2)]);
        activity.publish(9, &[message(1, 2)]);
        activity.flush();
        let ada = frame(&mut leader).expect("ada's leader socket gets a frame");
        assert!(ada.contains(r#"data-activity="7:2:1:3:0""#), "{ada}");
        assert!(frame(&mut leader).is_none(), "one frame");
        assert!(frame(&mut other_tab).is_none(), "the leader relays it");
        let bob = frame(&mut bob).expect("bob's frame");
        assert!(bob.contains(r#"data-activity="7:1:2:2:0""#), "{bob}");
        activity.flush();
        assert!(frame(&mut leader).is_none(), "nothing new, nothing sent");

        // The leader closes: the other tab leads. Room 8's activity now goes to a browser
        // whose pages all show room 8: see the next test.
        activity.unfollow(1, b"ada-laptop");
        let mut third_tab = activity.attach(4, 9, b"ada-laptop").unwrap();
        activity.publish(8, &[message(1, 2)]);
        activity.flush();
        assert!(
            frame(&mut other_tab)
                .unwrap()
                .contains(r#"data-activity="8:1:1:1:0""#)
        );

        assert!(frame(&mut third_tab).is_none(), "the leader relays it");

        // Ada leaves room 8: nothing more from it.
        activity.membership(8, 1, false);
        activity.publish(8, &[message(2, 2)]);
        activity.flush();
        assert!(frame(&mut other_tab).is_none());

        // Her last sockets close: nobody here follows room 8 any more.
        activity.unfollow(2, b"ada-laptop");
        activity.unfollow(4, b"ada-laptop");
        assert!(activity.announced(8).is_none());
        assert!(activity.state.lock().sessions.len() == 1);
    }

    #[test]
    fn a_browser_whose_pages_all_show_the_room_gets_no_activity_for_it() {
        let activity = Activity::default();
        // Ada's only tab shows room 7, where Bob (user 2) writes; she also follows room 8.
        let mut tab = activity.follow(1, 7, b"ada", 1, vec![(7, 0), (8, 0)]);
        activity.publish(7, &[message(1, 2)]);
        activity.publish(8, &[message(1, 2)]);
        activity.flush();
        let got = frame(&mut tab).expect("room 8's activity");
        assert!(got.contains(r#"data-activity="8:1:1:1:0""#), "{got}");
        assert!(
            !got.contains("7:"),
            "nothing for the room her page shows: {got}"
        );

        // A second tab, on room 8: room 7's next message is news to that page.
        let mut second = activity.attach(2, 8, b"ada").unwrap();
        activity.publish(7, &[message(2, 2)]);
        activity.flush();
        let got = frame(&mut tab).expect("the leader gets it, to relay");
        assert!(got.contains(r#"data-activity="7:1:2:2:0""#), "{got}");
        assert!(frame(&mut second).is_none());

        // That tab closes again: nothing more for room 7.
        activity.unfollow(2, b"ada");
        activity.publish(7, &[message(3, 2)]);
        activity.flush();
        assert!(frame(&mut tab).is_none());
        // Yet room 7's messages count as announced: a later page does not hear of them again.
        assert_eq!(activity.announced(7), Some(Some(3)));
    }
}
