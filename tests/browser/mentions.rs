//! Mentions in a real browser: completing a member's name in the composer with the keyboard
//! and the mouse (an ARIA combobox), and a mention of the reader accented by `/me.css`, in
//! light and dark, with axe and a clean console.

use serde_json::json;

use crate::chrome::{Chrome, ENTER};
use crate::*;

const ARROW_DOWN: &str = "\u{E015}";
const ARROW_UP: &str = "\u{E013}";
const ESCAPE: &str = "\u{E00C}";

/// The completion's state: whether the composer says it is open, the listbox's visible
/// options, and which one is active.
const STATE: &str = "(() => {
    const box = document.querySelector('#composer-body');
    const list = document.getElementById(box.getAttribute('aria-controls'));
    const active = box.getAttribute('aria-activedescendant');
    return {
        role: box.getAttribute('role'),
        expanded: box.getAttribute('aria-expanded'),
        shown: list && !list.hidden ? [...list.querySelectorAll('[role=option]')].map((o) => o.textContent) : [],
        active: active ? document.getElementById(active).textContent : null,
        selected: [...document.querySelectorAll('#mention-list [aria-selected=true]')].map((o) => o.textContent),
    };
})()";

async fn state(c: &Chrome) -> serde_json::Value {
    c.js(STATE, vec![]).await
}

/// Looks at the page as it is now with axe, in light and dark, and keeps a screenshot of each.
async fn look(c: &Chrome, name: &str) {
    for dark in [false, true] {
        c.dark(dark).await;
        let violations = c.axe().await;
        assert!(
            violations.is_empty(),
            "axe on {name} (dark: {dark}): {violations:#?}"
        );
        c.screenshot(&format!("{name}{}", if dark { "-dark" } else { "" }))
            .await;
    }
    c.dark(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_at_offers_the_rooms_members_to_complete_with_keys_or_a_click() {
    let Some((app, bob)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&bob, "bob@example.org", "bob").await;
    let code = create_room(&bob, "Completion").await;
    let ada = app.signed_in("ada@example.org", "ada").await;
    ada.join(&code).await;
    let alan = app.signed_in("alan@example.org", "alan").await;
    alan.join(&code).await;
    for name in ["ada", "alan"] {
        bob.wait_until(name, MEMBER_LISTED, vec![json!(name)]).await;
    }
    bob.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    let closed = json!({ "role": "combobox", "expanded": "false", "shown": [], "active": null, "selected": [] });
    assert_eq!(state(&bob).await, closed);

    // "@a" offers ada and alan; Down picks the first, Enter inserts it (and sends nothing).
    bob.type_into("#composer-body", "hi @a").await;
    bob.wait_until(
        "the list",
        "document.querySelector('#composer-body').getAttribute('aria-expanded') === 'true'",
        vec![],
    )
    .await;
    assert_eq!(
        state(&bob).await,
        json!({ "role": "combobox", "expanded": "true", "shown": ["ada", "alan"], "active": null, "selected": [] })
    );
    look(&bob, "mention-completion").await;
    bob.press(ARROW_DOWN).await;
    assert_eq!(state(&bob).await["active"], "ada");
    bob.press(ARROW_DOWN).await;
    bob.press(ARROW_DOWN).await;
    assert_eq!(state(&bob).await["active"], "ada", "Down wraps around");
    bob.press(ARROW_UP).await;
    assert_eq!(
        state(&bob).await["selected"],
        json!(["alan"]),
        "Up wraps around"
    );
    bob.press(ARROW_DOWN).await;
    bob.press(ENTER).await;
    assert_eq!(bob.js(COMPOSER_TEXT, vec![]).await, json!("hi @ada "));
    assert_eq!(state(&bob).await, closed);
    assert_eq!(bob.focused().await, "composer-body");

    // Typing on filters; Escape closes the list and leaves the composer focused, text as typed.
    bob.press("@AL").await;
    bob.wait_until(
        "alan alone",
        "document.querySelectorAll('#mention-list [role=option]').length === 1",
        vec![],
    )
    .await;
    assert_eq!(state(&bob).await["shown"], json!(["alan"]));
    bob.press(ESCAPE).await;
    assert_eq!(state(&bob).await, closed);
    assert_eq!(bob.focused().await, "composer-body");
    assert_eq!(bob.js(COMPOSER_TEXT, vec![]).await, json!("hi @ada @AL"));
    // Tab completes too (the first, when none is active), case and all.
    bob.press("a").await;
    bob.wait_until(
        "the list again",
        "document.querySelector('#composer-body').getAttribute('aria-expanded') === 'true'",
        vec![],
    )
    .await;
    bob.press(crate::chrome::TAB).await;
    assert_eq!(bob.js(COMPOSER_TEXT, vec![]).await, json!("hi @ada @alan "));
    assert_eq!(bob.focused().await, "composer-body");

    // An address is no mention: nothing is offered after "x@".
    bob.press("x@a").await;
    assert_eq!(state(&bob).await, closed);

    // The mouse: "@" offers everyone; a click inserts and keeps the focus.
    bob.replace_text("#composer-body", "thanks @").await;
    bob.wait_until(
        "the list",
        "document.querySelectorAll('#mention-list [role=option]').length === 3",
        vec![],
    )
    .await;
    bob.click("#mention-list [data-name=alan]").await;
    assert_eq!(bob.js(COMPOSER_TEXT, vec![]).await, json!("thanks @alan "));
    assert_eq!(state(&bob).await, closed);
    assert_eq!(bob.focused().await, "composer-body");

    // Sent, it is a mention for everyone; ada's own mention of bob is accented for him.
    bob.press(ENTER).await;
    wait_for_message(&bob, "thanks @alan").await;
    ada.say(&code, "over to you @BOB.").await;
    wait_for_message(&bob, "over to you @BOB.").await;
    const STYLE: &str = "(() => {
        const [alan, bob] = ['alan', 'BOB'].map((n) => [...document.querySelectorAll('#messages .mention')]
            .find((m) => m.textContent === '@' + n));
        const bg = (e) => getComputedStyle(e).backgroundColor;
        return { alan: bg(alan), bob: bg(bob), article: bg(bob.closest('article')),
                 other: bg(alan.closest('article')), users: [alan.dataset.user, bob.dataset.user] };
    })()";
    for dark in [false, true] {
        bob.dark(dark).await;
        let style = bob.js(STYLE, vec![]).await;
        assert_ne!(
            style["alan"], style["bob"],
            "my mention stands out (dark: {dark}): {style}"
        );
        assert_ne!(
            style["article"], style["other"],
            "and so does its message (dark: {dark}): {style}"
        );
        assert_ne!(style["article"], json!("rgba(0, 0, 0, 0)"), "{style}");
    }
    bob.dark(false).await;
    look(&bob, "mention-of-me").await;
    bob.assert_console_clean("the room with mention completion")
        .await;
    bob.quit().await;
}
