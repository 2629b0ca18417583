//! Every page in a real browser: screenshots at desktop and phone widths in light and dark mode
//! (`target/screenshots/`), axe-core with zero serious or critical violations, no console error
//! and no Content-Security-Policy report; and the main actions with the keyboard alone.

use serde_json::json;

use crate::chrome::{Chrome, DESKTOP, ENTER, PHONE, TAB};
use crate::common::Mode;
use crate::*;

/// Looks at the current page: the console, then axe and a screenshot at desktop and phone
/// widths, in light and dark mode. `expected_status` is the page's own error status, which
/// Chromium reports as a failed load.
pub(crate) async fn inspect(c: &Chrome, name: &str, expected_status: Option<u16>) {
    c.find("main").await;
    let statuses: Vec<u16> = expected_status.into_iter().collect();
    c.assert_console_clean_but_statuses(name, &statuses).await;
    for dark in [false, true] {
        c.dark(dark).await;
        let scheme = if dark { "-dark" } else { "" };
        for (size, width) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
            c.resize(size).await;
            let violations = c.axe().await;
            assert!(
                violations.is_empty(),
                "axe on {name} ({width}{scheme}): {violations:#?}"
            );
            // A frame's document (the composer of a room without JavaScript) has no header.
            if c.exists(".site-header").await {
                assert_logo_in_place(c, name, width).await;
            }
            assert_eq!(
                c.js(WIDER_THAN_THE_WINDOW, vec![]).await,
                json!(0),
                "{name} ({width}) is wider than the window"
            );
            c.screenshot(&format!("{name}{scheme}-{width}")).await;
        }
    }
    c.dark(false).await;
    c.resize(DESKTOP).await;
    c.assert_console_clean(&format!("{name} after resizing"))
        .await;
}

/// Where the logo was on the first page looked at, per width: every page's header must put it
/// in the same place.
static LOGO_AT: std::sync::Mutex<Vec<(&str, f64)>> = std::sync::Mutex::new(Vec::new());

async fn assert_logo_in_place(c: &Chrome, page: &str, width: &'static str) {
    let left = c
        .js(
            "document.querySelector('.site-header .brand').getBoundingClientRect().left",
            vec![],
        )
        .await
        .as_f64()
        .expect("the logo's position");
    let mut seen = LOGO_AT.lock().unwrap();
    match seen.iter().find(|(w, _)| *w == width) {
        Some((_, first)) => assert!(
            (left - first).abs() < 0.5,
            "the logo on {page} ({width}) is at x={left}, elsewhere at x={first}"
        ),
        None => seen.push((width, left)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_accessible_clean_and_photographed() {
    let Some((app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };

    // Someone else's room with a conversation worth looking at.
    let bob = app.signed_in("bob@example.org", "bob").await;
    let code = app.create_room(&bob, "Design review").await;
    for i in 1..=52 {
        bob.say(&code, &format!("Earlier note {i}")).await;
    }
    let elsewhere = app.create_room(&bob, "Bob's other room").await;

    ada.goto("/").await;
    inspect(&ada, "landing", None).await;
    ada.goto(&format!("/join/{code}")).await;
    inspect(&ada, "invite-signed-out", None).await;
    ada.goto("/no/such/page").await;
    inspect(&ada, "not-found", Some(404)).await;

    app.provider.set_mode(Mode::Deny);
    ada.goto("/").await;
    ada.click("a[href^='/auth/login']").await;
    ada.find("#problem-title").await;
    inspect(&ada, "sign-in-refused", Some(400)).await;
    app.provider.set_mode(Mode::Normal);

    app.provider.sign_in_as(crate::common::FakeUser::verified(
        "sub-ada",
        "ada@example.org",
    ));
    ada.goto("/").await;
    ada.click("a[href^='/auth/login']").await;
    ada.wait_for_path("/username").await;
    inspect(&ada, "username", None).await;
    ada.type_into("#username", "<b>no</b>").await;
    ada.click("form[action='/username'] button[type=submit]")
        .await;
    ada.find("#username-error").await;
    inspect(&ada, "username-refused", Some(422)).await;
    choose_username(&ada, "ada").await;
    inspect(&ada, "home-empty", None).await;

    ada.type_into("#join-code", "NOPE-NOPE").await;
    ada.click("form[action='/rooms/join'] button[type=submit]")
        .await;
    ada.find("#join-code-error").await;
    inspect(&ada, "home-join-refused", Some(422)).await;

    // A room of her own, before anyone has said anything.
    create_room(&ada, "Fresh start").await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    ada.find(".empty-hint").await;
    inspect(&ada, "room-empty", None).await;

    join_by_link(&ada, &code).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    for text in [
        "Here is the plan: https://example.org/plan — thoughts?",
        "A longer message to see how text wraps across the column on a phone and on a desktop, \
         with enough words to need at least two lines on either.",
    ] {
        send(&ada, text).await;
        wait_for_message(&ada, text).await;
    }
    bob.say(&code, "Looks good to me @ada").await;
    wait_for_message(&ada, "Looks good to me @ada").await;
    // Scripts and emoji need fonts of their own (CI installs Noto CJK and Noto Color Emoji).
    let worldly = "会议改到三点 🎉 — 또 봐요 👋";
    send_raw(&ada, worldly).await;
    wait_for_message(&ada, worldly).await;
    inspect(&ada, "room", None).await;
    ada.client
        .execute(
            "document.querySelector('.members-details').open = true",
            vec![],
        )
        .await
        .unwrap();
    inspect(&ada, "room-members-open", None).await;

    // While the live connection is down (js/live.js marks <html>), nobody shows as online:
    // the presence on screen is stale.
    const DOT_FILLED: &str = "getComputedStyle(document.querySelector('#members li.member[data-online=\"true\"]'), '::before')
        .backgroundColor !== 'rgba(0, 0, 0, 0)'";
    assert_eq!(ada.js(DOT_FILLED, vec![]).await, json!(true));
    ada.js("document.documentElement.dataset.live = 'down'", vec![])
        .await;
    assert_eq!(
        ada.js(DOT_FILLED, vec![]).await,
        json!(false),
        "an online dot stays filled while the connection is down"
    );
    inspect(&ada, "room-live-down", None).await;
    ada.js("delete document.documentElement.dataset.live", vec![])
        .await;

    ada.js(
        "document.querySelector('#load-older').scrollIntoView()",
        vec![],
    )
    .await;
    ada.click("#load-older").await;
    ada.wait_until(
        "older messages",
        "document.querySelectorAll('#messages .message').length > 50",
        vec![],
    )
    .await;
    inspect(&ada, "room-with-older", None).await;
    // The page of its own that "Load older" is without JavaScript: messages 3 to 52, with
    // links both ways.
    ada.goto(&format!("/rooms/{code}/messages?before=53")).await;
    assert_eq!(ada.message_texts().await.len(), 50);
    inspect(&ada, "history", None).await;
    // The composer frame of a room without JavaScript, as its own document (it has no
    // script, so it is the same document with JavaScript on).
    ada.goto(&format!("/rooms/{code}/compose")).await;
    inspect(&ada, "compose-frame", None).await;

    ada.goto(&format!("/join/{elsewhere}")).await;
    inspect(&ada, "invite", None).await;
    ada.goto("/home").await;
    inspect(&ada, "home", None).await;
    ada.goto("/profile").await;
    inspect(&ada, "profile", None).await;

    // An API token: the panel showing it once, then the table listing it.
    ada.type_into("#token-name", "deploy bot").await;
    ada.click("form[action='/profile/tokens'] button[type=submit]")
        .await;
    ada.find("#new-token").await;
    inspect(&ada, "profile-new-token", None).await;
    ada.goto("/profile").await;
    ada.find("tr[id^='token-']").await;
    inspect(&ada, "profile-with-token", None).await;
    ada.quit().await;
}

/// The pages that refuse: a form whose CSRF token has expired (403) and one sign-in too many
/// (429).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_pages_are_accessible_clean_and_photographed() {
    // One sign-in per hour from one address: the second is refused.
    let Some((_app, ada)) = app_and_chrome(&[("NATTER_LIMIT_SIGN_INS", "1/1h")]).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    const SIGN_OUT: &str = "form[action='/auth/logout'] button[type=submit]";
    ada.js(
        "document.querySelector(\"form[action='/auth/logout'] input[name=csrf]\").value = 'expired'",
        vec![],
    )
    .await;
    ada.click(SIGN_OUT).await;
    ada.find("#error-title").await;
    assert_eq!(ada.text("#error-title").await, "That request was refused");
    inspect(&ada, "forbidden", Some(403)).await;

    ada.goto("/home").await;
    ada.click(SIGN_OUT).await;
    ada.wait_until_path_is("/").await;
    ada.type_into("#dev-email", "ada@example.org").await;
    ada.click("form[action='/auth/dev'] button[type=submit]")
        .await;
    ada.find("#error-title").await;
    assert_eq!(ada.text("#error-title").await, "Slow down a little");
    inspect(&ada, "too-many-requests", Some(429)).await;
    ada.quit().await;
}

/// The window a little wider than a phone that text-breaking names were seen at (issue 13).
const NARROW: (u32, u32) = (420, 844);

/// Boxes on the page whose content sticks out of them sideways (ellipsised text and what only
/// screen readers get excepted): a name that does not wrap.
const SPILLING: &str = "[...document.querySelectorAll('main h1, main h2, main p, main .card, .rooms-rail li a, .room-row')]
    .filter((e) => e.getClientRects().length > 0 && !e.closest('.visually-hidden')
        && getComputedStyle(e).textOverflow !== 'ellipsis'
        && e.scrollWidth > e.clientWidth + 1)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)";

/// How many pixels the page is wider than the window (0: it fits).
const WIDER_THAN_THE_WINDOW: &str =
    "document.documentElement.scrollWidth - document.documentElement.clientWidth";

/// Nothing on the page spills sideways at 420 px, phone and desktop widths; a screenshot at
/// 420 px (`{name}-420.png`).
async fn assert_nothing_spills(c: &Chrome, name: &str) {
    for size in [NARROW, PHONE, DESKTOP] {
        c.resize(size).await;
        assert_eq!(
            c.js(WIDER_THAN_THE_WINDOW, vec![]).await,
            json!(0),
            "{name} at {size:?} is wider than the window"
        );
        assert_eq!(
            c.js(SPILLING, vec![]).await,
            json!([]),
            "{name} at {size:?}: text sticks out"
        );
        if size == NARROW {
            c.screenshot(&format!("{name}-420")).await;
        }
    }
}

/// Text built to break pages: an 80-character room name without a space wraps (or is cut
/// short, where it is one line) on every page that shows it, down to phone width; a name with a
/// direction control is refused with the reason; and a link holding one reads as typed without
/// reordering the words after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_and_direction_controls_keep_pages_in_shape() {
    let Some((app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;

    // "Invoice\u{202E}fdp.exe" would read "Invoiceexe.pdf", and reverse what follows it.
    ada.goto("/home").await;
    ada.js(
        "document.querySelector('#room-name').value = arguments[0]",
        vec![json!("Invoice\u{202e}fdp.exe")],
    )
    .await;
    ada.click("form[action='/rooms'] button[type=submit]").await;
    ada.find("#room-name-error").await;
    assert!(
        ada.text("#room-name-error")
            .await
            .contains("cannot contain text direction controls")
    );
    inspect(&ada, "home-room-name-refused", Some(422)).await;

    let long = "W".repeat(80);
    let bob = app.signed_in("bob@example.org", "bob").await;
    let theirs = app.create_room(&bob, &long).await;
    for i in 1..=3 {
        bob.say(&theirs, &format!("Note {i}")).await;
    }
    ada.goto(&format!("/join/{theirs}")).await;
    inspect(&ada, "invite-long-name", None).await;
    assert_nothing_spills(&ada, "invite-long-name").await;
    join_by_link(&ada, &theirs).await;
    create_room(&ada, &long).await;
    ada.goto(&format!("/rooms/{theirs}")).await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    assert_eq!(
        ada.js("document.title", vec![]).await,
        json!(format!("{long} · natter"))
    );

    // The link's text without the override, and the words after it still after it.
    send_raw(&ada, "see https://example.org/\u{202e}fdp.exe then reply").await;
    wait_for_message(&ada, "see https://example.org/fdp.exe then reply").await;
    let places = ada
        .js(
            "(() => {
                const a = document.querySelector('#messages .message-body a[href*=\"fdp.exe\"]');
                const text = (a.querySelector('bdi') || a).firstChild;
                const at = (node, from, to) => {
                    const r = document.createRange();
                    r.setStart(node, from);
                    r.setEnd(node, to);
                    return r.getBoundingClientRect();
                };
                const t = text.textContent;
                const rest = a.nextSibling;
                const name = t.indexOf('fdp'), ext = t.indexOf('.exe');
                return {
                    name: at(text, name, name + 3).left,
                    ext: at(text, ext, ext + 4).left,
                    link: a.getBoundingClientRect().right,
                    after: at(rest, 0, rest.textContent.length).left,
                };
            })()",
            vec![],
        )
        .await;
    let x = |k: &str| places[k].as_f64().expect("a position");
    assert!(
        x("name") < x("ext"),
        "the link's text is reordered: {places}"
    );
    assert!(
        x("after") >= x("link") - 1.0,
        "the words after the link moved: {places}"
    );
    inspect(&ada, "room-long-names", None).await;
    assert_nothing_spills(&ada, "room-long-names").await;

    ada.goto(&format!("/rooms/{theirs}/messages?before=3"))
        .await;
    inspect(&ada, "history-long-name", None).await;
    assert_nothing_spills(&ada, "history-long-name").await;
    ada.goto("/home").await;
    inspect(&ada, "home-long-names", None).await;
    assert_nothing_spills(&ada, "home-long-names").await;
    ada.quit().await;
}

/// Waits until the console reports something containing `needle`; returns everything it
/// reported meanwhile.
async fn wait_for_console(c: &Chrome, needle: &str) -> Vec<String> {
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    while !seen.iter().any(|p: &String| p.contains(needle)) {
        assert!(
            start.elapsed() < crate::chrome::WAIT,
            "the console never reported {needle:?}: {seen:#?}"
        );
        seen.extend(c.console_problems().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}

/// The checks every page passes can fail: an injected inline script is reported as a CSP
/// violation, an uncaught error as a console error, an input without a label by axe. Without
/// this, a console reader or an axe run that saw nothing would pass every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_axe_checks_catch_what_they_look_for() {
    let Some((_app, c)) = app_and_chrome(&[]).await else {
        return;
    };
    c.goto("/").await;
    c.find("main").await;
    c.assert_console_clean("the landing page").await;
    assert!(c.axe().await.is_empty());

    c.js(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.injected = true'; \
         document.body.append(s); return true; })()",
        vec![],
    )
    .await;
    assert_eq!(
        c.js("window.injected === undefined", vec![]).await,
        json!(true),
        "the policy let an inline script run"
    );
    wait_for_console(&c, "Content Security Policy").await;

    c.js(
        "(setTimeout(() => { throw new Error('natter control error'); }), true)",
        vec![],
    )
    .await;
    wait_for_console(&c, "natter control error").await;

    c.js(
        "(() => { const i = document.createElement('input'); i.type = 'text'; i.id = 'unlabelled'; \
         document.querySelector('main').append(i); return true; })()",
        vec![],
    )
    .await;
    let violations = c.axe().await;
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("label:") && v.contains("#unlabelled")),
        "axe did not flag the unlabelled input: {violations:#?}"
    );
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_join_and_send_with_the_keyboard_alone() {
    let Some((app, ada)) = app_and_chrome(&[]).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let bob = app.signed_in("bob@example.org", "bob").await;
    let bobs = app.create_room(&bob, "Bob's").await;
    let invited = app.create_room(&bob, "Bob's book club").await;

    // Create: Tab to the name, type, Tab to the button, Enter.
    ada.goto("/home").await;
    ada.tab_to("room-name").await;
    ada.press("Keyboard club").await;
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "button:Create room");
    assert_focus_visible(&ada).await;
    ada.press(ENTER).await;
    ada.wait_for_path("/rooms/").await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;

    // Send with Enter in the composer, then with Tab to Send and Enter.
    ada.tab_to("composer-body").await;
    assert_focus_visible(&ada).await;
    ada.press("typed, then Enter").await;
    ada.press(ENTER).await;
    wait_for_message(&ada, "typed, then Enter").await;
    ada.tab_to("composer-body").await;
    ada.press("typed, then the Send button").await;
    // Tab passes the file picker on its way to Send.
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "composer-files");
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "button:Send");
    assert_focus_visible(&ada).await;
    ada.press(ENTER).await;
    wait_for_message(&ada, "typed, then the Send button").await;

    // A refused post (only spaces) says why and keeps the text; the next good one clears the
    // error without replacing the form.
    ada.type_into("#composer-body", "   ").await;
    ada.click("#composer button[type=submit]").await;
    ada.find("#composer-error").await;
    assert_eq!(ada.js(COMPOSER_TEXT, vec![]).await, json!("   "));
    ada.type_into("#composer-body", "after the error").await;
    ada.press(ENTER).await;
    wait_for_message(&ada, "after the error").await;
    ada.wait_until(
        "the error gone",
        "!document.querySelector('#composer-error') && !document.querySelector('#composer-body').hasAttribute('aria-invalid')",
        vec![],
    )
    .await;

    // Shift+Enter starts a new line, Enter sends both lines as one message, and the focus
    // stays in the composer, ready for the next.
    ada.type_into("#composer-body", "line one").await;
    ada.press_shift_enter().await;
    ada.press("line two").await;
    assert_eq!(
        ada.js(COMPOSER_TEXT, vec![]).await,
        json!("line one\nline two")
    );
    ada.press(ENTER).await;
    wait_for_message(&ada, "line one\nline two").await;
    assert!(
        !ada.message_texts().await.iter().any(|m| m == "line one"),
        "Shift+Enter sent the first line on its own"
    );
    ada.wait_until(
        "the post answered",
        "!document.querySelector('#composer').classList.contains('htmx-request')",
        vec![],
    )
    .await;
    assert_eq!(ada.focused().await, "composer-body");
    assert_eq!(ada.js(COMPOSER_TEXT, vec![]).await, json!(""));

    // Join with a code.
    ada.goto("/home").await;
    ada.tab_to("join-code").await;
    ada.press(&bobs).await;
    ada.press(TAB).await;
    assert_eq!(ada.focused().await, "button:Join room");
    ada.press(ENTER).await;
    ada.wait_for_path(&format!("/rooms/{bobs}")).await;

    // Join through an invitation link: Tab to its Join button, Enter.
    ada.goto(&format!("/join/{invited}")).await;
    ada.tab_to("button:Join room").await;
    assert_focus_visible(&ada).await;
    ada.press(ENTER).await;
    ada.wait_for_path(&format!("/rooms/{invited}")).await;
    // Besides the refused post's 422, which Chromium reports as a failed load, nothing.
    ada.assert_console_clean_but_statuses("the keyboard journey", &[422])
        .await;
    ada.quit().await;
}

/// The focused element shows a focus indicator (outline or ring).
async fn assert_focus_visible(c: &Chrome) {
    let style = c
        .js(
            "(() => { const s = getComputedStyle(document.activeElement); \
             return s.outlineStyle !== 'none' && s.outlineWidth !== '0px' || s.boxShadow !== 'none'; })()",
            vec![],
        )
        .await;
    assert_eq!(
        style,
        json!(true),
        "no visible focus on {}",
        c.focused().await
    );
}
