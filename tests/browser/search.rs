//! Search in a real browser: typed into the header's box, results with their matches marked,
//! a result followed to its message in the room; with JavaScript on and off; axe clean.

use serde_json::json;

use crate::chrome::ENTER;
use crate::pages::inspect;
use crate::*;

/// The marked words of the results, in order.
const MARKS: &str =
    "[...document.querySelectorAll('.search-results mark')].map((m) => m.textContent)";

/// axe, the console and screenshots with JavaScript on; screenshots without it (WebDriver's
/// asynchronous scripts, which axe needs, do not run there).
async fn look(c: &Chrome, name: &str, status: Option<u16>) {
    if c.js == Js::On {
        inspect(c, name, status).await;
    } else {
        c.screenshots(name).await;
    }
}

/// Searches from the header's box of whatever page `c` shows, then follows the oldest result
/// to its message; `name` prefixes the screenshots.
async fn search_and_follow(c: &Chrome, code: &str, name: &str) {
    c.goto(&format!("/rooms/{code}")).await;
    c.type_into("#header-q", "deplo").await;
    c.press(ENTER).await;
    c.wait_for_path("/search?q=deplo").await;
    c.find(".search-results").await;
    assert_eq!(
        c.js(MARKS, vec![]).await,
        json!(["deploy", "Deployment"]),
        "newest first, the matches marked"
    );
    // The tag a message typed is text, shown as typed.
    let body = c
        .js(
            "document.querySelectorAll('.search-body')[1].textContent",
            vec![],
        )
        .await;
    assert_eq!(body, json!("Deployment <b>done</b>, see the notes"));
    assert_eq!(
        c.js("document.querySelectorAll('.search-body b').length", vec![])
            .await,
        json!(0)
    );
    look(c, &format!("{name}-results"), None).await;

    let href = c
        .js(
            "document.querySelectorAll('a.search-hit')[1].getAttribute('href')",
            vec![],
        )
        .await;
    assert_eq!(href, json!(format!("/rooms/{code}/messages/1#msg-1")));
    c.js(
        "document.querySelectorAll('a.search-hit')[1].click()",
        vec![],
    )
    .await;
    // The message is on the room's newest page: the permalink opens the room at it.
    c.wait_for_path(&format!("/rooms/{code}")).await;
    c.wait_until(
        "the message to be the page's target",
        "document.querySelector(':target')?.id === 'msg-1'",
        vec![],
    )
    .await;

    // Refused (too long): the form again with the reason and the text.
    c.goto(&format!("/search?q={}", "x".repeat(201))).await;
    c.find("#search-error").await;
    assert_eq!(
        c.js("document.querySelector('#search-q').value.length", vec![])
            .await,
        json!(201)
    );
    look(c, &format!("{name}-refused"), Some(422)).await;
    // Nothing found.
    c.goto("/search?q=nowhere").await;
    c.find(".empty-state").await;
    look(c, &format!("{name}-empty"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_box_finds_a_message_and_its_result_opens_it_in_the_room() {
    let Some((_app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    let code = create_room(&ada, "Release crew").await;
    send(&ada, "Deployment <b>done</b>, see the notes").await;
    wait_for_message(&ada, "Deployment <b>done</b>, see the notes").await;
    send(&ada, "next deploy on Friday").await;
    wait_for_message(&ada, "next deploy on Friday").await;
    search_and_follow(&ada, &code, "search").await;
    ada.quit().await;
}

crate::both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn search_works_with_javascript_off(app: TestApp) {
        let Some(ada) = Chrome::start(&app.base, Js::Off).await else {
            return;
        };
        sign_up_dev(&ada, "ada@example.org", "ada").await;
        let code = create_room(&ada, "Release crew").await;
        send(&ada, "Deployment <b>done</b>, see the notes").await;
        wait_for_message(&ada, "Deployment <b>done</b>, see the notes").await;
        send(&ada, "next deploy on Friday").await;
        wait_for_message(&ada, "next deploy on Friday").await;
        search_and_follow(&ada, &code, &format!("search-no-js-{:?}", app.db.backend()).to_lowercase()).await;
        ada.quit().await;
    }
}
