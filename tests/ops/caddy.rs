//! natter behind the real `caddy` with the project's Caddyfile (local variant).

use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::metric;
use crate::common::{Browser, Closed, Next, Socket, assert_exactly, extract_attr, seqs_in};
use crate::multi::{TestBus, WAIT, on_both_buses, pg};
use crate::procs::{Caddy, Natter};

on_both_buses!(
    pages_posting_and_sockets_work_through_caddy_with_two_upstreams,
    an_upstream_stopped_mid_conversation_loses_nothing,
);

/// Two natter processes on one PostgreSQL database behind Caddy, talking over `bus`.
async fn two_upstreams(
    bus: &TestBus,
) -> Option<(Caddy, Natter, Natter, std::sync::Arc<crate::common::TestDb>)> {
    if !Caddy::available() {
        return None;
    }
    let db = pg().await?;
    let caddy_port = crate::procs::free_port();
    let public = format!("http://127.0.0.1:{caddy_port}");
    let settings = [
        ("NATTER_TRUSTED_PROXIES", "127.0.0.1"),
        ("NATTER_LIMIT_POSTS", "100000/1s"),
        // Long enough for Caddy's 1 s health check to move traffic away on SIGTERM.
        ("NATTER_DRAIN", "2s"),
    ];
    let one = Natter::start(&db.url(), &public, &bus.with(&settings)).await;
    let two = Natter::start(&db.url(), &public, &bus.with(&settings)).await;
    let caddy = Caddy::start_on(caddy_port, &[one.addr(), two.addr()], false, false).await;
    Some((caddy, one, two, db))
}

async fn pages_posting_and_sockets_work_through_caddy_with_two_upstreams(bus: TestBus) {
    let Some((caddy, _one, _two, _db)) = two_upstreams(&bus).await else {
        return;
    };
    let base = caddy.url();
    let ada = Browser::signed_in(&base, "ada@example.org", "ada").await;
    let code = ada.create_room("Proxied").await;
    let bob = Browser::signed_in(&base, "bob@example.org", "bob").await;
    bob.join(&code).await;
    let mut sockets = vec![
        ada.socket(&code, Some(0)).await.unwrap(),
        bob.socket(&code, Some(0)).await.unwrap(),
        bob.socket(&code, Some(0)).await.unwrap(),
    ];
    for i in 0..20 {
        if i % 2 == 0 {
            ada.say(&code, &format!("ada {i}")).await
        } else {
            bob.say(&code, &format!("bob {i}")).await
        };
    }
    for s in &mut sockets {
        assert_exactly(&s.seqs_until(20, WAIT).await, 1, 20);
    }
    // Pages are compressed; the content-hashed asset URLs they use are cached for a year.
    let page = ada
        .get_with(&format!("/rooms/{code}"), &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(page.header("content-encoding"), Some("gzip"));
    let plain = ada.get(&format!("/rooms/{code}")).await;
    let hash = extract_attr(&plain.body, "/assets/natter.css?v=").expect("versioned CSS URL");
    let css = Browser::new(&base)
        .get(&format!("/assets/natter.css?v={hash}"))
        .await;
    assert_eq!(css.status, 200);
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(
        page.header("strict-transport-security").is_none(),
        "no HSTS in the local variant"
    );
}

async fn an_upstream_stopped_mid_conversation_loses_nothing(bus: TestBus) {
    let Some((caddy, mut one, _two, _db)) = two_upstreams(&bus).await else {
        return;
    };
    let base = caddy.url();
    let ada = Browser::signed_in(&base, "ada@example.org", "ada").await;
    let code = ada.create_room("Rolling").await;
    // Several sockets, spread by Caddy over both upstreams (least connections first; while
    // other tests load the machine, a slow health check can leave one upstream out for a
    // moment, so open more until the one about to stop has some).
    let mut sockets: Vec<Socket> = Vec::new();
    let mut on_one = 0.0;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while sockets.len() < 6 || (on_one < 1.0 && std::time::Instant::now() < deadline) {
        sockets.push(ada.socket(&code, Some(0)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        on_one = metric(&format!("http://{}", one.addr()), "natter_sockets_open")
            .await
            .unwrap_or(0.0);
    }
    assert!(
        on_one >= 1.0,
        "some sockets are on the upstream about to stop"
    );
    for i in 0..10 {
        ada.say(&code, &format!("before {i}")).await;
    }
    one.terminate();
    // Posting goes on through Caddy, which retries the stopped upstream's requests on the other.
    let poster = Browser::new(&base);
    poster.dev_sign_in("ada@example.org").await;
    let posting = {
        let code = code.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                poster.say(&code, &format!("during {i}")).await;
            }
        })
    };
    let total = 30;
    let followed =
        futures_util::future::join_all(sockets.into_iter().map(|s| follow(&ada, &code, s, total)))
            .await;
    posting.await.unwrap();
    let mut closes = Vec::new();
    for (seqs, closed) in followed {
        assert_exactly(&seqs, 1, total as i64);
        closes.extend(closed);
    }
    let restarts = closes.iter().filter(|c| **c == Closed::Code(1012)).count();
    assert!(
        restarts as f64 >= on_one,
        "the {on_one} sockets on the stopped upstream were closed with 1012 and resumed: {closes:?}"
    );
    assert!(
        one.exited(Duration::from_secs(10))
            .await
            .is_some_and(|s| s.success()),
        "the stopped upstream exits 0"
    );
}

/// Reads a socket as js/live.js does: on a close, reconnect with `?after=` the last seq shown.
/// Returns the seqs received and how the socket was closed along the way.
async fn follow(
    b: &Browser,
    code: &str,
    mut socket: Socket,
    total: usize,
) -> (Vec<i64>, Vec<Closed>) {
    let mut seqs: Vec<i64> = Vec::new();
    let mut closes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seqs.len() < total && tokio::time::Instant::now() < deadline {
        match socket.next_event(Duration::from_secs(2)).await {
            Next::Text(frame) => seqs.extend(seqs_in(&frame)),
            Next::Closed(how) => {
                closes.push(how);
                let after = seqs.last().copied().unwrap_or(0);
                socket = loop {
                    match b.socket(code, Some(after)).await {
                        Ok(s) => break s,
                        Err(refused) => {
                            assert!(
                                tokio::time::Instant::now() < deadline,
                                "no reconnect within a minute (last: {refused:?})"
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                    }
                };
            }
            Next::Quiet => {}
        }
    }
    (seqs, closes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_variant_serves_https_with_caddys_own_certificate() {
    if !Caddy::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let caddy_port = crate::procs::free_port();
    let natter = Natter::start(
        &db,
        &format!("https://127.0.0.1:{caddy_port}"),
        &[
            ("NATTER_TRUSTED_PROXIES", "127.0.0.1"),
            ("NATTER_DEV_LOGIN", "0"),
        ],
    )
    .await;
    let _caddy = Caddy::start_on(caddy_port, &[natter.addr()], true, false).await;
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let landing = client
        .get(format!("https://127.0.0.1:{caddy_port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(landing.status(), 200);
    assert!(landing.headers().get("strict-transport-security").is_none());
    assert!(landing.text().await.unwrap().contains("natter"));
}

/// One natter on a fresh SQLite database behind Caddy over plain HTTP, with Caddy's admin
/// API when `admin` (for reloads). Returns the database's directory (keep it alive), the
/// public URL, natter and Caddy.
async fn natter_behind_caddy(admin: bool) -> (tempfile::TempDir, String, Natter, Caddy) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let caddy_port = crate::procs::free_port();
    let public = format!("http://127.0.0.1:{caddy_port}");
    let natter = Natter::start(&db, &public, &[("NATTER_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let caddy = Caddy::start_on(caddy_port, &[natter.addr()], false, admin).await;
    (dir, public, natter, caddy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caddy_reload_closes_sockets_with_1001_and_they_resume() {
    if !Caddy::available() {
        return;
    }
    let (_dir, public, natter, caddy) = natter_behind_caddy(true).await;
    let ada = Browser::signed_in(&public, "ada@example.org", "ada").await;
    let code = ada.create_room("Reload").await;
    ada.say(&code, "one").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    assert_exactly(&socket.seqs_until(1, WAIT).await, 1, 1);
    caddy.reload(&[natter.addr()]);
    assert_eq!(socket.closed(WAIT).await, Closed::Code(1001));
    ada.say(&code, "two").await;
    let mut socket = ada.socket(&code, Some(1)).await.unwrap();
    assert_exactly(&socket.seqs_until(1, WAIT).await, 2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_keeps_metrics_in_and_leaves_socket_upgrades_uncompressed() {
    if !Caddy::available() {
        return;
    }
    let (_dir, public, natter, _caddy) = natter_behind_caddy(false).await;
    // Scrapers read /metrics from natter's own port; the internet gets nothing there.
    for path in ["/metrics", "/metrics/"] {
        let answer = Browser::new(&public).get(path).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
    }
    let direct = reqwest::get(format!("http://{}/metrics", natter.addr()))
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);

    // Browsers offer compression on the upgrade request too.
    let ada = Browser::signed_in(&public, "ada@example.org", "ada").await;
    let code = ada.create_room("Upgrade").await;
    let mut request = format!(
        "{}/rooms/{code}/ws?after=0",
        public.replacen("http", "ws", 1)
    )
    .into_client_request()
    .unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", ada.cookie_header().parse().unwrap());
    headers.insert("origin", public.parse().unwrap());
    headers.insert(
        "accept-encoding",
        "gzip, deflate, br, zstd".parse().unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade goes through");
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers().get("content-encoding"),
        None,
        "{:?}",
        response.headers()
    );
    let mut socket = Socket {
        ws,
        frames: Vec::new(),
        close_reason: None,
    };
    assert!(socket.wait_for("id=\"members\"", WAIT).await);
    ada.say(&code, "through caddy").await;
    assert_exactly(&socket.seqs_until(1, WAIT).await, 1, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy_a_client_cannot_choose_its_address() {
    if !Caddy::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let caddy_port = crate::procs::free_port();
    let public = format!("http://127.0.0.1:{caddy_port}");
    let settings = [
        ("NATTER_TRUSTED_PROXIES", "127.0.0.1"),
        ("NATTER_LIMIT_SIGN_INS", "3/1h"),
    ];
    let natter = Natter::start(&db, &public, &settings).await;
    let _caddy = Caddy::start_on(caddy_port, &[natter.addr()], false, false).await;
    // natter reads the client from X-Forwarded-For: Caddy must set it to the address it saw,
    // not pass on (or append to) what the client wrote, or each sign-in below would count
    // against another address.
    let mut statuses = Vec::new();
    for i in 1..=4 {
        let b = Browser::new(&public);
        let csrf = b.csrf_from("/").await;
        let spoofed = format!("203.0.113.{i}");
        let headers = [
            ("origin", public.as_str()),
            ("x-forwarded-for", spoofed.as_str()),
            ("x-real-ip", spoofed.as_str()),
        ];
        let fields = [("email", "ada@example.org"), ("csrf", csrf.as_str())];
        statuses.push(b.post_with("/auth/dev", &fields, &headers).await.status);
    }
    assert_eq!(statuses, [303, 303, 303, 429]);
}
