//! NATS between instances (`NATTER_BUS=nats://…`), beyond what every multi-instance test
//! checks on both buses: the server going away mid-chat and coming back, and interest routing.
//! Each test runs a `nats-server` of its own, so it can kill it.

use std::time::Duration;

use crate::common::{Browser, Closed, TestApp, assert_exactly, eventually, metric};
use crate::multi::{FAST, TestBus, WAIT, notifications, notified_beyond, pg, post_side};

/// The value of `series` on instance `base` (0 when absent).
async fn value(base: &str, series: &str) -> f64 {
    metric(base, series).await.unwrap_or(0.0)
}

/// The subjects the NATS server routes to each of its client connections.
async fn subscriptions(bus: &TestBus) -> Vec<Vec<String>> {
    let TestBus::Nats(server) = bus else {
        unreachable!("a NATS test")
    };
    let connz = server.monitor("/connz?subs=1").await;
    connz["connections"]
        .as_array()
        .map(|connections| {
            connections
                .iter()
                .map(|c| {
                    c["subscriptions_list"]
                        .as_array()
                        .map(|subjects| {
                            subjects
                                .iter()
                                .filter_map(|s| s.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many of the server's connections are subscribed to `subject`.
async fn subscribers(bus: &TestBus, subject: &str) -> usize {
    subscriptions(bus)
        .await
        .iter()
        .filter(|subjects| subjects.iter().any(|s| s == subject))
        .count()
}

async fn room_id(app: &TestApp, code: &str) -> i64 {
    app.state
        .store
        .room_by_code(natter::domain::RoomCode::parse(code).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_nats_mid_chat_loses_and_doubles_nothing() {
    let Some(mut bus) = TestBus::nats().await else {
        return;
    };
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let ada = a.signed_in("nats-ada@example.org", "ada").await;
    let code = ada.create_room("Through NATS").await;
    let bob = Browser::signed_in(&b.base, "nats-bob@example.org", "bob").await;
    bob.join(&code).await;
    // Each person on both instances: every socket must see everything, wherever it was posted.
    let ada_on_b = ada.same_session_on(&b.base);
    let bob_on_a = bob.same_session_on(&a.base);
    let mut sockets = Vec::new();
    for who in [&ada, &ada_on_b, &bob, &bob_on_a] {
        sockets.push(who.socket(&code, Some(0)).await.unwrap());
    }
    for app in [&a, &b] {
        assert_eq!(value(&app.base, "natter_bus_up").await, 1.0);
    }
    let per_side = 15;

    // Killed while both sides post.
    tokio::join!(
        post_side(&ada, &code, "A before", per_side),
        post_side(&bob, &code, "B before", per_side),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bus.server().unwrap().kill();
        }
    );
    for app in [&a, &b] {
        assert!(
            eventually(WAIT, || async {
                let ready = Browser::new(&app.base).get("/readyz").await;
                ready.status == 200 && ready.body.contains("bus: NATS unreachable")
            })
            .await,
            "{}'s /readyz says NATS is down, and it is still ready",
            app.base
        );
        assert_eq!(value(&app.base, "natter_bus_up").await, 0.0);
        assert!(value(&app.base, "natter_bus_fallbacks_total").await >= 1.0);
    }
    // Down: the poll carries posts between instances.
    tokio::join!(
        post_side(&ada, &code, "A down", per_side),
        post_side(&bob, &code, "B down", per_side),
    );
    let so_far = 4 * per_side;
    for socket in &mut sockets {
        assert_exactly(&socket.seqs_until(so_far, WAIT).await, 1, so_far as i64);
    }

    // Back while both sides post.
    let server = bus.server().unwrap();
    tokio::join!(
        post_side(&ada, &code, "A back", per_side),
        post_side(&bob, &code, "B back", per_side),
        server.restart(),
    );
    for app in [&a, &b] {
        assert!(
            eventually(WAIT, || async {
                value(&app.base, "natter_bus_up").await == 1.0
                    && Browser::new(&app.base).get("/readyz").await.body == "ready\n"
            })
            .await,
            "{} is back on NATS",
            app.base
        );
        assert!(value(&app.base, "natter_listener_reconnects_total").await >= 1.0);
    }
    // News comes through NATS again, not only by the poll.
    let heard = notifications(&b.base).await;
    ada.say(&code, "after").await;
    assert!(
        notified_beyond(&b.base, heard).await,
        "B heard through NATS"
    );
    let total = 6 * per_side + 1;
    for socket in &mut sockets {
        assert_exactly(&socket.seqs_until(total, WAIT).await, 1, total as i64);
    }
    // Nothing doubled arrives late: one more, and still each seq exactly once.
    bob.say(&code, "last").await;
    for socket in &mut sockets {
        assert_exactly(
            &socket.seqs_until(total + 1, WAIT).await,
            1,
            total as i64 + 1,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_never_had_a_room_active_receives_nothing_for_it() {
    let Some(bus) = TestBus::nats().await else {
        return;
    };
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(FAST)).await;
    let ada = a.signed_in("nats-ada@example.org", "ada").await;
    let busy = ada.create_room("Busy on A").await;
    let bob = Browser::signed_in(&b.base, "nats-bob@example.org", "bob").await;
    let quiet = bob.create_room("Quiet on B").await;
    let (busy_id, quiet_id) = (room_id(&a, &busy).await, room_id(&a, &quiet).await);
    let busy_subject = format!("natter.room.{busy_id}");
    let quiet_subject = format!("natter.room.{quiet_id}");
    let mut on_a = ada.socket(&busy, Some(0)).await.unwrap();
    // B serves a room, just not this one.
    let mut on_b = bob.socket(&quiet, Some(0)).await.unwrap();
    assert!(on_a.wait_for("id=\"members\"", WAIT).await);
    assert!(on_b.wait_for("id=\"members\"", WAIT).await);
    assert_eq!(subscribers(&bus, &busy_subject).await, 1, "A only");
    assert_eq!(subscribers(&bus, &quiet_subject).await, 1, "B only");

    let received = value(&b.base, "natter_bus_messages_received_total").await;
    for i in 0..20 {
        ada.say(&busy, &format!("busy {i}")).await;
    }
    assert_exactly(&on_a.seqs_until(20, WAIT).await, 1, 20);
    // A barrier: A's news reaches B in the order A sent it. Ada joins the quiet room (news for
    // every instance) and posts there (news for B's room): once B has that, anything A had sent
    // it about the busy room would have come before.
    ada.join(&quiet).await;
    ada.say(&quiet, "hello from A").await;
    assert!(on_b.wait_for("hello from A", WAIT).await);
    let heard = value(&b.base, "natter_bus_messages_received_total").await - received;
    assert_eq!(
        heard, 2.0,
        "B heard the join and the post in its room, nothing else"
    );

    // Bob joins the busy room and opens it on B: B subscribes, hears, and no longer reads
    // what it is handed.
    bob.join(&busy).await;
    let mut bob_busy = bob.socket(&busy, None).await.unwrap();
    assert!(bob_busy.wait_for("id=\"members\"", WAIT).await);
    assert_eq!(subscribers(&bus, &busy_subject).await, 2, "A and B");
    let seq = ada.say(&busy, "now B listens").await;
    assert!(bob_busy.wait_for(&format!("id=\"msg-{seq}\""), WAIT).await);
    // B's last sockets close: it unsubscribes from both rooms (A keeps both: ada has the busy
    // one open, and her page there follows the quiet one for its unread count).
    bob_busy.close().await;
    on_b.close().await;
    assert!(
        eventually(WAIT, || async {
            let rooms = |subjects: &Vec<String>| {
                subjects
                    .iter()
                    .filter(|s| s.starts_with("natter.room."))
                    .count()
            };
            let mut per_connection: Vec<usize> =
                subscriptions(&bus).await.iter().map(rooms).collect();
            per_connection.sort();
            per_connection == [0, 2]
        })
        .await,
        "B dropped its room subscriptions: {:?}",
        subscriptions(&bus).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_and_sign_outs_made_while_nats_was_down_close_sockets_when_it_is_back() {
    let Some(mut bus) = TestBus::nats().await else {
        return;
    };
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let b = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let ada = a.signed_in("nats-ada@example.org", "ada").await;
    let code = ada.create_room("Missed on NATS").await;
    let bob = a.signed_in("nats-bob@example.org", "bob").await;
    let cyd = a.signed_in("nats-cyd@example.org", "cyd").await;
    bob.join(&code).await;
    cyd.join(&code).await;
    let mut bob_socket = bob
        .same_session_on(&b.base)
        .socket(&code, Some(0))
        .await
        .unwrap();
    let mut cyd_socket = cyd
        .same_session_on(&b.base)
        .socket(&code, Some(0))
        .await
        .unwrap();
    assert!(bob_socket.wait_for("id=\"members\"", WAIT).await);
    assert!(cyd_socket.wait_for("id=\"members\"", WAIT).await);

    let server = bus.server().unwrap();
    server.kill();
    assert!(
        eventually(WAIT, || async {
            value(&a.base, "natter_bus_up").await == 0.0
        })
        .await
    );
    bob.leave(&code).await;
    cyd.sign_out().await;
    server.restart().await;
    assert_eq!(
        bob_socket.closed(WAIT).await,
        Closed::Code(4404),
        "bob left"
    );
    assert_eq!(
        cyd_socket.closed(WAIT).await,
        Closed::Code(4401),
        "cyd signed out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starts_and_serves_while_nats_is_unreachable() {
    let Some(mut bus) = TestBus::nats().await else {
        return;
    };
    let Some(db) = pg().await else { return };
    bus.server().unwrap().kill();
    let a = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let ready = Browser::new(&a.base).get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert!(
        ready.body.contains("bus: NATS unreachable"),
        "{}",
        ready.body
    );
    bus.server().unwrap().restart().await;
    assert!(
        eventually(WAIT, || async {
            Browser::new(&a.base).get("/readyz").await.body == "ready\n"
        })
        .await,
        "connected once the server is there"
    );
}

/// `natter-load cross` (the benchmark, README: Benchmarks) runs small on both buses across
/// three instances: every post reaches both other instances (or the run fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natter_load_cross_runs_across_three_instances_on_both_buses() {
    if !crate::procs::NatsServer::available() || pg().await.is_none() {
        return;
    }
    let admin = std::env::var("NATTER_TEST_POSTGRES_URL").expect("pg() found it");
    for bus in ["notify", "nats"] {
        let output = natter_load(&[
            "cross",
            "--instances",
            "3",
            "--posts",
            "20",
            "--no-pin",
            "--bus",
            bus,
            "--postgres-url",
            &admin,
        ])
        .await
        .unwrap_or_else(|output| panic!("{bus}: {output}"));
        assert!(
            output.contains("database reads by receiving instances per post"),
            "{bus}: {output}"
        );
    }
}

/// `natter-load bus` (nats-server's own ceiling, README: Benchmarks) runs small: at a rate far
/// below any ceiling every message reaches every other client, and the step says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natter_load_bus_delivers_every_message_to_every_other_client() {
    if !crate::procs::NatsServer::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bus.json");
    natter_load(&[
        "bus",
        "--instances",
        "3",
        "--rooms",
        "6",
        "--rates",
        "200",
        "--duration",
        "1",
        "--no-pin",
        "--json",
        json.to_str().unwrap(),
    ])
    .await
    .unwrap_or_else(|output| panic!("{output}"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let step = &report["tables"][0]["lines"][0];
    let owed = step["deliveries owed"].as_u64().unwrap();
    // 200 posts/s for a second, each owed to the two other clients.
    assert!((300..=500).contains(&owed), "{step}");
    assert_eq!(step["missing"], 0, "{step}");
    assert_eq!(step["sustained"], true, "{step}");
}

/// Runs this build's natter-load with `args` (nats-server found also where Debian puts it):
/// its output, stdout then stderr, as `Ok` when it exited 0 and `Err` otherwise.
async fn natter_load(args: &[&str]) -> Result<String, String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_natter-load"))
            .args(args)
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_default() + ":/usr/sbin",
            )
            .output()
    })
    .await
    .unwrap()
    .expect("natter-load runs");
    let output = String::from_utf8_lossy(&run.stdout) + String::from_utf8_lossy(&run.stderr);
    match run.status.success() {
        true => Ok(output.into_owned()),
        false => Err(output.into_owned()),
    }
}
