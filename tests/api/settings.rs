//! Room settings through the API: the owner renames the room, sets its topic, rotates its code,
//! removes members and hands the room over; members who do not own it get 403 `forbidden`,
//! everyone else 404.

use serde_json::json;

use crate::api_user;
use crate::both;
use crate::common::hostile_inputs;

both! {
    #[settings(NATTER_LIMIT_POSTS = "10000/1s")]
    async fn the_owner_changes_the_room_and_members_see_system_lines(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let (_e, eve) = api_user(&app, "eve@example.org", "eve").await;
        let code = ada.create_room("Book club").await;
        assert_eq!(bob.post("/rooms/join", json!({ "code": code })).await.status, 200);
        let settings = format!("/rooms/{code}/settings");

        // Name and topic; a field left out keeps its value.
        let r = ada.post(&settings, json!({ "topic": "  Middlemarch\nthis month " })).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json["name"], "Book club");
        assert_eq!(r.json["topic"], "Middlemarch this month");
        assert_eq!(r.json["last_seq"], 1);
        let r = ada.post(&settings, json!({ "name": "Readers" })).await;
        assert_eq!((r.json["name"].as_str(), r.json["topic"].as_str()), (Some("Readers"), Some("Middlemarch this month")));
        assert_eq!(bob.get(&format!("/rooms/{code}")).await.json["topic"], "Middlemarch this month");

        // The system lines are in the history, marked as such, with their words.
        let history = bob.get(&format!("/rooms/{code}/messages")).await;
        let lines = history.json["messages"].as_array().unwrap();
        assert_eq!(lines.len(), 2, "{}", history.body);
        assert_eq!(lines[0]["system"], true);
        assert_eq!(lines[0]["author"], "ada");
        assert_eq!(lines[0]["body"], "set the topic to “Middlemarch this month”");
        assert_eq!(lines[1]["body"], "renamed the room to “Readers”");
        // A person's message carries no `system`.
        let said = bob.post_message(&code, "hello").await;
        assert_eq!(said.status, 201);
        assert!(said.json.get("system").is_none(), "{}", said.body);

        // Refusals: a member 403 `forbidden` with a sentence, a stranger 404, bad input 422.
        let r = bob.post(&settings, json!({ "name": "Bob's" })).await;
        r.assert_problem(403, "forbidden");
        assert!(r.json["detail"].as_str().unwrap().contains("owner"));
        eve.post(&settings, json!({ "name": "Eve's" })).await.assert_problem(404, "not-found");
        ada.post(&settings, json!({ "topic": "x".repeat(201) })).await.assert_problem(422, "invalid-input");
        ada.post(&settings, json!({ "name": "a\u{202E}b" })).await.assert_problem(422, "invalid-input");
        for input in hostile_inputs() {
            let r = ada.post(&settings, json!({ "name": input, "topic": input })).await;
            assert!(matches!(r.status, 200 | 422), "{input:?}: {}", r.body);
        }
    }

    async fn rotate_remove_and_hand_over(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let (_c, cyd) = api_user(&app, "cyd@example.org", "cyd").await;
        let code = ada.create_room("Rotating").await;
        for api in [&bob, &cyd] {
            assert_eq!(api.post("/rooms/join", json!({ "code": code })).await.status, 200);
        }

        // Rotate: the answer has the new code; the old one is not found, for members too.
        bob.post(&format!("/rooms/{code}/rotate"), json!({})).await.assert_problem(403, "forbidden");
        let r = ada.post(&format!("/rooms/{code}/rotate"), json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let new = r.json["code"].as_str().unwrap().to_string();
        assert_ne!(new, code);
        bob.get(&format!("/rooms/{code}")).await.assert_problem(404, "not-found");
        assert_eq!(bob.get(&format!("/rooms/{new}")).await.status, 200);
        let (_d, dan) = api_user(&app, "dan@example.org", "dan").await;
        dan.post("/rooms/join", json!({ "code": code })).await.assert_problem(422, "invalid-input");

        // Remove: by a member 403; the owner herself or a non-member 422; Bob (any case) 204.
        let remove = |who: &str| format!("/rooms/{new}/members/{who}/remove");
        cyd.post(&remove("bob"), json!({})).await.assert_problem(403, "forbidden");
        ada.post(&remove("ada"), json!({})).await.assert_problem(422, "invalid-input");
        ada.post(&remove("dan"), json!({})).await.assert_problem(422, "invalid-input");
        dan.post(&remove("bob"), json!({})).await.assert_problem(404, "not-found");
        assert_eq!(ada.post(&remove("Bob"), json!({})).await.status, 204);
        bob.get(&format!("/rooms/{new}")).await.assert_problem(404, "not-found");
        let members = ada.get(&format!("/rooms/{new}/members")).await;
        assert_eq!(members.json["members"].as_array().unwrap().len(), 2);

        // Hand over: Cyd owns it, Ada no longer does.
        let owner = format!("/rooms/{new}/owner");
        ada.post(&owner, json!({ "username": "bob" })).await.assert_problem(422, "invalid-input");
        assert_eq!(ada.post(&owner, json!({ "username": "cyd" })).await.status, 204);
        ada.post(&format!("/rooms/{new}/rotate"), json!({})).await.assert_problem(403, "forbidden");
        let r = cyd.post(&format!("/rooms/{new}/settings"), json!({ "name": "Cyd's" })).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let history = cyd.get(&format!("/rooms/{new}/messages")).await;
        let bodies: Vec<&str> = history.json["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
        assert_eq!(bodies[..3], [
            "changed the room code: the old code and invitation link no longer work",
            "removed bob from the room",
            "made cyd the room's owner",
        ]);
    }
}
