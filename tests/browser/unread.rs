//! Unread counts in a real browser with JavaScript on: another room's count moving live in the
//! rail and the tab title, the room opening at its "New messages" divider, and reading at the
//! bottom saving the mark.

use serde_json::json;

use crate::pages::inspect;
use crate::*;

/// The shown count of the rail's link to room `arguments[0]` ('' when hidden).
const RAIL_COUNT: &str = "(() => {
    const a = [...document.querySelectorAll('.rooms-rail a')].find((a) => a.pathname === '/rooms/' + arguments[0]);
    const badge = a?.querySelector('.unread-count');
    return !badge || badge.hidden ? '' : badge.querySelector('.unread-number').textContent;
})()";

/// Where the divider is: in view, and above the newest message's top.
const DIVIDER: &str = "(() => {
    const d = document.getElementById('unread');
    if (!d) return null;
    const r = d.getBoundingClientRect();
    return { inView: r.top >= 0 && r.bottom <= innerHeight, text: d.textContent };
})()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_rooms_count_moves_live_and_the_room_opens_at_its_first_unread_message() {
    let Some((app, bob)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    let ada = app.signed_in("ada@example.org", "ada").await;
    let lobby = app.create_room(&ada, "Lobby").await;
    let news = app.create_room(&ada, "News").await;
    sign_up_dev(&bob, "bob@example.org", "bob").await;
    join_by_link(&bob, &news).await;
    join_by_link(&bob, &lobby).await;
    app.fill(&news, "ada", 60, |i| {
        natter::domain::MessageBody::parse(&format!("News item {}", i + 1)).unwrap()
    })
    .await;

    // In the lobby: News's count in the rail and the title, as rendered.
    bob.goto(&format!("/rooms/{lobby}")).await;
    bob.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    assert_eq!(bob.js(RAIL_COUNT, vec![json!(news)]).await, json!("60"));
    assert_eq!(
        bob.js("document.title", vec![]).await,
        json!("(60) Lobby · natter")
    );

    // A message in News moves it, live, with the title.
    ada.say(&news, "Breaking").await;
    bob.wait_until(
        "News's count to move",
        &format!("{RAIL_COUNT} === '61'"),
        vec![json!(news)],
    )
    .await;
    bob.wait_until(
        "the title to follow",
        "document.title === '(61) Lobby · natter'",
        vec![],
    )
    .await;
    // Ada's messages in the lobby itself are not counted for other rooms.
    ada.say(&lobby, "Hello lobby").await;
    wait_for_message(&bob, "Hello lobby").await;
    assert_eq!(bob.js(RAIL_COUNT, vec![json!(news)]).await, json!("61"));
    inspect(&bob, "unread-rail", None).await;

    // Following the rail link: News opens at the divider, above the newest page.
    bob.click(&format!(".rooms-rail a[href^='/rooms/{news}']"))
        .await;
    bob.wait_until_path_is(&format!("/rooms/{news}")).await;
    bob.wait_until("live socket", MEMBER_ONLINE, vec![json!("bob")])
        .await;
    let divider = bob.js(DIVIDER, vec![]).await;
    assert_eq!(divider, json!({ "inView": true, "text": "New messages" }));
    assert_eq!(
        bob.js("document.title", vec![]).await,
        json!("News · natter")
    );
    inspect(&bob, "unread-divider", None).await;

    // Scrolled up to the divider, a new message is not read: the title counts it. At the
    // bottom, it is read (and saved: home shows nothing unread).
    ada.say(&news, "While you read").await;
    wait_for_message(&bob, "While you read").await;
    bob.wait_until(
        "the title to count it",
        "document.title === '(1) News · natter'",
        vec![],
    )
    .await;
    bob.js("document.querySelector('.scroller').scrollTop = 0", vec![])
        .await;
    bob.wait_until(
        "reading at the bottom",
        "document.title === 'News · natter'",
        vec![],
    )
    .await;
    bob.goto("/home").await;
    bob.wait_until(
        "home to show nothing unread",
        "document.title === 'Rooms · natter' && !document.querySelector('.mark-all-read')",
        vec![],
    )
    .await;
    bob.assert_console_clean("unread").await;
    bob.quit().await;
}
