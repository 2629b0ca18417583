//! Direct messages (issue 17): a conversation between two people who share a room, opened from
//! `/dm/{username}`, created once however many open it at once, seen by nobody else, closed
//! and reopened by a new message, and otherwise a room (live, unread, mentions, edits).

use std::time::Duration;

use crate::both;
use crate::common::{Browser, TestApp, extract_attr, hostile_inputs};

const WITHIN: Duration = Duration::from_secs(10);

/// Ada and Bob, who share a room, and that room's code.
async fn pair(app: &TestApp) -> (Browser, Browser, String) {
    let ada = app.signed_in("ada@example.org", "ada").await;
    let bob = app.signed_in("bob@example.org", "Bob").await;
    let code = ada.create_room("Book club").await;
    bob.join(&code).await;
    (ada, bob, code)
}

/// Opens the conversation with `name` without JavaScript (the start page's button).
async fn open(who: &Browser, name: &str) -> crate::common::Answer {
    who.post_form("/home", &format!("/dm/{name}"), &[]).await
}

/// The internal code of the conversation `who` sees at `/dm/{name}`.
async fn code_of(who: &Browser, name: &str) -> String {
    let page = who.get(&format!("/dm/{name}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    extract_attr(&page.body, "data-room=\"").expect("a conversation page")
}

/// Posts `body` into the conversation with `name` as its page's form does; returns its seq.
async fn say(who: &Browser, name: &str, body: &str) -> i64 {
    let page = format!("/dm/{name}");
    who.say_on(&page, &code_of(who, name).await, body).await
}

/// The "Direct messages" section of home, if it has one.
fn directs_on_home(home: &str) -> Option<&str> {
    let start = home.find("id=\"directs-title\"")?;
    Some(&home[start..start + home[start..].find("</section>")?])
}

both! {
    async fn opening_creates_the_conversation_once_and_it_reads_as_the_other_persons_name(app: TestApp) {
        let (ada, bob, room) = pair(&app).await;
        // Before it exists: a page with a button that opens it (GET creates nothing).
        let start = ada.get("/dm/Bob").await;
        assert_eq!(start.status, 200, "{}", start.body);
        assert!(start.body.contains("action=\"/dm/Bob\"") && start.body.contains("Start the conversation"), "{}", start.body);
        assert!(!start.body.contains("data-room="));
        // Any spelling of the name finds the one address.
        let spelled = ada.get("/dm/bob").await;
        assert_eq!((spelled.status, spelled.location()), (303, "/dm/Bob".to_string()));

        let opened = open(&ada, "bob").await;
        assert_eq!((opened.status, opened.location()), (303, "/dm/Bob".to_string()), "{}", opened.body);
        let page = ada.get("/dm/Bob").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("<h1><bdi>Bob</bdi></h1>"), "{}", page.body);
        assert!(page.body.contains("<title>Bob · natter</title>"), "{}", page.body);
        let code = code_of(&ada, "Bob").await;
        // Its code is never shown, and there is nothing to invite with; closing, not leaving.
        assert!(!page.body.contains(&format!(">{code}<")) && !page.body.contains("Invitation link"));
        assert!(!page.body.contains("Leave room") && page.body.contains("action=\"/dm/Bob/close\""));
        // Its room address leads to the conversation's own.
        let by_code = ada.get(&format!("/rooms/{code}")).await;
        assert_eq!((by_code.status, by_code.location()), (303, "/dm/Bob".to_string()));

        // Opening again, from either side, finds the same conversation.
        assert_eq!(open(&ada, "Bob").await.status, 303);
        assert_eq!(open(&bob, "ada").await.status, 303);
        assert_eq!(code_of(&ada, "Bob").await, code);
        assert_eq!(code_of(&bob, "ada").await, code);
        // The room list with codes does not list it; home lists it under the name.
        let home = ada.get("/home").await.body;
        assert!(!home.contains(&code), "{home}");
        assert!(directs_on_home(&home).is_some_and(|d| d.contains("href=\"/dm/Bob\"")), "{home}");
        assert!(home.contains(&room));
    }

    async fn two_people_opening_it_at_once_get_one_conversation(app: TestApp) {
        let (ada, bob, _room) = pair(&app).await;
        let (a_csrf, b_csrf) = (ada.csrf_from("/home").await, bob.csrf_from("/home").await);
        let mut opens = Vec::new();
        for i in 0..8 {
            let (who, name, csrf) = if i % 2 == 0 { (&ada, "Bob", &a_csrf) } else { (&bob, "ada", &b_csrf) };
            opens.push(async move { who.post(&format!("/dm/{name}"), &[("csrf", csrf)]).await.status });
        }
        let statuses = futures_util::future::join_all(opens).await;
        assert!(statuses.iter().all(|s| *s == 303), "{statuses:?}");
        let code = code_of(&ada, "Bob").await;
        assert_eq!(code_of(&bob, "ada").await, code);
        // Exactly one conversation: one entry on each home.
        for who in [&ada, &bob] {
            let home = who.get("/home").await.body;
            let list = directs_on_home(&home).expect("the list");
            assert_eq!(list.matches("class=\"room-row\"").count(), 1, "{list}");
        }
    }

    #[settings(NATTER_LIMIT_JOIN_FAILS = "1000/1m")]
    async fn strangers_unknown_names_and_oneself_are_refused_without_telling_who_exists(app: TestApp) {
        let (ada, _bob, _room) = pair(&app).await;
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        // Cyd exists but shares no room with Ada: exactly like nobody.
        for name in ["cyd", "nobody", "zz"] {
            assert_eq!(ada.get(&format!("/dm/{name}")).await.status, 404, "{name}");
            assert_eq!(open(&ada, name).await.status, 404, "{name}");
        }
        assert_eq!(open(&cyd, "ada").await.status, 404);
        // Oneself: a sentence, in any spelling.
        for name in ["ada", "ADA"] {
            let me = open(&ada, name).await;
            assert_eq!(me.status, 422, "{}", me.body);
            assert!(me.body.contains("That is you."), "{}", me.body);
            assert_eq!(ada.get(&format!("/dm/{name}")).await.status, 422);
        }
        // Without the CSRF token, or from another site: nothing is opened.
        assert_eq!(ada.post("/dm/Bob", &[]).await.status, 403);
        let csrf = ada.csrf_from("/home").await;
        let foreign = ada.post_with("/dm/Bob", &[("csrf", &csrf)], &[("origin", "https://evil.example")]).await;
        assert_eq!(foreign.status, 403);
        assert!(ada.get("/dm/Bob").await.body.contains("Start the conversation"));
        // Signed out: sign in first.
        assert_eq!(app.browser().get("/dm/Bob").await.status, 303);
        // Hostile names are names nobody has.
        for input in hostile_inputs() {
            let path: String = url::form_urlencoded::byte_serialize(input.as_bytes()).collect();
            let path = path.replace('+', "%20");
            for answer in [ada.get(&format!("/dm/{path}")).await, ada.post(&format!("/dm/{path}"), &[("csrf", &csrf)]).await] {
                assert!(matches!(answer.status, 404 | 405), "{input:?}: {} {}", answer.status, answer.body);
            }
        }
    }

    async fn a_third_person_can_neither_see_nor_join_the_conversation(app: TestApp) {
        let (ada, bob, room) = pair(&app).await;
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        cyd.join(&room).await;
        assert_eq!(open(&ada, "Bob").await.status, 303);
        let code = code_of(&ada, "Bob").await;
        say(&ada, "Bob", "just between us").await;
        assert_eq!(cyd.get(&format!("/rooms/{code}")).await.status, 404);
        assert_eq!(cyd.get(&format!("/rooms/{code}/messages?before=9")).await.status, 404);
        assert_eq!(cyd.get(&format!("/join/{code}")).await.status, 404);
        let joined = cyd.post_form("/home", "/rooms/join", &[("code", &code)]).await;
        assert_eq!(joined.status, 422, "{}", joined.body);
        assert_eq!(cyd.socket(&code, None).await.err().map(|r| r.0), Some(404));
        // Cyd's own conversation with Ada is another one.
        assert_eq!(open(&cyd, "ada").await.status, 303);
        assert_ne!(code_of(&cyd, "ada").await, code);
        assert!(!cyd.get("/dm/ada").await.body.contains("just between us"));
        assert!(bob.get("/dm/ada").await.body.contains("just between us"));
    }

    async fn messages_arrive_live_count_as_unread_and_mentions_and_can_be_edited(app: TestApp) {
        let (ada, bob, _room) = pair(&app).await;
        assert_eq!(open(&ada, "Bob").await.status, 303);
        let code = code_of(&ada, "Bob").await;
        let mut bobs = bob.socket(&code, None).await.expect("Bob's socket");
        let seq = say(&ada, "Bob", "hello @Bob").await;
        assert!(bobs.wait_for(&format!("id=\"msg-{seq}\""), WITHIN).await, "live to Bob");
        // Unread and a mention on Bob's home, where it appeared with its first message.
        let home = bob.get("/home").await.body;
        let list = directs_on_home(&home).expect("Bob's list");
        assert!(list.contains("href=\"/dm/ada#unread\"") && list.contains(", 1 mention you"), "{list}");
        assert!(home.contains("<title>(1) Rooms · natter</title>"), "{home}");
        // The rail of Bob's room page lists it under Ada's name with its count.
        let rail = bob.get(&format!("/rooms/{}", _room)).await.body;
        let direct = &rail[rail.find("Direct messages").expect("the rail's section")..];
        assert!(direct.contains("href=\"/dm/ada#unread\""), "{direct}");
        // The rail alone, for js/unread.js when activity names a room it does not list.
        let fragment = bob.get(&format!("/rooms/{}/rail", _room)).await;
        assert_eq!(fragment.status, 200);
        assert!(fragment.body.starts_with("<nav class=\"rooms-rail\"") && fragment.body.contains("href=\"/dm/ada#unread\""), "{}", fragment.body);
        let stranger = app.signed_in("cyd@example.org", "cyd").await;
        assert_eq!(stranger.get(&format!("/rooms/{}/rail", _room)).await.status, 404);
        // Edits and deletes work as in a room, live.
        let edited = ada.post_form("/dm/Bob", &format!("/rooms/{code}/messages/{seq}/edit"), &[("body", "hello again")]).await;
        assert_eq!(edited.status, 303, "{}", edited.body);
        assert!(bobs.wait_for("hello again", WITHIN).await);
        let deleted = ada.post_form("/dm/Bob", &format!("/rooms/{code}/messages/{seq}/delete"), &[]).await;
        assert_eq!(deleted.status, 303, "{}", deleted.body);
        assert!(bobs.wait_for("Message deleted", WITHIN).await);
        // Reading it clears the count.
        assert!(bob.get("/dm/ada").await.body.contains("Message deleted"));
        let home = bob.get("/home").await.body;
        assert!(directs_on_home(&home).is_some_and(|d| d.contains("href=\"/dm/ada\"")), "{home}");
    }

    async fn a_closed_conversation_leaves_the_list_until_a_new_message_and_one_never_written_in_stays_out(app: TestApp) {
        let (ada, bob, room) = pair(&app).await;
        assert_eq!(open(&ada, "Bob").await.status, 303);
        // Never written in: only Ada, who opened it, sees it.
        assert!(directs_on_home(&ada.get("/home").await.body).is_some());
        assert!(directs_on_home(&bob.get("/home").await.body).is_none());
        say(&ada, "Bob", "first").await;
        assert!(directs_on_home(&bob.get("/home").await.body).is_some());

        // Bob closes it: gone from his home and his rail, still there for Ada.
        let closed = bob.post_form("/dm/ada", "/dm/ada/close", &[]).await;
        assert_eq!((closed.status, closed.location()), (303, "/home".to_string()));
        assert!(directs_on_home(&bob.get("/home").await.body).is_none());
        assert!(!bob.get(&format!("/rooms/{room}")).await.body.contains("Direct messages"));
        assert!(directs_on_home(&ada.get("/home").await.body).is_some());
        // Closing is not leaving: the conversation is still his to read.
        assert!(bob.get("/dm/ada").await.body.contains("first"));
        // A new message brings it back.
        say(&ada, "Bob", "are you there?").await;
        let home = bob.get("/home").await.body;
        assert!(directs_on_home(&home).is_some_and(|d| d.contains("href=\"/dm/ada#unread\"")), "{home}");

        // "Leave" on its room address closes it too; opening shows it again.
        let code = code_of(&ada, "Bob").await;
        let left = ada.post_form("/dm/Bob", &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!(left.status, 303);
        assert!(directs_on_home(&ada.get("/home").await.body).is_none());
        assert_eq!(code_of(&ada, "Bob").await, code, "still a member");
        assert_eq!(open(&ada, "Bob").await.status, 303);
        assert!(directs_on_home(&ada.get("/home").await.body).is_some());
        // Closing what does not exist is not found.
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        cyd.join(&room).await;
        assert_eq!(cyd.post_form("/home", "/dm/ada/close", &[]).await.status, 404);
    }

    async fn names_offer_message_privately_except_ones_own(app: TestApp) {
        let (ada, bob, room) = pair(&app).await;
        bob.say(&room, "hi all").await;
        let page = ada.get(&format!("/rooms/{room}")).await.body;
        // Beside Bob as a member and as an author; a link, so it works without JavaScript.
        assert!(page.matches("class=\"dm-link\" href=\"/dm/Bob\"").count() >= 2, "{page}");
        // Beside Ada's own name too (rendered once for everyone), hidden by her /me.css.
        let me = ada.get(&format!("/me.css?u={}", 1)).await.body;
        assert!(me.contains(".dm-link[data-user="), "{me}");
        // The link leads to the start page, whose button opens it.
        let start = ada.get("/dm/Bob").await;
        assert!(start.body.contains("Start the conversation"));
    }
}

both! {
    async fn a_conversation_has_no_owner_and_search_names_the_other_person(app: TestApp) {
        let (ada, bob, _room) = pair(&app).await;
        // Ada opened it, so she is its rooms row's creator; that makes her no owner.
        assert_eq!(open(&ada, "Bob").await.status, 303);
        let code = code_of(&ada, "Bob").await;
        let seq = say(&bob, "ada", "the marmalade recipe is in the blue folder").await;

        // No settings page or setting change, for either of them.
        for (who, page) in [(&ada, "/dm/Bob"), (&bob, "/dm/ada")] {
            assert_eq!(who.get(&format!("/rooms/{code}/settings")).await.status, 404);
            let renamed = who
                .post_form(page, &format!("/rooms/{code}/settings"), &[("name", "Ours"), ("topic", "")])
                .await;
            assert_eq!(renamed.status, 404, "{}", renamed.body);
            let rotated = who.post_form(page, &format!("/rooms/{code}/settings/rotate"), &[]).await;
            assert_eq!(rotated.status, 404);
        }
        assert!(!ada.get("/dm/Bob").await.body.contains("/settings"));

        // Ada cannot delete Bob's message (she could if she owned a room he wrote in).
        let page = ada.get(&format!("/rooms/{code}/messages/{seq}/delete")).await;
        assert_ne!(page.status, 200, "{}", page.body);
        let deleted = ada.post_form("/dm/Bob", &format!("/rooms/{code}/messages/{seq}/delete"), &[]).await;
        assert_ne!(deleted.status, 303, "{}", deleted.body);
        assert!(bob.get("/dm/ada").await.body.contains("marmalade recipe"));

        // Search finds it and names the conversation by the other person, never by its code.
        let found = ada.get("/search?q=marmalade").await;
        assert_eq!(found.status, 200);
        assert!(found.body.contains("class=\"search-hit\""), "{}", found.body);
        assert!(found.body.contains("<bdi>Bob</bdi>"), "{}", found.body);
        let hits = bob.get("/search?q=marmalade").await.body;
        assert!(hits.contains("<bdi>ada</bdi>"), "{hits}");
        assert!(!hits.contains(&format!(">{code}<")), "{hits}");
    }
}
