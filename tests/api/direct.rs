//! Direct conversations through the API: open one (created once, then found), list them, post
//! into one with the room operations; the refusals are the pages'.

use serde_json::json;

use crate::both;
use crate::{Api, api_user};

/// Ada and Bob sharing a room, as API clients.
async fn pair(app: &crate::common::TestApp) -> (Api, Api) {
    let (_a, ada) = api_user(app, "ada@example.org", "ada").await;
    let (_b, bob) = api_user(app, "bob@example.org", "bob").await;
    let code = ada.create_room("Book club").await;
    assert_eq!(
        bob.post("/rooms/join", json!({ "code": code }))
            .await
            .status,
        200
    );
    (ada, bob)
}

both! {
    async fn opening_creates_once_then_finds_and_the_list_shows_it_by_name(app: TestApp) {
        let (ada, bob) = pair(&app).await;
        let created = ada.post("/direct/BOB", json!({})).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.json["username"], "bob");
        let code = created.json["code"].as_str().unwrap().to_string();
        let again = bob.post("/direct/ada", json!({})).await;
        assert_eq!((again.status, again.json["code"].as_str()), (200, Some(code.as_str())), "{}", again.body);
        // Never written in: listed for Ada, who opened it, not yet for Bob.
        let mine = ada.get("/direct").await;
        assert_eq!(mine.status, 200);
        assert_eq!(mine.json["direct"][0]["username"], "bob");
        assert_eq!(mine.json["direct"][0]["unread"], 0);
        // Bob opened it too, so it is in his list; a message counts as unread for Ada.
        let posted = bob.post_message(&code, "hi @ada").await;
        assert_eq!(posted.status, 201, "{}", posted.body);
        let mine = ada.get("/direct").await;
        assert_eq!(mine.json["direct"].as_array().unwrap().len(), 1);
        assert_eq!(mine.json["direct"][0]["unread"], 1);
        assert_eq!(mine.json["direct"][0]["last_seq"], 1);
        // It is not one of the rooms, and its code cannot be joined.
        let rooms = ada.get("/rooms").await.json;
        assert!(!rooms.to_string().contains(&code), "{rooms}");
        let (_c, cyd) = api_user(&app, "cyd@example.org", "cyd").await;
        cyd.post("/rooms/join", json!({ "code": code })).await.assert_problem(422, "invalid-input");
        cyd.get(&format!("/rooms/{code}/messages")).await.assert_problem(404, "not-found");
        // Leaving it closes it: out of the list until the next message.
        assert_eq!(ada.post(&format!("/rooms/{code}/leave"), json!({})).await.status, 204);
        assert_eq!(ada.get("/direct").await.json["direct"].as_array().unwrap().len(), 0);
        bob.post_message(&code, "still there?").await;
        assert_eq!(ada.get("/direct").await.json["direct"].as_array().unwrap().len(), 1);
    }

    async fn strangers_and_unknown_names_are_not_found_and_oneself_is_invalid(app: TestApp) {
        let (ada, _bob) = pair(&app).await;
        let (_c, _cyd) = api_user(&app, "cyd@example.org", "cyd").await;
        ada.post("/direct/cyd", json!({})).await.assert_problem(404, "not-found");
        ada.post("/direct/nobody", json!({})).await.assert_problem(404, "not-found");
        let me = ada.post("/direct/ada", json!({})).await;
        me.assert_problem(422, "invalid-input");
        assert!(me.json["detail"].as_str().unwrap().contains("That is you."));
        ada.with_token(None).post("/direct/bob", json!({})).await.assert_problem(401, "unauthorized");
        ada.with_token(None).get("/direct").await.assert_problem(401, "unauthorized");
    }
}
