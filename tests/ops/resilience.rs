//! Restarts, crashes and the database going away.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::metric;
use crate::common::{Browser, Closed, TestApp, TestDb, assert_exactly, eventually};
use crate::multi::{
    FAST, TestBus, TwoInstances, WAIT, notifications, notified_beyond, on_both_buses, pg,
};
use crate::procs::{DbProxy, Natter};

on_both_buses!(
    a_crashed_instances_people_go_offline_once_its_heartbeat_is_stale,
    a_swept_instance_records_its_people_again_when_it_beats_again,
    posts_taken_while_draining_reach_other_instances_by_notification,
    the_database_going_away_is_survived_without_losing_or_doubling_anything,
);

/// A POST whose headers and first half of its body are sent, the rest held back: a request in
/// flight for as long as the test likes.
struct HalfSent {
    tcp: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl HalfSent {
    async fn start(b: &Browser, path: &str, fields: &[(&str, &str)]) -> HalfSent {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
            .into_bytes();
        let base = url::Url::parse(&b.base).unwrap();
        let host = format!("{}:{}", base.host_str().unwrap(), base.port().unwrap());
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {}\r\nCookie: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            b.base,
            b.cookie_header(),
            body.len()
        );
        let mut tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
        let half = body.len() / 2;
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&body[..half]).await.unwrap();
        tcp.flush().await.unwrap();
        HalfSent {
            tcp,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest; returns the response's status line.
    async fn finish(mut self) -> String {
        self.tcp.write_all(&self.rest).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(WAIT, self.tcp.read_to_end(&mut response)).await;
        let text = String::from_utf8_lossy(&response);
        text.lines().next().unwrap_or_default().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_1012_finishes_requests_in_flight_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let port = crate::procs::free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The longest drain allowed: the probes below must land inside it, and a loaded machine
    // gets 5 s for what takes milliseconds.
    let mut natter = Natter::start_on(port, &db, &base, &[("NATTER_DRAIN", "5s")]).await;
    let ada = Browser::signed_in(&base, "ada@example.org", "ada").await;
    let code = ada.create_room("Restart").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    assert!(socket.wait_for("id=\"members\"", WAIT).await);
    let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
    let in_flight = HalfSent::start(
        &ada,
        &format!("/rooms/{code}/messages"),
        &[
            ("body", "sent across the restart"),
            ("client_id", "inflight"),
            ("csrf", &csrf),
        ],
    )
    .await;

    let signalled = Instant::now();
    natter.terminate();
    assert_eq!(socket.closed(WAIT).await, Closed::Code(1012));
    // Draining: /healthz fails (so a proxy moves traffic away; it turned before the sockets
    // were closed) but pages still answer.
    let probe = Browser::new(&base);
    assert_eq!(probe.get("/healthz").await.status, 503);
    assert_eq!(probe.get("/").await.status, 200);
    // A socket opened now would be closed at once: it is refused, and the page retries
    // (behind Caddy, on another instance).
    assert_eq!(
        ada.socket(&code, Some(0)).await.err(),
        Some(crate::common::SocketRefused(503))
    );
    // Once the drain is over the port is closed; the request in flight is still answered.
    assert!(
        eventually(Duration::from_secs(15), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        })
        .await,
        "the port closes after the drain"
    );
    let answer = in_flight.finish().await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    // natter promises 10 s from the signal; this allows 15 so a loaded machine's scheduling
    // cannot fail the test (the budget itself is fixed in natter::run, not measured here).
    let status = natter
        .exited(Duration::from_secs(15).saturating_sub(signalled.elapsed()))
        .await
        .expect("exited in time");
    assert!(status.success(), "exit status {status}");
    eprintln!("SIGTERM to exit: {:?}", signalled.elapsed());
    // Restarted on the same file, the page resumes where it was, the in-flight post included.
    let _natter = Natter::start_on(port, &db, &base, &[]).await;
    ada.say(&code, "after restart").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    assert_exactly(&socket.seqs_until(2, WAIT).await, 1, 2);
}

async fn a_crashed_instances_people_go_offline_once_its_heartbeat_is_stale(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &bus.with(&[])).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Crash").await;
    let port = crate::procs::free_port();
    let b_base = format!("http://127.0.0.1:{port}");
    let mut b = Natter::start_on(port, &db.url(), &b_base, &bus.with(&[])).await;
    let bob = Browser::signed_in(&b_base, "bob@example.org", "bob").await;
    bob.join(&code).await;
    let mut ada_socket = ada.socket(&code, Some(0)).await.unwrap();
    let _bob_socket = bob.socket(&code, Some(0)).await.unwrap();
    assert!(ada_socket.wait_for("2 online · 2 members", WAIT).await);
    b.kill();
    // Its last heartbeat ages: what a minute without one looks like (the store-level test
    // below pins the minute itself).
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let aged = sqlx::query(
        "UPDATE instances SET heartbeat_at = heartbeat_at - $1 \
         WHERE id IN (SELECT instance_id FROM presence p JOIN users u ON u.id = p.user_id \
                      WHERE u.username = 'bob')",
    )
    .bind(natter::store::INSTANCE_TTL_MS)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(aged.rows_affected(), 1, "B's row");
    pool.close().await;
    assert!(
        ada_socket.wait_for_new("1 online · 2 members", WAIT).await,
        "A's poll shows bob offline"
    );
}

/// The numbers behind "a crashed instance's people go offline within 90 s": it beats every
/// 15 s, its people count while its last beat is younger than a minute, and others poll every
/// 3 s: at most 78 s. Its rows are swept after two minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_while_an_instances_heartbeat_is_younger_than_a_minute() {
    let Some(db) = pg().await else { return };
    let (store, _commits) = natter::store::Store::connect(&db.url(), 2).await.unwrap();
    let ttl = natter::store::INSTANCE_TTL_MS;
    let t = natter::store::now_ms();
    assert!(store.heartbeat("gone", t).await.unwrap(), "created");
    assert!(!store.heartbeat("gone", t).await.unwrap(), "renewed");
    store.set_present("gone", 1, 7, true).await.unwrap();
    assert_eq!(store.online_in(&[1], t + ttl - 1).await.unwrap(), [(1, 7)]);
    assert!(store.online_in(&[1], t + ttl + 1).await.unwrap().is_empty());
    assert_eq!(store.sweep_dead_instances(t + 2 * ttl).await.unwrap(), 0);
    assert_eq!(
        store.sweep_dead_instances(t + 2 * ttl + 1).await.unwrap(),
        1
    );
    assert!(
        store.online_in(&[1], t).await.unwrap().is_empty(),
        "its rows went with it"
    );
    assert!(store.heartbeat("gone", t).await.unwrap(), "created again");
    store.close().await;
}

async fn a_swept_instance_records_its_people_again_when_it_beats_again(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let TwoInstances {
        a,
        b: _b,
        bob,
        code,
        ..
    } = TwoInstances::start(&db, &bus, "Swept", &[]).await;
    let mut bob_socket = bob.socket(&code, Some(0)).await.unwrap();
    assert!(bob_socket.wait_for("1 online · 2 members", WAIT).await);
    let room = a
        .state
        .store
        .room_by_code(natter::domain::RoomCode::parse(&code).unwrap())
        .await
        .unwrap()
        .unwrap();
    let online = || async {
        a.state
            .store
            .online_in(&[room.id], natter::store::now_ms())
            .await
            .unwrap()
            .len()
    };
    assert!(eventually(WAIT, || async { online().await == 1 }).await);
    // What another instance's sweep does after B was cut off for two minutes: B's row goes,
    // and its presence rows with it.
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    sqlx::query("DELETE FROM instances WHERE id IN (SELECT instance_id FROM presence)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(online().await, 0);
    // B's next heartbeat (every 15 s) creates its row again and records bob again.
    assert!(
        eventually(Duration::from_secs(30), || async { online().await == 1 }).await,
        "bob, still connected to B, counts as online again"
    );
}

/// Two instances on `db`: A reaches it directly, B through a proxy that can cut it off.
async fn one_behind_a_proxy(
    db: &std::sync::Arc<TestDb>,
    settings: &[(&str, &str)],
) -> (TestApp, TestApp, DbProxy) {
    let url = url::Url::parse(&db.url()).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
        .parse()
        .unwrap();
    let proxy = DbProxy::start(target).await;
    let mut via_proxy = url.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    let a = TestApp::start_on(db.clone(), None, settings).await;
    let mut b_settings = settings.to_vec();
    let via = via_proxy.to_string();
    b_settings.push(("NATTER_DATABASE_URL", &via));
    let b = TestApp::start_on(db.clone(), None, &b_settings).await;
    (a, b, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_and_sign_outs_missed_while_the_listener_was_cut_off_close_sockets_when_it_is_back()
{
    let Some(db) = pg().await else { return };
    let (a, b, proxy) = one_behind_a_proxy(&db, &[]).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Missed").await;
    let bob = a.signed_in("bob@example.org", "bob").await;
    let cyd = a.signed_in("cyd@example.org", "cyd").await;
    bob.join(&code).await;
    cyd.join(&code).await;
    // Bob and cyd hold sockets on B, with the sessions they use on A.
    let on_b = |who: &Browser| who.same_session_on(&b.base);
    let mut bob_socket = on_b(&bob).socket(&code, Some(0)).await.unwrap();
    let mut cyd_socket = on_b(&cyd).socket(&code, Some(0)).await.unwrap();
    assert!(bob_socket.wait_for("id=\"members\"", WAIT).await);
    assert!(cyd_socket.wait_for("id=\"members\"", WAIT).await);
    let reconnects = metric(&b.base, "natter_listener_reconnects_total").await;

    // B's listener is cut off: the notifications of what happens now never reach it.
    proxy.down();
    bob.leave(&code).await;
    cyd.sign_out().await;
    proxy.up();
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
    assert!(
        metric(&b.base, "natter_listener_reconnects_total").await > reconnects,
        "B's listener reconnected"
    );
}

async fn posts_taken_while_draining_reach_other_instances_by_notification(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let TwoInstances {
        a,
        b,
        ada,
        bob,
        code,
    } = TwoInstances::start(&db, &bus, "Draining", &[("NATTER_DRAIN", "5s")]).await;
    let mut socket = bob.socket(&code, Some(0)).await.unwrap();
    ada.say(&code, "before").await;
    assert_exactly(&socket.seqs_until(1, WAIT).await, 1, 1);
    let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;

    let a_base = a.base.clone();
    let stopping = tokio::spawn(a.stop());
    assert!(
        eventually(WAIT, || async {
            Browser::new(&a_base).get("/healthz").await.status == 503
        })
        .await,
        "A drains"
    );
    let heard = notifications(&b.base).await;
    let posted = ada
        .post(
            &format!("/rooms/{code}/messages"),
            &[
                ("body", "while draining"),
                ("client_id", "draining"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(posted.status, 303, "A still takes posts while it drains");
    assert_exactly(&socket.seqs_until(2, WAIT).await, 1, 2);
    assert!(
        notified_beyond(&b.base, heard).await,
        "A's publisher still notified B (not only B's poll found the post)"
    );
    assert_eq!(stopping.await.unwrap(), Ok(()));
}

async fn the_database_going_away_is_survived_without_losing_or_doubling_anything(bus: TestBus) {
    let Some(db) = pg().await else { return };
    let (a, b, proxy) = one_behind_a_proxy(&db, &bus.with(FAST)).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Outage").await;
    let bob = Browser::signed_in(&b.base, "bob@example.org", "bob").await;
    bob.join(&code).await;
    let mut bob_socket = bob.socket(&code, Some(0)).await.unwrap();
    ada.say(&code, "one").await;
    assert_exactly(&bob_socket.seqs_until(1, WAIT).await, 1, 1);
    let csrf = bob.csrf_from(&format!("/rooms/{code}")).await;

    proxy.down();
    assert!(
        crate::common::eventually(WAIT, || async { bob.get("/readyz").await.status == 503 }).await,
        "/readyz turns 503"
    );
    assert_eq!(
        bob.get("/healthz").await.status,
        200,
        "the process itself is alive"
    );
    let refused = bob
        .post(
            &format!("/rooms/{code}/messages"),
            &[
                ("body", "typed during the outage"),
                ("client_id", "outage-1"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("typed during the outage"),
        "the text stays in the composer"
    );
    assert!(refused.header("retry-after").is_some());
    let origin = b.base.clone();
    let htmx = bob
        .post_with(
            &format!("/rooms/{code}/messages"),
            &[
                ("body", "htmx during the outage"),
                ("client_id", "outage-2"),
            ],
            &[
                ("origin", &origin),
                ("hx-request", "true"),
                ("x-csrf-token", &csrf),
            ],
        )
        .await;
    assert_eq!(htmx.status, 503);
    assert!(
        htmx.body.contains("htmx during the outage")
            && htmx.body.contains("cannot reach its database")
    );
    // Meanwhile A keeps working; B's listener is cut off.
    for i in 0..5 {
        ada.say(&code, &format!("while B is cut off {i}")).await;
    }

    proxy.up();
    assert!(
        crate::common::eventually(WAIT, || async { bob.get("/readyz").await.status == 200 }).await,
        "/readyz recovers"
    );
    assert_exactly(&bob_socket.seqs_until(6, WAIT).await, 1, 6);
    // The refused post can be sent again, once.
    let again = bob
        .post(
            &format!("/rooms/{code}/messages"),
            &[
                ("body", "typed during the outage"),
                ("client_id", "outage-1"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(again.status, 303);
    assert_exactly(&bob_socket.seqs_until(7, WAIT).await, 1, 7);
    drop(a);
    drop(b);
}
