//! Name lines and day dividers where separately rendered pieces of a room meet: the page, a
//! live message rendered by a hub that had not seen the one before it, an older page loaded
//! above. One person's run of messages shows one name line and one day divider throughout.

use serde_json::json;

use crate::*;

/// Day dividers and messages that start a name line, in `#messages`.
const SHAPE: &str = "[document.querySelectorAll('#messages .day-divider').length,
    document.querySelectorAll('#messages > article.message:not(.continued)').length,
    document.querySelectorAll('#messages > article.message').length]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_messages_keeps_one_name_line_across_live_and_older_pieces() {
    let Some((app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Runs").await;
    let cyd = app.signed_in("cyd@example.org", "cyd").await;
    cyd.join(&code).await;
    for i in 1..=55 {
        cyd.say(&code, &format!("note {i}")).await;
    }
    ada.goto(&format!("/rooms/{code}")).await;
    ada.wait_until("the live socket is up", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    assert_eq!(ada.js(SHAPE, vec![]).await, json!([1, 1, 50]), "the page");

    // The first message this room's new hub renders: it never saw "note 55".
    cyd.say(&code, "note 56").await;
    wait_for_message(&ada, "note 56").await;
    assert_eq!(
        ada.js(SHAPE, vec![]).await,
        json!([1, 1, 51]),
        "after a live one"
    );

    // The older page ends where the shown ones begin.
    ada.js(
        "document.querySelector('#load-older').scrollIntoView()",
        vec![],
    )
    .await;
    ada.click("#load-older").await;
    wait_for_message(&ada, "note 1").await;
    assert_eq!(
        ada.js(SHAPE, vec![]).await,
        json!([1, 1, 56]),
        "after loading older"
    );

    // Someone else breaks the run; their message starts a name line of its own.
    send(&ada, "ada here").await;
    wait_for_message(&ada, "ada here").await;
    assert_eq!(
        ada.js(SHAPE, vec![]).await,
        json!([1, 2, 57]),
        "another author"
    );
    ada.assert_console_clean("room").await;
    ada.quit().await;
}
