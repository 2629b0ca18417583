//! Messages through the API: posting exactly like the page (validation, limits, idempotency),
//! and reading history by `seq` cursor.

use serde_json::{Value, json};

use crate::both;
use crate::common::hostile_inputs;
use crate::{Api, Reply, api_user};

fn seqs(page: &Reply) -> Vec<i64> {
    page.json["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", page.body))
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

/// A room of `n` messages posted by `api`; returns its code.
async fn room_with(api: &Api, n: i64) -> String {
    let code = api.create_room("History").await;
    for i in 1..=n {
        let r = api.post_message(&code, &format!("message {i}")).await;
        assert_eq!(
            (r.status, r.json["seq"].as_i64()),
            (201, Some(i)),
            "{}",
            r.body
        );
    }
    code
}

both! {
    async fn a_posted_message_answers_201_and_shows_on_the_room_page(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        let code = ada.create_room("Posts").await;
        let r = ada.post_message(&code, "  Hello\r\nfrom the API  ").await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json["seq"], 1);
        assert_eq!(r.json["body"], "Hello\nfrom the API", "normalised like the form");
        assert_eq!(r.json["author"], "ada");
        assert_eq!(r.json["author_id"], ada.get("/me").await.json["id"]);
        assert!(r.json["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(r.json["edited_at"], Value::Null);
        let page = ada_browser.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains("id=\"msg-1\"") && page.body.contains("from the API"), "{}", page.body);
        assert_eq!(ada.get(&format!("/rooms/{code}")).await.json["last_seq"], 1);
    }

    async fn history_is_ascending_and_pages_back_with_before(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = room_with(&api, 7).await;
        let path = format!("/rooms/{code}/messages");
        let newest = api.get(&path).await;
        assert_eq!((seqs(&newest), &newest.json["has_more"], &newest.json["last_seq"]), ((1..=7).collect(), &json!(false), &json!(7)));
        assert_eq!(newest.json["messages"][0]["body"], "message 1");
        let page = api.get(&format!("{path}?limit=3")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![5, 6, 7], &json!(true)));
        let page = api.get(&format!("{path}?limit=3&before=5")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![2, 3, 4], &json!(true)));
        let page = api.get(&format!("{path}?limit=3&before=2")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![1], &json!(false)));
        assert!(seqs(&api.get(&format!("{path}?before=0")).await).is_empty());
        assert!(seqs(&api.get(&format!("{path}?before=1")).await).is_empty());
    }

    async fn history_catches_up_with_after_and_combines_with_before(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = room_with(&api, 7).await;
        let path = format!("/rooms/{code}/messages");
        let page = api.get(&format!("{path}?after=2&limit=3")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![3, 4, 5], &json!(true)));
        let page = api.get(&format!("{path}?after=5&limit=3")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![6, 7], &json!(false)));
        let page = api.get(&format!("{path}?after=1&before=5")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![2, 3, 4], &json!(false)));
        let page = api.get(&format!("{path}?after=1&before=5&limit=2")).await;
        assert_eq!((seqs(&page), &page.json["has_more"]), (vec![2, 3], &json!(true)));
        assert!(seqs(&api.get(&format!("{path}?after=7")).await).is_empty());
        assert!(seqs(&api.get(&format!("{path}?after=5&before=5")).await).is_empty());
        let far = api.get(&format!("{path}?after={}&before={}", i64::MAX - 1, i64::MAX)).await;
        assert_eq!(far.status, 200);
        assert!(seqs(&api.get(&format!("{path}?limit=200")).await).len() == 7);
    }

    async fn cursors_and_limits_out_of_range_are_refused_with_422(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = room_with(&api, 1).await;
        let path = format!("/rooms/{code}/messages");
        for query in [
            "limit=0", "limit=201", "limit=-1", "limit=99999999999999999999", "limit=1.5", "limit=abc", "limit=",
            "before=-1", "after=-5", "before=abc", "after=1e3", "before=99999999999999999999",
        ] {
            let r = api.get(&format!("{path}?{query}")).await;
            r.assert_problem(422, "invalid-parameter");
        }
        for input in hostile_inputs() {
            let encoded: String = url::form_urlencoded::byte_serialize(input.as_bytes()).collect();
            for name in ["limit", "before", "after"] {
                api.get(&format!("{path}?{name}={encoded}")).await.assert_problem(422, "invalid-parameter");
            }
        }
        assert_eq!(api.get(&format!("{path}?limit=1")).await.status, 200);
        assert_eq!(api.get(&format!("{path}?limit=200&unknown=1")).await.status, 200);
    }

    #[settings(NATTER_LIMIT_POSTS = "1000/1m")]
    async fn message_bodies_follow_the_web_rules(app: TestApp) {
        let (ada_browser, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Hostile").await;
        let inputs = hostile_inputs().into_iter().chain(["A".repeat(4000), "A".repeat(4001), "😀".repeat(4000), "a\u{0}b".into(), "\u{85}".into()]);
        for input in inputs {
            let r = api.post_message(&code, &input).await;
            match natter::domain::MessageBody::parse(&input) {
                Ok(body) => {
                    assert_eq!(r.status, 201, "{input:?}: {}", r.body);
                    assert_eq!(r.json["body"], body.as_str(), "echoed as the same text");
                    let seq = r.json["seq"].as_i64().unwrap();
                    let read = api.get(&format!("/rooms/{code}/messages?after={}&limit=1", seq - 1)).await;
                    assert_eq!(read.json["messages"][0]["body"], body.as_str());
                }
                Err(why) => {
                    r.assert_problem(422, "invalid-input");
                    assert_eq!(r.json["detail"], why.0);
                }
            }
        }
        let page = ada_browser.get(&format!("/rooms/{code}")).await;
        assert!(!page.body.contains("<script>alert"), "shown as text");
    }

    async fn an_idempotency_key_posts_once_and_refuses_other_text(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Retries").await;
        let path = format!("/rooms/{code}/messages");
        let send = |key: &'static str, body: &'static str| {
            let req = api.request(reqwest::Method::POST, &path).header("idempotency-key", key).json(&json!({ "body": body }));
            Api::send(req)
        };
        let first = send("9f0c7c1e-retry_1", "only once").await;
        assert_eq!(first.status, 201);
        let again = send("9f0c7c1e-retry_1", "only once").await;
        assert_eq!((again.status, &again.json["seq"], &again.json["body"]), (201, &first.json["seq"], &json!("only once")));
        // The same text as stored (surrounding spaces trimmed) is the same post.
        let trimmed = send("9f0c7c1e-retry_1", "  only once\n").await;
        assert_eq!((trimmed.status, &trimmed.json["seq"]), (201, &first.json["seq"]));
        // Other text under a used key is a mistake, not a retry: refused, nothing posted.
        let changed = send("9f0c7c1e-retry_1", "something else").await;
        changed.assert_problem(422, "invalid-parameter");
        assert!(changed.json["detail"].as_str().unwrap().contains("Idempotency-Key"), "{:?}", changed.json);
        assert_eq!(seqs(&api.get(&path).await), vec![1]);
        let other = send("another-key", "only once").await;
        assert_eq!(other.json["seq"], 2);
        assert_eq!(seqs(&api.get(&path).await), vec![1, 2]);
        // Keys are per person: someone else's identical key posts their own message.
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        bob.post("/rooms/join", json!({ "code": code })).await;
        let req = bob.request(reqwest::Method::POST, &path).header("idempotency-key", "another-key").json(&json!({ "body": "mine" }));
        assert_eq!(Api::send(req).await.json["seq"], 3);
        // A message edited since has lost its first text: a retry answers it as it is now.
        assert_eq!(api.patch(&format!("{path}/1"), json!({ "body": "edited" })).await.status, 200);
        let retried = send("9f0c7c1e-retry_1", "only once").await;
        assert_eq!((retried.status, &retried.json["seq"], &retried.json["body"]), (201, &json!(1), &json!("edited")));
        assert_eq!(seqs(&api.get(&path).await), vec![1, 2, 3], "nothing new posted");
    }

    async fn a_malformed_idempotency_key_is_refused_with_422(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Keys").await;
        let path = format!("/rooms/{code}/messages");
        let long = "k".repeat(65);
        for key in ["", "has space", "semi;colon", "dot.ted", long.as_str(), "émoji"] {
            let value = reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap();
            let req = api.request(reqwest::Method::POST, &path).header("idempotency-key", value).json(&json!({ "body": "x" }));
            Api::send(req).await.assert_problem(422, "invalid-parameter");
        }
        assert!(seqs(&api.get(&path).await).is_empty(), "nothing was posted");
        let ok = "k".repeat(64);
        let req = api.request(reqwest::Method::POST, &path).header("idempotency-key", ok).json(&json!({ "body": "x" }));
        assert_eq!(Api::send(req).await.status, 201);
    }

    #[settings(NATTER_LIMIT_POSTS = "3/1h")]
    async fn posting_too_fast_answers_429_with_retry_after_and_the_web_shares_the_budget(app: TestApp) {
        let (ada_browser, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Limits").await;
        let path = format!("/rooms/{code}/messages");
        let keyed = |key: &'static str| {
            Api::send(api.request(reqwest::Method::POST, &path).header("idempotency-key", key).json(&json!({ "body": "m2" })))
        };
        for i in 0..2 {
            assert_eq!(api.post_message(&code, &format!("m{i}")).await.status, 201);
        }
        assert_eq!(keyed("retried-key").await.status, 201);
        // A retry of a post that went through answers as it did, over the limit too.
        let retry = keyed("retried-key").await;
        assert_eq!((retry.status, &retry.json["seq"]), (201, &json!(3)), "{:?}", retry.json);
        assert_eq!(keyed("fresh-key").await.status, 429);
        let r = api.post_message(&code, "one too many").await;
        r.assert_problem(429, "rate-limited");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1000..=1200).contains(&retry), "{retry}");
        assert!(r.json["detail"].as_str().unwrap().contains("very fast"));
        let csrf = ada_browser.csrf_from(&format!("/rooms/{code}")).await;
        let web = ada_browser.post(&format!("/rooms/{code}/messages"), &[("body", "from the page"), ("csrf", &csrf)]).await;
        assert_eq!(web.status, 429);
        assert_eq!(seqs(&api.get(&format!("/rooms/{code}/messages")).await), vec![1, 2, 3]);
    }

    async fn edits_and_deletes_through_the_api_show_in_history_and_on_the_page(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Changes").await;
        assert_eq!(bob.post("/rooms/join", json!({ "code": code })).await.status, 200);
        let mine = ada.post_message(&code, "teh typo").await.json["seq"].as_i64().unwrap();
        let bobs = bob.post_message(&code, "bob's").await.json["seq"].as_i64().unwrap();
        let one = |seq: i64| format!("/rooms/{code}/messages/{seq}");

        // The author edits: 200 with the message as it is now; the room's seq moved on.
        let edited = ada.patch(&one(mine), json!({ "body": "  the typo, fixed\r\n" })).await;
        assert_eq!(edited.status, 200, "{}", edited.body);
        assert_eq!(edited.json["body"], "the typo, fixed");
        assert!(edited.json["edited_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(edited.json["deleted_at"], Value::Null);
        assert_eq!(ada.get(&format!("/rooms/{code}")).await.json["last_seq"], 3);
        // Not theirs, not there: 404 alike; bad text: 422; the creator deletes anyone's.
        assert_eq!(bob.patch(&one(mine), json!({ "body": "bob" })).await.status, 404);
        assert_eq!(bob.delete(&one(mine)).await.status, 404);
        assert_eq!(ada.patch(&one(bobs), json!({ "body": "ada" })).await.status, 404);
        assert_eq!(ada.patch(&one(99), json!({ "body": "x" })).await.status, 404);
        assert_eq!(ada.patch(&one(-1), json!({ "body": "x" })).await.status, 404);
        assert_eq!(ada.patch(&one(mine), json!({ "body": "" })).await.status, 422);
        assert_eq!(ada.patch(&one(mine), json!({ "body": "\u{0}" })).await.status, 422);
        let gone = ada.delete(&one(bobs)).await;
        assert_eq!(gone.status, 204, "{}", gone.body);
        assert_eq!(ada.delete(&one(bobs)).await.status, 204, "deleting again is done");
        let late = bob.patch(&one(bobs), json!({ "body": "back" })).await;
        assert_eq!(late.status, 409, "{}", late.body);
        assert_eq!(late.json["type"], "https://natter.dev/problems/conflict");
        assert!(late.header("content-type").unwrap().starts_with("application/problem+json"));

        // History says what happened; so does the page.
        let history = ada.get(&format!("/rooms/{code}/messages")).await;
        let messages = history.json["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["body"], "the typo, fixed");
        assert_eq!(messages[1]["body"], "");
        assert!(messages[1]["deleted_at"].as_str().is_some());
        let page = ada_browser.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains("the typo, fixed") && page.body.contains("Message deleted"));
        assert!(!page.body.contains("bob&#39;s") && !page.body.contains("bob's"));

        // Hostile texts are refused or stored as text, never a 500, never markup on the page.
        for input in hostile_inputs() {
            let r = ada.patch(&one(mine), json!({ "body": input })).await;
            assert!(matches!(r.status, 200 | 422 | 429), "{input:?}: {}", r.body);
        }
        let page = ada_browser.get(&format!("/rooms/{code}")).await.body;
        for needle in ["<script>alert", "<img src=x", "<svg onload"] {
            assert!(!page.contains(needle), "{needle} rendered as markup");
        }
    }
}
