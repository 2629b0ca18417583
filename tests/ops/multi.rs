//! Two natter instances on one PostgreSQL database.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::common::metric;
use crate::common::{
    Backend, Browser, Closed, SocketRefused, TestApp, TestDb, assert_exactly, eventually,
};
use crate::procs::NatsServer;

pub const WAIT: Duration = Duration::from_secs(20);

/// A fresh PostgreSQL database (or `None` when PostgreSQL is unavailable and not required).
pub async fn pg() -> Option<Arc<TestDb>> {
    TestDb::create(Backend::Postgres).await.map(Arc::new)
}

pub const FAST: &[(&str, &str)] = &[("NATTER_LIMIT_POSTS", "100000/1s")];

/// Which bus a multi-instance test's instances talk over: PostgreSQL NOTIFY, or NATS through
/// a `nats-server` of the test's own.
pub enum TestBus {
    Notify,
    Nats(NatsServer),
}

impl TestBus {
    /// NATS, or `None` (skipped, or failed when required) without `nats-server`.
    pub async fn nats() -> Option<TestBus> {
        NatsServer::start().await.map(TestBus::Nats)
    }

    /// `settings` and the one that chooses this bus.
    pub fn with<'a>(&'a self, settings: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = settings.to_vec();
        if let TestBus::Nats(server) = self {
            all.push(("NATTER_BUS", &server.url));
        }
        all
    }

    /// The test's NATS server, if it runs on NATS.
    pub fn server(&mut self) -> Option<&mut NatsServer> {
        match self {
            TestBus::Nats(server) => Some(server),
            TestBus::Notify => None,
        }
    }
}

/// Runs each named `async fn name(bus: TestBus)` twice: `name::notify` and `name::nats`.
macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn notify() {
                super::$name(super::TestBus::Notify).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats() {
                if let Some(bus) = super::TestBus::nats().await {
                    super::$name(bus).await
                }
            }
        }
    )*};
}
pub(crate) use on_both_buses;

on_both_buses!(
    messages_posted_on_either_instance_reach_every_client_once_in_order,
    presence_joins_and_leaves_cross_instances,
    signing_out_on_one_instance_closes_sockets_on_the_other,
    a_username_chosen_on_one_instance_counts_at_once_on_the_other,
    posts_into_two_rooms_from_two_instances_never_deadlock,
    edits_and_deletes_made_on_one_instance_reach_the_other,
    activity_in_another_room_crosses_instances,
    typing_on_one_instance_shows_on_the_other,
    room_settings_changed_on_one_instance_reach_the_other,
    a_rename_or_a_deletion_on_one_instance_shows_on_the_others_next_page,
    a_first_push_subscription_on_one_instance_counts_at_once_on_the_other,
);

/// Notifications instance `base` has received from the others so far.
pub async fn notifications(base: &str) -> f64 {
    metric(base, "natter_notifications_received_total")
        .await
        .unwrap_or(0.0)
}

/// Whether instance `base` receives more notifications than `before` within `WAIT`.
pub async fn notified_beyond(base: &str, before: f64) -> bool {
    eventually(WAIT, || async { notifications(base).await > before }).await
}

/// Two instances on one database: ada, signed in on A, made a room that bob, on B, joined.
pub struct TwoInstances {
    pub a: TestApp,
    pub b: TestApp,
    pub ada: Browser,
    pub bob: Browser,
    pub code: String,
}

impl TwoInstances {
    /// `a_settings` configure instance A (B runs with the defaults); both talk over `bus`.
    pub async fn start(
        db: &Arc<TestDb>,
        bus: &TestBus,
        room: &str,
        a_settings: &[(&str, &str)],
    ) -> Self {
        let a = TestApp::start_on(db.clone(), None, &bus.with(a_settings)).await;
        let b = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
        let ada = a.signed_in("ada@example.org", "ada").await;
        let code = ada.create_room(room).await;
        let bob = Browser::signed_in(&b.base, "bob@example.org", "bob").await;
        bob.join(&code).await;
        Self {
            a,
            b,
            ada,
            bob,
            code,
        }
    }
}

/// Posts `n` messages with small random pauses, so two sides interleave.
pub async fn post_side(who: &Browser, code: &str, tag: &str, n: usize) {
    for i in 0..n {
        who.say(code, &format!("{tag} {i}")).await;
        if rand::random::<u8>() < 64 {
            tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 5)).await;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn messages_posted_on_either_instance_reach_every_client_once_in_order(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Across").await;
    let bob = Browser::signed_in(&b.base, "bob@example.org", "bob").await;
    bob.join(&code).await;
    let ada_on_b = Browser::new(&b.base);
    ada_on_b.dev_sign_in("ada@example.org").await;

    let bob_on_a = Browser::new(&a.base);
    bob_on_a.dev_sign_in("bob@example.org").await;
    let mut sockets = vec![
        ada.socket(&code, Some(0)).await.unwrap(),
        ada_on_b.socket(&code, Some(0)).await.unwrap(),
        bob.socket(&code, Some(0)).await.unwrap(),
        bob_on_a.socket(&code, Some(0)).await.unwrap(),
    ];
    let per_side = 40;
    tokio::join!(
        post_side(&ada, &code, "from A", per_side),
        post_side(&bob, &code, "from B", per_side)
    );
    for socket in &mut sockets {
        assert_exactly(
            &socket.seqs_until(2 * per_side, WAIT).await,
            1,
            2 * per_side as i64,
        );
    }
    // They came by notification (the poll alone would deliver them too, only later).
    for app in [&a, &b] {
        let heard = metric(&app.base, "natter_notifications_received_total").await;
        assert!(
            heard.is_some_and(|n| n > 0.0),
            "{} heard of the other's posts by notification: {heard:?}",
            app.base
        );
    }

    // Cross-instance latency: posted through A, received by a socket held by B.
    let catch_ups = || async {
        metric(&b.base, "natter_hub_catch_ups_total")
            .await
            .unwrap_or(0.0)
    };
    let read_back = catch_ups().await;
    let mut latencies = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        let seq = ada.say(&code, &format!("latency {i}")).await;
        assert!(
            sockets[2]
                .wait_for(&format!("id=\"msg-{seq}\""), WAIT)
                .await
        );
        latencies.push(started.elapsed());
    }
    // NOTIFY says where to look, and B reads each post back; NATS hands B the post and its
    // frame (a poll landing between a commit and its message may read one).
    let read_back = catch_ups().await - read_back;
    match bus {
        TestBus::Notify => assert!(read_back >= 100.0, "B read posts back: {read_back}"),
        TestBus::Nats(_) => assert!(read_back <= 2.0, "B read {read_back} posts back"),
    }
    latencies.sort();
    eprintln!(
        "cross-instance post→delivery over {} messages on {} (debug build, HTTP post included): p50 {:?}, p99 {:?}",
        latencies.len(),
        match bus {
            TestBus::Notify => "NOTIFY",
            TestBus::Nats(_) => "NATS",
        },
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

async fn presence_joins_and_leaves_cross_instances(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let TwoInstances {
        a,
        b,
        ada,
        bob,
        code,
    } = TwoInstances::start(&db, &bus, "Presence", &[]).await;
    let mut ada_socket = ada.socket(&code, Some(0)).await.unwrap();
    assert!(ada_socket.wait_for("1 online · 2 members", WAIT).await);

    let bob_socket = bob.socket(&code, Some(0)).await.unwrap();
    assert!(
        ada_socket.wait_for("2 online · 2 members", WAIT).await,
        "bob, on B, shows online for ada on A"
    );
    // A page rendered by A shows it too.
    assert!(
        ada.get(&format!("/rooms/{code}"))
            .await
            .body
            .contains("2 online · 2 members")
    );
    bob_socket.close().await;
    assert!(
        ada_socket.wait_for_new("1 online · 2 members", WAIT).await,
        "bob went offline"
    );

    let cyd = Browser::signed_in(&b.base, "cyd@example.org", "cyd").await;
    cyd.join(&code).await;
    assert!(
        ada_socket
            .wait_for("hx-swap-oob=\"beforeend\"><li", WAIT)
            .await,
        "cyd's join on B appears on A"
    );
    assert!(ada_socket.wait_for("1 online · 3 members", WAIT).await);

    // Bob has a socket on A and leaves through B: A closes it with 4404.
    let bob_on_a = Browser::new(&a.base);
    bob_on_a.dev_sign_in("bob@example.org").await;
    let mut bob_socket = bob_on_a.socket(&code, Some(0)).await.unwrap();
    assert!(bob_socket.wait_for("id=\"members\"", WAIT).await);
    bob.leave(&code).await;
    assert_eq!(bob_socket.closed(WAIT).await, Closed::Code(4404));
    // A checks reconnecting sockets against its hub for the room (ada's socket keeps it
    // active): once bob's socket was closed, the hub no longer counts him a member.
    assert_eq!(
        bob_on_a.socket(&code, Some(0)).await.err(),
        Some(SocketRefused(404)),
        "bob cannot reconnect on A"
    );
    assert!(
        ada_socket
            .wait_for("data-online=\"false\" hidden", WAIT)
            .await,
        "bob's entry is hidden for ada"
    );
}

async fn signing_out_on_one_instance_closes_sockets_on_the_other(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Out").await;
    // The same session (cookie) used on B.
    let ada_on_b = ada.same_session_on(&b.base);
    let mut socket = ada_on_b.socket(&code, Some(0)).await.unwrap();
    assert!(socket.wait_for("id=\"members\"", WAIT).await);
    ada.post_form("/home", "/auth/logout", &[]).await;
    assert_eq!(socket.closed(WAIT).await, Closed::Code(4401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_still_arrive_after_the_listener_connection_is_killed() {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, FAST).await;
    let b = TestApp::start_on(db.clone(), None, FAST).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Listener").await;
    let bob = Browser::signed_in(&b.base, "bob@example.org", "bob").await;
    bob.join(&code).await;
    let mut socket = bob.socket(&code, Some(0)).await.unwrap();
    ada.say(&code, "before").await;
    assert_exactly(&socket.seqs_until(1, WAIT).await, 1, 1);

    let crate::common::TestDb::Postgres {
        admin_url, name, ..
    } = &*db
    else {
        unreachable!()
    };
    let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
    let listeners = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'natter listener' AND query ILIKE 'LISTEN%'",
        )
        .bind(name)
        .fetch_all(&admin)
        .await
        .unwrap()
    };
    let before = listeners().await;
    assert_eq!(before.len(), 2, "one listener per instance: {before:?}");
    for pid in &before {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&admin)
            .await
            .unwrap();
    }
    for i in 0..10 {
        ada.say(&code, &format!("during {i}")).await;
    }
    // Both listen again, on new connections, and say so.
    for app in [&a, &b] {
        assert!(
            eventually(WAIT, || async {
                metric(&app.base, "natter_listener_reconnects_total")
                    .await
                    .is_some_and(|n| n >= 1.0)
            })
            .await,
            "{} counted its listener's reconnect",
            app.base
        );
    }
    assert!(
        eventually(WAIT, || async {
            let now = listeners().await;
            now.len() == 2 && now.iter().all(|pid| !before.contains(pid))
        })
        .await,
        "two new LISTEN connections"
    );
    assert_exactly(&socket.seqs_until(11, WAIT).await, 1, 11);
    // After the reconnect, news comes by notification again, not only by the poll.
    let heard = notifications(&b.base).await;
    ada.say(&code, "after").await;
    assert_exactly(&socket.seqs_until(12, WAIT).await, 1, 12);
    assert!(
        notified_beyond(&b.base, heard).await,
        "B heard of the post by notification"
    );
    admin.close().await;
}

async fn a_username_chosen_on_one_instance_counts_at_once_on_the_other(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let on_a = Browser::new(&a.base);
    on_a.dev_sign_in("ada@example.org").await;
    let on_b = on_a.same_session_on(&b.base);
    // B sees the session before the username exists...
    assert_eq!(on_b.get("/home").await.location(), "/username");
    let chosen = on_a
        .post_form("/username", "/username", &[("username", "ada")])
        .await;
    assert_eq!(chosen.status, 303);
    // ...and right after it is chosen on A, B agrees.
    assert_eq!(on_b.get("/home").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_post_racing_through_two_instances_is_stored_once_without_a_seq_hole() {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &[]).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Race").await;
    let room = a
        .state
        .store
        .room_by_code(natter::domain::RoomCode::parse(&code).unwrap())
        .await
        .unwrap()
        .unwrap();
    let user_id = a.state.store.members(room.id).await.unwrap()[0].user_id;
    // Two independent writers on one database, as two instances have.
    let (one, _c1) = natter::store::Store::connect(&db.url(), 4).await.unwrap();
    let (two, _c2) = natter::store::Store::connect(&db.url(), 4).await.unwrap();
    let post = |client_id: String| natter::store::NewPost {
        room_id: room.id,
        user_id,
        author: "ada".into(),
        body: natter::domain::MessageBody::parse("double").unwrap(),
        client_id: Some(client_id),
        attachments: Vec::new(),
    };
    use natter::store::PostOutcome::{AlreadyPosted, Posted};
    for i in 0..50 {
        let id = format!("race-{i}");
        let (x, y) = tokio::join!(
            one.post_message(post(id.clone())),
            two.post_message(post(id))
        );
        let seqs = match (x.unwrap(), y.unwrap()) {
            (Posted(m), AlreadyPosted(s)) | (AlreadyPosted(s), Posted(m)) => (m.seq, s),
            other => panic!("expected one post and one repeat, got {other:?}"),
        };
        assert_eq!(seqs.0, seqs.1);
        assert_eq!(seqs.0, i + 1, "seqs stay contiguous");
    }
    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_opens_at_most_natter_db_pool_connections() {
    let Some(db) = pg().await else { return };
    let TestDb::Postgres {
        admin_url, name, ..
    } = &*db
    else {
        unreachable!("pg() makes PostgreSQL databases")
    };
    let app = TestApp::start_on(db.clone(), None, &[("NATTER_DB_POOL", "2"), FAST[0]]).await;
    let ada = app.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Pool").await;
    // Forty page views and posts at once: they queue for the two connections.
    let answers = futures_util::future::join_all((0..40).map(|i| {
        let (ada, code) = (&ada, &code);
        async move {
            if i % 2 == 0 {
                ada.get(&format!("/rooms/{code}")).await.status
            } else {
                ada.post_form(
                    &format!("/rooms/{code}"),
                    &format!("/rooms/{code}/messages"),
                    &[
                        ("body", &format!("pool {i}")),
                        ("client_id", &format!("pool{i}")),
                    ],
                )
                .await
                .status
            }
        }
    }))
    .await;
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 303),
        "{answers:?}"
    );
    let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
    let open: Vec<(String, i64)> = sqlx::query_as(
        "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = $1 \
         GROUP BY application_name",
    )
    .bind(name)
    .fetch_all(&admin)
    .await
    .unwrap();
    let count = |app: &str| open.iter().find(|(a, _)| a == app).map_or(0, |(_, n)| *n);
    // The pool's two, and the listener's own one beside them (not one of the two).
    assert_eq!(count("natter listener"), 1, "{open:?}");
    assert!(count("natter") <= 2, "{open:?}");
    assert_eq!(open.len(), 2, "nothing else connected: {open:?}");
    admin.close().await;
}

/// Posts `n` messages into `code` as fast as they go (one CSRF token for all); returns each
/// post's status.
async fn post_burst(who: &Browser, code: &str, tag: &str, n: usize) -> Vec<u16> {
    let csrf = who.csrf_from(&format!("/rooms/{code}")).await;
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        let body = format!("{tag} {i}");
        let client_id = format!("{:032x}", rand::random::<u128>());
        let r = who
            .post(
                &format!("/rooms/{code}/messages"),
                &[("body", &body), ("client_id", &client_id), ("csrf", &csrf)],
            )
            .await;
        statuses.push(r.status);
    }
    statuses
}

async fn posts_into_two_rooms_from_two_instances_never_deadlock(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let bob = Browser::signed_in(&b.base, "bob@example.org", "bob").await;
    let rooms = [ada.create_room("One").await, ada.create_room("Two").await];
    for code in &rooms {
        bob.join(code).await;
    }
    let mut sockets = Vec::new();
    for code in &rooms {
        sockets.push(ada.socket(code, Some(0)).await.unwrap());
        sockets.push(bob.socket(code, Some(0)).await.unwrap());
    }
    // Each instance's writer batches posts for both rooms together, in whatever order they
    // arrive: A may lock room one then room two while B locks two then one. Several posters per
    // room and instance keep both rooms in most batches.
    let (posters, per_poster) = (6, 15);
    let bursts = (0..posters).flat_map(|_| {
        let (ada, bob, rooms) = (&ada, &bob, &rooms);
        [(ada, 0), (ada, 1), (bob, 0), (bob, 1)]
            .map(move |(who, room)| post_burst(who, &rooms[room], "burst", per_poster))
    });
    for statuses in futures_util::future::join_all(bursts).await {
        assert!(statuses.iter().all(|s| *s == 303), "{statuses:?}");
    }
    let per_room = 2 * posters * per_poster;
    for socket in &mut sockets {
        assert_exactly(&socket.seqs_until(per_room, WAIT).await, 1, per_room as i64);
    }
}

/// An edit or delete made on one instance reaches sockets held by the other, in place, by
/// notification (the change takes the room's next seq like a post, and the other instance
/// reads it by cursor).
async fn edits_and_deletes_made_on_one_instance_reach_the_other(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let two = TwoInstances::start(&db, &bus, "Changes across", FAST).await;
    let TwoInstances { ada, bob, code, .. } = &two;
    let seq = ada.say(code, "made on A").await;
    let mut on_b = bob.socket(code, Some(seq)).await.unwrap();
    let edited = ada
        .post_form(
            &format!("/rooms/{code}"),
            &format!("/rooms/{code}/messages/{seq}/edit"),
            &[("body", "edited on A")],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    assert!(on_b.wait_for("edited on A", WAIT).await);
    assert!(
        on_b.wait_for(&format!("value=\"{}\"", seq + 1), WAIT).await,
        "the cursor moved to the edit"
    );
    let deleted = ada
        .post_form(
            &format!("/rooms/{code}"),
            &format!("/rooms/{code}/messages/{seq}/delete"),
            &[],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert!(on_b.wait_for("Message deleted", WAIT).await);
    assert!(on_b.seqs().is_empty(), "changes, not new messages");
    // A page read on B shows the same, and resumes after both.
    let page = bob.get(&format!("/rooms/{code}")).await;
    assert!(page.body.contains("Message deleted"));
    assert!(page.body.contains(&format!("ws?after={}", seq + 2)));
}

/// A message posted on instance A in a room nobody has open on B reaches, as activity, a page
/// on B that shows another of the person's rooms (B has no hub for the room: it reads the new
/// message on the notification).
async fn activity_in_another_room_crosses_instances(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let two = TwoInstances::start(&db, &bus, "Open on B", &[]).await;
    let elsewhere = two.ada.create_room("Elsewhere").await;
    two.bob.join(&elsewhere).await;
    let mut socket = two
        .bob
        .socket(&two.code, None)
        .await
        .expect("bob's socket on B");
    assert!(socket.wait_for("id=\"members\"", WAIT).await);
    let seq = two.ada.say(&elsewhere, "posted on A").await;
    assert!(
        socket.wait_for(&format!(":1:{seq}:{seq}:0\""), WAIT).await,
        "{:?}",
        socket.frames
    );
}

async fn typing_on_one_instance_shows_on_the_other(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let TwoInstances {
        a: _a,
        b: _b,
        ada,
        bob,
        code,
    } = TwoInstances::start(&db, &bus, "Typing", &[]).await;
    let mut ada_socket = ada.socket(&code, Some(0)).await.unwrap();
    let mut bob_socket = bob.socket(&code, Some(0)).await.unwrap();
    // Bob is online for A's hub (presence crosses first): a typer must be a known member.
    assert!(ada_socket.wait_for("2 online · 2 members", WAIT).await);
    bob_socket.send_text(r#"{"typing":"1","HEADERS":{}}"#).await;
    assert!(
        ada_socket.wait_for_new("</bdi></b> is typing…", WAIT).await,
        "bob typing on B shows for ada on A"
    );
    assert!(ada_socket.frames.last().unwrap().contains(">bob</bdi>"));
}

async fn room_settings_changed_on_one_instance_reach_the_other(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let two = TwoInstances::start(&db, &bus, "Settings across", FAST).await;
    let TwoInstances { ada, bob, code, .. } = &two;
    let mut on_b = bob.socket(code, Some(0)).await.unwrap();
    assert!(on_b.wait_for("id=\"members\"", WAIT).await);

    // A rename on A: B's page gets the line and the heading.
    let saved = ada
        .post_form(
            &format!("/rooms/{code}"),
            &format!("/rooms/{code}/settings"),
            &[("name", "Renamed on A"), ("topic", "")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert!(
        on_b.wait_for("renamed the room to “Renamed on A”", WAIT)
            .await
    );
    assert!(
        on_b.wait_for("<h1><bdi>Renamed on A</bdi></h1>", WAIT)
            .await
    );

    // A removal on A closes Bob's socket on B, with the reason.
    let removed = ada
        .post_form(
            &format!("/rooms/{code}"),
            &format!("/rooms/{code}/members/bob/remove"),
            &[],
        )
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert_eq!(on_b.closed(WAIT).await, Closed::Code(4404));
    assert_eq!(on_b.close_reason.as_deref(), Some("removed"));
    assert_eq!(
        bob.socket(code, Some(0)).await.err(),
        Some(SocketRefused(404))
    );
}

/// Polls `path` on `who` until its body contains `wanted`, for at most `within` (less than the
/// session cache's 5 s: what passes is the news, not the cache's expiry).
async fn shows_soon(who: &Browser, path: &str, wanted: &str, within: Duration) -> bool {
    eventually(within, || async {
        who.get(path).await.body.contains(wanted)
    })
    .await
}

async fn a_rename_or_a_deletion_on_one_instance_shows_on_the_others_next_page(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let ada = a.signed_in("care-multi-ada@example.org", "care_ada").await;
    let ada_on_b = ada.same_session_on(&b.base);
    let bob = Browser::signed_in(&b.base, "care-multi-bob@example.org", "care_bob").await;
    // A room she spoke in and left: a rename writes no line there, so its cached page on B
    // would keep her old name until its next event.
    let code = bob.create_room("Left behind").await;
    ada.join(&code).await;
    ada.say(&code, "words she left behind").await;
    ada.leave(&code).await;
    let room = format!("/rooms/{code}");
    assert!(
        bob.get(&room).await.body.contains("care_ada"),
        "B caches the page with her name"
    );
    assert!(
        ada_on_b.get("/profile").await.body.contains("care_ada"),
        "B caches her session"
    );

    let renamed = ada
        .post_form(
            "/profile/username",
            "/profile/username",
            &[("username", "Care_Ada_2")],
        )
        .await;
    assert_eq!(renamed.status, 303, "{}", renamed.body);
    let soon = Duration::from_secs(2);
    assert!(
        shows_soon(&bob, &room, "Care_Ada_2", soon).await,
        "B's cached page took the new name"
    );
    assert!(!bob.get(&room).await.body.contains(">care_ada<"));
    assert!(
        shows_soon(&ada_on_b, "/profile", "Care_Ada_2", soon).await,
        "B's cached session took it"
    );

    let deleted = ada
        .post_form(
            "/profile/delete",
            "/profile/delete",
            &[("messages", "keep"), ("confirm", "Care_Ada_2")],
        )
        .await;
    assert_eq!(
        (deleted.status, deleted.location()),
        (303, "/".to_string()),
        "{}",
        deleted.body
    );
    assert!(
        shows_soon(&bob, &room, "deleted user", soon).await,
        "B's cached page says deleted user"
    );
    assert!(
        !bob.get(&room).await.body.contains("Care_Ada_2"),
        "and names her nowhere"
    );
}

/// A push service on 127.0.0.1 that answers 201 and counts the pushes it receives (what they
/// say is checked, decrypted, in tests/web/push.rs), with the keys a browser would subscribe
/// with: (endpoint, p256dh, auth, count).
async fn counting_push_service() -> (String, String, String, Arc<AtomicUsize>) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use web_push_native::p256;
    let secret = loop {
        if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break key;
        }
    };
    let public =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let p256dh = URL_SAFE_NO_PAD.encode(public.as_bytes());
    let auth = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!(
        "http://127.0.0.1:{}/push/{:016x}",
        listener.local_addr().unwrap().port(),
        rand::random::<u64>()
    );
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                // The head, then as many body bytes as it says.
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while seen.len() < end + length {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with("post ") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (endpoint, p256dh, auth, count)
}

async fn a_first_push_subscription_on_one_instance_counts_at_once_on_the_other(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let settings = [("NATTER_PUSH_ALLOW_LOOPBACK", "true")];
    let a = TestApp::start_on(db.clone(), None, &bus.with(&settings)).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(&settings)).await;
    let ada = b.signed_in("care-push-ada@example.org", "care_pada").await;
    let bob = a.signed_in("care-push-bob@example.org", "care_pbob").await;
    let code = ada.create_room("Pushed across").await;
    bob.join(&code).await;
    // Both instances started with nobody subscribed.
    ada.say(&code, "@care_pbob before anyone subscribed").await;

    let (endpoint, p256dh, auth, pushes) = counting_push_service().await;
    let csrf = bob.csrf_from("/profile").await;
    let subscribed = bob
        .post_with(
            "/push/subscriptions",
            &[
                ("endpoint", &endpoint),
                ("p256dh", &p256dh),
                ("auth", &auth),
            ],
            &[("origin", &bob.base), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(subscribed.status, 204, "{}", subscribed.body);
    // At once, on the instance that did not see the subscription made.
    ada.say(&code, "@care_pbob right after").await;
    assert!(
        eventually(WAIT, || async { pushes.load(Ordering::SeqCst) >= 1 }).await,
        "B pushed the first message after the subscription"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushes.load(Ordering::SeqCst), 1, "only that one");
}
