//! Notifications in Chromium: the profile's button registers the service worker, which shows a
//! push delivered through the DevTools protocol (`ServiceWorker.deliverPushMessage`); the
//! tab's icon gets a dot while something mentions the reader; a hidden tab shows a desktop
//! notification for a mention in its room. The profile stays axe-clean.

use serde_json::{Value, json};

use crate::chrome::Chrome;
use crate::common::Browser;
use crate::{app_and_chrome, sign_up_dev};

/// Lets natter's pages show notifications without asking, as a person who allowed it would.
async fn allow_notifications(c: &Chrome) {
    c.cdp(
        "Browser.grantPermissions",
        json!({ "permissions": ["notifications"], "origin": c.base }),
    )
    .await
    .expect("grant the notifications permission");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_worker_shows_a_pushed_message_and_the_profile_is_axe_clean() {
    let Some((app, c)) = app_and_chrome(&[]).await else {
        return;
    };
    sign_up_dev(&c, "push-cara@example.org", "cara").await;
    allow_notifications(&c).await;
    c.goto("/profile").await;
    c.find("#push-toggle").await;
    let violations = c.axe().await;
    assert!(violations.is_empty(), "axe on the profile: {violations:#?}");
    assert_eq!(c.text("#push-toggle").await, "Turn on notifications");
    c.click("#push-toggle").await;
    // Headless Chromium has no push service to subscribe with: notifications are then on for
    // open tabs only, and the page says so. Either way the worker is registered.
    c.wait_until(
        "notifications turned on",
        "document.querySelector('.push-status').textContent.startsWith('Notifications are on')",
        vec![],
    )
    .await;
    c.wait_until(
        "the service worker active with the whole site as its scope",
        "(navigator.serviceWorker.getRegistration('/').then((r) => (window.__scope = r && r.active ? r.scope : '')), window.__scope === location.origin + '/')",
        vec![],
    )
    .await;
    let violations = c.axe().await;
    assert!(
        violations.is_empty(),
        "axe on the profile, turned on: {violations:#?}"
    );

    // A push as natter sends it, delivered to the worker by DevTools (registration ids count
    // from 0 in a fresh profile).
    let data = json!({
        "title": "Garden", "room": "Garden", "author": "ada", "text": "hello @cara",
        "url": "/rooms/ABCD-EFGH/messages/3", "tag": "natter-room-1",
    })
    .to_string();
    c.cdp("ServiceWorker.enable", json!({}))
        .await
        .expect("the ServiceWorker domain");
    let mut delivered = Vec::new();
    for id in 0..4 {
        let sent = c
            .cdp(
                "ServiceWorker.deliverPushMessage",
                json!({ "origin": c.base, "registrationId": id.to_string(), "data": data }),
            )
            .await;
        let ok = sent.is_ok();
        delivered.push(sent);
        if ok {
            break;
        }
    }
    assert!(delivered.iter().any(Result::is_ok), "{delivered:?}");
    c.wait_until(
        "the worker's notification",
        "(navigator.serviceWorker.getRegistration('/').then((r) => r.getNotifications()).then((ns) => (window.__notes = ns.map((n) => [n.title, n.body, n.tag, n.data && n.data.url]))), (window.__notes || []).length > 0)",
        vec![],
    )
    .await;
    let notes = c.js("window.__notes", vec![]).await;
    assert_eq!(
        notes,
        json!([[
            "Garden",
            "ada: hello @cara",
            "natter-room-1",
            "/rooms/ABCD-EFGH/messages/3"
        ]])
    );
    c.assert_console_clean("the profile").await;

    // Turned off: the button says so, and the choice is remembered.
    c.click("#push-toggle").await;
    c.wait_until(
        "notifications turned off",
        "document.querySelector('.push-status').textContent.startsWith('Notifications are off')",
        vec![],
    )
    .await;
    c.quit().await;
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_puts_a_dot_on_the_icon_and_a_hidden_tab_notifies() {
    let Some((app, c)) = app_and_chrome(&[]).await else {
        return;
    };
    sign_up_dev(&c, "push-dan@example.org", "dan").await;
    let ada = Browser::signed_in(&app.base, "push-ada7@example.org", "ada").await;
    let here = ada.create_room("Here").await;
    let there = ada.create_room("There").await;
    crate::join_by_link(&c, &there).await;
    crate::join_by_link(&c, &here).await;
    c.wait_until("live socket", crate::MEMBER_ONLINE, vec![json!("dan")])
        .await;
    let icon = "document.querySelector('link[rel=icon]').getAttribute('href')";
    assert!(
        c.js(icon, vec![])
            .await
            .as_str()
            .unwrap()
            .starts_with("/assets/icon.svg")
    );

    // A mention in another room: the rail's badge, and the icon's dot.
    ada.say(&there, "@dan look").await;
    c.wait_until(
        "a dot on the icon",
        &format!("{icon}.startsWith('data:image/png') && document.documentElement.dataset.mentions === 'yes'"),
        vec![],
    )
    .await;

    // Hidden, with notifications on: a mention in this room becomes a desktop notification.
    allow_notifications(&c).await;
    c.js(
        "(() => { localStorage.setItem('natter-notify', 'on'); \
           Object.defineProperty(document, 'visibilityState', { get: () => 'hidden', configurable: true }); \
           const Real = window.Notification; window.__shown = []; \
           window.Notification = class extends Real { constructor(t, o) { window.__shown.push([t, o.body, o.tag]); super(t, o); } }; \
           return true; })()",
        vec![],
    )
    .await;
    let seq = ada.say(&here, "@dan dinner?").await;
    c.wait_until(
        "a desktop notification",
        "(window.__shown || []).length > 0",
        vec![],
    )
    .await;
    let shown: Value = c.js("window.__shown", vec![]).await;
    assert_eq!(shown[0][0], "Here");
    assert_eq!(shown[0][1], "ada: @dan dinner?");
    assert!(c.exists(&format!("#msg-{seq}")).await);
    c.quit().await;
    drop(app);
}
