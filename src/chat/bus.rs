//! Several instances on one PostgreSQL database talk through one notification channel,
//! `natter`. Every payload starts with the sending instance's id (instances ignore their own)
//! and a kind:
//!
//! | payload | meaning |
//! |---|---|
//! | `{id} m {room}:{seq},…` | messages up to `seq` are committed in `room` |
//! | `{id} p {room} {user}` | `user`'s presence in `room` changed |
//! | `{id} j {room} {user}` | `user` joined `room` |
//! | `{id} l {room} {user}` | `user` left `room` (close their sockets: 4404) |
//! | `{id} s {hex},…` | these sessions ended (close their sockets: 4401) |
//!
//! Notifications only say *where to look*: receivers read the store by cursor, so a lost or
//! repeated notification costs a little work, never a lost or doubled message. A periodic poll of
//! active rooms and a full resync after the listener reconnects are the safety net.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Job;
use crate::store::Store;

/// NOTIFY payloads must stay under 8000 bytes.
const MAX_PAYLOAD: usize = 7000;

/// Sends this instance's news to the others.
#[derive(Clone)]
pub struct Bus {
    store: Store,
    pub instance: String,
}

impl Bus {
    pub fn new(store: Store) -> Self {
        let instance = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        Self { store, instance }
    }

    async fn send(&self, payload: String) {
        if let Err(e) = self.store.notify(&payload).await {
            // Others catch up through their poll; nothing is lost, only later.
            tracing::warn!(error = %e, "could not notify other instances");
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

    pub async fn left(&self, room_id: i64, user_id: i64) {
        self.send(format!("{} l {room_id} {user_id}", self.instance))
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
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
        "s" => vec![Job::SessionsEnded(
            rest.split(',').filter_map(unhex).collect(),
        )],
        _ => Vec::new(),
    }
}

/// Listens on the channel until shutdown, reconnecting after a lost connection; every
/// (re)connect is followed by a full resync, since notifications sent meanwhile are gone.
pub async fn listen(
    store: Store,
    own: String,
    jobs: mpsc::Sender<Job>,
    shutdown: CancellationToken,
) {
    let Some(pool) = store.postgres_pool().cloned() else {
        return;
    };
    let mut first = true;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "notification listener cannot connect; retrying");
                if sleep_or_stop(&shutdown, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = listener.listen("natter").await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            if sleep_or_stop(&shutdown, Duration::from_secs(1)).await {
                return;
            }
            continue;
        }
        if !first {
            tracing::info!("notification listener reconnected; resyncing active rooms");
        }
        first = false;
        if jobs.send(Job::Resync).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    for job in parse(notification.payload(), &own) {
                        if jobs.send(job).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("notification listener lost its connection");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed");
                    break;
                }
            }
        }
        if sleep_or_stop(&shutdown, Duration::from_millis(200)).await {
            return;
        }
    }
}

/// Sleeps; true if shutdown came first.
async fn sleep_or_stop(shutdown: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
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
