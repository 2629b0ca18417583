//! Scenario 2: the whole journey with JavaScript switched off in Chrome's settings: full-page
//! posts and redirects only.

use crate::chrome::{Chrome, Js};
use crate::*;

/// Marks the page and its streamed conversation's document (WebDriver runs scripts with
/// JavaScript off too); `STILL_MARKED` says whether both marks are still there.
const MARK_PAGE_AND_STREAM: &str = "(window.natterMark = 1,
    document.querySelector('iframe.live-frame').contentWindow.natterMark = 1, true)";
const STILL_MARKED: &str = "[window.natterMark === 1,
    document.querySelector('iframe.live-frame').contentWindow.natterMark === 1]";

crate::both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_whole_journey_works_with_javascript_off(app: TestApp) {
        let Some((ada, bob)) = Chrome::pair(&app.base, Js::Off).await else {
            return;
        };
        sign_up_with_provider(&ada, &app, "ada@example.org", "ada").await;
        let code = create_room(&ada, "Quiet room").await;

        // Sixty older messages from someone else, so there is history to page back through.
        let cy = app.signed_in("cyd@example.org", "cyd").await;
        cy.join(&code).await;
        for i in 1..=60 {
            cy.say(&code, &format!("older {i}")).await;
        }

        send(&ada, "hello without javascript").await;
        wait_for_message(&ada, "hello without javascript").await;
        // JavaScript really is off: js/copy.js would have added the copy button.
        assert!(!ada.exists("button[data-copy]").await);

        // Bob joins with the code from the home page form.
        sign_up_with_provider(&bob, &app, "bob@example.org", "bob").await;
        bob.type_into("#join-code", &code.to_lowercase()).await;
        bob.click("form[action='/rooms/join'] button[type=submit]")
            .await;
        bob.wait_for_path(&format!("/rooms/{code}")).await;
        let texts = bob.message_texts().await;
        assert_eq!(texts.len(), 50, "one page of history");
        assert_eq!(texts.last().unwrap(), "hello without javascript");
        assert!(!texts.contains(&"older 1".to_string()));

        // Load older, at the top of the streamed conversation: a page of its own, in the whole
        // tab (links in the frame open there). Clicked by script: WebDriver cannot enter a
        // frame whose document is still loading, and the stream's always is.
        bob.js(
            "document.querySelector('iframe.live-frame').contentDocument.querySelector('#load-older').click()",
            vec![],
        )
        .await;
        bob.wait_for_path(&format!("/rooms/{code}/messages")).await;
        let older = bob.message_texts().await;
        assert!(older.contains(&"older 1".to_string()), "{older:?}");
        bob.screenshots("history-no-js").await;

        bob.goto(&format!("/rooms/{code}")).await;
        // Ada's page and her streamed conversation stay as they are from here on: marked, so a
        // reload of either would show.
        ada.js(MARK_PAGE_AND_STREAM, vec![]).await;
        send(&bob, "bob here, also without javascript").await;
        wait_for_message(&bob, "bob here, also without javascript").await;
        assert_eq!(
            bob.message_texts().await.last().unwrap(),
            "bob here, also without javascript"
        );

        // A refused post keeps the text and says why, in the composer frame, and the
        // conversation beside it goes on.
        in_composer_frame(&bob, |bob| async move {
            bob.type_into("#composer-body", "   ").await;
            bob.click("form.composer button[type=submit]").await;
            bob.find("#composer-error").await;
            assert_eq!(bob.js(COMPOSER_TEXT, vec![]).await, serde_json::json!("   "));
        })
        .await;

        // Ada sees it arrive without reloading anything.
        wait_for_message(&ada, "bob here, also without javascript").await;
        assert_eq!(
            ada.js(STILL_MARKED, vec![]).await,
            serde_json::json!([true, true]),
            "the page or its stream reloaded"
        );
        assert_eq!(
            ada.message_texts().await.last().unwrap(),
            "bob here, also without javascript"
        );
        ada.screenshots("room-no-js").await;
        // The frames are titled for assistive technology. (axe never answers in a page with
        // JavaScript off: a script timeout. The composer frame's document is checked in
        // `pages`, where it is the same document.)
        ada.goto(&format!("/rooms/{code}")).await;
        for title in ["Messages, live", "Write a message"] {
            assert!(ada.exists(&format!("iframe[title='{title}']")).await, "{title}");
        }

        // Sign out: back on the landing page, and signed-in pages send her there.
        ada.click("form[action='/auth/logout'] button[type=submit]")
            .await;
        ada.wait_until_path_is("/").await;
        ada.goto("/profile").await;
        ada.wait_until_path_is("/?next=%2Fprofile").await;
        assert!(ada.exists("a[href^='/auth/login']").await);
        // No CSP report and no error anywhere on the way (besides the refused post's 422, which
        // Chromium reports as a failed load).
        ada.assert_console_clean("the journey without JavaScript")
            .await;
        bob.assert_console_clean_but_statuses("the journey without JavaScript", &[422])
            .await;
        ada.quit().await;
        bob.quit().await;
    }
}

/// Through Caddy, as an operator runs natter: the streamed conversation arrives live, and when
/// natter restarts the frame reloads by itself (Caddy holds its request until natter is back,
/// `lb_try_duration`) into the room with what was posted meanwhile, each message once. The
/// page around the frame is never reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_caddy_a_page_without_javascript_stays_live_across_a_restart() {
    use crate::common::Browser;
    use crate::procs::{Caddy, Natter, free_port};
    if !Caddy::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let caddy_port = free_port();
    let public = format!("http://127.0.0.1:{caddy_port}");
    let settings = [
        ("NATTER_TRUSTED_PROXIES", "127.0.0.1"),
        ("NATTER_LIMIT_POSTS", "100000/1s"),
    ];
    let mut natter = Natter::start(&db, &public, &settings).await;
    let port = natter.port;
    let _caddy = Caddy::start_on(caddy_port, &[natter.addr()], false, false).await;
    let Some(ada) = Chrome::start(&public, Js::Off).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Restarts").await;
    let bob = Browser::signed_in(&public, "bob@example.org", "bob").await;
    bob.join(&code).await;
    bob.say(&code, "before").await;
    wait_for_message(&ada, "before").await;
    ada.js("(window.natterMark = 1, true)", vec![]).await;
    let token = api_token(&bob, "meanwhile").await;

    natter.terminate();
    natter
        .exited(std::time::Duration::from_secs(20))
        .await
        .expect("natter stops");
    // Posted while Ada's natter is away, through another on the same database.
    let elsewhere = Natter::start(&db, &public, &settings).await;
    let texts = ["meanwhile 1", "meanwhile 2", "meanwhile 3"];
    for text in texts {
        api_say(&format!("http://{}", elsewhere.addr()), &token, &code, text).await;
    }
    drop(elsewhere);
    let _natter = Natter::start_on(port, &db, &public, &settings).await;

    wait_for_message(&ada, "meanwhile 3").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        ada.message_texts().await,
        ["before", "meanwhile 1", "meanwhile 2", "meanwhile 3"]
    );
    assert_eq!(
        ada.js("window.natterMark === 1", vec![]).await,
        serde_json::json!(true)
    );
    // And live again.
    bob.say(&code, "live again").await;
    wait_for_message(&ada, "live again").await;
    ada.screenshots("room-no-js-after-restart").await;
    ada.quit().await;
}
