//! Editing and deleting messages: the pages without JavaScript, who may change what, the
//! refusals, and the live side: each change takes the room's next seq, reaches open sockets in
//! place, and a client that was away resumes into exactly the state a fresh page shows.

use std::{collections::BTreeMap, time::Duration};

use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::both;
use crate::common::{Browser, Socket, TestApp, hostile_inputs};

/// The `{seq}` message's edit and delete addresses in room `code`.
fn edit_path(code: &str, seq: i64) -> String {
    format!("/rooms/{code}/messages/{seq}/edit")
}

fn delete_path(code: &str, seq: i64) -> String {
    format!("/rooms/{code}/messages/{seq}/delete")
}

/// Edits message `seq` without JavaScript (the edit page's form).
async fn edit(who: &Browser, code: &str, seq: i64, body: &str) -> crate::common::Answer {
    let path = edit_path(code, seq);
    who.post_form(&format!("/rooms/{code}"), &path, &[("body", body)])
        .await
}

/// Deletes message `seq` without JavaScript (the confirmation page's form).
async fn delete(who: &Browser, code: &str, seq: i64) -> crate::common::Answer {
    who.post_form(&format!("/rooms/{code}"), &delete_path(code, seq), &[])
        .await
}

/// What a page shows of a conversation, as htmx builds it: each message's content by seq,
/// and the newest room event it shows (where its socket resumes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Shown {
    messages: BTreeMap<i64, String>,
    cursor: i64,
}

/// The content of each `<article …>…</article>` in `html` with its opening tag.
fn articles(html: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<article") {
        let open_end = start + rest[start..].find('>').expect("a whole tag");
        let close = open_end
            + rest[open_end..]
                .find("</article>")
                .expect("a closed article");
        found.push((&rest[start..=open_end], &rest[open_end + 1..close]));
        rest = &rest[close..];
    }
    found
}

fn attr(tag: &str, name: &str) -> Option<i64> {
    crate::common::extract_attr(tag, &format!("{name}=\"")).and_then(|v| v.parse().ok())
}

impl Shown {
    /// The room page as served: its messages and its cursor.
    fn page(body: &str) -> Self {
        let start = body.find("id=\"messages\"").expect("the message list");
        let end = start
            + body[start..]
                .find("id=\"room-cursor\"")
                .expect("the cursor");
        let mut shown = Shown::default();
        for (tag, content) in articles(&body[start..end]) {
            let seq = attr(tag, "data-seq").expect("a message's seq");
            shown.messages.insert(seq, content.to_string());
        }
        let cursor = &body[end - 20..end + 60];
        shown.cursor = attr(cursor, "value").expect("the cursor's value");
        shown
    }

    /// Applies a live frame as htmx would: appended messages, changed ones in place (where
    /// shown; elsewhere into the hidden sink), the cursor.
    fn apply(&mut self, frame: &str) {
        for (tag, content) in articles(frame) {
            match attr(tag, "data-seq") {
                Some(seq) => {
                    assert!(
                        self.messages.insert(seq, content.to_string()).is_none(),
                        "message {seq} appended twice"
                    );
                }
                None => {
                    let seq = crate::common::extract_attr(tag, "id=\"msg-")
                        .and_then(|s| s.parse().ok())
                        .expect("a change names its message");
                    assert!(tag.contains(",#edit-sink\""), "{tag}");
                    if let Some(shown) = self.messages.get_mut(&seq) {
                        *shown = content.to_string();
                    }
                }
            }
        }
        // The last one wins, as htmx swaps them in order (a frame may carry several changes).
        if let Some(i) = frame.rfind("id=\"room-cursor\"") {
            let cursor = attr(&frame[i..], "value").expect("the cursor's value");
            assert!(
                cursor > self.cursor,
                "the cursor moves forward: {cursor} after {}",
                self.cursor
            );
            self.cursor = cursor;
        }
    }

    /// Where a (re)connecting page resumes: the newest event it shows (`js/live.js`).
    fn resume_from(&self) -> i64 {
        let newest = self.messages.keys().next_back().copied().unwrap_or(0);
        newest.max(self.cursor)
    }
}

/// Reads `socket`'s frames into `shown` until it shows every event up to `upto`.
async fn follow(socket: &mut Socket, shown: &mut Shown, upto: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while shown.resume_from() < upto {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = match socket.next_event(left).await {
            crate::common::Next::Text(frame) => frame,
            other => panic!(
                "the socket stopped ({other:?}) at {} before {upto}: {:?}",
                shown.resume_from(),
                shown.messages.keys().collect::<Vec<_>>()
            ),
        };
        if frame.contains("id=\"messages\"") || frame.contains("room-cursor") {
            shown.apply(&frame);
        }
    }
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

both! {
    async fn the_author_edits_and_deletes_without_javascript_and_the_text_leaves_the_database(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Edits").await;
        let seq = ada.say(&code, "teh typo").await;
        let room = room_id(&app, &code).await;

        // The room shows "Edit" and "Delete" links on every message (me.css shows them on
        // one's own); the edit page holds the text.
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains(&format!("href=\"{}\"", edit_path(&code, seq))));
        assert!(page.body.contains(&format!("href=\"{}\"", delete_path(&code, seq))));
        let form = ada.get(&edit_path(&code, seq)).await;
        assert_eq!(form.status, 200, "{}", form.body);
        assert!(form.body.contains(">teh typo</textarea>"), "{}", form.body);

        // Saving goes back to the message, which now says it was edited; the edit took the
        // room's next seq.
        let saved = edit(&ada, &code, seq, "the typo, fixed").await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        assert_eq!(saved.location(), format!("/rooms/{code}/messages/{seq}#msg-{seq}"));
        assert_eq!(last_seq(&app, room).await, seq + 1);
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains("the typo, fixed") && !page.body.contains("teh typo"));
        assert!(page.body.contains("class=\"edited\""), "{}", page.body);
        assert!(page.body.contains(&format!("ws?after={}", seq + 1)), "the page resumes after the edit");
        let json = app.state.store.message(room, seq).await.unwrap().unwrap();
        assert!(json.edited_at.is_some());

        // The same text again changes nothing.
        assert_eq!(edit(&ada, &code, seq, "the typo, fixed").await.status, 303);
        assert_eq!(last_seq(&app, room).await, seq + 1);

        // Deleting: a confirmation first, then the text is gone from the database and the
        // place says so.
        let confirm = ada.get(&delete_path(&code, seq)).await;
        assert_eq!(confirm.status, 200);
        assert!(confirm.body.contains("cannot be undone") && confirm.body.contains("Delete message"));
        let deleted = delete(&ada, &code, seq).await;
        assert_eq!(deleted.status, 303, "{}", deleted.body);
        assert_eq!(deleted.location(), format!("/rooms/{code}/messages/{seq}#msg-{seq}"));
        let stored = app.state.store.message(room, seq).await.unwrap().unwrap();
        assert_eq!(stored.body, "");
        assert!(stored.deleted_at.is_some());
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains("Message deleted") && !page.body.contains("the typo, fixed"));
        assert!(!page.body.contains(&format!("href=\"{}\"", edit_path(&code, seq))), "nothing left to edit");
        // Its link still leads to it, and shows the placeholder.
        let link = ada.get(&format!("/rooms/{code}/messages/{seq}")).await;
        assert_eq!(link.status, 303);

        // A deleted message cannot be edited (409, the text kept); deleting again is done.
        let late = edit(&ada, &code, seq, "back from the dead").await;
        assert_eq!(late.status, 409, "{}", late.body);
        assert!(late.body.contains("back from the dead") && late.body.contains("was deleted"));
        assert_eq!(ada.get(&edit_path(&code, seq)).await.status, 409);
        assert_eq!(delete(&ada, &code, seq).await.status, 303);
        assert_eq!(ada.get(&delete_path(&code, seq)).await.status, 303);
        assert_eq!(last_seq(&app, room).await, seq + 2);
    }

    async fn another_persons_message_is_not_found_unless_the_room_is_yours_to_delete_in(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Mine").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let eve = app.signed_in("eve@example.org", "eve").await;
        let adas = ada.say(&code, "ada's words").await;
        let bobs = bob.say(&code, "bob's words").await;

        // Bob (a member) cannot edit or delete Ada's message: 404, as for no message at all.
        for path in [edit_path(&code, adas), delete_path(&code, adas), edit_path(&code, 999), edit_path(&code, 0)] {
            assert_eq!(bob.get(&path).await.status, 404, "{path}");
        }
        assert_eq!(edit(&bob, &code, adas, "bob was here").await.status, 404);
        assert_eq!(delete(&bob, &code, adas).await.status, 404);
        // Nor can Ada edit Bob's: but she created the room, so she may delete it.
        assert_eq!(ada.get(&edit_path(&code, bobs)).await.status, 404);
        assert_eq!(edit(&ada, &code, bobs, "ada was here").await.status, 404);
        let confirm = ada.get(&delete_path(&code, bobs)).await;
        assert_eq!(confirm.status, 200);
        assert!(confirm.body.contains("You created this room"));
        assert_eq!(delete(&ada, &code, bobs).await.status, 303);
        // Eve is no member: 404 for everything, her forms too (with her own valid token).
        for path in [edit_path(&code, adas), delete_path(&code, adas)] {
            assert_eq!(eve.get(&path).await.status, 404, "{path}");
        }
        let forged = eve.post_form("/home", &edit_path(&code, adas), &[("body", "eve")]).await;
        assert_eq!(forged.status, 404);
        assert_eq!(eve.post_form("/home", &delete_path(&code, adas), &[]).await.status, 404);
        let room = room_id(&app, &code).await;
        let still = app.state.store.message(room, adas).await.unwrap().unwrap();
        assert_eq!(still.body, "ada's words");
        assert!(still.edited_at.is_none() && still.deleted_at.is_none());
        // A page that is the creator's marks it, so its "Delete" shows on every message.
        assert!(ada.get(&format!("/rooms/{code}")).await.body.contains("class=\"room can-moderate\""));
        assert!(!bob.get(&format!("/rooms/{code}")).await.body.contains("can-moderate"));
    }

    #[settings(NATTER_LIMIT_POSTS = "3/1h")]
    async fn a_refused_edit_keeps_the_text_and_says_why(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Refusals").await;
        let seq = ada.say(&code, "first").await;
        let room = room_id(&app, &code).await;

        // Empty, too long: 422 with the text and the reason; nothing changed.
        let empty = edit(&ada, &code, seq, "  \n ").await;
        assert_eq!(empty.status, 422);
        assert!(empty.body.contains("id=\"edit-error\""), "{}", empty.body);
        let long = "x".repeat(4001);
        let too_long = edit(&ada, &code, seq, &long).await;
        assert_eq!(too_long.status, 422);
        assert!(too_long.body.contains(&long));
        // No CSRF token, or another site's form: refused.
        let forged = ada.post(&edit_path(&code, seq), &[("body", "forged")]).await;
        assert_eq!(forged.status, 403);
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let cross = ada
            .post_with(&edit_path(&code, seq), &[("body", "cross"), ("csrf", &csrf)], &[("origin", "https://evil.example")])
            .await;
        assert_eq!(cross.status, 403);
        let cross = ada
            .post_with(&delete_path(&code, seq), &[("csrf", &csrf)], &[("origin", "https://evil.example")])
            .await;
        assert_eq!(cross.status, 403);
        assert_eq!(app.state.store.message(room, seq).await.unwrap().unwrap().body, "first");

        // Edits spend the post budget: a post and two edits, then 429 with the text kept.
        assert_eq!(edit(&ada, &code, seq, "second").await.status, 303);
        assert_eq!(edit(&ada, &code, seq, "third").await.status, 303);
        let over = edit(&ada, &code, seq, "fourth").await;
        assert_eq!(over.status, 429, "{}", over.body);
        assert!(over.header("retry-after").is_some());
        assert!(over.body.contains(">fourth</textarea>"));
        assert_eq!(app.state.store.message(room, seq).await.unwrap().unwrap().body, "third");
    }

    #[settings(NATTER_LIMIT_POSTS = "10000/1s")]
    async fn hostile_edits_are_shown_as_text(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Hostile").await;
        let seq = ada.say(&code, "plain").await;
        let mut socket = ada.socket(&code, None).await.expect("socket");
        for input in hostile_inputs() {
            let answer = edit(&ada, &code, seq, &input).await;
            assert!(matches!(answer.status, 303 | 422), "{input:?}: {}", answer.status);
        }
        let page = ada.get(&format!("/rooms/{code}/messages/{seq}/edit")).await;
        let live = {
            let mut frames = String::new();
            while let Some(frame) = socket.next_text(Duration::from_millis(500)).await {
                frames.push_str(&frame);
            }
            frames
        };
        assert!(live.contains("#edit-sink"), "the edits arrived live");
        for html in [&page.body, &ada.get(&format!("/rooms/{code}")).await.body, &live] {
            for needle in ["<script>alert", "<img src=x", "<svg onload", "<div hx-swap-oob=\"true\" id=\"messages\""] {
                assert!(!html.contains(needle), "{needle} rendered as markup");
            }
        }
    }

    async fn changes_reach_open_pages_in_place_with_the_cursor(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Live").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let seq = ada.say(&code, "before").await;
        let page = bob.get(&format!("/rooms/{code}")).await;
        let mut shown = Shown::page(&page.body);
        let mut socket = bob.socket(&code, Some(shown.resume_from())).await.expect("socket");

        assert_eq!(edit(&ada, &code, seq, "after").await.status, 303);
        follow(&mut socket, &mut shown, seq + 1).await;
        assert!(shown.messages[&seq].contains("after") && shown.messages[&seq].contains("(edited"));
        assert_eq!(shown.cursor, seq + 1);
        assert_eq!(delete(&ada, &code, seq).await.status, 303);
        follow(&mut socket, &mut shown, seq + 2).await;
        assert!(shown.messages[&seq].contains("Message deleted"));
        assert_eq!(shown, Shown::page(&bob.get(&format!("/rooms/{code}")).await.body));
        // A message posted after a change appends as usual and is the cursor again.
        let next = ada.say(&code, "next").await;
        assert_eq!(next, seq + 3);
        follow(&mut socket, &mut shown, next).await;
        assert!(shown.messages.contains_key(&next));
    }

    async fn a_page_away_across_a_post_and_its_edit_resumes_after_the_edit(app: TestApp) {
        // The replay reads the post as it is now (edited); the edit must still move the
        // page's cursor, or the page resumes before it and a fresh page's cursor differs.
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Away").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        ada.say(&code, "before").await;
        let mut shown = Shown::page(&bob.get(&format!("/rooms/{code}")).await.body);
        let seq = ada.say(&code, "teh typo").await;
        assert_eq!(edit(&ada, &code, seq, "the typo").await.status, 303);
        let mut socket = bob.socket(&code, Some(shown.resume_from())).await.expect("socket");
        follow(&mut socket, &mut shown, seq + 1).await;
        assert!(shown.messages[&seq].contains("the typo"), "{}", shown.messages[&seq]);
        assert_eq!(shown, Shown::page(&bob.get(&format!("/rooms/{code}")).await.body));
    }

    #[settings(NATTER_LIMIT_POSTS = "10000/1s")]
    async fn a_client_away_during_posts_edits_and_deletes_resumes_into_what_a_fresh_page_shows(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Churn").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let room = room_id(&app, &code).await;
        let seed: u64 = rand::random();
        eprintln!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);

        let mut shown = Shown::page(&bob.get(&format!("/rooms/{code}")).await.body);
        let mut socket = Some(bob.socket(&code, Some(shown.resume_from())).await.expect("socket"));
        // (author is Ada, seq) of the messages posted so far; Ada created the room, so she may
        // delete Bob's too.
        let mut posted: Vec<(bool, i64)> = Vec::new();
        let mut posts = 0;
        for step in 0..90 {
            let roll = rng.random_range(0..100);
            if roll < 40 && posts < 45 || posted.is_empty() {
                let by_ada = rng.random_bool(0.5);
                let who = if by_ada { &ada } else { &bob };
                posted.push((by_ada, who.say(&code, &format!("message {step}")).await));
                posts += 1;
            } else if roll < 70 {
                let (by_ada, seq) = posted[rng.random_range(0..posted.len())];
                let who = if by_ada { &ada } else { &bob };
                let answer = edit(who, &code, seq, &format!("edit {step} of {seq}")).await;
                assert!(matches!(answer.status, 303 | 409), "{}", answer.status);
            } else if roll < 85 {
                let (by_ada, seq) = posted[rng.random_range(0..posted.len())];
                let who = if by_ada || rng.random_bool(0.5) { &ada } else { &bob };
                assert_eq!(delete(who, &code, seq).await.status, 303);
            } else {
                // Away for a while, or back: the socket resumes after the newest event shown.
                match socket.take() {
                    Some(mut away) => {
                        // Take in what had arrived before leaving, as a page would have.
                        while let Some(frame) = away.next_text(Duration::from_millis(200)).await {
                            if frame.contains("room-cursor") || frame.contains("id=\"messages\"") {
                                shown.apply(&frame);
                            }
                        }
                        away.close().await;
                    }
                    None => {
                        socket = Some(bob.socket(&code, Some(shown.resume_from())).await.expect("socket"));
                    }
                }
            }
        }
        let mut socket = match socket {
            Some(socket) => socket,
            None => bob.socket(&code, Some(shown.resume_from())).await.expect("socket"),
        };
        follow(&mut socket, &mut shown, last_seq(&app, room).await).await;
        let fresh = Shown::page(&bob.get(&format!("/rooms/{code}")).await.body);
        assert_eq!(fresh.messages.len(), posts, "every message is on the newest page");
        assert_eq!(shown.messages, fresh.messages, "seed {seed}");
        assert_eq!(shown.resume_from(), fresh.resume_from(), "seed {seed}");
    }

    async fn an_edit_changes_whom_the_message_mentions(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Mentions").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let room = room_id(&app, &code).await;
        let seq = ada.say(&code, "hello all").await;
        let mentions = |app: &TestApp| {
            let store = app.state.store.clone();
            async move { store.message(room, seq).await.unwrap().unwrap().mentions.0 }
        };
        assert!(mentions(&app).await.is_empty());
        let mut socket = bob.socket(&code, Some(seq)).await.expect("socket");
        assert_eq!(edit(&ada, &code, seq, "hello @Bob, look").await.status, 303);
        let named = mentions(&app).await;
        assert_eq!(named.len(), 1, "{named:?}");
        let bob_id = named[0].0;
        let mark = format!("class=\"mention\" data-user=\"{bob_id}\"");
        assert!(socket.wait_for(&mark, Duration::from_secs(10)).await, "the change renders the mention live");
        assert!(ada.get(&format!("/rooms/{code}")).await.body.contains(&mark));
        assert_eq!(edit(&ada, &code, seq, "hello all, again").await.status, 303);
        assert!(mentions(&app).await.is_empty(), "the mention went with the text");
        assert_eq!(edit(&ada, &code, seq, "@bob once more").await.status, 303);
        assert_eq!(delete(&ada, &code, seq).await.status, 303);
        assert!(mentions(&app).await.is_empty(), "a deleted message mentions nobody");
        assert!(!ada.get(&format!("/rooms/{code}")).await.body.contains(&mark));
    }
}
