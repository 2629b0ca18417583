//! Mentions and notification settings through the API: history lists whom each message
//! mentions; the default and each room's setting are read and set like on the pages.

use serde_json::{Value, json};

use crate::api_user;
use crate::both;
use crate::common::hostile_inputs;

both! {
    async fn history_lists_whom_each_message_mentions(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "Ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let (_c, _cyd) = api_user(&app, "cyd@example.org", "cyd").await;
        let code = ada.create_room("Mentions").await;
        let joined = bob.post("/rooms/join", json!({ "code": code })).await;
        assert_eq!(joined.status, 200, "{}", joined.body);
        let ada_id = ada.get("/me").await.json["id"].clone();
        let bob_id = bob.get("/me").await.json["id"].clone();

        let posted = bob.post_message(&code, "@ada and @BOB, not @cyd nor x@ada.org").await;
        assert_eq!(posted.status, 201, "{}", posted.body);
        let both = json!([{ "user_id": ada_id, "username": "Ada" }, { "user_id": bob_id, "username": "bob" }]);
        let mut want = both.as_array().unwrap().clone();
        want.sort_by_key(|m| m["user_id"].as_i64());
        assert_eq!(posted.json["mentions"], Value::Array(want.clone()));
        ada.post_message(&code, "nobody here").await;
        let history = ada.get(&format!("/rooms/{code}/messages")).await;
        assert_eq!(history.json["messages"][0]["mentions"], Value::Array(want));
        assert_eq!(history.json["messages"][1]["mentions"], json!([]));
        let after = ada.get(&format!("/rooms/{code}/messages?after=0&limit=1")).await;
        assert_eq!(after.json["messages"][0]["mentions"].as_array().unwrap().len(), 2);
    }

    async fn notification_settings_are_read_and_set_like_on_the_pages(app: TestApp) {
        let (ada_web, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_e, eve) = api_user(&app, "eve@example.org", "eve").await;
        let code = ada.create_room("Settings").await;
        let room = format!("/rooms/{code}/notifications");

        assert_eq!(ada.get("/me/notifications").await.json, json!({ "default": "all" }));
        assert_eq!(ada.get(&room).await.json, json!({ "notify": "default", "effective": "all" }));
        let r = ada.put("/me/notifications", json!({ "default": "mentions" })).await;
        assert_eq!((r.status, &r.json), (200, &json!({ "default": "mentions" })));
        assert_eq!(ada.get(&room).await.json, json!({ "notify": "default", "effective": "mentions" }));
        let r = ada.put(&room, json!({ "notify": "nothing" })).await;
        assert_eq!((r.status, &r.json), (200, &json!({ "notify": "nothing", "effective": "nothing" })));
        // The pages show what the API set.
        let page = ada_web.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains("<option value=\"nothing\" selected>Nothing</option>"));
        assert!(ada_web.get("/profile").await.body.contains("<option value=\"mentions\" selected>"));
        let r = ada.put(&room, json!({ "notify": "default" })).await;
        assert_eq!(r.json, json!({ "notify": "default", "effective": "mentions" }));

        // Refused: a value that is none of them (422), a value that is not a string (400).
        let mut bad: Vec<String> = ["", "ALL", "none"].map(String::from).to_vec();
        bad.extend(hostile_inputs());
        for value in &bad {
            ada.put(&room, json!({ "notify": value })).await.assert_problem(422, "invalid-input");
            ada.put("/me/notifications", json!({ "default": value })).await.assert_problem(422, "invalid-input");
        }
        ada.put("/me/notifications", json!({ "default": "default" })).await.assert_problem(422, "invalid-input");
        ada.put(&room, json!({ "notify": 1 })).await.assert_problem(400, "malformed-body");
        ada.put("/me/notifications", json!({})).await.assert_problem(400, "malformed-body");
        assert_eq!(ada.get(&room).await.json["effective"], "mentions");

        // Not a member, or no such room: not found. No token: unauthorized.
        eve.get(&room).await.assert_problem(404, "not-found");
        eve.put(&room, json!({ "notify": "all" })).await.assert_problem(404, "not-found");
        ada.with_token(None).get("/me/notifications").await.assert_problem(401, "unauthorized");
    }
}
