//! Web Push, server side: a local HTTP endpoint plays the push service. It decrypts what it
//! receives with the subscription's private key and auth secret (made here as a browser makes
//! them) and checks the VAPID token and headers. Settings are honoured (nothing / mentions /
//! all, per room and by default, "do not disturb", an open room, one's own messages); a 410
//! removes the subscription; signing out removes it; bad subscriptions are refused clearly.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use web_push_native::{
    Auth,
    jwt_simple::{
        algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey},
        claims::NoCustomClaims,
    },
    p256,
};

use crate::both;
use crate::common::{Browser, eventually, extract_attr, hostile_inputs, metric};

const WAIT: Duration = Duration::from_secs(10);

/// What the fake push service received, decrypted and checked.
#[derive(Debug, Clone)]
struct Received {
    /// The decrypted payload.
    payload: serde_json::Value,
    /// The VAPID token's audience and subject, and the key it was signed with (`k=`).
    aud: String,
    sub: String,
    key: String,
}

/// A push service on 127.0.0.1 for one browser's subscription: its keys, what it received, and
/// the status it answers with.
struct PushService {
    endpoint: String,
    p256dh: String,
    auth: [u8; 16],
    received: Arc<Mutex<Vec<Received>>>,
    problems: Arc<Mutex<Vec<String>>>,
    status: Arc<Mutex<u16>>,
}

impl PushService {
    /// Starts one, with a fresh key pair and auth secret as `PushManager.subscribe` makes them.
    async fn start() -> PushService {
        let secret = loop {
            if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        let p256dh = URL_SAFE_NO_PAD.encode(public.as_bytes());
        let auth: [u8; 16] = rand::random();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!(
            "http://127.0.0.1:{}/push/{:016x}",
            listener.local_addr().unwrap().port(),
            rand::random::<u64>()
        );
        let service = PushService {
            endpoint,
            p256dh,
            auth,
            received: Default::default(),
            problems: Default::default(),
            status: Arc::new(Mutex::new(201)),
        };
        let (received, problems, status) = (
            service.received.clone(),
            service.problems.clone(),
            service.status.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (secret, received, problems, status) = (
                    secret.clone(),
                    received.clone(),
                    problems.clone(),
                    status.clone(),
                );
                tokio::spawn(async move {
                    let Some((head, body)) = read_request(&mut conn).await else {
                        return;
                    };
                    match check(&head, body, &secret, &auth) {
                        Ok(r) => received.lock().unwrap().push(r),
                        Err(why) => problems.lock().unwrap().push(why),
                    }
                    let code = *status.lock().unwrap();
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        service
    }

    /// Subscribes `browser` (its session) to this service, as `js/notify.js` does.
    async fn subscribe(&self, browser: &Browser) {
        let r = self.post_subscription(browser, &self.endpoint).await;
        assert_eq!(r.status, 204, "subscribing: {}", r.body);
    }

    async fn post_subscription(&self, browser: &Browser, endpoint: &str) -> crate::common::Answer {
        let csrf = browser.csrf_from("/profile").await;
        browser
            .post_with(
                "/push/subscriptions",
                &[
                    ("endpoint", endpoint),
                    ("p256dh", &self.p256dh),
                    ("auth", &URL_SAFE_NO_PAD.encode(self.auth)),
                ],
                &[("origin", &browser.base), ("x-csrf-token", &csrf)],
            )
            .await
    }

    /// The texts of the pushes received so far.
    fn texts(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.payload["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits for a push saying `text`; then, a moment later, asserts that everything received
    /// since `before` pushes is exactly `want` (in any order): what should not have been pushed
    /// was queued before `text`, and would have arrived by then.
    async fn expect_exactly(&self, before: usize, text: &str, want: &[&str]) {
        let arrived = eventually(WAIT, || async { self.texts().iter().any(|t| t == text) }).await;
        assert!(
            arrived,
            "no push saying {text:?}; got {:?}; problems {:?}",
            self.texts(),
            self.problems.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got: Vec<String> = self.texts()[before..].to_vec();
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
        assert!(
            self.problems.lock().unwrap().is_empty(),
            "{:?}",
            self.problems.lock().unwrap()
        );
    }
}

/// Reads one HTTP/1.1 request: its head (lower-cased header names) and body.
async fn read_request(
    conn: &mut tokio::net::TcpStream,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let mut headers: Vec<(String, String)> = vec![(":request".into(), request_line)];
    for line in lines {
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

/// Checks a push as a push service and the browser would: POST, `aes128gcm`, a TTL, a VAPID
/// token signed by the key it names; then decrypts the body with the subscription's keys.
fn check(
    head: &[(String, String)],
    body: Vec<u8>,
    secret: &p256::SecretKey,
    auth: &[u8; 16],
) -> Result<Received, String> {
    let header = |name: &str| {
        head.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {name} header"))
    };
    if !header(":request")?.starts_with("POST /push/") {
        return Err(format!(
            "not a POST to the endpoint: {:?}",
            header(":request")
        ));
    }
    if header("content-encoding")? != "aes128gcm" {
        return Err("not aes128gcm".into());
    }
    header("ttl")?
        .parse::<u64>()
        .map_err(|_| "TTL is not a number".to_string())?;
    let authorization = header("authorization")?;
    let vapid = authorization
        .strip_prefix("vapid ")
        .ok_or("Authorization is not vapid")?;
    let (mut token, mut key) = (None, None);
    for part in vapid.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => token = Some(v.to_string()),
            Some(("k", v)) => key = Some(v.to_string()),
            _ => {}
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    let public =
        ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(&key).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let claims = public
        .verify_token::<NoCustomClaims>(&token, None)
        .map_err(|e| format!("VAPID token does not verify: {e}"))?;
    let aud = claims
        .audiences
        .map(|a| a.into_string().unwrap_or_default())
        .unwrap_or_default();
    let plain = web_push_native::decrypt(body, secret, &Auth::from(*auth))
        .map_err(|e| format!("does not decrypt: {e}"))?;
    let payload = serde_json::from_slice(&plain).map_err(|e| format!("not JSON: {e}"))?;
    Ok(Received {
        payload,
        aud,
        sub: claims.subject.unwrap_or_default(),
        key,
    })
}

/// Sets a room's notification setting (or the default's, with `code` = `None`), without
/// opening the room (which would read it).
async fn set_notify(b: &Browser, code: Option<&str>, value: &str) {
    let path = match code {
        Some(code) => format!("/rooms/{code}/notify"),
        None => "/profile/notify".to_string(),
    };
    let r = b.post_form("/profile", &path, &[("notify", value)]).await;
    assert_eq!(r.status, 303, "notify {value}: {}", r.body);
}

both! {
    #[settings(NATTER_PUSH_ALLOW_LOOPBACK = "true")]
    async fn a_mention_reaches_an_away_member_encrypted_and_signed(app: TestApp) {
        let ada = app.signed_in("push-ada@example.org", "ada").await;
        let bob = app.signed_in("push-bob@example.org", "bob").await;
        let code = app.create_room(&ada, "Garden").await;
        bob.join(&code).await;
        let service = PushService::start().await;
        service.subscribe(&bob).await;
        let profile = bob.get("/profile").await;
        assert!(profile.body.contains("data-subscribed=\"true\""), "{}", profile.body);
        let vapid = extract_attr(&profile.body, "data-vapid-key=\"").expect("the VAPID key on the profile");

        let long = format!("hello @bob {}", "ü".repeat(300));
        let seq = ada.say(&code, &long).await;
        service.expect_exactly(0, &service_text(&long), &[&service_text(&long)]).await;
        let r = service.received.lock().unwrap()[0].clone();
        assert_eq!(r.payload["title"], "Garden");
        assert_eq!(r.payload["room"], "Garden");
        assert_eq!(r.payload["author"], "ada");
        assert_eq!(r.payload["url"], format!("/rooms/{code}/messages/{seq}"));
        assert!(r.payload["tag"].as_str().unwrap().starts_with("natter-room-"));
        let text = r.payload["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), 120, "cut to 120 characters: {text}");
        assert!(text.ends_with('…'));
        // Signed with the key browsers subscribe with; for the push service's origin; by natter.
        assert_eq!(r.key, vapid);
        assert_eq!(r.aud, "http://127.0.0.1");
        assert_eq!(r.sub, app.base);
        assert_eq!(metric(&app.base, "natter_pushes_sent_total").await, Some(1.0));
        assert_eq!(metric(&app.base, "natter_pushes_dropped_total").await, Some(0.0));

        // The permalink opens the message for Bob.
        let opened = bob.get(r.payload["url"].as_str().unwrap()).await;
        assert!(matches!(opened.status, 200 | 303), "{}", opened.status);
        if opened.status == 303 {
            assert!(opened.location().ends_with(&format!("#msg-{seq}")), "{}", opened.location());
        }
    }

    #[settings(NATTER_PUSH_ALLOW_LOOPBACK = "true")]
    async fn settings_decide_what_is_pushed(app: TestApp) {
        let ada = app.signed_in("push-ada2@example.org", "ada").await;
        let bob = app.signed_in("push-bob2@example.org", "bob").await;
        let code = app.create_room(&ada, "Porch").await;
        bob.join(&code).await;
        let service = PushService::start().await;
        service.subscribe(&bob).await;

        // Default "all": every message by someone else; never one's own. (Bob posting opens
        // the room, which reads it: "one" has arrived before.)
        ada.say(&code, "one").await;
        service.expect_exactly(0, "one", &["one"]).await;
        bob.say(&code, "my own").await;
        ada.say(&code, "two").await;
        service.expect_exactly(1, "two", &["two"]).await;

        // Mentions only, by default: a plain message is not pushed, a mention is.
        set_notify(&bob, None, "mentions").await;
        ada.say(&code, "plain").await;
        ada.say(&code, "hey @bob").await;
        service.expect_exactly(2, "hey @bob", &["hey @bob"]).await;

        // The room's own setting wins: nothing, even for a mention; then all again. The setting
        // is read when the worker takes the message, so the test waits for a mention in another
        // room (taken after it, in commit order) before it changes the setting back.
        let other = app.create_room(&ada, "Shed").await;
        bob.join(&other).await;
        set_notify(&bob, Some(&code), "nothing").await;
        ada.say(&code, "@bob are you there").await;
        ada.say(&other, "@bob over here").await;
        service.expect_exactly(3, "@bob over here", &["@bob over here"]).await;
        set_notify(&bob, Some(&code), "all").await;
        ada.say(&code, "three").await;
        service.expect_exactly(4, "three", &["three"]).await;

        // Do not disturb: nothing until it is turned off.
        let r = bob.post_form("/profile", "/profile/dnd", &[("dnd", "1h")]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let profile = bob.get("/profile").await;
        assert!(profile.body.contains("Do not disturb is on until"), "{}", profile.body);
        let dnd = bob.get("/profile/dnd").await;
        assert!(dnd.body.contains("\"until\":1"), "{}", dnd.body);
        ada.say(&code, "during dnd @bob").await;
        // Do-not-disturb too is read when the message is taken: a push to someone else, taken
        // after it, says it was.
        let cyd = app.signed_in("push-cyd2@example.org", "cyd").await;
        cyd.join(&other).await;
        // An endpoint is one browser's: Cyd's own (the same service behind it).
        let cyds = format!("{}-cyd", service.endpoint);
        assert_eq!(service.post_subscription(&cyd, &cyds).await.status, 204);
        ada.say(&other, "for cyd").await;
        service.expect_exactly(5, "for cyd", &["for cyd"]).await;
        let r = bob.post_form("/profile", "/profile/dnd", &[("dnd", "off")]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(bob.get("/profile/dnd").await.body, "{\"until\":null}");
        ada.say(&code, "after dnd").await;
        service.expect_exactly(6, "after dnd", &["after dnd"]).await;

        // A direct message counts as a mention under "mentions".
        set_notify(&bob, None, "mentions").await;
        let r = ada.post_form("/home", "/dm/bob", &[]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let dm = r.location();
        let dm_code = ada.get(&dm).await.body;
        let dm_code = extract_attr(&dm_code, "data-room=\"").expect("the conversation's code");
        ada.say_on(&dm, &dm_code, "psst").await;
        service.expect_exactly(7, "psst", &["psst"]).await;
        let last = service.received.lock().unwrap().last().unwrap().payload.clone();
        assert_eq!(last["title"], "ada", "a direct message is titled by its author");
    }

    #[settings(NATTER_PUSH_ALLOW_LOOPBACK = "true")]
    async fn nothing_is_pushed_for_a_room_open_in_a_tab(app: TestApp) {
        let ada = app.signed_in("push-ada3@example.org", "ada").await;
        let bob = app.signed_in("push-bob3@example.org", "bob").await;
        let code = app.create_room(&ada, "Kitchen").await;
        bob.join(&code).await;
        let service = PushService::start().await;
        service.subscribe(&bob).await;
        let socket = bob.socket(&code, None).await.expect("Bob's socket opens");
        let online = eventually(WAIT, || async {
            let id = app.state.store.room_by_code(natter::domain::RoomCode::parse(&code).unwrap()).await.unwrap().unwrap().id;
            app.state.chat.online(id).await.len() == 1
        })
        .await;
        assert!(online, "Bob shows as online");
        // Carl, away, hears of it: then the worker has decided about Bob too.
        let carl = app.signed_in("push-carl3@example.org", "carl").await;
        carl.join(&code).await;
        let carls = PushService::start().await;
        carls.subscribe(&carl).await;
        ada.say(&code, "while open").await;
        carls.expect_exactly(0, "while open", &["while open"]).await;
        socket.close().await;
        let offline = eventually(WAIT, || async {
            let id = app.state.store.room_by_code(natter::domain::RoomCode::parse(&code).unwrap()).await.unwrap().unwrap().id;
            app.state.chat.online(id).await.is_empty()
        })
        .await;
        assert!(offline, "Bob's socket closed");
        ada.say(&code, "after closing").await;
        service.expect_exactly(0, "after closing", &["after closing"]).await;
    }

    #[settings(NATTER_PUSH_ALLOW_LOOPBACK = "true")]
    async fn a_gone_subscription_is_removed_and_sign_out_removes_one(app: TestApp) {
        let ada = app.signed_in("push-ada4@example.org", "ada").await;
        let bob = app.signed_in("push-bob4@example.org", "bob").await;
        let code = app.create_room(&ada, "Attic").await;
        bob.join(&code).await;
        let service = PushService::start().await;
        service.subscribe(&bob).await;
        *service.status.lock().unwrap() = 410;
        ada.say(&code, "into the void").await;
        service.expect_exactly(0, "into the void", &["into the void"]).await;
        let gone = eventually(WAIT, || async {
            bob.get("/profile").await.body.contains("data-subscribed=\"false\"")
        })
        .await;
        assert!(gone, "the subscription is forgotten after a 410");
        assert!(metric(&app.base, "natter_pushes_failed_total").await >= Some(1.0));
        ada.say(&code, "not sent").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(service.texts(), ["into the void"]);

        // Subscribed again (the browser renews it), then signing out deletes it with the session.
        *service.status.lock().unwrap() = 201;
        service.subscribe(&bob).await;
        assert!(app.state.store.any_push_subscription().await.unwrap());
        let r = bob.post_form("/profile", "/auth/logout", &[]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(!app.state.store.any_push_subscription().await.unwrap(), "sign-out removed it");
    }

    #[settings(NATTER_PUSH_ALLOW_LOOPBACK = "true")]
    async fn bad_subscriptions_and_choices_are_refused_clearly(app: TestApp) {
        let bob = app.signed_in("push-bob5@example.org", "bob").await;
        let service = PushService::start().await;
        let csrf = bob.csrf_from("/profile").await;
        let auth = URL_SAFE_NO_PAD.encode(service.auth);
        let post = |fields: Vec<(&'static str, String)>, headers: Vec<(&'static str, String)>| {
            let bob = &bob;
            async move {
                let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                bob.post_with("/push/subscriptions", &fields, &headers).await
            }
        };
        let good = |endpoint: &str| vec![
            ("endpoint", endpoint.to_string()),
            ("p256dh", service.p256dh.clone()),
            ("auth", auth.clone()),
        ];
        let headers = vec![("origin", bob.base.clone()), ("x-csrf-token", csrf.clone())];

        // No CSRF token, or another origin: 403.
        let r = post(good(&service.endpoint), vec![("origin", bob.base.clone())]).await;
        assert_eq!(r.status, 403);
        let r = post(good(&service.endpoint), vec![("origin", "https://evil.example".into()), ("x-csrf-token", csrf.clone())]).await;
        assert_eq!(r.status, 403);
        // Endpoints that are not a push service's: 422 with a reason.
        for endpoint in ["http://example.com/push", "ftp://x/", "", "javascript:alert(1)"] {
            let r = post(good(endpoint), headers.clone()).await;
            assert_eq!(r.status, 422, "{endpoint}: {}", r.body);
            assert!(r.body.contains("\"error\""), "{}", r.body);
        }
        // Keys that are not keys.
        let mut bad = good(&service.endpoint);
        bad[1].1 = URL_SAFE_NO_PAD.encode([4u8; 65]);
        assert_eq!(post(bad, headers.clone()).await.status, 422);
        let mut bad = good(&service.endpoint);
        bad[2].1 = "short".into();
        assert_eq!(post(bad, headers.clone()).await.status, 422);
        // Every hostile input in every field: refused or taken, never a 500.
        for input in hostile_inputs() {
            for field in 0..3 {
                let mut fields = good(&service.endpoint);
                fields[field].1 = input.clone();
                let r = post(fields, headers.clone()).await;
                assert!(matches!(r.status, 204 | 413 | 422), "{field} {input:?}: {} {}", r.status, r.body);
            }
            let r = bob.post_form("/profile", "/profile/dnd", &[("dnd", &input)]).await;
            assert!(matches!(r.status, 303 | 413 | 422), "dnd {input:?}: {}", r.status);
            if r.status == 422 {
                assert!(r.body.contains("Choose off or one of the durations listed."));
            }
        }
        // At most ten browsers per person.
        for i in 0..12 {
            let r = post(good(&format!("https://push.example/{i}")), headers.clone()).await;
            assert_eq!(r.status, if i < 10 { 204 } else { 422 }, "{i}: {}", r.body);
        }
        // Unsubscribing: the row goes; unknown endpoints are fine.
        let r = bob.post_with("/push/subscriptions/delete", &[("endpoint", "https://push.example/0")], &headers.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
        assert_eq!(r.status, 204);
        let r = post(good("https://push.example/11"), headers.clone()).await;
        assert_eq!(r.status, 204, "room for one more: {}", r.body);
    }

    async fn the_service_worker_covers_the_whole_site(app: TestApp) {
        // Signed out too: a browser checks for a new worker whoever is signed in.
        let guest = app.browser();
        let r = guest.get("/sw.js").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("service-worker-allowed"), Some("/"));
        assert!(r.header("content-type").unwrap().starts_with("text/javascript"));
        assert!(r.body.contains("showNotification") && r.body.contains("notificationclick"));
        // Without the loopback switch, a local push service is refused.
        let bob = app.signed_in("push-bob6@example.org", "bob").await;
        let service = PushService::start().await;
        let r = service.post_subscription(&bob, &service.endpoint).await;
        assert_eq!(r.status, 422, "{}", r.body);
        let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
        for name in ["natter_pushes_sent_total", "natter_pushes_failed_total", "natter_pushes_dropped_total"] {
            assert!(metrics.contains(name), "{name} in /metrics");
        }
    }
}

/// What a push says of `text`: cut to 120 characters.
fn service_text(text: &str) -> String {
    if text.chars().count() <= 120 {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(119).collect();
    cut.push('…');
    cut
}
