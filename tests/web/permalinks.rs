//! A message's own link (`/rooms/{code}/messages/{seq}#msg-{seq}`): on every page that shows
//! the message, opening the room at it from anywhere, however far back, and to members only.

use natter::domain::MessageBody;

use crate::both;
use crate::common::{TestApp, assert_exactly, hostile_inputs, seqs_in};

/// Fills room `code` with `n` messages by `author` (through the store, in seconds). Their
/// texts are the hostile inputs a message may hold, in turn.
async fn fill(app: &TestApp, code: &str, author: &str, n: usize) {
    let bodies: Vec<MessageBody> = hostile_inputs()
        .iter()
        .filter_map(|input| MessageBody::parse(input).ok())
        .collect();
    app.fill(code, author, n, |i| bodies[i % bodies.len()].clone())
        .await;
}

/// The `href` of the link whose whole text is `text`.
fn href_of(body: &str, text: &str) -> Option<String> {
    let end = body.find(&format!("\">{text}</a>"))?;
    let start = body[..end].rfind("href=\"")? + 6;
    Some(body[start..end].to_string())
}

/// Markup a message's text must never become.
const MARKUP: [&str; 4] = [
    "<script>alert",
    "<img src=x",
    "<svg onload",
    "<div hx-swap-oob",
];

both! {
    async fn a_link_to_a_message_thousands_back_opens_history_around_it_to_walk_forward(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Long memory").await;
        fill(&app, &code, "ada", 3000).await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;

        // The link every page gives the message, the room's code in it, and its fragment.
        let link = format!("/rooms/{code}/messages/1000#msg-1000");
        let older = bob.get(&format!("/rooms/{code}/messages?before=1001")).await;
        assert!(older.body.contains(&format!("href=\"{link}\"")), "the history page links it");
        let room = bob.get(&format!("/rooms/{code}")).await;
        assert!(room.body.contains(&format!("href=\"/rooms/{code}/messages/3000#msg-3000\"")));

        // Following it: a page of its own, 25 on either side (the fragment, which reqwest
        // does not send, is what the browser scrolls to and highlights).
        let page = bob.get(&link).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_exactly(&seqs_in(&page.body), 975, 1025);
        assert!(page.body.contains("id=\"msg-1000\""));
        for needle in MARKUP {
            assert!(!page.body.contains(needle), "{needle} rendered as markup");
        }
        let back = href_of(&page.body, "Load older messages").expect("an older link");
        assert_eq!(back, format!("/rooms/{code}/messages?before=975"));
        assert_exactly(&seqs_in(&bob.get(&back).await.body), 925, 974);

        // "Newer messages", page after page, ends in the room at the next message.
        let mut seen = seqs_in(&page.body);
        let mut next = href_of(&page.body, "Newer messages").expect("a newer link");
        let mut pages = 0;
        while !next.starts_with(&format!("/rooms/{code}#")) {
            let page = bob.get(&next).await;
            assert_eq!(page.status, 200, "{next}");
            let seqs = seqs_in(&page.body);
            assert_eq!(seqs.first(), Some(&(seen.last().unwrap() + 1)), "{next} follows on");
            seen.extend(seqs);
            next = href_of(&page.body, "Newer messages").expect("a newer link");
            pages += 1;
            assert!(pages < 60, "newer links never reached the room: {next}");
        }
        let at: i64 = next.rsplit("#msg-").next().unwrap().parse().unwrap();
        assert_eq!(at, seen.last().unwrap() + 1, "the room opens at the next message");
        let room = seqs_in(&bob.get(&next).await.body);
        assert!(room.contains(&at), "message {at} is on the room page {room:?}");
        // The last page of history may reach into the room's newest page.
        seen.extend(room);
        seen.sort_unstable();
        seen.dedup();
        assert_exactly(&seen, 975, 3000);
    }

    async fn a_link_to_a_message_on_the_newest_page_opens_the_room_at_it(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Recent").await;
        fill(&app, &code, "ada", 60).await;
        // The room shows 11 to 60.
        for seq in [60, 11] {
            let r = ada.get(&format!("/rooms/{code}/messages/{seq}")).await;
            assert_eq!((r.status, r.location()), (303, format!("/rooms/{code}#msg-{seq}")));
        }
        let htmx = ada.get_with(&format!("/rooms/{code}/messages/60"), &[("hx-request", "true")]).await;
        assert_eq!(htmx.header("hx-redirect"), Some(format!("/rooms/{code}#msg-60").as_str()));
        // The code spelled another way is the same link, spelled canonically.
        let r = ada.get(&format!("/rooms/{}/messages/60", code.to_lowercase())).await;
        assert_eq!((r.status, r.location()), (308, format!("/rooms/{code}/messages/60")));
        // One before them has a page of its own: nothing older, and newer is the room.
        let r = ada.get(&format!("/rooms/{code}/messages/10")).await;
        assert_eq!(r.status, 200);
        assert_exactly(&seqs_in(&r.body), 1, 35);
        assert_eq!(href_of(&r.body, "Load older messages"), None);
        assert_eq!(href_of(&r.body, "Newer messages"), Some(format!("/rooms/{code}#msg-36")));
    }

    // Two wrong guesses an hour: a member asking for messages that are not there makes none.
    #[settings(NATTER_LIMIT_JOIN_FAILS = "2/1h")]
    async fn a_message_number_no_message_has_is_a_404_page(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Three").await;
        fill(&app, &code, "ada", 3).await;
        assert_eq!(ada.get(&format!("/rooms/{code}/messages/2")).await.status, 303);
        let mut numbers: Vec<String> = [
            "0", "4", "-1", "+2", "02", "2.0", "1e3", "0x2", "abc", "%20", "2%20",
            "9223372036854775807", "9223372036854775808", "99999999999999999999999",
        ]
        .map(String::from)
        .to_vec();
        numbers.extend(hostile_inputs().iter().map(|input| {
            url::form_urlencoded::byte_serialize(input.as_bytes()).collect::<String>()
        }));
        for seq in numbers {
            let r = ada.get(&format!("/rooms/{code}/messages/{seq}")).await;
            assert_eq!(r.status, 404, "{seq:?}");
            assert!(r.body.contains("Not found"), "{seq:?}: {}", r.body);
        }
        assert_eq!(ada.get(&format!("/rooms/{code}")).await.status, 200, "no guess was spent");
    }

    // Three wrong guesses an hour.
    #[settings(NATTER_LIMIT_JOIN_FAILS = "3/1h")]
    async fn a_non_member_following_a_link_finds_no_room_and_spends_a_guess(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Private").await;
        fill(&app, &code, "ada", 60).await;
        assert_eq!(ada.get(&format!("/rooms/{code}/messages/1")).await.status, 200);
        let eve = app.signed_in("eve@example.org", "eve").await;
        let not_hers = eve.get(&format!("/rooms/{code}")).await;
        assert_eq!(not_hers.status, 404);
        for seq in ["1", "60"] {
            let r = eve.get(&format!("/rooms/{code}/messages/{seq}")).await;
            assert_eq!(r.status, 404, "message {seq}");
            assert!(r.body.contains("There is nothing here, or it is not yours to see."));
            assert!(!r.body.contains("Private") && !r.body.contains("msg-"), "nothing of the room shows");
        }
        let limited = eve.get(&format!("/rooms/{code}/messages/2")).await;
        assert_eq!(limited.status, 429, "each 404 was a wrong guess");
    }
}
