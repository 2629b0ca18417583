//! Mentions: `@username` of a member, stored with the post and rendered for everyone with
//! `data-user` (the reader's own accented by `/me.css`), and what people want to hear about
//! (the profile's default and each room's setting), on both databases.

use std::time::Duration;

use natter::domain::{MessageBody, RoomCode, notify::Notify};

use crate::both;
use crate::common::{TestApp, hostile_inputs};

/// The room's id and its members' ids by username.
async fn ids(app: &TestApp, code: &str) -> (i64, Vec<(String, i64)>) {
    let store = &app.state.store;
    let room = store
        .room_by_code(RoomCode::parse(code).unwrap())
        .await
        .unwrap()
        .expect("the room");
    let members = store.members(room.id).await.unwrap();
    (
        room.id,
        members
            .into_iter()
            .map(|m| (m.username, m.user_id))
            .collect(),
    )
}

fn id_of(members: &[(String, i64)], name: &str) -> i64 {
    members.iter().find(|(n, _)| n == name).expect(name).1
}

/// The mention markup for `id` around `text`.
fn mention(id: i64, text: &str) -> String {
    format!("<span class=\"mention\" data-user=\"{id}\">{text}</span>")
}

/// The unread mentions of `user_id` in `room_id`, as the store counts them.
async fn unread_mentions(app: &TestApp, user_id: i64, room_id: i64) -> i64 {
    let counts = app.state.store.mention_counts(user_id).await.unwrap();
    counts
        .iter()
        .find(|c| c.room_id == room_id)
        .map_or(-1, |c| c.mentions)
}

both! {
    async fn a_member_named_in_a_message_is_mentioned_for_everyone_and_nobody_else_is(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Tea").await;
        let bob = app.signed_in("bob@example.org", "Bob.B").await;
        bob.join(&code).await;
        // carol exists but is not in the room.
        let _carol = app.signed_in("carol@example.org", "carol").await;
        let (room_id, members) = ids(&app, &code).await;
        let (ada_id, bob_id) = (id_of(&members, "ada"), id_of(&members, "Bob.B"));

        let text = "@ADA, see https://x.org/@ada and x@ada.org, ask @carol or @nobody; @bob.b.";
        let seq = bob.say(&code, text).await;
        // Stored with the post: a lookup (until Ada opens the room, which reads it).
        assert_eq!(unread_mentions(&app, ada_id, room_id).await, 1);
        for viewer in [&ada, &bob] {
            let page = viewer.get(&format!("/rooms/{code}")).await;
            assert_eq!(page.status, 200);
            assert!(page.body.contains(&mention(ada_id, "@ADA")), "{}", page.body);
            assert!(page.body.contains(&mention(bob_id, "@bob.b")), "{}", page.body);
            assert_eq!(page.body.matches("class=\"mention\"").count(), 2, "{}", page.body);
            assert!(page.body.contains("<bdi>https://x.org/@ada</bdi>"));
            assert!(page.body.contains(" x@ada.org, ask @carol or @nobody; "));
        }
        assert_eq!(unread_mentions(&app, ada_id, room_id).await, 0, "read by opening the room");
        // The same on the history page and the API.
        let history = ada.get(&format!("/rooms/{code}/messages?before={}", seq + 1)).await;
        assert!(history.body.contains(&mention(ada_id, "@ADA")));

        // A message naming the same person thrice mentions them once. (Bob's mention of
        // himself is shown, but never counts for him.)
        ada.say(&code, "@Bob.B @bob.b @BOB.B").await;
        let (_, members) = ids(&app, &code).await;
        assert_eq!(unread_mentions(&app, id_of(&members, "Bob.B"), room_id).await, 1);
    }

    async fn a_mention_arrives_live_already_marked(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Live").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let (_, members) = ids(&app, &code).await;
        let mut socket = ada.socket(&code, Some(0)).await.expect("socket");
        bob.say(&code, "hello @ada!").await;
        let marked = mention(id_of(&members, "ada"), "@ada");
        assert!(socket.wait_for(&marked, Duration::from_secs(10)).await, "{:?}", socket.frames);
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn hostile_text_around_mentions_never_becomes_markup(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Hostile").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let (room_id, members) = ids(&app, &code).await;
        let ada_id = id_of(&members, "ada");
        let mut posted = 0;
        for input in hostile_inputs() {
            for text in [format!("@ada {input}"), format!("{input}@ada"), format!("{input} @ada{input}")] {
                if MessageBody::parse(&text).is_ok() {
                    let csrf = bob.csrf_from(&format!("/rooms/{code}")).await;
                    let id = format!("{:032x}", rand::random::<u128>());
                    let r = bob.post(&format!("/rooms/{code}/messages"),
                        &[("body", &text), ("client_id", &id), ("csrf", &csrf)]).await;
                    assert_eq!(r.status, 303, "{text:?}");
                    posted += 1;
                }
            }
        }
        assert!(posted > 50, "{posted}");
        // Read back every page: no element but natter's own, each mention whole.
        let page = ada.get(&format!("/rooms/{code}/messages?before=100000")).await;
        for needle in ["<script>alert", "<img src=x", "<svg onload", "<div hx-swap-oob", "<iframe", "<style>", "<meta http"] {
            assert!(!page.body.contains(needle), "{needle} rendered as markup");
        }
        for piece in page.body.split("<span class=\"mention\"").skip(1) {
            assert!(piece.starts_with(&format!(" data-user=\"{ada_id}\">@ada</span>")), "{piece:.80}");
        }
        assert!(page.body.matches("class=\"mention\"").count() >= 30);
        assert!(unread_mentions(&app, ada_id, room_id).await >= 30);
    }

    async fn unread_mentions_are_counted_per_room_from_the_store_capped(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Busy").await;
        let quiet = app.create_room(&ada, "Quiet").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let (room_id, members) = ids(&app, &code).await;
        let (quiet_id, _) = ids(&app, &quiet).await;
        let ada_id = id_of(&members, "ada");
        // Through the store's writer, as posts: 130 mentions, and 20 messages that do not.
        app.fill(&code, "bob", 150, |i| {
            MessageBody::parse(&if i % 15 < 13 { format!("{i} @ada") } else { format!("{i} ada") }).unwrap()
        }).await;
        let counts = app.state.store.mention_counts(ada_id).await.unwrap();
        assert_eq!(counts.len(), 2);
        let busy = counts.iter().find(|c| c.room_id == room_id).unwrap();
        assert_eq!((busy.mentions, busy.notify.0), (natter::store::MENTION_COUNT_CAP, Notify::All));
        let none = counts.iter().find(|c| c.room_id == quiet_id).unwrap();
        assert_eq!(none.mentions, 0);
        // Bob mentions nobody: his own name is not in the texts.
        assert_eq!(unread_mentions(&app, id_of(&members, "bob"), room_id).await, 0);
    }

    async fn me_css_accents_my_mentions_and_the_messages_holding_them(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Style").await;
        let (_, members) = ids(&app, &code).await;
        let id = id_of(&members, "ada");
        let css = ada.get("/me.css").await;
        assert_eq!(css.status, 200);
        assert!(css.body.contains(&format!(".mention[data-user=\"{id}\"]{{")), "{}", css.body);
        assert!(css.body.contains(&format!(":has(.mention[data-user=\"{id}\"])")), "{}", css.body);
        let natter_css = ada.get("/assets/natter.css").await.body;
        assert!(natter_css.matches("--mention-me-bg:").count() == 2, "light and dark");
    }

    async fn the_notification_setting_is_chosen_on_the_profile_and_per_room(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Settings").await;
        let (room_id, members) = ids(&app, &code).await;
        let ada_id = id_of(&members, "ada");
        let effective = || async {
            let counts = app.state.store.mention_counts(ada_id).await.unwrap();
            counts.iter().find(|c| c.room_id == room_id).unwrap().notify.0
        };
        let room = format!("/rooms/{code}");
        let page = ada.get(&room).await;
        assert!(page.body.contains("<option value=\"default\" selected>Default: all</option>"), "{}", page.body);

        // The profile's default.
        let r = ada.post_form("/profile", "/profile/notify", &[("notify", "mentions")]).await;
        assert_eq!((r.status, r.location()), (303, "/profile#notify-title".to_string()));
        let profile = ada.get("/profile").await;
        assert!(profile.body.contains("<option value=\"mentions\" selected>Mentions only</option>"));
        assert_eq!(effective().await, Notify::Mentions);
        assert!(ada.get(&room).await.body.contains("Default: mentions"));

        // The room's own.
        let r = ada.post_form(&room, &format!("{room}/notify"), &[("notify", "nothing")]).await;
        assert_eq!((r.status, r.location()), (303, room.clone()));
        assert!(ada.get(&room).await.body.contains("<option value=\"nothing\" selected>Nothing</option>"));
        assert_eq!(effective().await, Notify::Nothing);
        let r = ada.post_form(&room, &format!("{room}/notify"), &[("notify", "default")]).await;
        assert_eq!(r.status, 303);
        assert_eq!(effective().await, Notify::Mentions);

        // Refused values: 422 with the form and its reason, nothing changed; never a 500.
        let mut bad: Vec<String> = ["", "ALL", "none", "default "].map(String::from).to_vec();
        bad.extend(hostile_inputs());
        for value in &bad {
            let r = ada.post_form(&room, &format!("{room}/notify"), &[("notify", value)]).await;
            assert_eq!(r.status, 422, "{value:?}");
            assert!(r.body.contains("id=\"notify-error\""), "{value:?}");
            if value != "default" {
                let r = ada.post_form("/profile", "/profile/notify", &[("notify", value)]).await;
                assert_eq!(r.status, 422, "{value:?}");
                assert!(r.body.contains("id=\"notify-error\""));
            }
        }
        let r = ada.post_form("/profile", "/profile/notify", &[("notify", "default")]).await;
        assert_eq!(r.status, 422, "default is no default");
        assert_eq!(effective().await, Notify::Mentions);

        // CSRF on both forms.
        for path in [format!("{room}/notify"), "/profile/notify".to_string()] {
            let r = ada.post(&path, &[("notify", "all"), ("csrf", "forged")]).await;
            assert_eq!(r.status, 403, "{path}");
            let r = ada.post(&path, &[("notify", "all")]).await;
            assert_eq!(r.status, 403, "{path}");
        }
        assert_eq!(effective().await, Notify::Mentions);

        // Not a member: the room is not there.
        let eve = app.signed_in("eve@example.org", "eve").await;
        let r = eve.post_form("/home", &format!("{room}/notify"), &[("notify", "all")]).await;
        assert_eq!(r.status, 404);
        let r = eve.post_form("/home", "/rooms/ZZZZ-ZZZZ/notify", &[("notify", "all")]).await;
        assert_eq!(r.status, 404);
    }
}
