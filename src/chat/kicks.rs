//! Closing sockets from elsewhere: a sign-out closes the session's sockets (4401), leaving a
//! room or being removed from it closes the person's sockets to it (4404), on every instance. Every open socket is
//! registered here with a one-shot "kick" its task listens to.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::{Chat, close};
use crate::store::{Member, now_ms};

/// How long an ended session is remembered for sockets that were opening as it ended: far
/// longer than an upgrade takes (the session cache's 5 s included).
const ENDED_KEPT: Duration = Duration::from_secs(60);

/// One open socket, as far as closing it from elsewhere goes.
pub(super) struct Conn {
    pub(super) user_id: i64,
    pub(super) room_id: i64,
    session: Vec<u8>,
    kick: oneshot::Sender<u16>,
}

impl Chat {
    /// Records socket `id` of `member` in `room_id`; the receiver fires with the close code
    /// when it must close.
    pub(super) fn register(
        &self,
        id: u64,
        member: &Member,
        room_id: i64,
        session: Vec<u8>,
    ) -> oneshot::Receiver<u16> {
        let (kick, kicked) = oneshot::channel();
        let conn = Conn {
            user_id: member.user_id,
            room_id,
            session,
            kick,
        };
        self.inner.conns.lock().insert(id, conn);
        kicked
    }

    /// Forgets socket `id` (it closed).
    pub(super) fn forget_conn(&self, id: u64) {
        self.inner.conns.lock().remove(&id);
    }

    /// Closes every socket on this instance matching `which` with `code`.
    fn kick(&self, code: u16, which: impl Fn(&Conn) -> bool) -> usize {
        let mut conns = self.inner.conns.lock();
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

    /// Someone left: their sockets to the room close with 4404 and their entry disappears from
    /// every open member list, on every instance.
    pub async fn member_left(&self, room_id: i64, user_id: i64) {
        self.left_here(room_id, user_id);
        if let Some(bus) = &self.inner.bus {
            bus.left(room_id, user_id).await;
        }
    }

    /// What shows `user_id`'s name changed without an event in these rooms to say so (they
    /// changed their username, or their account is gone): every instance drops their cached
    /// sessions (which carry the name) and its cached pages of these rooms.
    pub async fn names_changed(&self, user_id: i64, room_ids: &[i64]) {
        self.names_changed_here(user_id, room_ids);
        if let Some(bus) = &self.inner.bus {
            bus.names_changed(user_id, room_ids).await;
        }
    }

    /// `names_changed` on this instance.
    pub(super) fn names_changed_here(&self, user_id: i64, room_ids: &[i64]) {
        self.store().forget_sessions_of(user_id);
        self.inner.pages.forget(room_ids);
    }

    /// Someone was removed from the room by its owner: as `member_left`, with the reason
    /// `removed` on their sockets' close, on every instance.
    pub async fn member_removed(&self, room_id: i64, user_id: i64) {
        self.out_here(room_id, user_id, close::REMOVED);
        if let Some(bus) = &self.inner.bus {
            bus.removed(room_id, user_id).await;
        }
    }

    /// Remembers the ended sessions for a while (a socket past its checks may not be
    /// recorded yet), then closes their sockets here.
    pub(super) fn sessions_ended_here(&self, sessions: &[Vec<u8>]) {
        {
            let now = Instant::now();
            let mut ended = self.inner.ended.lock();
            ended.retain(|_, at| now.duration_since(*at) < ENDED_KEPT);
            ended.extend(sessions.iter().map(|s| (s.clone(), now)));
        }
        self.kick(close::SIGNED_OUT, |c| sessions.contains(&c.session));
    }

    /// Closes this instance's sockets of someone who left the room.
    pub(super) fn left_here(&self, room_id: i64, user_id: i64) {
        self.out_here(room_id, user_id, close::LEFT);
    }

    /// Closes this instance's sockets of someone no longer in the room, with `code`.
    pub(super) fn out_here(&self, room_id: i64, user_id: i64, code: u16) {
        // The hub first: a socket that sees 4404 and reconnects finds them no longer a member.
        if let Some(hub) = self.hub(room_id) {
            hub.member_left(user_id);
        }
        self.inner.activity.membership(room_id, user_id, false);
        self.kick(code, |c| c.user_id == user_id && c.room_id == room_id);
    }

    /// After lost notifications: forgets cached sessions and closes (4401) this instance's
    /// sockets whose session ended meanwhile.
    pub(super) async fn recheck_sessions(&self) {
        self.store().forget_all_sessions();
        let mut sessions: Vec<Vec<u8>> = self
            .inner
            .conns
            .lock()
            .values()
            .map(|c| c.session.clone())
            .collect();
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
}
