//! Scenario 3: the server restarts (same port, same database) or Caddy reloads (closing every
//! socket with 1001) under two open pages; what was posted while the pages had no socket appears
//! exactly once, in order, once they reconnect (the `?after=` catch-up, not live delivery), and
//! the page says "reconnecting…" while it is cut off.

use serde_json::json;

use crate::chrome::{Chrome, Js};
use crate::common::{Backend, Browser, TestApp};
use crate::procs::{Caddy, Natter, free_port};
use crate::*;

/// Counts the page's socket opens and closes from now on, by listening to the events the htmx
/// ws extension fires anyway (natter's scripts carry no test hooks).
const COUNT_SOCKETS: &str = "(window.natterOpens = 0, window.natterCloses = 0,
    document.addEventListener('htmx:wsOpen', () => window.natterOpens++),
    document.addEventListener('htmx:wsClose', () => window.natterCloses++), true)";

const RECONNECTING: &str =
    "document.querySelector('#room-status').textContent.includes('reconnecting')";

/// Two people in a room with their live sockets up; returns the room code.
async fn two_in_a_room(ada: &Chrome, bob: &Chrome) -> String {
    sign_up_dev(ada, "ada@example.org", "ada").await;
    let code = create_room(ada, "Resilient").await;
    sign_up_dev(bob, "bob@example.org", "bob").await;
    join_by_link(bob, &code).await;
    ada.wait_until("bob online", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    bob.wait_until("ada online", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    send(ada, "before").await;
    wait_for_message(bob, "before").await;
    for c in [ada, bob] {
        c.js(COUNT_SOCKETS, vec![]).await;
    }
    code
}

/// The page lost its socket and has not opened another since: whatever was posted up to now
/// can only reach it through the catch-up after it reconnects.
async fn assert_cut_off(c: &Chrome, who: &str) {
    let counts = c
        .js("[window.natterOpens, window.natterCloses]", vec![])
        .await;
    assert_eq!(counts[0], json!(0), "{who}'s page reconnected too early");
    assert!(
        counts[1].as_u64().is_some_and(|n| n >= 1),
        "{who}'s page never saw its socket close: {counts}"
    );
    assert_eq!(
        c.message_texts().await,
        ["before"],
        "{who}'s page got a message while cut off"
    );
}

/// Both pages show exactly `want`, in order, and are live again.
async fn both_show_exactly(ada: &Chrome, bob: &Chrome, want: &[&str]) {
    for c in [ada, bob] {
        c.wait_until("reconnected", "window.natterOpens >= 1", vec![])
            .await;
        c.wait_until(
            "every message",
            "document.querySelectorAll('#messages .message-body').length >= arguments[0]",
            vec![json!(want.len())],
        )
        .await;
        // Give a duplicate the chance to show up before counting.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(c.message_texts().await, want);
        c.wait_until(
            "status cleared",
            "document.querySelector('#room-status').textContent === ''",
            vec![],
        )
        .await;
    }
    // And live again, both ways.
    send(bob, "live again").await;
    wait_for_message(ada, "live again").await;
}

const MEANWHILE: [&str; 4] = ["before", "meanwhile 1", "meanwhile 2", "meanwhile 3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_shows_reconnecting_and_loses_or_repeats_nothing() {
    let limits = [("NATTER_LIMIT_POSTS", "100000/1s")];
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &limits).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    let code = two_in_a_room(&ada, &bob).await;
    let cy = app.signed_in("cyd@example.org", "cyd").await;
    cy.join(&code).await;
    let token = api_token(&cy, "meanwhile").await;

    let (db, port) = (app.db.clone(), app.addr.port());
    app.stop().await.expect("natter stops");
    for c in [&ada, &bob] {
        c.wait_until("reconnecting… while natter is down", RECONNECTING, vec![])
            .await;
    }
    ada.screenshots("room-reconnecting").await;

    // The pages keep knocking on their port, which stays closed while cyd posts through
    // another natter on the same database.
    let elsewhere = TestApp::start_on(db.clone(), None, &limits).await;
    for text in &MEANWHILE[1..] {
        api_say(&elsewhere.base, &token, &code, text).await;
    }
    elsewhere.stop().await.expect("the other natter stops");
    assert_cut_off(&ada, "ada").await;
    assert_cut_off(&bob, "bob").await;

    let _app = TestApp::start_on(db, Some(port), &limits).await;
    both_show_exactly(&ada, &bob, &MEANWHILE).await;
    for c in [&ada, &bob] {
        c.assert_console_problems_only_from_the_outage().await;
    }
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caddy_reload_closes_sockets_and_pages_resume_exactly() {
    if !Caddy::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let caddy_port = free_port();
    let public = format!("http://127.0.0.1:{caddy_port}");
    let natter = Natter::start(
        &db,
        &public,
        &[
            ("NATTER_TRUSTED_PROXIES", "127.0.0.1"),
            ("NATTER_LIMIT_POSTS", "100000/1s"),
        ],
    )
    .await;
    let caddy = Caddy::start_on(caddy_port, &[natter.addr()], false, true).await;
    let Some((ada, bob)) = Chrome::pair(&public, Js::On).await else {
        return;
    };
    let code = two_in_a_room(&ada, &bob).await;
    let cy = Browser::signed_in(&public, "cyd@example.org", "cyd").await;
    cy.join(&code).await;
    let token = api_token(&cy, "meanwhile").await;

    // The reload closes every proxied socket (1001) and sends the pages' reconnects to an
    // address where nothing listens, while natter itself keeps taking posts on its own port.
    let nowhere = format!("127.0.0.1:{}", free_port());
    caddy.reload(&[nowhere]);
    for c in [&ada, &bob] {
        c.wait_until("reconnecting… after the reload", RECONNECTING, vec![])
            .await;
    }
    for text in &MEANWHILE[1..] {
        api_say(&format!("http://{}", natter.addr()), &token, &code, text).await;
    }
    assert_cut_off(&ada, "ada").await;
    assert_cut_off(&bob, "bob").await;

    caddy.reload(&[natter.addr()]);
    both_show_exactly(&ada, &bob, &MEANWHILE).await;
    for c in [&ada, &bob] {
        c.assert_console_problems_only_from_the_outage().await;
    }
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_signed_out_or_out_of_the_room_while_away_stop_knocking_and_say_so() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    let code = two_in_a_room(&ada, &bob).await;
    let (db, port) = (app.db.clone(), app.addr.port());
    app.stop().await.expect("natter stops");
    for c in [&ada, &bob] {
        c.wait_until("reconnecting… while natter is down", RECONNECTING, vec![])
            .await;
    }
    // While the pages' natter is away, ada signs out everywhere and bob leaves the room,
    // through another natter on the same database: no socket is there to be closed.
    let elsewhere = TestApp::start_on(db.clone(), None, &[]).await;
    let ada_elsewhere = Browser::new(&elsewhere.base);
    ada_elsewhere.dev_sign_in("ada@example.org").await;
    let r = ada_elsewhere
        .post_form("/profile", "/auth/logout/everywhere", &[])
        .await;
    assert_eq!(r.status, 303);
    let bob_elsewhere = Browser::new(&elsewhere.base);
    bob_elsewhere.dev_sign_in("bob@example.org").await;
    bob_elsewhere.leave(&code).await;
    elsewhere.stop().await.expect("the other natter stops");

    // Back on their port, the upgrades are refused (401, 404), which a page only sees as
    // failed connections: it asks the page itself and lands where that sends it.
    let _app = TestApp::start_on(db, Some(port), &[]).await;
    ada.wait_until(
        "the sign-in page, to come back to the room",
        "location.pathname === '/' && location.search.includes('next=')",
        vec![],
    )
    .await;
    assert!(ada.exists("#dev-email").await, "the sign-in page");
    bob.wait_until(
        "the room's not-found page",
        "document.title.includes('Not found') || document.body.textContent.includes('Not found')",
        vec![],
    )
    .await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_over_the_socket_cap_says_why_and_goes_live_when_another_closes() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &[("NATTER_SOCKETS_PER_USER", "1")]).await
    else {
        return;
    };
    let Some((first, second)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&first, "ada@example.org", "ada").await;
    let code = create_room(&first, "Tabs").await;
    first
        .wait_until(
            "ada online in her first tab",
            MEMBER_ONLINE,
            vec![json!("ada")],
        )
        .await;
    // The same person in another browser: her one socket is taken.
    second.goto("/").await;
    second.type_into("#dev-email", "ada@example.org").await;
    second
        .click("form[action='/auth/dev'] button[type=submit]")
        .await;
    second.wait_for_path("/home").await;
    second.goto(&format!("/rooms/{code}")).await;
    second
        .wait_until(
            "the page saying why it is not live",
            "document.querySelector('#room-status').textContent.includes('too many natter tabs are open')",
            vec![],
        )
        .await;
    second.screenshot("socket-cap").await;
    // The first tab leaves the room page; the second connects on its next try.
    first.goto("/home").await;
    second
        .wait_until(
            "live again, the status line cleared",
            "document.querySelector('#room-status').textContent === ''
             && !document.documentElement.dataset.live",
            vec![],
        )
        .await;
    send(&second, "from the second tab").await;
    wait_for_message(&second, "from the second tab").await;
    first.quit().await;
    second.quit().await;
}

/// Counts the page's event-stream opens and failures from now on (the sse extension's events),
/// as `COUNT_SOCKETS` counts sockets.
const COUNT_EVENTS: &str = "(window.natterOpens = 0, window.natterCloses = 0,
    document.addEventListener('htmx:sseOpen', () => window.natterOpens++),
    document.addEventListener('htmx:sseError', () => window.natterCloses++), true)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_websockets_pages_fall_back_to_sse_chat_and_resume_after_a_restart() {
    // As behind a proxy that strips upgrades: every socket is refused (403).
    let settings = [
        ("NATTER_LIMIT_POSTS", "100000/1s"),
        ("NATTER_REFUSE_WEBSOCKETS", "1"),
    ];
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &settings).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Fallback").await;
    sign_up_dev(&bob, "bob@example.org", "bob").await;
    join_by_link(&bob, &code).await;
    // Presence comes over the events too.
    ada.wait_until("bob online", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    bob.wait_until("ada online", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    for c in [&ada, &bob] {
        let events = format!(
            "document.querySelector('[sse-connect]')?.getAttribute('sse-connect') === '/rooms/{code}/events'"
        );
        c.wait_until("the page on the room's events", &events, vec![])
            .await;
    }
    send(&ada, "before").await;
    wait_for_message(&bob, "before").await;
    send(&bob, "hi ada").await;
    wait_for_message(&ada, "hi ada").await;
    for c in [&ada, &bob] {
        c.js(COUNT_EVENTS, vec![]).await;
    }
    let cy = app.signed_in("cyd@example.org", "cyd").await;
    cy.join(&code).await;
    let token = api_token(&cy, "meanwhile").await;

    let (db, port) = (app.db.clone(), app.addr.port());
    app.stop().await.expect("natter stops");
    for c in [&ada, &bob] {
        c.wait_until("reconnecting… while natter is down", RECONNECTING, vec![])
            .await;
    }
    let elsewhere = TestApp::start_on(db.clone(), None, &settings).await;
    for text in ["meanwhile 1", "meanwhile 2", "meanwhile 3"] {
        api_say(&elsewhere.base, &token, &code, text).await;
    }
    elsewhere.stop().await.expect("the other natter stops");
    let shown = ["before", "hi ada"];
    for (c, who) in [(&ada, "ada"), (&bob, "bob")] {
        let counts = c
            .js("[window.natterOpens, window.natterCloses]", vec![])
            .await;
        assert_eq!(counts[0], json!(0), "{who}'s page reconnected too early");
        assert_eq!(
            c.message_texts().await,
            shown,
            "{who}'s page got a message while cut off"
        );
    }

    // Back on the same port: the browsers' own reconnects resume after the last event's id.
    let app = TestApp::start_on(db, Some(port), &settings).await;
    let want = [
        "before",
        "hi ada",
        "meanwhile 1",
        "meanwhile 2",
        "meanwhile 3",
    ];
    both_show_exactly(&ada, &bob, &want).await;
    // An edit reaches the pages in place, as over a socket.
    let seq = ada
        .js(
            "[...document.querySelectorAll('#messages article[data-seq]')]
                .find((a) => a.querySelector('.message-body')?.textContent === 'meanwhile 2')
                ?.dataset.seq",
            vec![],
        )
        .await;
    let seq = seq.as_str().expect("meanwhile 2's seq");
    for c in [&ada, &bob] {
        c.js("window.natterSamePage = true", vec![]).await;
    }
    let edited = reqwest::Client::new()
        .patch(format!("{}/api/v1/rooms/{code}/messages/{seq}", app.base))
        .bearer_auth(&token)
        .json(&json!({ "body": "meanwhile 2, fixed" }))
        .send()
        .await
        .expect("API edit");
    assert_eq!(edited.status(), 200);
    let want = [
        "before",
        "hi ada",
        "meanwhile 1",
        "meanwhile 2, fixed",
        "meanwhile 3",
        "live again",
    ];
    for c in [&ada, &bob] {
        c.wait_until(
            "the edit in place",
            "[...document.querySelectorAll('#messages .message-body')]
                .some((b) => b.textContent === 'meanwhile 2, fixed')",
            vec![],
        )
        .await;
        assert_eq!(c.message_texts().await, want);
        assert_eq!(
            c.js("window.natterSamePage", vec![]).await,
            json!(true),
            "not reloaded"
        );
    }
    for c in [&ada, &bob] {
        // Besides the outage's: the refused sockets, and the page asking their address why.
        let problems: Vec<String> = c
            .console_problems()
            .await
            .into_iter()
            .filter(|p| {
                let expected = [
                    "WebSocket connection to",
                    "net::ERR_CONNECTION_REFUSED",
                    "the server responded with a status of 403 ",
                ];
                let extension = p.contains("htmx.min.js") && p.contains("[object Event]");
                !extension && !expected.iter().any(|e| p.contains(e))
            })
            .collect();
        assert!(problems.is_empty(), "console problems: {problems:#?}");
    }
    ada.quit().await;
    bob.quit().await;
}
