//! Editing and deleting in a real browser: in place with JavaScript on (Up in the empty
//! composer, Enter saves, Escape cancels), the change live on another person's page, the
//! room's creator deleting someone else's message; and the edit and delete pages with
//! JavaScript off. axe and the console on every new page and state, light and dark (axe
//! needs script, so the pages JavaScript-off people see are checked with it on).

use serde_json::json;

use crate::chrome::{Chrome, ENTER, Js};
use crate::pages::inspect;
use crate::*;

const ESCAPE: &str = "\u{E00C}";
const ARROW_UP: &str = "\u{E013}";

/// The text of message `seq`'s body, or null.
const BODY_OF: &str =
    "document.querySelector(`#msg-${arguments[0]} .message-body`)?.textContent ?? null";

/// Whether message `seq` shows the "(edited" mark.
const EDITED: &str = "!!document.querySelector(`#msg-${arguments[0]} .edited`)";

/// The seq of the newest message whose body is `text` (in the streamed conversation of a page
/// without JavaScript).
async fn seq_of(c: &Chrome, text: &str) -> i64 {
    let script = "[...(document.querySelector('iframe.live-frame')?.contentDocument ?? document)
        .querySelectorAll('#messages article, #log > article')]
        .filter((a) => a.querySelector('.message-body')?.textContent === arguments[0])
        .map((a) => +a.dataset.seq).pop() ?? null";
    c.js(script, vec![json!(text)])
        .await
        .as_i64()
        .expect("the message is shown")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_in_place_and_deleting_reach_the_other_page_live() {
    let Some(app) = TestApp::spawn_with(common::Backend::Sqlite, FAST_POSTS).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Second thoughts").await;
    sign_up_dev(&bob, "bob@example.org", "bob").await;
    join_by_link(&bob, &code).await;
    for c in [&ada, &bob] {
        c.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
            .await;
    }
    send(&bob, "bob says something regrettable").await;
    send(&ada, "teh frist message").await;
    send(&ada, "the second one").await;
    wait_for_message(&bob, "the second one").await;
    let first = seq_of(&ada, "teh frist message").await;
    let second = seq_of(&ada, "the second one").await;
    let bobs = seq_of(&ada, "bob says something regrettable").await;

    // Up in the empty composer edits my newest message; Escape puts it back untouched.
    ada.click("#composer-body").await;
    ada.press(ARROW_UP).await;
    let field = format!("#edit-body-{second}");
    ada.wait_until(
        "the edit form",
        &format!("document.activeElement?.id === 'edit-body-{second}'"),
        vec![],
    )
    .await;
    assert_eq!(
        ada.js(&format!("document.querySelector('{field}').value"), vec![])
            .await,
        json!("the second one")
    );
    ada.press(" and more").await;
    inspect(&ada, "edit-inline", None).await;
    ada.js(
        &format!("document.querySelector('{field}').focus()"),
        vec![],
    )
    .await;
    ada.press(ESCAPE).await;
    ada.wait_until("the message back", BODY_OF, vec![json!(second)])
        .await;
    assert_eq!(
        ada.js(BODY_OF, vec![json!(second)]).await,
        json!("the second one")
    );

    // "Edit" on an older message (by keyboard: it shows where focus is), Enter saves: both
    // pages show the new text, marked edited, in its place.
    ada.js(
        &format!("document.querySelector('#msg-{first} .edit-link').focus()"),
        vec![],
    )
    .await;
    ada.press(ENTER).await;
    let field = format!("#edit-body-{first}");
    ada.wait_until(
        "the edit form",
        &format!("document.activeElement?.id === 'edit-body-{first}'"),
        vec![],
    )
    .await;
    ada.replace_text(&field, "the first message").await;
    ada.press(ENTER).await;
    for c in [&ada, &bob] {
        c.wait_until(
            "the edit",
            &format!("({BODY_OF}) === 'the first message'"),
            vec![json!(first)],
        )
        .await;
        assert_eq!(c.js(EDITED, vec![json!(first)]).await, json!(true));
        let order: Vec<i64> = c
            .js(
                "[...document.querySelectorAll('#messages article')].map((a) => +a.dataset.seq)",
                vec![],
            )
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            order,
            vec![bobs, first, second],
            "edited in place, nothing added"
        );
    }

    // Only my messages offer "Edit"; as the room's creator I may delete Bob's. ("Message
    // privately", beside others' names only, is `direct`'s: checked below.)
    const SHOWN: &str =
        "[...document.querySelectorAll(`#msg-${arguments[0]} .message-actions a:not(.dm-link)`)]
        .filter((a) => getComputedStyle(a).display !== 'none').map((a) => a.textContent)";
    const DM_SHOWN: &str = "getComputedStyle(document.querySelector(`#msg-${arguments[0]} .dm-link`)).display !== 'none'";
    assert_eq!(ada.js(DM_SHOWN, vec![json!(bobs)]).await, json!(true));
    assert_eq!(ada.js(DM_SHOWN, vec![json!(first)]).await, json!(false));
    assert_eq!(ada.js(SHOWN, vec![json!(bobs)]).await, json!(["Delete"]));
    assert_eq!(
        ada.js(SHOWN, vec![json!(first)]).await,
        json!(["Edit", "Delete"])
    );
    assert_eq!(bob.js(SHOWN, vec![json!(first)]).await, json!([]));
    assert_eq!(
        bob.js(SHOWN, vec![json!(bobs)]).await,
        json!(["Edit", "Delete"])
    );

    // Deleting asks first (a page of its own), then comes back to the room.
    ada.js(
        &format!("document.querySelector('#msg-{bobs} .delete-link').click()"),
        vec![],
    )
    .await;
    ada.wait_until_path_is(&format!("/rooms/{code}/messages/{bobs}/delete"))
        .await;
    inspect(&ada, "delete-confirm", None).await;
    ada.click("form[action$='/delete'] button[type=submit]")
        .await;
    ada.wait_until_path_is(&format!("/rooms/{code}")).await;
    for c in [&ada, &bob] {
        c.wait_until(
            "the delete",
            &format!("({BODY_OF}) === 'Message deleted'"),
            vec![json!(bobs)],
        )
        .await;
    }
    assert!(
        !bob.exists(&format!("#msg-{bobs} .edit-link")).await,
        "nothing left to edit"
    );
    // Bob's page resumes after the delete (it adds no message: the cursor says so).
    let cursor = bob
        .js("+document.querySelector('#room-cursor').value", vec![])
        .await;
    assert!(cursor.as_i64().unwrap() > second, "{cursor}");
    inspect(&bob, "room-edited-and-deleted", None).await;

    // Meanwhile in another room of Bob's, someone names him: his rail shows the count live,
    // with the stronger mark, beside the edited and the deleted message.
    let cyd = app.signed_in("cyd@example.org", "cyd").await;
    let elsewhere = app.create_room(&cyd, "Elsewhere").await;
    join_by_link(&bob, &elsewhere).await;
    bob.goto(&format!("/rooms/{code}")).await;
    bob.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    cyd.say(&elsewhere, "anyone around?").await;
    cyd.say(&elsewhere, "@bob when you have a minute").await;
    bob.wait_until(
        "the stronger mark, live",
        "document.querySelector('.rooms-rail .unread-count.mentioned:not([hidden]) .unread-number')?.textContent === '2'",
        vec![],
    )
    .await;
    assert!(
        bob.js("document.title", vec![])
            .await
            .as_str()
            .unwrap()
            .starts_with("(2) ")
    );
    inspect(&bob, "rail-mention-edited-deleted", None).await;

    // The edit page (what "Edit" opens without JavaScript), and a refusal on it.
    ada.goto(&format!("/rooms/{code}/messages/{second}/edit"))
        .await;
    inspect(&ada, "edit-page", None).await;
    ada.replace_text("#edit-body", " ").await;
    ada.click("form[action$='/edit'] button[type=submit]").await;
    ada.find("#edit-error").await;
    inspect(&ada, "edit-page-refused", Some(422)).await;
    ada.quit().await;
    bob.quit().await;
}

crate::both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_edit_and_delete_pages_work_with_javascript_off(app: TestApp) {
        let Some(ada) = Chrome::start(&app.base, Js::Off).await else {
            return;
        };
        sign_up_dev(&ada, "ada@example.org", "ada").await;
        let code = create_room(&ada, "No script").await;
        send(&ada, "a mistkae").await;
        wait_for_message(&ada, "a mistkae").await;
        let seq = seq_of(&ada, "a mistkae").await;

        ada.goto(&format!("/rooms/{code}/messages/{seq}/edit")).await;
        assert_eq!(ada.js("document.querySelector('#edit-body').value", vec![]).await, json!("a mistkae"));
        ada.screenshots("edit-page-no-js").await;
        // Empty: refused, said beside the field.
        ada.replace_text("#edit-body", " ").await;
        ada.click("form[action$='/edit'] button[type=submit]").await;
        ada.find("#edit-error").await;
        ada.replace_text("#edit-body", "a mistake, fixed").await;
        ada.click("form[action$='/edit'] button[type=submit]").await;
        ada.wait_until_path_is(&format!("/rooms/{code}")).await;
        wait_for_message(&ada, "a mistake, fixed").await;
        assert!(ada.exists(&format!("#msg-{seq} .edited")).await);

        ada.goto(&format!("/rooms/{code}/messages/{seq}/delete")).await;
        ada.click("form[action$='/delete'] button[type=submit]").await;
        ada.wait_until_path_is(&format!("/rooms/{code}")).await;
        wait_for_message(&ada, "Message deleted").await;
        ada.screenshots("room-deleted-no-js").await;
        ada.quit().await;
    }
}
