//! How instances on one PostgreSQL database tell each other what happened: one interface, two
//! carriers, chosen at start (`NATTER_BUS`).
//!
//! - PostgreSQL NOTIFY (`notify.rs`, the default): every instance hears every room's news and
//!   reads new messages back from the store. Nothing else to run, but database reads grow as
//!   instances × posts and NOTIFY is one cluster-wide queue.
//! - NATS (`nats.rs`): each instance subscribes only to the rooms it serves, and a post carries
//!   its messages and rendered frames, so receivers read nothing back.
//!
//! Either way the store stays the truth: what the bus says is a shortcut, and a lost or
//! repeated word costs a little work, never a lost or doubled message (gap-fill, the resync
//! after a reconnect and the periodic poll repair it; DESIGN.md §6, §7).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{Job, nats::Nats, notify::Notify};
use crate::{
    metrics::Metrics,
    store::{Message, Store},
};

/// This instance's way to the others.
#[derive(Clone)]
pub enum Bus {
    /// PostgreSQL NOTIFY on the channel `natter`.
    Notify(Notify),
    /// NATS, subject per room.
    Nats(Nats),
}

/// One room's committed events as this instance published them.
#[derive(Debug)]
pub struct Posted {
    /// The room.
    pub room_id: i64,
    /// Its events, ascending: the last one's `event` is the room's newest seq.
    pub events: Vec<Message>,
    /// The frames this instance's hub rendered for them, if it had a hub for the room.
    pub rendered: Option<Rendered>,
}

/// Frames rendered for a run of events: one per event, valid for a hub whose last appended
/// message is `after` (a message groups under the one before it) and that has published
/// everything before the first event.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The seq of the message the first frame was rendered after, if any.
    pub after: Option<i64>,
    /// One frame per event.
    pub frames: Vec<Utf8Bytes>,
}

/// Keeps this instance subscribed to a room while it lives (NATS; nothing with NOTIFY, which
/// hears every room anyway).
pub struct Watching {
    /// Held for its `Drop` (which unsubscribes).
    _watch: Option<super::nats::Watch>,
}

impl Bus {
    /// Connects the bus `servers` name (NATS) or PostgreSQL NOTIFY, and starts listening:
    /// what others say becomes `jobs`. `listening` hears once the bus first listens. Fails
    /// only on addresses NATS cannot use: an unreachable server is retried in the background.
    pub async fn start(
        servers: Option<&[Url]>,
        store: &Store,
        jobs: mpsc::Sender<Job>,
        metrics: Arc<Metrics>,
        listening: oneshot::Sender<()>,
        stop: CancellationToken,
    ) -> Result<Bus, String> {
        let instance = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        match servers {
            Some(servers) => Ok(Bus::Nats(
                Nats::start(servers, instance, jobs, metrics, listening).await?,
            )),
            None => {
                tokio::spawn(super::notify::listen(
                    store.clone(),
                    instance.clone(),
                    jobs,
                    metrics.clone(),
                    listening,
                    stop,
                ));
                Ok(Bus::Notify(Notify::new(store.clone(), instance, metrics)))
            }
        }
    }

    /// This instance's id (its heartbeat and presence rows).
    pub fn instance(&self) -> &str {
        match self {
            Bus::Notify(bus) => bus.instance(),
            Bus::Nats(bus) => bus.instance(),
        }
    }

    /// Which bus, for the log.
    pub fn describe(&self) -> &'static str {
        match self {
            Bus::Notify(_) => "PostgreSQL NOTIFY",
            Bus::Nats(_) => "NATS",
        }
    }

    /// Whether posts should carry their events (NATS), so `Posted::events` is worth filling.
    pub fn carries_events(&self) -> bool {
        matches!(self, Bus::Nats(_))
    }

    /// Subscribes to a room's news while the returned guard lives, and a receiver that hears
    /// once the subscription is in place (NATS only: NOTIFY hears everything).
    pub fn watch(&self, room_id: i64) -> (Watching, Option<oneshot::Receiver<()>>) {
        match self {
            Bus::Notify(_) => (Watching { _watch: None }, None),
            Bus::Nats(bus) => {
                let (watch, ready) = bus.watch(room_id);
                (
                    Watching {
                        _watch: Some(watch),
                    },
                    ready,
                )
            }
        }
    }

    /// Why the bus cannot carry news right now, if it cannot (for `/readyz`).
    pub fn trouble(&self) -> Option<&'static str> {
        match self {
            Bus::Notify(_) => None,
            Bus::Nats(bus) => (!bus.is_up()).then_some(
                "NATS unreachable: live updates between instances fall back to the database poll (every 3 s)",
            ),
        }
    }

    /// Messages are committed (after the commit).
    pub async fn committed(&self, posts: Vec<Posted>) {
        match self {
            Bus::Notify(bus) => {
                let newest: Vec<(i64, i64)> = posts
                    .iter()
                    .filter_map(|p| Some((p.room_id, p.events.last()?.event)))
                    .collect();
                bus.committed(&newest).await;
            }
            Bus::Nats(bus) => bus.committed(posts).await,
        }
    }

    /// `user_id`'s presence in `room_id` changed.
    pub async fn presence(&self, room_id: i64, user_id: i64) {
        match self {
            Bus::Notify(bus) => bus.presence(room_id, user_id).await,
            Bus::Nats(bus) => bus.room(room_id, "p", user_id).await,
        }
    }

    /// `user_id` joined `room_id`.
    pub async fn joined(&self, room_id: i64, user_id: i64) {
        match self {
            Bus::Notify(bus) => bus.joined(room_id, user_id).await,
            Bus::Nats(bus) => bus.member(room_id, "j", user_id).await,
        }
    }

    /// `user_id` is typing in `room_id`.
    pub async fn typing(&self, room_id: i64, user_id: i64) {
        match self {
            Bus::Notify(bus) => bus.typing(room_id, user_id).await,
            Bus::Nats(bus) => bus.room(room_id, "t", user_id).await,
        }
    }

    /// `user_id` left `room_id`.
    pub async fn left(&self, room_id: i64, user_id: i64) {
        match self {
            Bus::Notify(bus) => bus.left(room_id, user_id).await,
            Bus::Nats(bus) => bus.member(room_id, "l", user_id).await,
        }
    }

    /// `user_id` was removed from `room_id`.
    pub async fn removed(&self, room_id: i64, user_id: i64) {
        match self {
            Bus::Notify(bus) => bus.removed(room_id, user_id).await,
            Bus::Nats(bus) => bus.member(room_id, "r", user_id).await,
        }
    }

    /// What shows `user_id`'s name changed: the cached pages of these rooms and their cached
    /// sessions are out of date.
    pub async fn names_changed(&self, user_id: i64, room_ids: &[i64]) {
        match self {
            Bus::Notify(bus) => bus.names_changed(user_id, room_ids).await,
            Bus::Nats(bus) => bus.names_changed(user_id, room_ids).await,
        }
    }

    /// These sessions ended (by token hash).
    pub async fn sessions_ended(&self, sessions: &[Vec<u8>]) {
        match self {
            Bus::Notify(bus) => bus.sessions_ended(sessions).await,
            Bus::Nats(bus) => bus.sessions_ended(sessions).await,
        }
    }
}
