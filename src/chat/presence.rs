//! Who is online: a person is online in a room while they have at least one open socket to it,
//! on any instance. One instance (SQLite) decides from its own sockets; several (PostgreSQL)
//! share a presence view in the database, kept alive by each instance's heartbeat, and tell
//! each other of changes through the bus.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::{Chat, Hub, Job};
use crate::store::{Member, now_ms};

/// How often this instance renews its heartbeat row (others count its people online while it
/// is younger than `store::INSTANCE_TTL_MS`).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

impl Chat {
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

    /// A socket of `member` opened here (`conn`): they are online, and if it is their first
    /// socket here, the shared view and the other instances hear of it.
    pub(super) async fn came_online(&self, hub: &Arc<Hub>, member: &Member, conn: u64) {
        let first_here = hub.came_online(member, conn);
        if first_here && let Some(bus) = &self.inner.bus {
            if let Err(e) = self
                .store()
                .set_present(bus.instance(), hub.room.id, member.user_id, true)
                .await
            {
                tracing::warn!(error = %e, "could not record presence");
            }
            bus.presence(hub.room.id, member.user_id).await;
        }
    }

    /// A socket closed: forget it and, if it was the person's last here, update presence.
    pub(super) async fn went_offline(&self, hub: &Arc<Hub>, member: &Member, conn: u64) {
        self.forget_conn(conn);
        let shared = self.inner.bus.is_some();
        let last_here = hub.went_offline(member.user_id, conn, !shared);
        if last_here && let Some(bus) = &self.inner.bus {
            if let Err(e) = self
                .store()
                .set_present(bus.instance(), hub.room.id, member.user_id, false)
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

    /// Recomputes one person's presence in a room from the shared view and broadcasts a change.
    pub(super) async fn refresh_presence(&self, room_id: i64, user_id: i64) {
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

    /// Renews this instance's heartbeat until `stop`; every fourth beat sweeps instances that
    /// stopped beating (their people go offline everywhere).
    pub(super) async fn heartbeat(self, stop: CancellationToken) {
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
            match self.store().heartbeat(bus.instance(), now_ms()).await {
                // Our row was gone: after an outage of ours, another instance swept it and
                // our presence rows with it. Our people are still here.
                Ok(true) => self.register_presence(bus.instance()).await,
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
        self.inner
            .conns
            .lock()
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
            && let Err(e) = self.store().retire_instance(bus.instance()).await
        {
            tracing::warn!(error = %e, "could not retire this instance");
        }
    }
}
