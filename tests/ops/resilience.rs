//! Restarts, crashes and the database going away.

use std::time::{Duration, Instant};

use crate::common::{Browser, Closed, TestApp, assert_exactly};
use crate::multi::{FAST, WAIT, pg};
use crate::procs::{DbProxy, Natter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_1012_and_exits_zero_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let port = crate::procs::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut natter = Natter::start_on(port, &db, &base, &[("NATTER_DRAIN", "3s")]).await;
    let ada = Browser::signed_in(&base, "ada@example.org", "ada").await;
    let code = ada.create_room("Restart").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    assert!(socket.wait_for("id=\"members\"", WAIT).await);
    let started = Instant::now();
    natter.terminate();
    assert_eq!(socket.closed(WAIT).await, Closed::Code(1012));
    // While it drains, /healthz fails (so a proxy moves traffic away) but pages still answer.
    let probe = Browser::new(&base);
    assert!(
        crate::common::eventually(Duration::from_secs(2), || async {
            probe.get("/healthz").await.status == 503
        })
        .await
    );
    assert_eq!(probe.get("/").await.status, 200);
    let status = natter
        .exited(Duration::from_secs(10))
        .await
        .expect("exited within 10 s");
    assert!(status.success(), "exit status {status}");
    eprintln!("SIGTERM to exit: {:?}", started.elapsed());
    // Restarted on the same file, the page resumes where it was.
    let _natter = Natter::start_on(port, &db, &base, &[]).await;
    ada.say(&code, "after restart").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    assert_exactly(&socket.seqs_until(1, WAIT).await, 1, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instances_people_go_offline_within_90_seconds() {
    let Some(db) = pg().await else { return };
    let a = TestApp::start_on(db.clone(), None, &[]).await;
    let ada = a.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Crash").await;
    let port = crate::procs::free_port();
    let b_base = format!("http://127.0.0.1:{port}");
    let mut b = Natter::start_on(port, &db.url(), &b_base, &[]).await;
    let bob = Browser::signed_in(&b_base, "bob@example.org", "bob").await;
    bob.join(&code).await;
    let mut ada_socket = ada.socket(&code, Some(0)).await.unwrap();
    let _bob_socket = bob.socket(&code, Some(0)).await.unwrap();
    assert!(ada_socket.wait_for("2 online · 2 members", WAIT).await);
    let crashed = Instant::now();
    b.kill();
    assert!(
        ada_socket
            .wait_for_new("1 online · 2 members", Duration::from_secs(90))
            .await,
        "bob still online 90 s after B crashed"
    );
    eprintln!(
        "a crashed instance's user went offline after {:?}",
        crashed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_is_survived_without_losing_or_doubling_anything() {
    let Some(db) = pg().await else { return };
    let url = url::Url::parse(&db.url()).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
        .parse()
        .unwrap();
    let proxy = DbProxy::start(target).await;
    let mut via_proxy = url.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    // A reaches the database directly; B through the proxy that will cut it off.
    let a = TestApp::start_on(db.clone(), None, FAST).await;
    let mut settings = FAST.to_vec();
    let via = via_proxy.to_string();
    settings.push(("NATTER_DATABASE_URL", &via));
    let b = TestApp::start_on(db.clone(), None, &settings).await;
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
