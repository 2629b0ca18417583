//! The API's "done means", in a real browser: a person makes a token on their profile page,
//! posts into a room from a script (reqwest, as curl would) and sees the message arrive live in
//! the open room; the docs page renders its operations in Chromium with a clean console, and its
//! "Try it out" posts too.

use serde_json::json;

use crate::chrome::{Chrome, Js};
use crate::common::{Backend, TestApp};
use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_on_the_profile_posts_from_a_script_and_the_docs_live_into_the_open_room() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    // Ada's own browser, and a second one, signed out, that only reads the docs.
    let Some((ada, reader)) = Chrome::pair(&app.base, Js::On).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Bots welcome").await;

    ada.goto("/profile").await;
    ada.type_into("#token-name", "my script").await;
    ada.click("form[action='/profile/tokens'] button[type=submit]")
        .await;
    let token = ada.text("#new-token").await;
    assert!(token.starts_with("ntr_"), "{token}");
    ada.assert_console_clean("the profile with a new token")
        .await;

    ada.goto(&format!("/rooms/{code}")).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    api_say(&app.base, &token, &code, "Hello from curl!").await;
    wait_for_message(&ada, "Hello from curl!").await;
    const LAST_AUTHOR: &str = "[...document.querySelectorAll('#messages .message')].pop().querySelector('.author').textContent";
    assert_eq!(
        ada.js(LAST_AUTHOR, vec![]).await,
        json!("ada"),
        "the token posts as its owner"
    );

    // The docs: Swagger UI renders every operation under the page's own policy, without a
    // console error (its bundle runs without eval).
    reader.goto("/api/docs").await;
    reader
        .wait_until(
            "Swagger UI's operations",
            "document.querySelectorAll('.opblock').length >= 9",
            vec![],
        )
        .await;
    let paths = reader
        .js(
            "[...document.querySelectorAll('.opblock-summary-path')].map((p) => p.textContent.replace(/\\u200b/g, ''))",
            vec![],
        )
        .await;
    assert!(
        paths
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/rooms/{code}/messages"),
        "{paths}"
    );
    reader.assert_console_clean("/api/docs").await;
    reader.screenshots("api-docs").await;

    // Following only the docs: Authorize with the token, then "Try it out" on posting.
    reader.click("button.btn.authorize").await;
    reader.type_into(".auth-container input", &token).await;
    reader.click(".auth-btn-wrapper button.authorize").await;
    reader.click(".auth-btn-wrapper button.btn-done").await;
    const POST: &str = "#operations-Messages-post_message";
    reader
        .click(&format!("{POST} .opblock-summary-control"))
        .await;
    reader.click(&format!("{POST} .try-out__btn")).await;
    reader
        .type_into(&format!("{POST} input[placeholder='code']"), &code)
        .await;
    reader
        .replace_text(
            &format!("{POST} textarea.body-param__text"),
            r#"{"body": "Hello from the docs page"}"#,
        )
        .await;
    reader.click(&format!("{POST} button.execute")).await;
    reader
        .wait_until(
            "the docs page shows the answer",
            "document.querySelector(arguments[0] + ' .live-responses-table tbody .response-col_status')?.textContent.trim() === '201'",
            vec![json!(POST)],
        )
        .await;
    wait_for_message(&ada, "Hello from the docs page").await;
    assert_eq!(ada.js(LAST_AUTHOR, vec![]).await, json!("ada"));
    reader.screenshots("api-docs-tried").await;
    reader
        .assert_console_clean("/api/docs after trying it out")
        .await;
    ada.assert_console_clean("the room").await;
    ada.quit().await;
    reader.quit().await;
}
