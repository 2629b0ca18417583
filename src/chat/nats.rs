//! The NATS bus (`NATTER_BUS=nats://…`): instances tell each other what happened through a
//! NATS server or cluster (core publish/subscribe, no JetStream), which routes each subject
//! only to the instances subscribed to it. Payloads are JSON, `k` naming the kind:
//!
//! | subject | kinds | subscribed by |
//! |---|---|---|
//! | `natter.room.{id}` | `m` committed events *with their rendered frames*; `u` the newest seq only (events too big to carry); `p` presence; `t` typing | instances where the room is active (a hub) or followed (a page's unread counts) |
//! | `natter.members` | `j`, `l`, `r`: joined, left, removed | every instance: a person's pages anywhere follow their rooms |
//! | `natter.sessions` | `s`: sessions ended (token hashes, hex); `n`: a person's name changed (drop their cached sessions and the cached pages of the rooms listed) | every instance |
//!
//! An instance subscribes to a room's subject when the room's hub is created (and waits until
//! the subscription is written to the server before the hub reads the room from the store, so
//! nothing falls in between; a message racing the subscription through the server is left to
//! the poll) and unsubscribes when the hub is dropped. A post's `m` carries the events
//! and the frames its instance's hub rendered: a receiving hub that is exactly where the
//! poster's was (same last seq, same message to group under) broadcasts those bytes without
//! reading or rendering anything; any other hub renders them itself, after filling a gap from
//! the store. The connection asks the server not to echo this instance's own messages back.
//!
//! While NATS is unreachable nothing is sent (the client would only queue it), `/readyz` says
//! so, and the others learn from the periodic cursor poll: slower, nothing lost. When it is
//! back, the client subscribes again on its own and a full resync (`Job::Listening`) repairs
//! what was said meanwhile.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, ConnectOptions, Event, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use url::Url;

use super::{
    Job,
    bus::{Posted, Rendered},
    notify::{hex, unhex},
};
use crate::{metrics::Metrics, store::Message};

/// Messages waiting for the client; past this a message is dropped (the poll repairs it)
/// rather than holding up the publisher.
const OUTBOX: usize = 8192;
/// The largest payload carried; bigger runs of events send their newest seq only (`u`), and
/// receivers read them from the store. NATS refuses payloads over its `max_payload` (1 MiB by
/// default).
const MAX_CARRIED: usize = 256 * 1024;
/// How long a new room subscription waits to be written to the server.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);
/// Subjects of news that is not about one room.
const MEMBERS: &str = "natter.members";
const SESSIONS: &str = "natter.sessions";

/// What goes over the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum Wire<'a> {
    /// Committed events of one room, ascending, with the frames the poster rendered (if its
    /// hub did) after the message `after`.
    #[serde(rename = "m")]
    Posted {
        room: i64,
        events: Cow<'a, [Message]>,
        after: Option<i64>,
        frames: Option<Vec<Cow<'a, str>>>,
    },
    /// Events up to `seq` are committed in `room` (read them from the store).
    #[serde(rename = "u")]
    Upto { room: i64, seq: i64 },
    #[serde(rename = "p")]
    Presence { room: i64, user: i64 },
    #[serde(rename = "t")]
    Typing { room: i64, user: i64 },
    #[serde(rename = "j")]
    Joined { room: i64, user: i64 },
    #[serde(rename = "l")]
    Left { room: i64, user: i64 },
    #[serde(rename = "r")]
    Removed { room: i64, user: i64 },
    #[serde(rename = "s")]
    Sessions { sessions: Vec<String> },
    #[serde(rename = "n")]
    Names { user: i64, rooms: Vec<i64> },
}

fn room_subject(room_id: i64) -> String {
    format!("natter.room.{room_id}")
}

/// Turns a payload into publisher jobs (none for garbage).
fn parse(payload: &[u8]) -> Vec<Job> {
    let Ok(wire) = serde_json::from_slice::<Wire<'static>>(payload) else {
        return Vec::new();
    };
    let job = match wire {
        Wire::Posted {
            room,
            events,
            after,
            frames,
        } => {
            let events = events.into_owned();
            if events.is_empty() || events.iter().any(|m| m.room_id != room) {
                return Vec::new();
            }
            let rendered = frames
                .filter(|f| f.len() == events.len())
                .map(|frames| Rendered {
                    after,
                    frames: frames
                        .into_iter()
                        .map(|f| Utf8Bytes::from(f.into_owned()))
                        .collect(),
                });
            Job::Posted {
                room_id: room,
                events,
                rendered,
            }
        }
        Wire::Upto { room, seq } => Job::Upto { room_id: room, seq },
        Wire::Presence { room, user } => Job::Presence {
            room_id: room,
            user_id: user,
        },
        Wire::Typing { room, user } => Job::Typing {
            room_id: room,
            user_id: user,
        },
        Wire::Joined { room, user } => Job::Joined {
            room_id: room,
            user_id: user,
        },
        Wire::Left { room, user } => Job::Left {
            room_id: room,
            user_id: user,
        },
        Wire::Removed { room, user } => Job::Removed {
            room_id: room,
            user_id: user,
        },
        Wire::Sessions { sessions } => {
            Job::SessionsEnded(sessions.iter().filter_map(|s| unhex(s)).collect())
        }
        Wire::Names { user, rooms } => Job::NamesChanged {
            user_id: user,
            room_ids: rooms,
        },
    };
    vec![job]
}

/// This instance's NATS connection. Cheap to clone.
#[derive(Clone)]
pub struct Nats {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    instance: String,
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    /// Whether the client is connected (its event callback keeps this current).
    up: Arc<AtomicBool>,
    /// Messages for the sender task, in the order they were said.
    outbox: mpsc::Sender<(String, Bytes)>,
    /// The rooms subscribed to, with how many reasons (hubs, followed activity) and the task
    /// that forwards the subscription's messages. A plain mutex: never held across an `.await`.
    rooms: Mutex<HashMap<i64, Subscribed>>,
}

struct Subscribed {
    watchers: usize,
    task: JoinHandle<()>,
}

/// Keeps this instance subscribed to a room's subject while it lives.
pub struct Watch {
    bus: Nats,
    room_id: i64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut rooms = self.bus.inner.rooms.lock();
        if let Some(subscribed) = rooms.get_mut(&self.room_id) {
            subscribed.watchers -= 1;
            if subscribed.watchers == 0
                && let Some(gone) = rooms.remove(&self.room_id)
            {
                // Dropping its `Subscriber` unsubscribes.
                gone.task.abort();
            }
        }
    }
}

impl Nats {
    /// Connects to `servers` (retrying in the background for as long as it takes) and
    /// subscribes to the instance-wide subjects. `listening` hears of the first connection.
    pub async fn start(
        servers: &[Url],
        instance: String,
        jobs: mpsc::Sender<Job>,
        metrics: Arc<Metrics>,
        listening: oneshot::Sender<()>,
    ) -> Result<Nats, String> {
        let up = Arc::new(AtomicBool::new(false));
        metrics.bus_up(false);
        let first = Arc::new(Mutex::new(Some(listening)));
        let callback = {
            let (up, metrics, jobs) = (up.clone(), metrics.clone(), jobs.clone());
            move |event: Event| {
                let (up, metrics, jobs, first) =
                    (up.clone(), metrics.clone(), jobs.clone(), first.clone());
                async move { on_event(event, &up, &metrics, &jobs, &first).await }
            }
        };
        let addresses: Vec<String> = servers.iter().map(Url::to_string).collect();
        let client = ConnectOptions::new()
            .name(format!("natter {instance}"))
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(10))
            // Back within a second or two of the server: the poll covers the gap meanwhile.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(2000))
            })
            .event_callback(callback)
            .connect(addresses.as_slice())
            .await
            .map_err(|e| format!("NATTER_BUS: cannot use {}: {e}", addresses.join(",")))?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        tokio::spawn(send_all(client.clone(), queued, metrics.clone()));
        for subject in [MEMBERS, SESSIONS] {
            match client.subscribe(subject).await {
                Ok(subscriber) => {
                    tokio::spawn(forward(subscriber, jobs.clone(), metrics.clone()));
                }
                Err(e) => return Err(format!("NATTER_BUS: cannot subscribe to {subject}: {e}")),
            }
        }
        tracing::info!(servers = %addresses.join(","), "connecting to NATS");
        Ok(Nats {
            inner: Arc::new(Inner {
                client,
                instance,
                jobs,
                metrics,
                up,
                outbox,
                rooms: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Whether NATS is reachable.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Subscribes to `room_id`'s subject (once, however many watch it) while the returned
    /// guard lives; the receiver, for the first watcher, hears once it is sent to the server.
    pub fn watch(&self, room_id: i64) -> (Watch, Option<oneshot::Receiver<()>>) {
        let mut rooms = self.inner.rooms.lock();
        let ready = match rooms.get_mut(&room_id) {
            Some(subscribed) => {
                subscribed.watchers += 1;
                None
            }
            None => {
                let (ready, subscribed) = oneshot::channel();
                let task = tokio::spawn(subscribe_room(
                    self.inner.client.clone(),
                    self.inner.up.clone(),
                    room_id,
                    self.inner.jobs.clone(),
                    self.inner.metrics.clone(),
                    ready,
                ));
                rooms.insert(room_id, Subscribed { watchers: 1, task });
                Some(subscribed)
            }
        };
        drop(rooms);
        let watch = Watch {
            bus: self.clone(),
            room_id,
        };
        (watch, ready)
    }

    /// Queues `wire` for `subject`; dropped while NATS is away or the outbox is full (the
    /// others' poll and resync repair it).
    fn send(&self, subject: String, wire: &Wire<'_>) {
        if !self.is_up() {
            return;
        }
        let payload = match serde_json::to_vec(wire) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode a bus message");
                return;
            }
        };
        if self
            .inner
            .outbox
            .try_send((subject, payload.into()))
            .is_err()
        {
            tracing::warn!("NATS outbox full; other instances will catch up by their poll");
        }
    }

    /// Committed events, one message per room, in commit order.
    pub async fn committed(&self, posts: Vec<Posted>) {
        for post in posts {
            let Some(seq) = post.events.last().map(|m| m.event) else {
                continue;
            };
            let (after, frames) = match &post.rendered {
                Some(r) => (
                    r.after,
                    Some(r.frames.iter().map(|f| Cow::Borrowed(f.as_str())).collect()),
                ),
                None => (None, None),
            };
            let wire = Wire::Posted {
                room: post.room_id,
                events: Cow::Borrowed(&post.events),
                after,
                frames,
            };
            let size: usize = post
                .events
                .iter()
                .map(|m| m.body.len() + m.author.len() + 512)
                .sum::<usize>()
                * 2;
            if size > MAX_CARRIED {
                let upto = Wire::Upto {
                    room: post.room_id,
                    seq,
                };
                self.send(room_subject(post.room_id), &upto);
            } else {
                self.send(room_subject(post.room_id), &wire);
            }
        }
    }

    /// Presence (`p`) or typing (`t`) in a room: only instances serving it hear.
    pub async fn room(&self, room_id: i64, kind: &str, user_id: i64) {
        let (room, user) = (room_id, user_id);
        let wire = match kind {
            "p" => Wire::Presence { room, user },
            _ => Wire::Typing { room, user },
        };
        self.send(room_subject(room_id), &wire);
    }

    /// A membership change (`j`, `l`, `r`): every instance hears.
    pub async fn member(&self, room_id: i64, kind: &str, user_id: i64) {
        let (room, user) = (room_id, user_id);
        let wire = match kind {
            "j" => Wire::Joined { room, user },
            "l" => Wire::Left { room, user },
            _ => Wire::Removed { room, user },
        };
        self.send(MEMBERS.to_string(), &wire);
    }

    /// Sessions ended: every instance hears.
    pub async fn sessions_ended(&self, sessions: &[Vec<u8>]) {
        // A sign-out everywhere ends at most a few hundred sessions: far below MAX_CARRIED.
        for chunk in sessions.chunks(1000) {
            let wire = Wire::Sessions {
                sessions: chunk.iter().map(|s| hex(s)).collect(),
            };
            self.send(SESSIONS.to_string(), &wire);
        }
    }

    /// A person's name changed: every instance hears.
    pub async fn names_changed(&self, user_id: i64, room_ids: &[i64]) {
        // Room ids are at most 20 characters each: 10,000 rooms stay far below MAX_CARRIED.
        let empty: &[i64] = &[];
        let mut chunks: Vec<&[i64]> = room_ids.chunks(10_000).collect();
        if chunks.is_empty() {
            chunks.push(empty);
        }
        for chunk in chunks {
            let wire = Wire::Names {
                user: user_id,
                rooms: chunk.to_vec(),
            };
            self.send(SESSIONS.to_string(), &wire);
        }
    }
}

/// Keeps `up`, `/metrics` and the log current, and asks for a full resync whenever the
/// connection is (re)made: what was said while it was away is gone.
async fn on_event(
    event: Event,
    up: &AtomicBool,
    metrics: &Metrics,
    jobs: &mpsc::Sender<Job>,
    first: &Mutex<Option<oneshot::Sender<()>>>,
) {
    match event {
        Event::Connected => {
            up.store(true, Ordering::Relaxed);
            metrics.bus_up(true);
            let first = first.lock().take();
            match first {
                Some(first) => {
                    tracing::info!("connected to NATS");
                    let _ = first.send(());
                }
                None => {
                    tracing::info!("NATS is back; resyncing active rooms, members and sessions");
                    metrics.listener_reconnected();
                }
            }
            let _ = jobs.send(Job::Listening).await;
        }
        Event::Disconnected => {
            up.store(false, Ordering::Relaxed);
            metrics.bus_fell_back();
            tracing::warn!(
                "NATS connection lost; live updates between instances fall back to the database poll until it is back"
            );
        }
        Event::SlowConsumer(_) => {
            tracing::warn!("NATS dropped messages for a slow subscription; the poll repairs them")
        }
        other => tracing::warn!(event = %other, "NATS"),
    }
}

/// Publishes the outbox's messages in order.
async fn send_all(
    client: Client,
    mut queued: mpsc::Receiver<(String, Bytes)>,
    metrics: Arc<Metrics>,
) {
    while let Some((subject, payload)) = queued.recv().await {
        match client.publish(subject, payload).await {
            Ok(()) => metrics.bus_sent(),
            Err(e) => tracing::warn!(error = %e, "could not publish to NATS"),
        }
    }
}

/// Subscribes to one room's subject, says so on `ready` once it is on its way (written to
/// the server's connection, when connected), and forwards
/// its messages until aborted (`Watch::drop`).
async fn subscribe_room(
    client: Client,
    up: Arc<AtomicBool>,
    room_id: i64,
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    ready: oneshot::Sender<()>,
) {
    let subscriber = match client.subscribe(room_subject(room_id)).await {
        Ok(subscriber) => subscriber,
        Err(e) => {
            tracing::warn!(error = %e, room_id, "could not subscribe to the room on NATS");
            return;
        }
    };
    // Written to the connection, not only queued in the client.
    if up.load(Ordering::Relaxed) {
        let _ = tokio::time::timeout(SUBSCRIBE_WAIT, client.flush()).await;
    }
    let _ = ready.send(());
    forward(subscriber, jobs, metrics).await;
}

/// Turns a subscription's messages into publisher jobs.
async fn forward(mut subscriber: Subscriber, jobs: mpsc::Sender<Job>, metrics: Arc<Metrics>) {
    while let Some(message) = subscriber.next().await {
        metrics.bus_received();
        metrics.notified();
        for job in parse(&message.payload) {
            if jobs.send(job).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_garbage_is_ignored() {
        let wire = Wire::Upto { room: 3, seq: 9 };
        let jobs = parse(&serde_json::to_vec(&wire).unwrap());
        assert!(matches!(jobs[..], [Job::Upto { room_id: 3, seq: 9 }]));
        let wire = Wire::Sessions {
            sessions: vec![hex(&[1, 255]), "zz".into()],
        };
        let Job::SessionsEnded(hashes) = &parse(&serde_json::to_vec(&wire).unwrap())[0] else {
            panic!()
        };
        assert_eq!(hashes, &vec![vec![1, 255]]);
        let wire = Wire::Names {
            user: 4,
            rooms: vec![8, 9],
        };
        let Job::NamesChanged { user_id, room_ids } =
            &parse(&serde_json::to_vec(&wire).unwrap())[0]
        else {
            panic!()
        };
        assert_eq!((*user_id, room_ids.as_slice()), (4, &[8, 9][..]));
        // A post whose events are of another room, or none, says nothing.
        let wire = Wire::Posted {
            room: 1,
            events: Cow::Owned(Vec::new()),
            after: None,
            frames: None,
        };
        assert!(parse(&serde_json::to_vec(&wire).unwrap()).is_empty());
        for garbage in [
            &b""[..],
            b"{}",
            b"{\"k\":\"m\"}",
            b"{\"k\":\"q\",\"room\":1}",
            b"\xff",
        ] {
            assert!(parse(garbage).is_empty());
        }
    }
}
