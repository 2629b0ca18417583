//! Unread: counts on home and in the room rail (others' messages after my read mark, "99+"
//! from 100), the "New messages" divider the room opens at, the read mark (opening a room,
//! `POST /rooms/{code}/read`, "Mark all read"), and live activity from my other rooms.

use std::time::Duration;

use natter::domain::MessageBody;

use crate::both;
use crate::common::{extract_attr, hostile_inputs};

/// The `<title>` text.
fn title(page: &str) -> &str {
    let start = page.find("<title>").expect("a title") + 7;
    &page[start..start + page[start..].find("</title>").unwrap()]
}

/// The unread badge of the home row or rail link whose `href` starts with `/rooms/{code}`:
/// its shown number, or `None` when it is hidden.
fn badge(page: &str, code: &str) -> Option<String> {
    let at = page.find(&format!("href=\"/rooms/{code}"))?;
    let rest = &page[at..];
    let badge = &rest[rest.find("<span class=\"unread-count")?..];
    let head = &badge[..badge.find('>')?];
    if head.contains(" hidden") {
        return None;
    }
    extract_attr(badge, "<span class=\"unread-number\">")
        .map(|_| ())
        .and(badge.find("<span class=\"unread-number\">").map(|i| {
            let n = &badge[i + 28..];
            n[..n.find('<').unwrap()].to_string()
        }))
}

/// The id the rail of `page` gives room `code` (what activity frames name it by).
fn rail_id(page: &str, code: &str) -> String {
    let at = page
        .find(&format!("href=\"/rooms/{code}\""))
        .expect("the rail links the room");
    extract_attr(&page[at..], "data-room-id=\"").expect("the rail names the room")
}

/// The `href` of the link to room `code` (home row or rail).
fn link(page: &str, code: &str) -> String {
    let at = page
        .find(&format!("href=\"/rooms/{code}"))
        .expect("a link to the room")
        + 6;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

/// Where the divider is, relative to message `seq`: `Some(true)` right before its article.
fn divider_before(page: &str, seq: i64) -> Option<bool> {
    let divider = page.find("id=\"unread\"")?;
    let article = page.find(&format!("id=\"msg-{seq}\""))?;
    let between = &page[divider..article];
    // Between them: the message's own opening tag, and no other message.
    Some(divider < article && between.matches("<article").count() == 1)
}

both! {
    async fn home_and_the_rail_count_others_messages_since_my_mark_and_link_to_the_first(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let alpha = app.create_room(&ada, "Alpha").await;
        let beta = app.create_room(&ada, "Beta").await;
        bob.join(&alpha).await;
        bob.join(&beta).await;
        let first = ada.say(&beta, "one").await;
        ada.say(&beta, "two").await;
        // (Through the store: posting from the page would open it, and read it.)
        app.fill(&beta, "bob", 1, |_| MessageBody::parse("mine, not unread").unwrap()).await;
        ada.say(&beta, "three").await;

        let home = bob.get("/home").await;
        assert_eq!(badge(&home.body, &beta).as_deref(), Some("3"), "{}", home.body);
        assert_eq!(badge(&home.body, &alpha), None, "nothing unread in Alpha");
        assert_eq!(link(&home.body, &beta), format!("/rooms/{beta}#unread"));
        assert_eq!(link(&home.body, &alpha), format!("/rooms/{alpha}"));
        assert_eq!(title(&home.body), "(3) Rooms · natter");
        assert!(home.body.contains("action=\"/home/read\""), "Mark all read is offered");
        // Ada posted "three" from the room page, which showed her Bob's message: read.
        assert_eq!(badge(&ada.get("/home").await.body, &beta), None);

        // Alpha's rail shows Beta's count; the title counts it.
        let in_alpha = bob.get(&format!("/rooms/{alpha}")).await;
        assert_eq!(badge(&in_alpha.body, &beta).as_deref(), Some("3"));
        assert_eq!(link(&in_alpha.body, &beta), format!("/rooms/{beta}#unread"));
        assert_eq!(title(&in_alpha.body), "(3) Alpha · natter");
        assert!(!in_alpha.body.contains("id=\"unread\""), "nothing unread in Alpha: no divider");

        // Opening Beta: the divider before the first unread message; the page is read then.
        let in_beta = bob.get(&format!("/rooms/{beta}")).await;
        assert_eq!(divider_before(&in_beta.body, first), Some(true), "{}", in_beta.body);
        assert!(in_beta.body.contains("New messages"));
        assert_eq!(title(&in_beta.body), "Beta · natter");
        let again = bob.get(&format!("/rooms/{beta}")).await;
        assert_eq!(divider_before(&again.body, first), None, "read: no divider");
        let home = bob.get("/home").await;
        assert_eq!(badge(&home.body, &beta), None);
        assert_eq!(title(&home.body), "Rooms · natter");
        assert!(!home.body.contains("action=\"/home/read\""), "nothing to mark");

        // A new message after that: the divider stands before it, not before older ones.
        let fourth = ada.say(&beta, "four").await;
        assert_eq!(badge(&bob.get("/home").await.body, &beta).as_deref(), Some("1"));
        assert_eq!(divider_before(&bob.get(&format!("/rooms/{beta}")).await.body, fourth), Some(true));
    }

    async fn a_hundred_unread_show_as_99_plus_and_the_room_opens_at_the_top_of_its_page(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let code = app.create_room(&ada, "Busy").await;
        let quiet = app.create_room(&ada, "Quiet").await;
        bob.join(&code).await;
        bob.join(&quiet).await;
        app.fill(&code, "ada", 99, |i| MessageBody::parse(&format!("m{i}")).unwrap()).await;
        assert_eq!(badge(&bob.get("/home").await.body, &code).as_deref(), Some("99"));
        app.fill(&code, "ada", 1500, |i| MessageBody::parse(&format!("n{i}")).unwrap()).await;
        let home = bob.get("/home").await;
        assert_eq!(badge(&home.body, &code).as_deref(), Some("99+"));
        assert_eq!(title(&home.body), "(99+) Rooms · natter");
        let rail = bob.get(&format!("/rooms/{quiet}")).await;
        assert_eq!(badge(&rail.body, &code).as_deref(), Some("99+"));
        // The first unread is far older than the page: the divider is above its first message.
        let page = bob.get(&format!("/rooms/{code}")).await;
        let divider = page.body.find("id=\"unread\"").expect("a divider");
        let first_article = page.body.find("<article").expect("messages");
        assert!(divider < first_article);
        assert_eq!(badge(&bob.get("/home").await.body, &code), None, "read on opening");
    }

    async fn the_read_route_moves_the_mark_up_only_within_the_room_and_refuses_bad_input(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        let code = app.create_room(&ada, "Marks").await;
        bob.join(&code).await;
        for i in 1..=4 {
            ada.say(&code, &format!("m{i}")).await;
        }
        let read = format!("/rooms/{code}/read");
        let csrf = bob.csrf_from("/home").await;

        // No CSRF token, or someone else's: refused, nothing read.
        assert_eq!(bob.post(&read, &[("seq", "4")]).await.status, 403);
        let ada_csrf = ada.csrf_from("/home").await;
        assert_eq!(bob.post(&read, &[("seq", "4"), ("csrf", &ada_csrf)]).await.status, 403);
        // Not a member: no such room.
        let cyd_csrf = cyd.csrf_from("/home").await;
        assert_eq!(cyd.post(&read, &[("seq", "1"), ("csrf", &cyd_csrf)]).await.status, 404);
        // Not a message number: 422, never a 500, nothing read.
        let mut bad: Vec<String> = ["", "-1", "+1", "1.5", "1e3", "0x10", "99999999999999999999", "٣"]
            .iter().map(|s| s.to_string()).collect();
        bad.extend(hostile_inputs().into_iter().filter(|h| h.trim().parse::<i64>().is_err()).take(40));
        for value in &bad {
            let r = bob.post(&read, &[("seq", value), ("csrf", &csrf)]).await;
            assert_eq!(r.status, 422, "seq={value:?}: {}", r.body);
        }
        let r = bob.post(&read, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 422, "no seq");
        assert_eq!(badge(&bob.get("/home").await.body, &code).as_deref(), Some("4"));

        // Read up to 2 (a plain form goes back to the room).
        let r = bob.post(&read, &[("seq", "2"), ("csrf", &csrf)]).await;
        assert_eq!((r.status, r.location()), (303, format!("/rooms/{code}")));
        assert_eq!(badge(&bob.get("/home").await.body, &code).as_deref(), Some("2"));
        // At once again (a script gets 204 within the budget, 429 past it).
        let r = bob.post_with(&read, &[("seq", "4"), ("csrf", &csrf)], &[("origin", &app.base), ("hx-request", "true")]).await;
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        assert_eq!(badge(&bob.get("/home").await.body, &code).as_deref(), Some("2"));

        // Ada's mark: far past the end is the room's end, and a lower one later changes nothing.
        let ada_read = ada.post_with(&read, &[("seq", "9223372036854775807"), ("csrf", &ada_csrf)],
            &[("origin", &app.base), ("hx-request", "true")]).await;
        assert_eq!(ada_read.status, 204);
        bob.say(&code, "from bob").await;
        assert_eq!(badge(&ada.get("/home").await.body, &code).as_deref(), Some("1"), "clamped to the room's end");
    }

    async fn a_lower_mark_never_moves_the_mark_down(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let code = app.create_room(&ada, "Down").await;
        bob.join(&code).await;
        for i in 1..=3 {
            ada.say(&code, &format!("m{i}")).await;
        }
        // Opening reads all three; a late mark of 1 afterwards changes nothing.
        bob.get(&format!("/rooms/{code}")).await;
        let r = bob.post_form("/home", &format!("/rooms/{code}/read"), &[("seq", "1")]).await;
        assert_eq!(r.status, 303);
        let home = bob.get("/home").await;
        assert_eq!(badge(&home.body, &code), None, "{}", home.body);
    }

    async fn mark_all_read_clears_every_room_without_javascript(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let one = app.create_room(&ada, "One").await;
        let two = app.create_room(&ada, "Two").await;
        bob.join(&one).await;
        bob.join(&two).await;
        ada.say(&one, "a").await;
        ada.say(&two, "b").await;
        ada.say(&two, "c").await;
        let home = bob.get("/home").await;
        assert_eq!((badge(&home.body, &one).as_deref(), badge(&home.body, &two).as_deref()), (Some("1"), Some("2")));
        assert_eq!(bob.post("/home/read", &[]).await.status, 403, "no CSRF token");
        let r = bob.post_form("/home", "/home/read", &[]).await;
        assert_eq!((r.status, r.location()), (303, "/home".to_string()));
        let home = bob.get("/home").await;
        assert_eq!((badge(&home.body, &one), badge(&home.body, &two)), (None, None));
        assert_eq!(title(&home.body), "Rooms · natter");
        // Ada's own counts are hers: untouched.
        let r = bob.post_with("/home/read", &[], &[("origin", &app.base), ("hx-request", "true")]).await;
        assert_eq!(r.status, 403);
        ada.say(&one, "d").await;
        assert_eq!(badge(&bob.get("/home").await.body, &one).as_deref(), Some("1"));
    }

    async fn a_message_in_another_room_reaches_my_open_room_socket_as_activity(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let here = app.create_room(&ada, "Here").await;
        let there = app.create_room(&ada, "There").await;
        let apart = app.create_room(&ada, "Apart").await;
        bob.join(&here).await;
        bob.join(&there).await;
        let there_id = rail_id(&bob.get(&format!("/rooms/{here}")).await.body, &there);
        let mut bob_socket = bob.socket(&here, None).await.expect("bob's socket");
        let mut ada_socket = ada.socket(&here, None).await.expect("ada's socket");
        // Opening sockets is not instantaneous: wait until bob's is following.
        assert!(bob_socket.wait_for("id=\"members\"", Duration::from_secs(5)).await);
        assert!(ada_socket.wait_for("id=\"members\"", Duration::from_secs(5)).await);

        let seq = ada.say(&there, "over there").await;
        let expected = format!("data-activity=\"{there_id}:1:{seq}:{seq}:0\"");
        assert!(bob_socket.wait_for(&expected, Duration::from_secs(5)).await, "{expected} in {:?}", bob_socket.frames);
        assert!(bob_socket.frames.iter().any(|f| f.starts_with("<template data-activity")));
        // Ada wrote it: nothing for her.
        assert!(!ada_socket.wait_for("data-activity", Duration::from_millis(600)).await, "{:?}", ada_socket.frames);
        // A room Bob is not in: nothing for him. Bob's own message: nothing for him, but for Ada.
        ada.say(&apart, "elsewhere").await;
        let own = bob.say(&there, "bob's own").await;
        assert!(ada_socket.wait_for(&format!(":1:{own}:{own}:0\""), Duration::from_secs(5)).await);
        let last = ada.say(&there, "again").await;
        assert!(bob_socket.wait_for(&format!("data-activity=\"{there_id}:1:{last}:{last}:0\""), Duration::from_secs(5)).await, "{:?}", bob_socket.frames);
        // A message naming Bob counts as one that mentions him.
        let named = ada.say(&there, "@bob see this").await;
        assert!(bob_socket.wait_for(&format!("data-activity=\"{there_id}:1:{named}:{named}:1\""), Duration::from_secs(5)).await, "{:?}", bob_socket.frames);
        let activity: String = bob_socket.frames.iter().filter(|f| f.contains("data-activity")).cloned().collect();
        assert!(!activity.contains(&format!(":{own}:{own}:")), "bob's own message: {activity}");
        assert_eq!(activity.matches(&format!("\"{there_id}:")).count(), 3, "only There's messages: {activity}");
    }

    async fn a_page_hears_no_activity_for_its_own_room_unless_another_tab_shows_another_room(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let here = app.create_room(&ada, "Here").await;
        let there = app.create_room(&ada, "There").await;
        bob.join(&here).await;
        bob.join(&there).await;
        let here_id = rail_id(&bob.get(&format!("/rooms/{there}")).await.body, &here);
        let mut tab = bob.socket(&here, None).await.expect("bob's tab on Here");
        assert!(tab.wait_for("id=\"members\"", Duration::from_secs(5)).await);

        // His only page shows Here: Here's message reaches it, and no activity for it.
        let first = ada.say(&here, "in the room he looks at").await;
        assert!(tab.wait_for(&format!("data-seq=\"{first}\""), Duration::from_secs(5)).await);
        // Activity for There proves the flushes (every 250 ms) run; none names Here.
        let elsewhere = ada.say(&there, "elsewhere").await;
        assert!(tab.wait_for(&format!(":1:{elsewhere}:{elsewhere}:0\""), Duration::from_secs(5)).await, "{:?}", tab.frames);
        let own = format!("{here_id}:1:{first}:{first}:0");
        assert!(!tab.wait_for(&own, Duration::from_millis(800)).await, "activity for the room his page shows: {:?}", tab.frames);

        // A second tab, on There: Here's next message is news to it, and the first tab (the
        // browser's leader) gets it to pass on.
        let mut second = bob.socket(&there, None).await.expect("bob's tab on There");
        assert!(second.wait_for("id=\"members\"", Duration::from_secs(5)).await);
        let next = ada.say(&here, "now another tab shows There").await;
        let expected = format!("data-activity=\"{here_id}:1:{next}:{next}:0\"");
        assert!(tab.wait_for(&expected, Duration::from_secs(5)).await, "{expected} in {:?}", tab.frames);
    }

    async fn joining_starts_read_and_a_mention_makes_the_mark_stronger_as_the_setting_says(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let quiet = app.create_room(&bob, "Quiet").await;
        bob.say(&quiet, "said before Ada came").await;
        ada.join(&quiet).await;
        let home = ada.get("/home").await;
        assert_eq!(badge(&home.body, &quiet), None, "what came before joining is not unread");

        // Two messages by Bob (through the store: his page would read them), one naming Ada.
        app.fill(&quiet, "bob", 2, |i| {
            MessageBody::parse(if i == 0 { "plain" } else { "@Ada have a look" }).unwrap()
        })
        .await;
        let strong = "<span class=\"unread-count mentioned\"";
        let home = ada.get("/home").await.body;
        assert_eq!(badge(&home, &quiet).as_deref(), Some("2"));
        assert!(home.contains(strong) && home.contains(", 1 mention you"), "{home}");
        assert_eq!(title(&home), "(2) Rooms · natter");

        // Mentions only: the mark counts the one that names her; nothing: no mark at all.
        let notify = format!("/rooms/{quiet}/notify");
        for (choice, shown, total) in [("mentions", Some("1"), "(1) Rooms · natter"), ("nothing", None, "Rooms · natter")] {
            let saved = ada.post_form("/home", &notify, &[("notify", choice)]).await;
            assert_eq!(saved.status, 303, "{}", saved.body);
            let home = ada.get("/home").await.body;
            assert_eq!(badge(&home, &quiet).as_deref(), shown, "{choice}");
            assert_eq!(title(&home), total, "{choice}");
            assert_eq!(home.contains(strong), choice == "mentions", "{choice}");
            assert!(home.contains(&format!("data-notify=\"{choice}\"")), "js/unread.js follows it live");
        }
        // Another room's rail says the same as home.
        let other = app.create_room(&ada, "Other").await;
        let rail = ada.get(&format!("/rooms/{other}")).await.body;
        assert_eq!(badge(&rail, &quiet), None);
        assert!(ada.post_form("/home", &notify, &[("notify", "default")]).await.status == 303);
        let rail = ada.get(&format!("/rooms/{other}")).await.body;
        assert_eq!(badge(&rail, &quiet).as_deref(), Some("2"));
        assert!(rail.contains(strong));
    }
}
