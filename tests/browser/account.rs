//! Care of one's account in a real browser, with JavaScript on and off: the sessions page, a
//! username change (refused, then done, then refused for a day), and deleting the account,
//! each page axe-clean with a clean console; the live member list of another person follows a
//! rename with JavaScript on.

use crate::chrome::{Chrome, Js};
use crate::pages::inspect;
use crate::*;

/// The member list's names, as shown.
const MEMBER_NAMES: &str = "[...document.querySelectorAll('#members .member-name')].map(e => e.textContent.trim()).join(',')";

/// axe, the console and screenshots with JavaScript on; screenshots alone with it off (axe
/// never answers in a page without JavaScript; the documents are the same).
async fn look(c: &Chrome, js: &str, name: &str, status: Option<u16>) {
    let name = format!("{name}-{js}");
    if js == "on" {
        inspect(c, &name, status).await;
    } else {
        c.find("main").await;
        c.screenshots(&name).await;
    }
}

async fn journey(app: &TestApp, c: &Chrome, js: &str) {
    sign_up_dev(c, &format!("acct-{js}@example.org"), &format!("ada_{js}")).await;
    let code = create_room(c, "Account care").await;
    let bob = app
        .signed_in(&format!("acct-bob-{js}@example.org"), &format!("bob_{js}"))
        .await;
    bob.join(&code).await;

    c.goto("/profile").await;
    c.click("a[href='/profile/sessions']").await;
    c.wait_until_path_is("/profile/sessions").await;
    assert!(c.text("main").await.to_lowercase().contains("this browser"));
    look(c, js, "account-sessions", None).await;

    c.goto("/profile/username").await;
    look(c, js, "account-username", None).await;
    c.replace_text("#username", "<b>no</b>").await;
    c.click("form[action='/profile/username'] button[type=submit]")
        .await;
    c.find("#username-error").await;
    look(c, js, "account-username-refused", Some(422)).await;
    c.replace_text("#username", &format!("Ada_{js}_2")).await;
    c.click("form[action='/profile/username'] button[type=submit]")
        .await;
    c.wait_until_path_is("/profile").await;
    assert!(c.text("main").await.contains(&format!("Ada_{js}_2")));
    c.goto("/profile/username").await;
    c.replace_text("#username", "again").await;
    c.click("form[action='/profile/username'] button[type=submit]")
        .await;
    c.find("#username-error").await;
    assert!(c.text("main").await.contains("once a day"));
    look(c, js, "account-username-wait", Some(429)).await;

    c.goto("/profile/delete").await;
    look(c, js, "account-delete", None).await;
    c.type_into("#confirm", "somebody").await;
    c.click("form[action='/profile/delete'] button[type=submit]")
        .await;
    c.find("#confirm-error").await;
    look(c, js, "account-delete-refused", Some(422)).await;
    c.click("#messages-delete").await;
    c.replace_text("#confirm", &format!("Ada_{js}_2")).await;
    c.click("form[action='/profile/delete'] button[type=submit]")
        .await;
    c.wait_until_path_is("/").await;
    assert!(
        c.exists("#dev-email").await,
        "signed out, on the landing page"
    );
    let room = bob.get(&format!("/rooms/{code}")).await;
    assert!(!room.body.contains(&format!("Ada_{js}_2")), "{}", room.body);
}

crate::both! {
    async fn account_pages_work_and_are_accessible_with_javascript_on_and_off(app: TestApp) {
        for (js, mode) in [("on", Js::On), ("off", Js::Off)] {
            let Some(c) = Chrome::start(&app.base, mode).await else {
                return;
            };
            journey(&app, &c, js).await;
            c.quit().await;
        }
    }
}

/// With JavaScript on, another member's open room shows the new name in its member list and
/// on the renamed person's earlier messages without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_reaches_an_open_member_list_live() {
    let Some(app) = TestApp::spawn_with(common::Backend::Sqlite, FAST_POSTS).await else {
        return;
    };
    let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&ada, "acct-live@example.org", "ada").await;
    let code = create_room(&ada, "Names").await;
    sign_up_dev(&bob, "acct-live-bob@example.org", "bob").await;
    join_by_link(&bob, &code).await;
    send(&ada, "before my new name").await;
    wait_for_message(&bob, "before my new name").await;
    bob.wait_until(
        "ada listed",
        &format!("({MEMBER_NAMES}).includes('ada')"),
        vec![],
    )
    .await;
    ada.goto("/profile/username").await;
    ada.replace_text("#username", "Ada_L").await;
    ada.click("form[action='/profile/username'] button[type=submit]")
        .await;
    ada.wait_until_path_is("/profile").await;
    bob.wait_until(
        "the new name in the list",
        &format!("({MEMBER_NAMES}).includes('Ada_L')"),
        vec![],
    )
    .await;
    bob.wait_until(
        "the system line",
        "document.querySelector('#messages').textContent.includes('changed their username (was ada)')",
        vec![],
    )
    .await;
    // Her earlier message on bob's open page takes the new name, as a fresh load shows it.
    bob.wait_until(
        "the new name on her earlier message",
        "[...document.querySelectorAll('#messages article.message')].some((a) => a.textContent.includes('before my new name') && a.querySelector('.author').textContent === 'Ada_L' && a.querySelector('a.dm-link').getAttribute('href') === '/dm/Ada_L')",
        vec![],
    )
    .await;
    bob.assert_console_clean("room after a member's rename")
        .await;
}

/// Whether bob's page shows the message whose text has `text` as by "deleted user", with no
/// "Message privately" link, and no message or line at all under `name`.
const GONE_ON_PAGE: &str = "[...document.querySelectorAll('#messages article')].some((a) => a.textContent.includes(arguments[0]) && a.querySelector('.author').textContent === 'deleted user' && !a.querySelector('a.dm-link')) \
     && ![...document.querySelectorAll('#messages article')].some((a) => a.querySelector('.author')?.textContent === arguments[1])";

// With JavaScript on, another member's open room shows "deleted user" on the earlier messages
// of someone who deleted their account (keeping their messages) without a reload, as a fresh
// load shows them: the line saying so (`data-gone`) renames them in `js/members.js`. The
// earlier message is a hostile one, shown as text before and after.
crate::both! {
    async fn a_deletion_reaches_an_open_room_live(app: TestApp) {
        let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else {
            return;
        };
        sign_up_dev(&ada, "care-gone@example.org", "care_gone").await;
        let code = create_room(&ada, "Farewells").await;
        sign_up_dev(&bob, "care-gone-bob@example.org", "care_bob").await;
        join_by_link(&bob, &code).await;
        let hostile = "<b>bold</b> \"><img src=x onerror=alert(1)> before I go";
        send_raw(&ada, hostile).await;
        wait_for_message(&bob, hostile).await;
        ada.goto("/profile/delete").await;
        ada.replace_text("#confirm", "care_gone").await;
        ada.click("form[action='/profile/delete'] button[type=submit]")
            .await;
        ada.wait_until_path_is("/").await;
        bob.wait_until(
            "the line that her account is gone",
            "document.querySelector('#messages').textContent.includes('deleted their account')",
            vec![],
        )
        .await;
        bob.wait_until(
            "her message on the open page by deleted user",
            GONE_ON_PAGE,
            vec![json!(hostile), json!("care_gone")],
        )
        .await;
        bob.assert_console_clean("room after a member deleted their account")
            .await;
        // A fresh load agrees.
        bob.goto(&format!("/rooms/{code}")).await;
        wait_for_message(&bob, hostile).await;
        let fresh = bob
            .js(GONE_ON_PAGE, vec![json!(hostile), json!("care_gone")])
            .await;
        assert_eq!(fresh, json!(true), "the same after a reload");
        ada.quit().await;
        bob.quit().await;
    }
}
