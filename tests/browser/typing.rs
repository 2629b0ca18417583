//! "ada is typing…" in a real browser: the page shows who else types (never its own person),
//! and typing in its composer tells the room through the socket, with nothing of the draft.

use std::time::Duration;

use serde_json::json;

use crate::*;

/// The typing line's visible text.
const TYPING_TEXT: &str = "document.querySelector('#typing').innerText.trim()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_who_else_is_typing_and_says_when_its_person_types() {
    let Some((app, bob)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    sign_up_dev(&bob, "bob@example.org", "bob").await;
    let code = create_room(&bob, "Typing").await;
    let ada = app.signed_in("ada@example.org", "ada").await;
    ada.join(&code).await;
    bob.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    let mut ada_socket = ada.socket(&code, None).await.expect("socket");
    bob.wait_until("ada online", MEMBER_ONLINE, vec![json!("ada")])
        .await;

    // Ada's page says she types: Bob's page shows it under the conversation.
    ada_socket
        .send_text(r#"{"typing":"1","HEADERS":{"HX-Request":"true"}}"#)
        .await;
    bob.wait_until(
        "ada typing",
        &format!("{TYPING_TEXT} === 'ada is typing…'"),
        vec![],
    )
    .await;
    bob.screenshots("room-typing").await;
    let violations = bob.axe().await;
    assert!(violations.is_empty(), "axe: {violations:#?}");

    // Bob types: Ada hears it through his page's socket, and nothing of what he typed.
    bob.type_into("#composer-body", "secret draft").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = ada_socket.next_text(left).await.expect("Bob's typing line");
        if frame.contains("id=\"typing\"") && frame.contains(">bob</bdi>") {
            break frame;
        }
    };
    assert!(!line.contains("secret"), "{line}");
    // His own page gets the same line and does not show him.
    bob.wait_until(
        "Bob's line on his page, hidden",
        "[...document.querySelectorAll('#typing .typer')].some((t) => t.textContent.startsWith('bob'))",
        vec![],
    )
    .await;
    let shown = bob.js(TYPING_TEXT, vec![]).await;
    assert!(!shown.as_str().unwrap_or("").contains("bob"), "{shown}");

    // Ada's message ends her line on Bob's page.
    ada.say(&code, "done typing").await;
    bob.wait_until(
        "ada's line gone",
        &format!("!{TYPING_TEXT}.includes('ada')"),
        vec![],
    )
    .await;
    bob.assert_console_clean("room with typing").await;
    bob.quit().await;
}
