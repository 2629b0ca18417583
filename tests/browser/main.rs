//! What people do, in a real browser: Debian's Chromium through chromedriver, with JavaScript on
//! and off, two people chatting, restarts and proxy reloads, hostile content, accessibility
//! (axe-core), the keyboard alone, and screenshots of every page under `target/screenshots/`.
//!
//! Skips (saying why) without Chromium; `NATTER_TEST_REQUIRE=chromium` makes that a failure.

#[path = "../common/mod.rs"]
mod common;
#[path = "../ops/procs.rs"]
#[allow(dead_code)]
mod procs;

mod account;
mod api;
mod changes;
mod chat;
mod chrome;
mod direct;
mod files;
mod grouping;
mod mentions;
mod no_js;
mod pages;
mod permalinks;
mod push;
mod reconnect;
mod search;
mod settings;
mod typing;
mod unread;

use chrome::{Chrome, ENTER, Js};
use common::{Browser, FakeUser, TestApp};
use serde_json::json;

/// Posts as fast as a test sends them.
/// The composer's text, as a script's value.
pub const COMPOSER_TEXT: &str = "document.querySelector('#composer-body').value";

pub const FAST_POSTS: &[(&str, &str)] = &[("NATTER_LIMIT_POSTS", "100000/1s")];

/// natter on a fresh SQLite database with `settings`, and one Chromium with JavaScript on;
/// `None` (having said why) where Chromium is not available.
pub async fn app_and_chrome(settings: &[(&str, &str)]) -> Option<(TestApp, Chrome)> {
    let app = TestApp::spawn_with(common::Backend::Sqlite, settings).await?;
    let chrome = Chrome::start(&app.base, Js::On).await?;
    Some((app, chrome))
}

/// Signs in through the fake OIDC provider (the real authorization-code flow) and picks a
/// username; ends on `/home`.
pub async fn sign_up_with_provider(c: &Chrome, app: &TestApp, email: &str, username: &str) {
    app.provider
        .sign_in_as(FakeUser::verified(&format!("sub-{username}"), email));
    c.goto("/").await;
    c.click("a[href^='/auth/login']").await;
    c.wait_for_path("/username").await;
    choose_username(c, username).await;
}

/// Signs in with the development form and picks a username; ends on `/home`.
pub async fn sign_up_dev(c: &Chrome, email: &str, username: &str) {
    c.goto("/").await;
    c.type_into("#dev-email", email).await;
    c.click("form[action='/auth/dev'] button[type=submit]")
        .await;
    c.wait_for_path("/username").await;
    choose_username(c, username).await;
}

pub async fn choose_username(c: &Chrome, username: &str) {
    c.type_into("#username", username).await;
    c.click("form[action='/username'] button[type=submit]")
        .await;
    c.wait_for_path("/home").await;
}

/// Creates a room from `/home`; returns its code (the browser is in the room).
pub async fn create_room(c: &Chrome, name: &str) -> String {
    c.goto("/home").await;
    c.type_into("#room-name", name).await;
    c.click("form[action='/rooms'] button[type=submit]").await;
    c.wait_for_path("/rooms/").await;
    c.text("#room-code").await
}

/// Follows an invitation link and accepts it.
pub async fn join_by_link(c: &Chrome, code: &str) {
    c.goto(&format!("/join/{code}")).await;
    c.click("form[action='/rooms/join'] button[type=submit]")
        .await;
    c.wait_for_path(&format!("/rooms/{code}")).await;
}

/// Types a message and sends it: Enter with JavaScript on, the Send button without (in the
/// room's composer frame, or the page's own form where there is no frame).
pub async fn send(c: &Chrome, text: &str) {
    if c.js == Js::Off && c.exists("iframe.compose-frame").await {
        in_composer_frame(c, |c| async move {
            c.type_into("#composer-body", text).await;
            c.click("form.composer button[type=submit]").await;
        })
        .await;
        return;
    }
    c.type_into("#composer-body", text).await;
    match c.js {
        Js::On => c.press(ENTER).await,
        Js::Off => c.click("#composer button[type=submit]").await,
    }
}

/// Runs `f` inside the room page's composer frame (JavaScript off), then returns to the page.
pub async fn in_composer_frame<'a, F, Fut>(c: &'a Chrome, f: F)
where
    F: FnOnce(&'a Chrome) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    c.enter_frame("iframe.compose-frame").await;
    f(c).await;
    c.leave_frame().await;
}

/// Sets the composer's text directly (any Unicode, which WebDriver's typing cannot send) and
/// clicks Send.
pub async fn send_raw(c: &Chrome, text: &str) {
    c.find("#composer-body").await;
    c.js(
        "document.querySelector('#composer-body').value = arguments[0]",
        vec![json!(text)],
    )
    .await;
    c.click("#composer button[type=submit]").await;
}

/// Waits until a message with exactly this text is on the page (WebDriver queries only, so it
/// works with JavaScript off); returns how long it took.
pub async fn wait_for_message(c: &Chrome, text: &str) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !c.message_texts().await.iter().any(|m| m == text) {
        if start.elapsed() > chrome::WAIT {
            let shot = c.failure_shot().await;
            panic!(
                "message {text:?} never showed on {} ({shot})",
                c.path().await
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Whether `username` is listed (visible) in the member list, online or not.
pub const MEMBER_ONLINE: &str = "[...document.querySelectorAll('#members li.member:not([hidden])')]
    .some((li) => li.querySelector('.member-name')?.textContent === arguments[0] && li.dataset.online === 'true')";
pub const MEMBER_LISTED: &str = "[...document.querySelectorAll('#members li.member:not([hidden])')]
    .some((li) => li.querySelector('.member-name')?.textContent === arguments[0])";

/// Creates an API token on `browser`'s profile page; returns its text (shown once).
pub async fn api_token(browser: &Browser, name: &str) -> String {
    let page = browser
        .post_form("/profile", "/profile/tokens", &[("name", name)])
        .await;
    assert_eq!(page.status, 201, "creating a token: {}", page.body);
    let start = page
        .body
        .find("id=\"new-token\">")
        .expect("the token is shown")
        + 15;
    let len = page.body[start..].find('<').expect("the token's end");
    page.body[start..start + len].to_string()
}

/// Posts a message through the JSON API at `base`, as curl would; panics unless it is taken.
pub async fn api_say(base: &str, token: &str, code: &str, text: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/rooms/{code}/messages"))
        .bearer_auth(token)
        .json(&json!({ "body": text }))
        .send()
        .await
        .expect("API post");
    let status = r.status();
    assert_eq!(
        status,
        201,
        "API post: {}",
        r.text().await.unwrap_or_default()
    );
}
