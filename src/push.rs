//! Web Push (issue 18): telling people of a message while no natter tab of theirs is open.
//!
//! After a batch of posts commits, the publisher hands its messages to `Push::committed`, which
//! only puts them in a bounded queue (`QUEUE`): a full queue drops the message and counts it
//! (`natter_pushes_dropped_total`), so a slow push service never slows posting. One worker task
//! takes them in order and, for each, reads the room's members who have a subscription and
//! decides per subscription (`wanted`): not the author, not someone who has read it already or
//! has the room open (a socket, on any instance), not during "do not disturb", and as their
//! setting for the room says (all / mentions and direct messages / nothing). Each push is a
//! small JSON payload encrypted for the browser (RFC 8291, aes128gcm) and signed for the push
//! service (VAPID, RFC 8292) by `web-push-native`, sent by reqwest with bounded concurrency. A
//! push service answering 404 or 410 means the subscription is gone: its row is deleted.
//!
//! The VAPID key is the operator's (`NATTER_VAPID_PRIVATE_KEY`) or made at first start and
//! kept in the database (`vapid_keys`), so every instance signs with the same key and browsers'
//! subscriptions outlive restarts.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use web_push_native::{
    Auth, WebPushBuilder,
    jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair},
    p256,
};

use crate::{
    chat::Chat,
    config::PushConfig,
    domain::notify::Notify,
    metrics::Metrics,
    store::{Message, PushRecipient, Store, now_ms},
};

/// Messages waiting for the worker; more are dropped (and counted).
pub const QUEUE: usize = 1024;
/// The most browsers one person may subscribe.
pub const MAX_SUBSCRIPTIONS: i64 = 10;
/// Pushes in flight at once.
const CONCURRENCY: usize = 16;
/// How long a push service has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a push service keeps a push for a browser that is offline (its `TTL`, and the
/// VAPID token's lifetime: at most 24 h by RFC 8292).
const TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// A message's text in a push is cut to about this many characters.
pub const TEXT_CHARS: usize = 120;
/// How often "does anybody have a subscription?" is asked again while somebody has (so that
/// once nobody has, messages cost one query per run instead of one each).
const ANY_EVERY: Duration = Duration::from_secs(30);
/// The longest endpoint URL accepted (push services' are around 200–500 characters).
pub const MAX_ENDPOINT: usize = 1024;

/// A committed message, as much of it as a push needs.
#[derive(Debug)]
struct Pending {
    room_id: i64,
    seq: i64,
    user_id: i64,
    author: String,
    body: String,
    files: usize,
}

/// What the service worker receives (`assets/sw.js` shows it).
#[derive(Debug, Serialize)]
pub struct Payload {
    /// The notification's title: the room's name, or the author in a direct conversation.
    pub title: String,
    /// The room's name as shown (its code when it has none; "Direct messages").
    pub room: String,
    /// Who wrote.
    pub author: String,
    /// The text, cut to about `TEXT_CHARS` characters.
    pub text: String,
    /// The message's permalink (a path on natter's origin).
    pub url: String,
    /// One per room: a room's notifications replace each other instead of piling up.
    pub tag: String,
}

/// The push side. Cheap to clone.
#[derive(Clone)]
pub struct Push {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    chat: Chat,
    metrics: Arc<Metrics>,
    key: ES256KeyPair,
    /// The VAPID public key as browsers want it (`applicationServerKey`): base64url of the
    /// uncompressed point.
    public_key: String,
    subject: String,
    allow_loopback: bool,
    /// Whether anybody had a subscription when last asked (re-read every `ANY_EVERY`, set at
    /// once when someone here subscribes). While false, the worker asks the database again for
    /// each run of messages it takes, after taking them: a subscription made on any instance
    /// before a message committed is seen, and nobody subscribed costs one cheap query per run.
    any: AtomicBool,
    queue: mpsc::Sender<Pending>,
    client: reqwest::Client,
}

impl Push {
    /// Loads (or makes and stores) the VAPID key, starts the worker (until `stop`), and asks
    /// `chat` for every committed batch.
    pub async fn start(
        store: Store,
        chat: Chat,
        config: &PushConfig,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Push, String> {
        let encoded = match &config.vapid_private_key {
            Some(key) => key.expose().to_string(),
            None => store
                .vapid_key(
                    || URL_SAFE_NO_PAD.encode(ES256KeyPair::generate().to_bytes()),
                    now_ms(),
                )
                .await
                .map_err(|e| format!("cannot read or store the VAPID key: {e}"))?,
        };
        let key = URL_SAFE_NO_PAD
            .decode(&encoded)
            .ok()
            .and_then(|bytes| ES256KeyPair::from_bytes(&bytes).ok())
            .ok_or("the VAPID key in the database is not a P-256 private key")?;
        let public_key =
            URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make the push client: {e}"))?;
        let any = store.any_push_subscription().await.unwrap_or(true);
        let (queue, pending) = mpsc::channel(QUEUE);
        let push = Push {
            inner: Arc::new(Inner {
                store,
                chat: chat.clone(),
                metrics,
                key,
                public_key,
                subject: config.vapid_subject.clone(),
                allow_loopback: config.allow_loopback,
                any: AtomicBool::new(any),
                queue,
                client,
            }),
        };
        let hook = push.clone();
        chat.after_commit(Box::new(move |messages| hook.committed(messages)));
        tokio::spawn(push.clone().worker(pending, stop));
        Ok(push)
    }

    /// The VAPID public key for `PushManager.subscribe` (base64url).
    pub fn public_key(&self) -> &str {
        &self.inner.public_key
    }

    /// Whether `endpoint` is a push service natter will send to: `https://`, or with
    /// `NATTER_PUSH_ALLOW_LOOPBACK` also `http://` on a loopback address.
    pub fn endpoint_allowed(&self, endpoint: &str) -> bool {
        endpoint_allowed(endpoint, self.inner.allow_loopback)
    }

    /// Someone here subscribed: messages are worth queueing from now on.
    pub fn subscribed(&self) {
        self.inner.any.store(true, Ordering::Relaxed);
    }

    /// A batch of posts committed (called by the publisher, after the commit): queue its new
    /// messages, never waiting. System lines, edits and deletes are not pushed.
    fn committed(&self, messages: &[Message]) {
        for m in messages {
            if m.is_system() || m.is_change() || m.is_deleted() {
                continue;
            }
            let pending = Pending {
                room_id: m.room_id,
                seq: m.seq,
                user_id: m.user_id,
                author: m.author.clone(),
                body: m.body.clone(),
                files: m.attachments.0.len(),
            };
            // While nobody had a subscription a full queue loses no push worth counting.
            if self.inner.queue.try_send(pending).is_err() && self.inner.any.load(Ordering::Relaxed)
            {
                self.inner.metrics.push_dropped();
            }
        }
    }

    async fn worker(self, mut pending: mpsc::Receiver<Pending>, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut any_tick = tokio::time::interval(ANY_EVERY);
        any_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = pending.recv() => {
                    let Some(next) = next else { return };
                    // Everything committed so far, then the question: each message taken was
                    // committed before it is asked.
                    let mut run = vec![next];
                    while let Ok(more) = pending.try_recv() {
                        run.push(more);
                    }
                    if !self.inner.any.load(Ordering::Relaxed) {
                        // A database that does not answer: try to push, as on start.
                        let any = self.inner.store.any_push_subscription().await.unwrap_or(true);
                        self.inner.any.store(any, Ordering::Relaxed);
                        if !any {
                            continue;
                        }
                    }
                    for m in run {
                        if let Err(e) = self.fan_out(m, &slots).await {
                            tracing::warn!(error = %e, "could not read whom to push to");
                        }
                    }
                }
                _ = any_tick.tick() => {
                    if let Ok(any) = self.inner.store.any_push_subscription().await {
                        self.inner.any.store(any, Ordering::Relaxed);
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Sends one message to every subscription that wants it.
    async fn fan_out(
        &self,
        m: Pending,
        slots: &Arc<Semaphore>,
    ) -> Result<(), crate::store::StoreError> {
        let store = &self.inner.store;
        let recipients = store.push_recipients(m.room_id, m.seq, m.user_id).await?;
        if recipients.is_empty() {
            return Ok(());
        }
        let Some((code, name, direct)) = store.push_room(m.room_id).await? else {
            return Ok(());
        };
        let online = self.inner.chat.online(m.room_id).await;
        let now = now_ms();
        let payload = payload(&m, &code, &name, direct);
        let Ok(body) = serde_json::to_vec(&payload) else {
            return Ok(());
        };
        for r in recipients {
            if !wanted(&r, m.seq, direct, &online, now) {
                continue;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return Ok(());
            };
            let push = self.clone();
            let body = body.clone();
            tokio::spawn(async move {
                push.send(&r, body).await;
                drop(permit);
            });
        }
        Ok(())
    }

    /// Encrypts `body` for one subscription and posts it to its push service.
    async fn send(&self, r: &PushRecipient, body: Vec<u8>) {
        let sub = &r.subscription;
        let request = (|| {
            if !self.endpoint_allowed(&sub.endpoint) {
                return None;
            }
            let public =
                p256::PublicKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(&sub.p256dh).ok()?)
                    .ok()?;
            let auth: [u8; 16] = URL_SAFE_NO_PAD.decode(&sub.auth).ok()?.try_into().ok()?;
            WebPushBuilder::new(sub.endpoint.parse().ok()?, public, Auth::from(auth))
                .with_valid_duration(TTL)
                .with_vapid(&self.inner.key, &self.inner.subject)
                .build(body)
                .ok()
        })();
        let Some(request) = request else {
            // Checked when it was stored; a row that no longer parses can never be used.
            tracing::warn!(
                subscription = sub.id,
                "unusable push subscription: forgetting it"
            );
            self.inner.metrics.push_failed();
            let _ = self.inner.store.forget_push_subscription(sub.id).await;
            return;
        };
        let (parts, body) = request.into_parts();
        let sent = self
            .inner
            .client
            .post(sub.endpoint.as_str())
            .headers(parts.headers)
            .header("Urgency", "normal")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => self.inner.metrics.push_sent(),
            Ok(answer) => {
                self.inner.metrics.push_failed();
                let status = answer.status().as_u16();
                if status == 404 || status == 410 {
                    tracing::info!(
                        subscription = sub.id,
                        status,
                        "push subscription gone: forgetting it"
                    );
                    if let Err(e) = self.inner.store.forget_push_subscription(sub.id).await {
                        tracing::warn!(error = %e, "could not forget a push subscription");
                    }
                } else {
                    tracing::warn!(subscription = sub.id, status, "push service refused a push");
                }
            }
            Err(e) => {
                self.inner.metrics.push_failed();
                tracing::warn!(subscription = sub.id, error = %e, "push service unreachable");
            }
        }
    }
}

/// A subscription's keys as a browser sends them (`PushSubscription.toJSON().keys`), checked:
/// `p256dh` a P-256 public key, `auth` 16 bytes, both base64url (padding tolerated). Returns
/// them without padding, or why they were refused.
pub fn check_keys(p256dh: &str, auth: &str) -> Result<(String, String), &'static str> {
    let p256dh = p256dh.trim().trim_end_matches('=');
    let auth = auth.trim().trim_end_matches('=');
    let key = URL_SAFE_NO_PAD
        .decode(p256dh)
        .ok()
        .filter(|k| k.len() == 65)
        .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok());
    if key.is_none() {
        return Err("The subscription's p256dh key is not a P-256 public key.");
    }
    if URL_SAFE_NO_PAD.decode(auth).map(|a| a.len()) != Ok(16) {
        return Err("The subscription's auth secret is not 16 bytes of base64url.");
    }
    Ok((p256dh.to_string(), auth.to_string()))
}

/// Whether `endpoint` is one natter sends to: an `https://` URL (a push service), or, when
/// `allow_loopback`, an `http://` URL on 127.0.0.1, `[::1]` or localhost (a local push service
/// in tests). At most `MAX_ENDPOINT` characters, and no credentials in it.
pub fn endpoint_allowed(endpoint: &str, allow_loopback: bool) -> bool {
    if endpoint.len() > MAX_ENDPOINT {
        return false;
    }
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() || url.host().is_none() {
        return false;
    }
    match url.scheme() {
        "https" => true,
        "http" => {
            allow_loopback
                && match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                }
        }
        _ => false,
    }
}

/// Whether `r` is to hear of message `seq`: not while they do not want to be disturbed, not if
/// they have read it or have the room open (`online`: a socket on it, any instance), and as
/// their setting says. In a direct conversation every message counts as a mention.
pub fn wanted(r: &PushRecipient, seq: i64, direct: bool, online: &HashSet<i64>, now: i64) -> bool {
    if r.dnd_until.is_some_and(|until| until > now)
        || r.last_read_seq >= seq
        || online.contains(&r.user_id)
    {
        return false;
    }
    match Notify::parse(&r.notify).unwrap_or(Notify::All) {
        Notify::All => true,
        Notify::Mentions => r.mentioned || direct,
        Notify::Nothing => false,
    }
}

/// The payload for message `m` of the room `code`/`name`.
fn payload(m: &Pending, code: &str, name: &str, direct: bool) -> Payload {
    let room = if direct {
        "Direct messages".to_string()
    } else if name.is_empty() {
        code.to_string()
    } else {
        name.to_string()
    };
    let text = match (m.body.trim().is_empty(), m.files) {
        (true, 1) => "sent a file".to_string(),
        (true, n) => format!("sent {n} files"),
        (false, _) => cut(&m.body, TEXT_CHARS),
    };
    Payload {
        title: if direct {
            m.author.clone()
        } else {
            room.clone()
        },
        room,
        author: m.author.clone(),
        text,
        url: format!("/rooms/{code}/messages/{}", m.seq),
        tag: format!("natter-room-{}", m.room_id),
    }
}

/// `text` cut to at most `max` characters (an ellipsis ending it when it was longer), its line
/// breaks as spaces.
fn cut(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max - 1).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PushSubscription;

    fn recipient(notify: &str, mentioned: bool) -> PushRecipient {
        PushRecipient {
            subscription: PushSubscription {
                id: 1,
                endpoint: "https://push.example/x".into(),
                p256dh: String::new(),
                auth: String::new(),
            },
            user_id: 7,
            notify: notify.into(),
            mentioned,
            last_read_seq: 4,
            dnd_until: None,
        }
    }

    #[test]
    fn settings_decide_what_is_pushed() {
        let none = HashSet::new();
        assert!(wanted(&recipient("all", false), 5, false, &none, 0));
        assert!(!wanted(&recipient("mentions", false), 5, false, &none, 0));
        assert!(wanted(&recipient("mentions", true), 5, false, &none, 0));
        assert!(wanted(&recipient("mentions", false), 5, true, &none, 0));
        assert!(!wanted(&recipient("nothing", true), 5, true, &none, 0));
        // Read already, or the room open somewhere.
        assert!(!wanted(&recipient("all", true), 4, false, &none, 0));
        assert!(!wanted(
            &recipient("all", true),
            5,
            false,
            &HashSet::from([7]),
            0
        ));
        // Do not disturb: until then, not after.
        let mut r = recipient("all", true);
        r.dnd_until = Some(1000);
        assert!(!wanted(&r, 5, false, &none, 999));
        assert!(wanted(&r, 5, false, &none, 1000));
    }

    #[test]
    fn only_https_endpoints_unless_loopback_is_allowed() {
        assert!(endpoint_allowed(
            "https://fcm.googleapis.com/fcm/send/abc",
            false
        ));
        assert!(!endpoint_allowed("http://127.0.0.1:9/push", false));
        assert!(endpoint_allowed("http://127.0.0.1:9/push", true));
        assert!(endpoint_allowed("http://[::1]:9/push", true));
        assert!(endpoint_allowed("http://localhost:9/push", true));
        for bad in [
            "http://10.0.0.1/push",
            "http://example.com/push",
            "https://user:pw@push.example/",
            "ftp://push.example/",
            "javascript:alert(1)",
            "",
            "/relative",
        ] {
            assert!(!endpoint_allowed(bad, true), "{bad}");
        }
        assert!(!endpoint_allowed(
            &format!("https://a.example/{}", "x".repeat(MAX_ENDPOINT)),
            true
        ));
    }

    #[test]
    fn text_is_cut_to_about_120_characters() {
        assert_eq!(cut("short\nline", 120), "short line");
        let long = "é".repeat(300);
        let c = cut(&long, 120);
        assert_eq!(c.chars().count(), 120);
        assert!(c.ends_with('…'));
    }
}
