//! The default bus (`bus.rs`): several instances on one PostgreSQL database talk through one
//! notification channel, `natter`. Every payload starts with the sending instance's id (instances ignore their own)
//! and a kind:
//!
//! | payload | meaning |
//! |---|---|
//! | `{id} m {room}:{seq},…` | messages up to `seq` are committed in `room` |
//! | `{id} p {room} {user}` | `user`'s presence in `room` changed |
//! | `{id} j {room} {user}` | `user` joined `room` |
//! | `{id} l {room} {user}` | `user` left `room` (close their sockets: 4404) |
//! | `{id} r {room} {user}` | `user` was removed from `room` (close their sockets: 4404 `removed`) |
//! | `{id} s {hex},…` | these sessions ended (close their sockets: 4401) |
//! | `{id} t {room} {user}` | `user` is typing in `room` (shown for a few seconds) |
//! | `{id} n {user} {room},…` | `user`'s name changed (drop their cached sessions, and the cached pages of these rooms) |
//!
//! Notifications only say *where to look*: receivers read the store by cursor, so a lost or
//! repeated notification costs a little work, never a lost or doubled message. A periodic poll of
//! active rooms and a full resync after the listener reconnects are the safety net.

use std::{sync::Arc, time::Duration};

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Job;
use crate::{metrics::Metrics, store::Store};

/// NOTIFY payloads must stay under 8000 bytes.
const MAX_PAYLOAD: usize = 7000;

/// Sends this instance's news to the others through PostgreSQL.
#[derive(Clone)]
pub struct Notify {
    store: Store,
    instance: String,
    metrics: Arc<Metrics>,
}

impl Notify {
    pub fn new(store: Store, instance: String, metrics: Arc<Metrics>) -> Self {
        metrics.bus_up(true);
        Self {
            store,
            instance,
            metrics,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    async fn send(&self, payload: String) {
        match self.store.notify(&payload).await {
            Ok(()) => self.metrics.bus_sent(),
            Err(e) => {
                // Others catch up through their poll; nothing is lost, only later.
                tracing::warn!(error = %e, "could not notify other instances");
            }
        }
    }

    /// Messages up to these seqs are committed (room, seq), after the commit.
    pub async fn committed(&self, rooms: &[(i64, i64)]) {
        let mut payload = String::new();
        for (room, seq) in rooms {
            if payload.len() > MAX_PAYLOAD {
                self.send(std::mem::take(&mut payload)).await;
            }
            if payload.is_empty() {
                payload = format!("{} m ", self.instance);
            } else {
                payload.push(',');
            }
            payload.push_str(&format!("{room}:{seq}"));
        }
        if !payload.is_empty() {
            self.send(payload).await;
        }
    }

    pub async fn presence(&self, room_id: i64, user_id: i64) {
        self.send(format!("{} p {room_id} {user_id}", self.instance))
            .await;
    }

    pub async fn joined(&self, room_id: i64, user_id: i64) {
        self.send(format!("{} j {room_id} {user_id}", self.instance))
            .await;
    }

    pub async fn typing(&self, room_id: i64, user_id: i64) {
        self.send(format!("{} t {room_id} {user_id}", self.instance))
            .await;
    }

    pub async fn left(&self, room_id: i64, user_id: i64) {
        self.send(format!("{} l {room_id} {user_id}", self.instance))
            .await;
    }

    pub async fn removed(&self, room_id: i64, user_id: i64) {
        self.send(format!("{} r {room_id} {user_id}", self.instance))
            .await;
    }

    pub async fn sessions_ended(&self, sessions: &[Vec<u8>]) {
        let mut payload = String::new();
        for hash in sessions {
            if payload.len() > MAX_PAYLOAD {
                self.send(std::mem::take(&mut payload)).await;
            }
            if payload.is_empty() {
                payload = format!("{} s ", self.instance);
            } else {
                payload.push(',');
            }
            payload.push_str(&hex(hash));
        }
        if !payload.is_empty() {
            self.send(payload).await;
        }
    }
}

impl Notify {
    pub async fn names_changed(&self, user_id: i64, room_ids: &[i64]) {
        // At least one payload, for the sessions, however few rooms.
        let start = format!("{} n {user_id} ", self.instance);
        let mut payload = start.clone();
        for (i, room) in room_ids.iter().enumerate() {
            if payload.len() > MAX_PAYLOAD {
                self.send(std::mem::replace(&mut payload, start.clone()))
                    .await;
            } else if i > 0 {
                payload.push(',');
            }
            payload.push_str(&room.to_string());
        }
        self.send(payload).await;
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Turns another instance's payload into publisher jobs (none for our own or garbage).
pub fn parse(payload: &str, own: &str) -> Vec<Job> {
    let mut parts = payload.splitn(3, ' ');
    let (Some(sender), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Vec::new();
    };
    if sender == own {
        return Vec::new();
    }
    let pair = |rest: &str| -> Option<(i64, i64)> {
        let (a, b) = rest.split_once(' ')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    match kind {
        "m" => rest
            .split(',')
            .filter_map(|item| {
                let (room, seq) = item.split_once(':')?;
                Some(Job::Upto {
                    room_id: room.parse().ok()?,
                    seq: seq.parse().ok()?,
                })
            })
            .collect(),
        "p" => pair(rest)
            .map(|(room_id, user_id)| Job::Presence { room_id, user_id })
            .into_iter()
            .collect(),
        "j" => pair(rest)
            .map(|(room_id, user_id)| Job::Joined { room_id, user_id })
            .into_iter()
            .collect(),
        "l" => pair(rest)
            .map(|(room_id, user_id)| Job::Left { room_id, user_id })
            .into_iter()
            .collect(),
        "r" => pair(rest)
            .map(|(room_id, user_id)| Job::Removed { room_id, user_id })
            .into_iter()
            .collect(),
        "t" => pair(rest)
            .map(|(room_id, user_id)| Job::Typing { room_id, user_id })
            .into_iter()
            .collect(),
        "n" => {
            let (user, rooms) = rest.split_once(' ').unwrap_or((rest, ""));
            let Ok(user_id) = user.parse() else {
                return Vec::new();
            };
            let room_ids = rooms.split(',').filter_map(|r| r.parse().ok()).collect();
            vec![Job::NamesChanged { user_id, room_ids }]
        }
        "s" => vec![Job::SessionsEnded(
            rest.split(',').filter_map(unhex).collect(),
        )],
        _ => Vec::new(),
    }
}

/// Listens on the channel until `stop`, reconnecting after a lost connection. Every LISTEN,
/// the first included, is followed by a full resync (`Job::Listening`): what was notified
/// before it is gone. `listening` hears of the first LISTEN.
///
/// The listener has a connection of its own, outside the pool: a `PgListener` made from the
/// pool would hold one of the pool's connections for as long as it lives, leaving requests
/// one fewer than `NATTER_DB_POOL`. So an instance opens at most the pool plus one.
pub async fn listen(
    store: Store,
    own: String,
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    listening: oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let mut listening = Some(listening);
    let Some(pool) = store.postgres_pool() else {
        return;
    };
    let options = (*pool.connect_options())
        .clone()
        .application_name("natter listener");
    let connection = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    loop {
        let mut listener = match PgListener::connect_with(&connection).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "notification listener cannot connect; retrying");
                if sleep_or_stop(&stop, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        if let Err(e) = listener.listen("natter").await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            drop(listener);
            if sleep_or_stop(&stop, Duration::from_secs(1)).await {
                break;
            }
            continue;
        }
        if jobs.send(Job::Listening).await.is_err() {
            break;
        }
        match listening.take() {
            Some(first) => {
                let _ = first.send(());
            }
            None => reconnected(&metrics),
        }
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => {
                    drop(listener);
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection.close()).await;
                    return;
                }
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    let news = parse(notification.payload(), &own);
                    if !news.is_empty() {
                        metrics.notified();
                        metrics.bus_received();
                    }
                    for job in news {
                        if jobs.send(job).await.is_err() {
                            return;
                        }
                    }
                }
                // The connection was lost and sqlx has already listened again on a new one.
                Ok(None) => {
                    tracing::warn!("notification listener lost its connection");
                    reconnected(&metrics);
                    if jobs.send(Job::Listening).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed");
                    break;
                }
            }
        }
        drop(listener);
        if sleep_or_stop(&stop, Duration::from_millis(200)).await {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), connection.close()).await;
}

/// Counts a reconnect.
fn reconnected(metrics: &Metrics) {
    tracing::info!(
        "notification listener reconnected; resyncing active rooms, members and sessions"
    );
    metrics.listener_reconnected();
}

/// Sleeps; true if `stop` came first.
async fn sleep_or_stop(stop: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(pause) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_own_ones_are_ignored() {
        let jobs = parse("abc m 1:5,2:7", "me");
        assert_eq!(jobs.len(), 2);
        assert!(matches!(jobs[1], Job::Upto { room_id: 2, seq: 7 }));
        assert!(parse("me m 1:5", "me").is_empty());
        assert!(matches!(
            parse("x l 3 4", "me")[0],
            Job::Left {
                room_id: 3,
                user_id: 4
            }
        ));
        let Job::SessionsEnded(hashes) =
            &parse(&format!("x s {},{}", hex(&[1, 255]), hex(&[0])), "me")[0]
        else {
            panic!()
        };
        assert_eq!(hashes, &vec![vec![1, 255], vec![0]]);
        let Job::NamesChanged { user_id, room_ids } = &parse("x n 7 1,2,zz,3", "me")[0] else {
            panic!()
        };
        assert_eq!((*user_id, room_ids.as_slice()), (7, &[1, 2, 3][..]));
        assert!(matches!(
            &parse("x n 7 ", "me")[0],
            Job::NamesChanged { user_id: 7, room_ids } if room_ids.is_empty()
        ));
        assert!(parse("x n nobody 1", "me").is_empty());
        assert!(matches!(
            parse("x t 5 6", "me")[0],
            Job::Typing {
                room_id: 5,
                user_id: 6
            }
        ));
        for garbage in ["", "x", "x m", "x m nope", "x p 1", "x q 1 2", "x s zz"] {
            assert!(
                parse(garbage, "me")
                    .iter()
                    .all(|j| matches!(j, Job::SessionsEnded(h) if h.is_empty())),
                "{garbage}"
            );
        }
    }
}
