//! Unread through the API: the room list's `unread` counts, and moving the read mark.

use serde_json::json;

use crate::api_user;
use crate::both;

both! {
    async fn the_room_list_counts_others_unread_messages_and_the_read_mark_moves_them(app: TestApp) {
        let (_ada, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (bob_web, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Counted").await;
        bob_web.join(&code).await;
        for text in ["one", "two", "three"] {
            assert_eq!(ada.post_message(&code, text).await.status, 201);
        }
        // Bob's own message is not unread to him; Ada's three are.
        assert_eq!(bob.post_message(&code, "mine").await.status, 201);
        let unread = |list: &crate::Reply| list.json["rooms"][0]["unread"].as_i64();
        assert_eq!(unread(&bob.get("/rooms").await), Some(3));
        assert_eq!(unread(&ada.get("/rooms").await), Some(1), "bob's one message");
        // One room alone does not carry a count.
        assert!(bob.get(&format!("/rooms/{code}")).await.json.get("unread").is_none());

        // Read up to seq 2: one of Ada's left (seq 3; seq 4 is Bob's).
        let read = format!("/rooms/{code}/read");
        let r = bob.post(&read, json!({ "seq": 2 })).await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(unread(&bob.get("/rooms").await), Some(1));

        // Far past the end: clamped to the room's last seq, so later messages count again.
        assert_eq!(ada.post(&read, json!({ "seq": i64::MAX })).await.status, 204);
        assert_eq!(unread(&ada.get("/rooms").await), Some(0));
        assert_eq!(bob.post_message(&code, "after").await.status, 201);
        assert_eq!(unread(&ada.get("/rooms").await), Some(1), "the mark was clamped, not set to i64::MAX");
    }

    async fn a_read_mark_never_moves_down_and_is_taken_once_per_room_every_two_seconds(app: TestApp) {
        let (_ada, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (bob_web, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Marks").await;
        let other = ada.create_room("Other").await;
        bob_web.join(&code).await;
        bob_web.join(&other).await;
        for i in 0..4 {
            ada.post_message(&code, &format!("m{i}")).await;
        }
        ada.post_message(&other, "elsewhere").await;
        let read = format!("/rooms/{code}/read");
        assert_eq!(bob.post(&read, json!({ "seq": 3 })).await.status, 204);
        // Again at once: too fast, with when to come back.
        let again = bob.post(&read, json!({ "seq": 1 })).await;
        again.assert_problem(429, "rate-limited");
        assert!(again.header("retry-after").is_some());
        // Another room has its own budget; a lower mark there changes nothing either way.
        assert_eq!(bob.post(&format!("/rooms/{other}/read"), json!({ "seq": 0 })).await.status, 204);
        let list = bob.get("/rooms").await;
        let count = |c: &str| list.json["rooms"].as_array().unwrap().iter()
            .find(|r| r["code"] == c).and_then(|r| r["unread"].as_i64());
        assert_eq!((count(&code), count(&other)), (Some(1), Some(1)));

        // Opening the room on the web reads everything; a lower mark afterwards (the other
        // room's budget is fresh) changes nothing.
        assert_eq!(bob_web.get(&format!("/rooms/{other}")).await.status, 200);
        assert_eq!(bob.post(&format!("/rooms/{other}/read"), json!({ "seq": 0 })).await.status, 429);
        assert_eq!(bob_web.get(&format!("/rooms/{code}")).await.status, 200);
        let list = bob.get("/rooms").await;
        assert!(list.json["rooms"].as_array().unwrap().iter().all(|r| r["unread"] == 0), "{}", list.body);
    }

    async fn bad_read_marks_are_problems_and_a_non_member_finds_no_room(app: TestApp) {
        let (_ada, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_bob, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Private").await;
        let read = format!("/rooms/{code}/read");
        ada.post(&read, json!({ "seq": -1 })).await.assert_problem(422, "invalid-parameter");
        for body in [json!({}), json!({ "seq": "7" }), json!({ "seq": 1.5 }), json!({ "seq": null }),
                     json!({ "seq": 18446744073709551616u128 as f64 }), json!([1])] {
            let r = ada.post(&read, body.clone()).await;
            assert!(matches!(r.status, 400 | 422), "{body}: {} {}", r.status, r.body);
            assert_eq!(r.header("content-type"), Some("application/problem+json"), "{body}");
        }
        bob.post(&read, json!({ "seq": 1 })).await.assert_problem(404, "not-found");
    }
}
