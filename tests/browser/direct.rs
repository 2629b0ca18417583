//! Direct messages in a real browser: "Message privately" on a member's name, the start page's
//! button, the conversation live on both pages, the rail's "Direct messages" section, one's own
//! name without the link; and the same journey with JavaScript off. axe on each new page.

use serde_json::json;

use crate::chrome::{Chrome, Js};
use crate::pages::inspect;
use crate::*;

/// Whether the "Message privately" link beside member `name` is displayed.
const DM_LINK_SHOWN: &str = "(() => {
    const li = [...document.querySelectorAll('#members li.member')]
        .find((li) => li.querySelector('.member-name')?.textContent === arguments[0]);
    const link = li?.querySelector('.dm-link');
    return !!link && getComputedStyle(link).display !== 'none';
})()";

/// Clicks "Message privately" beside `name` in the member panel, opening the panel first as a
/// person on a phone does (WebDriver finds nothing inside a closed `<details>` interactable,
/// though wide screens show its content).
async fn message_privately(c: &Chrome, name: &str) {
    c.click("#members-title").await;
    c.click(&format!("#members a.dm-link[href='/dm/{name}']"))
        .await;
}

/// Ada and Bob in one room, both pages open on it; returns the room's code.
async fn in_a_room(ada: &Chrome, bob: &Chrome) -> String {
    sign_up_dev(ada, "ada@example.org", "ada").await;
    let code = create_room(ada, "Book club").await;
    sign_up_dev(bob, "bob@example.org", "bob").await;
    join_by_link(bob, &code).await;
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_privately_opens_a_live_conversation_listed_under_the_name() {
    let Some(app) = TestApp::spawn_with(common::Backend::Sqlite, FAST_POSTS).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    let code = in_a_room(&ada, &bob).await;
    ada.goto(&format!("/rooms/{code}")).await;
    ada.wait_until("Bob listed", MEMBER_LISTED, vec![json!("bob")])
        .await;
    // Beside Bob, not beside oneself.
    assert_eq!(ada.js(DM_LINK_SHOWN, vec![json!("bob")]).await, json!(true));
    assert_eq!(
        ada.js(DM_LINK_SHOWN, vec![json!("ada")]).await,
        json!(false)
    );

    message_privately(&ada, "bob").await;
    ada.wait_until_path_is("/dm/bob").await;
    inspect(&ada, "direct-start", None).await;
    ada.click("form[action='/dm/bob'] button[type=submit]")
        .await;
    ada.wait_until(
        "the conversation",
        "!!document.querySelector('.room[data-direct]')",
        vec![],
    )
    .await;
    assert_eq!(ada.text("h1").await, "bob");
    assert!(
        !ada.exists("#room-code").await,
        "no code in a direct conversation"
    );
    // The rail lists it under "Direct messages", marked as the page.
    assert_eq!(
        ada.js(
            "document.querySelector('.rail-direct a[aria-current=page]')?.getAttribute('href')",
            vec![]
        )
        .await,
        json!("/dm/bob")
    );
    inspect(&ada, "direct-conversation", None).await;
    send(&ada, "psst, bob").await;
    wait_for_message(&ada, "psst, bob").await;
    // Bob, still in the room, sees it join his rail live, with its unread mark.
    bob.wait_until(
        "the rail lists it live",
        "!!document.querySelector('.rail-direct a[href=\"/dm/ada#unread\"]')",
        vec![],
    )
    .await;
    bob.assert_console_clean("the rail refreshed").await;

    // Bob finds it on home, with its unread mark, and both see each other live.
    bob.goto("/home").await;
    bob.wait_until(
        "the list",
        "!!document.querySelector('.my-directs a[href=\"/dm/ada#unread\"]')",
        vec![],
    )
    .await;
    bob.click(".my-directs a[href='/dm/ada#unread']").await;
    bob.wait_for_path("/dm/ada").await;
    wait_for_message(&bob, "psst, bob").await;
    for c in [&ada, &bob] {
        c.wait_until("both online", MEMBER_ONLINE, vec![json!("ada")])
            .await;
        c.wait_until("both online", MEMBER_ONLINE, vec![json!("bob")])
            .await;
    }
    send(&bob, "hi ada").await;
    wait_for_message(&ada, "hi ada").await;
    send(&ada, "see you").await;
    wait_for_message(&bob, "see you").await;
    ada.assert_console_clean("direct conversation").await;
    bob.assert_console_clean("direct conversation").await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_a_conversation_is_started_written_in_and_closed() {
    let Some(app) = TestApp::spawn_with(common::Backend::Sqlite, FAST_POSTS).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::Off).await else {
        return;
    };
    let code = in_a_room(&ada, &bob).await;
    ada.goto(&format!("/rooms/{code}")).await;
    message_privately(&ada, "bob").await;
    ada.wait_until_path_is("/dm/bob").await;
    ada.click("form[action='/dm/bob'] button[type=submit]")
        .await;
    ada.wait_for_path("/dm/bob").await;
    assert!(ada.exists(".room[data-direct]").await);
    send(&ada, "no scripts here").await;
    wait_for_message(&ada, "no scripts here").await;
    bob.goto("/dm/ada").await;
    wait_for_message(&bob, "no scripts here").await;
    // Closing takes it off Bob's home; Ada's next message brings it back.
    bob.click("form[action='/dm/ada/close'] button[type=submit]")
        .await;
    bob.wait_until_path_is("/home").await;
    assert!(!bob.exists(".my-directs").await);
    send(&ada, "still there?").await;
    wait_for_message(&ada, "still there?").await;
    bob.goto("/home").await;
    assert!(bob.exists(".my-directs a[href='/dm/ada#unread']").await);
    ada.quit().await;
    bob.quit().await;
}
