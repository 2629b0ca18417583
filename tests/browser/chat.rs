//! Two people chatting live with JavaScript on (scenario 1), and hostile content (scenario 4).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::chrome::{Chrome, Js};
use crate::common::hostile_inputs;
use crate::*;

crate::both! {
    async fn two_people_chat_live_and_see_each_other_come_and_go(app: TestApp) {
        let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else { return };
        sign_up_with_provider(&ada, &app, "ada@example.org", "ada").await;
        let code = create_room(&ada, "Tea & biscuits").await;
        sign_up_with_provider(&bob, &app, "bob@example.org", "bob").await;
        join_by_link(&bob, &code).await;

        // Both live sockets are up when each sees the other online.
        ada.wait_until("bob online for ada", MEMBER_ONLINE, vec![json!("bob")]).await;
        bob.wait_until("ada online for bob", MEMBER_ONLINE, vec![json!("ada")]).await;
        bob.wait_until("bob sees himself online", MEMBER_ONLINE, vec![json!("bob")]).await;

        // Nothing reloads: a marker set on each page now is still there at the end.
        for c in [&ada, &bob] {
            c.js("window.natterTestMarker = true", vec![]).await;
        }
        let mut latencies = Vec::new();
        for i in 0..5 {
            let text = format!("hello bob {i}");
            let start = Instant::now();
            send(&ada, &text).await;
            wait_for_message(&bob, &text).await;
            latencies.push(start.elapsed());
            let text = format!("hi ada {i}");
            let start = Instant::now();
            send(&bob, &text).await;
            wait_for_message(&ada, &text).await;
            latencies.push(start.elapsed());
        }
        latencies.sort();
        let report = format!(
            "browser-to-browser latency over {} messages ({:?}): median {:?}, max {:?} \
             (typing through WebDriver and 20 ms polling included)\n",
            latencies.len(),
            app.db.backend(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );
        // cargo test keeps a passing test's output to itself: the figure goes next to the
        // screenshots too.
        eprint!("{report}");
        let backend = format!("{:?}", app.db.backend()).to_lowercase();
        std::fs::write(crate::chrome::screenshot_dir().join(format!("latency-{backend}.txt")), report)
            .expect("write the latency report");
        for c in [&ada, &bob] {
            assert_eq!(c.js("window.natterTestMarker === true", vec![]).await, json!(true), "the page reloaded");
            // Each message exactly once, in order, on both sides.
            let want: Vec<String> = (0..5).flat_map(|i| [format!("hello bob {i}"), format!("hi ada {i}")]).collect();
            c.wait_until("all ten messages", "document.querySelectorAll('#messages .message-body').length === 10", vec![]).await;
            assert_eq!(c.message_texts().await, want);
            // The "no messages yet" hint went away with the first live message.
            assert_eq!(
                c.js("(() => { const h = document.querySelector('.empty-hint'); return !h || getComputedStyle(h).display === 'none'; })()", vec![]).await,
                json!(true),
                "the empty-room hint is still showing"
            );
            // The composer is empty and ready again after each send.
            assert_eq!(c.js(COMPOSER_TEXT, vec![]).await, json!(""));
        }
        ada.wait_until("summary says 2 online", "document.querySelector('#member-summary').textContent.includes('2 online')", vec![]).await;
        ada.screenshots("room-two-people").await;
        bob.screenshots("room-two-people-bob").await;

        // Bob leaves: ada sees him go from the list without reloading.
        bob.click(".leave-form button[type=submit]").await;
        bob.wait_for_path("/home").await;
        ada.wait_until("bob gone from the list", &format!("!({MEMBER_LISTED})"), vec![json!("bob")]).await;
        ada.wait_until("summary says 1 member", "document.querySelector('#member-summary').textContent.includes('1 member')", vec![]).await;
        assert_eq!(ada.js("window.natterTestMarker === true", vec![]).await, json!(true));

        ada.assert_console_clean("the room").await;
        bob.assert_console_clean("the room and home").await;
        ada.quit().await;
        bob.quit().await;
    }
}

/// Every hostile input, posted by someone else and by the reader herself, shows as text: no
/// dialog, no script, no element smuggled in, no CSP report, and the page's own markup intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_show_as_text_and_run_nothing() {
    let Some((app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "<script>alert('room')</script>").await;
    assert_eq!(
        ada.text(".room-title h1").await,
        "<script>alert('room')</script>"
    );
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;

    // Another member posts every hostile input without JavaScript; each arrives live.
    let eve = app.signed_in("eve@example.org", "eve").await;
    eve.join(&code).await;
    let mut posted = Vec::new();
    for input in hostile_inputs() {
        let csrf = eve.csrf_from(&format!("/rooms/{code}")).await;
        let id = format!("{:032x}", rand::random::<u128>());
        let r = eve
            .post(
                &format!("/rooms/{code}/messages"),
                &[("body", &input), ("client_id", &id), ("csrf", &csrf)],
            )
            .await;
        assert!(
            r.status == 303 || r.status == 422,
            "{input:?}: {}",
            r.status
        );
        if r.status == 303 {
            posted.push(input);
        }
    }
    // And ada posts the sharpest ones from her own composer (htmx).
    for payload in [
        "<img src=x onerror=\"window.natterPwned=1;alert(2)\">",
        "<div hx-swap-oob=\"true\" id=\"composer\">gone</div>",
        "\"><script>alert(3)</script>",
    ] {
        send_raw(&ada, payload).await;
        wait_for_message(&ada, payload).await;
        posted.push(payload.to_string());
    }
    ada.wait_until(
        "every hostile message",
        "document.querySelectorAll('#messages .message-body').length === arguments[0]",
        vec![json!(posted.len())],
    )
    .await;
    for round in ["live", "after a reload"] {
        assert_eq!(
            ada.dialog_open().await,
            None,
            "a script opened a dialog ({round})"
        );
        assert_eq!(
            ada.js("window.natterPwned === undefined", vec![]).await,
            json!(true)
        );
        let smuggled = ada
            .js(
                "document.querySelectorAll('#messages script, #messages img, #messages svg, #messages iframe, \
                 #messages style, #messages meta, #messages [onerror], #messages [hx-get], #messages [hx-swap-oob]').length",
                vec![],
            )
            .await;
        assert_eq!(
            smuggled,
            json!(0),
            "markup from a message became elements ({round})"
        );
        // The composer and the message list are the page's own, not replaced.
        assert_eq!(
            ada.js("document.querySelectorAll('#composer-body').length", vec![])
                .await,
            json!(1)
        );
        let shown = ada.message_texts().await;
        for p in posted.iter().filter(|p| p.contains('<')) {
            assert!(
                shown.iter().any(|s| s == p),
                "{p:?} is not shown as text ({round})"
            );
        }
        ada.assert_console_clean(&format!("the room with hostile messages ({round})"))
            .await;
        ada.screenshots(&format!("room-hostile-{}", round.replace(' ', "-")))
            .await;
        ada.client.refresh().await.expect("reload");
        ada.find("#messages").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ada.quit().await;
}

/// Whether the message with exactly this text is wholly inside the scroll box.
const IN_VIEW: &str = "(() => {
    const box = document.querySelector('.scroller').getBoundingClientRect();
    const m = [...document.querySelectorAll('#messages .message')]
        .find((a) => a.querySelector('.message-body').textContent === arguments[0]);
    if (!m) return false;
    const r = m.getBoundingClientRect();
    return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
})()";

/// Where the message with this text is, in pixels from the top of the scroll box.
const OFFSET: &str = "(() => {
    const m = [...document.querySelectorAll('#messages .message')]
        .find((a) => a.querySelector('.message-body').textContent === arguments[0]);
    return m.getBoundingClientRect().top - document.querySelector('.scroller').getBoundingClientRect().top;
})()";

/// The text of the first message wholly inside the scroll box.
const FIRST_IN_VIEW: &str = "(() => {
    const box = document.querySelector('.scroller').getBoundingClientRect();
    return [...document.querySelectorAll('#messages .message')]
        .find((a) => a.getBoundingClientRect().top >= box.top).querySelector('.message-body').textContent;
})()";

/// Resolves after the page has laid itself out and painted twice.
const TWO_FRAMES: &str =
    "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))";

/// A new message scrolls into view for a reader at the bottom; a reader scrolled up to older
/// messages stays exactly where she is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_follows_new_messages_only_from_the_bottom() {
    let Some((app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    let bob = app.signed_in("bob@example.org", "bob").await;
    let code = app.create_room(&bob, "A long thread").await;
    for i in 1..=40 {
        bob.say(&code, &format!("Line {i}")).await;
    }
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    join_by_link(&ada, &code).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    assert_eq!(ada.js(IN_VIEW, vec![json!("Line 40")]).await, json!(true));

    bob.say(&code, "new at the bottom").await;
    ada.wait_until(
        "the new message scrolled into view",
        IN_VIEW,
        vec![json!("new at the bottom")],
    )
    .await;

    // Up to older messages (in a column-reverse box, scrolling up is a negative scrollTop).
    ada.js(
        "document.querySelector('.scroller').scrollTop = -600",
        vec![],
    )
    .await;
    ada.js(TWO_FRAMES, vec![]).await;
    let line = ada.js(FIRST_IN_VIEW, vec![]).await;
    assert_ne!(line, json!("Line 40"), "the scroll box did not scroll up");
    let reading = ada.js(OFFSET, vec![line.clone()]).await;
    assert_eq!(
        ada.js(IN_VIEW, vec![json!("new at the bottom")]).await,
        json!(false)
    );
    bob.say(&code, "new while reading").await;
    wait_for_message(&ada, "new while reading").await;
    ada.js(TWO_FRAMES, vec![]).await;
    let after = ada.js(OFFSET, vec![line.clone()]).await;
    assert!(
        (after.as_f64().unwrap() - reading.as_f64().unwrap()).abs() <= 2.0,
        "the view moved under the reader: {line} was at {reading} px, now {after} px"
    );
    assert_eq!(
        ada.js(IN_VIEW, vec![json!("new while reading")]).await,
        json!(false),
        "the view jumped to the new message"
    );
    ada.assert_console_clean("the long room").await;
    ada.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_stays_once_in_the_composer_whatever_fails_next() {
    let Some((app, ada)) = app_and_chrome(&[("NATTER_LIMIT_POSTS", "1/1h")]).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Refusals").await;
    app.fill(&code, "ada", 60, |i| {
        natter::domain::MessageBody::parse(&format!("Filler {i}")).unwrap()
    })
    .await;
    ada.goto(&format!("/rooms/{code}")).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    // The store's posts spent nothing of ada's budget: this one spends it, the next is refused
    // and comes back in the composer with the reason.
    send(&ada, "first").await;
    wait_for_message(&ada, "first").await;
    send(&ada, "second").await;
    ada.wait_until(
        "the refusal",
        "document.querySelector('#composer-error')",
        vec![],
    )
    .await;
    assert_eq!(ada.js(COMPOSER_TEXT, vec![]).await, json!("second"));
    // Then another request fails (natter is gone): that is not the composer's post, so
    // nothing is put back in it a second time.
    app.stop().await.expect("natter stops");
    ada.js(
        "(window.natterFailed = false, document.addEventListener('htmx:sendError', \
         () => (window.natterFailed = true)), true)",
        vec![],
    )
    .await;
    ada.js(
        "document.querySelector('#load-older').scrollIntoView()",
        vec![],
    )
    .await;
    ada.click("#load-older").await;
    ada.wait_until("loading older failed", "window.natterFailed", vec![])
        .await;
    assert_eq!(ada.js(COMPOSER_TEXT, vec![]).await, json!("second"));
    ada.quit().await;
}
