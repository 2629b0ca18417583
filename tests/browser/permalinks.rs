//! A message's own link in a real browser with JavaScript on: "Copy link" on every message
//! (those on the page, loaded older and arriving live), the copied link followed from
//! elsewhere, and the history it opens walked forward to the room.

use serde_json::json;

use crate::chrome::ENTER;
use crate::pages::inspect;
use crate::*;

/// The element the address's fragment names: its id, whether it is highlighted, and whether it
/// is in view.
const TARGET: &str = "(() => {
    const t = document.querySelector(':target');
    if (!t) return null;
    const r = t.getBoundingClientRect();
    return { id: t.id, highlighted: getComputedStyle(t).backgroundColor !== 'rgba(0, 0, 0, 0)',
        inView: r.top >= 0 && r.bottom <= innerHeight };
})()";

/// Clicks the link whose text is `text`.
const CLICK_LINK: &str =
    "[...document.querySelectorAll('a')].find((a) => a.textContent === arguments[0]).click()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_message_link_opens_the_room_at_that_message_from_anywhere() {
    let Some((app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Long memory").await;
    app.fill(&code, "ada", 200, |i| {
        let text = format!("Note {} of a long history", i + 1);
        natter::domain::MessageBody::parse(&text).unwrap()
    })
    .await;
    ada.allow_clipboard().await;
    ada.goto(&format!("/rooms/{code}")).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;

    // Every message offers "Copy link": those on the page, those loaded older, a live one.
    const SHOWN: &str = "document.querySelectorAll('#messages .copy-link:not([hidden])').length";
    assert_eq!(ada.js(SHOWN, vec![]).await, json!(50));
    ada.js(
        "document.querySelector('#load-older').scrollIntoView()",
        vec![],
    )
    .await;
    ada.click("#load-older").await;
    ada.wait_until("older messages", &format!("{SHOWN} === 100"), vec![])
        .await;
    send(&ada, "A live one").await;
    wait_for_message(&ada, "A live one").await;
    ada.wait_until(
        "a live message's button",
        &format!("{SHOWN} === 101"),
        vec![],
    )
    .await;

    // Copy the link of message 120 (loaded older) with the keyboard.
    ada.js(
        "document.querySelector('#msg-120 .copy-link').focus()",
        vec![],
    )
    .await;
    ada.press(ENTER).await;
    ada.wait_until(
        "the button to say so",
        "document.querySelector('#msg-120 .copy-link').textContent === 'Copied'",
        vec![],
    )
    .await;
    ada.screenshot("permalink-copied").await;
    let copied = ada.js("navigator.clipboard.readText()", vec![]).await;
    let link = format!("{}/rooms/{code}/messages/120#msg-120", app.base);
    assert_eq!(copied, json!(link));

    // Followed from elsewhere: the page around it, scrolled to it and highlighted.
    ada.goto("/home").await;
    ada.goto(&link).await;
    ada.wait_until_path_is(&format!("/rooms/{code}/messages/120"))
        .await;
    let target = ada.js(TARGET, vec![]).await;
    assert_eq!(
        target,
        json!({ "id": "msg-120", "highlighted": true, "inView": true })
    );
    inspect(&ada, "permalink-history", None).await;

    // Newer, and newer again: the room, at the message after the last one seen.
    ada.js(CLICK_LINK, vec![json!("Newer messages")]).await;
    ada.wait_until_path_is(&format!("/rooms/{code}/messages?before=196"))
        .await;
    ada.js(CLICK_LINK, vec![json!("Newer messages")]).await;
    ada.wait_until_path_is(&format!("/rooms/{code}")).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    assert_eq!(ada.js(TARGET, vec![]).await["id"], json!("msg-196"));

    // A link to a message on the newest page is the room itself, there.
    ada.goto("/home").await;
    ada.goto(&format!("/rooms/{code}/messages/190#msg-190"))
        .await;
    ada.wait_until_path_is(&format!("/rooms/{code}")).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    let target = ada.js(TARGET, vec![]).await;
    assert_eq!(
        (&target["id"], &target["inView"]),
        (&json!("msg-190"), &json!(true))
    );
    inspect(&ada, "permalink-room", None).await;
    ada.quit().await;
}
