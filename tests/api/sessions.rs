//! Sessions over the API: `GET /api/v1/me/sessions` lists the browsers signed in as the token's
//! owner, `DELETE /api/v1/me/sessions/{id}` ends one (its sockets close with 4401), and any id
//! that is not one of theirs is a 404 problem, never another person's session.

use std::time::Duration;

use crate::api_user;
use crate::both;
use crate::common::{Closed, hostile_inputs};

const WAIT: Duration = Duration::from_secs(15);

/// The ids the list answers, in order.
fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_string())
        .collect()
}

both! {
    async fn a_token_lists_its_owners_sessions_and_ends_one_closing_its_sockets(app: TestApp) {
        let (ada, api) = api_user(&app, "care-api-ada@example.org", "care_api_ada").await;
        let code = ada.create_room("Sessions by API").await;
        let first = api.get("/me/sessions").await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(ids(&first.json).len(), 1, "{}", first.body);

        // A second browser signs in as her.
        let second = app.browser();
        second.dev_sign_in("care-api-ada@example.org").await;
        assert_eq!(second.get("/home").await.status, 200, "signed in");
        let mut socket = second.socket(&code, None).await.expect("its socket");
        assert!(socket.wait_for("id=\"members\"", WAIT).await);

        let list = api.get("/me/sessions").await;
        assert_eq!(list.status, 200, "{}", list.body);
        let all = ids(&list.json);
        assert_eq!(all.len(), 2, "{}", list.body);
        let new = all.iter().find(|id| !ids(&first.json).contains(id)).expect("the new one").clone();
        for s in list.json.as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert!(s["browser"].is_string() && s["user_agent"].is_string(), "{s}");
            assert!(s["created"].as_str().unwrap().ends_with('Z'), "{s}");
            assert!(s["last_seen"].as_str().unwrap().ends_with('Z'), "{s}");
            assert_eq!(s["current"], false, "a token is no browser: {s}");
            assert!(s.get("token_hash").is_none(), "{s}");
        }

        // Bob's session is not hers to end, nor to see.
        let (_bob, bob_api) = api_user(&app, "care-api-bob@example.org", "care_api_bob").await;
        let bobs = ids(&bob_api.get("/me/sessions").await.json);
        assert_eq!(bobs.len(), 1);
        assert!(!all.contains(&bobs[0]), "each sees only their own");
        api.delete(&format!("/me/sessions/{}", bobs[0])).await.assert_problem(404, "not-found");
        assert_eq!(bob_api.get("/me/sessions").await.json.as_array().unwrap().len(), 1, "bob's session lives");

        let ended = api.delete(&format!("/me/sessions/{new}")).await;
        assert_eq!(ended.status, 204, "{}", ended.body);
        assert_eq!(socket.closed(WAIT).await, Closed::Code(4401), "its socket closes with 4401");
        assert_eq!(second.get("/home").await.status, 303, "that browser is signed out");
        assert_eq!(ids(&api.get("/me/sessions").await.json), ids(&first.json));
        api.delete(&format!("/me/sessions/{new}")).await.assert_problem(404, "not-found");
        assert_eq!(ada.get("/home").await.status, 200, "her first browser is still signed in");

        // Without a token: 401.
        api.with_token(None).get("/me/sessions").await.assert_problem(401, "unauthorized");
        api.with_token(None).delete(&format!("/me/sessions/{}", all[0])).await.assert_problem(401, "unauthorized");
    }

    async fn hostile_session_ids_are_not_found(app: TestApp) {
        let (ada, api) = api_user(&app, "care-api-hostile@example.org", "care_api_hostile").await;
        for id in hostile_inputs() {
            let path: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let r = api.delete(&format!("/me/sessions/{path}")).await;
            assert!(
                matches!(r.status, 404 | 405),
                "{id:?}: {} {}",
                r.status,
                r.body
            );
            assert_eq!(r.header("content-type"), Some("application/problem+json"), "{id:?}");
        }
        assert_eq!(ids(&api.get("/me/sessions").await.json).len(), 1, "nothing ended");
        assert_eq!(ada.get("/home").await.status, 200);
    }
}
