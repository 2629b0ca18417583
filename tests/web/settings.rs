//! Room settings (issue 17): the owner renames the room, sets its topic, rotates its code,
//! removes members and hands the room over; everyone sees a system line that takes the room's
//! next seq, open pages follow live, and the refusals (403 for members, 404 for the rest, CSRF)
//! hold. Each on both backends, without JavaScript (plain forms) and over real sockets.

use std::time::Duration;

use crate::both;
use crate::common::{Browser, Closed, SocketRefused, TestApp, assert_exactly, hostile_inputs};

const WAIT: Duration = Duration::from_secs(15);

fn settings_path(code: &str) -> String {
    format!("/rooms/{code}/settings")
}

/// Saves name and topic through the settings page's form.
async fn save(who: &Browser, code: &str, name: &str, topic: &str) -> crate::common::Answer {
    who.post_form(
        &format!("/rooms/{code}"),
        &settings_path(code),
        &[("name", name), ("topic", topic)],
    )
    .await
}

/// Rotates the room's code; returns the answer.
async fn rotate(who: &Browser, code: &str) -> crate::common::Answer {
    who.post_form(
        &format!("/rooms/{code}"),
        &format!("/rooms/{code}/settings/rotate"),
        &[],
    )
    .await
}

async fn remove(who: &Browser, code: &str, username: &str) -> crate::common::Answer {
    who.post_form(
        &format!("/rooms/{code}"),
        &format!("/rooms/{code}/members/{username}/remove"),
        &[],
    )
    .await
}

async fn hand_over(who: &Browser, code: &str, username: &str) -> crate::common::Answer {
    who.post_form(
        &format!("/rooms/{code}"),
        &format!("/rooms/{code}/owner"),
        &[("username", username)],
    )
    .await
}

async fn room_id(app: &TestApp, code: &str) -> i64 {
    let code = natter::domain::RoomCode::parse(code).unwrap();
    app.state
        .store
        .room_by_code(code)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn last_seq(app: &TestApp, room: i64) -> i64 {
    app.state.store.last_seq(room).await.unwrap().unwrap()
}

/// A room of `ada` (its owner) with the others as members, in order; returns them and its code.
async fn room_with(app: &TestApp, people: &[&str]) -> (Vec<Browser>, String) {
    let mut browsers = Vec::new();
    for name in people {
        browsers.push(app.signed_in(&format!("{name}@example.org"), name).await);
    }
    let code = app.create_room(&browsers[0], "Settings").await;
    for b in &browsers[1..] {
        b.join(&code).await;
    }
    (browsers, code)
}

both! {
    async fn the_owner_renames_and_sets_a_topic_and_everyone_sees_it_live(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let (ada, bob) = (&people[0], &people[1]);
        let eve = app.signed_in("eve@example.org", "eve").await;
        let room = room_id(&app, &code).await;
        let mut live = bob.socket(&code, Some(0)).await.expect("bob's socket");
        assert!(live.wait_for("id=\"members\"", WAIT).await);

        // Only the owner sees the settings link and page; a member gets 403 with a sentence,
        // anyone else 404.
        assert!(ada.get(&format!("/rooms/{code}")).await.body.contains(&format!("href=\"{}\"", settings_path(&code))));
        assert!(!bob.get(&format!("/rooms/{code}")).await.body.contains(&settings_path(&code)));
        let page = ada.get(&settings_path(&code)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("name=\"topic\"") && page.body.contains("Change the code"));
        let refused = bob.get(&settings_path(&code)).await;
        assert_eq!(refused.status, 403);
        assert!(refused.body.contains("Only the room&#39;s owner") || refused.body.contains("Only the room's owner"), "{}", refused.body);
        assert_eq!(eve.get(&settings_path(&code)).await.status, 404);

        // Saving: 303 back to the room, two system lines (name, topic), each its own seq.
        let saved = save(ada, &code, "Lunch club", "Fridays at noon").await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        assert_eq!(saved.location(), format!("/rooms/{code}"));
        assert_eq!(last_seq(&app, room).await, 2);
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains("<h1><bdi>Lunch club</bdi></h1>"), "{page}");
        assert!(page.contains(">Fridays at noon</p>"));
        assert!(page.contains("renamed the room to “Lunch club”") && page.contains("set the topic to “Fridays at noon”"));
        assert!(page.contains("class=\"system-line\""));
        assert!(page.contains("ws?after=2"), "the page resumes after the system lines");

        // Bob's open page got both lines and its heading swapped, in the same frames.
        assert_exactly(&live.seqs_until(2, WAIT).await, 1, 2);
        let frames = live.frames.join("");
        assert!(frames.contains("id=\"room-heading\"") && frames.contains("hx-swap-oob=\"true\""), "{frames}");
        assert!(frames.contains("Fridays at noon"));

        // The same values again change nothing; system lines are not unread messages.
        assert_eq!(save(ada, &code, "Lunch club", "Fridays at noon").await.status, 303);
        assert_eq!(last_seq(&app, room).await, 2);
        let home = bob.get("/home").await.body;
        assert!(home.contains("data-count=\"0\""), "{home}");

        // A member's and a stranger's forms are refused (403, 404); a form without its token,
        // or from another site, is refused (403); nothing changed.
        assert_eq!(save(bob, &code, "Bob's", "").await.status, 403);
        assert_eq!(eve.post_form("/home", &settings_path(&code), &[("name", "Eve's"), ("topic", "")]).await.status, 404);
        assert_eq!(ada.post(&settings_path(&code), &[("name", "forged"), ("topic", "")]).await.status, 403);
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let cross = ada
            .post_with(&settings_path(&code), &[("name", "cross"), ("topic", ""), ("csrf", &csrf)], &[("origin", "https://evil.example")])
            .await;
        assert_eq!(cross.status, 403);
        assert_eq!(last_seq(&app, room).await, 2);

        // Invalid input: 422, the form again with what was typed and why.
        let long_topic = "t".repeat(201);
        let bad = save(ada, &code, "Fine", &long_topic).await;
        assert_eq!(bad.status, 422, "{}", bad.body);
        assert!(bad.body.contains(&long_topic) && bad.body.contains("at most 200 characters"));
        let bad = save(ada, &code, "x\u{202E}y", "").await;
        assert_eq!(bad.status, 422);
        assert!(bad.body.contains("id=\"settings-error\""));
        assert_eq!(last_seq(&app, room).await, 2);

        // Clearing both: the room is shown by its code again.
        assert_eq!(save(ada, &code, "", "").await.status, 303);
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains(&format!("<h1><bdi>{code}</bdi></h1>")), "{page}");
        assert!(page.contains("removed the room&#39;s name") || page.contains("removed the room's name"));
        assert!(page.contains("cleared the topic"));
    }

    async fn a_socket_resuming_across_system_lines_ends_as_a_fresh_page(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let (ada, bob) = (&people[0], &people[1]);
        let first = ada.say(&code, "before").await;
        assert_eq!(save(ada, &code, "Renamed", "").await.status, 303);
        let after = bob.say(&code, "between").await;
        assert_eq!(save(ada, &code, "Renamed", "A topic").await.status, 303);
        assert_eq!((first, after), (1, 3));

        // A page that showed only the first message resumes and gets exactly 2..=4, the last
        // heading it swaps in being the newest.
        let mut socket = bob.socket(&code, Some(1)).await.expect("socket");
        assert_exactly(&socket.seqs_until(3, WAIT).await, 2, 4);
        let frames = socket.frames.join("");
        let last_heading = frames.rfind("id=\"room-heading\"").expect("a heading swap");
        assert!(frames[last_heading..].contains("A topic"), "{frames}");
        // And nothing more: the fresh page's cursor is where the socket is.
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains("ws?after=4"));
        assert!(socket.next_text(Duration::from_millis(300)).await.is_none_or(|f| !f.contains("data-seq")));

        // System lines cannot be edited or deleted, not even by the owner who made them.
        assert_eq!(ada.get(&format!("/rooms/{code}/messages/2/edit")).await.status, 404);
        let deleted = ada.post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/messages/2/delete"), &[]).await;
        assert_eq!(deleted.status, 404);
    }

    async fn rotating_the_code_stops_the_old_one_at_once_and_members_follow(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let (ada, bob) = (&people[0], &people[1]);
        let eve = app.signed_in("eve@example.org", "eve").await;
        let mut live = bob.socket(&code, Some(0)).await.expect("bob's socket");
        assert!(live.wait_for("id=\"members\"", WAIT).await);

        // A member cannot rotate (403), a stranger gets 404.
        assert_eq!(rotate(bob, &code).await.status, 403);
        assert_eq!(eve.post_form("/home", &format!("/rooms/{code}/settings/rotate"), &[]).await.status, 404);

        let rotated = rotate(ada, &code).await;
        assert_eq!(rotated.status, 303, "{}", rotated.body);
        let new = rotated.location().trim_start_matches("/rooms/").trim_end_matches("/settings").to_string();
        assert_ne!(new, code);
        assert_eq!(new.len(), 9, "{new}");

        // The old code opens nothing for anyone else: no join, no invitation, no room.
        let join = eve.post_form("/home", "/rooms/join", &[("code", &code)]).await;
        assert_eq!(join.status, 422, "{}", join.body);
        assert!(join.body.contains("no room with that code"));
        assert_eq!(eve.get(&format!("/join/{code}")).await.status, 404);
        assert_eq!(eve.get(&format!("/rooms/{code}")).await.status, 404);
        // Members' old links lead to the new code (308), forms too; the new code works.
        let moved = bob.get(&format!("/rooms/{code}")).await;
        assert_eq!(moved.status, 308);
        assert_eq!(moved.location(), format!("/rooms/{new}"));
        assert_eq!(bob.get(&format!("/rooms/{code}/messages?before=5")).await.location(), format!("/rooms/{new}/messages?before=5"));
        assert_eq!(bob.get(&format!("/rooms/{new}")).await.status, 200);

        // Bob's open page learned the new code with the system line: its heading says it
        // (where live.js reconnects), and its socket stays open.
        assert!(live.wait_for(&format!("data-code=\"{new}\""), WAIT).await);
        assert!(live.frames.join("").contains("changed the room code"));
        let seq = ada.say(&new, "still here").await;
        assert!(live.wait_for(&format!("data-seq=\"{seq}\""), WAIT).await);
        // A socket to the old code is refused; to the new one it opens.
        assert!(bob.socket(&code, Some(0)).await.is_err());
        assert!(bob.socket(&new, Some(0)).await.is_ok());

        // Eve joins with the new code. A second rotation: the first code is gone for members too.
        eve.join(&new).await;
        let again = rotate(ada, &new).await;
        assert_eq!(again.status, 303);
        let newest = again.location().trim_start_matches("/rooms/").trim_end_matches("/settings").to_string();
        assert_eq!(bob.get(&format!("/rooms/{code}")).await.status, 404);
        assert_eq!(bob.get(&format!("/rooms/{new}")).await.location(), format!("/rooms/{newest}"));
    }

    async fn a_removed_member_is_closed_out_with_4404_removed_and_needs_the_current_code(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob", "carol"]).await;
        let (ada, bob, carol) = (&people[0], &people[1], &people[2]);
        let eve = app.signed_in("eve@example.org", "eve").await;
        let mut bobs = bob.socket(&code, Some(0)).await.expect("bob's socket");
        let mut adas = ada.socket(&code, Some(0)).await.expect("ada's socket");
        assert!(bobs.wait_for("id=\"members\"", WAIT).await);
        assert!(adas.wait_for("3 members", WAIT).await);

        // Members cannot remove anyone (403), strangers get 404, the owner cannot remove
        // herself (422: leaving is how), nor someone who is not a member (422).
        assert_eq!(remove(carol, &code, "bob").await.status, 403);
        assert_eq!(eve.post_form("/home", &format!("/rooms/{code}/members/bob/remove"), &[]).await.status, 404);
        let herself = remove(ada, &code, "ada").await;
        assert_eq!(herself.status, 422);
        assert!(herself.body.contains("leave the room instead"));
        assert_eq!(remove(ada, &code, "eve").await.status, 422);
        assert_eq!(remove(ada, &code, "nobody-at-all").await.status, 422);

        let removed = remove(ada, &code, "BOB").await;
        assert_eq!(removed.status, 303, "{}", removed.body);
        assert_eq!(removed.location(), settings_path(&code));
        assert_eq!(bobs.closed(WAIT).await, Closed::Code(4404));
        assert_eq!(bobs.close_reason.as_deref(), Some("removed"));
        assert!(adas.wait_for("removed bob from the room", WAIT).await);
        assert!(adas.wait_for("2 members", WAIT).await, "bob's entry left the list");

        // For Bob the room is gone: 404, not in his rooms, no socket.
        assert_eq!(bob.get(&format!("/rooms/{code}")).await.status, 404);
        assert!(!bob.get("/home").await.body.contains(&code));
        assert_eq!(bob.socket(&code, Some(0)).await.err(), Some(SocketRefused(404)));
        // Removing him again: he is not a member (422).
        assert_eq!(remove(ada, &code, "bob").await.status, 422);
        // He comes back with the current code.
        bob.join(&code).await;
        assert_eq!(bob.get(&format!("/rooms/{code}")).await.status, 200);
    }

    async fn handing_over_and_the_owner_leaving_pass_the_role(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob", "carol"]).await;
        let (ada, bob, carol) = (&people[0], &people[1], &people[2]);
        let room = room_id(&app, &code).await;

        assert_eq!(hand_over(carol, &code, "bob").await.status, 403);
        assert_eq!(hand_over(ada, &code, "eve").await.status, 422);
        let handed = hand_over(ada, &code, "bob").await;
        assert_eq!(handed.status, 303, "{}", handed.body);
        assert_eq!(ada.get(&settings_path(&code)).await.status, 403);
        assert_eq!(bob.get(&settings_path(&code)).await.status, 200);
        let page = carol.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains("made bob the room&#39;s owner") || page.contains("made bob the room's owner"), "{page}");
        // Handing it to its owner changes nothing.
        assert_eq!(hand_over(bob, &code, "bob").await.status, 303);
        assert_eq!(last_seq(&app, room).await, 1);

        // Bob leaves: the room passes to its longest-standing member, Ada (she created it).
        bob.leave(&code).await;
        assert_eq!(ada.get(&settings_path(&code)).await.status, 200);
        assert_eq!(carol.get(&settings_path(&code)).await.status, 403);
        let page = carol.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains("left the room; ada owns it now"), "{page}");
        assert_eq!(last_seq(&app, room).await, 2);
        // Ada leaves too: Carol owns it. Carol, the last, leaves: nobody is left to tell.
        ada.post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!(carol.get(&settings_path(&code)).await.status, 200);
        carol.post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!(last_seq(&app, room).await, 3);
        assert_eq!(carol.get(&format!("/rooms/{code}")).await.status, 404);
    }

    #[settings(NATTER_LIMIT_POSTS = "10000/1s")]
    async fn hostile_names_and_topics_are_shown_as_text(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let (ada, bob) = (&people[0], &people[1]);
        let mut live = bob.socket(&code, Some(0)).await.expect("socket");
        for input in hostile_inputs() {
            let answer = save(ada, &code, &input, &input).await;
            assert!(matches!(answer.status, 303 | 422), "{input:?}: {}", answer.status);
            // Refused, the form comes back with what was typed, escaped.
            if answer.status == 422 {
                assert!(!answer.body.contains("<script>alert"), "{input:?}");
            }
            let answer = save(ada, &code, "ok", &input).await;
            assert!(matches!(answer.status, 303 | 422), "{input:?}: {}", answer.status);
        }
        let frames = {
            let mut frames = String::new();
            while let Some(frame) = live.next_text(Duration::from_millis(500)).await {
                frames.push_str(&frame);
            }
            frames
        };
        assert!(frames.contains("room-heading"), "the changes arrived live");
        let room = bob.get(&format!("/rooms/{code}")).await.body;
        let settings = ada.get(&settings_path(&code)).await.body;
        for html in [&room, &settings, &frames] {
            for needle in ["<script>alert", "<img src=x", "<svg onload", "<div hx-swap-oob=\"true\" id=\"messages\""] {
                assert!(!html.contains(needle), "{needle} rendered as markup");
            }
        }
    }
}

both! {
    async fn search_finds_what_people_wrote_and_never_a_system_line(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let (ada, bob) = (&people[0], &people[1]);
        assert_eq!(save(ada, &code, "Zeppelin club", "airships and zeppelins").await.status, 303);
        let said = bob.say(&code, "a zeppelin flew over").await;
        let page = ada.get("/search?q=zeppelin").await;
        assert_eq!(page.status, 200);
        // One hit, Bob's message: the system line that names the new name and topic is not one.
        assert_eq!(page.body.matches("class=\"search-hit\"").count(), 1, "{}", page.body);
        assert!(page.body.contains(&format!("/rooms/{code}/messages/{said}#")), "{}", page.body);
        let changed = ada.get("/search?q=renamed").await;
        assert!(!changed.body.contains("class=\"search-hit\""), "{}", changed.body);
    }
}
