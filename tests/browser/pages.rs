//! Every page in a real browser: screenshots at desktop and phone widths in light and dark mode
//! (`target/screenshots/`), axe-core with zero serious or critical violations, no console error
//! and no Content-Security-Policy report; and the main actions with the keyboard alone.

use serde_json::json;

use crate::chrome::{Chrome, ENTER, Js, TAB};
use crate::common::{Backend, Mode, TestApp};
use crate::*;

/// Looks at the current page: console, axe (light and dark), screenshots.
async fn inspect(c: &Chrome, name: &str, expected_status: Option<u16>) {
    c.find("main").await;
    let problems: Vec<String> = c
        .console_problems()
        .await
        .into_iter()
        .filter(|p| match expected_status {
            // Chromium reports an error status of the page itself as a failed load.
            Some(status) => !p.contains(&format!("status of {status}")),
            None => true,
        })
        .collect();
    assert!(
        problems.is_empty(),
        "console problems on {name}: {problems:#?}"
    );
    for dark in [false, true] {
        c.dark(dark).await;
        let violations = c.axe().await;
        assert!(
            violations.is_empty(),
            "axe on {name} ({}): {violations:#?}",
            if dark { "dark" } else { "light" }
        );
        c.screenshots(&format!("{name}{}", if dark { "-dark" } else { "" }))
            .await;
    }
    c.dark(false).await;
    let after = c.console_problems().await;
    assert!(
        after.is_empty(),
        "console problems on {name} after resizing: {after:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_accessible_clean_and_photographed() {
    let Some(app) =
        TestApp::spawn_with(Backend::Sqlite, &[("NATTER_LIMIT_POSTS", "100000/1s")]).await
    else {
        return;
    };
    let Some(ada) = Chrome::start(&app.base, Js::On).await else {
        return;
    };

    // Someone else's room with a conversation worth looking at.
    let bob = app.signed_in("bob@example.org", "bob").await;
    let code = app.create_room(&bob, "Design review").await;
    for i in 1..=52 {
        bob.say(&code, &format!("Earlier note {i}")).await;
    }
    let elsewhere = app.create_room(&bob, "Bob's other room").await;

    ada.goto("/").await;
    inspect(&ada, "landing", None).await;
    ada.goto(&format!("/join/{code}")).await;
    inspect(&ada, "invite-signed-out", None).await;
    ada.goto("/no/such/page").await;
    inspect(&ada, "not-found", Some(404)).await;

    app.provider.set_mode(Mode::Deny);
    ada.goto("/").await;
    ada.click("a[href^='/auth/login']").await;
    ada.find("#problem-title").await;
    inspect(&ada, "sign-in-refused", Some(400)).await;
    app.provider.set_mode(Mode::Normal);

    app.provider.sign_in_as(crate::common::FakeUser::verified(
        "sub-ada",
        "ada@example.org",
    ));
    ada.goto("/").await;
    ada.click("a[href^='/auth/login']").await;
    ada.wait_for_path("/username").await;
    inspect(&ada, "username", None).await;
    ada.type_into("#username", "<b>no</b>").await;
    ada.click("form[action='/username'] button[type=submit]")
        .await;
    ada.find("#username-error").await;
    inspect(&ada, "username-refused", Some(422)).await;
    choose_username(&ada, "ada").await;
    inspect(&ada, "home-empty", None).await;

    ada.type_into("#join-code", "NOPE-NOPE").await;
    ada.click("form[action='/rooms/join'] button[type=submit]")
        .await;
    ada.find("#join-code-error").await;
    inspect(&ada, "home-join-refused", Some(422)).await;

    join_by_link(&ada, &code).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    for text in [
        "Here is the plan: https://example.org/plan — thoughts?",
        "A longer message to see how text wraps across the column on a phone and on a desktop, \
         with enough words to need at least two lines on either.",
    ] {
        send(&ada, text).await;
        wait_for_message(&ada, text).await;
    }
    bob.say(&code, "Looks good to me @ada").await;
    wait_for_message(&ada, "Looks good to me @ada").await;
    inspect(&ada, "room", None).await;
    ada.client
        .execute(
            "document.querySelector('.members-details').open = true",
            vec![],
        )
        .await
        .unwrap();
    inspect(&ada, "room-members-open", None).await;

    ada.js(
        "document.querySelector('#load-older').scrollIntoView()",
        vec![],
    )
    .await;
    ada.click("#load-older").await;
    ada.wait_until(
        "older messages",
        "document.querySelectorAll('#messages .message').length > 50",
        vec![],
    )
    .await;
    inspect(&ada, "room-with-older", None).await;
    // The page of its own that "Load older" is without JavaScript: messages 3 to 52, with
    // links both ways.
    ada.goto(&format!("/rooms/{code}/messages?before=53")).await;
    assert_eq!(ada.message_texts().await.len(), 50);
    inspect(&ada, "history", None).await;

    ada.goto(&format!("/join/{elsewhere}")).await;
    inspect(&ada, "invite", None).await;
    ada.goto("/home").await;
    inspect(&ada, "home", None).await;
    ada.goto("/profile").await;
    inspect(&ada, "profile", None).await;
    ada.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_join_and_send_with_the_keyboard_alone() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let Some(ada) = Chrome::start(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let bob = app.signed_in("bob@example.org", "bob").await;
    let bobs = app.create_room(&bob, "Bob's").await;

    // Create: Tab to the name, type, Tab to the button, Enter.
    ada.goto("/home").await;
    ada.tab_to("room-name").await;
    ada.press("Keyboard club").await;
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "button:Create room");
    assert_focus_visible(&ada).await;
    ada.press(ENTER).await;
    ada.wait_for_path("/rooms/").await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;

    // Send with Enter in the composer, then with Tab to Send and Enter.
    ada.tab_to("composer-body").await;
    assert_focus_visible(&ada).await;
    ada.press("typed, then Enter").await;
    ada.press(ENTER).await;
    wait_for_message(&ada, "typed, then Enter").await;
    ada.tab_to("composer-body").await;
    ada.press("typed, then the Send button").await;
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "button:Send");
    assert_focus_visible(&ada).await;
    ada.press(ENTER).await;
    wait_for_message(&ada, "typed, then the Send button").await;

    // A refused post (only spaces) says why and keeps the text; the next good one clears the
    // error without replacing the form.
    ada.type_into("#composer-body", "   ").await;
    ada.click("#composer button[type=submit]").await;
    ada.find("#composer-error").await;
    assert_eq!(
        ada.js("document.querySelector('#composer-body').value", vec![])
            .await,
        json!("   ")
    );
    ada.type_into("#composer-body", "after the error").await;
    ada.press(ENTER).await;
    wait_for_message(&ada, "after the error").await;
    ada.wait_until(
        "the error gone",
        "!document.querySelector('#composer-error') && !document.querySelector('#composer-body').hasAttribute('aria-invalid')",
        vec![],
    )
    .await;

    // Join with a code.
    ada.goto("/home").await;
    ada.tab_to("join-code").await;
    ada.press(&bobs).await;
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "button:Join room");
    ada.press(ENTER).await;
    ada.wait_for_path(&format!("/rooms/{bobs}")).await;
    // Besides the refused post's 422, which Chromium reports as a failed load, nothing.
    let problems: Vec<String> = ada
        .console_problems()
        .await
        .into_iter()
        .filter(|p| !p.contains("status of 422"))
        .collect();
    assert!(
        problems.is_empty(),
        "console problems on the keyboard journey: {problems:#?}"
    );
    ada.quit().await;
}

/// The focused element shows a focus indicator (outline or ring).
async fn assert_focus_visible(c: &Chrome) {
    let style = c
        .js(
            "(() => { const s = getComputedStyle(document.activeElement); \
             return s.outlineStyle !== 'none' && s.outlineWidth !== '0px' || s.boxShadow !== 'none'; })()",
            vec![],
        )
        .await;
    assert_eq!(
        style,
        json!(true),
        "no visible focus on {}",
        c.focused().await
    );
}
