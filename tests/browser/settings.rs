//! Room settings in a real browser: with JavaScript on, a rename and a topic show live on
//! another person's page, a new code is followed by the open page's connection, and a removed
//! member's open page ends on "You were removed from this room"; with JavaScript off, every
//! form works. axe and the console on the settings page and the room after each change.

use serde_json::json;

use crate::chrome::{Chrome, Js};
use crate::pages::inspect;
use crate::*;

/// The room page's heading text (name, then topic).
const HEADING: &str = "document.querySelector('#room-heading')?.innerText ?? ''";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_code_changes_and_removals_reach_open_pages_live() {
    let Some(app) = TestApp::spawn_with(common::Backend::Sqlite, FAST_POSTS).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Plans").await;
    sign_up_dev(&bob, "bob@example.org", "bob").await;
    join_by_link(&bob, &code).await;
    for c in [&ada, &bob] {
        c.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
            .await;
    }
    send(&bob, "hello").await;
    wait_for_message(&ada, "hello").await;

    // Only Ada (the owner) has the link to the settings page.
    assert!(!bob.exists(".settings-link").await);
    ada.click(".settings-link").await;
    ada.wait_until_path_is(&format!("/rooms/{code}/settings"))
        .await;
    inspect(&ada, "room-settings", None).await;

    // Rename and topic: Bob's open page shows both, with the system lines, without a reload.
    ada.replace_text("#settings-name", "Friday plans").await;
    ada.replace_text("#settings-topic", "Where shall we <eat>?")
        .await;
    ada.click(".settings-form button[type=submit]").await;
    ada.wait_until_path_is(&format!("/rooms/{code}")).await;
    bob.wait_until(
        "the new heading",
        &format!(
            "({HEADING}).includes('Friday plans') && ({HEADING}).includes('Where shall we <eat>?')"
        ),
        vec![],
    )
    .await;
    bob.wait_until(
        "the system lines",
        "document.querySelectorAll('#messages .system-line').length === 2",
        vec![],
    )
    .await;
    let line = bob.text("#messages .system-line:last-of-type").await;
    assert!(
        line.contains("ada set the topic to “Where shall we <eat>?”"),
        "{line}"
    );
    inspect(&bob, "room-after-rename", None).await;

    // A new code: Bob's page learns it, and its connection follows (a message after the
    // rotation arrives; a reconnect uses the new address).
    ada.goto(&format!("/rooms/{code}/settings")).await;
    ada.click("form[action$='/settings/rotate'] button[type=submit]")
        .await;
    ada.wait_until(
        "the settings page at the new code",
        "location.pathname !== arguments[0] && !!document.querySelector('#settings-title')",
        vec![json!(format!("/rooms/{code}/settings"))],
    )
    .await;
    let new = ada
        .js("location.pathname.split('/')[2]", vec![])
        .await
        .as_str()
        .expect("the new code")
        .to_string();
    assert_ne!(new, code);
    bob.wait_until(
        "the new code",
        "document.querySelector('#room-code')?.textContent === arguments[0]",
        vec![json!(new)],
    )
    .await;
    ada.goto(&format!("/rooms/{new}")).await;
    send(&ada, "after the new code").await;
    wait_for_message(&bob, "after the new code").await;

    // Removing Bob: his open page ends on the notice; Ada's shows the line.
    ada.goto(&format!("/rooms/{new}/settings")).await;
    ada.click("form[action$='/members/bob/remove'] button[type=submit]")
        .await;
    ada.wait_until_path_is(&format!("/rooms/{new}/settings"))
        .await;
    bob.wait_until(
        "the removal notice",
        "document.querySelector('#room-status')?.textContent === 'You were removed from this room.'",
        vec![],
    )
    .await;
    inspect(&ada, "room-settings-after-remove", None).await;
    ada.goto(&format!("/rooms/{new}")).await;
    wait_for_message(&ada, "hello").await;
    assert!(
        ada.text("#messages .system-line:last-of-type")
            .await
            .contains("removed bob from the room")
    );
    ada.quit().await;
    bob.quit().await;
}

crate::both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_settings_forms_work_with_javascript_off(app: TestApp) {
        let Some(ada) = Chrome::start(&app.base, Js::Off).await else {
            return;
        };
        sign_up_dev(&ada, "ada@example.org", "ada").await;
        let code = create_room(&ada, "No script").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;

        ada.goto(&format!("/rooms/{code}/settings")).await;
        // Refused: said beside the fields, with what was typed.
        ada.js("document.querySelector('#settings-topic').removeAttribute('maxlength')", vec![]).await;
        ada.replace_text("#settings-topic", &"t".repeat(201)).await;
        ada.click(".settings-form button[type=submit]").await;
        ada.find("#settings-error").await;
        ada.replace_text("#settings-name", "Quiet room").await;
        ada.replace_text("#settings-topic", "No scripts here").await;
        ada.click(".settings-form button[type=submit]").await;
        ada.wait_until_path_is(&format!("/rooms/{code}")).await;
        assert!(ada.text("#room-heading").await.contains("No scripts here"));
        ada.screenshots("room-renamed-no-js").await;

        ada.goto(&format!("/rooms/{code}/settings")).await;
        ada.click("form[action$='/owner'] button[type=submit]").await;
        ada.wait_until_path_is(&format!("/rooms/{code}")).await;
        assert!(!ada.exists(".settings-link").await, "the room is Bob's now");
        assert_eq!(bob.get(&format!("/rooms/{code}/settings")).await.status, 200);
        ada.quit().await;
    }
}
